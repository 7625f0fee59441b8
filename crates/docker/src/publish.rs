//! `ProgramExternalConnectivity` and `RevokeExternalConnectivity`: Docker's
//! published ports (`docker run -p`) as cloison publications of the endpoint.

use std::net::IpAddr;

use cloison_model::{PublicationSpec, PublishProtocol};
use serde::Deserialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::endpoint::{endpoint_name, short_id};
use crate::protocol::{JoinRequest, PORT_MAP};
use crate::{Driver, DriverError};

/// IANA protocol numbers that Docker's `PortBinding.Proto` carries.
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// One entry of `com.docker.network.portmap` (libnetwork's `types.PortBinding`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PortBinding {
    proto: u8,
    port: u16,
    #[serde(rename = "HostIP")]
    host_ip: Option<String>,
    host_port: u16,
    host_port_end: u16,
}

impl Driver {
    /// Creates one publication per port binding of the endpoint. When one fails,
    /// the publications this call created are removed again.
    pub async fn program_external(&self, request: JoinRequest) -> Result<(), DriverError> {
        let Some(ports) = request.options.get(PORT_MAP) else {
            return Ok(());
        };
        let specs = publication_specs(&endpoint_name(short_id(&request.endpoint_id)?), ports)?;
        if specs.is_empty() {
            return Ok(());
        }
        let binding = self.binding(&request.network_id).await?;
        // Docker repeats the call for an endpoint it restores, so publications
        // that already exist with the same mapping are kept. Fields are compared, not
        // names, because a bound publication may carry a name without its address.
        let existing = self.backend.list_publications(&binding.tenant).await?;
        let mut created = Vec::new();
        for spec in specs {
            let same = existing.iter().any(|p| {
                p.forwards(&spec.endpoint, spec.host_port, spec.protocol) && p.port == spec.port && p.host_ip == spec.host_ip
            });
            if same {
                continue;
            }
            match self.backend.publish(&binding.tenant, &spec).await {
                Ok(publication) => {
                    info!(docker.endpoint = %request.endpoint_id, publication.name = %publication.name, "Docker port published");
                    created.push(publication.name);
                }
                Err(error) => {
                    self.unpublish_all(&binding.tenant, &created).await;
                    return Err(publish_error(&spec, error));
                }
            }
        }
        Ok(())
    }

    /// Removes every publication of the endpoint; none left is not an error.
    pub async fn revoke_external(&self, network_id: &str, endpoint_id: &str) -> Result<(), DriverError> {
        let endpoint = endpoint_name(short_id(endpoint_id)?);
        let binding = self.binding(network_id).await?;
        let publications = self.backend.list_publications(&binding.tenant).await?;
        for publication in publications.iter().filter(|p| p.endpoint == endpoint) {
            match self.backend.unpublish(&binding.tenant, &publication.name).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => info!(docker.endpoint = %endpoint_id, publication.name = %publication.name, "Docker port unpublished"),
            }
        }
        Ok(())
    }

    async fn unpublish_all(&self, tenant: &str, names: &[String]) {
        for name in names {
            if let Err(error) = self.backend.unpublish(tenant, name).await {
                warn!(tenant.name = %tenant, publication.name = %name, %error, "rollback of a Docker publication failed");
            }
        }
    }
}

/// Converts Docker's port map into publications of `endpoint`, one per host
/// port and protocol.
fn publication_specs(endpoint: &str, ports: &Value) -> Result<Vec<PublicationSpec>, DriverError> {
    let bindings: Vec<PortBinding> = match ports {
        Value::Null => Vec::new(),
        other => serde_json::from_value(other.clone())
            .map_err(|e| DriverError::Invalid(format!("invalid {PORT_MAP} option: {e}")))?,
    };
    let mut specs: Vec<PublicationSpec> = Vec::new();
    for binding in bindings {
        let spec = publication_spec(endpoint, &binding)?;
        // Docker 20.10 may list one binding per address family for `-p 8080:80`,
        // and both mean every address of the host here.
        let duplicate = specs.iter().any(|s| s.name() == spec.name());
        if !duplicate {
            specs.push(spec);
        }
    }
    Ok(specs)
}

fn publication_spec(endpoint: &str, binding: &PortBinding) -> Result<PublicationSpec, DriverError> {
    let protocol = match binding.proto {
        PROTO_TCP => PublishProtocol::Tcp,
        PROTO_UDP => PublishProtocol::Udp,
        other => {
            return Err(DriverError::Invalid(format!(
                "published port {}: protocol number {other} is not supported on cloison networks; use tcp or udp",
                binding.port
            )))
        }
    };
    if binding.host_port == 0 {
        return Err(DriverError::Invalid(format!(
            "published port {}/{protocol} has no host port, and cloison networks do not choose one; use -p HOSTPORT:{}",
            binding.port, binding.port
        )));
    }
    if binding.host_port_end != 0 && binding.host_port_end != binding.host_port {
        return Err(DriverError::Invalid(format!(
            "host port range {}-{} is not supported on cloison networks; publish one host port per container port",
            binding.host_port, binding.host_port_end
        )));
    }
    let spec = PublicationSpec {
        endpoint: endpoint.to_string(),
        host_ip: host_address(binding.host_ip.as_deref())?,
        host_port: binding.host_port,
        port: binding.port,
        protocol,
    };
    spec.validate().map_err(|e| DriverError::Invalid(e.to_string()))?;
    Ok(spec)
}

/// Parses Docker's `HostIP`; empty and unspecified addresses mean every address.
fn host_address(text: Option<&str>) -> Result<Option<IpAddr>, DriverError> {
    let text = text.unwrap_or_default();
    if text.is_empty() {
        return Ok(None);
    }
    let address: IpAddr = text
        .parse()
        .map_err(|_| DriverError::Invalid(format!("invalid host address {text:?} of a published port")))?;
    Ok((!address.is_unspecified()).then_some(address))
}

/// Names the mapping in the controller's error, so Docker shows which `-p` failed.
fn publish_error(spec: &PublicationSpec, error: DriverError) -> DriverError {
    let address = spec.host_ip.map_or_else(String::new, |ip| format!("{ip}:"));
    let mapping = format!("{address}{}:{}/{}", spec.host_port, spec.port, spec.protocol);
    match error {
        DriverError::Cloison { status, message } => DriverError::Cloison {
            status,
            message: format!("cannot publish {mapping}: {message}"),
        },
        other => other,
    }
}
