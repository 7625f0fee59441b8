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
    let taken_in = |from: u128, to: u128| {
        used.range(to_mac(from)..=to_mac(to))
            .map(|mac| u128::from(mac.low_bits()))
    };
    // `first_free_wrapping` starts after its argument, so start one before the seed.
    let start_after = start.checked_sub(1);
    let found = first_free_wrapping(0, MAC_LOW_MAX, None, start_after, taken_in);
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
