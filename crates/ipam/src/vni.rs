//! VXLAN network identifiers: 24 bits, with 0 left unused by cloison.

use std::collections::BTreeSet;

use cloison_model::{VNI_MAX, VNI_MIN};

use crate::search::first_free_wrapping;
use crate::IpamError;

/// Checks that `vni` fits VXLAN's 24 bits and is not 0.
pub fn check_vni(vni: u32) -> Result<(), IpamError> {
    if (VNI_MIN..=VNI_MAX).contains(&vni) {
        Ok(())
    } else {
        Err(IpamError::VniOutOfRange { vni })
    }
}

/// Picks the first VNI not in `used` after `start_after`, wrapping around to 1.
pub fn next_free_vni(used: &BTreeSet<u32>, start_after: Option<u32>) -> Result<u32, IpamError> {
    let taken_in = |from: u128, to: u128| {
        let from = to_vni(from);
        let to = to_vni(to);
        used.range(from..=to).map(|vni| u128::from(*vni))
    };
    first_free_wrapping(
        u128::from(VNI_MIN),
        u128::from(VNI_MAX),
        None,
        start_after.map(u128::from),
        taken_in,
    )
    .map(to_vni)
    .ok_or(IpamError::VnisExhausted)
}

/// Converts a search value back; every value searched lies in `VNI_MIN..=VNI_MAX`.
fn to_vni(value: u128) -> u32 {
    u32::try_from(value).unwrap_or(VNI_MAX)
}
