//! The security policy on this host: nftables rulesets generated from the desired
//! state after every change, and restored when someone flushes them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use cloison_dataplane::{DataplaneError, NftElementsPlan, NftablesPlan, TransitPlan};
use cloison_model::{Endpoint, Publication, PublishProtocol};
use cloison_policy::{element_changes, generate, transition_script, PolicyInput, RouterRuleset, Table};
use tracing::{debug, info, warn};

use super::{Inner, Reconciler};

/// The rulesets last applied, per namespace.
#[derive(Debug, Default)]
pub(super) struct AppliedPolicy {
    /// Tables of the host namespace, `None` until applied.
    host: Option<Vec<Table>>,
    /// Router ruleset per tenant, with the namespace it was applied to.
    routers: BTreeMap<String, (PathBuf, RouterRuleset)>,
    /// Target of every UDP publication of this host, `None` until the first sync.
    udp_targets: Option<UdpTargets>,
}

/// UDP publications of a host by (host address, host port), each with its target:
/// the endpoint's id, address and port.
type UdpTargets = BTreeMap<(Option<IpAddr>, u16), (String, IpAddr, u16)>;

/// Returns the target of every UDP publication of `host` whose endpoint is known.
fn udp_targets(host: &str, publications: &BTreeMap<String, Publication>, endpoints: &BTreeMap<String, Endpoint>) -> UdpTargets {
    publications
        .values()
        .filter(|p| p.host == host && p.protocol == PublishProtocol::Udp)
        .filter_map(|p| {
            let endpoint = endpoints.get(&p.endpoint_id)?;
            Some(((p.host_ip, p.host_port), (endpoint.id.clone(), IpAddr::V4(endpoint.ipv4), p.port)))
        })
        .collect()
}

/// Returns the host ports whose UDP publication appeared, went or changed target.
fn changed_udp_ports(previous: &UdpTargets, current: &UdpTargets) -> Vec<u16> {
    let keys: BTreeSet<&(Option<IpAddr>, u16)> = previous.keys().chain(current.keys()).collect();
    let ports: BTreeSet<u16> = keys.into_iter().filter(|key| previous.get(key) != current.get(key)).map(|(_, port)| *port).collect();
    ports.into_iter().collect()
}

impl Reconciler {
    /// Regenerates the rulesets and applies what changed. A change of set elements
    /// only (an attach, a new rule) is sent over nftables netlink, anything else
    /// replaces the tables; both are one transaction per namespace.
    pub(super) async fn sync_policy(&self, inner: &mut Inner) {
        let transits: BTreeMap<String, TransitPlan> = inner
            .applied
            .routers
            .iter()
            .filter_map(|(tenant, plan)| plan.transit.clone().map(|t| (tenant.clone(), t)))
            .collect();
        let host_addresses = [self.ctx.underlay_ip];
        let input = PolicyInput {
            host: &self.ctx.host,
            vxlan_port: self.ctx.vxlan_port,
            networks: &inner.desired.networks,
            endpoints: &inner.desired.endpoints,
            groups: &inner.desired.groups,
            hosts: &inner.desired.hosts,
            publications: &inner.desired.publications,
            transits: &transits,
            host_addresses: &host_addresses,
        };
        let wanted = generate(&input);
        if inner.policy.host.as_ref() != Some(&wanted.host) {
            // Transit links carry egress and publications through the host, which
            // must forward them; the host's forwarding is left alone without one.
            let forwarding = (!transits.is_empty()).then_some(true);
            let applied = self.apply_tables(None, &wanted.host, inner.policy.host.as_deref(), forwarding).await;
            inner.policy.host = applied.then_some(wanted.host);
        }
        let routers: Vec<(String, PathBuf)> =
            inner.applied.routers.iter().map(|(tenant, plan)| (tenant.clone(), plan.netns_path.clone())).collect();
        inner.policy.routers.retain(|tenant, _| routers.iter().any(|(t, _)| t == tenant));
        for (tenant, path) in routers {
            let Some(ruleset) = wanted.routers.get(&tenant) else { continue };
            let previous = inner.policy.routers.get(&tenant).filter(|(p, _)| *p == path).map(|(_, r)| r);
            if previous == Some(ruleset) {
                continue;
            }
            let forwarding = (previous.map(|r| r.forwarding) != Some(ruleset.forwarding)).then_some(ruleset.forwarding);
            let old = previous.map(|r| std::slice::from_ref(&r.table));
            let tables = std::slice::from_ref(&ruleset.table);
            if self.apply_tables(Some(path.clone()), tables, old, forwarding).await {
                inner.policy.routers.insert(tenant, (path, ruleset.clone()));
            } else {
                inner.policy.routers.remove(&tenant);
            }
        }
        self.remove_stale_udp_flows(inner).await;
    }

    /// Removes the conntrack entries of UDP flows to a host port whose publication
    /// appeared, went or changed target since the last sync, in the host and in every
    /// router namespace. Without this a flow that keeps sending would keep the NAT
    /// decision of its first datagram: the old endpoint, or no publication at all.
    /// NOTE: changes made while the agent was stopped are not seen, because the
    /// targets start empty at each start.
    async fn remove_stale_udp_flows(&self, inner: &mut Inner) {
        let current = udp_targets(&self.ctx.host, &inner.desired.publications, &inner.desired.endpoints);
        let Some(previous) = inner.policy.udp_targets.replace(current.clone()) else { return };
        let ports = changed_udp_ports(&previous, &current);
        if ports.is_empty() {
            return;
        }
        let mut namespaces = vec![None];
        namespaces.extend(inner.applied.routers.values().map(|plan| Some(plan.netns_path.clone())));
        for namespace in namespaces {
            match self.dataplane.remove_udp_conntrack(namespace.as_deref(), &ports).await {
                Ok(removed) => debug!(namespace = ?namespace, ?ports, removed, "UDP conntrack entries of changed publications removed"),
                Err(error) => warn!(namespace = ?namespace, ?ports, %error, "removing UDP conntrack entries of changed publications failed"),
            }
        }
    }

    /// Applies `wanted` in one namespace, as an update of `previous` when possible.
    /// An update the kernel rejects is retried once as a full replacement.
    async fn apply_tables(
        &self,
        namespace: Option<PathBuf>,
        wanted: &[Table],
        previous: Option<&[Table]>,
        forwarding: Option<bool>,
    ) -> bool {
        let tables: Vec<String> = wanted.iter().map(|t| format!("{} {}", t.family, t.name)).collect();
        let mut previous = previous;
        if let Some(changes) = previous.and_then(|previous| element_changes(wanted, previous)) {
            let elements = NftElementsPlan { namespace: namespace.clone(), changes };
            let forwarding = NftablesPlan { namespace: namespace.clone(), script: String::new(), tables: tables.clone(), forwarding };
            match self.apply_elements(&elements, &forwarding).await {
                Ok(()) => return true,
                Err(error) => debug!(namespace = ?namespace, %error, "nftables element update failed; replacing the tables"),
            }
            // The same elements in an `nft` script would fail the same way.
            previous = None;
        }
        let mut plan = NftablesPlan { namespace, script: transition_script(wanted, previous), tables, forwarding };
        let mut result = self.dataplane.apply_nftables(&plan).await;
        if result.is_err() && previous.is_some() {
            plan.script = transition_script(wanted, None);
            result = self.dataplane.apply_nftables(&plan).await;
        }
        match result {
            Ok(()) => {
                debug!(namespace = ?plan.namespace, "nftables ruleset applied");
                true
            }
            Err(error) => {
                warn!(namespace = ?plan.namespace, %error, "nftables ruleset failed; retrying at the next repair");
                false
            }
        }
    }

    /// Sends element changes over netlink, then sets IP forwarding when `forwarding`
    /// carries a value. Its script is empty, so no `nft` process starts.
    async fn apply_elements(&self, elements: &NftElementsPlan, forwarding: &NftablesPlan) -> Result<(), DataplaneError> {
        if !elements.changes.is_empty() {
            self.dataplane.apply_nftables_elements(elements).await?;
        }
        if forwarding.forwarding.is_some() {
            self.dataplane.apply_nftables(forwarding).await?;
        }
        Ok(())
    }

    /// Lists, per namespace, the tables the agent applied there: `None` names the
    /// host namespace, `Some(tenant)` a router. The check runs without the
    /// reconciler's lock, because listing tables starts an `nft` process per namespace.
    pub(super) fn policy_expectations(inner: &Inner) -> Vec<(Option<String>, Option<PathBuf>, Vec<Table>)> {
        let mut expected = Vec::new();
        if let Some(host) = &inner.policy.host {
            expected.push((None, None, host.clone()));
        }
        for (tenant, (path, ruleset)) in &inner.policy.routers {
            expected.push((Some(tenant.clone()), Some(path.clone()), vec![ruleset.table.clone()]));
        }
        expected
    }

    /// Returns the namespaces among `expected` whose tables are gone (`nft flush
    /// ruleset`, a firewall reload).
    pub(super) async fn find_missing_tables(
        &self,
        expected: Vec<(Option<String>, Option<PathBuf>, Vec<Table>)>,
    ) -> Vec<Option<String>> {
        let mut missing = Vec::new();
        for (tenant, namespace, tables) in expected {
            if !self.tables_present(namespace, &tables).await {
                missing.push(tenant);
            }
        }
        missing
    }

    /// Forgets the rulesets of the namespaces found without their tables, then
    /// applies them again.
    pub(super) async fn restore_policy(&self, inner: &mut Inner, missing: Vec<Option<String>>) {
        for namespace in missing {
            match namespace {
                None => {
                    warn!("cloison's nftables tables are missing from the host namespace; restoring them");
                    inner.policy.host = None;
                }
                Some(tenant) => {
                    info!(tenant.name = %tenant, "router nftables table missing; restoring it");
                    inner.policy.routers.remove(&tenant);
                }
            }
        }
        self.sync_policy(inner).await;
    }

    async fn tables_present(&self, namespace: Option<PathBuf>, tables: &[Table]) -> bool {
        match self.dataplane.list_nftables(namespace.as_deref()).await {
            Ok(present) => tables.iter().all(|t| present.contains(&format!("{} {}", t.family, t.name))),
            Err(error) => {
                warn!(namespace = ?namespace, %error, "listing nftables tables failed");
                true
            }
        }
    }
}
