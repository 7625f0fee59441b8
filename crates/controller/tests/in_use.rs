//! Messages of deletes rejected because other resources still use the target.

mod common;

use common::{controller, endpoint_spec, network_spec};

#[tokio::test]
async fn tenant_in_use_counts_unnamed_networks() {
    let (ctl, _) = controller().await;
    for i in 0..7 {
        let name = format!("net{i}");
        let subnet = format!("10.{i}.0.0/24");
        ctl.create_network("t1", network_spec(&name, &subnet)).await.expect("network");
    }

    let err = ctl.delete_tenant("t1").await.expect_err("tenant in use");
    let text = err.to_string();
    assert!(text.contains("7 network(s): net0, net1, net2, net3, net4 (and 2 more);"), "{text}");
}

#[tokio::test]
async fn network_in_use_counts_unnamed_endpoints() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.1.0.0/24")).await.expect("network");
    for _ in 0..6 {
        ctl.create_endpoint("t1", endpoint_spec("web", "h1")).await.expect("endpoint");
    }

    let err = ctl.delete_network("t1", "web").await.expect_err("network in use");
    let text = err.to_string();
    assert!(text.contains("6 endpoint(s): "), "{text}");
    assert!(text.contains(" (and 1 more);"), "{text}");
}

#[tokio::test]
async fn tenant_in_use_lists_few_networks_whole() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.1.0.0/24")).await.expect("network");
    ctl.create_network("t1", network_spec("db", "10.2.0.0/24")).await.expect("network");

    let err = ctl.delete_tenant("t1").await.expect_err("tenant in use");
    let text = err.to_string();
    assert!(text.contains("2 network(s): db, web;"), "{text}");
    assert!(!text.contains("more"), "{text}");
}

#[tokio::test]
async fn tenant_in_use_separates_kinds() {
    let (ctl, _) = controller().await;
    for i in 0..6 {
        let name = format!("net{i}");
        let subnet = format!("10.{i}.0.0/24");
        ctl.create_network("t1", network_spec(&name, &subnet)).await.expect("network");
    }
    let group = cloison_model::SecurityGroupSpec { name: "db".into(), ..Default::default() };
    ctl.create_group("t1", group).await.expect("group");

    let err = ctl.delete_tenant("t1").await.expect_err("tenant in use");
    let text = err.to_string();
    assert!(text.contains("net4 (and 1 more) and 1 security group(s): db;"), "{text}");
}
