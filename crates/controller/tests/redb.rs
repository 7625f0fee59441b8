//! The controller over the embedded redb store, for the paths where the in-memory test
//! store could hide a difference: concurrent allocation and the host watch.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cloison_controller::Controller;
use cloison_model::{WatchEvent, WatchObject};
use cloison_store::RedbStore;
use futures::StreamExt;

async fn redb_controller(dir: &std::path::Path) -> Arc<Controller> {
    let store = RedbStore::open(dir).expect("open redb store");
    let controller = Arc::new(Controller::new(Arc::new(store)));
    controller.register_host(common::host_spec("h1", "192.0.2.11")).await.expect("register h1");
    controller.register_host(common::host_spec("h2", "192.0.2.12")).await.expect("register h2");
    controller
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_concurrent_creates_unique() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = redb_controller(dir.path()).await;
    let network = ctl.create_network("t1", common::network_spec("big", "10.20.0.0/23")).await.expect("network");
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let ctl = ctl.clone();
            tokio::spawn(async move { ctl.create_endpoint("t1", common::endpoint_spec("big", "h1")).await })
        })
        .collect();
    let mut ips = HashSet::new();
    for task in tasks {
        let endpoint = task.await.expect("join").expect("create endpoint");
        assert_ne!(endpoint.ipv4, network.gateway);
        assert!(ips.insert(endpoint.ipv4), "duplicate {}", endpoint.ipv4);
    }
    assert_eq!(ctl.free_ipv4_count("t1", "big").await.expect("count"), 512 - 3 - 300);
}

#[tokio::test]
async fn redb_watch_follows_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = redb_controller(dir.path()).await;
    ctl.create_network("t1", common::network_spec("web", "10.0.0.0/24")).await.expect("network");
    let mut events = Box::pin(ctl.watch_host("h2", None).await.expect("watch"));
    let snapshot = next(&mut events).await;
    assert!(matches!(snapshot, WatchEvent::Snapshot { .. }), "{snapshot:?}");
    let remote = ctl.create_endpoint("t1", common::endpoint_spec("web", "h1")).await.expect("remote");
    ctl.create_endpoint("t1", common::endpoint_spec("web", "h2")).await.expect("local");
    let network = next(&mut events).await;
    assert!(matches!(&network, WatchEvent::Put { object: cloison_model::WatchObject::Network(_), .. }), "{network:?}");
    let mut names = HashSet::new();
    for _ in 0..2 {
        if let WatchEvent::Put { object: cloison_model::WatchObject::Endpoint(e), .. } = next(&mut events).await {
            names.insert(e.name);
        }
    }
    assert!(names.contains(&remote.name), "{names:?}");
    assert_eq!(names.len(), 2);
}

async fn next<S: futures::Stream<Item = WatchEvent> + Unpin>(events: &mut S) -> WatchEvent {
    let event = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
    event.expect("event within 5 s").expect("stream open")
}

/// Reads a watch's first event, then drops the watch.
async fn first_event(ctl: &Controller, host: &str, after: Option<u64>) -> WatchEvent {
    let mut events = Box::pin(ctl.watch_host(host, after).await.expect("watch"));
    next(&mut events).await
}

#[tokio::test]
async fn redb_watch_sends_tenant_networks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = redb_controller(dir.path()).await;
    ctl.create_network("t1", common::network_spec("a", "10.0.0.0/24")).await.expect("network a");
    ctl.create_network("t1", common::network_spec("b", "10.0.1.0/24")).await.expect("network b");
    ctl.create_network("t2", common::network_spec("c", "10.0.2.0/24")).await.expect("network c");
    ctl.create_endpoint("t1", common::endpoint_spec("a", "h1")).await.expect("local");
    let remote = ctl.create_endpoint("t1", common::endpoint_spec("b", "h2")).await.expect("remote");
    ctl.create_endpoint("t2", common::endpoint_spec("c", "h2")).await.expect("other tenant");
    let WatchEvent::Snapshot { networks, endpoints, .. } = first_event(&ctl, "h1", None).await else {
        panic!("expected a snapshot");
    };
    assert_eq!(networks.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(endpoints.len(), 2, "{endpoints:?}");
    assert!(endpoints.iter().any(|e| e.id == remote.id), "{endpoints:?}");
}

#[tokio::test]
async fn redb_watch_resumes_past_other_hosts_heartbeats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = redb_controller(dir.path()).await;
    ctl.create_network("t1", common::network_spec("web", "10.0.0.0/24")).await.expect("network");
    ctl.create_endpoint("t1", common::endpoint_spec("web", "h1")).await.expect("local");
    let snapshot = first_event(&ctl, "h1", None).await;
    assert!(matches!(snapshot, WatchEvent::Snapshot { .. }), "{snapshot:?}");
    ctl.register_host(common::host_spec("h2", "192.0.2.12")).await.expect("heartbeat of h2");
    ctl.register_host(common::host_spec("h3", "192.0.2.13")).await.expect("register h3");
    let resumed = first_event(&ctl, "h1", Some(snapshot.revision())).await;
    let WatchEvent::Put { object: cloison_model::WatchObject::Host(host), revision } = resumed else {
        panic!("expected the registration of h3 replayed, got {resumed:?}");
    };
    assert_eq!(host.name, "h3", "the heartbeat of h2 was sent");
    assert!(revision > snapshot.revision());
}

#[tokio::test]
async fn redb_resumed_watch_gets_arrived_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = redb_controller(dir.path()).await;
    ctl.create_network("t1", common::network_spec("web", "10.0.0.0/24")).await.expect("network");
    let snapshot = first_event(&ctl, "h2", None).await;
    ctl.create_endpoint("t1", common::endpoint_spec("web", "h2")).await.expect("local");
    // The resume starts with a snapshot when the shared index has already seen the
    // tenant arrive, or else receives the arrival as puts: both give the host the
    // tenant's network and endpoint.
    let mut events = Box::pin(ctl.watch_host("h2", Some(snapshot.revision())).await.expect("watch"));
    let (mut networks, mut endpoints) = (0, 0);
    while (networks, endpoints) != (1, 1) {
        match next(&mut events).await {
            WatchEvent::Snapshot { networks: n, endpoints: e, .. } => (networks, endpoints) = (n.len(), e.len()),
            WatchEvent::Put { object: WatchObject::Network(_), .. } => networks += 1,
            WatchEvent::Put { object: WatchObject::Endpoint(_), .. } => endpoints += 1,
            _ => {}
        }
    }
    assert_eq!((networks, endpoints), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_slow_watch_resumes_without_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = redb_controller(dir.path()).await;
    let mut events = Box::pin(ctl.watch_host("h1", None).await.expect("watch"));
    let snapshot = next(&mut events).await;
    assert!(matches!(snapshot, WatchEvent::Snapshot { .. }), "{snapshot:?}");
    // More host writes than the watch's buffers take while the test reads nothing, so the
    // controller drops the watch's subscription and the watch resumes from the history.
    const FILLERS: usize = 1500;
    for i in 0..FILLERS {
        ctl.register_host(common::host_spec(&format!("filler-{i}"), "192.0.2.99")).await.expect("filler host");
    }
    let mut fillers = HashSet::new();
    while fillers.len() < FILLERS {
        match next(&mut events).await {
            WatchEvent::Put { object: cloison_model::WatchObject::Host(host), .. } => {
                fillers.insert(host.name);
            }
            WatchEvent::Bookmark { .. } => {}
            other => panic!("expected only host puts after the snapshot, got {other:?}"),
        }
    }
}
