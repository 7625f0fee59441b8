//! Throw-away etcd clusters for tests: members on 127.0.0.1 with free ports and data in a
//! temporary directory, killed and removed on drop.
//!
//! Tests that need etcd fail with [`ClusterError::NotInstalled`] when the `etcd` binary
//! is missing instead of passing without having run.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cloison_store::Store;
use tempfile::TempDir;
use thiserror::Error;

use crate::{EtcdOptions, EtcdStore, DEFAULT_PREFIX};

/// Time a member may take to start and join a leader.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Raft heartbeat and election timeout in milliseconds: short, so that tests which kill
/// members see a new leader within a second.
const HEARTBEAT_MS: &str = "50";
const ELECTION_MS: &str = "500";

/// A test cluster that could not be started.
#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("etcd is not installed (no `etcd` binary in PATH); install Debian's etcd-server, as scripts/install-deps.sh does")]
    NotInstalled,
    #[error("cannot start etcd member {name}: {source}")]
    Spawn {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot prepare the cluster: {0}")]
    Setup(#[from] std::io::Error),
    #[error("etcd member {name} did not become ready within {START_TIMEOUT:?}; its log ends with:\n{log}")]
    NotReady { name: String, log: String },
}

/// How many times [`EtcdCluster::start`] picks ports and starts the members.
const START_ATTEMPTS: usize = 3;
/// What etcd logs when a port it was given is taken.
const PORT_TAKEN: &str = "address already in use";

/// One member's addresses and process.
#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

/// A running etcd cluster of one or more members. Dropping it kills every member and
/// deletes the data.
#[derive(Debug)]
pub struct EtcdCluster {
    dir: TempDir,
    members: Vec<Member>,
}

impl EtcdCluster {
    /// Starts `size` members and waits until each one serves requests. The ports are
    /// free when picked, but another process may bind one before etcd does, so a
    /// start that fails on a taken port is tried again with new ports, up to
    /// [`START_ATTEMPTS`] times.
    pub async fn start(size: usize) -> Result<Self, ClusterError> {
        let mut attempt = 1;
        loop {
            match Self::start_once(size).await {
                Err(ClusterError::NotReady { log, .. }) if log.contains(PORT_TAKEN) && attempt < START_ATTEMPTS => attempt += 1,
                result => return result,
            }
        }
    }

    async fn start_once(size: usize) -> Result<Self, ClusterError> {
        let ports = free_ports(size * 2)?;
        let members = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                child: None,
            })
            .collect();
        let mut cluster = EtcdCluster {
            dir: TempDir::new()?,
            members,
        };
        for index in 0..size {
            cluster.spawn(index)?;
        }
        for index in 0..size {
            cluster.wait_ready(index).await?;
        }
        Ok(cluster)
    }

    /// Returns the store URL naming every member, as `cloison controller --store` takes it.
    pub fn store_url(&self) -> String {
        let members: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect();
        format!("etcd://{}", members.join(","))
    }

    /// Returns store options for every member under `prefix`.
    pub fn options(&self, prefix: &str) -> EtcdOptions {
        match EtcdOptions::from_url(&self.store_url(), prefix) {
            Ok(options) => options,
            Err(e) => panic!("test cluster built an invalid store URL: {e}"),
        }
    }

    /// Connects a store to every member under the default prefix.
    pub async fn store(&self) -> EtcdStore {
        match EtcdStore::connect(&self.options(DEFAULT_PREFIX)).await {
            Ok(store) => store,
            Err(e) => panic!("cannot connect to the test cluster: {e}"),
        }
    }

    /// Kills member `index` with SIGKILL and waits for it to exit. Its data stays, so
    /// [`EtcdCluster::restart`] brings it back with its state.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed member again on its ports and data directory.
    pub fn restart(&mut self, index: usize) -> Result<(), ClusterError> {
        self.kill(index);
        self.spawn(index)
    }

    /// Returns the last lines of member `index`'s log, for failure messages.
    pub fn log_tail(&self, index: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(index)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn log_path(&self, index: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.log", self.members[index].name))
    }

    fn spawn(&mut self, index: usize) -> Result<(), ClusterError> {
        let initial_cluster: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect();
        let member = &self.members[index];
        let client_url = format!("http://127.0.0.1:{}", member.client_port);
        let peer_url = format!("http://127.0.0.1:{}", member.peer_port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(index))?;
        let data_dir = self.dir.path().join(&member.name);
        let mut command = Command::new("etcd");
        command
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(&data_dir)
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &initial_cluster.join(",")])
            .args([
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                "cloison-test",
            ])
            .args([
                "--heartbeat-interval",
                HEARTBEAT_MS,
                "--election-timeout",
                ELECTION_MS,
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command.spawn().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ClusterError::NotInstalled,
            _ => ClusterError::Spawn {
                name: member.name.clone(),
                source,
            },
        })?;
        self.members[index].child = Some(child);
        Ok(())
    }

    /// Waits until member `index` serves a linearizable read, which needs a leader.
    pub async fn wait_ready(&self, index: usize) -> Result<(), ClusterError> {
        let member = &self.members[index];
        let url = format!("etcd://127.0.0.1:{}", member.client_port);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(options) = EtcdOptions::from_url(&url, DEFAULT_PREFIX) {
                if let Ok(store) = EtcdStore::connect(&options).await {
                    if store.revision().await.is_ok() {
                        return Ok(());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ClusterError::NotReady {
            name: member.name.clone(),
            log: self.log_tail(index),
        })
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for index in 0..self.members.len() {
            self.kill(index);
        }
    }
}

/// Returns `count` distinct free TCP ports on 127.0.0.1. The listeners are held until all
/// are picked, so no port is returned twice.
fn free_ports(count: usize) -> Result<Vec<u16>, std::io::Error> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}
