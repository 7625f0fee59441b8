//! Overlay throughput beside a hand-built bridge+VXLAN path and a plain veth pair,
//! with iperf3, the three measured in interleaved rounds so drift in the machine's
//! load hits each the same.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use cloison_lab::traffic::iperf3_throughput;
use cloison_lab::{reference, Lab, DEFAULT_UNDERLAY_MTU};

use crate::lab_scenarios::lab_spec;
use crate::netns::run;
use crate::report::Row;
use crate::stats::Summary;
use crate::BenchError;

const SCENARIO: &str = "throughput";
const VETH_SERVER: Ipv4Addr = Ipv4Addr::new(10, 94, 0, 1);
const VETH_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 94, 0, 2);

/// One iperf3 path: client namespace to server namespace and address.
struct Path3 {
    label: &'static str,
    server: PathBuf,
    client: PathBuf,
    address: Ipv4Addr,
}

/// Builds a 2-host lab, attaches one container per host, and measures `rounds`
/// interleaved rounds of `seconds`-second iperf3 runs over the overlay, the
/// reference VXLAN pair between the same hosts and a veth pair joining the two
/// containers directly.
pub(crate) fn throughput(name: &str, binary: &Path, rounds: usize, seconds: u32) -> Result<Vec<Row>, BenchError> {
    let lab = Lab::up(lab_spec(name, 2, binary)?)?;
    lab.create_network("bench", "web", "10.40.0.0/24", &[])?;
    let server = lab.add_container("h1", "srv")?;
    let client = lab.add_container("h2", "cli")?;
    let server_ip = Ipv4Addr::new(10, 40, 0, 11);
    lab.attach("h1", "web", &server, "bench", &["--ip", &server_ip.to_string(), "--name", "srv"])?;
    lab.attach("h2", "web", &client, "bench", &["--ip", "10.40.0.12", "--name", "cli"])?;
    join_with_veth(&server, &client)?;
    let pair = reference::build(&lab, 1, 2, DEFAULT_UNDERLAY_MTU)?;
    let [(reference_server, reference_ip), (reference_client, _)] = &pair.ends;
    let paths = [
        Path3 { label: "cloison overlay", server: server.clone(), client: client.clone(), address: server_ip },
        Path3 { label: "hand-built bridge+VXLAN", server: reference_server.clone(), client: reference_client.clone(), address: *reference_ip },
        Path3 { label: "veth pair", server, client, address: VETH_SERVER },
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for _ in 0..rounds {
        for (index, path) in paths.iter().enumerate() {
            let bits = iperf3_throughput(&path.server, &path.client, path.address, seconds)?;
            samples[index].push(bits / 1e9);
        }
    }
    lab.down()?;
    rows(&paths, &samples, seconds)
}

/// Adds a veth pair between the two containers, beside their cloison interfaces, on
/// its own /30 so its traffic never takes the overlay.
fn join_with_veth(server: &Path, client: &Path) -> Result<(), BenchError> {
    let ip = |netns: &Path| {
        let mut command = Command::new("nsenter");
        command.arg(format!("--net={}", netns.display())).args(["--", "ip"]);
        command
    };
    run(ip(server).args(["link", "add", "vp0", "type", "veth", "peer", "name", "vp1", "netns"]).arg(client))?;
    run(ip(server).args(["addr", "add", &format!("{VETH_SERVER}/30"), "dev", "vp0"]))?;
    run(ip(server).args(["link", "set", "vp0", "up"]))?;
    run(ip(client).args(["addr", "add", &format!("{VETH_CLIENT}/30"), "dev", "vp1"]))?;
    run(ip(client).args(["link", "set", "vp1", "up"]))?;
    Ok(())
}

fn rows(paths: &[Path3], samples: &[Vec<f64>], seconds: u32) -> Result<Vec<Row>, BenchError> {
    let case = format!("iperf3 TCP, {seconds} s per run");
    let mut summaries = Vec::new();
    for (path, values) in paths.iter().zip(samples) {
        let summary = Summary::of(values).ok_or_else(|| BenchError::Empty { scenario: SCENARIO, reason: "no rounds".into() })?;
        summaries.push((path.label, summary));
    }
    let mut rows = Vec::new();
    for (index, (label, summary)) in summaries.iter().enumerate() {
        let mut row = Row::sampled(SCENARIO, &case, label, "Gbit/s", *summary);
        if index == 0 {
            for (peer, peer_summary) in &summaries[1..] {
                row = row.with_ratio(peer, peer_summary.p50);
            }
        }
        rows.push(row);
    }
    Ok(rows)
}
