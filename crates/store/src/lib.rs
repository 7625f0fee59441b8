//! The store behind the controller: a revisioned key/value space with
//! compare-and-swap transactions and watches, shaped after etcd's v3 API so
//! that the embedded `redb` implementation and an etcd one are interchangeable.
//!
//! Every successful transaction that changes something advances the store's
//! revision by one; each key remembers the revision that created it and the one
//! that last modified it. A watch replays every change after a given revision
//! and then follows new ones, until the history it needs has been compacted.

mod api;
mod codec;
#[cfg(feature = "contract-tests")]
pub mod contract;
mod error;
mod redb_store;
mod redb_watch;

pub use api::{Compare, Event, KeyValue, Op, Store, TxnResponse, WatchBatch, WatchStream};
pub use error::StoreError;
pub use redb_store::{RedbOptions, RedbStore};
