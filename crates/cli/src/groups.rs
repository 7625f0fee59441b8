//! `cloison group ...` and `cloison endpoint update`: security groups and the
//! groups of an endpoint, through the controller API.

use anyhow::Context;
use clap::{ArgGroup, Args, Subcommand};
use cloison_client::Client;
use cloison_model::{Direction, EndpointUpdate, Peer, Protocol, Rule, SecurityGroup, SecurityGroupSpec};
use serde::Serialize;

use crate::args::GlobalArgs;
use crate::output;

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// Create a security group with no rules.
    Create {
        /// Group name: 1-63 characters of a-z, 0-9 and '-'.
        name: String,
        /// Tenant the group belongs to, which must exist.
        #[arg(long)]
        tenant: String,
    },
    /// List the security groups of a tenant.
    Ls {
        /// Tenant whose groups are listed.
        #[arg(long)]
        tenant: String,
    },
    /// Show one security group as JSON.
    Inspect {
        /// Group name.
        name: String,
        /// Tenant of the group.
        #[arg(long)]
        tenant: String,
    },
    /// Remove a security group that no endpoint lists and no other group's rule names.
    Rm {
        /// Group name.
        name: String,
        /// Tenant of the group.
        #[arg(long)]
        tenant: String,
    },
    /// Add or remove rules.
    #[command(subcommand)]
    Rule(RuleCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum RuleCommand {
    /// Add an allow rule to a group.
    #[command(after_help = "Examples:\n  cloison group rule add web --ingress --proto tcp --port 80 --from network:front --tenant blue\n  cloison group rule add web --ingress --proto icmp --from 10.0.0.0/8 --tenant blue")]
    Add(RuleArgs),
    /// Remove the rule given with the same options as when it was added.
    Rm(RuleArgs),
}

/// A rule on the command line.
#[derive(Debug, Args)]
pub(crate) struct RuleArgs {
    /// Group the rule belongs to.
    group: String,
    /// Allow flows towards the group's members.
    #[arg(long, conflicts_with = "egress", required_unless_present = "egress")]
    ingress: bool,
    /// Allow flows from the group's members.
    #[arg(long)]
    egress: bool,
    /// Protocol: tcp, udp, icmp or any.
    #[arg(long, default_value = "any")]
    proto: Protocol,
    /// Destination port or range, such as 80 or 8000-8080 (tcp and udp only).
    #[arg(long, value_parser = parse_ports)]
    port: Option<(u16, u16)>,
    /// Source of an ingress rule: a CIDR, group:NAME, network:NAME or any.
    #[arg(long, conflicts_with = "to")]
    from: Option<Peer>,
    /// Destination of an egress rule: a CIDR, group:NAME, network:NAME or any.
    #[arg(long)]
    to: Option<Peer>,
    /// Tenant of the group.
    #[arg(long)]
    tenant: String,
}

/// Options of `cloison endpoint update`. Exactly one of `--group` and `--no-groups` is
/// required, so an update that names no group cannot take every group away by accident.
#[derive(Debug, Args)]
#[command(group = ArgGroup::new("membership").required(true).multiple(false).args(["groups", "no_groups"]))]
pub(crate) struct EndpointUpdateArgs {
    /// Endpoint name, as `cloison endpoint ls` shows it.
    name: String,
    /// Security group the endpoint belongs to; repeat for several. The list replaces
    /// the current one.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Remove the endpoint from every group.
    #[arg(long)]
    no_groups: bool,
    /// Tenant of the endpoint.
    #[arg(long)]
    tenant: String,
}

impl RuleArgs {
    /// Builds the rule. A peer option of the other direction is rejected, because
    /// `--ingress --to X` would otherwise be stored as "ingress from X".
    fn rule(&self) -> anyhow::Result<Rule> {
        let (direction, peer, misplaced) = if self.egress {
            (Direction::Egress, &self.to, self.from.is_some().then_some(("--from", "--egress")))
        } else {
            (Direction::Ingress, &self.from, self.to.is_some().then_some(("--to", "--ingress")))
        };
        if let Some((option, flag)) = misplaced {
            anyhow::bail!(
                "{option} cannot be used with {flag}: --from goes with --ingress (where flows to the \
                 group's members come from) and --to with --egress (where flows from them go)"
            );
        }
        Ok(Rule { direction, protocol: self.proto, ports: self.port, peer: peer.clone().unwrap_or_default() })
    }
}

fn parse_ports(text: &str) -> Result<(u16, u16), String> {
    let invalid = |_| format!("invalid port {text:?}: use a number from 1 to 65535 or a range such as 8000-8080");
    match text.split_once('-') {
        Some((first, last)) => Ok((first.parse().map_err(invalid)?, last.parse().map_err(invalid)?)),
        None => {
            let port = text.parse().map_err(invalid)?;
            Ok((port, port))
        }
    }
}

fn controller(global: &GlobalArgs) -> anyhow::Result<Client> {
    Client::tcp(&global.controller).with_context(|| format!("invalid --controller {:?}", global.controller))
}

#[derive(Serialize)]
struct Removed {
    removed: String,
}

/// Runs `cloison group ...`.
pub(crate) async fn group(global: &GlobalArgs, cmd: GroupCommand) -> anyhow::Result<()> {
    let client = controller(global)?;
    match cmd {
        GroupCommand::Create { name, tenant } => {
            let spec = SecurityGroupSpec { name, ..Default::default() };
            let group = client.create_group(&tenant, &spec).await?;
            output::one(global.output, &group, |g| format!("security group {} created", g.name))
        }
        GroupCommand::Ls { tenant } => {
            let groups = client.list_groups(&tenant).await?;
            output::table(global.output, &groups, &["NAME", "RULES"], |g| vec![g.name.clone(), g.rules.len().to_string()])
        }
        GroupCommand::Inspect { name, tenant } => {
            let group = client.get_group(&tenant, &name).await?;
            output::raw(&serde_json::to_string_pretty(&group)?);
            Ok(())
        }
        GroupCommand::Rm { name, tenant } => {
            client.delete_group(&tenant, &name).await?;
            output::one(global.output, &Removed { removed: name }, |r| format!("security group {} removed", r.removed))
        }
        GroupCommand::Rule(RuleCommand::Add(args)) => {
            let rule = args.rule()?;
            let group = client.add_rule(&args.tenant, &args.group, &rule).await?;
            output::one(global.output, &group, |g| rule_message(g, &rule, "added to"))
        }
        GroupCommand::Rule(RuleCommand::Rm(args)) => {
            let rule = args.rule()?;
            let group = client.remove_rule(&args.tenant, &args.group, &rule).await?;
            output::one(global.output, &group, |g| rule_message(g, &rule, "removed from"))
        }
    }
}

fn rule_message(group: &SecurityGroup, rule: &Rule, verb: &str) -> String {
    format!("rule \"{rule}\" {verb} security group {}", group.name)
}

/// Runs `cloison endpoint update`: reads the endpoint, then sends its version with
/// the new groups, so a concurrent change is rejected instead of overwritten.
pub(crate) async fn update_endpoint(global: &GlobalArgs, args: EndpointUpdateArgs) -> anyhow::Result<()> {
    let client = controller(global)?;
    let current = client.get_endpoint(&args.tenant, &args.name).await?;
    let groups = if args.no_groups { Vec::new() } else { args.groups };
    let update = EndpointUpdate {
        resource_version: current.resource_version,
        groups: Some(groups),
        labels: None,
    };
    let endpoint = client.update_endpoint(&args.tenant, &args.name, &update).await?;
    output::one(global.output, &endpoint, |e| format!("endpoint {} is in groups [{}]", e.name, e.groups.join(", ")))
}
