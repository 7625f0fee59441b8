//! The store contract run against `EtcdStore` on a real etcd started by each test, plus
//! checks only a networked store has: key prefixes, compaction and unavailability.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloison_store::{contract, Compare, KeyValue, Op, Store, StoreError, TxnResponse, WatchStream};
use cloison_store_etcd::test_cluster::EtcdCluster;
use cloison_store_etcd::EtcdStore;

async fn cluster() -> EtcdCluster {
    match EtcdCluster::start(1).await {
        Ok(cluster) => cluster,
        Err(e) => panic!("cannot start etcd for the test: {e}"),
    }
}

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.to_string(),
        value: value.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn get_range_and_revision() {
    let cluster = cluster().await;
    contract::get_range_and_revision(&cluster.store().await).await;
}

#[tokio::test]
async fn cas_absent_creates_once() {
    let cluster = cluster().await;
    contract::cas_absent_creates_once(&cluster.store().await).await;
}

#[tokio::test]
async fn cas_rejects_stale_revision() {
    let cluster = cluster().await;
    contract::cas_rejects_stale_revision(&cluster.store().await).await;
}

#[tokio::test]
async fn recreated_key_gets_new_create_revision() {
    let cluster = cluster().await;
    contract::recreated_key_gets_new_create_revision(&cluster.store().await).await;
}

#[tokio::test]
async fn duplicate_key_in_txn_rejected() {
    let cluster = cluster().await;
    contract::duplicate_key_in_txn_rejected(&cluster.store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_have_one_winner() {
    let cluster = cluster().await;
    contract::racing_creates_have_one_winner(Arc::new(cluster.store().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_increments_all_land() {
    let cluster = cluster().await;
    contract::racing_increments_all_land(Arc::new(cluster.store().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_replays_then_follows_live() {
    let cluster = cluster().await;
    contract::watch_replays_then_follows_live(Arc::new(cluster.store().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_misses_nothing() {
    let cluster = cluster().await;
    // More than the watch channel (256 batches), so etcd must hold events for the watcher.
    contract::slow_watcher_misses_nothing(&cluster.store().await, 1000).await;
}

#[tokio::test]
async fn watch_from_compacted_revision_fails() {
    let cluster = cluster().await;
    let store = CompactingStore {
        inner: cluster.store().await,
        keep: 5,
    };
    contract::watch_from_compacted_revision_fails(&store, 5).await;
}

#[tokio::test]
async fn delete_event_carries_previous_value() {
    let cluster = cluster().await;
    contract::delete_event_carries_previous_value(&cluster.store().await).await;
}

#[tokio::test]
async fn watch_batch_holds_whole_txn() {
    let cluster = cluster().await;
    contract::watch_batch_holds_whole_txn(&cluster.store().await).await;
}

#[tokio::test]
async fn prefixes_isolate_deployments() {
    let cluster = cluster().await;
    let blue = EtcdStore::connect(&cluster.options("/blue"))
        .await
        .expect("connect");
    let green = EtcdStore::connect(&cluster.options("/green"))
        .await
        .expect("connect");
    blue.txn(Vec::new(), vec![put("/k", "b")])
        .await
        .expect("txn");

    assert_eq!(green.get("/k").await.expect("get"), None);
    let (found, _) = green.range("/").await.expect("range");
    assert!(found.is_empty(), "green sees blue's keys: {found:?}");
    let kv = blue.get("/k").await.expect("get").expect("blue's key");
    assert_eq!(kv.key, "/k", "the prefix leaked into the store key");
}

#[tokio::test]
async fn range_reads_across_pages() {
    let cluster = cluster().await;
    let store = cluster.store().await;
    // Three pages of 1000 keys, written 100 per transaction (etcd allows 128 operations).
    for chunk in 0..25 {
        let ops = (0..100)
            .map(|i| put(&format!("/pages/{:05}", chunk * 100 + i), "v"))
            .collect();
        store.txn(Vec::new(), ops).await.expect("txn");
    }
    let (found, revision) = store.range("/pages/").await.expect("range");
    assert_eq!(found.len(), 2500);
    assert!(
        found.windows(2).all(|w| w[0].key < w[1].key),
        "range out of key order"
    );
    assert_eq!(revision, store.revision().await.expect("revision"));
}

#[tokio::test]
async fn watch_behind_compaction_ends_compacted() {
    let cluster = cluster().await;
    let store = cluster.store().await;
    let after = store.revision().await.expect("revision");
    let mut stream = store.watch("/behind/", after).await.expect("watch");
    // Wait for the first batch, so the watch is synced before it falls behind.
    store
        .txn(Vec::new(), vec![put("/behind/0", "v")])
        .await
        .expect("txn");
    let first = stream.recv().await.expect("stream open").expect("batch");

    // History is written and compacted while the watcher reads nothing.
    let mut last = 0;
    for i in 1..400 {
        last = store
            .txn(Vec::new(), vec![put(&format!("/behind/{i}"), "v")])
            .await
            .expect("txn")
            .revision;
    }
    store.compact(last).await.expect("compact");

    let mut outcome = None;
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_secs(20), stream.recv()).await {
        if let Err(err) = item {
            outcome = Some(err);
            break;
        }
    }
    // A watcher that kept up with etcd before the compaction may legitimately receive
    // every event, but one that fell behind must end with Compacted.
    match outcome {
        None => {}
        Some(StoreError::Compacted { requested, .. }) => assert!(requested >= first.revision),
        Some(other) => panic!("watch ended with {other} instead of Compacted"),
    }
    let err = store.watch("/behind/", first.revision).await;
    let err = match err {
        Err(err) => err,
        Ok(mut stream) => stream
            .recv()
            .await
            .expect("stream open")
            .expect_err("watch from compacted"),
    };
    assert!(
        matches!(err, StoreError::Compacted { oldest, .. } if oldest == last - 1),
        "unexpected: {err}"
    );
}

#[tokio::test]
async fn lost_member_reports_unavailable() {
    let mut cluster = cluster().await;
    let store = cluster.store().await;
    cluster.kill(0);

    let err = store
        .txn(Vec::new(), vec![put("/down/k", "v")])
        .await
        .expect_err("txn on a dead cluster");
    let StoreError::Unavailable(message) = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert!(
        message.contains("no quorum or cannot be reached"),
        "{message}"
    );
    let watch = store.watch("/down/", 0).await;
    assert!(
        matches!(watch, Err(StoreError::Unavailable(_))),
        "{watch:?}"
    );

    cluster.restart(0).expect("restart member");
    cluster.wait_ready(0).await.expect("member ready again");
    let resumed = store
        .txn(Vec::new(), vec![put("/down/k", "v")])
        .await
        .expect("txn after restart");
    assert!(resumed.succeeded);
}

/// Compacts etcd's history after each write so that only the last `keep` revisions stay,
/// as the contract's compaction check expects from a store with bounded history.
#[derive(Debug)]
struct CompactingStore {
    inner: EtcdStore,
    keep: u64,
}

#[async_trait]
impl Store for CompactingStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.inner.get(key).await
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError> {
        self.inner.range(prefix).await
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResponse, StoreError> {
        let response = self.inner.txn(compares, ops).await?;
        if response.revision > self.keep {
            self.inner
                .compact(response.revision - self.keep + 1)
                .await?;
        }
        Ok(response)
    }

    async fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream, StoreError> {
        self.inner.watch(prefix, after).await
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        self.inner.revision().await
    }
}
