//! Lookup of a Docker container's network namespace through the Docker Engine API.

use cloison_client::{Client, ClientError};
use serde::Deserialize;

use crate::AgentError;

/// Path of the Docker Engine API socket, overridable like Docker's own CLI.
fn docker_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .unwrap_or_else(|| "/var/run/docker.sock".to_string())
}

#[derive(Debug, Deserialize)]
struct Inspect {
    #[serde(rename = "State")]
    state: State,
}

#[derive(Debug, Deserialize)]
struct State {
    #[serde(rename = "Running")]
    running: bool,
    #[serde(rename = "Pid")]
    pid: u32,
}

/// Returns the process id of a running Docker container, by name or id, so its
/// network namespace can be opened as `/proc/PID/ns/net`.
pub(crate) async fn container_pid(container: &str) -> Result<u32, AgentError> {
    let target = format!("docker:{container}");
    let invalid = |reason: String| AgentError::Target {
        target: target.clone(),
        reason,
    };
    let valid_name = !container.is_empty()
        && container
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid_name {
        return Err(invalid("a container name or id uses only letters, digits, '_', '.' and '-'".into()));
    }
    let socket = docker_socket();
    let inspect: Inspect = Client::unix(&socket)
        .get(&format!("/containers/{container}/json"))
        .await
        .map_err(|e| match e {
            ClientError::Api { status: 404, .. } => invalid("no such container".into()),
            ClientError::Connect { .. } => invalid(format!("cannot reach Docker at {socket}: {e}")),
            other => invalid(format!("Docker lookup failed: {other}")),
        })?;
    if !inspect.state.running || inspect.state.pid == 0 {
        return Err(invalid("the container is not running".into()));
    }
    Ok(inspect.state.pid)
}
