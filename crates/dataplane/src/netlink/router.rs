//! Router namespaces: created by `unshare` and pinned by a bind mount.

use std::fs::{self, OpenOptions};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::statfs::{statfs, NSFS_MAGIC};

use super::{links, namespace};
use crate::{DataplaneError, RouterPlan};

/// Creates a tenant's router namespace unless a live one is pinned at the plan's
/// path, then brings `lo` up in it. Forwarding stays off, the default of a new
/// namespace, until routing policy turns it on.
pub(super) async fn ensure(plan: &RouterPlan) -> Result<(), DataplaneError> {
    let path = plan.netns_path.clone();
    if !is_pinned(&path) {
        create_pin_file(&path)?;
        namespace::on_thread(move || pin_new_namespace(&path)).await??;
    }
    let router = namespace::connect_in(&namespace::open(&plan.netns_path)?).await?;
    links::set_up_by_name(&router, "lo").await
}

/// Unpins a tenant's router namespace; the kernel frees it with its last user.
/// Like `ip netns del NAME`.
pub(super) fn remove(plan: &RouterPlan) -> Result<(), DataplaneError> {
    match umount2(&plan.netns_path, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point; ENOENT: no file. Both mean nothing is pinned.
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(source) => return Err(sys("unmount router namespace", source)),
    }
    match fs::remove_file(&plan.netns_path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DataplaneError::Io {
            op: format!("remove {}", plan.netns_path.display()),
            source,
        }),
    }
}

/// Returns true when a namespace (an nsfs inode) is mounted at `path`.
fn is_pinned(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

/// Creates the empty file a namespace is bind-mounted onto, and its parents.
fn create_pin_file(path: &Path) -> Result<(), DataplaneError> {
    let io = |op: &str, source| DataplaneError::Io {
        op: format!("{op} {}", path.display()),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| io("create parent of", e))?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| io("create", e))?;
    Ok(())
}

/// Moves the calling thread into a new network namespace and pins it at `path`.
/// Like `ip netns add NAME`. Runs on a throw-away thread only.
fn pin_new_namespace(path: &Path) -> Result<(), DataplaneError> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| sys("unshare network namespace", e))?;
    mount(
        Some("/proc/thread-self/ns/net"),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| sys("bind-mount router namespace", e))
}

fn sys(op: &str, source: nix::Error) -> DataplaneError {
    DataplaneError::Sys {
        op: op.into(),
        source,
    }
}
