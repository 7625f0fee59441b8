//! Local endpoints whose kernel work runs without the reconciler's lock.
//!
//! Deleting a veth waits for an RCU barrier in the kernel, about 20 ms. A detach
//! marks its endpoint here under the lock, deletes the interface without it, and
//! takes the lock again to finish, so concurrent detaches and attaches do not
//! queue behind that wait. While an endpoint is marked, convergence does not
//! create it and garbage collection does not delete it. The marks live in memory
//! only: after a crash, the next start's snapshot no longer lists the endpoint
//! and its interface, if still there, is removed as an orphan.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use cloison_dataplane::LocalEndpointPlan;
use tokio::sync::watch;

/// A namespace file's identity, (device, inode): two paths naming the same
/// namespace (`/run/netns/NAME`, `/proc/PID/ns/net`) have the same one.
pub(super) type NamespaceId = (u64, u64);

/// Returns the identity of the namespace at `path`, `None` when it cannot be read
/// or `path` is not absolute (a handoff endpoint's sandbox).
pub(super) fn namespace_id(path: &Path) -> Option<NamespaceId> {
    if !path.is_absolute() {
        return None;
    }
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The local endpoints being detached, by endpoint id.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug)]
struct Entry {
    plan: LocalEndpointPlan,
    sandbox: Option<NamespaceId>,
    /// Dropped when the work ends, which wakes every receiver.
    done: watch::Sender<()>,
}

impl InFlight {
    /// Marks an endpoint. `sandbox` is the identity of its namespace.
    pub(super) fn start(&mut self, id: &str, plan: LocalEndpointPlan, sandbox: Option<NamespaceId>) {
        let (done, _) = watch::channel(());
        self.entries.insert(id.to_string(), Entry { plan, sandbox, done });
    }

    /// Removes the mark and wakes the attaches waiting for it.
    pub(super) fn finish(&mut self, id: &str) {
        self.entries.remove(id);
    }

    /// Returns true while the endpoint is marked.
    pub(super) fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    /// Returns the host-side interface names of the marked endpoints.
    pub(super) fn host_ifnames(&self) -> impl Iterator<Item = &str> {
        self.entries.values().map(|e| e.plan.host_ifname.as_str())
    }

    /// Returns a receiver that wakes when the marked work standing in the way of
    /// `plan` ends: the same endpoint, or the same interface name in the same
    /// namespace, whose container end still holds that name. `None` when there is
    /// no such work.
    pub(super) fn blocking(&self, plan: &LocalEndpointPlan, sandbox: Option<NamespaceId>) -> Option<watch::Receiver<()>> {
        self.entries
            .iter()
            .find(|(id, e)| {
                **id == plan.endpoint_id
                    || (e.plan.ifname == plan.ifname
                        && (e.plan.sandbox == plan.sandbox || (sandbox.is_some() && e.sandbox == sandbox)))
            })
            .map(|(_, e)| e.done.subscribe())
    }
}
