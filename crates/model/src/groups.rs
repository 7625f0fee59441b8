//! Security groups: stateful allow rules shared by the endpoints that name them.

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{validate_name, Labels, ValidationError};

/// A named set of allow rules in a tenant. Endpoints list the groups they belong to.
///
/// Without any group, members of one network reach each other, ingress from anywhere
/// else is denied and egress is allowed; a group's rules only add allowed flows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecurityGroup {
    pub id: String,
    pub tenant: String,
    pub name: String,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub resource_version: u64,
}

/// Request body that creates a security group.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SecurityGroupSpec {
    pub name: String,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub labels: Labels,
}

/// One allowed flow, seen from a member of the group.
///
/// Unknown fields are rejected, because a body with `from` or `to` in place of `peer`
/// would otherwise become a rule whose peer is `any`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub direction: Direction,
    #[serde(default)]
    pub protocol: Protocol,
    /// First and last destination port, both included; absent means every port.
    /// Only TCP and UDP rules may name ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<[u16; 2]>, example = json!([80, 80]))]
    pub ports: Option<(u16, u16)>,
    /// The other side of the flow: the source of ingress, the destination of egress.
    #[serde(default)]
    pub peer: Peer,
}

/// Whether a rule admits flows towards the member or from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Ingress,
    Egress,
}

/// Transport protocol a rule matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
    Udp,
    /// ICMP over IPv4 and ICMPv6 over IPv6.
    Icmp,
    #[default]
    Any,
}

/// The remote side of a rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Peer {
    /// Addresses in a prefix, such as `0.0.0.0/0` or `fd00::/64`.
    #[schema(value_type = String, example = "10.20.0.0/24")]
    Cidr(IpNet),
    /// Members of another group of the same tenant.
    Group(String),
    /// Every address of another network of the same tenant.
    Network(String),
    /// Any address, IPv4 or IPv6.
    #[default]
    Any,
}

impl Rule {
    /// Checks what a rule can be checked for without the store: port ranges only on
    /// TCP and UDP, first port not after the last, valid group and network names.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some((first, last)) = self.ports {
            if !matches!(self.protocol, Protocol::Tcp | Protocol::Udp) {
                return Err(ValidationError::RulePorts {
                    reason: format!("protocol {} has no ports; use tcp or udp, or leave the ports out", self.protocol),
                });
            }
            if first == 0 || first > last {
                return Err(ValidationError::RulePorts {
                    reason: format!("range {first}-{last} is empty or starts at 0; use 1-65535 with the first port not after the last"),
                });
            }
        }
        match &self.peer {
            Peer::Group(name) => validate_name("security group", name),
            Peer::Network(name) => validate_name("network", name),
            Peer::Cidr(net) if net.trunc() != *net => Err(ValidationError::SubnetHostBits {
                subnet: net.to_string(),
                network: net.trunc().to_string(),
            }),
            Peer::Cidr(_) | Peer::Any => Ok(()),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::Any => "any",
        })
    }
}

impl FromStr for Protocol {
    type Err = ValidationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "icmp" => Ok(Protocol::Icmp),
            "any" => Ok(Protocol::Any),
            other => Err(ValidationError::RulePeer {
                value: other.to_string(),
                expected: "a protocol: tcp, udp, icmp or any",
            }),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Cidr(net) => write!(f, "{net}"),
            Peer::Group(name) => write!(f, "group:{name}"),
            Peer::Network(name) => write!(f, "network:{name}"),
            Peer::Any => f.write_str("any"),
        }
    }
}

impl FromStr for Peer {
    type Err = ValidationError;

    /// Parses `CIDR`, `group:NAME`, `network:NAME` or `any`. A bare address is read as
    /// a prefix of one address.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || ValidationError::RulePeer {
            value: text.to_string(),
            expected: "a peer: a CIDR such as 10.0.0.0/8, group:NAME, network:NAME or any",
        };
        if text == "any" {
            return Ok(Peer::Any);
        }
        if let Some(name) = text.strip_prefix("group:") {
            return Ok(Peer::Group(name.to_string()));
        }
        if let Some(name) = text.strip_prefix("network:") {
            return Ok(Peer::Network(name.to_string()));
        }
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(Peer::Cidr(net));
        }
        text.parse::<std::net::IpAddr>().map(|ip| Peer::Cidr(IpNet::from(ip))).map_err(|_| invalid())
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = match self.direction {
            Direction::Ingress => "ingress from",
            Direction::Egress => "egress to",
        };
        write!(f, "{direction} {} {}", self.peer, self.protocol)?;
        match self.ports {
            Some((first, last)) if first == last => write!(f, " port {first}"),
            Some((first, last)) => write!(f, " ports {first}-{last}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: Protocol, ports: Option<(u16, u16)>) -> Rule {
        Rule { direction: Direction::Ingress, protocol, ports, peer: Peer::Any }
    }

    #[test]
    fn rule_ports_need_tcp_or_udp() {
        assert!(rule(Protocol::Tcp, Some((80, 80))).validate().is_ok());
        assert!(rule(Protocol::Icmp, Some((80, 80))).validate().is_err());
        assert!(rule(Protocol::Any, Some((1, 2))).validate().is_err());
    }

    #[test]
    fn rule_port_range_must_be_ordered() {
        assert!(rule(Protocol::Udp, Some((90, 80))).validate().is_err());
        assert!(rule(Protocol::Udp, Some((0, 80))).validate().is_err());
    }

    #[test]
    fn peer_parses_every_form() {
        assert_eq!("any".parse::<Peer>(), Ok(Peer::Any));
        assert_eq!("group:web".parse::<Peer>(), Ok(Peer::Group("web".into())));
        assert_eq!("network:b".parse::<Peer>(), Ok(Peer::Network("b".into())));
        assert_eq!("10.0.0.0/8".parse::<Peer>(), Ok(Peer::Cidr("10.0.0.0/8".parse().unwrap_or_default())));
        assert_eq!("10.0.0.1".parse::<Peer>(), Ok(Peer::Cidr("10.0.0.1/32".parse().unwrap_or_default())));
        assert!("nonsense".parse::<Peer>().is_err());
    }

    #[test]
    fn rule_json_rejects_from_and_to() {
        for field in ["from", "to"] {
            let text = format!(r#"{{"direction":"ingress","{field}":{{"cidr":"10.0.0.0/8"}}}}"#);
            let err = serde_json::from_str::<Rule>(&text).expect_err(field);
            assert!(err.to_string().contains("peer"), "{err}");
        }
    }

    #[test]
    fn rule_json_round_trips() {
        let rule = Rule {
            direction: Direction::Egress,
            protocol: Protocol::Tcp,
            ports: Some((8000, 8080)),
            peer: Peer::Network("b".into()),
        };
        let text = serde_json::to_string(&rule).unwrap_or_default();
        assert_eq!(text, r#"{"direction":"egress","protocol":"tcp","ports":[8000,8080],"peer":{"network":"b"}}"#);
        assert_eq!(serde_json::from_str::<Rule>(&text).ok(), Some(rule));
    }
}
