//! Allocation rules for networks and endpoints: gateways, IPv4 and IPv6 addresses, VNIs
//! and MACs.
//!
//! Everything here is pure: the controller reads the values in use from the store,
//! calls these functions inside its transaction, and writes the result back, so two
//! controllers racing for one value are settled by the store's compare-and-swap.

mod error;
mod ipv4;
mod ipv6;
mod mac;
mod search;
mod vni;

pub use error::IpamError;
pub use ipv4::{
    check_gateway4, check_requested_ipv4, default_gateway4, free_ipv4_count, next_free_ipv4,
};
pub use ipv6::{check_gateway6, check_requested_ipv6, default_gateway6, next_free_ipv6};
pub use mac::{check_requested_mac, next_free_mac};
pub use vni::{check_vni, next_free_vni};
