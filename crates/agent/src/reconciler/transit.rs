//! Transit slots: which /31 of the link-local pool each tenant router's transit link
//! uses on this host.
//!
//! A transit address never leaves the host (the router source-NATs to it and the host
//! source-NATs again to its uplink), so slots need to be unique only per host. The
//! agent allocates the lowest free slot and records the assignment in
//! `<run-dir>/transit-slots.json`, so a restarted agent gives each tenant the slot it
//! had and connections tracked with the old addresses survive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cloison_dataplane::{names, TransitPlan};
use tracing::warn;

use crate::AgentError;

/// The slot of every tenant that has a transit link on this host.
#[derive(Debug, Default)]
pub(super) struct TransitSlots {
    slots: BTreeMap<String, u16>,
    loaded: bool,
}

impl TransitSlots {
    /// Returns the transit plan of `tenant`, allocating and recording a slot when the
    /// tenant has none yet.
    pub(super) fn plan(&mut self, run_dir: &Path, tenant: &str) -> Result<TransitPlan, AgentError> {
        self.load(run_dir);
        let slot = match self.slots.get(tenant) {
            Some(slot) => *slot,
            None => {
                let slot = (0..names::TRANSIT_SLOTS)
                    .find(|s| !self.slots.values().any(|used| used == s))
                    .ok_or_else(|| AgentError::NotFound {
                        what: format!("free transit address for tenant {tenant} (all {} are in use)", names::TRANSIT_SLOTS),
                    })?;
                self.slots.insert(tenant.to_string(), slot);
                self.save(run_dir);
                slot
            }
        };
        let (host_ipv4, router_ipv4) = names::transit_addresses(slot).ok_or_else(|| AgentError::NotFound {
            what: format!("transit slot {slot} of tenant {tenant} in the pool"),
        })?;
        Ok(TransitPlan {
            host_ifname: names::transit_host(tenant),
            router_ifname: names::TRANSIT_ROUTER.to_string(),
            host_ipv4,
            router_ipv4,
        })
    }

    /// Frees the slot of a tenant whose router was removed.
    pub(super) fn release(&mut self, run_dir: &Path, tenant: &str) {
        if self.slots.remove(tenant).is_some() {
            self.save(run_dir);
        }
    }

    fn load(&mut self, run_dir: &Path) {
        if self.loaded {
            return;
        }
        self.loaded = true;
        let path = file(run_dir);
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(slots) => self.slots = slots,
                Err(error) => warn!(path = %path.display(), %error, "ignoring unreadable transit slots"),
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => warn!(path = %path.display(), %error, "ignoring unreadable transit slots"),
        }
    }

    /// Writes the slots through a temporary file, so a crash leaves the old or the
    /// new content. A failed write is logged: the slots stay right until a restart.
    fn save(&self, run_dir: &Path) {
        let path = file(run_dir);
        let temporary = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(&self.slots).unwrap_or_default();
        let result = std::fs::create_dir_all(run_dir)
            .and_then(|()| std::fs::write(&temporary, bytes))
            .and_then(|()| std::fs::rename(&temporary, &path));
        if let Err(error) = result {
            warn!(path = %path.display(), %error, "recording transit slots failed");
        }
    }
}

fn file(run_dir: &Path) -> PathBuf {
    run_dir.join("transit-slots.json")
}
