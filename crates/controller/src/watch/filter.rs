use std::collections::{BTreeMap, HashMap};

use cloison_model::{Endpoint, Host, Network, Publication, SecurityGroup, WatchEvent, WatchObject};
use cloison_store::{Event, KeyValue, WatchBatch};
use serde::de::DeserializeOwned;

use crate::keys;
use crate::records::{decode, Versioned};

/// Turns the store's changes into the events one host's agent needs, as a pure state
/// machine so it can be tested with synthetic batches.
///
/// A network is relevant to the host while at least one of its endpoints is on that
/// host. The host receives relevant networks, every endpoint of those networks
/// (remote ones too, for FDB and neighbour entries), every host (for VTEP
/// addresses), the security groups of every tenant with a relevant network, and
/// the publications of its own endpoints. When a network becomes relevant the filter sends the network and all
/// its endpoints, preceded by the tenant's groups when it is the tenant's first
/// relevant network; when it stops being relevant it sends their deletes.
///
/// Limitation: the filter keeps every endpoint of the deployment in memory, not only
/// those of relevant networks, so each watcher costs memory in proportion to the
/// whole deployment.
#[derive(Debug)]
pub struct HostWatchFilter {
    host: String,
    revision: u64,
    /// Every network, by id.
    networks: HashMap<String, Network>,
    /// Every endpoint, grouped by network id and keyed by store key.
    endpoints: HashMap<String, BTreeMap<String, Endpoint>>,
    /// Network id of every endpoint, by store key.
    network_of: HashMap<String, String>,
    /// Number of endpoints on this host, per network id; absent means zero.
    local: HashMap<String, usize>,
    /// Every security group, by store key.
    groups: BTreeMap<String, SecurityGroup>,
    /// Publications of this host's endpoints, by store key.
    publications: BTreeMap<String, Publication>,
}

impl HostWatchFilter {
    /// Creates a filter with empty state, at revision 0.
    pub fn new(host: &str) -> Self {
        HostWatchFilter {
            host: host.to_string(),
            revision: 0,
            networks: HashMap::new(),
            endpoints: HashMap::new(),
            network_of: HashMap::new(),
            local: HashMap::new(),
            groups: BTreeMap::new(),
            publications: BTreeMap::new(),
        }
    }

    /// Loads the state from a range of the whole keyspace read at `revision`, and
    /// returns the filter with the snapshot event that starts the host's stream.
    pub fn from_snapshot(host: &str, kvs: &[KeyValue], revision: u64) -> (Self, WatchEvent) {
        let mut filter = HostWatchFilter::new(host);
        filter.revision = revision;
        let mut hosts = Vec::new();
        for kv in kvs {
            if kv.key.starts_with(keys::NETWORKS) {
                if let Some(network) = decode_logged::<Network>(kv) {
                    filter.networks.insert(network.id.clone(), network);
                }
            } else if kv.key.starts_with(keys::ENDPOINTS) {
                if let Some(endpoint) = decode_logged::<Endpoint>(kv) {
                    filter.insert_endpoint(kv.key.clone(), endpoint);
                }
            } else if kv.key.starts_with(keys::HOSTS) {
                hosts.extend(decode_logged::<Host>(kv));
            } else if kv.key.starts_with(keys::GROUPS) {
                if let Some(group) = decode_logged::<SecurityGroup>(kv) {
                    filter.groups.insert(kv.key.clone(), group);
                }
            } else if kv.key.starts_with(keys::PUBLICATIONS) {
                if let Some(publication) = decode_logged::<Publication>(kv).filter(|p| p.host == host) {
                    filter.publications.insert(kv.key.clone(), publication);
                }
            }
        }
        let snapshot = filter.snapshot(hosts);
        (filter, snapshot)
    }

    fn snapshot(&self, hosts: Vec<Host>) -> WatchEvent {
        let mut networks: Vec<Network> = self
            .networks
            .values()
            .filter(|n| self.is_relevant(&n.id))
            .cloned()
            .collect();
        networks.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
        let endpoints = networks
            .iter()
            .flat_map(|n| self.endpoints_of(&n.id))
            .cloned()
            .collect();
        let groups = self
            .groups
            .values()
            .filter(|g| self.is_tenant_relevant(&g.tenant))
            .cloned()
            .collect();
        let publications = self.publications.values().cloned().collect();
        WatchEvent::Snapshot { revision: self.revision, networks, endpoints, hosts, groups, publications }
    }

    /// Returns the revision of the last batch applied.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Applies one batch of store changes and returns the events for the host, each
    /// carrying the batch's revision.
    pub fn apply(&mut self, batch: &WatchBatch) -> Vec<WatchEvent> {
        self.revision = self.revision.max(batch.revision);
        let mut out = Vec::new();
        for event in &batch.events {
            match event {
                Event::Put(kv) => self.apply_put(kv, batch.revision, &mut out),
                Event::Delete { prev, .. } => self.apply_delete(prev, batch.revision, &mut out),
            }
        }
        out
    }

    fn apply_put(&mut self, kv: &KeyValue, revision: u64, out: &mut Vec<WatchEvent>) {
        if kv.key.starts_with(keys::NETWORKS) {
            if let Some(network) = decode_logged::<Network>(kv) {
                if self.is_relevant(&network.id) {
                    out.push(put(revision, WatchObject::Network(network.clone())));
                }
                self.networks.insert(network.id.clone(), network);
            }
        } else if kv.key.starts_with(keys::ENDPOINTS) {
            if let Some(endpoint) = decode_logged::<Endpoint>(kv) {
                self.put_endpoint(kv.key.clone(), endpoint, revision, out);
            }
        } else if kv.key.starts_with(keys::HOSTS) {
            if let Some(host) = decode_logged::<Host>(kv) {
                out.push(put(revision, WatchObject::Host(host)));
            }
        } else if kv.key.starts_with(keys::GROUPS) {
            if let Some(group) = decode_logged::<SecurityGroup>(kv) {
                if self.is_tenant_relevant(&group.tenant) {
                    out.push(put(revision, WatchObject::Group(group.clone())));
                }
                self.groups.insert(kv.key.clone(), group);
            }
        } else if kv.key.starts_with(keys::PUBLICATIONS) {
            if let Some(publication) = decode_logged::<Publication>(kv).filter(|p| p.host == self.host) {
                self.publications.insert(kv.key.clone(), publication.clone());
                out.push(put(revision, WatchObject::Publication(publication)));
            }
        }
    }

    fn apply_delete(&mut self, prev: &KeyValue, revision: u64, out: &mut Vec<WatchEvent>) {
        if prev.key.starts_with(keys::NETWORKS) {
            if let Some(network) = decode_logged::<Network>(prev) {
                if self.is_relevant(&network.id) {
                    out.push(delete(revision, WatchObject::Network(network.clone())));
                }
                self.networks.remove(&network.id);
                self.local.remove(&network.id);
            }
        } else if prev.key.starts_with(keys::ENDPOINTS) {
            self.remove_endpoint(&prev.key, revision, out);
        } else if prev.key.starts_with(keys::HOSTS) {
            if let Some(host) = decode_logged::<Host>(prev) {
                out.push(delete(revision, WatchObject::Host(host)));
            }
        } else if prev.key.starts_with(keys::GROUPS) {
            if let Some(group) = self.groups.remove(&prev.key) {
                if self.is_tenant_relevant(&group.tenant) {
                    out.push(delete(revision, WatchObject::Group(group)));
                }
            }
        } else if prev.key.starts_with(keys::PUBLICATIONS) {
            if let Some(publication) = self.publications.remove(&prev.key) {
                out.push(delete(revision, WatchObject::Publication(publication)));
            }
        }
    }

    fn put_endpoint(&mut self, key: String, endpoint: Endpoint, revision: u64, out: &mut Vec<WatchEvent>) {
        let previous = self.find_endpoint(&key).cloned();
        if let Some(old) = &previous {
            if old.network_id != endpoint.network_id || old.host != endpoint.host {
                // Placement changed: handle it as a delete followed by a create.
                self.remove_endpoint(&key, revision, out);
                return self.put_endpoint(key, endpoint, revision, out);
            }
        }
        let network_id = endpoint.network_id.clone();
        let was_relevant = self.is_relevant(&network_id);
        self.insert_endpoint(key, endpoint.clone());
        if !was_relevant && self.is_relevant(&network_id) {
            self.send_network(&network_id, revision, out);
        } else if self.is_relevant(&network_id) {
            out.push(put(revision, WatchObject::Endpoint(endpoint)));
        }
    }

    /// Sends a network that just became relevant, followed by all its endpoints, and
    /// first its tenant's groups when no other network of the tenant was relevant.
    fn send_network(&self, network_id: &str, revision: u64, out: &mut Vec<WatchEvent>) {
        if let Some(network) = self.networks.get(network_id) {
            if !self.is_tenant_relevant_besides(&network.tenant, network_id) {
                for group in self.groups_of(&network.tenant) {
                    out.push(put(revision, WatchObject::Group(group.clone())));
                }
            }
            out.push(put(revision, WatchObject::Network(network.clone())));
        }
        for endpoint in self.endpoints_of(network_id) {
            out.push(put(revision, WatchObject::Endpoint(endpoint.clone())));
        }
    }

    fn remove_endpoint(&mut self, key: &str, revision: u64, out: &mut Vec<WatchEvent>) {
        let Some(endpoint) = self.find_endpoint(key).cloned() else {
            return;
        };
        let network_id = endpoint.network_id.clone();
        let was_relevant = self.is_relevant(&network_id);
        if let Some(members) = self.endpoints.get_mut(&network_id) {
            members.remove(key);
        }
        self.network_of.remove(key);
        if endpoint.host == self.host {
            if let Some(count) = self.local.get_mut(&network_id) {
                *count = count.saturating_sub(1);
            }
        }
        if !was_relevant {
            return;
        }
        out.push(delete(revision, WatchObject::Endpoint(endpoint)));
        if !self.is_relevant(&network_id) {
            self.withdraw_network(&network_id, revision, out);
        }
    }

    /// Sends the deletes for a network that stopped being relevant: its remaining
    /// endpoints, then the network.
    fn withdraw_network(&mut self, network_id: &str, revision: u64, out: &mut Vec<WatchEvent>) {
        self.local.remove(network_id);
        for endpoint in self.endpoints_of(network_id) {
            out.push(delete(revision, WatchObject::Endpoint(endpoint.clone())));
        }
        if let Some(network) = self.networks.get(network_id) {
            out.push(delete(revision, WatchObject::Network(network.clone())));
            if !self.is_tenant_relevant(&network.tenant) {
                for group in self.groups_of(&network.tenant) {
                    out.push(delete(revision, WatchObject::Group(group.clone())));
                }
            }
        }
    }

    fn insert_endpoint(&mut self, key: String, endpoint: Endpoint) {
        let members = self.endpoints.entry(endpoint.network_id.clone()).or_default();
        let is_new = !members.contains_key(&key);
        if is_new && endpoint.host == self.host {
            *self.local.entry(endpoint.network_id.clone()).or_default() += 1;
        }
        self.network_of.insert(key.clone(), endpoint.network_id.clone());
        members.insert(key, endpoint);
    }

    fn find_endpoint(&self, key: &str) -> Option<&Endpoint> {
        let network_id = self.network_of.get(key)?;
        self.endpoints.get(network_id)?.get(key)
    }

    fn endpoints_of(&self, network_id: &str) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.get(network_id).into_iter().flat_map(|m| m.values())
    }

    fn is_relevant(&self, network_id: &str) -> bool {
        self.local.get(network_id).is_some_and(|count| *count > 0)
    }

    /// Returns true when a network of `tenant` is relevant to the host.
    fn is_tenant_relevant(&self, tenant: &str) -> bool {
        self.is_tenant_relevant_besides(tenant, "")
    }

    /// Returns true when a network of `tenant` other than `network_id` is relevant.
    fn is_tenant_relevant_besides(&self, tenant: &str, network_id: &str) -> bool {
        self.local
            .iter()
            .filter(|(id, count)| **count > 0 && id.as_str() != network_id)
            .any(|(id, _)| self.networks.get(id).is_some_and(|n| n.tenant == tenant))
    }

    fn groups_of<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a SecurityGroup> + 'a {
        self.groups.values().filter(move |g| g.tenant == tenant)
    }
}

fn put(revision: u64, object: WatchObject) -> WatchEvent {
    WatchEvent::Put { revision, object }
}

fn delete(revision: u64, object: WatchObject) -> WatchEvent {
    WatchEvent::Delete { revision, object }
}

/// Decodes a record for the watch; a corrupt one is logged and skipped so that one bad
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
