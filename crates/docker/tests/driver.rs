//! The driver's mapping of Docker calls onto cloison, over the HTTP protocol,
//! against an in-memory backend.

mod fake;

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use cloison_docker::{http::router, Driver, DriverConfig, Records};
use fake::FakeBackend;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const NET_ID: &str = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111";
const EP_ID: &str = "bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222";

fn driver(backend: Arc<FakeBackend>) -> Arc<Driver> {
    Arc::new(Driver::new(backend, DriverConfig::default(), Records::in_memory()))
}

async fn call(driver: &Arc<Driver>, method: &str, body: Value) -> Value {
    let request = Request::post(format!("/{method}"))
        .header("content-type", "application/vnd.docker.plugins.v1.2+json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let response = router(driver.clone()).oneshot(request).await.expect("response");
    assert_eq!(response.status(), 200, "{method}");
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    serde_json::from_slice(&bytes).expect("json reply")
}

fn create_network_body(tenant: &str, pool: &str, gateway: &str) -> Value {
    json!({
        "NetworkID": NET_ID,
        "Options": {"com.docker.network.generic": {"tenant": tenant}},
        "IPv4Data": [{"AddressSpace": "cloison", "Pool": pool, "Gateway": gateway}],
        "IPv6Data": []
    })
}

#[tokio::test]
async fn activate_lists_both_drivers() {
    let driver = driver(Arc::new(FakeBackend::default()));
    let reply = call(&driver, "Plugin.Activate", Value::Null).await;
    assert_eq!(reply, json!({"Implements": ["NetworkDriver", "IpamDriver"]}));
    let caps = call(&driver, "NetworkDriver.GetCapabilities", Value::Null).await;
    assert_eq!(caps["Scope"], "local");
}

#[tokio::test]
async fn network_create_requires_tenant() {
    let driver = driver(Arc::new(FakeBackend::default()));
    let body = json!({"NetworkID": NET_ID, "Options": null, "IPv4Data": [{"AddressSpace": "cloison", "Pool": "10.1.0.0/24", "Gateway": "10.1.0.1/24"}]});
    let reply = call(&driver, "NetworkDriver.CreateNetwork", body).await;
    let message = reply["Err"].as_str().expect("error text");
    assert!(message.contains("-o tenant=NAME"), "{message}");
}

#[tokio::test]
async fn network_create_rejects_other_ipam() {
    let driver = driver(Arc::new(FakeBackend::default()));
    let mut body = create_network_body("blue", "10.1.0.0/24", "10.1.0.1/24");
    body["IPv4Data"][0]["AddressSpace"] = json!("LocalDefault");
    let reply = call(&driver, "NetworkDriver.CreateNetwork", body).await;
    assert!(reply["Err"].as_str().expect("error").contains("--ipam-driver cloison"));
}

#[tokio::test]
async fn network_binds_existing_by_subnet() {
    let backend = Arc::new(FakeBackend::default());
    backend.add_network("blue", "shared", "10.1.0.0/24");
    let driver = driver(backend.clone());
    let reply = call(&driver, "NetworkDriver.CreateNetwork", create_network_body("blue", "10.1.0.0/24", "10.1.0.1/24")).await;
    assert_eq!(reply, json!({}));
    assert_eq!(backend.network_names(), vec!["blue/shared".to_string()]);

    // The network existed before Docker bound it, so removing it unbinds only.
    call(&driver, "NetworkDriver.DeleteNetwork", json!({"NetworkID": NET_ID})).await;
    assert_eq!(backend.network_names(), vec!["blue/shared".to_string()]);
}

#[tokio::test]
async fn repeated_create_still_deletes_network() {
    let backend = Arc::new(FakeBackend::default());
    let driver = driver(backend.clone());
    let body = create_network_body("blue", "10.1.0.0/24", "10.1.0.1/24");
    for _ in 0..2 {
        let reply = call(&driver, "NetworkDriver.CreateNetwork", body.clone()).await;
        assert_eq!(reply, json!({}));
    }
    assert_eq!(backend.network_names(), vec![format!("blue/docker-{}", &NET_ID[..12])]);

    call(&driver, "NetworkDriver.DeleteNetwork", json!({"NetworkID": NET_ID})).await;
    assert!(backend.network_names().is_empty(), "the driver created the network, so it deletes it");
}

#[tokio::test]
async fn network_bind_names_other_mtu() {
    let backend = Arc::new(FakeBackend::default());
    backend.add_network("blue", "shared", "10.1.0.0/24");
    let driver = driver(backend);
    let mut body = create_network_body("blue", "10.1.0.0/24", "10.1.0.1/24");
    body["Options"]["com.docker.network.generic"]["mtu"] = json!("1400");

    let reply = call(&driver, "NetworkDriver.CreateNetwork", body).await;
    let message = reply["Err"].as_str().expect("error text");
    assert!(message.contains("blue/shared uses each host's default MTU"), "{message}");
    assert!(message.contains("not 1400; omit -o mtu"), "{message}");
    assert!(!message.contains("Some("), "{message}");
}

#[tokio::test]
async fn network_bind_rejects_other_gateway() {
    let backend = Arc::new(FakeBackend::default());
    backend.add_network("blue", "shared", "10.1.0.0/24");
    let driver = driver(backend);
    let reply = call(&driver, "NetworkDriver.CreateNetwork", create_network_body("blue", "10.1.0.0/24", "10.1.0.9/24")).await;
    let message = reply["Err"].as_str().expect("error text");
    assert!(message.contains("pass --gateway 10.1.0.1"), "{message}");
}

#[tokio::test]
async fn endpoint_lifecycle_over_protocol() {
    let backend = Arc::new(FakeBackend::default());
    let driver = driver(backend.clone());
    let created = call(&driver, "NetworkDriver.CreateNetwork", create_network_body("blue", "10.1.0.0/24", "10.1.0.1/24")).await;
    assert_eq!(created, json!({}));
    assert_eq!(backend.network_names(), vec![format!("blue/docker-{}", &NET_ID[..12])]);

    let address = call(&driver, "IpamDriver.RequestAddress", json!({"PoolID": "10.1.0.0/24", "Address": "", "Options": null})).await;
    assert_eq!(address["Address"], "10.1.0.2/24");

    let body = json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "Interface": {"Address": "10.1.0.2/24", "AddressIPv6": "", "MacAddress": ""}, "Options": {}});
    let reply = call(&driver, "NetworkDriver.CreateEndpoint", body).await;
    assert_eq!(reply["Interface"]["MacAddress"], "0a:00:00:00:00:01", "Docker gets cloison's MAC");
    let endpoint = backend.endpoint("blue", &format!("docker-{}", &EP_ID[..12])).expect("endpoint record");
    assert_eq!(endpoint.sandbox, "handoff");
    assert_eq!(endpoint.ifname, format!("cld{}", &EP_ID[..12]));

    let join = call(&driver, "NetworkDriver.Join", json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "SandboxKey": "/x", "Options": null})).await;
    assert_eq!(join["InterfaceName"]["SrcName"], format!("cld{}", &EP_ID[..12]));
    assert_eq!(join["InterfaceName"]["DstPrefix"], "eth");
    assert_eq!(join["Gateway"], "10.1.0.1");

    call(&driver, "NetworkDriver.Leave", json!({"NetworkID": NET_ID, "EndpointID": EP_ID})).await;
    call(&driver, "NetworkDriver.DeleteEndpoint", json!({"NetworkID": NET_ID, "EndpointID": EP_ID})).await;
    assert!(backend.endpoint("blue", &format!("docker-{}", &EP_ID[..12])).is_none());

    call(&driver, "NetworkDriver.DeleteNetwork", json!({"NetworkID": NET_ID})).await;
    assert!(backend.network_names().is_empty(), "the driver created the network, so it deletes it");
}

#[tokio::test]
async fn requested_address_taken_is_named() {
    let backend = Arc::new(FakeBackend::default());
    let driver = driver(backend.clone());
    call(&driver, "NetworkDriver.CreateNetwork", create_network_body("blue", "10.1.0.0/24", "10.1.0.1/24")).await;
    backend.add_endpoint("blue", &format!("docker-{}", &NET_ID[..12]), "other", "10.1.0.7", "h2");
    let reply = call(&driver, "IpamDriver.RequestAddress", json!({"PoolID": "10.1.0.0/24", "Address": "10.1.0.7"})).await;
    let message = reply["Error"].as_str().expect("IPAM error text");
    assert!(message.contains("10.1.0.7 is already used by endpoint other on host h2"), "{message}");

    let next = call(&driver, "IpamDriver.RequestAddress", json!({"PoolID": "10.1.0.0/24"})).await;
    assert_eq!(next["Address"], "10.1.0.2/24");
    let again = call(&driver, "IpamDriver.RequestAddress", json!({"PoolID": "10.1.0.0/24"})).await;
    assert_eq!(again["Address"], "10.1.0.3/24", "a pending address is not handed out twice");
}

#[tokio::test]
async fn automatic_pool_avoids_existing_subnets() {
    let backend = Arc::new(FakeBackend::default());
    backend.add_network("red", "a", "10.224.0.0/24");
    backend.add_network("blue", "b", "10.224.2.0/23");
    let driver = driver(backend);
    let first = call(&driver, "IpamDriver.RequestPool", json!({"AddressSpace": "cloison", "Pool": "", "V6": false})).await;
    assert_eq!(first["Pool"], "10.224.1.0/24");
    let second = call(&driver, "IpamDriver.RequestPool", json!({"AddressSpace": "cloison", "Pool": ""})).await;
    assert_eq!(second["Pool"], "10.224.4.0/24");
    let duplicate = call(&driver, "IpamDriver.RequestPool", json!({"Pool": "10.224.4.0/24"})).await;
    assert!(duplicate["Error"].as_str().expect("error").contains("already used"));
    let v6 = call(&driver, "IpamDriver.RequestPool", json!({"Pool": "", "V6": true})).await;
    assert!(v6["Error"].as_str().expect("error").contains("IPv6"));
}

#[tokio::test]
async fn gateway_request_returns_first_address() {
    let driver = driver(Arc::new(FakeBackend::default()));
    let body = json!({"PoolID": "10.9.0.0/24", "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}});
    let reply = call(&driver, "IpamDriver.RequestAddress", body).await;
    assert_eq!(reply["Address"], "10.9.0.1/24");
}

/// Creates the network and the endpoint `EP_ID` at 10.1.0.2 in tenant blue.
async fn create_endpoint(driver: &Arc<Driver>) {
    call(driver, "NetworkDriver.CreateNetwork", create_network_body("blue", "10.1.0.0/24", "10.1.0.1/24")).await;
    let body = json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "Interface": {"Address": "10.1.0.2/24"}, "Options": {}});
    call(driver, "NetworkDriver.CreateEndpoint", body).await;
}

#[tokio::test]
async fn published_ports_become_publications() {
    let backend = Arc::new(FakeBackend::default());
    let driver = driver(backend.clone());
    create_endpoint(&driver).await;
    let ports = json!([
        {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080},
        {"Proto": 6, "IP": "", "Port": 80, "HostIP": "::", "HostPort": 8080},
        {"Proto": 17, "IP": "", "Port": 53, "HostIP": "127.0.0.1", "HostPort": 5353}
    ]);
    let body = json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "Options": {"com.docker.network.portmap": ports}});
    let reply = call(&driver, "NetworkDriver.ProgramExternalConnectivity", body.clone()).await;
    assert_eq!(reply, json!({}));
    let endpoint = format!("docker-{}", &EP_ID[..12]);
    let expected = vec![format!("blue/{endpoint}-127.0.0.1-5353-udp"), format!("blue/{endpoint}-8080-tcp")];
    assert_eq!(backend.publication_names(), expected);

    let again = call(&driver, "NetworkDriver.ProgramExternalConnectivity", body).await;
    assert_eq!(again, json!({}), "a repeated call keeps the existing publications");
    assert_eq!(backend.publication_names(), expected);

    let revoke = json!({"NetworkID": NET_ID, "EndpointID": EP_ID});
    let reply = call(&driver, "NetworkDriver.RevokeExternalConnectivity", revoke.clone()).await;
    assert_eq!(reply, json!({}));
    assert!(backend.publication_names().is_empty(), "{:?}", backend.publication_names());
    let reply = call(&driver, "NetworkDriver.RevokeExternalConnectivity", revoke).await;
    assert_eq!(reply, json!({}), "revoking twice is not an error");
}

#[tokio::test]
async fn one_port_on_two_addresses() {
    let backend = Arc::new(FakeBackend::default());
    let driver = driver(backend.clone());
    create_endpoint(&driver).await;
    let ports = json!([
        {"Proto": 6, "Port": 80, "HostIP": "127.0.0.1", "HostPort": 8080},
        {"Proto": 6, "Port": 80, "HostIP": "127.0.0.2", "HostPort": 8080}
    ]);
    let body = json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "Options": {"com.docker.network.portmap": ports}});
    let reply = call(&driver, "NetworkDriver.ProgramExternalConnectivity", body).await;
    assert_eq!(reply, json!({}));
    let endpoint = format!("docker-{}", &EP_ID[..12]);
    let expected = vec![format!("blue/{endpoint}-127.0.0.1-8080-tcp"), format!("blue/{endpoint}-127.0.0.2-8080-tcp")];
    assert_eq!(backend.publication_names(), expected);
}

/// A bound publication stored before names included the host address keeps its
/// short name. Docker's repeated call must find it by its fields, or the driver
/// would publish the port again and fail on its own publication.
#[tokio::test]
async fn repeat_keeps_short_named_publication() {
    let backend = Arc::new(FakeBackend::default());
    let driver = driver(backend.clone());
    create_endpoint(&driver).await;
    let endpoint = format!("docker-{}", &EP_ID[..12]);
    let stored = backend.endpoint("blue", &endpoint).expect("the endpoint");
    backend.add_publication(cloison_model::Publication {
        id: "p1".into(),
        tenant: "blue".into(),
        name: format!("{endpoint}-8080-tcp"),
        endpoint: endpoint.clone(),
        endpoint_id: stored.id,
        host: stored.host,
        host_ip: Some("127.0.0.1".parse().expect("address")),
        host_port: 8080,
        port: 80,
        protocol: cloison_model::PublishProtocol::Tcp,
        resource_version: 1,
    });
    let ports = json!([{"Proto": 6, "Port": 80, "HostIP": "127.0.0.1", "HostPort": 8080}]);
    let body = json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "Options": {"com.docker.network.portmap": ports}});
    let reply = call(&driver, "NetworkDriver.ProgramExternalConnectivity", body).await;
    assert_eq!(reply, json!({}), "the existing publication was not recognized");
    assert_eq!(backend.publication_names(), vec![format!("blue/{endpoint}-8080-tcp")]);
}

#[tokio::test]
async fn taken_host_port_rolls_back() {
    let backend = Arc::new(FakeBackend::default());
    let driver = driver(backend.clone());
    create_endpoint(&driver).await;
    let first = json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "Options": {"com.docker.network.portmap": [{"Proto": 6, "Port": 80, "HostPort": 8080}]}});
    call(&driver, "NetworkDriver.ProgramExternalConnectivity", first).await;

    // The fake rejects a host port that another endpoint of the host already publishes.
    backend.add_endpoint("blue", &format!("docker-{}", &NET_ID[..12]), "other", "10.1.0.7", "h1");
    let spec = cloison_model::PublicationSpec::parse("other", "8080:80").expect("spec");
    let taken = cloison_docker::Backend::publish(backend.as_ref(), "blue", &spec).await;
    assert!(taken.is_err(), "the fake must reject a taken host port");
    let second_id = "cccccccccccc3333333333333333333333333333333333333333333333333333";
    let body = json!({"NetworkID": NET_ID, "EndpointID": second_id, "Interface": {"Address": "10.1.0.3/24"}, "Options": {}});
    call(&driver, "NetworkDriver.CreateEndpoint", body).await;
    // 9090 is free and is published first, then 8080 fails, so 9090 is removed again.
    let ports = json!([{"Proto": 6, "Port": 80, "HostPort": 9090}, {"Proto": 6, "Port": 80, "HostPort": 8080}]);
    let body = json!({"NetworkID": NET_ID, "EndpointID": second_id, "Options": {"com.docker.network.portmap": ports}});
    let reply = call(&driver, "NetworkDriver.ProgramExternalConnectivity", body).await;
    let message = reply["Err"].as_str().expect("error");
    assert!(message.contains("cannot publish 8080:80/tcp"), "{message}");
    assert!(message.contains("already taken"), "{message}");
    assert_eq!(backend.publication_names(), vec![format!("blue/docker-{}-8080-tcp", &EP_ID[..12])]);
}

#[tokio::test]
async fn unsupported_port_bindings_rejected() {
    let driver = driver(Arc::new(FakeBackend::default()));
    create_endpoint(&driver).await;
    let cases = [
        (json!({"Proto": 132, "Port": 80, "HostPort": 8080}), "protocol number 132"),
        (json!({"Proto": 6, "Port": 80, "HostPort": 0}), "no host port"),
        (json!({"Proto": 6, "Port": 80, "HostPort": 8080, "HostPortEnd": 8090}), "range 8080-8090"),
        (json!({"Proto": 6, "Port": 80, "HostIP": "nowhere", "HostPort": 8080}), "invalid host address"),
    ];
    for (binding, expected) in cases {
        let body = json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "Options": {"com.docker.network.portmap": [binding]}});
        let reply = call(&driver, "NetworkDriver.ProgramExternalConnectivity", body).await;
        let message = reply["Err"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{binding}: {message}");
    }
}
