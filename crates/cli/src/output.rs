//! Printing of results: JSON for machines, aligned tables and `key: value` lines for people.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use serde::Serialize;

use crate::args::OutputFormat;

/// Prints an error and its causes to stderr.
pub(crate) fn error(e: &anyhow::Error) {
    for line in error_lines(e) {
        eprintln!("{line}");
    }
}

/// Renders an error and its causes, one line each. A cause whose text the line
/// above already ends with, as in "cannot connect to URL: Connection refused", is
/// left out, so that no message prints twice.
fn error_lines(e: &anyhow::Error) -> Vec<String> {
    let mut lines = vec![format!("error: {e}")];
    let mut above = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !above.ends_with(&text) {
            lines.push(format!("  caused by: {text}"));
        }
        above = text;
    }
    lines
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

/// Prints one resource in full: as JSON, or as aligned `key: value` lines.
pub(crate) fn inspect<T: Serialize>(format: OutputFormat, value: &T) -> anyhow::Result<()> {
    let json = serde_json::to_value(value)?;
    one(format, &json, fields)
}

/// Renders a JSON object as one `key: value` line per field, keys padded to one
/// width. Strings print without quotes, null as `-`, a list of scalars as
/// comma-separated values and a map of scalars (such as labels) as `k=v` pairs.
/// Anything nested deeper prints as compact JSON.
fn fields(value: &serde_json::Value) -> String {
    let serde_json::Value::Object(map) = value else {
        return scalar(value);
    };
    let width = map.keys().map(String::len).max().unwrap_or(0) + 1;
    let lines: Vec<String> = map
        .iter()
        .map(|(key, field)| format!("{:<width$} {}", format!("{key}:"), field_text(field)))
        .collect();
    lines.join("\n")
}

fn field_text(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Array(items) if items.is_empty() => "-".to_string(),
        Value::Array(items) if items.iter().all(is_scalar) => {
            items.iter().map(scalar).collect::<Vec<_>>().join(", ")
        }
        Value::Object(map) if map.is_empty() => "-".to_string(),
        Value::Object(map) if map.values().all(is_scalar) => map
            .iter()
            .map(|(key, item)| format!("{key}={}", scalar(item)))
            .collect::<Vec<_>>()
            .join(", "),
        other => scalar(other),
    }
}

fn is_scalar(value: &serde_json::Value) -> bool {
    !value.is_array() && !value.is_object()
}

fn scalar(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
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
    println!("{}", table_text(headers, rows));
    Ok(())
}

/// Renders a header line and one line per row, each column padded to its widest cell
/// and columns separated by two spaces.
pub(crate) fn table_text(headers: &[&str], rows: Vec<Vec<String>>) -> String {
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
    let mut lines = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    lines.extend(rows.into_iter().map(line));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_skip_repeated_cause() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let e = anyhow::Error::new(refused).context("cannot connect to http://127.0.0.1:7420: Connection refused");
        assert_eq!(error_lines(&e), vec!["error: cannot connect to http://127.0.0.1:7420: Connection refused"]);
    }

    #[test]
    fn error_lines_keep_new_causes() {
        let e = anyhow::anyhow!("invalid MAC address \"zz\"").context("invalid --mac");
        assert_eq!(error_lines(&e), vec!["error: invalid --mac", "  caused by: invalid MAC address \"zz\""]);
    }

    #[test]
    fn fields_render_key_value_lines() {
        let value = serde_json::json!({
            "name": "web",
            "vni": 4097,
            "subnet6": null,
            "groups": ["g1", "g2"],
            "labels": { "app": "shop" },
            "rules": [{ "port": 80 }],
        });
        let text = fields(&value);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"name:    web"), "{text}");
        assert!(lines.contains(&"vni:     4097"), "{text}");
        assert!(lines.contains(&"subnet6: -"), "{text}");
        assert!(lines.contains(&"groups:  g1, g2"), "{text}");
        assert!(lines.contains(&"labels:  app=shop"), "{text}");
        assert!(lines.contains(&"rules:   [{\"port\":80}]"), "{text}");
        assert!(!text.starts_with('{'), "{text}");
    }
}
