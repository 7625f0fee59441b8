//! The object counts the kernel reports for loaded tables, derived from the tables
//! themselves, so the agent checks for drift without listing the ruleset first.

use std::collections::BTreeSet;

use cloison_dataplane::NftCounts;

use crate::nft::Table;

/// Object counts keyed like the dataplane's `nftables_counts`: `FAMILY TABLE` for
/// a table, `FAMILY TABLE chain NAME` for the rules of a chain, and `FAMILY TABLE
/// set NAME` for the elements of a set or map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedCounts {
    pub counts: NftCounts,
    /// Keys of interval sets. The kernel stores an interval as one or two elements
    /// depending on its bounds, so their counts come only from reading the kernel.
    pub interval_sets: BTreeSet<String>,
}

/// Returns the counts the kernel reports right after `tables` are loaded.
pub fn expected_counts(tables: &[Table]) -> ExpectedCounts {
    let mut expected = ExpectedCounts::default();
    for table in tables {
        let prefix = format!("{} {}", table.family, table.name);
        expected.counts.insert(prefix.clone(), 1);
        for chain in &table.chains {
            expected.counts.insert(format!("{prefix} chain {}", chain.name), chain.rules.len());
        }
        for set in &table.sets {
            let key = format!("{prefix} set {}", set.name);
            if set.declaration.contains("interval") {
                expected.interval_sets.insert(key);
            } else {
                expected.counts.insert(key, set.elements.len());
            }
        }
    }
    expected
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::{chain, Set};

    #[test]
    fn counts_follow_tables() {
        let mut table = Table { family: "inet", name: "cloison", sets: Vec::new(), counters: vec!["dropped"], chains: Vec::new() };
        table.sets.push(Set::new("set", "plain", "type ipv4_addr;"));
        table.sets.push(Set::new("set", "ranges", "type ipv4_addr; flags interval;"));
        table.add("plain", "10.0.0.1".into());
        table.add("plain", "10.0.0.2".into());
        table.add("ranges", "10.0.0.0/24".into());
        table.chains.push(chain("forward", None, &["accept", "drop"]));

        let expected = expected_counts(&[table]);

        assert_eq!(expected.counts.get("inet cloison"), Some(&1));
        assert_eq!(expected.counts.get("inet cloison chain forward"), Some(&2));
        assert_eq!(expected.counts.get("inet cloison set plain"), Some(&2));
        assert_eq!(expected.counts.get("inet cloison set ranges"), None);
        assert!(expected.interval_sets.contains("inet cloison set ranges"));
    }
}
