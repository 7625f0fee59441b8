//! Reproductions of bugs users hit. A test whose bug is still open is ignored with the
//! reason; run those with `cargo test -p cloison --test e2e -- --ignored`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::harness::{run, text, Host, Netns, BINARY};
use crate::probe::{eventually, tcp_reaches, TcpServer};

#[test]
fn flushed_anti_spoofing_set_restored() {
    let host = Host::start("tr-spoof");
    host.create_network("blue", "web", "10.81.0.0/24");
    let (c1, c2) = (Netns::new("tr-s1"), Netns::new("tr-s2"));
    host.attach("blue", "web", &c1, &[]);
    let target = host.attach("blue", "web", &c2, &[]);
    let target_ip = text(&target, "ipv4");
    c1.exec_ok(&["ip", "addr", "add", "10.81.0.99/32", "dev", "eth0"]);
    let spoofed = |c1: &Netns| {
        c1.exec(&["ping", "-c", "1", "-W", "1", "-I", "10.81.0.99", &target_ip])
            .status
            .success()
    };
    assert!(!spoofed(&c1), "a spoofed source address passed before any drift");

    // A second agent in the same namespace, a firewall tool or an operator can empty the set.
    host.ns.exec_ok(&["nft", "flush", "set", "bridge", "cloison", "ports"]);
    // The agent's repair pass runs every two seconds.
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        !spoofed(&c1),
        "a spoofed source address passes after `nft flush set bridge cloison ports`: anti-spoofing stays off"
    );
}

#[test]
fn tenant_rm_rejected_with_groups() {
    let host = Host::start("tr-group");
    host.cli_json(&["tenant", "create", "gt"]);
    host.cli_json(&["group", "create", "g1", "--tenant", "gt"]);
    let removed = host.cli(&["tenant", "rm", "gt"]);
    let groups = host.cli_json(&["group", "ls", "--tenant", "gt"]);
    assert!(
        !removed.success,
        "tenant gt was removed while it had a group; its groups remain: {groups}"
    );
}

#[test]
fn reserved_subnets_rejected() {
    let host = Host::start("tr-subnet");
    for (index, subnet) in ["127.0.0.0/24", "224.0.0.0/24", "255.255.255.0/24", "0.0.0.0/8"]
        .iter()
        .enumerate()
    {
        let name = format!("n{index}");
        let out = host.cli(&["network", "create", &name, "--tenant", "blue", "--subnet", subnet]);
        assert!(!out.success, "subnet {subnet} was accepted: {}", out.stdout);
    }
}

#[test]
fn rule_peer_flag_must_match_direction() {
    let host = Host::start("tr-dir");
    host.cli_json(&["tenant", "create", "dt"]);
    host.cli_json(&["group", "create", "g1", "--tenant", "dt"]);
    for (direction, peer) in [("--ingress", "--to"), ("--egress", "--from")] {
        for verb in ["add", "rm"] {
            let out = host.cli(&[
                "group", "rule", verb, "g1", direction, peer, "10.0.0.0/8", "--tenant", "dt",
            ]);
            out.expect_error(&["--from goes with --ingress", "--to with --egress"]);
        }
    }
    let group = host.cli_json(&["group", "inspect", "g1", "--tenant", "dt"]);
    assert_eq!(group["rules"], serde_json::json!([]), "a mismatched rule was stored");
    host.cli_json(&["group", "rule", "add", "g1", "--egress", "--to", "10.0.0.0/8", "--tenant", "dt"]);
    host.cli_json(&["group", "rule", "add", "g1", "--ingress", "--from", "10.0.0.0/8", "--tenant", "dt"]);
}

#[test]
fn endpoint_update_requires_group_choice() {
    let host = Host::start("tr-upd");
    host.create_network("blue", "web", "10.82.0.0/24");
    host.cli_json(&["group", "create", "g1", "--tenant", "blue"]);
    let c1 = Netns::new("tr-u1");
    let endpoint = host.attach("blue", "web", &c1, &["--group", "g1"]);
    let name = text(&endpoint, "name");
    let out = host.cli(&["endpoint", "update", &name, "--tenant", "blue"]);
    out.expect_error(&["--group", "--no-groups"]);
    let after = host.cli_json(&["endpoint", "inspect", &name, "--tenant", "blue"]);
    assert_eq!(after["groups"], serde_json::json!(["g1"]), "the endpoint lost its groups");
    let cleared = host.cli_json(&["endpoint", "update", &name, "--no-groups", "--tenant", "blue"]);
    assert_eq!(cleared["groups"], serde_json::json!([]));
}

#[test]
fn status_fails_without_agent() {
    let host = Host::start("tr-status");
    let missing = host.socket().with_file_name("missing.sock");
    let missing = missing.to_string_lossy();
    let out = host.cli(&["status", "--agent-socket", &missing]);
    out.expect_error(&["no agent at", &missing]);
    assert!(out.stdout.contains("controller"), "the controller's state was not printed: {}", out.stdout);
    let out = host.cli(&["status", "--controller", "http://127.0.0.1:1"]);
    out.expect_error(&["controller", "unreachable"]);
    assert!(out.stdout.contains("agent on e2e"), "the agent's state was not printed: {}", out.stdout);
    let both = host.cli(&["status"]);
    assert!(both.success, "{}", both.stderr);
    assert!(both.stdout.contains("networks, 0 endpoints, 1 hosts"), "the controller's state is not in words: {}", both.stdout);
    assert!(!both.stdout.contains('{'), "text output contains JSON: {}", both.stdout);
    let help = host.cli(&["status", "--help"]);
    assert!(help.stdout.contains("Exit status"), "{}", help.stdout);
}

#[test]
fn help_describes_tenant_and_names() {
    let host = Host::start("tr-help");
    let commands: [&[&str]; 6] = [
        &["group", "create"],
        &["group", "rule", "add"],
        &["publish"],
        &["unpublish"],
        &["endpoint", "update"],
        &["detach"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let help = host.cli(&args).stdout;
        let tenant = help.lines().find(|l| l.trim_start().starts_with("--tenant"));
        let tenant = tenant.unwrap_or_else(|| panic!("{command:?} has no --tenant: {help}"));
        assert!(tenant.split_whitespace().count() > 2, "{command:?}: --tenant has no help");
        for positional in help.lines().filter(|l| l.trim_start().starts_with('<')) {
            assert!(positional.split_whitespace().count() > 1, "{command:?}: {positional:?} has no help");
        }
    }
}

#[test]
fn subnet_parse_error_explains_form() {
    let host = Host::start("tr-parse");
    let create = |subnets: &[&str]| {
        let mut args = vec!["network", "create", "a", "--tenant", "blue"];
        args.extend_from_slice(subnets);
        host.cli(&args)
    };
    create(&["--subnet", "300.1.1.0/24"]).expect_error(&[
        "invalid subnet \"300.1.1.0/24\"",
        "expected an IPv4 prefix such as 10.0.0.0/24",
        "use --subnet6 for IPv6",
    ]);
    create(&["--subnet", "fd00::/64"]).expect_error(&["invalid subnet \"fd00::/64\"", "use --subnet6 for IPv6"]);
    create(&["--subnet", "10.9.0.0/24", "--subnet6", "fd00::x/64"])
        .expect_error(&["invalid subnet \"fd00::x/64\"", "expected an IPv6 prefix"]);
}

#[test]
fn text_output_shows_ipv6() {
    let host = Host::start("tr-ipv6");
    host.cli_json(&[
        "network", "create", "ds", "--tenant", "blue", "--subnet", "10.82.0.0/24", "--subnet6", "fd00:82::/64",
    ]);
    let container = Netns::new("tr-6c1");
    let target = container.target();
    let attached = host.cli(&["attach", "ds", &target, "--tenant", "blue", "--ip6", "fd00:82::20"]);
    assert!(attached.success, "attach failed: {}", attached.stderr);
    assert!(attached.stdout.contains("10.82.0.2 fd00:82::20 "), "attach shows no IPv6 address: {}", attached.stdout);

    let listed = host.cli(&["endpoint", "ls"]);
    assert!(listed.success, "endpoint ls failed: {}", listed.stderr);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    let column = lines[0].find("IPV6");
    assert!(column.is_some(), "endpoint ls has no IPV6 column: {}", listed.stdout);
    assert_eq!(lines[1].find("fd00:82::20"), column, "the IPv6 address is not under IPV6: {}", listed.stdout);
    let endpoints = host.endpoints();
    assert_eq!(endpoints[0]["ipv6"], "fd00:82::20", "JSON output lacks the IPv6 address: {endpoints:?}");
}

#[test]
fn endpoint_ls_filters_by_host() {
    let host = Host::start("tr-lshost");
    host.create_network("blue", "web", "10.83.0.0/24");
    let container = Netns::new("tr-hc1");
    host.attach("blue", "web", &container, &[]);
    let list_on = |name: &str| host.cli_json(&["endpoint", "ls", "--host", name]);

    let on_this_host = list_on("e2e");
    assert_eq!(on_this_host.as_array().map(Vec::len), Some(1), "endpoint ls --host e2e: {on_this_host}");
    let on_other_host = list_on("h9");
    assert_eq!(on_other_host.as_array().map(Vec::len), Some(0), "endpoint ls --host h9: {on_other_host}");
    let both = host.cli_json(&["endpoint", "ls", "--host", "e2e", "--network", "other"]);
    assert_eq!(both.as_array().map(Vec::len), Some(0), "endpoint ls --host e2e --network other: {both}");
}

#[test]
fn publish_one_port_on_two_addresses() {
    let host = Host::start("tr-pub2");
    host.create_network("blue", "web", "10.84.0.0/24");
    let (c1, c2) = (Netns::new("tr-pc1"), Netns::new("tr-pc2"));
    let endpoint = text(&host.attach("blue", "web", &c1, &[]), "name");
    let other = text(&host.attach("blue", "web", &c2, &[]), "name");
    let publish = |endpoint: &str, mapping: &str| host.cli(&["publish", endpoint, mapping, "--tenant", "blue"]);
    let unpublish = |extra: &[&str]| {
        let mut args = vec!["unpublish", endpoint.as_str(), "8080", "--tenant", "blue"];
        args.extend_from_slice(extra);
        host.cli(&args)
    };
    let names = || -> Vec<String> {
        let listed = host.cli_json(&["publication", "ls", "--tenant", "blue"]);
        listed.as_array().expect("a list").iter().map(|p| text(p, "name")).collect()
    };

    for address in ["127.0.0.1", "127.0.0.2"] {
        let out = publish(&endpoint, &format!("{address}:8080:80"));
        assert!(out.success, "publish on {address} failed: {}", out.stderr);
    }
    // Both addresses forward, so the tenant's router took both publications.
    let _server = TcpServer::start(&c1, 80);
    for address in ["127.0.0.1:8080", "127.0.0.2:8080"] {
        let address: SocketAddr = address.parse().expect("socket address");
        assert!(eventually(Duration::from_secs(10), || tcp_reaches(&host.ns, address)), "{address} does not forward");
    }
    publish(&other, "127.0.0.1:8080:80").expect_error(&["already taken", &format!("{endpoint}-127.0.0.1-8080-tcp")]);
    publish(&other, "127.0.0.3:8080:80").expect_error(&["already leads to", "choose another host port"]);
    unpublish(&[]).expect_error(&["several host addresses", "127.0.0.1 and 127.0.0.2", "--host-ip"]);
    unpublish(&["--host-ip", "127.0.0.3"]).expect_error(&["not on 127.0.0.3"]);

    let removed = unpublish(&["--host-ip", "127.0.0.1"]);
    assert!(removed.success, "unpublish --host-ip 127.0.0.1 failed: {}", removed.stderr);
    assert_eq!(names(), [format!("{endpoint}-127.0.0.2-8080-tcp")]);
    let removed = unpublish(&[]);
    assert!(removed.success, "unpublish of the last address failed: {}", removed.stderr);
    assert!(names().is_empty(), "publications left: {:?}", names());
}

/// A second `cloison up` whose agent socket another agent serves fails before it
/// opens a store, so it leaves no data directory behind.
#[test]
fn second_up_with_busy_socket_writes_nothing() {
    let host = Host::start("tr-busy");
    let other = Netns::new("tr-busy2");
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let socket = host.socket();
    let net = format!("--net={}", other.path());
    let (data, socket, run_dir) = (data_dir.display().to_string(), socket.display().to_string(), dir.path().join("run").display().to_string());
    let args = [
        net.as_str(), "--", BINARY, "up", "--host", "second", "--docker-socket=", "--data-dir", &data, "--socket", &socket, "--run-dir", &run_dir,
    ];
    let out = run("nsenter", &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second up started: {stderr}");
    assert!(stderr.contains("another process is serving it"), "{stderr}");
    assert!(!data_dir.exists(), "the second up created {}", data_dir.display());
}
