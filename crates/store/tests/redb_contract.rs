//! The store contract run against `RedbStore`, plus checks only an embedded file store
//! has: reopening and surviving a SIGKILL.

use std::io::{BufRead, BufReader, Write};
use std::num::NonZeroU64;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloison_store::{contract, Op, RedbOptions, RedbStore, Store};
use tempfile::TempDir;

/// Environment variable that turns the ignored writer test into the crash test's child.
const CRASH_DIR_ENV: &str = "CLOISON_STORE_CRASH_DIR";
/// Acknowledged transactions the crash test waits for before it kills the child.
const CRASH_ACKS: usize = 200;

fn open(dir: &TempDir) -> RedbStore {
    RedbStore::open(dir.path()).expect("open store")
}

fn open_keeping(dir: &TempDir, revisions: u64) -> RedbStore {
    let options = RedbOptions {
        history_revisions: NonZeroU64::new(revisions).expect("nonzero history"),
    };
    RedbStore::open_with(dir.path(), options).expect("open store")
}

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.to_string(),
        value: value.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn get_range_and_revision() {
    let dir = TempDir::new().expect("tempdir");
    contract::get_range_and_revision(&open(&dir)).await;
}

#[tokio::test]
async fn cas_absent_creates_once() {
    let dir = TempDir::new().expect("tempdir");
    contract::cas_absent_creates_once(&open(&dir)).await;
}

#[tokio::test]
async fn cas_rejects_stale_revision() {
    let dir = TempDir::new().expect("tempdir");
    contract::cas_rejects_stale_revision(&open(&dir)).await;
}

#[tokio::test]
async fn recreated_key_gets_new_create_revision() {
    let dir = TempDir::new().expect("tempdir");
    contract::recreated_key_gets_new_create_revision(&open(&dir)).await;
}

#[tokio::test]
async fn duplicate_key_in_txn_rejected() {
    let dir = TempDir::new().expect("tempdir");
    contract::duplicate_key_in_txn_rejected(&open(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_have_one_winner() {
    let dir = TempDir::new().expect("tempdir");
    contract::racing_creates_have_one_winner(Arc::new(open(&dir))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_increments_all_land() {
    let dir = TempDir::new().expect("tempdir");
    contract::racing_increments_all_land(Arc::new(open(&dir))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_replays_then_follows_live() {
    let dir = TempDir::new().expect("tempdir");
    contract::watch_replays_then_follows_live(Arc::new(open(&dir))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_misses_nothing() {
    let dir = TempDir::new().expect("tempdir");
    // More than the live buffer (1024 commits) plus the stream buffer (256 batches).
    contract::slow_watcher_misses_nothing(&open(&dir), 1600).await;
}

#[tokio::test]
async fn watch_from_compacted_revision_fails() {
    let dir = TempDir::new().expect("tempdir");
    contract::watch_from_compacted_revision_fails(&open_keeping(&dir, 5), 5).await;
}

#[tokio::test]
async fn delete_event_carries_previous_value() {
    let dir = TempDir::new().expect("tempdir");
    contract::delete_event_carries_previous_value(&open(&dir)).await;
}

#[tokio::test]
async fn watch_batch_holds_whole_txn() {
    let dir = TempDir::new().expect("tempdir");
    contract::watch_batch_holds_whole_txn(&open(&dir)).await;
}

#[tokio::test]
async fn reopen_keeps_data_and_revision() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    store
        .txn(Vec::new(), vec![put("/reopen/a", "1")])
        .await
        .expect("txn");
    let last = store
        .txn(Vec::new(), vec![put("/reopen/b", "2")])
        .await
        .expect("txn");
    let before = store.range("/reopen/").await.expect("range");
    drop(store);

    let store = open(&dir);
    assert_eq!(store.revision().await.expect("revision"), last.revision);
    assert_eq!(store.range("/reopen/").await.expect("range"), before);
    let next = store
        .txn(Vec::new(), vec![put("/reopen/c", "3")])
        .await
        .expect("txn");
    assert_eq!(next.revision, last.revision + 1);
}

#[tokio::test]
async fn reopen_keeps_watch_history() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    let first = store
        .txn(Vec::new(), vec![put("/history/a", "1")])
        .await
        .expect("txn");
    store
        .txn(Vec::new(), vec![put("/history/b", "2")])
        .await
        .expect("txn");
    drop(store);

    let store = open(&dir);
    let mut stream = store
        .watch("/history/", first.revision)
        .await
        .expect("watch");
    let batch = stream.recv().await.expect("stream open").expect("batch");
    assert_eq!(batch.revision, first.revision + 1);
}

#[tokio::test]
async fn watch_ends_when_store_dropped() {
    let dir = TempDir::new().expect("tempdir");
    let store = open(&dir);
    let mut stream = store.watch("/", 0).await.expect("watch");
    drop(store);

    let end = tokio::time::timeout(Duration::from_secs(10), stream.recv()).await;
    assert!(matches!(end, Ok(None)), "stream still open: {end:?}");
    // The watch task released the database, so the file opens again.
    open(&dir);
}

#[tokio::test]
async fn compacted_history_refuses_old_watch_after_reopen() {
    let dir = TempDir::new().expect("tempdir");
    let store = open_keeping(&dir, 3);
    for i in 0..10 {
        store
            .txn(Vec::new(), vec![put(&format!("/c/{i}"), "v")])
            .await
            .expect("txn");
    }
    drop(store);

    let store = open_keeping(&dir, 3);
    let err = store
        .watch("/c/", 2)
        .await
        .expect_err("watch from compacted revision");
    assert!(
        matches!(
            err,
            cloison_store::StoreError::Compacted {
                requested: 2,
                oldest: 8
            }
        ),
        "unexpected error: {err}"
    );
    store
        .watch("/c/", 7)
        .await
        .expect("watch from oldest kept revision");
}

/// Runs only as the crash test's child: writes pairs of keys in one transaction each and
/// prints `ack <i> <revision>` after each acknowledged commit, until it is killed.
#[tokio::test]
#[ignore = "child process of kill_during_writes_loses_nothing"]
async fn crash_writer_child() {
    let dir = std::env::var(CRASH_DIR_ENV).expect("run by kill_during_writes_loses_nothing only");
    let store = RedbStore::open(Path::new(&dir)).expect("open store");
    let mut stdout = std::io::stdout();
    for i in 0u64.. {
        let ops = vec![
            put(&format!("/crash/a/{i:08}"), "a"),
            put(&format!("/crash/b/{i:08}"), "b"),
        ];
        let response = store.txn(Vec::new(), ops).await.expect("txn");
        writeln!(stdout, "ack {i} {}", response.revision).expect("write ack");
        stdout.flush().expect("flush ack");
    }
}

#[test]
fn kill_during_writes_loses_nothing() {
    let dir = TempDir::new().expect("tempdir");
    let acks = run_and_kill_writer(dir.path());
    assert!(
        acks.len() >= CRASH_ACKS,
        "child acknowledged only {} writes",
        acks.len()
    );

    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let store = open(&dir);
        let (a, revision) = store.range("/crash/a/").await.expect("range");
        let (b, _) = store.range("/crash/b/").await.expect("range");
        let a_keys: Vec<String> = a.iter().map(|kv| kv.key.replace("/a/", "/")).collect();
        let b_keys: Vec<String> = b.iter().map(|kv| kv.key.replace("/b/", "/")).collect();
        assert_eq!(a_keys, b_keys, "a transaction was half applied");

        let (last_i, last_revision) = *acks.last().expect("at least one ack");
        assert!(
            revision >= last_revision,
            "store revision {revision} below ack {last_revision}"
        );
        for &(i, acked) in &acks {
            let key = format!("/crash/a/{i:08}");
            let kv = store
                .get(&key)
                .await
                .expect("get")
                .unwrap_or_else(|| panic!("{key} lost"));
            assert_eq!(kv.mod_revision, acked, "{key} has the wrong revision");
        }
        assert!(
            a.len() as u64 > last_i,
            "fewer keys than acknowledged writes"
        );
    });
}

/// Starts the child writer, waits for [`CRASH_ACKS`] acknowledgements, kills it with
/// SIGKILL and returns every `(index, revision)` it acknowledged.
fn run_and_kill_writer(dir: &Path) -> Vec<(u64, u64)> {
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "crash_writer_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child writer");
    let stdout = child.stdout.take().expect("child stdout");

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut acks = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    while acks.len() < CRASH_ACKS && Instant::now() < deadline {
        let Some(line) = lines.next() else { break };
        if let Some(ack) = parse_ack(&line.expect("read child output")) {
            acks.push(ack);
        }
    }
    child.kill().expect("SIGKILL child writer");
    child.wait().expect("reap child writer");

    // Acks printed between the last read and the kill were acknowledged too.
    for line in lines.map_while(Result::ok) {
        if let Some(ack) = parse_ack(&line) {
            acks.push(ack);
        }
    }
    acks
}

fn parse_ack(line: &str) -> Option<(u64, u64)> {
    let mut words = line.strip_prefix("ack ")?.split(' ');
    let index = words.next()?.parse().ok()?;
    let revision = words.next()?.parse().ok()?;
    Some((index, revision))
}
