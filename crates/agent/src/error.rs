use thiserror::Error;

/// Failures of the agent.
#[derive(Debug, Error)]
pub enum AgentError {
    /// The kernel rejected a change.
    #[error(transparent)]
    Dataplane(#[from] cloison_dataplane::DataplaneError),
    /// The controller rejected a request or could not be reached.
    #[error("controller: {message}")]
    Controller {
        /// HTTP status when the controller answered, None when it was unreachable.
        status: Option<u16>,
        code: String,
        message: String,
    },
    /// An attach target could not be resolved to a network namespace.
    #[error("invalid attach target {target:?}: {reason}; accepted forms are netns:NAME, pid:PID, docker:CONTAINER or a path to a network namespace")]
    Target { target: String, reason: String },
    /// The host's nftables rules could not be applied, so a local endpoint is not
    /// set up: it would have had neither anti-spoofing nor its security groups.
    #[error("endpoint {endpoint} is not attached because this host's nftables rules could not be applied, so it would have had neither anti-spoofing nor its security groups: {source}; the agent's log has the details")]
    Policy {
        endpoint: String,
        source: cloison_dataplane::DataplaneError,
    },
    /// The agent has not applied the controller's first snapshot yet.
    #[error("the agent has not received this host's state from the controller yet (waited {}s); check `cloison status` and the agent's log, then retry", waited.as_secs())]
    NotSynced { waited: std::time::Duration },
    /// The desired state refers to something this agent has not received.
    #[error("{what} not found")]
    NotFound { what: String },
    /// A local endpoint's kernel objects differ from its records.
    #[error("endpoint {endpoint} drifted: {}", problems.join("; "))]
    Drift { endpoint: String, problems: Vec<String> },
    /// The task serving a request ended without a result, because it panicked.
    #[error("{what} ended without a result: {reason}")]
    Aborted { what: String, reason: String },
    /// The local socket could not be served.
    #[error("cannot serve socket {path}: {source}")]
    Socket {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
