//! Network namespaces: reaching one from async code without moving a tokio worker.
//!
//! `setns` changes the namespace of the calling thread only, and a netlink or
//! packet socket stays bound to the namespace it was created in. So a std thread,
//! the namespace worker, enters the target namespace, creates the sockets and
//! returns to its own namespace. The sockets are then driven on tokio, and a tokio
//! worker never changes namespace.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::sync::mpsc::{self, SendError};
use std::sync::{Mutex, PoisonError};

use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{AddressFamily, SockFlag, SockType};
use rtnetlink::Handle;

use crate::{DataplaneError, NetnsCookie};

/// Opens a namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`) for `setns`.
pub(super) fn open(path: &Path) -> Result<File, DataplaneError> {
    File::open(path).map_err(|source| DataplaneError::Sandbox {
        path: path.display().to_string(),
        source,
    })
}

/// Returns the cookie of the network namespace that `socket` was created in.
///
/// The cookie, not the nsfs inode that stat(2) of a namespace file returns,
/// identifies a namespace over time. The kernel hands a freed namespace's
/// inode number to the next namespace (an IDA takes the lowest free number), so
/// `ip netns del X; ip netns add X` often gives the new X the old inode. Cookies
/// come from a 64-bit counter and are never reused. `SO_NETNS_COOKIE` needs Linux
/// 5.14 or later (Debian 12 ships 6.1).
pub(super) fn socket_cookie(socket: BorrowedFd<'_>) -> Result<NetnsCookie, DataplaneError> {
    let mut cookie: u64 = 0;
    let mut length = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `socket` is an open descriptor, and `cookie` and `length` are valid
    // for writes of the sizes passed, which are the kernel's for this option.
    let result = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            std::ptr::addr_of_mut!(cookie).cast(),
            &mut length,
        )
    };
    if result != 0 {
        return Err(DataplaneError::Sys {
            op: "getsockopt SO_NETNS_COOKIE (needs Linux 5.14 or later)".into(),
            source: nix::errno::Errno::last(),
        });
    }
    Ok(NetnsCookie(cookie))
}

/// Returns the cookie of the namespace `netns`, read from a socket opened inside it.
pub(super) async fn cookie(netns: &File) -> Result<NetnsCookie, DataplaneError> {
    let socket = run_in(netns, || {
        nix::sys::socket::socket(AddressFamily::Unix, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)
    })
    .await?
    .map_err(|source| DataplaneError::Sys {
        op: "open a socket in network namespace".into(),
        source,
    })?;
    socket_cookie(socket.as_fd())
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

/// Runs `work` inside the namespace `netns` on the namespace worker and returns
/// its result. Jobs run one at a time; each one is a pair of `setns` calls, so an
/// attach spawns no thread.
pub(super) async fn run_in<T, F>(netns: &File, work: F) -> Result<T, DataplaneError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let netns = netns.try_clone().map_err(|source| DataplaneError::Io {
        op: "duplicate namespace descriptor".into(),
        source,
    })?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    submit(Box::new(move |home: &File| {
        let entered = setns(&netns, CloneFlags::CLONE_NEWNET).map_err(|source| DataplaneError::Sys {
            op: "setns into network namespace".into(),
            source,
        });
        // The receiver is gone only when the caller was cancelled.
        let _ = sender.send(entered.map(|()| work()));
        setns(home, CloneFlags::CLONE_NEWNET)
    }))?;
    receiver.await.map_err(|_| DataplaneError::Io {
        op: "namespace worker".into(),
        source: std::io::Error::other("worker ended without a result"),
    })?
}

/// A job for the namespace worker. It receives the worker's own namespace and
/// returns the result of going back into it.
type Job = Box<dyn FnOnce(&File) -> nix::Result<()> + Send>;

/// Queue of the namespace worker, started on first use and again after it stopped.
static WORKER: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);

/// Hands `job` to the namespace worker, starting a worker when there is none.
fn submit(job: Job) -> Result<(), DataplaneError> {
    let mut worker = WORKER.lock().unwrap_or_else(PoisonError::into_inner);
    let job = match worker.as_ref() {
        Some(queue) => match queue.send(job) {
            Ok(()) => return Ok(()),
            // The worker stopped; its queue hands the job back.
            Err(SendError(job)) => job,
        },
        None => job,
    };
    let queue = start_worker()?;
    // The worker just started and holds the receiver until it stops.
    let _ = queue.send(job);
    *worker = Some(queue);
    Ok(())
}

/// Starts the namespace worker in the calling thread's namespace, which the
/// worker returns to after each job. A worker that cannot return stops, because
/// its namespace is then unknown; the next job starts a new one.
fn start_worker() -> Result<mpsc::Sender<Job>, DataplaneError> {
    let home = open(Path::new("/proc/thread-self/ns/net"))?;
    let (queue, jobs) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("cloison-netns".into())
        .spawn(move || {
            for job in jobs {
                if let Err(error) = job(&home) {
                    tracing::error!(%error, "namespace worker cannot return to its namespace; stopping it");
                    return;
                }
            }
        })
        .map_err(|source| DataplaneError::Io {
            op: "spawn namespace worker".into(),
            source,
        })?;
    Ok(queue)
}

/// Runs `work` on a new std thread that exits afterwards, for calls such as
/// `unshare` that leave the calling thread in a namespace it cannot return from.
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
