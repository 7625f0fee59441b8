//! cloison-cni first in a list, followed by Debian's reference plugins (1.1.1,
//! which speak CNI up to 1.0.0): the chain consumes cloison's result end to end.

mod common;

use common::runtime::{cache_dir, Attachment, Runtime};
use common::{require_reference_plugins, Deployment, Netns, REFERENCE_PLUGINS};
use serde_json::json;

#[test]
fn reference_plugins_chain_after_cloison() {
    require_reference_plugins(&["portmap", "bandwidth", "tuning", "firewall"]);
    common::require_root_and_tools(&["iptables"]);
    let deployment = Deployment::start("chain");
    deployment.create_network("acme", "front", "10.50.0.0/24");
    let runtime = Runtime::new(
        vec![deployment.plugin_dir(), REFERENCE_PLUGINS.into()],
        cache_dir(deployment.dir.path()),
        &deployment.host.path(),
    );
    let list = json!({
        "cniVersion": "1.0.0",
        "name": "chained",
        "plugins": [
            {"type": "cloison", "tenant": "acme", "network": "front", "agentSocket": deployment.socket(),
             "capabilities": {"ips": true, "mac": true, "portMappings": true}},
            {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}},
            {"type": "bandwidth", "ingressRate": 100_000_000, "ingressBurst": 1_000_000,
             "egressRate": 100_000_000, "egressBurst": 1_000_000},
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
            {"type": "firewall", "backend": "iptables"}
        ]
    });
    let server = Netns::new("srv");
    let client = Netns::new("cli");
    let mut at_server = Attachment::new(&server.name, &server.path(), "eth0");
    at_server
        .capabilities
        .insert("portMappings".into(), json!([{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]));
    let at_client = Attachment::new(&client.name, &client.path(), "eth0");

    let result = runtime.add(&list, &at_server).unwrap_or_else(|e| panic!("chained ADD: {e}"));
    runtime.add(&list, &at_client).unwrap_or_else(|e| panic!("chained ADD: {e}"));
    assert_eq!(result["cniVersion"], "1.0.0");
    let server_ip = result["ips"][0]["address"].as_str().expect("address").split('/').next().expect("ip").to_string();

    let sysctl = server.exec_ok(&["sysctl", "-n", "net.ipv4.conf.eth0.arp_notify"]);
    assert_eq!(sysctl.trim(), "1", "tuning did not run on cloison's interface");
    let host_ifname = result["interfaces"][0]["name"].as_str().expect("host interface").to_string();
    let qdisc = deployment.host.exec_ok(&["tc", "qdisc", "show", "dev", &host_ifname]);
    assert!(qdisc.contains("tbf"), "bandwidth did not shape the host veth {host_ifname}: {qdisc}");
    let nat = deployment.host.exec_ok(&["iptables", "-t", "nat", "-S"]);
    assert!(nat.contains("18080"), "portmap installed no DNAT rule for 18080:\n{nat}");
    let filter = deployment.host.exec_ok(&["iptables", "-S", "CNI-FORWARD"]);
    assert!(filter.contains(&server_ip), "firewall has no rule for {server_ip}:\n{filter}");
    assert!(client.ping(&server_ip), "client cannot reach {server_ip} through the chain");

    // NOTE: portmap 1.1.1 (Debian 12) fails its own CHECK: it looks for the IPv4
    // rules in an IPv6 chain. The other plugins are checked with portmap left out.
    let mut check_list = list.clone();
    if let Some(plugins) = check_list["plugins"].as_array_mut() {
        plugins.retain(|p| p["type"] != "portmap");
    }
    runtime.check(&check_list, &at_server).unwrap_or_else(|e| panic!("chained CHECK: {e}"));
    runtime.del(&list, &at_server).unwrap_or_else(|e| panic!("chained DEL: {e}"));
    runtime.del(&list, &at_client).unwrap_or_else(|e| panic!("chained DEL: {e}"));
    let nat = deployment.host.exec_ok(&["iptables", "-t", "nat", "-S"]);
    assert!(!nat.contains("18080"), "portmap rule left after DEL:\n{nat}");
    assert!(deployment.endpoints("acme", "front").is_empty(), "endpoints left after DEL");
    runtime.del(&list, &at_server).unwrap_or_else(|e| panic!("repeated chained DEL: {e}"));
}
