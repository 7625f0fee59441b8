//! The reconciler on a real kernel when a container's namespace is deleted without
//! a detach and a new namespace takes its path. The test needs root and iproute2,
//! and fails with a message without them. Its namespaces and run directory are
//! named `cltest-<pid>-<tag>`, or with `CLOISON_TEST_PREFIX` in place of `cltest`.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloison_agent::{HostContext, Reconciler};
use cloison_dataplane::{names, NetlinkDataplane};
use cloison_model::{Endpoint, MacAddr};
use common::{network, snapshot, ME};

fn prefixed(tag: &str) -> String {
    let prefix = std::env::var("CLOISON_TEST_PREFIX").unwrap_or_else(|_| "cltest".into());
    format!("{prefix}-{}-{tag}", std::process::id())
}

/// Runs `ip ARGS` and returns its output, panicking with its error output when it fails.
fn ip(args: &[&str]) -> String {
    let output = Command::new("ip").args(args).output().unwrap_or_else(|e| panic!("cannot run ip (install iproute2): {e}"));
    assert!(output.status.success(), "ip {args:?} failed (the test needs root): {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A namespace made with `ip netns add`, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Self {
        let name = prefixed(tag);
        // A namespace of the same name left by an aborted run would make `add` fail.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        Netns { name }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Returns the names of the namespace's links.
    fn links(&self) -> Vec<String> {
        ip(&["-n", &self.name, "-o", "link", "show"])
            .lines()
            .filter_map(|line| line.split(':').nth(1))
            .map(|name| name.trim().split('@').next().unwrap_or_default().to_string())
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// The agent's run directory, whose router namespace pins are unmounted on drop.
struct RunDir {
    path: PathBuf,
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.path.join("netns")) {
            for entry in entries.flatten() {
                let _ = nix::mount::umount2(&entry.path(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn endpoint(id: &str, last_octet: u8, sandbox: &Netns) -> Endpoint {
    let network = network();
    Endpoint {
        id: id.into(),
        tenant: network.tenant,
        name: format!("web-{last_octet}"),
        network: network.name,
        network_id: network.id,
        host: ME.into(),
        mac: MacAddr::local_from_u64(u64::from(last_octet) + 1000),
        ipv4: Ipv4Addr::new(10, 10, 0, last_octet),
        ipv6: None,
        ifname: "eth0".into(),
        sandbox: sandbox.path().display().to_string(),
        groups: vec![],
        labels: BTreeMap::new(),
        resource_version: 1,
    }
}

/// Waits until the host namespace no longer has `ifname`, because the kernel deletes
/// a namespace's links in the background after its last reference goes.
fn wait_until_gone(host: &Netns, ifname: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while host.links().iter().any(|name| name == ifname) {
        assert!(Instant::now() < deadline, "{ifname} still in the host namespace 5 s after its sandbox was deleted");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reproduces an endpoint whose namespace is deleted without a detach, then made
/// again under the same name. The repair pass must leave the new namespace alone,
/// and an attach into it must find `eth0` free.
#[tokio::test]
async fn repair_leaves_new_namespace_alone() {
    let host = Netns::new("host");
    let run_dir = RunDir { path: std::env::temp_dir().join(prefixed("run")) };
    std::fs::create_dir_all(&run_dir.path).expect("create run directory");
    let dataplane = NetlinkDataplane::in_namespace(host.path(), run_dir.path.clone()).expect("open host namespace");
    let ctx = HostContext { run_dir: run_dir.path.clone(), ..common::ctx() };
    let reconciler = Arc::new(Reconciler::new(Arc::new(dataplane), ctx));
    reconciler.apply_event(snapshot(5, vec![])).await;

    let container = Netns::new("c");
    let first = endpoint("0a0b0c0d-0000-4000-8000-000000000001", 2, &container);
    reconciler.attach(network(), first.clone()).await.expect("attach into the container");
    assert!(container.links().contains(&"eth0".to_string()), "no eth0 after the attach: {:?}", container.links());

    ip(&["netns", "del", &container.name]);
    wait_until_gone(&host, &names::endpoint_host(&first.id));
    ip(&["netns", "add", &container.name]);
    for _ in 0..3 {
        // The failure is the replaced namespace, which the test expects.
        let _ = reconciler.repair().await;
    }
    assert_eq!(container.links(), vec!["lo".to_string()], "the new namespace got the old endpoint's interface");

    let second = endpoint("0a0b0c0d-0000-4000-8000-000000000002", 3, &container);
    reconciler.attach(network(), second).await.expect("attach into the new namespace");
    assert!(container.links().contains(&"eth0".to_string()), "no eth0 after the second attach: {:?}", container.links());
}
