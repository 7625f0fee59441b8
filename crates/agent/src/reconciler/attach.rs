//! Creating a local endpoint's interface without the reconciler's lock, when its
//! network is programmed on this host already.
//!
//! The endpoint is marked in flight under the lock, like a detach marks its own
//! (see [`super::inflight`]), so convergence neither creates it a second time nor
//! collects it meanwhile. Concurrent attaches then create their interfaces side by
//! side instead of one after the other.

use cloison_dataplane::LocalEndpointPlan;
use tokio::sync::MutexGuard;
use tracing::{debug, warn};

use super::inflight::namespace_id;
use super::{Inner, Reconciler};
use crate::AgentError;

impl Reconciler {
    /// Returns true when the endpoint's network and its tenant's router are
    /// programmed here as the desired state wants them, so that adding one local
    /// endpoint needs nothing but its own interface.
    pub(super) fn network_ready(&self, inner: &Inner, network_id: &str) -> bool {
        let Some(network) = inner.desired.networks.get(network_id) else {
            return false;
        };
        inner.applied.routers.contains_key(&network.tenant)
            && inner
                .applied
                .networks
                .get(network_id)
                .is_some_and(|(_, plan)| *plan == self.ctx.network_plan(network, &inner.desired))
    }

    /// Creates the interface of endpoint `id` with the lock released, takes the lock
    /// again, records the result and converges the network's other objects.
    pub(super) async fn ensure_unlocked<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
        network_id: &str,
        id: &str,
        plan: LocalEndpointPlan,
    ) -> (MutexGuard<'a, Inner>, Result<(), AgentError>) {
        if let Err(e) = self.guard_port(&mut inner, id, &plan.host_ifname).await {
            return (inner, Err(e));
        }
        inner.in_flight.start(id, plan.clone(), namespace_id(&plan.sandbox));
        drop(inner);
        let created = self.dataplane.ensure_local_endpoint(&plan).await;

        let mut inner = self.inner.lock().await;
        inner.in_flight.finish(id);
        let result = match created {
            Ok(()) => {
                debug!(endpoint.id = %id, ifname = %plan.host_ifname, "endpoint ready");
                inner.applied.local.insert(id.to_string(), (network_id.to_string(), plan));
                // Removes the endpoint again if its record or network went meanwhile.
                self.converge_with_tenant(&mut inner, network_id).await
            }
            Err(e) => {
                warn!(endpoint.id = %id, sandbox = %plan.sandbox.display(), error = %e, "endpoint setup failed");
                inner.applied.broken.insert(id.to_string(), plan);
                Err(e.into())
            }
        };
        (inner, result)
    }
}
