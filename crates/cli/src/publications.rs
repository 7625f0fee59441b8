//! `cloison publish`, `cloison unpublish` and `cloison publication ls`: host ports
//! forwarded to endpoints, through the controller API.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::Context;
use clap::{Args, Subcommand};
use cloison_client::Client;
use cloison_model::{Publication, PublicationSpec, PublishProtocol};
use serde::Serialize;

use crate::args::GlobalArgs;
use crate::output;

/// Options of `cloison publish`.
#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// Endpoint whose port is published.
    endpoint: String,
    /// `[HOSTIP:]HOSTPORT:PORT[/tcp|/udp]`, as Docker's `-p`; TCP when no protocol is given.
    /// HOSTIP must be an IPv4 address, because publications are IPv4 only. Without HOSTIP,
    /// or with 0.0.0.0, the port is bound to every IPv4 address of the host.
    mapping: String,
    /// Tenant of the endpoint.
    #[arg(long)]
    tenant: String,
}

/// Options of `cloison unpublish`.
#[derive(Debug, Args)]
pub(crate) struct UnpublishArgs {
    /// Endpoint whose port was published.
    endpoint: String,
    /// `HOSTPORT[/tcp|/udp]`; TCP when no protocol is given.
    host_port: String,
    /// IPv4 host address the port was published on, as the HOST ADDRESS column of
    /// `cloison publication ls` shows it. Required only when the endpoint publishes the
    /// port on several addresses. 0.0.0.0 selects the publication bound to every address (`*`).
    #[arg(long)]
    host_ip: Option<Ipv4Addr>,
    /// Tenant of the endpoint.
    #[arg(long)]
    tenant: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PublicationCommand {
    /// List publications, of one tenant or of all.
    Ls {
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Serialize)]
struct Removed {
    removed: String,
}

fn controller(global: &GlobalArgs) -> anyhow::Result<Client> {
    Client::tcp(&global.controller).with_context(|| format!("invalid --controller {:?}", global.controller))
}

/// Runs `cloison publish`.
pub(crate) async fn publish(global: &GlobalArgs, args: PublishArgs) -> anyhow::Result<()> {
    let spec = PublicationSpec::parse(&args.endpoint, &args.mapping)?;
    let publication = controller(global)?.publish(&args.tenant, &spec).await?;
    output::one(global.output, &publication, |p| {
        let address = p.host_ip.map_or_else(String::new, |ip| format!("{ip}:"));
        format!("{address}{}/{} on host {} published to {}:{}", p.host_port, p.protocol, p.host, p.endpoint, p.port)
    })
}

/// Runs `cloison unpublish`.
pub(crate) async fn unpublish(global: &GlobalArgs, args: UnpublishArgs) -> anyhow::Result<()> {
    let (host_port, protocol) = parse_host_port(&args.host_port)?;
    let request = UnpublishRequest { tenant: &args.tenant, endpoint: &args.endpoint, host_port, protocol, host_ip: args.host_ip };
    let client = controller(global)?;
    let publications = client.list_publications(Some(&args.tenant)).await?;
    let publication = request.select(&publications)?;
    client.unpublish(&args.tenant, &publication.id).await?;
    let removed = Removed { removed: publication.name.clone() };
    output::one(global.output, &removed, |r| format!("publication {} removed", r.removed))
}

/// Parses `HOSTPORT[/tcp|/udp]`.
fn parse_host_port(text: &str) -> anyhow::Result<(u16, PublishProtocol)> {
    let (port, protocol) = match text.split_once('/') {
        Some((port, protocol)) => (port, protocol.parse::<PublishProtocol>()?),
        None => (text, PublishProtocol::Tcp),
    };
    let port = port
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid host port {text:?}: use HOSTPORT[/tcp|/udp], such as 8080/tcp"))?;
    Ok((port, protocol))
}

/// The fields by which `cloison unpublish` selects a publication.
struct UnpublishRequest<'a> {
    tenant: &'a str,
    endpoint: &'a str,
    host_port: u16,
    protocol: PublishProtocol,
    /// `None` for any address, `Some(0.0.0.0)` for a publication bound to every address.
    host_ip: Option<Ipv4Addr>,
}

impl UnpublishRequest<'_> {
    /// Picks the one publication of `publications` that matches, or explains which
    /// `--host-ip` values would match.
    fn select<'p>(&self, publications: &'p [Publication]) -> anyhow::Result<&'p Publication> {
        let candidates: Vec<&Publication> = publications
            .iter()
            .filter(|p| p.forwards(self.endpoint, self.host_port, self.protocol))
            .collect();
        let binding = format!("host port {}/{} of endpoint {} in tenant {}", self.host_port, self.protocol, self.endpoint, self.tenant);
        if candidates.is_empty() {
            anyhow::bail!("{binding} is not published (`cloison publication ls --tenant {}` lists the tenant's publications)", self.tenant);
        }
        let addresses = join_list(candidates.iter().map(|p| host_ip_value(p.host_ip)).collect());
        match self.host_ip {
            Some(address) => {
                let bound_to = Some(IpAddr::V4(address)).filter(|ip| !ip.is_unspecified());
                let found = candidates.into_iter().find(|p| p.host_ip == bound_to);
                found.ok_or_else(|| {
                    anyhow::anyhow!("{binding} is published on {addresses}, not on {address}. Give --host-ip one of those addresses")
                })
            }
            None if candidates.len() == 1 => Ok(candidates[0]),
            None => anyhow::bail!("{binding} is published on several host addresses, {addresses}. Choose one with --host-ip"),
        }
    }
}

/// Returns the `--host-ip` value that selects a publication bound to `host_ip`.
fn host_ip_value(host_ip: Option<IpAddr>) -> String {
    host_ip.map_or_else(|| Ipv4Addr::UNSPECIFIED.to_string(), |ip| ip.to_string())
}

/// Joins items as "a", "a and b" or "a, b and c".
fn join_list(mut items: Vec<String>) -> String {
    match items.pop() {
        Some(last) if !items.is_empty() => format!("{} and {last}", items.join(", ")),
        Some(last) => last,
        None => String::new(),
    }
}

/// Runs `cloison publication ...`.
pub(crate) async fn publication(global: &GlobalArgs, cmd: PublicationCommand) -> anyhow::Result<()> {
    match cmd {
        PublicationCommand::Ls { tenant } => {
            let publications = controller(global)?.list_publications(tenant.as_deref()).await?;
            let headers = ["TENANT", "NAME", "HOST", "HOST ADDRESS", "HOST PORT", "ENDPOINT", "PORT", "PROTOCOL"];
            output::table(global.output, &publications, &headers, |p| {
                vec![
                    p.tenant.clone(),
                    p.name.clone(),
                    p.host.clone(),
                    p.host_ip.map_or_else(|| "*".to_string(), |ip| ip.to_string()),
                    p.host_port.to_string(),
                    p.endpoint.clone(),
                    p.port.to_string(),
                    p.protocol.to_string(),
                ]
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(name: &str, endpoint: &str, host_ip: Option<&str>, protocol: PublishProtocol) -> Publication {
        Publication {
            id: format!("id-{name}"),
            tenant: "blue".into(),
            name: name.into(),
            endpoint: endpoint.into(),
            endpoint_id: format!("id-{endpoint}"),
            host: "h1".into(),
            host_ip: host_ip.map(|ip| ip.parse().expect("address")),
            host_port: 8080,
            port: 80,
            protocol,
            resource_version: 1,
        }
    }

    fn request(host_ip: Option<&str>) -> UnpublishRequest<'static> {
        UnpublishRequest {
            tenant: "blue",
            endpoint: "web-1",
            host_port: 8080,
            protocol: PublishProtocol::Tcp,
            host_ip: host_ip.map(|ip| ip.parse().expect("address")),
        }
    }

    /// Two addresses of one host port, the first stored under a name without its address.
    fn two_addresses() -> Vec<Publication> {
        vec![
            publication("web-1-8080-tcp", "web-1", Some("127.0.0.1"), PublishProtocol::Tcp),
            publication("web-1-127.0.0.2-8080-tcp", "web-1", Some("127.0.0.2"), PublishProtocol::Tcp),
            publication("web-1-8080-udp", "web-1", None, PublishProtocol::Udp),
            publication("web-2-8080-tcp", "web-2", None, PublishProtocol::Tcp),
        ]
    }

    #[test]
    fn select_by_host_ip() {
        let publications = two_addresses();
        let first = request(Some("127.0.0.1")).select(&publications).expect("127.0.0.1");
        assert_eq!(first.name, "web-1-8080-tcp");
        let second = request(Some("127.0.0.2")).select(&publications).expect("127.0.0.2");
        assert_eq!(second.name, "web-1-127.0.0.2-8080-tcp");
    }

    #[test]
    fn select_ambiguous_needs_host_ip() {
        let err = request(None).select(&two_addresses()).expect_err("two addresses").to_string();
        assert!(err.contains("host port 8080/tcp of endpoint web-1 in tenant blue"), "{err}");
        assert!(err.contains("127.0.0.1 and 127.0.0.2"), "{err}");
        assert!(err.contains("--host-ip"), "{err}");
    }

    #[test]
    fn select_single_without_host_ip() {
        let publications = two_addresses();
        let bound = &publications[1..2];
        assert_eq!(request(None).select(bound).expect("one bound").name, "web-1-127.0.0.2-8080-tcp");
        let unbound = [publication("web-1-8080-tcp", "web-1", None, PublishProtocol::Tcp)];
        assert_eq!(request(None).select(&unbound).expect("one unbound").name, "web-1-8080-tcp");
        assert_eq!(request(Some("0.0.0.0")).select(&unbound).expect("0.0.0.0").name, "web-1-8080-tcp");
    }

    #[test]
    fn select_missing_names_accepted_addresses() {
        let publications = two_addresses();
        let err = request(Some("127.0.0.3")).select(&publications).expect_err("no 127.0.0.3").to_string();
        assert!(err.contains("published on 127.0.0.1 and 127.0.0.2, not on 127.0.0.3"), "{err}");
        let err = request(Some("0.0.0.0")).select(&publications).expect_err("no unbound").to_string();
        assert!(err.contains("not on 0.0.0.0"), "{err}");
        let err = request(None).select(&publications[3..]).expect_err("other endpoint").to_string();
        assert!(err.contains("is not published"), "{err}");
        assert!(err.contains("cloison publication ls --tenant blue"), "{err}");
    }
}
