use std::collections::{BTreeMap, BTreeSet, HashMap};

use cloison_model::{Endpoint, Host, Network, Publication, SecurityGroup, WatchObject};
use cloison_store::{Event, KeyValue, WatchBatch};
use serde::de::DeserializeOwned;

use crate::keys;
use crate::records::{decode, Versioned};

/// The deployment as the host watches need it: networks, endpoints and groups by
/// tenant, hosts, publications, and the number of endpoints of each tenant on every
/// host. A controller keeps one index, fed by one store watch.
///
/// [`DeploymentIndex::apply`] turns each store event into a [`Change`], which names
/// the host for which a tenant just became relevant or stopped being relevant. So
/// each host's [`HostWatchFilter`](super::HostWatchFilter) needs only its set of
/// tenants.
#[derive(Debug, Default)]
pub struct DeploymentIndex {
    revision: u64,
    /// Networks of each tenant, by name.
    networks: HashMap<String, BTreeMap<String, Network>>,
    /// Every endpoint, by store key.
    endpoints: HashMap<String, Endpoint>,
    /// Store keys of each tenant's endpoints.
    tenant_endpoints: HashMap<String, BTreeSet<String>>,
    /// Every security group, by store key (`/groups/<tenant>/<name>`).
    groups: BTreeMap<String, SecurityGroup>,
    hosts: BTreeMap<String, Host>,
    /// Every publication, by store key.
    publications: BTreeMap<String, Publication>,
    /// Number of endpoints of each tenant on each host; absent means zero.
    local: HashMap<String, HashMap<String, usize>>,
}

/// Whether a change wrote or removed its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Put,
    Delete,
}

/// One store event as the host watches see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub revision: u64,
    pub kind: ChangeKind,
    /// The object written, or the last value of the object removed.
    pub object: WatchObject,
    /// The host that got its first endpoint of the object's tenant with this change.
    pub arrived: Option<String>,
    /// The host whose last endpoint of the object's tenant went with this change.
    pub left: Option<String>,
}

/// The objects of one tenant a host receives while the tenant is relevant to it.
#[derive(Debug, Default)]
pub struct TenantContents<'a> {
    pub groups: Vec<&'a SecurityGroup>,
    pub networks: Vec<&'a Network>,
    pub endpoints: Vec<&'a Endpoint>,
}

impl DeploymentIndex {
    /// Loads the index from a range of the whole keyspace read at `revision`.
    pub fn from_range(kvs: &[KeyValue], revision: u64) -> Self {
        let mut index = DeploymentIndex::default();
        for kv in kvs {
            index.put(kv, kv.mod_revision);
        }
        index.revision = revision;
        index
    }

    /// Returns the revision of the last range or batch applied.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Applies one batch event by event and calls `visit` after each event that
    /// changed a resource, with the index in the state right after that event.
    ///
    /// A host write that changes only the heartbeat time does not call `visit`. No
    /// agent acts on it, and with 1,000 hosts sending a heartbeat every 10 s every
    /// watch would receive 100 such events a second.
    pub fn apply(&mut self, batch: &WatchBatch, mut visit: impl FnMut(&Self, &Change)) {
        self.revision = self.revision.max(batch.revision);
        for event in &batch.events {
            let change = match event {
                Event::Put(kv) => self.put(kv, batch.revision),
                Event::Delete { prev, .. } => self.delete(prev, batch.revision),
            };
            if let Some(change) = change {
                visit(self, &change);
            }
        }
    }

    /// Returns the tenants with at least one endpoint on `host`, in name order.
    pub fn tenants_on(&self, host: &str) -> BTreeSet<String> {
        self.local
            .get(host)
            .map(|tenants| tenants.iter().filter(|(_, n)| **n > 0).map(|(t, _)| t.clone()).collect())
            .unwrap_or_default()
    }

    /// Returns a tenant's groups (by name), networks (by name) and endpoints (by name).
    pub fn contents(&self, tenant: &str) -> TenantContents<'_> {
        let prefix = keys::groups_of(tenant);
        TenantContents {
            groups: self.groups.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)).map(|(_, g)| g).collect(),
            networks: self.networks.get(tenant).map(|n| n.values().collect()).unwrap_or_default(),
            endpoints: self
                .tenant_endpoints
                .get(tenant)
                .map(|keys| keys.iter().filter_map(|k| self.endpoints.get(k)).collect())
                .unwrap_or_default(),
        }
    }

    /// Returns every registered host, by name.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.values()
    }

    /// Returns the publications of the endpoints on `host`.
    pub fn publications_on<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a Publication> + 'a {
        self.publications.values().filter(move |p| p.host == host)
    }

    fn put(&mut self, kv: &KeyValue, revision: u64) -> Option<Change> {
        let key = kv.key.as_str();
        let (object, arrived, left) = if key.starts_with(keys::NETWORKS) {
            let network = decode_logged::<Network>(kv)?;
            let tenant = self.networks.entry(network.tenant.clone()).or_default();
            tenant.insert(network.name.clone(), network.clone());
            (WatchObject::Network(network), None, None)
        } else if key.starts_with(keys::ENDPOINTS) {
            let endpoint = decode_logged::<Endpoint>(kv)?;
            let (arrived, left) = self.put_endpoint(key, endpoint.clone());
            (WatchObject::Endpoint(endpoint), arrived, left)
        } else if key.starts_with(keys::HOSTS) {
            let host = decode_logged::<Host>(kv)?;
            let previous = self.hosts.insert(host.name.clone(), host.clone());
            if previous.is_some_and(|old| is_heartbeat(&old, &host)) {
                return None;
            }
            (WatchObject::Host(host), None, None)
        } else if key.starts_with(keys::GROUPS) {
            let group = decode_logged::<SecurityGroup>(kv)?;
            self.groups.insert(kv.key.clone(), group.clone());
            (WatchObject::Group(group), None, None)
        } else if key.starts_with(keys::PUBLICATIONS) {
            let publication = decode_logged::<Publication>(kv)?;
            self.publications.insert(kv.key.clone(), publication.clone());
            (WatchObject::Publication(publication), None, None)
        } else {
            return None;
        };
        Some(Change { revision, kind: ChangeKind::Put, object, arrived, left })
    }

    /// Stores an endpoint and returns the host the tenant arrived on and the host it
    /// left, which differ from `None` only for a new endpoint or one that moved.
    fn put_endpoint(&mut self, key: &str, endpoint: Endpoint) -> (Option<String>, Option<String>) {
        let tenant = endpoint.tenant.clone();
        let host = endpoint.host.clone();
        let previous = self.endpoints.insert(key.to_string(), endpoint);
        self.tenant_endpoints.entry(tenant.clone()).or_default().insert(key.to_string());
        match previous {
            Some(old) if old.host == host => (None, None),
            Some(old) => {
                let left = self.count(&old.host, &old.tenant, false);
                (self.count(&host, &tenant, true), left)
            }
            None => (self.count(&host, &tenant, true), None),
        }
    }

    fn delete(&mut self, prev: &KeyValue, revision: u64) -> Option<Change> {
        let key = prev.key.as_str();
        let (object, left) = if key.starts_with(keys::NETWORKS) {
            let network = decode_logged::<Network>(prev)?;
            let removed = self.networks.get_mut(&network.tenant).and_then(|n| n.remove(&network.name));
            if self.networks.get(&network.tenant).is_some_and(BTreeMap::is_empty) {
                self.networks.remove(&network.tenant);
            }
            (WatchObject::Network(removed.unwrap_or(network)), None)
        } else if key.starts_with(keys::ENDPOINTS) {
            let endpoint = self.endpoints.remove(key)?;
            if let Some(keys) = self.tenant_endpoints.get_mut(&endpoint.tenant) {
                keys.remove(key);
                if keys.is_empty() {
                    self.tenant_endpoints.remove(&endpoint.tenant);
                }
            }
            let left = self.count(&endpoint.host, &endpoint.tenant, false);
            (WatchObject::Endpoint(endpoint), left)
        } else if key.starts_with(keys::HOSTS) {
            let host = decode_logged::<Host>(prev)?;
            (WatchObject::Host(self.hosts.remove(&host.name).unwrap_or(host)), None)
        } else if key.starts_with(keys::GROUPS) {
            (WatchObject::Group(self.groups.remove(key)?), None)
        } else if key.starts_with(keys::PUBLICATIONS) {
            (WatchObject::Publication(self.publications.remove(key)?), None)
        } else {
            return None;
        };
        Some(Change { revision, kind: ChangeKind::Delete, object, arrived: None, left })
    }

    /// Adds or removes one endpoint of `tenant` on `host`, and returns the host when
    /// the count crossed zero, which means the tenant arrived on it or left it.
    fn count(&mut self, host: &str, tenant: &str, add: bool) -> Option<String> {
        let tenants = self.local.entry(host.to_string()).or_default();
        let count = tenants.entry(tenant.to_string()).or_default();
        let before = *count;
        *count = if add { before + 1 } else { before.saturating_sub(1) };
        let crossed = (before == 0) != (*count == 0);
        if *count == 0 {
            tenants.remove(tenant);
            if tenants.is_empty() {
                self.local.remove(host);
            }
        }
        crossed.then(|| host.to_string())
    }
}

/// Returns true when `new` differs from `old` only in its heartbeat time and version.
fn is_heartbeat(old: &Host, new: &Host) -> bool {
    let unversioned = |h: &Host| Host { last_heartbeat: 0, resource_version: 0, ..h.clone() };
    unversioned(old) == unversioned(new)
}

/// Decodes a record for the watch. A corrupt one is logged and skipped so that one bad
/// record does not stop every host's stream.
fn decode_logged<T: Versioned + DeserializeOwned>(kv: &KeyValue) -> Option<T> {
    match decode(kv) {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::warn!(key = %kv.key, %error, "skipping undecodable record in host watch");
            None
        }
    }
}
