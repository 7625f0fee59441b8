use thiserror::Error;

/// Failures of a call to the controller or agent API.
#[derive(Debug, Error)]
pub enum ClientError {
    /// No connection could be opened; `target` lists every URL or socket tried.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: std::io::Error,
    },
    /// The server returned an error status and body.
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The connection failed after it was opened, or the response was not valid HTTP.
    #[error("HTTP exchange with {target} failed: {source}")]
    Http {
        target: String,
        #[source]
        source: hyper::Error,
    },
    /// The response body is not the JSON the call expects.
    #[error("cannot decode the response to {method} {path}: {source}")]
    Decode {
        method: String,
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// The request body cannot be encoded as JSON.
    #[error("cannot encode the body of {method} {path} as JSON: {source}")]
    Encode {
        method: String,
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// A controller URL cannot be used.
    #[error("invalid controller URL {url:?}: {reason}; expected http://HOST:PORT")]
    InvalidUrl { url: String, reason: &'static str },
    /// The request could not be built, for instance a path with characters not allowed
    /// in a URI.
    #[error("invalid request {method} {path}: {source}")]
    Request {
        method: String,
        path: String,
        #[source]
        source: hyper::http::Error,
    },
}
