//! A network's gateway port: the veth pair between its bridge and the tenant's
//! router namespace, holding the distributed gateway's MAC and addresses.

use rtnetlink::Handle;

use super::interface::{self, Settings};
use super::links::{self, Link, Desired};
use super::namespace;
use crate::{names, DataplaneError, GatewayPlan, NetworkPlan};

/// Creates or repairs the gateway veth pair of a network.
pub(super) async fn ensure(host: &Handle, plan: &NetworkPlan, bridge: u32) -> Result<(), DataplaneError> {
    let gateway = &plan.gateway;
    let router_netns = namespace::open(&gateway.router_netns)?;
    let router = namespace::connect_in(&router_netns).await?;
    let alias = names::gateway_alias(&plan.network_id);
    let desired = Desired { mtu: plan.mtu, master: Some(bridge) };

    if let Some(link) = links::find(host, &gateway.host_port).await? {
        links::check_owner(&link, &alias)?;
        links::repair(host, &link, desired).await?;
        if let Some(router_port) = links::find(&router, &gateway.router_port).await? {
            return interface::configure(&router, &router_port, &settings(gateway, plan.mtu)).await;
        }
        // The router end is gone (its namespace was recreated): start over.
        links::delete(host, link.index).await?;
    }

    create(host, &router, plan, bridge, &alias, &router_netns).await?;
    let configured = configure_router_port(&router, gateway, plan.mtu).await;
    if configured.is_err() {
        links::delete_by_name(host, &gateway.host_port).await?;
    }
    configured
}

fn settings(gateway: &GatewayPlan, mtu: u32) -> Settings {
    Settings {
        mac: gateway.mac,
        mtu,
        ipv4: gateway.ipv4,
        ipv6: gateway.ipv6,
    }
}

/// Creates the pair with the host end on the bridge and the router end directly in
/// the router namespace. A router end left without its host end is deleted first,
/// so the pair can take its name. Like `ip link add HOST_PORT mtu M master BR up
/// type veth peer ROUTER_PORT mtu M netns ROUTER`, then `ip link set HOST_PORT alias
/// ALIAS`.
async fn create(
    host: &Handle,
    router: &Handle,
    plan: &NetworkPlan,
    bridge: u32,
    alias: &str,
    router_netns: &std::fs::File,
) -> Result<(), DataplaneError> {
    let gateway = &plan.gateway;
    links::delete_by_name(router, &gateway.router_port).await?;
    let message = links::veth_with_peer_in(&gateway.host_port, &gateway.router_port, router_netns, Some(plan.mtu))
        .mtu(plan.mtu)
        .controller(bridge)
        .up()
        .build();
    let op = format!(
        "ip link add {} master {} up type veth peer {} netns {}",
        gateway.host_port,
        plan.bridge,
        gateway.router_port,
        gateway.router_netns.display()
    );
    links::add_marked(host, message, &gateway.host_port, alias, &op).await?;
    Ok(())
}

async fn configure_router_port(router: &Handle, gateway: &GatewayPlan, mtu: u32) -> Result<(), DataplaneError> {
    let link: Link = links::find(router, &gateway.router_port)
        .await?
        .ok_or_else(|| DataplaneError::NoSuchInterface {
            name: gateway.router_port.clone(),
        })?;
    interface::configure(router, &link, &settings(gateway, mtu)).await
}
