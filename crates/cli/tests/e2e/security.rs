//! Security groups, anti-spoofing, routing inside a tenant, the restore of a flushed
//! ruleset and the underlay guard, checked with real traffic on one host.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{text, Host, Netns};
use crate::probe::{eventually, nft_counter, send_udp, snmp, tcp_reaches, TcpServer};

/// Time the agent gets to apply a change made through the API.
const SETTLE: Duration = Duration::from_secs(5);

fn socket(endpoint: &Value, port: u16) -> SocketAddr {
    SocketAddr::new(text(endpoint, "ipv4").parse().expect("IPv4 address"), port)
}

fn group(host: &Host, tenant: &str, name: &str, rules: &[&[&str]]) {
    host.cli_json(&["group", "create", name, "--tenant", tenant]);
    for rule in rules {
        add_rule(host, tenant, name, rule);
    }
}

fn add_rule(host: &Host, tenant: &str, group: &str, rule: &[&str]) {
    let mut args = vec!["group", "rule", "add", group, "--tenant", tenant];
    args.extend_from_slice(rule);
    host.cli_json(&args);
}

fn spoof_dropped(host: &Host) -> u64 {
    nft_counter(&host.ns, "bridge", "cloison", "spoof_dropped")
}

/// Creates networks `a` (10.N.0.0/24) and `b` (10.N+1.0.0/24) of tenant `t`.
fn two_networks(host: &Host, octet: u8) {
    host.create_network("t", "a", &format!("10.{octet}.0.0/24"));
    host.create_network("t", "b", &format!("10.{}.0.0/24", octet + 1));
}

#[test]
fn same_network_reaches() {
    let host = Host::start("sg-same");
    host.create_network("t", "a", "10.61.0.0/24");
    let (c1, c2) = (Netns::new("a1"), Netns::new("a2"));
    host.attach("t", "a", &c1, &[]);
    let a2_endpoint = host.attach("t", "a", &c2, &[]);
    let _server = TcpServer::start(&c2, 8080);

    assert!(
        c1.ping(&text(&a2_endpoint, "ipv4"), 3),
        "a1 cannot ping a2 on its own network"
    );
    assert!(
        eventually(SETTLE, || tcp_reaches(&c1, socket(&a2_endpoint, 8080))),
        "a1 cannot open TCP port 8080 of a2 on its own network"
    );
}

#[test]
fn other_network_port_rule() {
    let host = Host::start("sg-port");
    two_networks(&host, 62);
    group(&host, "t", "srv", &[]);
    let (a1, b1) = (Netns::new("a1"), Netns::new("b1"));
    let a_endpoint = host.attach("t", "a", &a1, &[]);
    let b_endpoint = host.attach("t", "b", &b1, &["--group", "srv"]);
    let _open = TcpServer::start(&b1, 8080);
    let _other = TcpServer::start(&b1, 9090);
    let _client_side = TcpServer::start(&a1, 7070);

    assert!(
        !a1.ping(&text(&b_endpoint, "ipv4"), 2),
        "a1 pinged b1 with no rule"
    );
    assert!(
        !tcp_reaches(&a1, socket(&b_endpoint, 8080)),
        "a1 reached b1:8080 with no rule"
    );

    add_rule(
        &host,
        "t",
        "srv",
        &[
            "--ingress",
            "--proto",
            "tcp",
            "--port",
            "8080",
            "--from",
            "network:a",
        ],
    );
    // The greeting travels back to a1, which has no ingress rule: replies pass.
    assert!(
        eventually(SETTLE, || tcp_reaches(&a1, socket(&b_endpoint, 8080))),
        "a1 cannot reach b1:8080 within 5 s of the rule allowing it"
    );
    assert!(
        !tcp_reaches(&a1, socket(&b_endpoint, 9090)),
        "a1 reached b1:9090, which no rule allows"
    );
    assert!(
        !a1.ping(&text(&b_endpoint, "ipv4"), 2),
        "a1 pinged b1 though the rule allows TCP only"
    );
    assert!(
        !tcp_reaches(&b1, socket(&a_endpoint, 7070)),
        "b1 opened a flow to a1, which no rule allows"
    );
}

#[test]
fn group_peer_members_only() {
    let host = Host::start("sg-group");
    two_networks(&host, 64);
    group(&host, "t", "web", &[]);
    group(
        &host,
        "t",
        "db",
        &[&[
            "--ingress",
            "--proto",
            "tcp",
            "--port",
            "5432",
            "--from",
            "group:web",
        ]],
    );
    let (member, outsider, db) = (Netns::new("a1"), Netns::new("a2"), Netns::new("b1"));
    host.attach("t", "a", &member, &["--group", "web"]);
    host.attach("t", "a", &outsider, &[]);
    let db_endpoint = host.attach("t", "b", &db, &["--group", "db"]);
    let _server = TcpServer::start(&db, 5432);

    assert!(
        eventually(SETTLE, || tcp_reaches(&member, socket(&db_endpoint, 5432))),
        "a member of group web cannot reach db:5432"
    );
    assert!(
        !tcp_reaches(&outsider, socket(&db_endpoint, 5432)),
        "an endpoint outside group web reached db:5432"
    );
}

#[test]
fn cidr_peer_allows_range() {
    let host = Host::start("sg-cidr");
    two_networks(&host, 66);
    group(
        &host,
        "t",
        "db",
        &[&[
            "--ingress",
            "--proto",
            "tcp",
            "--port",
            "5432",
            "--from",
            "10.66.0.8/29",
        ]],
    );
    let (inside, outside, db) = (Netns::new("a1"), Netns::new("a2"), Netns::new("b1"));
    host.attach("t", "a", &inside, &["--ip", "10.66.0.10"]);
    host.attach("t", "a", &outside, &["--ip", "10.66.0.20"]);
    let db_endpoint = host.attach("t", "b", &db, &["--group", "db"]);
    let _server = TcpServer::start(&db, 5432);

    assert!(
        eventually(SETTLE, || tcp_reaches(&inside, socket(&db_endpoint, 5432))),
        "10.66.0.10, inside 10.66.0.8/29, cannot reach db:5432"
    );
    assert!(
        !tcp_reaches(&outside, socket(&db_endpoint, 5432)),
        "10.66.0.20, outside 10.66.0.8/29, reached db:5432"
    );
}

#[test]
fn egress_default_and_rule() {
    let host = Host::start("sg-egress");
    two_networks(&host, 68);
    // A group with only an unrelated ingress rule: egress stays allowed by default.
    group(
        &host,
        "t",
        "cli",
        &[&[
            "--ingress",
            "--proto",
            "tcp",
            "--port",
            "1",
            "--from",
            "192.0.2.0/24",
        ]],
    );
    let (client, plain, peer, server) = (
        Netns::new("a1"),
        Netns::new("a2"),
        Netns::new("a3"),
        Netns::new("b1"),
    );
    host.attach("t", "a", &client, &["--group", "cli"]);
    host.attach("t", "a", &plain, &[]);
    let peer_endpoint = host.attach("t", "a", &peer, &[]);
    let server_endpoint = host.attach("t", "b", &server, &[]);
    let _peer = TcpServer::start(&peer, 8080);
    let _open = TcpServer::start(&server, 8080);
    let _other = TcpServer::start(&server, 9090);

    assert!(
        eventually(SETTLE, || tcp_reaches(
            &client,
            socket(&peer_endpoint, 8080)
        )),
        "a member of cli cannot open a flow on its own network"
    );
    assert!(
        !tcp_reaches(&client, socket(&server_endpoint, 8080)),
        "cli reached network b with no rule"
    );

    add_rule(
        &host,
        "t",
        "cli",
        &[
            "--egress",
            "--proto",
            "tcp",
            "--port",
            "8080",
            "--to",
            "network:b",
        ],
    );
    assert!(
        eventually(SETTLE, || tcp_reaches(
            &client,
            socket(&server_endpoint, 8080)
        )),
        "the egress rule of cli does not let it reach b1:8080"
    );
    assert!(
        !tcp_reaches(&client, socket(&server_endpoint, 9090)),
        "cli reached b1:9090, which no rule allows"
    );
    assert!(
        !tcp_reaches(&plain, socket(&server_endpoint, 8080)),
        "an endpoint outside cli reached b1:8080"
    );
}

#[test]
fn forged_ipv4_and_mac_dropped() {
    let host = Host::start("spoof4");
    host.create_network("t", "a", "10.70.0.0/24");
    let (forger, victim) = (Netns::new("a1"), Netns::new("a2"));
    host.attach("t", "a", &forger, &[]);
    let victim_endpoint = host.attach("t", "a", &victim, &[]);
    let target = text(&victim_endpoint, "ipv4");
    assert!(
        forger.ping(&target, 2),
        "a1 cannot ping a2 before forging anything"
    );

    // A source address the endpoint does not own, over an already resolved neighbour.
    forger.exec_ok(&["ip", "addr", "add", "10.70.0.99/32", "dev", "eth0"]);
    let (echoes, dropped) = (snmp(&victim, "Icmp", "InEchos"), spoof_dropped(&host));
    let _ = forger.exec(&[
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "1",
        "-I",
        "10.70.0.99",
        &target,
    ]);
    assert_eq!(
        snmp(&victim, "Icmp", "InEchos"),
        echoes,
        "a2 received echo requests from a forged IPv4 source"
    );
    assert!(
        spoof_dropped(&host) >= dropped + 3,
        "the forged IPv4 packets were not counted in spoof_dropped"
    );

    // The endpoint's own address, but a MAC it does not own.
    forger.exec_ok(&["ip", "addr", "del", "10.70.0.99/32", "dev", "eth0"]);
    forger.exec_ok(&["ip", "link", "set", "eth0", "address", "0a:00:00:00:99:99"]);
    let (echoes, dropped) = (snmp(&victim, "Icmp", "InEchos"), spoof_dropped(&host));
    assert!(
        !forger.ping(&target, 3),
        "a1 got replies while sending from a forged MAC"
    );
    assert_eq!(
        snmp(&victim, "Icmp", "InEchos"),
        echoes,
        "a2 received echo requests from a forged MAC"
    );
    // The MAC change flushes a1's neighbours, so ARP requests go first and how many
    // frames leave depends on ARP retransmission timing.
    assert!(
        spoof_dropped(&host) > dropped,
        "the frames with a forged MAC were not counted in spoof_dropped"
    );
}

#[test]
fn forged_arp_sender_dropped() {
    let host = Host::start("spoofarp");
    host.create_network("t", "a", "10.71.0.0/24");
    let (forger, victim) = (Netns::new("a1"), Netns::new("a2"));
    host.attach("t", "a", &forger, &[]);
    let victim_endpoint = host.attach("t", "a", &victim, &[]);
    let target = text(&victim_endpoint, "ipv4");

    // With no neighbour entry left, the kernel sends an ARP request for a2 with the
    // forged address as sender; a2 would store that sender if the request reached it.
    forger.exec_ok(&["ip", "addr", "add", "10.71.0.99/32", "dev", "eth0"]);
    forger.exec_ok(&["ip", "neigh", "flush", "dev", "eth0"]);
    let dropped = spoof_dropped(&host);
    let _ = forger.exec(&["ping", "-c", "2", "-W", "1", "-I", "10.71.0.99", &target]);
    let learned = victim.exec_ok(&["ip", "neigh", "show", "10.71.0.99"]);
    assert!(
        learned.trim().is_empty(),
        "a2 learned the forged ARP sender: {learned}"
    );
    assert!(
        spoof_dropped(&host) > dropped,
        "the forged ARP requests were not counted in spoof_dropped"
    );
    // An unresolved neighbour entry may still hold the forged packets, and the
    // kernel's next ARP request would take its sender from them: start afresh.
    forger.exec_ok(&["ip", "addr", "del", "10.71.0.99/32", "dev", "eth0"]);
    forger.exec_ok(&["ip", "neigh", "flush", "dev", "eth0"]);
    assert!(
        forger.ping(&target, 2),
        "a1 cannot ping a2 from its own address after the forged ARP"
    );
}

#[test]
fn forged_ipv6_source_dropped() {
    let host = Host::start("spoof6");
    host.cli_json(&[
        "network",
        "create",
        "a",
        "--tenant",
        "t",
        "--subnet",
        "10.72.0.0/24",
        "--subnet6",
        "fd00:72::/64",
    ]);
    let (forger, victim) = (Netns::new("a1"), Netns::new("a2"));
    host.attach("t", "a", &forger, &[]);
    let victim_endpoint = host.attach("t", "a", &victim, &[]);
    let target = text(&victim_endpoint, "ipv6");
    assert!(
        eventually(SETTLE, || forger.ping(&target, 1)),
        "a1 cannot ping a2 at {target} before forging anything"
    );

    forger.exec_ok(&[
        "ip",
        "-6",
        "addr",
        "add",
        "fd00:72::99/128",
        "dev",
        "eth0",
        "nodad",
    ]);
    let (echoes, dropped) = (snmp(&victim, "Icmp6", "InEchos"), spoof_dropped(&host));
    let _ = forger.exec(&[
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "1",
        "-I",
        "fd00:72::99",
        &target,
    ]);
    assert_eq!(
        snmp(&victim, "Icmp6", "InEchos"),
        echoes,
        "a2 received echo requests from a forged IPv6 source"
    );
    assert!(
        spoof_dropped(&host) >= dropped + 3,
        "the forged IPv6 packets were not counted in spoof_dropped"
    );
}

#[test]
fn routing_only_when_allowed() {
    let host = Host::start("route");
    two_networks(&host, 73);
    host.create_network("u", "c", "10.75.0.0/24");
    group(&host, "t", "srv", &[]);
    let (a1, b1, c1) = (Netns::new("a1"), Netns::new("b1"), Netns::new("c1"));
    let a_endpoint = host.attach("t", "a", &a1, &[]);
    let b_endpoint = host.attach("t", "b", &b1, &["--group", "srv"]);
    host.attach("u", "c", &c1, &[]);
    let b_address = text(&b_endpoint, "ipv4");

    assert!(
        !a1.ping(&b_address, 2),
        "tenant t routes a to b with no rule"
    );
    add_rule(
        &host,
        "t",
        "srv",
        &["--ingress", "--proto", "icmp", "--from", "network:a"],
    );
    // A CIDR naming tenant u's subnet must not open a path between tenants.
    add_rule(&host, "t", "srv", &["--ingress", "--from", "10.75.0.0/24"]);
    assert!(
        eventually(SETTLE, || a1.ping(&b_address, 1)),
        "a1 cannot ping b1 within 5 s of the rule allowing it"
    );
    assert!(
        !b1.ping(&text(&a_endpoint, "ipv4"), 2),
        "b1 started a flow to a1, which no rule allows"
    );
    assert!(!c1.ping(&b_address, 2), "tenant u reached tenant t's b1");
    assert!(
        !c1.ping(&text(&a_endpoint, "ipv4"), 2),
        "tenant u reached tenant t's a1"
    );
}

#[test]
fn endpoint_update_applies_groups() {
    let host = Host::start("sg-update");
    two_networks(&host, 76);
    group(
        &host,
        "t",
        "srv",
        &[&[
            "--ingress",
            "--proto",
            "tcp",
            "--port",
            "8080",
            "--from",
            "network:a",
        ]],
    );
    let (a1, b1) = (Netns::new("a1"), Netns::new("b1"));
    host.attach("t", "a", &a1, &[]);
    let b_endpoint = host.attach("t", "b", &b1, &[]);
    let _server = TcpServer::start(&b1, 8080);
    let name = text(&b_endpoint, "name");
    assert!(
        !tcp_reaches(&a1, socket(&b_endpoint, 8080)),
        "a1 reached b1:8080 before b1 joined srv"
    );

    host.cli_json(&[
        "endpoint", "update", &name, "--group", "srv", "--tenant", "t",
    ]);
    assert!(
        eventually(SETTLE, || tcp_reaches(&a1, socket(&b_endpoint, 8080))),
        "a1 cannot reach b1:8080 within 5 s of b1 joining srv"
    );

    host.cli_json(&["endpoint", "update", &name, "--no-groups", "--tenant", "t"]);
    assert!(
        eventually(SETTLE, || !tcp_reaches(&a1, socket(&b_endpoint, 8080))),
        "a1 still reaches b1:8080 5 s after b1 left srv"
    );
}

#[test]
fn flushed_ruleset_restored() {
    let host = Host::start("flush");
    two_networks(&host, 78);
    let (a1, b1) = (Netns::new("a1"), Netns::new("b1"));
    host.attach("t", "a", &a1, &[]);
    let b_endpoint = host.attach("t", "b", &b1, &[]);
    let _server = TcpServer::start(&b1, 8080);

    host.ns.exec_ok(&["nft", "flush", "ruleset"]);
    let flushed = Instant::now();
    let restored = eventually(SETTLE, || {
        let tables = host.ns.exec_ok(&["nft", "list", "tables"]);
        tables.contains("table bridge cloison") && tables.contains("table inet cloison")
    });
    let elapsed = flushed.elapsed();
    assert!(
        restored,
        "cloison's tables were not restored within 5 s of `nft flush ruleset`"
    );
    assert!(elapsed <= SETTLE, "restoring the tables took {elapsed:?}");

    // The restored tables filter again: a forged source is dropped and counted.
    a1.exec_ok(&["ip", "addr", "add", "10.78.0.99/32", "dev", "eth0"]);
    let dropped = spoof_dropped(&host);
    let _ = a1.exec(&[
        "ping",
        "-c",
        "2",
        "-W",
        "1",
        "-I",
        "10.78.0.99",
        &text(&b_endpoint, "ipv4"),
    ]);
    assert!(
        spoof_dropped(&host) > dropped,
        "the restored bridge table does not count forged packets"
    );
    assert!(
        !tcp_reaches(&a1, socket(&b_endpoint, 8080)),
        "a1 reached network b after the restore with no rule"
    );
}

#[test]
fn vxlan_from_unknown_vtep_dropped() {
    let host = Host::start("guard");
    host.create_network("t", "a", "10.80.0.0/24");
    let c1 = Netns::new("a1");
    host.attach("t", "a", &c1, &[]);

    // An outsider on a link of the host namespace, at an address no host has.
    let outsider = Netns::new("outsider");
    host.ns.exec_ok(&[
        "ip", "link", "add", "clgtest0", "type", "veth", "peer", "name", "clgtest1",
    ]);
    host.ns
        .exec_ok(&["ip", "link", "set", "clgtest1", "netns", &outsider.name]);
    host.ns
        .exec_ok(&["ip", "addr", "add", "198.51.100.1/24", "dev", "clgtest0"]);
    host.ns.exec_ok(&["ip", "link", "set", "clgtest0", "up"]);
    outsider.exec_ok(&["ip", "addr", "add", "198.51.100.2/24", "dev", "clgtest1"]);
    outsider.exec_ok(&["ip", "link", "set", "clgtest1", "up"]);
    assert!(
        outsider.ping("198.51.100.1", 3),
        "the outsider cannot reach the host namespace"
    );

    let before = nft_counter(&host.ns, "inet", "cloison", "vxlan_dropped");
    for _ in 0..3 {
        send_udp(
            &outsider,
            "198.51.100.1:4789".parse().expect("address"),
            b"not a VXLAN frame",
        );
    }
    send_udp(
        &outsider,
        "198.51.100.1:4790".parse().expect("address"),
        b"another port",
    );
    let counted = eventually(Duration::from_secs(2), || {
        nft_counter(&host.ns, "inet", "cloison", "vxlan_dropped") >= before + 3
    });
    let after = nft_counter(&host.ns, "inet", "cloison", "vxlan_dropped");
    assert!(
        counted,
        "vxlan_dropped went from {before} to {after} after 3 datagrams from an unknown VTEP"
    );
    assert_eq!(
        after,
        before + 3,
        "vxlan_dropped counted a datagram to a port other than 4789"
    );
}
