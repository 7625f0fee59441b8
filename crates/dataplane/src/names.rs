//! Names and aliases of the kernel objects cloison creates.
//!
//! Every generated interface name starts with `cl`, fits the kernel's 15-byte
//! limit, and is derived only from values that never change for the object's
//! life (the VNI, the endpoint id), so it is stable across agent restarts. VNIs are
//! unique across the deployment, so network-derived names never collide;
//! endpoint-derived names use 48 random bits of the endpoint id, and the dataplane
//! checks the alias before it adopts an existing interface.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Prefix of the alias that marks an interface as cloison's.
pub const ALIAS_PREFIX: &str = "cloison:";

/// Bridge of a network: `clb` and the VNI in six hex digits.
pub fn bridge(vni: u32) -> String {
    format!("clb{vni:06x}")
}

/// VXLAN device of a network: `clx` and the VNI in six hex digits.
pub fn vxlan(vni: u32) -> String {
    format!("clx{vni:06x}")
}

/// Bridge-side end of a network's gateway veth pair.
pub fn gateway_host_port(vni: u32) -> String {
    format!("clg{vni:06x}")
}

/// Router-side end of a network's gateway veth pair.
pub fn gateway_router_port(vni: u32) -> String {
    format!("clr{vni:06x}")
}

/// Host end of an endpoint's veth pair: `cle` and 12 hex digits of its id.
pub fn endpoint_host(endpoint_id: &str) -> String {
    format!("cle{}", id_digits(endpoint_id))
}

/// Host end of a tenant router's transit veth pair: `clh` and 12 hex digits of a
/// hash of the tenant, so the name is stable and needs no allocation.
pub fn transit_host(tenant: &str) -> String {
    format!("clh{:012x}", fnv1a(tenant) & 0xffff_ffff_ffff)
}

/// Router end of the transit veth pair; each router namespace holds only one.
pub const TRANSIT_ROUTER: &str = "cltransit";

/// Alias of a transit veth's host end.
pub fn transit_alias(tenant: &str) -> String {
    format!("{ALIAS_PREFIX}transit:{tenant}")
}

/// Returns the two ends of the transit /31 with index `slot` in 169.254.1.0 to
/// 169.254.127.255: the host end is even, the router end odd. The pool leaves out
/// 169.254.0.0/24 and 169.254.128.0/17, which hold addresses that clouds and
/// RFC 3927 reserve, such as 169.254.169.254.
pub fn transit_addresses(slot: u16) -> Option<(Ipv4Addr, Ipv4Addr)> {
    if slot >= TRANSIT_SLOTS {
        return None;
    }
    let base = u32::from(Ipv4Addr::new(169, 254, 1, 0)) + 2 * u32::from(slot);
    Some((Ipv4Addr::from(base), Ipv4Addr::from(base + 1)))
}

/// Number of transit /31s in the pool, so the number of tenants one host can give
/// a transit link to.
pub const TRANSIT_SLOTS: u16 = 127 * 128;

/// Path where a tenant's router namespace is pinned.
pub fn router_netns(run_dir: &Path, tenant_id: &str) -> PathBuf {
    run_dir.join("netns").join(format!("router-{tenant_id}"))
}

/// Alias of a network's bridge and VXLAN device.
pub fn network_alias(network_id: &str) -> String {
    format!("{ALIAS_PREFIX}network:{network_id}")
}

/// Alias of a network's gateway port.
pub fn gateway_alias(network_id: &str) -> String {
    format!("{ALIAS_PREFIX}gateway:{network_id}")
}

/// Alias of an endpoint's host-side veth.
pub fn endpoint_alias(endpoint_id: &str) -> String {
    format!("{ALIAS_PREFIX}endpoint:{endpoint_id}")
}

/// Returns the 12 lowercase hex digits an endpoint's interface names are built from:
/// the first 12 hex digits of the id, or of a hash of it when it has fewer.
fn id_digits(endpoint_id: &str) -> String {
    let hex: String = endpoint_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .take(12)
        .collect();
    if hex.len() == 12 {
        return hex;
    }
    // A hash, so ids that are not hex still get a stable name.
    format!("{:012x}", fnv1a(endpoint_id) & 0xffff_ffff_ffff)
}

/// FNV-1a over the bytes of `text`.
fn fnv1a(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz_at_largest_vni() {
        let vni = 16_777_215;
        for name in [bridge(vni), vxlan(vni), gateway_host_port(vni), gateway_router_port(vni)] {
            assert!(name.len() <= 15, "{name} is {} bytes", name.len());
            assert!(name.starts_with("cl"));
        }
        assert_eq!(bridge(vni), "clbffffff");
    }

    #[test]
    fn endpoint_names_fit_and_are_stable() {
        let id = "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f";
        assert_eq!(endpoint_host(id), "cle9f1c2d3e4b5a");
        assert_eq!(endpoint_host(id).len(), 15);
        assert_eq!(endpoint_host(id), endpoint_host(id));
    }

    #[test]
    fn non_hex_ids_still_get_valid_names() {
        let long = "x".repeat(200);
        let name = endpoint_host(&long);
        assert_eq!(name.len(), 15);
        assert_ne!(endpoint_host("web-1"), endpoint_host("web-2"));
    }

    #[test]
    fn network_names_differ_by_vni() {
        assert_ne!(bridge(1), bridge(16));
        assert_ne!(bridge(1), vxlan(1));
    }
}
