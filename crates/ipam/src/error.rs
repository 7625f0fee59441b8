use std::net::IpAddr;

use cloison_model::{MacAddr, ValidationError};
use ipnet::IpNet;
use thiserror::Error;

/// A request the allocator cannot satisfy. Each message names the value, the rule it
/// breaks and what would be accepted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IpamError {
    /// The subnet itself is invalid (prefix length or host bits).
    #[error(transparent)]
    Subnet(#[from] ValidationError),
    /// `role` is "gateway" or "address", the use the address was requested for.
    #[error("{role} {ip} is outside subnet {subnet}; use an address from {first} to {last}")]
    OutsideSubnet {
        role: &'static str,
        ip: IpAddr,
        subnet: IpNet,
        first: IpAddr,
        last: IpAddr,
    },
    #[error(
        "{role} {ip} is the network address of {subnet}; use an address from {first} to {last}"
    )]
    NetworkAddress {
        role: &'static str,
        ip: IpAddr,
        subnet: IpNet,
        first: IpAddr,
        last: IpAddr,
    },
    #[error(
        "{role} {ip} is the broadcast address of {subnet}; use an address from {first} to {last}"
    )]
    BroadcastAddress {
        role: &'static str,
        ip: IpAddr,
        subnet: IpNet,
        first: IpAddr,
        last: IpAddr,
    },
    /// The IPv6 network address, which RFC 4291 defines as the subnet-router anycast address.
    #[error("{role} {ip} is the subnet-router anycast address of {subnet}; use an address from {first} to {last}")]
    SubnetRouterAnycast {
        role: &'static str,
        ip: IpAddr,
        subnet: IpNet,
        first: IpAddr,
        last: IpAddr,
    },
    #[error("address {ip} is the gateway of {subnet}; request another address or let cloison allocate one")]
    Gateway { ip: IpAddr, subnet: IpNet },
    /// `capacity` counts the allocatable addresses: the subnet without its network,
    /// broadcast and gateway addresses.
    #[error("subnet {subnet} is exhausted: all {capacity} allocatable addresses are in use; delete unused endpoints or use a larger subnet")]
    Exhausted { subnet: IpNet, capacity: u64 },
    #[error("invalid VNI {vni}: accepted values are 1 to 16777215")]
    VniOutOfRange { vni: u32 },
    #[error("all 16777215 VNIs are in use; delete unused networks")]
    VnisExhausted,
    #[error("MAC {mac} is a multicast or broadcast address; use a unicast MAC (bit 0 of the first byte clear) such as 0a:00:00:00:00:01")]
    MacMulticast { mac: MacAddr },
    #[error("MAC {mac} is the all-zero address; use a unicast MAC such as 0a:00:00:00:00:01")]
    MacZero { mac: MacAddr },
}

/// Reason an address cannot be a host address, kept until the error is built.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Unusable {
    Outside,
    Network,
    Broadcast,
    SubnetRouterAnycast,
}

impl Unusable {
    /// Builds the error for `ip`, naming the usable range `first..=last` of `subnet`.
    pub(crate) fn error(
        self,
        role: &'static str,
        ip: IpAddr,
        subnet: IpNet,
        (first, last): (IpAddr, IpAddr),
    ) -> IpamError {
        match self {
            Unusable::Outside => IpamError::OutsideSubnet {
                role,
                ip,
                subnet,
                first,
                last,
            },
            Unusable::Network => IpamError::NetworkAddress {
                role,
                ip,
                subnet,
                first,
                last,
            },
            Unusable::Broadcast => IpamError::BroadcastAddress {
                role,
                ip,
                subnet,
                first,
                last,
            },
            Unusable::SubnetRouterAnycast => IpamError::SubnetRouterAnycast {
                role,
                ip,
                subnet,
                first,
                last,
            },
        }
    }
}
