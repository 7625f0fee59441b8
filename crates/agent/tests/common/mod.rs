//! Setup shared by the reconciler tests, which run against the recording fake.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use cloison_agent::HostContext;
use cloison_model::{Endpoint, Host, MacAddr, Network, WatchEvent};

/// Name of the host the reconciler under test runs on.
pub(crate) const ME: &str = "h1";

/// Returns the context of host `h1`, with an IPv4 underlay address and a run
/// directory of its own under Cargo's temporary directory for tests, so what one
/// test's agent records there never reaches another test.
pub(crate) fn ctx() -> HostContext {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let number = NEXT.fetch_add(1, Ordering::Relaxed);
    let run_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("agent-run-{}-{number}", std::process::id()));
    HostContext {
        host: ME.into(),
        underlay_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        underlay_mtu: 1500,
        vxlan_port: 4789,
        run_dir,
    }
}

/// Returns network `web` (id `n1`, VNI 42, 10.10.0.0/24) of tenant `t1`.
pub(crate) fn network() -> Network {
    Network {
        id: "n1".into(),
        tenant: "t1".into(),
        name: "web".into(),
        vni: 42,
        subnet: "10.10.0.0/24".parse().expect("subnet"),
        subnet6: None,
        gateway: Ipv4Addr::new(10, 10, 0, 1),
        gateway6: None,
        gateway_mac: MacAddr::local_from_u64(42),
        mtu: None,
        external: false,
        flood: false,
        labels: BTreeMap::new(),
        resource_version: 1,
    }
}

/// Returns a snapshot of `network()`, host `h1` and `endpoints`.
pub(crate) fn snapshot(revision: u64, endpoints: Vec<Endpoint>) -> WatchEvent {
    WatchEvent::Snapshot {
        revision,
        networks: vec![network()],
        endpoints,
        hosts: vec![Host {
            name: ME.into(),
            underlay_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            underlay_mtu: 1500,
            vxlan_port: 4789,
            last_heartbeat: 0,
            resource_version: 1,
        }],
        groups: vec![],
        publications: vec![],
    }
}
