//! Throw-away namespaces and plans for the kernel tests. Every namespace is
//! named `cltest-<pid>-<n>-<tag>` (see `unique` for the prefix) and deleted on drop, so tests run in parallel and
//! never touch the machine's own namespace.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use cloison_dataplane::{names, GatewayPlan, LocalEndpointPlan, NetworkPlan, RemoteEndpointPlan, RouterPlan};
use cloison_model::MacAddr;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Fails the test with a clear message unless it runs as root with `ip` available.
pub(crate) fn require_root() {
    assert!(
        // SAFETY: geteuid(2) takes no arguments and cannot fail.
        unsafe { libc::geteuid() } == 0,
        "kernel tests need root to create network namespaces; run them as root"
    );
    let ip = Command::new("ip").arg("-V").output();
    assert!(
        ip.is_ok_and(|o| o.status.success()),
        "kernel tests need iproute2 (`ip`) to set up namespaces; install it"
    );
}

/// Returns a name no other test takes. It starts with `CLOISON_TEST_PREFIX`, or
/// `cltest` when that is unset, so people sharing a machine can tell theirs apart.
fn unique(tag: &str) -> String {
    let prefix = std::env::var("CLOISON_TEST_PREFIX").unwrap_or_else(|_| "cltest".into());
    format!("{prefix}-{}-{}-{tag}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Runs a command and panics with its output when it fails.
pub(crate) fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub(crate) struct Netns {
    pub(crate) name: String,
}

impl Netns {
    pub(crate) fn new(tag: &str) -> Self {
        let name = unique(tag);
        run("ip", &["netns", "add", &name]);
        Netns { name }
    }

    pub(crate) fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `ip ARGS` in this namespace.
    pub(crate) fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        String::from_utf8_lossy(&run("ip", &all).stdout).into_owned()
    }

    /// Runs `bridge ARGS` in this namespace.
    pub(crate) fn bridge(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        String::from_utf8_lossy(&run("bridge", &all).stdout).into_owned()
    }

    /// Returns true when one ping to `address` from this namespace is answered.
    pub(crate) fn ping(&self, address: &str) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.name, "ping", "-c1", "-W1", address])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Returns the interface index of `name`, or `None` when it does not exist.
    pub(crate) fn ifindex(&self, name: &str) -> Option<u32> {
        let output = Command::new("ip")
            .args(["-n", &self.name, "-o", "link", "show", name])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        text.split(':').next()?.trim().parse().ok()
    }

    pub(crate) fn has_link(&self, name: &str) -> bool {
        self.ifindex(name).is_some()
    }
}

impl Netns {
    /// Deletes the namespace and makes a new one under the same name, as a
    /// container runtime reusing the name would.
    pub(crate) fn replace(&self) {
        run("ip", &["netns", "del", &self.name]);
        run("ip", &["netns", "add", &self.name]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A run directory whose pinned router namespaces are unmounted on drop.
#[derive(Debug)]
pub(crate) struct RunDir {
    pub(crate) path: PathBuf,
}

impl RunDir {
    pub(crate) fn new() -> Self {
        let path = std::env::temp_dir().join(unique("run"));
        std::fs::create_dir_all(&path).expect("create run directory");
        RunDir { path }
    }

    pub(crate) fn router(&self, tenant: &str) -> RouterPlan {
        RouterPlan {
            tenant_id: tenant.to_string(),
            netns_path: names::router_netns(&self.path, tenant),
            transit: None,
        }
    }
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

pub(crate) const VNI: u32 = 0x00ab01;

/// A network with gateway 10.1.0.1/24 and fd00:1::1/64.
pub(crate) fn network(vni: u32, local_vtep: Ipv4Addr, router: &Path) -> NetworkPlan {
    NetworkPlan {
        network_id: format!("net-{vni}"),
        vni,
        bridge: names::bridge(vni),
        vxlan: names::vxlan(vni),
        mtu: 1450,
        local_vtep: IpAddr::V4(local_vtep),
        vxlan_port: 4789,
        flood_vteps: Vec::new(),
        gateway: GatewayPlan {
            host_port: names::gateway_host_port(vni),
            router_port: names::gateway_router_port(vni),
            router_netns: router.to_path_buf(),
            ipv4: "10.1.0.1/24".parse().expect("literal"),
            ipv6: Some("fd00:1::1/64".parse().expect("literal")),
            mac: MacAddr([0x0a, 0, 0, 0, 0, 1]),
        },
    }
}

/// Endpoint number `n` of `network`: 10.1.0.n, fd00:1::n, MAC 0a:00:00:00:01:n.
pub(crate) fn endpoint(network: &NetworkPlan, n: u8, sandbox: &Path) -> LocalEndpointPlan {
    let id = format!("{n:02x}1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f");
    LocalEndpointPlan {
        endpoint_id: id.clone(),
        bridge: network.bridge.clone(),
        host_ifname: names::endpoint_host(&id),
        sandbox: sandbox.to_path_buf(),
        ifname: "eth0".into(),
        mac: mac_of(n),
        ipv4: format!("10.1.0.{n}/24").parse().expect("literal"),
        ipv6: Some(format!("fd00:1::{n:x}/64").parse().expect("literal")),
        gateway4: Ipv4Addr::new(10, 1, 0, 1),
        gateway6: Some("fd00:1::1".parse::<Ipv6Addr>().expect("literal")),
        mtu: network.mtu,
    }
}

pub(crate) fn mac_of(n: u8) -> MacAddr {
    MacAddr([0x0a, 0, 0, 0, 1, n])
}

/// The remote-endpoint entries another host installs for `endpoint`.
pub(crate) fn remote(network: &NetworkPlan, endpoint: &LocalEndpointPlan, vtep: Ipv4Addr) -> RemoteEndpointPlan {
    RemoteEndpointPlan {
        vxlan: network.vxlan.clone(),
        mac: endpoint.mac,
        ipv4: endpoint.ipv4.addr(),
        ipv6: endpoint.ipv6.map(|n| n.addr()),
        vtep: IpAddr::V4(vtep),
    }
}
