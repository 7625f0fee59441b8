use serde::Serialize;
use thiserror::Error;

/// Error codes of the CNI specification (1.1.0, "Well-known Error Codes"), plus
/// cloison's own codes from 100 up, which the specification leaves to plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 1: the configuration's `cniVersion` is not one this plugin speaks.
    IncompatibleVersion,
    /// 2: a field of the network configuration is not supported.
    UnsupportedField,
    /// 3: the container or its attachment does not exist.
    UnknownContainer,
    /// 4: a required `CNI_*` environment variable is missing or invalid.
    InvalidEnvironment,
    /// 5: reading stdin or writing stdout failed.
    Io,
    /// 6: the configuration on stdin is not valid JSON.
    Decode,
    /// 7: the network configuration is invalid.
    InvalidConfig,
    /// 11: a transient failure, such as an unreachable agent; the runtime may retry.
    TryAgainLater,
    /// 50: STATUS found that the plugin cannot serve ADD now.
    NotAvailable,
    /// 100: the agent or controller rejected the request.
    Rejected,
    /// 101: ADD found an attachment for this container and interface already.
    AttachmentExists,
    /// 102: CHECK found the attachment missing or different from the ADD result.
    CheckFailed,
}

impl ErrorCode {
    /// Returns the number the specification assigns to the code.
    pub fn number(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::Io => 5,
            ErrorCode::Decode => 6,
            ErrorCode::InvalidConfig => 7,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::NotAvailable => 50,
            ErrorCode::Rejected => 100,
            ErrorCode::AttachmentExists => 101,
            ErrorCode::CheckFailed => 102,
        }
    }
}

/// A failure reported to the runtime as the specification's error object.
#[derive(Debug, Error)]
#[error("{msg}: {details}")]
pub struct CniError {
    pub code: ErrorCode,
    /// Short message, such as "invalid network configuration".
    pub msg: String,
    /// What exactly was wrong and what would be accepted.
    pub details: String,
}

impl CniError {
    pub fn new(code: ErrorCode, msg: &str, details: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.to_string(),
            details: details.into(),
        }
    }

    pub fn config(details: impl Into<String>) -> Self {
        CniError::new(ErrorCode::InvalidConfig, "invalid network configuration", details)
    }

    pub fn environment(details: impl Into<String>) -> Self {
        CniError::new(ErrorCode::InvalidEnvironment, "invalid CNI environment", details)
    }

    /// Returns the error object the runtime reads from stdout.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            details: &'a str,
        }
        serde_json::json!(Body {
            cni_version,
            code: self.code.number(),
            msg: &self.msg,
            details: &self.details,
        })
    }
}
