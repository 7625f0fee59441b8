//! FDB and neighbour entries on VXLAN devices: where remote endpoints live and
//! which VTEPs receive flooded traffic.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::{StreamExt, TryStreamExt};
use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::Handle;

use super::links::{self, errno, netlink};
use crate::{names, DataplaneError, RemoteEndpointPlan};

/// The all-zero MAC of flood entries: broadcast and unknown unicast go to their VTEPs.
const FLOOD_MAC: [u8; 6] = [0; 6];

/// One FDB entry read back from a VXLAN device.
#[derive(Debug, Clone)]
pub(super) struct FdbEntry {
    pub(super) ifindex: u32,
    pub(super) mac: [u8; 6],
    pub(super) vtep: IpAddr,
    pub(super) permanent: bool,
}

/// Installs a remote endpoint's FDB entry and neighbour entries.
pub(super) async fn ensure_remote(host: &Handle, plan: &RemoteEndpointPlan) -> Result<(), DataplaneError> {
    let index = owned_vxlan(host, &plan.vxlan).await?.ok_or_else(|| DataplaneError::NoSuchInterface {
        name: plan.vxlan.clone(),
    })?;
    replace_fdb(host, index, plan).await?;
    replace_neighbour(host, index, IpAddr::V4(plan.ipv4), plan).await?;
    if let Some(ipv6) = plan.ipv6 {
        replace_neighbour(host, index, IpAddr::V6(ipv6), plan).await?;
    }
    Ok(())
}

/// Removes a remote endpoint's entries and succeeds when they or the device are gone.
pub(super) async fn remove_remote(host: &Handle, plan: &RemoteEndpointPlan) -> Result<(), DataplaneError> {
    let Some(index) = owned_vxlan(host, &plan.vxlan).await? else {
        return Ok(());
    };
    delete_neighbour(host, index, IpAddr::V4(plan.ipv4), plan).await?;
    if let Some(ipv6) = plan.ipv6 {
        delete_neighbour(host, index, IpAddr::V6(ipv6), plan).await?;
    }
    delete_fdb(host, index, plan.mac.0, plan.vtep).await
}

/// Returns the index of a VXLAN device marked as a cloison network's, `None`
/// when it does not exist.
async fn owned_vxlan(host: &Handle, name: &str) -> Result<Option<u32>, DataplaneError> {
    let Some(link) = links::find(host, name).await? else {
        return Ok(None);
    };
    let prefix = names::network_alias("");
    match &link.alias {
        Some(alias) if alias.starts_with(&prefix) => Ok(Some(link.index)),
        alias => Err(DataplaneError::NotOwned {
            name: name.to_string(),
            alias: alias.clone(),
        }),
    }
}

/// Like `bridge fdb replace MAC dev VXLAN dst VTEP self permanent`.
async fn replace_fdb(host: &Handle, index: u32, plan: &RemoteEndpointPlan) -> Result<(), DataplaneError> {
    host.neighbours()
        .add_bridge(index, &plan.mac.0)
        .flags(NeighbourFlags::Own)
        .state(NeighbourState::Permanent)
        .destination(plan.vtep)
        .replace()
        .execute()
        .await
        .map_err(|e| netlink(format!("bridge fdb replace {} dev {} dst {}", plan.mac, plan.vxlan, plan.vtep), e))
}

/// Like `ip neigh replace IP lladdr MAC dev VXLAN nud permanent`.
async fn replace_neighbour(
    host: &Handle,
    index: u32,
    ip: IpAddr,
    plan: &RemoteEndpointPlan,
) -> Result<(), DataplaneError> {
    host.neighbours()
        .add(index, ip)
        .link_layer_address(&plan.mac.0)
        .state(NeighbourState::Permanent)
        .replace()
        .execute()
        .await
        .map_err(|e| netlink(format!("ip neigh replace {ip} lladdr {} dev {}", plan.mac, plan.vxlan), e))
}

/// Deletes a neighbour entry only while it still points at the plan's MAC, so
/// removing a departed endpoint never removes the entry of a newer endpoint that
/// reuses its address. Like `ip neigh del IP dev VXLAN`.
async fn delete_neighbour(
    host: &Handle,
    index: u32,
    ip: IpAddr,
    plan: &RemoteEndpointPlan,
) -> Result<(), DataplaneError> {
    let entries = neighbours(host, family_of(ip)).await?;
    let current = entries.iter().find(|n| n.ifindex == index && n.ip == ip);
    if current.is_none_or(|n| n.mac != plan.mac.0) {
        return Ok(());
    }
    let mut message = NeighbourMessage::default();
    message.header.family = family_of(ip);
    message.header.ifindex = index;
    message.attributes.push(NeighbourAttribute::Destination(neighbour_address(ip)));
    match host.neighbours().del(message).execute().await {
        Err(e) if errno(&e) != Some(libc::ENOENT) => Err(netlink(format!("ip neigh del {ip} dev {index}"), e)),
        _ => Ok(()),
    }
}

/// Deletes the FDB entry of `mac` towards `vtep` only, so an entry already
/// moved to another VTEP stays. Like `bridge fdb del MAC dev VXLAN dst VTEP self`.
async fn delete_fdb(host: &Handle, index: u32, mac: [u8; 6], vtep: IpAddr) -> Result<(), DataplaneError> {
    let mut message = NeighbourMessage::default();
    message.header.family = AddressFamily::Bridge;
    message.header.ifindex = index;
    message.header.flags = NeighbourFlags::Own;
    message.header.state = NeighbourState::Permanent;
    message.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    message.attributes.push(NeighbourAttribute::Destination(neighbour_address(vtep)));
    match host.neighbours().del(message).execute().await {
        Err(e) if errno(&e) != Some(libc::ENOENT) => {
            Err(netlink(format!("bridge fdb del {} dev {index} dst {vtep} self", fmt_mac(&mac)), e))
        }
        _ => Ok(()),
    }
}

/// Keeps exactly one all-zero FDB entry per VTEP in `vteps` on the device.
pub(super) async fn sync_flood(
    host: &Handle,
    index: u32,
    vxlan: &str,
    vteps: &[IpAddr],
) -> Result<(), DataplaneError> {
    let desired: BTreeSet<IpAddr> = vteps.iter().copied().collect();
    let present: BTreeSet<IpAddr> = fdb_entries(host)
        .await?
        .into_iter()
        .filter(|e| e.ifindex == index && e.mac == FLOOD_MAC)
        .map(|e| e.vtep)
        .collect();
    for vtep in desired.difference(&present) {
        append_flood(host, index, vxlan, *vtep).await?;
    }
    for vtep in present.difference(&desired) {
        delete_fdb(host, index, FLOOD_MAC, *vtep).await?;
    }
    Ok(())
}

/// Adds one more flood VTEP; `append` keeps the entries for the others.
/// Like `bridge fdb append 00:00:00:00:00:00 dev VXLAN dst VTEP self permanent`.
async fn append_flood(host: &Handle, index: u32, vxlan: &str, vtep: IpAddr) -> Result<(), DataplaneError> {
    let mut message = NeighbourMessage::default();
    message.header.family = AddressFamily::Bridge;
    message.header.ifindex = index;
    message.header.flags = NeighbourFlags::Own;
    message.header.state = NeighbourState::Permanent;
    message.attributes.push(NeighbourAttribute::LinkLayerAddress(FLOOD_MAC.to_vec()));
    message.attributes.push(NeighbourAttribute::Destination(neighbour_address(vtep)));
    let mut request = NetlinkMessage::from(RouteNetlinkMessage::NewNeighbour(message));
    request.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND;
    let op = || format!("bridge fdb append 00:00:00:00:00:00 dev {vxlan} dst {vtep}");
    let mut responses = host.clone().request(request).map_err(|e| netlink(op(), e))?;
    while let Some(response) = responses.next().await {
        if let NetlinkPayload::Error(error) = response.payload {
            if error.code.is_some() {
                return Err(netlink(op(), rtnetlink::Error::NetlinkError(error)));
            }
        }
    }
    Ok(())
}

/// Lists the FDB entries that point at a VTEP (`self` entries with a `dst`).
/// Like `bridge fdb show`.
pub(super) async fn fdb_entries(host: &Handle) -> Result<Vec<FdbEntry>, DataplaneError> {
    // Each message is reduced to its entry as it arrives, because a dump of thousands of
    // parsed messages held at once would take megabytes.
    host.neighbours()
        .get()
        .set_address_family(AddressFamily::Bridge)
        .execute()
        .try_filter_map(|message| std::future::ready(Ok(FdbEntry::from_message(message))))
        .try_collect()
        .await
        .map_err(|e| netlink("bridge fdb show", e))
}

impl FdbEntry {
    fn from_message(message: NeighbourMessage) -> Option<Self> {
        let mut mac = None;
        let mut vtep = None;
        for attribute in message.attributes {
            match attribute {
                NeighbourAttribute::LinkLayerAddress(lladdr) => mac = <[u8; 6]>::try_from(lladdr).ok(),
                NeighbourAttribute::Destination(address) => vtep = ip_of(address),
                _ => {}
            }
        }
        Some(FdbEntry {
            ifindex: message.header.ifindex,
            mac: mac?,
            vtep: vtep?,
            permanent: message.header.state == NeighbourState::Permanent,
        })
    }
}

/// One neighbour entry read back.
#[derive(Debug, Clone)]
pub(super) struct NeighbourEntry {
    pub(super) ifindex: u32,
    pub(super) ip: IpAddr,
    pub(super) mac: [u8; 6],
    pub(super) permanent: bool,
}

/// Lists the neighbour entries of one family that carry a MAC.
/// Like `ip neigh show` (`ip -6 neigh show`).
pub(super) async fn neighbours(host: &Handle, family: AddressFamily) -> Result<Vec<NeighbourEntry>, DataplaneError> {
    host.neighbours()
        .get()
        .set_address_family(family)
        .execute()
        .try_filter_map(|message| std::future::ready(Ok(NeighbourEntry::from_message(message))))
        .try_collect()
        .await
        .map_err(|e| netlink("ip neigh show", e))
}

impl NeighbourEntry {
    fn from_message(message: NeighbourMessage) -> Option<Self> {
        let mut mac = None;
        let mut ip = None;
        for attribute in message.attributes {
            match attribute {
                NeighbourAttribute::LinkLayerAddress(lladdr) => mac = <[u8; 6]>::try_from(lladdr).ok(),
                NeighbourAttribute::Destination(address) => ip = ip_of(address),
                _ => {}
            }
        }
        Some(NeighbourEntry {
            ifindex: message.header.ifindex,
            ip: ip?,
            mac: mac?,
            permanent: message.header.state == NeighbourState::Permanent,
        })
    }
}

/// Reads an address attribute; bridge-family messages carry it as raw bytes.
fn ip_of(address: NeighbourAddress) -> Option<IpAddr> {
    match address {
        NeighbourAddress::Inet(v4) => Some(IpAddr::V4(v4)),
        NeighbourAddress::Inet6(v6) => Some(IpAddr::V6(v6)),
        NeighbourAddress::Other(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(bytes).ok().map(|b| IpAddr::V4(Ipv4Addr::from(b))),
            16 => <[u8; 16]>::try_from(bytes).ok().map(|b| IpAddr::V6(Ipv6Addr::from(b))),
            _ => None,
        },
        _ => None,
    }
}

fn neighbour_address(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    }
}

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn fmt_mac(mac: &[u8; 6]) -> String {
    cloison_model::MacAddr(*mac).to_string()
}
