use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::fake_script;
use crate::{
    Dataplane, DataplaneError, Inventory, LocalEndpointPlan, NetnsCookie, NetworkPlan, NftCounts, NftElementsPlan, NftablesPlan,
    OwnedEndpoint, OwnedNetwork, RemoteEndpointPlan, RouterPlan,
};

/// One request the fake received, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    EnsureRouter(String),
    RemoveRouter(String),
    EnsureNetwork(u32),
    RemoveNetwork(u32),
    EnsureLocalEndpoint(String),
    RemoveLocalEndpoint(String),
    EnsureRemoteEndpoint(RemoteEndpointPlan),
    RemoveRemoteEndpoint(RemoteEndpointPlan),
    AnnounceRemoteEndpoint(RemoteEndpointPlan),
    Inventory,
    /// An nftables script applied to the host (`None`) or a router namespace.
    ApplyNftables(NftablesPlan),
    /// Set element changes sent to the host (`None`) or a router namespace.
    ApplyNftablesElements(NftElementsPlan),
    /// UDP conntrack entries to these destination ports removed in the host
    /// (`None`) or a router namespace.
    RemoveUdpConntrack(Option<PathBuf>, Vec<u16>),
}

#[derive(Debug, Default)]
struct FakeKernel {
    routers: BTreeSet<PathBuf>,
    /// See [`FakeDataplane::fail_local_removals`].
    failing_removals: bool,
    /// Id prefix of the endpoint creations that wait, see
    /// [`FakeDataplane::hold_creation_of`].
    held_creations: Option<String>,
    networks: BTreeMap<u32, NetworkPlan>,
    endpoints: BTreeMap<String, LocalEndpointPlan>,
    remote: BTreeSet<RemoteEndpointPlan>,
    /// Tables present per namespace (`None` is the host), as `family name`.
    nftables: BTreeMap<Option<PathBuf>, Vec<String>>,
    /// Chains with their rule counts and sets with their element counts, per
    /// namespace, keyed like [`NftCounts`], as the applied scripts and element
    /// changes left them.
    nftables_objects: BTreeMap<Option<PathBuf>, NftCounts>,
    /// See [`FakeDataplane::set_host_listeners`].
    listeners: Vec<crate::Listener>,
    /// See [`FakeDataplane::fail_host_nftables`].
    failing_host_nftables: bool,
    /// VNIs whose network setup fails, see [`FakeDataplane::fail_network_setup`].
    failing_networks: BTreeSet<u32>,
    /// See [`FakeDataplane::fail_local_creations`].
    failing_creations: bool,
    /// Cookies of the namespaces at the sandbox paths seen so far. A path gets a
    /// new cookie when first used and from [`FakeDataplane::replace_namespace`].
    namespaces: BTreeMap<PathBuf, NetnsCookie>,
    /// The last cookie handed out.
    last_cookie: u64,
    log: Vec<Recorded>,
}

impl FakeKernel {
    /// Returns the cookie of the namespace at `path`, creating one if it has none.
    fn namespace_at(&mut self, path: &std::path::Path) -> NetnsCookie {
        if let Some(cookie) = self.namespaces.get(path) {
            return *cookie;
        }
        self.last_cookie += 1;
        let cookie = NetnsCookie(self.last_cookie);
        self.namespaces.insert(path.to_path_buf(), cookie);
        cookie
    }
}

/// A dataplane that records every request and keeps an in-memory picture of the
/// kernel it would have produced, so reconciler tests run without root.
#[derive(Debug, Default)]
pub struct FakeDataplane {
    kernel: Mutex<FakeKernel>,
    removal_hold: RemovalHold,
    creation_hold: RemovalHold,
}

/// True while endpoint removals (or creations) wait, see
/// [`FakeDataplane::hold_local_removals`] and [`FakeDataplane::hold_creation_of`].
#[derive(Debug)]
struct RemovalHold(tokio::sync::watch::Sender<bool>);

impl Default for RemovalHold {
    fn default() -> Self {
        Self(tokio::sync::watch::channel(false).0)
    }
}

impl FakeDataplane {
    /// Creates an empty fake kernel.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns and clears the requests recorded so far.
    pub fn take_log(&self) -> Vec<Recorded> {
        std::mem::take(&mut self.lock().log)
    }

    /// Returns the VNIs of the networks present.
    pub fn network_vnis(&self) -> Vec<u32> {
        self.lock().networks.keys().copied().collect()
    }

    /// Returns the ids of the local endpoints present.
    pub fn endpoint_ids(&self) -> Vec<String> {
        self.lock().endpoints.keys().cloned().collect()
    }

    /// Returns the remote endpoint entries present.
    pub fn remote_endpoints(&self) -> Vec<RemoteEndpointPlan> {
        self.lock().remote.iter().cloned().collect()
    }

    /// Returns the router namespaces present.
    pub fn routers(&self) -> Vec<PathBuf> {
        self.lock().routers.iter().cloned().collect()
    }

    /// Puts a local endpoint into the fake kernel without recording it, as if an
    /// earlier agent had made it.
    pub fn preload_endpoint(&self, plan: LocalEndpointPlan) {
        self.lock().endpoints.insert(plan.endpoint_id.clone(), plan);
    }

    /// Puts a network into the fake kernel without recording it.
    pub fn preload_network(&self, plan: NetworkPlan) {
        self.lock().networks.insert(plan.vni, plan);
    }

    /// Puts a remote endpoint entry into the fake kernel without recording it.
    pub fn preload_remote(&self, plan: RemoteEndpointPlan) {
        self.lock().remote.insert(plan);
    }

    /// Sets the host's listening sockets that [`Dataplane::host_listeners`] returns.
    pub fn set_host_listeners(&self, listeners: Vec<crate::Listener>) {
        self.lock().listeners = listeners;
    }

    /// Makes every later change of the host namespace's nftables tables, scripts and
    /// element updates alike, fail with `EEXIST` while `fail` is true, as the kernel
    /// does for an element that overlaps another.
    pub fn fail_host_nftables(&self, fail: bool) {
        self.lock().failing_host_nftables = fail;
    }

    /// Deletes a local endpoint from the fake kernel without recording it, as an
    /// operator or the deletion of its namespace would.
    pub fn remove_endpoint_by_hand(&self, id: &str) {
        self.lock().endpoints.remove(id);
    }

    /// Deletes the namespace at `path` with the endpoints inside it, and puts a new
    /// namespace there, as `ip netns del NAME; ip netns add NAME` does.
    pub fn replace_namespace(&self, path: &std::path::Path) {
        let mut k = self.lock();
        k.endpoints.retain(|_, e| e.sandbox != path);
        k.namespaces.remove(path);
        k.namespace_at(path);
    }

    /// Makes every later creation of a local endpoint fail with `ENOENT` while
    /// `fail` is true, as it does once the container's namespace is deleted.
    pub fn fail_local_creations(&self, fail: bool) {
        self.lock().failing_creations = fail;
    }

    /// Makes every later setup of the network with `vni` fail with `EIO` while
    /// `fail` is true, as a kernel that rejects its devices would.
    pub fn fail_network_setup(&self, vni: u32, fail: bool) {
        let mut k = self.lock();
        if fail {
            k.failing_networks.insert(vni);
        } else {
            k.failing_networks.remove(&vni);
        }
    }

    /// Returns the nftables scripts applied so far to one namespace, oldest first.
    pub fn nftables_scripts(&self, namespace: Option<&std::path::Path>) -> Vec<String> {
        self.lock()
            .log
            .iter()
            .filter_map(|r| match r {
                Recorded::ApplyNftables(plan) if plan.namespace.as_deref() == namespace => Some(plan.script.clone()),
                _ => None,
            })
            .collect()
    }

    /// Drops every nftables table, like `nft flush ruleset` in every namespace.
    pub fn flush_nftables(&self) {
        let mut k = self.lock();
        k.nftables.clear();
        k.nftables_objects.clear();
    }

    /// Empties one set of a table, like `nft flush set FAMILY TABLE SET` in the
    /// host (`None`) or a router namespace; `table` is `family name`.
    pub fn empty_nftables_set(&self, namespace: Option<&std::path::Path>, table: &str, set: &str) {
        let mut k = self.lock();
        let objects = k.nftables_objects.entry(namespace.map(PathBuf::from)).or_default();
        objects.insert(format!("{table} set {set}"), 0);
    }

    /// Makes every later endpoint removal wait, after it is recorded and before it
    /// changes the fake kernel, until [`FakeDataplane::release_local_removals`], as
    /// a slow kernel deletion would.
    pub fn hold_local_removals(&self) {
        self.removal_hold.0.send_replace(true);
    }

    /// Lets held and later endpoint removals proceed.
    pub fn release_local_removals(&self) {
        self.removal_hold.0.send_replace(false);
    }

    /// Makes every later creation of a local endpoint whose id starts with `prefix`
    /// wait, after it is recorded and before it changes the fake kernel, until
    /// [`FakeDataplane::release_creations`], as a slow kernel would.
    pub fn hold_creation_of(&self, prefix: &str) {
        self.lock().held_creations = Some(prefix.to_string());
        self.creation_hold.0.send_replace(true);
    }

    /// Lets held and later endpoint creations proceed.
    pub fn release_creations(&self) {
        self.lock().held_creations = None;
        self.creation_hold.0.send_replace(false);
    }

    /// Makes every later endpoint removal fail with `EIO` while `fail` is true.
    pub fn fail_local_removals(&self, fail: bool) {
        self.lock().failing_removals = fail;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeKernel> {
        // A panic in another test thread must not hide this test's own result.
        self.kernel.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Dataplane for FakeDataplane {
    async fn ensure_router(&self, plan: &RouterPlan) -> Result<(), DataplaneError> {
        let mut k = self.lock();
        k.log.push(Recorded::EnsureRouter(plan.tenant_id.clone()));
        k.routers.insert(plan.netns_path.clone());
        Ok(())
    }

    async fn remove_router(&self, plan: &RouterPlan) -> Result<(), DataplaneError> {
        let mut k = self.lock();
        k.log.push(Recorded::RemoveRouter(plan.tenant_id.clone()));
        k.routers.remove(&plan.netns_path);
        Ok(())
    }

    async fn ensure_network(&self, plan: &NetworkPlan) -> Result<(), DataplaneError> {
        let mut k = self.lock();
        k.log.push(Recorded::EnsureNetwork(plan.vni));
        if k.failing_networks.contains(&plan.vni) {
            return Err(DataplaneError::Sys { op: format!("ip link add {} type bridge", plan.bridge), source: nix::errno::Errno::EIO });
        }
        k.networks.insert(plan.vni, plan.clone());
        Ok(())
    }

    async fn remove_network(&self, plan: &NetworkPlan) -> Result<(), DataplaneError> {
        let mut k = self.lock();
        k.log.push(Recorded::RemoveNetwork(plan.vni));
        k.networks.remove(&plan.vni);
        let vxlan = plan.vxlan.clone();
        k.remote.retain(|r| r.vxlan != vxlan);
        Ok(())
    }

    /// Like the kernel, fails when the namespace at the sandbox path is not `netns`.
    async fn ensure_local_endpoint(&self, plan: &LocalEndpointPlan, netns: Option<NetnsCookie>) -> Result<Option<NetnsCookie>, DataplaneError> {
        let waits = {
            let mut k = self.lock();
            k.log.push(Recorded::EnsureLocalEndpoint(plan.endpoint_id.clone()));
            k.held_creations.as_ref().is_some_and(|prefix| plan.endpoint_id.starts_with(prefix.as_str()))
        };
        if waits {
            let mut hold = self.creation_hold.0.subscribe();
            // The fake owns the sender, so the wait ends only by a release.
            let _ = hold.wait_for(|held| !held).await;
        }
        let mut k = self.lock();
        if k.failing_creations {
            return Err(DataplaneError::Sys { op: format!("open {}", plan.sandbox.display()), source: nix::errno::Errno::ENOENT });
        }
        let found = if plan.is_handoff() { None } else { Some(k.namespace_at(&plan.sandbox)) };
        if let (Some(expected), Some(found)) = (netns, found) {
            if expected != found {
                return Err(DataplaneError::NamespaceReplaced {
                    endpoint_id: plan.endpoint_id.clone(),
                    sandbox: plan.sandbox.display().to_string(),
                    expected,
                    found,
                });
            }
        }
        k.endpoints.insert(plan.endpoint_id.clone(), plan.clone());
        Ok(found)
    }

    async fn remove_local_endpoint(&self, host_ifname: &str) -> Result<(), DataplaneError> {
        self.lock().log.push(Recorded::RemoveLocalEndpoint(host_ifname.to_string()));
        let mut hold = self.removal_hold.0.subscribe();
        // The fake owns the sender, so the wait ends only by a release.
        let _ = hold.wait_for(|held| !held).await;
        let mut k = self.lock();
        if k.failing_removals {
            return Err(DataplaneError::Sys { op: format!("ip link del {host_ifname}"), source: nix::errno::Errno::EIO });
        }
        k.endpoints.retain(|_, e| e.host_ifname != host_ifname);
        Ok(())
    }

    async fn verify_local_endpoint(&self, plan: &LocalEndpointPlan) -> Result<Vec<String>, DataplaneError> {
        let k = self.lock();
        Ok(match k.endpoints.get(&plan.endpoint_id) {
            Some(present) if present == plan => Vec::new(),
            Some(_) => vec![format!("endpoint {} differs from its plan", plan.endpoint_id)],
            None => vec![format!("endpoint {} is missing", plan.endpoint_id)],
        })
    }

    async fn ensure_remote_endpoint(&self, plan: &RemoteEndpointPlan) -> Result<(), DataplaneError> {
        let mut k = self.lock();
        k.log.push(Recorded::EnsureRemoteEndpoint(plan.clone()));
        k.remote.retain(|r| !(r.vxlan == plan.vxlan && r.mac == plan.mac));
        k.remote.insert(plan.clone());
        Ok(())
    }

    async fn remove_remote_endpoint(&self, plan: &RemoteEndpointPlan) -> Result<(), DataplaneError> {
        let mut k = self.lock();
        k.log.push(Recorded::RemoveRemoteEndpoint(plan.clone()));
        k.remote.remove(plan);
        Ok(())
    }

    async fn announce_remote_endpoint(&self, _bridge: &str, plan: &RemoteEndpointPlan) -> Result<(), DataplaneError> {
        self.lock().log.push(Recorded::AnnounceRemoteEndpoint(plan.clone()));
        Ok(())
    }

    async fn inventory(&self) -> Result<Inventory, DataplaneError> {
        let mut k = self.lock();
        k.log.push(Recorded::Inventory);
        Ok(Inventory {
            networks: k
                .networks
                .values()
                .map(|n| OwnedNetwork {
                    network_id: n.network_id.clone(),
                    vni: n.vni,
                    bridge: Some(n.bridge.clone()),
                    vxlan: Some(n.vxlan.clone()),
                })
                .collect(),
            endpoints: k
                .endpoints
                .values()
                .map(|e| OwnedEndpoint {
                    endpoint_id: e.endpoint_id.clone(),
                    host_ifname: e.host_ifname.clone(),
                })
                .collect(),
            remote_endpoints: k.remote.iter().cloned().collect(),
            routers: k.routers.iter().cloned().collect(),
        })
    }

    async fn apply_nftables(&self, plan: &NftablesPlan) -> Result<(), DataplaneError> {
        let mut k = self.lock();
        k.log.push(Recorded::ApplyNftables(plan.clone()));
        if k.failing_host_nftables && plan.namespace.is_none() {
            return Err(DataplaneError::Nft { namespace: "the host namespace".into(), message: "Could not process rule: File exists".into() });
        }
        k.nftables.insert(plan.namespace.clone(), plan.tables.clone());
        let objects = k.nftables_objects.entry(plan.namespace.clone()).or_default();
        fake_script::apply(objects, &plan.script);
        Ok(())
    }

    /// Records the changes; like the kernel, fails with `ENOENT` when a change
    /// names a table the namespace does not hold.
    async fn apply_nftables_elements(&self, plan: &NftElementsPlan) -> Result<(), DataplaneError> {
        let mut k = self.lock();
        k.log.push(Recorded::ApplyNftablesElements(plan.clone()));
        if k.failing_host_nftables && plan.namespace.is_none() {
            return Err(DataplaneError::Sys { op: "add elements to the host tables".into(), source: nix::errno::Errno::EEXIST });
        }
        let tables = k.nftables.get(&plan.namespace).cloned().unwrap_or_default();
        let missing = plan
            .changes
            .iter()
            .map(|c| format!("{} {}", c.family.name(), c.table))
            .find(|table| !tables.contains(table));
        match missing {
            Some(table) => Err(DataplaneError::Sys { op: format!("change elements of table {table}"), source: nix::errno::Errno::ENOENT }),
            None => {
                let objects = k.nftables_objects.entry(plan.namespace.clone()).or_default();
                for change in &plan.changes {
                    let count = objects.entry(format!("{} {} set {}", change.family.name(), change.table, change.set)).or_default();
                    *count = if change.delete { count.saturating_sub(change.elements.len()) } else { *count + change.elements.len() };
                }
                Ok(())
            }
        }
    }

    async fn list_nftables(&self, namespace: Option<&std::path::Path>) -> Result<Vec<String>, DataplaneError> {
        let k = self.lock();
        Ok(k.nftables.get(&namespace.map(PathBuf::from)).cloned().unwrap_or_default())
    }

    /// Counts each table present as 1, and the chains and sets of those tables as
    /// the applied scripts, element changes and [`FakeDataplane::empty_nftables_set`]
    /// left them.
    async fn nftables_counts(&self, namespace: Option<&std::path::Path>, tables: &[String]) -> Result<NftCounts, DataplaneError> {
        let k = self.lock();
        let key = namespace.map(PathBuf::from);
        let present = k.nftables.get(&key).cloned().unwrap_or_default();
        let mut counts: NftCounts = tables.iter().filter(|t| present.contains(t)).map(|t| (t.clone(), 1)).collect();
        for (object, count) in k.nftables_objects.get(&key).into_iter().flatten() {
            if counts.keys().any(|table| object.starts_with(&format!("{table} "))) {
                counts.insert(object.clone(), *count);
            }
        }
        Ok(counts)
    }

    async fn remove_udp_conntrack(&self, namespace: Option<&std::path::Path>, ports: &[u16]) -> Result<usize, DataplaneError> {
        self.lock().log.push(Recorded::RemoveUdpConntrack(namespace.map(PathBuf::from), ports.to_vec()));
        Ok(0)
    }

    /// The fake kernel has no other tables, so there is nothing to open.
    async fn host_listeners(&self) -> Result<Vec<crate::Listener>, DataplaneError> {
        Ok(self.lock().listeners.clone())
    }

    async fn open_foreign_forward_chains(&self) -> Result<Vec<String>, DataplaneError> {
        Ok(Vec::new())
    }
}
