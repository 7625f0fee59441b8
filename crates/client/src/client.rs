use std::sync::atomic::{AtomicUsize, Ordering};
use std::path::PathBuf;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use cloison_model::ErrorBody;

use crate::target::{Connection, Target};
use crate::ClientError;

/// An HTTP/1 JSON client for the controller API or an agent's local socket.
///
/// Each request opens a new connection, which costs little over loopback or a Unix
/// socket. With several controller URLs, a request tries them in order starting with
/// the last one that worked, and moves on only when a connection cannot be opened:
/// once a request has been sent it is never resent to another controller.
#[derive(Debug)]
pub struct Client {
    targets: Vec<Target>,
    preferred: AtomicUsize,
}

impl Client {
    /// Creates a client for one or more controllers, given as a comma-separated list of
    /// `http://host:port` URLs.
    pub fn tcp(urls: &str) -> Result<Self, ClientError> {
        let targets = urls
            .split(',')
            .filter(|url| !url.trim().is_empty())
            .map(Target::parse_url)
            .collect::<Result<Vec<_>, _>>()?;
        if targets.is_empty() {
            return Err(ClientError::InvalidUrl { url: urls.to_string(), reason: "no URL given" });
        }
        Ok(Client { targets, preferred: AtomicUsize::new(0) })
    }

    /// Creates a client for a server listening on a Unix socket, such as the agent's.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Client { targets: vec![Target::Unix(path.into())], preferred: AtomicUsize::new(0) }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn post<T: DeserializeOwned, B: Serialize>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put<T: DeserializeOwned, B: Serialize>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn patch<T: DeserializeOwned, B: Serialize>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// Sends a DELETE; use `T = ()` for the API's empty 204 responses.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::DELETE, path, None::<&()>).await
    }

    /// Sends a request with an optional JSON body and decodes the JSON response. An
    /// empty response body decodes as JSON `null`, so `()` and `Option<_>` accept it.
    pub async fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let response = self.send(method.clone(), path, body).await?;
        let (target, response) = response;
        let bytes = read_body(&target, response).await?;
        let text: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(text).map_err(|source| ClientError::Decode {
            method: method.to_string(),
            path: path.to_string(),
            source,
        })
    }

    /// Sends a request and returns the response once its status is a success; error
    /// statuses are decoded into [`ClientError::Api`].
    pub(crate) async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(String, Response<Incoming>), ClientError> {
        let payload = match body {
            Some(body) => serde_json::to_vec(body).map_err(|source| ClientError::Encode {
                method: method.to_string(),
                path: path.to_string(),
                source,
            })?,
            None => Vec::new(),
        };
        let (target, connection) = self.connect().await?;
        let request = build_request(&method, path, target.host_header(), payload)?;
        let target_name = target.to_string();
        let response = exchange(connection, request)
            .await
            .map_err(|source| ClientError::Http { target: target_name.clone(), source })?;
        if response.status().is_success() {
            return Ok((target_name, response));
        }
        Err(api_error(&target_name, response).await)
    }

    /// Opens a connection to the first reachable target, starting with the one that
    /// worked last.
    async fn connect(&self) -> Result<(&Target, Connection), ClientError> {
        let start = self.preferred.load(Ordering::Relaxed);
        let count = self.targets.len();
        let mut last_error = None;
        for offset in 0..count {
            let index = (start + offset) % count;
            let target = &self.targets[index];
            match target.connect().await {
                Ok(connection) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok((target, connection));
                }
                Err(error) => {
                    if count > 1 {
                        tracing::warn!(%target, %error, "cannot connect, trying the next controller");
                    }
                    last_error = Some(error);
                }
            }
        }
        let names: Vec<String> = self.targets.iter().map(ToString::to_string).collect();
        Err(ClientError::Connect {
            target: names.join(", "),
            source: last_error.unwrap_or_else(|| std::io::Error::other("no target configured")),
        })
    }
}

fn build_request(method: &Method, path: &str, host: &str, payload: Vec<u8>) -> Result<Request<Full<Bytes>>, ClientError> {
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::ACCEPT, "application/json");
    if !payload.is_empty() {
        builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    builder.body(Full::new(Bytes::from(payload))).map_err(|source| ClientError::Request {
        method: method.to_string(),
        path: path.to_string(),
        source,
    })
}

/// Runs one HTTP/1 exchange on a fresh connection. The connection task ends when the
/// response body has been read or dropped.
async fn exchange(connection: Connection, request: Request<Full<Bytes>>) -> Result<Response<Incoming>, hyper::Error> {
    match connection {
        Connection::Tcp(io) => exchange_on(io, request).await,
        Connection::Unix(io) => exchange_on(io, request).await,
    }
}

async fn exchange_on<I>(io: I, request: Request<Full<Bytes>>) -> Result<Response<Incoming>, hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "client connection ended with an error");
        }
    });
    sender.send_request(request).await
}

pub(crate) async fn read_body(target: &str, response: Response<Incoming>) -> Result<Bytes, ClientError> {
    let collected = response.into_body().collect().await;
    collected
        .map(|c| c.to_bytes())
        .map_err(|source| ClientError::Http { target: target.to_string(), source })
}

/// Decodes an error response. A body in another format becomes the message, so the
/// caller still sees what the server sent.
async fn api_error(target: &str, response: Response<Incoming>) -> ClientError {
    let status = response.status();
    let bytes = match read_body(target, response).await {
        Ok(bytes) => bytes,
        Err(error) => return error,
    };
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => ClientError::Api { status: status.as_u16(), code: body.error.code, message: body.error.message },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: "unknown".into(),
            message: format!("{target} returned {status}: {}", String::from_utf8_lossy(&bytes).trim()),
        },
    }
}
