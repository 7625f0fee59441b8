use thiserror::Error;

/// Failures of the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The watch asked for changes older than the oldest revision still kept.
    #[error("revision {requested} has been compacted; the oldest revision kept is {oldest}")]
    Compacted { requested: u64, oldest: u64 },
    /// The store cannot serve the request now (no quorum, connection lost).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A remote store rejected the request for a reason other than availability, for
    /// instance etcd's limit on operations per transaction.
    #[error("the store rejected the request: {0}")]
    Rejected(String),
    /// The embedded database failed.
    #[error("embedded database error: {0}")]
    Database(#[from] redb::Error),
    /// The store's files could not be opened or created.
    #[error("cannot open store at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: redb::DatabaseError,
    },
    /// The store's directory could not be created.
    #[error("cannot create store directory {path}: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A transaction names the same key in more than one operation, as etcd rejects too.
    #[error("transaction has more than one operation on key {key}; use one put or delete per key")]
    DuplicateKey { key: String },
    /// A blocking database task panicked or was cancelled.
    #[error("store task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A stored record could not be decoded.
    #[error("corrupt record for key {key}: {reason}")]
    Corrupt { key: String, reason: String },
}

/// Converts each redb error kind through `redb::Error`, so `?` works on redb calls.
macro_rules! from_redb {
    ($($kind:ty),*) => {
        $(impl From<$kind> for StoreError {
            fn from(err: $kind) -> Self {
                StoreError::Database(redb::Error::from(err))
            }
        })*
    };
}

from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
