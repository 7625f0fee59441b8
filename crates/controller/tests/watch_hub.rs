//! The controller's shared store watch when the store ends it. After a compaction the
//! host watches go on. After another error they end, and a new watch starts over.

mod common;

use std::time::Duration;

use cloison_model::{WatchEvent, WatchObject};
use cloison_store::StoreError;
use futures::{Stream, StreamExt};

async fn next<S: Stream<Item = WatchEvent> + Unpin>(events: &mut S) -> Option<WatchEvent> {
    tokio::time::timeout(Duration::from_secs(5), events.next()).await.expect("event within 5 s")
}

/// Returns the name of the endpoint a put carries, skipping bookmarks.
async fn next_endpoint<S: Stream<Item = WatchEvent> + Unpin>(events: &mut S) -> String {
    loop {
        match next(events).await {
            Some(WatchEvent::Put { object: WatchObject::Endpoint(e), .. }) => return e.name,
            Some(WatchEvent::Bookmark { .. }) => {}
            other => panic!("expected an endpoint put, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn watch_continues_after_store_compaction() {
    let (ctl, store) = common::controller().await;
    ctl.create_network("t1", common::network_spec("web", "10.0.0.0/24")).await.expect("network");
    ctl.create_endpoint("t1", common::endpoint_spec("web", "h1")).await.expect("local");
    let mut events = Box::pin(ctl.watch_host("h1", None).await.expect("watch"));
    assert!(matches!(next(&mut events).await, Some(WatchEvent::Snapshot { .. })));
    let before = ctl.create_endpoint("t1", common::endpoint_spec("web", "h2")).await.expect("remote");
    assert_eq!(next_endpoint(&mut events).await, before.name);

    store.compact();
    store.end_watches(|| StoreError::Compacted { requested: 0, oldest: 1 });
    let after = ctl.create_endpoint("t1", common::endpoint_spec("web", "h2")).await.expect("remote after");
    // The controller reloads its index before or after that write, so the endpoint
    // arrives in the new snapshot or as a put after the watch resumed.
    match next(&mut events).await {
        Some(WatchEvent::Snapshot { endpoints, .. }) => {
            let names: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
            assert!(names.contains(&before.name.as_str()), "{names:?}");
            assert!(names.contains(&after.name.as_str()), "{names:?}");
        }
        Some(WatchEvent::Put { object: WatchObject::Endpoint(e), .. }) => assert_eq!(e.name, after.name),
        other => panic!("expected a snapshot or the new endpoint, got {other:?}"),
    }
    let last = ctl.create_endpoint("t1", common::endpoint_spec("web", "h2")).await.expect("remote last");
    assert_eq!(next_endpoint(&mut events).await, last.name);
}

#[tokio::test]
async fn watch_ends_on_store_error_and_restarts() {
    let (ctl, store) = common::controller().await;
    ctl.create_network("t1", common::network_spec("web", "10.0.0.0/24")).await.expect("network");
    let mut events = Box::pin(ctl.watch_host("h1", None).await.expect("watch"));
    assert!(matches!(next(&mut events).await, Some(WatchEvent::Snapshot { .. })));

    store.end_watches(|| StoreError::Unavailable("connection lost".into()));
    let ended = next(&mut events).await;
    assert!(ended.is_none(), "the watch went on after the store error: {ended:?}");

    ctl.create_endpoint("t1", common::endpoint_spec("web", "h1")).await.expect("local");
    let mut events = Box::pin(ctl.watch_host("h1", None).await.expect("watch again"));
    let Some(WatchEvent::Snapshot { endpoints, .. }) = next(&mut events).await else {
        panic!("expected a snapshot from the restarted watch");
    };
    assert_eq!(endpoints.len(), 1);
}
