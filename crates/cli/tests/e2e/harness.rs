//! A throw-away single-host deployment: a "host" network namespace running
//! `cloison up`, and "containers" that are further namespaces.
//!
//! Nothing runs in the test machine's own network namespace. Every namespace,
//! mount and process is removed when the guard drops, also when a test panics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Address the controller listens on inside each host namespace. Every host has
/// its own loopback, so the same port serves every test running in parallel.
const LISTEN: &str = "127.0.0.1:7420";

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_cloison");

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// Returns a namespace name no other test of this run or of a concurrent run uses.
pub(crate) fn unique_name(tag: &str) -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    format!("e2e{}-{tag}-{n}", std::process::id())
}

/// Panics with a clear message unless the test runs as root with the tools it needs.
pub(crate) fn require_root_and_tools() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the end-to-end tests create network namespaces and must run as root"
    );
    for tool in ["ip", "nsenter", "ping", "umount"] {
        let found = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "the end-to-end tests need `{tool}` in PATH (iproute2, util-linux, iputils-ping)"
        );
    }
}

/// Runs a command to completion and returns its output.
pub(crate) fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Runs a command and panics with its stderr unless it succeeds.
pub(crate) fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace made with `ip netns add`, deleted on drop.
#[derive(Debug)]
pub(crate) struct Netns {
    pub(crate) name: String,
}

impl Netns {
    pub(crate) fn new(tag: &str) -> Netns {
        Netns::named(unique_name(tag))
    }

    pub(crate) fn named(name: String) -> Netns {
        run_ok("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub(crate) fn target(&self) -> String {
        format!("netns:{}", self.name)
    }

    pub(crate) fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs a command inside the namespace, like `ip netns exec NAME ...`.
    pub(crate) fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    pub(crate) fn exec_ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "{args:?} in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sends `count` pings to `address` and returns whether any reply came back.
    pub(crate) fn ping(&self, address: &str, count: u32) -> bool {
        let count = count.to_string();
        self.exec(&["ping", "-c", &count, "-i", "0.2", "-W", "1", "-q", address])
            .status
            .success()
    }

    /// Links of the namespace by name, with their ifindex.
    pub(crate) fn links(&self) -> BTreeMap<String, u32> {
        let text = self.exec_ok(&["ip", "-o", "link", "show"]);
        let mut links = BTreeMap::new();
        for line in text.lines() {
            let mut fields = line.split(": ");
            let index = fields.next().and_then(|i| i.trim().parse().ok());
            let name = fields
                .next()
                .map(|n| n.split('@').next().unwrap_or(n).to_string());
            if let (Some(index), Some(name)) = (index, name) {
                links.insert(name, index);
            }
        }
        links
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// One single-host deployment: `cloison up` inside its own host namespace.
#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) ns: Netns,
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    starts: usize,
}

/// Output of one CLI call.
#[derive(Debug)]
pub(crate) struct CliOutput {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl CliOutput {
    /// Parses stdout as JSON; panics with the output when the call failed.
    pub(crate) fn json(&self) -> Value {
        assert!(self.success, "cloison failed: {}", self.stderr);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// Returns stderr after asserting the call failed and stderr contains every word.
    pub(crate) fn expect_error(&self, words: &[&str]) -> &str {
        assert!(
            !self.success,
            "cloison succeeded where it should fail: {}",
            self.stdout
        );
        for word in words {
            assert!(
                self.stderr.contains(word),
                "the error message lacks {word:?}: {}",
                self.stderr
            );
        }
        &self.stderr
    }
}

impl Host {
    /// Creates the host namespace and starts `cloison up` in it.
    pub(crate) fn start(tag: &str) -> Host {
        require_root_and_tools();
        let ns = Netns::new(&format!("{tag}-host"));
        let dir = tempfile::Builder::new()
            .prefix("cloison-e2e-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let mut host = Host {
            ns,
            dir,
            daemon: None,
            starts: 0,
        };
        host.spawn_daemon();
        host
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// Starts `cloison up` and waits until the controller and the agent respond.
    fn spawn_daemon(&mut self) {
        self.starts += 1;
        let log_path = self.dir.path().join(format!("up-{}.log", self.starts));
        let log = std::fs::File::create(&log_path).expect("cannot create the daemon log");
        let err_log = log.try_clone().expect("cannot duplicate the daemon log");
        let data_dir = self.dir.path().join("data");
        let run_dir = self.run_dir();
        let socket = self.socket();
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.ns.path()))
            .arg("--")
            .arg(BINARY)
            .arg("up")
            .args(["--host", "e2e", "--listen", LISTEN])
            // The Docker driver would otherwise take the machine-wide plugin socket.
            .arg("--docker-socket=")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--socket")
            .arg(&socket)
            .arg("--run-dir")
            .arg(&run_dir)
            .env("CLOISON_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .expect("cannot start cloison up");
        self.daemon = Some(child);
        self.wait_ready(&log_path);
    }

    fn wait_ready(&mut self, log_path: &Path) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.cli(&["status", "-o", "json"]);
            if out.success {
                let status: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
                if !status["agent"].is_null() {
                    return;
                }
            }
            if let Some(child) = self.daemon.as_mut() {
                if let Ok(Some(exit)) = child.try_wait() {
                    let log = std::fs::read_to_string(log_path).unwrap_or_default();
                    panic!("cloison up exited with {exit} before it was ready:\n{log}");
                }
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                panic!(
                    "cloison up not ready after 20 s; last status: {}\n{log}",
                    out.stderr
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills `cloison up` with SIGKILL and waits for it to exit.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts `cloison up` again on the same data, socket and run directory.
    pub(crate) fn restart(&mut self) {
        self.kill9();
        self.spawn_daemon();
    }

    /// Runs the `cloison` CLI inside the host namespace.
    pub(crate) fn cli(&self, args: &[&str]) -> CliOutput {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.ns.path()))
            .arg("--")
            .arg(BINARY)
            .args(args)
            .env("CLOISON_CONTROLLER", format!("http://{LISTEN}"))
            .env("CLOISON_AGENT_SOCKET", self.socket())
            .stdin(Stdio::null())
            .output()
            .expect("cannot run cloison");
        CliOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs the CLI with `--output json` and returns the parsed result.
    pub(crate) fn cli_json(&self, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.extend_from_slice(&["--output", "json"]);
        self.cli(&full).json()
    }

    pub(crate) fn create_network(&self, tenant: &str, name: &str, subnet: &str) -> Value {
        self.cli_json(&[
            "network", "create", name, "--tenant", tenant, "--subnet", subnet,
        ])
    }

    /// Attaches a container with defaults plus `extra` flags and returns the endpoint.
    pub(crate) fn attach(
        &self,
        tenant: &str,
        network: &str,
        container: &Netns,
        extra: &[&str],
    ) -> Value {
        let target = container.target();
        let mut args = vec!["attach", network, target.as_str(), "--tenant", tenant];
        args.extend_from_slice(extra);
        self.cli_json(&args)
    }

    pub(crate) fn endpoints(&self) -> Vec<Value> {
        match self.cli_json(&["endpoint", "ls"]) {
            Value::Array(items) => items,
            other => panic!("endpoint ls returned no array: {other}"),
        }
    }

    /// Links of the host namespace by name, with their ifindex.
    pub(crate) fn links(&self) -> BTreeMap<String, u32> {
        self.ns.links()
    }

    /// Prints the logs of every `cloison up` run, so a failed test shows what the daemon did.
    #[allow(clippy::print_stderr)]
    fn print_daemon_logs(&self) {
        for start in 1..=self.starts {
            let path = self.dir.path().join(format!("up-{start}.log"));
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            eprintln!("--- cloison up, start {start} ({}):\n{log}", self.ns.name);
        }
    }

    /// Unmounts the router namespace pins that the agent bind-mounted under the run directory.
    fn unmount_pins(&self) {
        let run_dir = self.run_dir();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<&str> = mountinfo
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .filter(|point| Path::new(point).starts_with(&run_dir))
            .collect();
        // Deepest first, so a pin inside another mount goes before its parent.
        points.sort_by_key(|point| std::cmp::Reverse(point.len()));
        for point in points {
            let _ = run("umount", &["-l", point]);
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            self.print_daemon_logs();
        }
        self.unmount_pins();
    }
}

/// Returns the string at `field` of a JSON object, or panics naming the field.
pub(crate) fn text(value: &Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string field {field:?} in {value}"))
        .to_string()
}
