//! What `Lab::up` builds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::names::{LabName, MAX_HOSTS};
use crate::LabError;

/// Default MTU of the underlay links, as on an ordinary Ethernet.
pub const DEFAULT_UNDERLAY_MTU: u32 = 1500;

/// A lab to build.
#[derive(Debug, Clone)]
pub struct LabSpec {
    pub name: LabName,
    pub hosts: usize,
    /// MTU of every underlay link and of the underlay bridge.
    pub underlay_mtu: u32,
    /// The cloison binary run as controller, agents and CLI inside the lab.
    pub binary: PathBuf,
    /// How long `Lab::up` waits for the controller and every agent to be ready.
    pub ready_timeout: Duration,
    /// Members of an etcd cluster holding the controllers' state; 0 runs one
    /// controller on the embedded store.
    pub etcd_members: usize,
    /// Number of controllers; more than one needs etcd.
    pub controllers: usize,
}

impl LabSpec {
    /// Describes a lab called `name` with `hosts` hosts and underlay MTU 1500, running
    /// the cloison binary that [`find_cloison_binary`] returns.
    pub fn new(name: &str, hosts: usize) -> Result<LabSpec, LabError> {
        if hosts == 0 || hosts > MAX_HOSTS {
            return Err(LabError::InvalidHostCount { count: hosts, max: MAX_HOSTS });
        }
        Ok(LabSpec {
            name: name.parse()?,
            hosts,
            underlay_mtu: DEFAULT_UNDERLAY_MTU,
            binary: find_cloison_binary()?,
            ready_timeout: Duration::from_secs(30),
            etcd_members: 0,
            controllers: 1,
        })
    }

    /// Runs `controllers` controllers over an etcd cluster of `etcd_members` members,
    /// or one controller on the embedded store when `etcd_members` is 0.
    pub fn with_control_plane(mut self, etcd_members: usize, controllers: usize) -> Result<LabSpec, LabError> {
        crate::control_plane::validate(etcd_members, controllers)?;
        self.etcd_members = etcd_members;
        self.controllers = controllers;
        Ok(self)
    }

    pub fn with_underlay_mtu(mut self, mtu: u32) -> LabSpec {
        self.underlay_mtu = mtu;
        self
    }
}

/// Finds the cloison binary: `$CLOISON_BIN`, else the running program when it is
/// `cloison`, else a `cloison` next to it or one directory up. The last case is a
/// test binary in `target/<profile>/deps/`, whose `cloison` sits in
/// `target/<profile>/`; it must have been built beforehand (`cargo build -p cloison`).
pub fn find_cloison_binary() -> Result<PathBuf, LabError> {
    if let Some(path) = std::env::var_os("CLOISON_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() { Ok(path) } else { Err(LabError::BinaryNotFound { looked: path }) };
    }
    let exe = std::env::current_exe().map_err(|e| LabError::io("cannot find the running program", e))?;
    if exe.file_name().is_some_and(|name| name == "cloison") {
        return Ok(exe);
    }
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let candidates = [dir.join("cloison"), dir.parent().unwrap_or(dir).join("cloison")];
    candidates
        .iter()
        .find(|candidate| candidate.is_file())
        .cloned()
        .ok_or_else(|| LabError::BinaryNotFound { looked: candidates[1].clone() })
}
