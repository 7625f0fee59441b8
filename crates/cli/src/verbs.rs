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
    output::one(global.output, &endpoint, attached_text)
}

/// Renders an attached endpoint as one line, with its IPv6 address after the IPv4
/// one on a dual-stack network.
fn attached_text(endpoint: &Endpoint) -> String {
    let addresses = match endpoint.ipv6 {
        Some(ipv6) => format!("{} {ipv6}", endpoint.ipv4),
        None => endpoint.ipv4.to_string(),
    };
    format!("endpoint {} attached: {addresses} {} on {}", endpoint.name, endpoint.mac, endpoint.host)
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
        EndpointCommand::Ls { tenant, network, host } => {
            let endpoints = client
                .list_endpoints(tenant.as_deref(), network.as_deref(), host.as_deref())
                .await?;
            output::table(global.output, &endpoints, ENDPOINT_HEADERS, endpoint_row)
        }
        EndpointCommand::Inspect { name, tenant } => {
            let endpoint = client.get_endpoint(&tenant, &name).await?;
            output::inspect(global.output, &endpoint)
        }
        EndpointCommand::Update(args) => crate::groups::update_endpoint(global, args).await,
    }
}

const ENDPOINT_HEADERS: &[&str] = &["TENANT", "NAME", "NETWORK", "HOST", "IPV4", "IPV6", "MAC"];

/// Returns the cells of one endpoint under [`ENDPOINT_HEADERS`], with `-` for a missing IPv6 address.
fn endpoint_row(endpoint: &Endpoint) -> Vec<String> {
    vec![
        endpoint.tenant.clone(),
        endpoint.name.clone(),
        endpoint.network.clone(),
        endpoint.host.clone(),
        endpoint.ipv4.to_string(),
        endpoint.ipv6.map_or_else(|| "-".to_string(), |ipv6| ipv6.to_string()),
        endpoint.mac.to_string(),
    ]
}

#[derive(Debug, Serialize)]
struct Removed {
    removed: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str, ipv6: Option<&str>) -> Endpoint {
        Endpoint {
            id: format!("id-{name}"),
            tenant: "blue".into(),
            name: name.into(),
            network: "web".into(),
            network_id: "id-web".into(),
            host: "h1".into(),
            mac: "0a:58:0a:0a:00:02".parse().expect("MAC"),
            ipv4: "10.10.0.2".parse().expect("IPv4"),
            ipv6: ipv6.map(|a| a.parse().expect("IPv6")),
            ifname: "eth0".into(),
            sandbox: "/run/netns/c1".into(),
            groups: Vec::new(),
            labels: Default::default(),
            resource_version: 1,
        }
    }

    #[test]
    fn attached_text_shows_ipv6() {
        let text = attached_text(&endpoint("web-1", Some("fd00:10::2")));
        assert_eq!(text, "endpoint web-1 attached: 10.10.0.2 fd00:10::2 0a:58:0a:0a:00:02 on h1");
        let text = attached_text(&endpoint("web-1", None));
        assert_eq!(text, "endpoint web-1 attached: 10.10.0.2 0a:58:0a:0a:00:02 on h1");
    }

    #[test]
    fn endpoint_table_has_ipv6_column() {
        let rows = vec![
            endpoint_row(&endpoint("web-1", Some("fd00:10::2"))),
            endpoint_row(&endpoint("web-2", None)),
        ];
        let text = output::table_text(ENDPOINT_HEADERS, rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let column = lines[0].find("IPV6").expect("an IPV6 header");
        assert_eq!(lines[1].find("fd00:10::2"), Some(column), "{text}");
        assert_eq!(lines[2].find(" - ").map(|at| at + 1), Some(column), "{text}");
        let mac_column = lines[0].find("MAC").expect("a MAC header");
        for line in &lines[1..] {
            assert_eq!(line.find("0a:58:0a:0a:00:02"), Some(mac_column), "{text}");
        }
    }
}
