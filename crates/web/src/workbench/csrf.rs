//! The one place where the CSRF token of every POST is checked.
//!
//! Every form carries a hidden `csrf` field. Behind login it must equal the
//! session's token; on the login form (no session yet) the value of the
//! `bridge_login` cookie set with the form. Anything else is refused with
//! 403 before a handler runs, so nothing changes. (SameSite=Strict cookies
//! and `form-action 'self'` guard as well; this is the explicit check.)

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::auth::{cookie, Caller, LOGIN_COOKIE};
use super::layout;

/// Largest form body accepted (a case's field values are small).
pub const MAX_FORM_BYTES: usize = 256 * 1024;

/// Middleware: POSTs without the right token are answered with 403.
pub async fn guard(req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let expected = match req.extensions().get::<Caller>() {
        Some(c) => Some(c.csrf.clone()),
        None => cookie(req.headers(), LOGIN_COOKIE)
            .filter(|t| !t.is_empty())
            .map(str::to_string),
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
        return layout::message_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            parts.extensions.get::<Caller>(),
            "Eingabe zu groß",
            "Das Formular enthält zu viele Daten. Es wurde nichts gespeichert.",
        );
    };
    let sent = form_field(&bytes, "csrf");
    let valid = matches!((&expected, &sent), (Some(e), Some(s)) if same(e, s));
    if !valid {
        tracing::info!("form refused: CSRF token missing or wrong");
        return layout::message_page(
            StatusCode::FORBIDDEN,
            parts.extensions.get::<Caller>(),
            "Formular abgelaufen",
            "Das Formular ist abgelaufen oder wurde nicht von dieser Anwendung gesendet. \
             Es wurde nichts gespeichert. Bitte laden Sie die Seite neu und versuchen Sie es erneut.",
        );
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The first value of `name` in an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Equality that takes as long for every pair of equal-length inputs
/// (the hashes are compared, so lengths never leak either).
fn same(a: &str, b: &str) -> bool {
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_token_among_other_fields() {
        assert_eq!(
            form_field(b"a=1&csrf=abc%20d&csrf=x", "csrf").as_deref(),
            Some("abc d")
        );
        assert_eq!(form_field(b"a=1", "csrf"), None);
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
