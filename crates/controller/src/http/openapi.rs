use cloison_model::{
    Endpoint, EndpointSpec, EndpointUpdate, Host, HostSpec, MacAddr, Network, NetworkSpec, Status,
    Tenant, TenantSpec, WatchEvent, WatchObject, SecurityGroup, SecurityGroupSpec, Rule, Direction, Publication,
    PublicationSpec, PublishProtocol,
    Protocol, Peer,
};
use utoipa::OpenApi;

use super::error::{ErrorBody, ErrorDetail};
use super::{groups, handlers, publications};

/// The OpenAPI document of the `/v1` API, served at `/v1/openapi.json`.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "cloison controller API", description = "Tenants, networks, endpoints, security groups and hosts of a cloison deployment."),
    paths(
        handlers::create_tenant, handlers::list_tenants, handlers::get_tenant, handlers::delete_tenant,
        handlers::create_network, handlers::list_tenant_networks, handlers::list_networks,
        handlers::get_network, handlers::delete_network,
        handlers::create_endpoint, handlers::list_tenant_endpoints, handlers::list_endpoints,
        handlers::get_endpoint, handlers::update_endpoint, handlers::delete_endpoint,
        handlers::register_host, handlers::list_hosts, handlers::get_host, handlers::watch_host,
        handlers::status,
        groups::create_group, groups::list_groups, groups::get_group, groups::delete_group,
        groups::add_rule, groups::remove_rule,
        publications::publish, publications::list_publications, publications::list_all_publications, publications::unpublish,
    ),
    components(schemas(
        Tenant, TenantSpec, Network, NetworkSpec, Endpoint, EndpointSpec, EndpointUpdate, Host,
        HostSpec, MacAddr, Status, WatchEvent, WatchObject, ErrorBody, ErrorDetail, SecurityGroup,
        SecurityGroupSpec, Rule, Direction, Protocol, Peer, Publication, PublicationSpec, PublishProtocol,
    ))
)]
pub struct ApiDoc;
