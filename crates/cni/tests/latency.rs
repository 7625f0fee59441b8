//! ADD and DEL latency of cloison-cni beside the reference `bridge` + `host-local`
//! plugins, both run by the same test runtime in the same host namespace. Prints a
//! table; fails only when a call fails, since timings depend on the machine.

// Plugin errors end the test, so their size does not matter here.
#![allow(clippy::result_large_err)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::runtime::{Attachment, Runtime};
use common::{require_reference_plugins, Deployment, Netns, REFERENCE_PLUGINS};
use serde_json::{json, Value};

const CONTAINERS: usize = 40;
const THREADS: usize = 8;

#[derive(Default)]
struct Samples {
    add: Vec<Duration>,
    del: Vec<Duration>,
}

#[test]
fn add_del_latency_table() {
    require_reference_plugins(&["bridge", "host-local"]);
    let deployment = Deployment::start("bench");
    deployment.create_network("acme", "front", "10.70.0.0/24");
    let runtime = Arc::new(Runtime::new(
        vec![deployment.plugin_dir(), REFERENCE_PLUGINS.into()],
        deployment.dir.path().join("cache"),
        &deployment.host.path(),
    ));
    let containers: Arc<Vec<Netns>> = Arc::new((0..CONTAINERS).map(|_| Netns::new("b")).collect());
    let cloison = json!({"cniVersion": "1.0.0", "name": "bench-cloison", "plugins": [
        {"type": "cloison", "tenant": "acme", "network": "front", "agentSocket": deployment.socket()}]});
    let bridge = json!({"cniVersion": "1.0.0", "name": "bench-bridge", "plugins": [
        {"type": "bridge", "bridge": "cnibench0", "isGateway": true,
         "ipam": {"type": "host-local", "subnet": "10.71.0.0/24", "dataDir": deployment.dir.path().join("host-local")}}]});

    let mut rows = Vec::new();
    for (label, list) in [("cloison", &cloison), ("bridge+host-local", &bridge)] {
        let list = Arc::new(list.clone());
        rows.push((label, "sequential", sequential(&runtime, &list, &containers)));
        rows.push((label, "8 concurrent", concurrent(&runtime, &list, &containers)));
    }
    print_table(&rows);
}

fn sequential(runtime: &Runtime, list: &Value, containers: &[Netns]) -> Samples {
    let mut samples = Samples::default();
    for c in containers {
        let at = Attachment::new(&c.name, &c.path(), "eth0");
        samples.add.push(timed(|| runtime.add(list, &at).map(|_| ())));
        samples.del.push(timed(|| runtime.del(list, &at)));
    }
    samples
}

/// Runs ADD on every container from 8 threads, then DEL the same way.
fn concurrent(runtime: &Arc<Runtime>, list: &Arc<Value>, containers: &Arc<Vec<Netns>>) -> Samples {
    let run_all = |command: &'static str| -> Vec<Duration> {
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (runtime, list, containers) = (runtime.clone(), list.clone(), containers.clone());
                std::thread::spawn(move || {
                    containers
                        .iter()
                        .skip(thread)
                        .step_by(THREADS)
                        .map(|c| {
                            let at = Attachment::new(&c.name, &c.path(), "eth0");
                            match command {
                                "ADD" => timed(|| runtime.add(&list, &at).map(|_| ())),
                                _ => timed(|| runtime.del(&list, &at)),
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("bench thread panicked")).collect()
    };
    let add = run_all("ADD");
    let del = run_all("DEL");
    Samples { add, del }
}

fn timed(call: impl FnOnce() -> Result<(), common::runtime::PluginError>) -> Duration {
    let start = Instant::now();
    call().unwrap_or_else(|e| panic!("{e}"));
    start.elapsed()
}

fn percentile(samples: &[Duration], fraction: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

#[allow(clippy::print_stdout)]
fn print_table(rows: &[(&str, &str, Samples)]) {
    println!("| plugin | mode | ADD p50 ms | ADD p90 ms | DEL p50 ms | DEL p90 ms | calls |");
    println!("|---|---|---|---|---|---|---|");
    for (plugin, mode, s) in rows {
        println!(
            "| {plugin} | {mode} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            percentile(&s.add, 0.5),
            percentile(&s.add, 0.9),
            percentile(&s.del, 0.5),
            percentile(&s.del, 0.9),
            s.add.len()
        );
    }
}
