//! Local endpoints: a veth pair whose host end is a bridge port and whose other
//! end is the container's interface inside its sandbox namespace.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

use netlink_packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{Handle, LinkUnspec, LinkVeth};

use super::interface::{self, Settings};
use super::links::{self, errno, Link, Desired};
use super::{announce, namespace};
use crate::{names, DataplaneError, LocalEndpointPlan};

/// Sockets opened inside a sandbox namespace.
struct Sandbox {
    netlink: Handle,
    packet: OwnedFd,
}

/// Creates or repairs a local endpoint, then announces its addresses.
pub(super) async fn ensure(host: &Handle, plan: &LocalEndpointPlan) -> Result<(), DataplaneError> {
    let sandbox_file = namespace::open(&plan.sandbox)?;
    let sandbox = open_sandbox(&sandbox_file).await?;
    let bridge = links::find(host, &plan.bridge).await?.ok_or_else(|| DataplaneError::NoSuchInterface {
        name: plan.bridge.clone(),
    })?;

    let peer = match adopt(host, &sandbox, plan, bridge.index).await? {
        Some(peer) => {
            configure_inside(&sandbox.netlink, &peer, plan).await?;
            peer
        }
        None => create(host, &sandbox, &sandbox_file, plan, bridge.index).await?,
    };
    announce(&sandbox, &peer, plan);
    Ok(())
}

/// Deletes an endpoint's host end, which takes the container end with it.
/// Like `ip link del HOST_IFNAME`.
pub(super) async fn remove(host: &Handle, host_ifname: &str) -> Result<(), DataplaneError> {
    let Some(link) = links::find(host, host_ifname).await? else {
        return Ok(());
    };
    let prefix = names::endpoint_alias("");
    if !link.alias.as_deref().is_some_and(|a| a.starts_with(&prefix)) {
        return Err(DataplaneError::NotOwned {
            name: link.name,
            alias: link.alias,
        });
    }
    links::delete(host, link.index).await
}

/// Opens a netlink connection and a packet socket in the sandbox, both on one
/// thread that entered the sandbox namespace.
async fn open_sandbox(file: &File) -> Result<Sandbox, DataplaneError> {
    let runtime = tokio::runtime::Handle::current();
    let (connection, packet) = namespace::run_in(file, move || {
        // The netlink socket registers with the tokio reactor when it is created.
        let _context = runtime.enter();
        (rtnetlink::new_connection(), announce::open_socket())
    })
    .await?;
    let io = |op: &str| {
        let op = op.to_string();
        move |source| DataplaneError::Io { op, source }
    };
    let (connection, netlink, _) = connection.map_err(io("open netlink socket in sandbox"))?;
    let packet = packet.map_err(io("open packet socket in sandbox"))?;
    tokio::spawn(connection);
    Ok(Sandbox { netlink, packet })
}

/// Returns the container end of an existing endpoint after repairing its host
/// end. Returns `None` when there is no endpoint, and also when its container end
/// is no longer at `ifname` in the sandbox, after deleting the broken pair.
async fn adopt(
    host: &Handle,
    sandbox: &Sandbox,
    plan: &LocalEndpointPlan,
    bridge: u32,
) -> Result<Option<Link>, DataplaneError> {
    let Some(link) = links::find(host, &plan.host_ifname).await? else {
        return Ok(None);
    };
    links::check_owner(&link, &names::endpoint_alias(&plan.endpoint_id))?;
    links::repair(host, &link, Desired { mtu: plan.mtu, master: Some(bridge) }).await?;
    let peer = links::find(&sandbox.netlink, &plan.ifname).await?;
    if let Some(peer) = peer.filter(|p| p.mac.as_deref() == Some(&plan.mac.0[..])) {
        return Ok(Some(peer));
    }
    tracing::warn!(endpoint.id = %plan.endpoint_id, "recreating endpoint whose container end is missing");
    links::delete(host, link.index).await?;
    Ok(None)
}

/// Creates the pair, moves the container end into the sandbox and configures it.
/// On any failure the pair is deleted again, so nothing half-made stays.
async fn create(
    host: &Handle,
    sandbox: &Sandbox,
    sandbox_file: &File,
    plan: &LocalEndpointPlan,
    bridge: u32,
) -> Result<Link, DataplaneError> {
    add_pair(host, plan, bridge).await?;
    let result = finish(host, sandbox, sandbox_file, plan).await;
    if result.is_err() {
        links::delete_by_name(host, &plan.host_ifname).await?;
    }
    result
}

async fn finish(
    host: &Handle,
    sandbox: &Sandbox,
    sandbox_file: &File,
    plan: &LocalEndpointPlan,
) -> Result<Link, DataplaneError> {
    let host_end = links::find(host, &plan.host_ifname).await?.ok_or_else(|| DataplaneError::NoSuchInterface {
        name: plan.host_ifname.clone(),
    })?;
    links::set_alias(host, host_end.index, &names::endpoint_alias(&plan.endpoint_id)).await?;
    move_peer(host, sandbox_file, plan).await?;
    let peer = links::find(&sandbox.netlink, &plan.ifname).await?.ok_or_else(|| DataplaneError::NoSuchInterface {
        name: plan.ifname.clone(),
    })?;
    configure_inside(&sandbox.netlink, &peer, plan).await?;
    Ok(peer)
}

/// Like `ip link add HOST_IFNAME mtu M master BR up type veth peer PEER_IFNAME
/// address MAC mtu M`.
async fn add_pair(host: &Handle, plan: &LocalEndpointPlan, bridge: u32) -> Result<(), DataplaneError> {
    let peer = LinkUnspec::new_with_name(&plan.peer_ifname)
        .address(plan.mac.0.to_vec())
        .mtu(plan.mtu)
        .build();
    let message = LinkVeth::new(&plan.host_ifname, &plan.peer_ifname)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .mtu(plan.mtu)
        .controller(bridge)
        .up()
        .build();
    let op = format!(
        "ip link add {} master {} up type veth peer {} address {}",
        plan.host_ifname, plan.bridge, plan.peer_ifname, plan.mac
    );
    links::add(host, message, &op).await
}

/// Moves the container end into the sandbox and renames it there, in one message.
/// Like `ip link set PEER_IFNAME netns SANDBOX name IFNAME up`.
async fn move_peer(host: &Handle, sandbox_file: &File, plan: &LocalEndpointPlan) -> Result<(), DataplaneError> {
    let peer = links::find(host, &plan.peer_ifname).await?.ok_or_else(|| DataplaneError::NoSuchInterface {
        name: plan.peer_ifname.clone(),
    })?;
    let message = LinkUnspec::new_with_index(peer.index)
        .setns_by_fd(sandbox_file.as_raw_fd())
        .name(plan.ifname.clone())
        .up()
        .build();
    let result = host.link().set(message).execute().await;
    match result {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EEXIST) => Err(DataplaneError::IfnameTaken {
            ifname: plan.ifname.clone(),
            sandbox: plan.sandbox.display().to_string(),
        }),
        Err(e) => Err(links::netlink(format!("ip link set {} netns SANDBOX name {}", plan.peer_ifname, plan.ifname), e)),
    }
}

/// Sets the container end's MAC, MTU, addresses and default routes.
async fn configure_inside(sandbox: &Handle, peer: &Link, plan: &LocalEndpointPlan) -> Result<(), DataplaneError> {
    let settings = Settings {
        mac: plan.mac,
        mtu: plan.mtu,
        ipv4: plan.ipv4,
        ipv6: plan.ipv6,
    };
    interface::configure(sandbox, peer, &settings).await?;
    interface::replace_default_route4(sandbox, peer.index, plan.gateway4).await?;
    if let Some(gateway6) = plan.gateway6 {
        interface::replace_default_route6(sandbox, peer.index, gateway6).await?;
    }
    Ok(())
}

/// Sends a gratuitous ARP and, for dual-stack endpoints, an unsolicited neighbour
/// advertisement. A lost announcement only delays peers until their entries
/// expire, so failures are logged and not returned.
fn announce(sandbox: &Sandbox, peer: &Link, plan: &LocalEndpointPlan) {
    let arp = announce::send_gratuitous_arp(&sandbox.packet, peer.index, plan.mac, plan.ipv4.addr());
    if let Err(error) = arp {
        tracing::warn!(endpoint.id = %plan.endpoint_id, %error, "gratuitous ARP failed");
    }
    if let Some(ipv6) = plan.ipv6 {
        let na = announce::send_unsolicited_na(&sandbox.packet, peer.index, plan.mac, ipv6.addr());
        if let Err(error) = na {
            tracing::warn!(endpoint.id = %plan.endpoint_id, %error, "unsolicited neighbour advertisement failed");
        }
    }
}
