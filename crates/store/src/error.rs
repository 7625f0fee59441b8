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
    /// A stored record could not be decoded.
    #[error("corrupt record for key {key}: {reason}")]
    Corrupt { key: String, reason: String },
}
