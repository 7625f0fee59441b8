//! Errors of the lab.

use std::io;
use std::path::PathBuf;

/// Failure while building, using or removing a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("invalid lab name {name:?}: {reason}; use 1 to {max} characters of a-z, 0-9 and '-', starting with a letter")]
    InvalidName { name: String, reason: &'static str, max: usize },
    #[error("invalid container name {name:?}: use 1 to {max} characters of a-z, 0-9 and '-'")]
    InvalidContainerName { name: String, max: usize },
    #[error("invalid host count {count}: a lab has 1 to {max} hosts")]
    InvalidHostCount { count: usize, max: usize },
    #[error("invalid control plane of {etcd_members} etcd member(s) and {controllers} controller(s): {reason}")]
    InvalidControlPlane { etcd_members: usize, controllers: usize, reason: &'static str },
    #[error("unknown {kind} {index}: the lab has {count}, numbered from 0")]
    UnknownMember { kind: &'static str, index: usize, count: usize },
    #[error("unknown node {node:?} in lab {lab}: use h1 to h{hosts}, ctl, outside or underlay")]
    UnknownNode { lab: String, node: String, hosts: usize },
    #[error("lab {name} already exists (state in {}); remove it with `cloison lab down --name {name}`", dir.display())]
    AlreadyExists { name: String, dir: PathBuf },
    #[error("lab {name} not found: no state in {}", dir.display())]
    NotFound { name: String, dir: PathBuf },
    #[error("the lab must run as root, because it creates network namespaces")]
    NotRoot,
    #[error("required program {program} not found in PATH; install the Debian package {package}")]
    MissingTool { program: &'static str, package: &'static str },
    #[error("cloison binary not found (looked at {}); build it with `cargo build -p cloison` or set CLOISON_BIN", looked.display())]
    BinaryNotFound { looked: PathBuf },
    #[error("cannot start {program}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed { command: String, status: String, stderr: String },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("invalid state file {}: {source}", path.display())]
    State { path: PathBuf, source: serde_json::Error },
    #[error("unexpected output of `{command}`: {reason}")]
    Output { command: String, reason: String },
    #[error("{process} exited before the lab was ready; its log {} ends with:\n{tail}", log.display())]
    ProcessExited { process: String, log: PathBuf, tail: String },
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout { what: String, seconds: u64 },
    #[error("removing lab {name} left {} error(s): {}", errors.len(), errors.join("; "))]
    Teardown { name: String, errors: Vec<String> },
}

impl LabError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        LabError::Io { what: what.into(), source }
    }
}
