//! Endpoints whose container end is handed to a container runtime: the pair is
//! created in the host namespace, the host end a bridge port, the container end
//! down with its MAC and MTU and no address. The runtime (Docker) moves it into
//! the container, renames it and configures it, so cloison never needs the
//! container's namespace, which Docker creates only after the driver's Join.

use netlink_packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{Handle, LinkUnspec, LinkVeth};

use super::links::{self, Desired};
use crate::{names, DataplaneError, LocalEndpointPlan};

/// Creates the pair, or repairs the host end of an existing one. The container
/// end is left alone once it exists, because the runtime may have moved it.
/// Like `ip link add HOST_IFNAME master BR up type veth peer IFNAME address MAC`.
pub(super) async fn ensure(host: &Handle, plan: &LocalEndpointPlan) -> Result<(), DataplaneError> {
    let bridge = links::find(host, &plan.bridge)
        .await?
        .ok_or_else(|| DataplaneError::NoSuchInterface {
            name: plan.bridge.clone(),
        })?
        .index;
    if let Some(link) = links::find(host, &plan.host_ifname).await? {
        links::check_owner(&link, &names::endpoint_alias(&plan.endpoint_id))?;
        return links::repair(host, &link, Desired { mtu: plan.mtu, master: Some(bridge) }).await;
    }
    let peer = LinkUnspec::new_with_name(&plan.ifname)
        .address(plan.mac.0.to_vec())
        .mtu(plan.mtu)
        .build();
    let message = LinkVeth::new(&plan.host_ifname, &plan.ifname)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .mtu(plan.mtu)
        .controller(bridge)
        .up()
        .build();
    let op = format!(
        "ip link add {} master {} up type veth peer {} address {}",
        plan.host_ifname, plan.bridge, plan.ifname, plan.mac
    );
    links::add_marked(host, message, &plan.host_ifname, &names::endpoint_alias(&plan.endpoint_id), &op)
        .await
        .map(|_| ())
}
