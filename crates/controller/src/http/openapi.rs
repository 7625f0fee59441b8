use cloison_model::{
    Endpoint, EndpointSpec, EndpointUpdate, Host, HostSpec, MacAddr, Network, NetworkSpec, Status,
    Tenant, TenantSpec, WatchEvent, WatchObject,
};
use utoipa::OpenApi;

use super::error::{ErrorBody, ErrorDetail};
use super::handlers;

/// The OpenAPI document of the `/v1` API, served at `/v1/openapi.json`.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "cloison controller API", description = "Tenants, networks, endpoints and hosts of a cloison deployment."),
    paths(
        handlers::create_tenant, handlers::list_tenants, handlers::get_tenant, handlers::delete_tenant,
        handlers::create_network, handlers::list_tenant_networks, handlers::list_networks,
        handlers::get_network, handlers::delete_network,
        handlers::create_endpoint, handlers::list_tenant_endpoints, handlers::list_endpoints,
        handlers::get_endpoint, handlers::update_endpoint, handlers::delete_endpoint,
        handlers::register_host, handlers::list_hosts, handlers::get_host, handlers::watch_host,
        handlers::status,
    ),
    components(schemas(
        Tenant, TenantSpec, Network, NetworkSpec, Endpoint, EndpointSpec, EndpointUpdate, Host,
        HostSpec, MacAddr, Status, WatchEvent, WatchObject, ErrorBody, ErrorDetail,
    ))
)]
pub struct ApiDoc;
