//! Attach and detach latency, sequential and concurrent, of cloison and its peers.
//! Each peer gets its own throw-away host namespace and fresh container namespaces.

mod peers;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cloison_client::Client;
use serde_json::json;

use crate::daemon::CloisonUp;
use crate::netns::{run, Netns};
use crate::report::Row;
use crate::stats::Summary;
use crate::BenchError;
use peers::{AgentSocket, CniPlugin, IpBatch, Netavark, Peer, Sandbox};

const SCENARIO: &str = "attach";
const TENANT: &str = "bench";
const NETWORK: &str = "web";
/// Directory of the reference plugins in Debian's containernetworking-plugins package.
const CNI_PLUGINS: &str = "/usr/lib/cni";
/// Path of netavark in Debian's netavark package.
const NETAVARK: &str = "/usr/lib/podman/netavark";
const FLOOR: &str = "floor (ip -batch)";
const CNI_BRIDGE: &str = "CNI bridge+host-local";
const NETAVARK_LABEL: &str = "netavark (bridge)";

/// Scale and binaries of the attach scenario.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// Attaches per peer and mode.
    pub count: usize,
    pub concurrency: usize,
    /// Sandboxes attached, untimed, before the mode that measures attaches into a
    /// crowded host; that mode times `count / 2` attaches.
    pub crowd: usize,
    pub cloison: PathBuf,
    pub cloison_cni: PathBuf,
    /// Prefix of every namespace and directory this scenario creates.
    pub prefix: String,
}

/// Latencies of one peer in one mode.
struct Measured {
    peer: String,
    mode: String,
    attach: Summary,
    detach: Summary,
}

/// Measures every peer whose tool is installed; a peer that fails adds a note
/// rather than ending the scenario.
pub fn run_attach(options: &AttachOptions, notes: &mut Vec<String>) -> Result<Vec<Row>, BenchError> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| BenchError::io("cannot start the async runtime", e))?;
    let mut measured = Vec::new();
    let order: [(&str, BuildPeer); 5] = [
        ("floor", floor),
        ("bridge", cni_bridge),
        ("netavark", netavark),
        ("cni", cloison_cni),
        ("socket", agent_socket),
    ];
    for (tag, build) in order {
        match build(options, runtime.handle()).and_then(|setup| measure_peer(options, tag, setup)) {
            Ok(mut rows) => measured.append(&mut rows),
            Err(e) => notes.push(format!("attach: {tag} not measured: {e}")),
        }
    }
    if measured.is_empty() {
        return Err(BenchError::Empty { scenario: SCENARIO, reason: notes.join("; ") });
    }
    Ok(rows(&measured))
}

/// Prepares one peer: its host namespace, daemon or configuration.
type BuildPeer = fn(&AttachOptions, &tokio::runtime::Handle) -> Result<Setup, BenchError>;

/// A peer ready to attach, with what must live as long as it does.
struct Setup {
    peer: Box<dyn Peer>,
    _host: Option<Netns>,
    _daemon: Option<CloisonUp>,
    _dir: Option<TempDir>,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn host_netns(options: &AttachOptions, tag: &str) -> Result<Netns, BenchError> {
    Netns::create(format!("{}-{tag}-host", options.prefix))
}

fn temp_dir(options: &AttachOptions, tag: &str) -> Result<TempDir, BenchError> {
    let dir = std::env::temp_dir().join(format!("{}-{tag}", options.prefix));
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::io(format!("cannot create {}", dir.display()), e))?;
    Ok(TempDir(dir))
}

fn floor(options: &AttachOptions, _: &tokio::runtime::Handle) -> Result<Setup, BenchError> {
    let host = host_netns(options, "floor")?;
    let bridge = "flbr0";
    run(host.command("ip").args(["link", "add", bridge, "type", "bridge"]))?;
    run(host.command("ip").args(["addr", "add", "10.91.0.1/16", "dev", bridge]))?;
    run(host.command("ip").args(["link", "set", bridge, "up"]))?;
    let peer = IpBatch { host: host.path(), bridge: bridge.into() };
    Ok(Setup { peer: Box::new(peer), _host: Some(host), _daemon: None, _dir: None })
}

fn require(path: &str, package: &'static str) -> Result<PathBuf, BenchError> {
    let path = PathBuf::from(path);
    if !path.is_file() {
        let tool = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        return Err(BenchError::MissingTool { tool, path, package });
    }
    Ok(path)
}

fn cni_bridge(options: &AttachOptions, _: &tokio::runtime::Handle) -> Result<Setup, BenchError> {
    let binary = require(&format!("{CNI_PLUGINS}/bridge"), "containernetworking-plugins")?;
    require(&format!("{CNI_PLUGINS}/host-local"), "containernetworking-plugins")?;
    let host = host_netns(options, "bridge")?;
    let dir = temp_dir(options, "bridge")?;
    let config = json!({"cniVersion": "1.0.0", "name": "bench-bridge", "type": "bridge", "bridge": "cnibench0",
        "isGateway": true, "ipam": {"type": "host-local", "subnet": "10.92.0.0/16", "dataDir": dir.0.join("ipam")}});
    let peer = CniPlugin { label: CNI_BRIDGE.into(), binary, search_path: CNI_PLUGINS.into(), config, host: host.path() };
    Ok(Setup { peer: Box::new(peer), _host: Some(host), _daemon: None, _dir: Some(dir) })
}

fn netavark(options: &AttachOptions, _: &tokio::runtime::Handle) -> Result<Setup, BenchError> {
    let binary = require(NETAVARK, "netavark")?;
    let host = host_netns(options, "netavark")?;
    let dir = temp_dir(options, "netavark")?;
    let peer = Netavark { binary, config_dir: dir.0.clone(), host: host.path() };
    Ok(Setup { peer: Box::new(peer), _host: Some(host), _daemon: None, _dir: Some(dir) })
}

/// Starts `cloison up` in its own host namespace with network `web`.
fn cloison_daemon(options: &AttachOptions, tag: &str) -> Result<CloisonUp, BenchError> {
    let host = host_netns(options, tag)?;
    let dir = std::env::temp_dir().join(format!("{}-{tag}", options.prefix));
    let daemon = CloisonUp::start(&options.cloison, host, dir)?;
    daemon.cli(&["network", "create", NETWORK, "--tenant", TENANT, "--subnet", "10.90.0.0/16"])?;
    Ok(daemon)
}

fn cloison_cni(options: &AttachOptions, _: &tokio::runtime::Handle) -> Result<Setup, BenchError> {
    if !options.cloison_cni.is_file() {
        let path = options.cloison_cni.clone();
        return Err(BenchError::MissingTool { tool: "cloison-cni".into(), path, package: "cloison-cni (cargo build -p cloison-cni)" });
    }
    let daemon = cloison_daemon(options, "cni")?;
    let config = json!({"cniVersion": "1.0.0", "name": "bench-cloison", "type": "cloison",
        "tenant": TENANT, "network": NETWORK, "agentSocket": daemon.socket()});
    let peer = CniPlugin {
        label: "cloison (CNI plugin)".into(),
        binary: options.cloison_cni.clone(),
        search_path: CNI_PLUGINS.into(),
        config,
        host: daemon.host().path(),
    };
    Ok(Setup { peer: Box::new(peer), _host: None, _daemon: Some(daemon), _dir: None })
}

fn agent_socket(options: &AttachOptions, runtime: &tokio::runtime::Handle) -> Result<Setup, BenchError> {
    let daemon = cloison_daemon(options, "socket")?;
    let peer = AgentSocket {
        client: Client::unix(daemon.socket()),
        runtime: runtime.clone(),
        tenant: TENANT.into(),
        network: NETWORK.into(),
    };
    Ok(Setup { peer: Box::new(peer), _host: None, _daemon: Some(daemon), _dir: None })
}

/// Attaches one anchor sandbox that stays for the whole measure, so no peer pays
/// for creating or deleting its bridge inside a timed call, then measures the
/// sequential and concurrent modes, and sequential attaches into a host that
/// has `crowd` endpoints already.
fn measure_peer(options: &AttachOptions, tag: &str, setup: Setup) -> Result<Vec<Measured>, BenchError> {
    let peer = setup.peer.as_ref();
    let anchor = sandboxes(options, tag, "a", 0..1)?;
    peer.attach(&anchor[0])?;
    let count = options.count;
    let sequential = sandboxes(options, tag, "s", 1..count + 1)?;
    let first = timed_mode(peer, &sequential, 1, "sequential");
    let concurrent = sandboxes(options, tag, "c", count + 1..2 * count + 1)?;
    let mode = format!("{} concurrent", options.concurrency);
    let second = timed_mode(peer, &concurrent, options.concurrency, &mode);
    let third = crowded_mode(peer, options, tag, 2 * count + 1);
    let _ = peer.detach(&anchor[0]);
    Ok(vec![first?, second?, third?])
}

/// Attaches `crowd` sandboxes without timing them, measures `count / 2`
/// sequential attaches and detaches beside them, then detaches the crowd.
fn crowded_mode(peer: &dyn Peer, options: &AttachOptions, tag: &str, first_index: usize) -> Result<Measured, BenchError> {
    let crowd_end = first_index + options.crowd;
    let crowd = sandboxes(options, tag, "b", first_index..crowd_end)?;
    let timed = sandboxes(options, tag, "x", crowd_end..crowd_end + (options.count / 2).max(1))?;
    timed_all(&crowd, options.concurrency, |s| peer.attach(s))?;
    let mode = format!("sequential beside {} endpoints", options.crowd);
    let measured = timed_mode(peer, &timed, 1, &mode);
    timed_all(&crowd, options.concurrency, |s| peer.detach(s))?;
    measured
}

fn sandboxes(options: &AttachOptions, tag: &str, mode: &str, indexes: std::ops::Range<usize>) -> Result<Vec<Sandbox>, BenchError> {
    indexes
        .map(|index| Ok(Sandbox { netns: Netns::create(format!("{}-{tag}-{mode}{index}", options.prefix))?, index }))
        .collect()
}

/// Attaches every sandbox with `concurrency` workers, then detaches them the same way.
fn timed_mode(peer: &dyn Peer, sandboxes: &[Sandbox], concurrency: usize, mode: &str) -> Result<Measured, BenchError> {
    let attach = timed_all(sandboxes, concurrency, |s| peer.attach(s))?;
    let detach = timed_all(sandboxes, concurrency, |s| peer.detach(s))?;
    let empty = || BenchError::Empty { scenario: SCENARIO, reason: "no sandboxes".into() };
    Ok(Measured {
        peer: peer.label().into(),
        mode: mode.into(),
        attach: Summary::of_durations(&attach).ok_or_else(empty)?,
        detach: Summary::of_durations(&detach).ok_or_else(empty)?,
    })
}

/// Runs `call` on every sandbox from `workers` threads, each taking every
/// `workers`-th sandbox, and returns each call's latency.
fn timed_all<F>(sandboxes: &[Sandbox], workers: usize, call: F) -> Result<Vec<Duration>, BenchError>
where
    F: Fn(&Sandbox) -> Result<(), BenchError> + Sync,
{
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                let call = &call;
                scope.spawn(move || {
                    let mut samples = Vec::new();
                    for sandbox in sandboxes.iter().skip(worker).step_by(workers) {
                        let start = Instant::now();
                        call(sandbox)?;
                        samples.push(start.elapsed());
                    }
                    Ok::<_, BenchError>(samples)
                })
            })
            .collect();
        let mut samples = Vec::new();
        for handle in handles {
            let part = handle.join().map_err(|_| BenchError::Empty { scenario: SCENARIO, reason: "a worker panicked".into() })?;
            samples.extend(part?);
        }
        Ok(samples)
    })
}

/// Builds one row per peer, mode and operation, with its ratio to the floor and, for
/// cloison's rows, to the CNI bridge and netavark.
fn rows(measured: &[Measured]) -> Vec<Row> {
    let p50 = |peer: &str, mode: &str, pick: fn(&Measured) -> Summary| {
        measured.iter().find(|m| m.peer == peer && m.mode == mode).map(|m| pick(m).p50)
    };
    let mut rows = Vec::new();
    for (operation, pick) in [("attach", (|m: &Measured| m.attach) as fn(&Measured) -> Summary), ("detach", |m: &Measured| m.detach)] {
        for m in measured {
            let case = format!("{operation}, {}", m.mode);
            let mut row = Row::sampled(SCENARIO, &case, &m.peer, "ms", pick(m));
            let mut peers = vec![FLOOR];
            if m.peer.starts_with("cloison") {
                peers.extend([CNI_BRIDGE, NETAVARK_LABEL]);
            }
            for peer in peers.into_iter().filter(|p| *p != m.peer) {
                if let Some(value) = p50(peer, &m.mode, pick) {
                    row = row.with_ratio(peer, value);
                }
            }
            rows.push(row);
        }
    }
    rows
}
