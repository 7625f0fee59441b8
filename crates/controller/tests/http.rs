mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use cloison_controller::{router, Controller};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn call(ctl: &Arc<Controller>, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    let response = router(ctl.clone()).oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
    (status, value)
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no code>")
}

#[tokio::test]
async fn tenant_lifecycle_statuses() {
    let (ctl, _) = common::controller().await;
    let (status, body) = call(&ctl, Method::POST, "/v1/tenants", Some(json!({"name": "acme"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "acme");
    let (status, body) = call(&ctl, Method::POST, "/v1/tenants", Some(json!({"name": "acme"}))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "already_exists");
    let (status, body) = call(&ctl, Method::GET, "/v1/tenants/nobody", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
    assert_eq!(body["error"]["message"], "tenant nobody not found");
    let (status, _) = call(&ctl, Method::DELETE, "/v1/tenants/acme", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn invalid_input_is_400_with_message() {
    let (ctl, _) = common::controller().await;
    let (status, body) = call(&ctl, Method::POST, "/v1/tenants", Some(json!({"name": "Bad"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "invalid_input");
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("invalid tenant name"), "{body}");
    let (status, body) = call(&ctl, Method::POST, "/v1/tenants", Some(json!({"nom": "x"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_code(&body), "invalid_input");
    let subnet = json!({"name": "web", "subnet": "10.0.0.0/31"});
    let (status, body) = call(&ctl, Method::POST, "/v1/tenants/t1/networks", Some(subnet)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn network_endpoint_flow_and_conflicts() {
    let (ctl, _) = common::controller().await;
    let spec = json!({"name": "web", "subnet": "10.0.0.0/24"});
    let (status, network) = call(&ctl, Method::POST, "/v1/tenants/t1/networks", Some(spec)).await;
    assert_eq!(status, StatusCode::CREATED, "{network}");
    let overlapping = json!({"name": "web2", "subnet": "10.0.0.128/25"});
    let (status, body) = call(&ctl, Method::POST, "/v1/tenants/t1/networks", Some(overlapping)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "overlap");

    let endpoint = json!({"network": "web", "host": "h1", "sandbox": "/var/run/netns/a", "ipv4": "10.0.0.9"});
    let (status, created) = call(&ctl, Method::POST, "/v1/tenants/t1/endpoints", Some(endpoint.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, body) = call(&ctl, Method::POST, "/v1/tenants/t1/endpoints", Some(endpoint)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "taken");

    let (status, body) = call(&ctl, Method::DELETE, "/v1/tenants/t1/networks/web", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "in_use");

    let name = created["name"].as_str().expect("name");
    let path = format!("/v1/tenants/t1/endpoints/{name}");
    let stale = json!({"resource_version": 1, "labels": {"app": "web"}});
    let (status, body) = call(&ctl, Method::PATCH, &path, Some(stale)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "stale_version");
    let fresh = json!({"resource_version": created["resource_version"], "labels": {"app": "web"}});
    let (status, body) = call(&ctl, Method::PATCH, &path, Some(fresh)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["labels"]["app"], "web");

    let (status, list) = call(&ctl, Method::GET, "/v1/endpoints?host=h1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let (status, list) = call(&ctl, Method::GET, "/v1/tenants/t1/endpoints?network=other", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(0));
    let filtered = [
        ("/v1/endpoints?tenant=t1&network=web&host=h1", 1),
        ("/v1/endpoints?tenant=t2&host=h1", 0),
        ("/v1/endpoints?host=h2", 0),
        ("/v1/tenants/t1/endpoints?network=web&host=h1", 1),
        ("/v1/tenants/t1/endpoints?host=h2", 0),
    ];
    for (uri, expected) in filtered {
        let (status, list) = call(&ctl, Method::GET, uri, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {list}");
        assert_eq!(list.as_array().map(Vec::len), Some(expected), "{uri}: {list}");
    }

    let (status, body) = call(&ctl, Method::DELETE, &format!("{path}?id=0000"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a deletion naming another id must spare the endpoint: {body}");
    let id = created["id"].as_str().expect("id");
    let (status, _) = call(&ctl, Method::DELETE, &format!("{path}?id={id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&ctl, Method::DELETE, "/v1/tenants/t1/networks/web", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// A rule body with `from` or `to` in place of `peer` must not become a rule whose peer
/// is `any`, which allows every address.
#[tokio::test]
async fn rule_body_with_unknown_field_rejected() {
    let (ctl, _) = common::controller().await;
    call(&ctl, Method::POST, "/v1/tenants", Some(json!({"name": "t1"}))).await;
    let (status, body) = call(&ctl, Method::POST, "/v1/tenants/t1/groups", Some(json!({"name": "g1"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let path = "/v1/tenants/t1/groups/g1/rules";
    for field in ["from", "to"] {
        let rule = json!({"direction": "ingress", field: {"cidr": "10.0.0.0/8"}});
        let (status, body) = call(&ctl, Method::POST, path, Some(rule)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_code(&body), "invalid_input");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(field), "{body}");
        assert!(message.contains("peer"), "{body}");
    }
    let rules = json!([{"direction": "egress", "to": {"cidr": "10.0.0.0/8"}}]);
    let (status, body) =
        call(&ctl, Method::POST, "/v1/tenants/t1/groups", Some(json!({"name": "g2", "rules": rules}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, group) = call(&ctl, Method::GET, "/v1/tenants/t1/groups/g1", None).await;
    assert_eq!(group["rules"], json!([]), "{group}");
}

#[tokio::test]
async fn host_register_and_status() {
    let (ctl, _) = common::controller().await;
    let spec = json!({"name": "h3", "underlay_ip": "192.0.2.13", "underlay_mtu": 1400, "vxlan_port": 4789});
    let (status, body) = call(&ctl, Method::PUT, "/v1/hosts/h3", Some(spec.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(&ctl, Method::PUT, "/v1/hosts/other", Some(spec)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, hosts) = call(&ctl, Method::GET, "/v1/hosts", None).await;
    assert_eq!(hosts.as_array().map(Vec::len), Some(3));
    let (status, body) = call(&ctl, Method::GET, "/v1/status", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["hosts"], 3);
}

#[tokio::test]
async fn store_unavailable_is_503() {
    let (ctl, store) = common::controller().await;
    store.set_unavailable();
    let (status, body) = call(&ctl, Method::GET, "/v1/tenants", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&body), "store_unavailable");
}

#[tokio::test]
async fn openapi_lists_paths() {
    let (ctl, _) = common::controller().await;
    let (status, doc) = call(&ctl, Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/v1/tenants",
        "/v1/tenants/{tenant}",
        "/v1/tenants/{tenant}/networks/{network}",
        "/v1/tenants/{tenant}/endpoints/{endpoint}",
        "/v1/hosts/{host}",
        "/v1/hosts/{host}/watch",
        "/v1/status",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the OpenAPI document");
    }
    assert!(doc["components"]["schemas"]["WatchEvent"].is_object());
}

#[tokio::test]
async fn watch_streams_ndjson_over_tcp() {
    let (ctl, _) = common::controller().await;
    ctl.create_network("t1", common::network_spec("web", "10.0.0.0/24")).await.expect("network");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(cloison_controller::serve(listener, ctl.clone(), shutdown.clone()));

    let stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.expect("handshake");
    tokio::spawn(connection);
    let request = Request::get("/v1/hosts/h1/watch").header("host", "localhost").body(String::new()).expect("request");
    let response = sender.send_request(request).await.expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();

    let first = next_line(&mut body).await;
    assert_eq!(first["type"], "snapshot", "{first}");
    ctl.create_endpoint("t1", common::endpoint_spec("web", "h1")).await.expect("endpoint");
    let network = next_line(&mut body).await;
    assert_eq!(network["type"], "put");
    assert_eq!(network["object"]["kind"], "network");
    let endpoint = next_line(&mut body).await;
    assert_eq!(endpoint["object"]["kind"], "endpoint");
    assert_eq!(endpoint["object"]["host"], "h1");

    drop(body);
    shutdown.cancel();
    server.await.expect("join").expect("serve");
}

/// Reads one NDJSON line; the server sends one event per chunk.
async fn next_line(body: &mut hyper::body::Incoming) -> Value {
    let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
        .await
        .expect("event within 5 s")
        .expect("stream open")
        .expect("frame");
    let data = frame.into_data().expect("data frame");
    serde_json::from_slice(&data).expect("JSON line")
}
