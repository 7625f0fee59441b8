//! The controller's one store watch: it keeps the [`DeploymentIndex`] current and hands
//! each subscribed host the events its [`HostWatchFilter`] picks from every change.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cloison_model::WatchEvent;
use cloison_store::{Store, StoreError, WatchBatch, WatchStream};
use tokio::sync::mpsc;

use super::filter::HostWatchFilter;
use super::index::{Change, DeploymentIndex};

/// Changes kept for resumed watches. At 1,000 hosts sending a heartbeat every 10 s this
/// is about 2.7 minutes of history, and much longer with few hosts.
const HISTORY_CHANGES: usize = 16_384;
/// Batches of events buffered per subscriber. A subscriber that falls further behind
/// is dropped and resumes from its last revision.
const DELIVERY_DEPTH: usize = 1024;

/// The events of one store batch for one host.
#[derive(Debug)]
pub(super) struct Delivery {
    pub(super) revision: u64,
    pub(super) events: Vec<WatchEvent>,
}

/// The first events of a new subscriber, and the channel of its deliveries.
pub(super) struct Subscription {
    pub(super) id: u64,
    /// A snapshot, or the events replayed from the history since the requested revision.
    pub(super) first: Vec<WatchEvent>,
    /// The revision the subscriber's host is at once it has sent `first`.
    pub(super) revision: u64,
    pub(super) deliveries: mpsc::Receiver<Delivery>,
}

/// The shared index and its subscribers. The task following the store stops when
/// the hub is dropped.
pub(crate) struct WatchHub {
    state: Arc<Mutex<HubState>>,
    follower: tokio::task::AbortHandle,
}

impl std::fmt::Debug for WatchHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("WatchHub")
            .field("revision", &state.index.revision())
            .field("subscribers", &state.subscribers.len())
            .field("alive", &state.alive)
            .finish()
    }
}

struct Subscriber {
    filter: HostWatchFilter,
    sender: mpsc::Sender<Delivery>,
    pending: Vec<WatchEvent>,
}

struct HubState {
    index: DeploymentIndex,
    /// The latest changes, oldest first.
    history: VecDeque<Change>,
    /// The revision after which `history` contains every change.
    history_after: u64,
    subscribers: HashMap<u64, Subscriber>,
    next_id: u64,
    /// False once the store watch ended on an error other than compaction.
    alive: bool,
}

impl HubState {
    fn new(index: DeploymentIndex) -> Self {
        let revision = index.revision();
        HubState { index, history: VecDeque::new(), history_after: revision, subscribers: HashMap::new(), next_id: 0, alive: true }
    }
}

impl WatchHub {
    /// Reads the whole keyspace into the index and starts following the store after it.
    pub(crate) async fn start(store: Arc<dyn Store>) -> Result<Arc<Self>, StoreError> {
        let (index, stream) = load(store.as_ref()).await?;
        let state = Arc::new(Mutex::new(HubState::new(index)));
        let follower = tokio::spawn(follow(store, Arc::clone(&state), stream)).abort_handle();
        Ok(Arc::new(WatchHub { state, follower }))
    }

    /// Returns false once the hub stopped following the store.
    pub(crate) fn is_alive(&self) -> bool {
        lock(&self.state).alive
    }

    /// Returns the revision of the last change handed to the subscribers.
    pub(super) fn revision(&self) -> u64 {
        lock(&self.state).index.revision()
    }

    /// Subscribes `host` and returns what its stream sends first. That is nothing when
    /// `after` is the current revision, and the history since `after` when the history
    /// contains every change since and none of them moves a tenant to or from the host.
    /// Otherwise it is a snapshot.
    ///
    /// Limitation: the snapshot is cloned from the index while the hub's lock is held,
    /// and each watch keeps its own copy until it is sent. With large tenants, many
    /// watches opening at once (agents reconnecting after a controller restart) delay
    /// every fan-out and cost memory in proportion to watches times snapshot size.
    pub(super) fn subscribe(&self, host: &str, after: Option<u64>) -> Result<Subscription, StoreError> {
        let mut state = lock(&self.state);
        if !state.alive {
            return Err(StoreError::Unavailable("the controller's store watch ended".into()));
        }
        let revision = state.index.revision();
        let (filter, first) = match after.and_then(|after| replay(&state, host, after)) {
            Some(replayed) => (HostWatchFilter::resume(host, &state.index), replayed),
            None => {
                let (filter, snapshot) = HostWatchFilter::start(host, &state.index);
                (filter, vec![snapshot])
            }
        };
        let (sender, deliveries) = mpsc::channel(DELIVERY_DEPTH);
        let id = state.next_id;
        state.next_id += 1;
        state.subscribers.insert(id, Subscriber { filter, sender, pending: Vec::new() });
        Ok(Subscription { id, first, revision, deliveries })
    }

    /// Removes a subscriber whose stream ended.
    pub(super) fn unsubscribe(&self, id: u64) {
        lock(&self.state).subscribers.remove(&id);
    }
}

impl Drop for WatchHub {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// Returns the events of the history after `after` for `host`, or `None` when the
/// history does not reach back that far. It is also `None` when a change in it moved
/// a tenant to or from the host, because the tenant's objects at that older revision
/// are no longer known.
fn replay(state: &HubState, host: &str, after: u64) -> Option<Vec<WatchEvent>> {
    let revision = state.index.revision();
    if after > revision || after < state.history_after {
        return None;
    }
    let mut filter = HostWatchFilter::resume(host, &state.index);
    let since: Vec<&Change> = state.history.iter().filter(|c| c.revision > after).collect();
    if since.iter().any(|change| filter.moves_tenant(change)) {
        return None;
    }
    Some(since.into_iter().flat_map(|change| filter.apply(&state.index, change)).collect())
}

fn lock(state: &Mutex<HubState>) -> MutexGuard<'_, HubState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn load(store: &dyn Store) -> Result<(DeploymentIndex, WatchStream), StoreError> {
    let (kvs, revision) = store.range("/").await?;
    let index = DeploymentIndex::from_range(&kvs, revision);
    let stream = store.watch("/", revision).await?;
    Ok((index, stream))
}

/// Applies the store's batches until the store watch fails. After a compaction the
/// index is loaded again and every subscriber is dropped, so each resumes with a
/// snapshot. After another error the hub stops, and the subscribers' streams end.
async fn follow(store: Arc<dyn Store>, state: Arc<Mutex<HubState>>, mut stream: WatchStream) {
    loop {
        let error = loop {
            match stream.recv().await {
                Some(Ok(batch)) => apply(&mut lock(&state), &batch),
                Some(Err(error)) => break error,
                None => break StoreError::Unavailable("the store closed the watch".into()),
            }
        };
        let restarted = match error {
            StoreError::Compacted { requested, oldest } => {
                tracing::info!(requested, oldest, "controller's watch fell behind compaction, reloading the index");
                load(store.as_ref()).await
            }
            error => Err(error),
        };
        let mut state = lock(&state);
        state.subscribers.clear();
        match restarted {
            Ok((index, restarted)) => {
                // Ids stay unique across the reload: a dropped subscriber's task still
                // unsubscribes its old id.
                let next_id = state.next_id;
                *state = HubState { next_id, ..HubState::new(index) };
                stream = restarted;
            }
            Err(error) => {
                tracing::warn!(%error, "controller's store watch failed, ending every host watch");
                state.alive = false;
                return;
            }
        }
    }
}

/// Applies one batch to the index and queues each subscriber's events. A subscriber
/// whose queue is full is dropped, and its stream resumes from the last revision it
/// sent.
fn apply(state: &mut HubState, batch: &WatchBatch) {
    let HubState { index, history, history_after, subscribers, .. } = state;
    index.apply(batch, |index, change| {
        for subscriber in subscribers.values_mut() {
            let events = subscriber.filter.apply(index, change);
            subscriber.pending.extend(events);
        }
        history.push_back(change.clone());
    });
    while history.len() > HISTORY_CHANGES {
        if let Some(dropped) = history.pop_front() {
            *history_after = dropped.revision;
        }
    }
    subscribers.retain(|id, subscriber| {
        if subscriber.pending.is_empty() {
            return true;
        }
        let events = std::mem::take(&mut subscriber.pending);
        match subscriber.sender.try_send(Delivery { revision: batch.revision, events }) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::info!(subscriber = id, host.name = %subscriber.filter.host(), "host watch fell behind, resuming it");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    });
}
