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
    let used_in = |from: u128, to: u128| {
        let from = to_vni(from);
        let to = to_vni(to);
        used.range(from..=to).map(|vni| u128::from(*vni))
    };
    first_free_wrapping(
        u128::from(VNI_MIN),
        u128::from(VNI_MAX),
        None,
        start_after.map(u128::from),
        used_in,
    )
    .map(to_vni)
    .ok_or(IpamError::VnisExhausted)
}

/// Converts a search value back; every value searched lies in `VNI_MIN..=VNI_MAX`.
fn to_vni(value: u128) -> u32 {
    u32::try_from(value).unwrap_or(VNI_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_vni_bounds() {
        assert_eq!(check_vni(1), Ok(()));
        assert_eq!(check_vni(16_777_215), Ok(()));
        assert_eq!(check_vni(0), Err(IpamError::VniOutOfRange { vni: 0 }));
        assert_eq!(
            check_vni(16_777_216),
            Err(IpamError::VniOutOfRange { vni: 16_777_216 })
        );
    }

    #[test]
    fn out_of_range_message_states_accepted_values() {
        let message = IpamError::VniOutOfRange { vni: 0 }.to_string();
        assert_eq!(message, "invalid VNI 0: accepted values are 1 to 16777215");
    }

    #[test]
    fn first_vni_is_one() {
        assert_eq!(next_free_vni(&BTreeSet::new(), None), Ok(1));
    }

    #[test]
    fn skips_used_vnis() {
        let used: BTreeSet<u32> = [1, 2, 3, 5].into();
        assert_eq!(next_free_vni(&used, None), Ok(4));
        assert_eq!(next_free_vni(&used, Some(4)), Ok(6));
    }

    #[test]
    fn wraps_around_after_max() {
        let used: BTreeSet<u32> = [1, VNI_MAX].into();
        assert_eq!(next_free_vni(&used, Some(VNI_MAX - 1)), Ok(2));
        assert_eq!(next_free_vni(&used, Some(VNI_MAX)), Ok(2));
    }

    #[test]
    fn ignores_out_of_range_entries() {
        let used: BTreeSet<u32> = [0, 1, VNI_MAX + 1].into();
        assert_eq!(next_free_vni(&used, None), Ok(2));
    }

    #[test]
    fn all_vnis_used_is_exhausted() {
        let used: BTreeSet<u32> = (VNI_MIN..=VNI_MAX).collect();
        assert_eq!(
            next_free_vni(&used, Some(12_345)),
            Err(IpamError::VnisExhausted)
        );
    }
}
