//! The Submission API client (`spec/submission-api-1.1.3.yaml`, the
//! subscriber's endpoints): the OAuth 2 client-credentials token (sent as
//! `client_secret_post`, kept until shortly before it expires and fetched
//! anew on a 401), the submissions waiting for pickup, one submission, its
//! attachments, a case's event log and posting an event.
//!
//! Errors say whether trying again later can help ([`ApiError::is_transient`]):
//! the network, 5xx, 429 and a token refused twice are transient; other 4xx
//! are not. Nothing of a submission's content is logged.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::submission::Fetched;

/// Where and as whom to call.
#[derive(Clone)]
pub struct ApiConfig {
    /// The Submission API, e.g. `https://submission-api-testing.fit-connect.fitko.dev`.
    pub base_url: String,
    /// The OAuth token endpoint.
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// Per request.
    pub timeout: Duration,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("base_url", &self.base_url)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{what}: {source}")]
    Network {
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: HTTP {status}")]
    Status { what: &'static str, status: u16 },
    #[error("{what}: unexpected answer: {detail}")]
    Answer { what: &'static str, detail: String },
}

impl ApiError {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Network { .. } => true,
            ApiError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 401,
            ApiError::Answer { .. } => false,
        }
    }
}

/// A submission waiting for pickup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pickup {
    pub destination_id: Uuid,
    pub submission_id: Uuid,
    pub case_id: Uuid,
}

/// What posting an event came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    /// 204: the event is in the log.
    Taken,
    /// 409: the submission is already accepted or rejected.
    AlreadyAnswered,
    /// 422: the Zustelldienst refused the token (with its detail).
    Refused(String),
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PickupPage {
    #[serde(default)]
    total_count: Option<usize>,
    submissions: Vec<Pickup>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubmissionBody {
    submission_id: Uuid,
    case_id: Uuid,
    destination_id: Uuid,
    #[serde(default)]
    attachments: Vec<Uuid>,
    encrypted_metadata: Option<String>,
    encrypted_data: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventLog {
    event_log: Vec<String>,
}

/// The most the API gives per page.
const PAGE: usize = 500;

/// A client of one Submission API.
pub struct Client {
    http: reqwest::Client,
    config: ApiConfig,
    token: Mutex<Option<(String, Instant)>>,
}

impl Client {
    pub fn new(config: ApiConfig) -> Result<Client, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("allegro-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ApiError::Network {
                what: "HTTP client",
                source,
            })?;
        Ok(Client {
            http,
            config,
            token: Mutex::new(None),
        })
    }

    /// The submissions waiting at `destination`, all pages.
    pub async fn pickup(&self, destination: Uuid) -> Result<Vec<Pickup>, ApiError> {
        let mut out = Vec::new();
        loop {
            let url = format!(
                "{}/v1/submissions?destinationId={destination}&limit={PAGE}&offset={}",
                self.config.base_url,
                out.len()
            );
            let page: PickupPage = self.get_json("list submissions", &url).await?;
            let n = page.submissions.len();
            out.extend(page.submissions);
            let total = page.total_count.unwrap_or(out.len());
            if n < PAGE || out.len() >= total {
                return Ok(out);
            }
        }
    }

    /// One submission with its attachments, all encrypted.
    pub async fn fetch(&self, submission: Uuid) -> Result<Fetched, ApiError> {
        let base = &self.config.base_url;
        let url = format!("{base}/v1/submissions/{submission}");
        let s: SubmissionBody = self.get_json("get submission", &url).await?;
        let missing = |what| ApiError::Answer {
            what: "get submission",
            detail: format!("no {what}"),
        };
        let mut attachments = Vec::new();
        for id in &s.attachments {
            let url = format!("{base}/v1/submissions/{submission}/attachments/{id}");
            attachments.push((*id, self.get_text("get attachment", &url).await?));
        }
        Ok(Fetched {
            submission_id: s.submission_id,
            case_id: s.case_id,
            destination_id: s.destination_id,
            encrypted_metadata: s
                .encrypted_metadata
                .ok_or_else(|| missing("encryptedMetadata"))?,
            encrypted_data: s.encrypted_data.ok_or_else(|| missing("encryptedData"))?,
            attachments,
        })
    }

    /// The case's event log, as compact tokens.
    pub async fn events(&self, case: Uuid) -> Result<Vec<String>, ApiError> {
        let url = format!("{}/v1/cases/{case}/events", self.config.base_url);
        let log: EventLog = self.get_json("get events", &url).await?;
        Ok(log.event_log)
    }

    /// The Zustelldienst's own signing keys (`/.well-known/jwks.json`).
    pub async fn jwks(&self) -> Result<crate::jose::Jwks, ApiError> {
        let what = "get JWKS";
        let url = format!("{}/.well-known/jwks.json", self.config.base_url);
        let value: serde_json::Value = self.get_json(what, &url).await?;
        crate::jose::Jwks::from_value(&value).map_err(|e| ApiError::Answer {
            what,
            detail: e.to_string(),
        })
    }

    /// Posts a signed event to the case's log.
    pub async fn post_event(&self, case: Uuid, token: &str) -> Result<Posted, ApiError> {
        let what = "send event";
        let url = format!("{}/v1/cases/{case}/events", self.config.base_url);
        let resp = self
            .send(what, |http, bearer| {
                http.post(&url)
                    .bearer_auth(bearer)
                    .header(reqwest::header::CONTENT_TYPE, "application/jose")
                    .body(token.to_string())
            })
            .await?;
        match resp.status().as_u16() {
            200..=299 => Ok(Posted::Taken),
            409 => Ok(Posted::AlreadyAnswered),
            422 => Ok(Posted::Refused(resp.text().await.unwrap_or_default())),
            status => Err(ApiError::Status { what, status }),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        url: &str,
    ) -> Result<T, ApiError> {
        let resp = self.get_ok(what, url).await?;
        resp.json().await.map_err(|e| ApiError::Answer {
            what,
            detail: e.to_string(),
        })
    }

    async fn get_text(&self, what: &'static str, url: &str) -> Result<String, ApiError> {
        let resp = self.get_ok(what, url).await?;
        resp.text()
            .await
            .map_err(|source| ApiError::Network { what, source })
    }

    async fn get_ok(&self, what: &'static str, url: &str) -> Result<reqwest::Response, ApiError> {
        let resp = self
            .send(what, |http, bearer| http.get(url).bearer_auth(bearer))
            .await?;
        if !resp.status().is_success() {
            return Err(ApiError::Status {
                what,
                status: resp.status().as_u16(),
            });
        }
        Ok(resp)
    }

    /// Sends with the current token; on a 401 once more with a new one.
    async fn send(
        &self,
        what: &'static str,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ApiError> {
        for attempt in 0..2 {
            let bearer = self.token(attempt > 0).await?;
            let resp = build(&self.http, &bearer)
                .send()
                .await
                .map_err(|source| ApiError::Network { what, source })?;
            if resp.status().as_u16() != 401 {
                return Ok(resp);
            }
        }
        Err(ApiError::Status { what, status: 401 })
    }

    /// A valid access token: the kept one unless `renew` or it expires
    /// within a minute.
    async fn token(&self, renew: bool) -> Result<String, ApiError> {
        let mut kept = self.token.lock().await;
        if let Some((t, until)) = kept.as_ref() {
            if !renew && Instant::now() + Duration::from_secs(60) < *until {
                return Ok(t.clone());
            }
        }
        let what = "get token";
        let resp = self
            .http
            .post(&self.config.token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.config.client_id.as_str()),
                ("client_secret", self.config.client_secret.as_str()),
            ])
            .send()
            .await
            .map_err(|source| ApiError::Network { what, source })?;
        if !resp.status().is_success() {
            return Err(ApiError::Status {
                what,
                status: resp.status().as_u16(),
            });
        }
        let token: Token = resp.json().await.map_err(|e| ApiError::Answer {
            what,
            detail: e.to_string(),
        })?;
        let life = Duration::from_secs(token.expires_in.unwrap_or(300));
        *kept = Some((token.access_token.clone(), Instant::now() + life));
        Ok(token.access_token)
    }
}
