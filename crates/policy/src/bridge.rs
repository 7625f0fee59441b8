//! The host's `bridge cloison` table: anti-spoofing on every local endpoint port.
//!
//! A frame from an endpoint port must carry the endpoint's MAC as its source, and
//! its IPv4 source, ARP sender, IPv6 source and ND fields must be the endpoint's own.
//! Every check is one lookup in a set keyed by the port name, so the cost per frame
//! does not grow with the number of endpoints. The checks are stateless, so they
//! need no bridge conntrack.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use cloison_dataplane::names;
use cloison_model::{Endpoint, MacAddr};

use crate::nft::{chain, ifname, Set, Table};
use crate::PolicyInput;

/// Rules of the prerouting chain. Frames from ports other than endpoints' pass on a
/// name prefix test, without a lookup. Frames from an endpoint port the table does
/// not list are dropped, so the agent lists a port before it creates it. An untagged
/// IPv4 frame with the endpoint's MAC and address passes on one lookup, because most
/// frames are such. The rules after it check every other frame. The ND offsets count from the ICMPv6 header: the target
/// address of a neighbour advertisement is at byte 8, and the first option of a
/// solicitation or advertisement at byte 24, its link-layer address at byte 26.
const PREROUTING: &[&str] = &[
    "iifname != \"cle*\" accept",
    "iifname != @ports counter name spoof_dropped drop",
    "ether type ip iifname . ether saddr . ip saddr @port_mac_ipv4 accept",
    "iifname . ether saddr != @port_mac counter name spoof_dropped drop",
    "ether type != { ip, ip6, arp } counter name spoof_dropped drop",
    "arp operation { request, reply } iifname . arp saddr ether != @port_mac counter name spoof_dropped drop",
    "arp operation { request, reply } iifname . arp saddr ip != @port_ipv4 counter name spoof_dropped drop",
    "meta protocol ip iifname . ip saddr != @port_ipv4 counter name spoof_dropped drop",
    "meta protocol ip6 iifname . ip6 saddr != @port_ipv6 counter name spoof_dropped drop",
    "icmpv6 type { nd-router-advert, nd-redirect } counter name spoof_dropped drop",
    "icmpv6 type nd-neighbor-advert iifname . @th,64,128 != @port_nd_target counter name spoof_dropped drop",
    "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } @th,192,8 { 1, 2 } iifname . @th,208,48 != @port_lladdr counter name spoof_dropped drop",
];

/// The last table a [`crate::Generator`] built, with the endpoint fields it read.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    endpoints: BTreeMap<String, Fields>,
    table: Option<Table>,
}

/// The fields of a local endpoint that the table reads, besides its id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    mac: MacAddr,
    ipv4: Ipv4Addr,
    ipv6: Option<Ipv6Addr>,
}

impl Fields {
    fn of(endpoint: &Endpoint) -> Self {
        Fields { mac: endpoint.mac, ipv4: endpoint.ipv4, ipv6: endpoint.ipv6 }
    }
}

/// Builds the anti-spoofing table like [`table`]. When every endpoint of the last
/// build is still there unchanged, it adds only the new endpoints' elements to the
/// last table, so an attach does not format the elements of every other endpoint.
/// Any removal or change rebuilds the table.
pub(crate) fn cached_table(input: &PolicyInput<'_>, cache: &mut Cache) -> Table {
    let added = cache.table.as_ref().and_then(|_| additions(input, &cache.endpoints));
    let table = match (cache.table.take(), added) {
        (Some(mut table), Some(added)) => {
            for endpoint in added {
                add_endpoint(&mut table, endpoint);
                cache.endpoints.insert(endpoint.id.clone(), Fields::of(endpoint));
            }
            table
        }
        _ => {
            cache.endpoints = input.local_endpoints().map(|(e, _)| (e.id.clone(), Fields::of(e))).collect();
            table(input)
        }
    };
    cache.table = Some(table.clone());
    table
}

/// Returns the local endpoints missing from `known`, or `None` when an endpoint of
/// `known` went or changed.
fn additions<'a>(input: &PolicyInput<'a>, known: &BTreeMap<String, Fields>) -> Option<Vec<&'a Endpoint>> {
    let mut added = Vec::new();
    let mut found = 0;
    for (endpoint, _) in input.local_endpoints() {
        match known.get(&endpoint.id) {
            Some(fields) if *fields == Fields::of(endpoint) => found += 1,
            Some(_) => return None,
            None => added.push(endpoint),
        }
    }
    (found == known.len()).then_some(added)
}

/// Builds the anti-spoofing table for the endpoints on this host.
pub(crate) fn table(input: &PolicyInput<'_>) -> Table {
    let mut table = Table {
        family: "bridge",
        name: "cloison",
        sets: vec![
            Set::new("set", "ports", "type ifname;"),
            Set::new("set", "port_mac", "type ifname . ether_addr;"),
            Set::new("set", "port_ipv4", "type ifname . ipv4_addr;"),
            Set::new("set", "port_mac_ipv4", "type ifname . ether_addr . ipv4_addr;"),
            Set::new("set", "port_ipv6", "type ifname . ipv6_addr; flags interval;"),
            Set::new("set", "port_nd_target", "typeof iifname . @th,64,128;"),
            Set::new("set", "port_lladdr", "typeof iifname . @th,208,48;"),
        ],
        counters: vec!["spoof_dropped"],
        chains: vec![chain("prerouting", Some("type filter hook prerouting priority -300; policy accept;"), PREROUTING)],
    };
    for (endpoint, _) in input.local_endpoints() {
        add_endpoint(&mut table, endpoint);
    }
    table
}

fn add_endpoint(table: &mut Table, endpoint: &Endpoint) {
    let port = ifname(&names::endpoint_host(&endpoint.id));
    let link_local = link_local(endpoint.mac);
    table.add("ports", port.clone());
    table.add("port_mac", format!("{port} . {}", endpoint.mac));
    table.add("port_ipv4", format!("{port} . {}", endpoint.ipv4));
    table.add("port_mac_ipv4", format!("{port} . {} . {}", endpoint.mac, endpoint.ipv4));
    // Link-local sources are any fe80::/10 address, because the MAC check above
    // already ties the frame to the port; `::` is the source of duplicate address
    // detection.
    table.add("port_ipv6", format!("{port} . fe80::/10"));
    table.add("port_ipv6", format!("{port} . ::"));
    table.add("port_nd_target", format!("{port} . {}", hex128(link_local)));
    if let Some(ipv6) = endpoint.ipv6 {
        table.add("port_ipv6", format!("{port} . {ipv6}"));
        table.add("port_nd_target", format!("{port} . {}", hex128(ipv6)));
    }
    table.add("port_lladdr", format!("{port} . 0x{}", hex(&endpoint.mac.0)));
}

/// Returns true when `tables`, the host's tables, list `host_ifname` as an
/// endpoint port, so that frames from that port are checked instead of dropped.
pub fn lists_port(tables: &[Table], host_ifname: &str) -> bool {
    tables
        .iter()
        .filter(|t| t.family == "bridge" && t.name == "cloison")
        .filter_map(|t| t.set("ports"))
        .any(|set| set.elements.contains(&ifname(host_ifname)))
}

/// Returns the EUI-64 link-local address the kernel derives from a MAC by default.
pub(crate) fn link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    let octets = [
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5],
    ];
    Ipv6Addr::from(octets)
}

/// Writes an IPv6 address as the 128-bit integer a raw payload match compares with.
fn hex128(address: Ipv6Addr) -> String {
    format!("0x{}", hex(&address.octets()))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chain recognises endpoint ports by the name prefix `cle`, so the
    /// dataplane's endpoint ports must have it and its other bridge ports must not.
    #[test]
    fn endpoint_port_prefix_matches() {
        assert!(PREROUTING[0].contains("\"cle*\""));
        assert!(names::endpoint_host("9f1c2d3e-4b5a-4c6d-8e7f-a0b1c2d3e4f5").starts_with("cle"));
        for other in [names::bridge(7), names::vxlan(7), names::gateway_host_port(7)] {
            assert!(!other.starts_with("cle"), "{other} would be taken for an endpoint port");
        }
    }

    #[test]
    fn listed_ports_found_by_name() {
        let endpoint: Endpoint = serde_json::from_value(serde_json::json!({
            "id": "e1", "tenant": "t", "name": "a", "network": "web", "network_id": "n1", "host": "h1",
            "mac": "02:00:00:00:00:01", "ipv4": "10.0.0.2", "ifname": "eth0", "sandbox": "/run/netns/a"
        }))
        .expect("endpoint");
        let mut table = Table { family: "bridge", name: "cloison", sets: vec![Set::new("set", "ports", "type ifname;")], counters: vec![], chains: vec![] };
        add_endpoint(&mut table, &endpoint);
        let tables = [table];
        assert!(lists_port(&tables, &names::endpoint_host("e1")));
        assert!(!lists_port(&tables, &names::endpoint_host("e2")));
        assert!(!lists_port(&[], &names::endpoint_host("e1")));
    }
}
