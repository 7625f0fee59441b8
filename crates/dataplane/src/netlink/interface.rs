//! Addresses and routes of an interface, the layer-3 side of its configuration.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use netlink_packet_route::link::LinkMessage;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use super::links::{self, netlink, Link};
use crate::DataplaneError;
use cloison_model::MacAddr;

/// The layer-2 and layer-3 settings of an interface that `ensure_*` keeps.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    pub(super) mac: MacAddr,
    pub(super) mtu: u32,
    pub(super) ipv4: Ipv4Net,
    pub(super) ipv6: Option<Ipv6Net>,
}

/// Brings an interface to `settings`: MAC, MTU and up in one message when any
/// drifted, then its addresses. Existing addresses are kept, so a repeated call
/// changes nothing.
pub(super) async fn configure(handle: &Handle, link: &Link, settings: &Settings) -> Result<(), DataplaneError> {
    let mac_drifted = link.mac.as_deref() != Some(&settings.mac.0[..]);
    if mac_drifted || !link.up || link.mtu != Some(settings.mtu) {
        let message = layer2(link.index, settings);
        let op = format!("ip link set {} address {} mtu {} up", link.name, settings.mac, settings.mtu);
        links::set(handle, message, &op).await?;
    }
    let v4 = settings.ipv4;
    replace_address(handle, link.index, IpAddr::V4(v4.addr()), v4.prefix_len()).await?;
    if let Some(v6) = settings.ipv6 {
        replace_address(handle, link.index, IpAddr::V6(v6.addr()), v6.prefix_len()).await?;
    }
    Ok(())
}

fn layer2(index: u32, settings: &Settings) -> LinkMessage {
    LinkUnspec::new_with_index(index)
        .address(settings.mac.0.to_vec())
        .mtu(settings.mtu)
        .up()
        .build()
}

/// Adds an address or leaves it as it is. IPv6 addresses skip duplicate address
/// detection because the controller allocated them uniquely and DAD would delay
/// the first packet by about a second (the kernel default DAD takes one probe of 1 s).
/// Like `ip addr replace ADDR/PREFIX dev NAME [nodad]`.
pub(super) async fn replace_address(
    handle: &Handle,
    index: u32,
    address: IpAddr,
    prefix_len: u8,
) -> Result<(), DataplaneError> {
    let mut request = handle.address().add(index, address, prefix_len).replace();
    if address.is_ipv6() {
        let message = request.message_mut();
        message.header.flags = AddressHeaderFlags::Nodad;
        message.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    request
        .execute()
        .await
        .map_err(|e| netlink(format!("ip addr replace {address}/{prefix_len} dev {index}"), e))
}

/// Points the default route of `gateway`'s address family at `gateway`.
/// Like `ip [-6] route replace default via GATEWAY dev NAME`.
pub(super) async fn replace_default_route(
    handle: &Handle,
    index: u32,
    gateway: IpAddr,
) -> Result<(), DataplaneError> {
    let route = match gateway {
        IpAddr::V4(gateway) => RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(index)
            .build(),
        IpAddr::V6(gateway) => RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(gateway)
            .output_interface(index)
            .build(),
    };
    handle
        .route()
        .add(route)
        .replace()
        .execute()
        .await
        .map_err(|e| netlink(format!("ip route replace default via {gateway}"), e))
}
