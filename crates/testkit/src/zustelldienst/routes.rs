//! The stand-in's HTTP side: the token endpoint, the Submission API's
//! handlers, and the gate in front of the API that logs each request,
//! answers 503 while down, checks the bearer token where the document asks
//! for one, and holds request and response to the document.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use uuid::Uuid;

use super::openapi::{self, Operation};
use super::{sets, LoggedRequest, PostedEvent, RefusedEvent, Shared, State as Inner, Stored};
use super::{NewSubmission, TOKEN_LIFETIME_SECS};

/// More than any body the stand-in takes or sends.
const BODY_LIMIT: usize = 64 * 1024 * 1024;
/// `limit` when a list request names none (the document's default).
const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` the document allows.
const MAX_LIMIT: usize = 500;

type SharedState = State<Arc<Shared>>;

// ---------------------------------------------------------------------------
// Routers and the gates in front of them
// ---------------------------------------------------------------------------

/// `POST /token` on its own server.
pub(super) fn token_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/token", post(token))
        .fallback(|| async {
            oauth_error(StatusCode::NOT_FOUND, "invalid_request", "no such path")
        })
        .layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            token_gate,
        ))
        .with_state(shared)
}

/// The Submission API.
pub(super) fn api_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/submissions", get(list_submissions))
        .route("/v1/submissions/{submission_id}", get(get_submission))
        .route(
            "/v1/submissions/{submission_id}/attachments/{attachment_id}",
            get(get_attachment),
        )
        .route(
            "/v1/cases/{case_id}/events",
            get(get_events).post(post_event),
        )
        .route("/.well-known/jwks.json", get(jwks))
        .fallback(not_implemented)
        .method_not_allowed_fallback(not_implemented)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            api_gate,
        ))
        .with_state(shared)
}

/// Logs each token request; 503 while down.
async fn token_gate(State(shared): SharedState, request: Request, next: Next) -> Response {
    let (method, path) = (
        request.method().to_string(),
        request.uri().path().to_owned(),
    );
    let response = if shared.down.load(Ordering::SeqCst) {
        problem(StatusCode::SERVICE_UNAVAILABLE, "the Zustelldienst is down")
    } else {
        next.run(request).await
    };
    shared.log(method, path, response.status());
    response
}

/// Logs each API request; 503 while down; otherwise checks the request
/// against the document, the bearer token if the operation is secured,
/// runs the handler and checks its response against the document.
async fn api_gate(State(shared): SharedState, request: Request, next: Next) -> Response {
    let (method, path) = (
        request.method().to_string(),
        request.uri().path().to_owned(),
    );
    let response = if shared.down.load(Ordering::SeqCst) {
        problem(StatusCode::SERVICE_UNAVAILABLE, "the Zustelldienst is down")
    } else {
        match openapi::document().operation(&method, &path) {
            Ok(op) => refereed(&shared, op, request, next).await,
            Err(why) => {
                let status = match openapi::document().has_path(&path) {
                    true => StatusCode::METHOD_NOT_ALLOWED,
                    false => StatusCode::NOT_FOUND,
                };
                shared.violation(why.clone());
                problem(status, &why)
            }
        }
    };
    shared.log(method, path, response.status());
    response
}

/// A request to an operation of the document, checked both ways.
async fn refereed(
    shared: &Shared,
    op: Operation<'static>,
    request: Request,
    next: Next,
) -> Response {
    let doc = openapi::document();
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, BODY_LIMIT).await else {
        return problem(
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        );
    };
    let query = parse_query(parts.uri.query());
    let mut found = match &query {
        Ok(query) => doc.check_request(&op, query, content_type(&parts.headers), &body),
        Err(e) => vec![format!(
            "request {method} {}: {e}",
            op.template,
            method = op.method
        )],
    };
    let authorized = match op.secured() {
        true => shared.authorize(&parts.headers),
        false => Ok(()),
    };
    let response = match authorized {
        Ok(()) => next.run(Request::from_parts(parts, Body::from(body))).await,
        Err(why) => unauthorized(&why),
    };
    if response.extensions().get::<Injected>().is_some() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, BODY_LIMIT).await.unwrap_or_default();
    // The document says nothing of the answers to requests that break it.
    if found.is_empty() || !parts.status.is_client_error() {
        let response_type = content_type(&parts.headers);
        found.extend(doc.check_response(&op, parts.status.as_u16(), response_type, &body));
    }
    for violation in found {
        shared.violation(violation);
    }
    Response::from_parts(parts, Body::from(body))
}

/// A path of the document the stand-in does not serve.
async fn not_implemented(State(shared): SharedState, request: Request) -> Response {
    let what = format!(
        "{} {}: in the document, but not implemented by the stand-in",
        request.method(),
        request.uri().path()
    );
    shared.violation(what.clone());
    problem(StatusCode::NOT_IMPLEMENTED, &what)
}

// ---------------------------------------------------------------------------
// OAuth 2 token endpoint
// ---------------------------------------------------------------------------

/// Client credentials, `client_secret_post` only (RFC 6749 §4.4, §2.3.1).
async fn token(State(shared): SharedState, headers: HeaderMap, body: Bytes) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if authorization.is_some_and(|a| a.to_ascii_lowercase().starts_with("basic ")) {
        let mut response = oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "HTTP Basic client authentication is not supported; send client_id and client_secret in the form",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"fit-connect\""),
        );
        return response;
    }
    if content_type(&headers).map(|t| t.split(';').next().unwrap_or_default().trim())
        != Some("application/x-www-form-urlencoded")
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let form = match parse_form(&body) {
        Ok(form) => form,
        Err(why) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &why),
    };
    match shared.grant(&form) {
        Ok(token) => token_response(&token, form.get("scope")),
        Err((status, error, why)) => oauth_error(status, error, &why),
    }
}

/// The form's fields; a field twice is an error (RFC 6749 §3.2).
fn parse_form(body: &[u8]) -> Result<std::collections::HashMap<String, String>, String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|e| format!("the form does not parse: {e}"))?;
    let mut form = std::collections::HashMap::new();
    for (name, value) in pairs {
        if form.insert(name.clone(), value).is_some() {
            return Err(format!("`{name}` given twice"));
        }
    }
    Ok(form)
}

type GrantError = (StatusCode, &'static str, String);

impl Shared {
    /// A new access token for a valid client credentials request.
    fn grant(
        &self,
        form: &std::collections::HashMap<String, String>,
    ) -> Result<String, GrantError> {
        let field = |name: &str| form.get(name).map(String::as_str);
        match field("grant_type") {
            Some("client_credentials") => {}
            Some(other) => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    format!("grant_type {other:?} is not supported"),
                ))
            }
            None => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "grant_type missing".into(),
                ))
            }
        }
        if field("client_id") != Some(self.client_id.as_str())
            || field("client_secret") != Some(self.client_secret.as_str())
        {
            return Err((
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "unknown client or wrong secret".into(),
            ));
        }
        if let Some(scope) = field("scope") {
            self.check_scope(scope)?;
        }
        let token = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let expiry = Instant::now() + Duration::from_secs(TOKEN_LIFETIME_SECS);
        self.state().tokens.insert(token.clone(), expiry);
        Ok(token)
    }

    /// Each scope must be `subscribe:destination:<id>` of a configured
    /// destination (what a subscriber's client may be granted).
    fn check_scope(&self, scope: &str) -> Result<(), GrantError> {
        for entry in scope.split(' ').filter(|s| !s.is_empty()) {
            let known = entry
                .strip_prefix("subscribe:destination:")
                .and_then(|id| Uuid::parse_str(id).ok())
                .is_some_and(|id| self.destinations.contains_key(&id));
            if !known {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    format!("scope {entry:?} is not granted to this client"),
                ));
            }
        }
        Ok(())
    }

    /// `Ok` if `headers` carry a bearer token issued here that is valid.
    fn authorize(&self, headers: &HeaderMap) -> Result<(), String> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or("no Authorization header")?
            .to_str()
            .map_err(|_| "the Authorization header is not ASCII")?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err("the Authorization header is not a Bearer token".into()),
        };
        match self.state().tokens.get(token) {
            None => Err("the access token is unknown".into()),
            Some(expiry) if *expiry <= Instant::now() => Err("the access token has expired".into()),
            Some(_) => Ok(()),
        }
    }

    fn log(&self, method: String, path: String, status: StatusCode) {
        let status = status.as_u16();
        self.state().requests.push(LoggedRequest {
            method,
            path,
            status,
        });
    }

    fn violation(&self, what: String) {
        self.state().violations.push(what);
    }
}

fn token_response(token: &str, scope: Option<&String>) -> Response {
    let mut body = json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECS,
    });
    if let Some(scope) = scope {
        body["scope"] = json!(scope);
    }
    let mut response = json_response(StatusCode::OK, &body);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// An RFC 6749 §5.2 error.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

// ---------------------------------------------------------------------------
// Submission API
// ---------------------------------------------------------------------------

/// `GET /v1/submissions`: the submissions waiting for pickup.
async fn list_submissions(State(shared): SharedState, RawQuery(query): RawQuery) -> Response {
    let query = match parse_query(query.as_deref()) {
        Ok(query) => query,
        Err(why) => return problem(StatusCode::BAD_REQUEST, &why),
    };
    let page = match Page::from_query(&query) {
        Ok(page) => page,
        Err(why) => return problem(StatusCode::BAD_REQUEST, &why),
    };
    let destination = match query.iter().find(|(n, _)| n == "destinationId") {
        None => None,
        Some((_, id)) => match Uuid::parse_str(id) {
            Ok(id) if shared.destinations.contains_key(&id) => Some(id),
            Ok(id) => {
                let why = format!("the client may not subscribe to destination {id}");
                return problem(StatusCode::FORBIDDEN, &why);
            }
            Err(_) => return problem(StatusCode::BAD_REQUEST, "destinationId is not a UUID"),
        },
    };
    let state = shared.state();
    let waiting: Vec<Value> = state
        .submissions
        .iter()
        .filter(|s| s.outcome.is_none())
        .map(|s| &s.submission)
        .filter(|s| destination.is_none_or(|d| d == s.destination_id))
        .map(|s| {
            json!({
                "destinationId": s.destination_id,
                "submissionId": s.submission_id,
                "caseId": s.case_id,
            })
        })
        .collect();
    let (items, body) = page.apply(waiting);
    let mut body = body;
    body["submissions"] = Value::Array(items);
    json_response(StatusCode::OK, &body)
}

/// `GET /v1/submissions/{submissionId}`.
async fn get_submission(State(shared): SharedState, Path(id): Path<String>) -> Response {
    let id = match parse_uuid(&id, "submissionId") {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let state = shared.state();
    match waiting(&state, id) {
        Some(s) => json_response(StatusCode::OK, &submission_json(s)),
        None => problem(
            StatusCode::NOT_FOUND,
            &format!("no submission {id} waiting for pickup"),
        ),
    }
}

fn submission_json(s: &NewSubmission) -> Value {
    let attachments: Vec<String> = s.attachments.iter().map(|(id, _)| id.to_string()).collect();
    json!({
        "destinationId": s.destination_id,
        "submissionId": s.submission_id,
        "caseId": s.case_id,
        "attachments": attachments,
        "serviceType": { "identifier": s.service_type.0, "name": s.service_type.1 },
        "encryptedMetadata": s.encrypted_metadata,
        "encryptedData": s.encrypted_data,
    })
}

/// `GET /v1/submissions/{submissionId}/attachments/{attachmentId}`.
async fn get_attachment(
    State(shared): SharedState,
    Path((submission_id, attachment_id)): Path<(String, String)>,
) -> Response {
    let ids = parse_uuid(&submission_id, "submissionId")
        .and_then(|s| parse_uuid(&attachment_id, "attachmentId").map(|a| (s, a)));
    let (submission_id, attachment_id) = match ids {
        Ok(ids) => ids,
        Err(response) => return *response,
    };
    let state = shared.state();
    let jwe = waiting(&state, submission_id).and_then(|s| {
        s.attachments
            .iter()
            .find(|(id, _)| *id == attachment_id)
            .map(|(_, jwe)| jwe.clone())
    });
    match jwe {
        Some(jwe) => ([(header::CONTENT_TYPE, "application/jose")], jwe).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            &format!(
                "no attachment {attachment_id} of a submission {submission_id} waiting for pickup"
            ),
        ),
    }
}

/// `GET /v1/cases/{caseId}/events`: the case's event log.
async fn get_events(
    State(shared): SharedState,
    Path(case_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let case_id = match parse_uuid(&case_id, "caseId") {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let page = match parse_query(query.as_deref()).and_then(|q| Page::from_query(&q)) {
        Ok(page) => page,
        Err(why) => return problem(StatusCode::BAD_REQUEST, &why),
    };
    let state = shared.state();
    let Some(log) = state.event_logs.get(&case_id) else {
        return problem(StatusCode::NOT_FOUND, &format!("no case {case_id}"));
    };
    let log: Vec<Value> = log.iter().map(|set| Value::String(set.clone())).collect();
    let (items, mut body) = page.apply(log);
    body["eventLog"] = Value::Array(items);
    json_response(StatusCode::OK, &body)
}

/// `POST /v1/cases/{caseId}/events`: a subscriber's SET.
async fn post_event(
    State(shared): SharedState,
    Path(case_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let compact = String::from_utf8_lossy(&body).trim().to_owned();
    let refuse = |status: StatusCode, reason: String| {
        shared.state().refused.push(RefusedEvent {
            case_id: case_id.clone(),
            status: status.as_u16(),
            reason: reason.clone(),
            compact: compact.clone(),
        });
        problem(status, &reason)
    };
    let media_type = content_type(&headers).and_then(|t| t.split(';').next());
    if media_type.map(str::trim) != Some("application/jose") {
        let why = format!("a SET is sent as application/jose, not as {media_type:?}");
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, why);
    }
    let Ok(case) = Uuid::parse_str(&case_id) else {
        return refuse(StatusCode::BAD_REQUEST, "caseId is not a UUID".into());
    };
    let mut state = shared.state();
    let outcome = take_event(&shared, &mut state, case, &compact);
    drop(state);
    match outcome {
        Ok(()) if shared.lose_answer() => lost_answer(),
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err((status, reason)) => refuse(status, reason),
    }
}

/// Marks a response a test asked for that the document does not declare,
/// so the referee leaves it alone.
#[derive(Clone, Copy)]
struct Injected;

/// The answer to an event taken into the log whose 204 is to be lost.
fn lost_answer() -> Response {
    let mut response = problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the event is in the log, but this answer is lost (a fault the test asked for)",
    );
    response.extensions_mut().insert(Injected);
    response
}

/// Checks the SET and, if it is good and the submission still waits,
/// records it and takes the submission off the pickup list.
fn take_event(
    shared: &Shared,
    state: &mut Inner,
    case_id: Uuid,
    compact: &str,
) -> Result<(), (StatusCode, String)> {
    let case: Vec<&NewSubmission> = state
        .submissions
        .iter()
        .map(|s| &s.submission)
        .filter(|s| s.case_id == case_id)
        .collect();
    if case.is_empty() {
        return Err((StatusCode::NOT_FOUND, format!("no case {case_id}")));
    }
    let checked = sets::check(compact, case_id, &case, &shared.destinations)
        .map_err(|why| (StatusCode::UNPROCESSABLE_ENTITY, why))?;
    let stored = state
        .submissions
        .iter_mut()
        .find(|s| s.submission.submission_id == checked.submission_id)
        .expect("sets::check found it in the case");
    if let Some(done) = stored.outcome {
        return Err((
            StatusCode::CONFLICT,
            format!(
                "submission {} was already {}: invalid state transition",
                checked.submission_id,
                if done == super::EventKind::Accept {
                    "accepted"
                } else {
                    "rejected"
                }
            ),
        ));
    }
    stored.outcome = Some(checked.kind);
    state
        .event_logs
        .entry(case_id)
        .or_default()
        .push(compact.to_owned());
    state.posted.push(PostedEvent {
        case_id,
        submission_id: checked.submission_id,
        kind: checked.kind,
        claims: checked.claims,
        compact: compact.to_owned(),
    });
    Ok(())
}

/// `GET /.well-known/jwks.json`: the stand-in's own public key.
async fn jwks(State(shared): SharedState) -> Response {
    json_response(StatusCode::OK, &shared.own_jwks)
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `limit` and `offset` of a list request.
struct Page {
    limit: usize,
    offset: usize,
}

impl Page {
    fn from_query(query: &[(String, String)]) -> Result<Page, String> {
        let number = |name: &str, default: usize| -> Result<usize, String> {
            match query.iter().find(|(n, _)| n == name) {
                None => Ok(default),
                Some((_, v)) => v
                    .parse()
                    .map_err(|_| format!("{name} {v:?} is not a non-negative integer")),
            }
        };
        let limit = number("limit", DEFAULT_LIMIT)?;
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(format!("limit {limit} is not between 1 and {MAX_LIMIT}"));
        }
        Ok(Page {
            limit,
            offset: number("offset", 0)?,
        })
    }

    /// This page of `all`, and the body with `count`, `offset`, `totalCount`.
    fn apply(&self, all: Vec<Value>) -> (Vec<Value>, Value) {
        let total = all.len();
        let items: Vec<Value> = all.into_iter().skip(self.offset).take(self.limit).collect();
        let body = json!({ "count": items.len(), "offset": self.offset, "totalCount": total });
        (items, body)
    }
}

/// The submission `id` if it still waits for pickup.
fn waiting(state: &Inner, id: Uuid) -> Option<&NewSubmission> {
    state
        .submissions
        .iter()
        .find(|s: &&Stored| s.submission.submission_id == id && s.outcome.is_none())
        .map(|s| &s.submission)
}

fn parse_query(query: Option<&str>) -> Result<Vec<(String, String)>, String> {
    serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|e| format!("the query does not parse: {e}"))
}

/// A UUID from the path, or the 400 problem.
fn parse_uuid(text: &str, name: &str) -> Result<Uuid, Box<Response>> {
    Uuid::parse_str(text).map_err(|_| {
        Box::new(problem(
            StatusCode::BAD_REQUEST,
            &format!("{name} is not a UUID"),
        ))
    })
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// An RFC 7807 problem (the document's `Error`).
fn problem(status: StatusCode, detail: &str) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// 401 with the RFC 6750 challenge.
fn unauthorized(why: &str) -> Response {
    let mut response = problem(StatusCode::UNAUTHORIZED, why);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    response
}
