//! `/verwaltung/benutzer` (role `administration` only; anyone else gets the
//! 404 page): the accounts with their roles, Dienststellen and state,
//! read-only. Accounts are changed with `allegro-bridge user ...`, which
//! asks for passwords without echo and audits every change.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use allegro_store::users::{Role, User};

use super::auth::Caller;
use super::detail::german_time;
use super::layout::{self, Layout};
use super::state::WorkbenchState;

/// One account as the page shows it.
pub struct UserLine {
    pub name: String,
    pub roles: String,
    pub dienststellen: String,
    pub state: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "users.html")]
pub struct UsersPage {
    pub layout: Layout,
    pub users: Vec<UserLine>,
}

/// The German name of a role.
fn role_de(r: Role) -> &'static str {
    match r {
        Role::Sachbearbeitung => "Sachbearbeitung",
        Role::Administration => "Administration",
    }
}

fn line(u: User) -> UserLine {
    let now = Utc::now();
    let state = match (u.disabled, u.locked_until) {
        (true, _) => "deaktiviert".to_string(),
        (false, Some(t)) if t > now => format!("gesperrt bis {}", german_time(t)),
        _ => "aktiv".to_string(),
    };
    UserLine {
        roles: u
            .roles
            .iter()
            .map(|r| role_de(*r))
            .collect::<Vec<_>>()
            .join(", "),
        dienststellen: if u.dienststellen.is_empty() {
            "–".into()
        } else {
            u.dienststellen.join(", ")
        },
        name: u.name,
        state,
    }
}

/// GET /verwaltung/benutzer.
pub async fn page(State(state): State<WorkbenchState>, caller: Caller) -> Response {
    if !caller.is_admin() {
        return layout::not_found(Some(&caller));
    }
    let users = match state.store.users().await {
        Ok(u) => u,
        Err(e) => return layout::store_error(e),
    };
    UsersPage {
        layout: caller.layout(),
        users: users.into_iter().map(line).collect(),
    }
    .into_response()
}
