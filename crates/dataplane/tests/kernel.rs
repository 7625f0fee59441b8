//! NetlinkDataplane against a real kernel, inside throw-away namespaces.
//! These tests need root and iproute2; without them they fail with a message.

#![allow(clippy::print_stderr)]

mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use cloison_dataplane::{Dataplane, DataplaneError, NetlinkDataplane};
use support::{endpoint, network, remote, require_root, Netns, RunDir, VNI};

const VTEP1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const VTEP2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// One simulated host: its namespace, run directory and dataplane.
struct Host {
    netns: Netns,
    run_dir: RunDir,
    dataplane: NetlinkDataplane,
}

impl Host {
    fn new(tag: &str) -> Self {
        let netns = Netns::new(tag);
        let run_dir = RunDir::new();
        let dataplane = NetlinkDataplane::in_namespace(netns.path(), run_dir.path.clone()).expect("open host namespace");
        Host { netns, run_dir, dataplane }
    }

    /// Ensures the tenant router and one network, and returns the network plan.
    async fn with_network(&self, vtep: Ipv4Addr) -> cloison_dataplane::NetworkPlan {
        let router = self.run_dir.router("t1");
        self.dataplane.ensure_router(&router).await.expect("ensure router");
        let plan = network(VNI, vtep, &router.netns_path);
        self.dataplane.ensure_network(&plan).await.expect("ensure network");
        plan
    }
}

#[tokio::test]
async fn endpoints_on_one_network_ping() {
    require_root();
    let host = Host::new("host");
    let net = host.with_network(VTEP1).await;
    let (s1, s2) = (Netns::new("s1"), Netns::new("s2"));
    let (e1, e2) = (endpoint(&net, 2, &s1.path()), endpoint(&net, 3, &s2.path()));
    host.dataplane.ensure_local_endpoint(&e1, None).await.expect("ensure e1");
    host.dataplane.ensure_local_endpoint(&e2, None).await.expect("ensure e2");

    assert!(s1.ping("10.1.0.3"), "e1 cannot reach e2 over IPv4");
    assert!(s2.ping("10.1.0.2"), "e2 cannot reach e1 over IPv4");
    assert!(s1.ping("fd00:1::3"), "e1 cannot reach e2 over IPv6");
    assert!(s1.ping("10.1.0.1"), "e1 cannot reach its IPv4 gateway");
    assert!(s2.ping("fd00:1::1"), "e2 cannot reach its IPv6 gateway");
}

/// Removal returns once both ends left their namespaces, before the kernel's
/// cleanup ends, so the same names can be taken again at once.
#[tokio::test]
async fn removed_names_are_free_at_once() {
    require_root();
    let host = Host::new("host");
    let net = host.with_network(VTEP1).await;
    let s1 = Netns::new("s1");
    let e1 = endpoint(&net, 2, &s1.path());
    for round in 0..5 {
        host.dataplane.ensure_local_endpoint(&e1, None).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
        host.dataplane.remove_local_endpoint(&e1.host_ifname).await.unwrap_or_else(|e| panic!("round {round}: {e}"));

        assert!(!host.netns.has_link(&e1.host_ifname), "round {round}: host end still listed");
        assert!(!s1.has_link("eth0"), "round {round}: container end still listed");
    }
    host.dataplane.ensure_local_endpoint(&e1, None).await.expect("attach after the last removal");
    assert!(s1.ping("10.1.0.1"), "endpoint attached again cannot reach its gateway");
}

/// An agent stopped between creating a pair and marking it leaves an unmarked host
/// end, down and on no bridge. The next ensure replaces it instead of reporting a
/// foreign link for ever.
#[tokio::test]
async fn unmarked_pair_is_replaced() {
    require_root();
    let host = Host::new("host");
    let net = host.with_network(VTEP1).await;
    let s1 = Netns::new("s1");
    let e1 = endpoint(&net, 2, &s1.path());
    host.netns.ip(&["link", "add", &e1.host_ifname, "type", "veth", "peer", "name", "eth0", "netns", &s1.name]);

    host.dataplane.ensure_local_endpoint(&e1, None).await.expect("ensure over the unmarked pair");

    assert!(s1.ping("10.1.0.1"), "the endpoint cannot reach its gateway");
    let details = host.netns.ip(&["-d", "link", "show", &e1.host_ifname]);
    assert!(details.contains("alias cloison:endpoint:"), "host end unmarked: {details}");
    assert!(details.contains(&format!("master {}", net.bridge)), "host end off the bridge: {details}");
}

#[tokio::test]
async fn ensure_twice_changes_nothing() {
    require_root();
    let host = Host::new("host");
    let net = host.with_network(VTEP1).await;
    let sandbox = Netns::new("s");
    let e = endpoint(&net, 2, &sandbox.path());
    host.dataplane.ensure_local_endpoint(&e, None).await.expect("first ensure");
    let names = [&net.bridge, &net.vxlan, &net.gateway.host_port, &e.host_ifname];
    let before: Vec<_> = names.iter().map(|n| host.netns.ifindex(n)).collect();
    let inside = sandbox.ifindex("eth0");

    host.dataplane.ensure_network(&net).await.expect("second ensure_network");
    host.dataplane.ensure_local_endpoint(&e, None).await.expect("second ensure_local_endpoint");

    let after: Vec<_> = names.iter().map(|n| host.netns.ifindex(n)).collect();
    assert!(before.iter().all(Option::is_some), "missing link: {before:?}");
    assert_eq!(before, after, "a host link was recreated");
    assert_eq!(inside, sandbox.ifindex("eth0"), "the container end was recreated");
    assert_eq!(sandbox.ip(&["-o", "-4", "addr", "show", "eth0"]).lines().count(), 1);
    assert!(sandbox.ping("10.1.0.1"));
}

#[tokio::test]
async fn drift_is_repaired() {
    require_root();
    let host = Host::new("host");
    let net = host.with_network(VTEP1).await;
    let sandbox = Netns::new("s");
    let e = endpoint(&net, 2, &sandbox.path());
    host.dataplane.ensure_local_endpoint(&e, None).await.expect("ensure endpoint");
    let index = host.netns.ifindex(&e.host_ifname);

    host.netns.ip(&["link", "set", &e.host_ifname, "down", "nomaster"]);
    host.netns.ip(&["link", "set", &net.vxlan, "mtu", "1400", "nomaster"]);
    sandbox.ip(&["addr", "flush", "dev", "eth0"]);
    host.dataplane.ensure_network(&net).await.expect("repair network");
    host.dataplane.ensure_local_endpoint(&e, None).await.expect("repair endpoint");

    let link = host.netns.ip(&["-o", "link", "show", &e.host_ifname]);
    assert!(link.contains(&format!("master {}", net.bridge)), "host end not on bridge: {link}");
    assert!(link.contains(",UP"), "host end not up: {link}");
    let vxlan = host.netns.ip(&["-o", "link", "show", &net.vxlan]);
    assert!(vxlan.contains("mtu 1450"), "VXLAN MTU not repaired: {vxlan}");
    assert!(vxlan.contains(&format!("master {}", net.bridge)), "VXLAN not on bridge: {vxlan}");
    assert_eq!(index, host.netns.ifindex(&e.host_ifname), "endpoint was recreated");
    assert!(sandbox.ping("10.1.0.1"), "endpoint unreachable after repair");
}

#[tokio::test]
async fn second_instance_adopts() {
    require_root();
    let host = Host::new("host");
    let net = host.with_network(VTEP1).await;
    let sandbox = Netns::new("s");
    let e = endpoint(&net, 2, &sandbox.path());
    host.dataplane.ensure_local_endpoint(&e, None).await.expect("ensure endpoint");
    let before = host.netns.ifindex(&e.host_ifname);

    let second = NetlinkDataplane::in_namespace(host.netns.path(), host.run_dir.path.clone()).expect("open");
    second.ensure_router(&host.run_dir.router("t1")).await.expect("adopt router");
    second.ensure_network(&net).await.expect("adopt network");
    second.ensure_local_endpoint(&e, None).await.expect("adopt endpoint");

    assert_eq!(before, host.netns.ifindex(&e.host_ifname));
    let inventory = second.inventory().await.expect("inventory");
    assert_eq!(inventory.endpoints.len(), 1);
    assert_eq!(inventory.networks.len(), 1);
    assert!(sandbox.ping("10.1.0.1"));
}

#[tokio::test]
async fn foreign_link_is_not_adopted() {
    require_root();
    let host = Host::new("host");
    let router = host.run_dir.router("t1");
    host.dataplane.ensure_router(&router).await.expect("ensure router");
    let net = network(VNI, VTEP1, &router.netns_path);
    host.netns.ip(&["link", "add", &net.bridge, "type", "bridge"]);

    let error = host.dataplane.ensure_network(&net).await.expect_err("foreign bridge adopted");
    assert!(matches!(error, DataplaneError::NotOwned { .. }), "unexpected error: {error}");
}

#[tokio::test]
async fn ifname_taken_leaves_no_veth() {
    require_root();
    let host = Host::new("host");
    let net = host.with_network(VTEP1).await;
    let sandbox = Netns::new("s");
    sandbox.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "other"]);
    let e = endpoint(&net, 2, &sandbox.path());
    let host_links = host.netns.ip(&["-o", "link", "show"]).lines().count();
    let sandbox_links = sandbox.ip(&["-o", "link", "show"]).lines().count();

    let error = host.dataplane.ensure_local_endpoint(&e, None).await.expect_err("ifname taken");
    assert!(matches!(error, DataplaneError::IfnameTaken { .. }), "unexpected error: {error}");
    assert!(!host.netns.has_link(&e.host_ifname), "host end left behind");
    assert_eq!(host_links, host.netns.ip(&["-o", "link", "show"]).lines().count(), "link left in host");
    assert_eq!(sandbox_links, sandbox.ip(&["-o", "link", "show"]).lines().count(), "link left in sandbox");
    assert!(sandbox.has_link("other"), "foreign interface touched");
}

/// Two hosts joined by a veth underlay, each with one endpoint of the network.
struct TwoHosts {
    h1: Host,
    h2: Host,
    s1: Netns,
    s2: Netns,
    net1: cloison_dataplane::NetworkPlan,
    net2: cloison_dataplane::NetworkPlan,
    e1: cloison_dataplane::LocalEndpointPlan,
    e2: cloison_dataplane::LocalEndpointPlan,
}

impl TwoHosts {
    async fn new() -> Self {
        let (h1, h2) = (Host::new("h1"), Host::new("h2"));
        support::run(
            "ip",
            &["link", "add", "u1", "netns", &h1.netns.name, "type", "veth", "peer", "u2", "netns", &h2.netns.name],
        );
        h1.netns.ip(&["addr", "add", "192.0.2.1/24", "dev", "u1"]);
        h2.netns.ip(&["addr", "add", "192.0.2.2/24", "dev", "u2"]);
        h1.netns.ip(&["link", "set", "u1", "up"]);
        h2.netns.ip(&["link", "set", "u2", "up"]);
        let (net1, net2) = (h1.with_network(VTEP1).await, h2.with_network(VTEP2).await);
        let (s1, s2) = (Netns::new("s1"), Netns::new("s2"));
        let (e1, e2) = (endpoint(&net1, 2, &s1.path()), endpoint(&net2, 3, &s2.path()));
        h1.dataplane.ensure_local_endpoint(&e1, None).await.expect("ensure e1");
        h2.dataplane.ensure_local_endpoint(&e2, None).await.expect("ensure e2");
        h1.dataplane.ensure_remote_endpoint(&remote(&net1, &e2, VTEP2)).await.expect("remote e2");
        h2.dataplane.ensure_remote_endpoint(&remote(&net2, &e1, VTEP1)).await.expect("remote e1");
        TwoHosts { h1, h2, s1, s2, net1, net2, e1, e2 }
    }
}

#[tokio::test]
async fn endpoints_on_two_hosts_ping_over_vxlan() {
    require_root();
    let t = TwoHosts::new().await;

    assert!(t.s1.ping("10.1.0.3"), "e1 cannot reach e2 across hosts");
    assert!(t.s2.ping("10.1.0.2"), "e2 cannot reach e1 across hosts");
    assert!(t.s1.ping("fd00:1::3"), "e1 cannot reach e2 across hosts over IPv6");
    for host in [&t.h1, &t.h2] {
        let fdb = host.netns.bridge(&["fdb", "show", "dev", &t.net1.vxlan]);
        for line in fdb.lines() {
            assert!(line.contains("permanent"), "learned FDB entry: {line}");
        }
    }
    let neighbours = t.h1.netns.ip(&["neigh", "show", "dev", &t.net1.vxlan]);
    assert!(neighbours.contains("10.1.0.3"), "no neighbour entry for e2: {neighbours}");
}

#[tokio::test]
async fn inventory_returns_what_was_made() {
    require_root();
    let t = TwoHosts::new().await;

    let inventory = t.h1.dataplane.inventory().await.expect("inventory");
    assert_eq!(inventory.networks.len(), 1);
    let owned = &inventory.networks[0];
    assert_eq!(owned.network_id, t.net1.network_id);
    assert_eq!(owned.vni, VNI);
    assert_eq!(owned.bridge.as_deref(), Some(t.net1.bridge.as_str()));
    assert_eq!(owned.vxlan.as_deref(), Some(t.net1.vxlan.as_str()));
    assert_eq!(inventory.endpoints.len(), 1);
    assert_eq!(inventory.endpoints[0].endpoint_id, t.e1.endpoint_id);
    assert_eq!(inventory.endpoints[0].host_ifname, t.e1.host_ifname);
    assert_eq!(inventory.remote_endpoints, vec![remote(&t.net1, &t.e2, VTEP2)]);
    assert_eq!(inventory.routers, vec![t.h1.run_dir.router("t1").netns_path]);
}

#[tokio::test]
async fn flood_entries_follow_plan() {
    require_root();
    let t = TwoHosts::new().await;
    let mut net = t.net1.clone();
    let zero = |h: &Host| {
        let fdb = h.netns.bridge(&["fdb", "show", "dev", &net.vxlan]);
        fdb.lines().filter(|l| l.starts_with("00:00:00:00:00:00")).map(String::from).collect::<Vec<_>>()
    };

    net.flood_vteps = vec![VTEP2.into(), "192.0.2.9".parse().expect("literal")];
    t.h1.dataplane.ensure_network(&net).await.expect("add flood entries");
    assert_eq!(zero(&t.h1).len(), 2, "{:?}", zero(&t.h1));

    net.flood_vteps = vec![VTEP2.into()];
    t.h1.dataplane.ensure_network(&net).await.expect("drop one flood entry");
    let left = zero(&t.h1);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains("dst 192.0.2.2"), "{left:?}");

    net.flood_vteps.clear();
    t.h1.dataplane.ensure_network(&net).await.expect("drop flood entries");
    assert!(zero(&t.h1).is_empty());
}

#[tokio::test]
async fn remove_twice_succeeds() {
    require_root();
    let t = TwoHosts::new().await;
    let router = t.h1.run_dir.router("t1");
    let entry = remote(&t.net1, &t.e2, VTEP2);
    for round in 0..2 {
        t.h1.dataplane.remove_remote_endpoint(&entry).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
        t.h1.dataplane.remove_local_endpoint(&t.e1.host_ifname).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
        t.h1.dataplane.remove_network(&t.net1).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
        t.h1.dataplane.remove_router(&router).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
    }

    assert!(!t.h1.netns.has_link(&t.net1.bridge));
    assert!(!t.h1.netns.has_link(&t.net1.vxlan));
    assert!(!t.h1.netns.has_link(&t.e1.host_ifname));
    assert!(!t.s1.has_link("eth0"), "container end survived its host end");
    assert!(!router.netns_path.exists());
    assert_eq!(t.h1.dataplane.inventory().await.expect("inventory"), Default::default());
    assert!(t.h2.netns.has_link(&t.net2.bridge), "the other host was touched");
}

/// Measures `ensure_local_endpoint` for new endpoints. Run in release:
/// `cargo test -p cloison-dataplane --release --test kernel -- --ignored --nocapture attach_latency`.
#[tokio::test]
#[ignore = "measurement, not a check; run explicitly in release"]
async fn attach_latency() {
    require_root();
    let host = Host::new("host");
    let net = host.with_network(VTEP1).await;
    let mut samples = Vec::new();
    let mut sandboxes = Vec::new();
    for n in 2..52u8 {
        let sandbox = Netns::new("s");
        let e = endpoint(&net, n, &sandbox.path());
        let start = Instant::now();
        host.dataplane.ensure_local_endpoint(&e, None).await.expect("ensure endpoint");
        samples.push(start.elapsed());
        sandboxes.push(sandbox);
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    let repeat = {
        let e = endpoint(&net, 2, &sandboxes[0].path());
        let start = Instant::now();
        host.dataplane.ensure_local_endpoint(&e, None).await.expect("repeat ensure");
        start.elapsed()
    };
    eprintln!(
        "ensure_local_endpoint over {} new endpoints: median {:?}, min {:?}, max {:?}; repeat on existing {:?}",
        samples.len(),
        median,
        samples[0],
        samples[samples.len() - 1],
        repeat
    );
    assert!(median < Duration::from_secs(1));
}

/// A link of the gateway's router-side name left in the router namespace gives way
/// to the new pair, whose router end is created there directly.
#[tokio::test]
async fn stray_router_port_is_replaced() {
    require_root();
    let host = Host::new("host");
    let router = host.run_dir.router("t1");
    host.dataplane.ensure_router(&router).await.expect("ensure router");
    let plan = network(VNI, VTEP1, &router.netns_path);
    let router_ns = format!("--net={}", router.netns_path.display());
    let added = support::run("nsenter", &[&router_ns, "ip", "link", "add", &plan.gateway.router_port, "type", "bridge"]);
    assert!(added.status.success(), "stray link not added: {}", String::from_utf8_lossy(&added.stderr));

    host.dataplane.ensure_network(&plan).await.expect("ensure network");

    let port = support::run("nsenter", &[&router_ns, "ip", "-d", "-o", "link", "show", &plan.gateway.router_port]);
    let port = String::from_utf8_lossy(&port.stdout).into_owned();
    assert!(port.contains("veth"), "router port is not the new veth: {port}");
    assert!(port.contains(",UP"), "router port is down: {port}");
    assert!(!host.netns.has_link(&plan.gateway.router_port), "router port left in the host namespace");
    let sandbox = Netns::new("s");
    let e = endpoint(&plan, 2, &sandbox.path());
    host.dataplane.ensure_local_endpoint(&e, None).await.expect("ensure endpoint");
    assert!(sandbox.ping("10.1.0.1"), "endpoint cannot reach the gateway");
}

/// An endpoint whose sandbox is the namespace playing the host is rejected before
/// anything is created, because it would replace the host's addresses and default
/// route.
#[tokio::test]
async fn endpoint_in_host_namespace_rejected() {
    require_root();
    let host = Host::new("host");
    let net = host.with_network(VTEP1).await;
    let e = endpoint(&net, 2, &host.netns.path());
    let links = host.netns.ip(&["-o", "link", "show"]).lines().count();

    let error = host.dataplane.ensure_local_endpoint(&e, None).await.expect_err("endpoint in the host namespace");
    assert!(matches!(error, DataplaneError::HostNamespace { .. }), "unexpected error: {error}");
    assert!(!host.netns.has_link(&e.host_ifname), "host end created");
    assert!(!host.netns.has_link(&e.ifname), "container end created in the host namespace");
    assert_eq!(links, host.netns.ip(&["-o", "link", "show"]).lines().count(), "link left in the host namespace");
}

/// A namespace made again under the same name is another namespace. An ensure
/// that names the first one's cookie fails and creates nothing in the new one.
#[tokio::test]
async fn endpoint_not_created_in_replaced_namespace() {
    require_root();
    let host = Host::new("host");
    let net = host.with_network(VTEP1).await;
    let sandbox = Netns::new("s");
    let e = endpoint(&net, 2, &sandbox.path());
    let first = host.dataplane.ensure_local_endpoint(&e, None).await.expect("ensure endpoint");
    let again = host.dataplane.ensure_local_endpoint(&e, first).await.expect("ensure in the same namespace");
    assert_eq!(first, again, "one namespace, two cookies");
    assert!(first.is_some(), "no cookie for a namespaced endpoint");

    sandbox.replace();
    let error = host.dataplane.ensure_local_endpoint(&e, first).await.expect_err("ensure in the new namespace");
    assert!(matches!(error, DataplaneError::NamespaceReplaced { .. }), "unexpected error: {error}");
    assert!(!sandbox.has_link(&e.ifname), "container end created in the new namespace");
}
