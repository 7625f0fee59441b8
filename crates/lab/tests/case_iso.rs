//! Isolation at layer 2: between two networks of one tenant, and between tenants
//! using the same subnets, over IPv4 and IPv6, by address, by broadcast and with
//! forged source addresses.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use cloison_lab::traffic::{ping_reply_ttls, set_default_ttl};
use cloison_lab::Lab;
use common::{container, wait_reachable, Container};

/// Network A and B of tenant t1 (no routing between them), and tenant t2's network
/// with A's subnets. Each container gets its own TTL: a1 101, a2 111, b1 121, b2 131,
/// x1 141, x2 151, a3 161. The gap of 10 keeps a reply that crossed a router (one
/// less) from passing for another container's.
fn scene(lab: &Lab) -> Vec<(Container, u8)> {
    lab.create_network("t1", "a", "10.40.0.0/24", &["--subnet6", "fd00:40::/64"]).expect("network t1/a");
    lab.create_network("t1", "b", "10.41.0.0/24", &["--subnet6", "fd00:41::/64"]).expect("network t1/b");
    lab.create_network("t2", "a", "10.40.0.0/24", &["--subnet6", "fd00:40::/64"]).expect("network t2/a");
    let members = [
        ("h1", "a1", "t1", "a", "10.40.0.11"),
        ("h2", "a2", "t1", "a", "10.40.0.12"),
        ("h1", "b1", "t1", "b", "10.41.0.11"),
        ("h2", "b2", "t1", "b", "10.41.0.12"),
        ("h1", "x1", "t2", "a", "10.40.0.11"),
        ("h2", "x2", "t2", "a", "10.40.0.12"),
        ("h1", "a3", "t1", "a", "10.40.0.13"),
    ];
    let mut scene = Vec::new();
    for (index, (host, name, tenant, network, address)) in members.into_iter().enumerate() {
        let c = container(lab, host, name, tenant, network, address);
        let ttl = 101 + 10 * index as u8;
        set_default_ttl(&c.netns, ttl).expect("set TTL");
        scene.push((c, ttl));
    }
    scene
}

fn ttls(from: &Container, target: IpAddr) -> Vec<u8> {
    ping_reply_ttls(&from.netns, target, 3, Duration::from_millis(100)).unwrap_or_else(|e| panic!("ping {target}: {e}"))
}

fn ipv6_of(c: &Container) -> IpAddr {
    IpAddr::V6(c.endpoint.ipv6.unwrap_or_else(|| panic!("{} has no IPv6 address", c.endpoint.name)))
}

fn ipv4_of(c: &Container) -> IpAddr {
    IpAddr::V4(c.endpoint.ipv4)
}

/// Echo requests received in the namespace at `netns`, from /proc/net/snmp, which
/// shows the reading process's network namespace.
fn echo_requests_received(lab: &Lab, netns: &Path) -> u64 {
    let out = lab.exec_in_container(netns, &["cat", "/proc/net/snmp"]).expect("read /proc/net/snmp");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut icmp = text.lines().filter(|l| l.starts_with("Icmp:"));
    let (names, values) = (icmp.next().unwrap_or_default(), icmp.next().unwrap_or_default());
    let column = names.split_whitespace().position(|n| n == "InEchos").expect("InEchos column");
    values.split_whitespace().nth(column).and_then(|v| v.parse().ok()).expect("InEchos value")
}

#[test]
fn same_network_only_reaches() {
    let lab = common::lab("case-iso", 2);
    let scene = scene(&lab);
    let [(a1, _), (a2, a2_ttl), (b1, _), (b2, b2_ttl), (x1, _), (x2, x2_ttl), _] = &scene[..] else {
        panic!("scene has seven members");
    };

    for (from, to, ttl) in [(a1, a2, a2_ttl), (b1, b2, b2_ttl), (x1, x2, x2_ttl)] {
        wait_reachable(from, to.endpoint.ipv4);
        assert_eq!(ttls(from, ipv4_of(to)), [*ttl; 3], "{} to {} over IPv4", from.endpoint.name, to.endpoint.name);
        assert_eq!(ttls(from, ipv6_of(to)), [*ttl; 3], "{} to {} over IPv6", from.endpoint.name, to.endpoint.name);
    }
    for target in [ipv4_of(b2), ipv6_of(b2)] {
        assert!(ttls(a1, target).is_empty(), "a1 (network a) reached network b's {target}");
        assert!(ttls(x1, target).is_empty(), "x1 (tenant t2) reached t1's {target}");
    }
    // t2 shares t1's subnets, so only t2's endpoints may reply to its pings.
    for target in [ipv4_of(a2), ipv6_of(a2)] {
        let seen = ttls(x1, target);
        assert!(!seen.contains(a2_ttl), "x1 (tenant t2) got a reply from t1's a2 at {target}: {seen:?}");
    }
}

#[test]
fn broadcast_stays_in_network() {
    let lab = common::lab("case-isob", 2);
    let scene = scene(&lab);
    for (c, _) in &scene {
        lab.exec_in_container(&c.netns, &["sysctl", "-q", "-w", "net.ipv4.icmp_echo_ignore_broadcasts=0"]).expect("sysctl");
    }
    let (a1, _) = &scene[0];
    let out = lab.exec_in_container(&a1.netns, &["ping", "-n", "-b", "-c", "3", "-i", "0.2", "-W", "1", "10.40.0.255"]);
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    for (c, ttl) in &scene[2..6] {
        assert!(!text.contains(&format!("ttl={ttl} ")), "a1's broadcast was answered by {} outside network t1/a:\n{text}", c.endpoint.name);
    }
}

#[test]
fn forged_sources_are_dropped() {
    let lab = common::lab("case-isof", 2);
    let scene = scene(&lab);
    let (a1, _) = &scene[0];
    let (a2, a2_ttl) = &scene[1];
    let (a3, _) = &scene[6];
    wait_reachable(a3, a2.endpoint.ipv4);

    // a1 sends from a3's address: a2 must not receive it.
    lab.exec_in_container(&a1.netns, &["ip", "addr", "add", "10.40.0.13/32", "dev", "eth0"]).expect("add a3's address to a1");
    let before = echo_requests_received(&lab, &a2.netns);
    let _ = lab.exec_in_container(&a1.netns, &["ping", "-n", "-c", "3", "-i", "0.1", "-W", "1", "-I", "10.40.0.13", "10.40.0.12"]);
    let after = echo_requests_received(&lab, &a2.netns);
    assert_eq!(after, before, "a2 received echo requests that a1 sent with a3's address");

    // a1 sends with a2's MAC: h1's bridge must not learn a2's MAC on a1's port.
    let a2_mac = a2.endpoint.mac.to_string();
    lab.exec_in_container(&a1.netns, &["ip", "link", "set", "eth0", "address", &a2_mac]).expect("give a1 a2's MAC");
    let _ = lab.exec_in_container(&a1.netns, &["ping", "-n", "-c", "3", "-i", "0.1", "-W", "1", "10.40.0.13"]);
    assert_eq!(ttls(a3, ipv4_of(a2)), [*a2_ttl; 3], "a3 still reaches a2 after a1 sent with a2's MAC");
}

/// A VLAN-tagged frame carrying the port's own MAC and IPv4 address is dropped like
/// any frame that is not untagged IPv4, IPv6 or ARP. The kernel reads `meta
/// protocol` past the tag, so only `ether type` distinguishes such a frame from IPv4.
#[test]
fn vlan_tagged_frames_are_dropped() {
    let lab = common::lab("case-isov", 2);
    let scene = scene(&lab);
    let (a1, _) = &scene[0];
    let (a2, _) = &scene[1];
    wait_reachable(a1, a2.endpoint.ipv4);

    let frame = echo_request((a1.endpoint.mac.0, a1.endpoint.ipv4), a2, Some(5));
    let before = spoof_dropped(&lab, "h1");
    for _ in 0..3 {
        send_raw_frame(&a1.netns, "eth0", &frame);
    }
    assert_eq!(spoof_dropped(&lab, "h1"), before + 3, "h1 let a1's frames tagged with VLAN 5 through");
}

/// A port named like an endpoint's that the host's tables do not list, one made by
/// hand or left by an interrupted creation, carries no frame at all.
#[test]
fn unlisted_endpoint_ports_are_dropped() {
    let lab = common::lab("case-isou", 2);
    let scene = scene(&lab);
    let (a1, _) = &scene[0];
    let (a3, _) = &scene[6];
    wait_reachable(a1, a3.endpoint.ipv4);

    let bridge = bridge_of(&lab, "h1", &a1.endpoint.id);
    lab.exec("h1", &["ip", "link", "add", "clehand0", "type", "veth", "peer", "name", "handpeer0"]).expect("add a veth");
    lab.exec("h1", &["ip", "link", "set", "clehand0", "master", &bridge, "up"]).expect("put it on a1's bridge");
    // Without IPv6 the peer sends nothing of its own, so only the frames below count.
    lab.exec("h1", &["sysctl", "-qw", "net.ipv6.conf.handpeer0.disable_ipv6=1"]).expect("disable IPv6 on the peer");
    lab.exec("h1", &["ip", "link", "set", "handpeer0", "up"]).expect("set its peer up");
    let frame = echo_request(([0x02, 0, 0, 0, 0x99, 0x01], std::net::Ipv4Addr::new(10, 40, 0, 99)), a3, None);
    let h1 = lab.netns_path("h1").expect("h1's namespace");
    let before = spoof_dropped(&lab, "h1");
    for _ in 0..3 {
        send_raw_frame(&h1, "handpeer0", &frame);
    }
    assert_eq!(spoof_dropped(&lab, "h1"), before + 3, "h1's bridge let frames of an unlisted endpoint port through");
}

/// Returns the bridge of the endpoint `id` on `host`: the master of the link whose
/// alias names the endpoint.
fn bridge_of(lab: &Lab, host: &str, id: &str) -> String {
    let out = lab.exec(host, &["ip", "-j", "link", "show"]).expect("ip link show");
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip JSON");
    links
        .as_array()
        .into_iter()
        .flatten()
        .find(|link| link["ifalias"].as_str().is_some_and(|alias| alias.contains(id)))
        .and_then(|link| link["master"].as_str())
        .unwrap_or_else(|| panic!("no port of endpoint {id} on a bridge of {host}"))
        .to_string()
}

/// Builds an Ethernet frame, tagged with VLAN `vid` when given, that carries an ICMP
/// echo request from MAC and IPv4 address `from` to `to`'s.
fn echo_request(from: ([u8; 6], std::net::Ipv4Addr), to: &Container, vid: Option<u16>) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&to.endpoint.mac.0);
    frame.extend_from_slice(&from.0);
    if let Some(vid) = vid {
        frame.extend_from_slice(&[0x81, 0x00]);
        frame.extend_from_slice(&vid.to_be_bytes());
    }
    frame.extend_from_slice(&[0x08, 0x00]);
    // IPv4 header: version 4, length 28, TTL 64, ICMP, checksum left zero.
    frame.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0]);
    frame.extend_from_slice(&from.1.octets());
    frame.extend_from_slice(&to.endpoint.ipv4.octets());
    // ICMP echo request, checksum left zero.
    frame.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]);
    frame
}

/// Sends `frame` as it is out of interface `ifname` of the namespace at `netns`,
/// from a thread that enters the namespace.
fn send_raw_frame(netns: &Path, ifname: &str, frame: &[u8]) {
    let (netns, ifname, frame) = (netns.to_path_buf(), ifname.to_string(), frame.to_vec());
    let sender = std::thread::spawn(move || {
        let file = std::fs::File::open(&netns).unwrap_or_else(|e| panic!("open {}: {e}", netns.display()));
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("enter the container's namespace");
        let index = nix::net::if_::if_nametoindex(ifname.as_str()).expect("index of the container's interface");
        // SAFETY: socket(2) takes no pointers; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
        // SAFETY: sockaddr_ll is plain data, for which all zero bytes are valid.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_ifindex = index as i32;
        address.sll_halen = 6;
        // SAFETY: fd is an open socket, frame and address outlive the call, and the
        // lengths passed are theirs.
        let sent = unsafe {
            libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::addr_of!(address).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        let error = std::io::Error::last_os_error();
        // SAFETY: fd is open and owned here, and not used after this call.
        unsafe { libc::close(fd) };
        assert_eq!(sent, frame.len() as isize, "send the raw frame: {error}");
    });
    sender.join().expect("frame sender panicked");
}

/// Returns the TTL of the member of `from`'s own network (same network id, `from`
/// included) that owns `address`, the only container allowed to reply to a ping to it.
fn own_network_owner(scene: &[(Container, u8)], from: &Container, address: IpAddr) -> Option<u8> {
    scene
        .iter()
        .filter(|(c, _)| c.endpoint.network_id == from.endpoint.network_id)
        .find(|(c, _)| ipv4_of(c) == address || c.endpoint.ipv6.map(IpAddr::V6) == Some(address))
        .map(|(_, ttl)| *ttl)
}

/// Returns a description of what went wrong when `from` pings `address`, or `None`
/// when only the owner in `from`'s own network replied, three times.
fn pair_problem(scene: &[(Container, u8)], from: &Container, to: &Container, address: IpAddr) -> Option<String> {
    let seen = ttls(from, address);
    let expected: Vec<u8> = own_network_owner(scene, from, address).map(|ttl| vec![ttl; 3]).unwrap_or_default();
    (seen != expected).then(|| {
        format!(
            "{} ({}) pinging {}'s {address}: reply TTLs {seen:?}, expected {expected:?}",
            from.endpoint.name, from.host, to.endpoint.name
        )
    })
}

/// Reads the packet count of h's `bridge cloison spoof_dropped` counter.
fn spoof_dropped(lab: &Lab, host: &str) -> u64 {
    let out = lab.exec(host, &["nft", "-j", "list", "counter", "bridge", "cloison", "spoof_dropped"]).expect("nft list counter");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("nft JSON");
    json["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|item| item["counter"]["packets"].as_u64())
        .unwrap_or_else(|| panic!("no spoof_dropped counter on {host}"))
}

/// Echo requests received over IPv6 in the namespace at `netns`.
fn echo6_requests_received(lab: &Lab, netns: &Path) -> u64 {
    let out = lab.exec_in_container(netns, &["cat", "/proc/net/snmp6"]).expect("read /proc/net/snmp6");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("Icmp6InEchos"))
        .and_then(|value| value.trim().parse().ok())
        .expect("Icmp6InEchos value")
}

/// Waits until the container's link-local address has passed duplicate address
/// detection, so it replies to link-local multicast from that address.
fn wait_link_local(lab: &Lab, c: &Container) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let out = lab.exec_in_container(&c.netns, &["ip", "-6", "addr", "show", "dev", "eth0", "tentative"]).expect("ip addr");
        if out.stdout.is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{} still has tentative addresses after 5 s", c.endpoint.name);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_pair_both_families() {
    let lab = common::lab("case-isoall", 2);
    let scene = scene(&lab);
    for (from, to) in [(0, 1), (2, 3), (4, 5), (6, 1)] {
        wait_reachable(&scene[from].0, scene[to].0.endpoint.ipv4);
    }

    let mut probes = Vec::new();
    for (from, _) in &scene {
        for (to, _) in scene.iter().filter(|(to, _)| to.endpoint.id != from.endpoint.id) {
            // A ping to the sender's own address never leaves it, so it proves nothing.
            let mine = [ipv4_of(from), ipv6_of(from)];
            for address in [ipv4_of(to), ipv6_of(to)].into_iter().filter(|a| !mine.contains(a)) {
                probes.push((from, to, address));
            }
        }
    }
    // Each probe is independent, so they run together to keep the test short.
    let scene = &scene;
    let problems: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> =
            probes.iter().map(|&(from, to, address)| s.spawn(move || pair_problem(scene, from, to, address))).collect();
        handles.into_iter().filter_map(|h| h.join().expect("probe thread")).collect()
    });
    assert!(problems.is_empty(), "{} of {} probes broke isolation:\n{}", problems.len(), probes.len(), problems.join("\n"));
}

#[test]
fn ipv6_multicast_stays_in_network() {
    let lab = common::lab("case-isom", 2);
    let scene = scene(&lab);
    let (a1, _) = &scene[0];
    wait_reachable(a1, scene[1].0.endpoint.ipv4);
    for (c, _) in &scene {
        wait_link_local(&lab, c);
    }
    let out = lab
        .exec_in_container(&a1.netns, &["ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", "ff02::1%eth0"])
        .expect("ping ff02::1");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for (c, ttl) in &scene[2..6] {
        for heard in [*ttl, ttl - 1] {
            assert!(
                !text.contains(&format!("ttl={heard} ")),
                "a1's all-nodes ping was answered by {} outside network t1/a:\n{text}",
                c.endpoint.name
            );
        }
    }
    // Network a has flooding off, so multicast stays on h1 and only a3 replies.
    let (a3, a3_ttl) = &scene[6];
    assert!(text.contains(&format!("ttl={a3_ttl} ")), "{} of a1's own network did not answer ff02::1:\n{text}", a3.endpoint.name);
}

#[test]
fn forged_ipv6_and_cross_tenant_dropped() {
    let lab = common::lab("case-isof6", 2);
    let scene = scene(&lab);
    let (a1, _) = &scene[0];
    let (a2, _) = &scene[1];
    let (x1, _) = &scene[4];
    let (a3, _) = &scene[6];
    wait_reachable(a1, a2.endpoint.ipv4);
    let a2_v6 = ipv6_of(a2).to_string();
    assert_eq!(ttls(a1, ipv6_of(a2)).len(), 3, "a1 cannot ping a2 over IPv6 before forging anything");

    // a1 sends from a3's IPv6 address to a2 on the other host.
    let a3_v6 = format!("{}/128", ipv6_of(a3));
    lab.exec_in_container(&a1.netns, &["ip", "-6", "addr", "add", &a3_v6, "dev", "eth0", "nodad"]).expect("add a3's IPv6 address to a1");
    let (before, dropped) = (echo6_requests_received(&lab, &a2.netns), spoof_dropped(&lab, "h1"));
    let forged = ipv6_of(a3).to_string();
    let _ = lab.exec_in_container(&a1.netns, &["ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", "-I", &forged, &a2_v6]);
    assert_eq!(echo6_requests_received(&lab, &a2.netns), before, "a2 received echo requests that a1 sent from a3's IPv6 address");
    assert!(spoof_dropped(&lab, "h1") >= dropped + 3, "h1 did not count a1's forged IPv6 packets");

    // x1 of tenant t2 takes a2's MAC and pings a2's IPv4 address, which x2 of t2 also
    // has. The MAC change flushes x1's neighbours, so ARP requests with the forged MAC
    // go first and the number of frames counted depends on ARP timing.
    let (before, dropped) = (echo_requests_received(&lab, &a2.netns), spoof_dropped(&lab, "h1"));
    lab.exec_in_container(&x1.netns, &["ip", "link", "set", "eth0", "address", &a2.endpoint.mac.to_string()]).expect("give x1 a2's MAC");
    let _ = lab.exec_in_container(&x1.netns, &["ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", "10.40.0.12"]);
    assert_eq!(echo_requests_received(&lab, &a2.netns), before, "t1's a2 received echo requests from t2's x1");
    let counted = spoof_dropped(&lab, "h1") - dropped;
    assert!(counted > 0, "h1 counted none of x1's frames with a2's MAC");
}
