//! Errors of the benchmark library.

use std::path::PathBuf;

/// Failure of a scenario or of the run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{peer} {operation} of {sandbox} failed: {reason}")]
    Peer { peer: String, operation: &'static str, sandbox: String, reason: String },
    #[error("{tool} is missing at {path}; install {package}")]
    MissingTool { tool: String, path: PathBuf, package: &'static str },
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout { what: String, seconds: u64 },
    #[error("cloison API call failed: {0}")]
    Client(#[from] cloison_client::ClientError),
    #[error(transparent)]
    Lab(#[from] cloison_lab::LabError),
    #[error("{scenario} measured nothing: {reason}")]
    Empty { scenario: &'static str, reason: String },
}

impl BenchError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io { what: what.into(), source }
    }
}
