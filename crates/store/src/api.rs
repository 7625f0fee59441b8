use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::StoreError;

/// One stored key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the transaction that created the key.
    pub create_revision: u64,
    /// Revision of the transaction that last wrote the key.
    pub mod_revision: u64,
}

/// A condition a transaction checks before it applies its operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key does not exist.
    Absent(String),
    /// The key exists and was last written at this revision.
    ModRevision(String, u64),
}

/// A write inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

/// Outcome of [`Store::txn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnResponse {
    /// False when a comparison failed and nothing was written.
    pub succeeded: bool,
    /// The store revision after the transaction (unchanged if it failed).
    pub revision: u64,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put(KeyValue),
    /// The key was deleted; `prev` is its last value.
    Delete { prev: KeyValue, revision: u64 },
}

/// All changes of one revision under the watched prefix, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchBatch {
    pub revision: u64,
    pub events: Vec<Event>,
}

/// A live watch: batches in revision order. An `Err` ends the watch (for instance
/// [`StoreError::Compacted`] when the watcher fell too far behind); the receiver then
/// reads a fresh range and watches again from its revision.
pub type WatchStream = mpsc::Receiver<Result<WatchBatch, StoreError>>;

/// A revisioned key/value store with compare-and-swap transactions and watches.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Reads every key starting with `prefix`, in key order, with the revision the
    /// read is consistent at.
    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError>;

    /// Applies `ops` atomically if every comparison holds, as one new revision.
    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResponse, StoreError>;

    /// Streams every change under `prefix` with a revision greater than `after`.
    /// Fails with [`StoreError::Compacted`] if that history is gone.
    async fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream, StoreError>;

    /// Returns the current revision.
    async fn revision(&self) -> Result<u64, StoreError>;
}
