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

/// Networks known to the controller.
pub(crate) fn networks(lab: &Lab) -> Vec<cloison_model::Network> {
    lab.cli_json("ctl", &["network", "ls"]).unwrap_or_else(|e| panic!("network ls: {e}"))
}

/// Endpoints known to the controller.
pub(crate) fn endpoints(lab: &Lab) -> Vec<Endpoint> {
    lab.cli_json("ctl", &["endpoint", "ls"]).unwrap_or_else(|e| panic!("endpoint ls: {e}"))
}

/// Underlay address of host `label` (`h1` …).
pub(crate) fn host_ip(lab: &Lab, label: &str) -> String {
    let node = lab.node(label).unwrap_or_else(|e| panic!("{e}"));
    node.underlay_ip().map(|ip| ip.to_string()).unwrap_or_default()
}

/// Name of the VXLAN device of a network, as the dataplane names it.
pub(crate) fn vxlan_device(vni: u32) -> String {
    format!("clx{vni:06x}")
}

fn json_of(lab: &Lab, host: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let output = lab.exec(host, args).unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")));
    serde_json::from_slice(&output.stdout).unwrap_or_default()
}

fn field(entry: &serde_json::Value, key: &str) -> String {
    entry.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_ascii_lowercase()
}

/// Lists every way the VXLAN devices of every host differ from the endpoints the
/// controller stores: missing, extra or learned FDB entries, missing or extra
/// neighbour entries, learning on. A host carries every network of each tenant with
/// an endpoint there, so a device of another tenant's network is a problem too.
pub(crate) fn vxlan_state_problems(lab: &Lab) -> Vec<String> {
    let networks = networks(lab);
    let endpoints = endpoints(lab);
    let mut problems = Vec::new();
    for host in lab.host_labels() {
        for network in &networks {
            let dev = vxlan_device(network.vni);
            let members: Vec<&Endpoint> = endpoints.iter().filter(|e| e.network_id == network.id).collect();
            let tenant_here = endpoints.iter().any(|e| e.tenant == network.tenant && e.host == host);
            let exists = lab.exec(&host, &["ip", "link", "show", "dev", &dev]).is_ok();
            if !tenant_here {
                if exists {
                    problems.push(format!("{host}: {dev} of {}/{} exists without an endpoint of its tenant", network.tenant, network.name));
                }
                continue;
            }
            if !exists {
                problems.push(format!("{host}: {dev} of {}/{} is missing", network.tenant, network.name));
                continue;
            }
            let remote: Vec<&&Endpoint> = members.iter().filter(|e| e.host != host).collect();
            check_fdb(lab, &host, &dev, &remote, &mut problems);
            check_neighbours(lab, &host, &dev, &remote, &mut problems);
            check_learning_off(lab, &host, &dev, &mut problems);
        }
    }
    problems
}

fn check_fdb(lab: &Lab, host: &str, dev: &str, remote: &[&&Endpoint], problems: &mut Vec<String>) {
    let mut expected: Vec<(String, String)> =
        remote.iter().map(|e| (e.mac.to_string().to_ascii_lowercase(), host_ip(lab, &e.host))).collect();
    let entries = json_of(lab, host, &["bridge", "-j", "fdb", "show", "dev", dev]);
    let tunnel_entries: Vec<&serde_json::Value> = entries.iter().filter(|e| e.get("dst").is_some()).collect();
    let mut seen: Vec<(String, String)> = tunnel_entries.iter().map(|e| (field(e, "mac"), field(e, "dst"))).collect();
    expected.sort();
    seen.sort();
    if seen != expected {
        problems.push(format!("{host}: FDB of {dev} is {seen:?}, expected {expected:?}"));
    }
    for entry in tunnel_entries {
        let state = field(entry, "state");
        if state != "permanent" && state != "static" {
            problems.push(format!("{host}: FDB entry {entry} on {dev} is not static (learned?)"));
        }
    }
}

fn check_neighbours(lab: &Lab, host: &str, dev: &str, remote: &[&&Endpoint], problems: &mut Vec<String>) {
    let mut expected: Vec<(String, String)> = Vec::new();
    for endpoint in remote {
        let mac = endpoint.mac.to_string().to_ascii_lowercase();
        expected.push((endpoint.ipv4.to_string(), mac.clone()));
        if let Some(ipv6) = endpoint.ipv6 {
            expected.push((ipv6.to_string(), mac));
        }
    }
    let entries = json_of(lab, host, &["ip", "-j", "neigh", "show", "dev", dev]);
    let entries6 = json_of(lab, host, &["ip", "-6", "-j", "neigh", "show", "dev", dev]);
    let mut seen: Vec<(String, String)> =
        entries.iter().chain(entries6.iter()).map(|e| (field(e, "dst"), field(e, "lladdr"))).collect();
    seen.sort();
    seen.dedup();
    expected.sort();
    if seen != expected {
        problems.push(format!("{host}: neighbours of {dev} are {seen:?}, expected {expected:?}"));
    }
}

fn check_learning_off(lab: &Lab, host: &str, dev: &str, problems: &mut Vec<String>) {
    let links = json_of(lab, host, &["ip", "-j", "-d", "link", "show", "dev", dev]);
    let learning = links.first().and_then(|l| l.pointer("/linkinfo/info_data/learning")).and_then(|v| v.as_bool());
    if learning != Some(false) {
        problems.push(format!("{host}: {dev} has learning {learning:?}, expected false"));
    }
}

/// Waits until `from` gets a reply from `target`, for steps that only set the scene
/// (convergence itself is measured by `cloison lab bench-converge`).
pub(crate) fn wait_reachable(from: &Container, target: Ipv4Addr) {
    let probe = cloison_lab::traffic::Prober::start(&from.netns, target, Duration::from_millis(20))
        .unwrap_or_else(|e| panic!("prober to {target}: {e}"));
    assert!(probe.first_reply(Duration::from_secs(5)).is_some(), "{target} not reachable from {} within 5 s", from.endpoint.name);
}
