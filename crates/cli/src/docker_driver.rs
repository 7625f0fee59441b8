//! Wiring of Docker's network and IPAM driver into the agent: its options and
//! the [`Backend`] that reaches the controller's API and this host's reconciler.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use clap::Args;
use cloison_agent::{AgentError, ControlPlane, Reconciler};
use cloison_client::{Client, ClientError};
use cloison_docker::{Attached, Backend, Driver, DriverConfig, DriverError, Records};
use cloison_model::{Endpoint, EndpointSpec, Network, NetworkSpec, Publication, PublicationSpec};
use ipnet::Ipv4Net;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Options of the Docker driver, on `cloison agent` and `cloison up`.
#[derive(Debug, Clone, Args)]
pub(crate) struct DockerArgs {
    /// Socket of Docker's network and IPAM driver; dockerd finds a plugin named
    /// cloison at /run/docker/plugins/cloison.sock. An empty value disables the driver.
    // clap's PathBuf parser rejects an empty value, so the option is parsed as an
    // OsString to let `--docker-socket=` through.
    #[arg(
        long,
        default_value = "/run/docker/plugins/cloison.sock",
        value_parser = clap::builder::TypedValueParser::map(clap::builder::OsStringValueParser::new(), PathBuf::from)
    )]
    pub(crate) docker_socket: PathBuf,
    /// File of the driver's records (Docker network id to cloison network),
    /// which must survive restarts of the agent.
    #[arg(long, default_value = "/var/lib/cloison/docker-driver.json")]
    pub(crate) docker_records: PathBuf,
    /// Range that subnets of `docker network create` without --subnet come from.
    #[arg(long, default_value = "10.224.0.0/12")]
    pub(crate) docker_subnet_pool: Ipv4Net,
    /// Prefix length of each subnet taken from --docker-subnet-pool.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u8).range(8..=30))]
    pub(crate) docker_subnet_prefix: u8,
}

/// Starts the driver in the background unless its socket option is empty.
pub(crate) fn spawn(
    args: &DockerArgs,
    controller_url: &str,
    control: Arc<dyn ControlPlane>,
    reconciler: Arc<Reconciler>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    if args.docker_socket.as_os_str().is_empty() {
        info!("Docker driver disabled");
        return Ok(());
    }
    let records = Records::load(&args.docker_records)?;
    let backend = AgentBackend {
        host: reconciler.context().host.clone(),
        client: Client::tcp(controller_url)?,
        control,
        reconciler,
    };
    let config = DriverConfig {
        subnet_pool: args.docker_subnet_pool,
        subnet_prefix: args.docker_subnet_prefix,
    };
    let driver = Arc::new(Driver::new(Arc::new(backend), config, records));
    let socket = args.docker_socket.clone();
    check_socket_dir(&socket)?;
    tokio::spawn(async move {
        if let Err(error) = cloison_docker::http::serve(&socket, driver, cancel).await {
            tracing::error!(socket = %socket.display(), %error, "Docker driver stopped");
        }
    });
    Ok(())
}

fn check_socket_dir(socket: &Path) -> anyhow::Result<()> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the Docker plugin directory {}", dir.display()))?;
    }
    Ok(())
}

/// [`Backend`] over the controller's REST API and this agent's reconciler.
#[derive(Debug)]
struct AgentBackend {
    host: String,
    client: Client,
    control: Arc<dyn ControlPlane>,
    reconciler: Arc<Reconciler>,
}

fn from_client(e: ClientError) -> DriverError {
    match e {
        ClientError::Api { status, message, .. } => DriverError::Cloison {
            status: Some(status),
            message,
        },
        other => DriverError::Cloison {
            status: None,
            message: other.to_string(),
        },
    }
}

fn from_agent(e: AgentError) -> DriverError {
    match e {
        AgentError::Controller { status, message, .. } => DriverError::Cloison { status, message },
        AgentError::NotFound { what } => DriverError::NotFound { what },
        other => DriverError::Cloison {
            status: None,
            message: other.to_string(),
        },
    }
}

#[async_trait]
impl Backend for AgentBackend {
    fn host(&self) -> &str {
        &self.host
    }

    async fn list_networks(&self, tenant: Option<&str>) -> Result<Vec<Network>, DriverError> {
        self.client.list_networks(tenant).await.map_err(from_client)
    }

    async fn create_network(&self, tenant: &str, spec: &NetworkSpec) -> Result<Network, DriverError> {
        self.client.create_network(tenant, spec).await.map_err(from_client)
    }

    async fn delete_network(&self, tenant: &str, network: &str) -> Result<(), DriverError> {
        self.client.delete_network(tenant, network).await.map_err(from_client)
    }

    async fn list_endpoints(&self, tenant: &str, network: &str) -> Result<Vec<Endpoint>, DriverError> {
        self.client
            .list_endpoints(Some(tenant), Some(network), None)
            .await
            .map_err(from_client)
    }

    async fn attach(&self, tenant: &str, spec: &EndpointSpec) -> Result<Attached, DriverError> {
        let network = self.control.get_network(tenant, &spec.network).await.map_err(from_agent)?;
        let endpoint = self.control.create_endpoint(tenant, spec).await.map_err(from_agent)?;
        if let Err(e) = self.reconciler.attach(network.clone(), endpoint.clone()).await {
            if let Err(cleanup) = self.control.delete_endpoint(tenant, &endpoint.name, Some(&endpoint.id)).await {
                warn!(endpoint.id = %endpoint.id, error = %cleanup, "rollback of failed Docker attach failed");
            }
            return Err(from_agent(e));
        }
        let mtu = self.reconciler.context().overlay_mtu(&network);
        Ok(Attached { endpoint, mtu })
    }

    async fn detach(&self, tenant: &str, endpoint: &str) -> Result<(), DriverError> {
        let record = self.control.get_endpoint(tenant, endpoint).await.map_err(from_agent)?;
        self.control.delete_endpoint(tenant, endpoint, Some(&record.id)).await.map_err(from_agent)?;
        if record.host == self.host {
            self.reconciler.detach(&record).await.map_err(from_agent)?;
        }
        Ok(())
    }

    async fn publish(&self, tenant: &str, spec: &PublicationSpec) -> Result<Publication, DriverError> {
        self.client.publish(tenant, spec).await.map_err(from_client)
    }

    async fn list_publications(&self, tenant: &str) -> Result<Vec<Publication>, DriverError> {
        self.client.list_publications(Some(tenant)).await.map_err(from_client)
    }

    async fn unpublish(&self, tenant: &str, publication: &str) -> Result<(), DriverError> {
        self.client.unpublish(tenant, publication).await.map_err(from_client)
    }
}
