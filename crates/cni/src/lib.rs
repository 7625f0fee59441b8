//! `cloison-cni`: a CNI plugin (specification 1.1.0, reading configurations of
//! 0.3.1, 0.4.0, 1.0.0 and 1.1.0) that attaches containers to cloison networks.
//!
//! The plugin keeps no state of its own. It asks the local agent to create an
//! endpoint named after the attachment (CNI network, container id, interface
//! name), so addresses come from cloison's IPAM, and finds that endpoint again by
//! name for DEL and CHECK and by label for GC.

mod agent;
mod commands;
mod config;
mod env;
mod error;
mod http;
mod naming;
mod result;
mod version;

pub use agent::Agent;
pub use commands::{run, version_reply};
pub use config::{parse_version, Attachment, NetConf, PortMapping, Requested, RuntimeConfig, DEFAULT_AGENT_SOCKET};
pub use env::{parse_args, CniArgs, Command, Invocation};
pub use error::{CniError, ErrorCode};
pub use http::HttpError;
pub use naming::{endpoint_name, LABEL_CONTAINER_ID, LABEL_IFNAME, LABEL_NETWORK};
pub use result::{add_result, check_prev_result};
pub use version::{SpecVersion, SUPPORTED};
