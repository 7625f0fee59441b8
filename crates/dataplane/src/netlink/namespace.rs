//! Network namespaces: reaching one from async code without moving a tokio worker.
//!
//! `setns` changes the namespace of the calling thread only, and a netlink or
//! packet socket stays bound to the namespace it was created in. So a short-lived
//! std thread enters the target namespace, creates the sockets and exits; the
//! sockets are then driven on tokio. A tokio worker never changes namespace.

use std::fs::File;
use std::path::Path;

use nix::sched::{setns, CloneFlags};
use rtnetlink::Handle;

use crate::DataplaneError;

/// Opens a namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`) for `setns`.
pub(super) fn open(path: &Path) -> Result<File, DataplaneError> {
    File::open(path).map_err(|source| DataplaneError::Sandbox {
        path: path.display().to_string(),
        source,
    })
}

/// Opens a netlink connection in the calling thread's namespace.
pub(super) fn connect_here() -> Result<Handle, DataplaneError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(|source| DataplaneError::Io {
        op: "open netlink socket".into(),
        source,
    })?;
    tokio::spawn(connection);
    Ok(handle)
}

/// Opens a netlink connection inside the namespace `netns`.
pub(super) async fn connect_in(netns: &File) -> Result<Handle, DataplaneError> {
    let runtime = tokio::runtime::Handle::current();
    // The socket registers with the tokio reactor when it is created, so the
    // thread enters the runtime's context; it does not run tasks.
    let created = run_in(netns, move || {
        let _context = runtime.enter();
        rtnetlink::new_connection()
    })
    .await?;
    let (connection, handle, _) = created.map_err(|source| DataplaneError::Io {
        op: "open netlink socket in namespace".into(),
        source,
    })?;
    tokio::spawn(connection);
    Ok(handle)
}

/// Runs `work` on a new thread inside the namespace `netns` and returns its result.
/// The thread exits when `work` returns, so its namespace is not reused by other work.
pub(super) async fn run_in<T, F>(netns: &File, work: F) -> Result<T, DataplaneError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let netns = netns.try_clone().map_err(|source| DataplaneError::Io {
        op: "duplicate namespace descriptor".into(),
        source,
    })?;
    on_thread(move || {
        setns(&netns, CloneFlags::CLONE_NEWNET).map_err(|source| DataplaneError::Sys {
            op: "setns into network namespace".into(),
            source,
        })?;
        Ok(work())
    })
    .await?
}

/// Runs `work` on a new std thread, for calls such as `setns` and `unshare`
/// that change the namespace of the calling thread.
pub(super) async fn on_thread<T, F>(work: F) -> Result<T, DataplaneError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("cloison-netns".into())
        .spawn(move || {
            // The receiver is gone only when the caller was cancelled.
            let _ = sender.send(work());
        })
        .map_err(|source| DataplaneError::Io {
            op: "spawn namespace thread".into(),
            source,
        })?;
    receiver.await.map_err(|_| DataplaneError::Io {
        op: "namespace thread".into(),
        source: std::io::Error::other("thread ended without a result"),
    })
}
