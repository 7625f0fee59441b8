use std::collections::{BTreeMap, BTreeSet, VecDeque};

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
    /// Ids of the endpoints on each host, by host name, so a presence check reads
    /// one host's endpoints instead of every endpoint. Only
    /// [`DesiredState::insert_endpoint`] keeps it complete; an id left behind by a
    /// direct removal from `endpoints` is skipped by the readers.
    endpoints_by_host: BTreeMap<String, BTreeSet<String>>,
    /// The last [`DETACHED_KEPT`] endpoints that a detach on this host deleted. The
    /// watch may still carry one in a put or a snapshot older than the deletion, and
    /// an attach that waited for the detach may still carry its record: neither may
    /// bring it back. Ids are never reused, so such a record is always stale.
    detached: DetachedIds,
}

/// How many detached endpoint ids [`DesiredState`] keeps.
pub(crate) const DETACHED_KEPT: usize = 4096;

/// The ids of the most recently detached endpoints, the oldest dropped first.
#[derive(Debug, Clone, Default)]
struct DetachedIds {
    order: VecDeque<String>,
    ids: BTreeSet<String>,
}

impl DetachedIds {
    fn insert(&mut self, id: &str) {
        if !self.ids.insert(id.to_string()) {
            return;
        }
        self.order.push_back(id.to_string());
        if self.order.len() > DETACHED_KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }
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
    /// No change: the event carries an object the desired state already contains,
    /// such as the record of an endpoint that an attach on this host inserted.
    Unchanged,
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
                let current = endpoints.into_iter().filter(|e| !self.detached.contains(&e.id));
                self.endpoints = current.map(|e| (e.id.clone(), e)).collect();
                self.endpoints_by_host = BTreeMap::new();
                for endpoint in self.endpoints.values() {
                    let ids = self.endpoints_by_host.entry(endpoint.host.clone()).or_default();
                    ids.insert(endpoint.id.clone());
                }
                self.hosts = hosts.into_iter().map(|h| (h.name.clone(), h)).collect();
                self.groups = groups.into_iter().map(|g| (group_key(&g.tenant, &g.name), g)).collect();
                self.publications = publications.into_iter().map(|p| (p.id.clone(), p)).collect();
                Delta::Resync
            }
            WatchEvent::Put { object, .. } => self.put(object),
            WatchEvent::Delete { object, .. } => self.delete(object),
            WatchEvent::Bookmark { .. } => Delta::Unchanged,
        }
    }

    /// Inserts or replaces one object.
    pub fn put(&mut self, object: WatchObject) -> Delta {
        if self.contains_object(&object) {
            return Delta::Unchanged;
        }
        match object {
            WatchObject::Network(n) => {
                let id = n.id.clone();
                self.networks.insert(id.clone(), n);
                Delta::Network(id)
            }
            WatchObject::Endpoint(e) if self.is_detached(&e.id) => Delta::Unchanged,
            WatchObject::Endpoint(e) => {
                let network = e.network_id.clone();
                self.insert_endpoint(e);
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

    /// Returns true when the desired state contains `object` unchanged.
    fn contains_object(&self, object: &WatchObject) -> bool {
        match object {
            WatchObject::Network(n) => self.networks.get(&n.id) == Some(n),
            WatchObject::Endpoint(e) => self.endpoints.get(&e.id) == Some(e),
            WatchObject::Host(h) => self.hosts.get(&h.name) == Some(h),
            WatchObject::Group(g) => self.groups.get(&group_key(&g.tenant, &g.name)) == Some(g),
            WatchObject::Publication(p) => self.publications.get(&p.id) == Some(p),
        }
    }

    /// Removes one object.
    pub fn delete(&mut self, object: WatchObject) -> Delta {
        match object {
            WatchObject::Network(n) => {
                self.networks.remove(&n.id);
                let gone: Vec<String> = self.endpoints_of(&n.id).map(|e| e.id.clone()).collect();
                for id in gone {
                    self.remove_endpoint(&id);
                }
                Delta::Network(n.id)
            }
            WatchObject::Endpoint(e) => {
                self.remove_endpoint(&e.id);
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

    /// Inserts or replaces an endpoint and records it under its host.
    pub fn insert_endpoint(&mut self, endpoint: Endpoint) {
        let id = endpoint.id.clone();
        let host = endpoint.host.clone();
        if let Some(old) = self.endpoints.insert(id.clone(), endpoint) {
            if old.host != host {
                self.forget_host_of(&old.host, &id);
            }
        }
        self.endpoints_by_host.entry(host).or_default().insert(id);
    }

    /// Removes a local endpoint whose record was deleted, by a detach on this host
    /// or elsewhere, and keeps stale records that still carry it from adding it again.
    pub fn remove_detached(&mut self, endpoint: &Endpoint) {
        self.detached.insert(&endpoint.id);
        self.remove_endpoint(&endpoint.id);
    }

    /// Returns true for a local endpoint whose record was deleted (see
    /// [`DesiredState::remove_detached`]).
    pub fn is_detached(&self, id: &str) -> bool {
        self.detached.contains(id)
    }

    /// Removes an endpoint and returns it, or `None` when it was not there.
    pub fn remove_endpoint(&mut self, id: &str) -> Option<Endpoint> {
        let endpoint = self.endpoints.remove(id)?;
        self.forget_host_of(&endpoint.host, id);
        Some(endpoint)
    }

    fn forget_host_of(&mut self, host: &str, id: &str) {
        if let Some(ids) = self.endpoints_by_host.get_mut(host) {
            ids.remove(id);
            if ids.is_empty() {
                self.endpoints_by_host.remove(host);
            }
        }
    }

    /// Returns the endpoints on `host`, reading only that host's entries.
    pub fn endpoints_on<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.endpoints_by_host
            .get(host)
            .into_iter()
            .flatten()
            .filter_map(|id| self.endpoints.get(id))
            .filter(move |e| e.host == host)
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
        self.endpoints_on(host)
            .filter_map(|e| self.networks.get(&e.network_id))
            .any(|n| n.tenant == tenant)
    }

    /// Returns the ids of the networks `host` carries: every network of each tenant
    /// with an endpoint there, so the tenant's router has a gateway on all of them.
    pub fn networks_present_on(&self, host: &str) -> Vec<String> {
        let tenants: BTreeSet<&str> = self
            .endpoints_on(host)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(mac: &str) -> Endpoint {
        let record = serde_json::json!({
            "id": "e1", "tenant": "t1", "name": "web", "network": "n", "network_id": "n1", "host": "h1",
            "mac": mac, "ipv4": "10.0.0.2", "ipv6": null, "ifname": "eth0", "sandbox": "/run/netns/c1",
            "groups": [], "labels": {}, "resource_version": 7
        });
        serde_json::from_value(record).expect("endpoint record")
    }

    fn put(endpoint: Endpoint) -> WatchEvent {
        WatchEvent::Put { revision: 8, object: WatchObject::Endpoint(endpoint) }
    }

    #[test]
    fn repeated_record_changes_nothing() {
        let mut state = DesiredState::default();
        assert_eq!(state.apply(put(endpoint("02:00:00:00:00:01"))), Delta::Network("n1".into()));
        assert_eq!(state.apply(put(endpoint("02:00:00:00:00:01"))), Delta::Unchanged);
        assert_eq!(state.apply(WatchEvent::Bookmark { revision: 9 }), Delta::Unchanged);
        assert_eq!(state.revision, 9);
        assert_eq!(state.apply(put(endpoint("02:00:00:00:00:02"))), Delta::Network("n1".into()));
        state.remove_detached(&endpoint("02:00:00:00:00:02"));
        assert_eq!(state.apply(put(endpoint("02:00:00:00:00:02"))), Delta::Unchanged);
        assert!(state.endpoints.is_empty(), "a detached endpoint came back");
    }

    #[test]
    fn detached_ids_keep_the_latest() {
        let mut detached = DetachedIds::default();
        for n in 0..=DETACHED_KEPT {
            detached.insert(&format!("e{n}"));
        }
        assert!(!detached.contains("e0"), "the oldest id is kept beyond the limit");
        assert!(detached.contains("e1"));
        assert!(detached.contains(&format!("e{DETACHED_KEPT}")));
        assert_eq!(detached.order.len(), DETACHED_KEPT);
    }
}
