//! A network's bridge and VXLAN device.

use std::net::IpAddr;

use netlink_packet_route::link::{InfoBridgePort, InfoKind, InfoVxlan, LinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkVxlan};

use super::links::{self, Link, Desired};
use super::{fdb, gateway};
use crate::{names, DataplaneError, NetworkPlan};

/// Creates or repairs the bridge, the VXLAN device, the gateway port and the
/// flood entries of a network.
pub(super) async fn ensure(host: &Handle, plan: &NetworkPlan) -> Result<(), DataplaneError> {
    let bridge = ensure_bridge(host, plan).await?;
    let vxlan = ensure_vxlan(host, plan, bridge).await?;
    disable_port_learning(host, vxlan, &plan.vxlan).await?;
    gateway::ensure(host, plan, bridge).await?;
    fdb::sync_flood(host, vxlan, &plan.vxlan, &plan.flood_vteps).await
}

/// Deletes the gateway port, the VXLAN device and the bridge, each of which may
/// already be gone. The router end of the gateway goes with its peer.
pub(super) async fn remove(host: &Handle, plan: &NetworkPlan) -> Result<(), DataplaneError> {
    let network_alias = names::network_alias(&plan.network_id);
    let gateway_alias = names::gateway_alias(&plan.network_id);
    remove_owned(host, &plan.gateway.host_port, &gateway_alias).await?;
    remove_owned(host, &plan.vxlan, &network_alias).await?;
    remove_owned(host, &plan.bridge, &network_alias).await
}

async fn remove_owned(host: &Handle, name: &str, alias: &str) -> Result<(), DataplaneError> {
    match links::find(host, name).await? {
        Some(link) => {
            links::check_owner(&link, alias)?;
            links::delete(host, link.index).await
        }
        None => Ok(()),
    }
}

/// Returns the bridge's index after creating or repairing it.
async fn ensure_bridge(host: &Handle, plan: &NetworkPlan) -> Result<u32, DataplaneError> {
    let alias = names::network_alias(&plan.network_id);
    let desired = Desired { mtu: plan.mtu, master: None };
    if let Some(link) = links::find(host, &plan.bridge).await? {
        links::check_owner(&link, &alias)?;
        links::repair(host, &link, desired).await?;
        return Ok(link.index);
    }
    let message = LinkBridge::new(&plan.bridge).mtu(plan.mtu).up().build();
    let op = format!("ip link add {} mtu {} up type bridge", plan.bridge, plan.mtu);
    links::add_marked(host, message, &plan.bridge, &alias, &op).await
}

/// Returns the VXLAN device's index after creating, repairing or recreating it.
/// Settings fixed at creation (VNI, local VTEP, port, learning, proxy) can only
/// be fixed by recreating the device. That drops its FDB and neighbour entries,
/// which the agent installs again.
async fn ensure_vxlan(host: &Handle, plan: &NetworkPlan, bridge: u32) -> Result<u32, DataplaneError> {
    let alias = names::network_alias(&plan.network_id);
    if let Some(link) = links::find(host, &plan.vxlan).await? {
        links::check_owner(&link, &alias)?;
        if vxlan_matches(&link, plan) {
            let desired = Desired { mtu: plan.mtu, master: Some(bridge) };
            links::repair(host, &link, desired).await?;
            return Ok(link.index);
        }
        tracing::warn!(link = %link.name, vni = plan.vni, "recreating VXLAN device with drifted settings");
        links::delete(host, link.index).await?;
    }
    let op = format!(
        "ip link add {} mtu {} master {} up type vxlan id {} local {} dstport {} nolearning proxy",
        plan.vxlan, plan.mtu, plan.bridge, plan.vni, plan.local_vtep, plan.vxlan_port
    );
    links::add_marked(host, vxlan_message(plan, bridge), &plan.vxlan, &alias, &op).await
}

/// Stops the bridge from learning source MACs of frames that arrive through the
/// tunnel, so a remote endpoint cannot claim a local endpoint's MAC.
/// Like `ip link set VXLAN type bridge_slave learning off`.
// Limitation: without learned or static `master` entries for remote MACs the
// bridge floods unicast to remote endpoints to every local port of the network.
// It matters on hosts with many local endpoints per network.
async fn disable_port_learning(host: &Handle, vxlan: u32, name: &str) -> Result<(), DataplaneError> {
    let message = LinkBridgePort::new(vxlan)
        .append_info_data(InfoBridgePort::Learning(false))
        .build();
    host.link()
        .set_port(message)
        .execute()
        .await
        .map_err(|e| links::netlink(format!("ip link set {name} type bridge_slave learning off"), e))
}

fn vxlan_message(plan: &NetworkPlan, bridge: u32) -> LinkMessage {
    let builder = LinkVxlan::new(&plan.vxlan, plan.vni)
        .port(plan.vxlan_port)
        .learning(false)
        .proxy(true);
    let builder = match plan.local_vtep {
        IpAddr::V4(local) => builder.local(local),
        IpAddr::V6(local) => builder.local6(local),
    };
    builder.mtu(plan.mtu).controller(bridge).up().build()
}

/// Returns true when the device's creation-time settings are the plan's.
fn vxlan_matches(link: &Link, plan: &NetworkPlan) -> bool {
    let local = match plan.local_vtep {
        IpAddr::V4(local) => InfoVxlan::Local(local),
        IpAddr::V6(local) => InfoVxlan::Local6(local),
    };
    let desired = [
        InfoVxlan::Id(plan.vni),
        local,
        InfoVxlan::Port(plan.vxlan_port),
        InfoVxlan::Learning(false),
        InfoVxlan::Proxy(true),
    ];
    link.kind == Some(InfoKind::Vxlan) && desired.iter().all(|w| link.vxlan.contains(w))
}
