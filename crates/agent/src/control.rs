use async_trait::async_trait;
use cloison_model::{Endpoint, EndpointSpec, Host, HostSpec, Network, WatchEvent};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::AgentError;

/// What the agent needs from the controller. The CLI binary implements it over
/// HTTP; tests implement it in memory.
#[async_trait]
pub trait ControlPlane: Send + Sync + std::fmt::Debug {
    /// Registers this host or refreshes its heartbeat.
    async fn register_host(&self, spec: &HostSpec) -> Result<Host, AgentError>;
    /// Reads one network of a tenant.
    async fn get_network(&self, tenant: &str, network: &str) -> Result<Network, AgentError>;
    /// Creates an endpoint, allocating what the spec leaves open.
    async fn create_endpoint(&self, tenant: &str, spec: &EndpointSpec) -> Result<Endpoint, AgentError>;
    /// Reads one endpoint of a tenant.
    async fn get_endpoint(&self, tenant: &str, endpoint: &str) -> Result<Endpoint, AgentError>;
    /// Lists every endpoint of one network, on every host.
    async fn list_network_endpoints(&self, tenant: &str, network: &str) -> Result<Vec<Endpoint>, AgentError>;
    /// Deletes an endpoint and frees its addresses. With `id`, deletes it only if
    /// the name still refers to the endpoint of that id, and fails with NotFound
    /// otherwise.
    async fn delete_endpoint(&self, tenant: &str, endpoint: &str, id: Option<&str>) -> Result<(), AgentError>;
    /// Opens the host's watch stream after `after`, or from a snapshot when None.
    async fn watch(
        &self,
        host: &str,
        after: Option<u64>,
    ) -> Result<BoxStream<'static, Result<WatchEvent, AgentError>>, AgentError>;
}

/// Body of `POST /v1/attach` on the agent socket.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AttachRequest {
    pub tenant: String,
    pub network: String,
    /// `netns:NAME`, `pid:PID`, `docker:CONTAINER` or a path to a network namespace.
    pub target: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub ipv4: Option<std::net::Ipv4Addr>,
    #[serde(default)]
    pub ipv6: Option<std::net::Ipv6Addr>,
    #[serde(default)]
    pub mac: Option<cloison_model::MacAddr>,
    #[serde(default)]
    pub ifname: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub labels: cloison_model::Labels,
}

/// Body of `POST /v1/detach` on the agent socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DetachRequest {
    pub tenant: String,
    pub endpoint: String,
}
