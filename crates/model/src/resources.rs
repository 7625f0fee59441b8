use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{MacAddr, Publication, SecurityGroup};

/// Free-form key/value labels attached to a resource.
pub type Labels = BTreeMap<String, String>;

/// The isolation boundary: nothing of one tenant reaches another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
    /// Store revision of the last change; an update carrying another value is rejected.
    #[serde(default)]
    pub resource_version: u64,
}

/// Request body that creates a tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct TenantSpec {
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
}

/// One layer-2 segment of a tenant, carried between hosts by VXLAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Network {
    pub id: String,
    pub tenant: String,
    pub name: String,
    /// VXLAN network identifier, unique across the deployment.
    pub vni: u32,
    #[schema(value_type = String, example = "10.10.0.0/24")]
    pub subnet: Ipv4Net,
    #[schema(value_type = Option<String>, example = "fd00:10::/64")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
    #[schema(value_type = String, example = "10.10.0.1")]
    pub gateway: Ipv4Addr,
    #[schema(value_type = Option<String>)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
    /// MAC of the distributed gateway, the same on every host.
    pub gateway_mac: MacAddr,
    /// Overlay MTU set by the operator; when absent each host derives it from its underlay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Endpoints may reach the outside through source NAT.
    #[serde(default)]
    pub external: bool,
    /// Broadcast and unknown unicast are replicated to the network's VTEPs.
    #[serde(default)]
    pub flood: bool,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub resource_version: u64,
}

/// Request body that creates a network; omitted fields are allocated.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct NetworkSpec {
    pub name: String,
    #[schema(value_type = String, example = "10.10.0.0/24")]
    pub subnet: Ipv4Net,
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub subnet6: Option<Ipv6Net>,
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    #[serde(default)]
    pub vni: Option<u32>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub external: bool,
    #[serde(default)]
    pub flood: bool,
    #[serde(default)]
    pub labels: Labels,
}

/// A container's interface on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Endpoint {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub network: String,
    /// Id of the network, so a network recreated under the same name is not confused with it.
    pub network_id: String,
    /// Name of the host whose agent programs this endpoint.
    pub host: String,
    pub mac: MacAddr,
    #[schema(value_type = String, example = "10.10.0.2")]
    pub ipv4: Ipv4Addr,
    #[schema(value_type = Option<String>)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// Interface name inside the container's namespace.
    pub ifname: String,
    /// Path of the container's network namespace as seen by the agent.
    pub sandbox: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub resource_version: u64,
}

/// Interface name inside the container when an endpoint's spec names none.
pub const DEFAULT_IFNAME: &str = "eth0";

/// Request body that creates an endpoint; omitted fields are allocated.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct EndpointSpec {
    /// Endpoint name; generated from the network name when absent.
    #[serde(default)]
    pub name: Option<String>,
    pub network: String,
    pub host: String,
    #[serde(default)]
    pub mac: Option<MacAddr>,
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    #[serde(default)]
    pub ifname: Option<String>,
    pub sandbox: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub labels: Labels,
}

/// A machine running an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Host {
    pub name: String,
    /// Address the host's VXLAN devices send from and receive on (the VTEP).
    #[schema(value_type = String, example = "192.0.2.11")]
    pub underlay_ip: IpAddr,
    pub underlay_mtu: u32,
    pub vxlan_port: u16,
    /// Seconds since the Unix epoch of the last registration or heartbeat. Host watches
    /// do not send writes that change only this field, so there it may be older.
    pub last_heartbeat: u64,
    #[serde(default)]
    pub resource_version: u64,
}

/// Request body an agent sends to register its host.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HostSpec {
    pub name: String,
    #[schema(value_type = String)]
    pub underlay_ip: IpAddr,
    pub underlay_mtu: u32,
    pub vxlan_port: u16,
}

/// One object carried by a host's watch stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WatchObject {
    Network(Network),
    Endpoint(Endpoint),
    Host(Host),
    /// A security group of a tenant with an endpoint on the host.
    Group(SecurityGroup),
    /// A publication of an endpoint on the host.
    Publication(Publication),
}

/// One message of a host's watch stream (newline-delimited JSON).
///
/// A stream starts with a `snapshot` when the requested revision is absent, no longer
/// in the controller's history of recent changes, or older than a tenant's arrival on
/// the host or departure from it. The agent then replaces its whole desired state.
/// After that come `put` and `delete` events in revision order, and `bookmark`s that
/// only advance the revision so a resumed watch starts late enough.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WatchEvent {
    Snapshot {
        revision: u64,
        networks: Vec<Network>,
        endpoints: Vec<Endpoint>,
        hosts: Vec<Host>,
        /// Security groups of the tenants that have a network in `networks`.
        #[serde(default)]
        groups: Vec<SecurityGroup>,
        /// Publications of the endpoints on the host.
        #[serde(default)]
        publications: Vec<Publication>,
    },
    Put {
        revision: u64,
        object: WatchObject,
    },
    Delete {
        revision: u64,
        object: WatchObject,
    },
    Bookmark {
        revision: u64,
    },
}

impl WatchEvent {
    /// Returns the store revision this event brings the receiver to.
    pub fn revision(&self) -> u64 {
        match self {
            WatchEvent::Snapshot { revision, .. }
            | WatchEvent::Put { revision, .. }
            | WatchEvent::Delete { revision, .. }
            | WatchEvent::Bookmark { revision } => *revision,
        }
    }
}

/// Request body that changes an endpoint's security groups or labels; fields left out
/// keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EndpointUpdate {
    /// The version the change was based on; the controller rejects it with 409 when the
    /// endpoint changed since.
    pub resource_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
}

/// Counts and the store revision, returned by the controller's status call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    pub revision: u64,
    pub tenants: u64,
    pub networks: u64,
    pub endpoints: u64,
    pub hosts: u64,
}
