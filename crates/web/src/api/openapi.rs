//! The OpenAPI 3.1 document of the check API, generated from the handler's
//! annotations and the answer types (utoipa), served at
//! `/api/v1/openapi.json`. The tests validate it with an independent
//! validator (`openapi-spec-validator`).

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::check;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "allegro-bridge: Prüfung vor dem Absenden",
        description = "Checks an online Bürgergeld application as the bridge would on submission, \
            storing nothing. See docs/api.md.",
        license(name = "EUPL-1.2", identifier = "EUPL-1.2"),
    ),
    paths(check::pruefung),
    components(schemas(
        check::PruefAntwort,
        check::ErgebnisCode,
        check::Grund,
        check::Befund,
        check::Nachweis,
        check::Fehler
    )),
    modifiers(&Bearer),
    tags((name = "Prüfung", description = "The check before submission"))
)]
pub struct ApiDoc;

/// The bearer token scheme (`Authorization: Bearer abr_…`).
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The interface contract version that describes this API
/// (docs/contract.md §9); the document's `info.version`.
pub const CONTRACT_VERSION: &str = "1.2";

/// The document.
pub fn spec() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = CONTRACT_VERSION.into();
    doc
}

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(spec())
}
