//! The `inet cloison` table of a tenant's router namespace.
//!
//! The router forwards between two networks of the tenant only when a rule of some
//! group allows a flow between them, in either direction, so replies routed by
//! another host's copy of the distributed gateway pass too. Which flows between the
//! two networks pass is decided statefully at the destination endpoint's host (see
//! the host table). A router serves one tenant, so it never routes between tenants.

use std::collections::BTreeMap;

use cloison_model::{Direction, Network, Peer};
use ipnet::IpNet;

use crate::nat;
use crate::nft::{chain, Chain, Set, Table};
use crate::resolve::{network_prefixes, overlaps, peer_prefixes};
use crate::{PolicyInput, RouterRuleset};

const FORWARD: &[&str] = &[
    "ip saddr . ip daddr @routed4 accept",
    "ip6 saddr . ip6 daddr @routed6 accept",
];

/// Builds the router table of `tenant`.
pub(crate) fn ruleset(input: &PolicyInput<'_>, tenant: &str) -> RouterRuleset {
    let mut table = Table {
        family: "inet",
        name: "cloison",
        sets: vec![
            Set::new("set", "routed4", "type ipv4_addr . ipv4_addr; flags interval;"),
            Set::new("set", "routed6", "type ipv6_addr . ipv6_addr; flags interval;"),
            Set::new("set", "external4", "type ipv4_addr; flags interval;"),
            Set::new("set", "host_published4", "type ipv4_addr . inet_proto . inet_service;"),
            Set::new("map", "publish4", "type inet_proto . inet_service : ipv4_addr . inet_service;"),
        ],
        counters: vec!["forward_dropped"],
        chains: vec![
            forward_chain(),
            chain("nat_prerouting", Some("type nat hook prerouting priority dstnat; policy accept;"), nat::ROUTER_PREROUTING),
            chain("nat_postrouting", Some("type nat hook postrouting priority srcnat; policy accept;"), nat::ROUTER_POSTROUTING),
        ],
    };
    for (a, b) in routed_pairs(input, tenant) {
        add_pair(&mut table, a, b);
        add_pair(&mut table, b, a);
    }
    nat::add_router(&mut table, input, tenant);
    // A router with a transit link forwards between it and the tenant's networks.
    let forwarding = input.transits.contains_key(tenant) || table.sets.iter().any(|s| !s.elements.is_empty());
    RouterRuleset { table, forwarding }
}

/// Builds the forward chain: replies and DNATed flows, routed network pairs, egress
/// and publications, then the drop.
fn forward_chain() -> Chain {
    let rules: Vec<&str> = nat::ROUTER_FORWARD_FIRST
        .iter()
        .chain(FORWARD)
        .chain(nat::ROUTER_FORWARD_LAST)
        .chain(&["counter name forward_dropped drop"])
        .copied()
        .collect();
    chain("forward", Some("type filter hook forward priority filter; policy drop;"), &rules)
}

/// Returns the pairs of the tenant's networks on this host between which some rule
/// allows a flow: a rule of a group with a member in one network whose peer covers
/// part of the other. A network without a local endpoint counts, because this host's
/// copy of the distributed gateway may route a reply into it. Each group's rules are
/// read once, whatever its number of members.
fn routed_pairs<'a>(input: &PolicyInput<'a>, tenant: &str) -> Vec<(&'a Network, &'a Network)> {
    let networks: Vec<&Network> = input.present_networks().into_values().filter(|n| n.tenant == tenant).collect();
    let mut pairs = Vec::new();
    for (group, owns) in member_networks(input, tenant, &networks) {
        let Some(group) = input.groups.get(&format!("{tenant}/{group}")) else { continue };
        for rule in &group.rules {
            let peers = match &rule.peer {
                Peer::Cidr(net) => vec![*net],
                peer => peer_prefixes(input, tenant, peer),
            };
            for own in &owns {
                for other in networks.iter().filter(|n| n.id != own.id) {
                    let covered = network_prefixes(other).iter().any(|p| peers.iter().any(|q| overlaps(p, q)));
                    let pair = match rule.direction {
                        Direction::Ingress => (*other, *own),
                        Direction::Egress => (*own, *other),
                    };
                    if covered && !pairs.contains(&pair) {
                        pairs.push(pair);
                    }
                }
            }
        }
    }
    pairs
}

/// Returns, for each group of the tenant's endpoints, the networks among `present`
/// where the group has members.
fn member_networks<'a>(input: &PolicyInput<'a>, tenant: &str, present: &[&'a Network]) -> BTreeMap<&'a str, Vec<&'a Network>> {
    let mut members: BTreeMap<&'a str, Vec<&'a Network>> = BTreeMap::new();
    for (endpoint, own) in input.all_endpoints().filter(|(e, _)| e.tenant == tenant) {
        if !present.iter().any(|n| n.id == own.id) {
            continue;
        }
        for group in &endpoint.groups {
            let owns = members.entry(group.as_str()).or_default();
            if !owns.iter().any(|n| n.id == own.id) {
                owns.push(own);
            }
        }
    }
    members
}

fn add_pair(table: &mut Table, from: &Network, to: &Network) {
    for source in network_prefixes(from) {
        for destination in network_prefixes(to) {
            match (source, destination) {
                (IpNet::V4(s), IpNet::V4(d)) => table.add("routed4", format!("{s} . {d}")),
                (IpNet::V6(s), IpNet::V6(d)) => table.add("routed6", format!("{s} . {d}")),
                _ => {}
            }
        }
    }
}
