#![allow(dead_code, unreachable_pub)]

pub mod mem_store;

use std::sync::Arc;

use cloison_controller::Controller;
use cloison_model::{EndpointSpec, HostSpec, NetworkSpec};
pub use mem_store::MemStore;

/// Creates a controller over a fresh in-memory store, with hosts h1 and h2 registered.
pub async fn controller() -> (Arc<Controller>, Arc<MemStore>) {
    let store = Arc::new(MemStore::default());
    let controller = Arc::new(Controller::new(store.clone()));
    for (name, ip) in [("h1", "192.0.2.11"), ("h2", "192.0.2.12")] {
        controller.register_host(host_spec(name, ip)).await.expect("register host");
    }
    (controller, store)
}

pub fn host_spec(name: &str, ip: &str) -> HostSpec {
    HostSpec {
        name: name.into(),
        underlay_ip: ip.parse().expect("ip"),
        underlay_mtu: 1500,
        vxlan_port: 4789,
    }
}

pub fn network_spec(name: &str, subnet: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        subnet: subnet.parse().expect("subnet"),
        ..Default::default()
    }
}

pub fn endpoint_spec(network: &str, host: &str) -> EndpointSpec {
    EndpointSpec {
        network: network.into(),
        host: host.into(),
        sandbox: "/var/run/netns/test".into(),
        ..Default::default()
    }
}
