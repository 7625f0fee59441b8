//! Printing of results: JSON for machines, aligned tables for people.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use serde::Serialize;

use crate::args::OutputFormat;

/// Prints an error and its causes to stderr.
pub(crate) fn error(e: &anyhow::Error) {
    eprintln!("error: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// Prints text as it is, such as a document another command reads back.
pub(crate) fn raw(text: &str) {
    println!("{text}");
}

/// Prints one value: as JSON, or with the given text renderer.
pub(crate) fn one<T: Serialize>(format: OutputFormat, value: &T, text: impl FnOnce(&T) -> String) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(value)?),
        OutputFormat::Text => println!("{}", text(value)),
    }
    Ok(())
}

/// Prints a list: as a JSON array, or as a table with the given columns.
pub(crate) fn table<T: Serialize>(
    format: OutputFormat,
    items: &[T],
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(items)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    println!("{}", line(headers.iter().map(|h| h.to_string()).collect()));
    for r in rows {
        println!("{}", line(r));
    }
    Ok(())
}
