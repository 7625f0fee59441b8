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

/// State of one watch stream between two events.
struct Lines {
    target: String,
    path: String,
    body: Incoming,
    buffer: Vec<u8>,
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
        let lines = Lines { target, path, body: response.into_body(), buffer: Vec::new() };
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
            if let Some(line) = self.take_line() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line).map(Some).map_err(|source| self.decode_error(source));
            }
            if self.buffer.len() > MAX_LINE {
                let source = serde_json::Error::io(std::io::Error::other("line longer than 64 MiB"));
                return Err(self.decode_error(source));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(source)) => return Err(ClientError::Http { target: self.target.clone(), source }),
                None => return Ok(None),
            }
        }
    }

    fn take_line(&mut self) -> Option<Vec<u8>> {
        let end = self.buffer.iter().position(|b| *b == b'\n')?;
        let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
        line.pop();
        Some(line)
    }

    fn decode_error(&self, source: serde_json::Error) -> ClientError {
        ClientError::Decode { method: "GET".into(), path: self.path.clone(), source }
    }
}
