//! A synthetic desired state for measuring the generator, `nft` load time and
//! forwarding throughput with many group rules.

use std::net::{Ipv4Addr, Ipv6Addr};

use cloison_model::{Direction, Endpoint, Host, MacAddr, Network, Peer, Protocol, Rule, SecurityGroup};
use ipnet::{IpNet, Ipv4Net};

use crate::OwnedInput;

/// Builds a state for host `h1`: tenant `bench`, network `a` (10.0.0.0/16, VNI 100)
/// with `endpoints` local endpoints in group `big`, whose `rules` ingress rules each
/// allow TCP to one port from a distinct /32 in 172.16.0.0/12. None of the rules
/// matches traffic inside network `a`, so a throughput test through an endpoint pays
/// for the lookups without any rule matching.
pub fn synthetic_input(rules: usize, endpoints: usize) -> OwnedInput {
    let network = Network {
        id: "net-a".into(),
        tenant: "bench".into(),
        name: "a".into(),
        vni: 100,
        subnet: Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 16).unwrap_or_default(),
        subnet6: None,
        gateway: Ipv4Addr::new(10, 0, 0, 1),
        gateway6: None,
        gateway_mac: MacAddr([0x02, 0, 0, 0, 0, 1]),
        mtu: None,
        external: false,
        flood: false,
        labels: Default::default(),
        resource_version: 0,
    };
    let group = SecurityGroup {
        id: "group-big".into(),
        tenant: "bench".into(),
        name: "big".into(),
        rules: (0..rules).map(synthetic_rule).collect(),
        labels: Default::default(),
        resource_version: 0,
    };
    let mut input = OwnedInput { host: "h1".into(), vxlan_port: 4789, ..OwnedInput::default() };
    input.hosts.insert(
        "h1".into(),
        Host {
            name: "h1".into(),
            underlay_ip: Ipv4Addr::new(192, 0, 2, 11).into(),
            underlay_mtu: 1500,
            vxlan_port: 4789,
            last_heartbeat: 0,
            resource_version: 0,
        },
    );
    for index in 0..endpoints {
        let endpoint = synthetic_endpoint(&network, index);
        input.endpoints.insert(endpoint.id.clone(), endpoint);
    }
    input.groups.insert("bench/big".into(), group);
    input.networks.insert(network.id.clone(), network);
    input
}

fn synthetic_rule(index: usize) -> Rule {
    // 172.16.0.0/12 holds 2^20 addresses, enough for a million distinct rules.
    let offset = u32::try_from(index % (1 << 20)).unwrap_or(0);
    let source = Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 16, 0, 0)) + offset);
    Rule {
        direction: Direction::Ingress,
        protocol: Protocol::Tcp,
        ports: Some((1024 + (index % 60_000) as u16, 1024 + (index % 60_000) as u16)),
        peer: Peer::Cidr(IpNet::from(std::net::IpAddr::V4(source))),
    }
}

fn synthetic_endpoint(network: &Network, index: usize) -> Endpoint {
    let number = u32::try_from(index).unwrap_or(0) + 2;
    let low = u64::from(number);
    Endpoint {
        id: format!("{number:08x}-0000-4000-8000-000000000000"),
        tenant: network.tenant.clone(),
        name: format!("e{number}"),
        network: network.name.clone(),
        network_id: network.id.clone(),
        host: "h1".into(),
        mac: MacAddr::local_from_u64(low),
        ipv4: Ipv4Addr::from(u32::from(network.subnet.network()) + number),
        ipv6: None::<Ipv6Addr>,
        ifname: "eth0".into(),
        sandbox: format!("/run/netns/bench{number}"),
        groups: vec!["big".into()],
        labels: Default::default(),
        resource_version: 0,
    }
}
