//! The security policy on this host: nftables rulesets generated from the desired
//! state after every change, and replaced when someone deletes them or empties a
//! set or chain in them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use cloison_dataplane::{DataplaneError, NftCounts, NftElementsPlan, NftSetChange, NftablesPlan, TransitPlan};
use cloison_model::{Endpoint, Publication, PublishProtocol};
use cloison_policy::{
    element_changes, expected_counts, lists_port, transition_script, Generator, PolicyInput, RouterRuleset, Rulesets, Table,
};
use tracing::{debug, info, warn};

use super::ports::PortGuard;
use super::{Inner, Reconciler};
use crate::{AgentError, DesiredState};

/// The rulesets last applied, per namespace.
#[derive(Debug, Default)]
pub(super) struct AppliedPolicy {
    /// Tables of the host namespace, `None` until applied.
    host: Option<Vec<Table>>,
    /// Router ruleset per tenant, with the namespace it was applied to.
    routers: BTreeMap<String, (PathBuf, RouterRuleset)>,
    /// Target of every UDP publication of this host, `None` until the first sync.
    udp_targets: Option<UdpTargets>,
    /// Object counts of the applied tables per namespace (`None` is the host), as
    /// the kernel reported them after the last change, `None` after a failed read.
    counts: BTreeMap<Option<PathBuf>, Option<Baseline>>,
    /// Incremented by every apply, so the repair pass can tell whether counts it
    /// read without the lock still describe what was applied.
    generation: u64,
    /// Keeps the sets of the last generation, so a change does not rebuild sets
    /// whose size grows with the number of rules.
    generator: Generator,
    /// Publications programmed, and those waiting for a port a host service uses.
    pub(super) ports: PortGuard,
}

/// The object counts expected in one namespace.
#[derive(Debug, Clone, Default)]
pub(super) struct Baseline {
    counts: NftCounts,
    /// Interval sets changed over netlink since the counts were read. The kernel
    /// may store their elements differently from the changes sent, so they are not
    /// compared until the repair pass reads the counts again.
    // NOTE: such a set emptied before that read goes unnoticed, because the read
    // becomes its expected count.
    uncounted: BTreeSet<String>,
}

impl Baseline {
    /// Compares the counted objects with `current`. Returns the objects that
    /// differ, or `None` when they match.
    fn drift(&self, current: &NftCounts) -> Option<String> {
        let keys: BTreeSet<&String> = self.counts.keys().chain(current.keys()).filter(|key| !self.uncounted.contains(*key)).collect();
        let differing: Vec<String> = keys
            .into_iter()
            .filter(|key| self.counts.get(*key) != current.get(*key))
            .map(|key| format!("{key} {}→{}", count_text(self.counts.get(key)), count_text(current.get(key))))
            .collect();
        (!differing.is_empty()).then(|| differing.into_iter().take(5).collect::<Vec<_>>().join(", "))
    }

    /// Updates the counts for element changes sent over netlink.
    fn apply_changes(&mut self, changes: &[NftSetChange]) {
        for change in changes {
            let key = format!("{} {} set {}", change.family.name(), change.table, change.set);
            if change.elements.iter().any(|e| e.key_end.is_some()) {
                self.uncounted.insert(key);
                continue;
            }
            let count = self.counts.entry(key).or_default();
            *count = if change.delete {
                count.saturating_sub(change.elements.len())
            } else {
                *count + change.elements.len()
            };
        }
    }
}

fn count_text(count: Option<&usize>) -> String {
    count.map_or_else(|| "absent".to_string(), usize::to_string)
}

/// Expected state of one namespace for the repair pass: the router's tenant (`None`
/// for the host), the namespace, the tables applied there and their expected counts.
pub(super) struct Expectation {
    tenant: Option<String>,
    namespace: Option<PathBuf>,
    tables: Vec<String>,
    baseline: Option<Baseline>,
}

/// The repair pass's finding in one namespace.
pub(super) enum Finding {
    /// Tables are missing (`tables_missing`) or their objects differ from what
    /// was applied.
    Drifted { tenant: Option<String>, tables_missing: bool, reason: String },
    /// Some or all counts were unknown; these become the expected ones.
    Counted { namespace: Option<PathBuf>, counts: NftCounts },
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
    /// only (an attach, a new rule) is sent over nftables netlink, and anything else
    /// replaces the tables. Both are one transaction per namespace. Returns the error
    /// of the host's tables, which guard every local endpoint. A router's failed
    /// transaction leaves its previous table, or IP forwarding off when it had none,
    /// so that error is only logged.
    pub(super) async fn sync_policy(&self, inner: &mut Inner) -> Result<(), DataplaneError> {
        let (wanted, transits) = self.generate_policy(inner).await;
        let mut host_result = Ok(());
        if inner.policy.host.as_ref() != Some(&wanted.host) {
            // Transit links carry egress and publications through the host, which
            // must forward them; the host's forwarding is left alone without one.
            let forwarding = (!transits.is_empty()).then_some(true);
            inner.policy.generation += 1;
            let counts = &mut inner.policy.counts;
            host_result = self.apply_tables(None, &wanted.host, inner.policy.host.as_deref(), forwarding, counts).await;
            inner.policy.host = host_result.is_ok().then_some(wanted.host);
        }
        let routers: Vec<(String, PathBuf)> =
            inner.applied.routers.iter().map(|(tenant, plan)| (tenant.clone(), plan.netns_path.clone())).collect();
        inner.policy.routers.retain(|tenant, _| routers.iter().any(|(t, _)| t == tenant));
        inner.policy.counts.retain(|namespace, _| namespace.is_none() || routers.iter().any(|(_, p)| Some(p) == namespace.as_ref()));
        for (tenant, path) in routers {
            let Some(ruleset) = wanted.routers.get(&tenant) else { continue };
            let previous = inner.policy.routers.get(&tenant).filter(|(p, _)| *p == path).map(|(_, r)| r);
            if previous == Some(ruleset) {
                continue;
            }
            let forwarding = (previous.map(|r| r.forwarding) != Some(ruleset.forwarding)).then_some(ruleset.forwarding);
            let old = previous.map(|r| std::slice::from_ref(&r.table));
            let tables = std::slice::from_ref(&ruleset.table);
            inner.policy.generation += 1;
            let counts = &mut inner.policy.counts;
            if self.apply_tables(Some(path.clone()), tables, old, forwarding, counts).await.is_ok() {
                inner.policy.routers.insert(tenant, (path, ruleset.clone()));
            } else {
                inner.policy.routers.remove(&tenant);
            }
        }
        self.remove_stale_udp_flows(inner).await;
        host_result
    }

    /// Generates the rulesets of the desired state. Returns them with the transit
    /// links of the routers applied, which the host tables depend on.
    async fn generate_policy(&self, inner: &mut Inner) -> (Rulesets, BTreeMap<String, TransitPlan>) {
        let transits: BTreeMap<String, TransitPlan> = inner
            .applied
            .routers
            .iter()
            .filter_map(|(tenant, plan)| plan.transit.clone().map(|t| (tenant.clone(), t)))
            .collect();
        let host_addresses = [self.ctx.underlay_ip];
        let admitted = self.admitted_publications(inner).await;
        let publications = admitted.as_ref().unwrap_or(&inner.desired.publications);
        let input = self.policy_input(&inner.desired, publications, &transits, &host_addresses);
        (inner.policy.generator.generate(&input), transits)
    }

    fn policy_input<'a>(
        &'a self,
        desired: &'a DesiredState,
        publications: &'a BTreeMap<String, Publication>,
        transits: &'a BTreeMap<String, TransitPlan>,
        host_addresses: &'a [IpAddr],
    ) -> PolicyInput<'a> {
        PolicyInput {
            host: &self.ctx.host,
            vxlan_port: self.ctx.vxlan_port,
            networks: &desired.networks,
            endpoints: &desired.endpoints,
            groups: &desired.groups,
            hosts: &desired.hosts,
            publications,
            transits,
            host_addresses,
        }
    }

    /// Applies the host's anti-spoofing table alone, as the desired state wants it,
    /// and keeps the other tables as applied. Syncs everything when nothing was
    /// applied yet.
    async fn sync_bridge_table(&self, inner: &mut Inner) -> Result<(), DataplaneError> {
        let Some(applied) = inner.policy.host.clone() else {
            return self.sync_policy(inner).await;
        };
        // The bridge table reads neither publications nor transit links.
        let (no_transits, host_addresses) = (BTreeMap::new(), [self.ctx.underlay_ip]);
        let input = self.policy_input(&inner.desired, &inner.desired.publications, &no_transits, &host_addresses);
        let bridge = inner.policy.generator.bridge_table(&input);
        let is_bridge = |t: &Table| t.family == bridge.family && t.name == bridge.name;
        if !applied.iter().any(is_bridge) {
            return self.sync_policy(inner).await;
        }
        let mixed: Vec<Table> = applied.iter().map(|t| if is_bridge(t) { bridge.clone() } else { t.clone() }).collect();
        if mixed == applied {
            return Ok(());
        }
        inner.policy.generation += 1;
        let counts = &mut inner.policy.counts;
        let result = self.apply_tables(None, &mixed, Some(&applied), None, counts).await;
        inner.policy.host = result.is_ok().then_some(mixed);
        result
    }

    /// Makes sure the host's tables list endpoint port `host_ifname` before the port
    /// is created, since the bridge drops every frame of an endpoint port they do not
    /// list: the endpoint's announcement would be lost otherwise. Applies the bridge
    /// table when it does not list the port yet. The rest of the policy, router
    /// rulesets included, follows the interface's creation and does not delay it.
    pub(super) async fn guard_port(&self, inner: &mut Inner, id: &str, host_ifname: &str) -> Result<(), AgentError> {
        let listed = |inner: &Inner| inner.policy.host.as_deref().is_some_and(|tables| lists_port(tables, host_ifname));
        if listed(inner) {
            return Ok(());
        }
        let policy_error = |source| AgentError::Policy { endpoint: id.to_string(), source };
        self.sync_bridge_table(inner).await.map_err(policy_error)?;
        if listed(inner) {
            return Ok(());
        }
        Err(AgentError::NotFound { what: format!("endpoint {id} in this host's anti-spoofing table") })
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
    /// An update the kernel rejects is retried once as a full replacement. Records
    /// in `counts` the namespace's object counts after the change.
    async fn apply_tables(
        &self,
        namespace: Option<PathBuf>,
        wanted: &[Table],
        previous: Option<&[Table]>,
        forwarding: Option<bool>,
        counts: &mut BTreeMap<Option<PathBuf>, Option<Baseline>>,
    ) -> Result<(), DataplaneError> {
        let tables: Vec<String> = wanted.iter().map(|t| format!("{} {}", t.family, t.name)).collect();
        let mut previous = previous;
        if let Some(changes) = previous.and_then(|previous| element_changes(wanted, previous)) {
            let elements = NftElementsPlan { namespace: namespace.clone(), changes };
            let forwarding = NftablesPlan { namespace: namespace.clone(), script: String::new(), tables: tables.clone(), forwarding };
            match self.apply_elements(&elements, &forwarding).await {
                Ok(()) => {
                    if let Some(Some(baseline)) = counts.get_mut(&namespace) {
                        baseline.apply_changes(&elements.changes);
                    }
                    return Ok(());
                }
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
                // Derived rather than read: a read takes an `nft` process, 10 to
                // 40 ms, on the path of the change that caused the apply.
                debug!(namespace = ?plan.namespace, "nftables ruleset applied");
                let expected = expected_counts(wanted);
                counts.insert(plan.namespace, Some(Baseline { counts: expected.counts, uncounted: expected.interval_sets }));
                Ok(())
            }
            Err(error) => {
                warn!(namespace = ?plan.namespace, %error, "nftables ruleset failed; retrying at the next repair");
                counts.remove(&plan.namespace);
                Err(error)
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

    /// Lists, per namespace, the tables the agent applied there and their expected
    /// counts, with the current apply generation. The check runs without the
    /// reconciler's lock, because counting starts an `nft` process per namespace.
    pub(super) fn policy_expectations(inner: &Inner) -> (Vec<Expectation>, u64) {
        let names = |tables: &[Table]| tables.iter().map(|t| format!("{} {}", t.family, t.name)).collect::<Vec<_>>();
        let baseline = |namespace: &Option<PathBuf>| inner.policy.counts.get(namespace).cloned().flatten();
        let mut expected = Vec::new();
        if let Some(host) = &inner.policy.host {
            expected.push(Expectation { tenant: None, namespace: None, tables: names(host), baseline: baseline(&None) });
        }
        for (tenant, (path, ruleset)) in &inner.policy.routers {
            let namespace = Some(path.clone());
            let tables = names(std::slice::from_ref(&ruleset.table));
            expected.push(Expectation { tenant: Some(tenant.clone()), baseline: baseline(&namespace), namespace, tables });
        }
        (expected, inner.policy.generation)
    }

    /// Compares each namespace of `expected` with the kernel: tables gone (`nft
    /// flush ruleset`, a firewall reload) or objects whose counts changed (`nft
    /// flush set`, `nft flush chain`, a deleted element or rule) are drift.
    // NOTE: a change that keeps every count, such as one element replaced by
    // another, goes unnoticed.
    pub(super) async fn inspect_tables(&self, expected: Vec<Expectation>) -> Vec<Finding> {
        let mut findings = Vec::new();
        for expectation in expected {
            let current = match self.dataplane.nftables_counts(expectation.namespace.as_deref(), &expectation.tables).await {
                Ok(current) => current,
                Err(error) => {
                    warn!(namespace = ?expectation.namespace, %error, "counting nftables objects failed");
                    continue;
                }
            };
            let missing: Vec<&String> = expectation.tables.iter().filter(|t| !current.contains_key(*t)).collect();
            let finding = if !missing.is_empty() {
                let reason = format!("tables missing: {}", missing.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "));
                Finding::Drifted { tenant: expectation.tenant, tables_missing: true, reason }
            } else {
                match expectation.baseline.as_ref().map(|baseline| (baseline.drift(&current), baseline.uncounted.is_empty())) {
                    Some((Some(reason), _)) => Finding::Drifted { tenant: expectation.tenant, tables_missing: false, reason },
                    Some((None, true)) => continue,
                    Some((None, false)) | None => Finding::Counted { namespace: expectation.namespace, counts: current },
                }
            };
            findings.push(finding);
        }
        findings
    }

    /// Replaces the tables of the namespaces found drifted, and records the counts
    /// read where none were known. Findings from counts read before an apply that
    /// ran since (`generation` differs) are dropped, because the apply changed the
    /// counts; missing tables are restored regardless.
    pub(super) async fn restore_policy(&self, inner: &mut Inner, findings: Vec<Finding>, generation: u64) {
        let current = inner.policy.generation == generation;
        for finding in findings {
            match finding {
                Finding::Drifted { tenant, tables_missing, reason } => {
                    if !current && !tables_missing {
                        continue;
                    }
                    match tenant {
                        None => {
                            warn!(%reason, "cloison's nftables tables in the host namespace differ from what was applied; replacing them");
                            inner.policy.host = None;
                        }
                        Some(tenant) => {
                            info!(tenant.name = %tenant, %reason, "router nftables table differs from what was applied; replacing it");
                            inner.policy.routers.remove(&tenant);
                        }
                    }
                }
                Finding::Counted { namespace, counts } if current => {
                    inner.policy.counts.insert(namespace, Some(Baseline { counts, uncounted: BTreeSet::new() }));
                }
                Finding::Counted { .. } => {}
            }
        }
        let _ = self.sync_policy(inner).await;
    }
}
