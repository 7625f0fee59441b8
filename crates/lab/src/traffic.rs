//! Traffic between containers: ping, neighbour lookups and iperf3.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread::sleep;
use std::time::{Duration, SystemTime};

use crate::command::{describe, in_netns, run, run_unchecked};
use crate::LabError;

/// Counts of one `ping` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PingCounts {
    pub transmitted: u32,
    pub received: u32,
}

/// Pings `target` from the namespace at `netns`: `count` requests `interval` apart,
/// each waiting at most one second for its reply.
pub fn ping(netns: &Path, target: Ipv4Addr, count: u32, interval: Duration) -> Result<PingCounts, LabError> {
    let mut command = in_netns(netns, "ping");
    command.args(["-n", "-q", "-W", "1", "-c", &count.to_string(), "-i", &format!("{:.3}", interval.as_secs_f64())]);
    command.arg(target.to_string());
    let output = run_unchecked(&mut command)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    parse_ping_summary(&stdout).ok_or_else(|| LabError::Output {
        command: describe(&command),
        reason: format!("no summary line in {:?}{}", stdout, String::from_utf8_lossy(&output.stderr)),
    })
}

/// Reads "N packets transmitted, M received" from ping's summary.
fn parse_ping_summary(stdout: &str) -> Option<PingCounts> {
    let line = stdout.lines().find(|line| line.contains("packets transmitted"))?;
    let mut numbers = line.split(',').map(|part| part.split_whitespace().next().and_then(|n| n.parse().ok()));
    Some(PingCounts { transmitted: numbers.next()??, received: numbers.next()?? })
}

/// Pings `target` from the namespace at `netns` and returns the TTL of each reply.
/// Each lab container gets its own default TTL ([`set_default_ttl`]) and nothing
/// routes between containers of one network, so the TTL names the endpoint that
/// replied even when two tenants use the same address and MAC.
pub fn ping_reply_ttls(netns: &Path, target: IpAddr, count: u32, interval: Duration) -> Result<Vec<u8>, LabError> {
    let mut command = in_netns(netns, "ping");
    command.args(["-n", "-W", "1", "-c", &count.to_string(), "-i", &format!("{:.3}", interval.as_secs_f64())]);
    command.arg(target.to_string());
    let output = run_unchecked(&mut command)?;
    Ok(String::from_utf8_lossy(&output.stdout).lines().filter_map(reply_ttl).collect())
}

/// TTL of a reply line: "64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.1 ms".
fn reply_ttl(line: &str) -> Option<u8> {
    if !line.contains("bytes from") {
        return None;
    }
    line.split_whitespace().find_map(|word| word.strip_prefix("ttl=")).and_then(|ttl| ttl.parse().ok())
}

/// Sets the default IPv4 TTL of the namespace at `netns` (a per-namespace sysctl), and
/// the IPv6 hop limit of its `eth0` when it has one.
pub fn set_default_ttl(netns: &Path, ttl: u8) -> Result<(), LabError> {
    run(in_netns(netns, "sysctl").args(["-q", "-w", &format!("net.ipv4.ip_default_ttl={ttl}")]))?;
    let has_eth0 = run(in_netns(netns, "ip").args(["link", "show", "dev", "eth0"])).is_ok();
    if has_eth0 {
        run(in_netns(netns, "sysctl").args(["-q", "-w", &format!("net.ipv6.conf.eth0.hop_limit={ttl}")]))?;
    }
    Ok(())
}

/// Sends one ping of `payload` bytes with don't-fragment set (`ping -M do -s N`) and
/// returns ping's whole output, stdout then stderr, whatever its status.
pub fn ping_dont_fragment(netns: &Path, target: Ipv4Addr, payload: u32) -> Result<(bool, String), LabError> {
    let mut command = in_netns(netns, "ping");
    command.args(["-n", "-c", "1", "-W", "1", "-M", "do", "-s", &payload.to_string(), &target.to_string()]);
    let output = run_unchecked(&mut command)?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), text))
}

/// MAC of the neighbour entry for `address` on `dev` in the namespace at `netns`.
pub fn neighbour_mac(netns: &Path, dev: &str, address: Ipv4Addr) -> Result<Option<String>, LabError> {
    let output = run(in_netns(netns, "ip").args(["-j", "neigh", "show", "to", &address.to_string(), "dev", dev]))?;
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap_or_default();
    Ok(entries.iter().find_map(|e| e.get("lladdr").and_then(|m| m.as_str()).map(str::to_ascii_lowercase)))
}

/// A ping every `interval` from `netns` to `target`, running until stopped, that
/// reports the wall-clock time of its first reply.
#[derive(Debug)]
pub struct Prober {
    child: Child,
    first_reply: mpsc::Receiver<SystemTime>,
}

impl Prober {
    /// Starts `ping -D -i INTERVAL TARGET`. Intervals under 200 ms need root.
    pub fn start(netns: &Path, target: Ipv4Addr, interval: Duration) -> Result<Prober, LabError> {
        let mut command = in_netns(netns, "ping");
        command.args(["-n", "-D", "-i", &format!("{:.3}", interval.as_secs_f64()), &target.to_string()]);
        command.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = command.spawn().map_err(|source| LabError::Spawn { program: describe(&command), source })?;
        let stdout = child.stdout.take().ok_or_else(|| LabError::Output {
            command: describe(&command),
            reason: "no stdout pipe".to_string(),
        })?;
        let (sender, first_reply) = mpsc::channel();
        std::thread::spawn(move || {
            let reply = BufReader::new(stdout).lines().map_while(Result::ok).find_map(|line| reply_time(&line));
            if let Some(time) = reply {
                let _ = sender.send(time);
            }
        });
        Ok(Prober { child, first_reply })
    }

    /// Waits at most `timeout` for the first reply and returns its time.
    pub fn first_reply(&self, timeout: Duration) -> Option<SystemTime> {
        self.first_reply.recv_timeout(timeout).ok()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Time of a reply line of `ping -D`: "[1700000000.123456] 64 bytes from …".
fn reply_time(line: &str) -> Option<SystemTime> {
    if !line.contains("bytes from") {
        return None;
    }
    let stamp = line.strip_prefix('[')?.split(']').next()?;
    let seconds: f64 = stamp.parse().ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(seconds))
}

/// TCP throughput in bits per second from the namespace `client` to an iperf3 server
/// started in `server` on `server_ip`, over `seconds` seconds.
pub fn iperf3_throughput(server: &Path, client: &Path, server_ip: Ipv4Addr, seconds: u32) -> Result<f64, LabError> {
    let report = iperf3(server, client, server_ip, &["-t", &seconds.to_string()])?;
    report_number(&report, "/end/sum_received/bits_per_second")
}

fn report_number(report: &serde_json::Value, pointer: &str) -> Result<f64, LabError> {
    report.pointer(pointer).and_then(serde_json::Value::as_f64).ok_or_else(|| LabError::Output {
        command: "iperf3".to_string(),
        reason: format!("no {pointer} in the report"),
    })
}

/// Runs one iperf3 client with `load` (`-t N` or `-n BYTES`) against a one-off server
/// and returns the client's JSON report.
fn iperf3(server: &Path, client: &Path, server_ip: Ipv4Addr, load: &[&str]) -> Result<serde_json::Value, LabError> {
    let mut command = in_netns(server, "iperf3");
    command.args(["-s", "-1", "-B", &server_ip.to_string()]).stdout(Stdio::null()).stderr(Stdio::null());
    let mut daemon = command.spawn().map_err(|source| LabError::Spawn { program: describe(&command), source })?;
    let result = run_client(client, server_ip, load);
    let _ = daemon.kill();
    let _ = daemon.wait();
    result
}

fn run_client(client: &Path, server_ip: Ipv4Addr, load: &[&str]) -> Result<serde_json::Value, LabError> {
    let mut last_error = None;
    // The server needs a moment to listen, and iperf3 reports a refused connection in
    // its JSON, sometimes with a success status: retry a few times.
    for _ in 0..20 {
        let mut command = in_netns(client, "iperf3");
        command.args(["-c", &server_ip.to_string(), "-J"]).args(load);
        match run_unchecked(&mut command).and_then(|output| parse_iperf3(&output.stdout, &describe(&command))) {
            Ok(report) => return Ok(report),
            Err(e) => last_error = Some(e),
        }
        sleep(Duration::from_millis(100));
    }
    Err(last_error.unwrap_or(LabError::Timeout { what: "iperf3".to_string(), seconds: 2 }))
}

/// Parses iperf3's JSON report, turning the error it may carry into an error.
fn parse_iperf3(stdout: &[u8], command: &str) -> Result<serde_json::Value, LabError> {
    let failed = |reason: String| LabError::Output { command: command.to_string(), reason };
    let report: serde_json::Value = serde_json::from_slice(stdout).map_err(|e| failed(e.to_string()))?;
    if let Some(error) = report.get("error").and_then(serde_json::Value::as_str) {
        return Err(failed(error.to_string()));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_summary_is_parsed() {
        let out = "--- 10.0.0.1 ping statistics ---\n3 packets transmitted, 2 received, 33% packet loss, time 2003ms\n";
        assert_eq!(parse_ping_summary(out), Some(PingCounts { transmitted: 3, received: 2 }));
    }

    #[test]
    fn reply_time_reads_timestamp() {
        let line = "[1700000000.500000] 64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.1 ms";
        let time = reply_time(line).expect("a reply line");
        let millis = time.duration_since(SystemTime::UNIX_EPOCH).expect("after the epoch").as_millis();
        assert_eq!(millis, 1_700_000_000_500);
    }

    #[test]
    fn reply_ttl_is_read() {
        assert_eq!(reply_ttl("64 bytes from 10.0.0.2: icmp_seq=1 ttl=101 time=0.1 ms"), Some(101));
        assert_eq!(reply_ttl("From 10.0.0.1 icmp_seq=1 Destination Host Unreachable"), None);
    }

    #[test]
    fn unreachable_line_is_not_a_reply() {
        assert!(reply_time("[1700000000.5] From 10.0.0.1 icmp_seq=1 Destination Host Unreachable").is_none());
    }
}
