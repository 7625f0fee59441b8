//! `cloison lab bench-converge`: convergence over many attaches.

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::converge::{measure, prepare_prober, ConvergenceSample, ConvergenceTarget, Percentiles};
use crate::{Lab, LabError, LabSpec};

const TENANT: &str = "bench";
const NETWORK: &str = "bench";
/// A /16, so even many tries get distinct addresses and no prober cache is reused.
const SUBNET: &str = "10.20.0.0/16";
const PROBER_IP: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 10);
/// Address of the endpoint that keeps the network on h1 in [`ConvergeStart::NetworkPresent`].
const ANCHOR_IP: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 11);

/// The state of h1 before each attach of a convergence benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvergeStart {
    /// h1 has no endpoint of the tenant, so each attach also sets up the network's
    /// bridge, VXLAN device, the tenant's router and its rulesets there.
    FirstOnHost,
    /// Another endpoint of the network stays on h1, so each attach adds one endpoint
    /// to a network the host already carries.
    NetworkPresent,
}

/// Largest number of tries, bounded by the addresses of the subnet above.
pub const MAX_TRIES: usize = 10_000;

/// Results of a convergence benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub samples: Vec<ConvergenceSample>,
    /// From attach start to the first reply on the other host.
    pub first_reply: Percentiles,
    /// Duration of the attach command alone.
    pub attach: Percentiles,
}

/// Describes the store of a lab built from `spec`, for benchmark tables.
pub fn describe_control_plane(spec: &LabSpec) -> String {
    if spec.etcd_members == 0 {
        "embedded redb, 1 controller".to_string()
    } else {
        format!("etcd of {} member(s), {} controller(s)", spec.etcd_members, spec.controllers)
    }
}

/// Builds a 2-host lab from `spec`, keeps a prober on h2, and `tries` times attaches a
/// new container on h1 and measures until the prober's first reply. Each container is
/// detached again before the next try, so every try starts from the same state,
/// which `start` chooses.
pub fn bench_converge(spec: LabSpec, tries: usize, start: ConvergeStart) -> Result<BenchReport, LabError> {
    let lab = Lab::up(LabSpec { hosts: 2, ..spec })?;
    lab.create_network(TENANT, NETWORK, SUBNET, &[])?;
    let prober = lab.add_container("h2", "prober")?;
    lab.attach("h2", NETWORK, &prober, TENANT, &["--ip", &PROBER_IP.to_string(), "--name", "prober"])?;
    if start == ConvergeStart::NetworkPresent {
        let anchor = lab.add_container("h1", "anchor")?;
        lab.attach("h1", NETWORK, &anchor, TENANT, &["--ip", &ANCHOR_IP.to_string(), "--name", "anchor"])?;
    }
    prepare_prober(&prober)?;

    let mut samples = Vec::with_capacity(tries);
    for try_index in 0..tries.min(MAX_TRIES) {
        let name = format!("t{try_index}");
        let target = ConvergenceTarget { host: "h1", tenant: TENANT, network: NETWORK, name: &name, ip: try_address(try_index) };
        samples.push(measure(&lab, &prober, target)?);
        lab.detach("h1", &name, TENANT)?;
        lab.remove_container("h1", &name)?;
    }
    let first_reply: Vec<_> = samples.iter().map(|s| s.first_reply).collect();
    let attach: Vec<_> = samples.iter().map(|s| s.attach).collect();
    let none = || LabError::Output { command: "bench-converge".to_string(), reason: "no tries".to_string() };
    let report = BenchReport {
        first_reply: Percentiles::of(&first_reply).ok_or_else(none)?,
        attach: Percentiles::of(&attach).ok_or_else(none)?,
        samples,
    };
    lab.down()?;
    Ok(report)
}

/// Address of try `index`: 10.20.1.2 onwards, 250 per /24.
fn try_address(index: usize) -> Ipv4Addr {
    let third = 1 + index / 250;
    let fourth = 2 + index % 250;
    Ipv4Addr::new(10, 20, third as u8, fourth as u8)
}
