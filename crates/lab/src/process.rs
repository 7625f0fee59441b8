//! Starting the lab's daemons and stopping them again, by recorded pid.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::command::{describe, in_netns};
use crate::state::ProcessRecord;
use crate::LabError;

/// How long a process gets to exit after SIGTERM before it is sent SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);

/// Starts `binary args` inside `netns` in its own session, stdout and stderr appended
/// to `log`, and returns the child with its record. `nsenter` execs the binary
/// without forking for a network namespace, so the child's pid is the daemon's.
pub(crate) fn spawn_daemon(role: &str, netns: &Path, binary: &Path, args: &[String], log: &Path) -> Result<(Child, ProcessRecord), LabError> {
    let open_log = || {
        File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| LabError::io(format!("cannot open log {}", log.display()), e))
    };
    let mut command = in_netns(netns, binary);
    command.args(args).stdin(Stdio::null()).stdout(open_log()?).stderr(open_log()?);
    command.env_remove("CLOISON_CONTROLLER").env_remove("CLOISON_AGENT_SOCKET");
    // SAFETY: the closure runs in the forked child before exec and only calls
    // setsid(2), which is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(std::io::Error::from));
    }
    let child = command.spawn().map_err(|source| LabError::Spawn { program: describe(&command), source })?;
    let pid = i32::try_from(child.id()).map_err(|_| LabError::Output {
        command: describe(&command),
        reason: format!("pid {} out of range", child.id()),
    })?;
    let start_ticks = start_ticks(pid).unwrap_or(0);
    Ok((child, ProcessRecord { role: role.to_string(), pid, start_ticks }))
}

/// Start time of `pid` in clock ticks since boot, `None` when it does not exist.
pub(crate) fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in field 2 may contain spaces and parentheses. The fields after
    // the last ')' start with field 3, so the start time (field 22) is the 20th.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Checks that `record` still names a running process (same pid and start time).
pub(crate) fn is_running(record: &ProcessRecord) -> bool {
    record.pid > 1 && start_ticks(record.pid) == Some(record.start_ticks) && !is_zombie(record.pid)
}

/// Checks that `record` still names a running process of the lab whose state is under
/// `state_dir`: same start time, and a command line mentioning that directory or a
/// stdout writing to a log below it. The second test covers a controller on etcd,
/// whose command line names no path of the lab.
pub(crate) fn is_lab_process(record: &ProcessRecord, state_dir: &Path) -> bool {
    if !is_running(record) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", record.pid)) else {
        return false;
    };
    let marker = state_dir.as_os_str().as_encoded_bytes();
    let named = cmdline.windows(marker.len()).any(|window| window == marker);
    named || std::fs::read_link(format!("/proc/{}/fd/1", record.pid)).is_ok_and(|stdout| stdout.starts_with(state_dir))
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rfind(')').map(|i| stat[i + 1..].trim_start().starts_with('Z')))
        .unwrap_or(false)
}

fn is_gone(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid)
}

/// Sends `signal` to `pid` and waits until it has exited; SIGKILL follows after a
/// grace period when `signal` is not already SIGKILL.
pub(crate) fn stop(pid: i32, signal: Signal) -> Result<(), LabError> {
    send(pid, signal)?;
    let deadline = Instant::now() + TERM_GRACE;
    while !is_gone(pid) {
        if Instant::now() > deadline {
            send(pid, Signal::SIGKILL)?;
            wait_gone(pid);
            return Ok(());
        }
        sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn wait_gone(pid: i32) {
    let deadline = Instant::now() + TERM_GRACE;
    while !is_gone(pid) && Instant::now() < deadline {
        sleep(Duration::from_millis(20));
    }
}

fn send(pid: i32, signal: Signal) -> Result<(), LabError> {
    match kill(Pid::from_raw(pid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(LabError::io(format!("cannot send {signal} to pid {pid}"), e.into())),
    }
}

/// Last lines of a log file, for error messages.
pub(crate) fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
