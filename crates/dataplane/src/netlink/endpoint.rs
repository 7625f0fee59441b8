//! Local endpoints: a veth pair whose host end is a bridge port and whose other
//! end is the container's interface inside its sandbox namespace.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{Handle, LinkUnspec, LinkVeth};

use super::interface::{self, Settings};
use super::links::{self, Link, Desired};
use super::{announce, namespace, unlink};
use crate::{names, DataplaneError, LocalEndpointPlan, NetnsCookie};

/// Sockets opened inside a sandbox namespace.
struct Sandbox {
    netlink: Handle,
    /// Always `Some` until the sandbox is dropped.
    packet: Option<OwnedFd>,
}

impl Drop for Sandbox {
    /// Closes the packet socket on a blocking thread, because the kernel waits for
    /// an RCU grace period when a packet socket is released (`synchronize_net` in
    /// `packet_release`). That took about 11 ms under strace on a 2-core VM running
    /// Linux 6.18.
    fn drop(&mut self) {
        let packet = self.packet.take();
        if let (Some(packet), Ok(runtime)) = (packet, tokio::runtime::Handle::try_current()) {
            runtime.spawn_blocking(move || drop(packet));
        }
    }
}

/// Creates or repairs a local endpoint, then announces its addresses. Returns the
/// cookie of the sandbox namespace. See [`crate::Dataplane::ensure_local_endpoint`]
/// for `expected`. `host_cookies` are the namespaces no endpoint may be created in.
pub(super) async fn ensure(
    host: &Handle,
    host_cookies: &[NetnsCookie],
    plan: &LocalEndpointPlan,
    expected: Option<NetnsCookie>,
) -> Result<NetnsCookie, DataplaneError> {
    let sandbox_file = namespace::open(&plan.sandbox)?;
    // The namespace worker opens the sandbox sockets while the bridge is looked up.
    let (sandbox, bridge) = futures::try_join!(open_sandbox(&sandbox_file), find_bridge(host, plan))?;
    // Every change below goes through `sandbox_file`, which keeps this namespace
    // alive, so the namespace checked is the one changed.
    let cookie = check_namespace(&sandbox, host_cookies, plan, expected)?;

    let peer = match create(host, &sandbox, &sandbox_file, plan, bridge).await? {
        Some(peer) => peer,
        None => adopt_or_recreate(host, &sandbox, &sandbox_file, plan, bridge).await?,
    };
    announce(&sandbox, &peer, plan);
    Ok(cookie)
}

/// Returns the cookie of the sandbox namespace after checking that it is
/// `expected`, when given, and none of `host_cookies`.
fn check_namespace(
    sandbox: &Sandbox,
    host_cookies: &[NetnsCookie],
    plan: &LocalEndpointPlan,
    expected: Option<NetnsCookie>,
) -> Result<NetnsCookie, DataplaneError> {
    let packet = sandbox.packet.as_ref().ok_or_else(|| DataplaneError::Io {
        op: "read the sandbox's packet socket".into(),
        source: std::io::Error::from_raw_os_error(libc::EBADF),
    })?;
    let found = namespace::socket_cookie(packet.as_fd())?;
    if let Some(expected) = expected.filter(|expected| *expected != found) {
        return Err(DataplaneError::NamespaceReplaced {
            endpoint_id: plan.endpoint_id.clone(),
            sandbox: plan.sandbox.display().to_string(),
            expected,
            found,
        });
    }
    if host_cookies.contains(&found) {
        return Err(DataplaneError::HostNamespace { sandbox: plan.sandbox.display().to_string() });
    }
    Ok(found)
}

/// Deletes an endpoint's host end, which takes the container end with it, on a
/// socket of its own (see [`unlink`]). `host_netns` is the namespace playing the
/// host, `None` for the process's own. Like `ip link del HOST_IFNAME`.
pub(super) async fn remove(host: &Handle, host_netns: Option<&Path>, host_ifname: &str) -> Result<(), DataplaneError> {
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
    unlink::delete(host_netns, link.index, &link.name).await
}

/// Returns the index of the network's bridge. Like `ip link show BRIDGE`.
async fn find_bridge(host: &Handle, plan: &LocalEndpointPlan) -> Result<u32, DataplaneError> {
    let bridge = links::find(host, &plan.bridge).await?.ok_or_else(|| DataplaneError::NoSuchInterface {
        name: plan.bridge.clone(),
    })?;
    Ok(bridge.index)
}

/// Opens a netlink connection and a packet socket in the sandbox, both on the
/// namespace worker.
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
    Ok(Sandbox {
        netlink,
        packet: Some(packet),
    })
}

/// Adopts an existing endpoint, or recreates it when its container end is no
/// longer at `ifname` in the sandbox.
async fn adopt_or_recreate(
    host: &Handle,
    sandbox: &Sandbox,
    sandbox_file: &File,
    plan: &LocalEndpointPlan,
    bridge: u32,
) -> Result<Link, DataplaneError> {
    if let Some(peer) = adopt(host, sandbox, plan, bridge).await? {
        configure_inside(&sandbox.netlink, &peer, plan).await?;
        return Ok(peer);
    }
    // `adopt` deleted the host end, so it exists again only if another caller
    // created it meanwhile. A retry adopts it.
    create(host, sandbox, sandbox_file, plan, bridge)
        .await?
        .ok_or_else(|| DataplaneError::Io {
            op: format!("ip link add {} (created concurrently by another caller)", plan.host_ifname),
            source: std::io::Error::from_raw_os_error(libc::EEXIST),
        })
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
    if interrupted_creation(&link) {
        tracing::warn!(endpoint.id = %plan.endpoint_id, ifname = %link.name, "removing the unmarked host end of an interrupted creation");
        links::delete(host, link.index).await?;
        return Ok(None);
    }
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

/// Returns true for a host end that [`add_pair`] created but [`finish`] never
/// marked, because the agent stopped in between: a veth without alias, down and
/// on no bridge, under the name derived from the endpoint's id.
fn interrupted_creation(link: &Link) -> bool {
    link.alias.is_none() && link.master.is_none() && !link.up && link.kind == Some(InfoKind::Veth)
}

/// Creates the pair with its container end already in the sandbox, then marks
/// and configures it. Returns `None`, having changed nothing, when the host end
/// exists already. On any other failure the pair is deleted again, so nothing
/// half-made stays.
async fn create(
    host: &Handle,
    sandbox: &Sandbox,
    sandbox_file: &File,
    plan: &LocalEndpointPlan,
    bridge: u32,
) -> Result<Option<Link>, DataplaneError> {
    match add_pair(host, sandbox_file, plan).await {
        Ok(()) => {}
        Err(e) if e.errno() == Some(libc::EEXIST) => return exists_error(host, plan).await,
        Err(e) => return Err(e),
    }
    let result = finish(host, sandbox, plan, bridge).await;
    if result.is_err() {
        links::delete_by_name(host, &plan.host_ifname).await?;
    }
    result.map(Some)
}

/// Tells which name made the pair's creation fail with `EEXIST`: `None` when the
/// host end exists, so the caller adopts it, or [`DataplaneError::IfnameTaken`]
/// when it is the container end's name in the sandbox.
async fn exists_error(host: &Handle, plan: &LocalEndpointPlan) -> Result<Option<Link>, DataplaneError> {
    if links::find(host, &plan.host_ifname).await?.is_some() {
        return Ok(None);
    }
    Err(DataplaneError::IfnameTaken {
        ifname: plan.ifname.clone(),
        sandbox: plan.sandbox.display().to_string(),
    })
}

/// Marks the new host end as cloison's, puts it on the bridge and brings it up,
/// all in one message, and configures the container end. A host end that carries
/// traffic therefore always carries the alias, which the policy and the repair
/// pass go by, even when the agent is killed in between.
async fn finish(host: &Handle, sandbox: &Sandbox, plan: &LocalEndpointPlan, bridge: u32) -> Result<Link, DataplaneError> {
    let alias = names::endpoint_alias(&plan.endpoint_id);
    let mark = LinkUnspec::new_with_name(&plan.host_ifname).alias(&alias).controller(bridge).up().build();
    let op = format!("ip link set {} alias {alias} master {} up", plan.host_ifname, plan.bridge);
    let (_, peer) = futures::try_join!(
        links::set(host, mark, &op),
        links::find(&sandbox.netlink, &plan.ifname)
    )?;
    let peer = peer.ok_or_else(|| DataplaneError::NoSuchInterface {
        name: plan.ifname.clone(),
    })?;
    configure_inside(&sandbox.netlink, &peer, plan).await?;
    Ok(peer)
}

/// Creates the pair in one message, with the container end created directly in
/// the sandbox under its final name. Moving a link between namespaces instead
/// waits for an RCU grace period, which took about 15 ms under strace on a 2-core
/// VM running Linux 6.18. Both ends stay down and off the bridge here: [`finish`]
/// marks the host end and then joins it to the bridge, and `configure_inside`
/// brings the container end up. Like `ip link add HOST_IFNAME mtu M type veth peer
/// name IFNAME address MAC mtu M netns SANDBOX`.
async fn add_pair(host: &Handle, sandbox_file: &File, plan: &LocalEndpointPlan) -> Result<(), DataplaneError> {
    let peer = LinkUnspec::new_with_name(&plan.ifname)
        .address(plan.mac.0.to_vec())
        .mtu(plan.mtu)
        .setns_by_fd(sandbox_file.as_raw_fd())
        .build();
    let message = LinkVeth::new(&plan.host_ifname, &plan.ifname)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .mtu(plan.mtu)
        .build();
    let op = format!(
        "ip link add {} type veth peer {} address {} netns {}",
        plan.host_ifname,
        plan.ifname,
        plan.mac,
        plan.sandbox.display()
    );
    links::add(host, message, &op).await
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
    interface::replace_default_route(sandbox, peer.index, plan.gateway4.into()).await?;
    if let Some(gateway6) = plan.gateway6 {
        interface::replace_default_route(sandbox, peer.index, gateway6.into()).await?;
    }
    Ok(())
}

/// Sends a gratuitous ARP and, for dual-stack endpoints, an unsolicited neighbour
/// advertisement. A lost announcement only delays peers until their entries
/// expire, so failures are logged and not returned.
fn announce(sandbox: &Sandbox, peer: &Link, plan: &LocalEndpointPlan) {
    let Some(packet) = &sandbox.packet else {
        return;
    };
    let arp = announce::send_gratuitous_arp(packet, peer.index, plan.mac, plan.ipv4.addr());
    if let Err(error) = arp {
        tracing::warn!(endpoint.id = %plan.endpoint_id, %error, "gratuitous ARP failed");
    }
    if let Some(ipv6) = plan.ipv6 {
        let na = announce::send_unsolicited_na(packet, peer.index, plan.mac, ipv6.addr());
        if let Err(error) = na {
            tracing::warn!(endpoint.id = %plan.endpoint_id, %error, "unsolicited neighbour advertisement failed");
        }
    }
}
