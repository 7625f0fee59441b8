//! IPv6 gateways and endpoint addresses. IPv6 has no broadcast address, but the
//! network address is the subnet-router anycast address (RFC 4291), so
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
    let used_in = |from: u128, to: u128| {
        used.range(Ipv6Addr::from(from)..=Ipv6Addr::from(to))
            .map(|ip| u128::from(*ip))
    };
    let found = first_free_wrapping(
        first,
        last,
        Some(u128::from(gateway)),
        start_after.map(u128::from),
        used_in,
    );
    found
        .map(Ipv6Addr::from)
        .ok_or_else(|| IpamError::Exhausted {
            subnet: IpNet::V6(subnet),
            capacity: capacity(subnet, gateway),
        })
}

// Limitation: the highest 128 addresses of a subnet, which RFC 2526 reserves for subnet
// anycast, are handed out like any other; this matters once a subnet is nearly full.
fn host_range(subnet: Ipv6Net) -> (u128, u128) {
    let network = u128::from(subnet.network());
    let last = u128::from(subnet.broadcast());
    (network.saturating_add(1), last)
}

/// Counts the host addresses other than the gateway, saturating at `u64::MAX`
/// (a /64 contains 2^64 - 2 of them).
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

fn check_host(subnet: Ipv6Net, ip: Ipv6Addr, role: &'static str) -> Result<(), IpamError> {
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
    Err(reason.error(role, IpAddr::V6(ip), IpNet::V6(subnet), usable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv6Net {
        text.parse().expect("valid subnet")
    }

    fn ip(text: &str) -> Ipv6Addr {
        text.parse().expect("valid address")
    }

    #[test]
    fn default_gateway_is_network_plus_one() {
        assert_eq!(default_gateway6(net("fd00:1::/64")), ip("fd00:1::1"));
    }

    #[test]
    fn gateway_rules() {
        let subnet = net("fd00:1::/64");
        assert_eq!(check_gateway6(subnet, ip("fd00:1::1")), Ok(()));
        assert!(matches!(
            check_gateway6(subnet, ip("fd00:1::")),
            Err(IpamError::SubnetRouterAnycast {
                role: "gateway",
                ..
            })
        ));
        assert!(matches!(
            check_gateway6(subnet, ip("fd00:2::1")),
            Err(IpamError::OutsideSubnet {
                role: "gateway",
                ..
            })
        ));
    }

    #[test]
    fn requested_address_rejections() {
        let subnet = net("fd00:1::/120");
        let gateway = ip("fd00:1::1");
        // No broadcast in IPv6: the last address is a host address.
        assert_eq!(
            check_requested_ipv6(subnet, gateway, ip("fd00:1::ff")),
            Ok(())
        );
        assert!(matches!(
            check_requested_ipv6(subnet, gateway, ip("fd00:1::100")),
            Err(IpamError::OutsideSubnet { .. })
        ));
        assert!(matches!(
            check_requested_ipv6(subnet, gateway, ip("fd00:1::")),
            Err(IpamError::SubnetRouterAnycast { .. })
        ));
        assert!(matches!(
            check_requested_ipv6(subnet, gateway, gateway),
            Err(IpamError::Gateway { .. })
        ));
    }

    #[test]
    fn invalid_prefix_rejected() {
        let subnet = net("fd00:1::/56");
        let err = next_free_ipv6(subnet, ip("fd00:1::1"), &BTreeSet::new(), None);
        assert!(matches!(err, Err(IpamError::Subnet(_))), "{err:?}");
        let subnet = net("fd00:1::/124");
        let err = check_requested_ipv6(subnet, ip("fd00:1::1"), ip("fd00:1::2"));
        assert!(matches!(err, Err(IpamError::Subnet(_))), "{err:?}");
    }

    #[test]
    fn allocates_sequentially_from_network_plus_two() {
        let subnet = net("fd00:1::/64");
        let gateway = default_gateway6(subnet);
        let mut used = BTreeSet::new();
        for expected in ["fd00:1::2", "fd00:1::3", "fd00:1::4"] {
            let next = next_free_ipv6(subnet, gateway, &used, None).expect("free address");
            assert_eq!(next, ip(expected));
            used.insert(next);
        }
    }

    #[test]
    fn wraps_around_to_start() {
        let subnet = net("fd00:1::/120");
        let gateway = default_gateway6(subnet);
        let used: BTreeSet<Ipv6Addr> = [ip("fd00:1::2"), ip("fd00:1::ff")].into();
        let after = Some(ip("fd00:1::fe"));
        assert_eq!(
            next_free_ipv6(subnet, gateway, &used, after),
            Ok(ip("fd00:1::3"))
        );
    }

    #[test]
    fn slash120_exhausts_with_subnet_in_message() {
        let subnet = net("fd00:1::/120");
        let gateway = default_gateway6(subnet);
        let base = u128::from(subnet.network());
        let used: BTreeSet<Ipv6Addr> = (2..=255).map(|i| Ipv6Addr::from(base + i)).collect();
        let err = next_free_ipv6(subnet, gateway, &used, None).expect_err("exhausted");
        assert_eq!(
            err,
            IpamError::Exhausted {
                subnet: IpNet::V6(subnet),
                capacity: 254
            }
        );
        assert!(err.to_string().contains("fd00:1::/120"), "{err}");
    }

    #[test]
    fn slash64_capacity_fits_u64() {
        let subnet = net("fd00:1::/64");
        assert_eq!(capacity(subnet, default_gateway6(subnet)), u64::MAX - 1);
    }
}
