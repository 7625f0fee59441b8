//! A network's gateway port: the veth pair between its bridge and the tenant's
//! router namespace, holding the distributed gateway's MAC and addresses.

use rtnetlink::{Handle, LinkUnspec, LinkVeth};

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

    create(host, plan, bridge, &alias).await?;
    let moved = move_to_router(host, gateway, &router_netns).await;
    let configured = match moved {
        Ok(()) => configure_router_port(&router, gateway, plan.mtu).await,
        Err(e) => Err(e),
    };
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

/// Creates the pair in the host namespace with the host end on the bridge.
/// Like `ip link add HOST_PORT mtu M master BR up type veth peer ROUTER_PORT
/// address MAC mtu M`, then `ip link set HOST_PORT alias ALIAS`.
async fn create(host: &Handle, plan: &NetworkPlan, bridge: u32, alias: &str) -> Result<(), DataplaneError> {
    let gateway = &plan.gateway;
    let message = LinkVeth::new(&gateway.host_port, &gateway.router_port)
        .mtu(plan.mtu)
        .controller(bridge)
        .up()
        .build();
    let op = format!(
        "ip link add {} master {} up type veth peer {}",
        gateway.host_port, plan.bridge, gateway.router_port
    );
    links::add_marked(host, message, &gateway.host_port, alias, &op).await?;
    Ok(())
}

/// Moves the router end into the router namespace.
/// Like `ip link set ROUTER_PORT netns ROUTER`.
async fn move_to_router(
    host: &Handle,
    gateway: &GatewayPlan,
    router_netns: &std::fs::File,
) -> Result<(), DataplaneError> {
    use std::os::fd::AsRawFd;
    let message = LinkUnspec::new_with_name(&gateway.router_port)
        .setns_by_fd(router_netns.as_raw_fd())
        .build();
    let op = format!("ip link set {} netns {}", gateway.router_port, gateway.router_netns.display());
    links::set(host, message, &op).await
}

async fn configure_router_port(router: &Handle, gateway: &GatewayPlan, mtu: u32) -> Result<(), DataplaneError> {
    let link: Link = links::find(router, &gateway.router_port)
        .await?
        .ok_or_else(|| DataplaneError::NoSuchInterface {
            name: gateway.router_port.clone(),
        })?;
    interface::configure(router, &link, &settings(gateway, mtu)).await
}
