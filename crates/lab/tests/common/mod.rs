//! Helpers shared by the lab's integration tests.
//!
//! The tests need root, iproute2, util-linux, iputils-ping and iperf3, and a built
//! `cloison` binary (`cargo build -p cloison`, or `CLOISON_BIN`). Without them a test
//! fails with the reason; it never passes silently.

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use cloison_lab::traffic::{ping, PingCounts};
use cloison_lab::{check_prerequisites, Lab, LabSpec, REQUIRED_TOOLS, TRAFFIC_TOOLS};
use cloison_model::Endpoint;

/// Builds a lab called `name` with `hosts` hosts and the given underlay MTU, after
/// checking the prerequisites; panics with the reason when it cannot.
pub(crate) fn lab_with_mtu(name: &str, hosts: usize, mtu: u32) -> Lab {
    if let Err(e) = check_prerequisites(REQUIRED_TOOLS).and_then(|()| check_prerequisites(TRAFFIC_TOOLS)) {
        panic!("cannot run lab tests: {e}");
    }
    // A lab of the same name left by an aborted run would block this one.
    let _ = cloison_lab::down(&name.parse().expect("valid lab name"));
    let spec = LabSpec::new(name, hosts).expect("lab spec").with_underlay_mtu(mtu);
    Lab::up(spec).unwrap_or_else(|e| panic!("lab {name} did not come up: {e}"))
}

pub(crate) fn lab(name: &str, hosts: usize) -> Lab {
    lab_with_mtu(name, hosts, 1500)
}

/// A container on `host` attached to `tenant`'s `network` with address `ip`.
pub(crate) struct Container {
    pub(crate) host: String,
    pub(crate) netns: PathBuf,
    pub(crate) endpoint: Endpoint,
}

pub(crate) fn container(lab: &Lab, host: &str, name: &str, tenant: &str, network: &str, ip: &str) -> Container {
    let netns = lab.add_container(host, name).unwrap_or_else(|e| panic!("container {name} on {host}: {e}"));
    let endpoint = lab
        .attach(host, network, &netns, tenant, &["--ip", ip, "--name", name])
        .unwrap_or_else(|e| panic!("attach of {name} on {host} to {tenant}/{network}: {e}"));
    Container { host: host.to_string(), netns, endpoint }
}

/// Pings `target` three times from `from`, 100 ms apart.
pub(crate) fn ping3(from: &Container, target: Ipv4Addr) -> PingCounts {
    ping(&from.netns, target, 3, Duration::from_millis(100)).unwrap_or_else(|e| panic!("ping {target}: {e}"))
}

pub(crate) fn ip(text: &str) -> Ipv4Addr {
    text.parse().expect("valid IPv4 address")
}
