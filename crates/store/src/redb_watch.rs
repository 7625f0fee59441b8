//! Watches of `RedbStore`: replay from the `history` table, then follow live commits.
//!
//! A watch task keeps a cursor, the last revision it has handled. It replays history
//! after the cursor in chunks, then reads the broadcast of live commits and skips those
//! at or below the cursor. When it lags behind the broadcast, or receives a revision beyond
//! the next one, it reads history again from the cursor. Only when that history has been
//! compacted does the stream end with [`StoreError::Compacted`].

use std::sync::{Arc, Weak};

use redb::{Database, ReadableDatabase, ReadableTable};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};

use crate::codec::decode_events;
use crate::redb_store::{read_meta, Commit, HISTORY, META, META_COMPACTED, META_REVISION};
use crate::{Event, StoreError, WatchBatch, WatchStream};

/// Revisions read from history in one blocking call.
const HISTORY_CHUNK: usize = 1024;
/// Batches buffered between the watch task and its receiver.
const STREAM_CAPACITY: usize = 256;

/// A slice of history read in one read transaction.
struct HistoryRead {
    /// Batches under the prefix, in revision order, without empty ones.
    batches: Vec<WatchBatch>,
    /// The last revision this read covered.
    through: u64,
    /// True when `through` is the store revision at the time of the read.
    complete: bool,
}

/// The receiver has gone or the store was dropped: the watch task stops.
struct Stop;

/// Starts a watch of `prefix` after revision `after`. The first chunk of history is
/// read here, so a compacted start revision fails the call itself.
pub(crate) async fn start(
    db: &Arc<Database>,
    live: broadcast::Receiver<Arc<Commit>>,
    prefix: &str,
    after: u64,
) -> Result<WatchStream, StoreError> {
    let first = read_blocking(Arc::clone(db), prefix.to_string(), after).await?;
    let (out, stream) = mpsc::channel(STREAM_CAPACITY);
    let watcher = Watcher {
        db: Arc::downgrade(db),
        prefix: prefix.to_string(),
        cursor: after,
        out,
        live,
    };
    tokio::spawn(watcher.run(first));
    Ok(stream)
}

struct Watcher {
    /// Weak, so a watch does not keep the database file open after the store is dropped.
    db: Weak<Database>,
    prefix: String,
    cursor: u64,
    out: mpsc::Sender<Result<WatchBatch, StoreError>>,
    live: broadcast::Receiver<Arc<Commit>>,
}

impl Watcher {
    async fn run(mut self, first: HistoryRead) {
        let complete = first.complete;
        if self.forward(first).await.is_err() {
            return;
        }
        if !complete && self.catch_up().await.is_err() {
            return;
        }
        while self.follow_live().await.is_ok() {}
    }

    /// Handles one live message, or stops when the receiver or the store is gone.
    async fn follow_live(&mut self) -> Result<(), Stop> {
        let message = tokio::select! {
            () = self.out.closed() => return Err(Stop),
            message = self.live.recv() => message,
        };
        match message {
            Ok(commit) if commit.revision <= self.cursor => Ok(()),
            Ok(commit) if commit.revision == self.cursor + 1 => self.send_commit(&commit).await,
            // A revision is missing between the cursor and this commit: history has it.
            Ok(_) | Err(RecvError::Lagged(_)) => self.catch_up().await,
            Err(RecvError::Closed) => Err(Stop),
        }
    }

    async fn send_commit(&mut self, commit: &Commit) -> Result<(), Stop> {
        let events = filter_events(&self.prefix, commit.events.iter().cloned());
        self.cursor = commit.revision;
        if events.is_empty() {
            return Ok(());
        }
        let batch = WatchBatch {
            revision: commit.revision,
            events,
        };
        self.out.send(Ok(batch)).await.map_err(|_| Stop)
    }

    /// Replays history from the cursor up to the store's current revision.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            let db = self.db.upgrade().ok_or(Stop)?;
            match read_blocking(db, self.prefix.clone(), self.cursor).await {
                Ok(read) => {
                    let complete = read.complete;
                    self.forward(read).await?;
                    if complete {
                        return Ok(());
                    }
                }
                Err(err) => {
                    // Whether the receiver still listens or not, the watch ends here.
                    let _ = self.out.send(Err(err)).await;
                    return Err(Stop);
                }
            }
        }
    }

    async fn forward(&mut self, read: HistoryRead) -> Result<(), Stop> {
        for batch in read.batches {
            self.out.send(Ok(batch)).await.map_err(|_| Stop)?;
        }
        self.cursor = self.cursor.max(read.through);
        Ok(())
    }
}

async fn read_blocking(
    db: Arc<Database>,
    prefix: String,
    after: u64,
) -> Result<HistoryRead, StoreError> {
    tokio::task::spawn_blocking(move || read_history(&db, &prefix, after)).await?
}

/// Reads up to [`HISTORY_CHUNK`] revisions after `after` in one read transaction.
fn read_history(db: &Database, prefix: &str, after: u64) -> Result<HistoryRead, StoreError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let compacted = read_meta(&meta, META_COMPACTED)?;
    if after < compacted {
        return Err(StoreError::Compacted {
            requested: after,
            oldest: compacted + 1,
        });
    }
    let current = read_meta(&meta, META_REVISION)?;

    let history = txn.open_table(HISTORY)?;
    let mut batches = Vec::new();
    let mut through = after;
    let mut read = 0;
    for entry in history.range((after + 1)..)?.take(HISTORY_CHUNK) {
        let (revision, bytes) = entry?;
        let revision = revision.value();
        let events = filter_events(prefix, decode_events(revision, bytes.value())?);
        if !events.is_empty() {
            batches.push(WatchBatch { revision, events });
        }
        through = revision;
        read += 1;
    }
    let complete = read < HISTORY_CHUNK || through >= current;
    Ok(HistoryRead {
        batches,
        through: if complete {
            current.max(after)
        } else {
            through
        },
        complete,
    })
}

fn filter_events(prefix: &str, events: impl IntoIterator<Item = Event>) -> Vec<Event> {
    events
        .into_iter()
        .filter(|event| event_key(event).starts_with(prefix))
        .collect()
}

fn event_key(event: &Event) -> &str {
    match event {
        Event::Put(kv) => &kv.key,
        Event::Delete { prev, .. } => &prev.key,
    }
}
