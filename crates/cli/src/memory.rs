//! Settings of glibc's allocator for the agent: one arena, and free pages returned
//! to the kernel.
//!
//! glibc gives a thread that meets a locked arena an arena of its own, and freed
//! memory stays in the arena it came from. The agent's tokio workers take turns
//! building short-lived plans, policy inputs and kernel inventories. With one arena
//! per worker, the free pages of each arena stay resident beside the live state of
//! the other.

use std::time::Instant;

use tracing::debug;

/// Arenas shared by the agent's threads. Its workers spend most of their time
/// waiting for the kernel or the controller, so they seldom allocate at once.
const AGENT_ARENAS: i32 = 1;

/// Maximum worker threads of the agent's runtime. The agent mostly waits on netlink
/// and on the controller, and the reconciler applies kernel changes behind one lock,
/// so on a host with many cores more workers would add stacks and allocator state.
const AGENT_WORKERS: usize = 2;

/// Limits the allocator to [`AGENT_ARENAS`]. It must run before any thread starts,
/// because a thread keeps the arena it was given. A rejected setting is ignored,
/// because the agent works without it, only with more memory.
pub(crate) fn limit_arenas() {
    // SAFETY: mallopt only changes glibc's allocator settings. It runs before the
    // runtime starts any thread, so no allocation runs concurrently.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, AGENT_ARENAS) };
}

/// Returns the free pages of every arena to the kernel. Pages that hold live
/// allocations stay.
pub(crate) fn trim() {
    let started = Instant::now();
    // SAFETY: malloc_trim is thread-safe, because it takes each arena's lock while it
    // walks that arena.
    let released = unsafe { libc::malloc_trim(0) } != 0;
    debug!(released, elapsed = ?started.elapsed(), "free heap pages returned to the kernel");
}

/// Returns the number of worker threads for the agent's runtime: one per core, at
/// most [`AGENT_WORKERS`].
pub(crate) fn agent_workers() -> usize {
    std::thread::available_parallelism().map_or(AGENT_WORKERS, |n| n.get().min(AGENT_WORKERS))
}
