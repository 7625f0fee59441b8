//! Throughput through an endpoint with many group rules loaded, as a ratio to the
//! same path with only the rule that admits the client.
//!
//! A host namespace contains the bridge of the synthetic network (VNI 100) with
//! `br_netfilter` on. The server is the synthetic state's first endpoint, with its
//! port name, MAC and address, so the anti-spoofing table checks it. The client sits
//! on the same bridge with an address outside the network, so its flows reach the
//! ingress class of the server's group instead of the same-network accept. The host
//! tables the generator builds for each rule count are loaded with `nft -f`, one
//! rule count after the other within each round, so drift in the machine's load hits
//! every count alike. Connection tracking accepts every packet after a
//! connection's first, so the sets are consulted once per connection: the ratio
//! shows what the rules cost a long flow, not the cost of opening many flows.

use std::net::Ipv4Addr;
use std::process::Command;

use cloison_dataplane::names;
use cloison_lab::traffic::iperf3_throughput;
use cloison_model::{Direction, Endpoint, Peer, Protocol, Rule};
use cloison_policy::{generate, synthetic_input, transition_script, OwnedInput};
use ipnet::{IpNet, Ipv4Net};

use crate::netns::{run, Netns};
use crate::policy::{nft, ENDPOINTS};
use crate::report::Row;
use crate::stats::Summary;
use crate::BenchError;

const SCENARIO: &str = "policy";
/// The client's address: outside the synthetic network 10.0.0.0/16 and outside the
/// filler rules' sources in 172.16.0.0/12.
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// The port iperf3 listens on by default.
const IPERF3_PORT: u16 = 5201;
/// VNI of the synthetic network, which names its bridge.
const VNI: u32 = 100;

/// The three namespaces of the path; dropping them removes everything.
struct Path3 {
    host: Netns,
    server: Netns,
    client: Netns,
    server_ip: Ipv4Addr,
}

/// Measures `rounds` rounds of `seconds`-second iperf3 runs for each rule count and
/// returns one row per count, with its ratio to the first count.
pub(crate) fn throughput(prefix: &str, rule_counts: &[usize], rounds: usize, seconds: u32) -> Result<Vec<Row>, BenchError> {
    let states: Vec<OwnedInput> = rule_counts.iter().map(|rules| admitting_state(*rules)).collect();
    let server = states
        .first()
        .and_then(|state| state.endpoints.values().next().cloned())
        .ok_or_else(|| BenchError::Empty { scenario: SCENARIO, reason: "no rule count or no endpoint".into() })?;
    let path = build(prefix, &server)?;
    let scripts: Vec<String> = states.iter().map(|state| transition_script(&generate(&state.as_input()).host, None)).collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); rule_counts.len()];
    for _ in 0..rounds {
        for (index, script) in scripts.iter().enumerate() {
            nft(&path.host, script)?;
            let bits = iperf3_throughput(&path.server.path(), &path.client.path(), path.server_ip, seconds)?;
            samples[index].push(bits / 1e9);
        }
    }
    rows(rule_counts, &samples, seconds)
}

/// Returns the synthetic state with `rules` filler rules plus the rule that lets
/// the client reach iperf3 on every endpoint of the group.
fn admitting_state(rules: usize) -> OwnedInput {
    let mut state = synthetic_input(rules, ENDPOINTS);
    let admit = Rule {
        direction: Direction::Ingress,
        protocol: Protocol::Tcp,
        ports: Some((IPERF3_PORT, IPERF3_PORT)),
        peer: Peer::Cidr(IpNet::V4(Ipv4Net::from(CLIENT))),
    };
    for group in state.groups.values_mut() {
        group.rules.push(admit.clone());
    }
    state
}

/// Builds the host with its bridge, the server endpoint and the client.
fn build(prefix: &str, server: &Endpoint) -> Result<Path3, BenchError> {
    let path = Path3 {
        host: Netns::create(format!("{prefix}-pth"))?,
        server: Netns::create(format!("{prefix}-pts"))?,
        client: Netns::create(format!("{prefix}-ptc"))?,
        server_ip: server.ipv4,
    };
    if !std::path::Path::new("/proc/sys/net/bridge").exists() {
        run(Command::new("modprobe").arg("br_netfilter"))?;
    }
    let bridge = names::bridge(VNI);
    ip(&path.host, &["link", "add", &bridge, "type", "bridge"])?;
    ip(&path.host, &["link", "set", &bridge, "up"])?;
    run(path.host.command("sysctl").args(["-qw", "net.bridge.bridge-nf-call-iptables=1"]))?;
    let server_port = names::endpoint_host(&server.id);
    plug(&path.host, &path.server, &server_port, &bridge)?;
    ip(&path.server, &["link", "set", "eth0", "address", &server.mac.to_string()])?;
    configure(&path.server, &format!("{}/16", server.ipv4), &format!("{CLIENT}/32"))?;
    plug(&path.host, &path.client, "clbenchcli", &bridge)?;
    configure(&path.client, &format!("{CLIENT}/32"), "10.0.0.0/16")?;
    Ok(path)
}

/// Adds a veth pair from `host` (port `port` on `bridge`) to `eth0` in `endpoint`.
fn plug(host: &Netns, endpoint: &Netns, port: &str, bridge: &str) -> Result<(), BenchError> {
    ip(host, &["link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", &endpoint.name])?;
    ip(host, &["link", "set", port, "master", bridge, "up"])
}

/// Sets the endpoint's address and an on-link route towards the other side.
fn configure(endpoint: &Netns, address: &str, other: &str) -> Result<(), BenchError> {
    ip(endpoint, &["addr", "add", address, "dev", "eth0"])?;
    ip(endpoint, &["link", "set", "eth0", "up"])?;
    ip(endpoint, &["route", "add", other, "dev", "eth0"])
}

fn ip(netns: &Netns, args: &[&str]) -> Result<(), BenchError> {
    run(Command::new("ip").arg("-n").arg(&netns.name).args(args)).map(drop)
}

fn rows(rule_counts: &[usize], samples: &[Vec<f64>], seconds: u32) -> Result<Vec<Row>, BenchError> {
    let case = format!("iperf3 TCP through an endpoint, {seconds} s per run");
    let mut rows = Vec::new();
    let mut baseline = None;
    for (rules, values) in rule_counts.iter().zip(samples) {
        let summary = Summary::of(values).ok_or_else(|| BenchError::Empty { scenario: SCENARIO, reason: "no rounds".into() })?;
        let subject = format!("{rules} group rules + 1 admitting the client");
        let mut row = Row::sampled(SCENARIO, &case, &subject, "Gbit/s", summary);
        match baseline {
            None => baseline = Some((*rules, summary.p50)),
            Some((base_rules, base)) => row = row.with_ratio(&format!("{base_rules} rules"), base),
        }
        rows.push(row);
    }
    Ok(rows)
}
