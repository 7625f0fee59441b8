//! Egress NAT and published ports, checked from every side: the `outside` node
//! beyond the hosts, the host itself, the serving endpoint, other endpoints of the
//! same network, of another network and of another tenant.
//!
//! Servers and clients are small Python programs run inside the namespaces. Each
//! server replies with the source address it sees, so the tests also check which
//! address the service sees.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cloison_lab::{Lab, WORLD_IP};
use common::{container, host_ip, Container};

/// Serves each `PROTO/PORT` argument on the address given first, replying to every
/// TCP connection and UDP datagram with the client's source address as received.
/// A UDP server bound to 0.0.0.0 replies from the address of its route back, so a
/// server on an address other than its namespace's main one must bind to it.
const SERVER: &str = r#"
import socket, sys, threading
def tcp(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], port))
    s.listen(64)
    while True:
        c, peer = s.accept()
        c.sendall(peer[0].encode())
        c.close()
def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], port))
    while True:
        _, peer = s.recvfrom(64)
        s.sendto(peer[0].encode(), peer)
for arg in sys.argv[2:]:
    proto, port = arg.split("/")
    threading.Thread(target=tcp if proto == "tcp" else udp, args=(int(port),), daemon=True).start()
threading.Event().wait()
"#;

/// Sends one TCP connection or UDP datagram to `HOST PORT` and prints the reply;
/// exits with an error after one second without a reply.
const CLIENT: &str = r#"
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if proto == "tcp":
    s = socket.create_connection((host, port), timeout=1)
    print(s.recv(64).decode())
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    s.sendto(b"probe", (host, port))
    print(s.recv(64).decode())
"#;

/// A server process inside a namespace, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts [`SERVER`] in the namespace at `netns` for `services` (`tcp/80` …) on
/// `address`.
fn serve(netns: &Path, address: &str, services: &[&str]) -> Server {
    let child = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["--", "python3", "-c", SERVER, address])
        .args(services)
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start server in {}: {e}", netns.display()));
    Server(child)
}

/// Runs [`CLIENT`] once in the namespace at `netns`. Returns the address the server
/// saw, or the client's error output.
fn request(netns: &Path, proto: &str, address: &str, port: u16) -> Result<String, String> {
    let output = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["--", "python3", "-c", CLIENT, proto, address, &port.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("run client in {}: {e}", netns.display()));
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(stderr.lines().last().unwrap_or_default().to_string())
    }
}

/// Repeats [`request`] for up to five seconds until it succeeds, because the agent
/// programs a new network or publication a moment after the CLI returns.
fn request_within(netns: &Path, proto: &str, address: &str, port: u16) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let result = request(netns, proto, address, port);
        if result.is_ok() || Instant::now() >= deadline {
            return result;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn netns_of(lab: &Lab, node: &str) -> PathBuf {
    lab.netns_path(node).unwrap_or_else(|e| panic!("namespace of {node}: {e}"))
}

fn publish(lab: &Lab, endpoint: &str, mapping: &str, tenant: &str) {
    lab.cli("h1", &["publish", endpoint, mapping, "--tenant", tenant])
        .unwrap_or_else(|e| panic!("publish {endpoint} {mapping}: {e}"));
}

#[test]
fn egress_only_from_external_network() {
    let lab = common::lab("nat-egress", 1);
    lab.create_network("t1", "ext", "10.60.0.0/24", &["--external"]).expect("network t1/ext");
    lab.create_network("t1", "int", "10.61.0.0/24", &[]).expect("network t1/int");
    let external = container(&lab, "h1", "e1", "t1", "ext", "10.60.0.10");
    let internal = container(&lab, "h1", "i1", "t1", "int", "10.61.0.10");
    let world = WORLD_IP.to_string();
    let _server = serve(&netns_of(&lab, "outside"), &world, &["tcp/8000", "udp/8000"]);
    let uplink = host_ip(&lab, "h1");

    let seen = request_within(&external.netns, "tcp", &world, 8000);
    assert_eq!(seen.as_deref(), Ok(uplink.as_str()), "TCP from external network to outside, source seen by outside");
    let seen = request_within(&external.netns, "udp", &world, 8000);
    assert_eq!(seen.as_deref(), Ok(uplink.as_str()), "UDP from external network to outside, source seen by outside");

    let result = request(&internal.netns, "tcp", &world, 8000);
    assert!(result.is_err(), "TCP from non-external network reached outside: {result:?}");
    let result = request(&internal.netns, "udp", &world, 8000);
    assert!(result.is_err(), "UDP from non-external network reached outside: {result:?}");
}

/// Network t1/web with the server s1 and the client w2, network t1/other with o1,
/// and tenant t2's network with web's subnet with x1, all on h1. s1 publishes
/// 8080 to its port 80.
struct PublishScene {
    server: Container,
    same_network: Container,
    other_network: Container,
    other_tenant: Container,
}

fn publish_scene(lab: &Lab) -> PublishScene {
    lab.create_network("t1", "web", "10.62.0.0/24", &[]).expect("network t1/web");
    lab.create_network("t1", "other", "10.63.0.0/24", &[]).expect("network t1/other");
    lab.create_network("t2", "web", "10.62.0.0/24", &[]).expect("network t2/web");
    PublishScene {
        server: container(lab, "h1", "s1", "t1", "web", "10.62.0.10"),
        same_network: container(lab, "h1", "w2", "t1", "web", "10.62.0.11"),
        other_network: container(lab, "h1", "o1", "t1", "other", "10.63.0.10"),
        other_tenant: container(lab, "h1", "x1", "t2", "web", "10.62.0.12"),
    }
}

#[test]
fn published_tcp_port_every_side() {
    let lab = common::lab("nat-tcp", 1);
    let scene = publish_scene(&lab);
    let _server = serve(&scene.server.netns, "0.0.0.0", &["tcp/80"]);
    publish(&lab, "s1", "8080:80", "t1");
    let h1 = host_ip(&lab, "h1");

    let seen = request_within(&netns_of(&lab, "outside"), "tcp", &h1, 8080);
    assert_eq!(seen, Ok(cloison_lab::OUTSIDE_IP.to_string()), "outside to h1:8080, service sees the client's address");
    let seen = request_within(&netns_of(&lab, "h1"), "tcp", &h1, 8080);
    assert!(seen.is_ok(), "h1 itself to its own address, port 8080: {seen:?}");

    let mut sources = Vec::new();
    for (client, side) in [
        (&scene.server, "the serving endpoint itself (hairpin)"),
        (&scene.same_network, "an endpoint of the same network"),
        (&scene.other_network, "an endpoint of another network"),
        (&scene.other_tenant, "an endpoint of another tenant"),
    ] {
        let seen = request_within(&client.netns, "tcp", &h1, 8080);
        assert!(seen.is_ok(), "{side} to h1:8080: {seen:?}");
        sources.push((side, seen.unwrap_or_default()));
    }
    let (_, first) = &sources[0];
    for (side, source) in &sources {
        assert_eq!(source, first, "service sees {side} as {source}, but the serving endpoint as {first}");
    }

    let direct = request(&scene.other_network.netns, "tcp", &scene.server.endpoint.ipv4.to_string(), 80);
    assert!(direct.is_err(), "another network reached the server's own address directly: {direct:?}");
}

#[test]
fn published_udp_and_loopback_ports() {
    let lab = common::lab("nat-udp-lo", 1);
    let scene = publish_scene(&lab);
    let _server = serve(&scene.server.netns, "0.0.0.0", &["udp/53", "tcp/70"]);
    publish(&lab, "s1", "5353:53/udp", "t1");
    publish(&lab, "s1", "127.0.0.1:7070:70", "t1");
    let h1 = host_ip(&lab, "h1");
    let outside = netns_of(&lab, "outside");
    let host = netns_of(&lab, "h1");

    let seen = request_within(&outside, "udp", &h1, 5353);
    assert_eq!(seen, Ok(cloison_lab::OUTSIDE_IP.to_string()), "UDP from outside to h1:5353, service sees the client's address");
    let seen = request_within(&scene.same_network.netns, "udp", &h1, 5353);
    assert!(seen.is_ok(), "UDP from an endpoint of the same network to h1:5353: {seen:?}");

    let seen = request_within(&host, "tcp", "127.0.0.1", 7070);
    assert!(seen.is_ok(), "h1 itself to 127.0.0.1:7070: {seen:?}");
    let result = request(&host, "tcp", &h1, 7070);
    assert!(result.is_err(), "h1 reached the loopback-bound port through its uplink address: {result:?}");
    let result = request(&outside, "tcp", &h1, 7070);
    assert!(result.is_err(), "outside reached the loopback-bound port: {result:?}");
    let result = request(&scene.other_network.netns, "tcp", &h1, 7070);
    assert!(result.is_err(), "an endpoint reached the loopback-bound port: {result:?}");
}

/// A publication bound to one host address is reached through that address only,
/// also by another tenant's external endpoint that sends straight to the serving
/// router's transit address, which the host routes like any other.
#[test]
fn bound_publication_kept_from_other_routers() {
    let lab = common::lab("nat-bound", 1);
    let scene = publish_scene(&lab);
    lab.create_network("t2", "ext", "10.64.0.0/24", &["--external"]).expect("network t2/ext");
    let attacker = container(&lab, "h1", "e2", "t2", "ext", "10.64.0.10");
    let _server = serve(&scene.server.netns, "0.0.0.0", &["tcp/70"]);
    publish(&lab, "s1", "127.0.0.1:7070:70", "t1");
    let seen = request_within(&netns_of(&lab, "h1"), "tcp", "127.0.0.1", 7070);
    assert!(seen.is_ok(), "h1 itself to 127.0.0.1:7070: {seen:?}");

    let routers = router_transit_addresses(&lab, "h1");
    assert_eq!(routers.len(), 2, "transit links of t1 and t2 on h1: {routers:?}");
    for router in routers {
        let result = request(&attacker.netns, "tcp", &router, 7070);
        assert!(result.is_err(), "another tenant reached the loopback-bound port through router address {router}: {result:?}");
    }
}

/// Returns the router end's address of every transit link on `host`: the other
/// address of the /31 on the host end (`clh*`).
fn router_transit_addresses(lab: &Lab, host: &str) -> Vec<String> {
    let out = lab.exec_in_container(&netns_of(lab, host), &["ip", "-4", "-o", "addr", "show"]).expect("list the host's addresses");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .filter(|line| line.split_whitespace().nth(1).is_some_and(|name| name.starts_with("clh")))
        .filter_map(|line| line.split_whitespace().nth(3)?.split('/').next()?.parse::<std::net::Ipv4Addr>().ok())
        .map(|address| std::net::Ipv4Addr::from(u32::from(address) ^ 1).to_string())
        .collect()
}

#[test]
fn taken_host_port_rejected() {
    let lab = common::lab("nat-taken", 1);
    let scene = publish_scene(&lab);
    publish(&lab, "s1", "8080:80", "t1");

    for (endpoint, mapping, tenant) in [
        ("w2", "8080:80", "t1"),
        ("s1", "8080:81", "t1"),
        ("x1", "8080:80", "t2"),
        ("w2", "127.0.0.1:8080:80", "t1"),
    ] {
        let result = lab.cli("h1", &["publish", endpoint, mapping, "--tenant", tenant]);
        let message = match result {
            Ok(output) => panic!("publish {endpoint} {mapping} of {tenant} succeeded on a taken port: {output}"),
            Err(error) => error.to_string(),
        };
        assert!(message.contains("already taken"), "publish {endpoint} {mapping}: unclear error: {message}");
        if tenant == "t1" {
            assert!(message.contains("s1-8080-tcp"), "publish {endpoint} {mapping}: error does not name the holder: {message}");
        } else {
            assert!(message.contains("a publication of another tenant"), "publish {endpoint} {mapping} of {tenant}: {message}");
            assert!(!message.contains("s1"), "the error names another tenant's publication: {message}");
        }
    }

    let result = lab.cli("h1", &["publish", "w2", "8080:80/udp", "--tenant", "t1"]);
    assert!(result.is_ok(), "8080/udp is free while 8080/tcp is taken: {result:?}");
    drop(scene);
}

/// Connects to every port given after `HOST DURATION` every 100 ms for `DURATION`
/// seconds and prints one JSON object: rounds, failed connections, the first
/// failures, and the seconds since the start of the first and last failure.
const PROBE_PORTS: &str = r#"
import json, socket, sys, time
host, duration, ports = sys.argv[1], float(sys.argv[2]), [int(p) for p in sys.argv[3:]]
start = time.monotonic()
rounds, failed, first, times = 0, 0, [], []
while time.monotonic() - start < duration:
    began = time.monotonic()
    for port in ports:
        try:
            s = socket.create_connection((host, port), timeout=1)
            s.recv(64)
            s.close()
        except Exception as error:
            failed += 1
            times.append(round(time.monotonic() - start, 2))
            if len(first) < 5:
                first.append(f"{port}: {error}")
    rounds += 1
    time.sleep(max(0.0, 0.1 - (time.monotonic() - began)))
print(json.dumps({"rounds": rounds, "failed": failed, "first": first, "times": times[:1] + times[-1:]}))
"#;

/// Elements of the host's `inet cloison` map `publish4` on `host`, one per line.
fn host_publish_map(lab: &Lab, host: &str) -> String {
    let output = lab
        .exec(host, &["nft", "list", "map", "inet", "cloison", "publish4"])
        .unwrap_or_else(|e| panic!("list publish4 on {host}: {e}"));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn endpoint_removal_keeps_200_publications() {
    let lab = common::lab("nat-restart", 1);
    lab.create_network("t1", "web", "10.65.0.0/24", &[]).expect("network t1/web");
    let server = container(&lab, "h1", "s1", "t1", "web", "10.65.0.10");
    let _unrelated = container(&lab, "h1", "u1", "t1", "web", "10.65.0.11");
    let _server = serve(&server.netns, "0.0.0.0", &["tcp/80"]);
    let ports: Vec<u16> = (20000..20200).collect();
    for port in &ports {
        publish(&lab, "s1", &format!("{port}:80"), "t1");
    }
    publish(&lab, "u1", "30000:80", "t1");

    // Like `iptables -P FORWARD DROP`, as Docker leaves a host.
    lab.exec("h1", &["nft", "add", "table", "ip", "filter"]).expect("add table ip filter on h1");
    lab.exec("h1", &["nft", "add", "chain", "ip", "filter", "FORWARD", "{ type filter hook forward priority filter; policy drop; }"])
        .expect("add FORWARD chain with policy drop on h1");

    let h1 = host_ip(&lab, "h1");
    let outside = netns_of(&lab, "outside");
    for port in [ports[0], ports[199]] {
        let seen = request_within(&outside, "tcp", &h1, port);
        assert!(seen.is_ok(), "outside to h1:{port} before the removal, forward policy drop: {seen:?}");
    }

    let port_args: Vec<String> = ports.iter().map(u16::to_string).collect();
    let probe = Command::new("nsenter")
        .arg(format!("--net={}", outside.display()))
        .args(["--", "python3", "-c", PROBE_PORTS, &h1, "6"])
        .args(&port_args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the port probe in outside");
    std::thread::sleep(Duration::from_secs(2));
    lab.detach("h1", "u1", "t1").expect("detach u1");
    let output = probe.wait_with_output().expect("port probe output");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("port probe printed {:?}: {e}", String::from_utf8_lossy(&output.stdout)));

    assert!(report["rounds"].as_u64().unwrap_or(0) >= 20, "probe rounds over 200 ports in 6 s: {report}");
    assert_eq!(report["failed"].as_u64(), Some(0), "failed probes while u1 was removed: {report}");

    let map = host_publish_map(&lab, "h1");
    assert!(!map.contains("30000"), "u1's publication is still in h1's publish4 map:\n{map}");
    for port in [ports[0], ports[100], ports[199]] {
        assert!(map.contains(&format!("tcp . {port} :")), "s1's publication {port} left h1's publish4 map:\n{map}");
    }
}

/// Sends a UDP datagram to `HOST PORT` every 100 ms for `DURATION` seconds, always
/// from source port 40000 so that every datagram belongs to one conntrack flow,
/// and prints the seconds since the start at which replies arrived, as JSON.
const PROBE_UDP_FLOW: &str = r#"
import json, socket, sys, time
host, port, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 40000))
s.settimeout(0.1)
start = time.monotonic()
replies = []
while time.monotonic() - start < duration:
    s.sendto(b"probe", (host, port))
    try:
        s.recv(64)
        replies.append(round(time.monotonic() - start, 2))
        time.sleep(0.1)
    except OSError:
        # A timeout, or the ICMP port unreachable of an endpoint without a server.
        time.sleep(0.1)
print(json.dumps(replies))
"#;

#[test]
fn replaced_endpoint_gets_udp_flow() {
    let lab = common::lab("nat-udp-swap", 1);
    lab.create_network("t1", "web", "10.66.0.0/24", &[]).expect("network t1/web");
    let old = container(&lab, "h1", "old", "t1", "web", "10.66.0.10");
    let old_server = serve(&old.netns, "0.0.0.0", &["udp/53"]);
    publish(&lab, "old", "5353:53/udp", "t1");
    let h1 = host_ip(&lab, "h1");
    let outside = netns_of(&lab, "outside");
    let seen = request_within(&outside, "udp", &h1, 5353);
    assert!(seen.is_ok(), "UDP from outside to h1:5353 before the replacement: {seen:?}");

    let start = Instant::now();
    let probe = Command::new("nsenter")
        .arg(format!("--net={}", outside.display()))
        .args(["--", "python3", "-c", PROBE_UDP_FLOW, &h1, "5353", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the UDP flow probe in outside");
    std::thread::sleep(Duration::from_secs(2));
    drop(old_server);
    lab.detach("h1", "old", "t1").expect("detach the old endpoint");
    lab.remove_container("h1", "old").expect("remove the old container");
    let new = container(&lab, "h1", "new", "t1", "web", "10.66.0.20");
    let _new_server = serve(&new.netns, "0.0.0.0", &["udp/53"]);
    publish(&lab, "new", "5353:53/udp", "t1");
    let replaced_after = start.elapsed().as_secs_f64();
    let output = probe.wait_with_output().expect("UDP flow probe output");
    let replies: Vec<f64> = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("UDP flow probe printed {:?}: {e}", String::from_utf8_lossy(&output.stdout)));

    assert!(replies.iter().any(|&t| t < 2.0), "the flow reached the old endpoint before the replacement: {replies:?}");
    let fresh = request_within(&outside, "udp", &h1, 5353);
    assert!(fresh.is_ok(), "a new UDP flow from outside reaches the new endpoint: {fresh:?}");
    let late = replies.iter().filter(|&&t| t > replaced_after + 5.0).count();
    assert!(late > 0, "no reply in the flow from 5 s after the replacement ({replaced_after:.1} s) to the end: {replies:?}");
}

/// A published port opens the endpoint to the outside and to flows through the
/// host address, not to the tenant's other networks: their direct flows still need
/// a group rule, even where the tenant router routes between the two networks.
#[test]
fn published_port_keeps_group_rules() {
    let lab = common::lab("nat-groups", 1);
    let scene = publish_scene(&lab);
    lab.cli("h1", &["group", "create", "only443", "--tenant", "t1"]).expect("group only443");
    lab.cli("h1", &["group", "rule", "add", "only443", "--ingress", "--proto", "tcp", "--port", "443", "--from", "network:other", "--tenant", "t1"])
        .expect("rule of only443");
    lab.cli("h1", &["endpoint", "update", "s1", "--group", "only443", "--tenant", "t1"]).expect("s1 into only443");
    let _server = serve(&scene.server.netns, "0.0.0.0", &["tcp/80", "tcp/443"]);
    let server_ip = scene.server.endpoint.ipv4.to_string();
    let allowed = request_within(&scene.other_network.netns, "tcp", &server_ip, 443);
    assert!(allowed.is_ok(), "the group rule lets network other reach port 443: {allowed:?}");

    publish(&lab, "s1", "8080:80", "t1");
    let h1 = host_ip(&lab, "h1");
    let seen = request_within(&netns_of(&lab, "outside"), "tcp", &h1, 8080);
    assert!(seen.is_ok(), "outside to h1:8080: {seen:?}");
    let seen = request_within(&scene.other_network.netns, "tcp", &h1, 8080);
    assert!(seen.is_ok(), "network other to h1:8080, through the publication: {seen:?}");

    let direct = request(&scene.other_network.netns, "tcp", &server_ip, 80);
    assert!(direct.is_err(), "network other reached the published port 80 directly, which no rule allows: {direct:?}");
}

/// A publication does not take over a port that a service of the host listens on:
/// it waits until the port is free, and the service keeps its clients.
#[test]
fn port_of_host_service_kept() {
    let lab = common::lab("nat-hostsvc", 1);
    let scene = publish_scene(&lab);
    let h1 = host_ip(&lab, "h1");
    let host_service = serve(&netns_of(&lab, "h1"), "0.0.0.0", &["tcp/9999"]);
    let seen = request_within(&netns_of(&lab, "outside"), "tcp", &h1, 9999);
    assert!(seen.is_ok(), "outside reaches the host's own service before any publication: {seen:?}");

    publish(&lab, "s1", "9999:80", "t1");
    std::thread::sleep(Duration::from_secs(1));
    let seen = request(&netns_of(&lab, "outside"), "tcp", &h1, 9999);
    assert!(seen.is_ok(), "the publication took port 9999 from the host's service: {seen:?}");

    drop(host_service);
    let _server = serve(&scene.server.netns, "0.0.0.0", &["tcp/80"]);
    let seen = request_within(&netns_of(&lab, "outside"), "tcp", &h1, 9999);
    assert_eq!(seen, Ok(cloison_lab::OUTSIDE_IP.to_string()), "once the port is free the publication leads to s1");
}
