//! Scenarios on a multi-host lab: convergence and churn. Both reuse the lab crate,
//! whose hosts are network namespaces on an underlay bridge.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloison_client::Client;
use cloison_lab::{ConvergeStart, Lab, LabSpec};
use serde_json::{json, Value};

use crate::report::Row;
use crate::stats::Summary;
use crate::BenchError;

/// Builds the spec of a lab named `name` running `binary`.
pub(crate) fn lab_spec(name: &str, hosts: usize, binary: &Path) -> Result<LabSpec, BenchError> {
    let mut spec = LabSpec::new(name, hosts)?;
    spec.binary = binary.to_path_buf();
    Ok(spec)
}

/// Attach on h1 until the first reply on h2, with the lab's own measure
/// (`cloison lab bench-converge`). The attach command's own duration is the peer:
/// what convergence adds beyond it is the watch and the remote host's programming.
pub(crate) fn converge(name: &str, binary: &Path, tries: usize) -> Result<Vec<Row>, BenchError> {
    let mut rows = Vec::new();
    for (start, case) in [
        (ConvergeStart::NetworkPresent, "attach on h1 → first reply on h2, network already on h1"),
        (ConvergeStart::FirstOnHost, "attach on h1 → first reply on h2, tenant's first endpoint on h1"),
    ] {
        let report = cloison_lab::bench_converge(lab_spec(name, 2, binary)?, tries, start)?;
        let first: Vec<Duration> = report.samples.iter().map(|s| s.first_reply).collect();
        let attach: Vec<Duration> = report.samples.iter().map(|s| s.attach).collect();
        let empty = || BenchError::Empty { scenario: "converge", reason: "no tries".into() };
        let attach = Summary::of_durations(&attach).ok_or_else(empty)?;
        let first = Summary::of_durations(&first).ok_or_else(empty)?;
        rows.push(Row::sampled("converge", case, "cloison attach (CLI)", "ms", attach));
        rows.push(Row::sampled("converge", case, "cloison first reply", "ms", first).with_ratio("attach command", attach.p50));
    }
    Ok(rows)
}

const CHURN_TENANT: &str = "churn";
const CHURN_NETWORK: &str = "churn";
/// Attaches in flight per host during churn.
const CHURN_CONCURRENCY: usize = 4;

/// Creates `count` endpoints spread over the 3 hosts of a lab through each host's
/// agent socket, then deletes them, and reports the sustained rates. Container
/// namespaces are made before the clock starts.
pub(crate) fn churn(name: &str, binary: &Path, count: usize) -> Result<Vec<Row>, BenchError> {
    let lab = Lab::up(lab_spec(name, 3, binary)?)?;
    lab.create_network(CHURN_TENANT, CHURN_NETWORK, "10.30.0.0/16", &[])?;
    let mut containers: Vec<(String, PathBuf)> = Vec::new();
    for index in 0..count {
        let host = format!("h{}", 1 + index % 3);
        let netns = lab.add_container(&host, &format!("e{index}"))?;
        containers.push((host, netns));
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| BenchError::io("cannot start the async runtime", e))?;
    let clients: Vec<Arc<Client>> = (1..=3).map(|n| Arc::new(Client::unix(lab.agent_socket(&format!("h{n}"))))).collect();
    let (create_wall, create) = runtime.block_on(churn_phase(&clients, &containers, Phase::Create))?;
    let (delete_wall, delete) = runtime.block_on(churn_phase(&clients, &containers, Phase::Delete))?;
    lab.down()?;
    let rate = |wall: Duration| count as f64 / wall.as_secs_f64();
    let empty = || BenchError::Empty { scenario: "churn", reason: "no endpoints".into() };
    let case = format!("{count} endpoints over 3 hosts, {CHURN_CONCURRENCY} in flight per host");
    Ok(vec![
        Row::single("churn", &case, "create rate", "endpoints/s", rate(create_wall)),
        Row::single("churn", &case, "delete rate", "endpoints/s", rate(delete_wall)),
        Row::sampled("churn", &case, "create latency", "ms", Summary::of_durations(&create).ok_or_else(empty)?),
        Row::sampled("churn", &case, "delete latency", "ms", Summary::of_durations(&delete).ok_or_else(empty)?),
    ])
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Create,
    Delete,
}

/// Runs one phase over every container and returns the wall time and each call's
/// latency.
async fn churn_phase(
    clients: &[Arc<Client>],
    containers: &[(String, PathBuf)],
    phase: Phase,
) -> Result<(Duration, Vec<Duration>), BenchError> {
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..clients.len() * CHURN_CONCURRENCY {
        let host_index = worker % clients.len();
        let client = Arc::clone(&clients[host_index]);
        let mine: Vec<(usize, PathBuf)> = containers
            .iter()
            .enumerate()
            .filter(|(index, _)| index % clients.len() == host_index && (index / clients.len()) % CHURN_CONCURRENCY == worker / clients.len())
            .map(|(index, (_, netns))| (index, netns.clone()))
            .collect();
        workers.spawn(async move {
            let mut samples = Vec::with_capacity(mine.len());
            for (index, netns) in mine {
                let started = Instant::now();
                churn_call(&client, phase, index, &netns).await?;
                samples.push(started.elapsed());
            }
            Ok::<_, BenchError>(samples)
        });
    }
    let mut samples = Vec::with_capacity(containers.len());
    while let Some(joined) = workers.join_next().await {
        let part = joined.map_err(|e| BenchError::Empty { scenario: "churn", reason: format!("a worker failed: {e}") })?;
        samples.extend(part?);
    }
    Ok((start.elapsed(), samples))
}

async fn churn_call(client: &Client, phase: Phase, index: usize, netns: &Path) -> Result<(), BenchError> {
    let name = format!("e{index}");
    match phase {
        Phase::Create => {
            let request = json!({"tenant": CHURN_TENANT, "network": CHURN_NETWORK,
                "target": netns.display().to_string(), "name": name});
            client.post::<Value, _>("/v1/attach", &request).await?;
        }
        Phase::Delete => {
            client.post::<Value, _>("/v1/detach", &json!({"tenant": CHURN_TENANT, "endpoint": name})).await?;
        }
    }
    Ok(())
}
