//! The page frame and what every page shares: the base layout's data,
//! German error pages, security headers, static files (KERN and our CSS),
//! and the scope check for a case.

use std::path::{Path, PathBuf};

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::Utc;
use tower_http::services::{ServeDir, ServeFile};
use uuid::Uuid;

use allegro_store::audit::{Action, NewAudit};

use super::auth::Caller;
use super::error::WebError;
use super::state::{WebConfig, WorkbenchState};

/// What the base layout shows: who is logged in, the logout form's token,
/// whether the title starts with "Fehler:".
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The logged-in user's name (none on the login page).
    pub user: Option<String>,
    pub admin: bool,
    /// The user works cases (the links to Fälle and Mitwirkung).
    pub casework: bool,
    /// The user may see the Kennzahlen.
    pub kennzahlen: bool,
    /// The CSRF token for this page's forms.
    pub csrf: String,
    /// The page shows input errors: its title starts with "Fehler: ".
    pub has_errors: bool,
}

impl Layout {
    pub fn for_user(caller: &Caller) -> Layout {
        Layout {
            user: Some(caller.user.name.clone()),
            admin: caller.is_admin(),
            casework: caller.works_cases(),
            kennzahlen: caller.kennzahlen_scope().is_some(),
            csrf: caller.csrf.clone(),
            has_errors: false,
        }
    }

    /// The frame of the login page.
    pub fn anonymous(csrf: &str) -> Layout {
        Layout {
            csrf: csrf.into(),
            ..Layout::default()
        }
    }

    pub fn with_error_title(mut self) -> Layout {
        self.has_errors = true;
        self
    }

    /// "Fehler: " when the page shows input errors, else "".
    pub fn title_prefix(&self) -> &'static str {
        if self.has_errors {
            "Fehler: "
        } else {
            ""
        }
    }
}

/// One input error: the field's element id and the German message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: &str) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A page with a heading and one paragraph (errors, refusals).
#[derive(Template, WebTemplate)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub layout: Layout,
    pub heading: String,
    pub text: String,
}

/// A message page with a status code.
pub fn message_page(
    status: StatusCode,
    caller: Option<&Caller>,
    heading: &str,
    text: &str,
) -> Response {
    message_page_in(
        status,
        caller.map(Caller::layout).unwrap_or_default(),
        heading,
        text,
    )
}

/// A message page with a status code in the frame `layout`.
pub fn message_page_in(status: StatusCode, layout: Layout, heading: &str, text: &str) -> Response {
    let page = MessagePage {
        layout,
        heading: heading.into(),
        text: text.into(),
    };
    (status, page).into_response()
}

/// 404: the same page whether the thing does not exist or is out of scope.
pub fn not_found(caller: Option<&Caller>) -> Response {
    not_found_in(caller.map(Caller::layout).unwrap_or_default())
}

/// [`not_found`] in the frame `layout`.
pub fn not_found_in(layout: Layout) -> Response {
    message_page_in(
        StatusCode::NOT_FOUND,
        layout,
        "Seite nicht gefunden",
        "Diese Seite gibt es nicht, oder Sie haben keinen Zugriff darauf.",
    )
}

/// Middleware: axum's own refusals of a malformed request (a form field
/// missing, a body of the wrong type, a method the route does not take:
/// English plain text or an empty body) become a German page with the same
/// status. Pages of the workbench's own are HTML and pass unchanged.
pub async fn german_rejections(req: Request, next: Next) -> Response {
    let caller = req.extensions().get::<Caller>().cloned();
    let resp = next.run(req).await;
    let status = resp.status();
    let refusal = matches!(status.as_u16(), 400 | 405 | 413 | 415 | 422);
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !(refusal && plain) {
        return resp;
    }
    let mut page = message_page(
        status,
        caller.as_ref(),
        "Anfrage nicht verständlich",
        "Die Anfrage war unvollständig oder passt nicht zu dieser Seite. \
         Bitte laden Sie die Seite neu und versuchen Sie es erneut.",
    );
    if let Some(allow) = resp.headers().get(header::ALLOW) {
        page.headers_mut().insert(header::ALLOW, allow.clone());
    }
    page
}

/// Fallback behind login: 404.
pub async fn fallback(caller: Option<axum::Extension<Caller>>) -> Response {
    not_found(caller.as_ref().map(|c| &c.0))
}

/// Whether `caller` may see case `antrag_id`. Out of scope (or unknown):
/// the 404 page, and a `denied` audit entry.
pub async fn case_in_scope(
    state: &WorkbenchState,
    caller: &Caller,
    antrag_id: Uuid,
) -> Result<(), WebError> {
    match state.store.case_scope(antrag_id).await? {
        Some((dst, _)) if caller.scope().covers(dst.as_deref()) => Ok(()),
        _ => {
            let entry = NewAudit::new(&caller.user.name, Action::Denied, Some(antrag_id));
            state.store.audit(&entry, Utc::now()).await?;
            Err(WebError::not_found(caller))
        }
    }
}

/// The Content-Security-Policy of every response: nothing inline, nothing
/// from another host.
pub const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self' data:; font-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Middleware: security headers on every response; pages are not cached.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let is_static = req.uri().path().starts_with("/static/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    if is_static {
        set(h, header::CACHE_CONTROL, "public, max-age=3600");
    } else {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    resp
}

/// HSTS for a workbench served over HTTPS (`web.secure_cookies`): the
/// browser then refuses plain HTTP to this host for a year.
pub async fn strict_transport(mut resp: Response, https: bool) -> Response {
    if https {
        resp.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    resp
}

/// Where the KERN files are: `kern/` in an installed package, else the
/// npm package's `dist/` in a checkout (after `npm ci`).
pub fn kern_dir(assets: &Path) -> PathBuf {
    let installed = assets.join("kern");
    if installed.is_dir() {
        installed
    } else {
        assets.join("node_modules/@kern-ux/native/dist")
    }
}

/// `/static/app.css` and `/static/kern/...` (no login needed).
pub fn static_files<S: Clone + Send + Sync + 'static>(cfg: &WebConfig) -> Router<S> {
    let assets = &cfg.assets_dir;
    if !kern_dir(assets).join("kern.min.css").is_file() {
        tracing::warn!(
            assets_dir = %assets.display(),
            "KERN styles not found: run `npm ci` in crates/web/assets (or set web.assets_dir)"
        );
    }
    Router::new()
        .route_service("/app.css", ServeFile::new(assets.join("app.css")))
        .nest_service("/kern", ServeDir::new(kern_dir(assets)))
}
