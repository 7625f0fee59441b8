//! Ingress security groups in the host table, in two lookups per new flow whatever
//! the number of endpoints and rules.
//!
//! Local endpoints with the same tenant and the same groups form one class. A class
//! has a chain and four sets containing what its groups' ingress rules allow: source
//! prefix, protocol and, where the rule names them, destination ports, per address
//! family. The verdict maps `ingress4` and `ingress6` send a flow towards a local
//! endpoint (its bridge and address) to the chain of the endpoint's class. So the
//! sets grow with the rules, not with rules times endpoints, and attaching an
//! endpoint of an existing class adds one map element.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cloison_dataplane::names;
use cloison_model::{Direction, Endpoint, Network, Peer, Rule, SecurityGroup};
use ipnet::IpNet;

use crate::nft::{ifname, Chain, Set, Table};
use crate::disjoint::{disjoint, protocol_span, protocol_text, span_text, Span};
use crate::resolve::{endpoint_addresses, peer_prefixes};
use crate::PolicyInput;

/// Declarations of a class's sets, by name suffix.
const CLASS_SETS: [(&str, &str); 4] = [
    ("_4p", "type ipv4_addr . inet_proto . inet_service; flags interval;"),
    ("_4", "type ipv4_addr . inet_proto; flags interval;"),
    ("_6p", "type ipv6_addr . inet_proto . inet_service; flags interval;"),
    ("_6", "type ipv6_addr . inet_proto; flags interval;"),
];

/// Declarations of the maps from a local endpoint to its class's chain.
pub(crate) const MAPS: [(&str, &str); 2] = [
    ("ingress4", "type ifname . ipv4_addr : verdict;"),
    ("ingress6", "type ifname . ipv6_addr : verdict;"),
];

/// A class: a tenant and the sorted names of the groups its endpoints list.
type ClassKey<'a> = (&'a str, Vec<&'a str>);

/// Adds every class of the local endpoints: its chain, its sets and the map
/// elements of its members. A class whose groups and resolved peers did not change
/// since the last run reuses its sets from `cache`.
pub(crate) fn add(table: &mut Table, input: &PolicyInput<'_>, cache: &mut Cache) {
    let mut peers = PeerCache::default();
    let mut used = BTreeMap::new();
    for (key, members) in classes(input) {
        let chain = chain_name(&key);
        for (endpoint, network) in members {
            add_member(table, &chain, endpoint, network);
        }
        let class = match cache.classes.remove(&chain) {
            Some(class) if class.is_current(input, &key) => class,
            _ => CachedClass::build(input, &mut peers, &key),
        };
        table.sets.extend(class.sets(&chain));
        table.chains.push(class_chain(&chain));
        used.insert(chain, class);
    }
    cache.classes = used;
}

/// The classes of the last run, by chain name, so a run with unchanged groups does
/// not rebuild sets whose size grows with the rules.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    classes: BTreeMap<String, CachedClass>,
}

/// The inputs a class's sets were built from, and the sets.
#[derive(Debug)]
struct CachedClass {
    /// Rules of each group of the class, `None` for a group the host did not know.
    groups: Vec<Option<Vec<Rule>>>,
    /// Prefixes of each group or network peer the rules name.
    peers: Vec<(Peer, Vec<IpNet>)>,
    /// Elements of the class's sets, in the order of [`CLASS_SETS`].
    elements: Vec<Arc<BTreeSet<String>>>,
}

impl CachedClass {
    fn build<'a>(input: &PolicyInput<'a>, peers: &mut PeerCache<'a>, key: &ClassKey<'_>) -> Self {
        let groups: Vec<Option<&'a SecurityGroup>> = key.1.iter().map(|group| input.groups.get(&format!("{}/{group}", key.0))).collect();
        let rules = ingress_rules(&groups);
        let sets = class_sets(input, peers, key.0, &rules);
        let mut named: Vec<(Peer, Vec<IpNet>)> = Vec::new();
        for rule in rules.iter().filter(|r| !matches!(r.peer, Peer::Cidr(_))) {
            if !named.iter().any(|(peer, _)| *peer == rule.peer) {
                named.push((rule.peer.clone(), peers.prefixes(input, key.0, &rule.peer)));
            }
        }
        CachedClass {
            groups: groups.iter().map(|g| g.map(|g| g.rules.clone())).collect(),
            peers: named,
            elements: sets.into_iter().map(Arc::new).collect(),
        }
    }

    /// Returns true when the class's groups have the same rules and its named peers
    /// the same prefixes as when its sets were built.
    fn is_current(&self, input: &PolicyInput<'_>, key: &ClassKey<'_>) -> bool {
        let same_groups = self.groups.len() == key.1.len()
            && key.1.iter().zip(&self.groups).all(|(group, cached)| {
                let current = input.groups.get(&format!("{}/{group}", key.0)).map(|g| g.rules.as_slice());
                current == cached.as_deref()
            });
        same_groups && self.peers.iter().all(|(peer, prefixes)| peer_prefixes(input, key.0, peer) == *prefixes)
    }

    fn sets(&self, chain: &str) -> Vec<Set> {
        CLASS_SETS
            .iter()
            .zip(&self.elements)
            .map(|((suffix, declaration), elements)| {
                let mut set = Set::new("set", format!("{chain}{suffix}"), declaration);
                set.elements = Arc::clone(elements);
                set
            })
            .collect()
    }
}

/// Groups the local endpoints that list at least one group by class.
fn classes<'a>(input: &PolicyInput<'a>) -> BTreeMap<ClassKey<'a>, Vec<(&'a Endpoint, &'a Network)>> {
    let mut classes: BTreeMap<ClassKey<'a>, Vec<(&'a Endpoint, &'a Network)>> = BTreeMap::new();
    for (endpoint, network) in input.local_endpoints() {
        let mut groups: Vec<&str> = endpoint.groups.iter().map(String::as_str).collect();
        if groups.is_empty() {
            continue;
        }
        groups.sort_unstable();
        groups.dedup();
        classes.entry((endpoint.tenant.as_str(), groups)).or_default().push((endpoint, network));
    }
    classes
}

/// Returns the name of a class's chain: `in_` and a hash of the class, so the name
/// stays the same while the class exists, whatever other classes come and go.
fn chain_name(key: &ClassKey<'_>) -> String {
    let mut text = key.0.to_string();
    for group in &key.1 {
        text.push('\0');
        text.push_str(group);
    }
    format!("in_{:016x}", fnv1a(text.as_bytes()))
}

/// Returns the 64-bit FNV-1a hash of `bytes`, which is the same on every build and platform.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

fn add_member(table: &mut Table, chain: &str, endpoint: &Endpoint, network: &Network) {
    let bridge = ifname(&names::bridge(network.vni));
    for address in endpoint_addresses(endpoint) {
        let map = if address.is_ipv4() { "ingress4" } else { "ingress6" };
        table.add(map, format!("{bridge} . {address} : jump {chain}"));
    }
}

/// Returns the ingress rules of a class's groups, each once; groups the host does
/// not know contribute nothing.
fn ingress_rules<'a>(groups: &[Option<&'a SecurityGroup>]) -> Vec<&'a Rule> {
    let mut rules: Vec<&'a Rule> = groups
        .iter()
        .flatten()
        .flat_map(|group| group.rules.iter())
        .filter(|rule| rule.direction == Direction::Ingress)
        .collect();
    if groups.len() > 1 {
        rules.sort_unstable();
        rules.dedup();
    }
    rules
}

/// The elements of one class set before rendering: for a port set by protocol with
/// port spans, otherwise all under `None` with protocol spans.
type SetElements = BTreeMap<Option<Span>, Vec<(IpNet, Span)>>;

/// Builds the elements of a class's four sets from its rules, none overlapping
/// another (see the `disjoint` module).
fn class_sets<'a>(input: &PolicyInput<'a>, peers: &mut PeerCache<'a>, tenant: &str, rules: &[&'a Rule]) -> Vec<BTreeSet<String>> {
    let mut boxes: Vec<SetElements> = vec![BTreeMap::new(); CLASS_SETS.len()];
    for rule in rules {
        for source in peers.prefixes(input, tenant, &rule.peer) {
            let ipv6 = source.addr().is_ipv6();
            let protocol = protocol_span(rule.protocol, ipv6);
            let (index, key, span) = match rule.ports {
                Some((first, last)) => (usize::from(ipv6) * 2, Some(protocol), (u32::from(first), u32::from(last))),
                None => (usize::from(ipv6) * 2 + 1, None, protocol),
            };
            if let Some(set) = boxes.get_mut(index) {
                set.entry(key).or_default().push((source, span));
            }
        }
    }
    boxes.into_iter().map(|set| set.into_iter().flat_map(|(key, elements)| class_elements(key, elements)).collect()).collect()
}

/// Renders disjoint elements: `SOURCE . PROTOCOL . PORTS` when `protocol` is given
/// (the span is then ports), `SOURCE . PROTOCOL` otherwise.
fn class_elements(protocol: Option<Span>, elements: Vec<(IpNet, Span)>) -> Vec<String> {
    disjoint(elements)
        .into_iter()
        .map(|(source, span)| match protocol {
            Some(protocol) => format!("{source} . {} . {}", protocol_text(protocol), span_text(span)),
            None => format!("{source} . {}", protocol_text(span)),
        })
        .collect()
}

/// Builds the chain of a class: one lookup per address family and port kind. A flow
/// that no set allows returns to the forward chain, which drops it.
fn class_chain(name: &str) -> Chain {
    let rules = [
        format!("ip saddr . meta l4proto . th dport @{name}_4p accept"),
        format!("ip saddr . meta l4proto @{name}_4 accept"),
        format!("ip6 saddr . meta l4proto . th dport @{name}_6p accept"),
        format!("ip6 saddr . meta l4proto @{name}_6 accept"),
    ];
    Chain { name: name.to_string(), hook: None, rules: rules.to_vec() }
}

/// The prefixes of each peer a generation resolved, so a group or network named by
/// many rules is looked up once.
#[derive(Default)]
struct PeerCache<'p> {
    resolved: BTreeMap<(String, &'p Peer), Vec<IpNet>>,
}

impl<'p> PeerCache<'p> {
    fn prefixes(&mut self, input: &PolicyInput<'_>, tenant: &str, peer: &'p Peer) -> Vec<IpNet> {
        if let Peer::Cidr(net) = peer {
            return vec![*net];
        }
        self.resolved
            .entry((tenant.to_string(), peer))
            .or_insert_with(|| peer_prefixes(input, tenant, peer))
            .clone()
    }
}
