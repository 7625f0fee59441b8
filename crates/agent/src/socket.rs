//! The agent's local HTTP API on a Unix socket: attach, detach, check, list and
//! status, for the CLI, the CNI plugin and the Docker driver.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cloison_dataplane::DataplaneError;
use cloison_model::{Endpoint, EndpointSpec, ErrorBody, ErrorDetail, Network, DEFAULT_IFNAME};
use serde::{Deserialize, Serialize};
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

use crate::{
    resolve_target, AgentError, AttachRequest, CheckRequest, ControlPlane, DetachRequest, EndpointQuery,
    LocalAttachment, Reconciler,
};

#[derive(Debug, Clone)]
struct AppState {
    control: Arc<dyn ControlPlane>,
    reconciler: Arc<Reconciler>,
}

/// Body of `GET /v1/status` on the agent socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentStatus {
    pub host: String,
    pub revision: u64,
    pub networks: usize,
    pub local_endpoints: usize,
    pub remote_endpoints: usize,
}

/// Serves the agent API on `listener`, bound at `path` by [`bind_socket`], until
/// `cancel` fires.
pub async fn serve_socket(
    listener: UnixListener,
    path: &Path,
    control: Arc<dyn ControlPlane>,
    reconciler: Arc<Reconciler>,
    cancel: CancellationToken,
) -> Result<(), AgentError> {
    let app = Router::new()
        .route("/v1/attach", post(attach))
        .route("/v1/detach", post(detach))
        .route("/v1/check", post(check))
        .route("/v1/endpoints", get(list_endpoints))
        .route("/v1/status", get(status))
        .with_state(AppState { control, reconciler });
    info!(socket = %path.display(), "agent socket listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
        .map_err(|source| AgentError::Socket {
            path: path.display().to_string(),
            source,
        })
}

/// Binds the agent socket at `path`, replacing a stale socket file. Fails when
/// another process serves it.
pub fn bind_socket(path: &Path) -> Result<UnixListener, AgentError> {
    let socket_error = |source| AgentError::Socket {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(socket_error)?;
    }
    // Replace only a stale file: a live socket belongs to another agent, and taking
    // it over would send that agent's callers to this one.
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(socket_error(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "another process is serving it; stop that agent or pass another --socket",
        )));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(socket_error(e)),
    }
    UnixListener::bind(path).map_err(socket_error)
}

async fn attach(State(app): State<AppState>, Json(request): Json<AttachRequest>) -> Response {
    let span = info_span!("attach", tenant = %request.tenant, net.name = %request.network);
    // The attach runs as a task of its own, so a caller that hangs up cannot stop it
    // half-way. The result goes through `reply`. When the caller is gone by then,
    // the attach is undone, because no client knows the endpoint's name or address.
    // NOTE: a caller that hangs up after the reply was handed to the connection,
    // about 2 ms under load, keeps its endpoint, because HTTP acknowledges no reply.
    let (reply, answer) = oneshot::channel();
    tokio::spawn(
        async move {
            let result = do_attach(&app, request).await;
            if let Err(Ok(attached)) = reply.send(result) {
                undo_attach(&app, attached).await;
            }
            // Endpoints that convergence left to this attach and that it did not
            // create are created now.
            app.reconciler.converge_released().await;
        }
        .instrument(span),
    );
    match answer.await {
        Ok(Ok(endpoint)) => (StatusCode::CREATED, Json(endpoint)).into_response(),
        Ok(Err(e)) => error_response(e),
        Err(e) => error_response(AgentError::Aborted { what: "attach".into(), reason: e.to_string() }),
    }
}

/// Detaches an endpoint whose caller hung up before its attach returned.
async fn undo_attach(app: &AppState, attached: LocalAttachment) {
    let endpoint = attached.endpoint;
    info!(endpoint.id = %endpoint.id, "the caller hung up before the attach returned; detaching the endpoint");
    if let Err(e) = detach_record(app, endpoint.clone()).await {
        warn!(endpoint.id = %endpoint.id, error = %e, "undoing the attach failed");
    }
}

async fn do_attach(app: &AppState, request: AttachRequest) -> Result<LocalAttachment, AgentError> {
    let sandbox = resolve_sandbox(&request.target).await?;
    let host = app.reconciler.context().host.clone();
    let spec = EndpointSpec {
        name: request.name,
        network: request.network.clone(),
        host,
        mac: request.mac,
        ipv4: request.ipv4,
        ipv6: request.ipv6,
        ifname: request.ifname,
        sandbox: sandbox.display().to_string(),
        groups: request.groups,
        labels: request.labels,
    };
    let ifname = spec.ifname.as_deref().unwrap_or(DEFAULT_IFNAME);
    let _expected = app.reconciler.expect_attach(&sandbox, ifname);
    let endpoint = app.control.create_endpoint(&request.tenant, &spec).await?;
    let attached = async {
        let network = network_of(app, &endpoint).await?;
        app.reconciler.attach(network.clone(), endpoint.clone()).await?;
        Ok::<_, AgentError>(network)
    };
    let network = match attached.await {
        Ok(network) => network,
        Err(e) => {
            // Nothing half-made stays behind: the kernel side was rolled back by the
            // reconciler, the record and its addresses go too.
            if let Err(cleanup) = app.control.delete_endpoint(&endpoint.tenant, &endpoint.name, Some(&endpoint.id)).await {
                warn!(endpoint.id = %endpoint.id, error = %cleanup, "rollback of failed attach failed");
            }
            return Err(e);
        }
    };
    info!(endpoint.id = %endpoint.id, endpoint.name = %endpoint.name, ipv4 = %endpoint.ipv4, "attached");
    Ok(LocalAttachment::new(app.reconciler.context(), &network, endpoint))
}

/// Returns the network of a just-created endpoint from the desired state, which
/// saves a controller round trip per attach. Asks the controller when the watch
/// has not delivered the network yet.
async fn network_of(app: &AppState, endpoint: &Endpoint) -> Result<Network, AgentError> {
    if let Some(network) = app.reconciler.network(&endpoint.network_id).await {
        return Ok(network);
    }
    let network = app.control.get_network(&endpoint.tenant, &endpoint.network).await?;
    if network.id != endpoint.network_id {
        return Err(AgentError::NotFound {
            what: format!("network {} of endpoint {} (it was deleted and created again)", endpoint.network, endpoint.name),
        });
    }
    // First endpoint of this network here: learn its peers now, so they are
    // programmed before the new container sends ARP requests for their MACs.
    match app.control.list_network_endpoints(&endpoint.tenant, &endpoint.network).await {
        Ok(peers) => app.reconciler.preload_endpoints(&network.id, peers).await,
        Err(e) => warn!(net.vni = network.vni, error = %e, "cannot list the network's endpoints; peers arrive with the watch"),
    }
    Ok(network)
}

async fn resolve_sandbox(target: &str) -> Result<PathBuf, AgentError> {
    if let Some(container) = target.strip_prefix("docker:") {
        let pid = crate::docker::container_pid(container).await?;
        return resolve_target(&format!("pid:{pid}"));
    }
    resolve_target(target)
}

async fn detach(State(app): State<AppState>, Json(request): Json<DetachRequest>) -> Response {
    let span = info_span!("detach", tenant = %request.tenant, endpoint.name = %request.endpoint);
    // The detach runs as a task of its own, so a caller that hangs up cannot leave
    // the endpoint marked. A later attach under the same interface name in that
    // namespace would wait for the mark for ever.
    let task = tokio::spawn(do_detach(app, request).instrument(span));
    let result = task
        .await
        .unwrap_or_else(|e| Err(AgentError::Aborted { what: "detach".into(), reason: e.to_string() }));
    match result {
        Ok(endpoint) => Json(endpoint).into_response(),
        Err(e) => error_response(e),
    }
}

/// Deletes an endpoint's record, then its interface when it is on this host. The
/// endpoint is marked first, so the watch event of the deletion leaves the
/// interface to this call, which deletes it without the reconciler's lock.
async fn do_detach(app: AppState, request: DetachRequest) -> Result<Endpoint, AgentError> {
    let endpoint = app.control.get_endpoint(&request.tenant, &request.endpoint).await?;
    detach_record(&app, endpoint).await
}

/// Deletes the record of `endpoint`, only if its name still refers to this very
/// endpoint, and its interface when it is on this host.
async fn detach_record(app: &AppState, endpoint: Endpoint) -> Result<Endpoint, AgentError> {
    let delete = || app.control.delete_endpoint(&endpoint.tenant, &endpoint.name, Some(&endpoint.id));
    if endpoint.host != app.reconciler.context().host {
        delete().await?;
        info!(endpoint.id = %endpoint.id, "detached");
        return Ok(endpoint);
    }
    let pending = app.reconciler.begin_detach(&endpoint).await;
    if let Err(e) = delete().await {
        app.reconciler.cancel_detach(pending).await;
        return Err(e);
    }
    app.reconciler.finish_detach(pending).await?;
    info!(endpoint.id = %endpoint.id, "detached");
    Ok(endpoint)
}

/// Verifies one local endpoint against its record and the kernel, changing nothing:
/// 404 when the record is gone, 409 `drift` listing what differs.
async fn check(State(app): State<AppState>, Json(request): Json<CheckRequest>) -> Response {
    let span = info_span!("check", tenant = %request.tenant, endpoint.name = %request.endpoint);
    let result = async {
        let endpoint = app.control.get_endpoint(&request.tenant, &request.endpoint).await?;
        let network = app.control.get_network(&endpoint.tenant, &endpoint.network).await?;
        if endpoint.host != app.reconciler.context().host {
            return Err(AgentError::NotFound {
                what: format!("endpoint {} on this host (it is on {})", endpoint.name, endpoint.host),
            });
        }
        app.reconciler.verify(&network, &endpoint).await?;
        Ok(LocalAttachment::new(app.reconciler.context(), &network, endpoint))
    }
    .instrument(span)
    .await;
    match result {
        Ok(attachment) => Json(attachment).into_response(),
        Err(e) => error_response(e),
    }
}

/// Lists this host's endpoints from the desired state, without asking the controller.
async fn list_endpoints(State(app): State<AppState>, Query(query): Query<EndpointQuery>) -> Response {
    let ctx = app.reconciler.context();
    let attachments: Vec<LocalAttachment> = app
        .reconciler
        .read_desired(|desired| {
            desired
                .endpoints
                .values()
                .filter(|e| e.host == ctx.host && query.matches(e))
                .filter_map(|e| {
                    let network = desired.networks.get(&e.network_id)?;
                    Some(LocalAttachment::new(ctx, network, e.clone()))
                })
                .collect()
        })
        .await;
    Json(attachments).into_response()
}

async fn status(State(app): State<AppState>) -> Json<AgentStatus> {
    let host = app.reconciler.context().host.clone();
    let (revision, networks, local, total) = app
        .reconciler
        .read_desired(|desired| {
            let local = desired.endpoints.values().filter(|e| e.host == host).count();
            (desired.revision, desired.networks.len(), local, desired.endpoints.len())
        })
        .await;
    Json(AgentStatus {
        revision,
        networks,
        local_endpoints: local,
        remote_endpoints: total - local,
        host,
    })
}

fn error_response(error: AgentError) -> Response {
    let (status, code) = match &error {
        AgentError::Target { .. } => (StatusCode::BAD_REQUEST, "invalid_target".to_string()),
        AgentError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found".to_string()),
        AgentError::Controller { status, code, .. } => (
            status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            code.clone(),
        ),
        AgentError::Dataplane(DataplaneError::IfnameTaken { .. }) => (StatusCode::CONFLICT, "ifname_taken".to_string()),
        AgentError::Dataplane(_) => (StatusCode::INTERNAL_SERVER_ERROR, "kernel_error".to_string()),
        AgentError::Policy { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "policy_error".to_string()),
        AgentError::NotSynced { .. } => (StatusCode::SERVICE_UNAVAILABLE, "not_synced".to_string()),
        AgentError::Drift { .. } => (StatusCode::CONFLICT, "drift".to_string()),
        AgentError::Socket { .. } | AgentError::Aborted { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal".to_string()),
    };
    let message = match &error {
        AgentError::Controller { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let body = ErrorBody { error: ErrorDetail { code, message } };
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_ifname_is_conflict() {
        let error = AgentError::Dataplane(DataplaneError::IfnameTaken { ifname: "eth0".into(), sandbox: "/run/netns/c1".into() });
        let response = error_response(error);
        assert_eq!(response.status(), StatusCode::CONFLICT);
    }

    #[test]
    fn invalid_target_is_bad_request() {
        let error = AgentError::Target { target: "/tmp".into(), reason: "/tmp is not a network namespace".into() };
        let response = error_response(error);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}
