//! `RedbStore`: the embedded store, one redb file in the controller's state directory.
//!
//! The on-disk layout is described in the `codec` module. Every write goes through a
//! redb write transaction with redb's default durability (`Immediate`, an fsync before
//! `commit` returns), so an acknowledged transaction survives a crash and a torn one is
//! never visible. Concurrent writes share one such transaction and its fsync. Each committed revision is also published on a broadcast channel that
//! feeds live watches (see `redb_watch`).

use std::num::NonZeroU64;
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use tokio::sync::broadcast;

use crate::codec::{decode_record, encode_events, encode_record};
use crate::redb_watch;
use crate::{Compare, Event, KeyValue, Op, Store, StoreError, TxnResponse, WatchStream};

pub(crate) const KV: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("kv");
pub(crate) const HISTORY: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("history");
pub(crate) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
pub(crate) const META_REVISION: &str = "revision";
pub(crate) const META_COMPACTED: &str = "compacted";

const FILE_NAME: &str = "cloison.redb";
const DEFAULT_HISTORY_REVISIONS: u64 = 100_000;
/// Commits buffered for live watches before a slow watcher lags and re-reads history.
const LIVE_CAPACITY: usize = 1024;

/// Settings of a [`RedbStore`].
#[derive(Debug, Clone, Copy)]
pub struct RedbOptions {
    /// Number of most recent revisions whose events are kept for watches. A watch that
    /// starts before them fails with [`StoreError::Compacted`]. Default 100 000.
    pub history_revisions: NonZeroU64,
}

impl Default for RedbOptions {
    fn default() -> Self {
        Self {
            history_revisions: NonZeroU64::new(DEFAULT_HISTORY_REVISIONS)
                .unwrap_or(NonZeroU64::MIN),
        }
    }
}

/// The events of one committed revision, sent to live watches.
#[derive(Debug)]
pub(crate) struct Commit {
    pub(crate) revision: u64,
    pub(crate) events: Vec<Event>,
}

/// The embedded [`Store`], backed by one redb file. Clones share the same database.
#[derive(Debug, Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Arc<Database>,
    /// Held from the start of a write transaction until its commit is published, so
    /// watches receive commits in revision order.
    write_lock: Mutex<()>,
    /// Transactions waiting for the next group commit (see [`Inner::txn`]).
    queue: Mutex<Vec<Queued>>,
    commits: broadcast::Sender<Arc<Commit>>,
    history_revisions: u64,
}

/// A transaction waiting for the next group commit, and where its result goes.
#[derive(Debug)]
struct Queued {
    compares: Vec<Compare>,
    ops: Vec<Op>,
    reply: SyncSender<Result<TxnResponse, StoreError>>,
}

/// Outcome of staging a write transaction, before it is committed or aborted.
enum Staged {
    Rejected(u64),
    Unchanged(u64),
    Applied(Commit),
}

impl RedbStore {
    /// Opens `dir/cloison.redb` with default options, creating `dir` and the file if missing.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, RedbOptions::default())
    }

    /// Opens `dir/cloison.redb`, creating `dir` and the file if missing. The file can be
    /// open in one `RedbStore` at a time, so a second open fails until every clone of the
    /// first one (and every watch it serves) has been dropped.
    pub fn open_with(dir: &Path, options: RedbOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        create_tables(&db)?;
        let (commits, _) = broadcast::channel(LIVE_CAPACITY);
        Ok(Self {
            inner: Arc::new(Inner {
                db: Arc::new(db),
                write_lock: Mutex::new(()),
                queue: Mutex::new(Vec::new()),
                commits,
                history_revisions: options.history_revisions.get(),
            }),
        })
    }

    /// Runs a blocking redb call on tokio's blocking pool.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner)).await?
    }
}

/// Creates the tables on first open, so read transactions can always open them.
fn create_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        txn.open_table(KV)?;
        txn.open_table(HISTORY)?;
        let mut meta = txn.open_table(META)?;
        for name in [META_REVISION, META_COMPACTED] {
            if meta.get(name)?.is_none() {
                meta.insert(name, 0)?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// Reads a counter of the `meta` table. A missing counter reads as 0.
pub(crate) fn read_meta(
    meta: &impl ReadableTable<&'static str, u64>,
    name: &str,
) -> Result<u64, StoreError> {
    Ok(meta.get(name)?.map_or(0, |guard| guard.value()))
}

impl Inner {
    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let txn = self.db.begin_read()?;
        let kv = txn.open_table(KV)?;
        let found = kv.get(key)?;
        found
            .map(|guard| decode_record(key, guard.value()))
            .transpose()
    }

    fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError> {
        let txn = self.db.begin_read()?;
        let revision = read_meta(&txn.open_table(META)?, META_REVISION)?;
        let kv = txn.open_table(KV)?;
        let mut found = Vec::new();
        for entry in kv.range(prefix..)? {
            let (key, value) = entry?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            found.push(decode_record(key, value.value())?);
        }
        Ok((found, revision))
    }

    fn revision(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        read_meta(&txn.open_table(META)?, META_REVISION)
    }

    /// Runs one transaction. Transactions that arrive while another group commits
    /// queue up, and the first of them to take the write lock commits them all in one
    /// redb transaction, so concurrent writers share one fsync. Each keeps its own
    /// revision, comparisons and result, as if run alone in queue order.
    fn txn(&self, compares: Vec<Compare>, mut ops: Vec<Op>) -> Result<TxnResponse, StoreError> {
        ops.sort_by(|a, b| op_key(a).cmp(op_key(b)));
        if let Some(pair) = ops
            .windows(2)
            .find(|pair| op_key(&pair[0]) == op_key(&pair[1]))
        {
            return Err(StoreError::DuplicateKey {
                key: op_key(&pair[0]).to_string(),
            });
        }

        let (reply, result) = sync_channel(1);
        lock(&self.queue).push(Queued { compares, ops, reply });
        let _serial = lock(&self.write_lock);
        // The previous holder of the lock may have committed this one already: it
        // replies to its whole group before it lets go of the lock.
        if let Ok(done) = result.try_recv() {
            return done;
        }
        let group = std::mem::take(&mut *lock(&self.queue));
        self.commit_group(group);
        result.recv().unwrap_or_else(|_| {
            Err(StoreError::Unavailable("the group commit ended without a result for this transaction".into()))
        })
    }

    /// Commits a group of queued transactions and replies to each. When staging or
    /// committing the group fails, nothing of it was written, so each transaction is
    /// run again on its own and an error fails only the transaction that causes it.
    fn commit_group(&self, group: Vec<Queued>) {
        if group.len() > 1 {
            if let Ok(responses) = self.commit_together(&group) {
                for (queued, response) in group.into_iter().zip(responses) {
                    let _ = queued.reply.send(Ok(response));
                }
                return;
            }
        }
        for queued in group {
            let _ = queued.reply.send(self.commit_alone(&queued.compares, queued.ops));
        }
    }

    /// Stages every transaction of `group` in one redb write transaction, commits it
    /// and publishes the commits in revision order.
    fn commit_together(&self, group: &[Queued]) -> Result<Vec<TxnResponse>, StoreError> {
        let txn = self.db.begin_write()?;
        let mut responses = Vec::with_capacity(group.len());
        let mut commits = Vec::new();
        for queued in group {
            let response = match self.stage(&txn, &queued.compares, queued.ops.clone())? {
                Staged::Rejected(revision) => TxnResponse { succeeded: false, revision },
                Staged::Unchanged(revision) => TxnResponse { succeeded: true, revision },
                Staged::Applied(commit) => {
                    let response = TxnResponse { succeeded: true, revision: commit.revision };
                    commits.push(commit);
                    response
                }
            };
            responses.push(response);
        }
        if commits.is_empty() {
            txn.abort()?;
        } else {
            txn.commit()?;
        }
        for commit in commits {
            // An error only means that no watch is listening right now.
            let _ = self.commits.send(Arc::new(commit));
        }
        Ok(responses)
    }

    fn commit_alone(&self, compares: &[Compare], ops: Vec<Op>) -> Result<TxnResponse, StoreError> {
        let txn = self.db.begin_write()?;
        match self.stage(&txn, compares, ops)? {
            Staged::Rejected(revision) => {
                txn.abort()?;
                Ok(TxnResponse {
                    succeeded: false,
                    revision,
                })
            }
            Staged::Unchanged(revision) => {
                txn.abort()?;
                Ok(TxnResponse {
                    succeeded: true,
                    revision,
                })
            }
            Staged::Applied(commit) => {
                txn.commit()?;
                let revision = commit.revision;
                // An error only means that no watch is listening right now.
                let _ = self.commits.send(Arc::new(commit));
                Ok(TxnResponse {
                    succeeded: true,
                    revision,
                })
            }
        }
    }

    /// Checks the comparisons and, if they hold, writes the operations, the revision's
    /// history entry and the new revision into `txn` without committing it.
    fn stage(
        &self,
        txn: &WriteTransaction,
        compares: &[Compare],
        ops: Vec<Op>,
    ) -> Result<Staged, StoreError> {
        let mut kv = txn.open_table(KV)?;
        let mut meta = txn.open_table(META)?;
        let revision = read_meta(&meta, META_REVISION)?;
        if !compares_hold(&kv, compares)? {
            return Ok(Staged::Rejected(revision));
        }
        if ops.is_empty() {
            return Ok(Staged::Unchanged(revision));
        }

        let next = revision + 1;
        let events = apply_ops(&mut kv, ops, next)?;
        let mut history = txn.open_table(HISTORY)?;
        history.insert(next, encode_events(&events).as_slice())?;
        self.compact(&mut history, &mut meta, next)?;
        meta.insert(META_REVISION, next)?;
        Ok(Staged::Applied(Commit {
            revision: next,
            events,
        }))
    }

    /// Removes the history entries older than the last `history_revisions` revisions.
    fn compact(
        &self,
        history: &mut Table<'_, u64, &[u8]>,
        meta: &mut Table<'_, &str, u64>,
        current: u64,
    ) -> Result<(), StoreError> {
        let Some(cutoff) = current.checked_sub(self.history_revisions) else {
            return Ok(());
        };
        let compacted = read_meta(meta, META_COMPACTED)?;
        if cutoff > compacted {
            history.retain_in(..=cutoff, |_, _| false)?;
            meta.insert(META_COMPACTED, cutoff)?;
        }
        Ok(())
    }
}

/// Locks a mutex whose data stays valid if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn op_key(op: &Op) -> &str {
    match op {
        Op::Put { key, .. } | Op::Delete { key } => key,
    }
}

fn compares_hold(kv: &Table<'_, &str, &[u8]>, compares: &[Compare]) -> Result<bool, StoreError> {
    for compare in compares {
        let holds = match compare {
            Compare::Absent(key) => kv.get(key.as_str())?.is_none(),
            Compare::ModRevision(key, expected) => match kv.get(key.as_str())? {
                Some(guard) => decode_record(key, guard.value())?.mod_revision == *expected,
                None => false,
            },
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes `ops` (sorted by key) at `revision` and returns their events. A delete of a
/// missing key produces no event, but the transaction still takes a new revision.
fn apply_ops(
    kv: &mut Table<'_, &str, &[u8]>,
    ops: Vec<Op>,
    revision: u64,
) -> Result<Vec<Event>, StoreError> {
    let mut events = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            Op::Put { key, value } => {
                let create_revision = match kv.get(key.as_str())? {
                    Some(guard) => decode_record(&key, guard.value())?.create_revision,
                    None => revision,
                };
                kv.insert(
                    key.as_str(),
                    encode_record(create_revision, revision, &value).as_slice(),
                )?;
                events.push(Event::Put(KeyValue {
                    key,
                    value,
                    create_revision,
                    mod_revision: revision,
                }));
            }
            Op::Delete { key } => {
                let removed = kv.remove(key.as_str())?;
                if let Some(guard) = removed {
                    let prev = decode_record(&key, guard.value())?;
                    events.push(Event::Delete { prev, revision });
                }
            }
        }
    }
    Ok(events)
}

#[async_trait]
impl Store for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = key.to_string();
        self.blocking(move |inner| inner.get(&key)).await
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError> {
        let prefix = prefix.to_string();
        self.blocking(move |inner| inner.range(&prefix)).await
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResponse, StoreError> {
        self.blocking(move |inner| inner.txn(compares, ops)).await
    }

    async fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream, StoreError> {
        // Subscribe before reading history: every commit after the history read is then
        // in the live channel, and the watcher skips the ones history already covered.
        let live = self.inner.commits.subscribe();
        redb_watch::start(&self.inner.db, live, prefix, after).await
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        self.blocking(Inner::revision).await
    }
}
