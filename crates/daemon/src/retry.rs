//! Retry timing and the shutdown signal shared by the daemon's tasks.
//!
//! Transient failures (database, outbox directory, broker) are retried with
//! exponential backoff and full jitter from backon, without a limit on the
//! number of attempts: an outage makes the daemon wait, never give up on an
//! application. Every wait also ends early on shutdown.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::watch;

use crate::config::DaemonConfig;

/// An endless exponential backoff with jitter between the configured
/// bounds. backon adds its jitter on top of the capped delay (a delay `d`
/// becomes one in `[d, 2d]`), which overshot `retry_max_delay_ms` (18.5 s
/// for 10 s were seen); halving it gives "equal jitter" in `[d/2, d]`, and
/// the clamp keeps every delay within the configured bounds.
pub fn backoff(cfg: &DaemonConfig) -> impl Iterator<Item = Duration> + Send {
    let min = Duration::from_millis(cfg.retry_min_delay_ms.max(1));
    let max = Duration::from_millis(cfg.retry_max_delay_ms.max(cfg.retry_min_delay_ms.max(1)));
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
        .build()
        .chain(std::iter::repeat(max))
        .map(move |d| (d / 2).clamp(min, max))
}

/// A cloneable view of the shutdown flag.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

/// The sending side of [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A new untriggered shutdown pair.
pub fn shutdown_pair() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Sets the flag; every waiter wakes up.
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }

    /// Another receiver.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// Whether shutdown has been requested.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is requested (at once if it already is).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|v| *v).await;
    }

    /// Sleeps for `d`; returns `true` if shutdown cut the sleep short.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        if self.is_set() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = self.wait() => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_endless_and_bounded() {
        let cfg = DaemonConfig {
            retry_min_delay_ms: 10,
            retry_max_delay_ms: 100,
            ..DaemonConfig::default()
        };
        let delays: Vec<_> = backoff(&cfg).take(500).collect();
        assert_eq!(delays.len(), 500);
        let max = Duration::from_millis(100);
        assert!(delays.iter().all(|d| *d <= max), "{delays:?}");
        assert!(delays.iter().all(|d| *d >= Duration::from_millis(10)));
        // Still jittered, not a constant.
        assert!(delays[10..].iter().any(|d| *d < max), "{delays:?}");
    }
}
