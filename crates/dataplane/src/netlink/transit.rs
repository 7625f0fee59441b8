//! A tenant router's transit link: the veth pair between the router namespace and
//! the host that egress and publications cross.

use rtnetlink::Handle;

use super::interface::{replace_address, replace_default_route};
use super::links::{self, Link};
use super::namespace;
use crate::{names, DataplaneError, RouterPlan, TransitPlan};

/// Prefix length of a transit link: a /31 holds exactly its two ends.
const PREFIX: u8 = 31;

/// Creates or repairs the transit pair of a router: addresses on both ends, the
/// router's default route via the host end, and `route_localnet` on the host end so
/// that a publication bound to 127.0.0.1 can be forwarded to the router.
pub(super) async fn ensure(
    host: &Handle,
    host_netns: Option<&std::path::Path>,
    plan: &RouterPlan,
    transit: &TransitPlan,
) -> Result<(), DataplaneError> {
    let router_netns = namespace::open(&plan.netns_path)?;
    let router = namespace::connect_in(&router_netns).await?;
    let alias = names::transit_alias(&plan.tenant_id);
    let host_end = match links::find(host, &transit.host_ifname).await? {
        Some(link) if links::find(&router, &transit.router_ifname).await?.is_some() => {
            links::check_owner(&link, &alias)?;
            link
        }
        Some(link) => {
            // The router end died with an earlier router namespace: start over.
            links::check_owner(&link, &alias)?;
            links::delete(host, link.index).await?;
            create(host, &router, transit, &alias, &router_netns).await?
        }
        None => create(host, &router, transit, &alias, &router_netns).await?,
    };
    configure_host_end(host, host_netns, &host_end, transit).await?;
    configure_router_end(&router, transit).await
}

/// Like `ip link add HOST_END up type veth peer ROUTER_END netns ROUTER`, then
/// `ip link set HOST_END alias ALIAS`. A router end left without its host end is
/// deleted first, so the pair can take its name.
async fn create(
    host: &Handle,
    router: &Handle,
    transit: &TransitPlan,
    alias: &str,
    router_netns: &std::fs::File,
) -> Result<Link, DataplaneError> {
    links::delete_by_name(router, &transit.router_ifname).await?;
    let message = links::veth_with_peer_in(&transit.host_ifname, &transit.router_ifname, router_netns, None)
        .up()
        .build();
    let op = format!("ip link add {} up type veth peer {} netns ROUTER", transit.host_ifname, transit.router_ifname);
    links::add_marked(host, message, &transit.host_ifname, alias, &op).await?;
    links::find(host, &transit.host_ifname)
        .await?
        .ok_or_else(|| DataplaneError::NoSuchInterface { name: transit.host_ifname.clone() })
}

/// Like `ip addr replace HOST/31 dev HOST_END` and
/// `sysctl net.ipv4.conf.HOST_END.route_localnet=1`.
async fn configure_host_end(
    host: &Handle,
    host_netns: Option<&std::path::Path>,
    link: &Link,
    transit: &TransitPlan,
) -> Result<(), DataplaneError> {
    if !link.up {
        links::set_up_by_name(host, &transit.host_ifname).await?;
    }
    replace_address(host, link.index, transit.host_ipv4.into(), PREFIX).await?;
    let path = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", transit.host_ifname);
    let write = move || std::fs::write(&path, "1");
    let result = match host_netns {
        Some(netns) => namespace::run_in(&namespace::open(netns)?, write).await?,
        None => write(),
    };
    result.map_err(|source| DataplaneError::Io { op: format!("enable route_localnet on {}", transit.host_ifname), source })
}

/// Like `ip addr replace ROUTER/31 dev ROUTER_END`, `ip link set ROUTER_END up` and
/// `ip route replace default via HOST dev ROUTER_END`.
async fn configure_router_end(router: &Handle, transit: &TransitPlan) -> Result<(), DataplaneError> {
    let link = links::find(router, &transit.router_ifname)
        .await?
        .ok_or_else(|| DataplaneError::NoSuchInterface { name: transit.router_ifname.clone() })?;
    if !link.up {
        links::set_up_by_name(router, &transit.router_ifname).await?;
    }
    replace_address(router, link.index, transit.router_ipv4.into(), PREFIX).await?;
    replace_default_route(router, link.index, transit.host_ipv4.into()).await
}
