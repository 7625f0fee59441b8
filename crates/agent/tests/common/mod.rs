//! Setup shared by the reconciler tests, which run against the recording fake.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use cloison_agent::HostContext;

/// Name of the host the reconciler under test runs on.
pub(crate) const ME: &str = "h1";

/// Returns the context of host `h1`, with an IPv4 underlay address.
pub(crate) fn ctx() -> HostContext {
    HostContext {
        host: ME.into(),
        underlay_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        underlay_mtu: 1500,
        vxlan_port: 4789,
        run_dir: PathBuf::from("/run/cloison-test"),
    }
}
