//! Controllers over a real etcd cluster that each test starts: two controllers sharing
//! one cluster, member failures, loss of quorum and compaction under a host watch.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use cloison_controller::{Controller, ControllerError};
use cloison_model::{Endpoint, WatchEvent, WatchObject};
use cloison_store::{Op, Store};
use cloison_store_etcd::test_cluster::EtcdCluster;
use cloison_store_etcd::{EtcdStore, DEFAULT_PREFIX};
use futures::{Stream, StreamExt};

/// Usable addresses of a /23: 512 minus network, broadcast and gateway.
const USABLE_23: u64 = 509;

async fn cluster(members: usize) -> EtcdCluster {
    match EtcdCluster::start(members).await {
        Ok(cluster) => cluster,
        Err(e) => panic!("cannot start etcd for the test: {e}"),
    }
}

/// Creates a controller with its own etcd client, as a separate process would have.
async fn controller(cluster: &EtcdCluster) -> Arc<Controller> {
    let store = EtcdStore::connect(&cluster.options(DEFAULT_PREFIX)).await.expect("connect to etcd");
    Arc::new(Controller::new(Arc::new(store)))
}

async fn register_hosts(controller: &Controller) {
    for (name, ip) in [("h1", "192.0.2.11"), ("h2", "192.0.2.12")] {
        controller.register_host(common::host_spec(name, ip)).await.expect("register host");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_controllers_allocate_unique_values() {
    let cluster = cluster(3).await;
    let controllers = [controller(&cluster).await, controller(&cluster).await];
    register_hosts(&controllers[0]).await;

    let mut networks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let ctl = controllers[i % 2].clone();
        let spec = common::network_spec(&format!("n{i}"), &format!("10.{i}.0.0/23"));
        networks.spawn(async move { ctl.create_network("t1", spec).await });
    }
    let mut vnis = HashSet::new();
    while let Some(joined) = networks.join_next().await {
        let network = joined.expect("join").expect("create network");
        assert!(vnis.insert(network.vni), "VNI {} allocated twice", network.vni);
    }

    let mut endpoints = tokio::task::JoinSet::new();
    for i in 0..200 {
        let ctl = controllers[i % 2].clone();
        let host = if i % 3 == 0 { "h1" } else { "h2" };
        endpoints.spawn(async move { ctl.create_endpoint("t1", common::endpoint_spec("n0", host)).await });
    }
    let mut created: Vec<Endpoint> = Vec::new();
    while let Some(joined) = endpoints.join_next().await {
        created.push(joined.expect("join").expect("create endpoint"));
    }
    let ips: HashSet<_> = created.iter().map(|e| e.ipv4).collect();
    let macs: HashSet<_> = created.iter().map(|e| e.mac).collect();
    assert_eq!(ips.len(), 200, "duplicate IPv4 address");
    assert_eq!(macs.len(), 200, "duplicate MAC address");

    for ctl in &controllers {
        let free = ctl.free_ipv4_count("t1", "n0").await.expect("free count");
        assert_eq!(free, USABLE_23 - 200);
        let free_other = ctl.free_ipv4_count("t1", "n1").await.expect("free count");
        assert_eq!(free_other, USABLE_23);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_lost_writes_continue() {
    let mut cluster = cluster(3).await;
    let ctl = controller(&cluster).await;
    register_hosts(&ctl).await;
    ctl.create_network("t1", common::network_spec("web", "10.0.0.0/23")).await.expect("network");

    cluster.kill(0);
    let mut failures = Vec::new();
    for _ in 0..30 {
        if let Err(e) = ctl.create_endpoint("t1", common::endpoint_spec("web", "h1")).await {
            failures.push(e.to_string());
        }
    }
    assert!(failures.is_empty(), "writes failed with one member of three down: {failures:?}");
    assert_eq!(ctl.free_ipv4_count("t1", "web").await.expect("free count"), USABLE_23 - 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn majority_lost_then_quorum_back() {
    let mut cluster = cluster(3).await;
    let ctl = controller(&cluster).await;
    register_hosts(&ctl).await;
    ctl.create_network("t1", common::network_spec("web", "10.0.0.0/23")).await.expect("network");

    cluster.kill(0);
    cluster.kill(1);
    let started = Instant::now();
    let err = ctl
        .create_endpoint("t1", common::endpoint_spec("web", "h1"))
        .await
        .expect_err("write accepted without quorum");
    let waited = started.elapsed();
    let (status, code) = err.status_and_code();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert_eq!(code, "store_unavailable");
    assert!(err.to_string().contains("no quorum or cannot be reached"), "{err}");
    assert!(waited < Duration::from_secs(12), "the API took {waited:?} to report the lost quorum");

    cluster.restart(0).expect("restart member 0");
    cluster.restart(1).expect("restart member 1");
    cluster.wait_ready(0).await.expect("member 0 ready");
    let endpoint = retry_create(&ctl, Duration::from_secs(20)).await;
    assert_eq!(endpoint.network, "web");
}

/// Retries an endpoint create until it succeeds, for the moments after quorum returns.
async fn retry_create(ctl: &Controller, within: Duration) -> Endpoint {
    let deadline = Instant::now() + within;
    loop {
        match ctl.create_endpoint("t1", common::endpoint_spec("web", "h1")).await {
            Ok(endpoint) => return endpoint,
            Err(ControllerError::Store(e)) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "store not back yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("create failed after quorum returned: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_host_watch_catches_up_after_compaction() {
    let cluster = cluster(1).await;
    let ctl = controller(&cluster).await;
    register_hosts(&ctl).await;
    ctl.create_network("t1", common::network_spec("web", "10.0.0.0/23")).await.expect("network");
    ctl.create_endpoint("t1", common::endpoint_spec("web", "h1")).await.expect("endpoint");
    let mut events = Box::pin(ctl.watch_host("h1", None).await.expect("watch"));
    let first = next(&mut events).await;
    assert!(matches!(first, WatchEvent::Snapshot { .. }), "{first:?}");

    // The test reads nothing while thousands of host records, which every host watch
    // forwards, are written, then compacts etcd's history at the last revision. The
    // controller's own store watch keeps up, but the host watch falls behind it. The
    // controller drops it, and it resumes from the controller's history of recent
    // changes or from a snapshot.
    let store = cluster.store().await;
    // 4 KiB per record, an unknown field the decoder ignores, so that 3000 records
    // exceed the HTTP/2 flow-control window and every buffer on the way.
    let padding = "x".repeat(4096);
    let mut last = 0;
    for i in 0..3000 {
        let host = common::host_spec(&format!("filler-{i}"), "192.0.2.99");
        let record = serde_json::json!({
            "name": host.name, "underlay_ip": host.underlay_ip, "underlay_mtu": 1500,
            "vxlan_port": 4789, "last_heartbeat": 0, "resource_version": 0,
            "padding": padding,
        });
        let op = Op::Put { key: format!("/hosts/{}", host.name), value: record.to_string().into_bytes() };
        last = store.txn(Vec::new(), vec![op]).await.expect("filler write").revision;
    }
    store.compact(last).await.expect("compact");
    let late = ctl.create_endpoint("t1", common::endpoint_spec("web", "h1")).await.expect("late endpoint");

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut fillers = HashSet::new();
    let mut found = false;
    while !found && Instant::now() < deadline {
        match next(&mut events).await {
            WatchEvent::Snapshot { endpoints, revision, hosts, .. } => {
                assert!(revision >= last, "resync snapshot at {revision}, before the compaction at {last}");
                fillers.extend(hosts.into_iter().map(|h| h.name).filter(|n| n.starts_with("filler-")));
                found = endpoints.iter().any(|e| e.name == late.name);
            }
            WatchEvent::Put { object: WatchObject::Host(host), .. } if host.name.starts_with("filler-") => {
                fillers.insert(host.name);
            }
            WatchEvent::Put { object: WatchObject::Endpoint(e), .. } => found = e.name == late.name,
            _ => {}
        }
    }
    assert!(found, "the host watch did not bring the late endpoint after compaction");
    assert_eq!(fillers.len(), 3000, "the host watch lost filler hosts on the way");
}

async fn next<S: Stream<Item = WatchEvent> + Unpin>(events: &mut S) -> WatchEvent {
    match tokio::time::timeout(Duration::from_secs(30), events.next()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("host watch ended"),
        Err(_) => panic!("host watch sent nothing within 30 s"),
    }
}
