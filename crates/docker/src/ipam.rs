//! The IPAM driver: pools are cloison subnets and addresses are checked against
//! every endpoint of the cloison network on every host.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use cloison_ipam::{check_gateway4, check_requested_ipv4, default_gateway4, next_free_ipv4};
use cloison_model::validate_subnet4;
use ipnet::Ipv4Net;
use tracing::info;

use crate::protocol::{AddressReply, AddressRequest, RequestPoolReply, RequestPoolRequest, GATEWAY_REQUEST};
use crate::{Driver, DriverError};

impl Driver {
    /// Hands out `--subnet`, or a free subnet of the configured pool that overlaps
    /// no cloison network of any tenant and no pool held by this daemon.
    pub async fn request_pool(&self, request: RequestPoolRequest) -> Result<RequestPoolReply, DriverError> {
        if request.v6 {
            return Err(DriverError::Invalid(
                "IPv6 is not supported by the cloison IPAM driver; create the network without --ipv6".into(),
            ));
        }
        if !request.sub_pool.is_empty() {
            return Err(DriverError::Invalid(
                "--ip-range is not supported by the cloison IPAM driver; omit it".into(),
            ));
        }
        let mut state = self.state.lock().await;
        let pool = if request.pool.is_empty() {
            let taken: Vec<Ipv4Net> = self.cloison_subnets().await?.chain(state.pools.iter().copied()).collect();
            self.free_subnet(&taken)?
        } else {
            let pool = parse_subnet(&request.pool)?;
            if state.pools.contains(&pool) {
                return Err(DriverError::Invalid(format!(
                    "subnet {pool} is already used by another Docker network on this host; choose another --subnet"
                )));
            }
            pool
        };
        state.pools.insert(pool);
        info!(pool = %pool, "IPAM pool requested");
        Ok(RequestPoolReply {
            pool_id: pool.to_string(),
            pool: pool.to_string(),
            data: BTreeMap::new(),
        })
    }

    pub async fn release_pool(&self, pool_id: &str) -> Result<(), DriverError> {
        let pool = parse_subnet(pool_id)?;
        let mut state = self.state.lock().await;
        state.pools.remove(&pool);
        state.pending.remove(&pool);
        Ok(())
    }

    /// Hands out a gateway (before the network exists) or an endpoint address.
    pub async fn request_address(&self, request: AddressRequest) -> Result<AddressReply, DriverError> {
        let pool = parse_subnet(&request.pool_id)?;
        let requested = match request.address.as_str() {
            "" => None,
            text => Some(text.parse::<Ipv4Addr>().map_err(|_| {
                DriverError::Invalid(format!("invalid IPv4 address {text:?}"))
            })?),
        };
        let is_gateway = request.options.get("RequestAddressType").map(String::as_str) == Some(GATEWAY_REQUEST);
        let address = if is_gateway {
            let gateway = requested.unwrap_or_else(|| default_gateway4(pool));
            check_gateway4(pool, gateway)?;
            gateway
        } else {
            self.allocate(pool, requested).await?
        };
        Ok(AddressReply {
            address: format!("{address}/{}", pool.prefix_len()),
            data: BTreeMap::new(),
        })
    }

    pub async fn release_address(&self, request: AddressRequest) -> Result<(), DriverError> {
        let pool = parse_subnet(&request.pool_id)?;
        let Ok(address) = request.address.parse::<Ipv4Addr>() else {
            return Ok(());
        };
        let mut state = self.state.lock().await;
        if let Some(pending) = state.pending.get_mut(&pool) {
            pending.remove(&address);
        }
        Ok(())
    }

    /// Checks or picks an endpoint address against every endpoint of the bound
    /// cloison network, then holds it until Docker releases it.
    async fn allocate(&self, pool: Ipv4Net, requested: Option<Ipv4Addr>) -> Result<Ipv4Addr, DriverError> {
        let mut state = self.state.lock().await;
        let (_, binding) = state.records.with_subnet(pool).next().ok_or_else(|| DriverError::NotFound {
            what: format!("Docker network with pool {pool} on this host"),
        })?;
        let binding = binding.clone();
        let endpoints = self.backend.list_endpoints(&binding.tenant, &binding.network).await?;
        let pending = state.pending.entry(pool).or_default();
        let address = match requested {
            Some(ip) => {
                check_requested_ipv4(binding.subnet, binding.gateway, ip)?;
                if let Some(owner) = endpoints.iter().find(|e| e.ipv4 == ip) {
                    return Err(DriverError::Invalid(format!(
                        "address {ip} is already used by endpoint {} on host {}; choose another --ip or omit it",
                        owner.name, owner.host
                    )));
                }
                if pending.contains(&ip) {
                    return Err(DriverError::Invalid(format!(
                        "address {ip} is already held by another container on this host; choose another --ip or omit it"
                    )));
                }
                ip
            }
            None => {
                let used: BTreeSet<Ipv4Addr> = endpoints.iter().map(|e| e.ipv4).chain(pending.iter().copied()).collect();
                next_free_ipv4(binding.subnet, binding.gateway, &used, None)?
            }
        };
        pending.insert(address);
        Ok(address)
    }

    async fn cloison_subnets(&self) -> Result<impl Iterator<Item = Ipv4Net>, DriverError> {
        let networks = self.backend.list_networks(None).await?;
        Ok(networks.into_iter().map(|n| n.subnet))
    }

    fn free_subnet(&self, taken: &[Ipv4Net]) -> Result<Ipv4Net, DriverError> {
        let exhausted = || {
            DriverError::Invalid(format!(
                "no free /{} subnet is left in the pool {}; pass --subnet or widen the agent's --docker-subnet-pool",
                self.config.subnet_prefix, self.config.subnet_pool
            ))
        };
        let candidates = self.config.subnet_pool.subnets(self.config.subnet_prefix).map_err(|_| exhausted())?;
        candidates
            .into_iter()
            .find(|c| !taken.iter().any(|t| t.contains(&c.network()) || c.contains(&t.network())))
            .ok_or_else(exhausted)
    }
}

fn parse_subnet(text: &str) -> Result<Ipv4Net, DriverError> {
    let subnet: Ipv4Net = text
        .parse()
        .map_err(|_| DriverError::Invalid(format!("invalid IPv4 subnet {text:?}: give a CIDR such as 10.1.0.0/24")))?;
    validate_subnet4(&subnet).map_err(|e| DriverError::Invalid(e.to_string()))?;
    Ok(subnet)
}
