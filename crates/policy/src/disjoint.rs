//! Elements of interval sets that never overlap.
//!
//! The kernel rejects an element of an interval set that overlaps another one
//! (`EEXIST`), and the rejection fails the whole transaction. Rules overlap easily:
//! `--from 10.0.0.0/8` and `--from 10.12.0.2/32`, a network and a CIDR inside it, or
//! ports 80-90 and 85-100. Each element here is a prefix and a range of one other
//! field (protocol or port). Two prefixes either nest or are disjoint, so an element
//! keeps only the part of its range that no element of an enclosing prefix covers.

use std::collections::{BTreeMap, BTreeSet};

use cloison_model::Protocol;
use ipnet::IpNet;

/// An inclusive range of protocol numbers or ports.
pub(crate) type Span = (u32, u32);

/// Every protocol number, the range of a rule without a protocol.
pub(crate) const ALL_PROTOCOLS: Span = (0, 255);

/// Returns elements covering the same (prefix, value) pairs as `elements`, no two of
/// which overlap, sorted by prefix.
pub(crate) fn disjoint(elements: impl IntoIterator<Item = (IpNet, Span)>) -> Vec<(IpNet, Span)> {
    let mut by_prefix: BTreeMap<IpNet, Vec<Span>> = BTreeMap::new();
    for (prefix, span) in elements {
        by_prefix.entry(prefix.trunc()).or_default().push(span);
    }
    for spans in by_prefix.values_mut() {
        *spans = merged(std::mem::take(spans));
    }
    // Only lengths some prefix has can enclose another, usually one or two.
    let lengths: BTreeSet<(bool, u8)> = by_prefix.keys().map(|p| (p.addr().is_ipv6(), p.prefix_len())).collect();
    let mut result = Vec::new();
    for (prefix, spans) in &by_prefix {
        let covered: Vec<Span> = enclosing(prefix, &lengths).filter_map(|outer| by_prefix.get(&outer)).flatten().copied().collect();
        let covered = merged(covered);
        result.extend(subtract(spans, &covered).into_iter().map(|span| (*prefix, span)));
    }
    result
}

/// Returns the prefixes of the given lengths that strictly contain `prefix`.
fn enclosing<'a>(prefix: &'a IpNet, lengths: &'a BTreeSet<(bool, u8)>) -> impl Iterator<Item = IpNet> + 'a {
    let family = prefix.addr().is_ipv6();
    lengths
        .range((family, 0)..(family, prefix.prefix_len()))
        .filter_map(move |&(_, len)| IpNet::new(prefix.addr(), len).ok().map(|net| net.trunc()))
}

/// Sorts spans and joins those that overlap or touch.
fn merged(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_unstable();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for (first, last) in spans {
        match out.last_mut() {
            Some(previous) if first <= previous.1.saturating_add(1) => previous.1 = previous.1.max(last),
            _ => out.push((first, last)),
        }
    }
    out
}

/// Returns the parts of the sorted, disjoint `spans` outside the sorted, disjoint
/// `covered`.
fn subtract(spans: &[Span], covered: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    for &(first, last) in spans {
        let mut start = first;
        for &(cover_first, cover_last) in covered.iter().filter(|c| c.1 >= first && c.0 <= last) {
            if cover_first > start {
                out.push((start, cover_first - 1));
            }
            start = start.max(cover_last.saturating_add(1));
        }
        if start <= last && start >= first {
            out.push((start, last));
        }
    }
    out
}

/// Returns the protocol numbers a rule's protocol matches.
pub(crate) fn protocol_span(protocol: Protocol, ipv6: bool) -> Span {
    match (protocol, ipv6) {
        (Protocol::Tcp, _) => (6, 6),
        (Protocol::Udp, _) => (17, 17),
        (Protocol::Icmp, false) => (1, 1),
        (Protocol::Icmp, true) => (58, 58),
        (Protocol::Any, _) => ALL_PROTOCOLS,
    }
}

/// Renders a protocol span in nft syntax: its name when it is one known protocol.
pub(crate) fn protocol_text(span: Span) -> String {
    match span {
        (1, 1) => "icmp".to_string(),
        (6, 6) => "tcp".to_string(),
        (17, 17) => "udp".to_string(),
        (58, 58) => "ipv6-icmp".to_string(),
        _ => span_text(span),
    }
}

/// Renders a span as one value or as `FIRST-LAST`.
pub(crate) fn span_text((first, last): Span) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        text.parse().expect("valid prefix")
    }

    #[test]
    fn nested_prefix_keeps_uncovered_ports() {
        let out = disjoint([(net("10.0.0.0/8"), (80, 90)), (net("10.12.0.2/32"), (85, 100))]);
        assert_eq!(out, vec![(net("10.0.0.0/8"), (80, 90)), (net("10.12.0.2/32"), (91, 100))]);
    }

    #[test]
    fn covered_element_disappears() {
        let out = disjoint([(net("10.12.0.2/32"), (6, 6)), (net("10.0.0.0/8"), ALL_PROTOCOLS)]);
        assert_eq!(out, vec![(net("10.0.0.0/8"), ALL_PROTOCOLS)]);
    }

    #[test]
    fn same_prefix_ranges_merge() {
        let out = disjoint([(net("10.1.0.0/16"), (80, 90)), (net("10.1.0.0/16"), (85, 100)), (net("10.1.0.0/16"), (200, 200))]);
        assert_eq!(out, vec![(net("10.1.0.0/16"), (80, 100)), (net("10.1.0.0/16"), (200, 200))]);
    }

    #[test]
    fn narrow_any_splits_around_protocol() {
        let out = disjoint([(net("10.0.0.0/8"), (6, 6)), (net("10.1.0.0/16"), ALL_PROTOCOLS)]);
        assert_eq!(out, vec![(net("10.0.0.0/8"), (6, 6)), (net("10.1.0.0/16"), (0, 5)), (net("10.1.0.0/16"), (7, 255))]);
    }

    #[test]
    fn disjoint_prefixes_untouched() {
        let input = vec![(net("10.1.0.0/16"), (80, 80)), (net("10.2.0.0/16"), (80, 80)), (net("fd00::/64"), (80, 80))];
        assert_eq!(disjoint(input.clone()), input);
    }

    #[test]
    fn host_bits_are_cleared() {
        let out = disjoint([(net("10.1.2.3/16"), (1, 1))]);
        assert_eq!(out, vec![(net("10.1.0.0/16"), (1, 1))]);
    }
}
