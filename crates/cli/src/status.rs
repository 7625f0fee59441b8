//! `cloison status`, which prints the controller's and the local agent's state and exits
//! with 1 when either is unreachable.

use cloison_agent::AgentStatus;
use cloison_client::Client;
use cloison_model::Status;

use crate::args::GlobalArgs;
use crate::output;

/// Meaning of the exit status, printed at the end of `cloison status --help`.
pub(crate) const EXIT_STATUS_HELP: &str = "Exit status: 0 when the controller and the local agent both respond, \
1 when either is unreachable. The state of the one that responds is still printed.";

/// Runs `cloison status`. Queries both components, prints what they return, and fails
/// when either is unreachable, naming each one that is.
pub(crate) async fn status(global: &GlobalArgs) -> anyhow::Result<()> {
    let controller = controller_status(global).await;
    let agent: Result<AgentStatus, _> = Client::unix(&global.agent_socket).get("/v1/status").await;
    let both = serde_json::json!({ "controller": controller.as_ref().ok(), "agent": agent.as_ref().ok() });
    output::one(global.output, &both, |_| {
        let controller_line = match &controller {
            Ok(status) => format!(
                "controller {}: revision {}, {} tenants, {} networks, {} endpoints, {} hosts",
                global.controller, status.revision, status.tenants, status.networks, status.endpoints, status.hosts
            ),
            Err(_) => format!("controller {}: unreachable", global.controller),
        };
        let agent_line = match &agent {
            Ok(a) => format!(
                "agent on {}: revision {}, {} networks, {} local and {} remote endpoints",
                a.host, a.revision, a.networks, a.local_endpoints, a.remote_endpoints
            ),
            Err(_) => format!("agent: no agent at {}", global.agent_socket.display()),
        };
        format!("{controller_line}\n{agent_line}")
    })?;

    let mut failures = Vec::new();
    if let Err(e) = &controller {
        failures.push(format!("controller unreachable at {}: {e}", global.controller));
    }
    if let Err(e) = &agent {
        failures.push(format!("no agent at {}: {e}", global.agent_socket.display()));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", failures.join("; "))
    }
}

/// Returns the controller's status, or why it could not be read.
async fn controller_status(global: &GlobalArgs) -> Result<Status, String> {
    let client = Client::tcp(&global.controller).map_err(|e| e.to_string())?;
    client.get("/v1/status").await.map_err(|e| e.to_string())
}
