//! Snapshot tests of the generated rulesets. Run with `UPDATE_SNAPSHOTS=1` to
//! rewrite the files under `tests/snapshots/` after an intended change, then review
//! the diff.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use cloison_model::{Direction, Endpoint, Host, MacAddr, Network, Peer, Protocol, Rule, SecurityGroup};
use cloison_policy::{generate, synthetic_input, transition_script, OwnedInput};

fn network(tenant: &str, name: &str, vni: u32, subnet: &str, subnet6: Option<&str>) -> Network {
    let subnet: ipnet::Ipv4Net = subnet.parse().expect("subnet");
    Network {
        id: format!("{tenant}-{name}"),
        tenant: tenant.into(),
        name: name.into(),
        vni,
        subnet,
        subnet6: subnet6.map(|s| s.parse().expect("subnet6")),
        gateway: Ipv4Addr::from(u32::from(subnet.network()) + 1),
        gateway6: subnet6.map(|s| {
            let net: ipnet::Ipv6Net = s.parse().expect("subnet6");
            Ipv6Addr::from(u128::from(net.network()) + 1)
        }),
        gateway_mac: MacAddr([0x02, 0, 0, 0, 0xff, vni as u8]),
        mtu: None,
        external: false,
        flood: false,
        labels: BTreeMap::new(),
        resource_version: 0,
    }
}

fn endpoint(id: &str, network: &Network, host: &str, last: u8, groups: &[&str]) -> Endpoint {
    Endpoint {
        id: id.into(),
        tenant: network.tenant.clone(),
        name: format!("ep-{last}"),
        network: network.name.clone(),
        network_id: network.id.clone(),
        host: host.into(),
        mac: MacAddr([0x02, 0x42, 0, 0, network.vni as u8, last]),
        ipv4: Ipv4Addr::from(u32::from(network.subnet.network()) + u32::from(last)),
        ipv6: network.subnet6.map(|n| Ipv6Addr::from(u128::from(n.network()) + u128::from(last))),
        ifname: "eth0".into(),
        sandbox: format!("/run/netns/{id}"),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        labels: BTreeMap::new(),
        resource_version: 0,
    }
}

fn rule(direction: Direction, protocol: Protocol, ports: Option<(u16, u16)>, peer: Peer) -> Rule {
    Rule { direction, protocol, ports, peer }
}

fn group(tenant: &str, name: &str, rules: Vec<Rule>) -> SecurityGroup {
    SecurityGroup { id: format!("g-{name}"), tenant: tenant.into(), name: name.into(), rules, labels: BTreeMap::new(), resource_version: 0 }
}

fn host(name: &str, ip: [u8; 4]) -> Host {
    Host { name: name.into(), underlay_ip: IpAddr::from(ip), underlay_mtu: 1500, vxlan_port: 4789, last_heartbeat: 0, resource_version: 0 }
}

/// Tenant t1 with dual-stack network a and IPv4 network b, tenant t2 whose network c
/// reuses a's subnet; endpoints on h1 and h2.
fn two_tenants() -> OwnedInput {
    let a = network("t1", "a", 101, "10.1.0.0/24", Some("fd00:1::/64"));
    let b = network("t1", "b", 102, "10.2.0.0/24", None);
    let c = network("t2", "c", 201, "10.1.0.0/24", None);
    let mut input = OwnedInput { host: "h1".into(), vxlan_port: 4789, ..OwnedInput::default() };
    for e in [
        endpoint("a1000000-0000-0000-0000-000000000000", &a, "h1", 2, &["web"]),
        endpoint("a2000000-0000-0000-0000-000000000000", &a, "h2", 3, &["web"]),
        endpoint("b1000000-0000-0000-0000-000000000000", &b, "h1", 2, &["db"]),
        endpoint("c1000000-0000-0000-0000-000000000000", &c, "h1", 2, &[]),
    ] {
        input.endpoints.insert(e.id.clone(), e);
    }
    for n in [a, b, c] {
        input.networks.insert(n.id.clone(), n);
    }
    let web = group("t1", "web", vec![
        rule(Direction::Ingress, Protocol::Tcp, Some((80, 80)), Peer::Network("b".into())),
        rule(Direction::Ingress, Protocol::Icmp, None, Peer::Cidr("192.0.2.0/24".parse().expect("cidr"))),
        rule(Direction::Egress, Protocol::Udp, Some((5000, 5010)), Peer::Group("db".into())),
    ]);
    let db = group("t1", "db", vec![rule(Direction::Ingress, Protocol::Tcp, Some((5432, 5432)), Peer::Group("web".into()))]);
    input.groups.insert("t1/web".into(), web);
    input.groups.insert("t1/db".into(), db);
    input.hosts.insert("h1".into(), host("h1", [192, 0, 2, 11]));
    input.hosts.insert("h2".into(), host("h2", [192, 0, 2, 12]));
    input
}

/// Compares `actual` with the snapshot file `name`, or rewrites the file when
/// `UPDATE_SNAPSHOTS` is set.
fn assert_snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read snapshot {}: {e}; run with UPDATE_SNAPSHOTS=1 to create it", path.display()));
    assert_eq!(actual, expected, "ruleset differs from snapshot {name}; run with UPDATE_SNAPSHOTS=1 and review the diff");
}

#[test]
fn host_tables_match_snapshot() {
    let input = two_tenants();
    let rulesets = generate(&input.as_input());
    assert_snapshot("host.nft", &transition_script(&rulesets.host, None));
}

#[test]
fn router_tables_match_snapshot() {
    let input = two_tenants();
    let rulesets = generate(&input.as_input());
    let t1 = &rulesets.routers["t1"];
    let t2 = &rulesets.routers["t2"];
    assert!(t1.forwarding, "t1 has a rule naming network b, so its router forwards");
    assert!(!t2.forwarding, "t2 has no rule, so its router does not forward");
    assert_snapshot("router-t1.nft", &transition_script(std::slice::from_ref(&t1.table), None));
    assert_snapshot("router-t2.nft", &transition_script(std::slice::from_ref(&t2.table), None));
}

#[test]
fn attach_renders_element_commands_only() {
    let before = two_tenants();
    let mut after = before.clone();
    let a = after.networks["t1-a"].clone();
    let new = endpoint("a3000000-0000-0000-0000-000000000000", &a, "h1", 4, &[]);
    after.endpoints.insert(new.id.clone(), new);
    let old = generate(&before.as_input());
    let new = generate(&after.as_input());
    let script = transition_script(&new.host, Some(&old.host));
    assert!(!script.contains("delete table"), "an attach must not replace tables:\n{script}");
    assert_snapshot("attach.nft", &script);
}

#[test]
fn new_group_rule_changes_elements_only() {
    let before = two_tenants();
    let mut after = before.clone();
    if let Some(db) = after.groups.get_mut("t1/db") {
        db.rules.push(rule(Direction::Ingress, Protocol::Any, None, Peer::Any));
    }
    let old = generate(&before.as_input());
    let new = generate(&after.as_input());
    let script = transition_script(&new.host, Some(&old.host));
    assert!(script.starts_with("add element inet cloison allow4"), "unexpected script:\n{script}");
    assert!(script.contains("\"clb000066\" . 10.2.0.2 . 0.0.0.0/0 . 0-255"), "rule from any missing:\n{script}");
}

#[test]
fn tenants_never_share_elements() {
    let input = two_tenants();
    let rulesets = generate(&input.as_input());
    let host = rulesets.host[1].render();
    // Network c of t2 (VNI 201 = 0xc9) reuses a's subnet but lives on its own bridge.
    assert!(host.contains("\"clb0000c9\" . 10.1.0.0/24"), "{host}");
    let allows: Vec<&str> = host.lines().filter(|l| l.contains("clb0000c9") && l.contains(" . tcp")).collect();
    assert!(allows.is_empty(), "t2 has no rule yet got allow elements: {allows:?}");
}

#[test]
fn benchmark_input_scales_to_many_rules() {
    let input = synthetic_input(10_000, 2);
    let rulesets = generate(&input.as_input());
    let allow = rulesets.host[1].set("allow4_ports").map_or(0, |s| s.elements.len());
    assert_eq!(allow, 20_000, "one element per rule and endpoint");
}
