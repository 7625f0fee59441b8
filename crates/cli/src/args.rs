//! Command-line arguments of `cloison`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::{Ipv4Net, Ipv6Net};

/// cloison: watertight container networks over VXLAN, programmed into the Linux kernel.
///
/// Start everything on one machine with `cloison up`, then create a network and attach
/// namespaces or containers to it:
///
///   cloison up &
///   cloison network create web --tenant blue --subnet 10.10.0.0/24
///   ip netns add c1 && cloison attach web netns:c1 --tenant blue
///   cloison endpoint ls
#[derive(Debug, Parser)]
#[command(name = "cloison", version, propagate_version = true, verbatim_doc_comment)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every verb accepts.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Controller URL; several URLs separated by commas are tried in order.
    #[arg(long, global = true, env = "CLOISON_CONTROLLER", default_value = "http://127.0.0.1:7420")]
    pub(crate) controller: String,
    /// Path of the local agent's socket.
    #[arg(long, global = true, env = "CLOISON_AGENT_SOCKET", default_value = "/run/cloison/agent.sock")]
    pub(crate) agent_socket: PathBuf,
    /// Output format of results.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub(crate) output: OutputFormat,
    /// Log format of long-running commands (up, controller, agent).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// Log filter, as in RUST_LOG (for example `info` or `cloison_agent=debug`).
    #[arg(long, global = true, env = "CLOISON_LOG", default_value = "info")]
    pub(crate) log_level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a controller and an agent in one foreground process with the embedded store.
    Up(UpArgs),
    /// Run the controller alone (API server and store).
    Controller(ControllerArgs),
    /// Run the agent of this host.
    Agent(AgentArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Attach a network namespace or container to a network, through the local agent.
    #[command(after_help = "Examples:\n  cloison attach web netns:c1 --tenant blue\n  cloison attach web pid:4242 --tenant blue --ip 10.10.0.20 --ifname eth1\n  cloison attach web docker:my-container --tenant blue")]
    Attach(AttachArgs),
    /// Detach an endpoint: remove its interface and free its addresses.
    Detach(DetachArgs),
    /// Inspect endpoints.
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Manage security groups and their rules.
    #[command(subcommand)]
    Group(crate::groups::GroupCommand),
    /// Forward a host port of the endpoint's host to a port of the endpoint.
    #[command(after_help = "Examples:\n  cloison publish web-1 8080:80 --tenant blue\n  cloison publish dns-1 127.0.0.1:5353:53/udp --tenant blue")]
    Publish(crate::publications::PublishArgs),
    /// Stop forwarding a host port published with `cloison publish`.
    Unpublish(crate::publications::UnpublishArgs),
    /// List publications.
    #[command(subcommand)]
    Publication(crate::publications::PublicationCommand),
    /// Show the controller's and the local agent's state.
    #[command(after_help = crate::status::EXIT_STATUS_HELP)]
    Status,
    /// Build, use and remove multi-host labs on this machine.
    #[command(subcommand)]
    Lab(crate::lab::LabCommand),
    /// Export and import the whole store, to back it up or move it between redb and etcd.
    #[command(subcommand)]
    Admin(crate::admin::AdminCommand),
}

/// Options of `cloison up`.
#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Directory of the embedded store.
    #[arg(long, default_value = "/var/lib/cloison")]
    pub(crate) data_dir: PathBuf,
    /// Address the controller API listens on.
    #[arg(long, default_value = "127.0.0.1:7420")]
    pub(crate) listen: SocketAddr,
    /// Path of the agent's local socket (default: the --agent-socket path, so that the
    /// agent serves where the other verbs look for it).
    #[arg(long)]
    pub(crate) socket: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) host: HostArgs,
    #[command(flatten)]
    pub(crate) docker: crate::docker_driver::DockerArgs,
}

/// Options of `cloison controller`.
#[derive(Debug, Args)]
pub(crate) struct ControllerArgs {
    /// Address the API listens on.
    #[arg(long, default_value = "127.0.0.1:7420")]
    pub(crate) listen: SocketAddr,
    #[command(flatten)]
    pub(crate) store: crate::store::StoreArgs,
}

/// Options of `cloison agent`.
#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// Path of the agent's local socket (default: the --agent-socket path, so that the
    /// agent serves where the other verbs look for it).
    #[arg(long)]
    pub(crate) socket: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) host: HostArgs,
    #[command(flatten)]
    pub(crate) docker: crate::docker_driver::DockerArgs,
}

/// Returns the socket an agent serves: `--socket` when given, else the global
/// `--agent-socket` (or `CLOISON_AGENT_SOCKET`), which the CLI's verbs connect to.
pub(crate) fn served_socket<'a>(socket: Option<&'a Path>, global: &'a GlobalArgs) -> &'a Path {
    socket.unwrap_or(&global.agent_socket)
}

/// Identity and underlay settings this host registers with the controller.
#[derive(Debug, Args)]
pub(crate) struct HostArgs {
    /// Name of this host (default: the system host name).
    #[arg(long)]
    pub(crate) host: Option<String>,
    /// Underlay address of this host's VTEP (default: the address of the default route's interface, or 127.0.0.1).
    #[arg(long)]
    pub(crate) underlay_ip: Option<IpAddr>,
    /// Underlay MTU in bytes (default: the MTU of the interface holding the underlay address).
    #[arg(long)]
    pub(crate) underlay_mtu: Option<u32>,
    /// UDP destination port of VXLAN.
    #[arg(long, default_value_t = 4789)]
    pub(crate) vxlan_port: u16,
    /// Directory of the agent's runtime files (router namespace pins).
    #[arg(long, default_value = "/run/cloison")]
    pub(crate) run_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TenantCommand {
    /// Create a tenant.
    Create { name: String },
    /// List tenants.
    Ls,
    /// Delete a tenant that has no networks.
    Rm { name: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum NetworkCommand {
    /// Create a network (and its tenant, if new).
    Create(NetworkCreateArgs),
    /// List networks.
    Ls {
        /// Only this tenant's networks.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Show one network.
    Inspect {
        /// Network name.
        name: String,
        /// Tenant of the network.
        #[arg(long)]
        tenant: String,
    },
    /// Delete a network that has no endpoints and that no security-group rule names.
    Rm {
        /// Network name.
        name: String,
        /// Tenant of the network.
        #[arg(long)]
        tenant: String,
    },
}

/// Options of `cloison network create`.
#[derive(Debug, Args)]
pub(crate) struct NetworkCreateArgs {
    /// Network name: 1-63 characters of a-z, 0-9 and '-'.
    pub(crate) name: String,
    /// Tenant the network belongs to.
    #[arg(long)]
    pub(crate) tenant: String,
    /// IPv4 subnet, /8 to /30, for example 10.10.0.0/24.
    #[arg(long, value_parser = crate::subnets::parse_subnet4)]
    pub(crate) subnet: Ipv4Net,
    /// Optional IPv6 subnet, /64 to /120, for example fd00:10::/64.
    #[arg(long, value_parser = crate::subnets::parse_subnet6)]
    pub(crate) subnet6: Option<Ipv6Net>,
    /// IPv4 gateway address (default: the first usable address).
    #[arg(long)]
    pub(crate) gateway: Option<Ipv4Addr>,
    /// IPv6 gateway address (default: the subnet's first address after the network address).
    #[arg(long)]
    pub(crate) gateway6: Option<Ipv6Addr>,
    /// VXLAN network identifier, 1 to 16777215 (default: allocated).
    #[arg(long)]
    pub(crate) vni: Option<u32>,
    /// Overlay MTU in bytes (default: each host's underlay MTU minus the VXLAN overhead).
    #[arg(long)]
    pub(crate) mtu: Option<u32>,
    /// Let endpoints reach the outside through source NAT.
    #[arg(long)]
    pub(crate) external: bool,
    /// Replicate broadcast and unknown unicast to every host of the network.
    #[arg(long)]
    pub(crate) flood: bool,
}

/// Options of `cloison attach`.
#[derive(Debug, Args)]
pub(crate) struct AttachArgs {
    /// Network to join.
    pub(crate) network: String,
    /// What to attach: netns:NAME, pid:PID, docker:CONTAINER, or a path to a network namespace.
    pub(crate) target: String,
    /// Tenant of the network.
    #[arg(long)]
    pub(crate) tenant: String,
    /// Endpoint name (default: the network name and part of the endpoint id).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// IPv4 address (default: the next free one).
    #[arg(long)]
    pub(crate) ip: Option<Ipv4Addr>,
    /// IPv6 address, on dual-stack networks (default: the next free one).
    #[arg(long)]
    pub(crate) ip6: Option<Ipv6Addr>,
    /// MAC address (default: allocated, locally administered).
    #[arg(long)]
    pub(crate) mac: Option<String>,
    /// Interface name inside the namespace, at most 15 bytes.
    #[arg(long, default_value = "eth0")]
    pub(crate) ifname: String,
    /// Security group to join; repeat for several.
    #[arg(long = "group")]
    pub(crate) groups: Vec<String>,
}

/// Options of `cloison detach`.
#[derive(Debug, Args)]
pub(crate) struct DetachArgs {
    /// Endpoint name, as `cloison endpoint ls` shows it. An endpoint of another host is
    /// detached too: its record is deleted, and that host's agent removes the interface.
    pub(crate) endpoint: String,
    /// Tenant of the endpoint.
    #[arg(long)]
    pub(crate) tenant: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EndpointCommand {
    /// List endpoints.
    Ls {
        /// Only this tenant's endpoints.
        #[arg(long)]
        tenant: Option<String>,
        /// Only the endpoints of networks with this name.
        #[arg(long)]
        network: Option<String>,
        /// Only the endpoints on the host with this name, as the HOST column shows it.
        #[arg(long)]
        host: Option<String>,
    },
    /// Show one endpoint.
    Inspect {
        /// Endpoint name.
        name: String,
        /// Tenant of the endpoint.
        #[arg(long)]
        tenant: String,
    },
    /// Replace the security groups of an endpoint.
    Update(crate::groups::EndpointUpdateArgs),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_ls_takes_filters() {
        let args = ["cloison", "endpoint", "ls", "--tenant", "blue", "--network", "web", "--host", "h1"];
        let cli = Cli::try_parse_from(args).expect("endpoint ls with every filter");
        let Command::Endpoint(EndpointCommand::Ls { tenant, network, host }) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(tenant.as_deref(), Some("blue"));
        assert_eq!(network.as_deref(), Some("web"));
        assert_eq!(host.as_deref(), Some("h1"));
    }

    #[test]
    fn up_serves_agent_socket_option() {
        let cli = Cli::try_parse_from(["cloison", "up", "--agent-socket", "/tmp/a.sock"]).expect("up");
        let Command::Up(args) = &cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(served_socket(args.socket.as_deref(), &cli.global), Path::new("/tmp/a.sock"));
    }

    #[test]
    fn agent_socket_option_wins_over_global() {
        let argv = ["cloison", "agent", "--agent-socket", "/tmp/a.sock", "--socket", "/tmp/b.sock"];
        let cli = Cli::try_parse_from(argv).expect("agent");
        let Command::Agent(args) = &cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(served_socket(args.socket.as_deref(), &cli.global), Path::new("/tmp/b.sock"));
    }
}
