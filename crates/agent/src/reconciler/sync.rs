//! Whole-host passes: the resynchronisation after a snapshot, and the periodic
//! repair of objects that disappeared from the kernel.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

use cloison_dataplane::{names, GatewayPlan, Inventory, NetworkPlan, OwnedNetwork, RouterPlan};
use cloison_model::MacAddr;
use tracing::{debug, info, warn};

use super::{Inner, Reconciler};
use crate::AgentError;

impl Reconciler {
    /// Replaces the applied state with the kernel's after a snapshot: removes
    /// cloison's objects that nothing wants any more, then re-ensures every network,
    /// which adopts what exists and creates what is missing.
    pub(super) async fn resync(&self, inner: &mut Inner) {
        let inventory = match self.dataplane.inventory().await {
            Ok(inventory) => inventory,
            Err(e) => {
                warn!(error = %e, "kernel inventory failed; resynchronisation postponed");
                return;
            }
        };
        inner.applied.clear();
        inner.sandboxes.load(&self.ctx.run_dir);
        let wanted: Vec<String> = inner.desired.networks_present_on(&self.ctx.host);
        inner.resyncing = true;
        for id in &wanted {
            let _ = self.converge(inner, id).await;
        }
        inner.resyncing = false;
        self.remove_orphans(inner, &inventory).await;
        inner.synced = true;
        self.synced.send_replace(true);
        info!(
            revision = inner.desired.revision,
            networks = inner.applied.networks.len(),
            endpoints = inner.applied.local.len(),
            remote_endpoints = inner.applied.remote.len(),
            "kernel resynchronised"
        );
    }

    /// Removes every object carrying cloison's mark that the applied state does not
    /// account for. Objects of other owners are never listed by the inventory.
    async fn remove_orphans(&self, inner: &mut Inner, inventory: &Inventory) {
        let applied = &inner.applied;
        let local_ifnames: BTreeSet<&str> = applied.local.values().map(|(_, p)| p.host_ifname.as_str()).collect();
        let broken_ifnames: BTreeSet<&str> = applied.broken.values().map(|p| p.host_ifname.as_str()).collect();
        // A detach is deleting these already, without the lock.
        let in_flight: BTreeSet<&str> = inner.in_flight.host_ifnames().collect();
        // Their container end may still live in the namespace that lost its path.
        let replaced: BTreeSet<String> = inner.sandboxes.replaced().map(names::endpoint_host).collect();
        // Remote entries are matched by device and MAC only: the inventory rebuilds them
        // from FDB and neighbour dumps, and a field it could not recover must not make
        // the agent delete an entry it has just ensured.
        let remote: BTreeSet<(&str, MacAddr)> = applied
            .remote
            .values()
            .map(|(_, p)| (p.vxlan.as_str(), p.mac))
            .collect();
        let vnis: BTreeSet<u32> = applied.networks.values().map(|(_, p)| p.vni).collect();
        let routers: BTreeSet<&PathBuf> = applied.routers.values().map(|r| &r.netns_path).collect();
        let mut failures = Vec::new();
        for endpoint in &inventory.endpoints {
            let name = endpoint.host_ifname.as_str();
            if !local_ifnames.contains(name) && !broken_ifnames.contains(name) && !in_flight.contains(name) && !replaced.contains(name) {
                info!(endpoint.id = %endpoint.endpoint_id, "removing orphaned endpoint");
                failures.extend(self.dataplane.remove_local_endpoint(name).await.err());
            }
        }
        for entry in inventory
            .remote_endpoints
            .iter()
            .filter(|r| !remote.contains(&(r.vxlan.as_str(), r.mac)))
        {
            failures.extend(self.dataplane.remove_remote_endpoint(entry).await.err());
        }
        for network in inventory.networks.iter().filter(|n| !vnis.contains(&n.vni)) {
            info!(net.vni = network.vni, "removing orphaned network");
            let plan = self.orphan_network_plan(network);
            failures.extend(self.dataplane.remove_network(&plan).await.err());
        }
        for path in inventory.routers.iter().filter(|p| !routers.contains(p)) {
            let plan = RouterPlan {
                tenant_id: String::new(),
                netns_path: path.clone(),
                transit: None,
            };
            failures.extend(self.dataplane.remove_router(&plan).await.err());
        }
        for e in failures {
            warn!(error = %e, "orphan removal failed");
        }
    }

    /// Builds enough of a plan to remove a network that is no longer known.
    fn orphan_network_plan(&self, owned: &OwnedNetwork) -> NetworkPlan {
        let vni = owned.vni;
        NetworkPlan {
            network_id: owned.network_id.clone(),
            vni,
            bridge: owned.bridge.clone().unwrap_or_else(|| names::bridge(vni)),
            vxlan: owned.vxlan.clone().unwrap_or_else(|| names::vxlan(vni)),
            mtu: 0,
            local_vtep: self.ctx.underlay_ip,
            vxlan_port: self.ctx.vxlan_port,
            flood_vteps: Vec::new(),
            gateway: GatewayPlan {
                host_port: names::gateway_host_port(vni),
                router_port: names::gateway_router_port(vni),
                router_netns: PathBuf::new(),
                ipv4: ipnet::Ipv4Net::default(),
                ipv6: None,
                mac: MacAddr::default(),
            },
        }
    }

    /// Re-ensures what vanished from the kernel since it was applied, and retries
    /// endpoints and networks whose setup or removal failed.
    pub(super) async fn repair_locked(&self, inner: &mut Inner) -> Result<(), AgentError> {
        let inventory = self.dataplane.inventory().await?;
        let mut dirty = BTreeSet::new();
        let present_vxlans: BTreeSet<&str> = inventory.networks.iter().filter_map(|n| n.vxlan.as_deref()).collect();
        let present_bridges: BTreeSet<&str> = inventory.networks.iter().filter_map(|n| n.bridge.as_deref()).collect();
        for (id, (_, plan)) in &inner.applied.networks {
            if !present_vxlans.contains(plan.vxlan.as_str()) || !present_bridges.contains(plan.bridge.as_str()) {
                warn!(net.vni = plan.vni, "network devices missing from the kernel; recreating");
                dirty.insert(id.clone());
            }
        }
        let present_endpoints: BTreeSet<&str> = inventory.endpoints.iter().map(|e| e.host_ifname.as_str()).collect();
        for (id, (network_id, plan)) in &inner.applied.local {
            if !present_endpoints.contains(plan.host_ifname.as_str()) {
                // An endpoint still applied after a failed removal is not recreated.
                if inner.desired.endpoints.contains_key(id) {
                    warn!(endpoint.id = %id, "endpoint interface missing from the kernel; recreating");
                } else {
                    debug!(endpoint.id = %id, "interface of a removed endpoint missing from the kernel");
                }
                dirty.insert(network_id.clone());
            }
        }
        let present_remote: BTreeSet<(&str, MacAddr, IpAddr)> = inventory
            .remote_endpoints
            .iter()
            .map(|r| (r.vxlan.as_str(), r.mac, r.vtep))
            .collect();
        for (network_id, plan) in inner.applied.remote.values() {
            if !present_remote.contains(&(plan.vxlan.as_str(), plan.mac, plan.vtep)) {
                dirty.insert(network_id.clone());
            }
        }
        let Inner { reported, desired, sandboxes, applied, .. } = &mut *inner;
        // A removal that keeps failing stays applied, and is reported once too.
        reported.retain(|id, _| desired.endpoints.contains_key(id) || applied.local.contains_key(id));
        sandboxes.retain(|id| desired.endpoints.get(id).is_some_and(|e| e.host == self.ctx.host));
        let had_broken = !inner.applied.broken.is_empty();
        inner.applied.broken.clear();
        for id in &dirty {
            self.forget_network(inner, id);
        }
        if had_broken {
            dirty.extend(inner.desired.networks_present_on(&self.ctx.host));
        }
        // Added after the forgetting above, so a network whose removal failed keeps
        // the plan its next removal needs.
        dirty.extend(self.networks_out_of_step(inner));
        dirty.extend(Self::networks_with_unwanted_endpoints(inner));
        dirty.extend(self.expected.take_released().into_values());
        let mut first_error = None;
        for id in dirty {
            if let Err(e) = self.converge(inner, &id).await {
                first_error.get_or_insert(e);
            }
        }
        inner.sandboxes.save(&self.ctx.run_dir);
        first_error.map_or(Ok(()), Err)
    }

    /// Returns the networks this host should carry and has not set up (a failed
    /// setup), or has set up and should not carry (a failed removal).
    fn networks_out_of_step(&self, inner: &Inner) -> Vec<String> {
        let present: BTreeSet<String> = inner.desired.networks_present_on(&self.ctx.host).into_iter().collect();
        let missing = present.iter().filter(|id| !inner.applied.networks.contains_key(*id)).cloned();
        let unwanted = inner.applied.networks.keys().filter(|id| !present.contains(*id)).cloned();
        missing.chain(unwanted).collect()
    }

    /// Returns the networks that still have a local endpoint applied which the
    /// desired state no longer contains. Its removal failed, and only convergence
    /// retries it.
    fn networks_with_unwanted_endpoints(inner: &Inner) -> BTreeSet<String> {
        inner
            .applied
            .local
            .iter()
            .filter(|(id, _)| !inner.desired.endpoints.contains_key(*id))
            .map(|(_, (network_id, _))| network_id.clone())
            .collect()
    }

    /// Forgets what was applied for one network so its next convergence re-ensures it.
    fn forget_network(&self, inner: &mut Inner, network_id: &str) {
        inner.applied.networks.remove(network_id);
        inner.applied.local.retain(|_, (n, _)| n != network_id);
        inner.applied.remote.retain(|_, (n, _)| n != network_id);
    }
}
