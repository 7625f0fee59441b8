//! nftables through the `nft` command: a script on stdin is one transaction.
//!
//! Only full table replacements come here (agent start, repair after a flush, rule
//! changes). Each one spawns an `nft` process per namespace it touches. Changes of
//! set elements only, such as an attach, go over netlink in `nft_elements`.
//! The repair pass also counts the objects of cloison's tables here: tables, chains,
//! rules and set names from one `nft -t -j list ruleset` per namespace, which omits
//! the elements, and the elements of each set from a netlink dump in `nft_set_sizes`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::namespace;
use super::nft_set_sizes::{self, SetName};
use crate::{DataplaneError, NftCounts, NftFamily, NftablesPlan};

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

/// Counts the elements of each set and map and the rules of each chain of
/// `tables` (`family name`). The structure comes from `nft -t -j list ruleset`,
/// whose output stays small however many elements the sets hold; the elements are
/// counted from one netlink dump per set. With 100,000 group rules this takes about
/// 40 ms and 0.03 CPU s, where `nft -j list ruleset` took over a second, 0.9 CPU s
/// and 210 MB (docs/benchmarks.md).
pub(super) async fn counts(namespace: Option<&Path>, tables: &[String]) -> Result<NftCounts, DataplaneError> {
    let target = namespace.map(Path::to_path_buf);
    let where_ = namespace.map_or_else(|| "the host namespace".to_string(), |p| p.display().to_string());
    let output = tokio::task::spawn_blocking(move || run_nft(target.as_deref(), &["-t", "-j", "list", "ruleset"], None))
        .await
        .map_err(|e| DataplaneError::Io { op: "run nft".into(), source: std::io::Error::other(e) })??;
    let (mut counts, sets) = count_objects(&output, tables).map_err(|message| DataplaneError::Nft { namespace: where_, message })?;
    let sizes = nft_set_sizes::count(namespace, sets.clone()).await?;
    for (set, size) in sets.iter().zip(sizes) {
        let key = format!("{} {} set {}", set.family.name(), set.table, set.set);
        // A set deleted since the listing is absent, like any other deleted object.
        match size {
            Some(size) => counts.insert(key, size),
            None => counts.remove(&key),
        };
    }
    Ok(counts)
}

/// Counts the tables, chains and rules of `tables` in the output of `nft -t -j
/// list ruleset`, with 0 for every set and map, and returns the sets and maps.
fn count_objects(json: &str, tables: &[String]) -> Result<(NftCounts, Vec<SetName>), String> {
    let document: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("invalid JSON from `nft -j list ruleset`: {e}"))?;
    let objects = document
        .get("nftables")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| "the output of `nft -j list ruleset` has no `nftables` array".to_string())?;
    let text = |object: &serde_json::Value, field: &str| object.get(field).and_then(serde_json::Value::as_str).unwrap_or("").to_string();
    let mut counts = NftCounts::new();
    let mut sets = Vec::new();
    for entry in objects {
        let Some((kind, object)) = entry.as_object().and_then(|o| o.iter().next()) else { continue };
        let family = text(object, "family");
        let table_name = text(object, if kind == "table" { "name" } else { "table" });
        let table = format!("{family} {table_name}");
        if !tables.contains(&table) {
            continue;
        }
        match kind.as_str() {
            "table" => *counts.entry(table).or_default() += 1,
            "set" | "map" => {
                let set = text(object, "name");
                counts.insert(format!("{table} set {set}"), 0);
                let family = NftFamily::from_name(&family).ok_or_else(|| format!("unknown nftables family {family:?}"))?;
                sets.push(SetName { family, table: table_name, set });
            }
            "chain" => {
                counts.entry(format!("{table} chain {}", text(object, "name"))).or_default();
            }
            "rule" => *counts.entry(format!("{table} chain {}", text(object, "chain"))).or_default() += 1,
            _ => {}
        }
    }
    Ok((counts, sets))
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
        write_if_changed("/proc/sys/net/ipv4/ip_forward", value)?;
        write_if_changed("/proc/sys/net/ipv6/conf/all/forwarding", value)
    };
    let result = match namespace {
        Some(path) => namespace::run_in(&namespace::open(path)?, write).await?,
        None => write(),
    };
    result.map_err(|source| DataplaneError::Io { op: "set IP forwarding".into(), source })
}

/// Writes `value` to a sysctl file unless it contains that value already. Every write
/// of `net/ipv6/conf/all/forwarding` walks all interfaces under the RTNL lock, and
/// restarts while another task holds that lock. With 100 veths on a 2-core VM
/// running Linux 6.18, perf showed these writes as the agent's largest cost during
/// sequential detaches, although the value never changed.
fn write_if_changed(path: &str, value: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path)?.trim() == value {
        return Ok(());
    }
    std::fs::write(path, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cover_only_listed_tables() {
        // `nft -t -j list ruleset` lists sets and maps without their elements.
        let json = r#"{"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "bridge", "name": "cloison", "handle": 1}},
            {"set": {"family": "bridge", "name": "ports", "table": "cloison", "type": "ifname", "handle": 2}},
            {"map": {"family": "bridge", "name": "verdicts", "table": "cloison", "type": "ifname", "handle": 3, "map": "verdict"}},
            {"chain": {"family": "bridge", "table": "cloison", "name": "forward"}},
            {"chain": {"family": "bridge", "table": "cloison", "name": "idle"}},
            {"rule": {"family": "bridge", "table": "cloison", "chain": "forward", "expr": []}},
            {"rule": {"family": "bridge", "table": "cloison", "chain": "forward", "expr": []}},
            {"table": {"family": "inet", "name": "other", "handle": 2}},
            {"set": {"family": "inet", "name": "theirs", "table": "other", "type": "ipv4_addr", "handle": 3}},
            {"rule": {"family": "inet", "table": "other", "chain": "input", "expr": []}}
        ]}"#;

        let (counts, sets) = count_objects(json, &["bridge cloison".to_string()]).expect("counts");

        let expected: NftCounts = [
            ("bridge cloison", 1),
            ("bridge cloison set ports", 0),
            ("bridge cloison set verdicts", 0),
            ("bridge cloison chain forward", 2),
            ("bridge cloison chain idle", 0),
        ]
        .into_iter()
        .map(|(key, count)| (key.to_string(), count))
        .collect();
        assert_eq!(counts, expected);
        let named = |set: &str| SetName { family: NftFamily::Bridge, table: "cloison".into(), set: set.into() };
        assert_eq!(sets, vec![named("ports"), named("verdicts")]);
    }

    #[test]
    fn counts_reject_invalid_output() {
        assert!(count_objects("not json", &[]).is_err());
        assert!(count_objects("{}", &[]).is_err());
    }
}
