//! The security policy on this host: nftables rulesets generated from the desired
//! state after every change, and restored when someone flushes them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cloison_dataplane::{DataplaneError, NftElementsPlan, NftablesPlan, TransitPlan};
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
