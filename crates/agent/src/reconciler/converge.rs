//! Convergence of one network: compare its desired plans with the applied ones and
//! touch the kernel only where they differ.

use std::collections::BTreeMap;
use std::net::IpAddr;

use cloison_dataplane::{names, DataplaneError, LocalEndpointPlan, RemoteEndpointPlan};
use cloison_model::{Endpoint, Network};
use tracing::{debug, warn};

use super::inflight::namespace_id;
use super::{Inner, Reconciler};
use crate::AgentError;

/// The plans one network needs on this host. A remote endpoint already applied as
/// wanted is left out, so an event of a network with many peers builds a plan only
/// for the peers it changed.
struct NetworkWants {
    local: BTreeMap<String, LocalEndpointPlan>,
    /// Remote endpoints that are new or changed.
    remote: BTreeMap<String, RemoteEndpointPlan>,
    /// False when the network goes away, so every applied remote endpoint is stale.
    carried: bool,
}

impl Reconciler {
    /// Converges one network, then every other network of its tenant whose presence
    /// on this host changed with it: the tenant's first local endpoint brings all its
    /// networks, and its last one takes them away.
    pub(super) async fn converge_with_tenant(&self, inner: &mut Inner, network_id: &str) -> Result<(), AgentError> {
        let tenant = inner
            .desired
            .networks
            .get(network_id)
            .map(|n| n.tenant.clone())
            .or_else(|| inner.applied.networks.get(network_id).map(|(t, _)| t.clone()));
        let result = self.converge(inner, network_id).await;
        if let Some(tenant) = tenant {
            for id in self.tenant_networks_out_of_step(inner, &tenant) {
                let _ = self.converge(inner, &id).await;
            }
        }
        result
    }

    /// Returns the networks of `tenant` that this host should carry and has not
    /// set up, or has set up and should not carry.
    fn tenant_networks_out_of_step(&self, inner: &Inner, tenant: &str) -> Vec<String> {
        let present = inner.desired.is_tenant_present_on(tenant, &self.ctx.host);
        let missing = inner
            .desired
            .networks
            .values()
            .filter(|n| present && n.tenant == tenant && !inner.applied.networks.contains_key(&n.id))
            .map(|n| n.id.clone());
        let unwanted = inner
            .applied
            .networks
            .iter()
            .filter(|(id, (t, _))| t == tenant && (!present || !inner.desired.networks.contains_key(*id)))
            .map(|(id, _)| id.clone());
        missing.chain(unwanted).collect()
    }

    /// Brings one network's kernel objects to the desired state: its bridge, VXLAN
    /// device, gateway and endpoints while its tenant has an endpoint on this host,
    /// nothing otherwise. Returns the first error met; the other objects are still
    /// attempted.
    pub(super) async fn converge(&self, inner: &mut Inner, network_id: &str) -> Result<(), AgentError> {
        let network = inner
            .desired
            .networks
            .get(network_id)
            .filter(|n| inner.desired.is_tenant_present_on(&n.tenant, &self.ctx.host))
            .cloned();
        let wants = network.as_ref().map(|n| self.wants(inner, n));
        let mut first_error = None;
        match (network, wants) {
            (Some(network), Some(wants)) => {
                let mut note = |r: Result<(), AgentError>| {
                    if let Err(e) = r {
                        first_error.get_or_insert(e);
                    }
                };
                // An attach waits for this lock. When it must wait for the network's
                // setup anyway, creating its endpoint here makes it reachable sooner.
                let leave_to_attaches = self.network_ready(inner, network_id);
                note(self.ensure_network(inner, &network).await);
                self.remove_stale_endpoints(inner, network_id, &wants).await;
                // Peers first: a container whose link comes up asks for its peers'
                // MACs at once, and an unanswered ARP is retried only after a second.
                for (id, plan) in wants.remote {
                    note(self.ensure_remote(inner, network_id, id, plan).await);
                }
                for (id, plan) in wants.local {
                    note(self.ensure_local(inner, network_id, id, plan, leave_to_attaches).await);
                }
            }
            _ => {
                if let Err(e) = self.remove_network(inner, network_id).await {
                    first_error = Some(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Converges every network that has an endpoint on `host`.
    pub(super) async fn converge_host(&self, inner: &mut Inner, host: &str) {
        let mut ids: Vec<String> = inner
            .desired
            .endpoints
            .values()
            .filter(|e| e.host == host)
            .map(|e| e.network_id.clone())
            .collect();
        ids.extend(
            inner
                .applied
                .remote
                .values()
                .map(|(network_id, _)| network_id.clone()),
        );
        ids.sort();
        ids.dedup();
        for id in ids {
            let _ = self.converge(inner, &id).await;
        }
    }

    fn wants(&self, inner: &Inner, network: &Network) -> NetworkWants {
        let mut wants = NetworkWants {
            local: BTreeMap::new(),
            remote: BTreeMap::new(),
            carried: true,
        };
        let vxlan = names::vxlan(network.vni);
        for endpoint in inner.desired.endpoints_of(&network.id) {
            if inner.in_flight.contains(&endpoint.id) {
                // Its interface is being deleted without the lock: never recreated.
                continue;
            }
            if endpoint.host == self.ctx.host {
                let plan = self.ctx.local_endpoint_plan(network, endpoint);
                wants.local.insert(endpoint.id.clone(), plan);
                continue;
            }
            let vtep = inner.desired.hosts.get(&endpoint.host).map(|h| h.underlay_ip);
            if vtep.is_some_and(|vtep| is_applied(inner.applied.remote.get(&endpoint.id), &vxlan, endpoint, vtep)) {
                continue;
            }
            if let Some(plan) = self.ctx.remote_endpoint_plan(network, endpoint, &inner.desired) {
                wants.remote.insert(endpoint.id.clone(), plan);
            }
        }
        wants
    }

    /// Returns true when [`Self::wants`] would plan the remote endpoint `id` in
    /// `network_id`, changed or not.
    fn is_remote_wanted(&self, inner: &Inner, network_id: &str, id: &str) -> bool {
        !inner.in_flight.contains(id)
            && inner.desired.endpoints.get(id).is_some_and(|e| {
                e.network_id == network_id && e.host != self.ctx.host && inner.desired.hosts.contains_key(&e.host)
            })
    }

    async fn ensure_network(&self, inner: &mut Inner, network: &Network) -> Result<(), AgentError> {
        let transit = inner.transit.plan(&self.ctx.run_dir, &network.tenant)?;
        let router = self.ctx.router_plan(&network.tenant, Some(transit));
        if inner.applied.routers.get(&network.tenant) != Some(&router) {
            self.dataplane.ensure_router(&router).await?;
            inner.applied.routers.insert(network.tenant.clone(), router);
        }
        let plan = self.ctx.network_plan(network, &inner.desired);
        if inner.applied.networks.get(&network.id).map(|(_, p)| p) != Some(&plan) {
            self.dataplane.ensure_network(&plan).await.inspect_err(|e| {
                warn!(net.vni = plan.vni, error = %e, "network setup failed");
            })?;
            debug!(net.vni = plan.vni, bridge = %plan.bridge, "network ready");
            inner
                .applied
                .networks
                .insert(network.id.clone(), (network.tenant.clone(), plan));
        }
        Ok(())
    }

    async fn ensure_local(
        &self,
        inner: &mut Inner,
        network_id: &str,
        id: String,
        plan: LocalEndpointPlan,
        leave_to_attaches: bool,
    ) -> Result<(), AgentError> {
        if inner.applied.local.get(&id).map(|(_, p)| p) == Some(&plan)
            || inner.applied.broken.get(&id) == Some(&plan)
            || inner.sandboxes.is_replaced(&id)
        {
            return Ok(());
        }
        if leave_to_attaches && !inner.resyncing && !inner.attaching.contains(&id) && self.expected.leave(namespace_id(&plan.sandbox), &plan.ifname, &id, network_id) {
            debug!(endpoint.id = %id, "endpoint left to its attach");
            return Ok(());
        }
        if let Some((_, old)) = inner.applied.local.remove(&id) {
            // The address, MAC or interface changed: rebuild rather than patch.
            self.dataplane.remove_local_endpoint(&old.host_ifname).await?;
        }
        self.guard_port(inner, &id, &plan.host_ifname).await?;
        let netns = inner.sandboxes.expected(&id, &plan);
        match self.dataplane.ensure_local_endpoint(&plan, netns).await {
            Ok(cookie) => {
                debug!(endpoint.id = %id, ifname = %plan.host_ifname, "endpoint ready");
                inner.sandboxes.record(&id, &plan, cookie);
                inner.reported.remove(&id);
                inner.applied.broken.remove(&id);
                inner.applied.local.insert(id, (network_id.to_string(), plan));
                Ok(())
            }
            Err(e @ DataplaneError::NamespaceReplaced { .. }) => {
                inner.leave_replaced(&id, &plan, &e);
                Err(e.into())
            }
            Err(e) => {
                let text = e.to_string();
                if inner.reported.get(&id) == Some(&text) {
                    debug!(endpoint.id = %id, sandbox = %plan.sandbox.display(), error = %e, "endpoint setup failed again");
                } else {
                    warn!(endpoint.id = %id, sandbox = %plan.sandbox.display(), error = %e, "endpoint setup failed; retrying at each repair pass");
                    inner.reported.insert(id.clone(), text);
                }
                inner.applied.broken.insert(id, plan);
                Err(e.into())
            }
        }
    }

    async fn ensure_remote(
        &self,
        inner: &mut Inner,
        network_id: &str,
        id: String,
        plan: RemoteEndpointPlan,
    ) -> Result<(), AgentError> {
        if inner.applied.remote.get(&id).map(|(_, p)| p) == Some(&plan) {
            return Ok(());
        }
        if let Some((_, old)) = inner.applied.remote.remove(&id) {
            // The endpoint moved (new MAC or host): no entry may keep pointing at the old one.
            self.dataplane.remove_remote_endpoint(&old).await?;
        }
        self.dataplane.ensure_remote_endpoint(&plan).await?;
        if inner.synced {
            self.announce_remote(inner, network_id, &plan).await;
        }
        inner
            .applied
            .remote
            .insert(id, (network_id.to_string(), plan));
        Ok(())
    }

    /// Announces a new or moved remote endpoint to the network's local containers, so
    /// none keeps sending to a MAC the address had before. A lost announcement only
    /// delays them until their neighbour entry expires, so failures are logged.
    async fn announce_remote(&self, inner: &Inner, network_id: &str, plan: &RemoteEndpointPlan) {
        let Some((_, network)) = inner.applied.networks.get(network_id) else {
            return;
        };
        if let Err(e) = self.dataplane.announce_remote_endpoint(&network.bridge, plan).await {
            warn!(net.vni = network.vni, mac = %plan.mac, error = %e, "announcement of a remote endpoint failed");
        }
    }

    /// Removes the applied endpoints of a network that are no longer wanted.
    async fn remove_stale_endpoints(&self, inner: &mut Inner, network_id: &str, wants: &NetworkWants) {
        let stale_local: Vec<String> = applied_ids(&inner.applied.local, network_id)
            .filter(|id| !wants.local.contains_key(*id))
            .map(str::to_string)
            .collect();
        for id in stale_local {
            self.remove_local(inner, &id).await;
        }
        let stale_remote: Vec<String> = applied_ids(&inner.applied.remote, network_id)
            .filter(|id| !wants.carried || !self.is_remote_wanted(inner, network_id, id))
            .map(str::to_string)
            .collect();
        for id in stale_remote {
            self.remove_remote(inner, &id).await;
        }
        inner
            .applied
            .broken
            .retain(|id, _| wants.local.contains_key(id) || !inner.desired.endpoints.contains_key(id));
    }

    /// Removes a local endpoint that is no longer wanted. A failed removal stays
    /// applied, so the next convergence retries it, and is warned about once.
    async fn remove_local(&self, inner: &mut Inner, id: &str) {
        if let Some((network_id, plan)) = inner.applied.local.remove(id) {
            match self.dataplane.remove_local_endpoint(&plan.host_ifname).await {
                Ok(()) => {
                    inner.reported.remove(id);
                }
                Err(e) => {
                    let text = e.to_string();
                    if inner.reported.get(id) == Some(&text) {
                        debug!(endpoint.id = %id, error = %e, "endpoint removal failed again");
                    } else {
                        warn!(endpoint.id = %id, error = %e, "endpoint removal failed; retrying at each repair pass");
                        inner.reported.insert(id.to_string(), text);
                    }
                    inner.applied.local.insert(id.to_string(), (network_id, plan));
                }
            }
        }
        inner.applied.broken.remove(id);
    }

    async fn remove_remote(&self, inner: &mut Inner, id: &str) {
        if let Some((network_id, plan)) = inner.applied.remote.remove(id) {
            if let Err(e) = self.dataplane.remove_remote_endpoint(&plan).await {
                warn!(endpoint.id = %id, error = %e, "remote endpoint removal failed");
                inner.applied.remote.insert(id.to_string(), (network_id, plan));
            }
        }
    }

    /// Removes a network this host no longer carries, and its tenant's router when it
    /// was the tenant's last network here.
    async fn remove_network(&self, inner: &mut Inner, network_id: &str) -> Result<(), AgentError> {
        let empty = NetworkWants {
            local: BTreeMap::new(),
            remote: BTreeMap::new(),
            carried: false,
        };
        self.remove_stale_endpoints(inner, network_id, &empty).await;
        let Some((tenant, plan)) = inner.applied.networks.remove(network_id) else {
            return Ok(());
        };
        if let Err(e) = self.dataplane.remove_network(&plan).await {
            inner
                .applied
                .networks
                .insert(network_id.to_string(), (tenant, plan));
            return Err(e.into());
        }
        debug!(net.vni = plan.vni, "network removed");
        if !inner.applied.tenant_has_networks(&tenant) {
            if let Some(router) = inner.applied.routers.remove(&tenant) {
                self.dataplane.remove_router(&router).await?;
                inner.transit.release(&self.ctx.run_dir, &tenant);
            }
        }
        Ok(())
    }
}

fn applied_ids<'a, T>(
    map: &'a BTreeMap<String, (String, T)>,
    network_id: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    map.iter()
        .filter(move |(_, (n, _))| n == network_id)
        .map(|(id, _)| id.as_str())
}

/// Returns true when `applied` programs `endpoint` on the VXLAN device `vxlan`
/// towards `vtep`, as [`crate::HostContext::remote_endpoint_plan`] would plan it.
/// The comparison builds no plan, so it allocates nothing.
fn is_applied(applied: Option<&(String, RemoteEndpointPlan)>, vxlan: &str, endpoint: &Endpoint, vtep: IpAddr) -> bool {
    let Some((_, plan)) = applied else { return false };
    // Destructured in full, so a field added to the plan must be compared here too.
    let RemoteEndpointPlan { vxlan: applied_vxlan, mac, ipv4, ipv6, vtep: applied_vtep } = plan;
    applied_vxlan == vxlan && *mac == endpoint.mac && *ipv4 == endpoint.ipv4 && *ipv6 == endpoint.ipv6 && *applied_vtep == vtep
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use cloison_model::MacAddr;

    use super::*;

    fn peer() -> Endpoint {
        Endpoint {
            id: "r1".into(),
            tenant: "t1".into(),
            name: "r1".into(),
            network: "n1".into(),
            network_id: "n1-id".into(),
            host: "h2".into(),
            mac: MacAddr::local_from_u64(7),
            ipv4: Ipv4Addr::new(10, 0, 0, 7),
            ipv6: None,
            ifname: "eth0".into(),
            sandbox: String::new(),
            groups: vec![],
            labels: BTreeMap::new(),
            resource_version: 1,
        }
    }

    fn applied(endpoint: &Endpoint, vtep: IpAddr) -> (String, RemoteEndpointPlan) {
        let plan = RemoteEndpointPlan { vxlan: names::vxlan(42), mac: endpoint.mac, ipv4: endpoint.ipv4, ipv6: endpoint.ipv6, vtep };
        (endpoint.network_id.clone(), plan)
    }

    #[test]
    fn applied_peer_needs_no_plan() {
        let endpoint = peer();
        let vtep = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        assert!(is_applied(Some(&applied(&endpoint, vtep)), &names::vxlan(42), &endpoint, vtep));
    }

    #[test]
    fn any_difference_needs_a_plan() {
        let endpoint = peer();
        let vtep = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        let entry = applied(&endpoint, vtep);
        assert!(!is_applied(None, &names::vxlan(42), &endpoint, vtep));
        assert!(!is_applied(Some(&entry), &names::vxlan(43), &endpoint, vtep));
        assert!(!is_applied(Some(&entry), &names::vxlan(42), &endpoint, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3))));
        let moved = Endpoint { mac: MacAddr::local_from_u64(8), ..peer() };
        assert!(!is_applied(Some(&entry), &names::vxlan(42), &moved, vtep));
        let renumbered = Endpoint { ipv4: Ipv4Addr::new(10, 0, 0, 8), ..peer() };
        assert!(!is_applied(Some(&entry), &names::vxlan(42), &renumbered, vtep));
        let dual = Endpoint { ipv6: Some("fd00::7".parse().unwrap_or(std::net::Ipv6Addr::LOCALHOST)), ..peer() };
        assert!(!is_applied(Some(&entry), &names::vxlan(42), &dual, vtep));
    }
}
