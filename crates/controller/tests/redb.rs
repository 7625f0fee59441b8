//! The controller over the embedded redb store, for the paths where the in-memory test
//! store could hide a difference: concurrent allocation and the host watch.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cloison_controller::Controller;
use cloison_model::WatchEvent;
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
