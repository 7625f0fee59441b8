//! kill -9 of `cloison up`: the dataplane keeps forwarding, the restarted agent
//! adopts what it built, and allocation continues without reuse.

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::harness::{text, Host, Netns};

/// A `ping` every 100 ms from one container to an address, counted when stopped.
struct Probe {
    child: Option<Child>,
}

impl Probe {
    fn start(from: &Netns, address: &str) -> Probe {
        let child = Command::new("ip")
            .args([
                "netns", "exec", &from.name, "ping", "-n", "-i", "0.1", address,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start ping");
        Probe { child: Some(child) }
    }

    /// Stops the ping with SIGINT and returns (transmitted, received).
    fn stop(mut self) -> (u32, u32) {
        let child = self.child.take().expect("probe already stopped");
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        kill(Pid::from_raw(pid), Signal::SIGINT).expect("cannot signal ping");
        let out = child.wait_with_output().expect("cannot wait for ping");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary = stdout
            .lines()
            .find(|line| line.contains("packets transmitted"))
            .unwrap_or_else(|| panic!("no ping summary in: {stdout}"));
        let number_before = |word: &str| -> u32 {
            let head = &summary[..summary
                .find(word)
                .unwrap_or_else(|| panic!("no {word:?} in {summary}"))];
            head.split([' ', ','])
                .rfind(|s| !s.is_empty())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("cannot read {word:?} from {summary}"))
        };
        (
            number_before(" packets transmitted"),
            number_before(" received"),
        )
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Links whose name marks them as cloison's.
fn cloison_links(host: &Host) -> BTreeMap<String, u32> {
    host.links()
        .into_iter()
        .filter(|(name, _)| name.starts_with("cl"))
        .collect()
}

fn assert_links_kept(before: &BTreeMap<String, u32>, after: &BTreeMap<String, u32>) {
    for (name, index) in before {
        assert_eq!(
            after.get(name),
            Some(index),
            "{name} was recreated or removed by the restart"
        );
    }
}

#[test]
fn restart_keeps_traffic_and_links() {
    let mut host = Host::start("rst");
    host.create_network("blue", "web", "10.30.0.0/24");
    let containers: Vec<Netns> = (0..5).map(|_| Netns::new("rst")).collect();
    let first = host.attach("blue", "web", &containers[0], &[]);
    let second = host.attach("blue", "web", &containers[1], &[]);
    let live = [text(&first, "ipv4"), text(&second, "ipv4")];
    assert!(
        containers[0].ping(&live[1], 2),
        "endpoints cannot reach each other before the restart"
    );

    let probe = Probe::start(&containers[0], &live[1]);
    std::thread::sleep(Duration::from_secs(1));
    let before = cloison_links(&host);
    host.kill9();
    std::thread::sleep(Duration::from_secs(1));
    host.restart();
    std::thread::sleep(Duration::from_secs(1));
    let after = cloison_links(&host);
    assert_links_kept(&before, &after);

    let mut seen: HashSet<String> = live.iter().cloned().collect();
    for container in &containers[2..] {
        let endpoint = host.attach("blue", "web", container, &[]);
        let address = text(&endpoint, "ipv4");
        assert_ne!(address, "10.30.0.1", "the gateway was handed out");
        assert!(seen.insert(address.clone()), "{address} handed out twice");
        assert!(
            containers[0].ping(&address, 2),
            "new endpoint {address} unreachable"
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let (sent, received) = probe.stop();
    assert!(sent >= 30, "the probe sent only {sent} pings");
    assert_eq!(received, sent, "pings lost across the restart");
    assert_links_kept(&before, &cloison_links(&host));
}

#[test]
fn ipam_restart_no_reuse() {
    let mut host = Host::start("iprs");
    host.create_network("blue", "web", "10.31.0.0/24");
    let containers: Vec<Netns> = (0..6).map(|_| Netns::new("iprs")).collect();
    let mut endpoints = Vec::new();
    for container in &containers[..3] {
        endpoints.push(host.attach("blue", "web", container, &[]));
    }
    let probe = Probe::start(&containers[0], &text(&endpoints[1], "ipv4"));
    let probe_third = Probe::start(&containers[2], &text(&endpoints[0], "ipv4"));
    std::thread::sleep(Duration::from_millis(500));

    host.restart();
    for container in &containers[3..] {
        endpoints.push(host.attach("blue", "web", container, &[]));
    }

    let addresses: HashSet<String> = endpoints.iter().map(|e| text(e, "ipv4")).collect();
    let macs: HashSet<String> = endpoints.iter().map(|e| text(e, "mac")).collect();
    assert_eq!(
        addresses.len(),
        6,
        "an address was handed out twice: {addresses:?}"
    );
    assert_eq!(macs.len(), 6, "a MAC was handed out twice: {macs:?}");
    assert!(
        !addresses.contains("10.31.0.1"),
        "the gateway was handed out"
    );

    let listed = host.endpoints();
    assert_eq!(
        listed.len(),
        6,
        "endpoint records leaked or lost: {listed:?}"
    );
    let veths = host
        .links()
        .keys()
        .filter(|name| name.starts_with("cle"))
        .count();
    assert_eq!(
        veths,
        6,
        "host-side veths leaked or lost: {:?}",
        host.links()
    );

    for endpoint in &endpoints[1..] {
        let address = text(endpoint, "ipv4");
        assert!(
            containers[0].ping(&address, 2),
            "{address} unreachable after the restart"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    for (name, probe) in [("first to second", probe), ("third to first", probe_third)] {
        let (sent, received) = probe.stop();
        assert!(sent >= 10, "probe {name} sent only {sent} pings");
        assert_eq!(received, sent, "probe {name} lost pings across the restart");
    }
}
