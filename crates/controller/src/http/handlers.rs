//! One handler per route; each turns the request into a [`Controller`] call.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cloison_model::{
    Endpoint, EndpointSpec, EndpointUpdate, Host, HostSpec, Network, NetworkSpec, Status, Tenant,
    TenantSpec, WatchEvent,
};
use futures::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{query_rejection, ApiJson, ErrorBody};
use crate::{Controller, ControllerError, EndpointFilter};

type Ctl = State<Arc<Controller>>;
type ApiResult<T> = Result<T, ControllerError>;

/// Filters of an endpoint listing.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub(crate) struct EndpointQuery {
    /// Only endpoints of this tenant (ignored under `/v1/tenants/{tenant}`).
    tenant: Option<String>,
    /// Only endpoints of the network with this name.
    network: Option<String>,
    /// Only endpoints on this host.
    host: Option<String>,
}

/// Condition of an endpoint deletion.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub(crate) struct DeleteEndpointQuery {
    /// Delete only the endpoint of this id; 404 when the name refers to another one.
    id: Option<String>,
}

/// Position to resume a host watch from.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub(crate) struct WatchQuery {
    /// Last revision the agent applied; absent or outdated means start with a snapshot.
    after: Option<u64>,
}

#[utoipa::path(post, path = "/v1/tenants", request_body = TenantSpec, tag = "tenants",
    responses((status = 201, body = Tenant), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn create_tenant(State(c): Ctl, ApiJson(spec): ApiJson<TenantSpec>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(c.create_tenant(spec).await?)))
}

#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", responses((status = 200, body = [Tenant])))]
pub(crate) async fn list_tenants(State(c): Ctl) -> ApiResult<Json<Vec<Tenant>>> {
    Ok(Json(c.list_tenants().await?))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants",
    responses((status = 200, body = Tenant), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_tenant(State(c): Ctl, Path(tenant): Path<String>) -> ApiResult<Json<Tenant>> {
    Ok(Json(c.get_tenant(&tenant).await?))
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}", tag = "tenants",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, description = "the tenant still has networks", body = ErrorBody)))]
pub(crate) async fn delete_tenant(State(c): Ctl, Path(tenant): Path<String>) -> ApiResult<StatusCode> {
    c.delete_tenant(&tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates a network; a tenant that does not exist yet is created with it.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/networks", request_body = NetworkSpec, tag = "networks",
    responses((status = 201, body = Network), (status = 400, body = ErrorBody),
        (status = 409, description = "name taken, subnet overlaps a network of the tenant, or VNI taken", body = ErrorBody)))]
pub(crate) async fn create_network(
    State(c): Ctl,
    Path(tenant): Path<String>,
    ApiJson(spec): ApiJson<NetworkSpec>,
) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(c.create_network(&tenant, spec).await?)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/networks", tag = "networks", responses((status = 200, body = [Network])))]
pub(crate) async fn list_tenant_networks(State(c): Ctl, Path(tenant): Path<String>) -> ApiResult<Json<Vec<Network>>> {
    Ok(Json(c.list_networks(Some(&tenant)).await?))
}

#[utoipa::path(get, path = "/v1/networks", tag = "networks", responses((status = 200, body = [Network])))]
pub(crate) async fn list_networks(State(c): Ctl) -> ApiResult<Json<Vec<Network>>> {
    Ok(Json(c.list_networks(None).await?))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/networks/{network}", tag = "networks",
    responses((status = 200, body = Network), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_network(State(c): Ctl, Path((tenant, network)): Path<(String, String)>) -> ApiResult<Json<Network>> {
    Ok(Json(c.get_network(&tenant, &network).await?))
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/networks/{network}", tag = "networks",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, description = "the network still has endpoints", body = ErrorBody)))]
pub(crate) async fn delete_network(State(c): Ctl, Path((tenant, network)): Path<(String, String)>) -> ApiResult<StatusCode> {
    c.delete_network(&tenant, &network).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/endpoints", request_body = EndpointSpec, tag = "endpoints",
    responses((status = 201, body = Endpoint), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "name, address or MAC taken, or subnet exhausted", body = ErrorBody)))]
pub(crate) async fn create_endpoint(
    State(c): Ctl,
    Path(tenant): Path<String>,
    ApiJson(spec): ApiJson<EndpointSpec>,
) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(c.create_endpoint(&tenant, spec).await?)))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/endpoints", params(EndpointQuery), tag = "endpoints",
    responses((status = 200, body = [Endpoint])))]
pub(crate) async fn list_tenant_endpoints(
    State(c): Ctl,
    Path(tenant): Path<String>,
    query: Result<Query<EndpointQuery>, QueryRejection>,
) -> Result<Json<Vec<Endpoint>>, Response> {
    let Query(query) = query.map_err(query_rejection)?;
    let filter = EndpointFilter { tenant: Some(tenant), network: query.network, host: query.host };
    Ok(Json(c.list_endpoints(&filter).await.map_err(IntoResponse::into_response)?))
}

#[utoipa::path(get, path = "/v1/endpoints", params(EndpointQuery), tag = "endpoints",
    responses((status = 200, body = [Endpoint])))]
pub(crate) async fn list_endpoints(
    State(c): Ctl,
    query: Result<Query<EndpointQuery>, QueryRejection>,
) -> Result<Json<Vec<Endpoint>>, Response> {
    let Query(query) = query.map_err(query_rejection)?;
    let filter = EndpointFilter { tenant: query.tenant, network: query.network, host: query.host };
    Ok(Json(c.list_endpoints(&filter).await.map_err(IntoResponse::into_response)?))
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/endpoints/{endpoint}", tag = "endpoints",
    responses((status = 200, body = Endpoint), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_endpoint(State(c): Ctl, Path((tenant, name)): Path<(String, String)>) -> ApiResult<Json<Endpoint>> {
    Ok(Json(c.get_endpoint(&tenant, &name).await?))
}

/// Changes an endpoint's groups or labels; a stale resource_version gets 409.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/endpoints/{endpoint}", request_body = EndpointUpdate, tag = "endpoints",
    responses((status = 200, body = Endpoint), (status = 404, body = ErrorBody),
        (status = 409, description = "resource_version is stale", body = ErrorBody)))]
pub(crate) async fn update_endpoint(
    State(c): Ctl,
    Path((tenant, name)): Path<(String, String)>,
    ApiJson(update): ApiJson<EndpointUpdate>,
) -> ApiResult<Json<Endpoint>> {
    Ok(Json(c.update_endpoint(&tenant, &name, update).await?))
}

#[utoipa::path(delete, path = "/v1/tenants/{tenant}/endpoints/{endpoint}", params(DeleteEndpointQuery), tag = "endpoints",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete_endpoint(
    State(c): Ctl,
    Path((tenant, name)): Path<(String, String)>,
    query: Result<Query<DeleteEndpointQuery>, QueryRejection>,
) -> Result<StatusCode, Response> {
    let Query(query) = query.map_err(query_rejection)?;
    c.delete_endpoint(&tenant, &name, query.id.as_deref()).await.map_err(IntoResponse::into_response)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Registers a host or refreshes its heartbeat; the body's name must match the path.
#[utoipa::path(put, path = "/v1/hosts/{host}", request_body = HostSpec, tag = "hosts",
    responses((status = 200, body = Host), (status = 400, body = ErrorBody)))]
pub(crate) async fn register_host(
    State(c): Ctl,
    Path(host): Path<String>,
    ApiJson(spec): ApiJson<HostSpec>,
) -> ApiResult<Json<Host>> {
    if spec.name != host {
        return Err(ControllerError::BadRequest(format!(
            "the body names host {:?} but the path names {host:?}: they must match",
            spec.name
        )));
    }
    Ok(Json(c.register_host(spec).await?))
}

#[utoipa::path(get, path = "/v1/hosts", tag = "hosts", responses((status = 200, body = [Host])))]
pub(crate) async fn list_hosts(State(c): Ctl) -> ApiResult<Json<Vec<Host>>> {
    Ok(Json(c.list_hosts().await?))
}

#[utoipa::path(get, path = "/v1/hosts/{host}", tag = "hosts",
    responses((status = 200, body = Host), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_host(State(c): Ctl, Path(host): Path<String>) -> ApiResult<Json<Host>> {
    Ok(Json(c.get_host(&host).await?))
}

/// Streams the host's watch as newline-delimited JSON, one `WatchEvent` per line.
#[utoipa::path(get, path = "/v1/hosts/{host}/watch", params(WatchQuery), tag = "hosts",
    responses((status = 200, description = "newline-delimited JSON WatchEvent objects", body = WatchEvent, content_type = "application/x-ndjson"),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn watch_host(
    State(c): Ctl,
    Path(host): Path<String>,
    query: Result<Query<WatchQuery>, QueryRejection>,
) -> Result<Response, Response> {
    let Query(query) = query.map_err(query_rejection)?;
    let events = c.watch_host(&host, query.after).await.map_err(IntoResponse::into_response)?;
    let lines = events.map(|event| Ok::<Bytes, Infallible>(Bytes::from(ndjson_line(&event))));
    let headers = [(header::CONTENT_TYPE, "application/x-ndjson")];
    Ok((headers, Body::from_stream(lines)).into_response())
}

fn ndjson_line(event: &WatchEvent) -> Vec<u8> {
    let mut line = serde_json::to_vec(event).unwrap_or_default();
    line.push(b'\n');
    line
}

#[utoipa::path(get, path = "/v1/status", tag = "status", responses((status = 200, body = Status)))]
pub(crate) async fn status(State(c): Ctl) -> ApiResult<Json<Status>> {
    Ok(Json(c.status().await?))
}
