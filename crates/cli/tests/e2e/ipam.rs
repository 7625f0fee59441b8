//! Many concurrent attaches through the agent socket.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use cloison_agent::AttachRequest;
use cloison_client::{Client, ClientError};
use cloison_model::Endpoint;

use crate::harness::{text, Host, Netns};

fn attach_request(tenant: &str, network: &str, target: String, ifname: &str) -> AttachRequest {
    AttachRequest {
        tenant: tenant.to_string(),
        network: network.to_string(),
        target,
        name: None,
        ipv4: None,
        ipv6: None,
        mac: None,
        ifname: Some(ifname.to_string()),
        groups: Vec::new(),
        labels: Default::default(),
    }
}

/// Sends every request at once to the agent socket and returns the results in order.
fn attach_concurrently(
    host: &Host,
    requests: Vec<AttachRequest>,
) -> Vec<Result<Endpoint, ClientError>> {
    let runtime = tokio::runtime::Runtime::new().expect("cannot start a tokio runtime");
    let socket = host.socket();
    runtime.block_on(async move {
        let tasks: Vec<_> = requests
            .into_iter()
            .map(|request| {
                let client = Client::unix(socket.clone());
                tokio::spawn(
                    async move { client.post::<Endpoint, _>("/v1/attach", &request).await },
                )
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("attach task panicked"));
        }
        results
    })
}

/// Unwraps every result, panicking with the first error and how many failed.
fn all_ok(results: Vec<Result<Endpoint, ClientError>>) -> Vec<Endpoint> {
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    assert!(
        failed.is_empty(),
        "{} attaches failed, first: {}",
        failed.len(),
        failed[0]
    );
    results.into_iter().filter_map(Result::ok).collect()
}

#[test]
fn ipam_race_300_attaches() {
    let host = Host::start("race");
    let network = host.create_network("blue", "big", "10.40.0.0/23");
    let gateway: Ipv4Addr = text(&network, "gateway").parse().expect("gateway address");
    let containers: Vec<Netns> = (0..300).map(|_| Netns::new("race")).collect();

    let requests = containers
        .iter()
        .map(|c| attach_request("blue", "big", c.target(), "eth0"))
        .collect();
    let endpoints = all_ok(attach_concurrently(&host, requests));
    assert_eq!(endpoints.len(), 300);

    let addresses: HashSet<Ipv4Addr> = endpoints.iter().map(|e| e.ipv4).collect();
    assert_eq!(addresses.len(), 300, "an address was handed out twice");
    let macs: HashSet<String> = endpoints.iter().map(|e| e.mac.to_string()).collect();
    assert_eq!(macs.len(), 300, "a MAC was handed out twice");
    assert!(
        !addresses.contains(&gateway),
        "the gateway {gateway} was handed out"
    );
    for reserved in [Ipv4Addr::new(10, 40, 0, 0), Ipv4Addr::new(10, 40, 1, 255)] {
        assert!(!addresses.contains(&reserved), "{reserved} was handed out");
    }
    for (endpoint, container) in endpoints.iter().zip(&containers) {
        let addresses_shown = container.exec_ok(&["ip", "-o", "-4", "addr", "show", "dev", "eth0"]);
        assert!(
            addresses_shown.contains(&format!("{}/23", endpoint.ipv4)),
            "{} lacks its address: {addresses_shown}",
            container.name
        );
    }

    // A /23 has 510 usable addresses. The gateway takes one and the race took 300,
    // so exactly 209 more attaches succeed and the next one finds the subnet exhausted.
    let spare = Netns::new("race-spare");
    let requests = (1..=209)
        .map(|i| attach_request("blue", "big", spare.target(), &format!("eth{i}")))
        .collect();
    let more = all_ok(attach_concurrently(&host, requests));
    let all: HashSet<Ipv4Addr> = addresses
        .iter()
        .copied()
        .chain(more.iter().map(|e| e.ipv4))
        .collect();
    assert_eq!(
        all.len(),
        509,
        "addresses were handed out twice after the race"
    );

    let last = attach_concurrently(
        &host,
        vec![attach_request("blue", "big", spare.target(), "eth210")],
    );
    let error = last[0]
        .as_ref()
        .expect_err("the 510th attach succeeded on a full /23");
    assert!(
        error.to_string().contains("exhausted"),
        "unexpected error: {error}"
    );
    assert_eq!(host.endpoints().len(), 509);
}

#[test]
fn ipam_race_first_attaches() {
    let host = Host::start("first");
    let network = host.create_network("blue", "fresh", "10.41.0.0/24");
    let vni = network["vni"].as_u64().expect("vni");
    let bridge = format!("clb{vni:06x}");
    let gateway_port = format!("clg{vni:06x}");
    assert!(
        !host.links().contains_key(&bridge),
        "the bridge exists before any attach"
    );

    let containers: Vec<Netns> = (0..20).map(|_| Netns::new("first")).collect();
    let requests = containers
        .iter()
        .map(|c| attach_request("blue", "fresh", c.target(), "eth0"))
        .collect();
    let endpoints = all_ok(attach_concurrently(&host, requests));
    let addresses: HashSet<Ipv4Addr> = endpoints.iter().map(|e| e.ipv4).collect();
    assert_eq!(addresses.len(), 20, "an address was handed out twice");
    assert!(
        !addresses.contains(&Ipv4Addr::new(10, 41, 0, 1)),
        "the gateway was handed out"
    );

    let links = host.links();
    let bridges: Vec<&String> = links.keys().filter(|n| n.starts_with("clb")).collect();
    assert_eq!(bridges, vec![&bridge], "expected exactly one bridge");
    let gateway_ports: Vec<&String> = links.keys().filter(|n| n.starts_with("clg")).collect();
    assert_eq!(
        gateway_ports,
        vec![&gateway_port],
        "expected exactly one gateway port"
    );
    let ports = host
        .ns
        .exec_ok(&["ip", "-o", "link", "show", "master", &bridge]);
    let endpoint_ports = ports.lines().filter(|l| l.contains(": cle")).count();
    assert_eq!(endpoint_ports, 20, "bridge ports: {ports}");

    for (endpoint, container) in endpoints.iter().zip(&containers).skip(1) {
        assert!(
            containers[0].ping(&endpoint.ipv4.to_string(), 1),
            "{} unreachable",
            container.name
        );
    }
    assert!(
        containers[0].ping("10.41.0.1", 2),
        "the gateway does not answer"
    );
}
