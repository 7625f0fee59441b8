use cloison_ipam::IpamError;
use cloison_model::ValidationError;
use cloison_store::StoreError;
use thiserror::Error;

/// Failures of the controller. Each message names the value at fault and, where there
/// is one, what would be accepted; `http::error` maps each variant to one status.
#[derive(Debug, Error)]
pub enum ControllerError {
    /// The request breaks a rule of the model.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The request is malformed in a way the model's rules do not cover.
    #[error("invalid request: {0}")]
    BadRequest(String),
    #[error("{kind} {name} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} {name} already exists")]
    AlreadyExists { kind: &'static str, name: String },
    /// A delete was rejected because other resources still use the resource. The
    /// remedy names what to remove first and the command that removes it.
    #[error("{kind} {name} is in use by {users}; {remedy}")]
    InUse {
        kind: &'static str,
        name: String,
        users: String,
        remedy: String,
    },
    /// Two networks of one tenant would share addresses.
    #[error("subnet {subnet} overlaps subnet {other_subnet} of network {other_network} in the same tenant; choose a disjoint subnet")]
    Overlap {
        subnet: String,
        other_network: String,
        other_subnet: String,
    },
    /// A network's subnet contains the underlay address of a registered host.
    #[error("subnet {subnet} contains the underlay address {address} of host {host}; choose a subnet without it, because the tenant's router would route replies to that address into the network, which breaks published ports and egress")]
    UnderlayOverlap {
        subnet: String,
        address: String,
        host: String,
    },
    /// A requested VNI, address or MAC is valid but already allocated.
    #[error("{what} is already taken by {owner}")]
    Taken { what: String, owner: String },
    /// A publication would give one host port of one host two targets in the tenant's
    /// router, whose port map finds the target by protocol and host port alone.
    #[error("host port {host_port}/{protocol} on host {host} already leads to {target} through publication {holder}. Publications of one tenant that share a host port on one host must lead to the same endpoint port, because the tenant's router finds the endpoint by host port alone. Publish {target} on this address, or choose another host port")]
    PortTarget {
        host_port: u16,
        protocol: String,
        host: String,
        target: String,
        holder: String,
    },
    /// A gateway, address, MAC or VNI was rejected by the allocation rules, or the
    /// pool is exhausted.
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// An update carried a resource_version other than the stored one.
    #[error("{kind} {name} changed since version {requested}; the current version is {current}: read it again and retry")]
    StaleVersion {
        kind: &'static str,
        name: String,
        requested: u64,
        current: u64,
    },
    /// Other writers kept changing the same records; the request may be retried.
    #[error("{what}: too many concurrent changes, retry the request")]
    Contention { what: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored record {key} cannot be decoded: {source}")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}
