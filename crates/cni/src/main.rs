//! The `cloison-cni` binary: reads the invocation from the environment and the
//! configuration from stdin, and writes the result or the specification's error
//! object to stdout, exiting non-zero on error.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use cloison_cni::{parse_version, run, CniError, Command, ErrorCode, Invocation, SpecVersion};
use serde_json::Value;

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    let (output, ok) = match read {
        Ok(_) => execute(&stdin),
        Err(e) => (failure(&CniError::new(ErrorCode::Io, "cannot read stdin", e.to_string()), None), false),
    };
    if let Err(e) = write_stdout(output.as_ref()) {
        // stdout is the only channel the runtime reads; stderr is the last resort.
        #[allow(clippy::print_stderr)]
        {
            eprintln!("cloison-cni: {e:#}");
        }
        return ExitCode::FAILURE;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Returns what to print and whether the command succeeded.
fn execute(stdin: &[u8]) -> (Option<Value>, bool) {
    let invocation = match Invocation::from_lookup(|name| std::env::var(name).ok()) {
        Ok(invocation) => invocation,
        Err(e) => return (failure(&e, requested_version(stdin)), false),
    };
    let parsed = parse_version(stdin);
    let (config, version) = match (invocation.command, parsed) {
        (_, Ok(parsed)) => parsed,
        // VERSION must answer even a runtime that sends no or an unknown version.
        (Command::Version, Err(_)) => (Value::Null, SpecVersion::V1_1_0),
        (_, Err(e)) => return (failure(&e, requested_version(stdin)), false),
    };
    match run(&invocation, version, config) {
        Ok(output) => (output, true),
        Err(e) => (failure(&e, Some(version.as_str().to_string())), false),
    }
}

fn failure(error: &CniError, version: Option<String>) -> Option<Value> {
    Some(error.to_json(version.as_deref().unwrap_or(SpecVersion::V1_1_0.as_str())))
}

/// Returns the `cniVersion` on stdin if there is one, for reporting early errors.
fn requested_version(stdin: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(stdin).ok()?;
    value.get("cniVersion")?.as_str().map(str::to_string)
}

fn write_stdout(output: Option<&Value>) -> anyhow::Result<()> {
    let Some(value) = output else {
        return Ok(());
    };
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, value).context("cannot encode the result")?;
    stdout.write_all(b"\n").context("cannot write the result to stdout")?;
    stdout.flush().context("cannot flush stdout")
}
