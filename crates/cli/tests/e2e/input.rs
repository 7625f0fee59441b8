//! Invalid input is rejected with a message naming the value and what is accepted,
//! and a failed attach leaves nothing half-configured.

use crate::harness::{text, Host, Netns};

#[test]
fn input_invalid_names() {
    let host = Host::start("badname");
    let long = "a".repeat(64);
    for name in ["Web", "we_b", "-web", long.as_str()] {
        // `--` and `--tenant=` let a name that starts with '-' reach cloison instead of the parser.
        let as_network = host.cli(&[
            "network",
            "create",
            "--tenant",
            "blue",
            "--subnet",
            "10.70.0.0/24",
            "--",
            name,
        ]);
        as_network.expect_error(&[
            "invalid network name",
            name,
            "1-63 characters of a-z, 0-9 and '-'",
        ]);
        let tenant_flag = format!("--tenant={name}");
        let as_tenant = host.cli(&[
            "network",
            "create",
            "web",
            &tenant_flag,
            "--subnet",
            "10.70.0.0/24",
        ]);
        as_tenant.expect_error(&["invalid tenant name", name, "1-63 characters"]);
    }
    host.create_network("blue", "web", "10.70.0.0/24");
    let c1 = Netns::new("badname");
    let attach_name = host.cli(&[
        "attach",
        "web",
        &c1.target(),
        "--tenant",
        "blue",
        "--name",
        "Bad_Name",
    ]);
    attach_name.expect_error(&["invalid endpoint name", "Bad_Name"]);
    assert!(host.endpoints().is_empty());
    let networks = host.cli_json(&["network", "ls"]);
    assert_eq!(
        networks.as_array().map(Vec::len),
        Some(1),
        "a rejected network was stored: {networks}"
    );
}

#[test]
fn input_invalid_subnets() {
    let host = Host::start("badnet");
    let create = |name: &str, tenant: &str, extra: &[&str]| {
        let mut args = vec!["network", "create", name, "--tenant", tenant];
        args.extend_from_slice(extra);
        host.cli(&args)
    };
    create("a", "blue", &["--subnet", "10.71.0.0/31"]).expect_error(&["10.71.0.0/31", "/8", "/30"]);
    create("a", "blue", &["--subnet", "10.0.0.0/7"]).expect_error(&["10.0.0.0/7", "/8", "/30"]);
    create(
        "a",
        "blue",
        &["--subnet", "10.71.0.0/24", "--subnet6", "fd00:71::/63"],
    )
    .expect_error(&["fd00:71::/63", "/64", "/120"]);
    create(
        "a",
        "blue",
        &["--subnet", "10.71.0.0/24", "--subnet6", "fd00:71::/121"],
    )
    .expect_error(&["fd00:71::/121", "/64", "/120"]);

    host.cli_json(&[
        "network",
        "create",
        "first",
        "--tenant",
        "blue",
        "--subnet",
        "10.71.0.0/24",
    ]);
    create("second", "blue", &["--subnet", "10.71.0.128/25"]).expect_error(&[
        "overlaps",
        "first",
        "10.71.0.0/24",
    ]);
    create("wide", "blue", &["--subnet", "10.0.0.0/8"]).expect_error(&["overlaps", "first"]);
    let other_tenant = host.cli_json(&[
        "network",
        "create",
        "first",
        "--tenant",
        "red",
        "--subnet",
        "10.71.0.0/24",
    ]);
    assert_eq!(text(&other_tenant, "subnet"), "10.71.0.0/24");

    // inspect prints key: value lines unless --output json is given.
    let inspected = host.cli(&["network", "inspect", "first", "--tenant", "blue"]);
    assert!(inspected.success, "{}", inspected.stderr);
    assert!(!inspected.stdout.trim_start().starts_with('{'), "JSON without -o json: {}", inspected.stdout);
    assert!(inspected.stdout.lines().any(|l| l.starts_with("subnet:") && l.ends_with("10.71.0.0/24")), "{}", inspected.stdout);

    // VNIs: a taken one and values outside 1..=16777215.
    let vni = host.cli_json(&["network", "inspect", "first", "--tenant", "blue"])["vni"]
        .as_u64()
        .expect("vni")
        .to_string();
    create(
        "third",
        "blue",
        &["--subnet", "10.72.0.0/24", "--vni", &vni],
    )
    .expect_error(&["VNI", &vni, "taken"]);
    create("third", "blue", &["--subnet", "10.72.0.0/24", "--vni", "0"])
        .expect_error(&["VNI 0", "1 to 16777215"]);
    create(
        "third",
        "blue",
        &["--subnet", "10.72.0.0/24", "--vni", "16777216"],
    )
    .expect_error(&["VNI 16777216", "1 to 16777215"]);
    let networks = host.cli_json(&["network", "ls"]);
    assert_eq!(
        networks.as_array().map(Vec::len),
        Some(2),
        "a rejected network was stored: {networks}"
    );
}

#[test]
fn input_invalid_addresses() {
    let host = Host::start("badip");
    host.create_network("blue", "web", "10.73.0.0/24");
    let c1 = Netns::new("badip");
    let c2 = Netns::new("badip");
    let holder = host.attach(
        "blue",
        "web",
        &c1,
        &["--name", "holder", "--ip", "10.73.0.20"],
    );
    assert_eq!(text(&holder, "ipv4"), "10.73.0.20");
    let target = c2.target();
    let attach = |extra: &[&str]| {
        let mut args = vec!["attach", "web", target.as_str(), "--tenant", "blue"];
        args.extend_from_slice(extra);
        host.cli(&args)
    };
    attach(&["--ip", "10.74.0.5"]).expect_error(&["10.74.0.5", "outside", "10.73.0.0/24"]);
    attach(&["--ip", "10.73.0.1"]).expect_error(&["10.73.0.1", "gateway"]);
    attach(&["--ip", "10.73.0.0"]).expect_error(&["10.73.0.0", "network address"]);
    attach(&["--ip", "10.73.0.255"]).expect_error(&["10.73.0.255", "broadcast"]);
    attach(&["--ip", "10.73.0.20"]).expect_error(&["10.73.0.20", "taken", "holder"]);
    attach(&["--mac", "03:00:00:00:00:01"]).expect_error(&["03:00:00:00:00:01", "unicast"]);
    attach(&["--mac", "01:00:5e:00:00:01"]).expect_error(&["01:00:5e:00:00:01", "multicast", "unicast"]);
    attach(&["--mac", "not-a-mac"]).expect_error(&["not-a-mac", "MAC"]);
    host.cli(&["attach", "web", "/tmp", "--tenant", "blue"]).expect_error(&["/tmp", "not a network namespace"]);
    let holder_mac = text(&holder, "mac");
    attach(&["--mac", &holder_mac]).expect_error(&[&holder_mac, "taken", "holder"]);
    assert_eq!(host.endpoints().len(), 1, "a rejected attach was stored");

    // A /30 has two usable addresses: the gateway takes one, an endpoint the other.
    host.create_network("blue", "tiny", "10.75.0.0/30");
    let only = host.cli_json(&["attach", "tiny", &target, "--tenant", "blue"]);
    assert_eq!(text(&only, "ipv4"), "10.75.0.2");
    let full = host.cli(&[
        "attach", "tiny", &target, "--tenant", "blue", "--ifname", "eth1",
    ]);
    full.expect_error(&["10.75.0.0/30", "exhausted"]);
}

#[test]
fn input_unknown_resources() {
    let host = Host::start("unknown");
    host.create_network("blue", "web", "10.76.0.0/24");
    let c1 = Netns::new("unknown");
    let target = c1.target();
    host.cli(&["attach", "nope", &target, "--tenant", "blue"])
        .expect_error(&["network", "nope", "not found"]);
    host.cli(&["attach", "web", &target, "--tenant", "nobody"])
        .expect_error(&["nobody", "not found"]);
    let missing = format!("netns:{}", crate::harness::unique_name("missing"));
    host.cli(&["attach", "web", &missing, "--tenant", "blue"])
        .expect_error(&["does not exist"]);
    host.cli(&["network", "rm", "nope", "--tenant", "blue"])
        .expect_error(&["nope", "not found"]);
    host.cli(&["detach", "nope", "--tenant", "blue"])
        .expect_error(&["nope", "not found"]);
    assert!(host.endpoints().is_empty(), "a failed attach was stored");
    let veths: Vec<String> = host
        .links()
        .into_keys()
        .filter(|n| n.starts_with("cle"))
        .collect();
    assert!(veths.is_empty(), "a failed attach left veths: {veths:?}");
}

#[test]
fn network_rm_needs_no_endpoints() {
    let host = Host::start("netrm");
    let network = host.create_network("blue", "web", "10.77.0.0/24");
    let bridge = format!("clb{:06x}", network["vni"].as_u64().expect("vni"));
    let c1 = Netns::new("netrm");
    let endpoint = host.attach("blue", "web", &c1, &["--name", "only"]);
    assert!(
        host.links().contains_key(&bridge),
        "no bridge after the attach"
    );

    host.cli(&["network", "rm", "web", "--tenant", "blue"])
        .expect_error(&["web", "in use", "only"]);
    assert!(
        host.links().contains_key(&bridge),
        "the refused removal took the bridge"
    );

    host.cli_json(&["detach", &text(&endpoint, "name"), "--tenant", "blue"]);
    assert!(
        c1.exec(&["ip", "link", "show", "eth0"]).status.code() != Some(0),
        "eth0 left in the container"
    );
    host.cli_json(&["network", "rm", "web", "--tenant", "blue"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while host.links().contains_key(&bridge) {
        assert!(
            std::time::Instant::now() < deadline,
            "bridge {bridge} still present 5 s after network rm"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn failed_attach_leaves_nothing() {
    let host = Host::start("halfcfg");
    host.create_network("blue", "web", "10.78.0.0/24");
    let c1 = Netns::new("halfcfg");
    c1.exec_ok(&["ip", "link", "add", "eth0", "type", "bridge"]);
    let links_before = host.links();

    let failed = host.cli(&["attach", "web", &c1.target(), "--tenant", "blue"]);
    failed.expect_error(&["eth0"]);
    assert!(
        host.endpoints().is_empty(),
        "the failed attach left an endpoint record"
    );
    let veths: Vec<String> = host
        .links()
        .into_keys()
        .filter(|n| n.starts_with("cle"))
        .collect();
    assert!(
        veths.is_empty(),
        "the failed attach left veths in the host namespace: {veths:?}"
    );
    let inside: Vec<String> = c1
        .links()
        .into_keys()
        .filter(|n| n.starts_with("cl"))
        .collect();
    assert!(
        inside.is_empty(),
        "the failed attach left veths in the container: {inside:?}"
    );
    for name in links_before.keys() {
        assert!(host.links().contains_key(name), "{name} disappeared");
    }

    // The address the failed attach held (the first one) is free again.
    let retry = host.attach(
        "blue",
        "web",
        &c1,
        &["--ifname", "eth1", "--ip", "10.78.0.2"],
    );
    assert_eq!(text(&retry, "ipv4"), "10.78.0.2");
    assert_eq!(host.endpoints().len(), 1);
}
