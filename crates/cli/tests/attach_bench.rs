//! Attach latency through the agent socket, end to end: `cloison up` runs in a
//! throw-away host namespace, and every attach puts a fresh namespace on one
//! network. Prints p50 and p90 of 200 sequential and 200 8-concurrent attaches.
//!
//! `cargo test -p cloison --release --test attach_bench -- --ignored --nocapture`
//!
//! Needs root, iproute2 and util-linux (`nsenter`). Nothing runs in the
//! machine's own network namespace, and every namespace and process it creates
//! is removed when it ends, also after a panic.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloison_agent::AttachRequest;
use cloison_client::Client;

const BINARY: &str = env!("CARGO_BIN_EXE_cloison");
const LISTEN: &str = "127.0.0.1:7420";
const TENANT: &str = "bench";
const NETWORK: &str = "web";
const COUNT: usize = 200;
const CONCURRENCY: usize = 8;

fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A network namespace made with `ip netns add`, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(name: String) -> Self {
        run("ip", &["netns", "add", &name]);
        Netns { name }
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// `cloison up` inside its own host namespace, killed on drop.
struct Daemon {
    child: Child,
    /// Store, socket, run directory and log, removed on drop.
    dir: PathBuf,
    host: Netns,
}

impl Daemon {
    fn start(prefix: &str) -> Self {
        let host = Netns::new(format!("{prefix}-host"));
        run("ip", &["-n", &host.name, "link", "set", "lo", "up"]);
        let dir = std::env::temp_dir().join(prefix);
        std::fs::create_dir_all(&dir).expect("cannot create a temporary directory");
        let log = std::fs::File::create(dir.join("up.log")).expect("cannot create the daemon log");
        let child = Command::new("nsenter")
            .arg(format!("--net={}", host.path()))
            .args(["--", BINARY, "up", "--host", "bench", "--listen", LISTEN])
            .arg("--docker-socket=")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--socket")
            .arg(dir.join("agent.sock"))
            .arg("--run-dir")
            .arg(dir.join("run"))
            .env("CLOISON_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cannot duplicate the daemon log"))
            .stderr(log)
            .spawn()
            .expect("cannot start cloison up");
        Daemon { child, dir, host }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("agent.sock")
    }

    /// Runs the CLI inside the host namespace and returns whether it succeeded.
    fn cli(&self, args: &[&str]) -> bool {
        Command::new("nsenter")
            .arg(format!("--net={}", self.host.path()))
            .args(["--", BINARY])
            .args(args)
            .env("CLOISON_CONTROLLER", format!("http://{LISTEN}"))
            .env("CLOISON_AGENT_SOCKET", self.socket())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.cli(&["status"]) {
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("cloison up exited with {exit}: {}", self.log());
            }
            assert!(Instant::now() < deadline, "cloison up not ready after 20 s: {}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("up.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    /// Kills the daemon, then unmounts the router namespaces it pinned under its
    /// run directory, so the temporary directory can go.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pins = self.dir.join("run").join("netns");
        for entry in std::fs::read_dir(pins).into_iter().flatten().flatten() {
            let _ = Command::new("umount").arg("-l").arg(entry.path()).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn request(sandbox: &Netns) -> AttachRequest {
    AttachRequest {
        tenant: TENANT.into(),
        network: NETWORK.into(),
        target: format!("netns:{}", sandbox.name),
        name: None,
        ipv4: None,
        ipv6: None,
        mac: None,
        ifname: None,
        groups: Vec::new(),
        labels: Default::default(),
    }
}

/// Attaches every sandbox with at most `concurrency` attaches in flight and
/// returns the latency of each.
async fn attach_all(client: Arc<Client>, sandboxes: &[Netns], concurrency: usize) -> Vec<Duration> {
    let requests: Vec<AttachRequest> = sandboxes.iter().map(request).collect();
    let chunk = requests.len().div_ceil(concurrency);
    let mut workers = tokio::task::JoinSet::new();
    for part in requests.chunks(chunk) {
        let client = Arc::clone(&client);
        let part = part.to_vec();
        workers.spawn(async move {
            let mut samples = Vec::with_capacity(part.len());
            for request in part {
                let start = Instant::now();
                let attached: Result<serde_json::Value, _> = client.post("/v1/attach", &request).await;
                samples.push(start.elapsed());
                if let Err(e) = attached {
                    panic!("attach of {} failed: {e}", request.target);
                }
            }
            samples
        });
    }
    let mut samples = Vec::new();
    while let Some(part) = workers.join_next().await {
        samples.extend(part.expect("attach worker panicked"));
    }
    samples
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[allow(clippy::print_stderr, reason = "the figures are the benchmark's output")]
fn report(label: &str, mut samples: Vec<Duration>, wall: Duration) {
    samples.sort();
    eprintln!(
        "{label}: {} attaches in {wall:.2?}, p50 {:.2?}, p90 {:.2?}, max {:.2?}",
        samples.len(),
        percentile(&samples, 50),
        percentile(&samples, 90),
        samples[samples.len() - 1],
    );
}

fn sandboxes(prefix: &str, tag: &str) -> Vec<Netns> {
    (0..COUNT).map(|n| Netns::new(format!("{prefix}-{tag}{n}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check; run explicitly in release as root"]
async fn attach_latency_through_agent() {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "the attach benchmark creates network namespaces; run it as root");
    let prefix = format!("clbench{}", std::process::id());
    let mut daemon = Daemon::start(&prefix);
    daemon.wait_ready();
    let created = daemon.cli(&["network", "create", NETWORK, "--tenant", TENANT, "--subnet", "10.200.0.0/16"]);
    assert!(created, "network create failed: {}", daemon.log());
    let client = Arc::new(Client::unix(daemon.socket()));

    let sequential = sandboxes(&prefix, "s");
    let start = Instant::now();
    let samples = attach_all(Arc::clone(&client), &sequential, 1).await;
    report("sequential", samples, start.elapsed());

    let concurrent = sandboxes(&prefix, "c");
    let start = Instant::now();
    let samples = attach_all(client, &concurrent, CONCURRENCY).await;
    report(&format!("{CONCURRENCY}-concurrent"), samples, start.elapsed());
}

