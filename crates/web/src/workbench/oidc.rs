//! Single sign-on (issue #24): the workbench as an OpenID Connect relying
//! party of the jobcenter's identity provider (Keycloak, ADFS, Entra ID).
//!
//! - `[web.oidc]` ([`OidcConfig`]): the issuer, the client, the claims that
//!   name the user and carry its groups, and which group grants which role
//!   and Dienststellen (`[[web.oidc.group]]`).
//! - The flow: POST `/anmelden/oidc` stores a login (state, PKCE verifier,
//!   nonce; bound to the browser by the `bridge_oidc` cookie) and sends the
//!   browser to the provider; GET `/anmelden/oidc/rueckkehr` takes the login
//!   out of the store (so a replayed state finds nothing), redeems the code
//!   with the PKCE verifier, and has `openidconnect` check the ID token
//!   (signature against the provider's JWKS, issuer, audience, nonce,
//!   expiry). The groups then give roles and Dienststellen, set anew on
//!   the account at every login; no group that maps means no login.
//! - Logout ends the local session and, where the provider offers an
//!   end-session endpoint, sends the browser there too.
//!
//! Every refusal is audited (`login_failed`, "OIDC: ..."); no token, code
//! or claim value is logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::Utc;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJwsSigningAlgorithm,
};
use openidconnect::url;
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, EndSessionUrl,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, LogoutRequest, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout,
    RedirectUrl, Scope, SignatureVerificationError, TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::str::FromStr as _;

use allegro_store::audit::{Action, NewAudit};
use allegro_store::oidc::{AccountRefused, PendingLogin, ProviderAccount, LOGIN_VALID_FOR};
use allegro_store::users::{Role, User};

use super::auth::{self, cookie, random_token, token_hash};
use super::error::WebError;
use super::state::WorkbenchState;

/// The path the provider sends the browser back to.
pub const CALLBACK_PATH: &str = "/anmelden/oidc/rueckkehr";
/// The cookie binding a login under way to the browser that started it.
pub const BROWSER_COOKIE: &str = "bridge_oidc";
/// How long the provider's discovery document and keys are kept.
const METADATA_TTL: Duration = Duration::from_secs(600);
/// How soon after a fetch an unknown signing key may fetch the keys again.
const FORCED_REFRESH_AFTER: Duration = Duration::from_secs(30);
/// The signature algorithms an ID token may use: asymmetric only, so only
/// the provider's keys (its JWKS) can sign one, never the client secret.
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 10] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EcdsaP521Sha512,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// `[web.oidc]`: sign-on through the jobcenter's OpenID provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    pub enabled: bool,
    /// The issuer (`https://idp.example/realms/jobcenter`); its
    /// `/.well-known/openid-configuration` names the endpoints and keys.
    pub issuer: String,
    pub client_id: String,
    /// File holding the client secret (a systemd credential); empty for a
    /// public client (PKCE is used either way).
    pub client_secret_file: Option<std::path::PathBuf>,
    /// The secret read from `client_secret_file` at start (never printed).
    #[serde(skip)]
    pub client_secret: Option<ClientSecretText>,
    /// The workbench's address as the browser sees it, ending in
    /// `/anmelden/oidc/rueckkehr` (registered at the provider).
    pub redirect_url: String,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// The claim naming the user (shown and audited), e.g.
    /// `preferred_username` (Keycloak) or `upn` (ADFS). A dotted path
    /// reaches into objects.
    pub name_claim: String,
    /// The claim listing the user's groups or roles, e.g. `groups`,
    /// `realm_access.roles` (Keycloak) or `role` (ADFS); a string or a list.
    pub groups_claim: String,
    /// Which group grants what; a user in several gets all of them.
    #[serde(rename = "group")]
    pub groups: Vec<GroupGrant>,
    /// Seconds to wait for the provider.
    pub timeout_secs: u64,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            enabled: false,
            issuer: String::new(),
            client_id: String::new(),
            client_secret_file: None,
            client_secret: None,
            redirect_url: String::new(),
            scopes: vec!["profile".into()],
            name_claim: "preferred_username".into(),
            groups_claim: "groups".into(),
            groups: vec![],
            timeout_secs: 10,
        }
    }
}

/// The client secret: compared and cloned like a string, never shown
/// (`Debug` prints `***`).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecretText(pub String);

impl std::fmt::Debug for ClientSecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// `[[web.oidc.group]]`: what membership in one group grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupGrant {
    /// The group's value in the groups claim.
    pub value: String,
    /// `sachbearbeitung`, `administration`, `leitung`.
    pub roles: Vec<String>,
    /// The Dienststellen whose cases (or Kennzahlen) it opens.
    #[serde(default)]
    pub dienststellen: Vec<String>,
}

impl OidcConfig {
    /// What is wrong with the values (empty: fine, or off).
    pub fn validate(&self) -> Vec<String> {
        if !self.enabled {
            return vec![];
        }
        let mut problems = Vec::new();
        match url::Url::parse(&self.issuer) {
            Ok(u) if u.scheme() == "https" || is_loopback(&u) => {}
            Ok(_) => problems.push(format!(
                "web.oidc.issuer `{}` must be https:// (plain http only to a loopback address)",
                self.issuer
            )),
            Err(e) => problems.push(format!(
                "web.oidc.issuer `{}` is not a URL: {e}",
                self.issuer
            )),
        }
        if self.client_id.is_empty() {
            problems.push("web.oidc.client_id is empty".into());
        }
        match url::Url::parse(&self.redirect_url) {
            Ok(u) if u.path() == CALLBACK_PATH && (u.scheme() == "https" || is_loopback(&u)) => {}
            _ => problems.push(format!(
                "web.oidc.redirect_url `{}` must be the workbench's absolute https:// URL \
                 (http only on a loopback address) ending in {CALLBACK_PATH}",
                self.redirect_url
            )),
        }
        if self.groups.is_empty() {
            problems.push(
                "web.oidc: no [[web.oidc.group]], so nobody could log in; map at least one group"
                    .into(),
            );
        }
        for (i, g) in self.groups.iter().enumerate() {
            if g.roles.is_empty() {
                problems.push(format!("web.oidc.group[{i}] `{}`: roles is empty", g.value));
            }
            for r in &g.roles {
                if let Err(e) = r.parse::<Role>() {
                    problems.push(format!("web.oidc.group[{i}] `{}`: {e}", g.value));
                }
            }
        }
        problems
    }

    /// Roles and Dienststellen granted to members of `groups` (sorted,
    /// without repeats); no roles when no group maps.
    pub fn grants(&self, groups: &[String]) -> (Vec<Role>, Vec<String>) {
        let mut roles = Vec::new();
        let mut dienststellen = Vec::new();
        for g in self.groups.iter().filter(|g| groups.contains(&g.value)) {
            roles.extend(g.roles.iter().filter_map(|r| r.parse::<Role>().ok()));
            dienststellen.extend(g.dienststellen.iter().cloned());
        }
        roles.sort();
        roles.dedup();
        dienststellen.sort();
        dienststellen.dedup();
        (roles, dienststellen)
    }

    /// Where the provider sends the browser after its logout: the login page.
    fn post_logout_url(&self) -> Option<String> {
        let mut u = url::Url::parse(&self.redirect_url).ok()?;
        u.set_path("/anmelden");
        u.set_query(None);
        Some(u.to_string())
    }
}

fn is_loopback(u: &url::Url) -> bool {
    u.host_str().is_some_and(allegro_store::is_loopback)
}

/// The client as built from the provider's metadata.
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What a failed exchange with the provider is, for the audit and the page.
#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error("request to the provider failed: {0}")]
    Request(#[from] reqwest::Error),
    #[error("the provider's answer could not be read: {0}")]
    Response(#[from] axum::http::Error),
}

/// `openidconnect`'s HTTP through our reqwest (0.13, rustls): the crate's
/// own reqwest support is for an older reqwest.
struct Http(reqwest::Client);

type HttpFuture<'c> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<openidconnect::HttpResponse, HttpError>>
            + Send
            + 'c,
    >,
>;

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = HttpFuture<'c>;

    fn call(&'c self, req: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let resp = self
                .0
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut out = axum::http::Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                out = out.header(k, v);
            }
            let bytes = resp.bytes().await?;
            Ok(out.body(bytes.to_vec())?)
        })
    }
}

/// The provider's metadata and keys as last fetched.
type Metadata = Arc<ProviderMetadataWithLogout>;

/// The provider at runtime: its settings, an HTTP client and its metadata
/// (discovered on first use and again after [`METADATA_TTL`] or when a
/// token's key is unknown). No lock is held while the provider is asked;
/// one fetch runs at a time, and when it fails the last copy serves on.
pub struct Provider {
    cfg: OidcConfig,
    http: Http,
    cached: std::sync::RwLock<Option<(Instant, Metadata)>>,
    fetching: tokio::sync::Mutex<()>,
}

impl Provider {
    /// The provider of `[web.oidc]`, or `None` when sign-on is off.
    pub fn from_config(cfg: &OidcConfig) -> anyhow::Result<Option<Arc<Provider>>> {
        if !cfg.enabled {
            return Ok(None);
        }
        let http = reqwest::Client::builder()
            // A provider's answer is never a redirect to follow (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            // A connection is not kept between logins: an idle one the
            // provider has closed meanwhile would fail the next request.
            .pool_max_idle_per_host(0)
            .build()?;
        Ok(Some(Arc::new(Provider {
            cfg: cfg.clone(),
            http: Http(http),
            cached: std::sync::RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })))
    }

    fn cached(&self) -> Option<(Instant, Metadata)> {
        self.cached.read().ok().and_then(|c| c.clone())
    }

    /// The provider's metadata and keys: the copy at hand while it is
    /// younger than [`METADATA_TTL`] (or, when `fresh` is asked for because
    /// a key was unknown, younger than [`FORCED_REFRESH_AFTER`]), else
    /// fetched anew; when that fails, the last copy if there is one.
    async fn metadata(&self, fresh: bool) -> Result<Metadata, String> {
        let max_age = if fresh {
            FORCED_REFRESH_AFTER
        } else {
            METADATA_TTL
        };
        let asked = Instant::now();
        if let Some((_, md)) = self.cached().filter(|(at, _)| at.elapsed() < max_age) {
            return Ok(md);
        }
        let _one = self.fetching.lock().await;
        // Fetched by another request while this one waited.
        if let Some((_, md)) = self.cached().filter(|(at, _)| *at >= asked) {
            return Ok(md);
        }
        let issuer = IssuerUrl::new(self.cfg.issuer.clone()).map_err(|e| e.to_string())?;
        match ProviderMetadataWithLogout::discover_async(issuer, &self.http).await {
            Ok(md) => {
                let md = Arc::new(md);
                if let Ok(mut c) = self.cached.write() {
                    *c = Some((Instant::now(), Arc::clone(&md)));
                }
                Ok(md)
            }
            Err(e) => {
                tracing::warn!(error = %e, "the OpenID provider's metadata could not be fetched");
                self.cached()
                    .map(|(_, md)| md)
                    .ok_or_else(|| "Anbieter nicht erreichbar".to_string())
            }
        }
    }

    /// The client for the provider's metadata (fetched anew when `fresh`,
    /// see [`Provider::metadata`]).
    async fn client(&self, fresh: bool) -> Result<Client, String> {
        let md = self.metadata(fresh).await?;
        let redirect =
            RedirectUrl::new(self.cfg.redirect_url.clone()).map_err(|e| e.to_string())?;
        Ok(CoreClient::from_provider_metadata(
            md.as_ref().clone(),
            ClientId::new(self.cfg.client_id.clone()),
            self.cfg
                .client_secret
                .clone()
                .map(|s| ClientSecret::new(s.0)),
        )
        .set_redirect_uri(redirect))
    }

    /// Where to send the browser after the local logout, if the provider
    /// has an end-session endpoint.
    pub async fn end_session_url(&self, id_token_hint: Option<&str>) -> Option<String> {
        let md = self.metadata(false).await.ok()?;
        let endpoint: EndSessionUrl = md.additional_metadata().end_session_endpoint.clone()?;
        let mut req =
            LogoutRequest::from(endpoint).set_client_id(ClientId::new(self.cfg.client_id.clone()));
        // ADFS and Keycloak want the ID token they issued to log out
        // without asking (and to go back to the post-logout address).
        if let Some(hint) = id_token_hint.and_then(|t| CoreIdToken::from_str(t).ok()) {
            req = req.set_id_token_hint(&hint);
        }
        if let Some(back) = self
            .cfg
            .post_logout_url()
            .and_then(|u| PostLogoutRedirectUrl::new(u).ok())
        {
            req = req.set_post_logout_redirect_uri(back);
        }
        Some(req.http_get_url().to_string())
    }
}

/// What the login page tells of a refused sign-on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A check failed: sign on again.
    Failed,
    /// The account's groups map to no role.
    NotEnabled,
    /// The provider could not be reached.
    Unavailable,
}

/// Why a login through the provider was refused: the audit's detail.
#[derive(Debug)]
struct Refused {
    detail: String,
    /// The account's name, when the provider got as far as naming it.
    actor: Option<String>,
    outcome: Outcome,
}

impl Refused {
    fn new(detail: impl Into<String>) -> Refused {
        Refused {
            detail: detail.into(),
            actor: None,
            outcome: Outcome::Failed,
        }
    }

    fn not_enabled(detail: impl Into<String>) -> Refused {
        Refused {
            outcome: Outcome::NotEnabled,
            ..Refused::new(detail)
        }
    }

    fn by(mut self, actor: &str) -> Refused {
        self.actor = Some(actor.to_string());
        self
    }

    fn unavailable(detail: impl Into<String>) -> Refused {
        Refused {
            outcome: Outcome::Unavailable,
            ..Refused::new(detail)
        }
    }

    fn status(&self) -> StatusCode {
        match self.outcome {
            Outcome::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Outcome::Failed | Outcome::NotEnabled => StatusCode::UNAUTHORIZED,
        }
    }

    /// The German message on the login page.
    fn message(&self) -> &'static str {
        match self.outcome {
            Outcome::Unavailable => {
                "Der Anmeldedienst ist gerade nicht erreichbar. Bitte versuchen Sie es später erneut."
            }
            Outcome::NotEnabled => {
                "Ihr Dienstkonto ist für die Klärfall-Werkbank nicht freigeschaltet. \
                 Bitte wenden Sie sich an die IT Ihres Jobcenters."
            }
            Outcome::Failed => {
                "Die Anmeldung mit dem Dienstkonto ist fehlgeschlagen. Bitte melden Sie sich erneut an."
            }
        }
    }
}

/// The cookie that binds a login under way to this browser: sent on the
/// provider's cross-site redirect back (`SameSite=Lax`), to the callback only.
fn browser_cookie(cfg: &super::WebConfig, value: &str, max_age: i64) -> HeaderValue {
    let pairs = format!("{BROWSER_COOKIE}={value}; SameSite=Lax; Path=/anmelden/oidc");
    auth::cookie_header(cfg, &pairs, Some(max_age))
}

/// POST /anmelden/oidc: on to the provider. A session this browser still
/// holds ends here (one login, one session): its `SameSite=Strict` cookie
/// comes with this same-site form, not with the provider's answer.
pub async fn start(
    State(state): State<WorkbenchState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let Some(provider) = state.oidc.clone() else {
        return Ok(super::layout::not_found(None));
    };
    if let Some(old) = cookie(&headers, auth::SESSION_COOKIE) {
        state.store.delete_session(&token_hash(old)).await?;
    }
    let client = match provider.client(false).await {
        Ok(c) => c,
        Err(e) => {
            let refused = Refused::unavailable(format!("OIDC: {e}"));
            return refuse(&state, refused).await;
        }
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in &provider.cfg.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, csrf_state, nonce) = request.url();
    let browser = random_token();
    let login = PendingLogin {
        browser_hash: token_hash(&browser),
        pkce_verifier: verifier.secret().clone(),
        nonce: nonce.secret().clone(),
        created_at: Utc::now(),
    };
    state
        .store
        .start_oidc_login(&token_hash(csrf_state.secret()), &login)
        .await?;
    let mut resp = auth::ForwardPage {
        layout: super::layout::Layout::anonymous(""),
        heading: "Weiter zum Anmeldedienst",
        text: "Sie werden zum Anmeldedienst Ihres Jobcenters weitergeleitet.",
        link: "Weiter zum Anmeldedienst",
        target: url.to_string(),
    }
    .into_response();
    let max_age = LOGIN_VALID_FOR.num_seconds();
    resp.headers_mut().append(
        header::SET_COOKIE,
        browser_cookie(&state.config, &browser, max_age),
    );
    Ok(resp)
}

/// The provider's answer.
#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// GET /anmelden/oidc/rueckkehr: the provider's answer; a session, or the
/// login page with the reason.
pub async fn callback(
    State(state): State<WorkbenchState>,
    headers: HeaderMap,
    Query(answer): Query<Callback>,
) -> Result<Response, WebError> {
    let Some(provider) = state.oidc.clone() else {
        return Ok(super::layout::not_found(None));
    };
    let checked = check_answer(&state, &provider, &headers, answer).await?;
    let mut resp = match checked {
        // (A session the browser held ended at the start: its Strict
        // cookie does not come with the provider's cross-site answer.)
        Ok((user, id_token)) => {
            auth::start_session(&state, &user, auth::SignedIn::Provider { id_token }).await?
        }
        Err(refused) => refuse(&state, refused).await?,
    };
    resp.headers_mut()
        .append(header::SET_COOKIE, browser_cookie(&state.config, "", 0));
    Ok(resp)
}

/// Audits a refusal and shows the login page with its reason.
async fn refuse(state: &WorkbenchState, refused: Refused) -> Result<Response, WebError> {
    let actor = refused.actor.as_deref().unwrap_or("-");
    state
        .store
        .audit(
            &NewAudit::new(actor, Action::LoginFailed, None).detail(&refused.detail),
            Utc::now(),
        )
        .await?;
    tracing::info!("workbench login through the OpenID provider refused");
    Ok(auth::login_page_with_problem(
        state,
        refused.message(),
        refused.status(),
    ))
}

/// Every check of the provider's answer, in order; the account to sign in
/// and the ID token that names it.
async fn check_answer(
    state: &WorkbenchState,
    provider: &Provider,
    headers: &HeaderMap,
    answer: Callback,
) -> Result<Result<(User, String), Refused>, WebError> {
    let Some(csrf_state) = answer.state else {
        return Ok(Err(Refused::new("OIDC: Antwort ohne state")));
    };
    let Some(login) = state
        .store
        .take_oidc_login(&token_hash(&csrf_state))
        .await?
    else {
        return Ok(Err(Refused::new(
            "OIDC: state unbekannt oder bereits verwendet",
        )));
    };
    let browser = cookie(headers, BROWSER_COOKIE).map(token_hash);
    if browser.as_deref() != Some(login.browser_hash.as_str()) {
        return Ok(Err(Refused::new(
            "OIDC: Antwort gehört zu einer Anmeldung in einem anderen Browser",
        )));
    }
    if Utc::now() - login.created_at > LOGIN_VALID_FOR {
        return Ok(Err(Refused::new("OIDC: Anmeldung abgelaufen")));
    }
    if let Some(error) = answer.error {
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect();
        return Ok(Err(Refused::new(format!("OIDC: Anbieter meldet {code}"))));
    }
    let Some(code) = answer.code else {
        return Ok(Err(Refused::new("OIDC: Antwort ohne Code")));
    };
    let verified = match redeem(provider, code, login).await {
        Ok(verified) => verified,
        Err(refused) => return Ok(Err(refused)),
    };
    let user = account(state, provider, &verified.claims).await?;
    Ok(user.map(|u| (u, verified.id_token)))
}

/// An ID token that passed every check: its claims and itself (kept with
/// the session for the logout).
struct Verified {
    claims: Value,
    id_token: String,
}

/// Redeems the code and checks the ID token.
async fn redeem(
    provider: &Provider,
    code: String,
    login: PendingLogin,
) -> Result<Verified, Refused> {
    let unavailable = |e: String| Refused::unavailable(format!("OIDC: {e}"));
    let client = provider.client(false).await.map_err(unavailable)?;
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| unavailable(e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(login.pkce_verifier))
        .request_async(&provider.http)
        .await
        .map_err(redeem_refusal)?;
    let id_token = token
        .id_token()
        .ok_or_else(|| Refused::new("OIDC: Antwort ohne ID-Token"))?;
    let nonce = Nonce::new(login.nonce);
    let verified = id_token.claims(&verifier(&client), &nonce).map(|_| ());
    let verified = match verified {
        // The provider may have turned to a new key: read its keys again once.
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        )) => {
            let client = provider.client(true).await.map_err(unavailable)?;
            let verifier = verifier(&client);
            let checked = id_token.claims(&verifier, &nonce).map(|_| ());
            checked
        }
        other => other,
    };
    verified.map_err(|e| Refused::new(format!("OIDC: ID-Token abgelehnt ({})", rejection(&e))))?;
    let claims = payload(&id_token.to_string())
        .ok_or_else(|| Refused::new("OIDC: ID-Token nicht lesbar"))?;
    // Issued to another client on this one's behalf (openidconnect leaves
    // `azp` unchecked).
    match claims.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != provider.cfg.client_id => Err(Refused::new(
            "OIDC: ID-Token abgelehnt (anderer berechtigter Client (azp))",
        )),
        _ => Ok(Verified {
            claims,
            id_token: id_token.to_string(),
        }),
    }
}

/// The ID token checks: `openidconnect`'s (signature against the
/// provider's keys, issuer, audience, nonce, expiry) with asymmetric
/// algorithms only.
fn verifier(client: &Client) -> openidconnect::core::CoreIdTokenVerifier<'_> {
    client.id_token_verifier().set_allowed_algs(ALLOWED_ALGS)
}

/// Why the code was not redeemed, for the audit: the provider's error code
/// (`invalid_grant`), never its description (which may name the user) nor
/// anything it sent back. Not reaching it is a 503.
fn redeem_refusal<RE: std::error::Error + 'static>(
    e: openidconnect::RequestTokenError<
        RE,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> Refused {
    use openidconnect::RequestTokenError as E;
    match e {
        E::ServerResponse(r) => {
            let code: String = r
                .error()
                .as_ref()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(40)
                .collect();
            Refused::new(format!("OIDC: Code nicht eingelöst ({code})"))
        }
        E::Request(_) => {
            Refused::unavailable("OIDC: Anbieter bei der Code-Einlösung nicht erreichbar")
        }
        E::Parse(..) => Refused::new("OIDC: Code nicht eingelöst (Antwort nicht lesbar)"),
        E::Other(_) => Refused::new("OIDC: Code nicht eingelöst (unerwartete Antwort)"),
    }
}

/// Which check an ID token failed, in German for the audit log.
fn rejection(e: &ClaimsVerificationError) -> &'static str {
    match e {
        ClaimsVerificationError::InvalidAudience(_) => "falsche Zielgruppe (aud)",
        ClaimsVerificationError::Expired(_) => "abgelaufen (exp)",
        ClaimsVerificationError::InvalidIssuer(_) => "falscher Aussteller (iss)",
        ClaimsVerificationError::InvalidNonce(_) => "falsche Nonce",
        ClaimsVerificationError::SignatureVerification(_) => "Signatur ungültig",
        ClaimsVerificationError::InvalidAuthTime(_) => "auth_time ungültig",
        ClaimsVerificationError::InvalidSubject(_) => "sub ungültig",
        _ => "ungültig",
    }
}

/// The JSON claims of a compact JWT (already verified).
fn payload(jwt: &str) -> Option<Value> {
    let part = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The claim at a dotted path.
fn claim<'v>(claims: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(claims, |v, key| v.get(key))
}

/// A claim as a list of strings: a list's strings, or one string.
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    }
}

/// Whether a name from the provider may become an account's name: 1 to 64
/// ASCII letters, digits and `.`, `_`, `-`, `@` (a UPN), so that no
/// look-alike, blank or control character passes for another account in
/// the audit log.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_@".contains(&b))
}

/// The account the verified claims name, with roles and Dienststellen
/// from its groups.
async fn account(
    state: &WorkbenchState,
    provider: &Provider,
    claims: &Value,
) -> Result<Result<User, Refused>, WebError> {
    let cfg = &provider.cfg;
    let (Some(iss), Some(sub)) = (
        claims.get("iss").and_then(Value::as_str),
        claims.get("sub").and_then(Value::as_str),
    ) else {
        return Ok(Err(Refused::new("OIDC: ID-Token ohne iss oder sub")));
    };
    let Some(name) = claim(claims, &cfg.name_claim).and_then(Value::as_str) else {
        return Ok(Err(Refused::new(format!(
            "OIDC: ID-Token ohne {}",
            cfg.name_claim
        ))));
    };
    if !valid_name(name) {
        return Ok(Err(Refused::new("OIDC: Name im ID-Token nicht zulässig")));
    }
    let subject = format!("{iss} {sub}");
    let (roles, dienststellen) = cfg.grants(&strings(claim(claims, &cfg.groups_claim)));
    if roles.is_empty() {
        // Out of every group that maps: whatever the account had goes, with
        // its sessions.
        state
            .store
            .revoke_provider_account(&subject, Utc::now())
            .await?;
        return Ok(Err(Refused::not_enabled(
            "OIDC: keine Gruppe für die Werkbank",
        )
        .by(name)));
    }
    let account = ProviderAccount {
        subject: &subject,
        name,
        roles: &roles,
        dienststellen: &dienststellen,
    };
    Ok(
        match state
            .store
            .sign_in_provider_account(&account, Utc::now())
            .await?
        {
            Ok(user) if user.disabled => Err(Refused::new("OIDC: Konto deaktiviert").by(name)),
            Ok(user) => Ok(user),
            // Audited without a name: the name is the other account's.
            Err(AccountRefused::NameTaken) => Err(Refused::new(
                "OIDC: Name gehört bereits einem anderen Konto",
            )),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OidcConfig {
        OidcConfig {
            enabled: true,
            issuer: "https://idp.example/realms/jc".into(),
            client_id: "allegro-bridge".into(),
            redirect_url: format!("https://bridge.example{CALLBACK_PATH}"),
            groups: vec![
                GroupGrant {
                    value: "sb-nord".into(),
                    roles: vec!["sachbearbeitung".into()],
                    dienststellen: vec!["81101".into()],
                },
                GroupGrant {
                    value: "sb-sued".into(),
                    roles: vec!["sachbearbeitung".into()],
                    dienststellen: vec!["81102".into(), "81101".into()],
                },
                GroupGrant {
                    value: "leitung".into(),
                    roles: vec!["leitung".into()],
                    dienststellen: vec!["81101".into()],
                },
            ],
            ..OidcConfig::default()
        }
    }

    #[test]
    fn groups_grant_the_union_of_their_roles_and_dienststellen() {
        let cfg = config();
        let groups = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            cfg.grants(&groups(&["sb-nord", "sb-sued", "unbekannt"])),
            (
                vec![Role::Sachbearbeitung],
                vec!["81101".to_string(), "81102".to_string()]
            )
        );
        assert_eq!(cfg.grants(&groups(&["leitung"])).0, vec![Role::Leitung]);
        assert_eq!(cfg.grants(&groups(&["unbekannt"])), (vec![], vec![]));
    }

    #[test]
    fn a_config_is_checked_key_by_key() {
        assert!(config().validate().is_empty(), "{:?}", config().validate());
        let mut bad = config();
        bad.issuer = "http://idp.example".into();
        bad.redirect_url = "https://bridge.example/rueckkehr".into();
        bad.groups[0].roles = vec!["chef".into()];
        let problems = bad.validate().join("\n");
        assert!(problems.contains("web.oidc.issuer"), "{problems}");
        assert!(problems.contains("web.oidc.redirect_url"), "{problems}");
        assert!(
            problems.contains("web.oidc.group[0] `sb-nord`: unknown role `chef`"),
            "{problems}"
        );
        let mut local = config();
        local.issuer = "http://127.0.0.1:4000".into();
        assert!(local.validate().is_empty());
        assert!(
            OidcConfig::default().validate().is_empty(),
            "off needs nothing"
        );
    }

    #[test]
    fn claims_are_read_at_dotted_paths_as_strings_or_lists() {
        let claims = serde_json::json!({
            "groups": ["a", "b", 3],
            "role": "einzeln",
            "realm_access": {"roles": ["sb-nord"]}
        });
        assert_eq!(strings(claim(&claims, "groups")), ["a", "b"]);
        assert_eq!(strings(claim(&claims, "role")), ["einzeln"]);
        assert_eq!(strings(claim(&claims, "realm_access.roles")), ["sb-nord"]);
        assert!(strings(claim(&claims, "fehlt.ganz")).is_empty());
    }

    #[test]
    fn names_from_the_provider_are_plain_ascii() {
        for ok in ["sb-nord", "anna.meier@jc.example", "u_1"] {
            assert!(valid_name(ok), "{ok}");
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            "admin ",
            "\u{0430}dmin",
            "an\tna",
            "m\u{fc}ller",
            long.as_str(),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_client_secret_is_not_shown() {
        let mut cfg = config();
        cfg.client_secret = Some(ClientSecretText("geheim-123".into()));
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("geheim-123") && shown.contains("***"),
            "{shown}"
        );
    }

    #[test]
    fn the_provider_logs_out_back_to_the_login_page() {
        assert_eq!(
            config().post_logout_url().as_deref(),
            Some("https://bridge.example/anmelden")
        );
    }
}
