//! The caseworker workbench (issue #12): a German, server-rendered web UI
//! in which caseworkers find, correct, re-check and release cases.
//!
//! - [`state`]: [`WorkbenchState`] and [`WebConfig`] (`[web]` in the settings).
//! - [`auth`]: login, logout, sessions, the login slow-down and lockout, and
//!   the middleware that puts the [`auth::Caller`] on every request behind login.
//! - [`oidc`]: single sign-on through the jobcenter's OpenID provider
//!   (`/anmelden/oidc`, the code flow with PKCE, groups to roles).
//! - [`csrf`]: the one check of the CSRF token of every POST.
//! - [`error`]: [`error::WebError`], the one error of every handler, rendered
//!   as the German error page with its status.
//! - [`layout`]: the page frame, security headers, static files, error pages,
//!   and the scope check ([`layout::case_in_scope`]).
//! - [`list`]: the case list `/faelle` (the search posted, kept under an
//!   opaque id: no name in a URL).
//! - [`detail`]: the case page `/faelle/{id}` (sections, findings, audit trail).
//! - [`actions`]: field edits, Prüfen, Freigeben, Zurückstellen, Abschließen.
//! - [`mitwirkung`]: the documents owed in the caller's Dienststellen
//!   `/mitwirkung` (overdue first; filters by kind and state).
//! - [`antrag`]: the application page `/antraege/{id}` (any stored
//!   application in scope, accepted ones too) with its documents owed and
//!   letters; [`nachweise`]: their actions (Eingang vermerken, Verzichten,
//!   Frist verlängern, Aufforderung erstellen, the letter's PDF).
//! - [`admin`]: `/verwaltung/protokoll`, `/verwaltung/nachpruefung`,
//!   `/verwaltung/dead-letters`.
//! - [`users`]: the accounts page `/verwaltung/benutzer` (administration).
//!
//! Every page except `/anmelden` (with `/anmelden/oidc/...`) and `/static/...` needs a session; without
//! one the answer is 303 to `/anmelden`. Nothing personal goes into a log.

pub mod actions;
pub mod admin;
pub mod anlagen;
pub mod antrag;
pub mod auth;
pub mod charts;
pub mod csrf;
pub mod detail;
pub mod error;
pub mod fix;
pub mod kennzahlen;
pub mod layout;
pub mod list;
pub mod mitwirkung;
pub mod nachweise;
pub mod oidc;
pub mod state;
pub mod users;

pub use state::{Clock, FixedPipeline, PipelineSource, WebConfig, WorkbenchState};

use axum::middleware;
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;

/// The workbench's routes with their middleware, ready to serve.
pub fn router(state: WorkbenchState) -> Router {
    // Administration only: the route layer refuses anyone else (404, audited).
    let admin = Router::new()
        .route("/verwaltung/protokoll", get(admin::audit_page))
        .route(
            "/verwaltung/nachpruefung",
            get(admin::recheck_get).post(admin::recheck_post),
        )
        .route("/verwaltung/dead-letters", get(admin::dead_letters))
        .route("/verwaltung/benutzer", get(users::page))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            admin::require_admin,
        ));
    // The cases and applications: caseworkers and administration only
    // (`leitung` alone gets 404, audited).
    let casework = Router::new()
        .route("/faelle", get(list::page).post(list::search))
        .route("/faelle/{id}", get(detail::page))
        .route(
            "/faelle/{id}/feld",
            get(actions::field_page_get).post(actions::field_page_post),
        )
        .route("/faelle/{id}/beheben", post(fix::post))
        .route("/faelle/{id}/anlagen/{anlage}", get(anlagen::download))
        .route("/faelle/{id}/pruefen", post(actions::check))
        .route("/faelle/{id}/freigeben", post(actions::release))
        .route(
            "/faelle/{id}/zurueckstellen",
            get(actions::defer_get).post(actions::defer_post),
        )
        .route(
            "/faelle/{id}/abschliessen",
            get(actions::close_get).post(actions::close_post),
        )
        .route("/mitwirkung", get(mitwirkung::page))
        .route("/antraege/{id}", get(antrag::page))
        .route("/antraege/{id}/nachweise/{doc}", post(nachweise::change))
        .route("/antraege/{id}/briefe", post(nachweise::write_letter))
        .route("/antraege/{id}/briefe/{letter}", get(nachweise::letter_pdf))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            kennzahlen::require_casework,
        ));
    // The figures: `leitung` and administration only.
    let figures = Router::new()
        .route("/kennzahlen", get(kennzahlen::page))
        .route("/kennzahlen.csv", get(kennzahlen::csv))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            kennzahlen::require_kennzahlen,
        ));
    // Behind login; every POST among them is checked by `csrf::guard`.
    let private = Router::new()
        .route("/", get(home))
        .merge(casework)
        .merge(figures)
        .route("/abmelden", post(auth::logout))
        .merge(admin)
        .fallback(layout::fallback)
        .layer(middleware::from_fn(layout::german_rejections))
        .layer(middleware::from_fn(csrf::guard))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_login,
        ));
    let public = Router::new()
        .route("/anmelden", get(auth::login_page).post(auth::login))
        .route("/anmelden/oidc", post(oidc::start))
        .route(oidc::CALLBACK_PATH, get(oidc::callback))
        .layer(middleware::from_fn(layout::german_rejections))
        .layer(middleware::from_fn(csrf::guard));
    let https = state.config.secure_cookies;
    Router::new()
        .merge(private)
        .merge(public)
        .nest("/static", layout::static_files(&state.config))
        .layer(middleware::from_fn(layout::security_headers))
        .layer(middleware::map_response(move |r| {
            layout::strict_transport(r, https)
        }))
        .with_state(state)
}

/// `/`: the start page of the user's work: the cases, or for `leitung`
/// alone the Kennzahlen.
async fn home(caller: auth::Caller) -> Redirect {
    if caller.works_cases() {
        Redirect::to("/faelle")
    } else {
        Redirect::to("/kennzahlen")
    }
}
