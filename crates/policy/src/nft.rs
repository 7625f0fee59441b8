//! nftables rulesets as data: tables of sets, maps and chains, rendered to the
//! `nft -f` script syntax. A whole ruleset is one script, so `nft` applies it in one
//! transaction. A change that only adds or deletes set elements renders as element
//! commands, so an attach does not reload every chain.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::sync::Arc;

/// One table cloison owns, such as `bridge cloison` or `inet cloison`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Address family: `bridge`, `inet`, `ip` or `ip6`.
    pub family: &'static str,
    pub name: &'static str,
    pub sets: Vec<Set>,
    /// Named counters, such as the underlay guard's drop counter.
    pub counters: Vec<&'static str>,
    pub chains: Vec<Chain>,
}

/// A named set or map; `declaration` is its type and flags, and each element is
/// already in nft syntax, such as `"cle0a1b2c3d4e5f" . 10.0.0.2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// `set` or `map`.
    pub kind: &'static str,
    pub name: String,
    pub declaration: &'static str,
    /// Shared, so a set the generator reuses from its last run is neither copied
    /// nor compared element by element.
    pub elements: Arc<BTreeSet<String>>,
}

/// A chain; base chains carry their hook line, such as
/// `type filter hook forward priority filter; policy accept;`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub hook: Option<&'static str>,
    pub rules: Vec<String>,
}

impl Set {
    pub(crate) fn new(kind: &'static str, name: impl Into<String>, declaration: &'static str) -> Self {
        Set { kind, name: name.into(), declaration, elements: Arc::default() }
    }
}

impl Table {
    /// Returns the set or map called `name`.
    pub fn set(&self, name: &str) -> Option<&Set> {
        self.sets.iter().find(|s| s.name == name)
    }

    /// Adds an element to the set `name`. Generators only name sets they declared;
    /// a snapshot test shows a misspelt name as a missing element.
    pub(crate) fn add(&mut self, name: &str, element: String) {
        if let Some(set) = self.sets.iter_mut().find(|s| s.name == name) {
            Arc::make_mut(&mut set.elements).insert(element);
        }
    }

    /// Returns true when two tables differ at most in set elements.
    pub fn same_skeleton(&self, other: &Table) -> bool {
        let same_sets = self.sets.len() == other.sets.len()
            && self
                .sets
                .iter()
                .zip(&other.sets)
                .all(|(a, b)| (a.kind, &a.name, a.declaration) == (b.kind, &b.name, b.declaration));
        same_sets
            && (self.family, self.name) == (other.family, other.name)
            && self.counters == other.counters
            && self.chains == other.chains
    }

    /// Renders the commands that replace the table: create it if absent so the delete
    /// cannot fail, delete it, then declare it with its whole content. `nft -f` applies
    /// the script as one transaction, which makes the replacement atomic.
    pub fn replace_script(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "table {} {}", self.family, self.name);
        let _ = writeln!(out, "delete table {} {}", self.family, self.name);
        out.push_str(&self.render());
        out
    }

    /// Renders the commands that turn `previous` into `self` without replacing the
    /// table: element changes, and sets and regular chains that appeared or went (an
    /// ingress class). An interval set that loses many elements is recreated with
    /// the chains that use it flushed and refilled (see [`MAX_INTERVAL_DELETES`]).
    /// Returns `None` when a base chain, a counter or the declaration of a kept set
    /// changed, or a base chain uses a set to recreate, so the caller replaces the table.
    pub fn update_script(&self, previous: &Table) -> Option<String> {
        if !self.patchable_from(previous) {
            return None;
        }
        let old_sets: BTreeMap<&str, &Set> = previous.sets.iter().map(|s| (s.name.as_str(), s)).collect();
        let new_sets: BTreeMap<&str, &Set> = self.sets.iter().map(|s| (s.name.as_str(), s)).collect();
        let rebuilt: BTreeSet<&str> =
            old_sets.iter().filter(|(name, old)| new_sets.get(*name).is_some_and(|new| costly_deletions(old, new))).map(|(name, _)| *name).collect();
        let refilled: Vec<&Chain> = self.chains.iter().filter(|c| rebuilt.iter().any(|set| uses_set(c, set))).collect();
        if refilled.iter().any(|c| c.hook.is_some()) {
            return None;
        }
        let old_kept: BTreeMap<&str, &Set> = old_sets.iter().filter(|(name, _)| !rebuilt.contains(*name)).map(|(n, s)| (*n, *s)).collect();
        let new_kept: BTreeMap<&str, &Set> = new_sets.iter().filter(|(name, _)| !rebuilt.contains(*name)).map(|(n, s)| (*n, *s)).collect();

        let mut out = String::new();
        self.element_changes(&mut out, &old_sets, &new_kept, "delete");
        for chain in &refilled {
            let _ = writeln!(out, "flush chain {} {} {}", self.family, self.name, chain.name);
        }
        for chain in previous.chains.iter().filter(|c| !self.chains.iter().any(|n| n.name == c.name)) {
            let _ = writeln!(out, "flush chain {} {} {}", self.family, self.name, chain.name);
            let _ = writeln!(out, "delete chain {} {} {}", self.family, self.name, chain.name);
        }
        for set in previous.sets.iter().filter(|s| !new_kept.contains_key(s.name.as_str())) {
            let _ = writeln!(out, "delete {} {} {} {}", set.kind, self.family, self.name, set.name);
        }
        for set in self.sets.iter().filter(|s| !old_kept.contains_key(s.name.as_str())) {
            let _ = writeln!(out, "add {} {} {} {} {{ {} }}", set.kind, self.family, self.name, set.name, set.declaration);
        }
        for chain in self.chains.iter().filter(|c| !previous.chains.iter().any(|o| o.name == c.name)) {
            self.add_chain(&mut out, chain);
        }
        for chain in &refilled {
            self.add_rules(&mut out, chain);
        }
        self.element_changes(&mut out, &old_kept, &new_sets, "add");
        Some(out)
    }

    /// Returns true when `previous` becomes this table by element changes and by
    /// adding or deleting regular chains and sets.
    fn patchable_from(&self, previous: &Table) -> bool {
        let kept_sets_same = self.sets.iter().all(|new| {
            previous.set(&new.name).is_none_or(|old| (old.kind, old.declaration) == (new.kind, new.declaration))
        });
        let kept_chains_same = self.chains.iter().chain(&previous.chains).all(|chain| {
            let old = previous.chains.iter().find(|c| c.name == chain.name);
            let new = self.chains.iter().find(|c| c.name == chain.name);
            match (old, new) {
                (Some(old), Some(new)) => old == new,
                (Some(only), None) | (None, Some(only)) => only.hook.is_none(),
                (None, None) => true,
            }
        });
        (self.family, self.name) == (previous.family, previous.name) && self.counters == previous.counters && kept_sets_same && kept_chains_same
    }

    /// Renders the `delete` or `add` element commands of every set of this table
    /// in `new_sets`, in the table's order: for a set absent from `old_sets`, all its
    /// elements. Sets only `previous` has are deleted whole, not emptied.
    fn element_changes(&self, out: &mut String, old_sets: &BTreeMap<&str, &Set>, new_sets: &BTreeMap<&str, &Set>, verb: &str) {
        let empty = BTreeSet::new();
        for set in self.sets.iter().filter(|s| new_sets.contains_key(s.name.as_str())) {
            let old = old_sets.get(set.name.as_str()).map_or(&empty, |s| &*s.elements);
            let new = &*set.elements;
            if std::ptr::eq(old, new) {
                continue;
            }
            let changed: Vec<&String> = if verb == "delete" { old.difference(new).collect() } else { new.difference(old).collect() };
            self.element_command(out, verb, &set.name, &changed);
        }
    }

    fn add_chain(&self, out: &mut String, chain: &Chain) {
        match chain.hook {
            Some(hook) => writeln!(out, "add chain {} {} {} {{ {hook} }}", self.family, self.name, chain.name),
            None => writeln!(out, "add chain {} {} {}", self.family, self.name, chain.name),
        }
        .ok();
        self.add_rules(out, chain);
    }

    fn add_rules(&self, out: &mut String, chain: &Chain) {
        for rule in &chain.rules {
            let _ = writeln!(out, "add rule {} {} {} {rule}", self.family, self.name, chain.name);
        }
    }

    fn element_command(&self, out: &mut String, verb: &str, set: &str, elements: &[&String]) {
        if elements.is_empty() {
            return;
        }
        let list: Vec<&str> = elements.iter().map(|e| e.as_str()).collect();
        let _ = writeln!(out, "{verb} element {} {} {set} {{ {} }}", self.family, self.name, list.join(", "));
    }

    /// Renders the table declaration with every set, counter and chain.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "table {} {} {{", self.family, self.name);
        for set in &self.sets {
            let _ = writeln!(out, "\t{} {} {{", set.kind, set.name);
            let _ = writeln!(out, "\t\t{}", set.declaration);
            if !set.elements.is_empty() {
                let list: Vec<&str> = set.elements.iter().map(String::as_str).collect();
                let _ = writeln!(out, "\t\telements = {{ {} }}", list.join(",\n\t\t\t"));
            }
            out.push_str("\t}\n");
        }
        for counter in &self.counters {
            let _ = writeln!(out, "\tcounter {counter} {{ }}");
        }
        for chain in &self.chains {
            let _ = writeln!(out, "\tchain {} {{", chain.name);
            if let Some(hook) = chain.hook {
                let _ = writeln!(out, "\t\t{hook}");
            }
            for rule in &chain.rules {
                let _ = writeln!(out, "\t\t{rule}");
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        out
    }
}

/// Number of elements deleted from one interval set in one change past which the
/// set is recreated instead. In the kernel's interval sets of concatenations
/// (`nft_set_pipapo`), each deletion costs in proportion to the set's size. Measured
/// on Linux 6.18 with a 100,000-element set: deleting 2,000 elements took 2.3 s of
/// system time, adding 2,000 took 30 ms, and deleting the whole set took 20 ms.
pub(crate) const MAX_INTERVAL_DELETES: usize = 256;

/// Returns true when turning `old` into `new` deletes more than
/// [`MAX_INTERVAL_DELETES`] elements of an interval set.
pub(crate) fn costly_deletions(old: &Set, new: &Set) -> bool {
    let interval = new.declaration.contains("flags interval");
    interval && !Arc::ptr_eq(&old.elements, &new.elements) && old.elements.difference(&new.elements).nth(MAX_INTERVAL_DELETES).is_some()
}

/// Returns true when a rule of `chain` looks `set` up.
fn uses_set(chain: &Chain, set: &str) -> bool {
    let reference = format!("@{set}");
    chain.rules.iter().any(|rule| rule.split_whitespace().any(|word| word == reference))
}

/// Quotes an interface name for nft.
pub(crate) fn ifname(name: &str) -> String {
    format!("\"{name}\"")
}

/// Builds a chain from rule lines.
pub(crate) fn chain(name: &str, hook: Option<&'static str>, rules: &[&str]) -> Chain {
    Chain { name: name.to_string(), hook, rules: rules.iter().map(|r| r.to_string()).collect() }
}
