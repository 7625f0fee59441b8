//! A security group rule between two networks of a tenant whose endpoints sit on
//! two hosts, so flows cross the tenant routers and the tunnel.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use cloison_lab::traffic::{ping_reply_ttls, set_default_ttl};
use cloison_lab::Lab;
use common::{wait_reachable, Container};

/// Attaches a container with its own default TTL, so the TTL of a reply names it.
fn member(lab: &Lab, host: &str, name: &str, network: (&str, &str), ip: &str, extra: &[&str], ttl: u8) -> Container {
    let (tenant, network) = network;
    let netns = lab.add_container(host, name).unwrap_or_else(|e| panic!("container {name} on {host}: {e}"));
    let mut args = vec!["--ip", ip, "--name", name];
    args.extend_from_slice(extra);
    let endpoint = lab
        .attach(host, network, &netns, tenant, &args)
        .unwrap_or_else(|e| panic!("attach of {name} on {host} to {tenant}/{network}: {e}"));
    set_default_ttl(&netns, ttl).expect("set TTL");
    Container { host: host.to_string(), netns, endpoint }
}

fn ttls(from: &Container, target: IpAddr) -> Vec<u8> {
    ping_reply_ttls(&from.netns, target, 3, Duration::from_millis(100)).unwrap_or_else(|e| panic!("ping {target}: {e}"))
}

fn addresses(c: &Container) -> [IpAddr; 2] {
    let ipv6 = c.endpoint.ipv6.unwrap_or_else(|| panic!("{} has no IPv6 address", c.endpoint.name));
    [IpAddr::V4(c.endpoint.ipv4), IpAddr::V6(ipv6)]
}

/// Returns true when `from` gets a reply from `address` within five seconds.
fn eventually_reaches(from: &Container, address: IpAddr) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if !ttls(from, address).is_empty() {
            return true;
        }
    }
    false
}

#[test]
fn network_rule_across_hosts() {
    let lab = common::lab("grp-net", 2);
    let v6 = |prefix: &'static str| ["--subnet6", prefix];
    lab.create_network("t1", "a", "10.50.0.0/24", &v6("fd00:50::/64")).expect("network t1/a");
    lab.create_network("t1", "b", "10.51.0.0/24", &v6("fd00:51::/64")).expect("network t1/b");
    lab.create_network("t2", "b", "10.51.0.0/24", &v6("fd00:51::/64")).expect("network t2/b");
    lab.cli("ctl", &["group", "create", "ga", "--tenant", "t1"]).expect("group ga");
    lab.cli("ctl", &["group", "rule", "add", "ga", "--ingress", "--proto", "icmp", "--from", "network:b", "--tenant", "t1"])
        .expect("rule of ga");

    // Both networks of t1 have an endpoint on each host, so each host's router has a
    // gateway on both. Tenant t2 reuses network b's subnet on h2.
    let a1 = member(&lab, "h1", "a1", ("t1", "a"), "10.50.0.11", &["--group", "ga"], 101);
    let a2 = member(&lab, "h2", "a2", ("t1", "a"), "10.50.0.12", &[], 111);
    let b1 = member(&lab, "h1", "b1", ("t1", "b"), "10.51.0.11", &[], 121);
    let b2 = member(&lab, "h2", "b2", ("t1", "b"), "10.51.0.12", &[], 131);
    let y2 = member(&lab, "h2", "y2", ("t2", "b"), "10.51.0.13", &[], 141);
    wait_reachable(&a2, a1.endpoint.ipv4);
    wait_reachable(&b1, b2.endpoint.ipv4);

    // b2 on h2 reaches a1 on h1 through a router, which takes one from the TTL.
    for address in addresses(&a1) {
        assert!(eventually_reaches(&b2, address), "b2 on h2 cannot reach a1's {address} on h1 within 5 s of the rule");
        assert_eq!(ttls(&b2, address), [100; 3], "b2 on h2 to a1's {address} on h1");
        assert_eq!(ttls(&b1, address), [100; 3], "b1 on h1 to a1's {address} on h1");
    }
    // Nothing else: a2 is in no group, a1 may not open flows towards b, and t2
    // cannot use its copy of b's subnet to reach t1.
    for address in addresses(&a2) {
        assert!(ttls(&b2, address).is_empty(), "b2 reached a2's {address}, which no rule allows");
        assert!(ttls(&b1, address).is_empty(), "b1 reached a2's {address}, which no rule allows");
    }
    for address in addresses(&b2).into_iter().chain(addresses(&b1)) {
        assert!(ttls(&a1, address).is_empty(), "a1 opened a flow to {address} in network b");
    }
    for address in addresses(&a1).into_iter().chain(addresses(&a2)) {
        assert!(ttls(&y2, address).is_empty(), "t2's y2 reached t1's {address}");
    }
}

#[test]
fn network_rule_peer_elsewhere() {
    let lab = common::lab("grp-far", 2);
    lab.create_network("t1", "a", "10.52.0.0/24", &[]).expect("network t1/a");
    lab.create_network("t1", "b", "10.53.0.0/24", &[]).expect("network t1/b");
    lab.cli("ctl", &["group", "create", "ga", "--tenant", "t1"]).expect("group ga");
    lab.cli("ctl", &["group", "rule", "add", "ga", "--ingress", "--proto", "icmp", "--from", "network:b", "--tenant", "t1"])
        .expect("rule of ga");

    // Network b has an endpoint on h2 only; a has one on each host. h1 carries b
    // anyway, so its router routes a1's replies into b.
    let a1 = member(&lab, "h1", "a1", ("t1", "a"), "10.52.0.11", &["--group", "ga"], 101);
    let a2 = member(&lab, "h2", "a2", ("t1", "a"), "10.52.0.12", &[], 111);
    let b2 = member(&lab, "h2", "b2", ("t1", "b"), "10.53.0.12", &[], 131);
    wait_reachable(&a2, a1.endpoint.ipv4);

    let address = IpAddr::V4(a1.endpoint.ipv4);
    assert!(eventually_reaches(&b2, address), "b2 on h2 cannot reach a1 on h1 within 5 s of the rule");
    assert_eq!(ttls(&b2, address), [100; 3], "b2 on h2 to a1 on h1");
    let address = IpAddr::V4(a2.endpoint.ipv4);
    assert!(ttls(&b2, address).is_empty(), "b2 reached a2, which is in no group");
    let address = IpAddr::V4(b2.endpoint.ipv4);
    assert!(ttls(&a1, address).is_empty(), "a1 opened a flow to b2 in network b");
}

#[test]
fn group_rule_peer_elsewhere() {
    let lab = common::lab("grp-gfar", 2);
    lab.create_network("t1", "a", "10.54.0.0/24", &[]).expect("network t1/a");
    lab.create_network("t1", "b", "10.55.0.0/24", &[]).expect("network t1/b");
    for group in ["ga", "gb"] {
        lab.cli("ctl", &["group", "create", group, "--tenant", "t1"]).unwrap_or_else(|e| panic!("group {group}: {e}"));
    }
    lab.cli("ctl", &["group", "rule", "add", "ga", "--ingress", "--proto", "icmp", "--from", "group:gb", "--tenant", "t1"])
        .expect("rule of ga");

    // The only member of gb is b2, in network b, which has no endpoint on h1.
    let a1 = member(&lab, "h1", "a1", ("t1", "a"), "10.54.0.11", &["--group", "ga"], 101);
    let a2 = member(&lab, "h2", "a2", ("t1", "a"), "10.54.0.12", &[], 111);
    let b2 = member(&lab, "h2", "b2", ("t1", "b"), "10.55.0.12", &["--group", "gb"], 131);
    let b3 = member(&lab, "h2", "b3", ("t1", "b"), "10.55.0.13", &[], 141);
    wait_reachable(&a2, a1.endpoint.ipv4);

    let address = IpAddr::V4(a1.endpoint.ipv4);
    assert!(eventually_reaches(&b2, address), "b2 (group gb) on h2 cannot reach a1 on h1 within 5 s of the rule");
    assert_eq!(ttls(&b2, address), [100; 3], "b2 on h2 to a1 on h1");
    assert!(ttls(&b3, address).is_empty(), "b3, which is not in gb, reached a1");
}

/// Reads the conntrack table of a lab host's namespace, one entry per line.
fn conntrack_entries(lab: &Lab, host: &str) -> Vec<String> {
    let output = lab.exec(host, &["cat", "/proc/net/nf_conntrack"]).unwrap_or_else(|e| panic!("conntrack table of {host}: {e}"));
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect()
}

fn entries_between(entries: &[String], source: IpAddr, destination: IpAddr) -> usize {
    let pair = format!("src={source} dst={destination} ");
    entries.iter().filter(|e| e.contains(&pair)).count()
}

/// Flows inside a network pass unfiltered, so no host tracks them or the tunnel's
/// datagrams. The destination's host tracks a flow that a group rule admits into a
/// network, because its replies pass as part of that connection.
#[test]
fn conntrack_tracks_filtered_flows_only() {
    let lab = common::lab("grp-ct", 2);
    lab.create_network("t1", "a", "10.52.0.0/24", &[]).expect("network t1/a");
    lab.create_network("t1", "b", "10.53.0.0/24", &[]).expect("network t1/b");
    lab.cli("ctl", &["group", "create", "ga", "--tenant", "t1"]).expect("group ga");
    lab.cli("ctl", &["group", "rule", "add", "ga", "--ingress", "--proto", "icmp", "--from", "network:b", "--tenant", "t1"])
        .expect("rule of ga");
    let a1 = member(&lab, "h1", "a1", ("t1", "a"), "10.52.0.11", &["--group", "ga"], 64);
    let a2 = member(&lab, "h2", "a2", ("t1", "a"), "10.52.0.12", &[], 64);
    let b2 = member(&lab, "h2", "b2", ("t1", "b"), "10.53.0.12", &[], 64);
    wait_reachable(&a2, a1.endpoint.ipv4);
    let (a1_ip, a2_ip, b2_ip) = (IpAddr::V4(a1.endpoint.ipv4), IpAddr::V4(a2.endpoint.ipv4), IpAddr::V4(b2.endpoint.ipv4));
    assert!(eventually_reaches(&b2, a1_ip), "b2 cannot reach a1 within 5 s of the rule");
    assert_eq!(ttls(&a2, a1_ip).len(), 3, "a2 to a1 inside network a");

    for host in ["h1", "h2"] {
        let entries = conntrack_entries(&lab, host);
        let inside = entries_between(&entries, a2_ip, a1_ip) + entries_between(&entries, a1_ip, a2_ip);
        assert_eq!(inside, 0, "{host} tracks a flow inside network a: {entries:#?}");
        let tunnel: Vec<&String> = entries.iter().filter(|e| e.contains(" dport=4789 ")).collect();
        assert!(tunnel.is_empty(), "{host} tracks VXLAN datagrams: {tunnel:#?}");
    }
    let entries = conntrack_entries(&lab, "h1");
    assert!(entries_between(&entries, b2_ip, a1_ip) > 0, "h1 does not track b2's admitted flow to a1: {entries:#?}");
}
