//! The agent restarts, or its VXLAN device is deleted behind its back.

// Measured repair times go to stderr, shown with `cargo test -- --nocapture`.
#![allow(clippy::print_stderr)]

mod common;

use std::time::{Duration, Instant};

use cloison_lab::traffic::ping;
use cloison_lab::Lab;
use common::{container, ip, ping3, vxlan_device, vxlan_state_problems, wait_reachable};

/// Interface index of `dev` on `host`.
fn ifindex(lab: &Lab, host: &str, dev: &str) -> String {
    let out = lab.exec(host, &["ip", "-o", "link", "show", "dev", dev]).unwrap_or_else(|e| panic!("{dev} on {host}: {e}"));
    String::from_utf8_lossy(&out.stdout).split(':').next().unwrap_or_default().to_string()
}

fn web_vni(lab: &Lab) -> u32 {
    common::networks(lab).into_iter().find(|n| n.name == "web").expect("network web").vni
}

#[test]
fn agent_kill_loses_no_probe() {
    let mut lab = common::lab("case-kill", 2);
    lab.create_network("blue", "web", "10.6.0.0/24", &[]).expect("network");
    let c1 = container(&lab, "h1", "c1", "blue", "web", "10.6.0.11");
    let c2 = container(&lab, "h2", "c2", "blue", "web", "10.6.0.12");
    wait_reachable(&c1, ip("10.6.0.12"));
    assert_eq!(ping3(&c1, ip("10.6.0.12")).received, 3, "c1 reaches c2 before the restart");
    let dev = vxlan_device(web_vni(&lab));
    let vxlan_before = ifindex(&lab, "h2", &dev);

    let probe_netns = c1.netns.clone();
    let probes = std::thread::spawn(move || ping(&probe_netns, ip("10.6.0.12"), 60, Duration::from_millis(100)));
    std::thread::sleep(Duration::from_secs(1));
    lab.kill_agent("h2").expect("kill -9 the agent of h2");
    std::thread::sleep(Duration::from_millis(500));
    lab.start_agent("h2").expect("restart the agent of h2");
    let counts = probes.join().expect("probe thread").expect("ping");
    assert_eq!(counts.received, counts.transmitted, "probes every 100 ms across the restart: {counts:?}");

    assert_eq!(ifindex(&lab, "h2", &dev), vxlan_before, "the restarted agent adopts {dev} instead of recreating it");
    let log = std::fs::read_to_string(lab.log_path("h2")).unwrap_or_default();
    assert!(!log.to_ascii_lowercase().contains("file exists"), "the restarted agent met 'file exists':\n{log}");
    assert_eq!(ping3(&c2, ip("10.6.0.11")).received, 3, "c2 reaches c1 after the restart");
    let problems = vxlan_state_problems(&lab);
    assert!(problems.is_empty(), "after the restart:\n{}", problems.join("\n"));
}

#[test]
fn deleted_vxlan_device_is_repaired() {
    let lab = common::lab("case-vxdel", 2);
    lab.create_network("blue", "web", "10.7.0.0/24", &[]).expect("network");
    let c1 = container(&lab, "h1", "c1", "blue", "web", "10.7.0.11");
    let _c2 = container(&lab, "h2", "c2", "blue", "web", "10.7.0.12");
    wait_reachable(&c1, ip("10.7.0.12"));
    assert_eq!(ping3(&c1, ip("10.7.0.12")).received, 3, "c1 reaches c2 before the deletion");
    let dev = vxlan_device(web_vni(&lab));

    lab.exec("h2", &["ip", "link", "del", &dev]).expect("delete the VXLAN device of h2");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(10);
    let mut repaired = false;
    while Instant::now() < deadline {
        let reached = ping(&c1.netns, ip("10.7.0.12"), 1, Duration::from_millis(100)).is_ok_and(|c| c.received == 1);
        if reached && vxlan_state_problems(&lab).is_empty() {
            repaired = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let problems = vxlan_state_problems(&lab);
    assert!(repaired, "not repaired within 10 s of deleting {dev} on h2:\n{}", problems.join("\n"));
    eprintln!("repaired after {:?}", start.elapsed());
}
