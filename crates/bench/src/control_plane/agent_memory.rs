//! An agent's memory with many remote endpoints: a real agent on a 1-host lab, whose
//! network gets endpoints on a host without an agent, so the agent programs every
//! one as a remote endpoint (FDB and neighbour entries) in the kernel.

use std::path::Path;
use std::time::{Duration, Instant};

use cloison_client::Client;
use cloison_lab::{controller_url, Lab, LabState};
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};

use super::proc_stat::{sample, ProcessSample};
use crate::lab_scenarios::lab_spec;
use crate::report::Row;
use crate::BenchError;

const TENANT: &str = "mem";
const NETWORK: &str = "mem";
const GHOST: &str = "ghost";
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(600);

/// Measures h1's agent RSS with one local endpoint, then with `remote` more
/// endpoints of its network placed on an agentless host.
pub(crate) fn agent_memory(name: &str, binary: &Path, remote: usize) -> Result<Vec<Row>, BenchError> {
    let lab = Lab::up(lab_spec(name, 1, binary)?)?;
    lab.create_network(TENANT, NETWORK, "10.128.0.0/10", &[])?;
    let container = lab.add_container("h1", "local")?;
    lab.attach("h1", NETWORK, &container, TENANT, &["--name", "local"])?;
    let pid = agent_pid(&lab)?;
    let socket = lab.agent_socket("h1");
    std::thread::sleep(Duration::from_secs(1));
    let baseline = sample(pid)?;
    let ctl = lab.netns_path("ctl")?;
    let started = Instant::now();
    let loaded = std::thread::scope(|scope| {
        scope
            .spawn(|| super::in_namespace(&ctl, || runtime()?.block_on(load_remote(&socket, remote))))
            .join()
            .map_err(|_| BenchError::Empty { scenario: "control-plane", reason: "the load thread panicked".into() })?
    });
    loaded?;
    let programmed = started.elapsed();
    // Lets the agent finish the kernel writes of the last events it took in.
    std::thread::sleep(Duration::from_secs(2));
    let full = sample(pid)?;
    lab.down()?;
    Ok(rows(remote, baseline, full, programmed))
}

fn rows(remote: usize, baseline: ProcessSample, full: ProcessSample, programmed: Duration) -> Vec<Row> {
    let scenario = "control-plane";
    let case = format!("agent on a lab host, {remote} remote endpoints");
    vec![
        Row::single(scenario, &case, "agent RSS, 1 local endpoint", "MiB", baseline.rss_mib),
        Row::single(scenario, &case, &format!("agent RSS, +{remote} remote"), "MiB", full.rss_mib).with_ratio("1 local endpoint", baseline.rss_mib),
        Row::single(scenario, &case, "agent peak RSS", "MiB", full.peak_rss_mib),
        Row::single(scenario, &case, "create until the agent holds all", "s", programmed.as_secs_f64()),
    ]
}

fn agent_pid(lab: &Lab) -> Result<u32, BenchError> {
    let state = LabState::load(lab.name())?;
    state
        .and_then(|s| s.processes.into_iter().find(|p| p.role == "h1"))
        .and_then(|p| u32::try_from(p.pid).ok())
        .ok_or_else(|| BenchError::Empty { scenario: "control-plane", reason: "no agent process recorded for h1".into() })
}

fn runtime() -> Result<tokio::runtime::Runtime, BenchError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("cannot start the async runtime", e))
}

/// Registers the agentless host, creates `remote` endpoints on it, and waits until
/// the agent behind `socket` reports them all.
async fn load_remote(socket: &Path, remote: usize) -> Result<(), BenchError> {
    let client = Client::tcp(&controller_url())?;
    let host = json!({"name": GHOST, "underlay_ip": "198.51.100.7", "underlay_mtu": 1500, "vxlan_port": 4789});
    client.put::<Value, _>(&format!("/v1/hosts/{GHOST}"), &host).await?;
    let writes = (0..remote).map(|index| {
        let client = &client;
        async move {
            let spec = json!({"name": format!("r{index}"), "network": NETWORK, "host": GHOST, "sandbox": "simulated"});
            client.post::<Value, _>(&format!("/v1/tenants/{TENANT}/endpoints"), &spec).await
        }
    });
    futures::stream::iter(writes).buffer_unordered(16).try_collect::<Vec<_>>().await?;
    wait_remote(&Client::unix(socket), remote).await
}

async fn wait_remote(agent: &Client, remote: usize) -> Result<(), BenchError> {
    let deadline = Instant::now() + PROGRAM_TIMEOUT;
    loop {
        let status: Value = agent.get("/v1/status").await?;
        if status["remote_endpoints"].as_u64().unwrap_or(0) >= remote as u64 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout { what: format!("the agent to hold {remote} remote endpoints"), seconds: PROGRAM_TIMEOUT.as_secs() });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
