//! cloison-cni against a real agent: every verb, every accepted version, and the
//! failure paths a runtime meets (agent down, namespace gone, repeated DEL).

// Plugin errors end the test, so their size does not matter here.
#![allow(clippy::result_large_err)]

mod common;

use std::sync::Arc;

use common::runtime::{cache_dir, Attachment, Runtime};
use common::{Deployment, Netns, REFERENCE_PLUGINS};
use serde_json::{json, Value};

const TENANT: &str = "acme";
const NETWORK: &str = "front";

fn list(version: &str, name: &str, socket: &std::path::Path) -> Value {
    json!({
        "cniVersion": version,
        "name": name,
        "plugins": [{
            "type": "cloison", "tenant": TENANT, "network": NETWORK,
            "agentSocket": socket, "capabilities": {"ips": true, "mac": true, "portMappings": true}
        }]
    })
}

fn setup(tag: &str, subnet: &str) -> (Deployment, Runtime) {
    let deployment = Deployment::start(tag);
    deployment.create_network(TENANT, NETWORK, subnet);
    let runtime = Runtime::new(
        vec![deployment.plugin_dir(), REFERENCE_PLUGINS.into()],
        cache_dir(deployment.dir.path()),
        &deployment.host.path(),
    );
    (deployment, runtime)
}

#[test]
fn add_check_del_each_version() {
    let (deployment, runtime) = setup("versions", "10.31.0.0/24");
    for version in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let conf = list(version, "web", &deployment.socket());
        let container = Netns::new("c");
        let at = Attachment::new(&container.name, &container.path(), "eth0");
        let result = runtime.add(&conf, &at).unwrap_or_else(|e| panic!("ADD {version}: {e}"));
        assert_eq!(result["cniVersion"], version);
        let ip = &result["ips"][0];
        assert_eq!(ip.get("version").is_some(), version.starts_with('0'), "ips[].version in {version}: {result}");
        assert_eq!(result["interfaces"][ip["interface"].as_u64().expect("index") as usize]["sandbox"], container.path());
        assert!(container.has_link("eth0"), "eth0 missing after ADD {version}");
        if version != "0.3.1" {
            runtime.check(&conf, &at).unwrap_or_else(|e| panic!("CHECK {version}: {e}"));
        }
        runtime.del(&conf, &at).unwrap_or_else(|e| panic!("DEL {version}: {e}"));
        assert!(!container.has_link("eth0"), "eth0 left after DEL {version}");
    }
    assert!(deployment.endpoints(TENANT, NETWORK).is_empty(), "endpoints left after DEL");
}

#[test]
fn capabilities_set_address_and_mac() {
    let (deployment, runtime) = setup("caps", "10.32.0.0/24");
    let conf = list("1.1.0", "web", &deployment.socket());
    let container = Netns::new("c");
    let mut at = Attachment::new(&container.name, &container.path(), "net1");
    at.capabilities.insert("ips".into(), json!(["10.32.0.77/24"]));
    at.capabilities.insert("mac".into(), json!("02:00:00:32:00:77"));
    at.capabilities.insert("portMappings".into(), json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]));
    let result = runtime.add(&conf, &at).unwrap_or_else(|e| panic!("ADD: {e}"));
    assert_eq!(result["ips"][0]["address"], "10.32.0.77/24");
    assert_eq!(result["interfaces"][1]["mac"], "02:00:00:32:00:77");
    let shown = container.exec_ok(&["ip", "-o", "addr", "show", "net1"]);
    assert!(shown.contains("10.32.0.77/24"), "{shown}");
    runtime.del(&conf, &at).unwrap_or_else(|e| panic!("DEL: {e}"));
}

#[test]
fn cni_args_ip_used() {
    let (deployment, runtime) = setup("args", "10.33.0.0/24");
    let conf = list("1.0.0", "web", &deployment.socket());
    let container = Netns::new("c");
    let mut at = Attachment::new(&container.name, &container.path(), "eth0");
    at.args = "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.33.0.40".into();
    let result = runtime.add(&conf, &at).unwrap_or_else(|e| panic!("ADD: {e}"));
    assert_eq!(result["ips"][0]["address"], "10.33.0.40/24");
    runtime.del(&conf, &at).unwrap_or_else(|e| panic!("DEL: {e}"));
}

#[test]
fn add_twice_fails_cleanly() {
    let (deployment, runtime) = setup("twice", "10.34.0.0/24");
    let conf = list("1.1.0", "web", &deployment.socket());
    let container = Netns::new("c");
    let at = Attachment::new(&container.name, &container.path(), "eth0");
    runtime.add(&conf, &at).unwrap_or_else(|e| panic!("first ADD: {e}"));
    let err = runtime.add(&conf, &at).expect_err("second ADD of the same attachment");
    assert_eq!(err.code, 101, "{err}");
    assert!(container.has_link("eth0"), "the first attachment must survive the failed second ADD");
    runtime.check(&conf, &at).unwrap_or_else(|e| panic!("CHECK after failed ADD: {e}"));
    runtime.del(&conf, &at).unwrap_or_else(|e| panic!("DEL: {e}"));
}

#[test]
fn check_detects_missing_interface() {
    let (deployment, runtime) = setup("check", "10.35.0.0/24");
    let conf = list("1.0.0", "web", &deployment.socket());
    let container = Netns::new("c");
    let at = Attachment::new(&container.name, &container.path(), "eth0");
    runtime.add(&conf, &at).unwrap_or_else(|e| panic!("ADD: {e}"));
    container.exec_ok(&["ip", "link", "set", "eth0", "down"]);
    let err = runtime.check(&conf, &at).expect_err("CHECK of a downed interface");
    assert_eq!(err.code, 102, "{err}");
    assert!(err.details.contains("down"), "{err}");
    container.exec_ok(&["ip", "link", "del", "eth0"]);
    let err = runtime.check(&conf, &at).expect_err("CHECK of a deleted interface");
    assert_eq!(err.code, 102, "{err}");
    runtime.del(&conf, &at).unwrap_or_else(|e| panic!("DEL: {e}"));
    assert!(deployment.endpoints(TENANT, NETWORK).is_empty());
}

#[test]
fn check_rejected_for_031() {
    let (deployment, runtime) = setup("check031", "10.36.0.0/24");
    let conf = list("0.3.1", "web", &deployment.socket());
    let container = Netns::new("c");
    let at = Attachment::new(&container.name, &container.path(), "eth0");
    runtime.add(&conf, &at).unwrap_or_else(|e| panic!("ADD: {e}"));
    let err = runtime.check(&conf, &at).expect_err("CHECK does not exist in 0.3.1");
    assert_eq!(err.code, 1, "{err}");
    runtime.del(&conf, &at).unwrap_or_else(|e| panic!("DEL: {e}"));
}

#[test]
fn del_repeated_three_times() {
    let (deployment, runtime) = setup("del3", "10.37.0.0/24");
    let conf = list("1.1.0", "web", &deployment.socket());
    let container = Netns::new("c");
    let at = Attachment::new(&container.name, &container.path(), "eth0");
    runtime.add(&conf, &at).unwrap_or_else(|e| panic!("ADD: {e}"));
    for round in 1..=3 {
        runtime.del(&conf, &at).unwrap_or_else(|e| panic!("DEL {round}: {e}"));
    }
    let mut without_netns = at.clone();
    without_netns.netns = String::new();
    runtime.del(&conf, &without_netns).unwrap_or_else(|e| panic!("DEL without CNI_NETNS: {e}"));
    assert!(deployment.endpoints(TENANT, NETWORK).is_empty());
}

#[test]
fn del_after_namespace_deleted_frees_address() {
    // A /30 has one address for endpoints, so a second ADD works only if DEL freed it.
    let (deployment, runtime) = setup("gone", "10.38.0.0/30");
    let conf = list("1.1.0", "web", &deployment.socket());
    let first = Netns::new("c");
    let at = Attachment::new(&first.name, &first.path(), "eth0");
    let result = runtime.add(&conf, &at).unwrap_or_else(|e| panic!("ADD: {e}"));
    let address = result["ips"][0]["address"].clone();
    first.delete();
    runtime.del(&conf, &at).unwrap_or_else(|e| panic!("DEL after the namespace was deleted: {e}"));
    assert!(deployment.endpoints(TENANT, NETWORK).is_empty(), "record left after DEL");
    let second = Netns::new("c");
    let again = Attachment::new(&second.name, &second.path(), "eth0");
    let result = runtime.add(&conf, &again).unwrap_or_else(|e| panic!("ADD after DEL: {e}"));
    assert_eq!(result["ips"][0]["address"], address, "the freed address is handed out again");
    runtime.del(&conf, &again).unwrap_or_else(|e| panic!("DEL: {e}"));
}

#[test]
fn agent_down_add_fails_with_code_11() {
    let (mut deployment, runtime) = setup("down", "10.39.0.0/24");
    let conf = list("1.1.0", "web", &deployment.socket());
    deployment.stop_daemon();
    let container = Netns::new("c");
    let at = Attachment::new(&container.name, &container.path(), "eth0");
    let err = runtime.add(&conf, &at).expect_err("ADD with the agent down");
    assert_eq!(err.code, 11, "{err}");
    assert!(err.stdout.contains("\"code\":11"), "the error object goes to stdout: {}", err.stdout);
    assert!(!container.has_link("eth0"), "a failed ADD left an interface");
    let err = runtime.status(&conf).expect_err("STATUS with the agent down");
    assert_eq!(err.code, 50, "{err}");
    deployment.start_daemon();
    assert!(deployment.endpoints(TENANT, NETWORK).is_empty(), "a failed ADD left a record");
    runtime.status(&conf).unwrap_or_else(|e| panic!("STATUS with the agent up: {e}"));
}

#[test]
fn gc_removes_unlisted_attachments() {
    let (deployment, runtime) = setup("gc", "10.40.0.0/24");
    let conf = list("1.1.0", "web", &deployment.socket());
    let containers: Vec<Netns> = (0..3).map(|_| Netns::new("c")).collect();
    let attachments: Vec<Attachment> =
        containers.iter().map(|c| Attachment::new(&c.name, &c.path(), "eth0")).collect();
    for at in &attachments {
        runtime.add(&conf, at).unwrap_or_else(|e| panic!("ADD: {e}"));
    }
    // The runtime lost its cache, as after a crash: only the plugin's GC can clean up.
    std::fs::remove_dir_all(cache_dir(deployment.dir.path())).expect("cannot remove the cache");
    std::fs::create_dir_all(cache_dir(deployment.dir.path())).expect("cannot recreate the cache");
    let keep = vec![(attachments[0].container_id.clone(), "eth0".to_string())];
    runtime.gc(&conf, &keep).unwrap_or_else(|e| panic!("GC: {e}"));
    assert_eq!(deployment.endpoints(TENANT, NETWORK).len(), 1, "GC must keep exactly the valid attachment");
    assert!(containers[0].has_link("eth0"));
    assert!(!containers[1].has_link("eth0"));
    assert!(!containers[2].has_link("eth0"));
}

#[test]
fn hundred_concurrent_adds_unique() {
    let (deployment, runtime) = setup("many", "10.41.0.0/24");
    let conf = Arc::new(list("1.1.0", "web", &deployment.socket()));
    let runtime = Arc::new(runtime);
    let containers: Vec<Arc<Netns>> = (0..100).map(|_| Arc::new(Netns::new("m"))).collect();
    let handles: Vec<_> = containers
        .iter()
        .map(|c| {
            let (conf, runtime, c) = (conf.clone(), runtime.clone(), c.clone());
            std::thread::spawn(move || runtime.add(&conf, &Attachment::new(&c.name, &c.path(), "eth0")))
        })
        .collect();
    let mut addresses = std::collections::BTreeSet::new();
    for handle in handles {
        let result = handle.join().expect("ADD thread panicked").unwrap_or_else(|e| panic!("concurrent ADD: {e}"));
        let address = result["ips"][0]["address"].as_str().expect("address").to_string();
        assert!(addresses.insert(address.clone()), "address {address} handed out twice");
    }
    assert_eq!(addresses.len(), 100);
    for c in &containers {
        runtime.del(&conf, &Attachment::new(&c.name, &c.path(), "eth0")).unwrap_or_else(|e| panic!("DEL: {e}"));
    }
    assert!(deployment.endpoints(TENANT, NETWORK).is_empty());
}

#[test]
fn version_and_bad_input_errors() {
    let (deployment, runtime) = setup("errors", "10.42.0.0/24");
    let mut conf = list("0.2.0", "web", &deployment.socket());
    let container = Netns::new("c");
    let at = Attachment::new(&container.name, &container.path(), "eth0");
    let err = runtime.add(&conf, &at).expect_err("unsupported version");
    assert_eq!(err.code, 1, "{err}");
    conf["cniVersion"] = json!("1.1.0");
    conf["plugins"][0]["network"] = json!("Not_A_Name");
    let err = runtime.add(&conf, &at).expect_err("invalid network name");
    assert_eq!(err.code, 7, "{err}");
    let bad_env = Attachment::new(&container.name, "", "eth0");
    let err = runtime.add(&list("1.1.0", "web", &deployment.socket()), &bad_env).expect_err("no CNI_NETNS");
    assert_eq!(err.code, 4, "{err}");
}
