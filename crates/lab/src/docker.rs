//! Docker engines on lab hosts: one dockerd per host, in the host's network
//! namespace and in a private mount namespace where the host's own plugin
//! directory is bind-mounted at `/run/docker/plugins`. dockerd 20.10 looks for
//! plugin sockets only there, so this gives each daemon its own cloison agent.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::process::{log_tail, stop};
use crate::{netns, Lab, LabError};

/// Directory in which dockerd 20.10 discovers plugin sockets. No option changes it.
pub const DOCKER_PLUGIN_DIR: &str = "/run/docker/plugins";
/// Tag of the image [`Dockerd::import_busybox`] builds.
pub const BUSYBOX_IMAGE: &str = "cloison-busybox:lab";
/// Time dockerd gets to serve its API after it starts.
const DOCKERD_READY: Duration = Duration::from_secs(40);
/// Time dockerd gets to stop its containers before it is killed.
const DOCKERD_STOP: Duration = Duration::from_secs(30);

/// A dockerd started by [`Lab::start_dockerd`]. Dropping it stops the daemon,
/// which stops its containers, and removes its directories.
#[derive(Debug)]
pub struct Dockerd {
    pub host: String,
    /// Directory of the daemon's data root, exec root, pid file, socket and log.
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Lab {
    /// Directory of `host`'s Docker plugin socket, served by its agent.
    pub fn docker_plugin_dir(&self, host: &str) -> PathBuf {
        self.name.state_dir().join(host).join("plugins")
    }

    /// Starts a dockerd on `host` with Docker's bridge and iptables rules off, and
    /// waits until its API responds.
    pub fn start_dockerd(&self, host: &str) -> Result<Dockerd, LabError> {
        self.node(host)?;
        let dir = self.name.state_dir().join(host).join("docker");
        let mut dockerd = Dockerd { host: host.to_string(), dir, child: None };
        dockerd.spawn(&netns::path(&self.name.netns(self.node(host)?)), &self.docker_plugin_dir(host))?;
        dockerd.wait_ready()?;
        Ok(dockerd)
    }
}

impl Dockerd {
    /// Path of the daemon's API socket, for `docker -H unix://PATH`.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("dockerd.log")
    }

    /// Starts dockerd again on the same directories, as after a crash or upgrade.
    pub fn restart(&mut self, lab: &Lab) -> Result<(), LabError> {
        self.stop()?;
        let netns = netns::path(&lab.name.netns(lab.node(&self.host)?));
        self.spawn(&netns, &lab.docker_plugin_dir(&self.host))?;
        self.wait_ready()
    }

    /// Returns a `docker` command bound to this daemon.
    pub fn docker(&self) -> Command {
        let mut command = Command::new(docker_client());
        command.env("DOCKER_HOST", format!("unix://{}", self.socket().display()));
        command.stdin(Stdio::null());
        command
    }

    /// Runs `docker ARGS` and returns its output, successful or not.
    pub fn run(&self, args: &[&str]) -> Result<Output, LabError> {
        self.docker()
            .args(args)
            .output()
            .map_err(|source| LabError::Spawn { program: "docker".into(), source })
    }

    /// Runs `docker ARGS` and returns its standard output, or fails with its
    /// standard error.
    pub fn run_ok(&self, args: &[&str]) -> Result<String, LabError> {
        let output = self.run(args)?;
        if !output.status.success() {
            return Err(LabError::CommandFailed {
                command: format!("docker {}", args.join(" ")),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// Builds [`BUSYBOX_IMAGE`] from the host's static busybox with `docker
    /// import`, so nothing is pulled from a registry.
    pub fn import_busybox(&self) -> Result<(), LabError> {
        let root = self.dir.join("image");
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).map_err(|e| LabError::io(format!("cannot create {}", bin.display()), e))?;
        let busybox = Path::new("/bin/busybox");
        std::fs::copy(busybox, bin.join("busybox"))
            .map_err(|e| LabError::io("cannot copy /bin/busybox; install the Debian package busybox-static", e))?;
        for applet in ["sh", "ping", "ip", "nc", "sleep", "cat", "hostname", "nslookup", "wget", "ls", "true"] {
            let link = bin.join(applet);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", &link)
                    .map_err(|e| LabError::io(format!("cannot create {}", link.display()), e))?;
            }
        }
        let script = format!(
            "tar -C {} -c . | {} import -c 'ENV PATH=/bin' -c 'CMD [\"/bin/sh\"]' - {BUSYBOX_IMAGE}",
            root.display(),
            docker_client()
        );
        let output = Command::new("sh")
            .args(["-c", &script])
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .output()
            .map_err(|source| LabError::Spawn { program: "sh".into(), source })?;
        if !output.status.success() {
            return Err(LabError::CommandFailed {
                command: script,
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(())
    }

    /// Stops dockerd with SIGTERM, which stops its containers (10 s each at most
    /// for a process that ignores SIGTERM), then kills whatever it left behind.
    pub fn stop(&mut self) -> Result<(), LabError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + DOCKERD_STOP;
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            sleep(Duration::from_millis(50));
        }
        let _ = kill(pid, Signal::SIGKILL);
        let _ = child.wait();
        // A containerd or shim that outlived dockerd would keep the metadata
        // database locked, and a restarted dockerd's containerd would time out.
        for leftover in processes_mentioning(&self.dir) {
            stop(leftover, Signal::SIGKILL)?;
        }
        Ok(())
    }

    /// Starts dockerd: `nsenter` into the host's network namespace (unlike `ip
    /// netns exec`, it keeps the machine's /sys with its cgroup mounts), then
    /// `unshare --mount` so the bind mount of the plugin directory stays private.
    fn spawn(&mut self, netns: &Path, plugin_dir: &Path) -> Result<(), LabError> {
        std::fs::create_dir_all(plugin_dir)
            .and_then(|()| std::fs::create_dir_all(DOCKER_PLUGIN_DIR))
            .map_err(|e| LabError::io("cannot create the Docker plugin directories", e))?;
        let d = self.dir.display();
        let script = format!(
            "mount --make-rprivate / && mount --bind {plugins} {DOCKER_PLUGIN_DIR} && exec dockerd \
             --data-root {d}/data --exec-root {d}/exec --pidfile {d}/dockerd.pid -H unix://{d}/docker.sock \
             --bridge=none --iptables=false --ip6tables=false",
            plugins = plugin_dir.display()
        );
        std::fs::create_dir_all(&self.dir).map_err(|e| LabError::io(format!("cannot create {d}"), e))?;
        let log = std::fs::File::create(self.log()).map_err(|e| LabError::io("cannot create the dockerd log", e))?;
        let err_log = log.try_clone().map_err(|e| LabError::io("cannot duplicate the dockerd log", e))?;
        let child = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(["--", "unshare", "--mount", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|source| LabError::Spawn { program: "dockerd".into(), source })?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<(), LabError> {
        let deadline = Instant::now() + DOCKERD_READY;
        loop {
            if self.run(&["version"]).is_ok_and(|o| o.status.success()) {
                return Ok(());
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() {
                return Err(LabError::ProcessExited {
                    process: format!("dockerd on {}", self.host),
                    log: self.log(),
                    tail: log_tail(&self.log(), 15),
                });
            }
            if Instant::now() > deadline {
                return Err(LabError::Timeout { what: format!("dockerd on {}", self.host), seconds: DOCKERD_READY.as_secs() });
            }
            sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // A daemon that cannot be stopped here is killed by the lab's teardown,
        // which stops every process left in the lab's namespaces.
        let _ = self.stop();
        // The overlay mounts lived in dockerd's private mount namespace, gone with it.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Returns the processes whose command line contains `dir`: the containerd and
/// shims of one dockerd, whose paths all lie under its directory.
fn processes_mentioning(dir: &Path) -> Vec<i32> {
    // The separator keeps a sibling such as `docker-driver.json` from matching.
    let needle = format!("{}/", dir.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

/// Returns Debian's docker client, of the same version as its dockerd, when it is
/// installed. A newer client rejects options such as `docker run --mac-address`
/// against the older daemon's API.
fn docker_client() -> &'static str {
    const DEBIAN_CLIENT: &str = "/usr/bin/docker";
    if Path::new(DEBIAN_CLIENT).is_file() {
        DEBIAN_CLIENT
    } else {
        "docker"
    }
}
