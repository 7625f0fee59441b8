//! Endpoints of one network on different hosts, and two tenants with the same subnet.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use cloison_lab::traffic::{iperf3_throughput, ping_reply_ttls, set_default_ttl};
use common::{container, ip, ping3, vxlan_state_problems, wait_reachable, Container};

/// Blue has b1, b2, b3 on h1, h2, h3; red reuses b1's and b2's addresses on h1 and h2.
fn two_tenants(lab: &cloison_lab::Lab) -> (Vec<Container>, Vec<Container>) {
    for tenant in ["blue", "red"] {
        lab.create_network(tenant, "web", "10.10.0.0/24", &[]).unwrap_or_else(|e| panic!("network of {tenant}: {e}"));
    }
    let blue = vec![
        container(lab, "h1", "b1", "blue", "web", "10.10.0.11"),
        container(lab, "h2", "b2", "blue", "web", "10.10.0.12"),
        container(lab, "h3", "b3", "blue", "web", "10.10.0.13"),
    ];
    let red = vec![
        container(lab, "h1", "r1", "red", "web", "10.10.0.11"),
        container(lab, "h2", "r2", "red", "web", "10.10.0.12"),
    ];
    (blue, red)
}

/// TTLs of the replies to three pings, each container having its own default TTL.
fn reply_ttls(from: &Container, address: Ipv4Addr) -> Vec<u8> {
    ping_reply_ttls(&from.netns, address.into(), 3, Duration::from_millis(100)).unwrap_or_else(|e| panic!("ping {address}: {e}"))
}

#[test]
fn network_spans_hosts_both_ways() {
    let lab = common::lab("ov-reach", 3);
    let (blue, _red) = two_tenants(&lab);
    for from in &blue {
        for to in blue.iter().filter(|to| to.endpoint.name != from.endpoint.name) {
            wait_reachable(from, to.endpoint.ipv4);
            let counts = ping3(from, to.endpoint.ipv4);
            assert_eq!(counts.received, 3, "{} on {} to {} on {}: {counts:?}", from.endpoint.name, from.host, to.endpoint.name, to.host);
        }
    }
    let bits = iperf3_throughput(&blue[0].netns, &blue[1].netns, blue[0].endpoint.ipv4, 2).expect("iperf3 b2 to b1");
    assert!(bits > 1e6, "b2 to b1 moved only {bits} bit/s");
    let bits = iperf3_throughput(&blue[1].netns, &blue[0].netns, blue[1].endpoint.ipv4, 2).expect("iperf3 b1 to b2");
    assert!(bits > 1e6, "b1 to b2 moved only {bits} bit/s");
}

#[test]
fn tenant_with_same_subnet_is_isolated() {
    let lab = common::lab("ov-iso", 3);
    let (blue, red) = two_tenants(&lab);
    // The TTL of a reply names the container that sent it: blue 101.., red 111..
    for (index, c) in blue.iter().enumerate() {
        set_default_ttl(&c.netns, 101 + index as u8).expect("set TTL");
    }
    for (index, c) in red.iter().enumerate() {
        set_default_ttl(&c.netns, 111 + index as u8).expect("set TTL");
    }

    // b3's address exists only in blue: red must get no reply at all.
    for from in &red {
        let ttls = reply_ttls(from, ip("10.10.0.13"));
        assert!(ttls.is_empty(), "{} (red) got replies from blue's 10.10.0.13: TTLs {ttls:?}", from.endpoint.name);
    }
    // Only the sender's own tenant may reply on addresses both tenants use.
    wait_reachable(&red[1], ip("10.10.0.11"));
    wait_reachable(&red[0], ip("10.10.0.12"));
    wait_reachable(&blue[2], ip("10.10.0.11"));
    wait_reachable(&blue[2], ip("10.10.0.12"));
    assert_eq!(reply_ttls(&red[1], ip("10.10.0.11")), [111, 111, 111], "r2 to 10.10.0.11 is answered by r1 only");
    assert_eq!(reply_ttls(&red[0], ip("10.10.0.12")), [112, 112, 112], "r1 to 10.10.0.12 is answered by r2 only");
    assert_eq!(reply_ttls(&blue[2], ip("10.10.0.11")), [101, 101, 101], "b3 to 10.10.0.11 is answered by b1 only");
    assert_eq!(reply_ttls(&blue[2], ip("10.10.0.12")), [102, 102, 102], "b3 to 10.10.0.12 is answered by b2 only");
}

#[test]
fn vxlan_devices_hold_exactly_remote_entries() {
    let lab = common::lab("ov-fdb", 3);
    let (blue, red) = two_tenants(&lab);
    // Blue's network db has its only endpoint on h3, yet h1 and h2 carry it because
    // blue has endpoints there. Red has none on h3, so h3 carries no red network.
    lab.create_network("blue", "db", "10.20.0.0/24", &[]).expect("network blue/db");
    let _d3 = container(&lab, "h3", "d3", "blue", "db", "10.20.0.13");
    // Traffic first, so anything that could be learned would be.
    ping3(&blue[0], blue[2].endpoint.ipv4);
    ping3(&red[0], red[1].endpoint.ipv4);
    std::thread::sleep(Duration::from_millis(200));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut problems = vxlan_state_problems(&lab);
    while !problems.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        problems = vxlan_state_problems(&lab);
    }
    assert!(problems.is_empty(), "VXLAN state differs 5 s after the last attach:\n{}", problems.join("\n"));
}
