use std::sync::Arc;
use std::time::Duration;

use cloison_model::Status;
use cloison_store::{KeyValue, Store};

use crate::alloc::AllocLocks;
use crate::records::{decode, Versioned};
use crate::watch::WatchHub;
use crate::{keys, ControllerError};

/// How many times a write re-reads and retries after its transaction lost a race with
/// another writer. Inside one controller allocations are serialised, so only other
/// controllers sharing the store cause retries.
pub(crate) const TXN_ATTEMPTS: usize = 16;

/// The service layer: every operation of the API, independent of HTTP.
#[derive(Debug)]
pub struct Controller {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) locks: AllocLocks,
    pub(crate) bookmark_interval: Duration,
    /// The shared index behind every host watch, started by the first watch.
    pub(crate) hub: tokio::sync::Mutex<Option<Arc<WatchHub>>>,
}

/// Filter of an endpoint listing; `None` fields match every endpoint.
#[derive(Debug, Clone, Default)]
pub struct EndpointFilter {
    pub tenant: Option<String>,
    pub network: Option<String>,
    pub host: Option<String>,
}

impl Controller {
    /// Creates a controller over `store`. Watches send a bookmark every 10 seconds.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Controller {
            store,
            locks: AllocLocks::default(),
            bookmark_interval: Duration::from_secs(10),
            hub: tokio::sync::Mutex::new(None),
        }
    }

    /// Sets how often an idle host watch sends a bookmark.
    pub fn with_bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }

    /// Returns the store revision and the number of each kind of resource.
    pub async fn status(&self) -> Result<Status, ControllerError> {
        let (kvs, revision) = self.store.range("/").await?;
        let count = |prefix: &str| kvs.iter().filter(|kv| kv.key.starts_with(prefix)).count() as u64;
        Ok(Status {
            revision,
            tenants: count(keys::TENANTS),
            networks: count(keys::NETWORKS),
            endpoints: count(keys::ENDPOINTS),
            hosts: count(keys::HOSTS),
        })
    }

    /// Reads and decodes one resource, or `None` when absent.
    pub(crate) async fn read<T: Versioned>(
        &self,
        key: &str,
    ) -> Result<Option<(T, KeyValue)>, ControllerError> {
        match self.store.get(key).await? {
            Some(kv) => Ok(Some((decode(&kv)?, kv))),
            None => Ok(None),
        }
    }

    /// Reads and decodes every resource under `prefix`, in key order.
    pub(crate) async fn list<T: Versioned>(&self, prefix: &str) -> Result<Vec<T>, ControllerError> {
        let (kvs, _) = self.store.range(prefix).await?;
        kvs.iter().map(decode).collect()
    }
}

/// Waits before retry `attempt` (0 is the first try, which does not wait) of a
/// transaction that lost a race: a random pause of up to 2^attempt ms, at most
/// 64 ms. Without it two controllers creating endpoints on one network kept
/// colliding until one gave up after every attempt.
pub(crate) async fn pause_before_retry(attempt: usize) {
    if attempt == 0 {
        return;
    }
    let ceiling_us = 1000u128 << attempt.min(6);
    let pause_us = uuid::Uuid::new_v4().as_u128() % ceiling_us;
    tokio::time::sleep(std::time::Duration::from_micros(u64::try_from(pause_us).unwrap_or(0))).await;
}

/// Returns a new resource id: a random UUID (v4) as text.
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
