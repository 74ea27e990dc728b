//! The check API for the online form (`[api]`): `POST /api/v1/pruefung`
//! answers what the bridge would do with an application before the
//! applicant submits it, with the daemon's own pipeline and mappings and
//! nothing stored.
//!
//! - [`check`]: the check itself and its JSON.
//! - [`clients`]: the clients file, bearer tokens, origins, rate limits.
//! - [`metrics`]: requests and findings (`source="api"`).
//! - [`openapi`]: the OpenAPI 3.1 document at `/api/v1/openapi.json`.
//!
//! Served by the daemon (`[api] listen`, with the mapping set in force) or
//! on its own (`allegro-bridge api`: mappings only, no database, no broker).
//! Around the check, from the outside in: CORS for the browser, the
//! timeout (503), the bearer token (401) and its origin (403), the client's
//! rate limit (429 with `Retry-After`), then in the handler the content type
//! (415), the body limit (413) and what is not a JSON object (400); the check
//! itself runs on the blocking pool. Every refusal is JSON with a German
//! sentence and nothing from the request. `/healthz` and `/readyz` answer
//! without a token.

pub mod check;
pub mod clients;
pub mod metrics;
pub mod openapi;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use governor::clock::{Clock as _, DefaultClock};
use serde::{Deserialize, Serialize};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::workbench::PipelineSource;
use check::Fehler;
use clients::Clients;
use metrics::ApiMetrics;

/// `[api]`: the check API's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// `host:port` of the API in the daemon; `""` = off (`allegro-bridge
    /// api` uses 127.0.0.1:8090 then).
    #[serde(
        deserialize_with = "crate::settings::socket_addr_or_empty",
        serialize_with = "crate::settings::none_as_empty"
    )]
    pub listen: Option<SocketAddr>,
    /// The clients file (names, token hashes, origins).
    pub clients_file: PathBuf,
    /// Larger bodies get 413.
    pub max_body_bytes: usize,
    /// A request taking longer (a slow upload, too) gets 503.
    pub timeout_ms: u64,
    /// Requests per minute and client, unless its entry says otherwise.
    pub requests_per_minute: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: None,
            clients_file: "config/api-clients.toml".into(),
            max_body_bytes: 1024 * 1024,
            timeout_ms: 5000,
            requests_per_minute: 6000,
        }
    }
}

impl ApiConfig {
    /// What is wrong with the values (empty: fine).
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_body_bytes == 0 || self.timeout_ms == 0 || self.requests_per_minute == 0 {
            problems.push(
                "api.max_body_bytes, api.timeout_ms and api.requests_per_minute must be at least 1"
                    .into(),
            );
        }
        problems
    }

    /// The default rate of a client.
    pub fn per_minute(&self) -> NonZeroU32 {
        NonZeroU32::new(self.requests_per_minute).unwrap_or(NonZeroU32::MIN)
    }

    /// Reads the clients file these settings name.
    pub fn load_clients(&self) -> anyhow::Result<Clients> {
        Clients::load(&self.clients_file, self.per_minute())
    }
}

/// Shared by the API's handlers.
#[derive(Clone)]
pub struct ApiState {
    pub pipeline: Arc<dyn PipelineSource>,
    pub clients: Arc<Clients>,
    pub metrics: ApiMetrics,
    pub config: ApiConfig,
}

/// The client a request was authenticated as (its name).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<str>);

/// The API's router.
pub fn router(state: ApiState) -> Router {
    let checked = Router::new()
        .route("/api/v1/pruefung", post(check::pruefung))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes));
    let timeout = Duration::from_millis(state.config.timeout_ms);
    Router::new()
        .merge(checked)
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/healthz", get(ok))
        .route("/readyz", get(ok))
        .fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
        // The timeout inside CORS, so that a browser can read its 503.
        .layer(middleware::from_fn_with_state(
            (timeout, state.metrics.clone()),
            time_limit,
        ))
        .layer(cors(Arc::clone(&state.clients)))
        .with_state(state)
}

/// CORS: the preflight carries no token, so it is allowed for the origins
/// of all clients; [`authenticate`] then holds each token to its own.
fn cors(clients: Arc<Clients>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origin.to_str().is_ok_and(|o| clients.any_allows(o))
        }))
        .allow_methods([Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT_LANGUAGE,
        ])
        .expose_headers([header::CONTENT_LANGUAGE, header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

/// The bearer token, its origin and its rate limit.
async fn authenticate(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let Some(client) = token.and_then(|t| state.clients.authenticate(t)) else {
        state.metrics.request("-", "unauthorized");
        let mut resp = fehler(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Anmeldung fehlt oder ist ungültig: Bitte ein gültiges Zugangstoken senden (Authorization: Bearer …).",
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"allegro-bridge\""),
        );
        return resp;
    };
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    if origin.is_some_and(|o| !client.allows(o)) {
        state.metrics.request(&client.name, "forbidden_origin");
        return fehler(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "Dieser Zugang darf von dieser Website aus nicht verwendet werden.",
        );
    }
    if let Err(not_until) = client.limiter.check() {
        state.metrics.request(&client.name, "rate_limited");
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut resp = fehler(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Zu viele Prüfungen in kurzer Zeit. Bitte kurz warten und erneut versuchen.",
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        return resp;
    }
    req.extensions_mut()
        .insert(Authenticated(Arc::clone(&client.name)));
    next.run(req).await
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is
/// case-insensitive, RFC 9110 §11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Ends a request that takes longer than `timeout` with 503.
async fn time_limit(
    State((timeout, metrics)): State<(Duration, ApiMetrics)>,
    req: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            metrics.request("-", "timeout");
            let mut resp = fehler(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Die Prüfung hat zu lange gedauert. Bitte erneut versuchen.",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
    }
}

/// A refusal: the code and a German sentence.
pub fn fehler(status: StatusCode, code: &str, meldung: &str) -> Response {
    (
        status,
        Json(Fehler {
            fehler: code.into(),
            meldung: meldung.into(),
        }),
    )
        .into_response()
}

async fn ok() -> &'static str {
    "ok\n"
}

async fn not_allowed() -> Response {
    fehler(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Diese Adresse nimmt nur POST an (GET für /api/v1/openapi.json).",
    )
}

async fn not_found() -> Response {
    fehler(
        StatusCode::NOT_FOUND,
        "not_found",
        "Diese Adresse gibt es nicht. Die Prüfung ist POST /api/v1/pruefung.",
    )
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abr_1"), Some("abr_1"));
        assert_eq!(bearer_token("bearer  abr_1 "), Some("abr_1"));
        assert_eq!(bearer_token("Basic abr_1"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abr_1"), None);
    }
}
