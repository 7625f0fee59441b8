//! Docker's plugin protocol over HTTP: `POST /Subsystem.Method` with a JSON body
//! (Docker labels it `application/vnd.docker.plugins.v1.2+json`, so bodies are
//! parsed by hand). A failed call is HTTP 200 with `{"Err": …}` for the network
//! driver and `{"Error": …}` for IPAM; Docker shows that text to the user.

use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::network::ADDRESS_SPACE;
use crate::protocol::{
    Activation, AddressRequest, AddressSpaces, CreateEndpointRequest, CreateNetworkRequest,
    EndpointRequest, IpamCapabilities, JoinRequest, NetworkCapabilities, NetworkRequest,
    ReleasePoolRequest, RequestPoolRequest,
};
use crate::{Driver, DriverError};

type App = State<Arc<Driver>>;

/// Returns the routes of both drivers.
pub fn router(driver: Arc<Driver>) -> Router {
    Router::new()
        .route("/Plugin.Activate", post(activate))
        .route("/NetworkDriver.GetCapabilities", post(network_capabilities))
        .route("/NetworkDriver.CreateNetwork", post(create_network))
        .route("/NetworkDriver.DeleteNetwork", post(delete_network))
        .route("/NetworkDriver.CreateEndpoint", post(create_endpoint))
        .route("/NetworkDriver.DeleteEndpoint", post(delete_endpoint))
        .route("/NetworkDriver.EndpointOperInfo", post(endpoint_info))
        .route("/NetworkDriver.Join", post(join))
        .route("/NetworkDriver.Leave", post(empty_network_reply))
        .route("/NetworkDriver.DiscoverNew", post(empty_network_reply))
        .route("/NetworkDriver.DiscoverDelete", post(empty_network_reply))
        .route("/NetworkDriver.ProgramExternalConnectivity", post(program_external))
        .route("/NetworkDriver.RevokeExternalConnectivity", post(revoke_external))
        .route("/IpamDriver.GetCapabilities", post(ipam_capabilities))
        .route("/IpamDriver.GetDefaultAddressSpaces", post(address_spaces))
        .route("/IpamDriver.RequestPool", post(request_pool))
        .route("/IpamDriver.ReleasePool", post(release_pool))
        .route("/IpamDriver.RequestAddress", post(request_address))
        .route("/IpamDriver.ReleaseAddress", post(release_address))
        .with_state(driver)
}

/// Serves both drivers on the Unix socket `path` until `cancel` fires, replacing
/// a stale socket file but never one another process still serves.
pub async fn serve(path: &Path, driver: Arc<Driver>, cancel: CancellationToken) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!(
                "another process serves the Docker plugin socket {}; stop it or pass another --docker-socket (empty to disable)",
                path.display()
            ),
        ));
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    info!(socket = %path.display(), "Docker driver listening");
    axum::serve(listener, router(driver))
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
}

/// Subsystem of a call, which selects the error field of its reply.
#[derive(Clone, Copy)]
enum Subsystem {
    Network,
    Ipam,
}

fn parse<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, DriverError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| DriverError::Invalid(format!("invalid request body: {e}")))
}

fn reply<T: Serialize>(subsystem: Subsystem, result: Result<T, DriverError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(error) => {
            warn!(%error, "Docker driver call failed");
            let field = match subsystem {
                Subsystem::Network => "Err",
                Subsystem::Ipam => "Error",
            };
            Json(json!({ field: error.to_string() })).into_response()
        }
    }
}

fn empty() -> serde_json::Value {
    json!({})
}

async fn activate() -> Json<Activation> {
    Json(Activation {
        implements: vec!["NetworkDriver", "IpamDriver"],
    })
}

async fn network_capabilities() -> Json<NetworkCapabilities> {
    // `local`: Docker keeps the network in this daemon's store. Hosts share it
    // through cloison's controller, not through Docker's swarm store.
    Json(NetworkCapabilities {
        scope: "local",
        connectivity_scope: "global",
    })
}

async fn create_network(State(driver): App, body: Bytes) -> Response {
    let result = async {
        let request: CreateNetworkRequest = parse(&body)?;
        driver.create_network(request).await.map(|()| empty())
    };
    reply(Subsystem::Network, result.await)
}

async fn delete_network(State(driver): App, body: Bytes) -> Response {
    let result = async {
        let request: NetworkRequest = parse(&body)?;
        driver.delete_network(&request.network_id).await.map(|()| empty())
    };
    reply(Subsystem::Network, result.await)
}

async fn create_endpoint(State(driver): App, body: Bytes) -> Response {
    let result = async {
        let request: CreateEndpointRequest = parse(&body)?;
        driver.create_endpoint(request).await
    };
    reply(Subsystem::Network, result.await)
}

async fn delete_endpoint(State(driver): App, body: Bytes) -> Response {
    let result = async {
        let request: EndpointRequest = parse(&body)?;
        driver.delete_endpoint(&request.network_id, &request.endpoint_id).await.map(|()| empty())
    };
    reply(Subsystem::Network, result.await)
}

async fn endpoint_info(body: Bytes) -> Response {
    let result = parse::<EndpointRequest>(&body).map(|_| json!({ "Value": {} }));
    reply(Subsystem::Network, result)
}

async fn join(State(driver): App, body: Bytes) -> Response {
    let result = async {
        let request: JoinRequest = parse(&body)?;
        driver.join(&request.network_id, &request.endpoint_id).await
    };
    reply(Subsystem::Network, result.await)
}

/// Published ports (`docker run -p`) arrive here as `com.docker.network.portmap`.
async fn program_external(State(driver): App, body: Bytes) -> Response {
    let result = async {
        let request: JoinRequest = parse(&body)?;
        driver.program_external(request).await.map(|()| empty())
    };
    reply(Subsystem::Network, result.await)
}

async fn revoke_external(State(driver): App, body: Bytes) -> Response {
    let result = async {
        let request: EndpointRequest = parse(&body)?;
        driver.revoke_external(&request.network_id, &request.endpoint_id).await.map(|()| empty())
    };
    reply(Subsystem::Network, result.await)
}

async fn empty_network_reply() -> Json<serde_json::Value> {
    Json(empty())
}

async fn ipam_capabilities() -> Json<IpamCapabilities> {
    // No replay: Docker keeps its pool ids across restarts, and they are the subnets.
    Json(IpamCapabilities {
        requires_mac_address: false,
        requires_request_replay: false,
    })
}

async fn address_spaces() -> Json<AddressSpaces> {
    Json(AddressSpaces {
        local_default_address_space: ADDRESS_SPACE,
        global_default_address_space: ADDRESS_SPACE,
    })
}

async fn request_pool(State(driver): App, body: Bytes) -> Response {
    let result = async {
        let request: RequestPoolRequest = parse(&body)?;
        driver.request_pool(request).await
    };
    reply(Subsystem::Ipam, result.await)
}

async fn release_pool(State(driver): App, body: Bytes) -> Response {
    let result = async {
        let request: ReleasePoolRequest = parse(&body)?;
        driver.release_pool(&request.pool_id).await.map(|()| empty())
    };
    reply(Subsystem::Ipam, result.await)
}

async fn request_address(State(driver): App, body: Bytes) -> Response {
    let result = async {
        let request: AddressRequest = parse(&body)?;
        driver.request_address(request).await
    };
    reply(Subsystem::Ipam, result.await)
}

async fn release_address(State(driver): App, body: Bytes) -> Response {
    let result = async {
        let request: AddressRequest = parse(&body)?;
        driver.release_address(request).await.map(|()| empty())
    };
    reply(Subsystem::Ipam, result.await)
}
