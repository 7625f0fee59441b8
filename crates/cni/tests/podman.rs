//! Podman 4.3 with its CNI backend runs containers on a cloison network, built
//! from a locally imported busybox image. One test runs two containers on a
//! single `cloison up` host. The other runs one container on each of two lab
//! hosts, so they reach each other only through the VXLAN overlay. Each Podman
//! runs inside its host's network namespace with a private store, run
//! directory, lock directory, CNI config directory and containers.conf, so
//! nothing of the machine's own Podman is used or changed.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cloison_lab::{check_prerequisites, Lab, LabSpec, REQUIRED_TOOLS};
use cloison_model::{Endpoint, Network};
use common::{require_reference_plugins, run, Deployment, PLUGIN, REFERENCE_PLUGINS};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
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
/// Name of the two-host lab; unique among the lab tests of the workspace.
const LAB: &str = "cnipodman";
/// Time a container gets to reach one on another host once both run, because
/// the controller must first send each agent the other host's endpoint.
const OVERLAY_READY: Duration = Duration::from_secs(10);

/// Podman confined to a private directory and to one host's network namespace.
/// Dropping it removes its containers, its store, the namespaces and mounts it
/// made and any process it left.
struct Podman {
    host_netns: PathBuf,
    dir: tempfile::TempDir,
    /// Network namespaces of the containers started, removed on drop if Podman left them.
    sandboxes: Vec<PathBuf>,
}

/// A container started by [`Podman::start_container`].
struct Container {
    name: String,
    id: String,
    address: Ipv4Addr,
    sandbox: String,
}

impl Podman {
    /// Prepares Podman for the host whose network namespace is `host_netns` and
    /// whose agent serves `agent_socket`.
    fn new(tag: &str, host_netns: &Path, agent_socket: &Path) -> Podman {
        let dir = tempfile::Builder::new()
            .prefix(&format!("cloison-podman-{tag}-"))
            .tempdir()
            .expect("cannot create a temporary directory");
        let podman = Podman { host_netns: host_netns.to_path_buf(), dir, sandboxes: Vec::new() };
        for sub in [podman.cni_dir(), podman.plugin_dir(), podman.tmp_dir()] {
            std::fs::create_dir_all(&sub).unwrap_or_else(|e| panic!("cannot create {}: {e}", sub.display()));
        }
        std::os::unix::fs::symlink(PLUGIN, podman.plugin_dir().join("cloison")).expect("cannot link the plugin");

        let conflist = json!({
            "cniVersion": "1.0.0",
            "name": PODMAN_NETWORK,
            "plugins": [{"type": "cloison", "network": NETWORK, "tenant": TENANT, "agentSocket": agent_socket}]
        });
        let conflist_path = podman.cni_dir().join(format!("{PODMAN_NETWORK}.conflist"));
        std::fs::write(&conflist_path, conflist.to_string()).expect("cannot write the conflist");
        std::fs::write(podman.conf_path(), podman.containers_conf()).expect("cannot write containers.conf");

        let backend = podman.run_ok(&["info", "--format", "{{.Host.NetworkBackend}}"]);
        assert_eq!(backend, "cni", "Podman ignores network_backend = \"cni\" of {}", podman.conf_path().display());
        podman
    }

    /// Renders the containers.conf of this Podman.
    fn containers_conf(&self) -> String {
        // runc, not crun, because crun rejects hosts whose cgroups mix v1 controllers
        // with a cgroup2 mount ("cgroups in hybrid mode not supported") and runc runs there.
        // Podman 4.3.1 as root requests RLIMIT_NOFILE and RLIMIT_NPROC values that the
        // runtime fails to set without CAP_SYS_RESOURCE, so the containers get 1024 of each.
        // A private tmp_dir with file locks keeps each Podman off the machine's
        // /run/libpod and its shared-memory locks, which a fresh tmp_dir would reset.
        let plugin_dirs = [self.plugin_dir(), PathBuf::from(REFERENCE_PLUGINS)]
            .iter()
            .map(|dir| format!("{:?}", dir.display().to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [{plugin_dirs}]\n\n\
             [containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n\
             lock_type = \"file\"\ntmp_dir = {:?}\n",
            self.tmp_dir().display().to_string()
        )
    }

    fn cni_dir(&self) -> PathBuf {
        self.dir.path().join("cni")
    }

    /// Directory holding `cloison` (a link to cloison-cni), searched before the reference plugins.
    fn plugin_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.path().join("tmp")
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
            .arg(format!("--net={}", self.host_netns.display()))
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
            "podman {args:?} in {} failed ({}): {}",
            self.host_netns.display(),
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

    /// Starts a detached container on the cloison network and returns what
    /// `podman inspect` reports of it.
    fn start_container(&mut self, name: &str) -> Container {
        self.run_ok(&[
            "run", "-d", "--name", name, "--network", PODMAN_NETWORK, "--cap-add", "NET_RAW", IMAGE, "sleep", "600",
        ]);
        let inspect: Value = serde_json::from_str(&self.run_ok(&["inspect", name])).expect("podman inspect printed JSON");
        let settings = &inspect[0]["NetworkSettings"];
        let sandbox = settings["SandboxKey"].as_str().unwrap_or_default().to_string();
        if !sandbox.is_empty() {
            self.sandboxes.push(PathBuf::from(&sandbox));
        }
        let address = settings["Networks"][PODMAN_NETWORK]["IPAddress"]
            .as_str()
            .unwrap_or_else(|| panic!("no address of {name} on {PODMAN_NETWORK} in podman inspect: {inspect}"));
        let address = address
            .parse()
            .unwrap_or_else(|e| panic!("invalid address {address:?} of {name} in podman inspect: {e}"));
        let id = inspect[0]["Id"].as_str().unwrap_or_default().to_string();
        assert!(!id.is_empty(), "no id of {name} in podman inspect: {inspect}");
        Container { name: name.to_string(), id, address, sandbox }
    }

    /// Pings `target` three times from `from`. Returns ping's output as the error
    /// when a reply is missing.
    fn ping(&self, from: &str, target: Ipv4Addr) -> Result<(), String> {
        let target = target.to_string();
        let ping = self.run(&["exec", from, "ping", "-c", "3", "-W", "2", &target]);
        if ping.status.success() {
            return Ok(());
        }
        Err(format!("{}{}", String::from_utf8_lossy(&ping.stdout), String::from_utf8_lossy(&ping.stderr)))
    }

    /// Waits until `from` gets one reply from `target`, for at most [`OVERLAY_READY`].
    fn wait_reachable(&self, from: &str, target: Ipv4Addr) {
        let deadline = Instant::now() + OVERLAY_READY;
        let target_text = target.to_string();
        loop {
            let ping = self.run(&["exec", from, "ping", "-c", "1", "-W", "1", &target_text]);
            if ping.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{from} gets no reply from {target} within {OVERLAY_READY:?}: {}",
                String::from_utf8_lossy(&ping.stdout)
            );
        }
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

    /// Kills the processes whose command line names the private directory:
    /// conmon and the container processes of a Podman that failed to stop them.
    fn kill_leftovers(&self) {
        // The separator keeps a sibling directory with a longer name from matching.
        let needle = format!("{}/", self.dir.path().display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        let pids = entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()));
        for pid in pids {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&needle) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }

    /// Deletes the container namespaces Podman did not delete itself.
    fn remove_sandboxes(&self) {
        for sandbox in self.sandboxes.iter().filter(|path| path.exists()) {
            let _ = run("umount", &["-l", &sandbox.display().to_string()]);
            let _ = std::fs::remove_file(sandbox);
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
        self.kill_leftovers();
        self.remove_sandboxes();
        self.unmount_all();
    }
}

/// Panics unless Podman, runc, busybox and the reference plugins Podman needs are installed.
fn require_podman() {
    require_reference_plugins(&["loopback"]);
    common::require_root_and_tools(&["podman", "runc", "tar", "timeout"]);
    assert!(Path::new(BUSYBOX).is_file(), "{BUSYBOX} is missing; install busybox-static");
}

/// Builds a lab of `hosts` hosts, removing a leftover of an aborted run first.
fn lab(hosts: usize) -> Lab {
    if let Err(e) = check_prerequisites(REQUIRED_TOOLS) {
        panic!("cannot build a lab: {e}");
    }
    let name = LAB.parse().expect("valid lab name");
    let _ = cloison_lab::down(&name);
    let spec = LabSpec::new(LAB, hosts).expect("valid lab spec");
    Lab::up(spec).unwrap_or_else(|e| panic!("lab {LAB} did not come up: {e}"))
}

/// Returns the controller's record of the endpoint cloison-cni made for `container`.
fn endpoint_of<'a>(endpoints: &'a [Endpoint], container: &Container) -> &'a Endpoint {
    let matching: Vec<&Endpoint> = endpoints
        .iter()
        .filter(|e| e.labels.get(cloison_cni::LABEL_CONTAINER_ID) == Some(&container.id))
        .collect();
    assert_eq!(matching.len(), 1, "endpoints of container {} ({}): {matching:?}", container.name, container.id);
    matching[0]
}

/// Returns the packets the VXLAN device `device` on `host` has sent.
fn vxlan_tx_packets(lab: &Lab, host: &str, device: &str) -> u64 {
    let output = lab
        .exec(host, &["ip", "-j", "-s", "link", "show", "dev", device])
        .unwrap_or_else(|e| panic!("no VXLAN device {device} on {host}: {e}"));
    let links: Value = serde_json::from_slice(&output.stdout).expect("ip -j printed JSON");
    links[0]["stats64"]["tx"]["packets"]
        .as_u64()
        .unwrap_or_else(|| panic!("no tx packet count of {device} on {host}: {links}"))
}

#[test]
fn podman_containers_ping_over_cloison() {
    require_podman();

    // Declared before Podman so that it drops after it: Podman's CNI DEL needs the agent.
    let deployment = Deployment::start("podman");
    deployment.create_network(TENANT, NETWORK, SUBNET);
    let mut podman = Podman::new("up", Path::new(&deployment.host.path()), &deployment.socket());
    podman.import_busybox();

    let first = podman.start_container("c1");
    let second = podman.start_container("c2");
    assert_ne!(first.address, second.address, "both containers got the same address");
    assert_eq!(deployment.endpoints(TENANT, NETWORK).len(), 2, "cloison does not list both containers as endpoints");

    for (from, to) in [(&first, &second), (&second, &first)] {
        if let Err(output) = podman.ping(&from.name, to.address) {
            panic!("{} cannot ping {}: {output}", from.name, to.address);
        }
    }

    podman.run_ok(&["rm", "--force", "--time", "0", "c1", "c2"]);
    assert!(deployment.endpoints(TENANT, NETWORK).is_empty(), "endpoints left after podman rm");
}

#[test]
fn podman_two_hosts_ping_over_overlay() {
    require_podman();

    // Declared before the Podmans so that it drops after them, because their CNI DEL needs the agents.
    let lab = lab(2);
    lab.create_network(TENANT, NETWORK, SUBNET, &[]).unwrap_or_else(|e| panic!("network create: {e}"));
    let mut podmans: Vec<Podman> = ["h1", "h2"]
        .iter()
        .map(|host| {
            let netns = lab.netns_path(host).unwrap_or_else(|e| panic!("{e}"));
            Podman::new(host, &netns, &lab.agent_socket(host))
        })
        .collect();
    for podman in &podmans {
        podman.import_busybox();
    }
    let first = podmans[0].start_container("c1");
    let second = podmans[1].start_container("c2");

    // The addresses Podman reports are those cloison's IPAM gave each endpoint,
    // on the host whose agent made it.
    let endpoints: Vec<Endpoint> = lab
        .cli_json("ctl", &["endpoint", "ls", "--tenant", TENANT, "--network", NETWORK])
        .unwrap_or_else(|e| panic!("endpoint ls: {e}"));
    assert_eq!(endpoints.len(), 2, "endpoints of {TENANT}/{NETWORK}: {endpoints:?}");
    for (container, host) in [(&first, "h1"), (&second, "h2")] {
        let endpoint = endpoint_of(&endpoints, container);
        assert_eq!(endpoint.ipv4, container.address, "address of {} in cloison and in Podman", container.name);
        assert_eq!(endpoint.host, host, "host of the endpoint of {}", container.name);
        assert_eq!(endpoint.sandbox, container.sandbox, "namespace of the endpoint of {}", container.name);
        assert!(
            SUBNET.parse::<ipnet::Ipv4Net>().expect("valid subnet").contains(&container.address),
            "address {} of {} is outside {SUBNET}",
            container.address,
            container.name
        );
    }
    assert_ne!(first.address, second.address, "both containers got the same address");

    // The two hosts share only the underlay, so replies prove the overlay carried the
    // packets. The VXLAN counters show that each host's device sent its share.
    let network: Network = lab
        .cli_json("ctl", &["network", "inspect", NETWORK, "--tenant", TENANT])
        .unwrap_or_else(|e| panic!("network inspect: {e}"));
    let device = format!("clx{:06x}", network.vni);
    podmans[0].wait_reachable(&first.name, second.address);
    podmans[1].wait_reachable(&second.name, first.address);
    let sent_before = ["h1", "h2"].map(|host| vxlan_tx_packets(&lab, host, &device));

    if let Err(output) = podmans[0].ping(&first.name, second.address) {
        panic!("{} on h1 cannot ping {} on h2: {output}", first.name, second.address);
    }
    if let Err(output) = podmans[1].ping(&second.name, first.address) {
        panic!("{} on h2 cannot ping {} on h1: {output}", second.name, first.address);
    }
    let sent_after = ["h1", "h2"].map(|host| vxlan_tx_packets(&lab, host, &device));
    for (index, host) in ["h1", "h2"].iter().enumerate() {
        // Each host's device sends its container's three echo requests and three replies.
        assert!(
            sent_after[index].saturating_sub(sent_before[index]) >= 6,
            "{device} on {host} sent {} packets during the pings, expected at least 6",
            sent_after[index].saturating_sub(sent_before[index])
        );
    }

    podmans[0].run_ok(&["rm", "--force", "--time", "0", "c1"]);
    podmans[1].run_ok(&["rm", "--force", "--time", "0", "c2"]);
    let left: Vec<Endpoint> = lab
        .cli_json("ctl", &["endpoint", "ls", "--tenant", TENANT, "--network", NETWORK])
        .unwrap_or_else(|e| panic!("endpoint ls: {e}"));
    assert!(left.is_empty(), "endpoints left after podman rm: {left:?}");
}
