//! Request targets: one or more controller URLs over TCP, or a Unix socket.

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};

use crate::ClientError;

/// Time allowed to open one connection before the next target is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One place a request can be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `authority` is the `host:port` of an `http://` URL.
    Tcp { url: String, authority: String },
    Unix(PathBuf),
}

/// An open byte stream to a target, ready for an HTTP/1 handshake.
pub(crate) enum Connection {
    Tcp(TokioIo<TcpStream>),
    Unix(TokioIo<UnixStream>),
}

impl Target {
    /// Parses `http://host:port` with an optional trailing `/`. HTTPS and base paths
    /// are not supported.
    pub(crate) fn parse_url(url: &str) -> Result<Self, ClientError> {
        let invalid = |reason| ClientError::InvalidUrl { url: url.to_string(), reason };
        let rest = url.trim().strip_prefix("http://").ok_or_else(|| invalid("only http:// is supported"))?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() {
            return Err(invalid("the host is missing"));
        }
        if authority.contains('/') {
            return Err(invalid("a base path is not supported"));
        }
        let authority = if authority.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Target::Tcp { url: url.trim().trim_end_matches('/').to_string(), authority })
    }

    /// Returns the value of the `Host` header for requests to this target.
    pub(crate) fn host_header(&self) -> &str {
        match self {
            Target::Tcp { authority, .. } => authority,
            Target::Unix(_) => "localhost",
        }
    }

    pub(crate) async fn connect(&self) -> Result<Connection, std::io::Error> {
        let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "connection timed out");
        match self {
            Target::Tcp { authority, .. } => {
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority.as_str()))
                    .await
                    .map_err(|_| timed_out())??;
                stream.set_nodelay(true)?;
                Ok(Connection::Tcp(TokioIo::new(stream)))
            }
            Target::Unix(path) => {
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(path))
                    .await
                    .map_err(|_| timed_out())??;
                Ok(Connection::Unix(TokioIo::new(stream)))
            }
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp { url, .. } => f.write_str(url),
            Target::Unix(path) => write!(f, "unix socket {}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_gets_default_port() {
        let target = Target::parse_url("http://controller/").expect("url");
        assert_eq!(target.host_header(), "controller:80");
        assert_eq!(target.to_string(), "http://controller");
    }

    #[test]
    fn url_keeps_explicit_port() {
        let target = Target::parse_url("http://127.0.0.1:7070").expect("url");
        assert_eq!(target.host_header(), "127.0.0.1:7070");
    }

    #[test]
    fn url_rejects_https_and_paths() {
        for bad in ["https://c:1", "c:1", "http://", "http://c:1/api"] {
            let err = Target::parse_url(bad).expect_err(bad);
            assert!(err.to_string().contains("expected http://HOST:PORT"), "{err}");
        }
    }
}
