//! Calls to the local agent's socket, with failures turned into CNI error codes.

use std::path::Path;

use cloison_agent::{AgentStatus, AttachRequest, CheckRequest, DetachRequest, LocalAttachment};
use cloison_client::{Client, ClientError};

use crate::{CniError, ErrorCode};

/// The local agent, reached over its Unix socket.
#[derive(Debug)]
pub struct Agent {
    client: Client,
    socket: String,
}

impl Agent {
    pub fn new(socket: &Path) -> Self {
        Agent {
            client: Client::unix(socket),
            socket: socket.display().to_string(),
        }
    }

    /// Creates and programs an endpoint. A name already taken means this container
    /// and interface are attached already, which ADD must report, not repeat.
    pub async fn attach(&self, request: &AttachRequest) -> Result<LocalAttachment, CniError> {
        self.client.post("/v1/attach", request).await.map_err(|e| match e {
            ClientError::Api { status: 409, code, message } if code == "already_exists" => CniError::new(
                ErrorCode::AttachmentExists,
                "attachment exists",
                format!("container {} already has an attachment named {}: {message}", request.target, request.name.as_deref().unwrap_or("")),
            ),
            other => self.error(other),
        })
    }

    /// Deletes an endpoint; returns false when it did not exist.
    pub async fn detach(&self, tenant: &str, endpoint: &str) -> Result<bool, CniError> {
        let request = DetachRequest { tenant: tenant.to_string(), endpoint: endpoint.to_string() };
        match self.client.post::<serde_json::Value, _>("/v1/detach", &request).await {
            Ok(_) => Ok(true),
            Err(ClientError::Api { status: 404, .. }) => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Verifies an endpoint's record and kernel objects.
    pub async fn check(&self, tenant: &str, endpoint: &str) -> Result<LocalAttachment, CniError> {
        let request = CheckRequest { tenant: tenant.to_string(), endpoint: endpoint.to_string() };
        self.client.post("/v1/check", &request).await.map_err(|e| match e {
            ClientError::Api { status: 404, message, .. } => {
                CniError::new(ErrorCode::CheckFailed, "attachment missing", format!("endpoint {endpoint}: {message}"))
            }
            ClientError::Api { status: 409, message, .. } => {
                CniError::new(ErrorCode::CheckFailed, "attachment drifted", message)
            }
            other => self.error(other),
        })
    }

    /// Lists this host's endpoints of one network that carry `label` (`KEY=VALUE`).
    pub async fn list(&self, tenant: &str, network: &str, label: &str) -> Result<Vec<LocalAttachment>, CniError> {
        let path = format!(
            "/v1/endpoints?tenant={}&network={}&label={}",
            encode(tenant),
            encode(network),
            encode(label)
        );
        self.client.get(&path).await.map_err(|e| self.error(e))
    }

    pub async fn status(&self) -> Result<AgentStatus, CniError> {
        self.client.get("/v1/status").await.map_err(|e| self.error(e))
    }

    /// Maps a failed call: an agent that cannot be reached, or a controller behind
    /// it that cannot, is transient (code 11), anything else a rejection (100).
    fn error(&self, error: ClientError) -> CniError {
        match error {
            ClientError::Connect { .. } | ClientError::Http { .. } => CniError::new(
                ErrorCode::TryAgainLater,
                "cloison agent unreachable",
                format!("{error}; start the agent or set agentSocket (now {})", self.socket),
            ),
            ClientError::Api { status: 503, .. } => {
                CniError::new(ErrorCode::TryAgainLater, "cloison controller unavailable", error.to_string())
            }
            ClientError::Api { status: 400, ref code, .. } if code == "invalid_target" => {
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
