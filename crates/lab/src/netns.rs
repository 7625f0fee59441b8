//! Named network namespaces (`ip netns`), and the processes living in them.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::command::ip;
use crate::LabError;

/// Directory where `ip netns` pins named namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// Path of the named namespace `name`.
pub(crate) fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Creates namespace `name` with its loopback up, like `ip netns add NAME`.
pub(crate) fn create(name: &str) -> Result<PathBuf, LabError> {
    ip(&["netns", "add", name])?;
    ip(&["-n", name, "link", "set", "lo", "up"])?;
    Ok(path(name))
}

/// Deletes namespace `name`, like `ip netns delete NAME`; a missing one is no error.
pub(crate) fn delete(name: &str) -> Result<(), LabError> {
    if !path(name).exists() {
        return Ok(());
    }
    ip(&["netns", "delete", name]).map(drop)
}

/// Names of the namespaces starting with `prefix`, sorted.
pub(crate) fn list_with_prefix(prefix: &str) -> Result<Vec<String>, LabError> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io(format!("cannot list {NETNS_DIR}"), e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.starts_with(prefix))
        .collect();
    names.sort();
    Ok(names)
}

/// Pids of the processes whose network namespace is one of `netns_paths`. This finds
/// what runs in a lab even when no record of it was written.
pub(crate) fn processes_in(netns_paths: &[PathBuf]) -> Vec<i32> {
    let inodes: Vec<(u64, u64)> = netns_paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .map(|m| inodes.contains(&(m.dev(), m.ino())))
                .unwrap_or(false)
        })
        .collect()
}
