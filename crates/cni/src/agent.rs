//! Calls to the local agent's socket, with failures turned into CNI error codes.

use std::path::{Path, PathBuf};

use cloison_agent::{AgentStatus, AttachRequest, CheckRequest, DetachRequest, LocalAttachment};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::http::{self, HttpError};
use crate::{CniError, ErrorCode};

/// The local agent, reached over its Unix socket.
#[derive(Debug)]
pub struct Agent {
    socket: PathBuf,
}

impl Agent {
    pub fn new(socket: &Path) -> Self {
        Agent { socket: socket.to_path_buf() }
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, HttpError> {
        http::call(&self.socket, "GET", path, None)
    }

    fn post<T: DeserializeOwned, B: Serialize>(&self, path: &str, body: &B) -> Result<T, HttpError> {
        let body = serde_json::to_vec(body).map_err(|e| HttpError::Exchange {
            socket: self.socket.display().to_string(),
            reason: format!("cannot encode the request to POST {path}: {e}"),
        })?;
        http::call(&self.socket, "POST", path, Some(&body))
    }

    /// Creates and programs an endpoint. A name already taken means this container
    /// and interface are attached already, which ADD must report, not repeat.
    pub fn attach(&self, request: &AttachRequest) -> Result<LocalAttachment, CniError> {
        self.post("/v1/attach", request).map_err(|e| match e {
            HttpError::Api { status: 409, code, message } if code == "already_exists" => CniError::new(
                ErrorCode::AttachmentExists,
                "attachment exists",
                format!("container {} already has an attachment named {}: {message}", request.target, request.name.as_deref().unwrap_or("")),
            ),
            other => self.error(other),
        })
    }

    /// Deletes an endpoint; returns false when it did not exist.
    pub fn detach(&self, tenant: &str, endpoint: &str) -> Result<bool, CniError> {
        let request = DetachRequest { tenant: tenant.to_string(), endpoint: endpoint.to_string() };
        match self.post::<serde_json::Value, _>("/v1/detach", &request) {
            Ok(_) => Ok(true),
            Err(HttpError::Api { status: 404, .. }) => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Verifies an endpoint's record and kernel objects.
    pub fn check(&self, tenant: &str, endpoint: &str) -> Result<LocalAttachment, CniError> {
        let request = CheckRequest { tenant: tenant.to_string(), endpoint: endpoint.to_string() };
        self.post("/v1/check", &request).map_err(|e| match e {
            HttpError::Api { status: 404, message, .. } => {
                CniError::new(ErrorCode::CheckFailed, "attachment missing", format!("endpoint {endpoint}: {message}"))
            }
            HttpError::Api { status: 409, message, .. } => {
                CniError::new(ErrorCode::CheckFailed, "attachment drifted", message)
            }
            other => self.error(other),
        })
    }

    /// Lists this host's endpoints of one network that carry `label` (`KEY=VALUE`).
    pub fn list(&self, tenant: &str, network: &str, label: &str) -> Result<Vec<LocalAttachment>, CniError> {
        let path = format!(
            "/v1/endpoints?tenant={}&network={}&label={}",
            encode(tenant),
            encode(network),
            encode(label)
        );
        self.get(&path).map_err(|e| self.error(e))
    }

    pub fn status(&self) -> Result<AgentStatus, CniError> {
        self.get("/v1/status").map_err(|e| self.error(e))
    }

    /// Maps a failed call: an agent that cannot be reached, or a controller behind
    /// it that cannot, is transient (code 11), anything else a rejection (100).
    fn error(&self, error: HttpError) -> CniError {
        match error {
            HttpError::Connect { .. } | HttpError::Exchange { .. } => CniError::new(
                ErrorCode::TryAgainLater,
                "cloison agent unreachable",
                format!("{error}; start the agent or set agentSocket (now {})", self.socket.display()),
            ),
            HttpError::Api { status: 503, .. } => {
                CniError::new(ErrorCode::TryAgainLater, "cloison controller unavailable", error.to_string())
            }
            HttpError::Api { status: 400, ref code, .. } if code == "invalid_target" => {
                CniError::new(ErrorCode::UnknownContainer, "container namespace not found", error.to_string())
            }
            other => CniError::new(ErrorCode::Rejected, "cloison rejected the request", other.to_string()),
        }
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
