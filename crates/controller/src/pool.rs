//! The address, MAC and VNI pools the controller allocates from: which values are
//! usable and which one comes next after a cursor. Functions here are pure; the
//! caller passes the set of values already allocated.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use cloison_model::{MacAddr, ValidationError, VNI_MAX, VNI_MIN};
use ipnet::{Ipv4Net, Ipv6Net};

use crate::ControllerError;

/// Returns the first usable address of the subnet, the default gateway.
pub(crate) fn default_gateway4(subnet: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// Checks that a requested gateway is a usable host address of the subnet.
pub(crate) fn check_gateway4(subnet: &Ipv4Net, gateway: Ipv4Addr) -> Result<(), ValidationError> {
    if usable4(subnet, gateway) {
        Ok(())
    } else {
        Err(ValidationError::Gateway {
            gateway: gateway.to_string(),
            subnet: subnet.to_string(),
        })
    }
}

pub(crate) fn check_vni(vni: u32) -> Result<(), ValidationError> {
    if (VNI_MIN..=VNI_MAX).contains(&vni) {
        Ok(())
    } else {
        Err(ValidationError::Vni { vni })
    }
}

/// Returns the first free VNI after `cursor`, wrapping around once.
pub(crate) fn next_free_vni(used: &BTreeSet<u32>, cursor: Option<u32>) -> Option<u32> {
    let start = cursor.unwrap_or(VNI_MIN - 1);
    (start + 1..=VNI_MAX)
        .chain(VNI_MIN..=start.min(VNI_MAX))
        .find(|vni| !used.contains(vni))
}

fn usable4(subnet: &Ipv4Net, ip: Ipv4Addr) -> bool {
    subnet.contains(&ip) && ip != subnet.network() && ip != subnet.broadcast()
}

/// Number of addresses an endpoint can get: all but network, broadcast and gateway.
pub(crate) fn ipv4_capacity(subnet: &Ipv4Net) -> u64 {
    (1u64 << (32 - subnet.prefix_len())) - 3
}

/// Returns the number of addresses still free for endpoints.
pub(crate) fn free_ipv4_count(subnet: &Ipv4Net, used: &BTreeSet<Ipv4Addr>) -> u64 {
    let taken = used.iter().filter(|ip| usable4(subnet, **ip)).count() as u64;
    ipv4_capacity(subnet).saturating_sub(taken)
}

/// Returns the first free usable address after `cursor`, wrapping around once.
pub(crate) fn next_free_ipv4(
    subnet: &Ipv4Net,
    gateway: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
    cursor: Option<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let first = u32::from(subnet.network()) + 1;
    let last = u32::from(subnet.broadcast()) - 1;
    let start = cursor
        .map(u32::from)
        .filter(|c| (first..=last).contains(c))
        .unwrap_or(last);
    let after = (start.saturating_add(1)..=last).chain(first..=start);
    after
        .map(Ipv4Addr::from)
        .find(|ip| *ip != gateway && !used.contains(ip))
}

/// Checks a requested address: inside the subnet, not its network or broadcast
/// address, and not the gateway. Whether it is free is checked by the caller, which
/// knows the owner.
pub(crate) fn check_requested_ipv4(
    subnet: &Ipv4Net,
    gateway: Ipv4Addr,
    ip: Ipv4Addr,
) -> Result<(), ControllerError> {
    let reason = if !subnet.contains(&ip) {
        format!("it is outside subnet {subnet}")
    } else if ip == subnet.network() || ip == subnet.broadcast() {
        format!("it is the network or broadcast address of {subnet}")
    } else if ip == gateway {
        format!("it is the gateway of subnet {subnet}")
    } else {
        return Ok(());
    };
    Err(ControllerError::BadRequest(format!("IPv4 address {ip} cannot be used: {reason}")))
}

/// Returns the first free address after `cursor` in the subnet, skipping the network
/// address and the gateway, wrapping around once.
pub(crate) fn next_free_ipv6(
    subnet: &Ipv6Net,
    gateway: Ipv6Addr,
    used: &BTreeSet<Ipv6Addr>,
    cursor: Option<Ipv6Addr>,
) -> Option<Ipv6Addr> {
    let first = u128::from(subnet.network()) + 1;
    let last = u128::from(subnet.broadcast());
    let start = cursor.map(u128::from).filter(|c| (first..=last).contains(c)).unwrap_or(last);
    // Among used.len() + 2 consecutive candidates at most used.len() + 1 are taken
    // (the allocations and the gateway), so the search ends early in any large subnet.
    let budget = used.len() as u128 + 2;
    let span = last - first + 1;
    (0..budget.min(span))
        .map(|step| first + (start - first + 1 + step) % span)
        .map(Ipv6Addr::from)
        .find(|ip| *ip != gateway && !used.contains(ip))
}

pub(crate) fn check_requested_ipv6(
    subnet: &Ipv6Net,
    gateway: Ipv6Addr,
    ip: Ipv6Addr,
) -> Result<(), ControllerError> {
    let reason = if !subnet.contains(&ip) {
        format!("it is outside subnet {subnet}")
    } else if ip == subnet.network() {
        format!("it is the subnet-router anycast address of {subnet}")
    } else if ip == gateway {
        format!("it is the gateway of subnet {subnet}")
    } else {
        return Ok(());
    };
    Err(ControllerError::BadRequest(format!("IPv6 address {ip} cannot be used: {reason}")))
}

/// Highest value of the 40 bits allocated under the `0a` MAC prefix.
const MAC_MAX: u64 = (1 << 40) - 1;

/// Returns the first free MAC under the `0a` prefix after `cursor`.
pub(crate) fn next_free_mac(used: &BTreeSet<MacAddr>, cursor: Option<MacAddr>) -> Option<MacAddr> {
    let start = cursor.map(|m| m.low_bits()).unwrap_or(0);
    let budget = used.len() as u64 + 1;
    (0..budget)
        .map(|step| (start + step) % MAC_MAX + 1)
        .map(MacAddr::local_from_u64)
        .find(|mac| !used.contains(mac))
}

/// Checks a requested MAC: unicast and not the network's gateway MAC.
pub(crate) fn check_requested_mac(mac: MacAddr, gateway_mac: MacAddr) -> Result<(), ControllerError> {
    if mac.is_multicast() || mac.0 == [0; 6] {
        return Err(ValidationError::Mac { mac: mac.to_string() }.into());
    }
    if mac == gateway_mac {
        return Err(ControllerError::BadRequest(format!(
            "MAC address {mac} cannot be used: it is the network's gateway MAC"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().expect("subnet")
    }

    #[test]
    fn ipv4_skips_gateway_and_wraps() {
        let subnet = net("10.0.0.0/29");
        let gateway = default_gateway4(&subnet);
        let used: BTreeSet<Ipv4Addr> = ["10.0.0.2".parse().expect("ip")].into();
        assert_eq!(next_free_ipv4(&subnet, gateway, &used, None), Some("10.0.0.3".parse().expect("ip")));
        let wrapped = next_free_ipv4(&subnet, gateway, &used, Some("10.0.0.6".parse().expect("ip")));
        assert_eq!(wrapped, Some("10.0.0.3".parse().expect("ip")));
    }

    #[test]
    fn ipv4_full_subnet_returns_none() {
        let subnet = net("10.0.0.0/30");
        let gateway = default_gateway4(&subnet);
        let used: BTreeSet<Ipv4Addr> = ["10.0.0.2".parse().expect("ip")].into();
        assert_eq!(next_free_ipv4(&subnet, gateway, &used, None), None);
        assert_eq!(free_ipv4_count(&subnet, &used), 0);
    }

    #[test]
    fn ipv6_skips_gateway() {
        let subnet: Ipv6Net = "fd00::/120".parse().expect("subnet");
        let gateway: Ipv6Addr = "fd00::1".parse().expect("ip");
        let next = next_free_ipv6(&subnet, gateway, &BTreeSet::new(), None);
        assert_eq!(next, Some("fd00::2".parse().expect("ip")));
    }

    #[test]
    fn mac_allocation_skips_used() {
        let used: BTreeSet<MacAddr> = [MacAddr::local_from_u64(1)].into();
        assert_eq!(next_free_mac(&used, None), Some(MacAddr::local_from_u64(2)));
    }

    #[test]
    fn vni_wraps_after_cursor() {
        let used: BTreeSet<u32> = [1, 2].into();
        assert_eq!(next_free_vni(&used, None), Some(3));
        assert_eq!(next_free_vni(&used, Some(VNI_MAX)), Some(3));
    }
}
