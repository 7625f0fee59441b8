//! A multi-host cloison laboratory on one machine.
//!
//! A lab is an underlay namespace holding a bridge, a controller namespace running
//! `cloison controller`, and N host namespaces `h1`..`hN`, each running a real
//! `cloison agent`, all joined to the bridge. Containers are further namespaces.
//! Nothing is created in the machine's own namespace, and labs with different names
//! can run side by side because each has its own namespaces. The demo and the
//! integration tests stand on it.

mod bench;
mod command;
mod control_plane;
pub mod converge;
mod daemons;
mod demo;
mod docker;
mod error;
mod exec;
mod http;
mod lab;
mod list;
mod names;
mod netns;
pub mod probe;
mod process;
pub mod reference;
mod spec;
mod state;
mod teardown;
mod topology;
pub mod traffic;

pub use command::{check_prerequisites, ETCD_TOOLS, REQUIRED_TOOLS, TRAFFIC_TOOLS};
pub use control_plane::{MAX_CONTROLLERS, MAX_ETCD_MEMBERS};
pub use docker::{Dockerd, BUSYBOX_IMAGE, DOCKER_PLUGIN_DIR};
pub use error::LabError;
pub use lab::{down, Lab};
pub use names::{controller_url, LabName, Node, CONTROLLER_IP, LAB_NAME_MAX, MAX_HOSTS, OUTSIDE_IP, STATE_ROOT, WORLD_IP};
pub use spec::{find_cloison_binary, LabSpec, DEFAULT_UNDERLAY_MTU};
pub use state::{LabState, ProcessRecord};
pub use topology::{UNDERLAY_BRIDGE, UNDERLAY_IFNAME};
pub use bench::{bench_converge, describe_control_plane, BenchReport, ConvergeStart, MAX_TRIES};
pub use demo::{run_demo, DemoReport, PairResult, Throughput};
pub use list::{list, LabSummary};
