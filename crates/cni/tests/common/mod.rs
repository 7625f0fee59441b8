//! A throw-away single-host deployment for the CNI tests: `cloison up` in a
//! "host" network namespace, a plugin directory holding `cloison` next to the
//! reference plugins, and container namespaces. Nothing runs in the machine's own
//! network namespace, and every namespace and process goes when its guard drops,
//! also when a test panics.

#![allow(dead_code, unreachable_pub)]

pub mod runtime;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Address the controller listens on inside each host namespace; every host
/// namespace has its own loopback, so tests running in parallel share the port.
const LISTEN: &str = "127.0.0.1:7420";
/// Where Debian's containernetworking-plugins package installs the reference plugins.
pub const REFERENCE_PLUGINS: &str = "/usr/lib/cni";
pub const PLUGIN: &str = env!("CARGO_BIN_EXE_cloison-cni");

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// Returns a name no other test of this or a concurrent run uses.
pub fn unique_name(tag: &str) -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    format!("cni{}-{tag}-{n}", std::process::id())
}

/// Returns the `cloison` binary built next to `cloison-cni`.
pub fn cloison_binary() -> PathBuf {
    let dir = Path::new(PLUGIN).parent().expect("the plugin binary has a directory");
    let binary = dir.join("cloison");
    assert!(binary.is_file(), "{} is missing; run `cargo build -p cloison` before these tests", binary.display());
    binary
}

/// Panics with a clear message unless the test runs as root with the tools it needs.
pub fn require_root_and_tools(tools: &[&str]) {
    // /proc/self belongs to the process's effective user.
    let euid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("/proc is mounted"));
    assert_eq!(euid, 0, "the CNI tests create network namespaces and must run as root");
    for tool in ["ip", "nsenter"].iter().chain(tools) {
        let found = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
            .unwrap_or(false);
        assert!(found, "the CNI tests need `{tool}` in PATH (scripts/install-deps.sh installs it)");
    }
}

/// Panics unless the reference plugins are installed.
pub fn require_reference_plugins(names: &[&str]) {
    for name in names {
        let path = Path::new(REFERENCE_PLUGINS).join(name);
        assert!(path.is_file(), "{} is missing; install containernetworking-plugins", path.display());
    }
}

pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace made with `ip netns add`, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = unique_name(tag);
        run_ok("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    pub fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    pub fn exec_ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(out.status.success(), "{args:?} in {} failed: {}", self.name, String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn ping(&self, address: &str) -> bool {
        self.exec(&["ping", "-c", "2", "-i", "0.2", "-W", "1", "-q", address]).status.success()
    }

    /// Returns true when the namespace has a link named `ifname`.
    pub fn has_link(&self, ifname: &str) -> bool {
        self.exec(&["ip", "link", "show", ifname]).status.success()
    }

    /// Deletes the namespace now, as a runtime does when a container dies.
    pub fn delete(&self) {
        run_ok("ip", &["netns", "del", &self.name]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// `cloison up` in its own host namespace, with a plugin directory for runtimes.
#[derive(Debug)]
pub struct Deployment {
    pub host: Netns,
    pub dir: tempfile::TempDir,
    daemon: Option<Child>,
}

impl Deployment {
    pub fn start(tag: &str) -> Deployment {
        require_root_and_tools(&["ping"]);
        let host = Netns::new(&format!("{tag}-host"));
        let dir = tempfile::Builder::new().prefix("cloison-cni-").tempdir().expect("cannot create a temporary directory");
        std::fs::create_dir_all(dir.path().join("plugins")).expect("cannot create the plugin directory");
        std::os::unix::fs::symlink(PLUGIN, dir.path().join("plugins/cloison")).expect("cannot link the plugin");
        let mut deployment = Deployment { host, dir, daemon: None };
        deployment.start_daemon();
        deployment
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    /// Directory holding `cloison` (a link to cloison-cni), searched before the reference plugins.
    pub fn plugin_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    pub fn start_daemon(&mut self) {
        let log_path = self.dir.path().join("up.log");
        let log = std::fs::File::create(&log_path).expect("cannot create the daemon log");
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.host.path()))
            .arg("--")
            .arg(cloison_binary())
            .arg("up")
            .args(["--host", "h1", "--listen", LISTEN])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--socket")
            .arg(self.socket())
            // An empty socket disables the Docker driver, which would otherwise
            // claim the machine's /run/docker/plugins/cloison.sock.
            .arg("--docker-socket=")
            .arg("--run-dir")
            .arg(self.dir.path().join("run"))
            .env("CLOISON_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cannot duplicate the log"))
            .stderr(log)
            .spawn()
            .expect("cannot start cloison up");
        self.daemon = Some(child);
        self.wait_ready(&log_path);
    }

    fn wait_ready(&mut self, log_path: &Path) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.cli(&["status", "-o", "json"]).status.success() || !self.socket().exists() {
            if let Some(Ok(Some(exit))) = self.daemon.as_mut().map(Child::try_wait) {
                panic!("cloison up exited with {exit}:\n{}", std::fs::read_to_string(log_path).unwrap_or_default());
            }
            assert!(
                Instant::now() < deadline,
                "cloison up not ready after 20 s:\n{}",
                std::fs::read_to_string(log_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops `cloison up`, leaving its socket file behind as a crash would.
    pub fn stop_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.host.path()))
            .arg("--")
            .arg(cloison_binary())
            .args(args)
            .env("CLOISON_CONTROLLER", format!("http://{LISTEN}"))
            .env("CLOISON_AGENT_SOCKET", self.socket())
            .stdin(Stdio::null())
            .output()
            .expect("cannot run cloison")
    }

    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = args.to_vec();
        full.extend_from_slice(&["--output", "json"]);
        let out = self.cli(&full);
        assert!(out.status.success(), "cloison {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("cloison printed JSON")
    }

    pub fn create_network(&self, tenant: &str, name: &str, subnet: &str) {
        self.cli_json(&["network", "create", name, "--tenant", tenant, "--subnet", subnet]);
    }

    /// Returns the names of the tenant's endpoints on `network`.
    pub fn endpoints(&self, tenant: &str, network: &str) -> Vec<String> {
        let list = self.cli_json(&["endpoint", "ls", "--tenant", tenant, "--network", network]);
        list.as_array()
            .map(|items| items.iter().filter_map(|e| e["name"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }
}

impl Deployment {
    /// Unmounts the router namespace pins the agent bind-mounted under its run directory.
    fn unmount_pins(&self) {
        let run_dir = self.dir.path().join("run");
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

impl Drop for Deployment {
    #[allow(clippy::print_stderr)]
    fn drop(&mut self) {
        self.stop_daemon();
        self.unmount_pins();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("up.log")).unwrap_or_default();
            eprintln!("--- cloison up ({}):\n{log}", self.host.name);
        }
    }
}
