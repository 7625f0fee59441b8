//! Security-group rules that name another resource as their peer, and the CLI command
//! that removes such a rule, for the errors of deletes those rules block.

use cloison_model::{Direction, Peer, Protocol, Rule, SecurityGroup};

use crate::remedy::name_users;

/// One rule of a group that names a resource which is about to be deleted.
#[derive(Debug, Clone)]
pub(crate) struct RuleRef {
    pub(crate) group: String,
    pub(crate) rule: Rule,
}

/// Returns every rule of `groups` whose peer is `peer`, in group order.
pub(crate) fn rules_naming(groups: &[SecurityGroup], peer: &Peer) -> Vec<RuleRef> {
    groups
        .iter()
        .flat_map(|group| {
            group
                .rules
                .iter()
                .filter(|rule| rule.peer == *peer)
                .map(|rule| RuleRef { group: group.name.clone(), rule: rule.clone() })
        })
        .collect()
}

/// Describes up to five rules for an "in use" error, such as
/// `1 security group rule(s): "ingress from network:web tcp port 80" of security group g1`.
pub(crate) fn describe(refs: &[RuleRef]) -> String {
    let descriptions: Vec<String> =
        refs.iter().map(|r| format!("\"{}\" of security group {}", r.rule, r.group)).collect();
    format!("{} security group rule(s): {}", refs.len(), name_users(&descriptions))
}

/// Returns the `cloison group rule rm` command that removes `rule` from `group`.
pub(crate) fn rm_command(tenant: &str, group: &str, rule: &Rule) -> String {
    let mut command = match rule.direction {
        Direction::Ingress => format!("cloison group rule rm {group} --ingress --from {}", rule.peer),
        Direction::Egress => format!("cloison group rule rm {group} --egress --to {}", rule.peer),
    };
    if rule.protocol != Protocol::Any {
        command.push_str(&format!(" --proto {}", rule.protocol));
    }
    match rule.ports {
        Some((first, last)) if first == last => command.push_str(&format!(" --port {first}")),
        Some((first, last)) => command.push_str(&format!(" --port {first}-{last}")),
        None => {}
    }
    command.push_str(&format!(" --tenant {tenant}"));
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rm_command_repeats_every_option() {
        let rule = Rule {
            direction: Direction::Egress,
            protocol: Protocol::Udp,
            ports: Some((8000, 8080)),
            peer: Peer::Network("db".into()),
        };
        assert_eq!(
            rm_command("blue", "g1", &rule),
            "cloison group rule rm g1 --egress --to network:db --proto udp --port 8000-8080 --tenant blue"
        );
    }

    #[test]
    fn rm_command_leaves_out_defaults() {
        let rule = Rule { direction: Direction::Ingress, protocol: Protocol::Any, ports: None, peer: Peer::Any };
        assert_eq!(rm_command("blue", "g1", &rule), "cloison group rule rm g1 --ingress --from any --tenant blue");
    }
}
