use std::collections::BTreeMap;

use cloison_dataplane::{LocalEndpointPlan, NetworkPlan, RemoteEndpointPlan, RouterPlan};

/// What the reconciler last programmed successfully, keyed by resource id.
#[derive(Debug, Default)]
pub(super) struct Applied {
    /// Router namespaces by tenant name.
    pub(super) routers: BTreeMap<String, RouterPlan>,
    /// Networks by id, with their tenant.
    pub(super) networks: BTreeMap<String, (String, NetworkPlan)>,
    /// Local endpoints by id, with their network id.
    pub(super) local: BTreeMap<String, (String, LocalEndpointPlan)>,
    /// Remote endpoints by id, with their network id.
    pub(super) remote: BTreeMap<String, (String, RemoteEndpointPlan)>,
    /// Local endpoints whose last ensure failed, with the plan that failed; they
    /// are retried by repair, not on every event of their network.
    pub(super) broken: BTreeMap<String, LocalEndpointPlan>,
}

impl Applied {
    /// Returns true if any applied network belongs to `tenant`.
    pub(super) fn tenant_has_networks(&self, tenant: &str) -> bool {
        self.networks.values().any(|(t, _)| t == tenant)
    }

    /// Forgets everything applied, so the next convergence re-ensures (and thereby
    /// adopts or repairs) every object.
    pub(super) fn clear(&mut self) {
        self.routers.clear();
        self.networks.clear();
        self.local.clear();
        self.remote.clear();
        self.broken.clear();
    }
}
