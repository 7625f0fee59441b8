//! The reconciler: turns the desired state into kernel state, one network at a time.
//!
//! It remembers what it last applied, so an event costs kernel work only for the
//! objects it changed. A snapshot (agent start, watch resynchronisation) compares
//! the kernel's inventory with the desired state, removes cloison's orphans and
//! re-ensures everything, which adopts existing objects instead of recreating them.

mod applied;
mod attach;
mod converge;
mod detach;
mod expected;
mod inflight;
mod policy;
mod ports;
mod sandboxes;
mod sync;
mod transit;
mod verify;

use std::sync::Arc;

use cloison_dataplane::Dataplane;
use cloison_model::{Endpoint, Network, WatchEvent, WatchObject};
use tokio::sync::Mutex;
use tracing::Instrument;

use crate::state::Delta;
use crate::{AgentError, DesiredState, HostContext};
use applied::Applied;
pub use detach::PendingDetach;
pub use expected::ExpectedAttach;

/// Reconciles one host's kernel with the desired state.
#[derive(Debug)]
pub struct Reconciler {
    dataplane: Arc<dyn Dataplane>,
    ctx: HostContext,
    inner: Mutex<Inner>,
    /// True once the first snapshot was applied, for attaches that wait for it.
    synced: tokio::sync::watch::Sender<bool>,
    /// Attaches whose endpoint records are being created.
    expected: Arc<expected::Expected>,
}

/// How long an attach waits for the agent's first snapshot.
const FIRST_SNAPSHOT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Default)]
struct Inner {
    desired: DesiredState,
    applied: Applied,
    /// True once a snapshot was applied; until then nothing is removed from the kernel.
    synced: bool,
    policy: policy::AppliedPolicy,
    transit: transit::TransitSlots,
    /// Endpoints whose interface is being deleted without the lock.
    in_flight: inflight::InFlight,
    /// Endpoints that an attach holding or awaiting the lock is creating.
    attaching: std::collections::BTreeSet<String>,
    /// True while a snapshot is applied. Convergence then leaves no endpoint to an
    /// expected attach, because the snapshot removes every interface it does not
    /// adopt: an existing endpoint in the namespace and interface name of a failing
    /// duplicate attach would lose its interface.
    resyncing: bool,
    /// The last setup failure logged per local endpoint, so a failure that repeats
    /// at every repair pass is logged once as a warning.
    reported: std::collections::BTreeMap<String, String>,
    /// The namespace each local endpoint lives in, see [`sandboxes`].
    sandboxes: sandboxes::Sandboxes,
}

impl Reconciler {
    /// Creates a reconciler that has applied nothing yet.
    pub fn new(dataplane: Arc<dyn Dataplane>, ctx: HostContext) -> Self {
        Self {
            dataplane,
            ctx,
            inner: Mutex::new(Inner::default()),
            synced: tokio::sync::watch::Sender::new(false),
            expected: Arc::default(),
        }
    }

    /// Returns the host facts the reconciler plans with.
    pub fn context(&self) -> &HostContext {
        &self.ctx
    }

    /// Returns the revision of the last watch event applied.
    pub async fn revision(&self) -> u64 {
        self.inner.lock().await.desired.revision
    }

    /// Returns a copy of the desired state.
    pub async fn desired(&self) -> DesiredState {
        self.inner.lock().await.desired.clone()
    }

    /// Runs `read` on the desired state under the lock and returns its result, so a
    /// caller that needs a count or a few objects does not copy every endpoint.
    pub async fn read_desired<T>(&self, read: impl FnOnce(&DesiredState) -> T) -> T {
        read(&self.inner.lock().await.desired)
    }

    /// Returns a network of the desired state by id, as the watch last delivered it.
    pub async fn network(&self, network_id: &str) -> Option<Network> {
        self.inner.lock().await.desired.networks.get(network_id).cloned()
    }

    /// Adds the endpoints of a network this host is about to join, so the first local
    /// attach programs its peers before the container's link comes up instead of
    /// waiting for the watch to deliver them. Endpoints already known are kept.
    // NOTE: an endpoint deleted between this read and the moment the watch starts
    // carrying the network stays programmed until the next snapshot.
    pub async fn preload_endpoints(&self, network_id: &str, endpoints: Vec<Endpoint>) {
        let mut inner = self.inner.lock().await;
        for endpoint in endpoints.into_iter().filter(|e| e.network_id == network_id) {
            if !inner.desired.endpoints.contains_key(&endpoint.id) && !inner.desired.is_detached(&endpoint.id) {
                inner.desired.insert_endpoint(endpoint);
            }
        }
    }

    /// Applies one watch event to the desired state and the kernel. Kernel failures
    /// are logged and retried by [`Reconciler::repair`]; they do not stop the watch.
    pub async fn apply_event(&self, event: WatchEvent) {
        let mut inner = self.inner.lock().await;
        // A local endpoint deleted elsewhere (through another host's agent or the
        // API) is gone for good, like one detached here: an attach of it still
        // waiting for the lock must not bring it back.
        if let WatchEvent::Delete { object: WatchObject::Endpoint(endpoint), .. } = &event {
            if endpoint.host == self.ctx.host {
                inner.desired.remove_detached(endpoint);
            }
        }
        let new_local = match &event {
            WatchEvent::Put { object: WatchObject::Endpoint(e), .. } if e.host == self.ctx.host && !inner.desired.endpoints.contains_key(&e.id) => {
                Some(e.clone())
            }
            _ => None,
        };
        match inner.desired.apply(event) {
            // Neither the kernel nor the policy depends on anything that changed.
            Delta::Unchanged => return,
            Delta::Network(_) if new_local.is_some_and(|e| self.left_to_attach(&inner, &e)) => return,
            Delta::Resync => self.resync(&mut inner).await,
            Delta::Network(id) => {
                let _ = self.converge_with_tenant(&mut inner, &id).await;
            }
            Delta::Host(host) => self.converge_host(&mut inner, &host).await,
            Delta::Policy | Delta::None => {}
        }
        if inner.synced {
            // A failure is logged and retried by the repair pass.
            let _ = self.sync_policy(&mut inner).await;
        }
    }

    /// Returns true when new local endpoint `endpoint` is left to an expected attach
    /// and its network needs nothing else. The attach then creates the interface and
    /// syncs the policy, so the watch event costs neither a convergence nor a policy
    /// generation, both of which grow with the host's endpoints.
    fn left_to_attach(&self, inner: &Inner, endpoint: &Endpoint) -> bool {
        if inner.resyncing || !self.network_ready(inner, &endpoint.network_id) {
            return false;
        }
        let Some(network) = inner.desired.networks.get(&endpoint.network_id) else {
            return false;
        };
        let plan = self.ctx.local_endpoint_plan(network, endpoint);
        self.expected.leave(inflight::namespace_id(&plan.sandbox), &plan.ifname, &endpoint.id, &endpoint.network_id)
    }

    /// Programs a just-created local endpoint without waiting for the watch, so an
    /// attach returns once the interface is usable. When the host's nftables rules
    /// cannot be applied, the endpoint would have neither anti-spoofing nor its
    /// groups, so it is removed again and the attach fails.
    ///
    /// Runs the work as a task of its own, so a caller that goes away (a client that
    /// hangs up, a timeout) cannot stop it half-way. A stopped attach would leave the
    /// endpoint marked in flight, and every later attach into its namespace would wait.
    pub async fn attach(self: &Arc<Self>, network: Network, endpoint: Endpoint) -> Result<(), AgentError> {
        let this = Arc::clone(self);
        let task = async move { this.attach_now(network, endpoint).await };
        tokio::spawn(task.instrument(tracing::Span::current()))
            .await
            .unwrap_or_else(|e| Err(AgentError::Aborted { what: "attach".into(), reason: e.to_string() }))
    }

    /// Registers an attach that is about to create the record of an endpoint whose
    /// container end is `ifname` in the namespace at `sandbox`. Until the guard is
    /// dropped, convergence leaves such an endpoint to [`Reconciler::attach`]: the
    /// watch may deliver the record before the controller's reply does.
    pub fn expect_attach(&self, sandbox: &std::path::Path, ifname: &str) -> ExpectedAttach {
        self.expected.register(sandbox, ifname)
    }

    /// Converges the networks whose endpoints convergence left to attaches that
    /// have all returned since, so that an endpoint none of them created (made
    /// through the API, or one whose attach failed) is created now. The repair pass
    /// does the same, for guards dropped without this call.
    pub async fn converge_released(&self) {
        let released = self.expected.take_released();
        if released.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().await;
        // Mostly the attach created its own endpoint, and nothing is left to do.
        let missing: std::collections::BTreeSet<&String> = released
            .iter()
            .filter(|(id, _)| inner.desired.endpoints.contains_key(*id) && !inner.applied.local.contains_key(*id) && !inner.in_flight.contains(id))
            .map(|(_, network_id)| network_id)
            .collect();
        if missing.is_empty() {
            return;
        }
        for network_id in missing {
            let _ = self.converge_with_tenant(&mut inner, network_id).await;
        }
        // A failure is logged and retried by the repair pass.
        let _ = self.sync_policy(&mut inner).await;
    }

    /// Compares the kernel with what was applied and repairs what went missing or
    /// changed (a device deleted by hand, an emptied nftables set or chain, an
    /// endpoint whose attach failed earlier).
    pub async fn repair(&self) -> Result<(), AgentError> {
        let (expected, generation) = {
            let inner = self.inner.lock().await;
            if !inner.synced {
                return Ok(());
            }
            Self::policy_expectations(&inner)
        };
        // Attaches go on while the tables are counted.
        let findings = self.inspect_tables(expected).await;
        match self.dataplane.open_foreign_forward_chains().await {
            Ok(changed) if !changed.is_empty() => tracing::info!(?changed, "inserted accepts for cloison's interfaces into other tables' forward chains whose policy is drop"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "checking other tables' forward chains failed"),
        }
        let mut inner = self.inner.lock().await;
        let result = self.repair_locked(&mut inner).await;
        self.restore_policy(&mut inner, findings, generation).await;
        result
    }
}
