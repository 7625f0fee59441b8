//! Snapshot tests of egress NAT and publications. Run with `UPDATE_SNAPSHOTS=1` to
//! rewrite the files under `tests/snapshots/` after an intended change.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use cloison_dataplane::TransitPlan;
use cloison_model::{Endpoint, MacAddr, Network, Publication, PublishProtocol};
use cloison_policy::{generate, transition_script, OwnedInput};

fn network(tenant: &str, name: &str, vni: u32, external: bool) -> Network {
    Network {
        id: format!("{tenant}-{name}"),
        tenant: tenant.into(),
        name: name.into(),
        vni,
        subnet: "10.1.0.0/24".parse().expect("subnet"),
        subnet6: None,
        gateway: Ipv4Addr::new(10, 1, 0, 1),
        gateway6: None,
        gateway_mac: MacAddr([0x02, 0, 0, 0, 0xff, vni as u8]),
        mtu: None,
        external,
        flood: false,
        labels: BTreeMap::new(),
        resource_version: 0,
    }
}

fn endpoint(id: &str, network: &Network, last: u8) -> Endpoint {
    Endpoint {
        id: id.into(),
        tenant: network.tenant.clone(),
        name: format!("ep-{id}"),
        network: network.name.clone(),
        network_id: network.id.clone(),
        host: "h1".into(),
        mac: MacAddr([0x02, 0x42, 0, 0, network.vni as u8, last]),
        ipv4: Ipv4Addr::new(10, 1, 0, last),
        ipv6: None,
        ifname: "eth0".into(),
        sandbox: format!("/run/netns/{id}"),
        groups: Vec::new(),
        labels: BTreeMap::new(),
        resource_version: 0,
    }
}

fn publication(endpoint: &Endpoint, host_ip: Option<IpAddr>, host_port: u16, port: u16, protocol: PublishProtocol) -> Publication {
    Publication {
        id: format!("p-{host_port}-{protocol}"),
        tenant: endpoint.tenant.clone(),
        name: format!("{}-{host_port}-{protocol}", endpoint.name),
        endpoint: endpoint.name.clone(),
        endpoint_id: endpoint.id.clone(),
        host: "h1".into(),
        host_ip,
        host_port,
        port,
        protocol,
        resource_version: 0,
    }
}

fn transit(tenant: &str, slot: u8) -> TransitPlan {
    TransitPlan {
        host_ifname: cloison_dataplane::names::transit_host(tenant),
        router_ifname: cloison_dataplane::names::TRANSIT_ROUTER.into(),
        host_ipv4: Ipv4Addr::new(169, 254, 1, 2 * slot),
        router_ipv4: Ipv4Addr::new(169, 254, 1, 2 * slot + 1),
    }
}

/// Tenant t1 with an external network, tenant t2 with an internal one on the same
/// subnet; t1's endpoint publishes TCP 8080, UDP 5353 and a loopback-bound 9090,
/// and t2's endpoint 8081.
fn published() -> OwnedInput {
    let a = network("t1", "a", 101, true);
    let c = network("t2", "c", 201, false);
    let web = endpoint("a1", &a, 2);
    let other = endpoint("c1", &c, 2);
    let mut input = OwnedInput { host: "h1".into(), vxlan_port: 4789, ..OwnedInput::default() };
    for p in [
        publication(&web, None, 8080, 80, PublishProtocol::Tcp),
        publication(&web, None, 5353, 53, PublishProtocol::Udp),
        publication(&web, Some(IpAddr::from([127, 0, 0, 1])), 9090, 90, PublishProtocol::Tcp),
        publication(&other, None, 8081, 80, PublishProtocol::Tcp),
    ] {
        input.publications.insert(p.id.clone(), p);
    }
    input.endpoints.insert(web.id.clone(), web);
    input.endpoints.insert(other.id.clone(), other);
    input.networks.insert(a.id.clone(), a);
    input.networks.insert(c.id.clone(), c);
    input.transits.insert("t1".into(), transit("t1", 0));
    input.transits.insert("t2".into(), transit("t2", 1));
    input.host_addresses = vec![IpAddr::from([192, 0, 2, 11])];
    input
}

fn assert_snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read snapshot {}: {e}; run with UPDATE_SNAPSHOTS=1 to create it", path.display()));
    assert_eq!(actual, expected, "ruleset differs from snapshot {name}; run with UPDATE_SNAPSHOTS=1 and review the diff");
}

#[test]
fn nat_tables_match_snapshot() {
    let input = published();
    let rulesets = generate(&input.as_input());
    assert_snapshot("nat-host.nft", &transition_script(&rulesets.host, None));
    for tenant in ["t1", "t2"] {
        let router = &rulesets.routers[tenant];
        assert!(router.forwarding, "router of {tenant} has a transit link, so it forwards");
        assert_snapshot(&format!("nat-router-{tenant}.nft"), &transition_script(std::slice::from_ref(&router.table), None));
    }
}

#[test]
fn publication_of_unknown_endpoint_adds_nothing() {
    let mut input = published();
    input.endpoints.remove("a1");
    let rulesets = generate(&input.as_input());
    let host = rulesets.host.iter().find(|t| t.family == "inet").expect("inet table");
    let publish = host.set("publish4").expect("publish4 map");
    assert_eq!(publish.elements.len(), 1, "only t2's publication stays: {:?}", publish.elements);
}

#[test]
fn internal_network_has_no_egress() {
    let input = published();
    let rulesets = generate(&input.as_input());
    let external = rulesets.routers["t2"].table.set("external4").expect("external4 set");
    assert!(external.elements.is_empty(), "t2's network is not external: {:?}", external.elements);
}
