//! Publications: a host port forwarded to an endpoint's port, Docker's `-p`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ValidationError;

/// A host port of the endpoint's host forwarded to one of the endpoint's ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Publication {
    pub id: String,
    pub tenant: String,
    /// Unique in the tenant: `ENDPOINT-HOSTPORT-PROTOCOL`, or
    /// `ENDPOINT-HOSTIP-HOSTPORT-PROTOCOL` when bound to one host address. A bound
    /// publication stored before host addresses were part of names keeps the short form.
    pub name: String,
    /// Name of the endpoint.
    pub endpoint: String,
    /// Id of the endpoint, so a replaced endpoint of the same name is not confused with it.
    pub endpoint_id: String,
    /// Host of the endpoint, the one that forwards the port.
    pub host: String,
    /// IPv4 host address the port is bound to, or every IPv4 address of the host when absent.
    #[schema(value_type = Option<String>, example = "127.0.0.1")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    /// Port of the endpoint the host port leads to.
    pub port: u16,
    pub protocol: PublishProtocol,
    #[serde(default)]
    pub resource_version: u64,
}

impl Publication {
    /// Tells whether this publication forwards `host_port` over `protocol` to `endpoint`,
    /// on any host address. It compares fields, not names, because a bound publication
    /// may carry a name without its host address.
    pub fn forwards(&self, endpoint: &str, host_port: u16, protocol: PublishProtocol) -> bool {
        self.endpoint == endpoint && self.host_port == host_port && self.protocol == protocol
    }
}

/// Request body that publishes a port of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublicationSpec {
    pub endpoint: String,
    /// IPv4 host address to bind, or every IPv4 address of the host when absent or
    /// 0.0.0.0. An IPv6 address is rejected.
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub port: u16,
    #[serde(default)]
    pub protocol: PublishProtocol,
}

/// Transport protocol of a publication.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PublishProtocol {
    #[default]
    Tcp,
    Udp,
}

impl fmt::Display for PublishProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PublishProtocol::Tcp => "tcp",
            PublishProtocol::Udp => "udp",
        })
    }
}

impl FromStr for PublishProtocol {
    type Err = ValidationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "tcp" => Ok(PublishProtocol::Tcp),
            "udp" => Ok(PublishProtocol::Udp),
            _ => Err(ValidationError::Publish { value: text.to_string(), expected: "tcp or udp" }),
        }
    }
}

impl PublicationSpec {
    /// Parses Docker's `[HOSTIP:]HOSTPORT:PORT[/tcp|/udp]` form.
    pub fn parse(endpoint: &str, text: &str) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::Publish {
            value: text.to_string(),
            expected: "[HOSTIP:]HOSTPORT:PORT[/tcp|/udp], such as 8080:80 or 127.0.0.1:5353:53/udp",
        };
        let (ports, protocol) = match text.split_once('/') {
            Some((ports, protocol)) => (ports, protocol.parse()?),
            None => (text, PublishProtocol::Tcp),
        };
        let (address, port) = ports.rsplit_once(':').ok_or_else(invalid)?;
        let (host_ip, host_port) = match address.rsplit_once(':') {
            Some((ip, host_port)) => {
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                (Some(ip.parse().map_err(|_| invalid())?), host_port)
            }
            None => (None, address),
        };
        let spec = PublicationSpec {
            endpoint: endpoint.to_string(),
            host_ip,
            host_port: host_port.parse().map_err(|_| invalid())?,
            port: port.parse().map_err(|_| invalid())?,
            protocol,
        }
        .normalized();
        spec.validate()?;
        Ok(spec)
    }

    /// Replaces the host address 0.0.0.0 with none. Both mean every IPv4 address of the
    /// host, as in Docker's `-p 0.0.0.0:8080:80`, and the controller's host-port
    /// allocation must see one form to find that they take the same port.
    pub fn normalized(mut self) -> Self {
        if self.host_ip == Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)) {
            self.host_ip = None;
        }
        self
    }

    /// Checks the ports and the host address. Port 0 would let the kernel pick one,
    /// which a published port cannot. An IPv6 host address is rejected because port
    /// forwarding and egress NAT are programmed for IPv4 only, and a multicast,
    /// broadcast or reserved one because no host interface can have it.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.host_port == 0 || self.port == 0 {
            return Err(ValidationError::Publish {
                value: format!("{}:{}", self.host_port, self.port),
                expected: "ports from 1 to 65535",
            });
        }
        match self.host_ip {
            Some(address @ IpAddr::V6(_)) => Err(ValidationError::PublishIpv6 { address: address.to_string() }),
            Some(IpAddr::V4(address)) => match unusable_host_address(address) {
                Some(kind) => Err(ValidationError::PublishHostAddress { address: address.to_string(), kind }),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Returns the publication's name: `ENDPOINT-HOSTPORT-PROTOCOL`, or
    /// `ENDPOINT-HOSTIP-HOSTPORT-PROTOCOL` when bound, so that one endpoint can publish
    /// a host port on several addresses of its host. Two different publications never
    /// share a name, because an IPv4 address contains `.` and an endpoint name does not.
    pub fn name(&self) -> String {
        let (endpoint, host_port, protocol) = (&self.endpoint, self.host_port, self.protocol);
        match self.host_ip {
            Some(address) => format!("{endpoint}-{address}-{host_port}-{protocol}"),
            None => format!("{endpoint}-{host_port}-{protocol}"),
        }
    }
}

/// Returns the kind of an IPv4 address that no host interface can have, or None for an
/// address a host may have. 0.0.0.0 itself means every address and is allowed.
fn unusable_host_address(address: Ipv4Addr) -> Option<&'static str> {
    let first = address.octets()[0];
    if address.is_broadcast() {
        Some("broadcast")
    } else if address.is_multicast() {
        Some("multicast")
    } else if first == 0 && !address.is_unspecified() {
        Some("\"this network\" (0.0.0.0/8)")
    } else if first >= 240 {
        Some("reserved (240.0.0.0/4)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_docker_forms() {
        let spec = PublicationSpec::parse("web", "8080:80").expect("valid");
        assert_eq!((spec.host_ip, spec.host_port, spec.port, spec.protocol), (None, 8080, 80, PublishProtocol::Tcp));
        let spec = PublicationSpec::parse("dns", "127.0.0.1:5353:53/udp").expect("valid");
        assert_eq!(spec.host_ip, Some("127.0.0.1".parse().expect("address")));
        assert_eq!(spec.protocol, PublishProtocol::Udp);
        assert_eq!(spec.name(), "dns-127.0.0.1-5353-udp");
    }

    #[test]
    fn name_includes_bound_address() {
        let names: Vec<String> = ["8080:80", "127.0.0.1:8080:80", "127.0.0.2:8080:80", "8080:80/udp"]
            .iter()
            .map(|text| PublicationSpec::parse("web-1", text).expect(text).name())
            .collect();
        assert_eq!(names, ["web-1-8080-tcp", "web-1-127.0.0.1-8080-tcp", "web-1-127.0.0.2-8080-tcp", "web-1-8080-udp"]);
    }

    #[test]
    fn record_without_host_address_loads() {
        let text = r#"{"id":"p1","tenant":"blue","name":"web-1-8080-tcp","endpoint":"web-1","endpoint_id":"e1",
            "host":"h1","host_port":8080,"port":80,"protocol":"tcp","resource_version":7}"#;
        let publication: Publication = serde_json::from_str(text).expect("a record without host_ip");
        assert_eq!(publication.host_ip, None);
        assert!(publication.forwards("web-1", 8080, PublishProtocol::Tcp));
        assert!(!publication.forwards("web-1", 8080, PublishProtocol::Udp));
    }

    #[test]
    fn parse_reads_unspecified_as_every_address() {
        let spec = PublicationSpec::parse("web", "0.0.0.0:8080:80").expect("valid");
        assert_eq!(spec.host_ip, None);
        assert_eq!(spec, PublicationSpec::parse("web", "8080:80").expect("valid"));
    }

    #[test]
    fn parse_rejects_ipv6_host_address() {
        for text in ["[::1]:8086:80", "[fd00::1]:53:53/udp", "::1:8086:80"] {
            let err = PublicationSpec::parse("web", text).expect_err(text);
            assert!(err.to_string().contains("IPv4 only"), "{text}: {err}");
        }
    }

    #[test]
    fn parse_rejects_unusable_host_address() {
        let cases = [
            ("224.0.0.1:8080:80", "multicast"),
            ("239.1.2.3:53:53/udp", "multicast"),
            ("255.255.255.255:8080:80", "broadcast"),
            ("0.1.2.3:8080:80", "\"this network\""),
            ("240.0.0.1:8080:80", "reserved"),
        ];
        for (text, kind) in cases {
            let err = PublicationSpec::parse("web", text).expect_err(text);
            let message = err.to_string();
            assert!(message.contains(&format!("it is a {kind}")), "{text}: {message}");
        }
        for text in ["127.0.0.1:8080:80", "10.9.9.9:8080:80", "223.255.255.254:8080:80", "0.0.0.0:8080:80"] {
            assert!(PublicationSpec::parse("web", text).is_ok(), "{text} was rejected");
        }
    }

    #[test]
    fn parse_rejects_bad_forms() {
        for text in ["80", "a:80", "8080:80/sctp", "0:80", "x.y:80:80", "70000:80"] {
            assert!(PublicationSpec::parse("web", text).is_err(), "{text} was accepted");
        }
    }
}
