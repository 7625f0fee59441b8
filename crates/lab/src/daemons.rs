//! The lab's controller and agents: starting, stopping and waiting for them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use cloison_model::Host;
use nix::sys::signal::Signal;

use crate::names::Node;
use crate::process::{is_lab_process, is_running, log_tail, spawn_daemon, stop};
use crate::state::LabState;
use crate::{http, netns, Lab, LabError};

const POLL_INTERVAL: Duration = Duration::from_millis(50);

impl Lab {
    /// Path of the agent socket of `host`.
    pub fn agent_socket(&self, host: &str) -> PathBuf {
        self.name.state_dir().join(host).join("agent.sock")
    }

    /// Path of the log file of `role` (`controller`, `h1` …).
    pub fn log_path(&self, role: &str) -> PathBuf {
        self.name.state_dir().join("logs").join(format!("{role}.log"))
    }

    /// Starts the agent of `host` and waits until its socket responds.
    pub fn start_agent(&mut self, host: &str) -> Result<(), LabError> {
        self.spawn_agent(host)?;
        self.wait_until(&format!("the agent of {host}"), || Ok(self.agent_status(host).is_ok()))
    }

    /// Kills the agent of `host` with SIGKILL, as a crash would; its kernel state stays.
    pub fn kill_agent(&mut self, host: &str) -> Result<(), LabError> {
        self.node(host)?;
        self.stop_role(host, Signal::SIGKILL)
    }

    /// `GET /v1/status` on the agent socket of `host`, as JSON.
    pub fn agent_status(&self, host: &str) -> Result<serde_json::Value, LabError> {
        let body = http::get_unix(&self.agent_socket(host), "/v1/status")?;
        parse_json(&body, "agent status")
    }

    /// GETs `path` from the first controller that answers, from inside the controller
    /// namespace, and returns the last error when none does.
    pub fn controller_get(&self, path: &str) -> Result<String, LabError> {
        let mut result = self.get_from_controller(0, path);
        for index in 1..self.controllers {
            if result.is_ok() {
                break;
            }
            result = self.get_from_controller(index, path);
        }
        result
    }

    pub(crate) fn spawn_agent(&mut self, host: &str) -> Result<(), LabError> {
        let node = self.node(host)?;
        let Node::Host(number) = node else {
            return Err(LabError::UnknownNode { lab: self.name.to_string(), node: host.to_string(), hosts: self.hosts });
        };
        let underlay_ip = node.underlay_ip().map(|ip| ip.to_string()).unwrap_or_default();
        let host_dir = self.name.state_dir().join(host);
        let args = vec![
            "agent".to_string(),
            "--host".to_string(),
            host.to_string(),
            "--underlay-ip".to_string(),
            underlay_ip,
            "--controller".to_string(),
            self.agent_controller_urls(number),
            "--socket".to_string(),
            self.agent_socket(host).display().to_string(),
            "--run-dir".to_string(),
            host_dir.join("run").display().to_string(),
            "--docker-socket".to_string(),
            self.docker_plugin_dir(host).join("cloison.sock").display().to_string(),
            "--docker-records".to_string(),
            host_dir.join("docker-driver.json").display().to_string(),
        ];
        self.spawn(host, node, &args)
    }

    /// Starts the cloison daemon `role` in `node`'s namespace and records it in the
    /// state file.
    pub(crate) fn spawn(&mut self, role: &str, node: Node, args: &[String]) -> Result<(), LabError> {
        let binary = self.binary.clone();
        self.spawn_program(role, node, &binary, args)
    }

    /// Starts `program` as daemon `role` in `node`'s namespace and records it in the
    /// state file.
    pub(crate) fn spawn_program(&mut self, role: &str, node: Node, program: &Path, args: &[String]) -> Result<(), LabError> {
        let log = self.log_path(role);
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(|e| LabError::io(format!("cannot create {}", dir.display()), e))?;
        }
        let netns = netns::path(&self.name.netns(node));
        let (child, record) = spawn_daemon(role, &netns, program, args, &log)?;
        self.children.insert(role.to_string(), child);
        let mut state = self.load_state()?;
        state.record(record);
        state.save(&self.name)
    }

    pub(crate) fn stop_role(&mut self, role: &str, signal: Signal) -> Result<(), LabError> {
        let state = self.load_state()?;
        if let Some(record) = state.process(role) {
            if is_lab_process(record, &self.name.state_dir()) {
                stop(record.pid, signal)?;
            }
        }
        if let Some(mut child) = self.children.remove(role) {
            // Reaps the stopped child; it has exited, so this does not block long.
            let _ = child.wait();
        }
        Ok(())
    }

    fn load_state(&self) -> Result<LabState, LabError> {
        LabState::load(&self.name)?
            .ok_or_else(|| LabError::NotFound { name: self.name.to_string(), dir: self.name.state_dir() })
    }

    /// Waits until every host is registered with the controller and every agent
    /// socket responds.
    pub(crate) fn wait_ready(&self) -> Result<(), LabError> {
        let expected: HashSet<String> = self.host_labels().into_iter().collect();
        self.wait_until("every agent to register with the controller", || {
            let Ok(body) = self.controller_get("/v1/hosts") else {
                return Ok(false);
            };
            let hosts: Vec<Host> = serde_json::from_str(&body).map_err(|e| LabError::Output {
                command: "GET /v1/hosts".to_string(),
                reason: e.to_string(),
            })?;
            let registered: HashSet<String> = hosts.into_iter().map(|h| h.name).collect();
            Ok(expected.is_subset(&registered) && expected.iter().all(|h| self.agent_status(h).is_ok()))
        })
    }

    /// Polls `ready` until it returns true, failing early when a recorded daemon has
    /// exited, and with a timeout after `ready_timeout`.
    pub(crate) fn wait_until(&self, what: &str, mut ready: impl FnMut() -> Result<bool, LabError>) -> Result<(), LabError> {
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            if ready()? {
                return Ok(());
            }
            self.check_daemons()?;
            if Instant::now() > deadline {
                return Err(LabError::Timeout { what: what.to_string(), seconds: self.ready_timeout.as_secs() });
            }
            sleep(POLL_INTERVAL);
        }
    }

    /// Fails when a daemon started by this value is no longer running.
    fn check_daemons(&self) -> Result<(), LabError> {
        let state = self.load_state()?;
        for record in &state.processes {
            if self.children.contains_key(&record.role) && !is_running(record) {
                let log = self.log_path(&record.role);
                return Err(LabError::ProcessExited { process: record.role.clone(), tail: log_tail(&log, 15), log });
            }
        }
        Ok(())
    }
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, LabError> {
    serde_json::from_str(text).map_err(|e| LabError::Output { command: what.to_string(), reason: format!("{e}: {text}") })
}
