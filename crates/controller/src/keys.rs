//! The controller's key layout in the store. Every key starts with `/`, so a watch
//! on `/` receives every change.
//!
//! | Key | Value |
//! |---|---|
//! | `/tenants/<tenant>` | [`Tenant`](cloison_model::Tenant) |
//! | `/networks/<tenant>/<network>` | [`Network`](cloison_model::Network) |
//! | `/endpoints/<tenant>/<endpoint>` | [`Endpoint`](cloison_model::Endpoint) |
//! | `/groups/<tenant>/<group>` | [`SecurityGroup`](cloison_model::SecurityGroup) |
//! | `/publications/<tenant>/<publication>` | [`Publication`](cloison_model::Publication) |
//! | `/hosts/<host>` | [`Host`](cloison_model::Host) |
//! | `/alloc/vni/<vni>` | [`Owner`](crate::records::Owner) of the VNI (a network) |
//! | `/alloc/ip4/<network-id>/<ipv4>` | owner of the IPv4 address (an endpoint) |
//! | `/alloc/ip6/<network-id>/<ipv6>` | owner of the IPv6 address |
//! | `/alloc/mac/<network-id>/<mac>` | owner of the MAC address |
//! | `/alloc/port/<host>/<protocol>/<port>/<address or any>` | owner of the host port (a publication) |
//! | `/guards/tenant/<tenant>` | empty; rewritten by every network create and delete and every security group create |
//! | `/guards/network/<network-id>` | empty; rewritten by every endpoint create and delete |
//! | `/guards/port/<host>/<protocol>/<port>` | empty; rewritten by every publication of the host port |
//! | `/guards/endpoint/<endpoint-id>` | empty; rewritten by every publication of the endpoint, deleted with the endpoint |
//!
//! The store has no "this prefix is empty" comparison. A delete that must not race
//! with a create below it (a tenant with a new network, a network with a new endpoint,
//! an endpoint with a new publication) therefore compares the guard key's revision instead. The create rewrites the guard,
//! so the delete's transaction fails and re-reads.
//!
//! Names are path segments: [`cloison_model::validate_name`] allows only `[a-z0-9-]`,
//! so a name never contains `/`.

use std::net::{Ipv4Addr, Ipv6Addr};

use cloison_model::{MacAddr, Publication};

pub(crate) const TENANTS: &str = "/tenants/";
pub(crate) const NETWORKS: &str = "/networks/";
pub(crate) const ENDPOINTS: &str = "/endpoints/";
pub(crate) const HOSTS: &str = "/hosts/";
pub(crate) const GROUPS: &str = "/groups/";
pub(crate) const VNIS: &str = "/alloc/vni/";
pub(crate) const PUBLICATIONS: &str = "/publications/";
/// Last segment of the allocation key of a publication bound to no address.
pub(crate) const ANY_ADDRESS: &str = "any";

pub(crate) fn tenant(tenant: &str) -> String {
    format!("{TENANTS}{tenant}")
}

pub(crate) fn networks_of(tenant: &str) -> String {
    format!("{NETWORKS}{tenant}/")
}

pub(crate) fn network(tenant: &str, network: &str) -> String {
    format!("{NETWORKS}{tenant}/{network}")
}

pub(crate) fn endpoints_of(tenant: &str) -> String {
    format!("{ENDPOINTS}{tenant}/")
}

pub(crate) fn endpoint(tenant: &str, endpoint: &str) -> String {
    format!("{ENDPOINTS}{tenant}/{endpoint}")
}

pub(crate) fn groups_of(tenant: &str) -> String {
    format!("{GROUPS}{tenant}/")
}

pub(crate) fn group(tenant: &str, group: &str) -> String {
    format!("{GROUPS}{tenant}/{group}")
}

pub(crate) fn publications_of(tenant: &str) -> String {
    format!("{PUBLICATIONS}{tenant}/")
}

pub(crate) fn publication(tenant: &str, name: &str) -> String {
    format!("{PUBLICATIONS}{tenant}/{name}")
}

/// Prefix of the allocation keys of one port and protocol on one host.
pub(crate) fn host_ports_of(publication: &Publication) -> String {
    format!("/alloc/port/{}/{}/{}/", publication.host, publication.protocol, publication.host_port)
}

/// Allocation key of a publication's host port. An IPv6 address contains `:`, never `/`.
pub(crate) fn host_port(publication: &Publication) -> String {
    let address = publication.host_ip.map_or_else(|| ANY_ADDRESS.to_string(), |ip| ip.to_string());
    format!("{}{address}", host_ports_of(publication))
}

pub(crate) fn host(host: &str) -> String {
    format!("{HOSTS}{host}")
}

pub(crate) fn vni(vni: u32) -> String {
    format!("{VNIS}{vni}")
}

pub(crate) fn ipv4_of(network_id: &str) -> String {
    format!("/alloc/ip4/{network_id}/")
}

pub(crate) fn ipv4(network_id: &str, ip: Ipv4Addr) -> String {
    format!("/alloc/ip4/{network_id}/{ip}")
}

pub(crate) fn ipv6_of(network_id: &str) -> String {
    format!("/alloc/ip6/{network_id}/")
}

pub(crate) fn ipv6(network_id: &str, ip: Ipv6Addr) -> String {
    format!("/alloc/ip6/{network_id}/{ip}")
}

pub(crate) fn mac_of(network_id: &str) -> String {
    format!("/alloc/mac/{network_id}/")
}

pub(crate) fn mac(network_id: &str, mac: MacAddr) -> String {
    format!("/alloc/mac/{network_id}/{mac}")
}

pub(crate) fn tenant_guard(tenant: &str) -> String {
    format!("/guards/tenant/{tenant}")
}

/// Guard of one host port and protocol on one host. A publication's checks read
/// every publication of the port, so its transaction compares and rewrites this key.
pub(crate) fn host_port_guard(publication: &Publication) -> String {
    format!("/guards/port/{}/{}/{}", publication.host, publication.protocol, publication.host_port)
}

/// Guard of one endpoint's publications. An endpoint's delete lists them before its
/// transaction, so each publish rewrites this key and the delete compares it.
pub(crate) fn endpoint_guard(endpoint_id: &str) -> String {
    format!("/guards/endpoint/{endpoint_id}")
}

pub(crate) fn network_guard(network_id: &str) -> String {
    format!("/guards/network/{network_id}")
}

/// Returns the last path segment of a key, the allocated value in an `/alloc/` key.
pub(crate) fn last_segment(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}
