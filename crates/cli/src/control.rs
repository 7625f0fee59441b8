//! The agent's view of the controller, over the HTTP API.

use async_trait::async_trait;
use cloison_agent::{AgentError, ControlPlane};
use cloison_client::{Client, ClientError};
use cloison_model::{Endpoint, EndpointSpec, Host, HostSpec, Network, WatchEvent};
use futures::stream::BoxStream;
use futures::StreamExt;

/// [`ControlPlane`] backed by the controller's REST API.
#[derive(Debug)]
pub(crate) struct HttpControlPlane {
    client: Client,
}

impl HttpControlPlane {
    /// Creates a control plane client for one or several comma-separated URLs.
    pub(crate) fn new(urls: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: Client::tcp(urls)?,
        })
    }
}

fn agent_error(e: ClientError) -> AgentError {
    match e {
        ClientError::Api { status, code, message } => AgentError::Controller {
            status: Some(status),
            code,
            message,
        },
        other => AgentError::Controller {
            status: None,
            code: "unavailable".to_string(),
            message: other.to_string(),
        },
    }
}

#[async_trait]
impl ControlPlane for HttpControlPlane {
    async fn register_host(&self, spec: &HostSpec) -> Result<Host, AgentError> {
        self.client.register_host(spec).await
            .map_err(agent_error)
    }

    async fn get_network(&self, tenant: &str, network: &str) -> Result<Network, AgentError> {
        self.client.get_network(tenant, network).await
            .map_err(agent_error)
    }

    async fn create_endpoint(&self, tenant: &str, spec: &EndpointSpec) -> Result<Endpoint, AgentError> {
        self.client.create_endpoint(tenant, spec).await
            .map_err(agent_error)
    }

    async fn get_endpoint(&self, tenant: &str, endpoint: &str) -> Result<Endpoint, AgentError> {
        self.client.get_endpoint(tenant, endpoint).await
            .map_err(agent_error)
    }

    async fn list_network_endpoints(&self, tenant: &str, network: &str) -> Result<Vec<Endpoint>, AgentError> {
        self.client
            .list_endpoints(Some(tenant), Some(network), None)
            .await
            .map_err(agent_error)
    }

    async fn delete_endpoint(&self, tenant: &str, endpoint: &str, id: Option<&str>) -> Result<(), AgentError> {
        self.client.delete_endpoint(tenant, endpoint, id).await
            .map_err(agent_error)
    }

    async fn watch(
        &self,
        host: &str,
        after: Option<u64>,
    ) -> Result<BoxStream<'static, Result<WatchEvent, AgentError>>, AgentError> {
        let stream = self.client.watch_host(host, after).await.map_err(agent_error)?;
        Ok(stream.map(|item| item.map_err(agent_error)).boxed())
    }
}
