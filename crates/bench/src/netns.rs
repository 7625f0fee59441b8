//! Throw-away network namespaces and the commands run inside them. Every benchmark
//! peer runs in namespaces made here, never in the machine's own.

use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::BenchError;

/// A namespace made with `ip netns add`, deleted with `ip netns del` on drop.
#[derive(Debug)]
pub(crate) struct Netns {
    pub(crate) name: String,
}

impl Netns {
    /// Creates the namespace and sets its loopback up.
    pub(crate) fn create(name: String) -> Result<Netns, BenchError> {
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let netns = Netns { name };
        run(Command::new("ip").args(["-n", &netns.name, "link", "set", "lo", "up"]))?;
        Ok(netns)
    }

    pub(crate) fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Returns a command that runs `program` inside this namespace.
    pub(crate) fn command(&self, program: &str) -> Command {
        let mut command = Command::new("nsenter");
        command.arg(format!("--net={}", self.path().display())).arg("--").arg(program);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).stderr(Stdio::null()).status();
    }
}

/// Runs `command` to completion and fails unless it exits with 0.
pub(crate) fn run(command: &mut Command) -> Result<Output, BenchError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BenchError::Spawn { program: describe(command), source })?;
    if !output.status.success() {
        return Err(BenchError::Command {
            command: describe(command),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(output)
}

/// Runs `command` with `input` on its stdin and fails unless it exits with 0.
pub(crate) fn run_with_input(command: &mut Command, input: &[u8]) -> Result<Output, BenchError> {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BenchError::Spawn { program: describe(command), source })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(|e| BenchError::io(format!("cannot write to {}", describe(command)), e))?;
    }
    let output = child.wait_with_output().map_err(|e| BenchError::io(format!("cannot wait for {}", describe(command)), e))?;
    if !output.status.success() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(BenchError::Command { command: describe(command), stderr: format!("{} {}", stderr.trim(), stdout.trim()) });
    }
    Ok(output)
}

/// Returns the command line of `command`, for messages.
pub(crate) fn describe(command: &Command) -> String {
    let mut parts = vec![command.get_program().to_string_lossy().into_owned()];
    parts.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Makes `command` join the network namespace at `netns` between fork and exec.
pub(crate) fn enter_on_exec(command: &mut Command, netns: &Path) -> Result<(), BenchError> {
    let file = std::fs::File::open(netns).map_err(|e| BenchError::io(format!("cannot open {}", netns.display()), e))?;
    // SAFETY: between fork and exec the closure only calls setns(2), which is
    // async-signal-safe, on a descriptor opened before the fork.
    unsafe {
        command.pre_exec(move || {
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
        });
    }
    Ok(())
}

