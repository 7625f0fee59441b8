//! An address moves to another host, or to another MAC on the same host.

mod common;

use std::time::{Duration, SystemTime};

use cloison_lab::traffic::Prober;
use cloison_lab::Lab;
use common::{container, ip, ping3, vxlan_state_problems, wait_reachable, Container};

const MOVED: &str = "10.5.0.10";

/// Removes `old`, starts pinging its address from `prober` every 10 ms, attaches a new
/// silent container with the same address and `mac` on `host`, and returns the time
/// from the start of that attach to the first reply.
fn move_address(lab: &Lab, prober: &Container, old: &Container, host: &str, name: &str, mac: &str) -> Duration {
    lab.detach(&old.host, &old.endpoint.name, "blue").expect("detach the old endpoint");
    let old_name = old.netns.file_name().and_then(|n| n.to_str()).and_then(|n| n.rsplit('.').next()).unwrap_or_default();
    lab.remove_container(&old.host, old_name).expect("remove the old container");

    let probe = Prober::start(&prober.netns, ip(MOVED), Duration::from_millis(10)).expect("start prober");
    std::thread::sleep(Duration::from_millis(50));
    let start = SystemTime::now();
    let netns = lab.add_container(host, name).expect("new container");
    lab.attach(host, "web", &netns, "blue", &["--ip", MOVED, "--mac", mac, "--name", name]).expect("attach the new endpoint");
    let reply = probe.first_reply(Duration::from_secs(10)).unwrap_or_else(|| panic!("{MOVED} on {host} never replied"));
    reply.duration_since(start).unwrap_or_default()
}

/// Lists FDB entries on any host that still name `mac`.
fn entries_with_mac(lab: &Lab, mac: &str) -> Vec<String> {
    let mut found = Vec::new();
    for host in lab.host_labels() {
        let out = lab.exec(&host, &["bridge", "fdb", "show"]).expect("bridge fdb show");
        let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        found.extend(text.lines().filter(|line| line.contains(mac)).map(|line| format!("{host}: {line}")));
        let out = lab.exec(&host, &["ip", "neigh", "show"]).expect("ip neigh show");
        let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        found.extend(text.lines().filter(|line| line.contains(mac)).map(|line| format!("{host}: {line}")));
    }
    found
}

fn find_container(lab: &Lab, host: &str, name: &str) -> Container {
    let endpoints = common::endpoints(lab);
    let endpoint = endpoints.into_iter().find(|e| e.name == name).unwrap_or_else(|| panic!("endpoint {name}"));
    let netns = std::path::PathBuf::from(format!("/run/netns/cl-{}.{host}.{name}", lab.name()));
    Container { host: host.to_string(), netns, endpoint }
}

#[test]
fn address_moves_within_one_second() {
    let lab = common::lab("case-move", 3);
    lab.create_network("blue", "web", "10.5.0.0/24", &[]).expect("network");
    let prober = container(&lab, "h1", "prober", "blue", "web", "10.5.0.20");
    let first = container(&lab, "h2", "first", "blue", "web", MOVED);
    wait_reachable(&prober, ip(MOVED));
    assert_eq!(ping3(&prober, ip(MOVED)).received, 3, "prober reaches the first holder on h2");
    let first_mac = first.endpoint.mac.to_string().to_ascii_lowercase();

    let elapsed = move_address(&lab, &prober, &first, "h3", "second", "0a:00:00:05:00:02");
    assert!(elapsed <= Duration::from_secs(1), "moved to h3: first reply after {elapsed:?}");
    let stale = entries_with_mac(&lab, &first_mac);
    assert!(stale.is_empty(), "entries still name the old MAC {first_mac}:\n{}", stale.join("\n"));
    let problems = vxlan_state_problems(&lab);
    assert!(problems.is_empty(), "after the move to h3:\n{}", problems.join("\n"));

    let second = find_container(&lab, "h3", "second");
    let elapsed = move_address(&lab, &prober, &second, "h3", "third", "0a:00:00:05:00:03");
    assert!(elapsed <= Duration::from_secs(1), "new MAC on the same host: first reply after {elapsed:?}");
    let stale = entries_with_mac(&lab, "0a:00:00:05:00:02");
    assert!(stale.is_empty(), "entries still name the old MAC 0a:00:00:05:00:02:\n{}", stale.join("\n"));
    let problems = vxlan_state_problems(&lab);
    assert!(problems.is_empty(), "after the MAC change on h3:\n{}", problems.join("\n"));
}
