//! The load of the control-plane scenario: hosts, endpoints, watchers and the timed
//! changes, driven from one async runtime.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cloison_client::Client;
use cloison_model::{WatchEvent, WatchObject};
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::proc_stat::sample;
use super::{client, wait_ready, Outcome, Scale};
use crate::BenchError;

/// Tenant of the fan-out network and of nothing else.
const FAN_TENANT: &str = "fan";
/// Network on which every simulated agent has one endpoint, so a change there
/// reaches every watcher.
const FAN_NETWORK: &str = "fan";
/// Endpoints per bulk network, each network on a /22.
const PER_NETWORK: usize = 500;
/// Bulk networks per bulk tenant. A host receives every network of a tenant it
/// has an endpoint of, so this sets how much of the deployment each watch carries.
const NETWORKS_PER_TENANT: usize = 2;
/// Consecutive bulk endpoints placed on the same host.
const PER_HOST_RUN: usize = 100;
/// Writes and watch openings in flight at once.
const IN_FLIGHT: usize = 32;
const FAN_OUT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time waited after the heartbeat round before the controller's CPU time is read.
const HEARTBEAT_SETTLE: Duration = Duration::from_secs(2);

/// Builds the runtime and runs the load against the controller `pid`.
pub(super) fn run(pid: u32, scale: Scale) -> Result<Outcome, BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("cannot start the async runtime", e))?;
    runtime.block_on(drive(pid, scale))
}

async fn drive(pid: u32, scale: Scale) -> Result<Outcome, BenchError> {
    let client = Arc::new(client()?);
    wait_ready(&client).await?;
    let mut outcome = Outcome::default();
    create_topology(&client, scale).await?;
    outcome.before_create = Some(sample(pid)?);
    let started = Instant::now();
    outcome.create_latency = create_bulk(&client, scale.endpoints).await?;
    outcome.create_wall = started.elapsed();
    outcome.endpoints_created = scale.endpoints + scale.agents;
    outcome.after_create = Some(sample(pid)?);

    let (sender, mut receiver) = mpsc::unbounded_channel();
    let started = Instant::now();
    let watchers = open_watchers(pid, scale, sender, &mut outcome.notes).await?;
    outcome.watch_open_wall = started.elapsed();
    outcome.watchers = watchers.len();
    outcome.after_watch = Some(sample(pid)?);

    outcome.changes = scale.changes;
    for change in 0..scale.changes {
        outcome.fan_out.extend(time_change(&client, change, outcome.watchers, &mut receiver, &mut outcome.notes).await?);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    outcome.after_fan_out = Some(sample(pid)?);

    let started = Instant::now();
    register_hosts(&client, scale.agents).await?;
    outcome.heartbeat_wall = started.elapsed();
    // The fan-out of the last heartbeats runs after their writes return.
    tokio::time::sleep(HEARTBEAT_SETTLE).await;
    outcome.after_heartbeats = Some(sample(pid)?);
    for watcher in watchers {
        watcher.abort();
    }
    Ok(outcome)
}

fn agent_name(index: usize) -> String {
    format!("agent{index}")
}

/// Registers every simulated host, or refreshes its heartbeat as an agent does every
/// 10 s when it is registered already.
async fn register_hosts(client: &Arc<Client>, agents: usize) -> Result<(), BenchError> {
    let hosts = (0..agents).map(|index| {
        let client = Arc::clone(client);
        async move {
            let spec = json!({"name": agent_name(index), "underlay_ip": format!("198.18.{}.{}", index / 250, 1 + index % 250),
                "underlay_mtu": 1500, "vxlan_port": 4789});
            client.put::<Value, _>(&format!("/v1/hosts/{}", agent_name(index)), &spec).await
        }
    });
    futures::stream::iter(hosts).buffer_unordered(IN_FLIGHT).try_collect::<Vec<_>>().await?;
    Ok(())
}

/// Registers every simulated host, the tenants and networks, and one endpoint per
/// host on the fan-out network.
async fn create_topology(client: &Arc<Client>, scale: Scale) -> Result<(), BenchError> {
    register_hosts(client, scale.agents).await?;
    create_tenant(client, FAN_TENANT).await?;
    create_network(client, FAN_TENANT, FAN_NETWORK, "10.0.0.0/16").await?;
    for network in 0..scale.endpoints.div_ceil(PER_NETWORK) {
        let tenant = bulk_tenant(network * PER_NETWORK);
        if network % NETWORKS_PER_TENANT == 0 {
            create_tenant(client, &tenant).await?;
        }
        create_network(client, &tenant, &bulk_network(network * PER_NETWORK), &bulk_subnet(network)).await?;
    }
    let fan = (0..scale.agents)
        .map(|index| create_endpoint(client, FAN_TENANT, FAN_NETWORK, format!("f{index}"), agent_name(index)));
    futures::stream::iter(fan).buffer_unordered(IN_FLIGHT).try_collect::<Vec<_>>().await?;
    Ok(())
}

/// Returns the /22 of bulk network `index`, from 10.64.0.0 upwards.
fn bulk_subnet(index: usize) -> String {
    format!("10.{}.{}.0/22", 64 + index / 64, (index % 64) * 4)
}

/// Returns the tenant of bulk endpoint `index`.
fn bulk_tenant(index: usize) -> String {
    format!("t{}", index / (PER_NETWORK * NETWORKS_PER_TENANT))
}

/// Returns the network of bulk endpoint `index`, named after its place in the tenant.
fn bulk_network(index: usize) -> String {
    format!("b{}", (index / PER_NETWORK) % NETWORKS_PER_TENANT)
}

async fn create_tenant(client: &Client, name: &str) -> Result<(), BenchError> {
    client.post::<Value, _>("/v1/tenants", &json!({"name": name})).await?;
    Ok(())
}

async fn create_network(client: &Client, tenant: &str, name: &str, subnet: &str) -> Result<(), BenchError> {
    client.post::<Value, _>(&format!("/v1/tenants/{tenant}/networks"), &json!({"name": name, "subnet": subnet})).await?;
    Ok(())
}

async fn create_endpoint(client: &Client, tenant: &str, network: &str, name: String, host: String) -> Result<Duration, BenchError> {
    let spec = json!({"name": name, "network": network, "host": host, "sandbox": "simulated"});
    let started = Instant::now();
    client.post::<Value, _>(&format!("/v1/tenants/{tenant}/endpoints"), &spec).await?;
    Ok(started.elapsed())
}

/// Creates `count` endpoints, each run of consecutive ones on one host, each
/// `PER_NETWORK` on one network and each `NETWORKS_PER_TENANT` networks in one
/// tenant, so each host has its bulk endpoints in one tenant.
async fn create_bulk(client: &Arc<Client>, count: usize) -> Result<Vec<Duration>, BenchError> {
    let hosts = count.div_ceil(PER_HOST_RUN).max(1);
    let writes = (0..count).map(|index| {
        let client = Arc::clone(client);
        let (tenant, network) = (bulk_tenant(index), bulk_network(index));
        let host = agent_name((index / PER_HOST_RUN) % hosts);
        async move { create_endpoint(&client, &tenant, &network, format!("x{index}"), host).await }
    });
    futures::stream::iter(writes).buffer_unordered(IN_FLIGHT).try_collect().await
}

/// A reception of a fan-out endpoint by one watcher.
type Reception = (String, Instant);

/// Opens one watch per simulated agent, waiting for each snapshot, and stops early
/// when the controller's memory passes the limit.
async fn open_watchers(
    pid: u32,
    scale: Scale,
    sender: mpsc::UnboundedSender<Reception>,
    notes: &mut Vec<String>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, BenchError> {
    let mut watchers = Vec::with_capacity(scale.agents);
    for batch in (0..scale.agents).collect::<Vec<_>>().chunks(IN_FLIGHT) {
        let rss = sample(pid)?.rss_mib;
        if rss > scale.rss_limit_mib as f64 {
            notes.push(format!(
                "control-plane: stopped opening watches at {} of {} because the controller's RSS reached {rss:.0} MiB \
                 (limit {} MiB)",
                watchers.len(),
                scale.agents,
                scale.rss_limit_mib
            ));
            break;
        }
        let opened = futures::future::try_join_all(batch.iter().map(|index| open_watcher(*index, sender.clone()))).await?;
        watchers.extend(opened);
    }
    Ok(watchers)
}

/// Opens the watch of agent `index`, reads its snapshot, then forwards every
/// endpoint put on the fan-out network from a background task.
async fn open_watcher(index: usize, sender: mpsc::UnboundedSender<Reception>) -> Result<tokio::task::JoinHandle<()>, BenchError> {
    let client = client()?;
    let mut stream = Box::pin(client.watch_host(&agent_name(index), None).await?);
    match stream.next().await {
        Some(Ok(WatchEvent::Snapshot { .. })) => {}
        Some(Ok(_)) => {}
        Some(Err(e)) => return Err(e.into()),
        None => return Err(BenchError::Empty { scenario: "control-plane", reason: format!("watch of {} ended at once", agent_name(index)) }),
    }
    Ok(tokio::spawn(async move {
        while let Some(Ok(event)) = stream.next().await {
            if let WatchEvent::Put { object: WatchObject::Endpoint(endpoint), .. } = event {
                if endpoint.tenant == FAN_TENANT && endpoint.network == FAN_NETWORK && sender.send((endpoint.name, Instant::now())).is_err() {
                    return;
                }
            }
        }
    }))
}

/// Creates fan-out endpoint `change` and returns, for every watcher that received
/// it, the time from the start of the write to the reception.
async fn time_change(
    client: &Client,
    change: usize,
    watchers: usize,
    receiver: &mut mpsc::UnboundedReceiver<Reception>,
    notes: &mut Vec<String>,
) -> Result<Vec<Duration>, BenchError> {
    let name = format!("fo{change}");
    let started = Instant::now();
    create_endpoint(client, FAN_TENANT, FAN_NETWORK, name.clone(), agent_name(0)).await?;
    let mut latencies = Vec::with_capacity(watchers);
    let deadline = tokio::time::Instant::now() + FAN_OUT_TIMEOUT;
    while latencies.len() < watchers {
        match tokio::time::timeout_at(deadline, receiver.recv()).await {
            Ok(Some((received, at))) if received == name => latencies.push(at.duration_since(started)),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                notes.push(format!("control-plane: change {name} reached {} of {watchers} watchers", latencies.len()));
                break;
            }
        }
    }
    Ok(latencies)
}
