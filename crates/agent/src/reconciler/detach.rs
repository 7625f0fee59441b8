//! Detaching a local endpoint. The interface is deleted without the reconciler's
//! lock (see [`super::inflight`]), and the bookkeeping is done with it.

use std::sync::Arc;

use cloison_dataplane::LocalEndpointPlan;
use cloison_model::Endpoint;
use tokio::sync::MutexGuard;
use tracing::{debug, warn, Instrument};

use super::inflight::{namespace_id, NamespaceId};
use super::{Inner, Reconciler};
use crate::AgentError;

/// A local endpoint marked as being detached by [`Reconciler::begin_detach`]. Pass
/// it to [`Reconciler::finish_detach`] or [`Reconciler::cancel_detach`]: until then
/// the endpoint is neither recreated nor removed by anything else.
#[derive(Debug)]
#[must_use = "a marked endpoint stays marked until finished or cancelled"]
pub struct PendingDetach {
    endpoint: Endpoint,
    /// The applied plan and its network id, `None` when nothing was applied.
    applied: Option<(String, LocalEndpointPlan)>,
}

impl Reconciler {
    /// Removes a local endpoint from the kernel without waiting for the watch. Its
    /// record must be deleted already: the endpoint is never programmed again.
    ///
    /// Like an attach, the work runs as a task of its own, so a caller that goes
    /// away cannot leave the endpoint marked.
    pub async fn detach(self: &Arc<Self>, endpoint: &Endpoint) -> Result<(), AgentError> {
        let (this, endpoint) = (Arc::clone(self), endpoint.clone());
        let task = async move {
            let pending = this.begin_detach(&endpoint).await;
            this.finish_detach(pending).await
        };
        tokio::spawn(task.instrument(tracing::Span::current()))
            .await
            .unwrap_or_else(|e| Err(AgentError::Aborted { what: "detach".into(), reason: e.to_string() }))
    }

    /// Marks a local endpoint as being detached, changing nothing in the kernel.
    /// Call it before deleting the record. The watch event of that deletion may
    /// arrive before the controller's reply, and it then finds nothing to remove,
    /// so the interface is not deleted under the lock.
    pub async fn begin_detach(&self, endpoint: &Endpoint) -> PendingDetach {
        let sandbox = namespace_id(std::path::Path::new(&endpoint.sandbox));
        let mut inner = self.inner.lock().await;
        let applied = inner.applied.local.remove(&endpoint.id);
        if let Some((_, plan)) = &applied {
            inner.in_flight.start(&endpoint.id, plan.clone(), sandbox);
        }
        PendingDetach { endpoint: endpoint.clone(), applied }
    }

    /// Takes back the mark of an endpoint whose record could not be deleted. The
    /// endpoint is applied again as it was, since its interface was not touched.
    pub async fn cancel_detach(&self, pending: PendingDetach) {
        let mut inner = self.inner.lock().await;
        let id = &pending.endpoint.id;
        // Without an applied interface nothing was marked, and a mark under this id
        // belongs to an attach still creating the interface.
        if pending.applied.is_some() {
            inner.in_flight.finish(id);
        }
        if let Some(applied) = pending.applied {
            inner.applied.local.insert(id.clone(), applied);
        }
        // The record may be gone after all, when a reply was lost after the commit.
        // If the watch delivered that deletion already, converge removes it now.
        let _ = self.converge_with_tenant(&mut inner, &pending.endpoint.network_id).await;
    }

    /// Deletes the interface of an endpoint marked by [`Reconciler::begin_detach`]
    /// whose record is deleted, then removes its network if that was the network's
    /// last reason to be here, and updates the policy.
    pub async fn finish_detach(&self, pending: PendingDetach) -> Result<(), AgentError> {
        let endpoint = &pending.endpoint;
        let removed = match &pending.applied {
            Some((_, plan)) => Some(self.dataplane.remove_local_endpoint(&plan.host_ifname).await),
            None => None,
        };

        let mut inner = self.inner.lock().await;
        // As in `cancel_detach`: only a mark this detach made is taken back.
        if pending.applied.is_some() {
            inner.in_flight.finish(&endpoint.id);
        }
        // A snapshot or a late watch event, applied meanwhile or later, may carry the
        // endpoint again. Its record is gone, so convergence must not recreate it.
        inner.desired.remove_detached(endpoint);
        inner.applied.broken.remove(&endpoint.id);
        inner.sandboxes.forget(&endpoint.id);
        match (removed, pending.applied) {
            (Some(Ok(())), Some((_, plan))) => {
                debug!(endpoint.id = %endpoint.id, ifname = %plan.host_ifname, "endpoint removed");
            }
            (Some(Err(e)), Some(applied)) => {
                warn!(endpoint.id = %endpoint.id, error = %e, "endpoint removal failed; retrying with its network");
                // Still applied and no longer wanted: convergence removes it.
                inner.applied.local.insert(endpoint.id.clone(), applied);
            }
            _ => {}
        }
        let result = self.converge_with_tenant(&mut inner, &endpoint.network_id).await;
        // A failure is logged and retried by the repair pass.
        let _ = self.sync_policy(&mut inner).await;
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
