//! Serialisation of allocations inside one controller, and the cursors that let the
//! next allocation start where the last one stopped instead of at the subnet's start.
//!
//! Correctness does not depend on these locks: every allocation is a transaction that
//! requires each allocation key to be absent. The locks only stop concurrent requests
//! in one process from picking the same candidate and retrying in turn.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use cloison_model::MacAddr;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The last value allocated of each kind in one network.
#[derive(Debug, Default, Clone)]
pub(crate) struct Cursor {
    pub(crate) ipv4: Option<Ipv4Addr>,
    pub(crate) ipv6: Option<Ipv6Addr>,
    pub(crate) mac: Option<MacAddr>,
    /// Values picked for creates whose transactions have not ended yet.
    picked: Arc<Mutex<Picked>>,
}

/// Values picked for endpoints and not yet written. The store shows them only once
/// written, so automatic picks skip them, and requests for them are rejected.
#[derive(Debug, Default, Clone)]
pub(crate) struct Picked {
    pub(crate) ipv4: BTreeSet<Ipv4Addr>,
    pub(crate) ipv6: BTreeSet<Ipv6Addr>,
    pub(crate) macs: BTreeSet<MacAddr>,
}

/// One endpoint's values, as picked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Values {
    pub(crate) ipv4: Ipv4Addr,
    pub(crate) ipv6: Option<Ipv6Addr>,
    pub(crate) mac: MacAddr,
}

impl Cursor {
    /// Returns the values picked and not yet written.
    pub(crate) fn picked(&self) -> Picked {
        lock(&self.picked).clone()
    }

    /// Holds `values` as picked until the returned guard is dropped, once their
    /// transaction ended, and makes the next allocation start after them.
    pub(crate) fn hold(&mut self, values: Values) -> HeldValues {
        let mut picked = lock(&self.picked);
        picked.ipv4.insert(values.ipv4);
        picked.ipv6.extend(values.ipv6);
        picked.macs.insert(values.mac);
        drop(picked);
        self.ipv4 = Some(values.ipv4);
        self.ipv6 = values.ipv6.or(self.ipv6);
        self.mac = Some(values.mac);
        HeldValues { picked: Arc::clone(&self.picked), values }
    }
}

/// Values held by [`Cursor::hold`], released when dropped.
#[derive(Debug)]
pub(crate) struct HeldValues {
    picked: Arc<Mutex<Picked>>,
    values: Values,
}

impl Drop for HeldValues {
    fn drop(&mut self) {
        let mut picked = lock(&self.picked);
        picked.ipv4.remove(&self.values.ipv4);
        if let Some(ipv6) = self.values.ipv6 {
            picked.ipv6.remove(&ipv6);
        }
        picked.macs.remove(&self.values.mac);
    }
}

fn lock(picked: &Mutex<Picked>) -> std::sync::MutexGuard<'_, Picked> {
    // Each change is one call, so the sets stay consistent even after a panic.
    picked.lock().unwrap_or_else(|e| e.into_inner())
}

/// Per-network allocation locks with their cursors, plus the VNI lock with its cursor.
#[derive(Debug, Default)]
pub(crate) struct AllocLocks {
    networks: Mutex<HashMap<String, Arc<AsyncMutex<Cursor>>>>,
    vni: Arc<AsyncMutex<Option<u32>>>,
}

impl AllocLocks {
    /// Waits for the allocation lock of one network, by network id.
    pub(crate) async fn network(&self, network_id: &str) -> OwnedMutexGuard<Cursor> {
        let lock = {
            // A poisoned map only means another request panicked while inserting; the
            // map itself is still consistent.
            let mut map = self.networks.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(network_id.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Drops the lock of a deleted network so the map does not grow forever.
    pub(crate) fn forget_network(&self, network_id: &str) {
        let mut map = self.networks.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(network_id);
    }

    /// Waits for the deployment-wide VNI allocation lock.
    pub(crate) async fn vni(&self) -> OwnedMutexGuard<Option<u32>> {
        self.vni.clone().lock_owned().await
    }
}

/// Derives a network's gateway MAC from its VNI: locally administered, prefix `02:00:00`
/// followed by the 24 VNI bits. Endpoint MACs are allocated under the prefix `0a`, so
/// the two never collide, and every host computes the same gateway MAC.
pub(crate) fn gateway_mac(vni: u32) -> MacAddr {
    let [_, high, mid, low] = vni.to_be_bytes();
    MacAddr([0x02, 0x00, 0x00, high, mid, low])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_mac_is_local_unicast_and_per_vni() {
        let mac = gateway_mac(0x12_3456);
        assert_eq!(mac.to_string(), "02:00:00:12:34:56");
        assert!(mac.is_local());
        assert!(!mac.is_multicast());
        assert_ne!(gateway_mac(1), gateway_mac(2));
    }
}
