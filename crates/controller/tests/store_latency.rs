//! Endpoint-create latency of the controller over redb and over a 3-member etcd cluster
//! on loopback, measured in one run. Ignored by default because it measures rather than
//! checks: `cargo test -p cloison-controller --test store_latency -- --ignored --nocapture`.

#![allow(clippy::print_stderr)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cloison_controller::Controller;
use cloison_store::{RedbStore, Store};
use cloison_store_etcd::test_cluster::EtcdCluster;

const CREATES: usize = 200;
const WORKERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, not a check; run with --ignored --nocapture"]
async fn create_latency_redb_and_etcd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redb: Arc<dyn Store> = Arc::new(RedbStore::open(dir.path()).expect("open redb"));
    measure("redb", redb).await;

    let cluster = EtcdCluster::start(3).await.expect("start etcd");
    let etcd: Arc<dyn Store> = Arc::new(cluster.store().await);
    measure("etcd x3", etcd).await;
}

async fn measure(label: &str, store: Arc<dyn Store>) {
    let ctl = Arc::new(Controller::new(store));
    for (name, ip) in [("h1", "192.0.2.11"), ("h2", "192.0.2.12")] {
        ctl.register_host(common::host_spec(name, ip)).await.expect("register host");
    }
    ctl.create_network("t1", common::network_spec("seq", "10.1.0.0/22")).await.expect("network");
    ctl.create_network("t1", common::network_spec("par", "10.2.0.0/22")).await.expect("network");

    let mut sequential = Vec::with_capacity(CREATES);
    for _ in 0..CREATES {
        let started = Instant::now();
        ctl.create_endpoint("t1", common::endpoint_spec("seq", "h1")).await.expect("create");
        sequential.push(started.elapsed());
    }
    report(label, "sequential", sequential);

    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let ctl = ctl.clone();
        workers.spawn(async move {
            let mut latencies = Vec::new();
            for _ in 0..CREATES / WORKERS {
                let started = Instant::now();
                ctl.create_endpoint("t1", common::endpoint_spec("par", "h2")).await.expect("create");
                latencies.push(started.elapsed());
            }
            latencies
        });
    }
    let mut concurrent = Vec::with_capacity(CREATES);
    while let Some(joined) = workers.join_next().await {
        concurrent.extend(joined.expect("worker"));
    }
    report(label, "8 concurrent", concurrent);
}

fn report(label: &str, mode: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    eprintln!(
        "{label:8} {mode:12} n={} p50={:.2?} p90={:.2?} max={:.2?}",
        latencies.len(),
        at(0.5),
        at(0.9),
        at(1.0)
    );
}
