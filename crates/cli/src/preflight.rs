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
