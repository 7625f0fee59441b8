//! Generated interface names fit the kernel's 15 bytes, never collide and survive a
//! restart; user-supplied names that cannot fit are rejected before anything is built.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};

use crate::harness::{text, Host, Netns};

/// The kernel's maximum interface name length in bytes (IFNAMSIZ minus the NUL).
const MAX_IFNAME: usize = 15;

/// A `sleep` process living in a container namespace, killed on drop.
struct Sleeper {
    child: Child,
}

impl Sleeper {
    fn start(container: &Netns) -> Sleeper {
        let child = Command::new("nsenter")
            .arg(format!("--net={}", container.path()))
            .args(["--", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("cannot start sleep in the container namespace");
        Sleeper { child }
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cloison_links(host: &Host) -> BTreeMap<String, u32> {
    host.links()
        .into_iter()
        .filter(|(name, _)| name.starts_with("cl"))
        .collect()
}

#[test]
fn names_fit_ifnamsiz_at_limits() {
    let mut host = Host::start("names");
    let tenant = format!("tenant-{}", "t".repeat(56));
    let network = format!("network-{}", "n".repeat(55));
    assert_eq!(tenant.len(), 63);
    assert_eq!(network.len(), 63);
    let created = host.cli_json(&[
        "network",
        "create",
        &network,
        "--tenant",
        &tenant,
        "--subnet",
        "10.50.0.0/24",
        "--vni",
        "16777215",
    ]);
    assert_eq!(created["vni"].as_u64(), Some(16_777_215));

    // Three kinds of target: a named namespace, a namespace named like a 64-hex-digit
    // container id given by path, and the namespace of a running process.
    let named = Netns::new("names");
    let container_id: String = format!("{:016x}", std::process::id()).repeat(4);
    assert_eq!(container_id.len(), 64);
    let by_id = Netns::named(container_id);
    let by_pid = Netns::new("names-pid");
    let sleeper = Sleeper::start(&by_pid);
    let pid_target = format!("pid:{}", sleeper.child.id());

    host.attach(&tenant, &network, &named, &["--name", &"e".repeat(63)]);
    let by_path = host.cli_json(&["attach", &network, &by_id.path(), "--tenant", &tenant]);
    assert_eq!(text(&by_path, "ifname"), "eth0");
    host.cli_json(&["attach", &network, &pid_target, "--tenant", &tenant]);
    by_pid.exec_ok(&["ip", "link", "show", "eth0"]);

    // A 15-byte interface name is accepted as given.
    let longest = "a".repeat(MAX_IFNAME);
    host.attach(&tenant, &network, &named, &["--ifname", &longest]);
    named.exec_ok(&["ip", "link", "show", &longest]);

    // pid_max on most machines (32768 by default, up to 4194304) keeps a process id
    // above 4,000,000 out of reach without changing a machine setting, so a synthetic
    // id checks that such ids parse and name the right namespace path.
    let synthetic = host.cli(&["attach", &network, "pid:4194303", "--tenant", &tenant]);
    synthetic.expect_error(&["/proc/4194303/ns/net"]);

    let before = cloison_links(&host);
    assert_eq!(
        before.len(),
        8,
        "expected bridge, VXLAN, gateway port, the tenant's transit link and four veths: {before:?}"
    );
    for name in before.keys() {
        assert!(name.len() <= MAX_IFNAME, "{name} is {} bytes", name.len());
    }
    let router_dir = std::fs::read_dir(host_run_netns(&host)).expect("router namespace pins");
    for pin in router_dir {
        let pin = pin.expect("router pin").path();
        let out = crate::harness::run_ok(
            "nsenter",
            &[
                &format!("--net={}", pin.display()),
                "--",
                "ip",
                "-o",
                "link",
            ],
        );
        for line in out.lines() {
            let name = line
                .split(": ")
                .nth(1)
                .unwrap_or_default()
                .split('@')
                .next()
                .unwrap_or_default();
            assert!(
                name.len() <= MAX_IFNAME,
                "router interface {name} is {} bytes",
                name.len()
            );
        }
    }

    // A 16-byte name is rejected up front, and nothing is left behind.
    let endpoints_before = host.endpoints().len();
    let too_long = "b".repeat(MAX_IFNAME + 1);
    let target = named.target();
    let rejected = host.cli(&[
        "attach", &network, &target, "--tenant", &tenant, "--ifname", &too_long,
    ]);
    rejected.expect_error(&["15"]);
    assert_eq!(
        host.endpoints().len(),
        endpoints_before,
        "the rejected attach left an endpoint"
    );
    assert_eq!(
        cloison_links(&host),
        before,
        "the rejected attach changed the host's links"
    );
    let inside = named.links();
    assert!(
        !inside.keys().any(|n| n.starts_with("clt")),
        "a veth was left in the container: {inside:?}"
    );

    host.restart();
    assert_eq!(
        cloison_links(&host),
        before,
        "names or indexes changed across the restart"
    );
}

fn host_run_netns(host: &Host) -> std::path::PathBuf {
    host.socket().with_file_name("run").join("netns")
}
