use thiserror::Error;

/// Input that breaks a rule of the model. Each message names the value and what is accepted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ValidationError {
    #[error("invalid {kind} name {name:?}: use 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit")]
    Name { kind: &'static str, name: String },
    #[error("invalid interface name {name:?}: use 1-15 bytes without '/', ':' or whitespace (the kernel's IFNAMSIZ limit)")]
    Ifname { name: String },
    #[error("invalid IPv4 subnet {subnet}: the prefix length must be between /8 and /30")]
    Subnet4Prefix { subnet: String },
    #[error("invalid IPv6 subnet {subnet}: the prefix length must be between /64 and /120")]
    Subnet6Prefix { subnet: String },
    #[error("invalid subnet {subnet}: host bits are set; did you mean {network}?")]
    SubnetHostBits { subnet: String, network: String },
    #[error("invalid subnet {subnet}: it overlaps the reserved {purpose} range {range}; use a private range such as 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, or fd00::/8 for IPv6")]
    SubnetReserved { subnet: String, range: &'static str, purpose: &'static str },
    #[error("invalid VNI {vni}: accepted values are 1 to 16777215")]
    Vni { vni: u32 },
    #[error("invalid MTU {mtu}: accepted values are 576 to 9000 for IPv4-only networks, 1280 to 9000 with IPv6")]
    Mtu { mtu: u32 },
    #[error("invalid gateway {gateway}: it must be a usable address inside {subnet}")]
    Gateway { gateway: String, subnet: String },
    #[error("invalid MAC address {mac:?}: expected six hex bytes separated by ':' or '-', such as 02:42:ac:11:00:02")]
    Mac { mac: String },
    #[error("invalid MAC address {mac}: it is a multicast address (the low bit of the first byte is set); use a unicast address such as 02:42:ac:11:00:02")]
    MacMulticast { mac: String },
    #[error("invalid MAC address {mac}: all zeros is not a usable interface address; use a unicast address such as 02:42:ac:11:00:02")]
    MacZero { mac: String },
    #[error("invalid rule ports: {reason}")]
    RulePorts { reason: String },
    #[error("invalid publication {value:?}: expected {expected}")]
    Publish { value: String, expected: &'static str },
    #[error("invalid publication host address {address}: publications are IPv4 only, because port forwarding and egress NAT are programmed for IPv4; give an IPv4 address such as 127.0.0.1, or none to bind every IPv4 address of the host")]
    PublishIpv6 { address: String },
    #[error("invalid publication host address {address}: it is a {kind} address, which no host interface can have; give an address of the host such as 127.0.0.1, or none to bind every IPv4 address of the host")]
    PublishHostAddress { address: String, kind: &'static str },
    #[error("invalid value {value:?}: expected {expected}")]
    RulePeer { value: String, expected: &'static str },
}
