//! nftables through the `nft` command: a script on stdin is one transaction.
//!
//! Only full table replacements come here (agent start, repair after a flush, rule
//! changes). Each one spawns an `nft` process per namespace it touches. Changes of
//! set elements only, such as an attach, go over netlink in `nft_elements`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::namespace;
use crate::{DataplaneError, NftablesPlan};

/// Applies a plan's script in its namespace, then sets IP forwarding when asked.
/// `host_netns` is the namespace playing the host, `None` for the process's own.
pub(super) async fn apply(host_netns: Option<&Path>, plan: &NftablesPlan) -> Result<(), DataplaneError> {
    let target = plan.namespace.as_deref().or(host_netns).map(Path::to_path_buf);
    let script = plan.script.clone();
    if !script.trim().is_empty() {
        let target = target.clone();
        tokio::task::spawn_blocking(move || run_nft(target.as_deref(), &["-f", "-"], Some(&script)))
            .await
            .map_err(|e| DataplaneError::Io { op: "run nft".into(), source: std::io::Error::other(e) })??;
    }
    if let Some(forwarding) = plan.forwarding {
        set_forwarding(target.as_deref(), forwarding).await?;
    }
    Ok(())
}

/// Lists the tables of a namespace as `family name`, like `nft list tables`.
pub(super) async fn list(namespace: Option<&Path>) -> Result<Vec<String>, DataplaneError> {
    let target = namespace.map(Path::to_path_buf);
    let output = tokio::task::spawn_blocking(move || run_nft(target.as_deref(), &["list", "tables"], None))
        .await
        .map_err(|e| DataplaneError::Io { op: "run nft".into(), source: std::io::Error::other(e) })??;
    Ok(output
        .lines()
        .filter_map(|line| line.strip_prefix("table "))
        .map(|table| table.trim().to_string())
        .collect())
}

/// Runs `nft ARGS`, inside `namespace` through `nsenter --net` when one is given,
/// and returns its standard output.
pub(super) fn run_nft(namespace: Option<&Path>, args: &[&str], stdin: Option<&str>) -> Result<String, DataplaneError> {
    let mut command = match namespace {
        Some(path) => {
            let mut command = Command::new("nsenter");
            command.arg(format!("--net={}", path.display())).arg("--").arg("nft");
            command
        }
        None => Command::new("nft"),
    };
    command.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let where_ = namespace.map_or_else(|| "the host namespace".to_string(), |p| p.display().to_string());
    let failed = |message: String| DataplaneError::Nft { namespace: where_.clone(), message };
    let mut child = command
        .spawn()
        .map_err(|e| failed(format!("cannot start nft ({e}); install the nftables package")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(|e| failed(format!("cannot write the script: {e}")))?;
    }
    let output = child.wait_with_output().map_err(|e| failed(format!("cannot wait for nft: {e}")))?;
    if !output.status.success() {
        return Err(failed(String::from_utf8_lossy(&output.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Turns IPv4 and IPv6 forwarding on or off in a namespace. A thread that entered
/// the namespace opens `/proc/sys/net`, which belongs to the opener's namespace.
async fn set_forwarding(namespace: Option<&Path>, on: bool) -> Result<(), DataplaneError> {
    let write = move || -> std::io::Result<()> {
        let value = if on { "1" } else { "0" };
        std::fs::write("/proc/sys/net/ipv4/ip_forward", value)?;
        std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", value)
    };
    let result = match namespace {
        Some(path) => namespace::run_in(&namespace::open(path)?, write).await?,
        None => write(),
    };
    result.map_err(|source| DataplaneError::Io { op: "set IP forwarding".into(), source })
}
