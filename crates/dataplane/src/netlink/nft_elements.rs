//! Set element changes over nftables netlink, without starting `nft`.
//!
//! One batch (`NFNL_MSG_BATCH_BEGIN`, a `NFT_MSG_NEWSETELEM` or `NFT_MSG_DELSETELEM`
//! message per changed set, `NFNL_MSG_BATCH_END`) is one transaction: the kernel
//! applies all of it or nothing. Every element message requests an acknowledgement,
//! and the first error returned carries the kernel's errno.

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};
use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
use nix::sys::time::TimeVal;

use super::namespace;
use crate::{DataplaneError, NftData, NftElement, NftElementsPlan, NftSetChange};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
/// `NFT_JUMP` of the kernel's verdict codes.
const NFT_JUMP: i32 = -3;

/// How long to wait for the kernel's acknowledgements. The kernel handles a batch
/// while `send` runs, so they are queued before the first `recv`; the limit only
/// guards against a kernel that never replies.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Applies element changes in one transaction, like `nft -f` with a script of
/// `add element FAMILY TABLE SET { … }` and `delete element …` lines.
/// `host_netns` is the namespace playing the host, `None` for the process's own.
/// Changes of the host's tables go through `host_socket`, which stays open after
/// a batch that succeeded (see [`KeptSocket`]).
pub(super) async fn apply(host_netns: Option<&Path>, host_socket: &KeptSocket, plan: &NftElementsPlan) -> Result<(), DataplaneError> {
    if plan.changes.is_empty() {
        return Ok(());
    }
    let host_table = plan.namespace.is_none();
    let socket = match (host_table.then(|| host_socket.take()).flatten(), plan.namespace.as_deref().or(host_netns)) {
        (Some(socket), _) => socket,
        (None, Some(path)) => namespace::run_in(&namespace::open(path)?, open_socket).await??,
        (None, None) => open_socket()?,
    };
    let result = send_batch(&socket, &encode_batch(&plan.changes, 1), &plan.changes);
    if host_table && result.is_ok() {
        host_socket.put(socket);
    } else {
        // A failed batch may leave acknowledgements unread, which the next batch on
        // this socket would take for its own.
        close_in_background(socket);
    }
    result
}

/// A `NETLINK_NETFILTER` socket kept open between batches. Closing one waits for
/// an RCU grace period inside the nftables commit mutex: off-CPU stacks on Linux
/// 6.18 show `nft_rcv_nl_event` flushing work there. A link deletion takes that
/// mutex under the RTNL lock, so each close stalled concurrent detaches and
/// attaches. Only the host namespace's socket is kept, because a socket keeps its
/// namespace alive and router namespaces are removed.
#[derive(Debug, Default)]
pub(super) struct KeptSocket {
    socket: Mutex<Option<Socket>>,
}

impl KeptSocket {
    fn take(&self) -> Option<Socket> {
        self.socket.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Keeps `socket` unless another one is kept already, which is then closed.
    fn put(&self, socket: Socket) {
        let mut slot = self.socket.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(socket);
            return;
        }
        drop(slot);
        close_in_background(socket);
    }
}

/// Opens a `NETLINK_NETFILTER` socket in the calling thread's namespace.
pub(super) fn open_socket() -> Result<Socket, DataplaneError> {
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(io("open nftables netlink socket"))?;
    socket.bind_auto().map_err(io("bind nftables netlink socket"))?;
    // An error acknowledgement then carries only the failed message's header.
    socket.set_cap_ack(true).map_err(io("set NETLINK_CAP_ACK"))?;
    setsockopt(&socket, ReceiveTimeout, &TimeVal::from(libc::timeval { tv_sec: ACK_TIMEOUT.as_secs() as libc::time_t, tv_usec: 0 }))
        .map_err(|source| DataplaneError::Sys { op: "set SO_RCVTIMEO on nftables netlink socket".into(), source })?;
    Ok(socket)
}

/// Closes the socket on a blocking thread. Releasing a `NETLINK_NETFILTER` socket
/// flushes the release of committed transactions, which waits for an RCU grace
/// period (`nft_rcv_nl_event` calls `nf_tables_trans_destroy_flush_work`). That
/// took up to 10 ms under strace on a 2-core VM running Linux 6.18, and the
/// reconciler holds its lock around this call.
fn close_in_background(socket: Socket) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(move || drop(socket))),
        Err(_) => drop(socket),
    }
}

/// Sends a batch and waits for one acknowledgement per element message.
fn send_batch(socket: &Socket, batch: &[u8], changes: &[NftSetChange]) -> Result<(), DataplaneError> {
    socket.send(batch, 0).map_err(io("send nftables batch"))?;
    let mut pending = changes.len();
    let mut buffer = Vec::with_capacity(16 * 1024);
    while pending > 0 {
        buffer.clear();
        socket.recv(&mut buffer, 0).map_err(io("receive nftables acknowledgement"))?;
        for (sequence, code) in acknowledgements(&buffer) {
            pending = pending.saturating_sub(1);
            if code != 0 {
                return Err(rejected(changes, sequence, code));
            }
        }
    }
    Ok(())
}

pub(super) fn io(op: &'static str) -> impl Fn(std::io::Error) -> DataplaneError {
    move |source| DataplaneError::Io { op: op.into(), source }
}

/// Builds the error of a rejected message, naming the set of the change that
/// sequence number `sequence` carried. Element messages count from 1 after the
/// batch's begin message, which has sequence number 0.
fn rejected(changes: &[NftSetChange], sequence: u32, code: i32) -> DataplaneError {
    let change = usize::try_from(sequence).ok().and_then(|s| s.checked_sub(1)).and_then(|i| changes.get(i));
    let op = match change {
        Some(c) => format!(
            "{} element {} {} {}",
            if c.delete { "delete" } else { "add" },
            c.family.name(),
            c.table,
            c.set
        ),
        None => format!("nftables batch (message {sequence})"),
    };
    DataplaneError::Sys { op, source: Errno::from_raw(code.saturating_neg()) }
}

/// Returns the (sequence number, error code) of each `NLMSG_ERROR` message in a
/// datagram; code 0 is an acknowledgement, a negative code is `-errno`. Truncated
/// or malformed messages end the walk.
fn acknowledgements(datagram: &[u8]) -> Vec<(u32, i32)> {
    let mut found = Vec::new();
    let mut rest = datagram;
    while rest.len() >= 16 {
        let length = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if length < 16 || length > rest.len() {
            break;
        }
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        // The error code is followed by the header of the request it acknowledges.
        if kind == NLMSG_ERROR && length >= 16 + 4 + 16 {
            let code = i32::from_ne_bytes([rest[16], rest[17], rest[18], rest[19]]);
            let sequence = u32::from_ne_bytes([rest[28], rest[29], rest[30], rest[31]]);
            found.push((sequence, code));
        }
        rest = &rest[align(length).min(rest.len())..];
    }
    found
}

/// Encodes a batch of element messages; the begin message gets sequence number
/// `first`, the element messages the numbers after it.
fn encode_batch(changes: &[NftSetChange], first: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut sequence = first.wrapping_sub(1);
    // The batch messages name the subsystem in nfgenmsg's res_id.
    message(&mut out, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, sequence, 0, NFNL_SUBSYS_NFTABLES, |_| {});
    for change in changes {
        sequence = sequence.wrapping_add(1);
        let (kind, flags) = if change.delete {
            (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK)
        } else {
            (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)
        };
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | kind;
        message(&mut out, kind, flags, sequence, change.family as u8, 0, |out| element_list(out, change));
    }
    sequence = sequence.wrapping_add(1);
    message(&mut out, NFNL_MSG_BATCH_END, NLM_F_REQUEST, sequence, 0, NFNL_SUBSYS_NFTABLES, |_| {});
    out
}

/// Appends one netlink message with an nfgenmsg header and the attributes that
/// `body` writes.
pub(super) fn message(out: &mut Vec<u8>, kind: u16, flags: u16, sequence: u32, family: u8, res_id: u16, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&sequence.to_ne_bytes());
    // Port id 0: the kernel fills in the sender's.
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[family, 0]);
    out.extend_from_slice(&res_id.to_be_bytes());
    body(out);
    patch_length(out, start);
}

/// Writes the attributes of one element message: table, set and the element list.
fn element_list(out: &mut Vec<u8>, change: &NftSetChange) {
    attribute(out, NFTA_SET_ELEM_LIST_TABLE, &nul_terminated(&change.table));
    attribute(out, NFTA_SET_ELEM_LIST_SET, &nul_terminated(&change.set));
    nested(out, NFTA_SET_ELEM_LIST_ELEMENTS, |out| {
        for element in &change.elements {
            nested(out, NFTA_LIST_ELEM, |out| set_element(out, element));
        }
    });
}

fn set_element(out: &mut Vec<u8>, element: &NftElement) {
    nested(out, NFTA_SET_ELEM_KEY, |out| attribute(out, NFTA_DATA_VALUE, &element.key));
    if let Some(key_end) = &element.key_end {
        nested(out, NFTA_SET_ELEM_KEY_END, |out| attribute(out, NFTA_DATA_VALUE, key_end));
    }
    match &element.data {
        Some(NftData::Value(data)) => nested(out, NFTA_SET_ELEM_DATA, |out| attribute(out, NFTA_DATA_VALUE, data)),
        Some(NftData::Jump(chain)) => nested(out, NFTA_SET_ELEM_DATA, |out| {
            nested(out, NFTA_DATA_VERDICT, |out| {
                attribute(out, NFTA_VERDICT_CODE, &NFT_JUMP.to_be_bytes());
                attribute(out, NFTA_VERDICT_CHAIN, &nul_terminated(chain));
            });
        }),
        None => {}
    }
}

/// Appends a nested attribute whose content `body` writes.
fn nested(out: &mut Vec<u8>, kind: u16, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    body(out);
    patch_attribute_length(out, start);
}

/// Appends an attribute; its length counts the 4-byte header but not the padding.
pub(super) fn attribute(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    patch_attribute_length(out, start);
}

fn patch_attribute_length(out: &mut Vec<u8>, start: usize) {
    let length = u16::try_from(out.len() - start).unwrap_or(u16::MAX);
    out[start..start + 2].copy_from_slice(&length.to_ne_bytes());
    out.resize(start + align(out.len() - start), 0);
}

fn patch_length(out: &mut [u8], start: usize) {
    let length = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&length.to_ne_bytes());
}

pub(super) fn nul_terminated(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

/// Rounds a netlink length up to the 4-byte alignment of messages and attributes.
pub(super) fn align(length: usize) -> usize {
    (length + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NftFamily;

    fn change(delete: bool, elements: Vec<NftElement>) -> NftSetChange {
        NftSetChange { family: NftFamily::Bridge, table: "cloison".into(), set: "ports".into(), delete, elements }
    }

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_ne_bytes([bytes[at], bytes[at + 1]])
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    }

    #[test]
    fn batch_wraps_element_messages() {
        let element = NftElement { key: vec![0xaa; 16], key_end: None, data: None };
        let batch = encode_batch(&[change(false, vec![element]), change(true, Vec::new())], 1);

        let begin = u32_at(&batch, 0) as usize;
        assert_eq!(begin, 20, "begin is a header and an nfgenmsg");
        assert_eq!(u16_at(&batch, 4), NFNL_MSG_BATCH_BEGIN);
        assert_eq!(u32_at(&batch, 8), 0, "begin takes the sequence number before the first element message");
        assert_eq!(&batch[18..20], &[0, 10], "res_id is NFNL_SUBSYS_NFTABLES, big-endian");

        let add = &batch[begin..];
        assert_eq!(u16_at(add, 4), (10 << 8) | 12, "NFT_MSG_NEWSETELEM of subsystem 10");
        assert_eq!(u16_at(add, 6), NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE);
        assert_eq!(u32_at(add, 8), 1);
        assert_eq!(add[16], 7, "family NFPROTO_BRIDGE");

        let delete = &add[u32_at(add, 0) as usize..];
        assert_eq!(u16_at(delete, 4), (10 << 8) | 14, "NFT_MSG_DELSETELEM");
        assert_eq!(u16_at(delete, 6), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32_at(delete, 8), 2);

        let end = &delete[u32_at(delete, 0) as usize..];
        assert_eq!(end.len(), 20);
        assert_eq!(u16_at(end, 4), NFNL_MSG_BATCH_END);
        assert_eq!(u32_at(end, 8), 3);
    }

    #[test]
    fn element_attributes_nest_key_end_data() {
        let element = NftElement { key: vec![1, 2, 3, 4, 5, 6], key_end: Some(vec![9; 4]), data: Some(NftData::Value(vec![7, 0])) };
        let mut out = Vec::new();
        element_list(&mut out, &change(false, vec![element]));

        let expected: Vec<u8> = [
            // NFTA_SET_ELEM_LIST_TABLE "cloison\0"
            &[12, 0, 1, 0][..], b"cloison\0",
            // NFTA_SET_ELEM_LIST_SET "ports\0", padded from 10 to 12 bytes
            &[10, 0, 2, 0], b"ports\0", &[0, 0],
            // NFTA_SET_ELEM_LIST_ELEMENTS > NFTA_LIST_ELEM
            &[48, 0, 3, 0x80], &[44, 0, 1, 0x80],
            // NFTA_SET_ELEM_KEY > NFTA_DATA_VALUE, 6 bytes padded to 8
            &[16, 0, 1, 0x80], &[10, 0, 1, 0], &[1, 2, 3, 4, 5, 6, 0, 0],
            // NFTA_SET_ELEM_KEY_END > NFTA_DATA_VALUE
            &[12, 0, 10, 0x80], &[8, 0, 1, 0], &[9, 9, 9, 9],
            // NFTA_SET_ELEM_DATA > NFTA_DATA_VALUE, 2 bytes padded to 4
            &[12, 0, 2, 0x80], &[6, 0, 1, 0], &[7, 0, 0, 0],
        ]
        .concat();
        assert_eq!(out, expected);
    }

    #[test]
    fn acknowledgements_read_code_and_sequence() {
        let mut datagram = Vec::new();
        for (sequence, code) in [(1u32, 0i32), (2, -libc::ENOENT)] {
            datagram.extend_from_slice(&36u32.to_ne_bytes());
            datagram.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
            datagram.extend_from_slice(&[0; 10]);
            datagram.extend_from_slice(&code.to_ne_bytes());
            datagram.extend_from_slice(&[0; 8]);
            datagram.extend_from_slice(&sequence.to_ne_bytes());
            datagram.extend_from_slice(&[0; 4]);
        }
        datagram.extend_from_slice(&[0; 7]);

        assert_eq!(acknowledgements(&datagram), vec![(1, 0), (2, -libc::ENOENT)]);
    }

    #[test]
    fn rejection_keeps_errno_and_set() {
        let changes = [change(true, Vec::new())];
        let error = rejected(&changes, 1, -libc::ENOENT);

        assert_eq!(error.errno(), Some(libc::ENOENT));
        assert!(error.to_string().contains("delete element bridge cloison ports"), "{error}");
    }
}
