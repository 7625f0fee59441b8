//! The tools the attach scenario compares, each doing one attach and one detach of a
//! container namespace from a throw-away host namespace.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

use cloison_client::Client;
use serde_json::{json, Value};

use crate::netns::{enter_on_exec, run_with_input, Netns};
use crate::BenchError;

/// A container namespace, numbered so peers without IPAM get distinct addresses.
#[derive(Debug)]
pub(crate) struct Sandbox {
    pub(crate) netns: Netns,
    pub(crate) index: usize,
}

impl Sandbox {
    /// Address `index` of a /16 starting at `first_octets`: .0.2 onwards, skipping
    /// the gateway (.0.1), network and broadcast addresses of each /24.
    pub(crate) fn address(&self, first: u8, second: u8) -> Ipv4Addr {
        let third = (self.index / 250) as u8;
        let fourth = 2 + (self.index % 250) as u8;
        Ipv4Addr::new(first, second, third, fourth)
    }
}

/// One attach and one detach of a sandbox by one tool.
pub(crate) trait Peer: Send + Sync {
    fn label(&self) -> &str;
    fn attach(&self, sandbox: &Sandbox) -> Result<(), BenchError>;
    fn detach(&self, sandbox: &Sandbox) -> Result<(), BenchError>;
}

fn failed(peer: &str, operation: &'static str, sandbox: &Sandbox, error: impl std::fmt::Display) -> BenchError {
    BenchError::Peer { peer: peer.into(), operation, sandbox: sandbox.netns.name.clone(), reason: error.to_string() }
}

/// cloison through its agent socket: one HTTP request per attach, the agent does the
/// rest in-process.
#[derive(Debug)]
pub(crate) struct AgentSocket {
    pub(crate) client: Client,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) tenant: String,
    pub(crate) network: String,
}

impl Peer for AgentSocket {
    fn label(&self) -> &str {
        "cloison (agent socket)"
    }

    fn attach(&self, sandbox: &Sandbox) -> Result<(), BenchError> {
        let request = json!({"tenant": self.tenant, "network": self.network,
            "target": format!("netns:{}", sandbox.netns.name), "name": sandbox.netns.name});
        let call = self.client.post::<Value, _>("/v1/attach", &request);
        self.runtime.block_on(call).map(drop).map_err(|e| failed(self.label(), "attach", sandbox, e))
    }

    fn detach(&self, sandbox: &Sandbox) -> Result<(), BenchError> {
        let request = json!({"tenant": self.tenant, "endpoint": sandbox.netns.name});
        let call = self.client.post::<Value, _>("/v1/detach", &request);
        self.runtime.block_on(call).map(drop).map_err(|e| failed(self.label(), "detach", sandbox, e))
    }
}

/// One CNI plugin run by the rules of the CNI specification's runtime for a list of
/// one plugin: `CNI_*` variables, the network configuration on stdin, and the
/// plugin executed inside the host namespace.
#[derive(Debug)]
pub(crate) struct CniPlugin {
    pub(crate) label: String,
    pub(crate) binary: PathBuf,
    /// `CNI_PATH`, where the plugin finds the plugins it delegates to (IPAM).
    pub(crate) search_path: String,
    pub(crate) config: Value,
    pub(crate) host: PathBuf,
}

impl CniPlugin {
    fn exec(&self, verb: &'static str, sandbox: &Sandbox) -> Result<(), BenchError> {
        let mut command = Command::new(&self.binary);
        command
            .env("CNI_COMMAND", verb)
            .env("CNI_CONTAINERID", &sandbox.netns.name)
            .env("CNI_NETNS", sandbox.netns.path())
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &self.search_path);
        enter_on_exec(&mut command, &self.host)?;
        run_with_input(&mut command, self.config.to_string().as_bytes())
            .map(drop)
            .map_err(|e| failed(&self.label, if verb == "ADD" { "attach" } else { "detach" }, sandbox, e))
    }
}

impl Peer for CniPlugin {
    fn label(&self) -> &str {
        &self.label
    }

    fn attach(&self, sandbox: &Sandbox) -> Result<(), BenchError> {
        self.exec("ADD", sandbox)
    }

    fn detach(&self, sandbox: &Sandbox) -> Result<(), BenchError> {
        self.exec("DEL", sandbox)
    }
}

/// Podman's netavark with a bridge network. Netavark does no IPAM, so each sandbox
/// gets a static address, as Podman would pass it.
#[derive(Debug)]
pub(crate) struct Netavark {
    pub(crate) binary: PathBuf,
    pub(crate) config_dir: PathBuf,
    pub(crate) host: PathBuf,
}

impl Netavark {
    fn options(&self, sandbox: &Sandbox) -> Value {
        let id = format!("{:064x}", 0xc1015u64);
        json!({
            "container_id": format!("{:012x}", sandbox.index + 1),
            "container_name": sandbox.netns.name,
            "networks": {"bench": {"static_ips": [sandbox.address(10, 93).to_string()], "interface_name": "eth0"}},
            "network_info": {"bench": {
                "name": "bench", "id": id, "driver": "bridge", "network_interface": "nvbench0",
                "subnets": [{"subnet": "10.93.0.0/16", "gateway": "10.93.0.1"}],
                "ipv6_enabled": false, "internal": false, "dns_enabled": false,
                "ipam_options": {"driver": "host-local"}
            }}
        })
    }

    fn exec(&self, verb: &'static str, sandbox: &Sandbox) -> Result<(), BenchError> {
        let mut command = Command::new(&self.binary);
        command.arg("--config").arg(&self.config_dir).arg(verb).arg(sandbox.netns.path());
        enter_on_exec(&mut command, &self.host)?;
        let operation = if verb == "setup" { "attach" } else { "detach" };
        run_with_input(&mut command, self.options(sandbox).to_string().as_bytes())
            .map(drop)
            .map_err(|e| failed("netavark", operation, sandbox, e))
    }
}

impl Peer for Netavark {
    fn label(&self) -> &str {
        "netavark (bridge)"
    }

    fn attach(&self, sandbox: &Sandbox) -> Result<(), BenchError> {
        self.exec("setup", sandbox)
    }

    fn detach(&self, sandbox: &Sandbox) -> Result<(), BenchError> {
        self.exec("teardown", sandbox)
    }
}

/// The floor: the same kernel work with `ip -batch`, one batch in the host namespace
/// (veth pair whose peer is created in the container under its final name, host end
/// on the bridge and up) and one in the container (address, up, default route). `ip -batch` cannot switch
/// namespaces between lines, so two processes is the least `ip` can do. Both enter
/// their namespace with setns(2) before exec rather than with `ip -n`, which also
/// unshares a mount namespace and remounts /sys on every call.
#[derive(Debug)]
pub(crate) struct IpBatch {
    pub(crate) host: PathBuf,
    pub(crate) bridge: String,
}

impl IpBatch {
    fn host_end(sandbox: &Sandbox) -> String {
        format!("flv{}", sandbox.index)
    }

    fn batch(netns: &std::path::Path, lines: &str) -> Result<(), BenchError> {
        let mut command = Command::new("ip");
        command.args(["-batch", "-"]);
        enter_on_exec(&mut command, netns)?;
        run_with_input(&mut command, lines.as_bytes()).map(drop)
    }
}

impl Peer for IpBatch {
    fn label(&self) -> &str {
        "floor (ip -batch)"
    }

    fn attach(&self, sandbox: &Sandbox) -> Result<(), BenchError> {
        let host_end = Self::host_end(sandbox);
        let host_lines = format!(
            "link add {host_end} type veth peer name eth0 netns {}\nlink set {host_end} master {} up\n",
            sandbox.netns.name, self.bridge
        );
        let address = sandbox.address(10, 91);
        let container_lines =
            format!("addr add {address}/16 dev eth0\nlink set eth0 up\nroute add default via 10.91.0.1\n");
        Self::batch(&self.host, &host_lines)
            .and_then(|()| Self::batch(&sandbox.netns.path(), &container_lines))
            .map_err(|e| failed(self.label(), "attach", sandbox, e))
    }

    fn detach(&self, sandbox: &Sandbox) -> Result<(), BenchError> {
        Self::batch(&self.host, &format!("link del {}\n", Self::host_end(sandbox)))
            .map_err(|e| failed(self.label(), "detach", sandbox, e))
    }
}
