//! The resource verbs: thin calls to the controller API or the agent socket.

use anyhow::Context;
use cloison_agent::{AttachRequest, DetachRequest};
use cloison_client::Client;
use cloison_model::{Endpoint, Network, NetworkSpec, TenantSpec};
use serde::Serialize;

use crate::args::{
    AttachArgs, DetachArgs, EndpointCommand, GlobalArgs, NetworkCommand, NetworkCreateArgs, TenantCommand,
};
use crate::output;

fn controller(global: &GlobalArgs) -> anyhow::Result<Client> {
    Client::tcp(&global.controller).with_context(|| format!("invalid --controller {:?}", global.controller))
}

fn agent(global: &GlobalArgs) -> Client {
    Client::unix(&global.agent_socket)
}

/// Runs `cloison tenant ...`.
pub(crate) async fn tenant(global: &GlobalArgs, cmd: TenantCommand) -> anyhow::Result<()> {
    let client = controller(global)?;
    match cmd {
        TenantCommand::Create { name } => {
            let spec = TenantSpec { name, ..Default::default() };
            let tenant = client.create_tenant(&spec).await?;
            output::one(global.output, &tenant, |t| format!("tenant {} created", t.name))
        }
        TenantCommand::Ls => {
            let tenants = client.list_tenants().await?;
            output::table(global.output, &tenants, &["NAME", "ID"], |t| vec![t.name.clone(), t.id.clone()])
        }
        TenantCommand::Rm { name } => {
            client.delete_tenant(&name).await?;
            output::one(global.output, &Removed { removed: name }, |r| format!("tenant {} removed", r.removed))
        }
    }
}

/// Runs `cloison network ...`.
pub(crate) async fn network(global: &GlobalArgs, cmd: NetworkCommand) -> anyhow::Result<()> {
    let client = controller(global)?;
    match cmd {
        NetworkCommand::Create(args) => {
            let tenant = args.tenant.clone();
            let spec = network_spec(args);
            let network = client.create_network(&tenant, &spec).await?;
            output::one(global.output, &network, |n| {
                format!("network {} created: VNI {}, subnet {}, gateway {}", n.name, n.vni, n.subnet, n.gateway)
            })
        }
        NetworkCommand::Ls { tenant } => {
            let networks = client.list_networks(tenant.as_deref()).await?;
            output::table(
                global.output,
                &networks,
                &["TENANT", "NAME", "VNI", "SUBNET", "SUBNET6", "GATEWAY", "MTU"],
                network_row,
            )
        }
        NetworkCommand::Inspect { name, tenant } => {
            let network = client.get_network(&tenant, &name).await?;
            output::inspect(global.output, &network)
        }
        NetworkCommand::Rm { name, tenant } => {
            client.delete_network(&tenant, &name).await?;
            output::one(global.output, &Removed { removed: name }, |r| format!("network {} removed", r.removed))
        }
    }
}

fn network_spec(args: NetworkCreateArgs) -> NetworkSpec {
    NetworkSpec {
        name: args.name,
        subnet: args.subnet,
        subnet6: args.subnet6,
        gateway: args.gateway,
        gateway6: args.gateway6,
        vni: args.vni,
        mtu: args.mtu,
        external: args.external,
        flood: args.flood,
        labels: Default::default(),
    }
}

fn network_row(n: &Network) -> Vec<String> {
    vec![
        n.tenant.clone(),
        n.name.clone(),
        n.vni.to_string(),
        n.subnet.to_string(),
        n.subnet6.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
        n.gateway.to_string(),
        n.mtu.map(|m| m.to_string()).unwrap_or_else(|| "auto".into()),
    ]
}

/// Runs `cloison attach`.
pub(crate) async fn attach(global: &GlobalArgs, args: AttachArgs) -> anyhow::Result<()> {
    let mac = args
        .mac
        .as_deref()
        .map(str::parse)
        .transpose()
        .context("invalid --mac")?;
    let request = AttachRequest {
        tenant: args.tenant,
        network: args.network,
        target: args.target,
        name: args.name,
        ipv4: args.ip,
        ipv6: args.ip6,
        mac,
        ifname: Some(args.ifname),
        groups: args.groups,
        labels: Default::default(),
    };
    let endpoint: Endpoint = agent(global).post("/v1/attach", &request).await?;
    output::one(global.output, &endpoint, |e| {
        format!("endpoint {} attached: {} {} on {}", e.name, e.ipv4, e.mac, e.host)
    })
}

/// Runs `cloison detach`.
pub(crate) async fn detach(global: &GlobalArgs, args: DetachArgs) -> anyhow::Result<()> {
    let request = DetachRequest {
        tenant: args.tenant,
        endpoint: args.endpoint,
    };
    let endpoint: Endpoint = agent(global).post("/v1/detach", &request).await?;
    output::one(global.output, &endpoint, |e| format!("endpoint {} detached", e.name))
}

/// Runs `cloison endpoint ...`.
pub(crate) async fn endpoint(global: &GlobalArgs, cmd: EndpointCommand) -> anyhow::Result<()> {
    let client = controller(global)?;
    match cmd {
        EndpointCommand::Ls { tenant, network } => {
            let endpoints = client
                .list_endpoints(tenant.as_deref(), network.as_deref(), None)
                .await?;
            output::table(
                global.output,
                &endpoints,
                &["TENANT", "NAME", "NETWORK", "HOST", "IPV4", "MAC"],
                |e| {
                    vec![
                        e.tenant.clone(),
                        e.name.clone(),
                        e.network.clone(),
                        e.host.clone(),
                        e.ipv4.to_string(),
                        e.mac.to_string(),
                    ]
                },
            )
        }
        EndpointCommand::Inspect { name, tenant } => {
            let endpoint = client.get_endpoint(&tenant, &name).await?;
            output::inspect(global.output, &endpoint)
        }
        EndpointCommand::Update(args) => crate::groups::update_endpoint(global, args).await,
    }
}

#[derive(Debug, Serialize)]
struct Removed {
    removed: String,
}
