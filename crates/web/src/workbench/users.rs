//! `GET /verwaltung/benutzer` (administration only): the accounts with
//! their roles, Dienststellen and state. Changes are made with
//! `allegro-bridge user ...` on the server; the page says how.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::auth::Caller;
use super::error::WebError;
use super::layout::Layout;
use super::state::WorkbenchState;

/// One account as shown.
pub struct UserRow {
    pub name: String,
    pub roles: String,
    pub dienststellen: String,
    /// How the account signs in: "Passwort" or "Dienstkonto (OpenID)".
    pub sign_in: &'static str,
    pub state: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "users.html")]
pub struct UsersPage {
    pub layout: Layout,
    pub users: Vec<UserRow>,
}

impl UsersPage {
    /// The table's caption: how many accounts.
    pub fn caption(&self) -> String {
        match self.users.len() {
            1 => "1 Konto".into(),
            n => format!("{n} Konten"),
        }
    }
}

fn role_name(r: allegro_store::users::Role) -> &'static str {
    match r {
        allegro_store::users::Role::Sachbearbeitung => "Sachbearbeitung",
        allegro_store::users::Role::Administration => "Administration",
        allegro_store::users::Role::Leitung => "Leitung",
    }
}

/// GET /verwaltung/benutzer (behind [`super::admin::require_admin`]).
pub async fn page(
    State(state): State<WorkbenchState>,
    caller: Caller,
) -> Result<Response, WebError> {
    let now = Utc::now();
    let users = state.store.users().await?;
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
            sign_in: match u.sign_in {
                allegro_store::users::SignIn::Password(_) => "Passwort",
                allegro_store::users::SignIn::Provider(_) => "Dienstkonto (OpenID)",
            },
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
    Ok(UsersPage {
        layout: caller.layout(),
        users: rows,
    }
    .into_response())
}
