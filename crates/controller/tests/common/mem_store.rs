//! A small in-memory [`Store`] for tests: the same revision, transaction and watch
//! semantics as the trait documents, with the whole history kept (no compaction)
//! unless a test compacts it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use cloison_store::{
    Compare, Event, KeyValue, Op, Store, StoreError, TxnResponse, WatchBatch, WatchStream,
};
use tokio::sync::mpsc;

#[derive(Debug, Default)]
struct State {
    revision: u64,
    data: BTreeMap<String, KeyValue>,
    history: Vec<WatchBatch>,
    oldest: u64,
    watchers: Vec<(String, mpsc::Sender<Result<WatchBatch, StoreError>>)>,
    unavailable: bool,
    /// Key removed just before the next transaction, as by another writer.
    delete_before_txn: Option<String>,
}

/// An in-memory revisioned store.
#[derive(Debug, Default)]
pub struct MemStore {
    state: Mutex<State>,
    gather: Gather,
    /// Range reads under `/alloc/`, see [`MemStore::allocation_ranges`].
    allocation_ranges: std::sync::atomic::AtomicUsize,
}

/// See [`MemStore::gather_txns`].
#[derive(Debug, Default)]
struct Gather {
    /// How many transactions to wait for; 0 lets each run at once.
    expected_count: std::sync::atomic::AtomicUsize,
    /// Transactions that arrived since the store was made.
    arrived: tokio::sync::watch::Sender<usize>,
    /// Gathered transactions evaluated since the store was made.
    left: tokio::sync::watch::Sender<usize>,
    /// The largest number that waited together.
    max: std::sync::atomic::AtomicUsize,
}

/// How long a gathered transaction waits for the others at most.
const GATHER_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

impl MemStore {
    /// Returns how many range reads under `/alloc/` (every allocation of one kind
    /// in one network) the store served.
    #[allow(dead_code)]
    pub fn allocation_ranges(&self) -> usize {
        self.allocation_ranges.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes every later call fail with [`StoreError::Unavailable`].
    #[allow(dead_code)]
    pub fn set_unavailable(&self) {
        self.lock().unavailable = true;
    }

    /// Removes `key` just before the next transaction is evaluated, as another
    /// controller's delete between a caller's reads and its write would. The removal
    /// sends no watch event.
    #[allow(dead_code)]
    pub fn delete_before_next_txn(&self, key: &str) {
        self.lock().delete_before_txn = Some(key.to_string());
    }

    /// Forgets the history up to the current revision, as a compaction does.
    #[allow(dead_code)]
    pub fn compact(&self) {
        let mut state = self.lock();
        state.oldest = state.revision;
        state.history.clear();
    }

    /// Ends every open watch with the error `make` returns, as a store does when a
    /// watcher fell behind compaction or lost its connection.
    #[allow(dead_code)]
    pub fn end_watches(&self, make: impl Fn() -> StoreError) {
        let mut state = self.lock();
        for (_, sender) in state.watchers.drain(..) {
            let _ = sender.try_send(Err(make()));
        }
    }

    /// Makes the next `expected_count` transactions wait, before they are evaluated, until
    /// all of them arrived or 500 ms passed, as a store whose commits take time and
    /// are grouped would. They are then evaluated last arrived first. [`MemStore::max_gathered`] returns how many met.
    #[allow(dead_code)]
    pub fn gather_txns(&self, expected_count: usize) {
        self.gather.expected_count.store(expected_count, std::sync::atomic::Ordering::SeqCst);
    }

    /// Returns the largest number of transactions that waited together (see [`MemStore::gather_txns`]).
    #[allow(dead_code)]
    pub fn max_gathered(&self) -> usize {
        self.gather.max.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Returns how many transactions arrived at the gathering so far.
    #[allow(dead_code)]
    pub fn gathered_arrivals(&self) -> usize {
        *self.gather.arrived.borrow()
    }

    /// Waits as [`MemStore::gather_txns`] describes. Returns the arrival's number
    /// within the gathered ones, to pass to [`MemStore::evaluated`].
    async fn wait_for_others(&self) -> Option<usize> {
        use std::sync::atomic::Ordering::SeqCst;
        let expected_count = self.gather.expected_count.load(SeqCst);
        if expected_count == 0 {
            return None;
        }
        let mut arrived = self.gather.arrived.subscribe();
        let mut left = self.gather.left.subscribe();
        self.gather.arrived.send_modify(|n| *n += 1);
        let number = *self.gather.arrived.borrow();
        let together = number - *self.gather.left.borrow();
        self.gather.max.fetch_max(together, SeqCst);
        // The last to arrive goes first, the order most likely to expose a race
        // between requests that each checked the store before the others wrote.
        let gathered = async {
            let _ = arrived.wait_for(|n| *n >= expected_count).await;
            let _ = left.wait_for(|n| *n + number >= expected_count).await;
        };
        let _ = tokio::time::timeout(GATHER_WAIT, gathered).await;
        Some(number)
    }

    /// Counts a gathered transaction as evaluated, which lets the next one go.
    fn evaluated(&self, number: Option<usize>) {
        if number.is_some() {
            self.gather.left.send_modify(|n| *n += 1);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn check(state: &State) -> Result<(), StoreError> {
    if state.unavailable {
        return Err(StoreError::Unavailable("test store switched off".into()));
    }
    Ok(())
}

fn filter_batch(batch: &WatchBatch, prefix: &str) -> Option<WatchBatch> {
    let events: Vec<Event> = batch
        .events
        .iter()
        .filter(|event| match event {
            Event::Put(kv) => kv.key.starts_with(prefix),
            Event::Delete { prev, .. } => prev.key.starts_with(prefix),
        })
        .cloned()
        .collect();
    (!events.is_empty()).then_some(WatchBatch { revision: batch.revision, events })
}

#[async_trait]
impl Store for MemStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let state = self.lock();
        check(&state)?;
        Ok(state.data.get(key).cloned())
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError> {
        if prefix.contains("/alloc/") {
            self.allocation_ranges.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let state = self.lock();
        check(&state)?;
        let kvs = state
            .data
            .range(prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect();
        Ok((kvs, state.revision))
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResponse, StoreError> {
        let number = self.wait_for_others().await;
        let result = self.evaluate(compares, ops);
        self.evaluated(number);
        result
    }

    async fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream, StoreError> {
        let mut state = self.lock();
        check(&state)?;
        if after < state.oldest {
            return Err(StoreError::Compacted { requested: after, oldest: state.oldest });
        }
        let (sender, receiver) = mpsc::channel(100_000);
        for batch in state.history.iter().filter(|b| b.revision > after) {
            if let Some(filtered) = filter_batch(batch, prefix) {
                let _ = sender.try_send(Ok(filtered));
            }
        }
        state.watchers.push((prefix.to_string(), sender));
        Ok(receiver)
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        let state = self.lock();
        check(&state)?;
        Ok(state.revision)
    }
}

impl MemStore {
    fn evaluate(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResponse, StoreError> {
        let mut state = self.lock();
        check(&state)?;
        if let Some(key) = state.delete_before_txn.take() {
            state.data.remove(&key);
        }
        let holds = compares.iter().all(|compare| match compare {
            Compare::Absent(key) => !state.data.contains_key(key),
            Compare::ModRevision(key, rev) => state.data.get(key).is_some_and(|kv| kv.mod_revision == *rev),
        });
        if !holds {
            return Ok(TxnResponse { succeeded: false, revision: state.revision });
        }
        let revision = state.revision + 1;
        let mut events = Vec::new();
        for op in ops {
            match op {
                Op::Put { key, value } => {
                    let create_revision = state.data.get(&key).map_or(revision, |kv| kv.create_revision);
                    let kv = KeyValue { key: key.clone(), value, create_revision, mod_revision: revision };
                    state.data.insert(key, kv.clone());
                    events.push(Event::Put(kv));
                }
                Op::Delete { key } => {
                    if let Some(prev) = state.data.remove(&key) {
                        events.push(Event::Delete { prev, revision });
                    }
                }
            }
        }
        if events.is_empty() {
            return Ok(TxnResponse { succeeded: true, revision: state.revision });
        }
        events.sort_by(|a, b| event_key(a).cmp(event_key(b)));
        state.revision = revision;
        let batch = WatchBatch { revision, events };
        state.watchers.retain(|(prefix, sender)| match filter_batch(&batch, prefix) {
            Some(filtered) => sender.try_send(Ok(filtered)).is_ok(),
            None => !sender.is_closed(),
        });
        state.history.push(batch);
        Ok(TxnResponse { succeeded: true, revision })
    }
}

fn event_key(event: &Event) -> &str {
    match event {
        Event::Put(kv) => &kv.key,
        Event::Delete { prev, .. } => &prev.key,
    }
}
