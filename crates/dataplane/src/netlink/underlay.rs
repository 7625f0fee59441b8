//! The host's underlay interface, looked up through netlink so the answer is that of
//! the namespace the dataplane works in, whatever `/sys` shows.

use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};

use super::{links, NetlinkDataplane};
use crate::DataplaneError;

impl NetlinkDataplane {
    /// Returns the name and MTU of the interface holding `ip`, or `None` when no
    /// interface of the host namespace has that address. Like `ip -o addr show to IP`
    /// followed by `ip link show dev IF`.
    pub async fn interface_of_address(&self, ip: IpAddr) -> Result<Option<(String, u32)>, DataplaneError> {
        let handle = self.host().await?;
        let messages: Vec<AddressMessage> = handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| links::netlink("ip addr show", e))?;
        let index = messages.iter().find_map(|m| {
            m.attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Address(found) if *found == ip))
                .then_some(m.header.index)
        });
        let Some(index) = index else {
            return Ok(None);
        };
        let link = links::dump(handle).await?.into_iter().find(|l| l.index == index);
        Ok(link.and_then(|l| l.mtu.map(|mtu| (l.name, mtu))))
    }
}
