//! Store watches on etcd watches.
//!
//! One etcd watch per store watch, started at `after + 1` with `prev_kv` so that delete
//! events carry the deleted value. A task turns each etcd response into one batch per
//! revision and ends the stream with an error when etcd cancels the watch: with
//! [`StoreError::Compacted`] when the history it needs is gone, with
//! [`StoreError::Unavailable`] when the cluster cannot be reached.

use cloison_store::{Event, StoreError, WatchBatch, WatchStream};
use etcd_client::{EventType, WatchOptions, WatchResponse};
use tokio::sync::mpsc;

use crate::failover::Retry;
use crate::store::{from_etcd, to_etcd, EtcdStore, MAX_RESPONSE_BYTES};

/// Batches buffered per watch before the task stops reading from etcd, which then keeps
/// further events back through gRPC flow control.
const CHANNEL_DEPTH: usize = 256;

/// Starts an etcd watch of every key under `prefix` with a revision above `after` and
/// waits until etcd confirms it, so an unreachable cluster fails the call itself.
pub(crate) async fn start(
    store: EtcdStore,
    prefix: &str,
    after: u64,
) -> Result<WatchStream, StoreError> {
    let options = WatchOptions::new()
        .with_prefix()
        .with_prev_key()
        .with_start_revision(to_etcd(after.saturating_add(1)));
    let key = store.etcd_key(prefix);
    let timeout = store.request_timeout();
    let (etcd_watch, created) = store
        .cluster()
        .call(Retry::Unavailable, |client| {
            let (key, options) = (key.clone(), options.clone());
            async move { open_watch(client, key, options, timeout).await }
        })
        .await
        .map_err(|e| store.error(e))?;
    if created.canceled() {
        return Err(cancel_error(&store, &created, after));
    }

    let (sender, receiver) = mpsc::channel(CHANNEL_DEPTH);
    let task = WatchTask {
        store,
        sender,
        delivered: after,
    };
    tokio::spawn(task.run(etcd_watch));
    Ok(receiver)
}

/// Opens an etcd watch and waits for etcd's confirmation, which is its first response.
async fn open_watch(
    client: etcd_client::Client,
    key: Vec<u8>,
    options: WatchOptions,
    timeout: std::time::Duration,
) -> Result<(etcd_client::WatchStream, WatchResponse), etcd_client::Error> {
    let mut etcd_watch = client
        .watch_client()
        .max_decoding_message_size(MAX_RESPONSE_BYTES)
        .watch(key, Some(options))
        .await?;
    match tokio::time::timeout(timeout, etcd_watch.message()).await {
        Ok(Ok(Some(created))) => Ok((etcd_watch, created)),
        Ok(Ok(None)) => Err(etcd_client::Error::WatchError(
            "etcd closed the watch before confirming it".into(),
        )),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(etcd_client::Error::WatchError(
            "etcd did not confirm the watch in time".into(),
        )),
    }
}

/// Forwards one etcd watch; dropping the etcd stream at the end cancels it on the server.
struct WatchTask {
    store: EtcdStore,
    sender: mpsc::Sender<Result<WatchBatch, StoreError>>,
    /// Revision of the last batch delivered, where a compacted watcher fell behind.
    delivered: u64,
}

impl WatchTask {
    async fn run(mut self, mut etcd_watch: etcd_client::WatchStream) {
        loop {
            let message = tokio::select! {
                message = etcd_watch.message() => message,
                _ = self.sender.closed() => return,
            };
            let outcome = match message {
                Ok(Some(response)) => self.forward(&response).await,
                Ok(None) => Err(self.store.unavailable("etcd closed the watch")),
                Err(e) => Err(self.store.error(e)),
            };
            match outcome {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => {
                    tracing::debug!(members = %self.store.members(), %error, "etcd watch ended");
                    let _ = self.sender.send(Err(error)).await;
                    return;
                }
            }
        }
    }

    /// Sends the batches of one response. Returns `Ok(false)` when the receiver is gone.
    async fn forward(&mut self, response: &WatchResponse) -> Result<bool, StoreError> {
        if response.canceled() {
            return Err(cancel_error(&self.store, response, self.delivered));
        }
        for batch in batches(&self.store, response, self.delivered)? {
            let revision = batch.revision;
            if self.sender.send(Ok(batch)).await.is_err() {
                return Ok(false);
            }
            self.delivered = revision;
        }
        Ok(true)
    }
}

/// Explains why etcd cancelled a watch that had delivered everything up to `delivered`.
fn cancel_error(store: &EtcdStore, response: &WatchResponse, delivered: u64) -> StoreError {
    let compacted = from_etcd(response.compact_revision());
    if compacted > 0 {
        // etcd keeps the events of the compaction revision itself, so the oldest `after`
        // a new watch may use is one below it.
        return StoreError::Compacted {
            requested: delivered,
            oldest: compacted.saturating_sub(1),
        };
    }
    store.unavailable(&format!(
        "etcd cancelled the watch: {}",
        response.cancel_reason()
    ))
}

/// Groups the events of one response by revision, each group in key order.
fn batches(
    store: &EtcdStore,
    response: &WatchResponse,
    delivered: u64,
) -> Result<Vec<WatchBatch>, StoreError> {
    let mut batches: Vec<WatchBatch> = Vec::new();
    for event in response.events() {
        let (revision, event) = convert(store, event, delivered)?;
        match batches.last_mut() {
            Some(batch) if batch.revision == revision => batch.events.push(event),
            _ => batches.push(WatchBatch {
                revision,
                events: vec![event],
            }),
        }
    }
    for batch in &mut batches {
        batch.events.sort_by(|a, b| event_key(a).cmp(event_key(b)));
    }
    Ok(batches)
}

/// Converts one etcd event and returns it with its revision.
fn convert(
    store: &EtcdStore,
    event: &etcd_client::Event,
    delivered: u64,
) -> Result<(u64, Event), StoreError> {
    let kv = event
        .kv()
        .ok_or_else(|| store.unavailable("etcd sent a watch event without a key"))?;
    let revision = from_etcd(kv.mod_revision());
    match event.event_type() {
        EventType::Put => Ok((revision, Event::Put(store.key_value(kv)?))),
        EventType::Delete => {
            // etcd omits the previous value when compaction already removed it; the
            // watcher cannot tell what was deleted, so it must start over from a range.
            let prev = event.prev_kv().ok_or(StoreError::Compacted {
                requested: delivered,
                oldest: revision,
            })?;
            Ok((
                revision,
                Event::Delete {
                    prev: store.key_value(prev)?,
                    revision,
                },
            ))
        }
    }
}

fn event_key(event: &Event) -> &str {
    match event {
        Event::Put(kv) => &kv.key,
        Event::Delete { prev, .. } => &prev.key,
    }
}
