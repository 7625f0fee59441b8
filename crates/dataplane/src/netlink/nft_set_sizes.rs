//! Element counts of nftables sets from a netlink dump, without starting `nft`.
//!
//! One `NFT_MSG_GETSETELEM` request with `NLM_F_DUMP` per set, on one
//! `NETLINK_NETFILTER` socket opened in the set's namespace. The replies carry the
//! elements as nested attributes. Only the attribute headers are read, so a set of
//! 100,000 elements costs a few megabytes of reads and no decoding.

use std::fmt;
use std::path::Path;

use netlink_sys::Socket;
use nix::errno::Errno;

use super::namespace;
use super::nft_elements::{align, attribute, io, message, nul_terminated, open_socket};
use crate::{DataplaneError, NftFamily};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
/// Set by the kernel on dump replies when the ruleset changed during the dump.
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_DUMP: u16 = 0x300;
/// Masks the nested and byte-order flags out of an attribute type.
const NLA_TYPE_MASK: u16 = 0x3fff;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;

/// The kernel fills dump datagrams of at most 32 KiB; a larger buffer never truncates them.
const RECEIVE_BUFFER: usize = 64 * 1024;
/// Dumps of a set that changed while it was read are repeated this many times.
const DUMP_ATTEMPTS: usize = 3;

/// One named set or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SetName {
    pub(super) family: NftFamily,
    pub(super) table: String,
    pub(super) set: String,
}

impl fmt::Display for SetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.family.name(), self.table, self.set)
    }
}

/// Counts the elements of each of `sets` in `namespace` (`None` for the process's
/// own), in order. A set that does not exist (`ENOENT`, deleted since it was listed)
/// counts `None`. Interval sets count the elements the kernel stores: a single-field
/// interval set stores a start and an end element per interval, `nft` shows one.
pub(super) async fn count(namespace: Option<&Path>, sets: Vec<SetName>) -> Result<Vec<Option<usize>>, DataplaneError> {
    if sets.is_empty() {
        return Ok(Vec::new());
    }
    let socket = match namespace {
        Some(path) => namespace::run_in(&namespace::open(path)?, open_socket).await??,
        None => open_socket()?,
    };
    // Closing the socket may wait for an RCU grace period, so it is dropped on
    // this blocking thread too.
    tokio::task::spawn_blocking(move || {
        let mut buffer = Vec::with_capacity(RECEIVE_BUFFER);
        sets.iter()
            .zip(1u32..)
            .map(|(set, sequence)| count_set(&socket, &mut buffer, sequence, set))
            .collect()
    })
    .await
    .map_err(|e| DataplaneError::Io { op: "count nftables set elements".into(), source: std::io::Error::other(e) })?
}

/// Counts one set's elements, dumping it again when the ruleset changed meanwhile.
fn count_set(socket: &Socket, buffer: &mut Vec<u8>, sequence: u32, set: &SetName) -> Result<Option<usize>, DataplaneError> {
    for _ in 0..DUMP_ATTEMPTS {
        let tally = dump(socket, buffer, sequence, set)?;
        match tally.end {
            Some(0) if tally.interrupted => continue,
            Some(0) => return Ok(Some(tally.elements)),
            Some(code) if code == -libc::ENOENT => return Ok(None),
            code => {
                let errno = code.map_or(Errno::EPROTO, |c| Errno::from_raw(c.saturating_neg()));
                return Err(DataplaneError::Sys { op: format!("dump elements of set {set}"), source: errno });
            }
        }
    }
    Err(DataplaneError::Sys {
        op: format!("dump elements of set {set} (the ruleset changed during each of {DUMP_ATTEMPTS} dumps)"),
        source: Errno::EINTR,
    })
}

/// Sends one dump request and reads its replies up to the end of the dump.
fn dump(socket: &Socket, buffer: &mut Vec<u8>, sequence: u32, set: &SetName) -> Result<Tally, DataplaneError> {
    socket.send(&encode_request(set, sequence), 0).map_err(io("send nftables set element dump request"))?;
    let mut tally = Tally::default();
    while tally.end.is_none() {
        buffer.clear();
        let length = socket.recv(buffer, libc::MSG_TRUNC).map_err(io("receive nftables set elements"))?;
        if length > buffer.len() {
            return Err(DataplaneError::Sys { op: format!("receive elements of set {set} ({length}-byte datagram, larger than the buffer)"), source: Errno::EMSGSIZE });
        }
        read_datagram(buffer, sequence, &mut tally);
    }
    Ok(tally)
}

/// Encodes `NFT_MSG_GETSETELEM` with `NLM_F_DUMP` for one set.
fn encode_request(set: &SetName, sequence: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM;
    message(&mut out, kind, NLM_F_REQUEST | NLM_F_DUMP, sequence, set.family as u8, 0, |out| {
        attribute(out, NFTA_SET_ELEM_LIST_TABLE, &nul_terminated(&set.table));
        attribute(out, NFTA_SET_ELEM_LIST_SET, &nul_terminated(&set.set));
    });
    out
}

/// Totals of the replies of one dump read so far.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    elements: usize,
    /// The kernel flagged a reply: the ruleset changed during the dump.
    interrupted: bool,
    /// `Some(0)` once the dump ended, `Some(-errno)` when the kernel refused it.
    end: Option<i32>,
}

/// Adds the replies to request `sequence` in one datagram to `tally`. Replies to
/// other requests are skipped, and a truncated message ends the walk.
fn read_datagram(datagram: &[u8], sequence: u32, tally: &mut Tally) {
    let mut rest = datagram;
    while let Some(length) = read_u32(rest, 0).map(|l| l as usize).filter(|l| *l >= 16 && *l <= rest.len()) {
        let (message, next) = rest.split_at(length);
        rest = next.get(align(length) - length..).unwrap_or_default();
        if read_u32(message, 8) != Some(sequence) {
            continue;
        }
        let kind = read_u16(message, 4).unwrap_or(0);
        let flags = read_u16(message, 6).unwrap_or(0);
        tally.interrupted |= flags & NLM_F_DUMP_INTR != 0;
        match kind {
            // Both carry an int after the header: 0 or -errno.
            NLMSG_DONE | NLMSG_ERROR => tally.end = Some(read_u32(message, 16).map_or(-libc::EPROTO, |c| c as i32)),
            _ if kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM => {
                // The nfgenmsg header (4 bytes) precedes the attributes.
                let attributes = message.get(20..).unwrap_or_default();
                tally.elements += attributes_of(attributes)
                    .filter(|(kind, _)| *kind == NFTA_SET_ELEM_LIST_ELEMENTS)
                    .map(|(_, payload)| attributes_of(payload).filter(|(kind, _)| *kind == NFTA_LIST_ELEM).count())
                    .sum::<usize>();
            }
            _ => {}
        }
    }
}

/// Iterates over the (type, payload) of the attributes in `bytes`, stopping at a
/// malformed one.
fn attributes_of(bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let length = usize::from(read_u16(rest, 0)?);
        let kind = read_u16(rest, 2)? & NLA_TYPE_MASK;
        let payload = rest.get(4..length)?;
        rest = rest.get(align(length)..).unwrap_or_default();
        Some((kind, payload))
    })
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a hex string into bytes.
    fn bytes(hex: &str) -> Vec<u8> {
        (0..hex.len()).step_by(2).filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
    }

    /// The two datagrams the kernel (Linux 6.18, little-endian) sent to `nft list set
    /// inet cloison allow`, sequence number 0, for `set allow { type ipv4_addr .
    /// inet_service; flags interval; elements = { 10.0.0.1 . 80, 10.0.1.0/24 .
    /// 1000-2000, 192.0.2.9 . 53 } }`: one message with three elements, then an
    /// empty element message and `NLMSG_DONE`. Recorded with `strace -e read=3`.
    const RECORDED: [&str; 2] = [
        "9c0000000c0a02000000000089330000010000020c000100636c6f69736f6e000a000200616c6c6f770000007000030024000100\
         100001000c0001000a0000010050000010000a000c0001000a0000010050000024000100100001000c0001000a00010003e80000\
         10000a000c0001000a0001ff07d0000024000100100001000c000100c00002090035000010000a000c000100c000020900350000",
        "300000000c0a02000000000089330000010000020c000100636c6f69736f6e000a000200616c6c6f7700000004000300\
         1400000003000200000000008933000000000000",
    ];

    #[test]
    fn recorded_dump_counts_three_elements() {
        let mut tally = Tally::default();
        read_datagram(&bytes(RECORDED[0]), 0, &mut tally);
        assert_eq!(tally, Tally { elements: 3, interrupted: false, end: None });

        read_datagram(&bytes(RECORDED[1]), 0, &mut tally);
        assert_eq!(tally, Tally { elements: 3, interrupted: false, end: Some(0) });
    }

    #[test]
    fn other_sequence_numbers_are_skipped() {
        let mut tally = Tally::default();
        read_datagram(&bytes(RECORDED[0]), 7, &mut tally);
        assert_eq!(tally, Tally::default());
    }

    #[test]
    fn interrupted_dump_and_error_are_reported() {
        let mut interrupted = bytes(RECORDED[0]);
        interrupted[6] |= NLM_F_DUMP_INTR as u8;
        let mut tally = Tally::default();
        read_datagram(&interrupted, 0, &mut tally);
        assert!(tally.interrupted);

        let mut error = Vec::new();
        error.extend_from_slice(&36u32.to_ne_bytes());
        error.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        error.extend_from_slice(&[0, 0]);
        error.extend_from_slice(&5u32.to_ne_bytes());
        error.extend_from_slice(&[0; 4]);
        error.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
        error.extend_from_slice(&[0; 16]);
        let mut tally = Tally::default();
        read_datagram(&error, 5, &mut tally);
        assert_eq!(tally.end, Some(-libc::ENOENT));
    }

    #[test]
    fn truncated_datagram_ends_the_walk() {
        let recorded = bytes(RECORDED[0]);
        let mut tally = Tally::default();
        read_datagram(&recorded[..recorded.len() - 1], 0, &mut tally);
        assert_eq!(tally, Tally::default());
    }

    #[test]
    fn request_names_table_and_set() {
        let set = SetName { family: NftFamily::Inet, table: "cloison".into(), set: "allow".into() };
        let request = encode_request(&set, 9);

        assert_eq!(read_u16(&request, 4), Some((10 << 8) | 13), "NFT_MSG_GETSETELEM of subsystem 10");
        assert_eq!(read_u16(&request, 6), Some(NLM_F_REQUEST | NLM_F_DUMP));
        assert_eq!(read_u32(&request, 8), Some(9));
        assert_eq!(request[16], 1, "family NFPROTO_INET");
        let attributes: Vec<(u16, &[u8])> = attributes_of(&request[20..]).collect();
        assert_eq!(attributes, vec![(1, &b"cloison\0"[..]), (2, &b"allow\0"[..])]);
    }
}
