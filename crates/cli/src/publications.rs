//! `cloison publish`, `cloison unpublish` and `cloison publication ls`: host ports
//! forwarded to endpoints, through the controller API.

use anyhow::Context;
use clap::{Args, Subcommand};
use cloison_client::Client;
use cloison_model::{publication_name, PublicationSpec, PublishProtocol};
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
    let (port, protocol) = match args.host_port.split_once('/') {
        Some((port, protocol)) => (port, protocol.parse::<PublishProtocol>()?),
        None => (args.host_port.as_str(), PublishProtocol::Tcp),
    };
    let port: u16 = port
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid host port {:?}: use HOSTPORT[/tcp|/udp], such as 8080/tcp", args.host_port))?;
    let name = publication_name(&args.endpoint, port, protocol);
    controller(global)?.unpublish(&args.tenant, &name).await?;
    output::one(global.output, &Removed { removed: name }, |r| format!("publication {} removed", r.removed))
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
