//! The attachments an application brought through FIT-Connect (the
//! Nachweise the applicant uploaded): listed on the case page, downloaded
//! from `/faelle/{id}/anlagen/{anlage}` by those who may see the case,
//! each download audited. The file is sent as a download under a neutral
//! name (`anlage-<id>.<ext>`), never shown inline.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use allegro_store::audit::{Action, NewAudit};
use allegro_store::fitconnect::AttachmentInfo;

use super::auth::Caller;
use super::detail::load_in_scope;
use super::error::WebError;
use super::state::WorkbenchState;

/// One attachment as the case page lists it.
#[derive(Debug, Clone)]
pub struct AnlageView {
    /// The file name as uploaded (or „ohne Namen“).
    pub datei: String,
    /// „Anlage“, „Antragsformular“ or „Bericht“.
    pub zweck: &'static str,
    pub typ: String,
    /// Size in German, e.g. „4,9 KB“.
    pub groesse: String,
    /// The first 16 hex digits of the SHA-512.
    pub pruefsumme: String,
    /// The download link; empty once retention removed the content.
    pub link: String,
}

/// The list of an application's attachments.
pub fn views(antrag_id: Uuid, list: &[AttachmentInfo]) -> Vec<AnlageView> {
    list.iter()
        .map(|a| AnlageView {
            datei: a.filename.clone().unwrap_or_else(|| "ohne Namen".into()),
            zweck: match a.purpose.as_str() {
                "form" => "Antragsformular",
                "report" => "Bericht",
                _ => "Anlage",
            },
            typ: a.mime_type.clone(),
            groesse: size_de(a.bytes),
            pruefsumme: a.sha512.chars().take(16).collect(),
            link: if a.purged {
                String::new()
            } else {
                format!("/faelle/{antrag_id}/anlagen/{}", a.attachment_id)
            },
        })
        .collect()
}

/// `GET /faelle/{id}/anlagen/{anlage}`: the file, for who may see the case.
pub async fn download(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Path((id, anlage)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let case = load_in_scope(&state, &caller, &id).await?;
    let Ok(anlage) = Uuid::parse_str(&anlage) else {
        return Err(WebError::not_found(&caller));
    };
    let list = state.store.attachments_of(case.antrag_id).await?;
    let Some(info) = list.iter().find(|a| a.attachment_id == anlage) else {
        return Err(WebError::not_found(&caller));
    };
    let Some(bytes) = state
        .store
        .attachment_content(case.antrag_id, anlage)
        .await?
    else {
        return Err(WebError::not_found(&caller));
    };
    let detail = format!("Anlage {anlage}");
    let entry =
        NewAudit::new(&caller.user.name, Action::View, Some(case.antrag_id)).detail(&detail);
    state.store.audit(&entry, state.clock.now()).await?;
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type(&info.mime_type));
    let name = format!(
        "attachment; filename=\"anlage-{anlage}.{}\"",
        extension(&info.mime_type)
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The types sent as they are; anything else as bytes.
fn content_type(mime: &str) -> HeaderValue {
    match mime {
        "application/pdf" | "image/jpeg" | "image/png" | "image/tiff" => {
            HeaderValue::from_str(mime)
                .unwrap_or(HeaderValue::from_static("application/octet-stream"))
        }
        _ => HeaderValue::from_static("application/octet-stream"),
    }
}

fn extension(mime: &str) -> &'static str {
    match mime {
        "application/pdf" => "pdf",
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/tiff" => "tif",
        _ => "bin",
    }
}

/// `5000` → „4,9 KB“.
fn size_de(bytes: i64) -> String {
    let b = bytes as f64;
    let (v, unit) = if b >= 1024.0 * 1024.0 {
        (b / (1024.0 * 1024.0), "MB")
    } else if b >= 1024.0 {
        (b / 1024.0, "KB")
    } else {
        return format!("{bytes} Byte");
    };
    format!("{v:.1} {unit}").replace('.', ",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_german() {
        assert_eq!(size_de(512), "512 Byte");
        assert_eq!(size_de(5009), "4,9 KB");
        assert_eq!(size_de(3 * 1024 * 1024 + 200_000), "3,2 MB");
    }

    #[test]
    fn only_known_types_are_sent_as_such() {
        assert_eq!(content_type("application/pdf"), "application/pdf");
        assert_eq!(content_type("text/html"), "application/octet-stream");
        assert_eq!(extension("text/html"), "bin");
    }
}
