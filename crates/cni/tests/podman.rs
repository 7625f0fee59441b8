//! Podman 4.3 with its CNI backend runs containers on a cloison network: two
//! containers of a locally imported busybox image ping each other. Podman runs
//! inside the deployment's host namespace with a private store, CNI config
//! directory and containers.conf, so nothing of the machine's own Podman is used.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{require_reference_plugins, run, Deployment, REFERENCE_PLUGINS};
use serde_json::{json, Value};

const TENANT: &str = "acme";
const NETWORK: &str = "front";
const SUBNET: &str = "10.60.0.0/24";
/// Name of the Podman network, which is the `name` of the conflist.
const PODMAN_NETWORK: &str = "cloison-front";
const IMAGE: &str = "localhost/cloison-busybox:test";
/// Where Debian's busybox-static package installs its binary.
const BUSYBOX: &str = "/bin/busybox";
/// Upper bound of each Podman command, so a hung Podman fails the test.
const PODMAN_TIMEOUT: &str = "120";

/// Podman confined to a private directory and to the deployment's host namespace.
/// Dropping it removes its containers, its store and the mounts under its directory.
struct Podman {
    host_netns: String,
    dir: tempfile::TempDir,
}

impl Podman {
    fn new(deployment: &Deployment) -> Podman {
        let dir = tempfile::Builder::new().prefix("cloison-podman-").tempdir().expect("cannot create a temporary directory");
        let podman = Podman { host_netns: deployment.host.path(), dir };
        std::fs::create_dir_all(podman.cni_dir()).expect("cannot create the CNI config directory");

        let conflist = json!({
            "cniVersion": "1.0.0",
            "name": PODMAN_NETWORK,
            "plugins": [{"type": "cloison", "network": NETWORK, "tenant": TENANT, "agentSocket": deployment.socket()}]
        });
        let conflist_path = podman.cni_dir().join(format!("{PODMAN_NETWORK}.conflist"));
        std::fs::write(&conflist_path, conflist.to_string()).expect("cannot write the conflist");

        // runc, not crun, because crun rejects hosts whose cgroups mix v1 controllers
        // with a cgroup2 mount ("cgroups in hybrid mode not supported") and runc runs there.
        // Podman 4.3.1 as root requests RLIMIT_NOFILE and RLIMIT_NPROC values that the
        // runtime fails to set without CAP_SYS_RESOURCE, so the containers get 1024 of each.
        let plugin_dirs = [deployment.plugin_dir(), PathBuf::from(REFERENCE_PLUGINS)]
            .iter()
            .map(|dir| format!("{:?}", dir.display().to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        let conf = format!(
            "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [{plugin_dirs}]\n\n\
             [containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n"
        );
        std::fs::write(podman.conf_path(), conf).expect("cannot write containers.conf");
        podman
    }

    fn cni_dir(&self) -> PathBuf {
        self.dir.path().join("cni")
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.path().join("containers.conf")
    }

    /// Runs `podman ARGS` in the host namespace with the private store and configuration.
    fn run(&self, args: &[&str]) -> Output {
        let root = self.dir.path().join("root");
        let runroot = self.dir.path().join("runroot");
        Command::new("timeout")
            .arg(PODMAN_TIMEOUT)
            .arg("nsenter")
            .arg(format!("--net={}", self.host_netns))
            .args(["--", "podman"])
            .arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&runroot)
            .arg("--cni-config-dir")
            .arg(self.cni_dir())
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file", "--storage-driver", "vfs"])
            .args(args)
            .env("CONTAINERS_CONF", self.conf_path())
            .stdin(Stdio::null())
            .output()
            .expect("cannot run podman through timeout and nsenter")
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Imports a busybox image built from the host's static busybox and its applet links.
    fn import_busybox(&self) {
        let rootfs = self.dir.path().join("rootfs");
        let bin = rootfs.join("bin");
        std::fs::create_dir_all(&bin).expect("cannot create the image's /bin");
        std::fs::copy(BUSYBOX, bin.join("busybox")).expect("cannot copy busybox into the image");

        let list = common::run_ok(BUSYBOX, &["--list"]);
        for applet in list.lines().filter(|applet| !applet.is_empty() && *applet != "busybox") {
            std::os::unix::fs::symlink("busybox", bin.join(applet))
                .unwrap_or_else(|e| panic!("cannot link applet {applet}: {e}"));
        }

        let tarball = self.dir.path().join("rootfs.tar");
        let tarball = tarball.to_str().expect("the temporary directory has a UTF-8 path");
        common::run_ok("tar", &["-C", rootfs.to_str().expect("UTF-8 path"), "-cf", tarball, "."]);
        self.run_ok(&["import", tarball, IMAGE]);
    }

    /// Starts a detached container on the cloison network and returns its address.
    fn start_container(&self, name: &str) -> String {
        self.run_ok(&[
            "run", "-d", "--name", name, "--network", PODMAN_NETWORK, "--cap-add", "NET_RAW", IMAGE, "sleep", "600",
        ]);
        let inspect: Value = serde_json::from_str(&self.run_ok(&["inspect", name])).expect("podman inspect printed JSON");
        let address = inspect[0]["NetworkSettings"]["Networks"][PODMAN_NETWORK]["IPAddress"]
            .as_str()
            .unwrap_or_else(|| panic!("no address of {name} on {PODMAN_NETWORK} in podman inspect: {inspect}"))
            .to_string();
        assert!(!address.is_empty(), "empty address of {name} in podman inspect: {inspect}");
        address
    }

    /// Unmounts whatever Podman left mounted under the private directory, deepest first.
    fn unmount_all(&self) {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<&str> = mountinfo
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .filter(|point| Path::new(point).starts_with(self.dir.path()))
            .collect();
        points.sort_by_key(|point| std::cmp::Reverse(point.len()));
        for point in points {
            let _ = run("umount", &["-l", point]);
        }
    }
}

impl Drop for Podman {
    #[allow(clippy::print_stderr)]
    fn drop(&mut self) {
        // `rm` runs CNI DEL for each container, so the agent must still be up.
        // Podman then deletes the namespaces it made under /run/netns.
        let removed = self.run(&["rm", "--all", "--force", "--time", "0"]);
        if !removed.status.success() {
            eprintln!("podman rm failed: {}", String::from_utf8_lossy(&removed.stderr));
        }
        let reset = self.run(&["system", "reset", "--force"]);
        if !reset.status.success() {
            eprintln!("podman system reset failed: {}", String::from_utf8_lossy(&reset.stderr));
        }
        self.unmount_all();
    }
}

#[test]
fn podman_containers_ping_over_cloison() {
    require_reference_plugins(&["loopback"]);
    common::require_root_and_tools(&["podman", "runc", "tar", "timeout"]);
    assert!(Path::new(BUSYBOX).is_file(), "{BUSYBOX} is missing; install busybox-static");

    // Declared before Podman so that it drops after it: Podman's CNI DEL needs the agent.
    let deployment = Deployment::start("podman");
    deployment.create_network(TENANT, NETWORK, SUBNET);
    let podman = Podman::new(&deployment);
    podman.import_busybox();

    let first = podman.start_container("c1");
    let second = podman.start_container("c2");
    assert_ne!(first, second, "both containers got the same address");
    assert_eq!(deployment.endpoints(TENANT, NETWORK).len(), 2, "cloison does not list both containers as endpoints");

    for (from, to) in [("c1", &second), ("c2", &first)] {
        let ping = podman.run(&["exec", from, "ping", "-c", "3", "-W", "2", to]);
        assert!(
            ping.status.success(),
            "{from} cannot ping {to}: {}{}",
            String::from_utf8_lossy(&ping.stdout),
            String::from_utf8_lossy(&ping.stderr)
        );
    }

    podman.run_ok(&["rm", "--force", "--time", "0", "c1", "c2"]);
    assert!(deployment.endpoints(TENANT, NETWORK).is_empty(), "endpoints left after podman rm");
}
