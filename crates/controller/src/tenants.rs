use cloison_model::{validate_name, Network, Publication, SecurityGroup, Tenant, TenantSpec};
use cloison_store::{Compare, Op};

use crate::controller::{new_id, pause_before_retry, TXN_ATTEMPTS};
use crate::records::encode;
use crate::remedy::{name_users, Remedy};
use crate::{keys, Controller, ControllerError};

impl Controller {
    /// Creates a tenant; its name must be unused.
    pub async fn create_tenant(&self, spec: TenantSpec) -> Result<Tenant, ControllerError> {
        validate_name("tenant", &spec.name)?;
        let mut tenant = Tenant {
            id: new_id(),
            name: spec.name,
            labels: spec.labels,
            resource_version: 0,
        };
        let key = keys::tenant(&tenant.name);
        let put = Op::Put {
            key: key.clone(),
            value: encode(&tenant),
        };
        let response = self.store.txn(vec![Compare::Absent(key)], vec![put]).await?;
        if !response.succeeded {
            return Err(ControllerError::AlreadyExists {
                kind: "tenant",
                name: tenant.name,
            });
        }
        tenant.resource_version = response.revision;
        tracing::info!(tenant.name = %tenant.name, tenant.id = %tenant.id, "tenant created");
        Ok(tenant)
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, ControllerError> {
        self.list(keys::TENANTS).await
    }

    pub async fn get_tenant(&self, name: &str) -> Result<Tenant, ControllerError> {
        match self.read(&keys::tenant(name)).await? {
            Some((tenant, _)) => Ok(tenant),
            None => Err(not_found(name)),
        }
    }

    /// Deletes a tenant that has no network, security group or publication left.
    pub async fn delete_tenant(&self, name: &str) -> Result<(), ControllerError> {
        for attempt in 0..TXN_ATTEMPTS {
            pause_before_retry(attempt).await;
            let Some((_, kv)) = self.read::<Tenant>(&keys::tenant(name)).await? else {
                return Err(not_found(name));
            };
            // Read the guard before the lists: a network or group created after the
            // lists were read rewrites the guard, so the transaction below fails.
            let guard_key = keys::tenant_guard(name);
            let guard = match self.store.get(&guard_key).await? {
                Some(guard) => Compare::ModRevision(guard_key.clone(), guard.mod_revision),
                None => Compare::Absent(guard_key.clone()),
            };
            let networks: Vec<Network> = self.list(&keys::networks_of(name)).await?;
            let groups: Vec<SecurityGroup> = self.list(&keys::groups_of(name)).await?;
            let publications: Vec<Publication> = self.list(&keys::publications_of(name)).await?;
            if !networks.is_empty() || !groups.is_empty() || !publications.is_empty() {
                return Err(in_use(name, &networks, &groups, &publications));
            }
            let compares = vec![Compare::ModRevision(kv.key.clone(), kv.mod_revision), guard];
            let ops = vec![Op::Delete { key: kv.key }, Op::Delete { key: guard_key }];
            if self.store.txn(compares, ops).await?.succeeded {
                tracing::info!(tenant.name = %name, "tenant deleted");
                return Ok(());
            }
        }
        Err(ControllerError::Contention {
            what: format!("deleting tenant {name}"),
        })
    }
}

fn not_found(name: &str) -> ControllerError {
    ControllerError::NotFound {
        kind: "tenant",
        name: name.to_string(),
    }
}

fn in_use(name: &str, networks: &[Network], groups: &[SecurityGroup], publications: &[Publication]) -> ControllerError {
    let mut users = Vec::new();
    let mut remedy = Remedy::default();
    if let Some(first) = networks.first() {
        let names: Vec<&str> = networks.iter().map(|n| n.name.as_str()).collect();
        users.push(format!("{} network(s): {}", networks.len(), name_users(&names)));
        remedy.step("delete those networks", format!("cloison network rm {} --tenant {name}", first.name));
    }
    if let Some(first) = groups.first() {
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        users.push(format!("{} security group(s): {}", groups.len(), name_users(&names)));
        remedy.step("delete those security groups", format!("cloison group rm {} --tenant {name}", first.name));
    }
    if let Some(first) = publications.first() {
        let names: Vec<&str> = publications.iter().map(|p| p.name.as_str()).collect();
        users.push(format!("{} publication(s): {}", publications.len(), name_users(&names)));
        let address = first.host_ip.map_or_else(String::new, |ip| format!(" --host-ip {ip}"));
        let command = format!(
            "cloison unpublish {} {}/{}{address} --tenant {name}",
            first.endpoint, first.host_port, first.protocol
        );
        remedy.step("remove those publications", command);
    }
    ControllerError::InUse {
        kind: "tenant",
        name: name.to_string(),
        users: users.join(" and "),
        remedy: remedy.text(),
    }
}
