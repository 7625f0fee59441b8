//! Links: looking them up, checking cloison's mark, repairing drifted attributes,
//! deleting them.

use std::fs::File;
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth};

use crate::{names, DataplaneError};

/// The attributes of a link that cloison reads back.
#[derive(Debug, Clone, Default)]
pub(super) struct Link {
    pub(super) index: u32,
    pub(super) name: String,
    pub(super) alias: Option<String>,
    pub(super) mtu: Option<u32>,
    pub(super) master: Option<u32>,
    pub(super) up: bool,
    pub(super) mac: Option<Vec<u8>>,
    pub(super) kind: Option<InfoKind>,
    /// VXLAN settings, empty for other kinds.
    pub(super) vxlan: Vec<InfoVxlan>,
}

impl Link {
    fn from_message(message: LinkMessage) -> Self {
        let mut link = Link {
            index: message.header.index,
            up: message.header.flags.contains(LinkFlags::Up),
            ..Link::default()
        };
        for attribute in message.attributes {
            match attribute {
                LinkAttribute::IfName(name) => link.name = name,
                LinkAttribute::IfAlias(alias) => link.alias = Some(alias),
                LinkAttribute::Mtu(mtu) => link.mtu = Some(mtu),
                LinkAttribute::Controller(master) => link.master = Some(master),
                LinkAttribute::Address(mac) => link.mac = Some(mac),
                LinkAttribute::LinkInfo(infos) => link.read_info(infos),
                _ => {}
            }
        }
        link
    }

    fn read_info(&mut self, infos: Vec<LinkInfo>) {
        for info in infos {
            match info {
                LinkInfo::Kind(kind) => self.kind = Some(kind),
                LinkInfo::Data(InfoData::Vxlan(settings)) => self.vxlan = settings,
                _ => {}
            }
        }
    }
}

/// The attributes `ensure_*` keeps a link at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Desired {
    pub(super) mtu: u32,
    /// Bridge the link is a port of. `None` leaves the master alone.
    pub(super) master: Option<u32>,
}

/// Looks a link up by name, returning `None` when there is none. Like `ip link show NAME`.
pub(super) async fn find(handle: &Handle, name: &str) -> Result<Option<Link>, DataplaneError> {
    let mut request = std::pin::pin!(handle.link().get().match_name(name).execute());
    match request.try_next().await {
        Ok(message) => Ok(message.map(Link::from_message)),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(source) => Err(netlink(format!("ip link show {name}"), source)),
    }
}

/// Lists every link of the namespace. Like `ip -d link show`.
pub(super) async fn dump(handle: &Handle) -> Result<Vec<Link>, DataplaneError> {
    let messages: Vec<LinkMessage> = handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| netlink("ip link show", e))?;
    Ok(messages.into_iter().map(Link::from_message).collect())
}

/// Checks that `link` carries the alias `expected`, so cloison never adopts an
/// interface of the same name that it did not create.
pub(super) fn check_owner(link: &Link, expected: &str) -> Result<(), DataplaneError> {
    match &link.alias {
        Some(alias) if alias == expected => Ok(()),
        Some(alias) if alias.starts_with(names::ALIAS_PREFIX) => Err(DataplaneError::Collision {
            name: link.name.clone(),
            owner: alias.clone(),
            expected: expected.to_string(),
        }),
        alias => Err(DataplaneError::NotOwned {
            name: link.name.clone(),
            alias: alias.clone(),
        }),
    }
}

/// Sets MTU, master and up where they drifted, in one message and only when one
/// of them did. Like `ip link set NAME mtu M master BR up`.
pub(super) async fn repair(handle: &Handle, link: &Link, desired: Desired) -> Result<(), DataplaneError> {
    let master_drifted = desired.master.is_some_and(|m| link.master != Some(m));
    if link.up && link.mtu == Some(desired.mtu) && !master_drifted {
        return Ok(());
    }
    let mut message = LinkUnspec::new_with_index(link.index).mtu(desired.mtu).up();
    if let (true, Some(master)) = (master_drifted, desired.master) {
        message = message.controller(master);
    }
    tracing::info!(link = %link.name, "repairing drifted link attributes");
    set(handle, message.build(), &format!("ip link set {} mtu {} up", link.name, desired.mtu)).await
}

/// Marks a link as cloison's. Like `ip link set NAME alias ALIAS`.
pub(super) async fn set_alias(handle: &Handle, index: u32, alias: &str) -> Result<(), DataplaneError> {
    let message = LinkUnspec::new_with_index(index).alias(alias).build();
    set(handle, message, &format!("ip link set {index} alias {alias}")).await
}

/// Brings a link up. Like `ip link set NAME up`.
pub(super) async fn set_up_by_name(handle: &Handle, name: &str) -> Result<(), DataplaneError> {
    let message = LinkUnspec::new_with_name(name).up().build();
    set(handle, message, &format!("ip link set {name} up")).await
}

/// Sends one link change. Like `ip link set ...`, described by `op`.
pub(super) async fn set(handle: &Handle, message: LinkMessage, op: &str) -> Result<(), DataplaneError> {
    handle.link().set(message).execute().await.map_err(|e| netlink(op, e))
}

/// Creates a link. Like `ip link add ...`, described by `op`.
pub(super) async fn add(handle: &Handle, message: LinkMessage, op: &str) -> Result<(), DataplaneError> {
    handle.link().add(message).execute().await.map_err(|e| netlink(op, e))
}

/// Builds a veth pair whose end `peer` is created down, with `mtu`, directly in
/// `netns`. Moving a link between namespaces instead waits for an RCU grace period,
/// about 23 ms per link under strace on a 2-core VM running Linux 6.18. Like `ip
/// link add NAME type veth peer PEER mtu M netns NETNS`.
pub(super) fn veth_with_peer_in(name: &str, peer: &str, netns: &File, mtu: Option<u32>) -> LinkMessageBuilder<LinkVeth> {
    let mut peer_message = LinkUnspec::new_with_name(peer);
    if let Some(mtu) = mtu {
        peer_message = peer_message.mtu(mtu);
    }
    let peer_message = peer_message.setns_by_fd(netns.as_raw_fd()).build();
    LinkVeth::new(name, peer).set_info_data(InfoData::Veth(InfoVeth::Peer(peer_message)))
}

/// Creates a link, marks it with `alias`, and returns its index. If the alias
/// cannot be set the link is deleted again, so no unmarked object is left behind.
pub(super) async fn add_marked(
    host: &Handle,
    message: LinkMessage,
    name: &str,
    alias: &str,
    op: &str,
) -> Result<u32, DataplaneError> {
    add(host, message, op).await?;
    let link = find(host, name).await?.ok_or_else(|| DataplaneError::NoSuchInterface {
        name: name.to_string(),
    })?;
    if let Err(e) = set_alias(host, link.index, alias).await {
        delete(host, link.index).await?;
        return Err(e);
    }
    Ok(link.index)
}

/// Deletes a link by index and succeeds when it is already gone. Like `ip link del dev NAME`.
pub(super) async fn delete(handle: &Handle, index: u32) -> Result<(), DataplaneError> {
    match handle.link().del(index).execute().await {
        Err(e) if errno(&e) != Some(libc::ENODEV) => Err(netlink(format!("ip link del {index}"), e)),
        _ => Ok(()),
    }
}

/// Deletes a link by name and succeeds when there is none. Like `ip link del NAME`.
pub(super) async fn delete_by_name(handle: &Handle, name: &str) -> Result<(), DataplaneError> {
    match find(handle, name).await? {
        Some(link) => delete(handle, link.index).await,
        None => Ok(()),
    }
}

/// Returns the kernel's errno carried by a netlink error.
pub(super) fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => message.code.map(|c| -c.get()),
        _ => None,
    }
}

/// Wraps a netlink error with the `ip`/`bridge` command that failed.
pub(super) fn netlink(op: impl Into<String>, source: rtnetlink::Error) -> DataplaneError {
    DataplaneError::Netlink {
        op: op.into(),
        source,
    }
}
