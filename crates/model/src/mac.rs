use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ValidationError;

/// An Ethernet MAC address, written as `02:42:ac:11:00:02`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Returns true for a locally administered address (bit 1 of the first byte).
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// Returns true for a multicast or broadcast address (bit 0 of the first byte).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Builds a locally administered unicast MAC from the low 40 bits of `value`, under
    /// the prefix `0a`, the range cloison allocates from.
    pub fn local_from_u64(value: u64) -> Self {
        let b = value.to_be_bytes();
        MacAddr([0x0a, b[3], b[4], b[5], b[6], b[7]])
    }

    /// Returns the low 40 bits, the inverse of [`MacAddr::local_from_u64`].
    pub fn low_bits(&self) -> u64 {
        let mut b = [0u8; 8];
        b[3..].copy_from_slice(&self.0[1..]);
        u64::from_be_bytes(b)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ValidationError::Mac { mac: s.to_string() };
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(invalid());
        }
        let mut out = [0u8; 6];
        for (slot, part) in out.iter_mut().zip(parts) {
            if part.len() != 2 {
                return Err(invalid());
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| invalid())?;
        }
        let mac = MacAddr(out);
        if mac.is_multicast() {
            return Err(ValidationError::MacMulticast { mac: mac.to_string() });
        }
        if out == [0; 6] {
            return Err(ValidationError::MacZero { mac: mac.to_string() });
        }
        Ok(mac)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for MacAddr {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .examples([serde_json::json!("0a:3f:00:00:00:02")])
            .into()
    }
}

impl utoipa::ToSchema for MacAddr {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_through_text() {
        let mac: MacAddr = "0a:01:02:03:04:ff".parse().expect("valid");
        assert_eq!(mac.to_string(), "0a:01:02:03:04:ff");
        assert!(mac.is_local());
    }

    #[test]
    fn mac_rejects_multicast_and_garbage() {
        for bad in ["01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "0a:01", "zz:01:02:03:04:05"] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn mac_multicast_has_own_message() {
        for multicast in ["01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "33:33:00:00:00:01"] {
            let err = multicast.parse::<MacAddr>().expect_err(multicast);
            assert!(matches!(err, ValidationError::MacMulticast { .. }), "{multicast}: {err}");
            let text = err.to_string();
            assert!(text.contains("multicast address"), "{text}");
            assert!(text.contains("use a unicast address"), "{text}");
            assert!(!text.contains("expected six hex bytes"), "{text}");
        }
        let err = "00:00:00:00:00:00".parse::<MacAddr>().expect_err("zero");
        assert!(matches!(err, ValidationError::MacZero { .. }), "{err}");
        assert!(err.to_string().contains("all zeros"), "{err}");
        let err = "0a:01".parse::<MacAddr>().expect_err("short");
        assert!(err.to_string().contains("expected six hex bytes"), "{err}");
    }

    #[test]
    fn mac_local_bits_round_trip() {
        let mac = MacAddr::local_from_u64(0x12_3456_789a);
        assert_eq!(mac.low_bits(), 0x12_3456_789a);
        assert!(mac.is_local());
        assert!(!mac.is_multicast());
    }
}
