//! Isolation at layer 2: between two networks of one tenant, and between tenants
//! using the same subnets, over IPv4 and IPv6, by address, by broadcast and with
//! forged source addresses.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use cloison_lab::traffic::{ping_reply_ttls, set_default_ttl};
use cloison_lab::Lab;
use common::{container, wait_reachable, Container};

/// Network A and B of tenant t1 (no routing between them), and tenant t2's network
/// with A's subnets. Each container gets its own TTL: a1 101, a2 102, b1 103, b2 104,
/// x1 105, x2 106, a3 107.
fn scene(lab: &Lab) -> Vec<(Container, u8)> {
    lab.create_network("t1", "a", "10.40.0.0/24", &["--subnet6", "fd00:40::/64"]).expect("network t1/a");
    lab.create_network("t1", "b", "10.41.0.0/24", &["--subnet6", "fd00:41::/64"]).expect("network t1/b");
    lab.create_network("t2", "a", "10.40.0.0/24", &["--subnet6", "fd00:40::/64"]).expect("network t2/a");
    let members = [
        ("h1", "a1", "t1", "a", "10.40.0.11"),
        ("h2", "a2", "t1", "a", "10.40.0.12"),
        ("h1", "b1", "t1", "b", "10.41.0.11"),
        ("h2", "b2", "t1", "b", "10.41.0.12"),
        ("h1", "x1", "t2", "a", "10.40.0.11"),
        ("h2", "x2", "t2", "a", "10.40.0.12"),
        ("h1", "a3", "t1", "a", "10.40.0.13"),
    ];
    let mut scene = Vec::new();
    for (index, (host, name, tenant, network, address)) in members.into_iter().enumerate() {
        let c = container(lab, host, name, tenant, network, address);
        let ttl = 101 + index as u8;
        set_default_ttl(&c.netns, ttl).expect("set TTL");
        scene.push((c, ttl));
    }
    scene
}

fn ttls(from: &Container, target: IpAddr) -> Vec<u8> {
    ping_reply_ttls(&from.netns, target, 3, Duration::from_millis(100)).unwrap_or_else(|e| panic!("ping {target}: {e}"))
}

fn ipv6_of(c: &Container) -> IpAddr {
    IpAddr::V6(c.endpoint.ipv6.unwrap_or_else(|| panic!("{} has no IPv6 address", c.endpoint.name)))
}

fn ipv4_of(c: &Container) -> IpAddr {
    IpAddr::V4(c.endpoint.ipv4)
}

/// Echo requests received in the namespace at `netns`, from /proc/net/snmp, which
/// shows the reading process's network namespace.
fn echo_requests_received(lab: &Lab, netns: &Path) -> u64 {
    let out = lab.exec_in_container(netns, &["cat", "/proc/net/snmp"]).expect("read /proc/net/snmp");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut icmp = text.lines().filter(|l| l.starts_with("Icmp:"));
    let (names, values) = (icmp.next().unwrap_or_default(), icmp.next().unwrap_or_default());
    let column = names.split_whitespace().position(|n| n == "InEchos").expect("InEchos column");
    values.split_whitespace().nth(column).and_then(|v| v.parse().ok()).expect("InEchos value")
}

#[test]
fn same_network_only_reaches() {
    let lab = common::lab("case-iso", 2);
    let scene = scene(&lab);
    let [(a1, _), (a2, a2_ttl), (b1, _), (b2, b2_ttl), (x1, _), (x2, x2_ttl), _] = &scene[..] else {
        panic!("scene has seven members");
    };

    for (from, to, ttl) in [(a1, a2, a2_ttl), (b1, b2, b2_ttl), (x1, x2, x2_ttl)] {
        wait_reachable(from, to.endpoint.ipv4);
        assert_eq!(ttls(from, ipv4_of(to)), [*ttl; 3], "{} to {} over IPv4", from.endpoint.name, to.endpoint.name);
        assert_eq!(ttls(from, ipv6_of(to)), [*ttl; 3], "{} to {} over IPv6", from.endpoint.name, to.endpoint.name);
    }
    for target in [ipv4_of(b2), ipv6_of(b2)] {
        assert!(ttls(a1, target).is_empty(), "a1 (network a) reached network b's {target}");
        assert!(ttls(x1, target).is_empty(), "x1 (tenant t2) reached t1's {target}");
    }
    // t2 shares t1's subnets, so only t2's endpoints may reply to its pings.
    for target in [ipv4_of(a2), ipv6_of(a2)] {
        let seen = ttls(x1, target);
        assert!(!seen.contains(a2_ttl), "x1 (tenant t2) got a reply from t1's a2 at {target}: {seen:?}");
    }
}

#[test]
fn broadcast_stays_in_network() {
    let lab = common::lab("case-isob", 2);
    let scene = scene(&lab);
    for (c, _) in &scene {
        lab.exec_in_container(&c.netns, &["sysctl", "-q", "-w", "net.ipv4.icmp_echo_ignore_broadcasts=0"]).expect("sysctl");
    }
    let (a1, _) = &scene[0];
    let out = lab.exec_in_container(&a1.netns, &["ping", "-n", "-b", "-c", "3", "-i", "0.2", "-W", "1", "10.40.0.255"]);
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    for (c, ttl) in &scene[2..6] {
        assert!(!text.contains(&format!("ttl={ttl} ")), "a1's broadcast was answered by {} outside network t1/a:\n{text}", c.endpoint.name);
    }
}

#[test]
fn forged_sources_are_dropped() {
    let lab = common::lab("case-isof", 2);
    let scene = scene(&lab);
    let (a1, _) = &scene[0];
    let (a2, a2_ttl) = &scene[1];
    let (a3, _) = &scene[6];
    wait_reachable(a3, a2.endpoint.ipv4);

    // a1 sends from a3's address: a2 must not receive it.
    lab.exec_in_container(&a1.netns, &["ip", "addr", "add", "10.40.0.13/32", "dev", "eth0"]).expect("add a3's address to a1");
    let before = echo_requests_received(&lab, &a2.netns);
    let _ = lab.exec_in_container(&a1.netns, &["ping", "-n", "-c", "3", "-i", "0.1", "-W", "1", "-I", "10.40.0.13", "10.40.0.12"]);
    let after = echo_requests_received(&lab, &a2.netns);
    assert_eq!(after, before, "a2 received echo requests that a1 sent with a3's address");

    // a1 sends with a2's MAC: h1's bridge must not learn a2's MAC on a1's port.
    let a2_mac = a2.endpoint.mac.to_string();
    lab.exec_in_container(&a1.netns, &["ip", "link", "set", "eth0", "address", &a2_mac]).expect("give a1 a2's MAC");
    let _ = lab.exec_in_container(&a1.netns, &["ping", "-n", "-c", "3", "-i", "0.1", "-W", "1", "10.40.0.13"]);
    assert_eq!(ttls(a3, ipv4_of(a2)), [*a2_ttl; 3], "a3 still reaches a2 after a1 sent with a2's MAC");
}
