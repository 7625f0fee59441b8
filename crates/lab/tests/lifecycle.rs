//! Building and removing labs.

mod common;

use std::process::Command;

use cloison_lab::{down, LabName};
use cloison_model::Host;

fn root_links() -> String {
    let output = Command::new("ip").args(["-o", "link", "show"]).output().expect("ip link show");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    // Counters and states change; names are what matters.
    let mut names: Vec<String> = text.lines().filter_map(|l| l.split(':').nth(1)).map(|n| n.trim().to_string()).collect();
    names.sort();
    names.join(",")
}

fn netns_names_with(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn two_labs_run_side_by_side() {
    let links_before = root_links();
    let first = common::lab("lc-a", 2);
    let second = common::lab("lc-a-b", 2);

    for lab in [&first, &second] {
        let body = lab.controller_get("/v1/hosts").expect("GET /v1/hosts");
        let hosts: Vec<Host> = serde_json::from_str(&body).expect("host list");
        let mut names: Vec<String> = hosts.into_iter().map(|h| h.name).collect();
        names.sort();
        assert_eq!(names, ["h1", "h2"], "hosts registered in lab {}", lab.name());
        let pong = lab.exec("h1", &["ping", "-c", "1", "-W", "1", "10.200.0.12"]);
        assert!(pong.is_ok(), "h1 reaches h2 over the underlay of lab {}: {pong:?}", lab.name());
    }
    assert_eq!(root_links(), links_before, "labs must not add links to the machine's namespace");

    first.down().expect("lab lc-a removed");
    assert!(netns_names_with("cl-lc-a.").is_empty(), "lab lc-a left namespaces");
    // Underlay, controller, outside, h1 and h2.
    assert_eq!(netns_names_with("cl-lc-a-b.").len(), 5, "removing lc-a must leave lc-a-b alone");
    let status = second.agent_status("h2").expect("lc-a-b still runs after lc-a is removed");
    assert_eq!(status["host"], "h2");
}

#[test]
fn down_succeeds_on_missing_lab() {
    let name: LabName = "lc-none".parse().expect("valid name");
    down(&name).expect("removing a lab that does not exist succeeds");
}

/// MTU of `dev` in node `node`, read with `ip`. /sys shows the namespace of the
/// process that mounted it, not the one `nsenter --net` entered.
fn link_mtu(lab: &cloison_lab::Lab, node: &str, dev: &str) -> String {
    let out = lab.exec(node, &["ip", "-o", "link", "show", "dev", dev]).expect("ip link show");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut words = text.split_whitespace().skip_while(|w| *w != "mtu");
    words.nth(1).unwrap_or_default().to_string()
}

#[test]
fn underlay_mtu_applies_to_every_link() {
    let lab = common::lab_with_mtu("lc-mtu", 2, 1300);
    for node in ["h1", "h2", "ctl"] {
        assert_eq!(link_mtu(&lab, node, "eth0"), "1300", "MTU of eth0 in {node}");
    }
    assert_eq!(link_mtu(&lab, "underlay", "br0"), "1300", "MTU of the underlay bridge");
    for port in ["p-h1", "p-h2", "p-ctl"] {
        assert_eq!(link_mtu(&lab, "underlay", port), "1300", "MTU of bridge port {port}");
    }
}

#[test]
fn agents_register_underlay_mtu_of_their_namespace() {
    let lab = common::lab_with_mtu("lc-regmtu", 2, 1300);
    let body = lab.controller_get("/v1/hosts").expect("GET /v1/hosts");
    let hosts: Vec<Host> = serde_json::from_str(&body).expect("host list");
    for host in hosts {
        assert_eq!(host.underlay_mtu, 1300, "underlay MTU registered by {}", host.name);
    }
}

#[test]
fn agent_restart_keeps_registration() {
    let mut lab = common::lab("lc-restart", 1);
    lab.kill_agent("h1").expect("kill agent");
    assert!(lab.agent_status("h1").is_err(), "a killed agent must not answer");
    lab.start_agent("h1").expect("restart agent");
    assert_eq!(lab.agent_status("h1").expect("agent status")["host"], "h1");
}

#[test]
fn failed_up_removes_what_it_built() {
    cloison_lab::check_prerequisites(cloison_lab::REQUIRED_TOOLS).unwrap_or_else(|e| panic!("cannot run lab tests: {e}"));
    let mut spec = cloison_lab::LabSpec::new("lc-fail", 2).expect("lab spec");
    spec.binary = "/bin/false".into();
    let error = cloison_lab::Lab::up(spec).expect_err("a controller that exits at once must fail the lab");
    assert!(error.to_string().contains("exited"), "the error names the exited process: {error}");
    assert!(netns_names_with("cl-lc-fail.").is_empty(), "a failed lab up left namespaces");
    assert!(!std::path::Path::new("/run/cloison-lab/lc-fail").exists(), "a failed lab up left its state directory");
}

#[test]
fn down_removes_abandoned_lab() {
    let lab = common::lab("lc-crash", 2);
    let name = lab.name().clone();
    let state = cloison_lab::LabState::load(&name).expect("state file").expect("state present");
    // Forgetting the value skips its Drop, as a crash of the process that built it would.
    std::mem::forget(lab);

    down(&name).expect("lab down after a crash");
    for process in &state.processes {
        let alive = std::fs::read_to_string(format!("/proc/{}/cmdline", process.pid))
            .is_ok_and(|cmdline| cmdline.contains("/run/cloison-lab/lc-crash"));
        assert!(!alive, "process {} (pid {}) still runs", process.role, process.pid);
    }
    assert!(netns_names_with("cl-lc-crash.").is_empty(), "namespaces left after lab down");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains("/run/cloison-lab/lc-crash"), "mounts left under the state directory");
}
