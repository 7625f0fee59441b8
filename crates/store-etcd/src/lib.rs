//! The cloison store on an etcd v3 cluster.
//!
//! With the embedded redb store one controller owns the state. With [`EtcdStore`]
//! any number of controllers share one etcd cluster. Every allocation is an etcd
//! transaction that requires its keys to be absent, so two controllers never hand out the
//! same VNI, address or MAC. Revisions are etcd's own, so any controller can resume a
//! host watch that another one served.

mod errors;
mod failover;
mod options;
mod store;
#[cfg(feature = "test-cluster")]
pub mod test_cluster;
mod watch;

pub use options::{EtcdOptions, OptionsError, DEFAULT_PREFIX, ETCD_SCHEME};
pub use store::EtcdStore;
