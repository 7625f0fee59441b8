//! IPv6 gateways and endpoint addresses. IPv6 has no broadcast address, but the
//! network address is the subnet-router anycast address (RFC 4291, section 2.6.1), so
//! the usable host addresses run from the network address + 1 to the last address.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};

use cloison_model::validate_subnet6;
use ipnet::{IpNet, Ipv6Net};

use crate::error::Unusable;
use crate::search::first_free_wrapping;
use crate::IpamError;

/// Returns the network address + 1, cloison's default IPv6 gateway.
pub fn default_gateway6(subnet: Ipv6Net) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(subnet.network()).saturating_add(1))
}

/// Checks that `gateway` is a usable host address of `subnet`.
pub fn check_gateway6(subnet: Ipv6Net, gateway: Ipv6Addr) -> Result<(), IpamError> {
    check_host(subnet, gateway, "gateway")
}

/// Checks an address requested for an endpoint: inside `subnet`, not its
/// subnet-router anycast address and not the gateway.
pub fn check_requested_ipv6(
    subnet: Ipv6Net,
    gateway: Ipv6Addr,
    ip: Ipv6Addr,
) -> Result<(), IpamError> {
    check_host(subnet, ip, "address")?;
    if ip == gateway {
        return Err(IpamError::Gateway {
            ip: IpAddr::V6(ip),
            subnet: IpNet::V6(subnet),
        });
    }
    Ok(())
}

/// Picks the first free host address after `start_after`, wrapping around, counting up
/// from the network address + 1 and skipping the gateway. With the default gateway the
/// first address handed out is the network address + 2.
pub fn next_free_ipv6(
    subnet: Ipv6Net,
    gateway: Ipv6Addr,
    used: &BTreeSet<Ipv6Addr>,
    start_after: Option<Ipv6Addr>,
) -> Result<Ipv6Addr, IpamError> {
    validate_subnet6(&subnet)?;
    let (first, last) = host_range(subnet);
    let taken_in = |from: u128, to: u128| {
        used.range(Ipv6Addr::from(from)..=Ipv6Addr::from(to))
            .map(|ip| u128::from(*ip))
    };
    let found = first_free_wrapping(
        first,
        last,
        Some(u128::from(gateway)),
        start_after.map(u128::from),
        taken_in,
    );
    found.map(Ipv6Addr::from).ok_or_else(|| IpamError::Exhausted {
        subnet: IpNet::V6(subnet),
        capacity: capacity(subnet, gateway),
    })
}

fn host_range(subnet: Ipv6Net) -> (u128, u128) {
    let network = u128::from(subnet.network());
    let last = u128::from(subnet.broadcast());
    (network.saturating_add(1), last)
}

/// Counts the host addresses other than the gateway, saturating at `u64::MAX`
/// (a /64 holds 2^64 - 2 of them).
fn capacity(subnet: Ipv6Net, gateway: Ipv6Addr) -> u64 {
    let (first, last) = host_range(subnet);
    if first > last {
        return 0;
    }
    let mut hosts = last - first + 1;
    if (first..=last).contains(&u128::from(gateway)) {
        hosts -= 1;
    }
    u64::try_from(hosts).unwrap_or(u64::MAX)
}

fn check_host(subnet: Ipv6Net, ip: Ipv6Addr, what: &'static str) -> Result<(), IpamError> {
    validate_subnet6(&subnet)?;
    let reason = if !subnet.contains(&ip) {
        Unusable::Outside
    } else if ip == subnet.network() {
        Unusable::SubnetRouterAnycast
    } else {
        return Ok(());
    };
    let (first, last) = host_range(subnet);
    let usable = (
        IpAddr::V6(Ipv6Addr::from(first)),
        IpAddr::V6(Ipv6Addr::from(last)),
    );
    Err(reason.error(what, IpAddr::V6(ip), IpNet::V6(subnet), usable))
}
