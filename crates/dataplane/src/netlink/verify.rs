//! Read-only comparison of a local endpoint with the kernel, for callers such as
//! CNI CHECK that must report drift without repairing it.

use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::Handle;

use super::links::{self, Link};
use super::namespace;
use crate::{names, DataplaneError, LocalEndpointPlan};

/// Returns every difference between `plan` and the kernel, empty when none.
/// Like `ip link show HOST_IFNAME` and `ip -n SANDBOX addr show IFNAME`.
pub(super) async fn local_endpoint(host: &Handle, plan: &LocalEndpointPlan) -> Result<Vec<String>, DataplaneError> {
    let mut problems = host_end(host, plan).await?;
    if plan.is_handoff() {
        // The runtime owns the container end once it has taken it over.
        return Ok(problems);
    }
    let Ok(file) = namespace::open(&plan.sandbox) else {
        problems.push(format!("network namespace {} cannot be opened", plan.sandbox.display()));
        return Ok(problems);
    };
    let sandbox = namespace::connect_in(&file).await?;
    match links::find(&sandbox, &plan.ifname).await? {
        Some(peer) => problems.extend(container_end(&sandbox, &peer, plan).await?),
        None => problems.push(format!("interface {} is missing in {}", plan.ifname, plan.sandbox.display())),
    }
    Ok(problems)
}

async fn host_end(host: &Handle, plan: &LocalEndpointPlan) -> Result<Vec<String>, DataplaneError> {
    let Some(link) = links::find(host, &plan.host_ifname).await? else {
        return Ok(vec![format!("host interface {} is missing", plan.host_ifname)]);
    };
    let mut problems = Vec::new();
    if let Err(e) = links::check_owner(&link, &names::endpoint_alias(&plan.endpoint_id)) {
        problems.push(e.to_string());
    }
    let bridge = links::find(host, &plan.bridge).await?.map(|b| b.index);
    if bridge.is_none() || link.master != bridge {
        problems.push(format!("host interface {} is not a port of bridge {}", plan.host_ifname, plan.bridge));
    }
    if !link.up {
        problems.push(format!("host interface {} is down", plan.host_ifname));
    }
    Ok(problems)
}

async fn container_end(sandbox: &Handle, peer: &Link, plan: &LocalEndpointPlan) -> Result<Vec<String>, DataplaneError> {
    let mut problems = Vec::new();
    if peer.mac.as_deref() != Some(&plan.mac.0[..]) {
        problems.push(format!("interface {} does not have MAC {}", plan.ifname, plan.mac));
    }
    if !peer.up {
        problems.push(format!("interface {} is down", plan.ifname));
    }
    if peer.mtu != Some(plan.mtu) {
        problems.push(format!("interface {} has MTU {:?}, expected {}", plan.ifname, peer.mtu, plan.mtu));
    }
    let present = addresses(sandbox, peer.index).await?;
    let mut wanted = vec![(IpAddr::V4(plan.ipv4.addr()), plan.ipv4.prefix_len())];
    wanted.extend(plan.ipv6.map(|v6| (IpAddr::V6(v6.addr()), v6.prefix_len())));
    for (address, prefix_len) in wanted {
        if !present.contains(&(address, prefix_len)) {
            problems.push(format!("interface {} lacks address {address}/{prefix_len}", plan.ifname));
        }
    }
    Ok(problems)
}

/// Lists the addresses of one link with their prefix lengths. Like `ip addr show dev N`.
async fn addresses(handle: &Handle, index: u32) -> Result<Vec<(IpAddr, u8)>, DataplaneError> {
    let messages: Vec<AddressMessage> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| links::netlink(format!("ip addr show dev {index}"), e))?;
    let found = messages
        .iter()
        .flat_map(|m| {
            m.attributes.iter().filter_map(move |a| match a {
                AddressAttribute::Address(ip) => Some((*ip, m.header.prefix_len)),
                _ => None,
            })
        })
        .collect();
    Ok(found)
}
