//! Detach against the recording fake dataplane, whose endpoint removals can be
//! held to stand for the kernel's slow veth deletion: the reconciler's lock is free
//! meanwhile, and nothing recreates or deletes again an endpoint being detached.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use cloison_agent::Reconciler;
use common::{ctx, network, snapshot, ME};
use cloison_dataplane::{names, FakeDataplane, Recorded};
use cloison_model::{Endpoint, MacAddr, WatchEvent, WatchObject};

/// Long enough for a task that is not blocked to finish on a loaded machine.
const SETTLE: Duration = Duration::from_millis(100);


/// Builds an endpoint of `network()` on this host, in the sandbox `/run/netns/SANDBOX`.
fn endpoint(id: &str, name: &str, sandbox: &str, last_octet: u8) -> Endpoint {
    let network = network();
    Endpoint {
        id: id.into(),
        tenant: network.tenant.clone(),
        name: name.into(),
        network: network.name.clone(),
        network_id: network.id.clone(),
        host: ME.into(),
        mac: MacAddr::local_from_u64(u64::from(last_octet) + 1000),
        ipv4: Ipv4Addr::new(10, 10, 0, last_octet),
        ipv6: None,
        ifname: "eth0".into(),
        sandbox: format!("/run/netns/{sandbox}"),
        groups: vec![],
        labels: BTreeMap::new(),
        // Created after every revision the tests' watch events carry.
        resource_version: 100,
    }
}

/// Builds a reconciler that has applied a snapshot of `endpoints`, with an empty log.
async fn programmed(endpoints: Vec<Endpoint>) -> (Arc<FakeDataplane>, Arc<Reconciler>) {
    let fake = Arc::new(FakeDataplane::new());
    let reconciler = Arc::new(Reconciler::new(fake.clone(), ctx()));
    reconciler.apply_event(snapshot(5, endpoints)).await;
    fake.take_log();
    (fake, reconciler)
}

/// Starts detaching `endpoint` with removals held, and returns once its removal
/// reached the fake kernel, with the requests recorded until then.
async fn start_held_detach(
    fake: &Arc<FakeDataplane>,
    reconciler: &Arc<Reconciler>,
    endpoint: &Endpoint,
) -> (tokio::task::JoinHandle<Result<(), cloison_agent::AgentError>>, Vec<Recorded>) {
    fake.hold_local_removals();
    let detach = tokio::spawn({
        let reconciler = reconciler.clone();
        let endpoint = endpoint.clone();
        async move { reconciler.detach(&endpoint).await }
    });
    let removal = Recorded::RemoveLocalEndpoint(names::endpoint_host(&endpoint.id));
    let log = wait_for_request(fake, &removal).await;
    assert!(log.contains(&removal), "the detach never removed the interface: {log:?}");
    (detach, log)
}

/// Collects the fake's log until it contains `wanted`, for at most 5 s, and
/// returns what it collected.
async fn wait_for_request(fake: &FakeDataplane, wanted: &Recorded) -> Vec<Recorded> {
    let mut log = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while !log.contains(wanted) {
            log.extend(fake.take_log());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    log
}

fn count(log: &[Recorded], wanted: &Recorded) -> usize {
    log.iter().filter(|r| *r == wanted).count()
}

/// Starts an attach of `endpoint`, whose id starts with `slow`, and waits until its
/// creation is held in the fake kernel.
async fn start_held_attach(
    fake: &FakeDataplane,
    reconciler: &Arc<Reconciler>,
    endpoint: &Endpoint,
) -> tokio::task::JoinHandle<Result<(), cloison_agent::AgentError>> {
    fake.hold_creation_of("slow");
    let attach = tokio::spawn({
        let (reconciler, endpoint) = (reconciler.clone(), endpoint.clone());
        async move { reconciler.attach(network(), endpoint).await }
    });
    let creating = Recorded::EnsureLocalEndpoint(endpoint.id.clone());
    let log = wait_for_request(fake, &creating).await;
    assert!(log.contains(&creating), "the attach never started its creation: {log:?}");
    attach
}

/// An attach to a network programmed here already creates its interface without
/// the reconciler's lock, so another attach does not wait for it.
#[tokio::test]
async fn attaches_create_side_by_side() {
    let a2 = endpoint("a2", "b", "sb", 3);
    let (fake, reconciler) = programmed(vec![a2]).await;
    let (slow, fast) = (endpoint("slow1", "s", "ss", 4), endpoint("fast1", "f", "sf", 5));
    let slow_attach = start_held_attach(&fake, &reconciler, &slow).await;

    let second = tokio::time::timeout(Duration::from_secs(2), reconciler.attach(network(), fast)).await;
    assert!(matches!(second, Ok(Ok(()))), "the second attach waited for the first one's creation: {second:?}");
    fake.release_creations();
    slow_attach.await.expect("slow attach panicked").expect("slow attach");
    let desired = reconciler.desired().await;
    assert!(desired.endpoints.contains_key("slow1"), "slow1 is not desired");
    assert!(desired.endpoints.contains_key("fast1"), "fast1 is not desired");
}

/// An endpoint deleted elsewhere while its attach creates the interface without
/// the lock is removed again once the creation ends.
#[tokio::test]
async fn deletion_during_creation_removes_endpoint() {
    let (fake, reconciler) = programmed(vec![endpoint("a2", "b", "sb", 3)]).await;
    let slow = endpoint("slow1", "s", "ss", 4);
    let attach = start_held_attach(&fake, &reconciler, &slow).await;

    reconciler.apply_event(WatchEvent::Delete { revision: 100, object: WatchObject::Endpoint(slow) }).await;
    fake.release_creations();
    let error = attach.await.expect("attach task").expect_err("the attach of a deleted endpoint succeeded");
    assert!(error.to_string().contains("endpoint s (detached or deleted while it was being attached)"), "{error}");
    assert_eq!(fake.endpoint_ids(), vec!["a2".to_string()], "the deleted endpoint stayed");
}

/// A caller that goes away while its attach creates the interface (a client that
/// hangs up, a timeout) leaves neither a half-made endpoint nor a mark that makes
/// later attaches into the namespace wait.
#[tokio::test]
async fn abandoned_attach_completes() {
    let a2 = endpoint("a2", "b", "sb", 3);
    let (fake, reconciler) = programmed(vec![a2]).await;
    let slow = endpoint("slow1", "s", "ss", 4);
    let caller = start_held_attach(&fake, &reconciler, &slow).await;
    caller.abort();
    let _ = caller.await;
    fake.release_creations();

    let done = tokio::time::timeout(Duration::from_secs(5), async {
        while !fake.endpoint_ids().contains(&"slow1".to_string()) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(done.is_ok(), "the abandoned attach stopped half-way: {:?}", fake.endpoint_ids());
    reconciler.detach(&slow).await.expect("detach");
    let next = endpoint("next1", "n", "ss", 5);
    let attached = tokio::time::timeout(Duration::from_secs(5), reconciler.attach(network(), next)).await;
    attached.expect("the attach waited for a mark left behind").expect("attach");
    assert_eq!(fake.endpoint_ids(), vec!["a2".to_string(), "next1".to_string()]);
}

/// An attach that waited for the lock while a detach of the same endpoint ran must
/// not bring it back: its record is gone and its addresses are free again.
#[tokio::test]
async fn attach_after_its_detach_fails() {
    let a1 = endpoint("a1", "a", "sa", 2);
    let (fake, reconciler) = programmed(vec![]).await;
    reconciler.attach(network(), a1.clone()).await.expect("attach a1");
    reconciler.detach(&a1).await.expect("detach a1");
    fake.take_log();

    let again = reconciler.attach(network(), a1.clone()).await;
    assert!(again.is_err(), "the attach of a detached endpoint succeeded");
    assert_eq!(count(&fake.take_log(), &Recorded::EnsureLocalEndpoint("a1".into())), 0, "a1 recreated");
    assert!(!reconciler.desired().await.endpoints.contains_key("a1"), "a1 is desired again");
}

/// The watch may deliver the endpoint's deletion before an attach that waited for
/// the detach takes the lock. The attach must fail all the same.
#[tokio::test]
async fn attach_after_deletion_event_fails() {
    let a1 = endpoint("a1", "a", "sa", 2);
    let (fake, reconciler) = programmed(vec![]).await;
    reconciler.attach(network(), a1.clone()).await.expect("attach a1");
    reconciler.detach(&a1).await.expect("detach a1");
    reconciler.apply_event(WatchEvent::Put { revision: 100, object: WatchObject::Endpoint(a1.clone()) }).await;
    reconciler.apply_event(WatchEvent::Delete { revision: 101, object: WatchObject::Endpoint(a1.clone()) }).await;
    fake.take_log();

    let late = reconciler.attach(network(), a1).await;
    assert!(late.is_err(), "the attach of a deleted endpoint succeeded");
    assert_eq!(count(&fake.take_log(), &Recorded::EnsureLocalEndpoint("a1".into())), 0, "a1 recreated");
}

/// A local endpoint deleted elsewhere, through another host's agent or the API,
/// while its attach here waited for the lock is not brought back by that attach.
#[tokio::test]
async fn attach_after_remote_deletion_fails() {
    let a1 = endpoint("a1", "a", "sa", 2);
    let (fake, reconciler) = programmed(vec![]).await;
    reconciler.apply_event(WatchEvent::Put { revision: 100, object: WatchObject::Endpoint(a1.clone()) }).await;
    reconciler.apply_event(WatchEvent::Delete { revision: 101, object: WatchObject::Endpoint(a1.clone()) }).await;
    fake.take_log();

    let late = reconciler.attach(network(), a1).await;
    assert!(late.is_err(), "the attach of an endpoint deleted elsewhere succeeded");
    assert_eq!(count(&fake.take_log(), &Recorded::EnsureLocalEndpoint("a1".into())), 0, "a1 recreated");
    assert!(fake.endpoint_ids().is_empty(), "{:?}", fake.endpoint_ids());
}

/// An attach carries the record as created. A newer version that the watch
/// delivered first, with other groups, is kept.
#[tokio::test]
async fn attach_keeps_newer_record() {
    let (_fake, reconciler) = programmed(vec![]).await;
    let mut updated = endpoint("a1", "a", "sa", 2);
    updated.groups = vec!["g2".into()];
    updated.resource_version = 109;
    reconciler.apply_event(WatchEvent::Put { revision: 109, object: WatchObject::Endpoint(updated) }).await;

    let mut created = endpoint("a1", "a", "sa", 2);
    created.groups = vec!["g1".into()];
    reconciler.attach(network(), created).await.expect("attach a1");
    let desired = reconciler.desired().await;
    assert_eq!(desired.endpoints.get("a1").map(|e| e.groups.clone()), Some(vec!["g2".to_string()]));
}

/// The watch can lag behind a detach: the put that created the endpoint, or a
/// snapshot taken before its deletion, may arrive after the detach returned. They
/// must not recreate it.
#[tokio::test]
async fn late_events_after_detach_ignored() {
    let (a1, a2) = (endpoint("a1", "a", "sa", 2), endpoint("a2", "b", "sb", 3));
    let (fake, reconciler) = programmed(vec![a2.clone()]).await;
    reconciler.attach(network(), a1.clone()).await.expect("attach a1");
    reconciler.detach(&a1).await.expect("detach a1");
    fake.take_log();

    let late = WatchEvent::Put { revision: 6, object: WatchObject::Endpoint(a1.clone()) };
    reconciler.apply_event(late).await;
    reconciler.apply_event(snapshot(7, vec![a1.clone(), a2.clone()])).await;
    let log = fake.take_log();
    assert_eq!(count(&log, &Recorded::EnsureLocalEndpoint("a1".into())), 0, "a1 recreated: {log:?}");
    assert!(!reconciler.desired().await.endpoints.contains_key("a1"), "a1 is desired again");

    let deleted = WatchEvent::Delete { revision: 8, object: WatchObject::Endpoint(a1.clone()) };
    reconciler.apply_event(deleted).await;
    assert!(reconciler.desired().await.is_detached("a1"), "a1's mark went with its deletion event");
}

#[tokio::test]
async fn detaching_endpoint_not_recreated_or_collected() {
    let (a1, a2) = (endpoint("a1", "a", "sa", 2), endpoint("a2", "b", "sb", 3));
    let (fake, reconciler) = programmed(vec![a1.clone(), a2.clone()]).await;
    let (detach, mut log) = start_held_detach(&fake, &reconciler, &a1).await;

    // While the interface is being deleted: a late watch event that still carries
    // the endpoint, a snapshot taken before its record went, and a repair pass.
    let late = WatchEvent::Put { revision: 6, object: WatchObject::Endpoint(a1.clone()) };
    reconciler.apply_event(late).await;
    reconciler.apply_event(snapshot(7, vec![a1.clone(), a2.clone()])).await;
    reconciler.repair().await.expect("repair");
    fake.release_local_removals();
    detach.await.expect("detach task").expect("detach");
    log.extend(fake.take_log());

    let removal = Recorded::RemoveLocalEndpoint(names::endpoint_host("a1"));
    assert_eq!(count(&log, &removal), 1, "{log:?}");
    assert_eq!(count(&log, &Recorded::EnsureLocalEndpoint("a1".into())), 0, "{log:?}");
    assert_eq!(fake.endpoint_ids(), vec!["a2".to_string()]);
    assert!(!reconciler.desired().await.endpoints.contains_key("a1"), "the stale snapshot's copy stayed desired");
}

#[tokio::test]
async fn attach_proceeds_during_deletion() {
    let a1 = endpoint("a1", "a", "sa", 2);
    let (fake, reconciler) = programmed(vec![a1.clone()]).await;
    let (detach, _) = start_held_detach(&fake, &reconciler, &a1).await;

    let c1 = endpoint("c1", "c", "sc", 4);
    let attached = tokio::time::timeout(Duration::from_secs(5), reconciler.attach(network(), c1)).await;
    attached.expect("the attach waited for the other endpoint's deletion").expect("attach");
    assert!(fake.endpoint_ids().contains(&"c1".to_string()));
    assert!(!detach.is_finished(), "the held removal ended early");

    fake.release_local_removals();
    detach.await.expect("detach task").expect("detach");
    assert_eq!(fake.endpoint_ids(), vec!["c1".to_string()]);
    assert_eq!(fake.network_vnis(), vec![42], "the network went while an endpoint was attached");
}

#[tokio::test]
async fn attach_same_name_waits_for_detach() {
    let a1 = endpoint("a1", "app", "sa", 2);
    let (fake, reconciler) = programmed(vec![a1.clone()]).await;
    let (detach, mut log) = start_held_detach(&fake, &reconciler, &a1).await;

    // The record was deleted and created again under the same name, in the same
    // sandbox with the same interface name, which the old pair still holds.
    let again = endpoint("b1", "app", "sa", 2);
    let attach = tokio::spawn({
        let reconciler = reconciler.clone();
        async move { reconciler.attach(network(), again).await }
    });
    tokio::time::sleep(SETTLE).await;
    log.extend(fake.take_log());
    assert!(!attach.is_finished(), "the attach did not wait: {log:?}");
    assert_eq!(count(&log, &Recorded::EnsureLocalEndpoint("b1".into())), 0, "{log:?}");

    fake.release_local_removals();
    detach.await.expect("detach task").expect("detach");
    attach.await.expect("attach task").expect("attach");
    log.extend(fake.take_log());
    let removed = log.iter().position(|r| *r == Recorded::RemoveLocalEndpoint(names::endpoint_host("a1")));
    let created = log.iter().position(|r| *r == Recorded::EnsureLocalEndpoint("b1".into()));
    assert!(removed.is_some(), "{log:?}");
    assert!(created.is_some(), "{log:?}");
    assert!(removed < created, "the new pair was created before the old one went: {log:?}");
    assert_eq!(fake.endpoint_ids(), vec!["b1".to_string()]);
}

#[tokio::test]
async fn attach_in_another_sandbox_does_not_wait() {
    let a1 = endpoint("a1", "app", "sa", 2);
    let (fake, reconciler) = programmed(vec![a1.clone(), endpoint("a2", "keep", "sk", 3)]).await;
    let (detach, _) = start_held_detach(&fake, &reconciler, &a1).await;

    // Same name and interface name, another namespace: nothing to wait for.
    let elsewhere = endpoint("b1", "app", "sother", 5);
    let attached = tokio::time::timeout(Duration::from_secs(5), reconciler.attach(network(), elsewhere)).await;
    attached.expect("the attach waited for a deletion in another namespace").expect("attach");

    fake.release_local_removals();
    detach.await.expect("detach task").expect("detach");
    assert_eq!(fake.endpoint_ids(), vec!["a2".to_string(), "b1".to_string()]);
}

#[tokio::test]
async fn failed_removal_retried_by_convergence() {
    let (a1, a2) = (endpoint("a1", "a", "sa", 2), endpoint("a2", "b", "sb", 3));
    let (fake, reconciler) = programmed(vec![a1.clone(), a2.clone()]).await;
    fake.fail_local_removals(true);
    reconciler.detach(&a1).await.expect("detach");
    assert!(fake.endpoint_ids().contains(&"a1".to_string()), "the failing removal removed it");

    fake.fail_local_removals(false);
    fake.take_log();
    // A change of the network's other endpoint converges the network.
    let changed = Endpoint { resource_version: a2.resource_version + 1, ..a2 };
    let event = WatchEvent::Put { revision: 6, object: WatchObject::Endpoint(changed) };
    reconciler.apply_event(event).await;
    assert_eq!(fake.endpoint_ids(), vec!["a2".to_string()]);
    let log = fake.take_log();
    assert_eq!(count(&log, &Recorded::EnsureLocalEndpoint("a1".into())), 0, "{log:?}");
}

#[tokio::test]
async fn failed_removal_retried_by_repair() {
    let (a1, a2) = (endpoint("a1", "a", "sa", 2), endpoint("a2", "b", "sb", 3));
    let (fake, reconciler) = programmed(vec![a1.clone(), a2]).await;
    fake.fail_local_removals(true);
    reconciler.detach(&a1).await.expect("detach");
    reconciler.repair().await.expect("repair");
    assert!(fake.endpoint_ids().contains(&"a1".to_string()), "the failing removal removed it");

    // Nothing else changes in the network: the repair pass retries the removal.
    fake.fail_local_removals(false);
    reconciler.repair().await.expect("repair");
    assert_eq!(fake.endpoint_ids(), vec!["a2".to_string()]);
}

#[tokio::test]
async fn watch_delete_leaves_removal_to_detach() {
    let (a1, a2) = (endpoint("a1", "a", "sa", 2), endpoint("a2", "b", "sb", 3));
    let (fake, reconciler) = programmed(vec![a1.clone(), a2.clone()]).await;
    let pending = reconciler.begin_detach(&a1).await;
    fake.hold_local_removals();

    // The controller committed the deletion, and its watch event arrives before
    // the reply to the detach's delete request.
    let deleted = WatchEvent::Delete { revision: 6, object: WatchObject::Endpoint(a1.clone()) };
    let applied = tokio::time::timeout(Duration::from_secs(5), reconciler.apply_event(deleted)).await;
    assert!(applied.is_ok(), "the watch event waited for the held removal");
    let mut log = fake.take_log();
    let removal = Recorded::RemoveLocalEndpoint(names::endpoint_host("a1"));
    assert_eq!(count(&log, &removal), 0, "the watch event removed the interface: {log:?}");

    fake.release_local_removals();
    reconciler.finish_detach(pending).await.expect("finish detach");
    log.extend(fake.take_log());
    assert_eq!(count(&log, &removal), 1, "{log:?}");
    assert_eq!(fake.endpoint_ids(), vec!["a2".to_string()]);
}

#[tokio::test]
async fn cancelled_detach_keeps_endpoint() {
    let a1 = endpoint("a1", "a", "sa", 2);
    let (fake, reconciler) = programmed(vec![a1.clone()]).await;
    let pending = reconciler.begin_detach(&a1).await;
    reconciler.cancel_detach(pending).await;

    // Applied as before: an unchanged event touches nothing.
    let again = WatchEvent::Put { revision: 6, object: WatchObject::Endpoint(a1.clone()) };
    reconciler.apply_event(again).await;
    let log = fake.take_log();
    assert!(log.is_empty(), "{log:?}");
    assert_eq!(fake.endpoint_ids(), vec!["a1".to_string()]);

    // No mark is left behind: an attach under the same interface name in the same
    // namespace does not wait.
    let next = endpoint("b1", "a", "sa", 5);
    let attached = tokio::time::timeout(Duration::from_secs(5), reconciler.attach(network(), next)).await;
    attached.expect("the attach waited for a cancelled mark").expect("attach");
    assert_eq!(fake.endpoint_ids(), vec!["a1".to_string(), "b1".to_string()]);
}

/// Before the first snapshot the desired state lacks the host's other endpoints,
/// so an attach waits for it rather than apply a policy that leaves them out.
#[tokio::test]
async fn attach_waits_for_first_snapshot() {
    let fake = Arc::new(FakeDataplane::new());
    let reconciler = Arc::new(Reconciler::new(fake.clone(), ctx()));
    let early = tokio::spawn({
        let reconciler = reconciler.clone();
        async move { reconciler.attach(network(), endpoint("e2", "b", "sb", 3)).await }
    });
    tokio::time::sleep(SETTLE).await;
    assert!(fake.endpoint_ids().is_empty(), "the attach went ahead without the snapshot");
    assert!(fake.nftables_scripts(None).is_empty(), "a policy was applied without the snapshot");

    reconciler.apply_event(snapshot(5, vec![endpoint("e1", "a", "sa", 2)])).await;
    early.await.expect("attach panicked").expect("attach after the snapshot");
    assert_eq!(fake.endpoint_ids(), vec!["e1".to_string(), "e2".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn attach_without_snapshot_times_out() {
    let fake = Arc::new(FakeDataplane::new());
    let reconciler = Arc::new(Reconciler::new(fake.clone(), ctx()));
    let error = reconciler.attach(network(), endpoint("e2", "b", "sb", 3)).await.expect_err("no snapshot came");
    assert!(matches!(error, cloison_agent::AgentError::NotSynced { .. }), "{error}");
    assert!(error.to_string().contains("cloison status"), "{error}");
    assert!(fake.endpoint_ids().is_empty());
}

/// The bridge drops every frame of an endpoint port the host's tables do not list,
/// so the port is listed before its interface is created, on the first attach to a
/// network here and on later ones alike.
#[tokio::test]
async fn port_listed_before_creation() {
    let (fake, reconciler) = programmed(vec![]).await;
    for (id, octet) in [("first1", 2), ("second1", 3)] {
        reconciler.attach(network(), endpoint(id, id, id, octet)).await.expect("attach");
        let log = fake.take_log();
        let port = names::endpoint_host(id);
        let created = log.iter().position(|r| *r == Recorded::EnsureLocalEndpoint(id.into()));
        let listed = log.iter().position(|r| lists_port(r, &port));
        assert!(created.is_some(), "{id} was not created: {log:?}");
        assert!(listed.is_some(), "{id}'s port was never listed: {log:?}");
        assert!(listed < created, "{id} was created before its port was listed: {log:?}");
    }
}

/// Returns true when `request` adds `port` to the host's set of endpoint ports.
fn lists_port(request: &Recorded, port: &str) -> bool {
    match request {
        Recorded::ApplyNftables(plan) => plan.namespace.is_none() && plan.script.contains(&format!("\"{port}\"")),
        Recorded::ApplyNftablesElements(plan) => plan.namespace.is_none() && plan.changes.iter().any(|change| {
            change.set == "ports" && !change.delete && change.elements.iter().any(|e| e.key.starts_with(port.as_bytes()))
        }),
        _ => false,
    }
}

/// The watch may deliver an attach's record before the controller's reply. The
/// endpoint is then left to its attach, which creates it without the reconciler's
/// lock, and to the watch again once the attach is no longer expected.
#[tokio::test]
async fn watch_leaves_expected_attach_alone() {
    let (fake, reconciler) = programmed(vec![endpoint("a2", "b", "sb", 3)]).await;
    let sandbox = tempfile::NamedTempFile::new().expect("a file standing for the namespace");
    let mut e1 = endpoint("e1", "a", "unused", 2);
    e1.sandbox = sandbox.path().display().to_string();
    let creating = Recorded::EnsureLocalEndpoint("e1".into());

    let expected = reconciler.expect_attach(sandbox.path(), "eth0");
    reconciler.apply_event(WatchEvent::Put { revision: 100, object: WatchObject::Endpoint(e1.clone()) }).await;
    let log = fake.take_log();
    assert_eq!(count(&log, &creating), 0, "the watch created an expected attach's endpoint");
    // The attach syncs the policy after the creation, so the watch does not.
    assert!(log.is_empty(), "the watch changed the kernel: {log:?}");
    reconciler.attach(network(), e1.clone()).await.expect("attach");
    assert_eq!(count(&fake.take_log(), &creating), 1, "the attach did not create its endpoint");
    drop(expected);

    let mut e3 = endpoint("e3", "c", "unused", 4);
    e3.sandbox = sandbox.path().display().to_string();
    e3.ifname = "eth1".into();
    let other = reconciler.expect_attach(sandbox.path(), "eth0");
    reconciler.apply_event(WatchEvent::Put { revision: 101, object: WatchObject::Endpoint(e3) }).await;
    assert_eq!(count(&fake.take_log(), &Recorded::EnsureLocalEndpoint("e3".into())), 1, "another interface name was held back");
    drop(other);
}

/// An attach into a namespace whose interface name an endpoint uses already must
/// fail there, not take the interface over. A snapshot after a restart adopts the
/// existing endpoint even while such an attach is expected, instead of leaving it
/// to the attach and removing its interface as an orphan.
#[tokio::test]
async fn resync_keeps_endpoint_of_expected_attach() {
    let sandbox = tempfile::NamedTempFile::new().expect("a file standing for the namespace");
    let mut e1 = endpoint("e1", "a", "unused", 2);
    e1.sandbox = sandbox.path().display().to_string();
    let (fake, _before_restart) = programmed(vec![e1.clone()]).await;
    assert_eq!(fake.endpoint_ids(), vec!["e1".to_string()]);

    let restarted = Arc::new(Reconciler::new(fake.clone(), ctx()));
    let duplicate = restarted.expect_attach(sandbox.path(), "eth0");
    restarted.apply_event(snapshot(6, vec![e1.clone()])).await;
    let log = fake.take_log();
    let removal = Recorded::RemoveLocalEndpoint(names::endpoint_host("e1"));
    assert_eq!(count(&log, &removal), 0, "the snapshot removed the existing endpoint: {log:?}");
    assert_eq!(fake.endpoint_ids(), vec!["e1".to_string()]);
    drop(duplicate);
}

/// An endpoint made through the API while a failing attach into its namespace and
/// interface name is expected is left to that attach. Once the attach is gone, the
/// repair pass creates it at the latest.
#[tokio::test]
async fn endpoint_left_to_failed_attach_created() {
    let (fake, reconciler) = programmed(vec![endpoint("a2", "b", "sb", 3)]).await;
    let sandbox = tempfile::NamedTempFile::new().expect("a file standing for the namespace");
    let mut made_by_api = endpoint("api1", "a", "unused", 2);
    made_by_api.sandbox = sandbox.path().display().to_string();

    let failing = reconciler.expect_attach(sandbox.path(), "eth0");
    reconciler.apply_event(WatchEvent::Put { revision: 100, object: WatchObject::Endpoint(made_by_api) }).await;
    assert_eq!(fake.endpoint_ids(), vec!["a2".to_string()], "the watch created an expected attach's endpoint");
    drop(failing);

    reconciler.repair().await.expect("repair");
    assert_eq!(fake.endpoint_ids(), vec!["a2".to_string(), "api1".to_string()], "the endpoint left to a failed attach was never created");
}

/// The first endpoint of a network on this host waits for the network's setup
/// under the reconciler's lock anyway, so the watch creates it at once, expected
/// attach or not: it is reachable sooner than after the watch's policy update.
#[tokio::test]
async fn watch_creates_expected_endpoint_of_new_network() {
    let (fake, reconciler) = programmed(vec![]).await;
    let sandbox = tempfile::NamedTempFile::new().expect("a file standing for the namespace");
    let mut e1 = endpoint("e1", "a", "unused", 2);
    e1.sandbox = sandbox.path().display().to_string();

    let expected = reconciler.expect_attach(sandbox.path(), "eth0");
    reconciler.apply_event(WatchEvent::Put { revision: 100, object: WatchObject::Endpoint(e1.clone()) }).await;
    assert_eq!(fake.endpoint_ids(), vec!["e1".to_string()], "the watch left a new network's first endpoint to its attach");
    reconciler.attach(network(), e1).await.expect("the attach finds its endpoint made");
    assert_eq!(count(&fake.take_log(), &Recorded::EnsureLocalEndpoint("e1".into())), 1, "created twice");
    drop(expected);
}

/// Listing a port before its creation applies the host's bridge table alone: the
/// tenant router's ruleset, loaded by a slower script, follows the creation.
#[tokio::test]
async fn router_rules_follow_creation() {
    let (fake, reconciler) = programmed(vec![]).await;
    reconciler.attach(network(), endpoint("e1", "a", "sa", 2)).await.expect("attach");
    let log = fake.take_log();
    let created = log.iter().position(|r| *r == Recorded::EnsureLocalEndpoint("e1".into()));
    let router_rules = log.iter().position(|r| matches!(r, Recorded::ApplyNftables(plan) if plan.namespace.is_some()));
    assert!(created.is_some(), "e1 was not created: {log:?}");
    assert!(router_rules.is_some(), "the router's ruleset was not applied: {log:?}");
    assert!(created < router_rules, "the router's ruleset delayed the creation: {log:?}");
}
