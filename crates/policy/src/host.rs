//! The host's `inet cloison` table: security groups, the underlay guard, egress NAT
//! and publications (see the `nat` module).
//!
//! Bridged packets reach this table's hooks through `br_netfilter`, where the input
//! and output interface are the network's bridge, so every set is keyed by the
//! bridge name: overlapping subnets of two tenants never share an element. Each
//! bridge also gets its own conntrack zone, so equal address pairs of two tenants
//! never share a connection.

use std::collections::BTreeMap;
use std::net::IpAddr;

use cloison_dataplane::names;
use cloison_model::{Direction, Endpoint, Network, Rule};
use ipnet::IpNet;

use crate::{ingress, nat};
use crate::nft::{chain, ifname, Set, Table};
use crate::disjoint::{disjoint, protocol_span, protocol_text, span_text, Span};
use crate::resolve::{endpoint_addresses, network_prefixes, peer_prefixes};
use crate::PolicyInput;

/// Rules of the forward chain, in order. Traffic inside one network passes first,
/// with one lookup, because it is the bulk of the traffic and never filtered. The
/// raw chain exempted it from conntrack. New flows to a router's transit address
/// pass only when the host DNATed them there. Traffic to anything but a local
/// endpoint passes, because the destination endpoint's own host filters it. Replies pass.
/// Then the destination's ingress class decides (see the `ingress` module), then
/// the egress rules of the source, one lookup per address family and port kind.
const FORWARD: &[&str] = &[
    "oifname . ip saddr . ip daddr @same4 accept",
    "oifname . ip6 saddr . ip6 daddr @same6 accept",
    nat::HOST_FORWARD_ROUTERS,
    "meta nfproto ipv4 oifname . ip daddr != @local4 accept",
    "meta nfproto ipv6 oifname . ip6 daddr != @local6 accept",
    "ct state established,related accept",
    "ct state invalid counter name ingress_dropped drop",
    "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept",
    "oifname . ip daddr vmap @ingress4",
    "oifname . ip6 daddr vmap @ingress6",
    "oifname . ip daddr . ip saddr . meta l4proto . th dport @allow4_ports accept",
    "oifname . ip daddr . ip saddr . meta l4proto @allow4 accept",
    "oifname . ip6 daddr . ip6 saddr . meta l4proto . th dport @allow6_ports accept",
    "oifname . ip6 daddr . ip6 saddr . meta l4proto @allow6 accept",
    nat::HOST_FORWARD_PUBLISHED,
    "counter name ingress_dropped drop",
];

/// Rules of the raw prerouting chain. Conntrack skips the underlay's VXLAN datagrams,
/// which the input chain checks without state. It also skips flows between two
/// addresses of one network, because the forward chain passes them and no NAT rule
/// applies to them. Every other bridged flow gets its network's conntrack zone. The
/// zone rule comes last, because the kernel ignores `notrack` on a packet with a zone
/// template.
const RAW_PREROUTING: &[&str] = &[
    "iifname != \"clb*\" udp dport @vxlan_port notrack accept",
    "iifname . ip saddr . ip daddr @same4 notrack accept",
    "iifname . ip6 saddr . ip6 daddr @same6 notrack accept",
    "ct zone set iifname map @bridge_zone",
];

/// Rules of the raw output chain: conntrack skips the host's own VXLAN datagrams.
const RAW_OUTPUT: &[&str] = &["udp dport @vxlan_port notrack"];

/// Rules of the input chain: VXLAN only from known VTEPs.
const INPUT: &[&str] = &[
    "udp dport @vxlan_port ip saddr != @vteps4 counter name vxlan_dropped drop",
    "udp dport @vxlan_port ip6 saddr != @vteps6 counter name vxlan_dropped drop",
];

/// Builds the host table from the desired state.
pub(crate) fn table(input: &PolicyInput<'_>, ingress: &mut ingress::Cache) -> Table {
    let mut table = skeleton();
    table.add("vxlan_port", input.vxlan_port.to_string());
    for host in input.hosts.values() {
        match host.underlay_ip {
            IpAddr::V4(ip) => table.add("vteps4", ip.to_string()),
            IpAddr::V6(ip) => table.add("vteps6", ip.to_string()),
        }
    }
    let present = input.present_networks();
    let subnets = tenant_subnets(&present);
    for network in present.values() {
        add_network(&mut table, network);
        add_tenant_prefixes(&mut table, network, &subnets);
    }
    for (endpoint, network) in input.local_endpoints() {
        add_local_endpoint(&mut table, endpoint, network);
    }
    ingress::add(&mut table, input, ingress);
    add_egress_rules(&mut table, input);
    nat::add_host(&mut table, input);
    table
}

fn skeleton() -> Table {
    Table {
        family: "inet",
        name: "cloison",
        sets: vec![
            Set::new("set", "vxlan_port", "type inet_service;"),
            Set::new("set", "vteps4", "type ipv4_addr;"),
            Set::new("set", "vteps6", "type ipv6_addr;"),
            Set::new("map", "bridge_zone", "typeof iifname : ct zone;"),
            Set::new("set", "local4", "type ifname . ipv4_addr;"),
            Set::new("set", "local6", "type ifname . ipv6_addr;"),
            Set::new("set", "same4", "type ifname . ipv4_addr . ipv4_addr; flags interval;"),
            Set::new("set", "same6", "type ifname . ipv6_addr . ipv6_addr; flags interval;"),
            Set::new("map", ingress::MAPS[0].0, ingress::MAPS[0].1),
            Set::new("map", ingress::MAPS[1].0, ingress::MAPS[1].1),
            Set::new("set", "allow4_ports", "type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; flags interval;"),
            Set::new("set", "allow4", "type ifname . ipv4_addr . ipv4_addr . inet_proto; flags interval;"),
            Set::new("set", "allow6_ports", "type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; flags interval;"),
            Set::new("set", "allow6", "type ifname . ipv6_addr . ipv6_addr . inet_proto; flags interval;"),
            Set::new("set", "routers4", "type ipv4_addr;"),
            Set::new("map", "publish4", "type inet_proto . inet_service : ipv4_addr;"),
            Set::new("map", "publish4_bound", "type ipv4_addr . inet_proto . inet_service : ipv4_addr;"),
            Set::new("set", "published4", "type ifname . ipv4_addr . inet_proto . inet_service;"),
            Set::new("set", "tenant4", "type ifname . ipv4_addr; flags interval;"),
        ],
        counters: vec!["vxlan_dropped", "ingress_dropped"],
        chains: vec![
            chain("zone", Some("type filter hook prerouting priority raw; policy accept;"), RAW_PREROUTING),
            chain("raw_output", Some("type filter hook output priority raw; policy accept;"), RAW_OUTPUT),
            chain("input", Some("type filter hook input priority filter; policy accept;"), INPUT),
            chain("forward", Some("type filter hook forward priority filter; policy accept;"), FORWARD),
            chain("nat_prerouting", Some("type nat hook prerouting priority dstnat; policy accept;"), nat::HOST_PREROUTING),
            chain("nat_output", Some("type nat hook output priority -100; policy accept;"), nat::HOST_OUTPUT),
            chain("nat_postrouting", Some("type nat hook postrouting priority srcnat; policy accept;"), nat::HOST_POSTROUTING),
        ],
    }
}

/// Adds a network present on this host: its conntrack zone and the source and
/// destination prefix pairs of traffic inside it. Link-local IPv6 addresses count
/// as the network's own.
///
/// Limitation: the zone is the low 16 bits of the VNI, because conntrack zones have
/// 16 bits. Two networks on one host whose VNIs differ by a multiple of 65536 share a
/// zone, which matters only when their address pairs also coincide.
fn add_network(table: &mut Table, network: &Network) {
    let bridge = ifname(&names::bridge(network.vni));
    table.add("bridge_zone", format!("{bridge} : {}", network.vni & 0xffff));
    let mut prefixes = network_prefixes(network);
    prefixes.push(IpNet::V6(LINK_LOCAL));
    for source in &prefixes {
        for destination in prefixes.iter().filter(|d| d.addr().is_ipv4() == source.addr().is_ipv4()) {
            let set = if source.addr().is_ipv4() { "same4" } else { "same6" };
            table.add(set, format!("{bridge} . {source} . {destination}"));
        }
    }
}

/// fe80::/10, the IPv6 link-local prefix.
const LINK_LOCAL: ipnet::Ipv6Net = ipnet::Ipv6Net::new_assert(std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10);

/// Returns the IPv4 subnets of each tenant's present networks, none inside another.
fn tenant_subnets<'a>(present: &BTreeMap<&str, &'a Network>) -> BTreeMap<&'a str, Vec<IpNet>> {
    let mut by_tenant: BTreeMap<&str, Vec<(IpNet, Span)>> = BTreeMap::new();
    for network in present.values() {
        by_tenant.entry(network.tenant.as_str()).or_default().push((IpNet::V4(network.subnet), (0, 0)));
    }
    by_tenant.into_iter().map(|(tenant, subnets)| (tenant, disjoint(subnets).into_iter().map(|(net, _)| net).collect())).collect()
}

/// Adds the IPv4 subnets of `network`'s tenant, keyed by its bridge, so the
/// forward chain can match flows from the tenant.
fn add_tenant_prefixes(table: &mut Table, network: &Network, subnets: &BTreeMap<&str, Vec<IpNet>>) {
    let bridge = ifname(&names::bridge(network.vni));
    for subnet in subnets.get(network.tenant.as_str()).into_iter().flatten() {
        table.add("tenant4", format!("{bridge} . {subnet}"));
    }
}

fn add_local_endpoint(table: &mut Table, endpoint: &Endpoint, network: &Network) {
    let bridge = ifname(&names::bridge(network.vni));
    table.add("local4", format!("{bridge} . {}", endpoint.ipv4));
    if let Some(ipv6) = endpoint.ipv6 {
        table.add("local6", format!("{bridge} . {ipv6}"));
    }
}

/// Adds the flows that the egress rules of any known endpoint allow towards the
/// endpoints of this host in the same tenant. Its own network is allowed anyway.
fn add_egress_rules(table: &mut Table, input: &PolicyInput<'_>) {
    let egress = egress_rules_by_group(input);
    if egress.is_empty() {
        return;
    }
    let local: Vec<(&Endpoint, &Network)> = input.local_endpoints().collect();
    // Per (bridge, destination, source, protocol for port rules): the spans allowed.
    let mut allowed: BTreeMap<AllowKey, Vec<(IpNet, Span)>> = BTreeMap::new();
    for (source, _) in input.all_endpoints() {
        let mut rules: Vec<&Rule> = source.groups.iter().filter_map(|g| egress.get(format!("{}/{g}", source.tenant).as_str())).flatten().copied().collect();
        rules.sort_unstable();
        rules.dedup();
        for rule in rules {
            let targets = peer_prefixes(input, &source.tenant, &rule.peer);
            for (endpoint, network) in local.iter().filter(|(e, _)| e.tenant == source.tenant && e.network_id != source.network_id) {
                for destination in endpoint_addresses(endpoint) {
                    if !targets.iter().any(|t| t.contains(&destination)) {
                        continue;
                    }
                    for address in endpoint_addresses(source).into_iter().filter(|a| a.is_ipv6() == destination.is_ipv6()) {
                        let (key, span) = allow_key(network, destination, rule);
                        allowed.entry(key).or_default().push((IpNet::from(address), span));
                    }
                }
            }
        }
    }
    for ((bridge, destination, protocol), elements) in allowed {
        add_allowed(table, &bridge, destination, protocol, elements);
    }
}

/// The bridge and destination of allowed flows, and their protocol when the rule
/// names ports.
type AllowKey = (String, IpAddr, Option<Span>);

/// Returns where a rule's flows towards `destination` are allowed, and the span of
/// ports (when the rule names them) or of protocols.
fn allow_key(network: &Network, destination: IpAddr, rule: &Rule) -> (AllowKey, Span) {
    let bridge = ifname(&names::bridge(network.vni));
    let protocol = protocol_span(rule.protocol, destination.is_ipv6());
    match rule.ports {
        Some((first, last)) => ((bridge, destination, Some(protocol)), (u32::from(first), u32::from(last))),
        None => ((bridge, destination, None), protocol),
    }
}

/// Adds the allowed (destination, source, protocol, ports) elements of one key,
/// none overlapping another (see the `disjoint` module).
fn add_allowed(table: &mut Table, bridge: &str, destination: IpAddr, protocol: Option<Span>, elements: Vec<(IpNet, Span)>) {
    let family = if destination.is_ipv6() { "6" } else { "4" };
    for (source, span) in disjoint(elements) {
        match protocol {
            Some(protocol) => table.add(
                &format!("allow{family}_ports"),
                format!("{bridge} . {destination} . {source} . {} . {}", protocol_text(protocol), span_text(span)),
            ),
            None => table.add(&format!("allow{family}"), format!("{bridge} . {destination} . {source} . {}", protocol_text(span))),
        }
    }
}

/// Returns the egress rules of each group that has some, by `tenant/name`, so
/// the rules are scanned once per generation, not once per endpoint.
fn egress_rules_by_group<'a>(input: &PolicyInput<'a>) -> BTreeMap<&'a str, Vec<&'a Rule>> {
    input
        .groups
        .iter()
        .map(|(key, group)| (key.as_str(), group.rules.iter().filter(|r| r.direction == Direction::Egress).collect::<Vec<_>>()))
        .filter(|(_, rules)| !rules.is_empty())
        .collect()
}

