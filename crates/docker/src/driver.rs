use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;
use tokio::sync::Mutex;

use crate::{Backend, Records};

/// Settings of the driver that the operator chooses.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Range that subnets of `docker network create` without `--subnet` come from.
    pub subnet_pool: Ipv4Net,
    /// Prefix length of each subnet taken from `subnet_pool`.
    pub subnet_prefix: u8,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            subnet_pool: Ipv4Net::new(Ipv4Addr::new(10, 224, 0, 0), 12).unwrap_or_default(),
            subnet_prefix: 24,
        }
    }
}

/// Docker's network and IPAM driver on top of cloison. One driver serves one
/// dockerd. Calls are serialised by one lock, because the IPAM state and the
/// records must change together and each call is short.
#[derive(Debug)]
pub struct Driver {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) config: DriverConfig,
    pub(crate) state: Mutex<State>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) records: Records,
    /// Pools handed to Docker and not released yet.
    pub(crate) pools: BTreeSet<Ipv4Net>,
    /// Addresses handed to Docker whose endpoint may not exist yet, by pool.
    pub(crate) pending: BTreeMap<Ipv4Net, BTreeSet<Ipv4Addr>>,
}

impl Driver {
    /// Creates a driver. `records` contains the bindings of earlier runs.
    pub fn new(backend: Arc<dyn Backend>, config: DriverConfig, records: Records) -> Self {
        let pools = records_pools(&records);
        Self {
            backend,
            config,
            state: Mutex::new(State {
                records,
                pools,
                pending: BTreeMap::new(),
            }),
        }
    }
}

fn records_pools(records: &Records) -> BTreeSet<Ipv4Net> {
    records.subnets().collect()
}
