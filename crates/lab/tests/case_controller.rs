//! The controller stops, or an agent is cut off from it.

// Measured repair times go to stderr, shown with `cargo test -- --nocapture`.
#![allow(clippy::print_stderr)]

mod common;

use std::time::{Duration, Instant};

use cloison_lab::traffic::{ping, Prober};
use common::{container, ip, ping3, wait_reachable};

#[test]
fn controller_outage_keeps_traffic() {
    let mut lab = common::lab("case-ctl", 2);
    lab.create_network("blue", "web", "10.8.0.0/24", &[]).expect("network");
    let c1 = container(&lab, "h1", "c1", "blue", "web", "10.8.0.11");
    let c2 = container(&lab, "h2", "c2", "blue", "web", "10.8.0.12");
    wait_reachable(&c1, ip("10.8.0.12"));
    assert_eq!(ping3(&c1, ip("10.8.0.12")).received, 3, "c1 reaches c2 before the outage");

    lab.stop_controller(0).expect("stop the controller");
    let counts = ping(&c1.netns, ip("10.8.0.12"), 300, Duration::from_millis(100)).expect("ping for 30 s");
    assert_eq!(counts.received, counts.transmitted, "probes during 30 s without controller: {counts:?}");
    assert_eq!(ping3(&c2, ip("10.8.0.11")).received, 3, "c2 reaches c1 during the outage");
    lab.start_controller(0).expect("start the controller again");
    assert_eq!(ping3(&c1, ip("10.8.0.12")).received, 3, "c1 reaches c2 after the outage");
}

/// Drops traffic between h2 and the controller in both directions, leaving VXLAN
/// between the hosts alone, like `ip route add blackhole 10.200.0.2`.
fn cut_off_h2(lab: &cloison_lab::Lab, add: bool) {
    let verb = if add { "add" } else { "del" };
    lab.exec("h2", &["ip", "route", verb, "blackhole", "10.200.0.2/32"]).expect("route on h2");
    lab.exec("ctl", &["ip", "route", verb, "blackhole", "10.200.0.12/32"]).expect("route on ctl");
}

#[test]
fn cut_off_agent_catches_up() {
    let lab = common::lab("case-cut", 2);
    lab.create_network("blue", "web", "10.9.0.0/24", &[]).expect("network");
    let _c1 = container(&lab, "h1", "c1", "blue", "web", "10.9.0.11");
    let c2 = container(&lab, "h2", "c2", "blue", "web", "10.9.0.12");

    cut_off_h2(&lab, true);
    let _c3 = container(&lab, "h1", "c3", "blue", "web", "10.9.0.13");
    std::thread::sleep(Duration::from_secs(3));
    let probe = Prober::start(&c2.netns, ip("10.9.0.13"), Duration::from_millis(20)).expect("prober");
    let reached_early = probe.first_reply(Duration::from_secs(1));
    assert!(reached_early.is_none(), "c2 reached c3 while h2 was cut off: is the cut effective?");

    cut_off_h2(&lab, false);
    let restored = Instant::now();
    let reply = probe.first_reply(Duration::from_secs(15));
    assert!(reply.is_some(), "c2 on h2 did not reach c3 within 15 s of h2's return");
    eprintln!("c3 reached from h2 {:?} after the cut ended", restored.elapsed());
    assert!(restored.elapsed() <= Duration::from_secs(10), "c3 reached from h2 only {:?} after the cut ended", restored.elapsed());
}
