//! The REST API under `/v1`: routes, request logging, the OpenAPI document and the
//! server loop.

mod error;
mod groups;
mod publications;
mod handlers;
mod openapi;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

use crate::Controller;
pub use error::{ErrorBody, ErrorDetail};
pub use openapi::ApiDoc;

/// Builds the `/v1` router around a controller.
pub fn router(controller: Arc<Controller>) -> Router {
    use handlers::*;
    Router::new()
        .route("/v1/tenants", get(list_tenants).post(create_tenant))
        .route("/v1/tenants/{tenant}", get(get_tenant).delete(delete_tenant))
        .route("/v1/tenants/{tenant}/networks", get(list_tenant_networks).post(create_network))
        .route("/v1/tenants/{tenant}/networks/{network}", get(get_network).delete(delete_network))
        .route("/v1/tenants/{tenant}/endpoints", get(list_tenant_endpoints).post(create_endpoint))
        .route(
            "/v1/tenants/{tenant}/endpoints/{endpoint}",
            get(get_endpoint).patch(update_endpoint).delete(delete_endpoint),
        )
        .route("/v1/tenants/{tenant}/groups", get(groups::list_groups).post(groups::create_group))
        .route("/v1/tenants/{tenant}/groups/{group}", get(groups::get_group).delete(groups::delete_group))
        .route("/v1/tenants/{tenant}/groups/{group}/rules", post(groups::add_rule).delete(groups::remove_rule))
        .route("/v1/tenants/{tenant}/publications", get(publications::list_publications).post(publications::publish))
        .route("/v1/tenants/{tenant}/publications/{publication}", delete(publications::unpublish))
        .route("/v1/publications", get(publications::list_all_publications))
        .route("/v1/networks", get(list_networks))
        .route("/v1/endpoints", get(list_endpoints))
        .route("/v1/hosts", get(list_hosts))
        .route("/v1/hosts/{host}", put(register_host).get(get_host))
        .route("/v1/hosts/{host}/watch", get(watch_host))
        .route("/v1/status", get(status))
        .route("/v1/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .layer(middleware::from_fn(log_request))
        .with_state(controller)
}

/// Logs each request once its response is ready, with its status and latency. A watch is
/// logged when its response starts, not when the stream ends.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = response.status().as_u16();
    if response.status().is_server_error() {
        tracing::warn!(%method, %path, status, latency_ms, "request failed");
    } else {
        tracing::info!(%method, %path, status, latency_ms, "request");
    }
    response
}

/// Serves the API on `listener` until `shutdown` is cancelled, then lets requests in
/// flight finish. Open watch streams end when the process drops their tasks.
pub async fn serve(
    listener: TcpListener,
    controller: Arc<Controller>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, "controller API listening");
    axum::serve(listener, router(controller))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    tracing::info!(%address, "controller API stopped");
    Ok(())
}
