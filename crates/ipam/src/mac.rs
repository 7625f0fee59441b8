//! Endpoint MACs. cloison allocates locally administered unicast MACs under the `0a`
//! prefix (see `MacAddr::local_from_u64`), which leaves 2^40 of them.

use std::collections::BTreeSet;

use cloison_model::MacAddr;

use crate::search::first_free_wrapping;
use crate::IpamError;

/// Low bits of the last MAC under the `0a` prefix.
const MAC_LOW_MAX: u128 = (1 << 40) - 1;

/// Picks the first MAC under the `0a` prefix not in `used`, starting at the low 40 bits
/// of `seed` and wrapping around. Deriving the seed from the endpoint id makes the MAC
/// stable across retries of one request. A free MAC always exists, because `used`
/// cannot hold 2^40 entries.
pub fn next_free_mac(used: &BTreeSet<MacAddr>, seed: u64) -> MacAddr {
    let start = u128::from(seed) & MAC_LOW_MAX;
    let used_in = |from: u128, to: u128| {
        used.range(to_mac(from)..=to_mac(to))
            .map(|mac| u128::from(mac.low_bits()))
    };
    // `first_free_wrapping` starts after its argument, so start one before the seed.
    let start_after = start.checked_sub(1);
    let found = first_free_wrapping(0, MAC_LOW_MAX, None, start_after, used_in);
    found.map_or_else(|| to_mac(start), to_mac)
}

/// Checks a MAC requested for an endpoint: it must be unicast and not all zeros.
pub fn check_requested_mac(mac: MacAddr) -> Result<(), IpamError> {
    if mac.is_multicast() {
        return Err(IpamError::MacMulticast { mac });
    }
    if mac.0 == [0; 6] {
        return Err(IpamError::MacZero { mac });
    }
    Ok(())
}

fn to_mac(low: u128) -> MacAddr {
    MacAddr::local_from_u64(u64::try_from(low & MAC_LOW_MAX).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(text: &str) -> MacAddr {
        text.parse().expect("valid MAC")
    }

    #[test]
    fn seed_gives_local_unicast_mac() {
        let found = next_free_mac(&BTreeSet::new(), 0x12_3456_789a);
        assert_eq!(found, mac("0a:12:34:56:78:9a"));
        assert!(found.is_local());
        assert!(!found.is_multicast());
    }

    #[test]
    fn seed_uses_low_40_bits() {
        let found = next_free_mac(&BTreeSet::new(), 0xffff_ff00_0000_0001);
        assert_eq!(found, mac("0a:00:00:00:00:01"));
    }

    #[test]
    fn skips_used_macs() {
        let used: BTreeSet<MacAddr> = [mac("0a:00:00:00:00:05"), mac("0a:00:00:00:00:06")].into();
        assert_eq!(next_free_mac(&used, 5), mac("0a:00:00:00:00:07"));
    }

    #[test]
    fn wraps_around_at_top() {
        let used: BTreeSet<MacAddr> = [mac("0a:ff:ff:ff:ff:ff"), MacAddr::local_from_u64(0)].into();
        assert_eq!(
            next_free_mac(&used, (1 << 40) - 1),
            mac("0a:00:00:00:00:01")
        );
    }

    #[test]
    fn requested_mac_rules() {
        assert_eq!(check_requested_mac(mac("02:42:ac:11:00:02")), Ok(()));
        let multicast = MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]);
        assert_eq!(
            check_requested_mac(multicast),
            Err(IpamError::MacMulticast { mac: multicast })
        );
        let broadcast = MacAddr([0xff; 6]);
        assert!(matches!(
            check_requested_mac(broadcast),
            Err(IpamError::MacMulticast { .. })
        ));
        let zero = MacAddr([0; 6]);
        assert_eq!(
            check_requested_mac(zero),
            Err(IpamError::MacZero { mac: zero })
        );
    }
}
