//! Turns a rule's peer into address prefixes, within the rule's tenant.

use std::net::IpAddr;

use cloison_model::Peer;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::PolicyInput;

/// Returns the prefixes a peer stands for in `tenant`. A group stands for the
/// addresses of its members in the input, a network for its subnets. The input of a
/// host contains every network of each tenant with an endpoint there and every endpoint
/// of those networks, so both resolve in full for the tenants this host serves.
pub(crate) fn peer_prefixes(input: &PolicyInput<'_>, tenant: &str, peer: &Peer) -> Vec<IpNet> {
    match peer {
        Peer::Cidr(net) => vec![*net],
        Peer::Any => vec![IpNet::V4(Ipv4Net::default()), IpNet::V6(Ipv6Net::default())],
        Peer::Network(name) => input.network_named(tenant, name).map(network_prefixes).unwrap_or_default(),
        Peer::Group(name) => input
            .all_endpoints()
            .filter(|(e, _)| e.tenant == tenant && e.groups.iter().any(|g| g == name))
            .flat_map(|(e, _)| endpoint_addresses(e))
            .map(IpNet::from)
            .collect(),
    }
}

/// Returns a network's IPv4 subnet and, when dual-stack, its IPv6 subnet.
pub(crate) fn network_prefixes(network: &cloison_model::Network) -> Vec<IpNet> {
    let mut prefixes = vec![IpNet::V4(network.subnet)];
    prefixes.extend(network.subnet6.map(IpNet::V6));
    prefixes
}

/// Returns an endpoint's IPv4 address and, when it has one, its IPv6 address.
pub(crate) fn endpoint_addresses(endpoint: &cloison_model::Endpoint) -> Vec<IpAddr> {
    let mut addresses = vec![IpAddr::V4(endpoint.ipv4)];
    addresses.extend(endpoint.ipv6.map(IpAddr::V6));
    addresses
}

/// Returns true when two prefixes share an address.
pub(crate) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}
