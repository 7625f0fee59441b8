//! Versioned JSON snapshots of a whole store, which move a deployment between the
//! embedded redb store and etcd.
//!
//! A snapshot keeps keys and values only. Revisions belong to the store that wrote them,
//! so the target store numbers the imported keys with its own revisions.

use std::collections::BTreeSet;

use anyhow::{bail, Context};
use cloison_store::{Op, Store};
use serde::{Deserialize, Serialize};

/// Value of the `format` field, so that an unrelated JSON file is never imported.
pub(crate) const SNAPSHOT_FORMAT: &str = "cloison-store-snapshot";
/// Version of the snapshot layout this build writes and reads.
pub(crate) const SNAPSHOT_VERSION: u32 = 1;
/// Operations per import transaction, below etcd's default limit of 128 (`--max-txn-ops`).
const IMPORT_TXN_OPS: usize = 100;

/// Every key of a store at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub(crate) format: String,
    pub(crate) version: u32,
    /// Revision of the source store the snapshot was read at, for the operator's records.
    pub(crate) revision: u64,
    pub(crate) entries: Vec<Entry>,
}

/// One key with its value. Values are UTF-8 text, as every record the controller writes
/// is JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) value: String,
}

/// Outcome of an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct ImportReport {
    pub(crate) written: usize,
    /// Keys of the target that were not in the snapshot and were deleted (`--force` only).
    pub(crate) deleted: usize,
    /// Revision of the target store after the import.
    pub(crate) revision: u64,
}

/// Reads every key of `store` in one consistent range.
pub(crate) async fn export(store: &dyn Store) -> anyhow::Result<Snapshot> {
    let (kvs, revision) = store.range("/").await.context("cannot read the store")?;
    let mut entries = Vec::with_capacity(kvs.len());
    for kv in kvs {
        let value = String::from_utf8(kv.value).with_context(|| {
            format!(
                "the value of key {} is not UTF-8, so it cannot be exported",
                kv.key
            )
        })?;
        entries.push(Entry { key: kv.key, value });
    }
    Ok(Snapshot {
        format: SNAPSHOT_FORMAT.to_string(),
        version: SNAPSHOT_VERSION,
        revision,
        entries,
    })
}

/// Parses a snapshot, checking its format and version before its entries so that a
/// snapshot from a newer release is rejected with the version it has.
pub(crate) fn parse(text: &str) -> anyhow::Result<Snapshot> {
    #[derive(Deserialize)]
    struct Header {
        format: Option<String>,
        version: Option<u64>,
    }
    let header: Header = serde_json::from_str(text).context("the snapshot is not a JSON object")?;
    if header.format.as_deref() != Some(SNAPSHOT_FORMAT) {
        bail!(
            "the file is not a cloison snapshot: its format field is {:?}, expected {SNAPSHOT_FORMAT:?}",
            header.format
        );
    }
    match header.version {
        Some(version) if version == u64::from(SNAPSHOT_VERSION) => {}
        other => bail!(
            "unsupported snapshot version {other:?}; this cloison reads version {SNAPSHOT_VERSION} only"
        ),
    }
    let snapshot: Snapshot =
        serde_json::from_str(text).context("the snapshot's entries are invalid")?;
    check_entries(&snapshot.entries)?;
    Ok(snapshot)
}

fn check_entries(entries: &[Entry]) -> anyhow::Result<()> {
    let mut seen = BTreeSet::new();
    for entry in entries {
        if !entry.key.starts_with('/') {
            bail!(
                "snapshot key {:?} does not start with '/'; every cloison key does",
                entry.key
            );
        }
        if !seen.insert(entry.key.as_str()) {
            bail!("snapshot key {} appears twice", entry.key);
        }
    }
    Ok(())
}

/// Writes `snapshot` into `store`. The store must be empty unless `force` is set; with
/// `force`, keys absent from the snapshot are deleted so the store ends equal to it.
///
/// The writes span several transactions, so no controller may use the store meanwhile.
pub(crate) async fn import(
    store: &dyn Store,
    snapshot: &Snapshot,
    force: bool,
) -> anyhow::Result<ImportReport> {
    check_entries(&snapshot.entries)?;
    let (existing, revision) = store
        .range("/")
        .await
        .context("cannot read the target store")?;
    if !existing.is_empty() && !force {
        bail!(
            "the target store is not empty: it has {} keys at revision {revision}; import into an empty store, or pass --force to replace its content",
            existing.len()
        );
    }
    let wanted: BTreeSet<&str> = snapshot.entries.iter().map(|e| e.key.as_str()).collect();
    let stale: Vec<Op> = existing
        .iter()
        .filter(|kv| !wanted.contains(kv.key.as_str()))
        .map(|kv| Op::Delete {
            key: kv.key.clone(),
        })
        .collect();
    let deleted = stale.len();
    let puts: Vec<Op> = snapshot
        .entries
        .iter()
        .map(|e| Op::Put {
            key: e.key.clone(),
            value: e.value.as_bytes().to_vec(),
        })
        .collect();
    let mut revision = revision;
    for ops in [stale, puts] {
        revision = apply_in_chunks(store, ops).await?.unwrap_or(revision);
    }
    Ok(ImportReport {
        written: snapshot.entries.len(),
        deleted,
        revision,
    })
}

/// Applies `ops` in transactions of at most [`IMPORT_TXN_OPS`] and returns the last
/// revision written, if any.
async fn apply_in_chunks(store: &dyn Store, mut ops: Vec<Op>) -> anyhow::Result<Option<u64>> {
    let mut last = None;
    while !ops.is_empty() {
        let rest = ops.split_off(ops.len().min(IMPORT_TXN_OPS));
        let chunk = std::mem::replace(&mut ops, rest);
        let response = store
            .txn(Vec::new(), chunk)
            .await
            .context("cannot write to the target store")?;
        last = Some(response.revision);
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloison_store::RedbStore;

    fn put(key: &str, value: &str) -> Op {
        Op::Put {
            key: key.to_string(),
            value: value.as_bytes().to_vec(),
        }
    }

    fn open(dir: &tempfile::TempDir) -> RedbStore {
        RedbStore::open(dir.path()).expect("open store")
    }

    #[tokio::test]
    async fn export_then_import_copies_every_key() {
        let (from_dir, to_dir) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        let source = open(&from_dir);
        let ops: Vec<Op> = (0..250)
            .map(|i| put(&format!("/k/{i:04}"), &format!("{{\"i\":{i}}}")))
            .collect();
        for chunk in ops.chunks(50) {
            source.txn(Vec::new(), chunk.to_vec()).await.expect("txn");
        }
        let snapshot = export(&source).await.expect("export");
        let text = serde_json::to_string(&snapshot).expect("serialise");

        let target = open(&to_dir);
        let report = import(&target, &parse(&text).expect("parse"), false)
            .await
            .expect("import");
        assert_eq!(report.written, 250);
        assert_eq!(report.deleted, 0);
        let (copied, _) = target.range("/").await.expect("range");
        let (original, _) = source.range("/").await.expect("range");
        let pairs = |kvs: &[cloison_store::KeyValue]| -> Vec<(String, Vec<u8>)> {
            kvs.iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect()
        };
        assert_eq!(pairs(&copied), pairs(&original));
    }

    #[tokio::test]
    async fn import_rejects_non_empty_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = open(&dir);
        target
            .txn(Vec::new(), vec![put("/old", "x")])
            .await
            .expect("txn");
        let snapshot = Snapshot {
            format: SNAPSHOT_FORMAT.to_string(),
            version: SNAPSHOT_VERSION,
            revision: 7,
            entries: vec![Entry {
                key: "/new".into(),
                value: "y".into(),
            }],
        };

        let err = import(&target, &snapshot, false)
            .await
            .expect_err("non-empty target accepted");
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(
            target.get("/new").await.expect("get"),
            None,
            "a rejected import wrote"
        );

        let report = import(&target, &snapshot, true)
            .await
            .expect("forced import");
        assert_eq!(report.deleted, 1);
        assert_eq!(target.get("/old").await.expect("get"), None);
        assert!(target.get("/new").await.expect("get").is_some());
    }

    #[test]
    fn parse_rejects_unknown_version() {
        let text = r#"{"format":"cloison-store-snapshot","version":2,"revision":1,"entries":[]}"#;
        let err = parse(text).expect_err("version 2 accepted");
        assert!(
            err.to_string()
                .contains("unsupported snapshot version Some(2)"),
            "{err}"
        );
    }

    #[test]
    fn parse_rejects_other_json() {
        let err = parse(r#"{"version":1}"#).expect_err("file without format accepted");
        assert!(err.to_string().contains("not a cloison snapshot"), "{err}");
        let err = parse("[1,2]").expect_err("array accepted");
        assert!(err.to_string().contains("not a JSON object"), "{err}");
    }

    #[test]
    fn parse_rejects_bad_keys() {
        let duplicate = r#"{"format":"cloison-store-snapshot","version":1,"revision":1,
            "entries":[{"key":"/a","value":"1"},{"key":"/a","value":"2"}]}"#;
        assert!(parse(duplicate)
            .expect_err("duplicate")
            .to_string()
            .contains("appears twice"));
        let relative = r#"{"format":"cloison-store-snapshot","version":1,"revision":1,
            "entries":[{"key":"a","value":"1"}]}"#;
        assert!(parse(relative)
            .expect_err("relative")
            .to_string()
            .contains("does not start with '/'"));
    }
}
