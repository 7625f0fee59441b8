//! Snapshot tests of the generated rulesets. Run with `UPDATE_SNAPSHOTS=1` to
//! rewrite the files under `tests/snapshots/` after an intended change, then review
//! the diff.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use cloison_model::{Direction, Endpoint, Host, MacAddr, Network, Peer, Protocol, Rule, SecurityGroup};
use cloison_policy::{generate, synthetic_input, transition_script, Generator, OwnedInput};

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
    assert!(script.lines().all(|l| l.starts_with("add element inet cloison in_")), "unexpected script:\n{script}");
    assert!(script.contains("_4 { 0.0.0.0/0 . 0-255 }"), "rule from any missing:\n{script}");
    assert!(script.contains("_6 { ::/0 . 0-255 }"), "rule from any missing:\n{script}");
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
    let host = &rulesets.host[1];
    let allow: usize = host.sets.iter().filter(|s| s.name.starts_with("in_") && s.name.ends_with("_4p")).map(|s| s.elements.len()).sum();
    assert_eq!(allow, 10_000, "one element per rule, whatever the number of endpoints");
    assert_eq!(host.set("ingress4").map_or(0, |s| s.elements.len()), 2, "one map element per endpoint");
}

/// Tenant t1 with network a (a1 on h1, in group `ga`) and network b whose only
/// endpoint is on h2; `ga` accepts ICMP from network b. Tenant t3 has network x with
/// an endpoint on h2 only.
fn peer_elsewhere() -> OwnedInput {
    let a = network("t1", "a", 101, "10.1.0.0/24", None);
    let b = network("t1", "b", 102, "10.2.0.0/24", None);
    let x = network("t3", "x", 301, "10.3.0.0/24", None);
    let mut input = OwnedInput { host: "h1".into(), vxlan_port: 4789, ..OwnedInput::default() };
    for e in [
        endpoint("a1000000-0000-0000-0000-000000000000", &a, "h1", 2, &["ga"]),
        endpoint("b2000000-0000-0000-0000-000000000000", &b, "h2", 3, &[]),
        endpoint("x2000000-0000-0000-0000-000000000000", &x, "h2", 3, &[]),
    ] {
        input.endpoints.insert(e.id.clone(), e);
    }
    for n in [a, b, x] {
        input.networks.insert(n.id.clone(), n);
    }
    let ga = group("t1", "ga", vec![rule(Direction::Ingress, Protocol::Icmp, None, Peer::Network("b".into()))]);
    input.groups.insert("t1/ga".into(), ga);
    input.hosts.insert("h1".into(), host("h1", [192, 0, 2, 11]));
    input.hosts.insert("h2".into(), host("h2", [192, 0, 2, 12]));
    input
}

#[test]
fn router_routes_to_network_elsewhere() {
    let input = peer_elsewhere();
    let rulesets = generate(&input.as_input());
    let t1 = &rulesets.routers["t1"];
    let routed: Vec<&String> = t1.table.set("routed4").map(|s| s.elements.iter().collect()).unwrap_or_default();
    assert!(t1.forwarding, "t1's router must forward between a and b");
    assert!(routed.contains(&&"10.2.0.0/24 . 10.1.0.0/24".to_string()), "b to a is not routed: {routed:?}");
    assert!(routed.contains(&&"10.1.0.0/24 . 10.2.0.0/24".to_string()), "replies from a to b are not routed: {routed:?}");
    assert!(!rulesets.routers.contains_key("t3"), "t3 has no endpoint on h1 yet got a router table");
}

#[test]
fn host_carries_every_network_of_its_tenants() {
    let input = peer_elsewhere();
    let rulesets = generate(&input.as_input());
    let host = &rulesets.host[1];
    let zones: Vec<&String> = host.set("bridge_zone").map(|s| s.elements.iter().collect()).unwrap_or_default();
    // VNI 102 (network b) is 0x66, VNI 301 (network x of t3) is 0x12d.
    assert!(zones.iter().any(|z| z.contains("clb000066")), "network b has no conntrack zone: {zones:?}");
    assert!(!zones.iter().any(|z| z.contains("clb00012d")), "t3's network x got a zone on h1: {zones:?}");
    let rendered = host.render();
    let from_b: Vec<&str> = rendered.lines().filter(|l| l.contains("10.2.0.0/24") && !l.contains("clb000066")).collect();
    assert!(!from_b.is_empty(), "a1's rule from network b allows nothing:\n{rendered}");
}

/// One change to the desired state, applied between two generations.
type Step = fn(&mut OwnedInput);

#[test]
fn reused_generator_matches_fresh_one() {
    let steps: [(&str, Step); 9] = [
        ("local endpoint attached", |input| {
            if let Some(a) = input.networks.get("t1-a").cloned() {
                let a3 = endpoint("a3000000-0000-0000-0000-000000000000", &a, "h1", 4, &["web"]);
                input.endpoints.insert(a3.id.clone(), a3);
            }
        }),
        ("local endpoint gets another MAC", |input| {
            if let Some(a3) = input.endpoints.get_mut("a3000000-0000-0000-0000-000000000000") {
                a3.mac = MacAddr([0x02, 0x42, 0, 0, 0xee, 4]);
            }
        }),
        ("local endpoint detached", |input| {
            input.endpoints.remove("a3000000-0000-0000-0000-000000000000");
        }),
        ("new ingress rule", |input| {
            if let Some(db) = input.groups.get_mut("t1/db") {
                db.rules.push(rule(Direction::Ingress, Protocol::Udp, Some((53, 53)), Peer::Any));
            }
        }),
        ("peer group loses a member", |input| {
            input.endpoints.remove("a2000000-0000-0000-0000-000000000000");
        }),
        ("peer network gets a second subnet", |input| {
            if let Some(b) = input.networks.get_mut("t1-b") {
                b.subnet6 = "fd00:2::/64".parse().ok();
            }
        }),
        ("endpoint joins a second group", |input| {
            if let Some(a1) = input.endpoints.get_mut("a1000000-0000-0000-0000-000000000000") {
                a1.groups.push("db".into());
            }
        }),
        ("group deleted", |input| {
            input.groups.remove("t1/db");
        }),
        ("endpoint without groups", |input| {
            if let Some(b1) = input.endpoints.get_mut("b1000000-0000-0000-0000-000000000000") {
                b1.groups.clear();
            }
        }),
    ];
    let mut input = two_tenants();
    let mut generator = Generator::default();
    assert_eq!(generator.generate(&input.as_input()), generate(&input.as_input()), "first generation");
    for (name, step) in steps {
        step(&mut input);
        assert_eq!(generator.generate(&input.as_input()), generate(&input.as_input()), "after: {name}");
    }
}

#[test]
fn bridge_table_alone_matches_generation() {
    let input = two_tenants();
    let mut generator = Generator::default();
    let host = generate(&input.as_input()).host;
    assert_eq!(host.first(), Some(&generator.bridge_table(&input.as_input())));
}
