use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use cloison_model::MacAddr;
use ipnet::{Ipv4Net, Ipv6Net};

/// A tenant's router namespace, pinned by a bind mount at `netns_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterPlan {
    pub tenant_id: String,
    pub netns_path: PathBuf,
    /// The link between the router namespace and the host, present when the tenant
    /// needs one (egress or publications).
    pub transit: Option<TransitPlan>,
}

/// The transit veth pair of a tenant's router: `host_ifname` in the host namespace
/// with `host_ipv4`, `router_ifname` in the router namespace with `router_ipv4`, both
/// in one /31 of the link-local pool. The router's default route points at the host
/// end. The host reaches the router end only through the /31's connected route, so
/// overlapping tenant subnets never appear in the host's routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitPlan {
    pub host_ifname: String,
    pub router_ifname: String,
    pub host_ipv4: Ipv4Addr,
    pub router_ipv4: Ipv4Addr,
}

/// The distributed gateway of one network: a veth pair whose `host_port` end is a
/// port of the network's bridge and whose `router_port` end lives in the tenant's
/// router namespace with the gateway addresses and MAC, identical on every host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayPlan {
    pub host_port: String,
    pub router_port: String,
    pub router_netns: PathBuf,
    /// Gateway address with the network's prefix length.
    pub ipv4: Ipv4Net,
    pub ipv6: Option<Ipv6Net>,
    pub mac: MacAddr,
}

/// One network present on this host: bridge, VXLAN device and gateway port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    pub network_id: String,
    pub vni: u32,
    /// Like `ip link add NAME type bridge`, with no address in the host namespace.
    pub bridge: String,
    /// Like `ip link add NAME type vxlan id VNI local VTEP dstport PORT nolearning proxy`.
    pub vxlan: String,
    /// MTU of every interface of the network on this host.
    pub mtu: u32,
    pub local_vtep: IpAddr,
    pub vxlan_port: u16,
    /// VTEPs that receive broadcast and unknown unicast (all-zero FDB entries).
    /// Empty unless the network has flooding on.
    pub flood_vteps: Vec<IpAddr>,
    pub gateway: GatewayPlan,
}

/// An endpoint of a container on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpointPlan {
    pub endpoint_id: String,
    pub bridge: String,
    /// Host end of the veth pair, a port of `bridge`.
    pub host_ifname: String,
    /// Path of the container's network namespace (`/run/netns/NAME`, `/proc/PID/ns/net`).
    pub sandbox: PathBuf,
    /// Name of the interface inside the container.
    pub ifname: String,
    pub mac: MacAddr,
    pub ipv4: Ipv4Net,
    pub ipv6: Option<Ipv6Net>,
    pub gateway4: Ipv4Addr,
    pub gateway6: Option<Ipv6Addr>,
    pub mtu: u32,
}

impl LocalEndpointPlan {
    /// Sandbox value of an endpoint whose container end a container runtime takes
    /// over: Docker's remote driver protocol names the interface, and Docker moves
    /// it into the container, renames it and sets its addresses and routes.
    pub const HANDOFF_SANDBOX: &'static str = "handoff";

    /// Returns true when the container end stays in the host namespace under
    /// `ifname`, unconfigured, for a runtime to take over.
    pub fn is_handoff(&self) -> bool {
        self.sandbox.as_os_str() == Self::HANDOFF_SANDBOX
    }
}

/// A network namespace's cookie (`SO_NETNS_COOKIE`), which the kernel gives each
/// namespace when it creates it and never gives another until it reboots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NetnsCookie(pub u64);

impl std::fmt::Display for NetnsCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An endpoint on another host of a network present here: a static FDB entry
/// (`bridge fdb replace MAC dev VXLAN dst VTEP self permanent`) and static neighbour
/// entries (`ip neigh replace IP lladdr MAC dev VXLAN nud permanent`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteEndpointPlan {
    pub vxlan: String,
    pub mac: MacAddr,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
    pub vtep: IpAddr,
}

/// A network cloison owns on this host, as found in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedNetwork {
    pub network_id: String,
    pub vni: u32,
    pub bridge: Option<String>,
    pub vxlan: Option<String>,
}

/// A local endpoint cloison owns on this host, as found in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedEndpoint {
    pub endpoint_id: String,
    pub host_ifname: String,
}

/// Everything carrying cloison's mark on this host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub networks: Vec<OwnedNetwork>,
    pub endpoints: Vec<OwnedEndpoint>,
    /// Static FDB and neighbour entries on cloison's VXLAN devices, merged per MAC.
    pub remote_endpoints: Vec<RemoteEndpointPlan>,
    /// Router namespaces pinned under the agent's run directory.
    pub routers: Vec<PathBuf>,
}

/// An nftables change for one namespace, applied by `nft -f -` as one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftablesPlan {
    /// Router namespace the script is for, or `None` for the host namespace.
    pub namespace: Option<PathBuf>,
    /// The `nft -f` script: table replacements or element commands.
    pub script: String,
    /// Tables (`family name`) the namespace contains once the script is applied.
    pub tables: Vec<String>,
    /// IP forwarding for IPv4 and IPv6 in the namespace, or `None` to leave it.
    pub forwarding: Option<bool>,
}

/// Set element changes for one namespace, sent over nftables netlink as one
/// transaction, like an `nft -f` script of `add element` and `delete element`
/// commands but without starting `nft`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftElementsPlan {
    /// Router namespace the changes are for, or `None` for the host namespace.
    pub namespace: Option<PathBuf>,
    /// Changes in the order the kernel applies them.
    pub changes: Vec<NftSetChange>,
}

/// Elements added to or deleted from one set or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftSetChange {
    pub family: NftFamily,
    pub table: String,
    pub set: String,
    /// True for `delete element`, false for `add element`.
    pub delete: bool,
    pub elements: Vec<NftElement>,
}

/// A set element in the kernel's encoding: each field of a concatenation padded
/// to 4 bytes, as `nft` stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftElement {
    pub key: Vec<u8>,
    /// Last key of the range, for sets declared with `flags interval`.
    pub key_end: Option<Vec<u8>>,
    /// The mapped value of a map element.
    pub data: Option<NftData>,
}

/// The mapped value of a map element: bytes, or the verdict of a verdict map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NftData {
    Value(Vec<u8>),
    /// `jump CHAIN`: evaluate that chain of the same table, then come back.
    Jump(String),
}

/// nftables address families, with their `NFPROTO_*` numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NftFamily {
    Inet = 1,
    Ip = 2,
    Arp = 3,
    Netdev = 5,
    Bridge = 7,
    Ip6 = 10,
}

impl NftFamily {
    /// Returns the family of an `nft` family name such as `bridge` or `inet`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "inet" => Some(NftFamily::Inet),
            "ip" => Some(NftFamily::Ip),
            "arp" => Some(NftFamily::Arp),
            "netdev" => Some(NftFamily::Netdev),
            "bridge" => Some(NftFamily::Bridge),
            "ip6" => Some(NftFamily::Ip6),
            _ => None,
        }
    }

    /// Returns the family's `nft` name.
    pub fn name(self) -> &'static str {
        match self {
            NftFamily::Inet => "inet",
            NftFamily::Ip => "ip",
            NftFamily::Arp => "arp",
            NftFamily::Netdev => "netdev",
            NftFamily::Bridge => "bridge",
            NftFamily::Ip6 => "ip6",
        }
    }
}
