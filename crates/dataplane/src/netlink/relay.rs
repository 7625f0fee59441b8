//! Announcements of remote endpoints to the local containers of a network.
//!
//! A container keeps an address's old MAC in its neighbour cache for tens of seconds
//! after the address moved, and with flooding off nothing corrects it. Sending a
//! gratuitous ARP (and an unsolicited neighbour advertisement) for the remote
//! endpoint out of the bridge device reaches every local port, and Linux peers
//! override an existing entry on such an announcement. Frames sent by the bridge
//! device itself are not learned by the bridge, so its forwarding stays unchanged.

use super::{announce, links, namespace, NetlinkDataplane};
use crate::{DataplaneError, RemoteEndpointPlan};

impl NetlinkDataplane {
    /// Announces a remote endpoint's addresses on the local bridge `bridge`.
    pub(super) async fn relay_announcement(
        &self,
        bridge: &str,
        plan: &RemoteEndpointPlan,
    ) -> Result<(), DataplaneError> {
        let handle = self.host().await?;
        let link = links::find(handle, bridge)
            .await?
            .ok_or_else(|| DataplaneError::NoSuchInterface { name: bridge.to_string() })?;
        let socket = match &self.host_netns {
            None => announce::open_socket(),
            Some(path) => namespace::run_in(&namespace::open(path)?, announce::open_socket).await?,
        };
        let io = |source| DataplaneError::Io {
            op: format!("announce {} on {bridge}", plan.mac),
            source,
        };
        let socket = socket.map_err(io)?;
        announce::send_gratuitous_arp(&socket, link.index, plan.mac, plan.ipv4).map_err(io)?;
        if let Some(ipv6) = plan.ipv6 {
            announce::send_unsolicited_na(&socket, link.index, plan.mac, ipv6).map_err(io)?;
        }
        Ok(())
    }
}
