//! Running programs inside the lab: shell commands, the cloison CLI, containers.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output};

use cloison_model::Endpoint;

use crate::command::{in_netns, run};
use crate::daemons::parse_json;
use crate::names::Node;
use crate::{netns, Lab, LabError};

impl Lab {
    /// Builds a command running `program` in the namespace of node `label`, with
    /// `CLOISON_CONTROLLER` set to the lab's controller and, on a host,
    /// `CLOISON_AGENT_SOCKET` set to that host's agent.
    pub fn command(&self, label: &str, program: impl AsRef<OsStr>) -> Result<Command, LabError> {
        let node = self.node(label)?;
        let mut command = in_netns(&netns::path(&self.name.netns(node)), program);
        command.env("CLOISON_CONTROLLER", self.controller_urls());
        // `cloison` resolves to the binary running the lab even when it is not on PATH
        // (a plain `cargo build`).
        if let Some(dir) = self.binary.parent() {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut dirs = vec![dir.to_path_buf()];
            dirs.extend(std::env::split_paths(&path));
            if let Ok(joined) = std::env::join_paths(dirs) {
                command.env("PATH", joined);
            }
        }
        match node {
            Node::Host(_) => command.env("CLOISON_AGENT_SOCKET", self.agent_socket(label)),
            _ => command.env_remove("CLOISON_AGENT_SOCKET"),
        };
        Ok(command)
    }

    /// Runs `args` (program first) in node `label`; fails when it exits with an error.
    pub fn exec(&self, label: &str, args: &[&str]) -> Result<Output, LabError> {
        let (program, rest) = args.split_first().ok_or_else(|| LabError::Output {
            command: format!("lab exec {label}"),
            reason: "no program given".to_string(),
        })?;
        run(self.command(label, program)?.args(rest))
    }

    /// Runs the cloison CLI with `args` in node `label` and returns its stdout.
    pub fn cli(&self, label: &str, args: &[&str]) -> Result<String, LabError> {
        let output = run(self.command(label, &self.binary)?.args(args))?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs the cloison CLI with `--output json` and parses what it prints.
    pub fn cli_json<T: serde::de::DeserializeOwned>(&self, label: &str, args: &[&str]) -> Result<T, LabError> {
        let mut full = vec!["--output", "json"];
        full.extend_from_slice(args);
        parse_json(&self.cli(label, &full)?, &format!("cloison {}", args.join(" ")))
    }

    /// Creates `tenant`'s network `network` with `subnet`, plus `extra` options of
    /// `cloison network create`.
    pub fn create_network(&self, tenant: &str, network: &str, subnet: &str, extra: &[&str]) -> Result<(), LabError> {
        let mut args = vec!["network", "create", network, "--tenant", tenant, "--subnet", subnet];
        args.extend_from_slice(extra);
        self.cli("ctl", &args).map(drop)
    }

    /// Creates a network namespace standing for container `name` on `host`, named
    /// with the lab's prefix so `lab down` removes it, and returns its path.
    pub fn add_container(&self, host: &str, name: &str) -> Result<PathBuf, LabError> {
        let Node::Host(number) = self.node(host)? else {
            return Err(LabError::UnknownNode { lab: self.name.to_string(), node: host.to_string(), hosts: self.hosts });
        };
        netns::create(&self.name.container_netns(number, name)?)
    }

    /// Deletes the namespace of container `name` on `host`.
    pub fn remove_container(&self, host: &str, name: &str) -> Result<(), LabError> {
        let Node::Host(number) = self.node(host)? else {
            return Err(LabError::UnknownNode { lab: self.name.to_string(), node: host.to_string(), hosts: self.hosts });
        };
        netns::delete(&self.name.container_netns(number, name)?)
    }

    /// Attaches the container namespace at `container` to `tenant`'s `network` with
    /// `cloison attach` run on `host`, through that host's agent, and returns the
    /// endpoint. `extra` contains further options such as `--ip` or `--name`.
    pub fn attach(&self, host: &str, network: &str, container: &std::path::Path, tenant: &str, extra: &[&str]) -> Result<Endpoint, LabError> {
        let target = container.display().to_string();
        let mut args = vec!["attach", network, target.as_str(), "--tenant", tenant];
        args.extend_from_slice(extra);
        self.cli_json(host, &args)
    }

    /// Detaches `tenant`'s endpoint `endpoint` with `cloison detach` run on `host`.
    pub fn detach(&self, host: &str, endpoint: &str, tenant: &str) -> Result<(), LabError> {
        self.cli(host, &["detach", endpoint, "--tenant", tenant]).map(drop)
    }

    /// Runs `args` (program first) inside the container namespace at `container`.
    pub fn exec_in_container(&self, container: &std::path::Path, args: &[&str]) -> Result<Output, LabError> {
        let (program, rest) = args.split_first().ok_or_else(|| LabError::Output {
            command: format!("exec in {}", container.display()),
            reason: "no program given".to_string(),
        })?;
        run(in_netns(container, program).args(rest))
    }
}
