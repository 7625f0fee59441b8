//! `CreateNetwork` and `DeleteNetwork`: binding a Docker network to a cloison
//! network, created on demand.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use cloison_model::{Network, NetworkSpec};
use ipnet::Ipv4Net;
use serde_json::Value;
use tracing::info;

use crate::protocol::{CreateNetworkRequest, IpamData, DOCKER_MTU, GENERIC_OPTIONS};
use crate::{Driver, DriverError, NetworkBinding};

/// Address space the IPAM driver reports, so a network made with another IPAM
/// driver is recognised in `CreateNetwork`.
pub(crate) const ADDRESS_SPACE: &str = "cloison";
/// Label on cloison networks this driver created: the host whose dockerd asked.
pub(crate) const CREATED_BY_LABEL: &str = "docker.cloison.io/created-by";
/// Label on cloison networks and endpoints: Docker's network id.
pub(crate) const NETWORK_ID_LABEL: &str = "docker.cloison.io/network-id";

/// Settings read from `docker network create -o KEY=VALUE` options and the IPv4 pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetworkOptions {
    pub(crate) tenant: String,
    /// Name of the cloison network; None binds by subnet or makes up a name.
    pub(crate) network: Option<String>,
    pub(crate) mtu: Option<u32>,
    pub(crate) subnet: Ipv4Net,
    pub(crate) gateway: Ipv4Addr,
}

impl Driver {
    /// Binds a Docker network to the tenant's network with the same name (`-o
    /// network=NAME`) or the same subnet, or creates one.
    pub async fn create_network(&self, request: CreateNetworkRequest) -> Result<(), DriverError> {
        let options = parse_network_options(&request)?;
        let mut state = self.state.lock().await;
        let clash = state.records.with_subnet(options.subnet).find(|(id, _)| **id != request.network_id);
        if let Some((_, other)) = clash {
            return Err(DriverError::Invalid(format!(
                "subnet {} is already used on this host by the Docker network bound to cloison network {}/{}; choose another --subnet",
                options.subnet, other.tenant, other.network
            )));
        }
        let existing = self.find_network(&options).await?;
        let binding = match existing {
            Some(network) => {
                let created = self.created_for(&network, &request.network_id);
                NetworkBinding { created, ..bind_existing(&network, &options)? }
            }
            None => self.create_cloison_network(&request.network_id, &options).await?,
        };
        info!(docker.network = %request.network_id, tenant = %binding.tenant, net.name = %binding.network, created = binding.created, "Docker network bound");
        state.records.insert(&request.network_id, binding)
    }

    /// Unbinds a Docker network, and deletes the cloison network when this driver
    /// created it and no endpoint on any host uses it any more.
    pub async fn delete_network(&self, network_id: &str) -> Result<(), DriverError> {
        let mut state = self.state.lock().await;
        let Some(binding) = state.records.remove(network_id)? else {
            return Ok(());
        };
        if !binding.created || state.records.count_bound(&binding.tenant, &binding.network) > 0 {
            return Ok(());
        }
        let endpoints = match self.backend.list_endpoints(&binding.tenant, &binding.network).await {
            Ok(endpoints) => endpoints,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        if !endpoints.is_empty() {
            info!(tenant = %binding.tenant, net.name = %binding.network, endpoints = endpoints.len(), "cloison network kept: still in use");
            return Ok(());
        }
        match self.backend.delete_network(&binding.tenant, &binding.network).await {
            Err(e) if !e.is_not_found() => Err(e),
            _ => {
                info!(tenant = %binding.tenant, net.name = %binding.network, "cloison network deleted");
                Ok(())
            }
        }
    }

    /// Checks whether this driver created `network` for the Docker network
    /// `network_id`, as when dockerd repeats a `CreateNetwork`. Such a binding stays
    /// `created`, so `docker network rm` still deletes the cloison network.
    fn created_for(&self, network: &Network, network_id: &str) -> bool {
        let label = |key: &str| network.labels.get(key).map(String::as_str);
        label(NETWORK_ID_LABEL) == Some(network_id) && label(CREATED_BY_LABEL) == Some(self.backend.host())
    }

    async fn find_network(&self, options: &NetworkOptions) -> Result<Option<Network>, DriverError> {
        let networks = match self.backend.list_networks(Some(&options.tenant)).await {
            Ok(networks) => networks,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        let found = networks.into_iter().find(|n| match &options.network {
            Some(name) => *name == n.name,
            None => n.subnet == options.subnet,
        });
        Ok(found)
    }

    /// Creates the cloison network of a binding, named by `-o network` or after
    /// Docker's network id.
    pub(crate) async fn create_cloison_network(
        &self,
        network_id: &str,
        options: &NetworkOptions,
    ) -> Result<NetworkBinding, DriverError> {
        let name = options.network.clone().unwrap_or_else(|| default_network_name(network_id));
        let labels = BTreeMap::from([
            (CREATED_BY_LABEL.to_string(), self.backend.host().to_string()),
            (NETWORK_ID_LABEL.to_string(), network_id.to_string()),
        ]);
        let spec = NetworkSpec {
            name,
            subnet: options.subnet,
            gateway: Some(options.gateway),
            mtu: options.mtu,
            labels,
            ..NetworkSpec::default()
        };
        let network = self.backend.create_network(&options.tenant, &spec).await?;
        info!(tenant = %network.tenant, net.name = %network.name, net.vni = network.vni, "cloison network created for Docker");
        Ok(NetworkBinding {
            tenant: network.tenant,
            network: network.name,
            subnet: network.subnet,
            gateway: network.gateway,
            created: true,
        })
    }
}

/// Checks that an existing cloison network matches what Docker's IPAM handed out.
fn bind_existing(network: &Network, options: &NetworkOptions) -> Result<NetworkBinding, DriverError> {
    let id = format!("{}/{}", network.tenant, network.name);
    if network.subnet != options.subnet {
        return Err(DriverError::Invalid(format!(
            "cloison network {id} has subnet {}, not {}; pass --subnet {}",
            network.subnet, options.subnet, network.subnet
        )));
    }
    if network.gateway != options.gateway {
        return Err(DriverError::Invalid(format!(
            "cloison network {id} has gateway {}, not {}; pass --gateway {}",
            network.gateway, options.gateway, network.gateway
        )));
    }
    if let Some(requested) = options.mtu {
        match network.mtu {
            Some(mtu) if mtu == requested => {}
            Some(mtu) => {
                return Err(DriverError::Invalid(format!(
                    "cloison network {id} has MTU {mtu}, not {requested}; pass -o mtu={mtu} or omit -o mtu"
                )));
            }
            None => {
                return Err(DriverError::Invalid(format!(
                    "cloison network {id} uses each host's default MTU (the underlay MTU minus the VXLAN overhead), not {requested}; omit -o mtu"
                )));
            }
        }
    }
    Ok(NetworkBinding {
        tenant: network.tenant.clone(),
        network: network.name.clone(),
        subnet: network.subnet,
        gateway: network.gateway,
        created: false,
    })
}

/// Returns the cloison name of a Docker network created without `-o network`.
fn default_network_name(network_id: &str) -> String {
    let short: String = network_id.chars().take(12).collect();
    format!("docker-{}", short.to_ascii_lowercase())
}

/// Reads `-o tenant=T [-o network=N] [-o mtu=M]` and the IPv4 pool.
pub(crate) fn parse_network_options(request: &CreateNetworkRequest) -> Result<NetworkOptions, DriverError> {
    let generic = generic_options(request);
    let tenant = generic
        .get("tenant")
        .cloned()
        .ok_or_else(|| DriverError::Invalid("missing option tenant: pass -o tenant=NAME".into()))?;
    let mtu = match generic.get("mtu").or_else(|| generic.get(DOCKER_MTU)) {
        Some(value) => Some(value.parse::<u32>().map_err(|_| {
            DriverError::Invalid(format!("invalid option mtu={value}: give a number of bytes such as 1450"))
        })?),
        None => None,
    };
    if request.ipv6_data.as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(DriverError::Invalid(
            "IPv6 is not supported by the cloison Docker driver; create the network without --ipv6".into(),
        ));
    }
    let pool = single_pool(request.ipv4_data.as_deref().unwrap_or_default())?;
    let (subnet, gateway) = parse_pool(pool)?;
    Ok(NetworkOptions {
        tenant,
        network: generic.get("network").cloned(),
        mtu,
        subnet,
        gateway,
    })
}

fn generic_options(request: &CreateNetworkRequest) -> BTreeMap<String, String> {
    let Some(Value::Object(map)) = request.options.get(GENERIC_OPTIONS) else {
        return BTreeMap::new();
    };
    map.iter()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect()
}

fn single_pool(pools: &[IpamData]) -> Result<&IpamData, DriverError> {
    match pools {
        [pool] if pool.address_space == ADDRESS_SPACE => Ok(pool),
        [_] => Err(DriverError::Invalid(
            "the network's addresses come from another IPAM driver; pass --ipam-driver cloison".into(),
        )),
        _ => Err(DriverError::Invalid(format!(
            "a cloison network has exactly one IPv4 subnet, got {}; pass one --subnet",
            pools.len()
        ))),
    }
}

fn parse_pool(pool: &IpamData) -> Result<(Ipv4Net, Ipv4Addr), DriverError> {
    let subnet: Ipv4Net = pool
        .pool
        .parse()
        .map_err(|_| DriverError::Invalid(format!("invalid IPv4 pool {:?}", pool.pool)))?;
    let gateway = pool
        .gateway
        .split('/')
        .next()
        .unwrap_or_default()
        .parse::<Ipv4Addr>()
        .map_err(|_| DriverError::Invalid(format!("invalid IPv4 gateway {:?}", pool.gateway)))?;
    Ok((subnet, gateway))
}
