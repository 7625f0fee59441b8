//! A lab whose two controllers share a 3-member etcd cluster: controllers and etcd
//! members fail, a host loses the control plane, and many attaches run at once.
//!
//! Each failure test keeps a probe pinging from a container on h1 to one on h2 every
//! 100 ms for the whole scenario and requires every counted request to get its reply.
//! The tests need what the other lab tests need plus `etcd` (Debian's etcd-server)
//! and `nft`; without them they fail with the reason.

// Measured times go to stderr, shown with `cargo test -- --nocapture`.
#![allow(clippy::print_stderr)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::process::Output;
use std::time::{Duration, Instant};

use cloison_lab::probe::{ContinuousProbe, ProbeReport};
use cloison_lab::traffic::Prober;
use cloison_lab::{check_prerequisites, Lab, LabSpec, ETCD_TOOLS, REQUIRED_TOOLS, TRAFFIC_TOOLS};
use cloison_model::Endpoint;
use common::{container, ip, wait_reachable, Container};

const PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// Builds lab `name` with `hosts` hosts, 3 etcd members and 2 controllers.
fn etcd_lab(name: &str, hosts: usize) -> Lab {
    let prerequisites = [REQUIRED_TOOLS, TRAFFIC_TOOLS, ETCD_TOOLS];
    if let Err(e) = prerequisites.iter().try_for_each(|tools| check_prerequisites(tools)) {
        panic!("cannot run etcd lab tests: {e}");
    }
    // A lab of the same name left by an aborted run would block this one.
    let _ = cloison_lab::down(&name.parse().expect("valid lab name"));
    let spec = LabSpec::new(name, hosts)
        .and_then(|spec| spec.with_control_plane(3, 2))
        .unwrap_or_else(|e| panic!("lab spec: {e}"));
    Lab::up(spec).unwrap_or_else(|e| panic!("lab {name} did not come up: {e}"))
}

/// Creates network `web` of tenant `blue` and a container on each of h1 and h2, and
/// starts the probe from h1's to h2's.
fn probed_pair(lab: &Lab, subnet_prefix: &str) -> (Container, Container, ContinuousProbe) {
    lab.create_network("blue", "web", &format!("{subnet_prefix}.0/24"), &[]).expect("network");
    let c1 = container(lab, "h1", "c1", "blue", "web", &format!("{subnet_prefix}.11"));
    let c2 = container(lab, "h2", "c2", "blue", "web", &format!("{subnet_prefix}.12"));
    wait_reachable(&c1, ip(&format!("{subnet_prefix}.12")));
    let probe = ContinuousProbe::start(&c1.netns, ip(&format!("{subnet_prefix}.12")), PROBE_INTERVAL).expect("probe");
    (c1, c2, probe)
}

/// Stops the probe and requires at least `minimum` counted requests, each with a reply.
fn assert_no_failed_probe(probe: ContinuousProbe, minimum: u64) -> ProbeReport {
    let report = probe.stop().expect("stop the probe");
    assert!(report.counted >= minimum, "the probe sent {} requests, expected at least {minimum}", report.counted);
    assert_eq!(report.failed, Vec::<u64>::new(), "probe requests without reply, out of {}", report.counted);
    report
}

/// Attaches container `name` on `host` and waits until `from` reaches it.
fn attach_and_reach(lab: &Lab, host: &str, name: &str, address: &str, from: &Container) -> Container {
    let attached = container(lab, host, name, "blue", "web", address);
    wait_reachable(from, ip(address));
    attached
}

#[test]
fn controller_killed_attaches_continue() {
    let mut lab = etcd_lab("et-ctl", 2);
    let (c1, c2, probe) = probed_pair(&lab, "10.31.0");

    // Agent h1 lists controller 0 first, so its watch and requests move to controller 1.
    lab.kill_controller(0).expect("kill controller 0");
    let c3 = attach_and_reach(&lab, "h1", "c3", "10.31.0.13", &c2);
    let _c4 = attach_and_reach(&lab, "h2", "c4", "10.31.0.14", &c3);
    assert!(lab.get_from_controller(0, "/v1/hosts").is_err(), "controller 0 still answers after the kill");
    assert!(lab.get_from_controller(1, "/v1/endpoints").is_ok_and(|body| body.contains("c4")), "controller 1 does not list c4");
    std::thread::sleep(Duration::from_secs(3));

    lab.start_controller(0).expect("start controller 0 again");
    let _c5 = attach_and_reach(&lab, "h1", "c5", "10.31.0.15", &c2);
    assert_no_failed_probe(probe, 30);
    drop(c1);
}

#[test]
fn etcd_member_killed_attaches_continue() {
    let mut lab = etcd_lab("et-member", 2);
    let (_c1, c2, probe) = probed_pair(&lab, "10.32.0");

    // Killing the leader is the harder case: the next write waits for an election.
    let leader = lab.etcd_leader().expect("an etcd leader");
    lab.kill_etcd(leader).expect("kill the etcd leader");
    let started = Instant::now();
    let c3 = attach_and_reach(&lab, "h1", "c3", "10.32.0.13", &c2);
    eprintln!("attach after killing etcd leader {leader} reached from h2 after {:?}", started.elapsed());
    let _c4 = attach_and_reach(&lab, "h2", "c4", "10.32.0.14", &c3);
    let new_leader = lab.etcd_leader();
    assert!(new_leader.is_some_and(|l| l != leader), "no new etcd leader: {new_leader:?}");
    std::thread::sleep(Duration::from_secs(3));

    lab.start_etcd(leader).expect("start the member again");
    lab.wait_etcd_leader().expect("healthy cluster");
    assert_no_failed_probe(probe, 30);
}

/// Sends `body` with `method` to `path` on controller `index` with curl in the
/// controller namespace, and returns the status code and the response body.
fn request(lab: &Lab, method: &str, index: usize, path: &str, body: &str) -> (u16, String) {
    let url = format!("http://{}:{}{path}", cloison_lab::CONTROLLER_IP, 7420 + index);
    let args = ["curl", "-sS", "-m", "20", "-X", method, "-w", "\n%{http_code}", "-H", "content-type: application/json", "-d", body, &url];
    let output: Output = lab.exec("ctl", &args).unwrap_or_else(|e| panic!("curl {url}: {e}"));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (response, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), response.to_string())
}

#[test]
fn etcd_quorum_lost_then_back() {
    let mut lab = etcd_lab("et-quorum", 2);
    let (_c1, c2, probe) = probed_pair(&lab, "10.33.0");

    let leader = lab.etcd_leader().expect("an etcd leader");
    let other = (leader + 1) % 3;
    lab.kill_etcd(leader).expect("kill the leader");
    lab.kill_etcd(other).expect("kill a second member");
    let started = Instant::now();
    let endpoint = r#"{"name":"lost","host":"h1","network":"web","sandbox":"/run/netns/none"}"#;
    for index in 0..2 {
        let (status, body) = request(&lab, "POST", index, "/v1/tenants/blue/endpoints", endpoint);
        assert_eq!(status, 503, "controller {index} without quorum answered {status}: {body}");
        assert!(body.contains("no quorum"), "controller {index}'s 503 does not name the cause: {body}");
    }
    eprintln!("both controllers answered 503 within {:?} of losing quorum", started.elapsed());
    std::thread::sleep(Duration::from_secs(10));

    lab.start_etcd(leader).expect("start the leader again");
    lab.start_etcd(other).expect("start the second member again");
    lab.wait_etcd_leader().expect("quorum back");
    let back = Instant::now();
    let _c3 = attach_and_reach(&lab, "h1", "c3", "10.33.0.13", &c2);
    eprintln!("attach after quorum returned reached from h2 after {:?}", back.elapsed());
    assert_no_failed_probe(probe, 100);
}

/// How long a host stays cut from the control plane.
const CUT: Duration = Duration::from_secs(30);

#[test]
fn cut_host_converges_after_heal() {
    let lab = etcd_lab("et-cut", 3);
    let (_c1, c2, probe) = probed_pair(&lab, "10.34.0");

    lab.cut_host("h2").expect("cut h2");
    let cut_at = Instant::now();
    let _c3 = container(&lab, "h1", "c3", "blue", "web", "10.34.0.13");
    let _c4 = container(&lab, "h3", "c4", "blue", "web", "10.34.0.14");
    let to_c3 = Prober::start(&c2.netns, ip("10.34.0.13"), Duration::from_millis(20)).expect("prober to c3");
    let to_c4 = Prober::start(&c2.netns, ip("10.34.0.14"), Duration::from_millis(20)).expect("prober to c4");
    std::thread::sleep(CUT.saturating_sub(cut_at.elapsed()));
    assert!(to_c3.first_reply(Duration::ZERO).is_none(), "c2 reached c3 while h2 was cut: is the cut effective?");

    lab.heal_host("h2").expect("heal h2");
    let healed = Instant::now();
    let limit = Duration::from_secs(10);
    let reached_c3 = to_c3.first_reply(Duration::from_secs(30)).map(|_| healed.elapsed());
    let reached_c4 = to_c4.first_reply(Duration::from_secs(30)).map(|_| healed.elapsed());
    eprintln!("after healing h2: c3 reached after {reached_c3:?}, c4 after {reached_c4:?}");
    assert!(reached_c3.is_some_and(|t| t <= limit), "c3 not reached from h2 within {limit:?} of healing: {reached_c3:?}");
    assert!(reached_c4.is_some_and(|t| t <= limit), "c4 not reached from h2 within {limit:?} of healing: {reached_c4:?}");
    assert_no_failed_probe(probe, 250);
}

/// Networks of the concurrency test, each a /26 of 61 usable addresses (64 minus the
/// network, broadcast and gateway addresses).
const NETWORKS: usize = 4;
const USABLE_26: usize = 61;
const ATTACHES: usize = 200;

#[test]
fn concurrent_attaches_are_unique() {
    let lab = etcd_lab("et-many", 4);
    create_networks_concurrently(&lab);

    let started = Instant::now();
    let attached = attach_concurrently(&lab);
    eprintln!("{ATTACHES} concurrent attaches took {:?}", started.elapsed());
    assert_eq!(attached.len(), ATTACHES);

    let endpoints: Vec<Endpoint> = lab.cli_json("ctl", &["endpoint", "ls"]).expect("endpoint ls");
    assert_eq!(endpoints.len(), ATTACHES, "endpoints stored");
    let vnis: HashSet<u32> = common::networks(&lab).iter().map(|n| n.vni).collect();
    assert_eq!(vnis.len(), NETWORKS, "duplicate VNI");
    let mut by_network: BTreeMap<String, Vec<&Endpoint>> = BTreeMap::new();
    for endpoint in &endpoints {
        by_network.entry(endpoint.network.clone()).or_default().push(endpoint);
    }
    for (network, members) in &by_network {
        let ips: HashSet<Ipv4Addr> = members.iter().map(|e| e.ipv4).collect();
        let macs: HashSet<String> = members.iter().map(|e| e.mac.to_string()).collect();
        assert_eq!(ips.len(), members.len(), "duplicate IPv4 address in {network}");
        assert_eq!(macs.len(), members.len(), "duplicate MAC in {network}");
    }
    register_ghost_host(&lab);
    for network in by_network.keys() {
        assert_free_count(&lab, network, USABLE_26 - ATTACHES / NETWORKS);
    }
}

/// Creates the networks two at a time, one through each controller.
fn create_networks_concurrently(lab: &Lab) {
    std::thread::scope(|scope| {
        for n in 0..NETWORKS {
            scope.spawn(move || {
                let url = format!("http://{}:{}", cloison_lab::CONTROLLER_IP, 7420 + n % 2);
                let subnet = format!("10.35.{n}.0/26");
                let args = ["--controller", &url, "network", "create", &format!("n{n}"), "--tenant", "blue", "--subnet", &subnet];
                lab.cli("ctl", &args).unwrap_or_else(|e| panic!("network n{n}: {e}"));
            });
        }
    });
}

/// Attaches one container per thread, spread round-robin over the hosts and networks.
/// Agents of odd hosts use controller 0 first and agents of even hosts controller 1.
fn attach_concurrently(lab: &Lab) -> Vec<Endpoint> {
    let hosts = lab.host_labels();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..ATTACHES)
            .map(|i| {
                let host = hosts[i % hosts.len()].clone();
                scope.spawn(move || {
                    let name = format!("a{i}");
                    let netns = lab.add_container(&host, &name).unwrap_or_else(|e| panic!("container {name}: {e}"));
                    let network = format!("n{}", i % NETWORKS);
                    lab.attach(&host, &network, &netns, "blue", &["--name", &name])
                        .unwrap_or_else(|e| panic!("attach of {name} on {host} to {network}: {e}"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("attach thread")).collect()
    })
}

/// Registers host `ghost`, which runs no agent, so endpoints placed on it are only
/// records: no agent tries to build them.
fn register_ghost_host(lab: &Lab) {
    let spec = r#"{"name":"ghost","underlay_ip":"10.200.0.250","underlay_mtu":1500,"vxlan_port":4789}"#;
    let (status, response) = request(lab, "PUT", 0, "/v1/hosts/ghost", spec);
    assert!((200..300).contains(&status), "register host ghost ({status}): {response}");
}

/// Checks that exactly `free` more endpoints fit in `network`: creating `free`
/// endpoints on the host `ghost` succeeds and the next one is rejected.
fn assert_free_count(lab: &Lab, network: &str, free: usize) {
    let endpoint = |name: &str| format!(r#"{{"name":"{name}","host":"ghost","network":"{network}","sandbox":"/run/netns/none"}}"#);
    for i in 0..free {
        let body = endpoint(&format!("{network}-fill-{i}"));
        let (status, response) = request(lab, "POST", i % 2, "/v1/tenants/blue/endpoints", &body);
        assert!((200..300).contains(&status), "endpoint {i} of the {free} free in {network} rejected ({status}): {response}");
    }
    let (status, response) = request(lab, "POST", 0, "/v1/tenants/blue/endpoints", &endpoint(&format!("{network}-over")));
    assert!(status >= 400, "{network} had more than {free} free addresses: {status} {response}");
    assert!(response.contains("is exhausted"), "the endpoint beyond the free count was rejected for another reason: {response}");
}
