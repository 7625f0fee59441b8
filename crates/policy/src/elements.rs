//! Set elements in the kernel's encoding, so an element-only change is sent over
//! nftables netlink instead of through an `nft` process.
//!
//! The encoding is the one `nft` 1.0.6 stores, which `tests/kernel_elements.rs`
//! checks by listing both. A key of one field is that field's bytes. A
//! concatenation pads each field to 4 bytes with zeros after the value. Interface
//! names are 16 bytes (IFNAMSIZ), zero padded. IPv4 addresses are 4 bytes, IPv6 16,
//! MACs 6, protocols 1 and ports 2, all in network byte order. A raw payload field
//! (`@th,OFFSET,LENGTH`) is LENGTH/8 bytes in network byte order. A conntrack zone
//! is 2 bytes in host byte order. In a set
//! with `flags interval` every element carries its last key too, equal to its
//! first key unless a field is a prefix or a range.

use std::net::{Ipv4Addr, Ipv6Addr};

use cloison_dataplane::{NftData, NftElement, NftFamily, NftSetChange};
use ipnet::{Ipv4Net, Ipv6Net};

use crate::nft::costly_deletions;
use crate::{Set, Table};

/// Returns the element changes that turn `previous` into `wanted`, or `None` when
/// more than elements changed or some element has no netlink encoding here, so
/// the caller applies an `nft` script instead.
pub fn element_changes(wanted: &[Table], previous: &[Table]) -> Option<Vec<NftSetChange>> {
    if wanted.len() != previous.len() {
        return None;
    }
    let mut changes = Vec::new();
    for (new, old) in wanted.iter().zip(previous) {
        if !new.same_skeleton(old) {
            return None;
        }
        let family = NftFamily::from_name(new.family)?;
        for (set, old_set) in new.sets.iter().zip(&old.sets) {
            if std::sync::Arc::ptr_eq(&set.elements, &old_set.elements) {
                continue;
            }
            if costly_deletions(old_set, set) {
                return None;
            }
            let gone: Vec<&String> = old_set.elements.difference(&set.elements).collect();
            let added: Vec<&String> = set.elements.difference(&old_set.elements).collect();
            for (delete, elements) in [(true, gone), (false, added)] {
                if elements.is_empty() {
                    continue;
                }
                let elements = elements.iter().map(|e| encode_element(set, e)).collect::<Option<Vec<_>>>()?;
                changes.push(NftSetChange { family, table: new.name.into(), set: set.name.clone(), delete, elements });
            }
        }
    }
    Some(changes)
}

/// A field type of a set declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Ifname,
    Ipv4,
    Ipv6,
    Ether,
    Proto,
    Service,
    /// A raw payload match of this many bytes.
    Raw(usize),
    CtZone,
    /// The verdict of a verdict map; only `jump CHAIN` is encoded.
    Verdict,
}

/// The parts of a set declaration that decide the encoding.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    key: Vec<Field>,
    data: Option<Field>,
    interval: bool,
}

/// Encodes one element in nft syntax, such as `"clb0000000064" . 10.0.0.0/16`.
fn encode_element(set: &Set, element: &str) -> Option<NftElement> {
    let layout = parse_declaration(set.declaration)?;
    // A single-field interval set needs interval-end elements, which this
    // encoder does not build; such a change goes through `nft`.
    if layout.interval && layout.key.len() < 2 {
        return None;
    }
    let (key_text, data_text) = match element.split_once(" : ") {
        Some((key, data)) => (key, Some(data)),
        None => (element, None),
    };
    let values: Vec<&str> = key_text.split(" . ").map(str::trim).collect();
    if values.len() != layout.key.len() {
        return None;
    }

    let pad = layout.key.len() > 1;
    let mut key = Vec::new();
    let mut key_end = Vec::new();
    for (field, text) in layout.key.iter().zip(values) {
        let (first, last) = encode_value(*field, text)?;
        if !layout.interval && first != last {
            return None;
        }
        append(&mut key, &first, pad);
        append(&mut key_end, &last, pad);
    }

    let data = match (layout.data, data_text) {
        (Some(Field::Verdict), Some(text)) => Some(NftData::Jump(jump_target(text.trim())?)),
        (Some(field), Some(text)) => Some(NftData::Value(encode_value(field, text.trim())?.0)),
        (None, None) => None,
        _ => return None,
    };
    let key_end = layout.interval.then_some(key_end);
    Some(NftElement { key, key_end, data })
}

/// Returns the chain of a `jump CHAIN` verdict.
fn jump_target(text: &str) -> Option<String> {
    let chain = text.strip_prefix("jump ")?.trim();
    let valid = !chain.is_empty() && chain.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then(|| chain.to_string())
}

fn append(key: &mut Vec<u8>, value: &[u8], pad: bool) {
    key.extend_from_slice(value);
    if pad {
        key.resize(key.len().next_multiple_of(4), 0);
    }
}

/// Parses declarations such as `type ifname . ipv4_addr; flags interval;` and
/// `typeof iifname : ct zone;`.
fn parse_declaration(declaration: &str) -> Option<Layout> {
    let mut key = None;
    let mut data = None;
    let mut interval = false;
    for statement in declaration.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(flags) = statement.strip_prefix("flags ") {
            interval = flags.split(',').any(|f| f.trim() == "interval");
            continue;
        }
        let types = statement.strip_prefix("typeof ").or_else(|| statement.strip_prefix("type "))?;
        let (key_types, data_type) = match types.split_once(" : ") {
            Some((k, d)) => (k, Some(d)),
            None => (types, None),
        };
        key = Some(key_types.split(" . ").map(|t| parse_field(t.trim())).collect::<Option<Vec<_>>>()?);
        data = match data_type {
            Some(d) => Some(parse_field(d.trim())?),
            None => None,
        };
    }
    Some(Layout { key: key?, data, interval })
}

fn parse_field(name: &str) -> Option<Field> {
    let field = match name {
        "ifname" | "iifname" | "oifname" => Field::Ifname,
        "ipv4_addr" | "ip saddr" | "ip daddr" => Field::Ipv4,
        "ipv6_addr" | "ip6 saddr" | "ip6 daddr" => Field::Ipv6,
        "ether_addr" => Field::Ether,
        "inet_proto" | "meta l4proto" => Field::Proto,
        "inet_service" | "th dport" => Field::Service,
        "ct zone" => Field::CtZone,
        "verdict" => Field::Verdict,
        _ => {
            let bits: usize = name.strip_prefix("@th,")?.split_once(',')?.1.parse().ok()?;
            return (bits % 8 == 0 && bits > 0).then_some(Field::Raw(bits / 8));
        }
    };
    Some(field)
}

/// Encodes one field value as its first and last bytes; they differ only for a
/// prefix or a range.
fn encode_value(field: Field, text: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    match field {
        Field::Ifname => {
            let name = text.strip_prefix('"')?.strip_suffix('"')?;
            if name.is_empty() || name.len() > 15 || name.contains(['"', '*', '\\']) {
                return None;
            }
            let mut bytes = name.as_bytes().to_vec();
            bytes.resize(16, 0);
            Some((bytes.clone(), bytes))
        }
        Field::Ipv4 => {
            let net: Ipv4Net = text.parse().ok().or_else(|| text.parse::<Ipv4Addr>().ok().map(Ipv4Net::from))?;
            Some((net.network().octets().to_vec(), net.broadcast().octets().to_vec()))
        }
        Field::Ipv6 => {
            let net: Ipv6Net = text.parse().ok().or_else(|| text.parse::<Ipv6Addr>().ok().map(Ipv6Net::from))?;
            Some((net.network().octets().to_vec(), net.broadcast().octets().to_vec()))
        }
        Field::Ether => {
            let bytes = text.split(':').map(|b| u8::from_str_radix(b, 16).ok()).collect::<Option<Vec<u8>>>()?;
            (bytes.len() == 6).then(|| (bytes.clone(), bytes))
        }
        Field::Proto => {
            let (first, last) = range(text, protocol_number)?;
            Some((vec![first], vec![last]))
        }
        Field::Service => {
            let (first, last) = range(text, |t| t.parse::<u16>().ok())?;
            Some((first.to_be_bytes().to_vec(), last.to_be_bytes().to_vec()))
        }
        Field::Raw(length) => {
            let digits = text.strip_prefix("0x")?;
            if digits.len() != length * 2 {
                return None;
            }
            let bytes = (0..length)
                .map(|i| u8::from_str_radix(digits.get(2 * i..2 * i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            Some((bytes.clone(), bytes))
        }
        Field::Verdict => None,
        Field::CtZone => {
            let zone = text.parse::<u16>().ok()?.to_ne_bytes().to_vec();
            Some((zone.clone(), zone))
        }
    }
}

/// Parses `VALUE` or `FIRST-LAST`. A value is tried whole first, because a name
/// such as `ipv6-icmp` contains a dash.
fn range<T: PartialOrd + Copy>(text: &str, parse: impl Fn(&str) -> Option<T>) -> Option<(T, T)> {
    if let Some(value) = parse(text) {
        return Some((value, value));
    }
    let (first, last) = match text.split_once('-') {
        Some((first, last)) if !first.is_empty() => (parse(first)?, parse(last)?),
        _ => {
            let value = parse(text)?;
            (value, value)
        }
    };
    (first <= last).then_some((first, last))
}

/// Returns the number of a protocol name `nft` accepts for `inet_proto`.
fn protocol_number(text: &str) -> Option<u8> {
    match text {
        "icmp" => Some(1),
        "tcp" => Some(6),
        "udp" => Some(17),
        "ipv6-icmp" | "icmpv6" => Some(58),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(declaration: &'static str) -> Set {
        Set::new("set", "s", declaration)
    }

    fn name16(name: &str) -> Vec<u8> {
        let mut bytes = name.as_bytes().to_vec();
        bytes.resize(16, 0);
        bytes
    }

    #[test]
    fn single_field_is_unpadded() {
        let element = encode_element(&set("type inet_service;"), "4789").expect("encodes");

        assert_eq!(element.key, vec![0x12, 0xb5]);
        assert_eq!(element.key_end, None);
    }

    #[test]
    fn ifname_mac_pads_to_eight() {
        let element = encode_element(&set("type ifname . ether_addr;"), "\"cle1\" . 02:00:00:00:00:0a").expect("encodes");

        let expected = [name16("cle1"), vec![2, 0, 0, 0, 0, 0x0a, 0, 0]].concat();
        assert_eq!(element.key, expected);
    }

    #[test]
    fn interval_concatenation_has_key_end() {
        let declaration = "type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; flags interval;";
        let element = encode_element(&set(declaration), "\"clb1\" . 10.0.0.2 . 172.16.0.0/12 . tcp . 80-90").expect("encodes");

        let first = [name16("clb1"), vec![10, 0, 0, 2], vec![172, 16, 0, 0], vec![6, 0, 0, 0], vec![0, 80, 0, 0]].concat();
        let last = [name16("clb1"), vec![10, 0, 0, 2], vec![172, 31, 255, 255], vec![6, 0, 0, 0], vec![0, 90, 0, 0]].concat();
        assert_eq!(element.key, first);
        assert_eq!(element.key_end, Some(last));
    }

    #[test]
    fn protocol_range_any() {
        let declaration = "type ifname . ipv6_addr . ipv6_addr . inet_proto; flags interval;";
        let element = encode_element(&set(declaration), "\"clb1\" . fd00::2 . ::/0 . 0-255").expect("encodes");

        let key_end = element.key_end.expect("interval");
        assert_eq!(&element.key[48..], &[0, 0, 0, 0]);
        assert_eq!(&key_end[32..48], &[0xff; 16]);
        assert_eq!(&key_end[48..], &[255, 0, 0, 0]);
    }

    #[test]
    fn icmpv6_name_encodes() {
        let declaration = "type ipv6_addr . inet_proto; flags interval;";
        let element = encode_element(&set(declaration), "fd00::/64 . ipv6-icmp").expect("encodes");

        assert_eq!(&element.key[16..], &[58, 0, 0, 0]);
        assert_eq!(element.key_end.map(|end| end[16..].to_vec()), Some(vec![58, 0, 0, 0]));
    }

    #[test]
    fn map_to_ct_zone() {
        let element = encode_element(&Set::new("map", "m", "typeof iifname : ct zone;"), "\"clb1\" : 100").expect("encodes");

        assert_eq!(element.key, name16("clb1"));
        assert_eq!(element.data, Some(NftData::Value(100u16.to_ne_bytes().to_vec())));
    }

    #[test]
    fn verdict_map_to_jump() {
        let map = Set::new("map", "m", "type ifname . ipv4_addr : verdict;");
        let element = encode_element(&map, "\"clb1\" . 10.0.0.2 : jump in_0123abcd").expect("encodes");

        assert_eq!(element.data, Some(NftData::Jump("in_0123abcd".into())));
        assert_eq!(encode_element(&map, "\"clb1\" . 10.0.0.2 : accept"), None, "only jumps are encoded");
    }

    #[test]
    fn raw_payload_field() {
        let element = encode_element(&set("typeof iifname . @th,208,48;"), "\"cle1\" . 0x02000000000a").expect("encodes");

        assert_eq!(&element.key[16..], &[2, 0, 0, 0, 0, 0x0a, 0, 0]);
    }

    #[test]
    fn unsupported_elements_fall_back() {
        assert_eq!(encode_element(&set("type ipv4_addr; flags interval;"), "10.0.0.0/8"), None, "single-field interval");
        assert_eq!(encode_element(&set("type ipv4_addr;"), "10.0.0.0/8"), None, "prefix without interval");
        assert_eq!(encode_element(&set("type mark;"), "1"), None, "unknown type");
        assert_eq!(encode_element(&set("type ifname;"), "\"eth*\""), None, "wildcard name");
    }

    #[test]
    fn changes_delete_then_add() {
        let table = |elements: &[&str]| {
            let mut ports = set("type ifname;");
            ports.elements = std::sync::Arc::new(elements.iter().map(|e| e.to_string()).collect());
            Table { family: "bridge", name: "cloison", sets: vec![ports], counters: vec![], chains: vec![] }
        };
        let changes = element_changes(&[table(&["\"b\""])], &[table(&["\"a\""])]).expect("elements only");

        assert_eq!(changes.len(), 2);
        assert!(changes[0].delete);
        assert_eq!(changes[0].elements[0].key, name16("a"));
        assert!(!changes[1].delete);
        assert_eq!(changes[1].family, NftFamily::Bridge);
    }
}
