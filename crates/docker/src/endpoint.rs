//! `CreateEndpoint`, `Join`, `Leave` and `DeleteEndpoint`: one cloison endpoint
//! per Docker endpoint, named after Docker's endpoint id.

use std::collections::BTreeMap;

use cloison_dataplane::LocalEndpointPlan;
use cloison_model::{EndpointSpec, MacAddr};
use ipnet::Ipv4Net;
use tracing::info;

use crate::network::{NetworkOptions, NETWORK_ID_LABEL};
use crate::protocol::{
    CreateEndpointReply, CreateEndpointRequest, EndpointInterface, InterfaceName, JoinReply,
};
use crate::{Attached, Driver, DriverError, NetworkBinding};

/// Label on cloison endpoints: Docker's endpoint id.
const ENDPOINT_ID_LABEL: &str = "docker.cloison.io/endpoint-id";
/// Docker renames the container end to this prefix and the next free index.
const CONTAINER_IFNAME_PREFIX: &str = "eth";

impl Driver {
    /// Creates and programs the cloison endpoint, with the container end left in
    /// the host namespace for Docker to move. Returns the MAC when Docker has none.
    pub async fn create_endpoint(&self, request: CreateEndpointRequest) -> Result<CreateEndpointReply, DriverError> {
        let short = short_id(&request.endpoint_id)?;
        let binding = self.binding(&request.network_id).await?;
        let interface = request.interface.unwrap_or_default();
        let ipv4 = interface
            .address
            .parse::<Ipv4Net>()
            .map_err(|_| DriverError::Invalid("the endpoint has no IPv4 address; create the network with --ipam-driver cloison".into()))?
            .addr();
        let mac = match interface.mac_address.as_str() {
            "" => None,
            text => Some(text.parse::<MacAddr>().map_err(|e| DriverError::Invalid(e.to_string()))?),
        };
        let spec = EndpointSpec {
            name: Some(endpoint_name(short)),
            network: binding.network.clone(),
            host: self.backend.host().to_string(),
            mac,
            ipv4: Some(ipv4),
            ifname: Some(handoff_ifname(short)),
            sandbox: LocalEndpointPlan::HANDOFF_SANDBOX.to_string(),
            labels: BTreeMap::from([
                (ENDPOINT_ID_LABEL.to_string(), request.endpoint_id.clone()),
                (NETWORK_ID_LABEL.to_string(), request.network_id.clone()),
            ]),
            ..EndpointSpec::default()
        };
        let attached = self.attach_or_recreate(&request.network_id, &binding, &spec).await?;
        info!(docker.endpoint = %request.endpoint_id, endpoint.id = %attached.endpoint.id, ipv4 = %ipv4, mtu = attached.mtu, "Docker endpoint created");
        let interface = mac.is_none().then(|| EndpointInterface {
            mac_address: attached.endpoint.mac.to_string(),
            ..EndpointInterface::default()
        });
        Ok(CreateEndpointReply { interface })
    }

    /// Returns the interface for Docker to move into the container and the gateway.
    pub async fn join(&self, network_id: &str, endpoint_id: &str) -> Result<JoinReply, DriverError> {
        let short = short_id(endpoint_id)?;
        let binding = self.binding(network_id).await?;
        Ok(JoinReply {
            interface_name: InterfaceName {
                src_name: handoff_ifname(short),
                dst_prefix: CONTAINER_IFNAME_PREFIX.to_string(),
            },
            gateway: binding.gateway.to_string(),
            gateway_ipv6: String::new(),
            disable_gateway_service: false,
        })
    }

    /// Deletes the cloison endpoint; one that is already gone is not an error.
    pub async fn delete_endpoint(&self, network_id: &str, endpoint_id: &str) -> Result<(), DriverError> {
        let short = short_id(endpoint_id)?;
        let binding = self.binding(network_id).await?;
        match self.backend.detach(&binding.tenant, &endpoint_name(short)).await {
            Err(e) if !e.is_not_found() => Err(e),
            _ => {
                info!(docker.endpoint = %endpoint_id, "Docker endpoint deleted");
                Ok(())
            }
        }
    }

    pub(crate) async fn binding(&self, network_id: &str) -> Result<NetworkBinding, DriverError> {
        let state = self.state.lock().await;
        state.records.get(network_id).cloned().ok_or_else(|| DriverError::NotFound {
            what: format!("Docker network {network_id} in the cloison driver's records (remove the network and create it again)"),
        })
    }

    /// Attaches, and when the cloison network was deleted by `docker network rm`
    /// on another host, creates it again from this host's binding and retries.
    async fn attach_or_recreate(
        &self,
        network_id: &str,
        binding: &NetworkBinding,
        spec: &EndpointSpec,
    ) -> Result<Attached, DriverError> {
        match self.backend.attach(&binding.tenant, spec).await {
            Err(e) if e.is_not_found() && self.network_is_gone(binding).await? => {}
            other => return other,
        }
        let options = NetworkOptions {
            tenant: binding.tenant.clone(),
            network: Some(binding.network.clone()),
            mtu: None,
            subnet: binding.subnet,
            gateway: binding.gateway,
        };
        let created = self.create_cloison_network(network_id, &options).await?;
        self.state.lock().await.records.insert(network_id, created)?;
        self.backend.attach(&binding.tenant, spec).await
    }

    async fn network_is_gone(&self, binding: &NetworkBinding) -> Result<bool, DriverError> {
        let networks = self.backend.list_networks(Some(&binding.tenant)).await?;
        Ok(!networks.iter().any(|n| n.name == binding.network))
    }
}

/// Returns the first 12 characters of a Docker id, the length `docker ps` shows.
pub(crate) fn short_id(id: &str) -> Result<&str, DriverError> {
    let valid = id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return Err(DriverError::Invalid(format!(
            "invalid Docker endpoint id {id:?}: expected at least 12 hexadecimal digits"
        )));
    }
    Ok(&id[..12])
}

/// Returns the cloison endpoint name of a Docker endpoint.
pub(crate) fn endpoint_name(short: &str) -> String {
    format!("docker-{}", short.to_ascii_lowercase())
}

/// Returns the name of the container end while it waits in the host namespace
/// for Docker: `cld` and 12 hex digits, 15 bytes, the most IFNAMSIZ allows.
fn handoff_ifname(short: &str) -> String {
    format!("cld{}", short.to_ascii_lowercase())
}
