//! The behaviour every [`Store`] implementation must show, as reusable async checks.
//!
//! Each function panics with a message naming the broken rule. They use their own key
//! prefix and compare revisions relative to the revision they start at, so they can run
//! one after another against a shared store such as an etcd cluster. Run each one against
//! a fresh store when an implementation cannot isolate them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::{Compare, Event, KeyValue, Op, Store, StoreError, WatchBatch, WatchStream};

/// Time a watch may take to deliver an event the checks expect.
const WATCH_TIMEOUT: Duration = Duration::from_secs(20);

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.to_string(),
        value: value.as_bytes().to_vec(),
    }
}

fn delete(key: &str) -> Op {
    Op::Delete {
        key: key.to_string(),
    }
}

/// Applies `ops` unconditionally and returns the new revision.
async fn write(store: &dyn Store, ops: Vec<Op>) -> u64 {
    let response = store.txn(Vec::new(), ops).await.expect("txn failed");
    assert!(response.succeeded, "a txn without compares must succeed");
    response.revision
}

async fn value_of(store: &dyn Store, key: &str) -> Option<Vec<u8>> {
    store.get(key).await.expect("get failed").map(|kv| kv.value)
}

/// Receives the next batch, failing the check on timeout, error or end of stream.
async fn next_batch(stream: &mut WatchStream) -> WatchBatch {
    match tokio::time::timeout(WATCH_TIMEOUT, stream.recv()).await {
        Ok(Some(Ok(batch))) => batch,
        Ok(Some(Err(err))) => panic!("watch failed: {err}"),
        Ok(None) => panic!("watch ended unexpectedly"),
        Err(_) => panic!("watch sent nothing within {WATCH_TIMEOUT:?}"),
    }
}

/// Reads batches until one reaches `revision`, checking that revisions strictly increase.
async fn collect_until(stream: &mut WatchStream, revision: u64) -> Vec<WatchBatch> {
    let mut batches: Vec<WatchBatch> = Vec::new();
    while batches.last().is_none_or(|b| b.revision < revision) {
        let batch = next_batch(stream).await;
        if let Some(last) = batches.last() {
            assert!(
                batch.revision > last.revision,
                "watch sent revision {} after {}: a duplicate or out of order",
                batch.revision,
                last.revision
            );
        }
        batches.push(batch);
    }
    batches
}

/// Collects the `(key, value)` of every put in `batches`.
fn puts(batches: &[WatchBatch]) -> Vec<(String, Vec<u8>)> {
    batches
        .iter()
        .flat_map(|batch| &batch.events)
        .filter_map(|event| match event {
            Event::Put(kv) => Some((kv.key.clone(), kv.value.clone())),
            Event::Delete { .. } => None,
        })
        .collect()
}

/// Checks get, range and revision: a write advances the revision by one, keys record
/// their create and mod revisions, range returns only the prefix in key order, and a
/// transaction without operations changes nothing.
pub async fn get_range_and_revision(store: &dyn Store) {
    let start = store.revision().await.expect("revision failed");
    assert_eq!(
        store.get("/contract/basics/a").await.expect("get failed"),
        None
    );

    let first = write(
        store,
        vec![
            put("/contract/basics/b", "1"),
            put("/contract/basics/a", "1"),
        ],
    )
    .await;
    assert_eq!(first, start + 1, "one txn must advance the revision by one");
    let second = write(store, vec![put("/contract/basics/a", "2")]).await;
    assert_eq!(second, start + 2);
    write(store, vec![put("/contract/basicsX", "outside")]).await;

    let a = store.get("/contract/basics/a").await.expect("get failed");
    let expected = KeyValue {
        key: "/contract/basics/a".to_string(),
        value: b"2".to_vec(),
        create_revision: first,
        mod_revision: second,
    };
    assert_eq!(a, Some(expected));

    let (found, at) = store
        .range("/contract/basics/")
        .await
        .expect("range failed");
    let keys: Vec<&str> = found.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/contract/basics/a", "/contract/basics/b"]);
    assert_eq!(at, start + 3, "range must report the revision it read at");

    let empty = store.txn(Vec::new(), Vec::new()).await.expect("txn failed");
    assert!(empty.succeeded);
    assert_eq!(
        empty.revision,
        start + 3,
        "a txn without ops must not advance the revision"
    );
    assert_eq!(store.revision().await.expect("revision failed"), start + 3);
}

/// Checks `Compare::Absent`: it creates a missing key once, then fails without writing.
pub async fn cas_absent_creates_once(store: &dyn Store) {
    let key = "/contract/absent/k";
    let create = || vec![put(key, "v"), put("/contract/absent/side", "v")];
    let absent = || vec![Compare::Absent(key.to_string())];

    let created = store.txn(absent(), create()).await.expect("txn failed");
    assert!(created.succeeded, "Absent must hold for a missing key");

    write(store, vec![delete("/contract/absent/side")]).await;
    let before = store.revision().await.expect("revision failed");
    let again = store.txn(absent(), create()).await.expect("txn failed");
    assert!(!again.succeeded, "Absent must fail for an existing key");
    assert_eq!(
        again.revision, before,
        "a failed txn must not advance the revision"
    );
    assert_eq!(
        value_of(store, "/contract/absent/side").await,
        None,
        "a failed txn wrote"
    );
}

/// Checks `Compare::ModRevision`: the current mod revision passes, a stale one fails and
/// nothing of the transaction is written.
pub async fn cas_rejects_stale_revision(store: &dyn Store) {
    let key = "/contract/cas/k";
    let stale = write(store, vec![put(key, "v1")]).await;
    let current = store
        .txn(
            vec![Compare::ModRevision(key.to_string(), stale)],
            vec![put(key, "v2")],
        )
        .await
        .expect("txn failed");
    assert!(current.succeeded, "the current mod revision must pass");

    let rejected = store
        .txn(
            vec![Compare::ModRevision(key.to_string(), stale)],
            vec![put(key, "v3"), put("/contract/cas/other", "x")],
        )
        .await
        .expect("txn failed");
    assert!(!rejected.succeeded, "a stale mod revision must fail");
    assert_eq!(
        rejected.revision, current.revision,
        "a failed txn must not advance the revision"
    );
    assert_eq!(value_of(store, key).await, Some(b"v2".to_vec()));
    assert_eq!(
        value_of(store, "/contract/cas/other").await,
        None,
        "a failed txn wrote"
    );

    let missing = store
        .txn(
            vec![Compare::ModRevision("/contract/cas/missing".to_string(), 0)],
            vec![put(key, "v4")],
        )
        .await
        .expect("txn failed");
    assert!(
        !missing.succeeded,
        "ModRevision must fail for a missing key"
    );
}

/// Checks that a key deleted and put again gets a new create revision.
pub async fn recreated_key_gets_new_create_revision(store: &dyn Store) {
    let key = "/contract/recreate/k";
    let first = write(store, vec![put(key, "v1")]).await;
    write(store, vec![delete(key)]).await;
    assert_eq!(
        store.get(key).await.expect("get failed"),
        None,
        "deleted key still readable"
    );

    let second = write(store, vec![put(key, "v2")]).await;
    let kv = store
        .get(key)
        .await
        .expect("get failed")
        .expect("key missing after put");
    assert_ne!(kv.create_revision, first);
    assert_eq!(kv.create_revision, second);
    assert_eq!(kv.mod_revision, second);
}

/// Checks that a transaction naming one key twice fails and writes nothing, as etcd's
/// "duplicate key given in txn request".
pub async fn duplicate_key_in_txn_rejected(store: &dyn Store) {
    let before = store.revision().await.expect("revision failed");
    let result = store
        .txn(
            Vec::new(),
            vec![put("/contract/dup/k", "1"), delete("/contract/dup/k")],
        )
        .await;
    assert!(result.is_err(), "duplicate key accepted: {result:?}");
    assert_eq!(store.revision().await.expect("revision failed"), before);
    assert_eq!(value_of(store, "/contract/dup/k").await, None);
}

/// Checks that of 50 tasks racing to create one key with `Compare::Absent`, exactly one
/// succeeds and its value is the one stored.
pub async fn racing_creates_have_one_winner(store: Arc<dyn Store>) {
    let key = "/contract/race/k";
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..50 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let value = format!("task-{task}");
            let response = store
                .txn(
                    vec![Compare::Absent(key.to_string())],
                    vec![put(key, &value)],
                )
                .await
                .expect("txn failed");
            (value, response.succeeded)
        });
    }

    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (value, succeeded) = joined.expect("racing task panicked");
        if succeeded {
            winners.push(value);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(
        value_of(store.as_ref(), key).await,
        Some(winners[0].as_bytes().to_vec())
    );
}

/// Checks that 40 tasks each adding one to a counter with a compare-and-swap, retrying
/// when another got in first, leave it at 40, every success with its own revision.
/// A store that commits concurrent transactions together must still check each
/// comparison against the writes before it.
pub async fn racing_increments_all_land(store: Arc<dyn Store>) {
    let key = "/contract/counter";
    write(store.as_ref(), vec![put(key, "0")]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let store = Arc::clone(&store);
        tasks.spawn(async move { increment(store.as_ref(), key).await });
    }

    let mut revisions = BTreeSet::new();
    while let Some(joined) = tasks.join_next().await {
        revisions.insert(joined.expect("incrementing task panicked"));
    }
    assert_eq!(revisions.len(), 40, "two increments reported one revision");
    assert_eq!(value_of(store.as_ref(), key).await, Some(b"40".to_vec()));
}

/// Adds one to the decimal counter at `key`, retrying until its compare-and-swap
/// succeeds, and returns the revision of that write.
async fn increment(store: &dyn Store, key: &str) -> u64 {
    loop {
        let current = store.get(key).await.expect("get failed").expect("counter missing");
        let value: u64 = String::from_utf8_lossy(&current.value).parse().expect("counter is not a number");
        let next = (value + 1).to_string();
        let response = store
            .txn(vec![Compare::ModRevision(key.to_string(), current.mod_revision)], vec![put(key, &next)])
            .await
            .expect("txn failed");
        if response.succeeded {
            return response.revision;
        }
    }
}

/// Checks that a watch replays the history after its start revision and then follows
/// four concurrent writers, with every write under the prefix seen once and in order, and
/// nothing outside the prefix.
pub async fn watch_replays_then_follows_live(store: Arc<dyn Store>) {
    let prefix = "/contract/watch/";
    write(store.as_ref(), vec![put("/contract/watch/before", "old")]).await;
    let after = store.revision().await.expect("revision failed");
    let mut expected = BTreeSet::new();
    for i in 0..20 {
        let key = format!("{prefix}replay-{i:02}");
        write(
            store.as_ref(),
            vec![
                put(&key, "r"),
                put(&format!("/contract/unwatched/{i}"), "x"),
            ],
        )
        .await;
        expected.insert((key, b"r".to_vec()));
    }

    let mut stream = store.watch(prefix, after).await.expect("watch failed");
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..4 {
        let store = Arc::clone(&store);
        writers.spawn(async move {
            for i in 0..50 {
                let key = format!("{prefix}live-{writer}-{i:02}");
                write(store.as_ref(), vec![put(&key, "l")]).await;
            }
        });
        for i in 0..50 {
            expected.insert((format!("{prefix}live-{writer}-{i:02}"), b"l".to_vec()));
        }
    }
    while let Some(joined) = writers.join_next().await {
        joined.expect("writer task panicked");
    }

    let last = store.revision().await.expect("revision failed");
    let batches = collect_until(&mut stream, last).await;
    assert!(
        batches.iter().all(|b| b.revision > after),
        "watch replayed revisions before its start"
    );
    let seen = puts(&batches);
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), unique.len(), "watch sent a put twice");
    assert_eq!(unique, expected, "watch missed or invented puts");
}

/// Checks that a watcher that reads nothing while `writes` revisions are committed
/// still receives every one of them afterwards. Pick `writes` above the implementation's
/// live buffer, so the watcher falls behind it.
pub async fn slow_watcher_misses_nothing(store: &dyn Store, writes: u64) {
    let prefix = "/contract/slow/";
    let after = store.revision().await.expect("revision failed");
    let mut stream = store.watch(prefix, after).await.expect("watch failed");
    for i in 0..writes {
        write(store, vec![put(&format!("{prefix}{i:08}"), "v")]).await;
    }

    let batches = collect_until(&mut stream, after + writes).await;
    let revisions: Vec<u64> = batches.iter().map(|b| b.revision).collect();
    let expected: Vec<u64> = (after + 1..=after + writes).collect();
    assert_eq!(
        revisions, expected,
        "slow watcher missed or repeated revisions"
    );
}

/// Checks that a watch from a revision older than the history kept fails with
/// [`StoreError::Compacted`], from the call or as the stream's first item. The store must
/// keep at most `history_revisions` revisions of history.
pub async fn watch_from_compacted_revision_fails(store: &dyn Store, history_revisions: u64) {
    let prefix = "/contract/compacted/";
    let old = store.revision().await.expect("revision failed");
    for i in 0..history_revisions + 10 {
        write(store, vec![put(&format!("{prefix}{i}"), "v")]).await;
    }

    let outcome = match store.watch(prefix, old).await {
        Err(err) => Some(err),
        Ok(mut stream) => match tokio::time::timeout(WATCH_TIMEOUT, stream.recv()).await {
            Ok(Some(Err(err))) => Some(err),
            _ => None,
        },
    };
    assert!(
        matches!(outcome, Some(StoreError::Compacted { requested, .. }) if requested == old),
        "watch from compacted revision {old} returned {outcome:?}"
    );

    let recent = store.revision().await.expect("revision failed") - 1;
    let mut stream = store
        .watch(prefix, recent)
        .await
        .expect("watch from a kept revision failed");
    assert_eq!(next_batch(&mut stream).await.revision, recent + 1);
}

/// Checks that a delete event carries the key's last value and revisions, and the
/// revision of the delete.
pub async fn delete_event_carries_previous_value(store: &dyn Store) {
    let key = "/contract/delete/k";
    let created = write(store, vec![put(key, "v1")]).await;
    let modified = write(store, vec![put(key, "v2")]).await;
    let mut stream = store
        .watch("/contract/delete/", modified)
        .await
        .expect("watch failed");
    let deleted = write(store, vec![delete(key)]).await;

    let batch = next_batch(&mut stream).await;
    let expected = Event::Delete {
        prev: KeyValue {
            key: key.to_string(),
            value: b"v2".to_vec(),
            create_revision: created,
            mod_revision: modified,
        },
        revision: deleted,
    };
    assert_eq!(batch.revision, deleted);
    assert_eq!(batch.events, vec![expected]);
}

/// Checks that one transaction's events arrive in one batch, in key order.
pub async fn watch_batch_holds_whole_txn(store: &dyn Store) {
    let prefix = "/contract/batch/";
    let after = store.revision().await.expect("revision failed");
    let mut stream = store.watch(prefix, after).await.expect("watch failed");
    let revision = write(
        store,
        vec![put("/contract/batch/c", "3"), put("/contract/batch/a", "1")],
    )
    .await;

    let batch = next_batch(&mut stream).await;
    assert_eq!(batch.revision, revision);
    let keys: Vec<&str> = batch
        .events
        .iter()
        .map(|event| match event {
            Event::Put(kv) => kv.key.as_str(),
            Event::Delete { prev, .. } => prev.key.as_str(),
        })
        .collect();
    assert_eq!(keys, ["/contract/batch/a", "/contract/batch/c"]);
}
