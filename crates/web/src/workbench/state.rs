//! What every workbench handler shares: the store, the mapping set in
//! force, where released records go, the `[web]` and `[mitwirkung]`
//! settings and the clock the Mitwirkung pages read "today" from.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use serde::{Deserialize, Serialize};

use allegro_core::pipeline::Pipeline;
use allegro_store::release::RecordDelivery;
use allegro_store::Store;

use crate::letters::MitwirkungSettings;

/// `[web]`: the workbench's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// `host:port` of the workbench in the daemon; `""` in the file = off
    /// (`allegro-bridge web` uses 127.0.0.1:8080 then).
    #[serde(
        deserialize_with = "crate::settings::socket_addr_or_empty",
        serialize_with = "crate::settings::none_as_empty"
    )]
    pub listen: Option<SocketAddr>,
    /// Folder of `app.css` and the KERN files (`kern/` or, in a checkout,
    /// `node_modules/@kern-ux/native/dist` after `npm ci`).
    pub assets_dir: PathBuf,
    /// Send the session cookie with `Secure` (behind HTTPS).
    pub secure_cookies: bool,
    /// A session unused this long ends.
    pub session_idle_minutes: u32,
    /// A session ends this long after login, used or not.
    pub session_absolute_hours: u32,
    /// Whether local accounts (name and password) may log in; the fallback
    /// beside single sign-on, which may be switched off.
    pub local_login: bool,
    /// Single sign-on through the jobcenter's OpenID provider (`[web.oidc]`).
    pub oidc: super::oidc::OidcConfig,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: None,
            assets_dir: "crates/web/assets".into(),
            secure_cookies: false,
            session_idle_minutes: 30,
            session_absolute_hours: 10,
            local_login: true,
            oidc: super::oidc::OidcConfig::default(),
        }
    }
}

impl WebConfig {
    /// What is wrong with the values (empty: fine).
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.session_idle_minutes == 0 || self.session_absolute_hours == 0 {
            problems.push(
                "web.session_idle_minutes and web.session_absolute_hours must be at least 1".into(),
            );
        }
        if !self.local_login && !self.oidc.enabled {
            problems.push(
                "web.local_login is off and web.oidc is not enabled: nobody could log in".into(),
            );
        }
        problems.extend(self.oidc.validate());
        if self.oidc.enabled
            && self.oidc.redirect_url.starts_with("https://")
            && !self.secure_cookies
        {
            problems.push(
                "web.secure_cookies must be true when web.oidc.redirect_url is https://".into(),
            );
        }
        problems
    }
}

/// Where the workbench gets the mapping set in force: the daemon's
/// reloadable set, or one loaded once by `allegro-bridge web`.
pub trait PipelineSource: Send + Sync + 'static {
    fn current(&self) -> Arc<Pipeline>;
}

/// A mapping set that never changes.
pub struct FixedPipeline(pub Arc<Pipeline>);

impl PipelineSource for FixedPipeline {
    fn current(&self) -> Arc<Pipeline> {
        Arc::clone(&self.0)
    }
}

/// Shared by every handler (cheap to clone).
#[derive(Clone)]
pub struct WorkbenchState {
    pub store: Store,
    pub pipeline: Arc<dyn PipelineSource>,
    /// Where released cases' records go (the outbox, or the daemon's
    /// dispatcher when they also go to the AMQP sink).
    pub records: RecordDelivery,
    pub config: WebConfig,
    /// `[mitwirkung]`: the letters' deadline and letterhead.
    pub mitwirkung: MitwirkungSettings,
    /// What the Mitwirkung pages take as now (overdue, letter date, dates
    /// of changes); the system clock outside tests.
    pub clock: Clock,
    /// The jobcenter's OpenID provider, when `[web.oidc]` is enabled.
    pub oidc: Option<Arc<super::oidc::Provider>>,
}

/// The system clock, which a test may move ahead (to see a deadline pass
/// without waiting for it). Nothing but a test calls [`Clock::advance`];
/// sessions and every other page read the system clock directly.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Seconds ahead of the system clock.
    ahead: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::seconds(self.ahead.load(Ordering::Relaxed))
    }

    pub fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }

    /// Moves this clock (and every clone of it) `by` ahead.
    pub fn advance(&self, by: Duration) {
        self.ahead.fetch_add(by.num_seconds(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_moved_ahead_moves_every_clone() {
        let clock = Clock::system();
        let shared = clock.clone();
        let before = Utc::now();
        assert!(clock.now() >= before && clock.now() - before < Duration::minutes(1));
        shared.advance(Duration::days(15));
        assert!(clock.now() - before >= Duration::days(15));
        assert_eq!(clock.today(), shared.today());
    }
}
