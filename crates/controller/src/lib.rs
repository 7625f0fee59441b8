//! The cloison controller: validates requests, allocates VNIs, addresses and MACs,
//! stores tenants, networks, endpoints and hosts, and streams to each host the part
//! of that state its agent needs.
//!
//! [`Controller`] is the service layer, independent of HTTP, and [`router`] and
//! [`serve`] put the REST API under `/v1` in front of it. The controller keeps no
//! state that the store does not hold, apart from locks and allocation cursors that
//! only make allocation cheaper. The host watches read the [`DeploymentIndex`], a copy
//! of the store fed by one store watch. So several controllers may share one store.

mod alloc;
mod controller;
mod endpoints;
mod error;
mod groups;
mod hosts;
mod http;
mod keys;
mod networks;
mod publications;
mod records;
mod remedy;
mod rule_refs;
mod tenants;
mod underlay;
mod watch;

pub use controller::{Controller, EndpointFilter};
pub use error::ControllerError;
pub use http::{router, serve, ApiDoc, ErrorBody, ErrorDetail};
pub use watch::{Change, ChangeKind, DeploymentIndex, HostWatchFilter, TenantContents};
