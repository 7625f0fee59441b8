use async_trait::async_trait;
use cloison_model::{Endpoint, EndpointSpec, Network, NetworkSpec, Publication, PublicationSpec};

use crate::DriverError;

/// A local endpoint just programmed, with the MTU its veth was created with.
#[derive(Debug, Clone)]
pub struct Attached {
    pub endpoint: Endpoint,
    pub mtu: u32,
}

/// Access to cloison for the driver: the controller's networks and endpoints,
/// and this host's agent to program endpoints. The agent binary implements it over
/// the controller's API and the reconciler; unit tests implement it in memory.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Name of this host, recorded on every endpoint the driver creates.
    fn host(&self) -> &str;
    /// Lists the networks of one tenant, or of all tenants.
    async fn list_networks(&self, tenant: Option<&str>) -> Result<Vec<Network>, DriverError>;
    /// Creates a network; the controller creates the tenant when it is missing.
    async fn create_network(&self, tenant: &str, spec: &NetworkSpec) -> Result<Network, DriverError>;
    async fn delete_network(&self, tenant: &str, network: &str) -> Result<(), DriverError>;
    /// Lists the endpoints of one network on every host.
    async fn list_endpoints(&self, tenant: &str, network: &str) -> Result<Vec<Endpoint>, DriverError>;
    /// Creates an endpoint record and programs it on this host, or rolls both back.
    async fn attach(&self, tenant: &str, spec: &EndpointSpec) -> Result<Attached, DriverError>;
    /// Deletes an endpoint record and its kernel objects on this host.
    async fn detach(&self, tenant: &str, endpoint: &str) -> Result<(), DriverError>;
    /// Publishes a host port to an endpoint's port; fails when the host port is taken.
    async fn publish(&self, tenant: &str, spec: &PublicationSpec) -> Result<Publication, DriverError>;
    /// Lists the publications of one tenant.
    async fn list_publications(&self, tenant: &str) -> Result<Vec<Publication>, DriverError>;
    /// Removes a publication named `ENDPOINT-HOSTPORT-PROTOCOL`.
    async fn unpublish(&self, tenant: &str, publication: &str) -> Result<(), DriverError>;
}
