//! How an attachment (CNI network, container id, interface name) maps to a cloison
//! endpoint, so DEL, CHECK and GC find what ADD made without any local state.

use cloison_model::Labels;

/// Label holding the container id the runtime gave in `CNI_CONTAINERID`.
pub const LABEL_CONTAINER_ID: &str = "cni.cloison.dev/container-id";
/// Label holding `CNI_IFNAME`.
pub const LABEL_IFNAME: &str = "cni.cloison.dev/ifname";
/// Label holding the CNI network name (`name` of the configuration).
pub const LABEL_NETWORK: &str = "cni.cloison.dev/network";

/// Returns the endpoint name of an attachment: `cni-`, up to 12 characters of the
/// container id made name-safe (for operators reading listings), and 16 hex digits
/// of a 64-bit FNV-1a hash over the three identifying values. The hash keeps the
/// name unique; the result always fits cloison's 1-63 `[a-z0-9-]` names.
pub fn endpoint_name(cni_network: &str, container_id: &str, ifname: &str) -> String {
    let readable: String = container_id
        .chars()
        .take(12)
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    let mut hash = Fnv1a::new();
    for part in [cni_network, container_id, ifname] {
        hash.write(part.as_bytes());
        // A separator no value contains, so ("ab","c") and ("a","bc") differ.
        hash.write(&[0]);
    }
    format!("cni-{readable}-{:016x}", hash.finish())
}

/// Returns the labels that record an attachment on its endpoint.
pub(crate) fn labels(cni_network: &str, container_id: &str, ifname: &str) -> Labels {
    Labels::from([
        (LABEL_NETWORK.to_string(), cni_network.to_string()),
        (LABEL_CONTAINER_ID.to_string(), container_id.to_string()),
        (LABEL_IFNAME.to_string(), ifname.to_string()),
    ])
}

/// 64-bit FNV-1a: stable across releases and platforms, which a name derived
/// from it must be, unlike `std`'s randomly seeded hasher.
struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Fnv1a(Self::OFFSET)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloison_model::validate_name;

    #[test]
    fn name_is_valid_and_stable() {
        let long_id = "A".repeat(64);
        for id in ["abc", long_id.as_str(), "Pod_1/x", "-"] {
            let name = endpoint_name("net", id, "eth0");
            assert!(validate_name("endpoint", &name).is_ok(), "{name}");
            assert_eq!(name, endpoint_name("net", id, "eth0"));
        }
    }

    #[test]
    fn name_depends_on_each_part() {
        let base = endpoint_name("net", "c1", "eth0");
        assert_ne!(base, endpoint_name("net", "c1", "eth1"));
        assert_ne!(base, endpoint_name("net2", "c1", "eth0"));
        assert_ne!(base, endpoint_name("net", "c2", "eth0"));
    }

    #[test]
    fn fnv_matches_reference_vector() {
        let mut hash = Fnv1a::new();
        hash.write(b"a");
        assert_eq!(hash.finish(), 0xaf63_dc4c_8601_ec8c);
    }
}
