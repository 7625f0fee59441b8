//! `EtcdStore`: the [`Store`] trait over an etcd v3 cluster.
//!
//! Store revisions are etcd's: a range reports the header revision it read at, and a
//! key's create and mod revisions are the ones etcd keeps. Each store key is written as
//! `prefix + key`, so one cluster can hold several deployments.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloison_store::{Compare, KeyValue, Op, Store, StoreError, TxnResponse, WatchStream};
use etcd_client::{CompareOp, ConnectOptions, GetOptions, Txn, TxnOp};

use crate::errors::{store_error, unavailable};
use crate::failover::{Members, Retry};
use crate::options::EtcdOptions;
use crate::watch;

/// Keys read per range request, so a large keyspace is read in pages pinned to the first
/// page's revision.
const RANGE_PAGE: i64 = 1000;
/// Largest range or watch response accepted. etcd-client refuses responses above 4 MiB
/// by default, which 1000 records of 4 KiB already exceed.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 << 20;
/// HTTP/2 pings that detect a member that vanished without closing its connections.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The [`Store`] on an etcd cluster. Clones share the members' connections.
#[derive(Clone)]
pub struct EtcdStore {
    cluster: Arc<Members>,
    prefix: String,
    members: String,
    request_timeout: Duration,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("members", &self.members)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Prepares a client for the cluster. Connections open lazily, so this succeeds while
    /// every member is down; requests then fail with [`StoreError::Unavailable`] until a
    /// member with a leader responds.
    pub async fn connect(options: &EtcdOptions) -> Result<Self, StoreError> {
        let members = options.members();
        // require_leader makes a member cut off from the leader fail requests at once
        // instead of holding them until the timeout. etcd closes connections that ping
        // more often than every 5 s (its --grpc-keepalive-min-time default).
        let connect = ConnectOptions::new()
            .with_timeout(options.request_timeout)
            .with_connect_timeout(options.connect_timeout)
            .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT)
            .with_require_leader(true);
        let cluster = Members::connect(&options.endpoints, &connect)
            .await
            .map_err(|e| store_error(e, &members))?;
        Ok(Self {
            cluster: Arc::new(cluster),
            prefix: options.prefix.clone(),
            members,
            request_timeout: options.request_timeout,
        })
    }

    /// Returns the cluster's members as `HOST:PORT,...`.
    pub fn members(&self) -> &str {
        &self.members
    }

    /// Returns the prefix under which this store keeps its keys.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Discards etcd's history up to `revision`, as etcd operators must do periodically.
    /// Watches that have not reached `revision` then end with [`StoreError::Compacted`].
    pub async fn compact(&self, revision: u64) -> Result<(), StoreError> {
        let revision = to_etcd(revision);
        self.cluster
            .call(Retry::NotSent, |client| async move {
                client.kv_client().compact(revision, None).await
            })
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    pub(crate) fn cluster(&self) -> &Members {
        &self.cluster
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    pub(crate) fn error(&self, error: etcd_client::Error) -> StoreError {
        store_error(error, &self.members)
    }

    pub(crate) fn unavailable(&self, detail: &str) -> StoreError {
        unavailable(&self.members, detail)
    }

    /// Returns the etcd key of a store key.
    pub(crate) fn etcd_key(&self, key: &str) -> Vec<u8> {
        format!("{}{key}", self.prefix).into_bytes()
    }

    /// Converts an etcd key-value under this store's prefix into a store key-value.
    pub(crate) fn key_value(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
        Ok(KeyValue {
            key: self.store_key(kv.key())?,
            value: kv.value().to_vec(),
            create_revision: from_etcd(kv.create_revision()),
            mod_revision: from_etcd(kv.mod_revision()),
        })
    }

    fn store_key(&self, etcd_key: &[u8]) -> Result<String, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt {
            key: String::from_utf8_lossy(etcd_key).into_owned(),
            reason: reason.to_string(),
        };
        let key =
            std::str::from_utf8(etcd_key).map_err(|_| corrupt("the etcd key is not UTF-8"))?;
        let key = key
            .strip_prefix(&self.prefix)
            .ok_or_else(|| corrupt("the etcd key is outside the store's prefix"))?;
        Ok(key.to_string())
    }

    /// Reads one page of `[from, end)` at `revision` (0: the latest).
    async fn range_page(
        &self,
        from: Vec<u8>,
        end: Vec<u8>,
        revision: i64,
    ) -> Result<etcd_client::GetResponse, StoreError> {
        let mut options = GetOptions::new().with_range(end).with_limit(RANGE_PAGE);
        if revision > 0 {
            options = options.with_revision(revision);
        }
        self.cluster
            .call(Retry::Unavailable, |client| {
                let (from, options) = (from.clone(), options.clone());
                async move {
                    let mut kv = client
                        .kv_client()
                        .max_decoding_message_size(MAX_RESPONSE_BYTES);
                    kv.get(from, Some(options)).await
                }
            })
            .await
            .map_err(|e| self.error(e))
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = self.etcd_key(key);
        let response = self
            .cluster
            .call(Retry::Unavailable, |client| {
                let key = key.clone();
                async move { client.kv_client().get(key, None).await }
            })
            .await
            .map_err(|e| self.error(e))?;
        response
            .kvs()
            .first()
            .map(|kv| self.key_value(kv))
            .transpose()
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError> {
        let start = self.etcd_key(prefix);
        let end = prefix_end(&start);
        let mut from = start;
        let mut revision = 0;
        let mut found = Vec::new();
        loop {
            let page = self.range_page(from, end.clone(), revision).await?;
            if revision == 0 {
                revision = header_revision(page.header());
            }
            for kv in page.kvs() {
                found.push(self.key_value(kv)?);
            }
            match page.kvs().last() {
                Some(last) if page.more() => from = key_after(last.key()),
                _ => return Ok((found, from_etcd(revision))),
            }
        }
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResponse, StoreError> {
        reject_duplicate_keys(&ops)?;
        let when: Vec<etcd_client::Compare> = compares
            .iter()
            .flat_map(|compare| self.etcd_compares(compare))
            .collect();
        let then: Vec<TxnOp> = ops.into_iter().map(|op| self.etcd_op(op)).collect();
        let txn = Txn::new().when(when).and_then(then);
        let response = self
            .cluster
            .call(Retry::NotSent, |client| {
                let txn = txn.clone();
                async move { client.kv_client().txn(txn).await }
            })
            .await
            .map_err(|e| self.error(e))?;
        Ok(TxnResponse {
            succeeded: response.succeeded(),
            revision: from_etcd(header_revision(response.header())),
        })
    }

    async fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream, StoreError> {
        watch::start(self.clone(), prefix, after).await
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        let key = self.etcd_key("/");
        let response = self
            .cluster
            .call(Retry::Unavailable, |client| {
                let key = key.clone();
                async move {
                    let options = GetOptions::new().with_count_only();
                    client.kv_client().get(key, Some(options)).await
                }
            })
            .await
            .map_err(|e| self.error(e))?;
        Ok(from_etcd(header_revision(response.header())))
    }
}

impl EtcdStore {
    /// Translates one store comparison. etcd reports mod_revision 0 for a missing key, so
    /// `ModRevision(key, 0)` also requires the key to exist, as the store contract requires.
    fn etcd_compares(&self, compare: &Compare) -> Vec<etcd_client::Compare> {
        use etcd_client::Compare as EtcdCompare;
        match compare {
            Compare::Absent(key) => vec![EtcdCompare::version(
                self.etcd_key(key),
                CompareOp::Equal,
                0,
            )],
            Compare::ModRevision(key, revision) => {
                let mut compares = vec![EtcdCompare::mod_revision(
                    self.etcd_key(key),
                    CompareOp::Equal,
                    to_etcd(*revision),
                )];
                if *revision == 0 {
                    compares.push(EtcdCompare::version(
                        self.etcd_key(key),
                        CompareOp::Greater,
                        0,
                    ));
                }
                compares
            }
        }
    }

    fn etcd_op(&self, op: Op) -> TxnOp {
        match op {
            Op::Put { key, value } => TxnOp::put(self.etcd_key(&key), value, None),
            Op::Delete { key } => TxnOp::delete(self.etcd_key(&key), None),
        }
    }
}

/// Fails like etcd's "duplicate key given in txn request", before sending anything, so
/// the error names the key.
fn reject_duplicate_keys(ops: &[Op]) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for op in ops {
        let key = match op {
            Op::Put { key, .. } | Op::Delete { key } => key,
        };
        if !seen.insert(key.as_str()) {
            return Err(StoreError::DuplicateKey { key: key.clone() });
        }
    }
    Ok(())
}

/// Returns the smallest key greater than every key starting with `prefix`, the range end
/// etcd expects for a prefix read. `prefix` always starts with the store prefix, so it
/// is never empty or all 0xff bytes.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Returns the smallest key after `key`, where the next page of a range starts.
fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision())
}

/// Converts an etcd revision, which is never negative, into a store revision.
pub(crate) fn from_etcd(revision: i64) -> u64 {
    u64::try_from(revision).unwrap_or(0)
}

/// Converts a store revision into an etcd one; revisions above `i64::MAX` cannot occur
/// in etcd, so they saturate.
pub(crate) fn to_etcd(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"/cloison/"), b"/cloison0".to_vec());
        assert_eq!(prefix_end(b"/a\xff"), b"/b".to_vec());
    }

    #[test]
    fn duplicate_keys_rejected() {
        let ops = vec![
            Op::Put {
                key: "/k".into(),
                value: Vec::new(),
            },
            Op::Delete { key: "/k".into() },
        ];
        let err = reject_duplicate_keys(&ops).expect_err("duplicate accepted");
        assert!(
            matches!(err, StoreError::DuplicateKey { ref key } if key == "/k"),
            "{err:?}"
        );
    }
}
