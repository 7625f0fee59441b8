//! The agent socket against an in-memory controller and the recording fake
//! dataplane: what happens to an attach whose caller hangs up before it returns.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cloison_agent::{bind_socket, serve_socket, AgentError, ControlPlane, Reconciler};
use cloison_dataplane::{FakeDataplane, Recorded};
use cloison_model::{Endpoint, EndpointSpec, Host, HostSpec, MacAddr, Network, WatchEvent};
use common::{ctx, network};
use futures::stream::BoxStream;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// A controller holding endpoint records in memory, for network `web` only.
#[derive(Debug, Default)]
struct MemoryControl {
    endpoints: Mutex<BTreeMap<String, Endpoint>>,
}

impl MemoryControl {
    fn names(&self) -> Vec<String> {
        self.records().keys().cloned().collect()
    }

    fn records(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Endpoint>> {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn not_found(what: &str) -> AgentError {
    AgentError::NotFound { what: what.into() }
}

#[async_trait]
impl ControlPlane for MemoryControl {
    async fn register_host(&self, _: &HostSpec) -> Result<Host, AgentError> {
        Err(not_found("hosts in this test"))
    }

    async fn get_network(&self, _: &str, name: &str) -> Result<Network, AgentError> {
        Some(network()).filter(|n| n.name == name).ok_or_else(|| not_found(name))
    }

    async fn create_endpoint(&self, tenant: &str, spec: &EndpointSpec) -> Result<Endpoint, AgentError> {
        let mut records = self.records();
        let serial = u8::try_from(records.len() + 2).map_err(|_| not_found("a free address"))?;
        let network = network();
        let endpoint = Endpoint {
            id: format!("ep{serial}"),
            tenant: tenant.into(),
            name: spec.name.clone().unwrap_or_else(|| format!("web-{serial}")),
            network: network.name,
            network_id: network.id,
            host: spec.host.clone(),
            mac: MacAddr::local_from_u64(u64::from(serial) + 1000),
            ipv4: Ipv4Addr::new(10, 10, 0, serial),
            ipv6: None,
            ifname: spec.ifname.clone().unwrap_or_else(|| "eth0".into()),
            sandbox: spec.sandbox.clone(),
            groups: spec.groups.clone(),
            labels: spec.labels.clone(),
            resource_version: 100,
        };
        records.insert(endpoint.name.clone(), endpoint.clone());
        Ok(endpoint)
    }

    async fn get_endpoint(&self, _: &str, name: &str) -> Result<Endpoint, AgentError> {
        self.records().get(name).cloned().ok_or_else(|| not_found(name))
    }

    async fn list_network_endpoints(&self, _: &str, _: &str) -> Result<Vec<Endpoint>, AgentError> {
        Ok(self.records().values().cloned().collect())
    }

    async fn delete_endpoint(&self, _: &str, name: &str, id: Option<&str>) -> Result<(), AgentError> {
        let mut records = self.records();
        match records.get(name) {
            Some(found) if id.is_none_or(|id| id == found.id) => {
                records.remove(name);
                Ok(())
            }
            _ => Err(not_found(name)),
        }
    }

    async fn watch(&self, _: &str, _: Option<u64>) -> Result<BoxStream<'static, Result<WatchEvent, AgentError>>, AgentError> {
        Ok(Box::pin(futures::stream::pending()))
    }
}

/// A network namespace held by a thread of this process until dropped. The agent
/// rejects its own namespace as a target, so the tests need another one.
struct ThreadNamespace {
    path: String,
    _stop: std::sync::mpsc::Sender<()>,
}

/// Creates a network namespace on a thread of its own. Needs root, as every
/// kernel test does.
fn thread_namespace() -> ThreadNamespace {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let (ready, path) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let created = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map(|()| format!("/proc/{}/task/{}/ns/net", std::process::id(), nix::unistd::gettid()));
        let _ = ready.send(created);
        let _ = stopped.recv();
    });
    let path = path.recv().expect("namespace thread").unwrap_or_else(|e| panic!("unshare a network namespace (needs root): {e}"));
    ThreadNamespace { path, _stop: stop }
}

/// Sends an attach into `target`, which the fake never touches, and hangs up as
/// soon as the fake starts creating the interface.
async fn attach_and_hang_up(socket: &std::path::Path, fake: &FakeDataplane, target: &str) {
    let body = format!(r#"{{"tenant":"t1","network":"web","target":"{target}"}}"#);
    let request = format!(
        "POST /v1/attach HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::UnixStream::connect(socket).await.expect("connect to the agent socket");
    stream.write_all(request.as_bytes()).await.expect("send the attach");
    let created = tokio::time::timeout(Duration::from_secs(5), async {
        while !fake.take_log().iter().any(|r| matches!(r, Recorded::EnsureLocalEndpoint(_))) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(created.is_ok(), "the attach never reached the dataplane");
    drop(stream);
}

#[tokio::test]
async fn attach_undone_when_caller_hangs_up() {
    let fake = Arc::new(FakeDataplane::new());
    let reconciler = Arc::new(Reconciler::new(fake.clone(), ctx()));
    reconciler.apply_event(common::snapshot(5, vec![])).await;
    let control = Arc::new(MemoryControl::default());
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("agent.sock");
    let cancel = CancellationToken::new();
    let listener = bind_socket(&socket).expect("bind the agent socket");
    let server = tokio::spawn({
        let (socket, control, reconciler, cancel) = (socket.clone(), control.clone(), reconciler.clone(), cancel.clone());
        async move { serve_socket(listener, &socket, control, reconciler, cancel).await }
    });
    fake.hold_creation_of("ep");
    let target = thread_namespace();
    attach_and_hang_up(&socket, &fake, &target.path).await;
    // Gives the server the time to notice the hang-up before the creation goes on.
    tokio::time::sleep(Duration::from_millis(50)).await;
    fake.release_creations();

    let undone = tokio::time::timeout(Duration::from_secs(5), async {
        while !control.names().is_empty() || !fake.endpoint_ids().is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(
        undone.is_ok(),
        "an attach nobody waits for stayed: records {:?}, interfaces {:?}",
        control.names(),
        fake.endpoint_ids()
    );
    cancel.cancel();
    server.await.expect("server task").expect("server");
}
