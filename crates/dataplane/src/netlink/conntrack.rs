//! Removing UDP conntrack entries over ctnetlink, like
//! `conntrack -D -p udp --orig-port-dst PORT` from conntrack-tools.
//!
//! A NAT rule is evaluated only for the first packet of a flow, and a UDP flow that
//! keeps sending keeps its conntrack entry alive. After a publication changes, its
//! UDP flows would go on to the old target until they pause for the UDP timeout, so
//! the agent removes their entries and the next datagram meets the current rules.

use std::path::Path;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};

use super::namespace;
use crate::DataplaneError;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLA_TYPE_MASK: u16 = 0x3fff;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const IPPROTO_UDP: u8 = 17;
/// Length of `struct nlmsghdr` followed by `struct nfgenmsg`.
const HEADERS: usize = 16 + 4;

/// Removes every IPv4 UDP conntrack entry whose original destination port is one of
/// `ports`, in the namespace at `namespace` or in the caller's. Returns how many
/// entries were removed; an entry that vanished on its own in between is skipped.
pub(super) async fn remove_udp(namespace: Option<&Path>, ports: Vec<u16>) -> Result<usize, DataplaneError> {
    if ports.is_empty() {
        return Ok(0);
    }
    let work = move || remove_udp_here(&ports);
    match namespace {
        Some(path) => namespace::run_in(&namespace::open(path)?, work).await?,
        None => tokio::task::spawn_blocking(work).await.map_err(|error| DataplaneError::Io {
            op: "conntrack worker".into(),
            source: std::io::Error::other(error),
        })?,
    }
}

fn remove_udp_here(ports: &[u16]) -> Result<usize, DataplaneError> {
    let failed = |op: &str| {
        let op = op.to_string();
        move |source| DataplaneError::Io { op, source }
    };
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(failed("open a ctnetlink socket"))?;
    socket.bind_auto().map_err(failed("bind a ctnetlink socket"))?;

    let request = message(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, 1, &[]);
    socket.send(&request, 0).map_err(failed("request the conntrack table"))?;
    let mut doomed = Vec::new();
    'dump: loop {
        let mut buffer = Vec::with_capacity(1 << 16);
        socket.recv(&mut buffer, 0).map_err(failed("read the conntrack table"))?;
        for (kind, body) in messages(&buffer) {
            match kind {
                NLMSG_DONE => break 'dump,
                NLMSG_ERROR => {
                    let code = body.get(..4).map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                    return Err(failed("read the conntrack table")(std::io::Error::from_raw_os_error(-code)));
                }
                _ => {
                    if let Some(key) = body.get(4..).and_then(|attributes| deletion_key(attributes, ports)) {
                        doomed.push(key);
                    }
                }
            }
        }
    }

    let mut removed = 0;
    for (sequence, key) in (2..).zip(doomed) {
        let request = message(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, sequence, &key);
        socket.send(&request, 0).map_err(failed("delete a conntrack entry"))?;
        let mut buffer = Vec::with_capacity(4096);
        socket.recv(&mut buffer, 0).map_err(failed("read a conntrack deletion's acknowledgement"))?;
        let code = messages(&buffer)
            .find(|(kind, _)| *kind == NLMSG_ERROR)
            .and_then(|(_, body)| body.get(..4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])))
            .unwrap_or(0);
        match -code {
            0 => removed += 1,
            libc::ENOENT => {}
            errno => return Err(failed("delete a conntrack entry")(std::io::Error::from_raw_os_error(errno))),
        }
    }
    Ok(removed)
}

/// Builds a ctnetlink request for IPv4 with `attributes` already encoded.
fn message(command: u16, flags: u16, sequence: u32, attributes: &[u8]) -> Vec<u8> {
    let length = u32::try_from(HEADERS + attributes.len()).unwrap_or(u32::MAX);
    let mut buffer = Vec::with_capacity(HEADERS + attributes.len());
    buffer.extend_from_slice(&length.to_ne_bytes());
    buffer.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | command).to_ne_bytes());
    buffer.extend_from_slice(&flags.to_ne_bytes());
    buffer.extend_from_slice(&sequence.to_ne_bytes());
    buffer.extend_from_slice(&0u32.to_ne_bytes());
    // struct nfgenmsg: family, version, resource id (big endian).
    buffer.extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0]);
    buffer.extend_from_slice(attributes);
    buffer
}

/// Splits a netlink datagram into (message type, payload after `struct nlmsghdr`).
fn messages(buffer: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = buffer;
    std::iter::from_fn(move || {
        let length = usize::try_from(u32::from_ne_bytes(rest.get(..4)?.try_into().ok()?)).ok()?;
        if length < 16 || length > rest.len() {
            return None;
        }
        let kind = u16::from_ne_bytes(rest.get(4..6)?.try_into().ok()?);
        let body = &rest[16..length];
        rest = rest.get(align(length)..).unwrap_or_default();
        Some((kind, body))
    })
}

/// Splits netlink attributes into (type without flags, payload, whole attribute).
fn attributes(buffer: &[u8]) -> impl Iterator<Item = (u16, &[u8], &[u8])> {
    let mut rest = buffer;
    std::iter::from_fn(move || {
        let length = usize::from(u16::from_ne_bytes(rest.get(..2)?.try_into().ok()?));
        if length < 4 || length > rest.len() {
            return None;
        }
        let kind = u16::from_ne_bytes(rest.get(2..4)?.try_into().ok()?) & NLA_TYPE_MASK;
        let whole = &rest[..length];
        rest = rest.get(align(length)..).unwrap_or_default();
        Some((kind, &whole[4..], whole))
    })
}

fn align(length: usize) -> usize {
    (length + 3) & !3
}

/// Returns the attributes that name an entry in a deletion request (its original
/// tuple and its zone) when the entry is UDP to one of `ports`.
fn deletion_key(entry: &[u8], ports: &[u16]) -> Option<Vec<u8>> {
    let (_, tuple, tuple_whole) = attributes(entry).find(|(kind, _, _)| *kind == CTA_TUPLE_ORIG)?;
    let (_, proto, _) = attributes(tuple).find(|(kind, _, _)| *kind == CTA_TUPLE_PROTO)?;
    let number = attributes(proto).find(|(kind, _, _)| *kind == CTA_PROTO_NUM)?.1.first().copied()?;
    let port = attributes(proto).find(|(kind, _, _)| *kind == CTA_PROTO_DST_PORT)?.1;
    let port = u16::from_be_bytes(port.get(..2)?.try_into().ok()?);
    if number != IPPROTO_UDP || !ports.contains(&port) {
        return None;
    }
    let mut key = tuple_whole.to_vec();
    key.resize(align(key.len()), 0);
    if let Some((_, _, zone)) = attributes(entry).find(|(kind, _, _)| *kind == CTA_ZONE) {
        key.extend_from_slice(zone);
        key.resize(align(key.len()), 0);
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(payload);
        out.resize(align(out.len()), 0);
        out
    }

    fn entry(protocol: u8, port: u16) -> Vec<u8> {
        let mut proto = attribute(CTA_PROTO_NUM, &[protocol]);
        proto.extend(attribute(CTA_PROTO_DST_PORT, &port.to_be_bytes()));
        let tuple = attribute(CTA_TUPLE_ORIG | 0x8000, &attribute(CTA_TUPLE_PROTO | 0x8000, &proto));
        let mut out = tuple;
        out.extend(attribute(CTA_ZONE, &7u16.to_be_bytes()));
        out
    }

    #[test]
    fn deletion_key_matches_udp_port_only() {
        assert!(deletion_key(&entry(IPPROTO_UDP, 5353), &[5353]).is_some(), "UDP to a listed port");
        assert!(deletion_key(&entry(6, 5353), &[5353]).is_none(), "TCP to a listed port");
        assert!(deletion_key(&entry(IPPROTO_UDP, 53), &[5353]).is_none(), "UDP to another port");
    }

    #[test]
    fn deletion_key_keeps_tuple_and_zone() {
        let entry = entry(IPPROTO_UDP, 5353);
        assert_eq!(deletion_key(&entry, &[5353]), Some(entry.clone()));
    }
}
