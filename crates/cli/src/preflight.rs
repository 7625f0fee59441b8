//! Checks of kernel features the agent relies on, run once at start.

use std::path::Path;

use anyhow::Context;
use tracing::info;

/// Sysctls that send bridged IPv4 and IPv6 packets through the `inet` hooks, where
/// security groups are enforced with connection tracking. They are per network
/// namespace and exist only while the `br_netfilter` module is loaded.
const BRIDGE_NF_SYSCTLS: [&str; 2] = [
    "/proc/sys/net/bridge/bridge-nf-call-iptables",
    "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
];

/// Makes sure bridged traffic is filtered: loads `br_netfilter` when its sysctls are
/// missing and turns them on in this namespace. Without this, security group rules
/// would load and silently match nothing, so the agent refuses to start instead.
pub(crate) fn ensure_bridge_netfilter() -> anyhow::Result<()> {
    if !Path::new(BRIDGE_NF_SYSCTLS[0]).exists() {
        info!("loading the br_netfilter kernel module");
        // One process at start, not per attach.
        let status = std::process::Command::new("modprobe")
            .arg("br_netfilter")
            .status();
        if !Path::new(BRIDGE_NF_SYSCTLS[0]).exists() {
            anyhow::bail!(
                "the br_netfilter kernel module is not loaded and could not be loaded ({status:?}); \
                 security groups need it: run `modprobe br_netfilter` as root, or build the kernel with CONFIG_BRIDGE_NETFILTER"
            );
        }
    }
    for path in BRIDGE_NF_SYSCTLS {
        let value = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        if value.trim() != "1" {
            std::fs::write(path, "1").with_context(|| format!("cannot turn on {path}; security groups need it"))?;
            info!(sysctl = path, "turned on filtering of bridged traffic");
        }
    }
    Ok(())
}

/// Name of the abstract Unix socket an agent holds for its whole life. Abstract
/// names are scoped to the network namespace, so a second agent in the same
/// namespace finds it taken, and the kernel releases it when the agent dies, even
/// by SIGKILL.
const AGENT_LOCK_NAME: &[u8] = b"cloison-agent";

/// Claims this network namespace for one agent. Two agents in one namespace would
/// each take the other's devices for orphans and remove them.
pub(crate) fn claim_namespace() -> anyhow::Result<std::os::unix::net::UnixListener> {
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(AGENT_LOCK_NAME)
        .context("cannot build the agent lock address")?;
    std::os::unix::net::UnixListener::bind_addr(&address).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "another cloison agent already runs in this network namespace; \
                 stop it first (one agent per host), or run this one in another namespace"
            )
        } else {
            anyhow::Error::new(e).context("cannot claim this network namespace for the agent")
        }
    })
}

/// Checks that the kernel state under `run_dir` was made for host `name`, and
/// records the name on first start. An agent started under another name would see
/// none of the existing endpoints as its own and remove them all.
pub(crate) fn check_host_name(run_dir: &Path, name: &str) -> anyhow::Result<()> {
    let path = run_dir.join("host");
    match std::fs::read_to_string(&path) {
        Ok(recorded) if recorded.trim() == name => Ok(()),
        Ok(recorded) => anyhow::bail!(
            "this host's kernel state belongs to host {:?} (recorded in {}); start the agent with --host {}, \
             or detach that host's endpoints and remove the file to rename the host",
            recorded.trim(),
            path.display(),
            recorded.trim()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(run_dir).with_context(|| format!("cannot create {}", run_dir.display()))?;
            std::fs::write(&path, name).with_context(|| format!("cannot write {}", path.display()))
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
    }
}
