//! The host watch: a long response of newline-delimited JSON events.

use cloison_model::WatchEvent;
use futures::Stream;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Method;

use crate::api::segment;
use crate::{Client, ClientError};

/// Maximum length of one watch line. A longer line means the stream is not NDJSON.
const MAX_LINE: usize = 64 << 20;

/// Capacity a [`LineBuffer`] keeps once a line is taken. A snapshot line can take
/// megabytes, but the events after it take a few hundred bytes each.
const KEPT_CAPACITY: usize = 64 << 10;

/// State of one watch stream between two events.
struct Lines {
    target: String,
    path: String,
    body: Incoming,
    buffer: LineBuffer,
}

/// Bytes received and not yet returned as lines.
#[derive(Debug, Default)]
struct LineBuffer {
    bytes: Vec<u8>,
    /// Length of the prefix of `bytes` already searched for a newline, so a long
    /// line arriving in many frames is searched once.
    searched: usize,
}

impl Client {
    /// Opens the watch of one host, resuming after revision `after` when given. The
    /// stream ends when the server closes it; an `Err` item is the last one.
    pub async fn watch_host(
        &self,
        host: &str,
        after: Option<u64>,
    ) -> Result<impl Stream<Item = Result<WatchEvent, ClientError>> + Send + 'static, ClientError> {
        let mut path = format!("/v1/hosts/{}/watch", segment(host));
        if let Some(after) = after {
            path.push_str(&format!("?after={after}"));
        }
        let (target, response) = self.send(Method::GET, &path, None::<&()>).await?;
        let lines = Lines { target, path, body: response.into_body(), buffer: LineBuffer::default() };
        Ok(futures::stream::unfold(Some(lines), |state| async move {
            let mut lines = state?;
            match lines.next_event().await {
                Ok(Some(event)) => Some((Ok(event), Some(lines))),
                Ok(None) => None,
                Err(error) => Some((Err(error), None)),
            }
        }))
    }
}

impl Lines {
    /// Returns the next event, reading frames until a whole line is buffered; `None`
    /// at the end of the body.
    async fn next_event(&mut self) -> Result<Option<WatchEvent>, ClientError> {
        loop {
            if let Some(line) = self.buffer.take_line() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line).map(Some).map_err(|source| self.decode_error(source));
            }
            if self.buffer.bytes.len() > MAX_LINE {
                let source = serde_json::Error::io(std::io::Error::other("line longer than 64 MiB"));
                return Err(self.decode_error(source));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.bytes.extend_from_slice(&data);
                    }
                }
                Some(Err(source)) => return Err(ClientError::Http { target: self.target.clone(), source }),
                None => return Ok(None),
            }
        }
    }

    fn decode_error(&self, source: serde_json::Error) -> ClientError {
        ClientError::Decode { method: "GET".into(), path: self.path.clone(), source }
    }
}

impl LineBuffer {
    /// Removes and returns the first whole line, without its newline. The buffer
    /// then gives back the room a long line needed, so a snapshot's size is not
    /// held for the life of the watch.
    fn take_line(&mut self) -> Option<Vec<u8>> {
        let Some(offset) = self.bytes[self.searched..].iter().position(|b| *b == b'\n') else {
            self.searched = self.bytes.len();
            return None;
        };
        let end = self.searched + offset;
        self.searched = 0;
        let mut line = if end >= KEPT_CAPACITY {
            // A long line keeps the buffer's allocation instead of being copied out of
            // it, and the few bytes after it move to a new, small buffer.
            let rest = self.bytes.split_off(end + 1);
            std::mem::replace(&mut self.bytes, rest)
        } else {
            let line: Vec<u8> = self.bytes.drain(..=end).collect();
            if self.bytes.capacity() > KEPT_CAPACITY {
                self.bytes.shrink_to(KEPT_CAPACITY.max(self.bytes.len()));
            }
            line
        };
        line.truncate(end);
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer(bytes: &[u8]) -> LineBuffer {
        LineBuffer { bytes: bytes.to_vec(), searched: 0 }
    }

    #[test]
    fn takes_lines_in_order_and_keeps_the_tail() {
        let mut lines = buffer(b"{\"a\":1}\n{\"b\":2}\n{\"c\"");
        assert_eq!(lines.take_line().as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(lines.take_line().as_deref(), Some(&b"{\"b\":2}"[..]));
        assert_eq!(lines.take_line(), None);
        assert_eq!(lines.bytes, b"{\"c\"");
    }

    #[test]
    fn finds_a_newline_after_a_partial_search() {
        let mut lines = buffer(b"abc");
        assert_eq!(lines.take_line(), None);
        assert_eq!(lines.searched, 3);
        lines.bytes.extend_from_slice(b"de\nf");
        assert_eq!(lines.take_line().as_deref(), Some(&b"abcde"[..]));
        assert_eq!(lines.bytes, b"f");
        assert_eq!(lines.searched, 0);
    }

    #[test]
    fn shrinks_after_a_long_line() {
        let mut long = vec![b'x'; 4 * KEPT_CAPACITY];
        long.extend_from_slice(b"\n{}");
        let mut lines = buffer(&long);
        assert_eq!(lines.take_line().map(|l| l.len()), Some(4 * KEPT_CAPACITY));
        assert!(lines.bytes.capacity() <= KEPT_CAPACITY, "capacity {}", lines.bytes.capacity());
        assert_eq!(lines.bytes, b"{}");
    }
}
