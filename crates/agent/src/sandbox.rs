use std::path::{Path, PathBuf};

use crate::AgentError;

/// Resolves an attach target to the path of a network namespace the agent can open.
///
/// `netns:NAME` is a namespace made by `ip netns add` (under `/run/netns`), `pid:PID`
/// the namespace of a running process, and any absolute path a namespace file or
/// bind mount. `docker:CONTAINER` is resolved by the caller through Docker's API
/// into `pid:PID` first.
pub fn resolve_target(target: &str) -> Result<PathBuf, AgentError> {
    let invalid = |reason: &str| AgentError::Target {
        target: target.to_string(),
        reason: reason.to_string(),
    };
    let path = if let Some(name) = target.strip_prefix("netns:") {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(invalid("a namespace name may not be empty or contain '/'"));
        }
        Path::new("/run/netns").join(name)
    } else if let Some(pid) = target.strip_prefix("pid:") {
        let pid: u32 = pid
            .parse()
            .map_err(|_| invalid("the process id must be a positive integer"))?;
        if pid == 0 {
            return Err(invalid("the process id must be a positive integer"));
        }
        PathBuf::from(format!("/proc/{pid}/ns/net"))
    } else if target.starts_with('/') {
        PathBuf::from(target)
    } else if target.starts_with("docker:") {
        return Err(invalid("docker targets are resolved by the agent's Docker lookup"));
    } else {
        return Err(invalid("unknown form"));
    };
    match path.try_exists() {
        Ok(true) => {}
        Ok(false) => return Err(invalid(&format!("{} does not exist", path.display()))),
        // stat of /proc/PID/ns/net fails with EACCES when the agent may not ptrace PID.
        Err(e) => return Err(invalid(&format!("{} cannot be read: {e}", path.display()))),
    }
    if !is_namespace_file(&path) {
        return Err(invalid(&format!(
            "{} is not a network namespace; pass a file under /run/netns, /proc/PID/ns/net or a bind mount of one",
            path.display()
        )));
    }
    // An endpoint there would replace the host's own default route and addresses.
    if same_namespace(&path, Path::new(OWN_NAMESPACE)) {
        return Err(invalid(&format!(
            "{} is the network namespace the agent runs in, the host's own; attach a container's or one made with `ip netns add`",
            path.display()
        )));
    }
    Ok(path)
}

/// The network namespace of this process.
const OWN_NAMESPACE: &str = "/proc/self/ns/net";

/// Returns true when the namespace files `a` and `b` are the same namespace: nsfs
/// gives every namespace one inode, on one device.
fn same_namespace(a: &Path, b: &Path) -> bool {
    match (nix::sys::stat::stat(a), nix::sys::stat::stat(b)) {
        (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
        _ => false,
    }
}

/// Checks that `path` lives on nsfs, the kernel's namespace file system, as every
/// /proc/PID/ns/* file and every bind mount of one does.
fn is_namespace_file(path: &Path) -> bool {
    const NSFS_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::FsType(0x6e73_6673);
    match nix::sys::statfs::statfs(path) {
        Ok(stat) => stat.filesystem_type() == NSFS_MAGIC,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_forms_with_accepted_list() {
        let err = resolve_target("container1").expect_err("bare name");
        assert!(err.to_string().contains("netns:NAME, pid:PID"), "{err}");
    }

    #[test]
    fn rejects_bad_pid_and_name() {
        assert!(resolve_target("pid:abc").is_err());
        assert!(resolve_target("pid:0").is_err());
        assert!(resolve_target("netns:../etc").is_err());
        assert!(resolve_target("netns:").is_err());
    }

    #[test]
    fn missing_namespace_is_named() {
        let err = resolve_target("netns:cloison-test-does-not-exist").expect_err("missing");
        assert!(err.to_string().contains("/run/netns/cloison-test-does-not-exist does not exist"), "{err}");
    }

    #[test]
    fn unreadable_path_is_not_called_missing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let looped = dir.path().join("loop");
        std::os::unix::fs::symlink(&looped, &looped).expect("symlink to itself");
        let target = looped.display().to_string();

        let err = resolve_target(&target).expect_err("symlink loop");
        let text = err.to_string();
        assert!(text.contains(&format!("{target} cannot be read: ")), "{text}");
        assert!(!text.contains("does not exist"), "{text}");
    }

    #[test]
    fn directory_is_not_a_namespace() {
        let err = resolve_target("/tmp").expect_err("directory");
        assert!(matches!(err, AgentError::Target { .. }), "{err}");
        assert!(err.to_string().contains("/tmp is not a network namespace"), "{err}");
    }

    #[test]
    fn own_namespace_rejected() {
        for target in [format!("pid:{}", std::process::id()), OWN_NAMESPACE.to_string()] {
            let err = resolve_target(&target).expect_err("the agent's own namespace");
            assert!(matches!(err, AgentError::Target { .. }), "{target}: {err}");
            assert!(err.to_string().contains("the host's own"), "{target}: {err}");
        }
    }
}
