//! Connection settings of the etcd store: its members and its key prefix.

use std::time::Duration;

use thiserror::Error;

/// Scheme of a store URL naming an etcd cluster: `etcd://HOST:PORT[,HOST:PORT...]`.
pub const ETCD_SCHEME: &str = "etcd://";
/// Key prefix under which cloison keeps its keys unless `--etcd-prefix` sets another.
pub const DEFAULT_PREFIX: &str = "/cloison";

/// A store URL or prefix that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OptionsError {
    #[error("store URL {url} does not start with {ETCD_SCHEME}; expected for example etcd://10.0.0.1:2379,10.0.0.2:2379")]
    Scheme { url: String },
    #[error("store URL {url} names no etcd member; expected etcd://HOST:PORT[,HOST:PORT...]")]
    NoMember { url: String },
    #[error("etcd member {member} in {url} is not HOST:PORT with a port from 1 to 65535")]
    Member { url: String, member: String },
    #[error("etcd prefix {prefix} is invalid: it must start with '/' and must not end with '/' (for example /cloison)")]
    Prefix { prefix: String },
}

/// Connection settings of an [`EtcdStore`](crate::EtcdStore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// Client URLs of the members, such as `http://10.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Prefix prepended to every store key, so several deployments or other programs can
    /// share one etcd cluster without seeing each other's keys.
    pub prefix: String,
    /// Time a single request may take before it fails as unavailable. A cluster that lost
    /// quorum never commits writes, so this bounds how long an API call waits for one.
    pub request_timeout: Duration,
    /// Time to open a connection to one member.
    pub connect_timeout: Duration,
}

impl EtcdOptions {
    /// Parses `etcd://HOST:PORT[,HOST:PORT...]` and pairs it with `prefix`.
    pub fn from_url(url: &str, prefix: &str) -> Result<Self, OptionsError> {
        let members = url
            .strip_prefix(ETCD_SCHEME)
            .ok_or_else(|| OptionsError::Scheme {
                url: url.to_string(),
            })?;
        let mut endpoints = Vec::new();
        for member in members.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            check_member(url, member)?;
            endpoints.push(format!("http://{member}"));
        }
        if endpoints.is_empty() {
            return Err(OptionsError::NoMember {
                url: url.to_string(),
            });
        }
        check_prefix(prefix)?;
        Ok(Self {
            endpoints,
            prefix: prefix.to_string(),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
        })
    }

    /// Returns the members as `HOST:PORT,HOST:PORT`, for messages.
    pub fn members(&self) -> String {
        let members: Vec<&str> = self
            .endpoints
            .iter()
            .map(|e| e.strip_prefix("http://").unwrap_or(e))
            .collect();
        members.join(",")
    }
}

/// Accepts `HOST:PORT` where HOST is a name, an IPv4 address or a bracketed IPv6 address.
fn check_member(url: &str, member: &str) -> Result<(), OptionsError> {
    let invalid = || OptionsError::Member {
        url: url.to_string(),
        member: member.to_string(),
    };
    let (host, port) = member.rsplit_once(':').ok_or_else(invalid)?;
    let port: u16 = port.parse().map_err(|_| invalid())?;
    let host_ok = !host.is_empty() && !host.contains(['/', '@', ' ']);
    if port == 0 || !host_ok {
        return Err(invalid());
    }
    Ok(())
}

fn check_prefix(prefix: &str) -> Result<(), OptionsError> {
    if !prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains('\0') {
        return Err(OptionsError::Prefix {
            prefix: prefix.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_with_three_members() {
        let options = EtcdOptions::from_url("etcd://10.0.0.1:2379, 10.0.0.2:2379,h3:32379", "/x")
            .expect("valid URL");
        assert_eq!(
            options.endpoints,
            [
                "http://10.0.0.1:2379",
                "http://10.0.0.2:2379",
                "http://h3:32379"
            ]
        );
        assert_eq!(options.prefix, "/x");
        assert_eq!(options.members(), "10.0.0.1:2379,10.0.0.2:2379,h3:32379");
    }

    #[test]
    fn url_with_ipv6_member() {
        let options =
            EtcdOptions::from_url("etcd://[fd00::1]:2379", DEFAULT_PREFIX).expect("valid URL");
        assert_eq!(options.endpoints, ["http://[fd00::1]:2379"]);
    }

    #[test]
    fn url_errors() {
        let cases = [
            ("http://h:1", "Scheme"),
            ("etcd://", "NoMember"),
            ("etcd://h", "Member"),
            ("etcd://h:0", "Member"),
            ("etcd://h:99999", "Member"),
            ("etcd://:2379", "Member"),
        ];
        for (url, expected) in cases {
            let err = EtcdOptions::from_url(url, DEFAULT_PREFIX).expect_err(url);
            assert!(format!("{err:?}").starts_with(expected), "{url}: {err:?}");
        }
    }

    #[test]
    fn prefix_errors() {
        for prefix in ["", "cloison", "/cloison/"] {
            let err = EtcdOptions::from_url("etcd://h:2379", prefix).expect_err(prefix);
            assert!(
                matches!(err, OptionsError::Prefix { .. }),
                "{prefix}: {err:?}"
            );
        }
    }
}
