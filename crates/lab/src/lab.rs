//! A running lab: building it, opening an existing one, and removing it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Child;

use crate::command::{check_prerequisites, ETCD_TOOLS, REQUIRED_TOOLS};
use crate::names::{LabName, Node};
use crate::state::LabState;
use crate::{netns, teardown, topology, LabError, LabSpec};

/// A lab on this machine. Dropping a lab built by [`Lab::up`] removes it, so a failing
/// test leaves nothing behind. [`Lab::keep_running`] leaves it for `cloison lab down`.
#[derive(Debug)]
pub struct Lab {
    pub(crate) name: LabName,
    pub(crate) hosts: usize,
    pub(crate) binary: PathBuf,
    pub(crate) ready_timeout: std::time::Duration,
    pub(crate) etcd_members: usize,
    pub(crate) controllers: usize,
    /// Daemons this process started, by role, kept to reap them once stopped.
    pub(crate) children: HashMap<String, Child>,
    /// Whether dropping the value removes the lab.
    owned: bool,
}

impl Lab {
    /// Builds the lab: underlay, etcd members when asked, controllers, one agent per
    /// host. Returns once etcd has a leader, every agent is registered with the
    /// controllers and serves its socket; on any failure removes what it made and
    /// returns the error.
    pub fn up(spec: LabSpec) -> Result<Lab, LabError> {
        check_prerequisites(REQUIRED_TOOLS)?;
        if spec.etcd_members > 0 {
            check_prerequisites(ETCD_TOOLS)?;
        }
        let dir = spec.name.state_dir();
        let leftovers = netns::list_with_prefix(&spec.name.netns_prefix())?;
        if dir.exists() || !leftovers.is_empty() {
            return Err(LabError::AlreadyExists { name: spec.name.to_string(), dir });
        }
        let mut lab = Lab {
            name: spec.name.clone(),
            hosts: spec.hosts,
            binary: spec.binary.clone(),
            ready_timeout: spec.ready_timeout,
            etcd_members: spec.etcd_members,
            controllers: spec.controllers,
            children: HashMap::new(),
            owned: true,
        };
        // On error `lab` is dropped here, which removes what was built so far.
        lab.build(&spec)?;
        Ok(lab)
    }

    fn build(&mut self, spec: &LabSpec) -> Result<(), LabError> {
        std::fs::create_dir_all(self.name.state_dir())
            .map_err(|e| LabError::io(format!("cannot create {}", self.name.state_dir().display()), e))?;
        let state = LabState {
            name: self.name.to_string(),
            hosts: self.hosts,
            underlay_mtu: spec.underlay_mtu,
            binary: self.binary.clone(),
            etcd_members: self.etcd_members,
            controllers: self.controllers,
            processes: Vec::new(),
        };
        state.save(&self.name)?;
        topology::build(&self.name, self.hosts, spec.underlay_mtu)?;
        self.start_control_plane()?;
        for host in self.host_labels() {
            self.spawn_agent(&host)?;
        }
        self.wait_ready()
    }

    /// Opens a lab built earlier, for `exec` and friends. Dropping it leaves the lab
    /// running.
    pub fn open(name: &LabName) -> Result<Lab, LabError> {
        let state = LabState::load(name)?
            .ok_or_else(|| LabError::NotFound { name: name.to_string(), dir: name.state_dir() })?;
        Ok(Lab {
            name: name.clone(),
            hosts: state.hosts,
            binary: state.binary,
            ready_timeout: std::time::Duration::from_secs(30),
            etcd_members: state.etcd_members,
            controllers: state.controllers,
            children: HashMap::new(),
            owned: false,
        })
    }

    /// Leaves the lab running after this value is dropped; its daemons live on in
    /// their own sessions.
    pub fn keep_running(mut self) {
        self.owned = false;
        self.children.clear();
    }

    /// Removes the lab now and returns every error met on the way.
    pub fn down(mut self) -> Result<(), LabError> {
        self.owned = false;
        self.remove()
    }

    fn remove(&mut self) -> Result<(), LabError> {
        let result = teardown::remove(&self.name);
        for child in self.children.values_mut() {
            // The children were stopped above; this only reaps them.
            let _ = child.try_wait();
        }
        self.children.clear();
        result
    }

    pub fn name(&self) -> &LabName {
        &self.name
    }

    pub fn hosts(&self) -> usize {
        self.hosts
    }

    /// Labels of the hosts: `h1` to `hN`.
    pub fn host_labels(&self) -> Vec<String> {
        (1..=self.hosts).map(|n| format!("h{n}")).collect()
    }

    /// Parses a node label of this lab (`h<N>`, `ctl`, `outside`, `underlay`).
    pub fn node(&self, label: &str) -> Result<Node, LabError> {
        Node::parse(&self.name, label, self.hosts)
    }

    /// Path of the namespace of the node called `label`.
    pub fn netns_path(&self, label: &str) -> Result<PathBuf, LabError> {
        Ok(netns::path(&self.name.netns(self.node(label)?)))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.owned {
            self.owned = false;
            if let Err(e) = self.remove() {
                // Drop cannot return the error; stderr is the only place left for it.
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("cloison-lab: {e}");
                }
            }
        }
    }
}

/// Removes the lab called `name`, whatever state it is in; succeeds when it is
/// already gone.
pub fn down(name: &LabName) -> Result<(), LabError> {
    check_prerequisites(REQUIRED_TOOLS)?;
    teardown::remove(name)
}
