//! A replicated control plane for the lab: etcd members and several controllers.
//!
//! Every etcd member runs in the controller namespace on the controller's underlay
//! address, member `i` with client port 2379 + 2i and peer port 2380 + 2i, and its
//! data in `<state dir>/etcd/etcd-<i>`. Controller `i` listens on port 7420 + i of the
//! same address. One namespace is enough because the lab kills processes, not links,
//! to simulate failures. Hosts reach every controller through the same route, so
//! [`Lab::cut_host`] cuts a host from all of them at once.

use std::net::SocketAddr;

use nix::sys::signal::Signal;

use crate::names::{Node, CONTROLLER_IP, CONTROLLER_PORT};
use crate::{http, netns, Lab, LabError};

/// Client port of etcd member 0; member `i` uses this plus `2 * i`.
const ETCD_CLIENT_PORT: u16 = 2379;

/// Largest etcd cluster the lab builds. Seven members tolerate three failures, and
/// etcd advises against larger clusters.
pub const MAX_ETCD_MEMBERS: usize = 7;

/// Largest number of controllers in one lab.
pub const MAX_CONTROLLERS: usize = 8;

/// Name of the nftables table that [`Lab::cut_host`] adds inside a host namespace.
/// The agent replaces only the tables it owns, so it leaves this one alone.
const CUT_TABLE: &str = "cloison_lab_cut";

/// Checks a control-plane shape: at least one controller, and an etcd cluster
/// whenever several controllers must share one store.
pub(crate) fn validate(etcd_members: usize, controllers: usize) -> Result<(), LabError> {
    let invalid = |reason: &'static str| LabError::InvalidControlPlane { etcd_members, controllers, reason };
    if controllers == 0 || controllers > MAX_CONTROLLERS {
        return Err(invalid("a lab has 1 to 8 controllers"));
    }
    if etcd_members > MAX_ETCD_MEMBERS {
        return Err(invalid("a lab has at most 7 etcd members"));
    }
    if controllers > 1 && etcd_members == 0 {
        return Err(invalid("several controllers need etcd (--etcd 1 or more), because the embedded store has one writer"));
    }
    Ok(())
}

/// Role of controller `index` in the state file and log names. Controller 0 keeps the
/// name of the single controller of a lab without etcd.
pub(crate) fn controller_role(index: usize) -> String {
    if index == 0 {
        "controller".to_string()
    } else {
        format!("controller-{index}")
    }
}

fn etcd_role(index: usize) -> String {
    format!("etcd-{index}")
}

fn port(base: u16, index: usize) -> u16 {
    base + u16::try_from(index).unwrap_or(u16::MAX - base)
}

fn controller_address(index: usize) -> SocketAddr {
    SocketAddr::from((CONTROLLER_IP, port(CONTROLLER_PORT, index)))
}

fn etcd_client_address(index: usize) -> SocketAddr {
    SocketAddr::from((CONTROLLER_IP, port(ETCD_CLIENT_PORT, 2 * index)))
}

fn etcd_peer_url(index: usize) -> String {
    format!("http://{CONTROLLER_IP}:{}", port(ETCD_CLIENT_PORT, 2 * index + 1))
}

impl Lab {
    /// Number of etcd members; 0 when the controller uses the embedded store.
    pub fn etcd_members(&self) -> usize {
        self.etcd_members
    }

    /// Number of controllers.
    pub fn controllers(&self) -> usize {
        self.controllers
    }

    /// URLs of every controller, comma-separated, as `--controller` takes them.
    pub fn controller_urls(&self) -> String {
        let urls: Vec<String> = (0..self.controllers).map(|i| format!("http://{}", controller_address(i))).collect();
        urls.join(",")
    }

    /// Controller URLs given to the agent of host `number`: every controller, starting
    /// with controller `(number - 1) mod count`, so the hosts' requests and watches
    /// spread over the controllers while each agent can still fail over to all.
    pub(crate) fn agent_controller_urls(&self, number: u8) -> String {
        let first = usize::from(number.saturating_sub(1));
        let urls: Vec<String> = (0..self.controllers)
            .map(|i| format!("http://{}", controller_address((first + i) % self.controllers)))
            .collect();
        urls.join(",")
    }

    /// Store URL naming every etcd member, as `cloison controller --store` takes it.
    pub fn etcd_store_url(&self) -> String {
        let members: Vec<String> = (0..self.etcd_members).map(|i| etcd_client_address(i).to_string()).collect();
        format!("etcd://{}", members.join(","))
    }

    /// Starts controller `index` and waits until its API responds.
    pub fn start_controller(&mut self, index: usize) -> Result<(), LabError> {
        self.check_controller_index(index)?;
        let address = controller_address(index);
        let mut args = vec!["controller".to_string(), "--listen".to_string(), address.to_string()];
        if self.etcd_members == 0 {
            args.push("--data-dir".to_string());
            args.push(self.name.state_dir().join("controller").display().to_string());
        } else {
            args.push("--store".to_string());
            args.push(self.etcd_store_url());
        }
        self.spawn(&controller_role(index), Node::Controller, &args)?;
        let what = format!("the API of controller {index}");
        self.wait_until(&what, || Ok(self.get_from_controller(index, "/v1/hosts").is_ok()))
    }

    /// Stops controller `index` with SIGTERM, then SIGKILL after a grace period.
    pub fn stop_controller(&mut self, index: usize) -> Result<(), LabError> {
        self.check_controller_index(index)?;
        self.stop_role(&controller_role(index), Signal::SIGTERM)
    }

    /// Kills controller `index` with SIGKILL, as a crash would.
    pub fn kill_controller(&mut self, index: usize) -> Result<(), LabError> {
        self.check_controller_index(index)?;
        self.stop_role(&controller_role(index), Signal::SIGKILL)
    }

    /// GETs `path` from controller `index`, from inside the controller namespace.
    pub fn get_from_controller(&self, index: usize, path: &str) -> Result<String, LabError> {
        http::get_in_netns(&netns::path(&self.name.netns(Node::Controller)), controller_address(index), path)
    }

    /// Starts etcd member `index` on its ports and data directory. A member started
    /// again after [`Lab::kill_etcd`] rejoins with the data it had.
    pub fn start_etcd(&mut self, index: usize) -> Result<(), LabError> {
        self.check_etcd_index(index)?;
        let args = self.etcd_args(index);
        self.spawn_program(&etcd_role(index), Node::Controller, std::path::Path::new("etcd"), &args)
    }

    /// Kills etcd member `index` with SIGKILL; its data directory stays.
    pub fn kill_etcd(&mut self, index: usize) -> Result<(), LabError> {
        self.check_etcd_index(index)?;
        self.stop_role(&etcd_role(index), Signal::SIGKILL)
    }

    /// Index of the etcd member that is the Raft leader, read from the
    /// `etcd_server_is_leader` metric of each member; `None` without a leader.
    pub fn etcd_leader(&self) -> Option<usize> {
        (0..self.etcd_members).find(|&i| {
            let metrics = self.get_from_etcd(i, "/metrics").unwrap_or_default();
            metrics.lines().any(|line| line.trim() == "etcd_server_is_leader 1")
        })
    }

    /// Waits until a reachable etcd member reports a healthy cluster, which needs a
    /// leader and therefore a quorum.
    pub fn wait_etcd_leader(&self) -> Result<(), LabError> {
        self.wait_until("an etcd leader", || {
            let healthy = (0..self.etcd_members)
                .filter_map(|i| self.get_from_etcd(i, "/health").ok())
                .any(|body| body.contains("\"health\":\"true\""));
            Ok(healthy)
        })
    }

    fn get_from_etcd(&self, index: usize, path: &str) -> Result<String, LabError> {
        http::get_in_netns(&netns::path(&self.name.netns(Node::Controller)), etcd_client_address(index), path)
    }

    /// Starts the whole control plane: the etcd members, then every controller.
    pub(crate) fn start_control_plane(&mut self) -> Result<(), LabError> {
        if self.etcd_members > 0 {
            std::fs::create_dir_all(self.etcd_dir())
                .map_err(|e| LabError::io(format!("cannot create {}", self.etcd_dir().display()), e))?;
        }
        for index in 0..self.etcd_members {
            self.start_etcd(index)?;
        }
        if self.etcd_members > 0 {
            self.wait_etcd_leader()?;
        }
        for index in 0..self.controllers {
            self.start_controller(index)?;
        }
        Ok(())
    }

    fn etcd_dir(&self) -> std::path::PathBuf {
        self.name.state_dir().join("etcd")
    }

    /// Arguments of etcd member `index`: a static cluster of every member, with
    /// etcd's default Raft timing (heartbeat 100 ms, election timeout 1 s).
    fn etcd_args(&self, index: usize) -> Vec<String> {
        let initial_cluster: Vec<String> =
            (0..self.etcd_members).map(|i| format!("{}={}", etcd_role(i), etcd_peer_url(i))).collect();
        let client_url = format!("http://{}", etcd_client_address(index));
        let peer_url = etcd_peer_url(index);
        let pairs = [
            ("--name", etcd_role(index)),
            ("--data-dir", self.etcd_dir().join(etcd_role(index)).display().to_string()),
            ("--listen-client-urls", client_url.clone()),
            ("--advertise-client-urls", client_url),
            ("--listen-peer-urls", peer_url.clone()),
            ("--initial-advertise-peer-urls", peer_url),
            ("--initial-cluster", initial_cluster.join(",")),
            ("--initial-cluster-state", "new".to_string()),
            ("--initial-cluster-token", format!("cloison-lab-{}", self.name)),
        ];
        pairs.into_iter().flat_map(|(flag, value)| [flag.to_string(), value]).collect()
    }

    /// Cuts host `host` from the control plane: an nftables table inside the host's
    /// namespace drops every packet to or from the controller address, in both
    /// directions, while VXLAN between the hosts keeps flowing. Packets are dropped,
    /// not rejected, so the agent gets no reply at all, as in a network partition.
    pub fn cut_host(&self, host: &str) -> Result<(), LabError> {
        self.node(host)?;
        let ruleset = format!(
            "table inet {CUT_TABLE} {{\n\
             \tchain input {{ type filter hook input priority -300; ip saddr {CONTROLLER_IP} drop; }}\n\
             \tchain output {{ type filter hook output priority -300; ip daddr {CONTROLLER_IP} drop; }}\n\
             }}\n"
        );
        let path = self.name.state_dir().join(format!("cut-{host}.nft"));
        std::fs::write(&path, ruleset).map_err(|e| LabError::io(format!("cannot write {}", path.display()), e))?;
        let file = path.display().to_string();
        self.exec(host, &["nft", "-f", &file]).map(drop)
    }

    /// Undoes [`Lab::cut_host`]; succeeds when the host was not cut.
    pub fn heal_host(&self, host: &str) -> Result<(), LabError> {
        self.node(host)?;
        if self.exec(host, &["nft", "list", "table", "inet", CUT_TABLE]).is_err() {
            return Ok(());
        }
        self.exec(host, &["nft", "delete", "table", "inet", CUT_TABLE]).map(drop)
    }

    fn check_controller_index(&self, index: usize) -> Result<(), LabError> {
        if index < self.controllers {
            Ok(())
        } else {
            Err(LabError::UnknownMember { kind: "controller", index, count: self.controllers })
        }
    }

    fn check_etcd_index(&self, index: usize) -> Result<(), LabError> {
        if index < self.etcd_members {
            Ok(())
        } else {
            Err(LabError::UnknownMember { kind: "etcd member", index, count: self.etcd_members })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_plane_shapes_are_checked() {
        assert!(validate(0, 1).is_ok());
        assert!(validate(3, 2).is_ok());
        assert!(validate(1, 1).is_ok());
        assert!(validate(0, 2).is_err(), "two controllers on the embedded store");
        assert!(validate(3, 0).is_err(), "no controller");
        assert!(validate(8, 1).is_err(), "too many etcd members");
    }

    #[test]
    fn member_ports_do_not_overlap() {
        let mut ports: Vec<u16> = (0..MAX_ETCD_MEMBERS)
            .flat_map(|i| [etcd_client_address(i).port(), port(ETCD_CLIENT_PORT, 2 * i + 1)])
            .chain((0..MAX_CONTROLLERS).map(|i| controller_address(i).port()))
            .collect();
        let count = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), count);
    }

    #[test]
    fn controller_zero_keeps_its_role() {
        assert_eq!(controller_role(0), "controller");
        assert_eq!(controller_role(1), "controller-1");
    }
}
