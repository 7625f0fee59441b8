//! Convergence: the time from an attach on one host to the first ping reply from
//! another.

use std::net::Ipv4Addr;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::command::{in_netns, run};
use crate::traffic::Prober;
use crate::{Lab, LabError};

/// Interval of the probe pings.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(2);

/// How long one measure waits for the first reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// One convergence measure.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ConvergenceSample {
    /// Duration of `cloison attach`, from its start until it returned.
    #[serde(serialize_with = "as_millis")]
    pub attach: Duration,
    /// From the start of `cloison attach` to the first reply seen by the prober.
    #[serde(serialize_with = "as_millis")]
    pub first_reply: Duration,
}

/// Serializes a duration as fractional milliseconds.
pub fn as_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1000.0)
}

/// Lowers the ARP retransmit time of `eth0` in the prober's namespace to 10 ms, the
/// kernel's floor. With the default of 1 s, the measure would show the prober
/// kernel's next ARP request, not the moment cloison made the address reachable.
pub fn prepare_prober(prober: &Path) -> Result<(), LabError> {
    run(in_netns(prober, "sysctl").args(["-q", "-w", "net.ipv4.neigh.eth0.retrans_time_ms=10"])).map(drop)
}

/// The container one convergence measure attaches, and its host.
#[derive(Debug, Clone, Copy)]
pub struct ConvergenceTarget<'a> {
    pub host: &'a str,
    pub tenant: &'a str,
    pub network: &'a str,
    /// Name of the new container and of its endpoint.
    pub name: &'a str,
    pub ip: Ipv4Addr,
}

/// Starts pinging `target.ip` from `prober` every 2 ms, attaches a new container with
/// that address on `target.host`, and measures until the first reply.
pub fn measure(lab: &Lab, prober: &Path, target: ConvergenceTarget<'_>) -> Result<ConvergenceSample, LabError> {
    let container = lab.add_container(target.host, target.name)?;
    let probe = Prober::start(prober, target.ip, PROBE_INTERVAL)?;
    // Lets ping start before the clock starts.
    sleep(Duration::from_millis(20));

    let start = SystemTime::now();
    let ip = target.ip.to_string();
    lab.attach(target.host, target.network, &container, target.tenant, &["--ip", &ip, "--name", target.name])?;
    let attach = start.elapsed().unwrap_or_default();
    let reply = probe.first_reply(REPLY_TIMEOUT).ok_or_else(|| LabError::Timeout {
        what: format!("a reply from {} on {}", target.ip, target.host),
        seconds: REPLY_TIMEOUT.as_secs(),
    })?;
    let first_reply = reply.duration_since(start).unwrap_or_default();
    Ok(ConvergenceSample { attach, first_reply })
}

/// Percentiles of a set of durations, by nearest rank.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub count: usize,
    #[serde(serialize_with = "as_millis")]
    pub p50: Duration,
    #[serde(serialize_with = "as_millis")]
    pub p90: Duration,
    #[serde(serialize_with = "as_millis")]
    pub p99: Duration,
    #[serde(serialize_with = "as_millis")]
    pub max: Duration,
}

impl Percentiles {
    /// `None` when `samples` is empty.
    pub fn of(samples: &[Duration]) -> Option<Percentiles> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort();
        let rank = |p: f64| {
            let position = (p * sorted.len() as f64).ceil() as usize;
            sorted[position.clamp(1, sorted.len()) - 1]
        };
        Some(Percentiles { count: sorted.len(), p50: rank(0.50), p90: rank(0.90), p99: rank(0.99), max: *sorted.last()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(&samples).expect("non-empty");
        assert_eq!(p.p50, Duration::from_millis(50));
        assert_eq!(p.p90, Duration::from_millis(90));
        assert_eq!(p.p99, Duration::from_millis(99));
        assert_eq!(p.max, Duration::from_millis(100));
    }

    #[test]
    fn percentiles_of_nothing_is_none() {
        assert!(Percentiles::of(&[]).is_none());
    }
}
