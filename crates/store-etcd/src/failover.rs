//! One etcd client per member, used in turn: a request that cannot reach its member is
//! sent to the next one, so a controller keeps working while a minority of members is
//! down.
//!
//! etcd-client's own balanced channel kept sending requests to a killed member and
//! returned its connection errors (seen with etcd-client 0.21 and etcd 3.4), so the
//! store picks the member itself.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use etcd_client::{Client, ConnectOptions};

use crate::errors::{is_no_leader, reached_no_leader};

/// How long a request waits for an election. etcd's default election timeout is
/// 1 s. Without a wait, the first write after the leader was killed failed with
/// "no leader" on a loaded 2-core machine.
const ELECTION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Pause between two rounds over the members while they have no leader.
const ELECTION_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// The failures after which a request may be sent again to another member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Any failure to reach a member or a leader: for reads, which change nothing.
    Unavailable,
    /// Only failures where the request cannot have reached a leader (connection refused,
    /// "no leader"): for writes, because a write that timed out may have been applied
    /// and sending it again could apply it twice.
    NotSent,
}

/// The clients of every member and the member currently used.
pub(crate) struct Members {
    clients: Vec<Client>,
    current: AtomicUsize,
}

impl std::fmt::Debug for Members {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Members")
            .field("count", &self.clients.len())
            .field("current", &self.current)
            .finish()
    }
}

impl Members {
    /// Prepares one client per endpoint. Clients connect lazily, so no member needs to
    /// be up yet.
    pub(crate) async fn connect(
        endpoints: &[String],
        options: &ConnectOptions,
    ) -> Result<Self, etcd_client::Error> {
        let mut clients = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            clients.push(Client::connect([endpoint], Some(options.clone())).await?);
        }
        Ok(Self {
            clients,
            current: AtomicUsize::new(0),
        })
    }

    /// Runs `request` on the current member, then on each other member in turn while
    /// the failure is one that `retry` allows. When every member reports that it has
    /// no leader, an election is under way: the round starts again every
    /// [`ELECTION_PAUSE`] until [`ELECTION_WAIT`] has passed. Returns the last failure.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        retry: Retry,
        request: F,
    ) -> Result<T, etcd_client::Error>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = std::time::Instant::now() + ELECTION_WAIT;
        loop {
            match self.round(retry, &request).await {
                Err(error) if is_no_leader(&error) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(ELECTION_PAUSE).await;
                }
                result => return result,
            }
        }
    }

    /// Runs `request` on each member in turn, from the current one, until one
    /// succeeds or fails in a way `retry` does not allow.
    async fn round<T, F, Fut>(&self, retry: Retry, request: &F) -> Result<T, etcd_client::Error>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let count = self.clients.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last_error = None;
        for step in 0..count {
            let index = (start + step) % count;
            match request(self.clients[index].clone()).await {
                Ok(value) => {
                    if step > 0 {
                        self.current.store(index, Ordering::Relaxed);
                        tracing::info!(member = index, "etcd requests moved to another member");
                    }
                    return Ok(value);
                }
                Err(error) if may_retry(retry, &error) => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            etcd_client::Error::InvalidArgs("the store has no etcd member".into())
        }))
    }
}

fn may_retry(retry: Retry, error: &etcd_client::Error) -> bool {
    match retry {
        Retry::Unavailable => crate::errors::is_unavailable(error),
        Retry::NotSent => reached_no_leader(error),
    }
}
