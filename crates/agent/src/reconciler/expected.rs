//! Attaches on their way to the reconciler.
//!
//! The agent socket registers an attach before it requests the endpoint's record
//! from the controller, because the watch may deliver that record before the
//! controller's reply. Convergence leaves such an endpoint to its attach, which
//! creates the interface without the reconciler's lock. Created by the watch under
//! the lock instead, the interfaces of concurrent attaches were made one at a time,
//! and every attach waited for all of them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::inflight::{namespace_id, NamespaceId};

/// A container end on its way: its namespace and interface name.
type Key = (NamespaceId, String);

/// The attaches registered and not yet returned, counted per container end.
#[derive(Debug, Default)]
pub(super) struct Expected {
    keys: Mutex<BTreeMap<Key, usize>>,
}

impl Expected {
    /// Registers an attach of a container end `ifname` in the namespace at
    /// `sandbox`. Returns a guard that takes it back when dropped, or a guard
    /// holding nothing when the namespace cannot be identified.
    pub(super) fn register(self: &Arc<Self>, sandbox: &Path, ifname: &str) -> ExpectedAttach {
        let key = namespace_id(sandbox).map(|namespace| (namespace, ifname.to_string()));
        if let Some(key) = &key {
            *self.lock().entry(key.clone()).or_default() += 1;
        }
        ExpectedAttach { expected: Arc::clone(self), key }
    }

    /// Returns true when an attach of the container end `ifname` in the namespace
    /// `sandbox` is registered.
    pub(super) fn contains(&self, sandbox: Option<NamespaceId>, ifname: &str) -> bool {
        sandbox.is_some_and(|namespace| self.lock().contains_key(&(namespace, ifname.to_string())))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, usize>> {
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
        if let Some(count) = keys.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                keys.remove(&key);
            }
        }
    }
}
