//! `cloison up` in a throw-away host namespace, as the attach scenario's subject.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::{run, Netns};
use crate::BenchError;

/// The controller address inside the host namespace, whose loopback is its own.
const LISTEN: &str = "127.0.0.1:7420";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `cloison up`, killed on drop with the router namespaces it pinned.
#[derive(Debug)]
pub(crate) struct CloisonUp {
    child: Child,
    binary: PathBuf,
    /// Store, socket, run directory and log; removed on drop.
    dir: PathBuf,
    host: Netns,
}

impl CloisonUp {
    /// Starts `cloison up` inside `host`, keeping its files under `dir`, and waits
    /// until its controller responds.
    pub(crate) fn start(binary: &Path, host: Netns, dir: PathBuf) -> Result<CloisonUp, BenchError> {
        std::fs::create_dir_all(&dir).map_err(|e| BenchError::io(format!("cannot create {}", dir.display()), e))?;
        let log = std::fs::File::create(dir.join("up.log")).map_err(|e| BenchError::io("cannot create the daemon log", e))?;
        let log_err = log.try_clone().map_err(|e| BenchError::io("cannot duplicate the daemon log", e))?;
        let mut command = host.command(&binary.display().to_string());
        command
            .args(["up", "--host", "bench", "--listen", LISTEN])
            // The Docker driver serves a socket in this directory, away from dockerd's.
            .arg("--docker-socket")
            .arg(dir.join("docker.sock"))
            .arg("--docker-records")
            .arg(dir.join("docker-driver.json"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--socket")
            .arg(dir.join("agent.sock"))
            .arg("--run-dir")
            .arg(dir.join("run"))
            .env("CLOISON_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = command.spawn().map_err(|source| BenchError::Spawn { program: binary.display().to_string(), source })?;
        let mut daemon = CloisonUp { child, binary: binary.to_path_buf(), dir, host };
        daemon.wait_ready()?;
        Ok(daemon)
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.join("agent.sock")
    }

    pub(crate) fn host(&self) -> &Netns {
        &self.host
    }

    /// Runs the cloison CLI inside the host namespace against this daemon.
    pub(crate) fn cli(&self, args: &[&str]) -> Result<(), BenchError> {
        let mut command = self.host.command(&self.binary.display().to_string());
        command
            .args(args)
            .env("CLOISON_CONTROLLER", format!("http://{LISTEN}"))
            .env("CLOISON_AGENT_SOCKET", self.socket());
        run(&mut command).map(drop)
    }

    fn wait_ready(&mut self) -> Result<(), BenchError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while self.cli(&["status"]).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BenchError::Command { command: format!("cloison up ({status})"), stderr: self.log_tail() });
            }
            if Instant::now() > deadline {
                return Err(BenchError::Timeout { what: "cloison up to respond".into(), seconds: READY_TIMEOUT.as_secs() });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("up.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(10).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for CloisonUp {
    /// Kills the daemon, then unmounts the router namespaces it pinned under its run
    /// directory so the directory can be removed.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pins = self.dir.join("run").join("netns");
        for entry in std::fs::read_dir(pins).into_iter().flatten().flatten() {
            let _ = Command::new("umount").arg("-l").arg(entry.path()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
