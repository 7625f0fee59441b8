//! A probe that pings one address at a fixed interval for as long as a scenario runs,
//! and counts the requests that got no reply.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::command::{describe, in_netns};
use crate::LabError;

/// Outcome of a probe.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProbeReport {
    /// Requests counted: every request sent except the last one, whose reply may
    /// still have been on its way when the probe stopped.
    pub counted: u64,
    /// Sequence numbers among the counted requests that got no reply.
    pub failed: Vec<u64>,
}

/// A running `ping -i INTERVAL TARGET` inside a namespace.
#[derive(Debug)]
pub struct ContinuousProbe {
    child: Child,
    replied: Arc<Mutex<BTreeSet<u64>>>,
    reader: Option<JoinHandle<Option<u64>>>,
}

impl ContinuousProbe {
    /// Starts pinging `target` from the namespace at `netns` every `interval`. Each
    /// request waits at most one second for its reply (`-W 1`).
    pub fn start(netns: &Path, target: Ipv4Addr, interval: Duration) -> Result<ContinuousProbe, LabError> {
        let mut command = in_netns(netns, "ping");
        command.args(["-n", "-W", "1", "-i", &format!("{:.3}", interval.as_secs_f64()), &target.to_string()]);
        command.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = command.spawn().map_err(|source| LabError::Spawn { program: describe(&command), source })?;
        let stdout = child.stdout.take().ok_or_else(|| LabError::Output {
            command: describe(&command),
            reason: "no stdout pipe".to_string(),
        })?;
        let replied = Arc::new(Mutex::new(BTreeSet::new()));
        let seen = replied.clone();
        // Reads reply lines until ping exits, then returns the transmitted count
        // from the summary that ping prints on SIGINT.
        let reader = std::thread::spawn(move || {
            let mut transmitted = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(sequence) = reply_sequence(&line) {
                    if let Ok(mut set) = seen.lock() {
                        set.insert(sequence);
                    }
                } else if let Some(count) = transmitted_count(&line) {
                    transmitted = Some(count);
                }
            }
            transmitted
        });
        Ok(ContinuousProbe { child, replied, reader: Some(reader) })
    }

    /// Stops ping with SIGINT and counts the failed requests.
    pub fn stop(mut self) -> Result<ProbeReport, LabError> {
        let pid = i32::try_from(self.child.id()).unwrap_or(0);
        // nsenter execs ping for a network namespace, so the child's pid is ping's.
        kill(Pid::from_raw(pid), Signal::SIGINT)
            .map_err(|e| LabError::io(format!("cannot send SIGINT to ping (pid {pid})"), e.into()))?;
        let _ = self.child.wait();
        let transmitted = self.reader.take().and_then(|reader| reader.join().ok()).flatten();
        let transmitted = transmitted.ok_or_else(|| LabError::Output {
            command: "ping".to_string(),
            reason: "no summary line after SIGINT".to_string(),
        })?;
        let replied = self.replied.lock().map(|set| set.clone()).unwrap_or_default();
        let counted = transmitted.saturating_sub(1);
        let failed = (1..=counted).filter(|sequence| !replied.contains(sequence)).collect();
        Ok(ProbeReport { counted, failed })
    }
}

impl Drop for ContinuousProbe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sequence number of a reply line: "64 bytes from 10.0.0.2: icmp_seq=7 ttl=64 time=0.1 ms".
fn reply_sequence(line: &str) -> Option<u64> {
    if !line.contains("bytes from") {
        return None;
    }
    line.split_whitespace().find_map(|word| word.strip_prefix("icmp_seq=")).and_then(|n| n.parse().ok())
}

/// Transmitted count of ping's summary: "12 packets transmitted, 11 received, …".
fn transmitted_count(line: &str) -> Option<u64> {
    let (count, _) = line.split_once(" packets transmitted")?;
    count.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_line_gives_sequence() {
        assert_eq!(reply_sequence("64 bytes from 10.0.0.2: icmp_seq=7 ttl=64 time=0.1 ms"), Some(7));
        assert_eq!(reply_sequence("From 10.0.0.1 icmp_seq=8 Destination Host Unreachable"), None);
    }

    #[test]
    fn summary_gives_transmitted() {
        assert_eq!(transmitted_count("12 packets transmitted, 11 received, 8% packet loss, time 1100ms"), Some(12));
        assert_eq!(transmitted_count("--- 10.0.0.2 ping statistics ---"), None);
    }
}
