//! Detaching a local endpoint. The interface is deleted without the reconciler's
//! lock (see [`super::inflight`]), and the bookkeeping is done with it.

use cloison_dataplane::LocalEndpointPlan;
use cloison_model::Endpoint;
use tokio::sync::MutexGuard;
use tracing::{debug, warn};

use super::inflight::{namespace_id, NamespaceId};
use super::{Inner, Reconciler};
use crate::AgentError;

impl Reconciler {
    /// Removes a local endpoint from the kernel without waiting for the watch. Its
    /// record must be deleted already: the endpoint is never programmed again.
    pub async fn detach(&self, endpoint: &Endpoint) -> Result<(), AgentError> {
        let sandbox = namespace_id(std::path::Path::new(&endpoint.sandbox));
        let mut inner = self.inner.lock().await;
        inner.desired.endpoints.remove(&endpoint.id);
        inner.applied.broken.remove(&endpoint.id);
        let Some((network_id, plan)) = inner.applied.local.remove(&endpoint.id) else {
            // Nothing of it is programmed here: only its network may have to go.
            let result = self.converge_with_tenant(&mut inner, &endpoint.network_id).await;
            self.sync_policy(&mut inner).await;
            return result;
        };
        inner.in_flight.start(&endpoint.id, plan.clone(), sandbox);
        drop(inner);

        let removed = self.dataplane.remove_local_endpoint(&plan.host_ifname).await;
        let mut inner = self.inner.lock().await;
        inner.in_flight.finish(&endpoint.id);
        // A snapshot or a late watch event applied meanwhile may carry the endpoint
        // again. Its record is gone, so convergence must not recreate it.
        inner.desired.endpoints.remove(&endpoint.id);
        match removed {
            Ok(()) => debug!(endpoint.id = %endpoint.id, ifname = %plan.host_ifname, "endpoint removed"),
            Err(e) => {
                warn!(endpoint.id = %endpoint.id, error = %e, "endpoint removal failed; retrying with its network");
                // Still applied and no longer wanted: convergence removes it.
                inner.applied.local.insert(endpoint.id.clone(), (network_id.clone(), plan));
            }
        }
        let result = self.converge_with_tenant(&mut inner, &network_id).await;
        self.sync_policy(&mut inner).await;
        result
    }

    /// Takes the lock once no detach of the same endpoint, or of an endpoint whose
    /// container end has the same name in the same namespace, is deleting its
    /// interface, because the kernel rejects the name until that deletion ends.
    pub(super) async fn lock_clear_of(&self, plan: &LocalEndpointPlan) -> MutexGuard<'_, Inner> {
        let sandbox: Option<NamespaceId> = namespace_id(&plan.sandbox);
        loop {
            let inner = self.inner.lock().await;
            let Some(mut done) = inner.in_flight.blocking(plan, sandbox) else {
                return inner;
            };
            drop(inner);
            debug!(endpoint.id = %plan.endpoint_id, ifname = %plan.ifname, "waiting for the detach of the interface's previous holder");
            // Fails once the detach dropped its sender, which is what is awaited.
            let _ = done.changed().await;
        }
    }
}
