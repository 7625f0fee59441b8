//! nftables rulesets as data: tables of sets, maps and chains, rendered to the
//! `nft -f` script syntax. A whole ruleset is one script, so `nft` applies it in one
//! transaction. A change that only adds or deletes set elements renders as element
//! commands, so an attach does not reload every chain.

use std::collections::BTreeSet;
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

    /// Renders the element commands that turn `previous` into `self`, or `None` when
    /// more than set elements changed.
    pub fn update_script(&self, previous: &Table) -> Option<String> {
        if !self.same_skeleton(previous) {
            return None;
        }
        let mut out = String::new();
        for (new, old) in self.sets.iter().zip(&previous.sets) {
            if Arc::ptr_eq(&new.elements, &old.elements) {
                continue;
            }
            let gone: Vec<&String> = old.elements.difference(&new.elements).collect();
            let added: Vec<&String> = new.elements.difference(&old.elements).collect();
            self.element_command(&mut out, "delete", &new.name, &gone);
            self.element_command(&mut out, "add", &new.name, &added);
        }
        Some(out)
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

/// Quotes an interface name for nft.
pub(crate) fn ifname(name: &str) -> String {
    format!("\"{name}\"")
}

/// Builds a chain from rule lines.
pub(crate) fn chain(name: &str, hook: Option<&'static str>, rules: &[&str]) -> Chain {
    Chain { name: name.to_string(), hook, rules: rules.iter().map(|r| r.to_string()).collect() }
}
