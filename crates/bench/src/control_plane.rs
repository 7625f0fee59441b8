//! Control-plane scale: one `cloison controller` on its embedded store, many
//! simulated agents (watch clients with no dataplane, all in this process) and many
//! endpoints. Everything runs in a throw-away namespace whose loopback carries the
//! API traffic.

mod agent_memory;
mod load;
mod proc_stat;

pub(crate) use agent_memory::agent_memory;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cloison_client::Client;

use crate::netns::Netns;
use crate::report::Row;
use crate::stats::Summary;
use crate::BenchError;
use proc_stat::ProcessSample;

const SCENARIO: &str = "control-plane";
const LISTEN: &str = "127.0.0.1:7420";

/// Scale of one control-plane run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    pub(crate) agents: usize,
    pub(crate) endpoints: usize,
    /// Endpoint writes whose fan-out to every watcher is timed.
    pub(crate) changes: usize,
    /// Controller resident memory past which no more watchers are opened, so the
    /// run cannot exhaust a shared machine's memory.
    pub(crate) rss_limit_mib: u64,
}

/// `cloison controller` in the scenario's namespace, killed on drop.
struct Controller {
    child: Child,
    dir: PathBuf,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_controller(binary: &Path, netns: &Netns, dir: PathBuf) -> Result<Controller, BenchError> {
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::io(format!("cannot create {}", dir.display()), e))?;
    let log = std::fs::File::create(dir.join("controller.log")).map_err(|e| BenchError::io("cannot create the controller log", e))?;
    let mut command = netns.command(&binary.display().to_string());
    command
        .args(["controller", "--listen", LISTEN, "--data-dir"])
        .arg(dir.join("data"))
        .env("CLOISON_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let child = command.spawn().map_err(|source| BenchError::Spawn { program: binary.display().to_string(), source })?;
    Ok(Controller { child, dir })
}

/// Runs the scale test and returns its rows; `notes` receives what stopped short.
pub(crate) fn control_plane(prefix: &str, binary: &Path, scale: Scale, notes: &mut Vec<String>) -> Result<Vec<Row>, BenchError> {
    let netns = Netns::create(format!("{prefix}-cp"))?;
    let controller = start_controller(binary, &netns, std::env::temp_dir().join(format!("{prefix}-cp")))?;
    // nsenter without --fork execs the controller in place, so the child is it.
    let pid = controller.child.id();
    let path = netns.path();
    let outcome = std::thread::scope(|scope| {
        scope
            .spawn(|| in_namespace(&path, || load::run(pid, scale)))
            .join()
            .map_err(|_| BenchError::Empty { scenario: SCENARIO, reason: "the load thread panicked".into() })?
    })?;
    drop(controller);
    notes.extend(outcome.notes.iter().cloned());
    Ok(outcome.rows(scale))
}

/// Runs `work` on this thread after moving the thread into the network namespace at
/// `path`; threads it starts (the async runtime's workers) inherit the namespace.
fn in_namespace<T>(path: &Path, work: impl FnOnce() -> Result<T, BenchError>) -> Result<T, BenchError> {
    let file = std::fs::File::open(path).map_err(|e| BenchError::io(format!("cannot open {}", path.display()), e))?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| BenchError::io(format!("cannot enter {}", path.display()), e.into()))?;
    work()
}

/// Measurements of one control-plane load.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) endpoints_created: usize,
    pub(crate) create_wall: Duration,
    pub(crate) create_latency: Vec<Duration>,
    pub(crate) watchers: usize,
    pub(crate) watch_open_wall: Duration,
    pub(crate) fan_out: Vec<Duration>,
    /// Fan-out changes written.
    pub(crate) changes: usize,
    pub(crate) before_create: Option<ProcessSample>,
    pub(crate) after_create: Option<ProcessSample>,
    pub(crate) after_watch: Option<ProcessSample>,
    pub(crate) after_fan_out: Option<ProcessSample>,
    /// Time to send one heartbeat for every agent.
    pub(crate) heartbeat_wall: Duration,
    pub(crate) after_heartbeats: Option<ProcessSample>,
    pub(crate) notes: Vec<String>,
}

impl Outcome {
    fn rows(&self, scale: Scale) -> Vec<Row> {
        let case = format!("{} agents, {} endpoints", self.watchers, self.endpoints_created);
        let mut rows = Vec::new();
        if let Some(summary) = Summary::of_durations(&self.fan_out) {
            rows.push(Row::sampled(SCENARIO, &format!("{case}: watch fan-out of one change"), "controller", "ms", summary));
        }
        if let Some(summary) = Summary::of_durations(&self.create_latency) {
            rows.push(Row::sampled(SCENARIO, &case, "endpoint create latency", "ms", summary));
        }
        if !self.create_wall.is_zero() {
            let rate = self.endpoints_created as f64 / self.create_wall.as_secs_f64();
            rows.push(Row::single(SCENARIO, &case, "endpoint create rate", "endpoints/s", rate));
        }
        if let (Some(before), Some(after)) = (&self.before_create, &self.after_create) {
            let per_thousand = (after.cpu_seconds - before.cpu_seconds) * 1000.0 / self.endpoints_created.max(1) as f64;
            rows.push(Row::single(SCENARIO, &case, "controller CPU per 1,000 creates", "CPU s", per_thousand));
        }
        if !self.watch_open_wall.is_zero() {
            rows.push(Row::single(SCENARIO, &case, "open every watch, snapshots read", "s", self.watch_open_wall.as_secs_f64()));
        }
        if let (Some(before), Some(after)) = (&self.after_create, &self.after_watch) {
            rows.push(Row::single(SCENARIO, &case, "controller CPU to open every watch", "CPU s", after.cpu_seconds - before.cpu_seconds));
        }
        if let (Some(before), Some(after)) = (&self.after_watch, &self.after_fan_out) {
            let per_change = (after.cpu_seconds - before.cpu_seconds) * 1000.0 / self.changes.max(1) as f64;
            rows.push(Row::single(SCENARIO, &case, "controller CPU per fan-out change", "CPU ms", per_change));
        }
        if let (Some(before), Some(after)) = (&self.after_fan_out, &self.after_heartbeats) {
            let subject = "controller CPU for one heartbeat of every agent";
            rows.push(Row::single(SCENARIO, &case, subject, "CPU s", after.cpu_seconds - before.cpu_seconds));
            rows.push(Row::single(SCENARIO, &case, "one heartbeat of every agent, 32 in flight", "s", self.heartbeat_wall.as_secs_f64()));
        }
        for (label, sample) in [("after creates", &self.after_create), ("with watches open", &self.after_watch), ("after fan-out", &self.after_fan_out)] {
            if let Some(sample) = sample {
                rows.push(Row::single(SCENARIO, &case, &format!("controller RSS {label}"), "MiB", sample.rss_mib));
            }
        }
        if let Some(sample) = &self.after_fan_out {
            rows.push(Row::single(SCENARIO, &case, "controller peak RSS", "MiB", sample.peak_rss_mib));
        }
        if self.watchers < scale.agents {
            rows.push(Row::single(SCENARIO, &case, "watchers opened of those asked", "agents", self.watchers as f64)
                .with_ratio("asked", scale.agents as f64));
        }
        rows
    }
}

/// Creates a client of the scenario's controller, one per simulated agent or writer.
fn client() -> Result<Client, BenchError> {
    Ok(Client::tcp(&format!("http://{LISTEN}"))?)
}

/// Waits until the controller responds to `GET /v1/status`.
async fn wait_ready(client: &Client) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.status().await.is_err() {
        if Instant::now() > deadline {
            return Err(BenchError::Timeout { what: "cloison controller to respond".into(), seconds: 30 });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
