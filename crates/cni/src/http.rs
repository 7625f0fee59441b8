//! A blocking HTTP/1.1 client for the agent's Unix socket.
//!
//! A runtime starts the plugin once per call, so the plugin's start-up is part of
//! every attach. One request on one connection needs neither an async runtime nor
//! a connection pool. The request carries `connection: close`, so the agent closes
//! the connection after the response, and the client reads until then.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use cloison_model::ErrorBody;
use serde::de::DeserializeOwned;

/// A failed call to the agent.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The socket could not be opened.
    #[error("cannot connect to {socket}: {source}")]
    Connect {
        socket: String,
        #[source]
        source: std::io::Error,
    },
    /// The connection failed after it was opened, or the response is not HTTP.
    #[error("HTTP exchange with {socket} failed: {reason}")]
    Exchange { socket: String, reason: String },
    /// The agent returned an error status and body.
    #[error("{message} (HTTP {status}, {code})")]
    Api { status: u16, code: String, message: String },
}

/// Sends `method path` with an optional JSON body to the server on `socket` and
/// decodes its JSON response. An empty body decodes as JSON `null`.
pub(crate) fn call<T: DeserializeOwned>(socket: &Path, method: &str, path: &str, body: Option<&[u8]>) -> Result<T, HttpError> {
    let name = socket.display().to_string();
    let exchange_error = |reason: String| HttpError::Exchange { socket: name.clone(), reason };
    let mut stream = UnixStream::connect(socket).map_err(|source| HttpError::Connect { socket: name.clone(), source })?;
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .map_err(|e| exchange_error(format!("cannot send the request: {e}")))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| exchange_error(format!("cannot read the response: {e}")))?;
    let (status, content) = parse_response(&response).map_err(exchange_error)?;
    if !(200..300).contains(&status) {
        return Err(api_error(&name, status, &content));
    }
    let content = if content.iter().all(u8::is_ascii_whitespace) { b"null".to_vec() } else { content };
    serde_json::from_slice(&content).map_err(|e| exchange_error(format!("cannot decode the response to {method} {path}: {e}")))
}

/// Decodes an error response. A body in another format becomes the message, so
/// the caller still sees what the server sent.
fn api_error(socket: &str, status: u16, content: &[u8]) -> HttpError {
    match serde_json::from_slice::<ErrorBody>(content) {
        Ok(body) => HttpError::Api { status, code: body.error.code, message: body.error.message },
        Err(_) => HttpError::Api {
            status,
            code: "unknown".into(),
            message: format!("{socket} returned {status}: {}", String::from_utf8_lossy(content).trim()),
        },
    }
}

/// Splits a whole HTTP/1.1 response into its status and body, decoding a chunked
/// body. A body without length ends where the connection closed.
fn parse_response(response: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("the response ends inside its header ({} bytes)", response.len()))?;
    let head = std::str::from_utf8(&response[..end]).map_err(|_| "the response header is not UTF-8".to_string())?;
    let rest = &response[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| format!("invalid status line {status_line:?}"))?;
    let header = |name: &str| {
        lines
            .clone()
            .filter_map(|line| line.split_once(':'))
            .find(|(key, _)| key.trim().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_ascii_lowercase())
    };
    if header("transfer-encoding").is_some_and(|value| value.contains("chunked")) {
        return dechunk(rest).map(|body| (status, body));
    }
    match header("content-length").map(|value| value.parse::<usize>()) {
        Some(Ok(length)) if length <= rest.len() => Ok((status, rest[..length].to_vec())),
        Some(Ok(length)) => Err(format!("the body has {} of its {length} bytes", rest.len())),
        Some(Err(_)) => Err("invalid content-length".to_string()),
        None => Ok((status, rest.to_vec())),
    }
}

/// Decodes a chunked body.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").ok_or("a chunk size line is cut off")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| "invalid chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("invalid chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err("a chunk is cut off".to_string());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_body_read() {
        let response = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
        assert_eq!(parse_response(response), Ok((201, b"{\"a\":1}".to_vec())));
    }

    #[test]
    fn chunked_body_decoded() {
        let response = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(response), Ok((200, b"{\"a\":1}".to_vec())));
    }

    #[test]
    fn body_without_length_ends_at_close() {
        let response = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse_response(response), Ok((204, Vec::new())));
    }

    #[test]
    fn broken_responses_rejected() {
        for response in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{}"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 2",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(parse_response(response).is_err(), "{}", String::from_utf8_lossy(response));
        }
    }

    #[test]
    fn error_body_decoded() {
        let error = api_error("/run/a.sock", 409, br#"{"error":{"code":"already_exists","message":"taken"}}"#);
        assert_eq!(error.to_string(), "taken (HTTP 409, already_exists)");
        let error = api_error("/run/a.sock", 502, b"bad gateway");
        assert_eq!(error.to_string(), "/run/a.sock returned 502: bad gateway (HTTP 502, unknown)");
    }
}
