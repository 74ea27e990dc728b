//! The systemd watchdog, fed by the main loop's heartbeat.
//!
//! systemd restarts the service when `WATCHDOG=1` stops arriving for
//! `WatchdogSec`. A timer task that pinged unconditionally would only prove
//! that the async runtime still runs; a consumer stuck in a call that never
//! returns (a database connection that stopped answering mid-statement, a
//! deadlock) would go unnoticed. So the main loop beats a [`Heartbeat`]
//! whenever it makes progress or enters a wait it knows to be bounded (idle
//! on the queue, a retry backoff), and the watchdog task pings only while the
//! last beat is younger than half of `WatchdogSec`. A broker or database
//! outage is not a hang: the loop keeps beating while it retries, so systemd
//! does not restart a daemon that is already doing the right thing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// How often an idle consumer beats while it waits for the next delivery.
pub const IDLE_BEAT: Duration = Duration::from_secs(1);

/// When the main loop last showed it was alive (or how long it announced a
/// bounded wait to last).
#[derive(Debug)]
pub struct Heartbeat {
    origin: Instant,
    /// Milliseconds after `origin` until which the loop counts as alive.
    alive_until_ms: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            origin: Instant::now(),
            alive_until_ms: AtomicU64::new(0),
        }
    }
}

impl Heartbeat {
    /// The loop made progress now.
    pub fn beat(&self) {
        self.alive_for(Duration::ZERO);
    }

    /// The loop enters a wait of at most `d` (a retry backoff); it counts as
    /// alive until the wait is over.
    pub fn alive_for(&self, d: Duration) {
        let until = self.origin.elapsed() + d;
        self.alive_until_ms
            .fetch_max(until.as_millis() as u64, Ordering::SeqCst);
    }

    /// How long the loop has been silent (zero during an announced wait).
    pub fn silent_for(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.alive_until_ms.load(Ordering::SeqCst)))
    }
}

/// Whether to ping systemd: only while the loop has been silent for less
/// than half of `WatchdogSec`, so a hung loop is restarted within about one
/// and a half `WatchdogSec`.
pub fn should_ping(silent: Duration, watchdog: Duration) -> bool {
    silent < watchdog / 2
}

/// Starts the ping task when systemd asked for a watchdog
/// (`WATCHDOG_USEC`); pings every quarter of the interval while
/// [`should_ping`] holds, and logs once when it starts withholding pings and
/// once when the loop is back.
pub fn spawn(heartbeat: Arc<Heartbeat>) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    heartbeat.beat();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 4);
        let mut withholding = false;
        loop {
            tick.tick().await;
            let silent = heartbeat.silent_for();
            if should_ping(silent, interval) {
                if withholding {
                    info!("main loop alive again; watchdog pings resume");
                    withholding = false;
                }
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            } else if !withholding {
                warn!(
                    silent_ms = silent.as_millis() as u64,
                    "main loop silent; watchdog pings withheld (systemd restarts the service after WatchdogSec)"
                );
                withholding = true;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_only_while_the_loop_beat_within_half_the_interval() {
        let w = Duration::from_secs(60);
        assert!(should_ping(Duration::ZERO, w));
        assert!(should_ping(Duration::from_secs(29), w));
        assert!(!should_ping(Duration::from_secs(30), w));
        assert!(!should_ping(Duration::from_secs(600), w));
    }

    #[test]
    fn an_announced_wait_counts_as_alive_and_a_beat_never_shortens_it() {
        let h = Heartbeat::default();
        h.alive_for(Duration::from_secs(3600));
        h.beat();
        assert_eq!(h.silent_for(), Duration::ZERO);
        let h = Heartbeat::default();
        h.beat();
        std::thread::sleep(Duration::from_millis(30));
        assert!(h.silent_for() >= Duration::from_millis(30));
        h.beat();
        assert!(h.silent_for() < Duration::from_millis(30));
    }
}
