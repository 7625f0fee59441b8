//! Element updates over nftables netlink, checked against `nft` itself: a table
//! moved by element changes must list exactly as the same table loaded from a
//! script. Needs root and `nft`; every namespace is removed on drop.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::Command;

use cloison_dataplane::{Dataplane, NetlinkDataplane, NftElementsPlan, NftablesPlan};
use cloison_model::{Direction, Peer, Protocol, Rule};
use cloison_policy::{element_changes, expected_counts, generate, synthetic_input, transition_script, OwnedInput, Table};

/// A namespace made with `ip netns add`, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!("clelem-{}-{tag}", std::process::id());
        let status = Command::new("ip").args(["netns", "add", &name]).status().expect("cannot run ip");
        assert!(status.success(), "ip netns add {name} failed");
        Netns(name)
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.0))
    }

    /// Returns `nft list table FAMILY cloison` for each table.
    fn list(&self, tables: &[Table]) -> String {
        let mut listing = String::new();
        for table in tables {
            let output = Command::new("ip")
                .args(["netns", "exec", &self.0, "nft", "list", "table", table.family, table.name])
                .output()
                .expect("cannot run nft");
            assert!(output.status.success(), "nft list failed: {}", String::from_utf8_lossy(&output.stderr));
            listing.push_str(&String::from_utf8_lossy(&output.stdout));
        }
        listing
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Builds a dual-stack variant of the synthetic state, so IPv6 sets get elements too.
fn dual_stack(rules: usize, endpoints: usize) -> OwnedInput {
    let mut input = synthetic_input(rules, endpoints);
    for network in input.networks.values_mut() {
        network.subnet6 = "fd00:a::/64".parse().ok();
        network.gateway6 = Some(Ipv6Addr::new(0xfd00, 0xa, 0, 0, 0, 0, 0, 1));
    }
    for endpoint in input.endpoints.values_mut() {
        let low = u32::from(endpoint.ipv4) - u32::from(Ipv4Addr::new(10, 0, 0, 0));
        endpoint.ipv6 = Some(Ipv6Addr::new(0xfd00, 0xa, 0, 0, 0, 0, 0, low as u16));
    }
    input
}

/// Returns `tables` with every set and map emptied.
fn emptied(tables: &[Table]) -> Vec<Table> {
    let empty_set = |set: &cloison_policy::Set| cloison_policy::Set { elements: Default::default(), ..set.clone() };
    tables.iter().map(|t| Table { sets: t.sets.iter().map(empty_set).collect(), ..t.clone() }).collect()
}

async fn load(dataplane: &NetlinkDataplane, netns: &Netns, tables: &[Table]) {
    let plan = NftablesPlan {
        namespace: Some(netns.path()),
        script: transition_script(tables, None),
        tables: Vec::new(),
        forwarding: None,
    };
    dataplane.apply_nftables(&plan).await.expect("nft -f of the full tables");
}

#[tokio::test]
async fn netlink_elements_match_nft_script() {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test creates network namespaces; run it as root");
    let host = Netns::new("host");
    let run_dir = std::env::temp_dir().join(format!("clelem-{}", std::process::id()));
    let dataplane = NetlinkDataplane::in_namespace(host.path(), run_dir).expect("dataplane");
    let small = generate(&dual_stack(4, 1).as_input()).host;
    let large = generate(&dual_stack(4, 3).as_input()).host;

    let reference = Netns::new("reference");
    load(&dataplane, &reference, &large).await;
    let expected_large = reference.list(&large);
    load(&dataplane, &reference, &small).await;
    let expected_small = reference.list(&small);
    assert_ne!(expected_large, expected_small, "the two states differ in elements");
    assert!(expected_large.contains("fd00:a::4"), "IPv6 elements are listed: {expected_large}");

    load(&dataplane, &host, &small).await;
    let grow = element_changes(&large, &small).expect("only elements differ");
    assert!(!grow.is_empty());
    let plan = NftElementsPlan { namespace: Some(host.path()), changes: grow };
    dataplane.apply_nftables_elements(&plan).await.expect("add elements over netlink");
    assert_eq!(host.list(&large), expected_large, "after adding elements");

    let shrink = element_changes(&small, &large).expect("only elements differ");
    let plan = NftElementsPlan { namespace: Some(host.path()), changes: shrink };
    dataplane.apply_nftables_elements(&plan).await.expect("delete elements over netlink");
    assert_eq!(host.list(&small), expected_small, "after deleting elements");
}

#[tokio::test]
async fn rejected_batch_keeps_errno() {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test creates network namespaces; run it as root");
    let host = Netns::new("empty");
    let run_dir = std::env::temp_dir().join(format!("clelem-{}", std::process::id()));
    let dataplane = NetlinkDataplane::in_namespace(host.path(), run_dir).expect("dataplane");
    let tables = generate(&dual_stack(1, 1).as_input()).host;
    let empty = emptied(&tables);
    let changes = element_changes(&tables, &empty).expect("only elements differ");

    let plan = NftElementsPlan { namespace: Some(host.path()), changes };
    let error = dataplane.apply_nftables_elements(&plan).await.expect_err("no table in the namespace");
    assert_eq!(error.errno(), Some(libc::ENOENT), "{error}");
}

/// Host table changes reuse one kept socket. A rejected batch in between must not
/// leave acknowledgements that the next batch reads as its own.
#[tokio::test]
async fn kept_socket_survives_rejected_batch() {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test creates network namespaces; run it as root");
    let host = Netns::new("kept");
    let run_dir = std::env::temp_dir().join(format!("clelem-{}", std::process::id()));
    let dataplane = NetlinkDataplane::in_namespace(host.path(), run_dir).expect("dataplane");
    let small = generate(&dual_stack(4, 1).as_input()).host;
    let large = generate(&dual_stack(4, 3).as_input()).host;
    let grow = element_changes(&large, &small).expect("only elements differ");
    let shrink = element_changes(&small, &large).expect("only elements differ");
    let on_host = |changes: &Vec<_>| NftElementsPlan { namespace: None, changes: changes.clone() };
    load(&dataplane, &host, &small).await;

    for round in 0..3 {
        dataplane.apply_nftables_elements(&on_host(&grow)).await.unwrap_or_else(|e| panic!("round {round}: grow: {e}"));
        dataplane.apply_nftables_elements(&on_host(&shrink)).await.unwrap_or_else(|e| panic!("round {round}: shrink: {e}"));
        let again = dataplane.apply_nftables_elements(&on_host(&shrink)).await;
        assert_eq!(again.expect_err("elements are gone already").errno(), Some(libc::ENOENT), "round {round}");
    }
    dataplane.apply_nftables_elements(&on_host(&grow)).await.expect("grow after the rounds");

    let reference = Netns::new("kept-ref");
    load(&dataplane, &reference, &large).await;
    assert_eq!(host.list(&large), reference.list(&large), "host elements after the rounds");
}

/// Returns the sets (with their sorted elements) and chains (with their rules) of
/// every table, as `nft -j` lists them, so two tables compare equal whatever the
/// order in which their objects were created.
fn objects(netns: &Netns, tables: &[Table]) -> std::collections::BTreeMap<String, String> {
    let mut objects = std::collections::BTreeMap::new();
    for table in tables {
        let output = Command::new("ip")
            .args(["netns", "exec", &netns.0, "nft", "-j", "list", "table", table.family, table.name])
            .output()
            .expect("cannot run nft");
        assert!(output.status.success(), "nft -j list failed: {}", String::from_utf8_lossy(&output.stderr));
        let listing: serde_json::Value = serde_json::from_slice(&output.stdout).expect("nft -j prints JSON");
        let mut rules: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
        for object in listing["nftables"].as_array().into_iter().flatten() {
            if let Some(set) = object.get("set").or_else(|| object.get("map")) {
                let mut elements: Vec<String> = set["elem"].as_array().into_iter().flatten().map(|e| e.to_string()).collect();
                elements.sort();
                objects.insert(format!("{} set {}", table.family, set["name"]), format!("{} {} {elements:?}", set["type"], set["flags"]));
            } else if let Some(rule) = object.get("rule") {
                rules.entry(format!("{} chain {}", table.family, rule["chain"])).or_default().push(rule["expr"].to_string());
            } else if let Some(chain) = object.get("chain") {
                rules.entry(format!("{} chain {}", table.family, chain["name"])).or_default();
            }
        }
        objects.extend(rules.into_iter().map(|(name, rules)| (name, rules.join("\n"))));
    }
    objects
}

/// Adds endpoint `number` of the synthetic network to `input` in the groups `groups`.
fn with_endpoint(mut input: OwnedInput, number: u32, groups: &[&str]) -> OwnedInput {
    let mut endpoint = input.endpoints.values().next().cloned().expect("the synthetic state has endpoints");
    endpoint.id = format!("{number:08x}-0000-4000-8000-0000000000ff");
    endpoint.ipv4 = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + number);
    endpoint.ipv6 = None;
    endpoint.groups = groups.iter().map(|g| g.to_string()).collect();
    input.endpoints.insert(endpoint.id.clone(), endpoint);
    input
}

#[tokio::test]
async fn new_class_patches_table_in_place() {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test creates network namespaces; run it as root");
    let run_dir = std::env::temp_dir().join(format!("clelem-{}", std::process::id()));
    let patched = Netns::new("patched");
    let dataplane = NetlinkDataplane::in_namespace(patched.path(), run_dir).expect("dataplane");
    let mut base = dual_stack(20, 2);
    let mut other = base.groups.values().next().cloned().expect("the synthetic state has a group");
    other.name = "other".into();
    other.rules.truncate(3);
    base.groups.insert("bench/other".into(), other);
    let one_class = generate(&base.as_input()).host;
    let two_classes = generate(&with_endpoint(base.clone(), 200, &["big", "other"]).as_input()).host;

    let reference = Netns::new("fresh");
    load(&dataplane, &reference, &two_classes).await;
    let expected = objects(&reference, &two_classes);
    load(&dataplane, &patched, &one_class).await;
    let before = objects(&patched, &one_class);

    let grow = transition_script(&two_classes, Some(&one_class));
    assert!(!grow.contains("delete table"), "a new class must not replace the table:\n{grow}");
    assert!(grow.contains("add chain inet cloison in_"), "the new class gets its chain:\n{grow}");
    apply_script(&dataplane, &patched, grow).await;
    assert_eq!(objects(&patched, &two_classes), expected, "after a class appeared");

    let shrink = transition_script(&one_class, Some(&two_classes));
    assert!(shrink.contains("delete chain inet cloison in_"), "the class's chain goes:\n{shrink}");
    apply_script(&dataplane, &patched, shrink).await;
    assert_eq!(objects(&patched, &one_class), before, "after the class went");
}

async fn apply_script(dataplane: &NetlinkDataplane, netns: &Netns, script: String) {
    let plan = NftablesPlan { namespace: Some(netns.path()), script, tables: Vec::new(), forwarding: None };
    dataplane.apply_nftables(&plan).await.expect("nft -f of the patch");
}

#[tokio::test]
async fn mass_deletion_recreates_class_set() {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test creates network namespaces; run it as root");
    let run_dir = std::env::temp_dir().join(format!("clelem-{}", std::process::id()));
    let patched = Netns::new("recreated");
    let dataplane = NetlinkDataplane::in_namespace(patched.path(), run_dir).expect("dataplane");
    let many = generate(&dual_stack(1_000, 2).as_input()).host;
    let few = generate(&dual_stack(10, 2).as_input()).host;
    assert!(element_changes(&few, &many).is_none(), "990 deletions from one interval set are not sent as elements");

    let reference = Netns::new("fewrules");
    load(&dataplane, &reference, &few).await;
    let expected = objects(&reference, &few);
    load(&dataplane, &patched, &many).await;

    let shrink = transition_script(&few, Some(&many));
    assert!(!shrink.contains("delete table"), "the table is patched, not replaced:\n{shrink}");
    assert!(shrink.contains("delete set inet cloison in_"), "the class's set is recreated:\n{shrink}");
    assert!(!shrink.contains("delete element"), "no element is deleted one by one:\n{shrink}");
    apply_script(&dataplane, &patched, shrink).await;
    assert_eq!(objects(&patched, &few), expected, "after recreating the set");
}

/// Loads `tables` into a fresh namespace and checks that the kernel reports the
/// counts `expected_counts` derives, apart from interval sets.
async fn check_counts(tag: &str, tables: &[Table]) {
    let netns = Netns::new(tag);
    let run_dir = std::env::temp_dir().join(format!("clelem-{}", std::process::id()));
    let dataplane = NetlinkDataplane::in_namespace(netns.path(), run_dir).expect("dataplane");
    load(&dataplane, &netns, tables).await;
    let names: Vec<String> = tables.iter().map(|t| format!("{} {}", t.family, t.name)).collect();
    let mut read = dataplane.nftables_counts(Some(&netns.path()), &names).await.expect("count the loaded tables");
    let expected = expected_counts(tables);

    read.retain(|key, _| !expected.interval_sets.contains(key));
    assert_eq!(read, expected.counts, "{tag}: counts read from the kernel differ from the derived ones");
}

#[tokio::test]
async fn derived_counts_match_kernel() {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test creates network namespaces; run it as root");
    let rulesets = generate(&dual_stack(50, 3).as_input());
    assert!(!rulesets.routers.is_empty(), "the synthetic state has a router");

    check_counts("counts-host", &rulesets.host).await;
    for (index, router) in rulesets.routers.values().enumerate() {
        check_counts(&format!("counts-router{index}"), std::slice::from_ref(&router.table)).await;
    }
}

fn rule(direction: Direction, protocol: Protocol, ports: Option<(u16, u16)>, peer: &str) -> Rule {
    let peer = match peer.strip_prefix("network:") {
        Some(name) => Peer::Network(name.to_string()),
        None => Peer::Cidr(peer.parse().expect("valid prefix")),
    };
    Rule { direction, protocol, ports, peer }
}

/// Rules whose prefixes, protocols and ports overlap, in two groups that one
/// endpoint combines, and egress rules from a second network of the tenant.
fn overlapping_input() -> OwnedInput {
    use Direction::{Egress, Ingress};
    let mut input = dual_stack(0, 2);
    let big = input.groups.get_mut("bench/big").expect("the synthetic state has group big");
    big.rules = vec![
        rule(Ingress, Protocol::Tcp, Some((80, 90)), "10.0.0.0/8"),
        rule(Ingress, Protocol::Tcp, Some((85, 100)), "10.12.0.2/32"),
        rule(Ingress, Protocol::Tcp, None, "10.12.0.0/16"),
        rule(Ingress, Protocol::Any, None, "10.12.0.0/24"),
        rule(Ingress, Protocol::Icmp, None, "fd00::/16"),
        rule(Ingress, Protocol::Any, None, "fd00:a::/64"),
        rule(Egress, Protocol::Udp, Some((50, 60)), "network:a"),
        rule(Egress, Protocol::Udp, Some((55, 70)), "10.0.0.0/16"),
        rule(Egress, Protocol::Any, None, "10.0.0.0/16"),
        rule(Egress, Protocol::Udp, None, "network:a"),
    ];
    let mut other = big.clone();
    other.name = "other".into();
    other.rules = vec![rule(Ingress, Protocol::Tcp, Some((443, 443)), "10.12.0.2/32"), rule(Ingress, Protocol::Tcp, Some((1, 65535)), "10.12.0.0/24")];
    input.groups.insert("bench/other".into(), other);

    // A second network of the tenant whose endpoint is in both groups, so its
    // egress rules reach network a's endpoints on this host.
    let mut second = input.networks.values().next().cloned().expect("the synthetic state has a network");
    second.id = "net-b".into();
    second.name = "b".into();
    second.vni = 101;
    second.subnet = "10.1.0.0/16".parse().expect("literal");
    second.gateway = Ipv4Addr::new(10, 1, 0, 1);
    second.subnet6 = None;
    second.gateway6 = None;
    input.networks.insert(second.id.clone(), second);

    let mut member = input.endpoints.values().next().cloned().expect("the synthetic state has endpoints");
    member.id = "000000b1-0000-4000-8000-0000000000b1".into();
    member.network_id = "net-b".into();
    member.ipv4 = Ipv4Addr::new(10, 1, 0, 2);
    member.ipv6 = None;
    member.groups = vec!["big".into(), "other".into()];
    input.endpoints.insert(member.id.clone(), member);
    input
}

#[tokio::test]
async fn overlapping_rules_load() {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test creates network namespaces; run it as root");
    let netns = Netns::new("overlap");
    let run_dir = std::env::temp_dir().join(format!("clelem-{}", std::process::id()));
    let dataplane = NetlinkDataplane::in_namespace(netns.path(), run_dir).expect("dataplane");
    let input = overlapping_input();
    let full = generate(&input.as_input()).host;
    let allowed = full.iter().filter_map(|t| t.set("allow4_ports")).map(|s| s.elements.len()).sum::<usize>();
    assert!(allowed > 0, "the egress rules allow flows into network a");

    load(&dataplane, &netns, &full).await;

    // The same elements also go over netlink onto empty sets.
    let empty = emptied(&full);
    let other = Netns::new("overlap-netlink");
    load(&dataplane, &other, &empty).await;
    let changes = element_changes(&full, &empty).expect("only elements differ");
    let plan = NftElementsPlan { namespace: Some(other.path()), changes };
    dataplane.apply_nftables_elements(&plan).await.expect("overlapping rules' elements over netlink");
}
