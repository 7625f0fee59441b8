//! The reconciler's nftables handling against the recording fake dataplane.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use cloison_agent::Reconciler;
use common::ctx;
use cloison_dataplane::{FakeDataplane, Listener, NftElementsPlan, Recorded};
use cloison_model::{
    Direction, Endpoint, Host, MacAddr, Network, Peer, Protocol, Publication, PublishProtocol, Rule, SecurityGroup, WatchEvent,
    WatchObject,
};


fn network() -> Network {
    Network {
        id: "n1".into(),
        tenant: "t1".into(),
        name: "a".into(),
        vni: 10,
        subnet: "10.10.0.0/24".parse().expect("subnet"),
        subnet6: None,
        gateway: Ipv4Addr::new(10, 10, 0, 1),
        gateway6: None,
        gateway_mac: MacAddr::local_from_u64(10),
        mtu: None,
        external: false,
        flood: false,
        labels: BTreeMap::new(),
        resource_version: 1,
    }
}

fn endpoint(id: &str, last_octet: u8) -> Endpoint {
    Endpoint {
        id: id.into(),
        tenant: "t1".into(),
        name: format!("ep-{id}"),
        network: "a".into(),
        network_id: "n1".into(),
        host: "h1".into(),
        mac: MacAddr::local_from_u64(u64::from(last_octet) + 1000),
        ipv4: Ipv4Addr::new(10, 10, 0, last_octet),
        ipv6: None,
        ifname: "eth0".into(),
        sandbox: format!("/run/netns/{id}"),
        groups: vec!["web".into()],
        labels: BTreeMap::new(),
        // Created after every revision the tests' watch events carry, as an attach's
        // record is newer than what the watch delivered before it.
        resource_version: 100,
    }
}

fn group(rules: Vec<Rule>) -> SecurityGroup {
    SecurityGroup { id: "g1".into(), tenant: "t1".into(), name: "web".into(), rules, labels: BTreeMap::new(), resource_version: 1 }
}

fn host() -> Host {
    Host {
        name: "h1".into(),
        underlay_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        underlay_mtu: 1500,
        vxlan_port: 4789,
        last_heartbeat: 0,
        resource_version: 1,
    }
}

async fn synced() -> (Arc<FakeDataplane>, Reconciler) {
    let fake = Arc::new(FakeDataplane::new());
    let reconciler = Reconciler::new(fake.clone(), ctx());
    reconciler
        .apply_event(WatchEvent::Snapshot {
            revision: 1,
            networks: vec![network()],
            endpoints: vec![endpoint("e1", 2)],
            hosts: vec![host()],
            groups: vec![group(vec![])],
            publications: vec![],
        })
        .await;
    (fake, reconciler)
}

#[tokio::test]
async fn snapshot_replaces_host_tables() {
    let (fake, reconciler) = synced().await;
    let scripts = fake.nftables_scripts(None);
    assert_eq!(scripts.len(), 1, "one transaction for the host namespace");
    assert!(scripts[0].contains("delete table bridge cloison"), "{}", scripts[0]);
    assert!(scripts[0].contains("delete table inet cloison"), "{}", scripts[0]);
    let router = router_t1(&reconciler);
    assert_eq!(fake.nftables_scripts(Some(&router)).len(), 1, "one transaction for the router");
}

#[tokio::test]
async fn group_rule_sends_elements_only() {
    let (fake, reconciler) = synced().await;
    fake.take_log();
    let rule = Rule { direction: Direction::Ingress, protocol: Protocol::Tcp, ports: Some((80, 80)), peer: Peer::Any };
    reconciler.apply_event(WatchEvent::Put { revision: 2, object: WatchObject::Group(group(vec![rule])) }).await;
    let log = fake.take_log();
    let scripts = log.iter().filter(|r| matches!(r, Recorded::ApplyNftables(plan) if !plan.script.is_empty())).count();
    let updates: Vec<&NftElementsPlan> = log
        .iter()
        .filter_map(|r| match r {
            Recorded::ApplyNftablesElements(plan) if plan.namespace.is_none() => Some(plan),
            _ => None,
        })
        .collect();
    assert_eq!(scripts, 0, "no nft script: {log:?}");
    assert_eq!(updates.len(), 1, "{log:?}");
    let sets: Vec<(&str, &str, bool)> =
        updates[0].changes.iter().map(|c| (c.table.as_str(), c.set.as_str(), c.delete)).collect();
    let class_set = |(table, set, delete): &(&str, &str, bool)| *table == "cloison" && set.starts_with("in_") && set.ends_with("_4p") && !delete;
    assert!(sets.iter().any(class_set), "the rule goes to the ingress class's IPv4 port set: {sets:?}");
}

/// Returns the name of the ingress class set an element update of `log` added to.
fn class_set_added(log: &[Recorded]) -> Option<String> {
    log.iter().find_map(|record| match record {
        Recorded::ApplyNftablesElements(plan) => {
            plan.changes.iter().find(|c| !c.delete && c.set.starts_with("in_") && c.set.ends_with("_4p")).map(|c| c.set.clone())
        }
        _ => None,
    })
}

#[tokio::test]
async fn rejected_element_update_replaces_tables() {
    let (fake, reconciler) = synced().await;
    fake.flush_nftables();
    fake.take_log();
    let rule = Rule { direction: Direction::Ingress, protocol: Protocol::Tcp, ports: Some((80, 80)), peer: Peer::Any };
    reconciler.apply_event(WatchEvent::Put { revision: 2, object: WatchObject::Group(group(vec![rule])) }).await;
    let scripts = fake.nftables_scripts(None);
    assert_eq!(scripts.len(), 1, "the missing tables fail the update, which falls back to a replacement");
    assert!(scripts[0].contains("table inet cloison {"), "{}", scripts[0]);
}

#[tokio::test]
async fn unchanged_policy_applies_nothing() {
    let (fake, reconciler) = synced().await;
    fake.take_log();
    reconciler.apply_event(WatchEvent::Put { revision: 2, object: WatchObject::Group(group(vec![])) }).await;
    let applied = fake.take_log().into_iter().filter(|r| matches!(r, Recorded::ApplyNftables(_))).count();
    assert_eq!(applied, 0);
}

#[tokio::test]
async fn flushed_ruleset_is_restored_by_repair() {
    let (fake, reconciler) = synced().await;
    fake.flush_nftables();
    fake.take_log();
    reconciler.repair().await.expect("repair");
    let scripts = fake.nftables_scripts(None);
    assert_eq!(scripts.len(), 1, "the host tables are applied again");
    assert!(scripts[0].contains("table bridge cloison {"), "a full table, not elements: {}", scripts[0]);
    let router = router_t1(&reconciler);
    assert_eq!(fake.nftables_scripts(Some(&router)).len(), 1, "the router table is applied again");
}

#[tokio::test]
async fn emptied_set_is_replaced_by_repair() {
    let (fake, reconciler) = synced().await;
    fake.take_log();
    reconciler.repair().await.expect("repair");
    assert!(fake.nftables_scripts(None).is_empty(), "unchanged tables are left alone");

    fake.empty_nftables_set(None, "bridge cloison", "ports");
    reconciler.repair().await.expect("repair");
    let scripts = fake.nftables_scripts(None);
    assert_eq!(scripts.len(), 1, "the host tables are replaced");
    assert!(scripts[0].contains("delete table bridge cloison"), "a full replacement: {}", scripts[0]);
    let router = router_t1(&reconciler);
    assert!(fake.nftables_scripts(Some(&router)).is_empty(), "the router's table did not drift");

    fake.take_log();
    reconciler.repair().await.expect("repair");
    assert!(fake.nftables_scripts(None).is_empty(), "the replacement's counts become the expected ones");
}

#[tokio::test]
async fn element_update_keeps_repair_quiet() {
    let (fake, reconciler) = synced().await;
    let rule = Rule { direction: Direction::Ingress, protocol: Protocol::Tcp, ports: Some((80, 80)), peer: Peer::Any };
    reconciler.apply_event(WatchEvent::Put { revision: 2, object: WatchObject::Group(group(vec![rule])) }).await;
    reconciler.apply_event(WatchEvent::Put { revision: 3, object: WatchObject::Endpoint(endpoint("e2", 3)) }).await;
    fake.take_log();

    for _ in 0..2 {
        reconciler.repair().await.expect("repair");
    }

    assert!(fake.nftables_scripts(None).is_empty(), "element updates are counted, not taken for drift");
}

#[tokio::test]
async fn emptied_set_after_element_update_is_replaced() {
    let (fake, reconciler) = synced().await;
    let rule = Rule { direction: Direction::Ingress, protocol: Protocol::Tcp, ports: Some((80, 80)), peer: Peer::Any };
    fake.take_log();
    reconciler.apply_event(WatchEvent::Put { revision: 2, object: WatchObject::Group(group(vec![rule])) }).await;
    let class_set = class_set_added(&fake.take_log()).expect("the rule was sent as an element of its class's set");
    reconciler.repair().await.expect("repair");
    fake.take_log();

    fake.empty_nftables_set(None, "inet cloison", &class_set);
    reconciler.repair().await.expect("repair");

    assert_eq!(fake.nftables_scripts(None).len(), 1, "the host tables are replaced");
}

/// An endpoint whose host rules cannot be applied would have neither anti-spoofing
/// nor its groups: the attach fails and removes it, and attaches work again once
/// the rules apply.
#[tokio::test]
async fn attach_fails_when_host_rules_fail() {
    let (fake, reconciler) = synced().await;
    let reconciler = Arc::new(reconciler);
    fake.fail_host_nftables(true);

    let failed = reconciler.attach(network(), endpoint("e2", 3)).await;

    let error = failed.expect_err("the attach must fail while the host rules cannot be applied");
    assert!(error.to_string().contains("nftables"), "{error}");
    assert_eq!(fake.endpoint_ids(), vec!["e1".to_string()], "the new endpoint's interface is removed");

    fake.fail_host_nftables(false);
    reconciler.attach(network(), endpoint("e3", 4)).await.expect("attach once the rules apply");
    assert_eq!(fake.endpoint_ids(), vec!["e1".to_string(), "e3".to_string()]);
}

fn publication(host_port: u16) -> Publication {
    Publication {
        id: format!("p{host_port}"),
        tenant: "t1".into(),
        name: format!("ep-e1-{host_port}-tcp"),
        endpoint: "ep-e1".into(),
        endpoint_id: "e1".into(),
        host: "h1".into(),
        host_ip: None,
        host_port,
        port: 80,
        protocol: PublishProtocol::Tcp,
        resource_version: 1,
    }
}

/// Returns the namespace of tenant t1's router.
fn router_t1(reconciler: &Reconciler) -> PathBuf {
    reconciler.context().run_dir.join("netns").join("router-t1")
}

/// Returns true when a script applied to the router maps host port `port`.
fn port_published(fake: &FakeDataplane, reconciler: &Reconciler, port: u16) -> bool {
    fake.nftables_scripts(Some(&router_t1(reconciler))).iter().any(|s| s.contains(&format!("tcp . {port} :")))
}

/// A publication of a port that a host service listens on waits, so the service
/// keeps its traffic, and is programmed once the port is free.
#[tokio::test]
async fn publication_waits_for_used_port() {
    let (fake, reconciler) = synced().await;
    fake.set_host_listeners(vec![Listener { udp: false, address: IpAddr::V4(Ipv4Addr::UNSPECIFIED), port: 22 }]);
    fake.take_log();

    reconciler.apply_event(WatchEvent::Put { revision: 2, object: WatchObject::Publication(publication(22)) }).await;
    reconciler.apply_event(WatchEvent::Put { revision: 3, object: WatchObject::Publication(publication(8080)) }).await;
    assert!(port_published(&fake, &reconciler, 8080), "the free port 8080 is programmed");
    assert!(!port_published(&fake, &reconciler, 22), "port 22, which a host service uses, is programmed");

    fake.set_host_listeners(Vec::new());
    reconciler.repair().await.expect("repair");
    assert!(port_published(&fake, &reconciler, 22), "port 22 is programmed once free");
}
