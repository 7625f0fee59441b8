//! Deleting a link on a netlink socket of its own, from a blocking thread.
//!
//! The kernel handles a netlink request inside the `sendmsg` call that carries it.
//! Deleting a veth waits there for an RCU barrier once the link is gone
//! (`netdev_run_todo`), which took 12 to 21 ms per deletion under strace on a
//! 2-core VM running Linux 6.18. Sent on the shared host connection, that wait
//! stalls a tokio worker and every request queued behind it on the connection.
//! Sent on a socket of its own from a blocking thread, deletions wait side by side
//! and attaches go on meanwhile.
//!
//! The kernel takes the link and its veth peer out of their namespaces before those
//! waits, under the RTNL lock. So a deletion is done for its caller once the link's
//! index is gone: the names are free and nothing forwards through it. The rest of
//! the kernel's cleanup goes on in the background. The failures we know of (no
//! permission, no such link) come before the link is taken out, and the
//! acknowledgement that ends a deletion is logged when it reports one anyway.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};
use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
use nix::sys::time::TimeVal;
use tokio::task::{JoinError, JoinHandle};
use tracing::warn;

use super::namespace;
use crate::DataplaneError;

/// How long to wait for the kernel's acknowledgement. It is queued before `send`
/// returns, so the limit only guards against a kernel that never replies.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Deletes the link with index `index` in the namespace `netns` (`None` for the
/// process's own) and succeeds when it is already gone.
/// Returns once the kernel has removed the link from the namespace (see the module
/// documentation). `name` only labels errors. Like `ip link del NAME`.
pub(super) async fn delete(netns: Option<&Path>, index: u32, name: &str) -> Result<(), DataplaneError> {
    let socket = match netns {
        Some(path) => namespace::run_in(&namespace::open(path)?, open_socket).await??,
        None => open_socket()?,
    };
    let namespace = netns.map(namespace::open).transpose()?;
    let op = format!("ip link del {name}");
    let mut deletion = tokio::task::spawn_blocking(move || request(&socket, index, &op));
    loop {
        tokio::select! {
            joined = &mut deletion => return joined_result(joined, name),
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
        if !listed(namespace.as_ref(), name, index).await? {
            tokio::spawn(log_late_failure(deletion, name.to_string()));
            return Ok(());
        }
    }
}

/// How often [`delete`] checks whether the link left its namespace.
const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// Returns whether the link `name` with index `index` is still in the namespace
/// `netns` (`None` for the process's own). The check is an `SIOCGIFINDEX` ioctl,
/// which reads under RCU, where a netlink request would wait for the RTNL lock
/// that concurrent deletions hold.
async fn listed(netns: Option<&File>, name: &str, index: u32) -> Result<bool, DataplaneError> {
    let owned = name.to_string();
    let found = match netns {
        Some(file) => namespace::run_in(file, move || nix::net::if_::if_nametoindex(owned.as_str())).await?,
        None => nix::net::if_::if_nametoindex(owned.as_str()),
    };
    match found {
        Ok(found) => Ok(found == index),
        Err(Errno::ENODEV) => Ok(false),
        Err(source) => Err(DataplaneError::Sys { op: format!("look up the index of {name}"), source }),
    }
}

fn joined_result(joined: Result<Result<(), DataplaneError>, JoinError>, name: &str) -> Result<(), DataplaneError> {
    joined.map_err(|e| DataplaneError::Io {
        op: format!("ip link del {name} on a blocking thread"),
        source: std::io::Error::other(e),
    })?
}

/// Waits for the acknowledgement of a deletion whose link is gone already, and logs
/// it when it reports a failure.
async fn log_late_failure(deletion: JoinHandle<Result<(), DataplaneError>>, name: String) {
    if let Err(e) = joined_result(deletion.await, &name) {
        warn!(ifname = %name, error = %e, "the kernel reported a failure after removing the link");
    }
}

/// Opens a route netlink socket in the calling thread's namespace.
fn open_socket() -> Result<Socket, DataplaneError> {
    let io = |op: &'static str| move |source| DataplaneError::Io { op: op.into(), source };
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(io("open route netlink socket"))?;
    socket.bind_auto().map_err(io("bind route netlink socket"))?;
    let timeout = TimeVal::from(libc::timeval { tv_sec: ACK_TIMEOUT.as_secs() as libc::time_t, tv_usec: 0 });
    setsockopt(&socket, ReceiveTimeout, &timeout)
        .map_err(|source| DataplaneError::Sys { op: "set SO_RCVTIMEO on route netlink socket".into(), source })?;
    Ok(socket)
}

/// Sends `RTM_DELLINK` for `index` and waits for its acknowledgement.
fn request(socket: &Socket, index: u32, op: &str) -> Result<(), DataplaneError> {
    let io = |source| DataplaneError::Io { op: op.to_string(), source };
    socket.send(&encode(index), 0).map_err(io)?;
    let mut buffer = Vec::with_capacity(8 * 1024);
    loop {
        buffer.clear();
        socket.recv(&mut buffer, 0).map_err(io)?;
        if let Some(code) = acknowledgement(&buffer) {
            return match code {
                0 => Ok(()),
                code if code == -libc::ENODEV => Ok(()),
                code => Err(DataplaneError::Sys { op: op.to_string(), source: Errno::from_raw(code.saturating_neg()) }),
            };
        }
    }
}

/// Encodes the `RTM_DELLINK` request, sequence number 1, asking for an acknowledgement.
fn encode(index: u32) -> Vec<u8> {
    let mut link = LinkMessage::default();
    link.header.index = index;
    let mut message = NetlinkMessage::from(RouteNetlinkMessage::DelLink(link));
    message.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    message.header.sequence_number = 1;
    message.finalize();
    let mut buffer = vec![0; message.buffer_len()];
    message.serialize(&mut buffer);
    buffer
}

/// Returns the error code of the acknowledgement in a datagram: 0 for success,
/// `-errno` for a failure, `None` when the datagram contains none.
fn acknowledgement(datagram: &[u8]) -> Option<i32> {
    match NetlinkMessage::<RouteNetlinkMessage>::deserialize(datagram).ok()?.payload {
        NetlinkPayload::Error(error) => Some(error.code.map_or(0, |c| c.get())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_names_the_link_by_index() {
        let bytes = encode(42);
        let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).expect("parse");
        assert_eq!(parsed.header.flags, NLM_F_REQUEST | NLM_F_ACK);
        match parsed.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => assert_eq!(link.header.index, 42),
            other => panic!("not RTM_DELLINK: {other:?}"),
        }
    }

    #[test]
    fn reads_success_and_errno() {
        let ack = |code: i32| {
            let mut error = netlink_packet_core::ErrorMessage::default();
            error.code = std::num::NonZeroI32::new(code);
            // The kernel echoes the request's header after the code.
            error.header = vec![0; 16];
            let header = netlink_packet_core::NetlinkHeader::default();
            let mut message = NetlinkMessage::<RouteNetlinkMessage>::new(header, NetlinkPayload::Error(error));
            message.finalize();
            let mut buffer = vec![0; message.buffer_len()];
            message.serialize(&mut buffer);
            buffer
        };
        assert_eq!(acknowledgement(&ack(0)), Some(0));
        assert_eq!(acknowledgement(&ack(-libc::EPERM)), Some(-libc::EPERM));
        assert_eq!(acknowledgement(&[0; 4]), None);
    }
}
