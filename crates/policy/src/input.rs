//! Input of the generator: the agent's desired state, borrowed.

use std::collections::{BTreeMap, BTreeSet};

use std::net::IpAddr;

use cloison_dataplane::TransitPlan;
use cloison_model::{Endpoint, Host, Network, Publication, SecurityGroup};

/// The desired state of one host, as the agent keeps it.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    /// Name of this host: its endpoints get ports, filters and anti-spoofing.
    pub host: &'a str,
    /// UDP port VXLAN uses, guarded by the underlay filter.
    pub vxlan_port: u16,
    /// Networks by id.
    pub networks: &'a BTreeMap<String, Network>,
    /// Endpoints by id, on this host and on others.
    pub endpoints: &'a BTreeMap<String, Endpoint>,
    /// Security groups by `tenant/name`.
    pub groups: &'a BTreeMap<String, SecurityGroup>,
    /// Hosts by name; their underlay addresses are the known VTEPs.
    pub hosts: &'a BTreeMap<String, Host>,
    /// Publications by id; those of this host's endpoints are forwarded.
    pub publications: &'a BTreeMap<String, Publication>,
    /// Transit link of each tenant router on this host, by tenant name.
    pub transits: &'a BTreeMap<String, TransitPlan>,
    /// Addresses of this host through which endpoints reach unbound publications.
    pub host_addresses: &'a [IpAddr],
}

/// An owned desired state, for tests and benchmarks that build one from scratch.
#[derive(Debug, Clone, Default)]
pub struct OwnedInput {
    pub host: String,
    pub vxlan_port: u16,
    pub networks: BTreeMap<String, Network>,
    pub endpoints: BTreeMap<String, Endpoint>,
    pub groups: BTreeMap<String, SecurityGroup>,
    pub hosts: BTreeMap<String, Host>,
    pub publications: BTreeMap<String, Publication>,
    pub transits: BTreeMap<String, TransitPlan>,
    pub host_addresses: Vec<IpAddr>,
}

impl OwnedInput {
    /// Borrows the state as the generator's input.
    pub fn as_input(&self) -> PolicyInput<'_> {
        PolicyInput {
            host: &self.host,
            vxlan_port: self.vxlan_port,
            networks: &self.networks,
            endpoints: &self.endpoints,
            groups: &self.groups,
            hosts: &self.hosts,
            publications: &self.publications,
            transits: &self.transits,
            host_addresses: &self.host_addresses,
        }
    }
}

impl<'a> PolicyInput<'a> {
    /// Returns the endpoints on this host whose network is known, with that network.
    pub(crate) fn local_endpoints(&self) -> impl Iterator<Item = (&'a Endpoint, &'a Network)> + 'a {
        let host = self.host;
        let networks = self.networks;
        self.endpoints
            .values()
            .filter(move |e| e.host == host)
            .filter_map(move |e| networks.get(&e.network_id).map(|n| (e, n)))
    }

    /// Returns every known endpoint with its network.
    pub(crate) fn all_endpoints(&self) -> impl Iterator<Item = (&'a Endpoint, &'a Network)> + 'a {
        let networks = self.networks;
        self.endpoints
            .values()
            .filter_map(move |e| networks.get(&e.network_id).map(|n| (e, n)))
    }

    /// Returns the networks this host carries, by id: every network of each tenant
    /// with an endpoint here, as the agent sets them up.
    pub(crate) fn present_networks(&self) -> BTreeMap<&'a str, &'a Network> {
        let tenants = self.local_tenants();
        self.networks
            .values()
            .filter(|n| tenants.contains(&n.tenant))
            .map(|n| (n.id.as_str(), n))
            .collect()
    }

    /// Returns the tenants with an endpoint on this host.
    pub(crate) fn local_tenants(&self) -> BTreeSet<String> {
        self.local_endpoints().map(|(_, n)| n.tenant.clone()).collect()
    }

    /// Returns the network of `tenant` called `name`, when the host's desired state contains it.
    pub(crate) fn network_named(&self, tenant: &str, name: &str) -> Option<&'a Network> {
        self.networks.values().find(|n| n.tenant == tenant && n.name == name)
    }
}
