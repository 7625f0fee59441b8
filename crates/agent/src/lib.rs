//! The agent: one per host. It registers its host with the controller, follows the
//! host's watch stream, and reconciles the kernel to the desired state through a
//! [`cloison_dataplane::Dataplane`]. It also serves a local socket through which the
//! CLI, the CNI plugin and the Docker driver attach and detach containers.

mod attachment;
mod control;
mod docker;
mod error;
mod plans;
mod reconciler;
mod sandbox;
mod socket;
mod state;
mod watch;

pub use attachment::{CheckRequest, EndpointQuery, LocalAttachment};
pub use control::{AttachRequest, ControlPlane, DetachRequest};
pub use error::AgentError;
pub use plans::HostContext;
pub use reconciler::{ExpectedAttach, PendingDetach, Reconciler};
pub use sandbox::resolve_target;
pub use socket::{bind_socket, serve_socket, AgentStatus};
pub use state::DesiredState;
pub use watch::{follow_watch, WatchOptions};
