//! Removing a lab by name, from whatever state it is in: fully built, half built
//! after a crash, or already gone.

use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags};
use nix::sys::signal::Signal;

use crate::names::LabName;
use crate::process::{is_lab_process, stop};
use crate::state::LabState;
use crate::{netns, LabError};

/// Stops the lab's processes, unmounts what its agents pinned under its state
/// directory, deletes its namespaces and its state directory. Each step runs even
/// when an earlier one failed; the error lists every failure.
pub(crate) fn remove(lab: &LabName) -> Result<(), LabError> {
    let mut errors = Vec::new();
    let state_dir = lab.state_dir();
    stop_recorded(lab, &state_dir, &mut errors);

    let namespaces = netns::list_with_prefix(&lab.netns_prefix()).unwrap_or_else(|e| {
        errors.push(e.to_string());
        Vec::new()
    });
    let paths: Vec<PathBuf> = namespaces.iter().map(|name| netns::path(name)).collect();
    stop_stragglers(&paths, &mut errors);
    unmount_under(&state_dir, &mut errors);
    for name in &namespaces {
        if let Err(e) = netns::delete(name) {
            errors.push(e.to_string());
        }
    }
    if let Err(e) = remove_dir(&state_dir) {
        errors.push(e.to_string());
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(LabError::Teardown { name: lab.to_string(), errors })
    }
}

/// Stops every recorded process that is still the lab's own.
fn stop_recorded(lab: &LabName, state_dir: &Path, errors: &mut Vec<String>) {
    let state = match LabState::load(lab) {
        Ok(state) => state,
        Err(e) => {
            errors.push(e.to_string());
            None
        }
    };
    for record in state.iter().flat_map(|s| s.processes.iter()) {
        if is_lab_process(record, state_dir) {
            if let Err(e) = stop(record.pid, Signal::SIGTERM) {
                errors.push(e.to_string());
            }
        }
    }
}

/// Kills whatever still runs inside the lab's namespaces (probes, iperf3, processes
/// whose start was never recorded). Only processes in those namespaces are touched.
fn stop_stragglers(namespaces: &[PathBuf], errors: &mut Vec<String>) {
    let own = i32::try_from(std::process::id()).unwrap_or(0);
    for pid in netns::processes_in(namespaces).into_iter().filter(|&pid| pid != own) {
        if let Err(e) = stop(pid, Signal::SIGKILL) {
            errors.push(e.to_string());
        }
    }
}

/// Detaches every mount below `dir`, deepest first: the agents pin their router
/// namespaces with bind mounts in their run directories.
fn unmount_under(dir: &Path, errors: &mut Vec<String>) {
    let mountinfo = match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => text,
        Err(e) => {
            errors.push(format!("cannot read /proc/self/mountinfo: {e}"));
            return;
        }
    };
    let mut mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|mount| mount.starts_with(dir))
        .collect();
    mounts.sort_by_key(|mount| std::cmp::Reverse(mount.components().count()));
    for mount in mounts {
        match umount2(&mount, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => errors.push(format!("cannot unmount {}: {e}", mount.display())),
        }
    }
}

fn remove_dir(dir: &Path) -> Result<(), LabError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::io(format!("cannot remove {}", dir.display()), e)),
    }
}
