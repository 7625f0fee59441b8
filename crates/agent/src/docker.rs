use crate::AgentError;

/// Returns the process id of a running Docker container.
pub(crate) async fn container_pid(container: &str) -> Result<u32, AgentError> {
    Err(AgentError::Target {
        target: format!("docker:{container}"),
        reason: "Docker lookup not built yet".to_string(),
    })
}
