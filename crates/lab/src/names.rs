//! Names and addresses of a lab's parts.
//!
//! Every namespace of lab `L` is called `cl-L.<part>`. The dot cannot appear in a lab
//! name, so the namespaces of lab `a` never share a prefix with those of lab `a-b`,
//! and removing one lab cannot touch another.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::LabError;

/// Maximum length of a lab name. It keeps namespace names and the agent socket path (108 bytes
/// at most for a Unix socket) short.
pub const LAB_NAME_MAX: usize = 16;

/// Maximum length of a container name inside a lab.
pub(crate) const CONTAINER_NAME_MAX: usize = 32;

/// Largest number of hosts in one lab, bounded by the underlay addressing below.
pub const MAX_HOSTS: usize = 64;

/// Directory holding the state of every lab.
pub const STATE_ROOT: &str = "/run/cloison-lab";

/// Underlay address of the controller. Labs are isolated from each other and from the
/// machine, so every lab uses the same private range 10.200.0.0/24.
pub const CONTROLLER_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);

/// Underlay address of the `outside` node, the hosts' default gateway.
pub const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 254);

/// Address of the world beyond the hosts, held by the `outside` node and reached
/// only through the hosts' default route (TEST-NET-2, RFC 5737).
pub const WORLD_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

/// Prefix length of the underlay subnet.
pub(crate) const UNDERLAY_PREFIX: u8 = 24;

/// TCP port of the controller API.
pub(crate) const CONTROLLER_PORT: u16 = 7420;

/// A validated lab name: 1 to 16 characters of a-z, 0-9 and '-', starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabName(String);

impl FromStr for LabName {
    type Err = LabError;

    fn from_str(name: &str) -> Result<Self, LabError> {
        let invalid = |reason| LabError::InvalidName { name: name.to_string(), reason, max: LAB_NAME_MAX };
        if name.is_empty() || name.len() > LAB_NAME_MAX {
            return Err(invalid("wrong length"));
        }
        if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(invalid("it contains a character other than a-z, 0-9 and '-'"));
        }
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(invalid("it does not start with a letter"));
        }
        Ok(LabName(name.to_string()))
    }
}

impl fmt::Display for LabName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl LabName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Prefix of every namespace of this lab.
    pub fn netns_prefix(&self) -> String {
        format!("cl-{}.", self.0)
    }

    /// Directory of this lab's state file, logs, controller store and agent sockets.
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(STATE_ROOT).join(&self.0)
    }

    /// Namespace name of one part of the lab.
    pub fn netns(&self, node: Node) -> String {
        format!("{}{}", self.netns_prefix(), node.label())
    }

    /// Namespace name of a container made on `host`.
    pub fn container_netns(&self, host: u8, container: &str) -> Result<String, LabError> {
        validate_container_name(container)?;
        Ok(format!("{}h{host}.{container}", self.netns_prefix()))
    }
}

fn validate_container_name(name: &str) -> Result<(), LabError> {
    let valid = !name.is_empty()
        && name.len() <= CONTAINER_NAME_MAX
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(LabError::InvalidContainerName { name: name.to_string(), max: CONTAINER_NAME_MAX })
    }
}

/// One namespace of the lab's own making.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Node {
    /// Holds the underlay bridge.
    Underlay,
    /// Runs the controller.
    Controller,
    /// Simulated host `h<N>`, numbered from 1, running an agent.
    Host(u8),
    /// The world beyond the hosts: every host's default gateway.
    Outside,
}

impl Node {
    /// Name used on the command line and in namespace names: `underlay`, `ctl`,
    /// `outside`, `h<N>`.
    pub fn label(self) -> String {
        match self {
            Node::Underlay => "underlay".to_string(),
            Node::Controller => "ctl".to_string(),
            Node::Outside => "outside".to_string(),
            Node::Host(n) => format!("h{n}"),
        }
    }

    /// Parses `h<N>`, `ctl`, `outside` or `underlay` (also `ul`), checking N against
    /// the lab's host count.
    pub fn parse(lab: &LabName, text: &str, hosts: usize) -> Result<Node, LabError> {
        let unknown = || LabError::UnknownNode { lab: lab.to_string(), node: text.to_string(), hosts };
        match text {
            "underlay" | "ul" => Ok(Node::Underlay),
            "ctl" | "controller" => Ok(Node::Controller),
            "outside" => Ok(Node::Outside),
            _ => {
                let number: u8 = text.strip_prefix('h').and_then(|n| n.parse().ok()).ok_or_else(unknown)?;
                if number == 0 || usize::from(number) > hosts {
                    return Err(unknown());
                }
                Ok(Node::Host(number))
            }
        }
    }

    /// Underlay address of the node; the underlay namespace itself has none.
    pub fn underlay_ip(self) -> Option<Ipv4Addr> {
        match self {
            Node::Underlay => None,
            Node::Controller => Some(CONTROLLER_IP),
            Node::Outside => Some(OUTSIDE_IP),
            Node::Host(n) => Some(Ipv4Addr::new(10, 200, 0, 10 + n)),
        }
    }
}

/// URL of the lab's controller, as seen from inside the lab.
pub fn controller_url() -> String {
    format!("http://{CONTROLLER_IP}:{CONTROLLER_PORT}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_name_accepts_short_lowercase() {
        assert!("demo-1".parse::<LabName>().is_ok());
    }

    #[test]
    fn lab_name_rejects_bad_forms() {
        for bad in ["", "Demo", "1abc", "a.b", "a_b", "abcdefghijklmnopq"] {
            assert!(bad.parse::<LabName>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn namespaces_of_prefixed_labs_differ() {
        let short: LabName = "a".parse().expect("valid name");
        let long: LabName = "a-b".parse().expect("valid name");
        assert!(!long.netns(Node::Host(1)).starts_with(&short.netns_prefix()));
    }

    #[test]
    fn node_parse_checks_host_range() {
        let lab: LabName = "t".parse().expect("valid name");
        assert_eq!(Node::parse(&lab, "h3", 3).ok(), Some(Node::Host(3)));
        assert!(Node::parse(&lab, "h4", 3).is_err());
        assert!(Node::parse(&lab, "h0", 3).is_err());
        assert_eq!(Node::parse(&lab, "ctl", 3).ok(), Some(Node::Controller));
        assert_eq!(Node::parse(&lab, "outside", 3).ok(), Some(Node::Outside));
    }
}
