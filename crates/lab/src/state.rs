//! The state file of a lab, `/run/cloison-lab/<name>/state.json`.
//!
//! It is written before and after every process start, so `lab down` can find what
//! a crashed `lab up` left behind.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{LabError, LabName};

/// The parts of a lab that removing it needs to find.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub name: String,
    pub hosts: usize,
    pub underlay_mtu: u32,
    /// Path of the cloison binary the lab's processes run.
    pub binary: PathBuf,
    /// Members of the lab's etcd cluster; 0 when the controller uses the embedded
    /// store. Absent in state files written before labs could run etcd.
    #[serde(default)]
    pub etcd_members: usize,
    /// Number of controllers, at least 1.
    #[serde(default = "one")]
    pub controllers: usize,
    pub processes: Vec<ProcessRecord>,
}

/// One process the lab started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// `controller`, `controller-<i>`, `etcd-<i>` or the host label (`h1` …).
    pub role: String,
    pub pid: i32,
    /// Start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`), so a
    /// recycled pid is never taken for the lab's process.
    pub start_ticks: u64,
}

fn one() -> usize {
    1
}

/// Path of the state file of `lab`.
pub(crate) fn state_file(lab: &LabName) -> PathBuf {
    lab.state_dir().join("state.json")
}

impl LabState {
    /// Reads the state of `lab`; `Ok(None)` when there is none.
    pub fn load(lab: &LabName) -> Result<Option<LabState>, LabError> {
        let path = state_file(lab);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LabError::io(format!("cannot read {}", path.display()), e)),
        };
        serde_json::from_str(&text).map(Some).map_err(|source| LabError::State { path, source })
    }

    /// Writes the state atomically (a temporary file renamed over the old one).
    pub fn save(&self, lab: &LabName) -> Result<(), LabError> {
        let path = state_file(lab);
        let temporary = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self)
            .map_err(|source| LabError::State { path: path.clone(), source })?;
        write(&temporary, &text)?;
        std::fs::rename(&temporary, &path)
            .map_err(|e| LabError::io(format!("cannot rename {} to {}", temporary.display(), path.display()), e))
    }

    /// Replaces the record of `role`, or adds it.
    pub fn record(&mut self, process: ProcessRecord) {
        self.processes.retain(|p| p.role != process.role);
        self.processes.push(process);
    }

    pub fn process(&self, role: &str) -> Option<&ProcessRecord> {
        self.processes.iter().find(|p| p.role == role)
    }
}

fn write(path: &Path, text: &str) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(|e| LabError::io(format!("cannot write {}", path.display()), e))
}
