//! `GET /verwaltung/benutzer` (administration only): the accounts with
//! their roles, Dienststellen and state. Changes are made with
//! `allegro-bridge user ...` on the server; the page says how.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::auth::Caller;
use super::layout::{self, Layout};
use super::state::WorkbenchState;

/// One account as shown.
pub struct UserRow {
    pub name: String,
    pub roles: String,
    pub dienststellen: String,
    pub state: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "users.html")]
pub struct UsersPage {
    pub layout: Layout,
    pub users: Vec<UserRow>,
}

fn role_name(r: allegro_store::users::Role) -> &'static str {
    match r {
        allegro_store::users::Role::Sachbearbeitung => "Sachbearbeitung",
        allegro_store::users::Role::Administration => "Administration",
    }
}

/// GET /verwaltung/benutzer: 404 (audited `denied`) for anyone but administration.
pub async fn page(State(state): State<WorkbenchState>, caller: Caller) -> Response {
    let now = Utc::now();
    if let Some(r) = super::admin::refuse_non_admin(&state, &caller, "benutzer").await {
        return r;
    }
    let users = match state.store.users().await {
        Ok(u) => u,
        Err(e) => return layout::store_error(e),
    };
    let rows = users
        .into_iter()
        .map(|u| UserRow {
            roles: u
                .roles
                .iter()
                .map(|r| role_name(*r))
                .collect::<Vec<_>>()
                .join(", "),
            dienststellen: u.dienststellen.join(", "),
            state: if u.disabled {
                "deaktiviert"
            } else if u.locked_until.is_some_and(|t| t > now) {
                "vorübergehend gesperrt"
            } else {
                "aktiv"
            },
            name: u.name,
        })
        .collect();
    UsersPage {
        layout: caller.layout(),
        users: rows,
    }
    .into_response()
}
