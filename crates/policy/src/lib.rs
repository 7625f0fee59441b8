//! The pure generator of cloison's nftables rulesets.
//!
//! From the agent's desired state it builds, as data, the tables of the host
//! namespace and of each tenant's router namespace, so tests compare rulesets without
//! root and the agent applies each namespace's tables in one `nft -f` transaction.
//!
//! | Namespace | Table | Role |
//! |---|---|---|
//! | host | `bridge cloison` | anti-spoofing on every endpoint port (stateless) |
//! | host | `inet cloison` | security groups (stateful), the underlay guard, egress NAT and publications |
//! | router | `inet cloison` | which network pairs of the tenant are routed, egress NAT and publications |
//!
//! Security groups are enforced in the host's `inet` table rather than in the bridge
//! family. Stateful bridge-family rules need `nf_conntrack_bridge`, which kernels
//! built without `CONFIG_NF_CONNTRACK_BRIDGE` lack (rule loading fails with EPROTO).
//! Bridged IPv4 and IPv6 packets instead reach the `inet` hooks through
//! `br_netfilter` (`bridge-nf-call-iptables`), where conntrack works. Both directions
//! of every flow to a local endpoint cross that endpoint's bridge on its own host, so
//! the state is complete there even when the distributed gateway routes the request
//! on one host and the reply on another.

mod bench;
mod bridge;
mod counts;
mod disjoint;
mod elements;
mod host;
mod ingress;
mod input;
mod nat;
mod nft;
mod resolve;
mod router;

pub use bench::synthetic_input;
pub use bridge::lists_port;
pub use counts::{expected_counts, ExpectedCounts};
pub use elements::element_changes;
pub use input::{OwnedInput, PolicyInput};
pub use nft::{Chain, Set, Table};

use std::collections::BTreeMap;

/// Every table cloison wants, per namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rulesets {
    /// Tables of the host namespace: `bridge cloison` and `inet cloison`.
    pub host: Vec<Table>,
    /// The `inet cloison` table of each tenant's router namespace, by tenant name.
    pub routers: BTreeMap<String, RouterRuleset>,
}

/// The ruleset of one tenant's router namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterRuleset {
    pub table: Table,
    /// True when some network pair is routed, so IP forwarding must be on.
    pub forwarding: bool,
}

/// Builds every table from the desired state.
pub fn generate(input: &PolicyInput<'_>) -> Rulesets {
    Generator::default().generate(input)
}

/// A generator that keeps what its last run built, so a run after a small change
/// reuses the sets whose size grows with the number of rules. Its output is always
/// the one [`generate`] returns for the same input.
#[derive(Debug, Default)]
pub struct Generator {
    ingress: ingress::Cache,
    bridge: bridge::Cache,
}

impl Generator {
    /// Builds the host's `bridge cloison` table alone, the one that lists endpoint
    /// ports. It is the first table of [`Rulesets::host`].
    pub fn bridge_table(&mut self, input: &PolicyInput<'_>) -> Table {
        bridge::cached_table(input, &mut self.bridge)
    }

    /// Builds every table from the desired state.
    pub fn generate(&mut self, input: &PolicyInput<'_>) -> Rulesets {
        let host = vec![self.bridge_table(input), host::table(input, &mut self.ingress)];
        let routers = input
            .local_tenants()
            .into_iter()
            .map(|tenant| {
                let ruleset = router::ruleset(input, &tenant);
                (tenant, ruleset)
            })
            .collect();
        Rulesets { host, routers }
    }
}

/// Renders the script that moves a namespace from `previous` tables to `wanted` in
/// one transaction: element commands when only set elements changed, else a
/// replacement of every table.
pub fn transition_script(wanted: &[Table], previous: Option<&[Table]>) -> String {
    if let Some(previous) = previous {
        if previous.len() == wanted.len() {
            let updates: Option<Vec<String>> =
                wanted.iter().zip(previous).map(|(new, old)| new.update_script(old)).collect();
            if let Some(updates) = updates {
                return updates.concat();
            }
        }
    }
    wanted.iter().map(Table::replace_script).collect()
}
