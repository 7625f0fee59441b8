//! The object counts that an nftables script leaves behind, for the fake
//! dataplane. Covers the statements cloison's generator writes: whole tables,
//! and `add`, `delete` and `flush` of sets, chains, rules and elements.

use crate::NftCounts;

/// The object of a table block that the current line belongs to.
enum Block {
    Table(String),
    Set(String, String),
    Chain(String, String),
}

/// Updates `objects` (keyed like [`NftCounts`], without the table keys) for the
/// statements of `script`.
pub(crate) fn apply(objects: &mut NftCounts, script: &str) {
    let mut block: Option<Block> = None;
    for line in script.lines() {
        block = match block.take() {
            None => statement(objects, line),
            Some(Block::Table(table)) => table_line(objects, table, line),
            Some(Block::Set(table, key)) => set_line(objects, table, key, line),
            Some(Block::Chain(table, key)) => chain_line(objects, table, key, line),
        };
    }
}

/// Handles a statement outside any block; returns the block it opens.
fn statement(objects: &mut NftCounts, line: &str) -> Option<Block> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let key = |kind: &str| words.get(2..5).map(|w| format!("{} {} {kind} {}", w[0], w[1], w[2]));
    match words.as_slice() {
        ["table", family, name, "{"] => return Some(Block::Table(format!("{family} {name}"))),
        ["delete", "table", family, name] => {
            let prefix = format!("{family} {name} ");
            objects.retain(|k, _| !k.starts_with(&prefix));
        }
        ["add", "set" | "map", ..] | ["add", "chain", ..] | ["flush", "chain", ..] => {
            let kind = if words[1] == "chain" { "chain" } else { "set" };
            objects.extend(key(kind).map(|k| (k, 0)));
        }
        ["delete", "set" | "map" | "chain", ..] => {
            let kind = if words[1] == "chain" { "chain" } else { "set" };
            if let Some(k) = key(kind) {
                objects.remove(&k);
            }
        }
        ["add", "rule", ..] => *objects.entry(key("chain").unwrap_or_default()).or_default() += 1,
        ["add" | "delete", "element", ..] => {
            let count = line.split_once('{').map_or(0, |(_, list)| list.split(", ").count());
            let entry = objects.entry(key("set").unwrap_or_default()).or_default();
            *entry = if words[0] == "add" { *entry + count } else { entry.saturating_sub(count) };
        }
        _ => {}
    }
    None
}

fn table_line(objects: &mut NftCounts, table: String, line: &str) -> Option<Block> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["}"] => None,
        ["set" | "map", name, "{"] => {
            let key = format!("{table} set {name}");
            objects.insert(key.clone(), 0);
            Some(Block::Set(table, key))
        }
        ["chain", name, "{"] => {
            let key = format!("{table} chain {name}");
            objects.insert(key.clone(), 0);
            Some(Block::Chain(table, key))
        }
        _ => Some(Block::Table(table)),
    }
}

/// Counts one element per line of the `elements = { … }` list, as the generator
/// writes one element per line.
fn set_line(objects: &mut NftCounts, table: String, key: String, line: &str) -> Option<Block> {
    let trimmed = line.trim();
    if trimmed == "}" {
        return Some(Block::Table(table));
    }
    let in_list = trimmed.starts_with("elements = {") || objects.get(&key).is_some_and(|n| *n > 0);
    if in_list && !trimmed.starts_with("type ") && !trimmed.starts_with("typeof ") {
        *objects.entry(key.clone()).or_default() += 1;
    }
    Some(Block::Set(table, key))
}

fn chain_line(objects: &mut NftCounts, table: String, key: String, line: &str) -> Option<Block> {
    let trimmed = line.trim();
    if trimmed == "}" {
        return Some(Block::Table(table));
    }
    if !trimmed.starts_with("type ") {
        *objects.entry(key.clone()).or_default() += 1;
    }
    Some(Block::Chain(table, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "table inet t\ndelete table inet t\ntable inet t {\n\tset s {\n\t\ttype ipv4_addr;\n\t\telements = { 10.0.0.1,\n\t\t\t10.0.0.2 }\n\t}\n\tset e {\n\t\ttype ipv4_addr;\n\t}\n\tcounter c { }\n\tchain f {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tip saddr @s accept\n\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n\t}\n}\n";

    #[test]
    fn whole_table_counted() {
        let mut objects = NftCounts::new();
        apply(&mut objects, TABLE);
        assert_eq!(objects.get("inet t set s"), Some(&2));
        assert_eq!(objects.get("inet t set e"), Some(&0));
        assert_eq!(objects.get("inet t chain f"), Some(&2));
        assert_eq!(objects.len(), 3);
    }

    #[test]
    fn patch_statements_counted() {
        let mut objects = NftCounts::new();
        apply(&mut objects, TABLE);
        let patch = "delete element inet t s { 10.0.0.1 }\nadd set inet t n { type ipv4_addr; }\nadd chain inet t c\nadd rule inet t c ip saddr @n drop\nadd element inet t n { 10.0.0.3, 10.0.0.4 }\nflush chain inet t f\ndelete set inet t e\n";
        apply(&mut objects, patch);
        assert_eq!(objects.get("inet t set s"), Some(&1));
        assert_eq!(objects.get("inet t set n"), Some(&2));
        assert_eq!(objects.get("inet t chain c"), Some(&1));
        assert_eq!(objects.get("inet t chain f"), Some(&0));
        assert_eq!(objects.get("inet t set e"), None);
    }

    #[test]
    fn replacement_forgets_old_objects() {
        let mut objects = NftCounts::new();
        apply(&mut objects, "add chain inet t old\n");
        apply(&mut objects, TABLE);
        assert_eq!(objects.get("inet t chain old"), None);
    }
}
