//! The client against small axum servers on loopback and on a Unix socket.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use cloison_client::{Client, ClientError};
use cloison_model::{Status, WatchEvent};
use futures::StreamExt;
use serde_json::json;

fn fake_api() -> Router {
    Router::new()
        .route("/v1/status", get(|| async { Json(Status { revision: 7, ..Default::default() }) }))
        .route(
            "/v1/tenants/{tenant}",
            get(|| async {
                let body = json!({"error": {"code": "not_found", "message": "tenant ghost not found"}});
                (StatusCode::NOT_FOUND, Json(body))
            })
            .delete(|| async { StatusCode::NO_CONTENT }),
        )
        .route("/v1/hosts/{host}/watch", get(watch_body))
        .route("/v1/tenants", get(|| async { (StatusCode::BAD_GATEWAY, "upstream down") }))
}

/// Two events whose lines are split across chunks, plus a blank line.
async fn watch_body() -> Body {
    let first = serde_json::to_string(&WatchEvent::Bookmark { revision: 3 }).expect("encode");
    let second = serde_json::to_string(&WatchEvent::Bookmark { revision: 4 }).expect("encode");
    let (head, tail) = first.split_at(5);
    let chunks = vec![head.to_string(), format!("{tail}\n\n{second}"), "\n".to_string()];
    Body::from_stream(futures::stream::iter(chunks.into_iter().map(|c| Ok::<_, Infallible>(Bytes::from(c)))))
}

async fn start_tcp() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, fake_api()).await });
    format!("http://{address}")
}

/// Returns a URL on which nothing listens: a port that was just bound and released.
async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{address}")
}

#[tokio::test]
async fn get_decodes_json() {
    let client = Client::tcp(&start_tcp().await).expect("client");
    let status = client.status().await.expect("status");
    assert_eq!(status.revision, 7);
}

#[tokio::test]
async fn api_error_decoded() {
    let client = Client::tcp(&start_tcp().await).expect("client");
    let err = client.get_tenant("ghost").await.expect_err("404");
    let ClientError::Api { status, code, message } = &err else {
        panic!("expected an API error, got {err:?}");
    };
    assert_eq!(*status, 404);
    assert_eq!(code, "not_found");
    assert_eq!(message, "tenant ghost not found");
}

#[tokio::test]
async fn non_api_error_body_kept() {
    let client = Client::tcp(&start_tcp().await).expect("client");
    let err = client.list_tenants().await.expect_err("502");
    assert!(matches!(&err, ClientError::Api { status: 502, .. }), "{err:?}");
    assert!(err.to_string().contains("upstream down"), "{err}");
}

#[tokio::test]
async fn delete_accepts_empty_answer() {
    let client = Client::tcp(&start_tcp().await).expect("client");
    client.delete_tenant("acme").await.expect("204");
}

#[tokio::test]
async fn connect_error_names_url() {
    let url = dead_url().await;
    let client = Client::tcp(&url).expect("client");
    let err = client.status().await.expect_err("nothing listens");
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test]
async fn fails_over_to_next_url() {
    let dead = dead_url().await;
    let live = start_tcp().await;
    let client = Client::tcp(&format!("{dead}, {live}")).expect("client");
    assert_eq!(client.status().await.expect("failover").revision, 7);
    assert_eq!(client.status().await.expect("second call").revision, 7);
}

#[tokio::test]
async fn unix_socket_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    tokio::spawn(async move { axum::serve(listener, fake_api()).await });
    let client = Client::unix(&path);
    assert_eq!(client.status().await.expect("status").revision, 7);

    let missing = Client::unix(dir.path().join("missing.sock"));
    let err = missing.status().await.expect_err("no socket");
    assert!(err.to_string().contains("missing.sock"), "{err}");
}

#[tokio::test]
async fn watch_reads_split_lines() {
    let client = Client::tcp(&start_tcp().await).expect("client");
    let stream = client.watch_host("h1", Some(2)).await.expect("watch");
    let events: Vec<WatchEvent> = stream.map(|event| event.expect("event")).collect().await;
    assert_eq!(events, [WatchEvent::Bookmark { revision: 3 }, WatchEvent::Bookmark { revision: 4 }]);
}

#[test]
fn invalid_url_rejected() {
    let err = Client::tcp("ftp://x").expect_err("scheme");
    assert!(err.to_string().contains("only http:// is supported"), "{err}");
    assert!(Client::tcp(" , ").is_err());
}
