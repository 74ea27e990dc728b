//! The workbench's one error type: what a handler cannot answer with its
//! own page becomes a [`WebError`], which renders the German error page
//! with the right status. Handlers return `Result<Response, WebError>` and
//! use `?`; a [`StoreError`] converts into it.
//!
//! A store error is logged without personal data (the store's errors name
//! tables, columns and antragIds, never values) and answered with 503 when
//! the database failed (it may come back) or 500 when a stored row does not
//! decode (it will not come back by itself).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use allegro_store::StoreError;

use super::auth::Caller;
use super::layout::{self, Layout};

/// Why a request could not be answered with its page.
#[derive(Debug)]
pub enum WebError {
    /// The store failed.
    Store(StoreError),
    /// The thing does not exist or is out of the caller's scope (the same
    /// page for both); 404 in the caller's frame.
    NotFound(Box<Layout>),
    /// A page the handler already rendered (a refusal with its own status).
    Page(Response),
}

impl WebError {
    /// 404 for a logged-in caller.
    pub fn not_found(caller: &Caller) -> WebError {
        WebError::NotFound(Box::new(caller.layout()))
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> WebError {
        WebError::Store(e)
    }
}

impl From<Response> for WebError {
    fn from(r: Response) -> WebError {
        WebError::Page(r)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::Store(e) => store_error(&e),
            WebError::NotFound(frame) => layout::not_found_in(*frame),
            WebError::Page(r) => r,
        }
    }
}

/// The page for a store error: 503 while the database fails, 500 for a
/// stored row that does not decode. Logged without data.
fn store_error(e: &StoreError) -> Response {
    tracing::warn!(error = %e, "workbench: store error");
    if e.is_corrupt() {
        layout::message_page_in(
            StatusCode::INTERNAL_SERVER_ERROR,
            Layout::default(),
            "Interner Fehler",
            "Gespeicherte Daten sind beschädigt und können nicht angezeigt werden. \
             Bitte wenden Sie sich an den IT-Betrieb; dessen Protokoll nennt die betroffene Stelle.",
        )
    } else {
        layout::message_page_in(
            StatusCode::SERVICE_UNAVAILABLE,
            Layout::default(),
            "Vorübergehend nicht verfügbar",
            "Die Datenbank ist gerade nicht erreichbar. Bitte versuchen Sie es in einigen Minuten erneut.",
        )
    }
}
