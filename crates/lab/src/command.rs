//! Running the programs the lab is built with (`ip`, `nsenter`, `ping`, `iperf3`).

use std::path::Path;
use std::process::{Command, Output};

use crate::LabError;

/// Programs the lab needs, with the Debian package providing each.
pub const REQUIRED_TOOLS: &[(&str, &str)] = &[("ip", "iproute2"), ("bridge", "iproute2"), ("nsenter", "util-linux")];

/// Programs a lab with an etcd cluster needs in addition, and `nft` for cutting a
/// host from the control plane.
pub const ETCD_TOOLS: &[(&str, &str)] = &[("etcd", "etcd-server"), ("nft", "nftables")];

/// Programs the demo and the tests need in addition.
pub const TRAFFIC_TOOLS: &[(&str, &str)] = &[("ping", "iputils-ping"), ("iperf3", "iperf3")];

/// Checks that the caller is root and every program of `tools` is in PATH.
pub fn check_prerequisites(tools: &[(&'static str, &'static str)]) -> Result<(), LabError> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(LabError::NotRoot);
    }
    for &(program, package) in tools {
        if find_in_path(program).is_none() {
            return Err(LabError::MissingTool { program, package });
        }
    }
    Ok(())
}

fn find_in_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// Renders a command for messages, as a shell would show it.
pub(crate) fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs `command` to completion and returns its output, or an error carrying its
/// stderr when it exits with a failure status.
pub(crate) fn run(command: &mut Command) -> Result<Output, LabError> {
    let output = run_unchecked(command)?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(LabError::CommandFailed {
            command: describe(command),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Runs `command` to completion whatever its exit status.
pub(crate) fn run_unchecked(command: &mut Command) -> Result<Output, LabError> {
    command.output().map_err(|source| LabError::Spawn { program: describe(command), source })
}

/// Runs `ip` with `args` in the root namespace (`ip netns` and `ip -n NS` only: the
/// lab never changes the machine's own namespace).
pub(crate) fn ip(args: &[&str]) -> Result<Output, LabError> {
    run(Command::new("ip").args(args))
}

/// Builds a command running `program` inside the network namespace at `netns`. It
/// keeps the caller's mount namespace, so bind mounts made inside stay visible to all.
pub(crate) fn in_netns(netns: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("nsenter");
    command.arg(format!("--net={}", netns.display())).arg("--").arg(program);
    command
}
