//! Store selection shared by `cloison controller` and `cloison admin`: the embedded redb
//! file by default, or an etcd cluster named by `--store etcd://…`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use cloison_store::{RedbStore, Store};
use cloison_store_etcd::{EtcdOptions, EtcdStore, DEFAULT_PREFIX};

/// Location of the deployment's state: a redb directory or an etcd cluster.
#[derive(Debug, Clone, Args)]
pub(crate) struct StoreArgs {
    /// Directory of the embedded redb store, used when --store is not given.
    #[arg(long, default_value = "/var/lib/cloison", conflicts_with = "store")]
    pub(crate) data_dir: PathBuf,
    /// etcd cluster holding the state instead of the embedded store, as
    /// etcd://HOST:PORT[,HOST:PORT...]. Several controllers may share one cluster.
    #[arg(long, value_name = "URL")]
    pub(crate) store: Option<String>,
    /// Key prefix of every cloison key in etcd; deployments sharing a cluster need distinct prefixes.
    #[arg(long, default_value = DEFAULT_PREFIX, requires = "store")]
    pub(crate) etcd_prefix: String,
}

impl StoreArgs {
    /// Returns the store for log lines and messages: the redb directory or the etcd members.
    pub(crate) fn describe(&self) -> String {
        match &self.store {
            Some(url) => format!("{url} (prefix {})", self.etcd_prefix),
            None => format!("redb in {}", self.data_dir.display()),
        }
    }
}

/// Opens the store that `args` names. An etcd store connects lazily, so this succeeds
/// while the cluster is down and requests fail with 503 until it is back.
pub(crate) async fn open_store(args: &StoreArgs) -> anyhow::Result<Arc<dyn Store>> {
    match &args.store {
        Some(url) => {
            let options = EtcdOptions::from_url(url, &args.etcd_prefix)?;
            let store = EtcdStore::connect(&options)
                .await
                .with_context(|| format!("cannot set up the etcd client for {url}"))?;
            Ok(Arc::new(store))
        }
        None => {
            let store = RedbStore::open(&args.data_dir).with_context(|| {
                format!(
                    "cannot open the store in {}; is a controller using it?",
                    args.data_dir.display()
                )
            })?;
            Ok(Arc::new(store))
        }
    }
}
