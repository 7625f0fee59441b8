//! The per-host watch. One [`WatchHub`] per controller follows the store and keeps
//! the [`DeploymentIndex`]. Each host's stream is a snapshot or a resumed position,
//! then the changes its [`HostWatchFilter`] picks, with periodic bookmarks.

mod filter;
mod hub;
mod index;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use cloison_model::WatchEvent;
use futures::Stream;
use tokio::sync::mpsc;

use crate::{Controller, ControllerError};
pub use filter::HostWatchFilter;
pub(crate) use hub::WatchHub;
pub use index::{Change, ChangeKind, DeploymentIndex, TenantContents};
use hub::{Delivery, Subscription};

/// Events buffered per watcher before its task waits for the consumer.
const CHANNEL_DEPTH: usize = 256;

impl Controller {
    /// Streams what one host needs: a `snapshot` first unless the host can resume from
    /// `after`, then filtered changes and a `bookmark` every bookmark interval.
    ///
    /// A watch resumes without a snapshot when `after` is the current revision, or when
    /// the controller's history of recent changes still contains every change since
    /// `after` and none of them made a tenant relevant to the host or withdrew one.
    /// Heartbeats of other hosts therefore do not force a snapshot.
    ///
    /// Errors before the stream starts, such as an unavailable store, are returned.
    /// Once started, the stream restarts with a new snapshot when the store's history is
    /// compacted. It ends on other store errors, so the client reconnects.
    ///
    /// Limitation: the history of recent changes is in the controller's memory and
    /// keeps 16,384 changes, so a watch resumed after a controller restart, or after
    /// more changes than that, starts with a snapshot. So does one whose host gained
    /// its first endpoint of a tenant, or lost its last, since `after`.
    pub async fn watch_host(
        &self,
        host: &str,
        after: Option<u64>,
    ) -> Result<impl Stream<Item = WatchEvent> + Send + 'static, ControllerError> {
        let hub = self.watch_hub().await?;
        let subscription = hub.subscribe(host, after)?;
        let (sender, receiver) = mpsc::channel(CHANNEL_DEPTH);
        let task = WatchTask { hub, host: host.to_string(), interval: self.bookmark_interval, sender };
        tokio::spawn(task.run(subscription));
        Ok(futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|event| (event, receiver))
        }))
    }

    /// Returns the controller's hub, starting it on the first watch or after its
    /// store watch ended.
    async fn watch_hub(&self) -> Result<Arc<WatchHub>, ControllerError> {
        let mut hub = self.hub.lock().await;
        if let Some(running) = hub.as_ref().filter(|h| h.is_alive()) {
            return Ok(Arc::clone(running));
        }
        let started = WatchHub::start(Arc::clone(&self.store)).await?;
        *hub = Some(Arc::clone(&started));
        Ok(started)
    }
}

/// The task behind one host watch. It ends when the receiver is dropped or the hub
/// stops.
struct WatchTask {
    hub: Arc<WatchHub>,
    host: String,
    interval: Duration,
    sender: mpsc::Sender<WatchEvent>,
}

/// The reason forwarding stopped.
enum Stop {
    /// The consumer went away.
    Closed,
    /// The hub dropped the subscription, so the task resumes from the last revision sent.
    Dropped,
}

impl WatchTask {
    async fn run(self, mut subscription: Subscription) {
        loop {
            let id = subscription.id;
            let stop = match self.forward(&mut subscription).await {
                Ok(never) => match never {},
                Err(stop) => stop,
            };
            self.hub.unsubscribe(id);
            if matches!(stop, Stop::Closed) {
                return;
            }
            match self.hub.subscribe(&self.host, Some(subscription.revision)) {
                Ok(next) => subscription = next,
                Err(error) => {
                    tracing::warn!(host.name = %self.host, %error, "host watch ended by a store error");
                    return;
                }
            }
        }
    }

    /// Sends the subscription's first events, then its deliveries and bookmarks, until
    /// the consumer goes away or the hub drops the subscription.
    async fn forward(&self, subscription: &mut Subscription) -> Result<Infallible, Stop> {
        for event in std::mem::take(&mut subscription.first) {
            self.send(event).await?;
        }
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.reset();
        loop {
            tokio::select! {
                delivery = subscription.deliveries.recv() => match delivery {
                    Some(delivery) => self.deliver(subscription, delivery).await?,
                    None => return Err(Stop::Dropped),
                },
                _ = ticker.tick() => self.bookmark(subscription).await?,
                _ = self.sender.closed() => return Err(Stop::Closed),
            }
        }
    }

    async fn deliver(&self, subscription: &mut Subscription, delivery: Delivery) -> Result<(), Stop> {
        for event in delivery.events {
            self.send(event).await?;
        }
        subscription.revision = subscription.revision.max(delivery.revision);
        Ok(())
    }

    /// Sends a bookmark at the hub's revision. Every delivery up to that revision was
    /// queued before it was read, so they are forwarded first.
    async fn bookmark(&self, subscription: &mut Subscription) -> Result<(), Stop> {
        let revision = self.hub.revision();
        loop {
            match subscription.deliveries.try_recv() {
                Ok(delivery) => self.deliver(subscription, delivery).await?,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return Err(Stop::Dropped),
            }
        }
        subscription.revision = subscription.revision.max(revision);
        self.send(WatchEvent::Bookmark { revision: subscription.revision }).await
    }

    async fn send(&self, event: WatchEvent) -> Result<(), Stop> {
        self.sender.send(event).await.map_err(|_| Stop::Closed)
    }
}
