//! Attaching a local endpoint. When its network is programmed on this host
//! already, its interface is created without the reconciler's lock.
//!
//! The endpoint is marked in flight under the lock, like a detach marks its own
//! (see [`super::inflight`]), so convergence neither creates it a second time nor
//! collects it meanwhile. Concurrent attaches then create their interfaces side by
//! side instead of one after the other.

use cloison_dataplane::LocalEndpointPlan;
use cloison_model::{Endpoint, Network};
use tokio::sync::MutexGuard;
use tracing::{debug, warn};

use super::inflight::namespace_id;
use super::{Inner, Reconciler, FIRST_SNAPSHOT_WAIT};
use crate::AgentError;

impl Reconciler {
    /// Attaches `endpoint` once the first snapshot is applied. See [`Reconciler::attach`].
    pub(super) async fn attach_now(&self, network: Network, endpoint: Endpoint) -> Result<(), AgentError> {
        // Until the first snapshot the desired state lacks the host's other endpoints,
        // and the policy generated from it would drop their ports from the host's tables.
        let mut synced = self.synced.subscribe();
        if !matches!(tokio::time::timeout(FIRST_SNAPSHOT_WAIT, synced.wait_for(|s| *s)).await, Ok(Ok(_))) {
            return Err(AgentError::NotSynced { waited: FIRST_SNAPSHOT_WAIT });
        }
        let plan = self.ctx.local_endpoint_plan(&network, &endpoint);
        let mut inner = self.lock_clear_of(&plan).await;
        let id = endpoint.id.clone();
        // Convergence leaves an expected attach's endpoint alone, except this one's.
        inner.attaching.insert(id.clone());
        let (mut inner, result) = self.attach_locked(inner, network, endpoint, plan).await;
        inner.attaching.remove(&id);
        result
    }

    async fn attach_locked<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
        network: Network,
        endpoint: Endpoint,
        plan: LocalEndpointPlan,
    ) -> (MutexGuard<'a, Inner>, Result<(), AgentError>) {
        let network_id = network.id.clone();
        let endpoint_id = endpoint.id.clone();
        let endpoint_name = endpoint.name.clone();
        // A detach of this endpoint, or its deletion elsewhere, may have come while
        // the attach waited.
        if inner.desired.is_detached(&endpoint_id) {
            let error = AgentError::NotFound { what: format!("endpoint {endpoint_name} (detached while it was being attached)") };
            return (inner, Err(error));
        }
        inner.desired.networks.insert(network_id.clone(), network);
        // The watch may have delivered a newer version of the record already, for
        // instance with groups updated meanwhile.
        let newer_known = inner.desired.endpoints.get(&endpoint_id).is_some_and(|known| known.resource_version > endpoint.resource_version);
        if !newer_known {
            inner.desired.insert_endpoint(endpoint);
        }
        // The watch may have delivered this endpoint first and failed on it. Unless the
        // failure is forgotten, converge skips the endpoint and the kernel's error is lost.
        inner.applied.broken.remove(&endpoint_id);

        let unlocked = self.network_ready(&inner, &network_id) && !inner.applied.local.contains_key(&endpoint_id);
        let mut result = if unlocked {
            let (relocked, result) = self.ensure_unlocked(inner, &network_id, &endpoint_id, plan).await;
            inner = relocked;
            result
        } else {
            self.converge_with_tenant(&mut inner, &network_id).await
        };
        if inner.applied.local.contains_key(&endpoint_id) {
            match self.sync_policy(&mut inner).await {
                Ok(()) => return (inner, Ok(())),
                Err(source) => result = Err(AgentError::Policy { endpoint: endpoint_id.clone(), source }),
            }
        }

        // Forget the endpoint so a later event does not retry a failed attach.
        inner.desired.remove_endpoint(&endpoint_id);
        inner.applied.broken.remove(&endpoint_id);
        let _ = self.converge_with_tenant(&mut inner, &network_id).await;
        // A failure is logged and retried by the repair pass.
        let _ = self.sync_policy(&mut inner).await;
        // Without an error, the record or the network went while the interface was made.
        let error = result.err().unwrap_or_else(|| AgentError::NotFound {
            what: format!("endpoint {endpoint_name} (detached or deleted while it was being attached)"),
        });
        (inner, Err(error))
    }

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

    /// Returns true when the desired state still expects endpoint `id` as `plan`
    /// created it, in a network that needs nothing else.
    fn wants_as_created(&self, inner: &Inner, network_id: &str, id: &str, plan: &LocalEndpointPlan) -> bool {
        let endpoint = inner.desired.endpoints.get(id);
        let network = inner.desired.networks.get(network_id);
        let same_plan = endpoint.zip(network).is_some_and(|(e, n)| self.ctx.local_endpoint_plan(n, e) == *plan);
        same_plan && self.network_ready(inner, network_id)
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
        let netns = inner.sandboxes.expected(id, &plan);
        drop(inner);
        let created = self.dataplane.ensure_local_endpoint(&plan, netns).await;

        let mut inner = self.inner.lock().await;
        inner.in_flight.finish(id);
        let result = match created {
            Ok(cookie) => {
                debug!(endpoint.id = %id, ifname = %plan.host_ifname, "endpoint ready");
                inner.sandboxes.record(id, &plan, cookie);
                let unchanged = self.wants_as_created(&inner, network_id, id, &plan);
                inner.applied.local.insert(id.to_string(), (network_id.to_string(), plan));
                // Events applied meanwhile converged the network's other objects. This
                // removes the endpoint again if its record or its network went.
                if unchanged {
                    Ok(())
                } else {
                    self.converge_with_tenant(&mut inner, network_id).await
                }
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
