//! A minimal HTTP/1.1 GET, enough to poll the controller from inside the lab's
//! controller namespace and the agents on their Unix sockets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

use crate::LabError;

const TIMEOUT: Duration = Duration::from_secs(2);

/// GETs `path` from `address` inside the network namespace at `netns` and returns the
/// body of a 2xx response. A helper thread enters the namespace, so the calling
/// thread and the rest of the process stay where they are.
pub(crate) fn get_in_netns(netns: &Path, address: SocketAddr, path: &str) -> Result<String, LabError> {
    let netns = netns.to_path_buf();
    let path = path.to_string();
    let worker = std::thread::spawn(move || -> Result<String, LabError> {
        let file = std::fs::File::open(&netns)
            .map_err(|e| LabError::io(format!("cannot open namespace {}", netns.display()), e))?;
        setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|e| LabError::io(format!("cannot enter namespace {}", netns.display()), e.into()))?;
        let stream = TcpStream::connect_timeout(&address, TIMEOUT)
            .map_err(|e| LabError::io(format!("cannot connect to {address}"), e))?;
        exchange(stream, &path, &address.to_string())
    });
    worker.join().map_err(|_| LabError::Output {
        command: format!("GET {address}"),
        reason: "the request thread panicked".to_string(),
    })?
}

/// GETs `path` from the HTTP server on the Unix socket `socket`.
pub(crate) fn get_unix(socket: &Path, path: &str) -> Result<String, LabError> {
    let stream =
        UnixStream::connect(socket).map_err(|e| LabError::io(format!("cannot connect to {}", socket.display()), e))?;
    exchange(stream, path, &socket.display().to_string())
}

/// Sends one GET with `Connection: close` and reads the response to its end.
fn exchange<S: Read + Write + Timeouts>(mut stream: S, path: &str, peer: &str) -> Result<String, LabError> {
    let failed = |e| LabError::io(format!("GET {path} from {peer}"), e);
    stream.set_timeouts(TIMEOUT).map_err(failed)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(failed)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(failed)?;
    parse_response(&String::from_utf8_lossy(&response)).map_err(|reason| LabError::Output {
        command: format!("GET {path} from {peer}"),
        reason,
    })
}

fn parse_response(response: &str) -> Result<String, String> {
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no end of headers")?;
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if !status.starts_with('2') {
        return Err(format!("status {status_line:?}, body {body:?}"));
    }
    let chunked = head.lines().any(|line| {
        let lower = line.to_ascii_lowercase();
        lower.starts_with("transfer-encoding:") && lower.contains("chunked")
    });
    if chunked {
        dechunk(body)
    } else {
        Ok(body.to_string())
    }
}

/// Joins the chunks of a chunked body.
fn dechunk(mut body: &str) -> Result<String, String> {
    let mut joined = String::new();
    loop {
        let (size_line, rest) = body.split_once("\r\n").ok_or("truncated chunk size")?;
        let size_text = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("invalid chunk size {size_line:?}"))?;
        if size == 0 {
            return Ok(joined);
        }
        let chunk = rest.get(..size).ok_or("truncated chunk")?;
        joined.push_str(chunk);
        body = rest.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

/// Read and write timeouts of both stream kinds.
trait Timeouts {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()>;
}

impl Timeouts for TcpStream {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

impl Timeouts for UnixStream {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_with_length_returns_body() {
        let body = parse_response("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]");
        assert_eq!(body.as_deref(), Ok("[]"));
    }

    #[test]
    fn chunked_response_is_joined() {
        let body = parse_response("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n[1\r\n1\r\n]\r\n0\r\n\r\n");
        assert_eq!(body.as_deref(), Ok("[1]"));
    }

    #[test]
    fn error_status_is_rejected() {
        assert!(parse_response("HTTP/1.1 503 Service Unavailable\r\n\r\nno").is_err());
    }
}
