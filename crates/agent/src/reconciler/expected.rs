//! Attaches on their way to the reconciler.
//!
//! The agent socket registers an attach before it requests the endpoint's record
//! from the controller, because the watch may deliver that record before the
//! controller's reply. Convergence leaves such an endpoint to its attach, which
//! creates the interface without the reconciler's lock. Created by the watch under
//! the lock instead, the interfaces of concurrent attaches were made one at a time,
//! and every attach waited for all of them. The networks of endpoints left to
//! attaches that have all returned are converged again, because none of those
//! attaches may have created them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::inflight::{namespace_id, NamespaceId};

/// A container end on its way: its namespace and interface name.
type Key = (NamespaceId, String);

/// The attaches registered and not yet returned, per container end.
#[derive(Debug, Default)]
pub(super) struct Expected {
    keys: Mutex<Keys>,
}

#[derive(Debug, Default)]
struct Keys {
    registered: BTreeMap<Key, Registration>,
    /// Endpoints left to attaches that are all gone, with their network ids.
    /// Whatever those attaches did not create, convergence must create now: an
    /// endpoint created through the API, or an attach that failed before its
    /// record was deleted.
    released: BTreeMap<String, String>,
}

/// The attaches of one container end.
#[derive(Debug, Default)]
struct Registration {
    attaches: usize,
    /// Endpoints that convergence left to these attaches, with their network ids.
    left: BTreeMap<String, String>,
}

impl Expected {
    /// Registers an attach of a container end `ifname` in the namespace at
    /// `sandbox`. Returns a guard that takes it back when dropped, or a guard
    /// holding nothing when the namespace cannot be identified.
    pub(super) fn register(self: &Arc<Self>, sandbox: &Path, ifname: &str) -> ExpectedAttach {
        let key = namespace_id(sandbox).map(|namespace| (namespace, ifname.to_string()));
        if let Some(key) = &key {
            self.lock().registered.entry(key.clone()).or_default().attaches += 1;
        }
        ExpectedAttach { expected: Arc::clone(self), key }
    }

    /// Returns true when an attach of the container end `ifname` in the namespace
    /// `sandbox` is registered, and then notes that endpoint `id` of `network_id` was
    /// left to it.
    pub(super) fn leave(&self, sandbox: Option<NamespaceId>, ifname: &str, id: &str, network_id: &str) -> bool {
        let Some(namespace) = sandbox else { return false };
        let mut keys = self.lock();
        let Some(registration) = keys.registered.get_mut(&(namespace, ifname.to_string())) else { return false };
        registration.left.insert(id.to_string(), network_id.to_string());
        true
    }

    /// Takes the endpoints, with their network ids, that were left to attaches that
    /// are all gone.
    pub(super) fn take_released(&self) -> BTreeMap<String, String> {
        std::mem::take(&mut self.lock().released)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        // The map stays consistent even if a holder panicked: each change is one call.
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An attach registered by [`crate::Reconciler::expect_attach`], taken back when
/// dropped.
#[derive(Debug)]
#[must_use = "the attach is registered only while the guard lives"]
pub struct ExpectedAttach {
    expected: Arc<Expected>,
    key: Option<Key>,
}

impl Drop for ExpectedAttach {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut keys = self.expected.lock();
        let Some(registration) = keys.registered.get_mut(&key) else { return };
        registration.attaches -= 1;
        if registration.attaches == 0 {
            let left = keys.registered.remove(&key).map(|r| r.left).unwrap_or_default();
            keys.released.extend(left);
        }
    }
}
