mod common;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use cloison_controller::{ControllerError, EndpointFilter};
use cloison_model::{
    Direction, EndpointSpec, EndpointUpdate, MacAddr, Peer, Protocol, PublicationSpec, PublishProtocol, Rule, SecurityGroupSpec,
    TenantSpec,
};
use common::{controller, endpoint_spec, network_spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocation_unique_under_300_concurrent_creates() {
    let (ctl, _) = controller().await;
    let network = ctl.create_network("t1", network_spec("big", "10.20.0.0/23")).await.expect("network");
    let mut tasks = Vec::new();
    for i in 0..300 {
        let ctl = ctl.clone();
        let host = if i % 2 == 0 { "h1" } else { "h2" };
        tasks.push(tokio::spawn(async move { ctl.create_endpoint("t1", endpoint_spec("big", host)).await }));
    }
    let mut ips = HashSet::new();
    let mut macs = HashSet::new();
    for task in tasks {
        let endpoint = task.await.expect("join").expect("create endpoint");
        assert!(network.subnet.contains(&endpoint.ipv4), "{} outside subnet", endpoint.ipv4);
        assert_ne!(endpoint.ipv4, network.gateway, "gateway handed out");
        assert!(ips.insert(endpoint.ipv4), "duplicate {}", endpoint.ipv4);
        assert!(macs.insert(endpoint.mac), "duplicate {}", endpoint.mac);
    }
    assert_eq!(ips.len(), 300);
    // A /23 has 512 addresses: minus network, broadcast and gateway, minus 300.
    assert_eq!(ctl.free_ipv4_count("t1", "big").await.expect("count"), 512 - 3 - 300);
}

/// Creates in one network pick their values under the network's lock but write
/// without it, so a store that groups commits can write them together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_in_one_network_write_together() {
    let (ctl, store) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.0.0.0/24")).await.expect("network");
    store.gather_txns(4);
    let creates: Vec<_> = (0..4)
        .map(|_| {
            let ctl = ctl.clone();
            tokio::spawn(async move { ctl.create_endpoint("t1", endpoint_spec("web", "h1")).await })
        })
        .collect();
    let mut ips = HashSet::new();
    for create in creates {
        let endpoint = create.await.expect("join").expect("create endpoint");
        assert!(ips.insert(endpoint.ipv4), "duplicate {}", endpoint.ipv4);
    }
    assert_eq!(store.max_gathered(), 4, "the creates wrote one after the other");
}

/// An automatic pick skips an address that a concurrent create requested and is
/// still writing, even when the automatic create is written first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_pick_skips_requested_in_flight() {
    let (ctl, store) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.0.0.0/24")).await.expect("network");
    let first = ctl.create_endpoint("t1", endpoint_spec("web", "h1")).await.expect("first");
    let next = Ipv4Addr::from(u32::from(first.ipv4) + 1);
    store.gather_txns(2);
    let explicit = tokio::spawn({
        let ctl = ctl.clone();
        let spec = EndpointSpec { ipv4: Some(next), ..endpoint_spec("web", "h1") };
        async move { ctl.create_endpoint("t1", spec).await }
    });
    while store.gathered_arrivals() == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let automatic = ctl.create_endpoint("t1", endpoint_spec("web", "h1")).await.expect("automatic create");
    let explicit = explicit.await.expect("join").expect("the requested address went to the automatic create");
    assert_eq!(explicit.ipv4, next);
    assert_ne!(automatic.ipv4, next);
}

/// Automatic picks after the first check the values after the cursor one by one
/// instead of reading every allocation of the network.
#[tokio::test]
async fn automatic_picks_read_few_allocations() {
    let (ctl, store) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.0.0.0/24")).await.expect("network");
    // The first create has no cursor yet, so it reads every allocation.
    ctl.create_endpoint("t1", endpoint_spec("web", "h1")).await.expect("first endpoint");
    let first = store.allocation_ranges();
    for _ in 0..10 {
        ctl.create_endpoint("t1", endpoint_spec("web", "h1")).await.expect("endpoint");
    }
    assert_eq!(store.allocation_ranges(), first, "later creates read every allocation");
}

/// An automatic pick skips addresses in use after its cursor, a few checked one
/// by one and more by reading every allocation.
#[tokio::test]
async fn automatic_pick_skips_addresses_after_cursor() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.0.0.0/24")).await.expect("network");
    let request = |last: u8| EndpointSpec { ipv4: Some(Ipv4Addr::new(10, 0, 0, last)), ..endpoint_spec("web", "h1") };
    for (taken_after, expected) in [(2u8, 13u8), (20, 31)] {
        // Addresses after the cursor taken first, then the cursor moved back before them.
        for last in 11..11 + taken_after {
            ctl.create_endpoint("t1", request(last)).await.expect("requested address");
        }
        ctl.create_endpoint("t1", request(10)).await.expect("cursor address");
        let automatic = ctl.create_endpoint("t1", endpoint_spec("web", "h1")).await.expect("automatic");
        assert_eq!(automatic.ipv4, Ipv4Addr::new(10, 0, 0, expected), "{taken_after} taken after the cursor");
        for endpoint in ctl.list_endpoints(&EndpointFilter::default()).await.expect("list") {
            ctl.delete_endpoint("t1", &endpoint.name, None).await.expect("delete");
        }
    }
}

#[tokio::test]
async fn deleted_endpoint_releases_address() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("small", "10.0.0.0/30")).await.expect("network");
    let first = ctl.create_endpoint("t1", endpoint_spec("small", "h1")).await.expect("endpoint");
    assert_eq!(first.ipv4, Ipv4Addr::new(10, 0, 0, 2));
    let err = ctl.create_endpoint("t1", endpoint_spec("small", "h1")).await.expect_err("full");
    assert!(matches!(err, ControllerError::Ipam(cloison_ipam::IpamError::Exhausted { .. })), "{err}");
    assert!(err.to_string().contains("10.0.0.0/30"), "{err}");
    assert!(err.to_string().contains("all 1 allocatable"), "{err}");
    ctl.delete_endpoint("t1", &first.name, None).await.expect("delete");
    assert_eq!(ctl.free_ipv4_count("t1", "small").await.expect("count"), 1);
    let again = ctl.create_endpoint("t1", endpoint_spec("small", "h1")).await.expect("reuse");
    assert_eq!(again.ipv4, first.ipv4);
}

/// A deletion that names the endpoint's id spares another endpoint created under
/// the same name since, as the rollback of an attach or a racing detach needs.
#[tokio::test]
async fn deletion_by_id_spares_new_holder_of_name() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.0.0.0/24")).await.expect("network");
    let spec = EndpointSpec { name: Some("db".into()), ..endpoint_spec("web", "h1") };
    let first = ctl.create_endpoint("t1", spec.clone()).await.expect("first");
    ctl.delete_endpoint("t1", "db", Some(&first.id)).await.expect("delete the first by id");
    let second = ctl.create_endpoint("t1", spec).await.expect("second");
    assert_ne!(first.id, second.id);

    let err = ctl.delete_endpoint("t1", "db", Some(&first.id)).await.expect_err("stale id");
    assert!(matches!(err, ControllerError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("refers to another endpoint"), "{err}");
    assert_eq!(ctl.get_endpoint("t1", "db").await.expect("second kept").id, second.id);
    ctl.delete_endpoint("t1", "db", Some(&second.id)).await.expect("delete the second by id");
}

#[tokio::test]
async fn explicit_values_accepted_when_free() {
    let (ctl, _) = controller().await;
    let mut spec = network_spec("web", "10.1.0.0/24");
    spec.vni = Some(4242);
    let network = ctl.create_network("t1", spec).await.expect("network");
    assert_eq!(network.vni, 4242);
    let mac: MacAddr = "0a:00:00:00:12:34".parse().expect("mac");
    let mut endpoint = endpoint_spec("web", "h1");
    endpoint.ipv4 = Some(Ipv4Addr::new(10, 1, 0, 50));
    endpoint.mac = Some(mac);
    endpoint.name = Some("web-a".into());
    let created = ctl.create_endpoint("t1", endpoint).await.expect("endpoint");
    assert_eq!(created.ipv4, Ipv4Addr::new(10, 1, 0, 50));
    assert_eq!(created.mac, mac);
    assert_eq!(created.name, "web-a");
    assert_eq!(created.ifname, "eth0");
}

#[tokio::test]
async fn explicit_values_rejected_with_reason() {
    let (ctl, _) = controller().await;
    let mut spec = network_spec("web", "10.1.0.0/24");
    spec.vni = Some(4242);
    let network = ctl.create_network("t1", spec).await.expect("network");
    let mut first = endpoint_spec("web", "h1");
    first.name = Some("web-a".into());
    first.ipv4 = Some(Ipv4Addr::new(10, 1, 0, 50));
    let first = ctl.create_endpoint("t1", first).await.expect("endpoint");

    let cases: Vec<(Option<Ipv4Addr>, Option<MacAddr>, &str)> = vec![
        (Some(Ipv4Addr::new(10, 1, 0, 50)), None, "already taken by endpoint web-a of tenant t1"),
        (Some(Ipv4Addr::new(10, 2, 0, 5)), None, "outside subnet 10.1.0.0/24"),
        (Some(Ipv4Addr::new(10, 1, 0, 1)), None, "is the gateway"),
        (Some(Ipv4Addr::new(10, 1, 0, 255)), None, "is the broadcast address of 10.1.0.0/24"),
        (None, Some(first.mac), "already taken by endpoint web-a"),
        (None, Some(network.gateway_mac), "gateway MAC"),
    ];
    for (ipv4, mac, expected) in cases {
        let mut spec = endpoint_spec("web", "h1");
        spec.ipv4 = ipv4;
        spec.mac = mac;
        let err = ctl.create_endpoint("t1", spec).await.expect_err(expected);
        assert!(err.to_string().contains(expected), "{err} lacks {expected:?}");
    }

    let mut taken_vni = network_spec("other", "10.9.0.0/24");
    taken_vni.vni = Some(4242);
    let err = ctl.create_network("t2", taken_vni.clone()).await.expect_err("VNI taken");
    assert!(err.to_string().contains("VNI 4242 is already taken by a network of another tenant"), "{err}");
    assert!(!err.to_string().contains("t1"), "the error names another tenant: {err}");
    let err = ctl.create_network("t1", taken_vni).await.expect_err("VNI taken");
    assert!(err.to_string().contains("VNI 4242 is already taken by network web of tenant t1"), "{err}");

    let mut bad_vni = network_spec("other", "10.9.0.0/24");
    bad_vni.vni = Some(1 << 24);
    let err = ctl.create_network("t2", bad_vni).await.expect_err("VNI out of range");
    assert!(err.to_string().contains("1 to 16777215"), "{err}");
}

#[tokio::test]
async fn overlap_rejected_within_tenant_only() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("a", "10.0.0.0/16")).await.expect("a");
    let err = ctl.create_network("t1", network_spec("b", "10.0.5.0/24")).await.expect_err("overlap");
    assert!(matches!(err, ControllerError::Overlap { .. }), "{err}");
    assert!(err.to_string().contains("network a"), "{err}");
    ctl.create_network("t2", network_spec("b", "10.0.5.0/24")).await.expect("other tenant may overlap");
    ctl.create_network("t1", network_spec("c", "10.1.0.0/24")).await.expect("disjoint");
}

#[tokio::test]
async fn overlap_rejected_for_ipv6() {
    let (ctl, _) = controller().await;
    let mut a = network_spec("a", "10.0.0.0/24");
    a.subnet6 = Some("fd00:1::/64".parse().expect("subnet6"));
    ctl.create_network("t1", a).await.expect("a");
    let mut b = network_spec("b", "10.0.1.0/24");
    b.subnet6 = Some("fd00:1::/80".parse().expect("subnet6"));
    let err = ctl.create_network("t1", b).await.expect_err("overlap");
    assert!(err.to_string().contains("fd00:1::/64 of network a"), "{err}");
}

#[tokio::test]
async fn network_checks_gateway_and_mtu() {
    let (ctl, _) = controller().await;
    let mut spec = network_spec("a", "10.0.0.0/24");
    spec.gateway = Some(Ipv4Addr::new(10, 0, 1, 1));
    let err = ctl.create_network("t1", spec).await.expect_err("gateway");
    assert!(err.to_string().contains("gateway 10.0.1.1 is outside subnet 10.0.0.0/24"), "{err}");
    let mut spec = network_spec("a", "10.0.0.0/24");
    spec.mtu = Some(100);
    let err = ctl.create_network("t1", spec).await.expect_err("mtu");
    assert!(err.to_string().contains("invalid MTU 100"), "{err}");
    let err = ctl.create_network("t1", network_spec("a", "10.0.0.5/24")).await.expect_err("host bits");
    assert!(err.to_string().contains("did you mean 10.0.0.0/24"), "{err}");
}

#[tokio::test]
async fn stale_version_rejected() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.1.0.0/24")).await.expect("network");
    let endpoint = ctl.create_endpoint("t1", endpoint_spec("web", "h1")).await.expect("endpoint");
    let group = SecurityGroupSpec { name: "db-clients".into(), ..Default::default() };
    ctl.create_group("t1", group).await.expect("group");
    let update = EndpointUpdate {
        resource_version: endpoint.resource_version,
        groups: Some(vec!["db-clients".into()]),
        labels: None,
    };
    let updated = ctl.update_endpoint("t1", &endpoint.name, update.clone()).await.expect("update");
    assert_eq!(updated.groups, vec!["db-clients".to_string()]);
    assert!(updated.resource_version > endpoint.resource_version);
    let err = ctl.update_endpoint("t1", &endpoint.name, update).await.expect_err("stale");
    assert!(matches!(err, ControllerError::StaleVersion { .. }), "{err}");
    assert!(err.to_string().contains("current version is"), "{err}");
}

#[tokio::test]
async fn delete_rejected_while_in_use() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.1.0.0/24")).await.expect("network");
    let endpoint = ctl.create_endpoint("t1", endpoint_spec("web", "h1")).await.expect("endpoint");
    let err = ctl.delete_network("t1", "web").await.expect_err("network in use");
    assert!(matches!(err, ControllerError::InUse { .. }), "{err}");
    assert!(err.to_string().contains(&endpoint.name), "{err}");
    let err = ctl.delete_tenant("t1").await.expect_err("tenant in use");
    assert!(err.to_string().contains("1 network(s): web"), "{err}");
    ctl.delete_endpoint("t1", &endpoint.name, None).await.expect("delete endpoint");
    ctl.delete_network("t1", "web").await.expect("delete network");
    ctl.delete_tenant("t1").await.expect("delete tenant");
    let err = ctl.get_tenant("t1").await.expect_err("gone");
    assert!(matches!(err, ControllerError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn tenant_delete_rejected_while_groups_remain() {
    let (ctl, _) = controller().await;
    ctl.create_tenant(TenantSpec { name: "t1".into(), ..Default::default() }).await.expect("tenant");
    let spec = SecurityGroupSpec { name: "g1".into(), ..Default::default() };
    ctl.create_group("t1", spec).await.expect("group");

    let err = ctl.delete_tenant("t1").await.expect_err("tenant in use");
    assert!(matches!(err, ControllerError::InUse { .. }), "{err}");
    assert!(err.to_string().contains("1 security group(s): g1"), "{err}");
    ctl.get_tenant("t1").await.expect("tenant kept");

    ctl.delete_group("t1", "g1").await.expect("delete group");
    ctl.delete_tenant("t1").await.expect("delete tenant");
    let spec = SecurityGroupSpec { name: "g2".into(), ..Default::default() };
    let err = ctl.create_group("t1", spec).await.expect_err("tenant gone");
    assert!(matches!(err, ControllerError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn names_validated_with_message() {
    let (ctl, _) = controller().await;
    let err = ctl
        .create_tenant(TenantSpec { name: "Bad_Name".into(), ..Default::default() })
        .await
        .expect_err("tenant name");
    assert!(err.to_string().contains("invalid tenant name \"Bad_Name\""), "{err}");
    let err = ctl.create_network("t1", network_spec("x y", "10.0.0.0/24")).await.expect_err("network name");
    assert!(err.to_string().contains("invalid network name"), "{err}");
    ctl.create_network("t1", network_spec("web", "10.0.0.0/24")).await.expect("network");
    let mut spec = endpoint_spec("web", "h1");
    spec.name = Some("-web".into());
    let err = ctl.create_endpoint("t1", spec).await.expect_err("endpoint name");
    assert!(err.to_string().contains("invalid endpoint name"), "{err}");
    let mut spec = endpoint_spec("web", "h1");
    spec.ifname = Some("a-very-long-interface".into());
    let err = ctl.create_endpoint("t1", spec).await.expect_err("ifname");
    assert!(err.to_string().contains("1-15 bytes"), "{err}");
}

#[tokio::test]
async fn endpoint_requires_registered_host() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.0.0.0/24")).await.expect("network");
    let err = ctl.create_endpoint("t1", endpoint_spec("web", "h9")).await.expect_err("unknown host");
    assert!(err.to_string().contains("host h9 is not registered"), "{err}");
}

#[tokio::test]
async fn duplicate_names_rejected() {
    let (ctl, _) = controller().await;
    ctl.create_tenant(TenantSpec { name: "t1".into(), ..Default::default() }).await.expect("tenant");
    let err = ctl
        .create_tenant(TenantSpec { name: "t1".into(), ..Default::default() })
        .await
        .expect_err("duplicate tenant");
    assert!(matches!(err, ControllerError::AlreadyExists { .. }), "{err}");
    ctl.create_network("t1", network_spec("web", "10.0.0.0/24")).await.expect("network");
    let err = ctl.create_network("t1", network_spec("web", "10.5.0.0/24")).await.expect_err("duplicate network");
    assert!(matches!(err, ControllerError::AlreadyExists { .. }), "{err}");
    let mut spec = endpoint_spec("web", "h1");
    spec.name = Some("e1".into());
    ctl.create_endpoint("t1", spec.clone()).await.expect("endpoint");
    let err = ctl.create_endpoint("t1", spec).await.expect_err("duplicate endpoint");
    assert!(matches!(err, ControllerError::AlreadyExists { .. }), "{err}");
}

#[tokio::test]
async fn network_creates_tenant_implicitly() {
    let (ctl, _) = controller().await;
    ctl.create_network("fresh", network_spec("web", "10.0.0.0/24")).await.expect("network");
    let tenant = ctl.get_tenant("fresh").await.expect("implicit tenant");
    assert_eq!(tenant.name, "fresh");
}

#[tokio::test]
async fn endpoint_listing_filters() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("a", "10.0.0.0/24")).await.expect("a");
    ctl.create_network("t1", network_spec("b", "10.0.1.0/24")).await.expect("b");
    ctl.create_endpoint("t1", endpoint_spec("a", "h1")).await.expect("a h1");
    ctl.create_endpoint("t1", endpoint_spec("a", "h2")).await.expect("a h2");
    ctl.create_endpoint("t1", endpoint_spec("b", "h1")).await.expect("b h1");
    let on_h1 = EndpointFilter { host: Some("h1".into()), ..Default::default() };
    assert_eq!(ctl.list_endpoints(&on_h1).await.expect("list").len(), 2);
    let on_a = EndpointFilter { tenant: Some("t1".into()), network: Some("a".into()), host: None };
    assert_eq!(ctl.list_endpoints(&on_a).await.expect("list").len(), 2);
    let endpoint = &ctl.list_endpoints(&on_a).await.expect("list")[0];
    assert!(endpoint.name.starts_with("a-"), "{}", endpoint.name);
    assert_eq!(endpoint.name.len(), 10);
    let status = ctl.status().await.expect("status");
    assert_eq!((status.tenants, status.networks, status.endpoints, status.hosts), (1, 2, 3, 2));
}

#[tokio::test]
async fn dual_stack_endpoint_gets_ipv6() {
    let (ctl, _) = controller().await;
    let mut spec = network_spec("ds", "10.0.0.0/24");
    spec.subnet6 = Some("fd00:5::/64".parse().expect("subnet6"));
    let network = ctl.create_network("t1", spec).await.expect("network");
    assert_eq!(network.gateway6, Some("fd00:5::1".parse().expect("ip")));
    let endpoint = ctl.create_endpoint("t1", endpoint_spec("ds", "h1")).await.expect("endpoint");
    assert_eq!(endpoint.ipv6, Some("fd00:5::2".parse().expect("ip")));
}

#[tokio::test]
async fn store_unavailable_surfaces() {
    let (ctl, store) = controller().await;
    store.set_unavailable();
    let err = ctl.list_tenants().await.expect_err("unavailable");
    assert!(matches!(err, ControllerError::Store(cloison_store::StoreError::Unavailable(_))), "{err}");
}

fn tcp_rule(port: u16, peer: Peer) -> Rule {
    Rule { direction: Direction::Ingress, protocol: Protocol::Tcp, ports: Some((port, port)), peer }
}

#[tokio::test]
async fn group_rules_are_validated_and_changed() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.1.0.0/24")).await.expect("network");
    let spec = SecurityGroupSpec { name: "web".into(), ..Default::default() };
    ctl.create_group("t1", spec.clone()).await.expect("group");
    let err = ctl.create_group("t1", spec).await.expect_err("duplicate group");
    assert!(matches!(err, ControllerError::AlreadyExists { .. }), "{err}");
    let group = ctl.add_rule("t1", "web", tcp_rule(80, Peer::Network("web".into()))).await.expect("rule");
    assert_eq!(group.rules.len(), 1);
    let err = ctl.add_rule("t1", "web", tcp_rule(80, Peer::Network("web".into()))).await.expect_err("duplicate rule");
    assert!(matches!(err, ControllerError::AlreadyExists { .. }), "{err}");
    let err = ctl.add_rule("t1", "web", tcp_rule(80, Peer::Network("nope".into()))).await.expect_err("unknown network");
    assert!(err.to_string().contains("network nope"), "{err}");
    let err = ctl.add_rule("t1", "web", tcp_rule(80, Peer::Group("nope".into()))).await.expect_err("unknown group");
    assert!(err.to_string().contains("security group nope"), "{err}");
    let icmp_port = Rule { protocol: Protocol::Icmp, ..tcp_rule(1, Peer::Any) };
    let err = ctl.add_rule("t1", "web", icmp_port).await.expect_err("icmp with ports");
    assert!(err.to_string().contains("has no ports"), "{err}");
    let group = ctl.remove_rule("t1", "web", tcp_rule(80, Peer::Network("web".into()))).await.expect("remove rule");
    assert!(group.rules.is_empty());
    let err = ctl.remove_rule("t1", "web", tcp_rule(80, Peer::Any)).await.expect_err("absent rule");
    assert!(matches!(err, ControllerError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn group_in_use_cannot_be_deleted() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.1.0.0/24")).await.expect("network");
    let mut spec = endpoint_spec("web", "h1");
    spec.groups = vec!["web".into()];
    let err = ctl.create_endpoint("t1", spec.clone()).await.expect_err("missing group");
    assert!(err.to_string().contains("security group web does not exist"), "{err}");
    ctl.create_group("t1", SecurityGroupSpec { name: "web".into(), ..Default::default() }).await.expect("group");
    let endpoint = ctl.create_endpoint("t1", spec).await.expect("endpoint");
    let err = ctl.delete_group("t1", "web").await.expect_err("group in use");
    assert!(matches!(err, ControllerError::InUse { .. }), "{err}");
    assert!(err.to_string().contains(&endpoint.name), "{err}");
    ctl.delete_endpoint("t1", &endpoint.name, None).await.expect("delete endpoint");
    ctl.delete_group("t1", "web").await.expect("delete group");
    assert!(ctl.list_groups("t1").await.expect("list").is_empty());
}

/// Egress NAT and port forwarding are programmed for IPv4 only, so a publication bound
/// to an IPv6 host address would be stored and listed but never forward anything.
#[tokio::test]
async fn publication_rejects_ipv6_host_address() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.1.0.0/24")).await.expect("network");
    let mut spec = endpoint_spec("web", "h1");
    spec.name = Some("web-1".into());
    ctl.create_endpoint("t1", spec).await.expect("endpoint");
    let publication = PublicationSpec {
        endpoint: "web-1".into(),
        host_ip: Some("::1".parse().expect("address")),
        host_port: 8086,
        port: 80,
        protocol: PublishProtocol::Tcp,
    };
    let err = ctl.publish("t1", publication).await.expect_err("IPv6 host address");
    assert!(matches!(err, ControllerError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("IPv4 only"), "{err}");
    assert!(ctl.list_publications(Some("t1")).await.expect("list").is_empty());
}

#[tokio::test]
async fn network_named_by_rule_cannot_be_deleted() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.1.0.0/24")).await.expect("network");
    ctl.create_group("t1", SecurityGroupSpec { name: "g1".into(), ..Default::default() }).await.expect("group");
    ctl.add_rule("t1", "g1", tcp_rule(80, Peer::Network("web".into()))).await.expect("rule");

    let err = ctl.delete_network("t1", "web").await.expect_err("network named by a rule");
    assert!(matches!(err, ControllerError::InUse { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("security group g1"), "{message}");
    assert!(message.contains("ingress from network:web tcp port 80"), "{message}");
    assert!(
        message.contains("cloison group rule rm g1 --ingress --from network:web --proto tcp --port 80 --tenant t1"),
        "{message}"
    );
    ctl.get_network("t1", "web").await.expect("network kept");

    ctl.remove_rule("t1", "g1", tcp_rule(80, Peer::Network("web".into()))).await.expect("remove rule");
    ctl.delete_network("t1", "web").await.expect("delete network");
}

/// A subnet that contains a host's underlay address makes the tenant's router route
/// replies to that host into the network, which breaks published ports and egress.
#[tokio::test]
async fn subnet_containing_host_underlay_rejected() {
    let (ctl, _) = controller().await;
    ctl.register_host(common::host_spec("h3", "fd00:99::3")).await.expect("IPv6 host");

    let err = ctl.create_network("t1", network_spec("web", "192.0.2.0/24")).await.expect_err("contains h1");
    assert!(matches!(err, ControllerError::UnderlayOverlap { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("192.0.2.11"), "{message}");
    assert!(message.contains("host h1"), "{message}");

    let mut spec = network_spec("web", "10.1.0.0/24");
    spec.subnet6 = Some("fd00:99::/64".parse().expect("subnet6"));
    let err = ctl.create_network("t1", spec).await.expect_err("contains h3");
    assert!(err.to_string().contains("host h3"), "{err}");

    assert!(ctl.list_networks(Some("t1")).await.expect("list").is_empty());
    ctl.create_network("t1", network_spec("web", "192.0.3.0/24")).await.expect("disjoint subnet");
}

#[tokio::test]
async fn in_use_errors_name_the_command() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.1.0.0/24")).await.expect("network");
    ctl.create_group("t1", SecurityGroupSpec { name: "web".into(), ..Default::default() }).await.expect("group");
    ctl.create_group("t1", SecurityGroupSpec { name: "db".into(), ..Default::default() }).await.expect("group");
    ctl.add_rule("t1", "db", tcp_rule(5432, Peer::Group("web".into()))).await.expect("rule");
    let mut spec = endpoint_spec("web", "h1");
    spec.name = Some("web-1".into());
    spec.groups = vec!["web".into()];
    ctl.create_endpoint("t1", spec).await.expect("endpoint");

    let err = ctl.delete_network("t1", "web").await.expect_err("network in use");
    assert!(err.to_string().contains("`cloison detach web-1 --tenant t1`"), "{err}");

    let err = ctl.delete_group("t1", "web").await.expect_err("group in use");
    let message = err.to_string();
    assert!(message.contains("`cloison endpoint update web-1 --no-groups --tenant t1`"), "{message}");
    assert!(message.contains("--group"), "{message}");
    assert!(
        message.contains("`cloison group rule rm db --ingress --from group:web --proto tcp --port 5432 --tenant t1`"),
        "{message}"
    );

    let err = ctl.delete_tenant("t1").await.expect_err("tenant in use");
    let message = err.to_string();
    assert!(message.contains("`cloison network rm web --tenant t1`"), "{message}");
    assert!(message.contains("`cloison group rm db --tenant t1`"), "{message}");
}

/// A network deleted between the check of a rule that names it and the write of that
/// rule must fail the write, or the rule would name a missing network.
#[tokio::test]
async fn rule_naming_network_deleted_meanwhile_rejected() {
    let (ctl, store) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.1.0.0/24")).await.expect("network");
    ctl.create_group("t1", SecurityGroupSpec { name: "g1".into(), ..Default::default() }).await.expect("group");

    store.delete_before_next_txn("/networks/t1/web");
    let err = ctl.add_rule("t1", "g1", tcp_rule(80, Peer::Network("web".into()))).await.expect_err("rule added");
    assert!(err.to_string().contains("network web"), "{err}");
    assert!(ctl.get_group("t1", "g1").await.expect("group").rules.is_empty());

    ctl.create_network("t1", network_spec("db", "10.2.0.0/24")).await.expect("network");
    store.delete_before_next_txn("/networks/t1/db");
    let spec = SecurityGroupSpec {
        name: "g2".into(),
        rules: vec![tcp_rule(5432, Peer::Network("db".into()))],
        ..Default::default()
    };
    let err = ctl.create_group("t1", spec).await.expect_err("group created");
    assert!(err.to_string().contains("network db"), "{err}");
    assert!(ctl.get_group("t1", "g2").await.is_err(), "group g2 was stored");
}

#[tokio::test]
async fn publication_rejects_vxlan_port() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.1.0.0/24")).await.expect("network");
    let mut spec = endpoint_spec("web", "h1");
    spec.name = Some("web-1".into());
    ctl.create_endpoint("t1", spec).await.expect("endpoint");
    let vxlan_port = ctl.get_host("h1").await.expect("host h1").vxlan_port;
    let publication = |protocol| PublicationSpec { endpoint: "web-1".into(), host_ip: None, host_port: vxlan_port, port: 5000, protocol };

    let err = ctl.publish("t1", publication(PublishProtocol::Udp)).await.expect_err("the VXLAN port");
    assert!(err.to_string().contains("VXLAN port of host h1"), "{err}");
    assert!(ctl.list_publications(Some("t1")).await.expect("list").is_empty());
    ctl.publish("t1", publication(PublishProtocol::Tcp)).await.expect("the same number over TCP is free");
}

/// 0.0.0.0 means every address of the host. Stored as a bound address, it would
/// forward nothing and leave the port free for a publication bound to 127.0.0.1.
#[tokio::test]
async fn publication_unspecified_address_binds_every_address() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.1.0.0/24")).await.expect("network");
    for name in ["web-1", "web-2"] {
        let mut spec = endpoint_spec("web", "h1");
        spec.name = Some(name.into());
        ctl.create_endpoint("t1", spec).await.expect("endpoint");
    }
    let publication = |endpoint: &str, host_ip: &str| PublicationSpec {
        endpoint: endpoint.into(),
        host_ip: Some(host_ip.parse().expect("address")),
        host_port: 8080,
        port: 80,
        protocol: PublishProtocol::Tcp,
    };

    let unbound = ctl.publish("t1", publication("web-1", "0.0.0.0")).await.expect("0.0.0.0");
    assert_eq!(unbound.host_ip, None, "0.0.0.0 was stored as a bound address");
    assert_eq!(unbound.name, "web-1-8080-tcp");
    let err = ctl.publish("t1", publication("web-2", "127.0.0.1")).await.expect_err("8080 is taken on every address");
    assert!(matches!(err, ControllerError::Taken { .. }), "{err}");
    assert!(err.to_string().contains("web-1-8080-tcp"), "{err}");
}

/// One endpoint may publish a host port on several addresses of its host, each as its
/// own publication, while one address, port and protocol still has one holder.
#[tokio::test]
async fn publication_per_host_address() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.1.0.0/24")).await.expect("network");
    for name in ["web-1", "web-2"] {
        let mut spec = endpoint_spec("web", "h1");
        spec.name = Some(name.into());
        ctl.create_endpoint("t1", spec).await.expect("endpoint");
    }
    let publication = |endpoint: &str, host_ip: Option<&str>| PublicationSpec {
        endpoint: endpoint.into(),
        host_ip: host_ip.map(|ip| ip.parse().expect("address")),
        host_port: 8080,
        port: 80,
        protocol: PublishProtocol::Tcp,
    };

    let first = ctl.publish("t1", publication("web-1", Some("127.0.0.1"))).await.expect("8080 on 127.0.0.1");
    let second = ctl.publish("t1", publication("web-1", Some("127.0.0.2"))).await.expect("8080 on 127.0.0.2");
    assert_eq!(first.name, "web-1-127.0.0.1-8080-tcp");
    assert_eq!(second.name, "web-1-127.0.0.2-8080-tcp");
    assert_eq!(ctl.list_publications(Some("t1")).await.expect("list").len(), 2);

    for (endpoint, host_ip) in [("web-1", Some("127.0.0.1")), ("web-2", Some("127.0.0.2")), ("web-1", None)] {
        let err = ctl.publish("t1", publication(endpoint, host_ip)).await.expect_err("a taken address");
        assert!(matches!(err, ControllerError::Taken { .. }), "{endpoint} {host_ip:?}: {err}");
    }

    let err = ctl.delete_tenant("t1").await.expect_err("tenant in use");
    assert!(err.to_string().contains("--host-ip 127.0.0.1 --tenant t1`"), "{err}");

    ctl.unpublish("t1", &first.name).await.expect("unpublish 127.0.0.1");
    let left = ctl.list_publications(Some("t1")).await.expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].name, second.name);
    ctl.publish("t1", publication("web-1", Some("127.0.0.1"))).await.expect("127.0.0.1 is free again");
    ctl.unpublish("t1", &second.name).await.expect("unpublish 127.0.0.2");
}

/// A tenant's router finds a publication's endpoint by protocol and host port alone,
/// so the tenant's publications of one host port on one host must share one target.
#[tokio::test]
async fn publication_router_target_shared() {
    let (ctl, _) = controller().await;
    for tenant in ["t1", "t2"] {
        ctl.create_network(tenant, network_spec("web", "10.1.0.0/24")).await.expect("network");
    }
    for (tenant, name, host) in [("t1", "web-1", "h1"), ("t1", "web-2", "h1"), ("t1", "web-3", "h2"), ("t2", "web-1", "h1")] {
        let mut spec = endpoint_spec("web", host);
        spec.name = Some(name.into());
        ctl.create_endpoint(tenant, spec).await.expect("endpoint");
    }
    let publication = |endpoint: &str, host_ip: &str, port: u16, protocol| PublicationSpec {
        endpoint: endpoint.into(),
        host_ip: Some(host_ip.parse().expect("address")),
        host_port: 8080,
        port,
        protocol,
    };
    let tcp = PublishProtocol::Tcp;
    ctl.publish("t1", publication("web-1", "127.0.0.1", 80, tcp)).await.expect("web-1:80 on 127.0.0.1");

    for (endpoint, port) in [("web-2", 80), ("web-1", 81)] {
        let err = ctl.publish("t1", publication(endpoint, "127.0.0.2", port, tcp)).await.expect_err("another target");
        assert!(matches!(err, ControllerError::PortTarget { .. }), "{endpoint}:{port}: {err}");
        let message = err.to_string();
        assert!(message.contains("already leads to web-1:80 through publication web-1-127.0.0.1-8080-tcp"), "{message}");
        assert!(message.contains("choose another host port"), "{message}");
    }

    ctl.publish("t1", publication("web-1", "127.0.0.2", 80, tcp)).await.expect("the same target on 127.0.0.2");
    ctl.publish("t1", publication("web-2", "127.0.0.3", 80, PublishProtocol::Udp)).await.expect("UDP is another port");
    ctl.publish("t1", publication("web-3", "127.0.0.3", 80, tcp)).await.expect("another host");
    ctl.publish("t2", publication("web-1", "127.0.0.3", 80, tcp)).await.expect("another tenant's router");
}

/// An endpoint's delete removes its publications in the same transaction, so a
/// publication written while the delete runs must not outlive the endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publication_never_outlives_endpoint() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.1.0.0/24")).await.expect("network");

    for round in 0..100u16 {
        let name = format!("web-{round}");
        let mut spec = endpoint_spec("web", "h1");
        spec.name = Some(name.clone());
        ctl.create_endpoint("t1", spec).await.expect("endpoint");
        let mut publishes = Vec::new();
        for offset in 0..4u16 {
            let ctl = ctl.clone();
            let spec = PublicationSpec {
                endpoint: name.clone(),
                host_ip: None,
                host_port: 10_000 + round * 10 + offset,
                port: 80,
                protocol: PublishProtocol::Tcp,
            };
            publishes.push(tokio::spawn(async move { ctl.publish("t1", spec).await }));
        }
        ctl.delete_endpoint("t1", &name, None).await.expect("delete endpoint");
        for publish in publishes {
            // A publish that ran after the delete fails with not_found.
            let _ = publish.await.expect("join");
        }

        let left = ctl.list_publications(Some("t1")).await.expect("list");
        assert!(left.is_empty(), "round {round}: publications of a deleted endpoint: {left:?}");
    }
}

/// Two publications of one host port that exclude each other, sent at the same
/// moment, must not both succeed: an unbound and a bound one, or two bound ones of
/// one tenant with different targets. Both pairs would leave the tenant's router
/// with two targets for one protocol and port, which nftables rejects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publication_conflicts_rejected_concurrently() {
    let (ctl, _) = controller().await;
    ctl.create_network("t1", network_spec("web", "10.1.0.0/24")).await.expect("network");
    for name in ["web-1", "web-2"] {
        let mut spec = endpoint_spec("web", "h1");
        spec.name = Some(name.into());
        ctl.create_endpoint("t1", spec).await.expect("endpoint");
    }
    let publication = |endpoint: &str, host_ip: Option<&str>, host_port: u16| PublicationSpec {
        endpoint: endpoint.into(),
        host_ip: host_ip.map(|ip| ip.parse().expect("address")),
        host_port,
        port: 80,
        protocol: PublishProtocol::Tcp,
    };

    for host_port in 9000..9060 {
        let second_address = if host_port % 2 == 0 { None } else { Some("127.0.0.2") };
        let first = tokio::spawn({
            let ctl = ctl.clone();
            let spec = publication("web-1", Some("127.0.0.1"), host_port);
            async move { ctl.publish("t1", spec).await }
        });
        let second = tokio::spawn({
            let ctl = ctl.clone();
            let spec = publication("web-2", second_address, host_port);
            async move { ctl.publish("t1", spec).await }
        });
        let results = [first.await.expect("join"), second.await.expect("join")];
        let succeeded = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(succeeded, 1, "port {host_port}: {results:?}");
        for err in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(
                matches!(err, ControllerError::Taken { .. } | ControllerError::PortTarget { .. }),
                "port {host_port}: {err}"
            );
        }
    }
}
