//! Egress NAT and publications, in the host's and each router's `inet cloison` table.
//!
//! Tenants' subnets overlap, so the host never routes to them. Each tenant router
//! has a transit link to the host with a link-local /31 that is unique on the host:
//!
//! - Egress: the router forwards only sources of `external` networks to the transit
//!   link and masquerades them to its transit address; the host masquerades every
//!   router address again to its uplink. Replies return through both conntrack
//!   entries.
//! - Publications: the host DNATs (protocol, host port) to the router's transit
//!   address, keeping the port, and the router DNATs (protocol, host port) arriving
//!   on the transit link to the endpoint's address and port. Each step is one map
//!   lookup.
//! - Endpoints reach a publication through the host address: their router sends
//!   the flow to the host, which DNATs it like any other and masquerades it to the
//!   host end of the serving router's transit link. The service therefore sees one
//!   consistent source for every endpoint client, and the client's real address for
//!   clients outside the host.
//!
//! Limitation: egress NAT and publications are IPv4 only; IPv6 egress from endpoints
//! is dropped by the router.

use std::net::IpAddr;

use cloison_dataplane::names;
use cloison_model::{Endpoint, Network, Publication};

use crate::nft::{ifname, Table};
use crate::resolve::network_prefixes;
use crate::PolicyInput;

/// Rules of the host's NAT prerouting chain. Bridged packets reach this hook through
/// `br_netfilter` with the bridge as input interface and must stay bridged, so they
/// leave the chain first.
pub(crate) const HOST_PREROUTING: &[&str] = &[
    "iifname \"clb*\" accept",
    "meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @publish4_bound",
    "meta nfproto ipv4 fib daddr type local dnat ip to meta l4proto . th dport map @publish4",
];

/// Rules of the host's NAT output chain: the same lookups for locally generated flows.
pub(crate) const HOST_OUTPUT: &[&str] = &[
    "meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @publish4_bound",
    "meta nfproto ipv4 fib daddr type local dnat ip to meta l4proto . th dport map @publish4",
];

/// Rules of the host's NAT postrouting chain: flows from a router (egress, or an
/// endpoint reaching a publication) and host flows from a loopback address leave
/// with the address of their output interface. A loopback source towards a router
/// needs `route_localnet` on the transit link, which the dataplane sets there only.
pub(crate) const HOST_POSTROUTING: &[&str] = &[
    "meta nfproto ipv4 ip saddr @routers4 masquerade",
    "oifname \"clh*\" ip saddr 127.0.0.0/8 masquerade",
];

/// The rule of the host's forward chain that lets published flows reach their
/// endpoint. A flow from the endpoint's own tenant reaches the port directly only
/// when a group rule allows it: publishing a port opens it to the outside and to
/// flows through the host address, not to the tenant's other networks.
pub(crate) const HOST_FORWARD_PUBLISHED: &str =
    "oifname . ip saddr != @tenant4 oifname . ip daddr . meta l4proto . th dport @published4 accept";

/// The rule of the host's forward chain that keeps new flows from reaching a router's
/// transit address unless the host DNATed them to it. The router DNATs by protocol
/// and port alone, so a flow sent there directly would bypass a publication's host
/// address and the host's own checks. Replies of egress flows are not new.
pub(crate) const HOST_FORWARD_ROUTERS: &str = "ct state new ip daddr @routers4 ct status ! dnat counter name ingress_dropped drop";

/// Rules the router's forward chain starts with: replies of egress flows and flows
/// DNATed to a published endpoint pass.
pub(crate) const ROUTER_FORWARD_FIRST: &[&str] = &["ct state established,related accept", "ct status dnat accept"];

/// Rules the router's forward chain ends with, before its drop: egress of external
/// networks, and flows to a publication of this host from any network.
pub(crate) const ROUTER_FORWARD_LAST: &[&str] = &[
    "oifname \"cltransit\" ip saddr @external4 accept",
    "oifname \"cltransit\" ip daddr . meta l4proto . th dport @host_published4 accept",
];

pub(crate) const ROUTER_PREROUTING: &[&str] = &["iifname \"cltransit\" dnat ip to meta l4proto . th dport map @publish4"];

pub(crate) const ROUTER_POSTROUTING: &[&str] = &["oifname \"cltransit\" masquerade"];

/// Adds the router addresses and every publication of a local endpoint to the host table.
pub(crate) fn add_host(table: &mut Table, input: &PolicyInput<'_>) {
    for transit in input.transits.values() {
        table.add("routers4", transit.router_ipv4.to_string());
    }
    for (publication, endpoint, network) in local_publications(input) {
        let Some(transit) = input.transits.get(&endpoint.tenant) else { continue };
        let key = format!("{} . {}", publication.protocol, publication.host_port);
        match publication.host_ip {
            None => table.add("publish4", format!("{key} : {}", transit.router_ipv4)),
            Some(IpAddr::V4(ip)) => table.add("publish4_bound", format!("{ip} . {key} : {}", transit.router_ipv4)),
            Some(IpAddr::V6(_)) => continue,
        }
        let bridge = ifname(&names::bridge(network.vni));
        table.add("published4", format!("{bridge} . {} . {} . {}", endpoint.ipv4, publication.protocol, publication.port));
    }
}

/// Adds a tenant's external subnets, the host's publications and the tenant's own
/// publications to its router table.
pub(crate) fn add_router(table: &mut Table, input: &PolicyInput<'_>, tenant: &str) {
    for network in input.present_networks().values().filter(|n| n.tenant == tenant && n.external) {
        for prefix in network_prefixes(network).into_iter().filter(|p| p.addr().is_ipv4()) {
            table.add("external4", prefix.to_string());
        }
    }
    for (publication, endpoint, _) in local_publications(input) {
        let key = format!("{} . {}", publication.protocol, publication.host_port);
        for address in reachable_addresses(input, publication) {
            table.add("host_published4", format!("{address} . {key}"));
        }
        if endpoint.tenant == tenant {
            table.add("publish4", format!("{key} : {} . {}", endpoint.ipv4, publication.port));
        }
    }
}

/// Returns the host addresses through which endpoints reach a publication: its bound
/// address, or the host's addresses when unbound. A loopback address is reachable
/// from the host only.
fn reachable_addresses(input: &PolicyInput<'_>, publication: &Publication) -> Vec<IpAddr> {
    match publication.host_ip {
        Some(ip) if ip.is_loopback() => Vec::new(),
        Some(ip) => vec![ip],
        None => input.host_addresses.to_vec(),
    }
    .into_iter()
    .filter(IpAddr::is_ipv4)
    .collect()
}

/// Returns the publications of endpoints on this host whose endpoint and network are
/// in the desired state, skipping a publication that names a replaced endpoint.
fn local_publications<'a>(input: &PolicyInput<'a>) -> Vec<(&'a Publication, &'a Endpoint, &'a Network)> {
    input
        .publications
        .values()
        .filter(|p| p.host == input.host)
        .filter_map(|p| {
            let endpoint = input.endpoints.get(&p.endpoint_id)?;
            let network = input.networks.get(&endpoint.network_id)?;
            (endpoint.host == input.host).then_some((p, endpoint, network))
        })
        .collect()
}
