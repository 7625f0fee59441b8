//! An in-memory [`Backend`] with the controller's naming and overlap rules that
//! the driver relies on.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use cloison_docker::{Attached, Backend, DriverError};
use cloison_model::{Endpoint, EndpointSpec, MacAddr, Network, NetworkSpec, Publication, PublicationSpec};

#[derive(Debug, Default)]
pub(crate) struct FakeBackend {
    networks: Mutex<BTreeMap<String, Network>>,
    endpoints: Mutex<BTreeMap<String, Endpoint>>,
    publications: Mutex<BTreeMap<String, Publication>>,
}

fn key(tenant: &str, name: &str) -> String {
    format!("{tenant}/{name}")
}

fn not_found(what: String) -> DriverError {
    DriverError::Cloison {
        status: Some(404),
        message: format!("{what} not found"),
    }
}

impl FakeBackend {
    pub(crate) fn add_network(&self, tenant: &str, name: &str, subnet: &str) {
        let subnet: ipnet::Ipv4Net = subnet.parse().expect("subnet");
        let network = Network {
            id: format!("id-{name}"),
            tenant: tenant.into(),
            name: name.into(),
            vni: 100,
            subnet,
            subnet6: None,
            gateway: cloison_ipam::default_gateway4(subnet),
            gateway6: None,
            gateway_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            mtu: None,
            external: false,
            flood: false,
            labels: BTreeMap::new(),
            resource_version: 1,
        };
        self.networks.lock().expect("lock").insert(key(tenant, name), network);
    }

    pub(crate) fn add_endpoint(&self, tenant: &str, network: &str, name: &str, ipv4: &str, host: &str) {
        let endpoint = Endpoint {
            id: format!("id-{name}"),
            tenant: tenant.into(),
            name: name.into(),
            network: network.into(),
            network_id: format!("id-{network}"),
            host: host.into(),
            mac: MacAddr([0x0a, 0, 0, 0, 0, 0x99]),
            ipv4: ipv4.parse().expect("address"),
            ipv6: None,
            ifname: "eth0".into(),
            sandbox: "/proc/1/ns/net".into(),
            groups: Vec::new(),
            labels: BTreeMap::new(),
            resource_version: 1,
        };
        self.endpoints.lock().expect("lock").insert(key(tenant, name), endpoint);
    }

    /// Stores a publication as it is, such as one with a name of an older version.
    pub(crate) fn add_publication(&self, publication: Publication) {
        let key = key(&publication.tenant, &publication.name);
        self.publications.lock().expect("lock").insert(key, publication);
    }

    pub(crate) fn network_names(&self) -> Vec<String> {
        self.networks.lock().expect("lock").keys().cloned().collect()
    }

    /// Returns `TENANT/NAME` of every publication.
    pub(crate) fn publication_names(&self) -> Vec<String> {
        self.publications.lock().expect("lock").keys().cloned().collect()
    }

    pub(crate) fn endpoint(&self, tenant: &str, name: &str) -> Option<Endpoint> {
        self.endpoints.lock().expect("lock").get(&key(tenant, name)).cloned()
    }
}

#[async_trait]
impl Backend for FakeBackend {
    fn host(&self) -> &str {
        "h1"
    }

    async fn list_networks(&self, tenant: Option<&str>) -> Result<Vec<Network>, DriverError> {
        let networks = self.networks.lock().expect("lock");
        Ok(networks.values().filter(|n| tenant.is_none_or(|t| t == n.tenant)).cloned().collect())
    }

    async fn create_network(&self, tenant: &str, spec: &NetworkSpec) -> Result<Network, DriverError> {
        self.add_network(tenant, &spec.name, &spec.subnet.to_string());
        let mut networks = self.networks.lock().expect("lock");
        let network = networks.get_mut(&key(tenant, &spec.name)).expect("just added");
        network.gateway = spec.gateway.unwrap_or(network.gateway);
        network.labels = spec.labels.clone();
        Ok(network.clone())
    }

    async fn delete_network(&self, tenant: &str, network: &str) -> Result<(), DriverError> {
        let removed = self.networks.lock().expect("lock").remove(&key(tenant, network));
        removed.map(|_| ()).ok_or_else(|| not_found(format!("network {network}")))
    }

    async fn list_endpoints(&self, tenant: &str, network: &str) -> Result<Vec<Endpoint>, DriverError> {
        let endpoints = self.endpoints.lock().expect("lock");
        Ok(endpoints.values().filter(|e| e.tenant == tenant && e.network == network).cloned().collect())
    }

    async fn attach(&self, tenant: &str, spec: &EndpointSpec) -> Result<Attached, DriverError> {
        let network = self
            .networks
            .lock()
            .expect("lock")
            .get(&key(tenant, &spec.network))
            .cloned()
            .ok_or_else(|| not_found(format!("network {}", spec.network)))?;
        let name = spec.name.clone().expect("the driver names its endpoints");
        let endpoint = Endpoint {
            id: format!("id-{name}"),
            tenant: tenant.into(),
            name: name.clone(),
            network: network.name.clone(),
            network_id: network.id.clone(),
            host: spec.host.clone(),
            mac: spec.mac.unwrap_or(MacAddr([0x0a, 0, 0, 0, 0, 1])),
            ipv4: spec.ipv4.expect("the driver passes Docker's address"),
            ipv6: None,
            ifname: spec.ifname.clone().unwrap_or_else(|| "eth0".into()),
            sandbox: spec.sandbox.clone(),
            groups: Vec::new(),
            labels: spec.labels.clone(),
            resource_version: 1,
        };
        self.endpoints.lock().expect("lock").insert(key(tenant, &name), endpoint.clone());
        Ok(Attached { endpoint, mtu: 1450 })
    }

    async fn detach(&self, tenant: &str, endpoint: &str) -> Result<(), DriverError> {
        let removed = self.endpoints.lock().expect("lock").remove(&key(tenant, endpoint));
        removed.map(|_| ()).ok_or_else(|| not_found(format!("endpoint {endpoint}")))
    }

    async fn publish(&self, tenant: &str, spec: &PublicationSpec) -> Result<Publication, DriverError> {
        let endpoint = self
            .endpoint(tenant, &spec.endpoint)
            .ok_or_else(|| not_found(format!("endpoint {}", spec.endpoint)))?;
        let mut publications = self.publications.lock().expect("lock");
        // As in the controller: one address, port and protocol has one holder, and an
        // unbound publication takes the port on every address.
        let overlaps = |p: &Publication| p.host_ip.is_none() || spec.host_ip.is_none() || p.host_ip == spec.host_ip;
        let holder = publications.values().find(|p| {
            p.host == endpoint.host && p.host_port == spec.host_port && p.protocol == spec.protocol && overlaps(p)
        });
        if let Some(holder) = holder {
            return Err(DriverError::Cloison {
                status: Some(409),
                message: format!("{}/{} on host {} is already taken by publication {}", spec.host_port, spec.protocol, endpoint.host, holder.name),
            });
        }
        let publication = Publication {
            id: format!("id-{}", spec.name()),
            tenant: tenant.into(),
            name: spec.name(),
            endpoint: endpoint.name.clone(),
            endpoint_id: endpoint.id.clone(),
            host: endpoint.host.clone(),
            host_ip: spec.host_ip,
            host_port: spec.host_port,
            port: spec.port,
            protocol: spec.protocol,
            resource_version: 1,
        };
        publications.insert(key(tenant, &publication.name), publication.clone());
        Ok(publication)
    }

    async fn list_publications(&self, tenant: &str) -> Result<Vec<Publication>, DriverError> {
        let publications = self.publications.lock().expect("lock");
        Ok(publications.values().filter(|p| p.tenant == tenant).cloned().collect())
    }

    async fn unpublish(&self, tenant: &str, publication: &str) -> Result<(), DriverError> {
        let removed = self.publications.lock().expect("lock").remove(&key(tenant, publication));
        removed.map(|_| ()).ok_or_else(|| not_found(format!("publication {publication}")))
    }
}
