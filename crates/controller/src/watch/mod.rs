//! The per-host watch: a snapshot or a resumed position, then the store's changes
//! filtered by [`HostWatchFilter`], with periodic bookmarks.

mod filter;

use std::time::Duration;

use cloison_model::WatchEvent;
use cloison_store::{StoreError, WatchStream};
use futures::Stream;
use tokio::sync::mpsc;

use crate::{Controller, ControllerError};
pub use filter::HostWatchFilter;

/// Events buffered per watcher before the producer waits for the consumer.
const CHANNEL_DEPTH: usize = 256;

/// A started store watch and the filter positioned where it begins.
struct Position {
    filter: HostWatchFilter,
    store_watch: WatchStream,
}

impl Controller {
    /// Streams what one host needs: a `snapshot` first unless `after` is the current
    /// revision, then filtered changes and a `bookmark` every bookmark interval.
    ///
    /// Errors before the stream starts, such as an unavailable store, are returned.
    /// Once started, the stream restarts with a new snapshot when the store's history is
    /// compacted. It ends on other store errors, so the client reconnects.
    ///
    /// Limitation: resuming from a revision older than the current one sends a full
    /// snapshot, because the filter cannot rebuild which networks were relevant at an
    /// older revision. Any write to the store, heartbeats included, makes a resumed
    /// watch start with a snapshot.
    pub async fn watch_host(
        &self,
        host: &str,
        after: Option<u64>,
    ) -> Result<impl Stream<Item = WatchEvent> + Send + 'static, ControllerError> {
        let (first, position) = self.start_position(host, after).await?;
        let (sender, receiver) = mpsc::channel(CHANNEL_DEPTH);
        let task = WatchTask {
            store: self.store.clone(),
            host: host.to_string(),
            interval: self.bookmark_interval,
            sender,
        };
        tokio::spawn(task.run(first, position));
        Ok(futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|event| (event, receiver))
        }))
    }

    /// Reads the whole keyspace and starts the store watch right after it.
    async fn start_position(
        &self,
        host: &str,
        after: Option<u64>,
    ) -> Result<(Option<WatchEvent>, Position), ControllerError> {
        start_position(self.store.as_ref(), host, after).await
    }
}

async fn start_position(
    store: &dyn cloison_store::Store,
    host: &str,
    after: Option<u64>,
) -> Result<(Option<WatchEvent>, Position), ControllerError> {
    let (kvs, revision) = store.range("/").await?;
    let (filter, snapshot) = HostWatchFilter::from_snapshot(host, &kvs, revision);
    let store_watch = store.watch("/", revision).await?;
    let first = if after == Some(revision) { None } else { Some(snapshot) };
    Ok((first, Position { filter, store_watch }))
}

/// The task behind one host watch; it ends when the receiver is dropped.
struct WatchTask {
    store: std::sync::Arc<dyn cloison_store::Store>,
    host: String,
    interval: Duration,
    sender: mpsc::Sender<WatchEvent>,
}

impl WatchTask {
    async fn run(self, mut first: Option<WatchEvent>, mut position: Position) {
        loop {
            if let Some(event) = first.take() {
                if self.sender.send(event).await.is_err() {
                    return;
                }
            }
            match self.follow(&mut position).await {
                Ok(()) => return,
                Err(StoreError::Compacted { requested, oldest }) => {
                    tracing::info!(host.name = %self.host, requested, oldest, "host watch fell behind compaction, sending a new snapshot");
                }
                Err(error) => {
                    tracing::warn!(host.name = %self.host, %error, "host watch ended by a store error");
                    return;
                }
            }
            match start_position(self.store.as_ref(), &self.host, None).await {
                Ok((snapshot, restarted)) => {
                    first = snapshot;
                    position = restarted;
                }
                Err(error) => {
                    tracing::warn!(host.name = %self.host, %error, "host watch could not restart");
                    return;
                }
            }
        }
    }

    /// Forwards filtered batches and bookmarks until the receiver goes away (`Ok`) or
    /// the store watch fails (`Err`).
    async fn follow(&self, position: &mut Position) -> Result<(), StoreError> {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.reset();
        loop {
            let events = tokio::select! {
                batch = position.store_watch.recv() => match batch {
                    Some(batch) => position.filter.apply(&batch?),
                    None => return Err(StoreError::Unavailable("the store closed the watch".into())),
                },
                _ = ticker.tick() => vec![WatchEvent::Bookmark { revision: position.filter.revision() }],
                _ = self.sender.closed() => return Ok(()),
            };
            for event in events {
                if self.sender.send(event).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}
