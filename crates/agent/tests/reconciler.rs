//! Reconciler tests against the recording fake dataplane: no root needed.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use cloison_agent::Reconciler;
use common::{ctx, ME};
use cloison_dataplane::{names, FakeDataplane, Recorded};
use cloison_model::{Endpoint, Host, MacAddr, Network, WatchEvent, WatchObject};



fn network(id: &str, tenant: &str, vni: u32) -> Network {
    Network {
        id: id.into(),
        tenant: tenant.into(),
        name: format!("net-{id}"),
        vni,
        subnet: "10.10.0.0/24".parse().expect("subnet"),
        subnet6: None,
        gateway: Ipv4Addr::new(10, 10, 0, 1),
        gateway6: None,
        gateway_mac: MacAddr::local_from_u64(u64::from(vni)),
        mtu: None,
        external: false,
        flood: false,
        labels: BTreeMap::new(),
        resource_version: 1,
    }
}

fn endpoint(id: &str, network: &Network, host: &str, last_octet: u8) -> Endpoint {
    Endpoint {
        id: id.into(),
        tenant: network.tenant.clone(),
        name: format!("ep-{id}"),
        network: network.name.clone(),
        network_id: network.id.clone(),
        host: host.into(),
        mac: MacAddr::local_from_u64(u64::from(last_octet) + 1000),
        ipv4: Ipv4Addr::new(10, 10, 0, last_octet),
        ipv6: None,
        ifname: "eth0".into(),
        sandbox: format!("/run/netns/{id}"),
        groups: vec![],
        labels: BTreeMap::new(),
        resource_version: 1,
    }
}

fn host(name: &str, last_octet: u8) -> Host {
    Host {
        name: name.into(),
        underlay_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, last_octet)),
        underlay_mtu: 1500,
        vxlan_port: 4789,
        last_heartbeat: 0,
        resource_version: 1,
    }
}

fn snapshot(revision: u64, networks: Vec<Network>, endpoints: Vec<Endpoint>) -> WatchEvent {
    WatchEvent::Snapshot {
        revision,
        networks,
        endpoints,
        hosts: vec![host("h1", 1), host("h2", 2), host("h3", 3)],
        groups: vec![],
        publications: vec![],
    }
}

fn setup() -> (Arc<FakeDataplane>, Reconciler) {
    let fake = Arc::new(FakeDataplane::new());
    let reconciler = Reconciler::new(fake.clone(), ctx());
    (fake, reconciler)
}

#[tokio::test]
async fn snapshot_programs_local_and_remote() {
    let (fake, reconciler) = setup();
    let net = network("n1", "t1", 42);
    let local = endpoint("a1", &net, ME, 2);
    let remote = endpoint("b1", &net, "h2", 3);
    reconciler.apply_event(snapshot(5, vec![net], vec![local, remote.clone()])).await;

    assert_eq!(fake.network_vnis(), vec![42]);
    assert_eq!(fake.endpoint_ids(), vec!["a1".to_string()]);
    let entries = fake.remote_endpoints();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].mac, remote.mac);
    assert_eq!(entries[0].vtep, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)));
    assert_eq!(fake.routers().len(), 1);
    assert_eq!(reconciler.revision().await, 5);
}

#[tokio::test]
async fn repeated_event_touches_nothing() {
    let (fake, reconciler) = setup();
    let net = network("n1", "t1", 42);
    let local = endpoint("a1", &net, ME, 2);
    reconciler.apply_event(snapshot(5, vec![net.clone()], vec![local.clone()])).await;
    fake.take_log();

    let again = WatchEvent::Put { revision: 6, object: WatchObject::Endpoint(local) };
    reconciler.apply_event(again).await;
    assert!(fake.take_log().is_empty(), "an unchanged endpoint reached the kernel");
}

#[tokio::test]
async fn remote_event_costs_one_write() {
    let (fake, reconciler) = setup();
    let net = network("n1", "t1", 42);
    let mut endpoints = vec![endpoint("a1", &net, ME, 2)];
    for i in 0..50u8 {
        endpoints.push(endpoint(&format!("r{i}"), &net, "h2", 10 + i));
    }
    reconciler.apply_event(snapshot(5, vec![net.clone()], endpoints)).await;
    fake.take_log();

    let new_remote = endpoint("z9", &net, "h3", 200);
    reconciler
        .apply_event(WatchEvent::Put { revision: 6, object: WatchObject::Endpoint(new_remote) })
        .await;
    // One kernel write (the FDB and neighbour entries), then one announcement to the
    // local containers; nothing else of the network is touched.
    let log = fake.take_log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(matches!(log[0], Recorded::EnsureRemoteEndpoint(_)), "{log:?}");
    assert!(matches!(log[1], Recorded::AnnounceRemoteEndpoint(_)), "{log:?}");
}

#[tokio::test]
async fn snapshot_announces_nothing() {
    let (fake, reconciler) = setup();
    let net = network("n1", "t1", 42);
    let endpoints = vec![endpoint("a1", &net, ME, 2), endpoint("b1", &net, "h2", 3)];
    reconciler.apply_event(snapshot(5, vec![net], endpoints)).await;
    let log = fake.take_log();
    let announcements = log
        .iter()
        .filter(|r| matches!(r, Recorded::AnnounceRemoteEndpoint(_)))
        .count();
    assert_eq!(announcements, 0, "{log:?}");
}

#[tokio::test]
async fn peers_programmed_before_local_endpoint() {
    let (fake, reconciler) = setup();
    let net = network("n1", "t1", 42);
    let endpoints = vec![endpoint("a1", &net, ME, 2), endpoint("b1", &net, "h2", 3)];
    reconciler.apply_event(snapshot(5, vec![net], endpoints)).await;
    let log = fake.take_log();
    let remote = log.iter().position(|r| matches!(r, Recorded::EnsureRemoteEndpoint(_)));
    let local = log.iter().position(|r| matches!(r, Recorded::EnsureLocalEndpoint(_)));
    assert!(remote.is_some(), "{log:?}");
    assert!(remote < local, "the local endpoint came up before its peers: {log:?}");
}

#[tokio::test]
async fn moved_endpoint_leaves_no_stale_entry() {
    let (fake, reconciler) = setup();
    let net = network("n1", "t1", 42);
    let old = endpoint("b1", &net, "h2", 10);
    reconciler
        .apply_event(snapshot(5, vec![net.clone()], vec![endpoint("a1", &net, ME, 2), old.clone()]))
        .await;

    // Same address, new MAC, new host: delete then create, as the controller sends it.
    reconciler
        .apply_event(WatchEvent::Delete { revision: 6, object: WatchObject::Endpoint(old.clone()) })
        .await;
    let mut moved = endpoint("b2", &net, "h3", 10);
    moved.mac = MacAddr::local_from_u64(0xdead);
    reconciler
        .apply_event(WatchEvent::Put { revision: 7, object: WatchObject::Endpoint(moved.clone()) })
        .await;

    let entries = fake.remote_endpoints();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].mac, moved.mac);
    assert_eq!(entries[0].vtep, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3)));
}

#[tokio::test]
async fn changed_mac_in_place_replaces_entry() {
    let (fake, reconciler) = setup();
    let net = network("n1", "t1", 42);
    let remote = endpoint("b1", &net, "h2", 10);
    reconciler
        .apply_event(snapshot(5, vec![net.clone()], vec![endpoint("a1", &net, ME, 2), remote.clone()]))
        .await;
    let mut changed = remote.clone();
    changed.mac = MacAddr::local_from_u64(0xbeef);
    reconciler
        .apply_event(WatchEvent::Put { revision: 6, object: WatchObject::Endpoint(changed.clone()) })
        .await;
    let entries = fake.remote_endpoints();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].mac, changed.mac);
}

#[tokio::test]
async fn last_local_endpoint_gone_removes_network_and_router() {
    let (fake, reconciler) = setup();
    let net = network("n1", "t1", 42);
    let local = endpoint("a1", &net, ME, 2);
    reconciler
        .apply_event(snapshot(5, vec![net.clone()], vec![local.clone(), endpoint("b1", &net, "h2", 3)]))
        .await;
    reconciler
        .apply_event(WatchEvent::Delete { revision: 6, object: WatchObject::Endpoint(local) })
        .await;
    assert!(fake.network_vnis().is_empty());
    assert!(fake.endpoint_ids().is_empty());
    assert!(fake.remote_endpoints().is_empty());
    assert!(fake.routers().is_empty());
}

#[tokio::test]
async fn snapshot_removes_only_orphans() {
    let (fake, reconciler) = setup();
    let net = network("n1", "t1", 42);
    let keep = endpoint("a1", &net, ME, 2);
    let c = ctx();
    fake.preload_network(c.network_plan(&net, &cloison_agent::DesiredState::default()));
    fake.preload_endpoint(c.local_endpoint_plan(&net, &keep));
    let orphan_net = network("n9", "t9", 99);
    let orphan = endpoint("o1", &orphan_net, ME, 7);
    fake.preload_network(c.network_plan(&orphan_net, &cloison_agent::DesiredState::default()));
    fake.preload_endpoint(c.local_endpoint_plan(&orphan_net, &orphan));

    reconciler.apply_event(snapshot(5, vec![net], vec![keep])).await;

    assert_eq!(fake.network_vnis(), vec![42]);
    assert_eq!(fake.endpoint_ids(), vec!["a1".to_string()]);
    let log = fake.take_log();
    assert!(log.contains(&Recorded::RemoveLocalEndpoint(names::endpoint_host("o1"))));
    assert!(log.contains(&Recorded::RemoveNetwork(99)));
    assert!(!log.contains(&Recorded::RemoveLocalEndpoint(names::endpoint_host("a1"))));
}

#[tokio::test]
async fn tenants_get_separate_routers() {
    let (fake, reconciler) = setup();
    let a = network("n1", "t1", 42);
    let b = network("n2", "t2", 43);
    let eps = vec![endpoint("a1", &a, ME, 2), endpoint("b1", &b, ME, 2)];
    reconciler.apply_event(snapshot(5, vec![a, b], eps)).await;
    assert_eq!(fake.routers().len(), 2);
    assert_eq!(fake.network_vnis(), vec![42, 43]);
}

#[tokio::test]
async fn repair_recreates_vanished_network() {
    let (fake, reconciler) = setup();
    let net = network("n1", "t1", 42);
    reconciler
        .apply_event(snapshot(5, vec![net.clone()], vec![endpoint("a1", &net, ME, 2), endpoint("b1", &net, "h2", 3)]))
        .await;
    // Someone deletes the network's devices; their FDB entries go with them.
    let plan = ctx().network_plan(&net, &cloison_agent::DesiredState::default());
    use cloison_dataplane::Dataplane;
    fake.remove_network(&plan).await.expect("fake removal");
    fake.take_log();

    reconciler.repair().await.expect("repair");
    assert_eq!(fake.network_vnis(), vec![42]);
    assert_eq!(fake.remote_endpoints().len(), 1);
}

#[tokio::test]
async fn overlay_mtu_follows_underlay() {
    let mut c = ctx();
    c.underlay_mtu = 1400;
    let net = network("n1", "t1", 42);
    assert_eq!(c.overlay_mtu(&net), 1350);
    c.underlay_ip = "2001:db8::1".parse().expect("v6");
    assert_eq!(c.overlay_mtu(&net), 1330);
    let mut fixed = net.clone();
    fixed.mtu = Some(1200);
    assert_eq!(c.overlay_mtu(&fixed), 1200);
}

#[tokio::test]
async fn snapshot_keeps_partially_inventoried_remote() {
    let (fake, reconciler) = setup();
    let net = network("n1", "t1", 42);
    let remote = endpoint("b1", &net, "h2", 3);
    // The kernel dump could not recover the IPv4 address of this entry.
    fake.preload_remote(cloison_dataplane::RemoteEndpointPlan {
        vxlan: names::vxlan(42),
        mac: remote.mac,
        ipv4: Ipv4Addr::UNSPECIFIED,
        ipv6: None,
        vtep: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
    });

    reconciler
        .apply_event(snapshot(5, vec![net.clone()], vec![endpoint("a1", &net, ME, 2), remote]))
        .await;

    let log = fake.take_log();
    let removals = log
        .iter()
        .filter(|r| matches!(r, Recorded::RemoveRemoteEndpoint(_)))
        .count();
    assert_eq!(removals, 0, "{log:?}");
}

/// Tenant t1 with network n1 (a1 here, b1 on h2) and network n2 whose only endpoint
/// is on h2; tenant t2 with network n3 whose only endpoint is on h3.
fn two_networks_one_local() -> (Vec<Network>, Vec<Endpoint>) {
    let n1 = network("n1", "t1", 42);
    let n2 = network("n2", "t1", 43);
    let n3 = network("n3", "t2", 44);
    let endpoints = vec![
        endpoint("a1", &n1, ME, 2),
        endpoint("b1", &n1, "h2", 3),
        endpoint("c2", &n2, "h2", 4),
        endpoint("d3", &n3, "h3", 5),
    ];
    (vec![n1, n2, n3], endpoints)
}

#[tokio::test]
async fn tenant_network_without_local_endpoint_is_carried() {
    let (fake, reconciler) = setup();
    let (networks, endpoints) = two_networks_one_local();
    let c2 = endpoints[2].clone();
    reconciler.apply_event(snapshot(5, networks, endpoints)).await;

    assert_eq!(fake.network_vnis(), vec![42, 43], "t1's n2 must be carried, t2's n3 must not");
    assert_eq!(fake.endpoint_ids(), vec!["a1".to_string()]);
    let entries = fake.remote_endpoints();
    let c2_entry = entries.iter().find(|e| e.mac == c2.mac);
    assert_eq!(c2_entry.map(|e| e.vxlan.clone()), Some(names::vxlan(43)), "{entries:?}");
    assert_eq!(c2_entry.map(|e| e.vtep), Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))));
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(fake.routers().len(), 1, "only t1 has a router here");
}

#[tokio::test]
async fn first_local_endpoint_brings_tenant_networks() {
    let (fake, reconciler) = setup();
    let (networks, mut endpoints) = two_networks_one_local();
    let a1 = endpoints.remove(0);
    let late = networks[1].clone();
    reconciler.apply_event(snapshot(5, networks[..1].to_vec(), endpoints)).await;
    assert!(fake.network_vnis().is_empty(), "no local endpoint yet, nothing to carry");

    reconciler.apply_event(WatchEvent::Put { revision: 6, object: WatchObject::Endpoint(a1) }).await;
    assert_eq!(fake.network_vnis(), vec![42]);

    // The watch sends the tenant's other network after the endpoint.
    reconciler.apply_event(WatchEvent::Put { revision: 7, object: WatchObject::Network(late) }).await;
    assert_eq!(fake.network_vnis(), vec![42, 43]);
    assert_eq!(fake.remote_endpoints().len(), 2, "c2's entries go on n2's VXLAN device");
}

#[tokio::test]
async fn network_before_endpoint_waits_for_it() {
    let (fake, reconciler) = setup();
    let (networks, mut endpoints) = two_networks_one_local();
    let a1 = endpoints.remove(0);
    reconciler.apply_event(snapshot(5, networks, endpoints)).await;
    assert!(fake.network_vnis().is_empty());

    // An endpoint of n1 arriving also brings n2, which was already desired.
    reconciler.apply_event(WatchEvent::Put { revision: 6, object: WatchObject::Endpoint(a1) }).await;
    assert_eq!(fake.network_vnis(), vec![42, 43]);
    assert_eq!(fake.routers().len(), 1);
}

#[tokio::test]
async fn last_local_endpoint_gone_removes_tenant_networks() {
    let (fake, reconciler) = setup();
    let (networks, endpoints) = two_networks_one_local();
    let a1 = endpoints[0].clone();
    reconciler.apply_event(snapshot(5, networks, endpoints)).await;
    fake.take_log();

    reconciler.apply_event(WatchEvent::Delete { revision: 6, object: WatchObject::Endpoint(a1) }).await;
    assert!(fake.network_vnis().is_empty(), "{:?}", fake.network_vnis());
    assert!(fake.remote_endpoints().is_empty());
    assert!(fake.routers().is_empty());
    let log = fake.take_log();
    assert!(log.contains(&Recorded::RemoveNetwork(43)), "{log:?}");
}

#[tokio::test]
async fn detach_of_last_endpoint_removes_tenant_networks() {
    let (fake, reconciler) = setup();
    let reconciler = Arc::new(reconciler);
    let (networks, endpoints) = two_networks_one_local();
    let a1 = endpoints[0].clone();
    reconciler.apply_event(snapshot(5, networks, endpoints)).await;

    reconciler.detach(&a1).await.expect("detach");
    assert!(fake.network_vnis().is_empty(), "{:?}", fake.network_vnis());
    assert!(fake.routers().is_empty());
}

#[tokio::test]
async fn deleted_network_goes_tenant_stays() {
    let (fake, reconciler) = setup();
    let (networks, endpoints) = two_networks_one_local();
    let n2 = networks[1].clone();
    reconciler.apply_event(snapshot(5, networks, endpoints)).await;

    reconciler.apply_event(WatchEvent::Delete { revision: 6, object: WatchObject::Network(n2) }).await;
    assert_eq!(fake.network_vnis(), vec![42]);
    assert_eq!(fake.remote_endpoints().len(), 1, "only b1's entries remain");
    assert_eq!(fake.routers().len(), 1);
}

#[tokio::test]
async fn repair_retries_failed_network_setup() {
    let (fake, reconciler) = setup();
    let (networks, endpoints) = two_networks_one_local();
    fake.fail_network_setup(43, true);
    reconciler.apply_event(snapshot(5, networks, endpoints)).await;
    assert_eq!(fake.network_vnis(), vec![42]);

    fake.fail_network_setup(43, false);
    reconciler.repair().await.expect("repair");
    assert_eq!(fake.network_vnis(), vec![42, 43], "repair did not set up n2 again");
    assert_eq!(fake.remote_endpoints().len(), 2);
}

#[tokio::test]
async fn snapshot_removes_network_of_absent_tenant() {
    let (fake, reconciler) = setup();
    let (networks, endpoints) = two_networks_one_local();
    let c = ctx();
    // An earlier agent carried t2's n3, whose tenant has no endpoint here any more.
    fake.preload_network(c.network_plan(&networks[2], &cloison_agent::DesiredState::default()));

    reconciler.apply_event(snapshot(5, networks, endpoints)).await;
    assert_eq!(fake.network_vnis(), vec![42, 43]);
    assert!(fake.take_log().contains(&Recorded::RemoveNetwork(44)));
}

#[test]
fn tenant_presence_follows_endpoint_host() {
    let (networks, endpoints) = two_networks_one_local();
    let mut state = cloison_agent::DesiredState::default();
    state.apply(snapshot(5, networks.clone(), endpoints.clone()));
    assert!(state.is_tenant_present_on("t1", ME), "a1 is here");
    assert!(!state.is_tenant_present_on("t2", ME), "t2's only endpoint is on h3");
    assert_eq!(state.networks_present_on(ME), vec!["n1".to_string(), "n2".to_string()]);

    // a1 moves to h2 under the same id: t1 leaves h1 and is on h2.
    let mut moved = endpoints[0].clone();
    moved.host = "h2".into();
    state.apply(WatchEvent::Put { revision: 6, object: WatchObject::Endpoint(moved.clone()) });
    assert!(!state.is_tenant_present_on("t1", ME), "a1 moved away");
    assert!(state.is_tenant_present_on("t1", "h2"));
    assert_eq!(state.endpoints_on("h2").count(), 3, "b1, c2 and the moved a1");

    // Back on h1, then its network goes: the tenant leaves with it.
    state.insert_endpoint(endpoints[0].clone());
    assert!(state.is_tenant_present_on("t1", ME));
    state.apply(WatchEvent::Delete { revision: 7, object: WatchObject::Network(networks[0].clone()) });
    assert!(!state.is_tenant_present_on("t1", ME), "n1 and a1 are gone");
    assert_eq!(state.endpoints_on(ME).count(), 0);
    assert!(state.networks_present_on(ME).is_empty());
}

/// A buffer that collects what a tracing subscriber writes.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn count(&self, text: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).matches(text).count()
    }
}

/// An endpoint whose namespace was deleted fails at every repair pass until it is
/// detached. The failure is logged once as a warning, not every two seconds.
#[tokio::test]
async fn repeated_setup_failure_warned_once() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt().with_max_level(tracing::Level::WARN).with_writer(move || writer.clone()).finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let (fake, reconciler) = setup();
    let n1 = network("n1", "t1", 42);
    let a1 = endpoint("a1", &n1, ME, 2);
    fake.fail_local_creations(true);

    reconciler.apply_event(snapshot(5, vec![n1], vec![a1])).await;
    for _ in 0..3 {
        let _ = reconciler.repair().await;
    }
    assert_eq!(fake.take_log().iter().filter(|r| **r == Recorded::EnsureLocalEndpoint("a1".into())).count(), 4);
    assert_eq!(logs.count("endpoint setup failed"), 1, "warned at every pass");

    fake.fail_local_creations(false);
    reconciler.repair().await.expect("repair once the namespace is back");
    assert_eq!(fake.endpoint_ids(), vec!["a1".to_string()]);
    fake.fail_local_creations(true);
    fake.remove_endpoint_by_hand("a1");
    let _ = reconciler.repair().await;
    assert_eq!(logs.count("endpoint setup failed"), 2, "a new failure after a success was not warned");
}

/// Starts collecting the warnings logged on this thread, until the guard is dropped.
fn collect_warnings() -> (LogBuffer, tracing::subscriber::DefaultGuard) {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt().with_max_level(tracing::Level::WARN).with_writer(move || writer.clone()).finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

fn creations_of(log: &[Recorded], id: &str) -> usize {
    log.iter().filter(|r| **r == Recorded::EnsureLocalEndpoint(id.into())).count()
}

/// A namespace deleted and made again at the endpoint's sandbox path is another
/// namespace. The repair pass must not create the endpoint in it, and warns once.
/// In its own namespace a vanished interface is created again.
#[tokio::test]
async fn replaced_namespace_gets_no_endpoint() {
    let (logs, _guard) = collect_warnings();
    let fake = Arc::new(FakeDataplane::new());
    let reconciler = Arc::new(Reconciler::new(fake.clone(), common::ctx()));
    let n1 = network("n1", "t1", 42);
    let a1 = endpoint("a1", &n1, ME, 2);
    let sandbox = std::path::PathBuf::from(&a1.sandbox);
    reconciler.apply_event(snapshot(5, vec![n1.clone()], vec![a1.clone()])).await;
    assert_eq!(fake.endpoint_ids(), vec!["a1".to_string()]);

    fake.remove_endpoint_by_hand("a1");
    reconciler.repair().await.expect("repair in the same namespace");
    assert_eq!(fake.endpoint_ids(), vec!["a1".to_string()], "not recreated in its own namespace");

    // `ip netns del`: creations fail until `ip netns add` makes a new namespace.
    fake.fail_local_creations(true);
    fake.replace_namespace(&sandbox);
    let _ = reconciler.repair().await;
    fake.fail_local_creations(false);
    fake.take_log();
    for _ in 0..3 {
        let _ = reconciler.repair().await;
    }
    assert!(fake.endpoint_ids().is_empty(), "created in the namespace that took its path");
    assert_eq!(creations_of(&fake.take_log(), "a1"), 1, "retried after the namespace was found replaced");
    assert_eq!(logs.count("another network namespace took the endpoint's sandbox path"), 1);
    assert_eq!(logs.count("cloison detach ep-a1 --tenant t1"), 1, "the warning does not say how to remove it");

    let a2 = Endpoint { sandbox: a1.sandbox.clone(), ..endpoint("a2", &n1, ME, 3) };
    reconciler.attach(n1, a2).await.expect("attach into the new namespace");
    assert_eq!(fake.endpoint_ids(), vec!["a2".to_string()]);
}

/// An agent whose run directory records no namespace (first start, or after a
/// reboot) records the namespace of each existing endpoint it adopts, and a later
/// replacement is caught.
#[tokio::test]
async fn adopted_endpoint_keeps_its_namespace() {
    let (logs, _guard) = collect_warnings();
    let (fake, reconciler) = setup();
    let n1 = network("n1", "t1", 42);
    let a1 = endpoint("a1", &n1, ME, 2);
    fake.preload_network(common::ctx().network_plan(&n1, &cloison_agent::DesiredState::default()));
    fake.preload_endpoint(common::ctx().local_endpoint_plan(&n1, &a1));
    reconciler.apply_event(snapshot(5, vec![n1], vec![a1.clone()])).await;
    assert_eq!(fake.endpoint_ids(), vec!["a1".to_string()]);

    fake.replace_namespace(std::path::Path::new(&a1.sandbox));
    let _ = reconciler.repair().await;
    let _ = reconciler.repair().await;
    assert!(fake.endpoint_ids().is_empty(), "created in the namespace that took its path");
    assert_eq!(logs.count("another network namespace took the endpoint's sandbox path"), 1);
}

/// The repair pass records each endpoint's namespace in the run directory. An
/// endpoint whose namespace went while the agent was stopped, and whose path
/// another namespace took, is not created there after the restart.
#[tokio::test]
async fn recorded_namespace_survives_restart() {
    let fake = Arc::new(FakeDataplane::new());
    let context = ctx();
    let n1 = network("n1", "t1", 42);
    let a1 = endpoint("a1", &n1, ME, 2);
    let before = Reconciler::new(fake.clone(), context.clone());
    before.apply_event(snapshot(5, vec![n1.clone()], vec![a1.clone()])).await;
    before.repair().await.expect("repair");
    drop(before);

    fake.replace_namespace(std::path::Path::new(&a1.sandbox));
    let restarted = Reconciler::new(fake.clone(), context);
    restarted.apply_event(snapshot(6, vec![n1], vec![a1])).await;
    let _ = restarted.repair().await;
    assert!(fake.endpoint_ids().is_empty(), "created in the namespace that took its path after the restart");
}

/// A removal that keeps failing is retried at every repair pass and warned
/// about once, beside the detach's own warning.
#[tokio::test]
async fn repeated_removal_failure_warned_once() {
    let (logs, _guard) = collect_warnings();
    let fake = Arc::new(FakeDataplane::new());
    let reconciler = Arc::new(Reconciler::new(fake.clone(), ctx()));
    let n1 = network("n1", "t1", 42);
    let (a1, a2) = (endpoint("a1", &n1, ME, 2), endpoint("a2", &n1, ME, 3));
    reconciler.apply_event(snapshot(5, vec![n1], vec![a1.clone(), a2])).await;

    fake.fail_local_removals(true);
    reconciler.detach(&a1).await.expect("detach");
    for _ in 0..3 {
        let _ = reconciler.repair().await;
    }
    assert!(fake.endpoint_ids().contains(&"a1".to_string()), "the failing removal removed a1");
    assert_eq!(logs.count("endpoint removal failed"), 2, "warned at every repair pass");

    // Its interface gone by hand, the removed endpoint is not announced as recreated.
    fake.remove_endpoint_by_hand("a1");
    let _ = reconciler.repair().await;
    assert_eq!(logs.count("recreating"), 0, "a removed endpoint was announced as recreated");
}
