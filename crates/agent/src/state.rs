use std::collections::{BTreeMap, BTreeSet};

use cloison_model::{Endpoint, Host, Network, Publication, SecurityGroup, WatchEvent, WatchObject};

/// Desired state of this host, as carried by the host's watch stream.
#[derive(Debug, Clone, Default)]
pub struct DesiredState {
    /// Revision of the last event applied; a resumed watch starts after it.
    pub revision: u64,
    pub networks: BTreeMap<String, Network>,
    pub endpoints: BTreeMap<String, Endpoint>,
    pub hosts: BTreeMap<String, Host>,
    /// Security groups by `tenant/name`, the way endpoints and rules name them.
    pub groups: BTreeMap<String, SecurityGroup>,
    /// Publications of this host's endpoints, by id.
    pub publications: BTreeMap<String, Publication>,
}

/// Part of the desired state one watch event changed, so the reconciler touches only that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    /// Everything may have changed: reconcile every network against the kernel.
    Resync,
    /// The objects of one network changed.
    Network(String),
    /// A host's VTEP may have changed: every network with endpoints there.
    Host(String),
    /// Only the security policy may have changed: regenerate the nftables rulesets.
    Policy,
    /// Nothing to do in the kernel.
    None,
}

impl DesiredState {
    /// Applies one watch event and returns what the reconciler must look at.
    pub fn apply(&mut self, event: WatchEvent) -> Delta {
        self.revision = self.revision.max(event.revision());
        match event {
            WatchEvent::Snapshot {
                revision,
                networks,
                endpoints,
                hosts,
                groups,
                publications,
            } => {
                self.revision = revision;
                self.networks = networks.into_iter().map(|n| (n.id.clone(), n)).collect();
                self.endpoints = endpoints.into_iter().map(|e| (e.id.clone(), e)).collect();
                self.hosts = hosts.into_iter().map(|h| (h.name.clone(), h)).collect();
                self.groups = groups.into_iter().map(|g| (group_key(&g.tenant, &g.name), g)).collect();
                self.publications = publications.into_iter().map(|p| (p.id.clone(), p)).collect();
                Delta::Resync
            }
            WatchEvent::Put { object, .. } => self.put(object),
            WatchEvent::Delete { object, .. } => self.delete(object),
            WatchEvent::Bookmark { .. } => Delta::None,
        }
    }

    /// Inserts or replaces one object.
    pub fn put(&mut self, object: WatchObject) -> Delta {
        match object {
            WatchObject::Network(n) => {
                let id = n.id.clone();
                self.networks.insert(id.clone(), n);
                Delta::Network(id)
            }
            WatchObject::Endpoint(e) => {
                let network = e.network_id.clone();
                self.endpoints.insert(e.id.clone(), e);
                Delta::Network(network)
            }
            WatchObject::Host(h) => {
                let name = h.name.clone();
                let changed = self.hosts.get(&name).map(|old| {
                    (old.underlay_ip, old.vxlan_port) != (h.underlay_ip, h.vxlan_port)
                });
                self.hosts.insert(name.clone(), h);
                match changed {
                    Some(false) => Delta::None,
                    _ => Delta::Host(name),
                }
            }
            WatchObject::Group(g) => {
                self.groups.insert(group_key(&g.tenant, &g.name), g);
                Delta::Policy
            }
            WatchObject::Publication(p) => {
                self.publications.insert(p.id.clone(), p);
                Delta::Policy
            }
        }
    }

    /// Removes one object.
    pub fn delete(&mut self, object: WatchObject) -> Delta {
        match object {
            WatchObject::Network(n) => {
                self.networks.remove(&n.id);
                self.endpoints.retain(|_, e| e.network_id != n.id);
                Delta::Network(n.id)
            }
            WatchObject::Endpoint(e) => {
                self.endpoints.remove(&e.id);
                Delta::Network(e.network_id)
            }
            WatchObject::Host(h) => {
                self.hosts.remove(&h.name);
                Delta::Host(h.name)
            }
            WatchObject::Group(g) => {
                self.groups.remove(&group_key(&g.tenant, &g.name));
                Delta::Policy
            }
            WatchObject::Publication(p) => {
                self.publications.remove(&p.id);
                Delta::Policy
            }
        }
    }

    /// Returns the endpoints of one network.
    pub fn endpoints_of<'a>(&'a self, network_id: &'a str) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.endpoints
            .values()
            .filter(move |e| e.network_id == network_id)
    }

    /// Returns true when `tenant` has an endpoint on `host` whose network the desired
    /// state contains. Such a host carries every network of the tenant.
    pub fn is_tenant_present_on(&self, tenant: &str, host: &str) -> bool {
        self.endpoints
            .values()
            .filter(|e| e.host == host)
            .filter_map(|e| self.networks.get(&e.network_id))
            .any(|n| n.tenant == tenant)
    }

    /// Returns the ids of the networks `host` carries: every network of each tenant
    /// with an endpoint there, so the tenant's router has a gateway on all of them.
    pub fn networks_present_on(&self, host: &str) -> Vec<String> {
        let tenants: BTreeSet<&str> = self
            .endpoints
            .values()
            .filter(|e| e.host == host)
            .filter_map(|e| self.networks.get(&e.network_id))
            .map(|n| n.tenant.as_str())
            .collect();
        self.networks
            .values()
            .filter(|n| tenants.contains(n.tenant.as_str()))
            .map(|n| n.id.clone())
            .collect()
    }
}

/// Returns the key of a group in [`DesiredState::groups`].
pub(crate) fn group_key(tenant: &str, name: &str) -> String {
    format!("{tenant}/{name}")
}
