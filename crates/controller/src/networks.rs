use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use cloison_model::{
    validate_name, validate_subnet4, validate_subnet6, Endpoint, Network, NetworkSpec, Peer, SecurityGroup,
    Tenant, ValidationError,
};
use cloison_store::{Compare, KeyValue, Op};
use ipnet::{Ipv4Net, Ipv6Net};

use crate::alloc::gateway_mac;
use crate::controller::{new_id, pause_before_retry, TXN_ATTEMPTS};
use crate::records::{decode_raw, encode, encode_raw, Owner};
use crate::remedy::{name_users, Remedy};
use crate::rule_refs::{self, RuleRef};
use crate::{keys, underlay, Controller, ControllerError};

/// The fields of a network request once checked and completed with defaults.
struct CheckedSpec {
    spec: NetworkSpec,
    gateway: Ipv4Addr,
    gateway6: Option<Ipv6Addr>,
}

impl Controller {
    /// Creates a network and allocates its VNI unless one is requested.
    ///
    /// A tenant that does not exist yet is created with the network, so a driver can
    /// create networks without a separate tenant call. Subnets may overlap those of
    /// other tenants but not those of the same tenant.
    pub async fn create_network(
        &self,
        tenant: &str,
        spec: NetworkSpec,
    ) -> Result<Network, ControllerError> {
        validate_name("tenant", tenant)?;
        let checked = check_spec(spec)?;
        // NOTE: only hosts registered now are checked. A host that registers later with
        // an underlay address inside this subnet is not rejected.
        underlay::check_subnets(&checked.spec, &self.list_hosts().await?)?;
        let mut cursor = self.locks.vni().await;
        for attempt in 0..TXN_ATTEMPTS {
            pause_before_retry(attempt).await;
            if let Some(network) = self.try_create_network(tenant, &checked, &mut cursor).await? {
                tracing::info!(
                    tenant.name = %tenant, network.name = %network.name,
                    network.id = %network.id, net.vni = network.vni, "network created"
                );
                return Ok(network);
            }
        }
        Err(ControllerError::Contention {
            what: format!("creating network {} in tenant {tenant}", checked.spec.name),
        })
    }

    /// Reads the tenant's state, picks a VNI and writes everything in one transaction.
    /// Returns `None` when the transaction lost a race and must be retried.
    async fn try_create_network(
        &self,
        tenant: &str,
        checked: &CheckedSpec,
        cursor: &mut Option<u32>,
    ) -> Result<Option<Network>, ControllerError> {
        let spec = &checked.spec;
        let tenant_kv = self.store.get(&keys::tenant(tenant)).await?;
        let siblings: Vec<Network> = self.list(&keys::networks_of(tenant)).await?;
        check_siblings(spec, &siblings)?;
        let guard_key = keys::tenant_guard(tenant);
        let guard_kv = self.store.get(&guard_key).await?;
        let vni = self.pick_vni(tenant, spec.vni, *cursor).await?;

        let mut network = Network {
            id: new_id(),
            tenant: tenant.to_string(),
            name: spec.name.clone(),
            vni,
            subnet: spec.subnet,
            subnet6: spec.subnet6,
            gateway: checked.gateway,
            gateway6: checked.gateway6,
            gateway_mac: gateway_mac(vni),
            mtu: spec.mtu,
            external: spec.external,
            flood: spec.flood,
            labels: spec.labels.clone(),
            resource_version: 0,
        };
        let key = keys::network(tenant, &spec.name);
        let compares = vec![
            Compare::Absent(key.clone()),
            Compare::Absent(keys::vni(vni)),
            compare_unchanged(&guard_key, guard_kv.as_ref()),
            compare_unchanged(&keys::tenant(tenant), tenant_kv.as_ref()),
        ];
        let mut ops = vec![
            Op::Put { key, value: encode(&network) },
            Op::Put { key: keys::vni(vni), value: encode_raw(&Owner::network(&network)) },
            Op::Put { key: guard_key, value: b"{}".to_vec() },
        ];
        if tenant_kv.is_none() {
            ops.push(implicit_tenant(tenant));
        }
        let response = self.store.txn(compares, ops).await?;
        if !response.succeeded {
            return Ok(None);
        }
        *cursor = Some(vni);
        network.resource_version = response.revision;
        Ok(Some(network))
    }

    /// Picks the requested VNI if it is free, else the next free one after `cursor`.
    async fn pick_vni(&self, tenant: &str, requested: Option<u32>, cursor: Option<u32>) -> Result<u32, ControllerError> {
        if let Some(vni) = requested {
            cloison_ipam::check_vni(vni)?;
            if let Some(kv) = self.store.get(&keys::vni(vni)).await? {
                let owner: Owner = decode_raw(&kv)?;
                return Err(ControllerError::Taken {
                    what: format!("VNI {vni}"),
                    owner: owner.described_to(tenant),
                });
            }
            return Ok(vni);
        }
        let (kvs, _) = self.store.range(keys::VNIS).await?;
        let used: BTreeSet<u32> = kvs
            .iter()
            .filter_map(|kv| keys::last_segment(&kv.key).parse().ok())
            .collect();
        Ok(cloison_ipam::next_free_vni(&used, cursor)?)
    }

    /// Lists the networks of one tenant, or of every tenant.
    pub async fn list_networks(&self, tenant: Option<&str>) -> Result<Vec<Network>, ControllerError> {
        match tenant {
            Some(tenant) => self.list(&keys::networks_of(tenant)).await,
            None => self.list(keys::NETWORKS).await,
        }
    }

    pub async fn get_network(&self, tenant: &str, name: &str) -> Result<Network, ControllerError> {
        Ok(self.read_network(tenant, name).await?.0)
    }

    pub(crate) async fn read_network(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<(Network, KeyValue), ControllerError> {
        self.read(&keys::network(tenant, name))
            .await?
            .ok_or_else(|| ControllerError::NotFound {
                kind: "network",
                name: format!("{name} in tenant {tenant}"),
            })
    }

    /// Deletes a network that has no endpoint left and that no security-group rule
    /// names, releasing its VNI. A rule added while the delete runs either makes this
    /// transaction fail (it changes a group or the tenant guard) or fails itself,
    /// because its write compares the network record.
    pub async fn delete_network(&self, tenant: &str, name: &str) -> Result<(), ControllerError> {
        for attempt in 0..TXN_ATTEMPTS {
            pause_before_retry(attempt).await;
            let (network, kv) = self.read_network(tenant, name).await?;
            let guard_key = keys::network_guard(&network.id);
            let guard_kv = self.store.get(&guard_key).await?;
            // Read the tenant guard before the groups, because a group created after this
            // read rewrites the guard, which fails the transaction below and reads again.
            let tenant_guard_key = keys::tenant_guard(tenant);
            let tenant_guard_kv = self.store.get(&tenant_guard_key).await?;
            let endpoints: Vec<Endpoint> = self.list(&keys::endpoints_of(tenant)).await?;
            let users: Vec<&Endpoint> = endpoints.iter().filter(|e| e.network_id == network.id).collect();
            let groups: Vec<SecurityGroup> = self.list(&keys::groups_of(tenant)).await?;
            let rules = rule_refs::rules_naming(&groups, &Peer::Network(name.to_string()));
            if !users.is_empty() || !rules.is_empty() {
                return Err(in_use(&network, &users, &rules));
            }
            let mut compares = vec![
                Compare::ModRevision(kv.key.clone(), kv.mod_revision),
                compare_unchanged(&guard_key, guard_kv.as_ref()),
                compare_unchanged(&tenant_guard_key, tenant_guard_kv.as_ref()),
            ];
            // A rule added to an existing group changes that group's revision.
            compares.extend(
                groups.iter().map(|g| Compare::ModRevision(keys::group(tenant, &g.name), g.resource_version)),
            );
            let ops = vec![
                Op::Delete { key: kv.key },
                Op::Delete { key: keys::vni(network.vni) },
                Op::Delete { key: guard_key },
                Op::Put { key: tenant_guard_key, value: b"{}".to_vec() },
            ];
            if self.store.txn(compares, ops).await?.succeeded {
                self.locks.forget_network(&network.id);
                tracing::info!(tenant.name = %tenant, network.name = %name, network.id = %network.id, "network deleted");
                return Ok(());
            }
        }
        Err(ControllerError::Contention {
            what: format!("deleting network {name} in tenant {tenant}"),
        })
    }
}

/// Returns a comparison that succeeds while `key` still has the state read as `kv`.
pub(crate) fn compare_unchanged(key: &str, kv: Option<&KeyValue>) -> Compare {
    match kv {
        Some(kv) => Compare::ModRevision(key.to_string(), kv.mod_revision),
        None => Compare::Absent(key.to_string()),
    }
}

fn implicit_tenant(tenant: &str) -> Op {
    let record = Tenant {
        id: new_id(),
        name: tenant.to_string(),
        labels: Default::default(),
        resource_version: 0,
    };
    Op::Put { key: keys::tenant(tenant), value: encode(&record) }
}

/// Checks a request on its own and fills in the default gateways.
fn check_spec(spec: NetworkSpec) -> Result<CheckedSpec, ControllerError> {
    validate_name("network", &spec.name)?;
    validate_subnet4(&spec.subnet)?;
    let gateway = match spec.gateway {
        Some(gateway) => {
            cloison_ipam::check_gateway4(spec.subnet, gateway)?;
            gateway
        }
        None => cloison_ipam::default_gateway4(spec.subnet),
    };
    let gateway6 = match spec.subnet6 {
        Some(subnet6) => {
            validate_subnet6(&subnet6)?;
            let gateway6 = spec.gateway6.unwrap_or_else(|| cloison_ipam::default_gateway6(subnet6));
            cloison_ipam::check_gateway6(subnet6, gateway6)?;
            Some(gateway6)
        }
        None if spec.gateway6.is_some() => {
            return Err(ControllerError::BadRequest(
                "gateway6 is set but subnet6 is not: give an IPv6 subnet or drop the gateway".into(),
            ))
        }
        None => None,
    };
    if let Some(mtu) = spec.mtu {
        let min = if spec.subnet6.is_some() { 1280 } else { 576 };
        if !(min..=9000).contains(&mtu) {
            return Err(ValidationError::Mtu { mtu }.into());
        }
    }
    Ok(CheckedSpec { spec, gateway, gateway6 })
}

/// Rejects a duplicate name and any subnet that overlaps one of the same tenant.
fn check_siblings(spec: &NetworkSpec, siblings: &[Network]) -> Result<(), ControllerError> {
    for other in siblings {
        if other.name == spec.name {
            return Err(ControllerError::AlreadyExists {
                kind: "network",
                name: format!("{} in tenant {}", spec.name, other.tenant),
            });
        }
        if overlaps4(&spec.subnet, &other.subnet) {
            return Err(overlap(spec.subnet.to_string(), other, other.subnet.to_string()));
        }
        if let (Some(mine), Some(theirs)) = (spec.subnet6, other.subnet6) {
            if overlaps6(&mine, &theirs) {
                return Err(overlap(mine.to_string(), other, theirs.to_string()));
            }
        }
    }
    Ok(())
}

fn overlaps4(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn overlaps6(a: &Ipv6Net, b: &Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn overlap(subnet: String, other: &Network, other_subnet: String) -> ControllerError {
    ControllerError::Overlap {
        subnet,
        other_network: other.name.clone(),
        other_subnet,
    }
}

fn in_use(network: &Network, endpoints: &[&Endpoint], rules: &[RuleRef]) -> ControllerError {
    let mut users = Vec::new();
    let mut remedy = Remedy::default();
    if let Some(first) = endpoints.first() {
        let names: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
        users.push(format!("{} endpoint(s): {}", endpoints.len(), name_users(&names)));
        let command = format!("cloison detach {} --tenant {}", first.name, network.tenant);
        remedy.step("detach those endpoints on their hosts", command);
    }
    if let Some(first) = rules.first() {
        users.push(rule_refs::describe(rules));
        remedy.step("remove those rules", rule_refs::rm_command(&network.tenant, &first.group, &first.rule));
    }
    ControllerError::InUse {
        kind: "network",
        name: network.name.clone(),
        users: users.join(" and "),
        remedy: remedy.text(),
    }
}
