//! The host watch filter over the shared deployment index, driven by synthetic store
//! batches, without a store.

use cloison_controller::{DeploymentIndex, HostWatchFilter};
use cloison_model::{Endpoint, Host, MacAddr, Network, SecurityGroup, WatchEvent, WatchObject};
use cloison_store::{Event, KeyValue, WatchBatch};

fn network_of(tenant: &str, name: &str, vni: u32) -> Network {
    Network {
        id: format!("net-{tenant}-{name}"),
        tenant: tenant.into(),
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

fn network(name: &str, vni: u32) -> Network {
    network_of("t1", name, vni)
}

fn endpoint_of(tenant: &str, name: &str, network: &str, host: &str) -> Endpoint {
    Endpoint {
        id: format!("ep-{tenant}-{name}"),
        tenant: tenant.into(),
        name: name.into(),
        network: network.into(),
        network_id: format!("net-{tenant}-{network}"),
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

fn endpoint(name: &str, network: &str, host: &str) -> Endpoint {
    endpoint_of("t1", name, network, host)
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

fn group_kv(g: &SecurityGroup, revision: u64) -> KeyValue {
    kv(format!("/groups/{}/{}", g.tenant, g.name), g, revision)
}

fn put_batch(kv: KeyValue) -> WatchBatch {
    WatchBatch { revision: kv.mod_revision, events: vec![Event::Put(kv)] }
}

fn delete_batch(prev: KeyValue, revision: u64) -> WatchBatch {
    WatchBatch { revision, events: vec![Event::Delete { prev, revision }] }
}

/// One index shared by the filters of several hosts, as in the controller.
struct Watches {
    index: DeploymentIndex,
    filters: Vec<HostWatchFilter>,
}

impl Watches {
    fn new(hosts: &[&str]) -> Self {
        let index = DeploymentIndex::default();
        let filters = hosts.iter().map(|h| HostWatchFilter::resume(h, &index)).collect();
        Watches { index, filters }
    }

    /// Applies a batch and returns the events of each host, in the order of `new`.
    fn apply_all(&mut self, batch: &WatchBatch) -> Vec<Vec<WatchEvent>> {
        let mut out = vec![Vec::new(); self.filters.len()];
        let filters = &mut self.filters;
        self.index.apply(batch, |index, change| {
            for (filter, events) in filters.iter_mut().zip(out.iter_mut()) {
                events.extend(filter.apply(index, change));
            }
        });
        out
    }

    /// Applies a batch and returns the first host's events.
    fn apply(&mut self, batch: &WatchBatch) -> Vec<WatchEvent> {
        self.apply_all(batch).swap_remove(0)
    }
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
fn tenant_without_local_endpoint_is_filtered() {
    let mut watches = Watches::new(&["h1"]);
    assert!(watches.apply(&put_batch(network_kv(&network("web", 10), 1))).is_empty());
    let remote = endpoint("r1", "web", "h2");
    assert!(watches.apply(&put_batch(endpoint_kv(&remote, 2))).is_empty());
    assert_eq!(watches.filters[0].revision(), 2);
}

#[test]
fn first_local_endpoint_sends_tenant() {
    let mut watches = Watches::new(&["h1"]);
    watches.apply(&put_batch(network_kv(&network("web", 10), 1)));
    watches.apply(&put_batch(network_kv(&network("db", 11), 2)));
    watches.apply(&put_batch(endpoint_kv(&endpoint("r1", "web", "h2"), 3)));
    watches.apply(&put_batch(endpoint_kv(&endpoint("x1", "db", "h2"), 4)));
    let events = watches.apply(&put_batch(endpoint_kv(&endpoint("l1", "web", "h1"), 5)));
    assert_eq!(
        describe(&events),
        ["put network db", "put network web", "put endpoint l1", "put endpoint r1", "put endpoint x1"]
    );
    assert!(events.iter().all(|e| e.revision() == 5));
    // Both networks now pass through, the one without a local endpoint too.
    let events = watches.apply(&put_batch(endpoint_kv(&endpoint("x2", "db", "h2"), 6)));
    assert_eq!(describe(&events), ["put endpoint x2"]);
}

#[test]
fn other_tenant_host_receives_nothing() {
    let mut watches = Watches::new(&["h1", "h2"]);
    watches.apply_all(&put_batch(network_kv(&network_of("t", "a", 10), 1)));
    watches.apply_all(&put_batch(network_kv(&network_of("u", "a", 20), 2)));
    watches.apply_all(&put_batch(endpoint_kv(&endpoint_of("u", "u1", "a", "h2"), 3)));
    let events = watches.apply_all(&put_batch(endpoint_kv(&endpoint_of("t", "t1", "a", "h1"), 4)));
    assert_eq!(describe(&events[0]), ["put network a", "put endpoint t1"]);
    assert!(events[1].is_empty(), "h2 of tenant u received {events:?}");
    let events = watches.apply_all(&put_batch(network_kv(&network_of("t", "b", 11), 5)));
    assert_eq!(describe(&events[0]), ["put network b"]);
    assert!(events[1].is_empty(), "h2 of tenant u received {events:?}");
    let events = watches.apply_all(&put_batch(group_kv(&group("t", "g"), 6)));
    assert!(events[1].is_empty(), "h2 of tenant u received {events:?}");
}

#[test]
fn new_network_of_present_tenant_sent() {
    let mut watches = Watches::new(&["h1"]);
    watches.apply(&put_batch(network_kv(&network("a", 10), 1)));
    watches.apply(&put_batch(endpoint_kv(&endpoint("l1", "a", "h1"), 2)));
    assert_eq!(describe(&watches.apply(&put_batch(network_kv(&network("b", 11), 3)))), ["put network b"]);
    let remote = endpoint_kv(&endpoint("r1", "b", "h2"), 4);
    assert_eq!(describe(&watches.apply(&put_batch(remote.clone()))), ["put endpoint r1"]);
    assert_eq!(describe(&watches.apply(&delete_batch(remote, 5))), ["delete endpoint r1"]);
    let b = network_kv(&network("b", 11), 3);
    assert_eq!(describe(&watches.apply(&delete_batch(b, 6))), ["delete network b"]);
}

#[test]
fn last_local_endpoint_withdraws_tenant() {
    let mut watches = Watches::new(&["h1"]);
    watches.apply(&put_batch(network_kv(&network("web", 10), 1)));
    watches.apply(&put_batch(network_kv(&network("db", 11), 2)));
    let local = endpoint_kv(&endpoint("l1", "web", "h1"), 3);
    watches.apply(&put_batch(local.clone()));
    watches.apply(&put_batch(endpoint_kv(&endpoint("r1", "db", "h2"), 4)));
    let events = watches.apply(&delete_batch(local, 5));
    assert_eq!(describe(&events), ["delete endpoint l1", "delete endpoint r1", "delete network db", "delete network web"]);
    // The tenant is no longer relevant, so its changes are filtered again.
    assert!(watches.apply(&put_batch(endpoint_kv(&endpoint("r2", "web", "h2"), 6))).is_empty());
    assert!(watches.apply(&put_batch(network_kv(&network("new", 12), 7))).is_empty());
}

#[test]
fn other_network_endpoint_keeps_tenant() {
    let mut watches = Watches::new(&["h1"]);
    watches.apply(&put_batch(network_kv(&network("web", 10), 1)));
    watches.apply(&put_batch(network_kv(&network("db", 11), 2)));
    let first = endpoint_kv(&endpoint("l1", "web", "h1"), 3);
    watches.apply(&put_batch(first.clone()));
    assert_eq!(describe(&watches.apply(&put_batch(endpoint_kv(&endpoint("l2", "db", "h1"), 4)))), ["put endpoint l2"]);
    assert_eq!(describe(&watches.apply(&delete_batch(first, 5))), ["delete endpoint l1"]);
}

#[test]
fn hosts_always_pass_through() {
    let mut watches = Watches::new(&["h1"]);
    let h2 = kv("/hosts/h2".into(), &host("h2"), 1);
    assert_eq!(describe(&watches.apply(&put_batch(h2.clone()))), ["put host h2"]);
    assert_eq!(describe(&watches.apply(&delete_batch(h2, 2))), ["delete host h2"]);
}

#[test]
fn heartbeat_only_host_write_is_not_sent() {
    let mut watches = Watches::new(&["h1"]);
    let mut h2 = host("h2");
    watches.apply(&put_batch(kv("/hosts/h2".into(), &h2, 1)));
    h2.last_heartbeat = 10;
    assert!(watches.apply(&put_batch(kv("/hosts/h2".into(), &h2, 2))).is_empty());
    assert_eq!(watches.index.revision(), 2);
    h2.underlay_ip = "192.0.2.2".parse().expect("ip");
    assert_eq!(describe(&watches.apply(&put_batch(kv("/hosts/h2".into(), &h2, 3)))), ["put host h2"]);
    // The snapshot carries the host as the index has it, heartbeat time included.
    let (_, snapshot) = HostWatchFilter::start("h1", &watches.index);
    let WatchEvent::Snapshot { hosts, .. } = snapshot else {
        panic!("expected a snapshot, got {snapshot:?}");
    };
    assert_eq!(hosts, [Host { resource_version: 3, ..h2 }]);
}

#[test]
fn allocation_keys_are_ignored() {
    let mut watches = Watches::new(&["h1"]);
    let alloc = KeyValue { key: "/alloc/vni/10".into(), value: b"{}".to_vec(), create_revision: 1, mod_revision: 1 };
    assert!(watches.apply(&put_batch(alloc)).is_empty());
    assert_eq!(watches.index.revision(), 1);
}

#[test]
fn endpoint_update_is_one_put() {
    let mut watches = Watches::new(&["h1"]);
    watches.apply(&put_batch(network_kv(&network("web", 10), 1)));
    let mut local = endpoint("l1", "web", "h1");
    watches.apply(&put_batch(endpoint_kv(&local, 2)));
    local.groups = vec!["db".into()];
    let events = watches.apply(&put_batch(endpoint_kv(&local, 3)));
    assert_eq!(describe(&events), ["put endpoint l1"]);
    // The update must not count the endpoint twice: one delete still withdraws the tenant.
    let events = watches.apply(&delete_batch(endpoint_kv(&local, 3), 4));
    assert_eq!(describe(&events), ["delete endpoint l1", "delete network web"]);
}

#[test]
fn moved_endpoint_moves_tenant() {
    let mut watches = Watches::new(&["h1", "h2"]);
    watches.apply_all(&put_batch(network_kv(&network("web", 10), 1)));
    watches.apply_all(&put_batch(endpoint_kv(&endpoint("e1", "web", "h1"), 2)));
    let events = watches.apply_all(&put_batch(endpoint_kv(&endpoint("e1", "web", "h2"), 3)));
    assert_eq!(describe(&events[0]), ["put endpoint e1", "delete endpoint e1", "delete network web"]);
    assert_eq!(describe(&events[1]), ["put network web", "put endpoint e1"]);
}

#[test]
fn snapshot_contains_only_relevant_tenants() {
    let kvs = vec![
        endpoint_kv(&endpoint("l1", "web", "h1"), 3),
        endpoint_kv(&endpoint("r1", "web", "h2"), 4),
        endpoint_kv(&endpoint("x1", "db", "h2"), 5),
        endpoint_kv(&endpoint_of("t2", "o1", "other", "h2"), 6),
        kv("/hosts/h1".into(), &host("h1"), 1),
        kv("/hosts/h2".into(), &host("h2"), 2),
        network_kv(&network("db", 11), 2),
        network_kv(&network("web", 10), 1),
        network_kv(&network_of("t2", "other", 12), 2),
    ];
    let mut index = DeploymentIndex::from_range(&kvs, 7);
    let (mut filter, snapshot) = HostWatchFilter::start("h1", &index);
    let WatchEvent::Snapshot { revision, networks, endpoints, hosts, groups, .. } = snapshot else {
        panic!("expected a snapshot, got {snapshot:?}");
    };
    assert_eq!(revision, 7);
    assert_eq!(networks.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["db", "web"]);
    assert_eq!(endpoints.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["l1", "r1", "x1"]);
    assert_eq!(endpoints[0].resource_version, 3);
    assert_eq!(hosts.len(), 2);
    assert!(groups.is_empty());
    // State carried over from the snapshot: tenant t2 becomes relevant later.
    let mut events = Vec::new();
    index.apply(&put_batch(endpoint_kv(&endpoint_of("t2", "l2", "other", "h1"), 8)), |index, change| {
        events.extend(filter.apply(index, change));
    });
    assert_eq!(describe(&events), ["put network other", "put endpoint l2", "put endpoint o1"]);
}

#[test]
fn groups_follow_tenant_relevance() {
    let mut watches = Watches::new(&["h1"]);
    watches.apply(&put_batch(network_kv(&network("web", 10), 1)));
    assert!(watches.apply(&put_batch(group_kv(&group("t1", "g1"), 2))).is_empty(), "no endpoint of t1 on h1 yet");
    let local = endpoint("l1", "web", "h1");
    let events = watches.apply(&put_batch(endpoint_kv(&local, 3)));
    assert_eq!(describe(&events), ["put group g1", "put network web", "put endpoint l1"]);
    let events = watches.apply(&put_batch(group_kv(&group("t1", "g2"), 4)));
    assert_eq!(describe(&events), ["put group g2"]);
    let events = watches.apply(&put_batch(group_kv(&group("t2", "other"), 5)));
    assert!(events.is_empty(), "a group of another tenant reached h1: {events:?}");
    let events = watches.apply(&delete_batch(endpoint_kv(&local, 3), 6));
    assert_eq!(describe(&events), ["delete endpoint l1", "delete network web", "delete group g1", "delete group g2"]);
}

#[test]
fn snapshot_carries_groups_of_relevant_tenants() {
    let kvs = vec![
        endpoint_kv(&endpoint("l1", "web", "h1"), 3),
        group_kv(&group("t1", "g1"), 4),
        group_kv(&group("t2", "g9"), 5),
        group_kv(&group("t10", "g10"), 5),
        network_kv(&network("web", 10), 1),
    ];
    let index = DeploymentIndex::from_range(&kvs, 7);
    let (_, snapshot) = HostWatchFilter::start("h1", &index);
    let WatchEvent::Snapshot { groups, .. } = snapshot else {
        panic!("expected a snapshot, got {snapshot:?}");
    };
    assert_eq!(groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["g1"]);
}
