//! IPv4 gateways and endpoint addresses. The usable host addresses of a subnet are
//! those between its network and broadcast addresses.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use cloison_model::validate_subnet4;
use ipnet::{IpNet, Ipv4Net};

use crate::error::Unusable;
use crate::search::first_free_wrapping;
use crate::IpamError;

/// Returns the first usable address of `subnet`, cloison's default gateway. The subnet
/// must satisfy `validate_subnet4` (prefix /8 to /30).
pub fn default_gateway4(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()).saturating_add(1))
}

/// Checks that `gateway` is a usable host address of `subnet`.
pub fn check_gateway4(subnet: Ipv4Net, gateway: Ipv4Addr) -> Result<(), IpamError> {
    check_host(subnet, gateway, "gateway")
}

/// Checks an address requested for an endpoint: a usable host address of `subnet`
/// other than the gateway.
pub fn check_requested_ipv4(
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    ip: Ipv4Addr,
) -> Result<(), IpamError> {
    check_host(subnet, ip, "address")?;
    if ip == gateway {
        return Err(IpamError::Gateway {
            ip: IpAddr::V4(ip),
            subnet: IpNet::V4(subnet),
        });
    }
    Ok(())
}

/// Picks the first free usable address after `start_after`, wrapping around to the
/// start of the subnet. Passing the last allocated address spreads allocations over the
/// subnet, so a released address is not handed out again at once.
pub fn next_free_ipv4(
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
    start_after: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, IpamError> {
    validate_subnet4(&subnet)?;
    let (first, last) = host_range(subnet);
    let used_in = |from: u128, to: u128| {
        used.range(to_addr(from)..=to_addr(to))
            .map(|ip| u128::from(u32::from(*ip)))
    };
    let found = first_free_wrapping(
        u128::from(first),
        u128::from(last),
        Some(u128::from(u32::from(gateway))),
        start_after.map(|ip| u128::from(u32::from(ip))),
        used_in,
    );
    found.map(to_addr).ok_or_else(|| IpamError::Exhausted {
        subnet: IpNet::V4(subnet),
        capacity: capacity(subnet, gateway),
    })
}

/// Counts the addresses [`next_free_ipv4`] could still hand out.
pub fn free_ipv4_count(subnet: Ipv4Net, gateway: Ipv4Addr, used: &BTreeSet<Ipv4Addr>) -> u64 {
    let (first, last) = host_range(subnet);
    if first > last {
        return 0;
    }
    let in_use = used
        .range(Ipv4Addr::from(first)..=Ipv4Addr::from(last))
        .filter(|ip| **ip != gateway)
        .count();
    capacity(subnet, gateway).saturating_sub(in_use as u64)
}

/// Returns the first and last usable host addresses as integers. The range is empty
/// (`first > last`) for /31 and /32.
fn host_range(subnet: Ipv4Net) -> (u32, u32) {
    let network = u32::from(subnet.network());
    let broadcast = u32::from(subnet.broadcast());
    (network.saturating_add(1), broadcast.saturating_sub(1))
}

/// Counts the usable host addresses other than the gateway.
fn capacity(subnet: Ipv4Net, gateway: Ipv4Addr) -> u64 {
    let (first, last) = host_range(subnet);
    if first > last {
        return 0;
    }
    let hosts = u64::from(last - first) + 1;
    let gateway = u32::from(gateway);
    if (first..=last).contains(&gateway) {
        hosts - 1
    } else {
        hosts
    }
}

/// Checks that `ip` is inside `subnet` and neither its network nor its broadcast address.
fn check_host(subnet: Ipv4Net, ip: Ipv4Addr, role: &'static str) -> Result<(), IpamError> {
    validate_subnet4(&subnet)?;
    let reason = if !subnet.contains(&ip) {
        Unusable::Outside
    } else if ip == subnet.network() {
        Unusable::Network
    } else if ip == subnet.broadcast() {
        Unusable::Broadcast
    } else {
        return Ok(());
    };
    let (first, last) = host_range(subnet);
    let usable = (
        IpAddr::V4(Ipv4Addr::from(first)),
        IpAddr::V4(Ipv4Addr::from(last)),
    );
    Err(reason.error(role, IpAddr::V4(ip), IpNet::V4(subnet), usable))
}

/// Converts a search result back to an address. Every value searched comes from a
/// `u32`, so the fallback is never taken.
fn to_addr(value: u128) -> Ipv4Addr {
    Ipv4Addr::from(u32::try_from(value).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().expect("valid subnet")
    }

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().expect("valid address")
    }

    fn set(addresses: &[&str]) -> BTreeSet<Ipv4Addr> {
        addresses.iter().map(|text| ip(text)).collect()
    }

    #[test]
    fn default_gateway_is_first_usable() {
        assert_eq!(default_gateway4(net("10.1.0.0/24")), ip("10.1.0.1"));
        assert_eq!(default_gateway4(net("10.0.0.0/8")), ip("10.0.0.1"));
    }

    #[test]
    fn gateway_must_be_usable_host() {
        let subnet = net("10.1.0.0/24");
        assert_eq!(check_gateway4(subnet, ip("10.1.0.1")), Ok(()));
        assert_eq!(check_gateway4(subnet, ip("10.1.0.254")), Ok(()));
        assert!(matches!(
            check_gateway4(subnet, ip("10.1.0.0")),
            Err(IpamError::NetworkAddress {
                role: "gateway",
                ..
            })
        ));
        assert!(matches!(
            check_gateway4(subnet, ip("10.1.0.255")),
            Err(IpamError::BroadcastAddress {
                role: "gateway",
                ..
            })
        ));
        assert!(matches!(
            check_gateway4(subnet, ip("10.2.0.1")),
            Err(IpamError::OutsideSubnet {
                role: "gateway",
                ..
            })
        ));
    }

    #[test]
    fn requested_address_rejections() {
        let subnet = net("192.168.4.0/22");
        let gateway = ip("192.168.4.1");
        assert_eq!(
            check_requested_ipv4(subnet, gateway, ip("192.168.7.254")),
            Ok(())
        );
        assert!(matches!(
            check_requested_ipv4(subnet, gateway, ip("192.168.8.1")),
            Err(IpamError::OutsideSubnet { .. })
        ));
        assert!(matches!(
            check_requested_ipv4(subnet, gateway, ip("192.168.4.0")),
            Err(IpamError::NetworkAddress { .. })
        ));
        assert!(matches!(
            check_requested_ipv4(subnet, gateway, ip("192.168.7.255")),
            Err(IpamError::BroadcastAddress { .. })
        ));
        assert!(matches!(
            check_requested_ipv4(subnet, gateway, gateway),
            Err(IpamError::Gateway { .. })
        ));
    }

    #[test]
    fn outside_message_names_subnet_and_range() {
        let err = check_requested_ipv4(net("10.1.0.0/24"), ip("10.1.0.1"), ip("10.9.0.5"))
            .expect_err("outside the subnet");
        assert_eq!(
            err.to_string(),
            "address 10.9.0.5 is outside subnet 10.1.0.0/24; use an address from 10.1.0.1 to 10.1.0.254"
        );
    }

    #[test]
    fn invalid_subnet_rejected() {
        let err = next_free_ipv4(net("10.1.0.0/31"), ip("10.1.0.1"), &set(&[]), None);
        assert!(matches!(err, Err(IpamError::Subnet(_))), "{err:?}");
        let err = check_gateway4(net("10.1.0.0/32"), ip("10.1.0.0"));
        assert!(matches!(err, Err(IpamError::Subnet(_))), "{err:?}");
    }

    #[test]
    fn slash30_has_one_address_besides_gateway() {
        let subnet = net("10.0.0.0/30");
        let gateway = default_gateway4(subnet);
        assert_eq!(free_ipv4_count(subnet, gateway, &set(&[])), 1);

        let first = next_free_ipv4(subnet, gateway, &set(&[]), None).expect("one free");
        assert_eq!(first, ip("10.0.0.2"));
        let err =
            next_free_ipv4(subnet, gateway, &set(&["10.0.0.2"]), None).expect_err("exhausted");
        assert_eq!(
            err,
            IpamError::Exhausted {
                subnet: IpNet::V4(subnet),
                capacity: 1
            }
        );
        assert!(err.to_string().contains("10.0.0.0/30"), "{err}");
    }

    #[test]
    fn slash8_allocates_and_counts() {
        let subnet = net("10.0.0.0/8");
        let gateway = default_gateway4(subnet);
        assert_eq!(
            next_free_ipv4(subnet, gateway, &set(&[]), None),
            Ok(ip("10.0.0.2"))
        );
        assert_eq!(free_ipv4_count(subnet, gateway, &set(&[])), (1 << 24) - 3);
        let after = Some(ip("10.255.255.253"));
        assert_eq!(
            next_free_ipv4(subnet, gateway, &set(&[]), after),
            Ok(ip("10.255.255.254"))
        );
    }

    #[test]
    fn skips_used_and_gateway() {
        let subnet = net("10.1.0.0/24");
        let used = set(&["10.1.0.2", "10.1.0.3", "10.1.0.5"]);
        assert_eq!(
            next_free_ipv4(subnet, ip("10.1.0.1"), &used, None),
            Ok(ip("10.1.0.4"))
        );
        // A custom gateway inside the range is skipped like a used address.
        assert_eq!(
            next_free_ipv4(subnet, ip("10.1.0.4"), &used, None),
            Ok(ip("10.1.0.1"))
        );
        let used = set(&["10.1.0.1", "10.1.0.2"]);
        assert_eq!(
            next_free_ipv4(subnet, ip("10.1.0.3"), &used, None),
            Ok(ip("10.1.0.4"))
        );
    }

    #[test]
    fn wraps_around_after_start() {
        let subnet = net("10.1.0.0/29");
        let gateway = ip("10.1.0.1");
        let used = set(&["10.1.0.3", "10.1.0.6"]);
        assert_eq!(
            next_free_ipv4(subnet, gateway, &used, Some(ip("10.1.0.4"))),
            Ok(ip("10.1.0.5"))
        );
        assert_eq!(
            next_free_ipv4(subnet, gateway, &used, Some(ip("10.1.0.5"))),
            Ok(ip("10.1.0.2"))
        );
        assert_eq!(
            next_free_ipv4(subnet, gateway, &used, Some(ip("10.1.0.6"))),
            Ok(ip("10.1.0.2"))
        );
        // A start outside the subnet starts from its first address.
        assert_eq!(
            next_free_ipv4(subnet, gateway, &used, Some(ip("8.8.8.8"))),
            Ok(ip("10.1.0.2"))
        );
    }

    #[test]
    fn never_returns_network_or_broadcast() {
        let subnet = net("10.1.0.0/29");
        let gateway = ip("10.1.0.1");
        let mut used = BTreeSet::new();
        while let Ok(next) = next_free_ipv4(subnet, gateway, &used, used.last().copied()) {
            assert_ne!(next, subnet.network());
            assert_ne!(next, subnet.broadcast());
            assert_ne!(next, gateway);
            assert!(used.insert(next), "{next} handed out twice");
        }
        assert_eq!(used.len(), 5);
        assert_eq!(free_ipv4_count(subnet, gateway, &used), 0);
    }

    #[test]
    fn count_ignores_foreign_entries() {
        let subnet = net("10.1.0.0/24");
        let used = set(&["10.1.0.0", "10.1.0.1", "10.1.0.7", "10.1.0.255", "10.2.0.9"]);
        assert_eq!(free_ipv4_count(subnet, ip("10.1.0.1"), &used), 252);
    }

    #[test]
    fn slash16_with_60k_used_is_fast() {
        let subnet = net("10.20.0.0/16");
        let gateway = default_gateway4(subnet);
        let base = u32::from(subnet.network());
        let used: BTreeSet<Ipv4Addr> = (2..60_002).map(|i| Ipv4Addr::from(base + i)).collect();

        let started = std::time::Instant::now();
        for _ in 0..100 {
            let next = next_free_ipv4(subnet, gateway, &used, None).expect("free address left");
            assert_eq!(next, Ipv4Addr::from(base + 60_002));
        }
        // 100 searches through 60 000 used entries: linear walks take milliseconds even
        // in a debug build, a per-address scan of a Vec would take minutes.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(free_ipv4_count(subnet, gateway, &used), 65_533 - 60_000);
    }
}
