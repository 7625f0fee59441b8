//! Security groups: create, read, delete, and rule changes, each one transaction.

use cloison_model::{validate_name, Endpoint, Peer, Rule, SecurityGroup, SecurityGroupSpec};
use cloison_store::{Compare, KeyValue, Op};

use crate::controller::{new_id, pause_before_retry, TXN_ATTEMPTS};
use crate::records::encode;
use crate::remedy::{name_users, Remedy};
use crate::rule_refs::{self, RuleRef};
use crate::{keys, Controller, ControllerError};

impl Controller {
    /// Creates a security group in an existing tenant.
    pub async fn create_group(&self, tenant: &str, spec: SecurityGroupSpec) -> Result<SecurityGroup, ControllerError> {
        validate_name("security group", &spec.name)?;
        let tenant_key = keys::tenant(tenant);
        let Some(tenant_kv) = self.store.get(&tenant_key).await? else {
            return Err(ControllerError::NotFound { kind: "tenant", name: tenant.to_string() });
        };
        let mut peer_compares = Vec::new();
        for rule in &spec.rules {
            peer_compares.extend(self.check_rule(tenant, &spec.name, rule).await?);
        }
        let mut group = SecurityGroup {
            id: new_id(),
            tenant: tenant.to_string(),
            name: spec.name,
            rules: dedup(spec.rules),
            labels: spec.labels,
            resource_version: 0,
        };
        let key = keys::group(tenant, &group.name);
        // Rewriting the tenant guard makes a concurrent tenant delete fail and re-read,
        // and comparing the tenant key fails this create if the tenant went first.
        let mut compares = vec![Compare::Absent(key.clone()), Compare::ModRevision(tenant_key.clone(), tenant_kv.mod_revision)];
        compares.extend(peer_compares);
        let ops = vec![
            Op::Put { key: key.clone(), value: encode(&group) },
            Op::Put { key: keys::tenant_guard(tenant), value: b"{}".to_vec() },
        ];
        let response = self.store.txn(compares, ops).await?;
        if !response.succeeded {
            // Name a network that a rule names and that was deleted since the check.
            for rule in &group.rules {
                self.check_rule(tenant, &group.name, rule).await?;
            }
            if self.store.get(&tenant_key).await?.is_none() {
                return Err(ControllerError::NotFound { kind: "tenant", name: tenant.to_string() });
            }
            return Err(ControllerError::AlreadyExists {
                kind: "security group",
                name: format!("{} in tenant {tenant}", group.name),
            });
        }
        group.resource_version = response.revision;
        tracing::info!(tenant.name = %tenant, group.name = %group.name, group.id = %group.id, "security group created");
        Ok(group)
    }

    pub async fn list_groups(&self, tenant: &str) -> Result<Vec<SecurityGroup>, ControllerError> {
        self.list(&keys::groups_of(tenant)).await
    }

    pub async fn get_group(&self, tenant: &str, name: &str) -> Result<SecurityGroup, ControllerError> {
        Ok(self.read_group(tenant, name).await?.0)
    }

    async fn read_group(&self, tenant: &str, name: &str) -> Result<(SecurityGroup, KeyValue), ControllerError> {
        self.read(&keys::group(tenant, name)).await?.ok_or_else(|| ControllerError::NotFound {
            kind: "security group",
            name: format!("{name} in tenant {tenant}"),
        })
    }

    /// Deletes a group that no endpoint lists and no other group's rule names.
    ///
    /// Limitation: an endpoint created or updated with this group between the check
    /// and the delete keeps naming a missing group, which then allows nothing extra.
    pub async fn delete_group(&self, tenant: &str, name: &str) -> Result<(), ControllerError> {
        let (_, kv) = self.read_group(tenant, name).await?;
        let endpoints: Vec<Endpoint> = self.list(&keys::endpoints_of(tenant)).await?;
        let members: Vec<&str> = endpoints
            .iter()
            .filter(|e| e.groups.iter().any(|g| g == name))
            .map(|e| e.name.as_str())
            .collect();
        let others: Vec<SecurityGroup> =
            self.list_groups(tenant).await?.into_iter().filter(|g| g.name != name).collect();
        let referrers = rule_refs::rules_naming(&others, &Peer::Group(name.to_string()));
        if !members.is_empty() || !referrers.is_empty() {
            return Err(in_use(tenant, name, &members, &referrers));
        }
        let compares = vec![Compare::ModRevision(kv.key.clone(), kv.mod_revision)];
        if !self.store.txn(compares, vec![Op::Delete { key: kv.key }]).await?.succeeded {
            return Err(ControllerError::Contention { what: format!("deleting security group {name} in tenant {tenant}") });
        }
        tracing::info!(tenant.name = %tenant, group.name = %name, "security group deleted");
        Ok(())
    }

    /// Adds a rule to a group; adding a rule the group already has is rejected.
    pub async fn add_rule(&self, tenant: &str, name: &str, rule: Rule) -> Result<SecurityGroup, ControllerError> {
        self.change_rules(tenant, name, Some(&rule), |rules| {
            if rules.contains(&rule) {
                return Err(ControllerError::AlreadyExists {
                    kind: "rule",
                    name: format!("\"{rule}\" in security group {name}"),
                });
            }
            rules.push(rule.clone());
            Ok(())
        })
        .await
    }

    /// Removes the rule equal to `rule` from a group.
    pub async fn remove_rule(&self, tenant: &str, name: &str, rule: Rule) -> Result<SecurityGroup, ControllerError> {
        self.change_rules(tenant, name, None, |rules| {
            let before = rules.len();
            rules.retain(|r| *r != rule);
            if rules.len() == before {
                return Err(ControllerError::NotFound { kind: "rule", name: format!("\"{rule}\" in security group {name}") });
            }
            Ok(())
        })
        .await
    }

    /// Reads a group, applies `change` to its rules and writes it back unless another
    /// writer changed it in between, in which case it reads again. `added`, the rule
    /// being added if any, is checked on every attempt, and the write also fails if the
    /// network it names is deleted meanwhile.
    async fn change_rules<F>(
        &self,
        tenant: &str,
        name: &str,
        added: Option<&Rule>,
        change: F,
    ) -> Result<SecurityGroup, ControllerError>
    where
        F: Fn(&mut Vec<Rule>) -> Result<(), ControllerError>,
    {
        for attempt in 0..TXN_ATTEMPTS {
            pause_before_retry(attempt).await;
            let mut compares = Vec::new();
            if let Some(rule) = added {
                compares.extend(self.check_rule(tenant, name, rule).await?);
            }
            let (mut group, kv) = self.read_group(tenant, name).await?;
            change(&mut group.rules)?;
            compares.push(Compare::ModRevision(kv.key.clone(), kv.mod_revision));
            let ops = vec![Op::Put { key: kv.key, value: encode(&group) }];
            let response = self.store.txn(compares, ops).await?;
            if response.succeeded {
                group.resource_version = response.revision;
                tracing::info!(tenant.name = %tenant, group.name = %name, rules = group.rules.len(), "security group rules changed");
                return Ok(group);
            }
        }
        Err(ControllerError::Contention { what: format!("changing the rules of security group {name} in tenant {tenant}") })
    }

    /// Checks a rule, and that the group or network it names exists in the tenant. A
    /// rule may name its own group.
    ///
    /// For a rule that names a network, returns a comparison that succeeds while the
    /// network exists, because a network record is never rewritten after its creation. A write
    /// that includes it fails if `delete_network` removed the network after this check.
    /// NOTE: a group peer gets no such comparison, so a group deleted meanwhile can
    /// still be named by the rule.
    async fn check_rule(&self, tenant: &str, group: &str, rule: &Rule) -> Result<Option<Compare>, ControllerError> {
        rule.validate()?;
        let (kind, key, peer) = match &rule.peer {
            Peer::Group(peer) if peer != group => ("security group", keys::group(tenant, peer), peer),
            Peer::Network(peer) => ("network", keys::network(tenant, peer), peer),
            _ => return Ok(None),
        };
        let Some(kv) = self.store.get(&key).await? else {
            return Err(ControllerError::BadRequest(format!(
                "the rule names {kind} {peer}, which tenant {tenant} does not have; create it first"
            )));
        };
        match rule.peer {
            Peer::Network(_) => Ok(Some(Compare::ModRevision(key, kv.mod_revision))),
            _ => Ok(None),
        }
    }

    /// Fails unless every group in `groups` exists in the tenant.
    pub(crate) async fn require_groups(&self, tenant: &str, groups: &[String]) -> Result<(), ControllerError> {
        for group in groups {
            validate_name("security group", group)?;
            if self.store.get(&keys::group(tenant, group)).await?.is_none() {
                return Err(ControllerError::BadRequest(format!(
                    "security group {group} does not exist in tenant {tenant}; create it with `cloison group create {group} --tenant {tenant}`"
                )));
            }
        }
        Ok(())
    }
}

fn dedup(mut rules: Vec<Rule>) -> Vec<Rule> {
    let mut seen = std::collections::BTreeSet::new();
    rules.retain(|rule| seen.insert(rule.clone()));
    rules
}

fn in_use(tenant: &str, name: &str, members: &[&str], referrers: &[RuleRef]) -> ControllerError {
    let mut users = Vec::new();
    let mut remedy = Remedy::default();
    if let Some(first) = members.first() {
        users.push(format!("{} endpoint(s): {}", members.len(), name_users(members)));
        let command = format!("cloison endpoint update {first} --no-groups --tenant {tenant}");
        let alternative = "`--group GROUP` for each group to keep in place of `--no-groups`";
        remedy.step_or("take the group off those endpoints", command, alternative);
    }
    if let Some(first) = referrers.first() {
        users.push(rule_refs::describe(referrers));
        remedy.step("remove those rules", rule_refs::rm_command(tenant, &first.group, &first.rule));
    }
    ControllerError::InUse {
        kind: "security group",
        name: name.to_string(),
        users: users.join(" and "),
        remedy: remedy.text(),
    }
}
