//! Docker's remote network driver and IPAM driver for cloison, served on one Unix
//! socket that dockerd discovers in its plugin directory.
//!
//! [`http`] speaks Docker's plugin protocol and nothing else; [`Driver`] maps each
//! call onto cloison networks and endpoints through a [`Backend`], so the protocol
//! and the mapping are tested apart.

mod backend;
mod driver;
mod endpoint;
mod error;
pub mod http;
mod ipam;
mod network;
pub mod protocol;
mod publish;
mod records;

pub use backend::{Attached, Backend};
pub use driver::{Driver, DriverConfig};
pub use error::DriverError;
pub use records::{NetworkBinding, Records};
