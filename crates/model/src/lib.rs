//! The logical model of cloison: tenants, networks, endpoints, security groups and
//! hosts, with the validation rules every entry point applies before anything is stored.

mod api_error;
mod error;
mod groups;
mod mac;
mod publications;
mod resources;
mod validate;

pub use api_error::{ErrorBody, ErrorDetail};
pub use error::ValidationError;
pub use groups::{Direction, Peer, Protocol, Rule, SecurityGroup, SecurityGroupSpec};
pub use mac::MacAddr;
pub use publications::{Publication, PublicationSpec, PublishProtocol};
pub use resources::{
    DEFAULT_IFNAME,
    Endpoint, EndpointSpec, EndpointUpdate, Host, HostSpec, Labels, Network, NetworkSpec, Status, Tenant, TenantSpec,
    WatchEvent, WatchObject,
};
pub use validate::{
    validate_ifname, validate_name, validate_subnet4, validate_subnet6, IFNAMSIZ_MAX, NAME_MAX,
    VNI_MAX, VNI_MIN,
};
