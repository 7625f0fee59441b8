//! `cloison lab ls`: the labs on this machine, including half-removed ones.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::names::STATE_ROOT;
use crate::process::is_running;
use crate::state::LabState;
use crate::{netns, LabError, LabName};

/// One lab found on this machine.
#[derive(Debug, Clone, Serialize)]
pub struct LabSummary {
    pub name: String,
    /// Host count from the state file; `None` when the state file is missing.
    pub hosts: Option<usize>,
    /// Recorded processes still running.
    pub running: usize,
    pub recorded: usize,
    pub namespaces: usize,
}

/// Lists every lab that has a state directory or namespaces named like a lab's.
pub fn list() -> Result<Vec<LabSummary>, LabError> {
    let mut names = BTreeSet::new();
    if let Ok(entries) = std::fs::read_dir(STATE_ROOT) {
        names.extend(entries.filter_map(Result::ok).filter_map(|e| e.file_name().into_string().ok()));
    }
    for namespace in netns::list_with_prefix("cl-")? {
        if let Some((lab, _)) = namespace["cl-".len()..].split_once('.') {
            names.insert(lab.to_string());
        }
    }
    names.iter().filter_map(|name| name.parse::<LabName>().ok()).map(|lab| summarize(&lab)).collect()
}

fn summarize(lab: &LabName) -> Result<LabSummary, LabError> {
    let state = LabState::load(lab).ok().flatten();
    let namespaces = netns::list_with_prefix(&lab.netns_prefix())?.len();
    Ok(LabSummary {
        name: lab.to_string(),
        hosts: state.as_ref().map(|s| s.hosts),
        running: state.as_ref().map_or(0, |s| s.processes.iter().filter(|p| is_running(p)).count()),
        recorded: state.as_ref().map_or(0, |s| s.processes.len()),
        namespaces,
    })
}
