//! The host watch filter driven by synthetic store batches, without a store.

use cloison_controller::HostWatchFilter;
use cloison_model::{Endpoint, Host, MacAddr, Network, SecurityGroup, WatchEvent, WatchObject};
use cloison_store::{Event, KeyValue, WatchBatch};

fn network(name: &str, vni: u32) -> Network {
    Network {
        id: format!("net-{name}"),
        tenant: "t1".into(),
        name: name.into(),
        vni,
        subnet: "10.0.0.0/24".parse().expect("subnet"),
        subnet6: None,
        gateway: "10.0.0.1".parse().expect("ip"),
        gateway6: None,
        gateway_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        mtu: None,
        external: false,
        flood: false,
        labels: Default::default(),
        resource_version: 0,
    }
}

fn endpoint(name: &str, network: &str, host: &str) -> Endpoint {
    Endpoint {
        id: format!("ep-{name}"),
        tenant: "t1".into(),
        name: name.into(),
        network: network.into(),
        network_id: format!("net-{network}"),
        host: host.into(),
        mac: MacAddr::local_from_u64(1),
        ipv4: "10.0.0.2".parse().expect("ip"),
        ipv6: None,
        ifname: "eth0".into(),
        sandbox: "/var/run/netns/x".into(),
        groups: vec![],
        labels: Default::default(),
        resource_version: 0,
    }
}

fn host(name: &str) -> Host {
    Host {
        name: name.into(),
        underlay_ip: "192.0.2.1".parse().expect("ip"),
        underlay_mtu: 1500,
        vxlan_port: 4789,
        last_heartbeat: 0,
        resource_version: 0,
    }
}

fn kv(key: String, value: &impl serde::Serialize, revision: u64) -> KeyValue {
    KeyValue {
        key,
        value: serde_json::to_vec(value).expect("encode"),
        create_revision: revision,
        mod_revision: revision,
    }
}

fn network_kv(n: &Network, revision: u64) -> KeyValue {
    kv(format!("/networks/{}/{}", n.tenant, n.name), n, revision)
}

fn endpoint_kv(e: &Endpoint, revision: u64) -> KeyValue {
    kv(format!("/endpoints/{}/{}", e.tenant, e.name), e, revision)
}

fn put_batch(kv: KeyValue) -> WatchBatch {
    WatchBatch { revision: kv.mod_revision, events: vec![Event::Put(kv)] }
}

fn delete_batch(prev: KeyValue, revision: u64) -> WatchBatch {
    WatchBatch { revision, events: vec![Event::Delete { prev, revision }] }
}

/// Names events as `put network web`, `delete endpoint a` for readable assertions.
fn describe(events: &[WatchEvent]) -> Vec<String> {
    events
        .iter()
        .map(|event| {
            let (verb, object) = match event {
                WatchEvent::Put { object, .. } => ("put", object),
                WatchEvent::Delete { object, .. } => ("delete", object),
                other => return format!("{other:?}"),
            };
            match object {
                WatchObject::Network(n) => format!("{verb} network {}", n.name),
                WatchObject::Endpoint(e) => format!("{verb} endpoint {}", e.name),
                WatchObject::Host(h) => format!("{verb} host {}", h.name),
                WatchObject::Group(g) => format!("{verb} group {}", g.name),
                WatchObject::Publication(p) => format!("{verb} publication {}", p.name),
            }
        })
        .collect()
}

#[test]
fn unrelated_network_is_filtered() {
    let mut filter = HostWatchFilter::new("h1");
    assert!(filter.apply(&put_batch(network_kv(&network("web", 10), 1))).is_empty());
    let remote = endpoint("r1", "web", "h2");
    assert!(filter.apply(&put_batch(endpoint_kv(&remote, 2))).is_empty());
    assert_eq!(filter.revision(), 2);
}

#[test]
fn first_local_endpoint_sends_network_and_members() {
    let mut filter = HostWatchFilter::new("h1");
    filter.apply(&put_batch(network_kv(&network("web", 10), 1)));
    filter.apply(&put_batch(endpoint_kv(&endpoint("r1", "web", "h2"), 2)));
    let events = filter.apply(&put_batch(endpoint_kv(&endpoint("l1", "web", "h1"), 3)));
    assert_eq!(describe(&events), ["put network web", "put endpoint l1", "put endpoint r1"]);
    assert!(events.iter().all(|e| e.revision() == 3));
}

#[test]
fn relevant_network_endpoints_pass_through() {
    let mut filter = HostWatchFilter::new("h1");
    filter.apply(&put_batch(network_kv(&network("web", 10), 1)));
    filter.apply(&put_batch(endpoint_kv(&endpoint("l1", "web", "h1"), 2)));
    let remote = endpoint_kv(&endpoint("r1", "web", "h2"), 3);
    assert_eq!(describe(&filter.apply(&put_batch(remote.clone()))), ["put endpoint r1"]);
    assert_eq!(describe(&filter.apply(&delete_batch(remote, 4))), ["delete endpoint r1"]);
}

#[test]
fn last_local_endpoint_withdraws_network() {
    let mut filter = HostWatchFilter::new("h1");
    filter.apply(&put_batch(network_kv(&network("web", 10), 1)));
    let local = endpoint_kv(&endpoint("l1", "web", "h1"), 2);
    filter.apply(&put_batch(local.clone()));
    filter.apply(&put_batch(endpoint_kv(&endpoint("r1", "web", "h2"), 3)));
    let events = filter.apply(&delete_batch(local, 4));
    assert_eq!(describe(&events), ["delete endpoint l1", "delete endpoint r1", "delete network web"]);
    // The network is no longer relevant, so remote changes are filtered again.
    assert!(filter.apply(&put_batch(endpoint_kv(&endpoint("r2", "web", "h2"), 5))).is_empty());
}

#[test]
fn second_local_endpoint_keeps_network() {
    let mut filter = HostWatchFilter::new("h1");
    filter.apply(&put_batch(network_kv(&network("web", 10), 1)));
    let first = endpoint_kv(&endpoint("l1", "web", "h1"), 2);
    filter.apply(&put_batch(first.clone()));
    filter.apply(&put_batch(endpoint_kv(&endpoint("l2", "web", "h1"), 3)));
    assert_eq!(describe(&filter.apply(&delete_batch(first, 4))), ["delete endpoint l1"]);
}

#[test]
fn hosts_always_pass_through() {
    let mut filter = HostWatchFilter::new("h1");
    let h2 = kv("/hosts/h2".into(), &host("h2"), 1);
    assert_eq!(describe(&filter.apply(&put_batch(h2.clone()))), ["put host h2"]);
    assert_eq!(describe(&filter.apply(&delete_batch(h2, 2))), ["delete host h2"]);
}

#[test]
fn allocation_keys_are_ignored() {
    let mut filter = HostWatchFilter::new("h1");
    let alloc = KeyValue { key: "/alloc/vni/10".into(), value: b"{}".to_vec(), create_revision: 1, mod_revision: 1 };
    assert!(filter.apply(&put_batch(alloc)).is_empty());
    assert_eq!(filter.revision(), 1);
}

#[test]
fn endpoint_update_is_one_put() {
    let mut filter = HostWatchFilter::new("h1");
    filter.apply(&put_batch(network_kv(&network("web", 10), 1)));
    let mut local = endpoint("l1", "web", "h1");
    filter.apply(&put_batch(endpoint_kv(&local, 2)));
    local.groups = vec!["db".into()];
    let events = filter.apply(&put_batch(endpoint_kv(&local, 3)));
    assert_eq!(describe(&events), ["put endpoint l1"]);
    // The update must not count the endpoint twice: one delete still withdraws the network.
    let events = filter.apply(&delete_batch(endpoint_kv(&local, 3), 4));
    assert_eq!(describe(&events), ["delete endpoint l1", "delete network web"]);
}

#[test]
fn snapshot_contains_only_relevant_state() {
    let kvs = vec![
        endpoint_kv(&endpoint("l1", "web", "h1"), 3),
        endpoint_kv(&endpoint("r1", "web", "h2"), 4),
        endpoint_kv(&endpoint("x1", "db", "h2"), 5),
        kv("/hosts/h1".into(), &host("h1"), 1),
        kv("/hosts/h2".into(), &host("h2"), 2),
        network_kv(&network("db", 11), 2),
        network_kv(&network("web", 10), 1),
    ];
    let (mut filter, snapshot) = HostWatchFilter::from_snapshot("h1", &kvs, 7);
    let WatchEvent::Snapshot { revision, networks, endpoints, hosts, groups, .. } = snapshot else {
        panic!("expected a snapshot, got {snapshot:?}");
    };
    assert_eq!(revision, 7);
    assert_eq!(networks.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["web"]);
    assert_eq!(endpoints.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["l1", "r1"]);
    assert_eq!(endpoints[0].resource_version, 3);
    assert_eq!(hosts.len(), 2);
    assert!(groups.is_empty());
    // State carried over from the snapshot: the db network becomes relevant later.
    let events = filter.apply(&put_batch(endpoint_kv(&endpoint("l2", "db", "h1"), 8)));
    assert_eq!(describe(&events), ["put network db", "put endpoint l2", "put endpoint x1"]);
}

fn group(tenant: &str, name: &str) -> SecurityGroup {
    SecurityGroup {
        id: format!("g-{name}"),
        tenant: tenant.into(),
        name: name.into(),
        rules: vec![],
        labels: Default::default(),
        resource_version: 0,
    }
}

fn group_kv(g: &SecurityGroup, revision: u64) -> KeyValue {
    kv(format!("/groups/{}/{}", g.tenant, g.name), g, revision)
}

#[test]
fn groups_follow_tenant_relevance() {
    let mut filter = HostWatchFilter::new("h1");
    filter.apply(&put_batch(network_kv(&network("web", 10), 1)));
    assert!(filter.apply(&put_batch(group_kv(&group("t1", "g1"), 2))).is_empty(), "no network of t1 on h1 yet");
    let local = endpoint("l1", "web", "h1");
    let events = filter.apply(&put_batch(endpoint_kv(&local, 3)));
    assert_eq!(describe(&events), ["put group g1", "put network web", "put endpoint l1"]);
    let events = filter.apply(&put_batch(group_kv(&group("t1", "g2"), 4)));
    assert_eq!(describe(&events), ["put group g2"]);
    let events = filter.apply(&put_batch(group_kv(&group("t2", "other"), 5)));
    assert!(events.is_empty(), "a group of another tenant reached h1: {events:?}");
    let events = filter.apply(&delete_batch(endpoint_kv(&local, 3), 6));
    assert_eq!(describe(&events), ["delete endpoint l1", "delete network web", "delete group g1", "delete group g2"]);
}

#[test]
fn snapshot_carries_groups_of_relevant_tenants() {
    let kvs = vec![
        endpoint_kv(&endpoint("l1", "web", "h1"), 3),
        group_kv(&group("t1", "g1"), 4),
        group_kv(&group("t2", "g9"), 5),
        network_kv(&network("web", 10), 1),
    ];
    let (_, snapshot) = HostWatchFilter::from_snapshot("h1", &kvs, 7);
    let WatchEvent::Snapshot { groups, .. } = snapshot else {
        panic!("expected a snapshot, got {snapshot:?}");
    };
    assert_eq!(groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["g1"]);
}
