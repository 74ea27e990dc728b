//! Login, logout and sessions.
//!
//! - Passwords: argon2id (the `argon2` crate's defaults), verified off the
//!   async threads. An unknown name costs as much as a wrong password.
//! - Sessions: a random 256-bit token in the `bridge_session` cookie
//!   (HttpOnly, SameSite=Strict, Path=/, Secure when configured); the
//!   database holds its SHA-256. Idle and absolute timeouts from `[web]`.
//! - Failed logins: counted per account and per client address. Each
//!   failure answers more slowly (slow-down); from [`LOCK_AFTER`] failures
//!   an account is locked for [`LOCK_MINUTES`] (a name without an account
//!   too, in `name_failures`, so a lock does not tell which names exist),
//!   and an address with [`ADDRESS_LIMIT`] failures, each within that time
//!   of the one before, is refused. A success clears the account's and the
//!   address's count; a refusal because of a lock counts nothing (so a lock
//!   ends on time however often it is retried); an account's or name's
//!   count is forgotten a day after its last failure
//!   (`allegro_store::users::FAILURE_MEMORY`).
//! - Audit: `login`, `logout`, `login_failed`; no password and nothing
//!   personal is ever logged.

use std::net::SocketAddr;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use allegro_store::audit::{Action, NewAudit};
use allegro_store::users::{Role, User};

use super::error::WebError;
use super::layout::{FieldError, Layout};
use super::state::WorkbenchState;

/// The session cookie.
pub const SESSION_COOKIE: &str = "bridge_session";
/// The cookie carrying the login form's CSRF token (before there is a session).
pub const LOGIN_COOKIE: &str = "bridge_login";
/// Failed logins after which an account is locked.
pub const LOCK_AFTER: i32 = 5;
/// How long a lock lasts, and the window of the per-address count.
pub const LOCK_MINUTES: i64 = 15;
/// Failed logins from one address, each within [`LOCK_MINUTES`] of the one
/// before, after which it is refused.
pub const ADDRESS_LIMIT: i32 = 20;

/// Hashes a password with argon2id (random salt, the crate's default
/// parameters); the PHC string to store.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Whether `password` matches the stored PHC string.
pub fn verify_password(password: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// A hash nobody's password matches, verified for unknown names so that
/// they take as long as a wrong password.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password(&random_token()).unwrap_or_default())
}

/// 32 random bytes, hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random source");
    hex::encode(b)
}

/// SHA-256 hex of a session token, or of a name without an account: what
/// the database keeps of either.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(
    cfg: &super::WebConfig,
    name: &str,
    value: &str,
    max_age: Option<i64>,
) -> HeaderValue {
    cookie_header(
        cfg,
        &format!("{name}={value}; SameSite=Strict; Path=/"),
        max_age,
    )
}

/// `Set-Cookie` for `pairs` (`name=value` with its `SameSite` and `Path`):
/// always `HttpOnly`, `Secure` with `web.secure_cookies`, and `Max-Age`
/// when given. Every cookie of the workbench is made here.
pub(super) fn cookie_header(
    cfg: &super::WebConfig,
    pairs: &str,
    max_age: Option<i64>,
) -> HeaderValue {
    let mut c = format!("{pairs}; HttpOnly");
    if cfg.secure_cookies {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).expect("cookie values are hex")
}

/// The logged-in user of a request behind login, and its session's CSRF token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub csrf: String,
    pub token_hash: String,
}

impl Caller {
    /// The page frame for this user.
    pub fn layout(&self) -> Layout {
        Layout::for_user(self)
    }

    pub fn is_admin(&self) -> bool {
        self.user.has(Role::Administration)
    }

    /// Whether this user works cases (sees the case list, Mitwirkung and
    /// applications): caseworkers and administration; `leitung` alone does not.
    pub fn works_cases(&self) -> bool {
        self.is_admin() || self.user.has(Role::Sachbearbeitung)
    }

    /// Whose Kennzahlen this user may see: administration all,
    /// `leitung` its own Dienststellen; anyone else none.
    pub fn kennzahlen_scope(&self) -> Option<allegro_store::cases::Scope> {
        use allegro_store::cases::Scope;
        if self.is_admin() {
            Some(Scope::All)
        } else if self.user.has(Role::Leitung) {
            Some(Scope::Dienststellen(self.user.dienststellen.clone()))
        } else {
            None
        }
    }

    /// Which cases this user may see.
    pub fn scope(&self) -> allegro_store::cases::Scope {
        use allegro_store::cases::Scope;
        if self.is_admin() {
            Scope::All
        } else if self.user.has(Role::Sachbearbeitung) {
            Scope::Dienststellen(self.user.dienststellen.clone())
        } else {
            Scope::Dienststellen(vec![])
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, Response> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Redirect::to("/anmelden").into_response())
    }
}

/// Whether a session is past its idle or absolute timeout at `now`.
fn expired(
    cfg: &super::WebConfig,
    created: DateTime<Utc>,
    seen: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    now - seen > Duration::minutes(i64::from(cfg.session_idle_minutes))
        || now - created > Duration::hours(i64::from(cfg.session_absolute_hours))
}

/// Middleware: a valid session puts its [`Caller`] on the request; anything
/// else is answered with 303 to `/anmelden`.
pub async fn require_login(
    State(state): State<WorkbenchState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(token) = cookie(req.headers(), SESSION_COOKIE) else {
        return Redirect::to("/anmelden").into_response();
    };
    let hash = token_hash(token);
    let session = match state.store.session(&hash).await {
        Ok(s) => s,
        Err(e) => return WebError::from(e).into_response(),
    };
    let now = Utc::now();
    let Some(s) = session else {
        return Redirect::to("/anmelden").into_response();
    };
    if s.user.disabled || expired(&state.config, s.created_at, s.last_seen_at, now) {
        let _ = state.store.delete_session(&hash).await;
        return Redirect::to("/anmelden").into_response();
    }
    // One write per half minute at most.
    if now - s.last_seen_at > Duration::seconds(30) {
        if let Err(e) = state.store.touch_session(&hash, now).await {
            return WebError::from(e).into_response();
        }
    }
    req.extensions_mut().insert(Caller {
        user: s.user,
        csrf: s.csrf_token,
        token_hash: hash,
    });
    next.run(req).await
}

/// The login page.
#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub layout: Layout,
    pub name: String,
    pub errors: Vec<FieldError>,
    /// A message for the whole form (wrong password, locked).
    pub problem: Option<String>,
    /// Whether the form for local accounts is shown (`web.local_login`).
    pub local: bool,
    /// Whether the button to the jobcenter's OpenID provider is shown.
    pub provider: bool,
}

impl LoginPage {
    fn error_for(&self, field: &str) -> Option<&FieldError> {
        self.errors.iter().find(|e| e.field == field)
    }
}

/// GET /anmelden: the form (with a fresh login CSRF cookie when needed).
pub async fn login_page(State(state): State<WorkbenchState>, headers: HeaderMap) -> Response {
    let token = cookie(&headers, LOGIN_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string);
    let fresh = token.is_none();
    let token = token.unwrap_or_else(random_token);
    let page = LoginPage {
        layout: Layout::anonymous(&token),
        name: String::new(),
        errors: vec![],
        problem: None,
        local: state.config.local_login,
        provider: state.oidc.is_some(),
    };
    let mut resp = page.into_response();
    if fresh {
        resp.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(&state.config, LOGIN_COOKIE, &token, None),
        );
    }
    resp
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    benutzername: String,
    #[serde(default)]
    passwort: String,
}

/// The client's address (for the per-address count), or `unbekannt`.
fn client_address(req_ext: Option<&ConnectInfo<SocketAddr>>) -> String {
    req_ext.map_or_else(|| "unbekannt".into(), |c| c.0.ip().to_string())
}

/// POST /anmelden.
pub async fn login(
    State(state): State<WorkbenchState>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    let csrf = cookie(&headers, LOGIN_COOKIE)
        .unwrap_or_default()
        .to_string();
    let address = client_address(connect.as_ref().map(|c| &c.0));
    let name = form.benutzername.trim().to_string();
    let again = |errors: Vec<FieldError>, problem: Option<String>, status: StatusCode| {
        let page = LoginPage {
            layout: Layout::anonymous(&csrf).with_error_title(),
            name: name.clone(),
            errors,
            problem,
            local: state.config.local_login,
            provider: state.oidc.is_some(),
        };
        (status, page).into_response()
    };
    if !state.config.local_login {
        state
            .store
            .audit(
                &NewAudit::new("-", Action::LoginFailed, None)
                    .detail("lokale Anmeldung abgeschaltet"),
                Utc::now(),
            )
            .await?;
        let problem = "Die Anmeldung mit lokalem Konto ist abgeschaltet. \
                       Bitte melden Sie sich mit Ihrem Dienstkonto an.";
        return Ok(again(vec![], Some(problem.into()), StatusCode::FORBIDDEN));
    }

    let mut errors = vec![];
    if name.is_empty() {
        errors.push(FieldError::new(
            "benutzername",
            "Bitte geben Sie Ihren Benutzernamen ein.",
        ));
    }
    if form.passwort.is_empty() {
        errors.push(FieldError::new(
            "passwort",
            "Bitte geben Sie Ihr Passwort ein.",
        ));
    }
    if !errors.is_empty() {
        return Ok(again(errors, None, StatusCode::UNPROCESSABLE_ENTITY));
    }

    let checked = check_login(&state, &name, &form.passwort, &address).await?;
    Ok(match checked {
        Ok(user) => {
            // A session this browser still held ends here: one login, one session.
            if let Some(old) = cookie(&headers, SESSION_COOKIE) {
                state.store.delete_session(&token_hash(old)).await?;
            }
            start_session(&state, &user, SignedIn::Password).await?
        }
        // A wrong name or password is an error of the form: in the error
        // summary, linked to the password field and beside it (which of the
        // two is wrong is not told). A lock is a state, not an input error.
        Err(Refusal::Wrong) => again(
            vec![FieldError::new("passwort", &Refusal::Wrong.message())],
            None,
            Refusal::Wrong.status(),
        ),
        Err(refusal) => again(vec![], Some(refusal.message()), refusal.status()),
    })
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Unknown name, wrong password or disabled account (not told apart).
    Wrong,
    /// The account or the address is locked for a while.
    Locked,
}

impl Refusal {
    fn message(self) -> String {
        match self {
            Refusal::Wrong => "Benutzername oder Passwort ist falsch.".into(),
            Refusal::Locked => format!(
                "Die Anmeldung ist nach mehreren Fehlversuchen vorübergehend gesperrt. \
                 Bitte versuchen Sie es in {LOCK_MINUTES} Minuten erneut."
            ),
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Refusal::Wrong => StatusCode::UNAUTHORIZED,
            Refusal::Locked => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// Password checks running at once: each takes about 19 MiB and most of a
/// core (Argon2id), so a flood of logins queues here instead of exhausting
/// the machine.
const CONCURRENT_CHECKS: usize = 2;

/// [`verify_password`] on the blocking pool, at most [`CONCURRENT_CHECKS`] at once.
async fn verify_limited(password: String, hash: String) -> bool {
    static PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_CHECKS);
    let Ok(_permit) = PERMITS.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

/// Checks name and password against locks and the stored hash; counts a
/// failure (and slows the answer down) when they do not pass.
async fn check_login(
    state: &WorkbenchState,
    name: &str,
    password: &str,
    address: &str,
) -> Result<Result<User, Refusal>, allegro_store::StoreError> {
    let store = &state.store;
    let now = Utc::now();
    let window = Duration::minutes(LOCK_MINUTES);
    let (from_address, last) = store.address_failures(address).await?;
    let address_locked = from_address >= ADDRESS_LIMIT && last.is_some_and(|t| now - t < window);
    // A provider's account has no password here: its name is treated as
    // one without an account (counted and locked by its hash, not on it).
    let user = store
        .user_by_name(name)
        .await?
        .filter(|u| u.password_hash().is_some());
    // A name without an account is counted and locked by its hash.
    let name_key = token_hash(name);
    let locked_until = match &user {
        Some(u) => u.locked_until,
        None => store.name_locked_until(&name_key).await?,
    };
    let account_locked = locked_until.is_some_and(|until| until > now);

    // A locked account or address gets no password check at all: a flood of
    // guesses then costs no hashing.
    let matches = if address_locked || account_locked {
        false
    } else {
        let hash = user
            .as_ref()
            .and_then(User::password_hash)
            .unwrap_or_else(|| dummy_hash())
            .to_string();
        verify_limited(password.to_string(), hash).await
    };

    let refusal = match &user {
        _ if address_locked || account_locked => Some(Refusal::Locked),
        Some(u) if matches && !u.disabled => None,
        _ => Some(Refusal::Wrong),
    };
    let Some(refusal) = refusal else {
        let u = user.expect("a match needs an account");
        // The address's count too: behind a reverse proxy every client has
        // its address, and the typos of a whole office must not add up to a
        // lock; guessing at one account stays bounded by its own lock.
        store.clear_user_failures(u.id).await?;
        store.clear_address_failures(address).await?;
        return Ok(Ok(u));
    };

    let failures = if refusal == Refusal::Locked {
        // Refused without a look at the password: nothing new to count, and
        // counting would keep a lock going for as long as anyone retries.
        // The answer comes as late as it can.
        ADDRESS_LIMIT
    } else {
        count_failure(store, user.as_ref(), &name_key, address, now).await?
    };
    let actor = user.as_ref().map_or("-", |u| u.name.as_str());
    let detail = match (&user, refusal) {
        (_, Refusal::Locked) => "gesperrt",
        (None, _) => "unbekannter Benutzername",
        (Some(u), _) if u.disabled => "Konto deaktiviert",
        _ => "falsches Passwort",
    };
    store
        .audit(
            &NewAudit::new(actor, Action::LoginFailed, None).detail(detail),
            now,
        )
        .await?;
    tracing::info!(failures, "workbench login refused");
    // The slow-down: each failure in a row answers later (at most 3 s).
    let delay = 250 * u64::try_from(failures.clamp(1, 12)).unwrap_or(1);
    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    Ok(Err(refusal))
}

/// Counts a failed login for the address and the account (or the name
/// without one); returns the larger count.
async fn count_failure(
    store: &allegro_store::Store,
    user: Option<&User>,
    name_key: &str,
    address: &str,
    now: DateTime<Utc>,
) -> Result<i32, allegro_store::StoreError> {
    let window = Duration::minutes(LOCK_MINUTES);
    let from_address = store.record_address_failure(address, now, window).await?;
    let own = match user {
        Some(u) => {
            store
                .record_user_failure(u.id, now, LOCK_AFTER, window)
                .await?
        }
        None => {
            store
                .record_name_failure(name_key, now, LOCK_AFTER, window)
                .await?
        }
    };
    Ok(from_address.max(own))
}

/// The login page with a message for the whole form (a refused sign-on).
pub fn login_page_with_problem(
    state: &WorkbenchState,
    problem: &str,
    status: StatusCode,
) -> Response {
    let token = random_token();
    let page = LoginPage {
        layout: Layout::anonymous(&token),
        name: String::new(),
        errors: vec![],
        problem: Some(problem.into()),
        local: state.config.local_login,
        provider: state.oidc.is_some(),
    };
    let mut resp = (status, page).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state.config, LOGIN_COOKIE, &token, None),
    );
    resp
}

/// A page that moves the browser on at once (`<meta http-equiv="refresh">`,
/// no script, with a link for a browser that does not). Used where a
/// redirect would not do: after the sign-on the browser comes from the
/// provider's site, and a redirect would carry that cross-site navigation on,
/// in which the `SameSite=Strict` session cookie is not sent; and from a
/// form on to the provider, where a redirect to another origin would be held
/// to the CSP's `form-action 'self'` (a refresh is a navigation of its own).
#[derive(Template, WebTemplate)]
#[template(path = "forward.html")]
pub struct ForwardPage {
    pub layout: Layout,
    pub heading: &'static str,
    pub text: &'static str,
    pub link: &'static str,
    pub target: String,
}

/// How a session's user signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedIn {
    /// With name and password (a local account).
    Password,
    /// Through the OpenID provider, with the ID token it issued (kept with
    /// the session as the logout's `id_token_hint`).
    Provider { id_token: String },
}

impl SignedIn {
    /// The login's detail in the audit log.
    fn audit_detail(&self) -> &'static str {
        match self {
            SignedIn::Password => "Passwort",
            SignedIn::Provider { .. } => "OIDC",
        }
    }
}

/// A new session for `user`, signed in `how`: cookie set, audited, on to
/// the case list.
pub async fn start_session(
    state: &WorkbenchState,
    user: &User,
    how: SignedIn,
) -> Result<Response, WebError> {
    let token = random_token();
    let hash = token_hash(&token);
    let now = Utc::now();
    let store = &state.store;
    let (idle, absolute) = (
        Duration::minutes(i64::from(state.config.session_idle_minutes)),
        Duration::hours(i64::from(state.config.session_absolute_hours)),
    );
    // Sessions nobody ended (a closed browser) go at the next login.
    store
        .delete_expired_sessions(now - idle, now - absolute)
        .await?;
    store
        .create_session(&hash, user.id, &random_token(), now)
        .await?;
    if let SignedIn::Provider { id_token } = &how {
        store.set_session_id_token(&hash, id_token).await?;
    }
    store
        .audit(
            &NewAudit::new(&user.name, Action::Login, None).detail(how.audit_detail()),
            now,
        )
        .await?;
    tracing::info!("workbench login");
    // Caseworkers start on the cases, `leitung` alone on the Kennzahlen.
    let start = if user.has(Role::Sachbearbeitung) || user.has(Role::Administration) {
        "/faelle"
    } else {
        "/kennzahlen"
    };
    let mut resp = if matches!(how, SignedIn::Provider { .. }) {
        ForwardPage {
            layout: Layout::anonymous(""),
            heading: "Angemeldet",
            text: "Sie sind mit Ihrem Dienstkonto angemeldet.",
            link: "Weiter zur Werkbank",
            target: start.into(),
        }
        .into_response()
    } else {
        Redirect::to(start).into_response()
    };
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&state.config, SESSION_COOKIE, &token, None),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&state.config, LOGIN_COOKIE, "", Some(0)),
    );
    Ok(resp)
}

/// POST /abmelden: the session ends, then the login page (or, for an
/// account of the OpenID provider, the provider's end-session endpoint,
/// which comes back to the login page).
pub async fn logout(
    State(state): State<WorkbenchState>,
    caller: Caller,
) -> Result<Response, WebError> {
    let now = Utc::now();
    // The ID token of a sign-on, read before its session goes.
    let hint = match &caller.user.sign_in {
        allegro_store::users::SignIn::Provider(_) => {
            state.store.session_id_token(&caller.token_hash).await?
        }
        allegro_store::users::SignIn::Password(_) => None,
    };
    state.store.delete_session(&caller.token_hash).await?;
    state
        .store
        .audit(&NewAudit::new(&caller.user.name, Action::Logout, None), now)
        .await?;
    let provider_logout = match (&caller.user.sign_in, &state.oidc) {
        (allegro_store::users::SignIn::Provider(_), Some(p)) => {
            p.end_session_url(hint.as_deref()).await
        }
        _ => None,
    };
    let mut resp = match provider_logout {
        Some(target) => ForwardPage {
            layout: Layout::anonymous(""),
            heading: "Abgemeldet",
            text: "Sie sind von der Werkbank abgemeldet; nun meldet Sie auch der Anmeldedienst ab.",
            link: "Weiter zum Anmeldedienst",
            target,
        }
        .into_response(),
        None => Redirect::to("/anmelden").into_response(),
    };
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state.config, SESSION_COOKIE, "", Some(0)),
    );
    Ok(resp)
}
