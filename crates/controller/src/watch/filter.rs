use std::collections::BTreeSet;

use cloison_model::{WatchEvent, WatchObject};

use super::index::{Change, ChangeKind, DeploymentIndex, TenantContents};

/// Turns the [`Change`]s of the shared [`DeploymentIndex`] into the events one host's
/// agent needs, as a pure state machine so it can be tested with synthetic batches.
///
/// A tenant is relevant to the host while at least one of its endpoints is on that
/// host. The host receives every network of its relevant tenants and every endpoint
/// of those networks, remote ones too for FDB and neighbour entries. It also receives
/// the security groups of those tenants, every host (for VTEP addresses), and the
/// publications of its own endpoints. A host write that changes only the heartbeat
/// time is not sent. When a tenant becomes relevant the filter sends its groups, its
/// networks and their endpoints; when it stops being relevant it sends their deletes.
/// A network created in a relevant tenant is sent when it is created.
///
/// The filter keeps only the host's name, its relevant tenants and its revision. The
/// objects it sends come from the change or from the index, which every host's
/// filter shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostWatchFilter {
    host: String,
    revision: u64,
    tenants: BTreeSet<String>,
}

/// The hosts that receive a changed object, before tenant relevance is checked.
enum Audience<'a> {
    Everyone,
    Tenant(&'a str),
    Host(&'a str),
}

impl HostWatchFilter {
    /// Positions a filter at the index's revision, with the tenants relevant to the
    /// host there, and returns it with the snapshot event that starts the host's stream.
    pub fn start(host: &str, index: &DeploymentIndex) -> (Self, WatchEvent) {
        let filter = HostWatchFilter::resume(host, index);
        let snapshot = filter.snapshot(index);
        (filter, snapshot)
    }

    /// Positions a filter at the index's revision without a snapshot, for a host that
    /// already has the state of that revision.
    pub fn resume(host: &str, index: &DeploymentIndex) -> Self {
        HostWatchFilter { host: host.to_string(), revision: index.revision(), tenants: index.tenants_on(host) }
    }

    fn snapshot(&self, index: &DeploymentIndex) -> WatchEvent {
        let (mut networks, mut endpoints, mut groups) = (Vec::new(), Vec::new(), Vec::new());
        for tenant in &self.tenants {
            let contents = index.contents(tenant);
            networks.extend(contents.networks.into_iter().cloned());
            endpoints.extend(contents.endpoints.into_iter().cloned());
            groups.extend(contents.groups.into_iter().cloned());
        }
        WatchEvent::Snapshot {
            revision: self.revision,
            networks,
            endpoints,
            hosts: index.hosts().cloned().collect(),
            groups,
            publications: index.publications_on(&self.host).cloned().collect(),
        }
    }

    /// Returns the host this filter serves.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Returns the revision of the last change applied, or where the filter started.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Returns true when `change` makes a tenant relevant to this host or withdraws one.
    pub fn moves_tenant(&self, change: &Change) -> bool {
        change.arrived.as_deref() == Some(self.host.as_str()) || change.left.as_deref() == Some(self.host.as_str())
    }

    /// Applies one change, with `index` in the state right after it, and returns the
    /// events for the host, each carrying the change's revision.
    pub fn apply(&mut self, index: &DeploymentIndex, change: &Change) -> Vec<WatchEvent> {
        self.revision = self.revision.max(change.revision);
        let mut out = Vec::new();
        let sent = match audience(&change.object) {
            Audience::Everyone => true,
            Audience::Host(host) => host == self.host,
            Audience::Tenant(tenant) => self.tenants.contains(tenant),
        };
        if sent {
            out.push(event(change.kind, change.revision, change.object.clone()));
        }
        let Audience::Tenant(tenant) = audience(&change.object) else {
            return out;
        };
        if change.left.as_deref() == Some(self.host.as_str()) && self.tenants.remove(tenant) {
            withdraw(&index.contents(tenant), change.revision, &mut out);
        }
        if change.arrived.as_deref() == Some(self.host.as_str()) && self.tenants.insert(tenant.to_string()) {
            send(&index.contents(tenant), change.revision, &mut out);
        }
        out
    }
}

fn audience(object: &WatchObject) -> Audience<'_> {
    match object {
        WatchObject::Host(_) => Audience::Everyone,
        WatchObject::Publication(p) => Audience::Host(&p.host),
        WatchObject::Network(n) => Audience::Tenant(&n.tenant),
        WatchObject::Endpoint(e) => Audience::Tenant(&e.tenant),
        WatchObject::Group(g) => Audience::Tenant(&g.tenant),
    }
}

/// Sends a tenant that just became relevant: its groups, networks, then endpoints.
fn send(contents: &TenantContents<'_>, revision: u64, out: &mut Vec<WatchEvent>) {
    let groups = contents.groups.iter().map(|g| WatchObject::Group((*g).clone()));
    let networks = contents.networks.iter().map(|n| WatchObject::Network((*n).clone()));
    let endpoints = contents.endpoints.iter().map(|e| WatchObject::Endpoint((*e).clone()));
    out.extend(groups.chain(networks).chain(endpoints).map(|o| event(ChangeKind::Put, revision, o)));
}

/// Withdraws a tenant that stopped being relevant: its endpoints, networks, then groups.
fn withdraw(contents: &TenantContents<'_>, revision: u64, out: &mut Vec<WatchEvent>) {
    let endpoints = contents.endpoints.iter().map(|e| WatchObject::Endpoint((*e).clone()));
    let networks = contents.networks.iter().map(|n| WatchObject::Network((*n).clone()));
    let groups = contents.groups.iter().map(|g| WatchObject::Group((*g).clone()));
    out.extend(endpoints.chain(networks).chain(groups).map(|o| event(ChangeKind::Delete, revision, o)));
}

fn event(kind: ChangeKind, revision: u64, object: WatchObject) -> WatchEvent {
    match kind {
        ChangeKind::Put => WatchEvent::Put { revision, object },
        ChangeKind::Delete => WatchEvent::Delete { revision, object },
    }
}
