//! The agent's long-running loops: following the host's watch stream, refreshing
//! the host's registration, and repairing the kernel.

use std::sync::Arc;
use std::time::Duration;

use cloison_model::HostSpec;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{ControlPlane, Reconciler};

/// Timing of the agent's loops.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Maximum pause between reconnection attempts.
    pub max_backoff: Duration,
    /// Interval between registration refreshes (heartbeats).
    pub heartbeat: Duration,
    /// Interval between kernel repair passes.
    pub repair: Duration,
    /// Maximum silence on an open watch before the agent drops it and reconnects.
    /// The controller sends a bookmark every 10 s by default, so two missed bookmarks
    /// mean a dead path: after a network partition, the kernel's TCP retransmission
    /// backoff would otherwise delay the stalled stream by up to the partition's length.
    pub idle_timeout: Duration,
    /// Function called after each repair pass. A pass reads the kernel's whole
    /// inventory and frees it, so the binary can return the freed memory there.
    pub after_repair: Option<fn()>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            max_backoff: Duration::from_secs(2),
            heartbeat: Duration::from_secs(10),
            repair: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(20),
            after_repair: None,
        }
    }
}

/// Registers the host, then follows its watch until `cancel` fires. While the
/// controller is unreachable the kernel is left as it is, so traffic keeps flowing.
/// The watch resumes after the last revision applied, or from a snapshot when the
/// controller no longer keeps that history.
pub async fn follow_watch(
    control: Arc<dyn ControlPlane>,
    reconciler: Arc<Reconciler>,
    spec: HostSpec,
    options: WatchOptions,
    cancel: CancellationToken,
) {
    let heartbeat = tokio::spawn(heartbeat_loop(control.clone(), spec.clone(), options.heartbeat, cancel.clone()));
    let repair = tokio::spawn(repair_loop(reconciler.clone(), options.repair, options.after_repair, cancel.clone()));
    let mut backoff = Duration::from_millis(100);
    let mut after: Option<u64> = None;
    while !cancel.is_cancelled() {
        if let Err(e) = control.register_host(&spec).await {
            warn!(host.name = %spec.name, error = %e, "host registration failed; retrying");
        } else {
            match control.watch(&spec.name, after).await {
                Ok(mut stream) => {
                    info!(host.name = %spec.name, after = ?after, "watch opened");
                    backoff = Duration::from_millis(100);
                    loop {
                        let next = tokio::select! {
                            _ = cancel.cancelled() => break,
                            next = tokio::time::timeout(options.idle_timeout, stream.next()) => next,
                        };
                        let Ok(next) = next else {
                            warn!(host.name = %spec.name, idle = ?options.idle_timeout, "watch silent for too long; reconnecting");
                            break;
                        };
                        match next {
                            Some(Ok(event)) => {
                                let revision = event.revision();
                                reconciler.apply_event(event).await;
                                after = Some(revision);
                            }
                            Some(Err(e)) => {
                                warn!(host.name = %spec.name, error = %e, "watch broken; reconnecting");
                                break;
                            }
                            None => {
                                warn!(host.name = %spec.name, "watch closed by the controller; reconnecting");
                                break;
                            }
                        }
                    }
                }
                Err(e) => warn!(host.name = %spec.name, error = %e, "watch failed; retrying"),
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(options.max_backoff);
    }
    let _ = heartbeat.await;
    let _ = repair.await;
}

async fn heartbeat_loop(control: Arc<dyn ControlPlane>, spec: HostSpec, every: Duration, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = control.register_host(&spec).await {
            warn!(host.name = %spec.name, error = %e, "heartbeat failed");
        }
    }
}

async fn repair_loop(reconciler: Arc<Reconciler>, every: Duration, after: Option<fn()>, cancel: CancellationToken) {
    // A failure that repeats at every pass is logged once as a warning.
    let mut last_failure: Option<String> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match reconciler.repair().await {
            Ok(()) if last_failure.take().is_some() => info!("kernel repair succeeded again"),
            Ok(()) => {}
            Err(e) if last_failure.as_deref() == Some(&e.to_string()) => debug!(error = %e, "kernel repair failed again"),
            Err(e) => {
                warn!(error = %e, "kernel repair failed; retrying at each pass");
                last_failure = Some(e.to_string());
            }
        }
        if let Some(after) = after {
            after();
        }
    }
}
