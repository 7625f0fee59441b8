//! The logical model of cloison: tenants, networks, endpoints and hosts, with
//! the validation rules every entry point applies before anything is stored.

mod error;
mod mac;
mod resources;
mod validate;

pub use error::ValidationError;
pub use mac::MacAddr;
pub use resources::{
    Endpoint, EndpointSpec, EndpointUpdate, Host, HostSpec, Labels, Network, NetworkSpec, Status, Tenant, TenantSpec,
    WatchEvent, WatchObject,
};
pub use validate::{
    validate_ifname, validate_name, validate_subnet4, validate_subnet6, IFNAMSIZ_MAX, NAME_MAX,
    VNI_MAX, VNI_MIN,
};
