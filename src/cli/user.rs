//! `allegro-bridge user add | list | disable | enable | passwd | roles`:
//! the workbench's local accounts.
//!
//! A password is never a command-line argument (it would be in the shell
//! history and in `ps`): it is asked for twice without echo on a terminal,
//! or read as the first line of stdin when stdin is not a terminal
//! (scripts: `printf '%s\n' "$PW" | allegro-bridge user passwd anna`).
//! Every change is audited with actor `system`.

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use anyhow::{bail, Context as _};
use chrono::Utc;
use clap::{Args, Subcommand};

use allegro_store::audit::{Action, NewAudit};
use allegro_store::users::{is_unique_violation, NewUser, Role};
use allegro_store::Store;
use allegro_web::workbench::auth::hash_password;

use super::ops::load_settings;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account (asks for its password).
    Add(RolesArgs),
    /// One line per account: name, roles, Dienststellen, state.
    List,
    /// Disable an account; its sessions end at once.
    Disable { name: String },
    /// Enable a disabled account again.
    Enable { name: String },
    /// Set a new password (asks for it); lifts a lockout, ends the sessions.
    Passwd { name: String },
    /// Replace an account's roles and Dienststellen.
    Roles(RolesArgs),
}

/// An account name with its roles and Dienststellen.
#[derive(Debug, Args)]
pub struct RolesArgs {
    /// The login name.
    pub name: String,
    /// `sachbearbeitung` (own Dienststellen), `administration` (all cases,
    /// users, dead letters) or `leitung` (the Kennzahlen of its own
    /// Dienststellen, no application); repeatable.
    #[arg(long = "rolle", required = true, value_parser = parse_role)]
    pub roles: Vec<Role>,
    /// A dienststellennummer whose cases the account works; repeatable.
    #[arg(long = "dienststelle", value_name = "NR")]
    pub dienststellen: Vec<String>,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

impl RolesArgs {
    /// Roles and Dienststellen, checked: a caseworker needs a Dienststelle.
    fn checked(&self) -> anyhow::Result<(Vec<Role>, Vec<String>)> {
        let mut roles = self.roles.clone();
        roles.sort();
        roles.dedup();
        let mut dst: Vec<String> = self
            .dienststellen
            .iter()
            .map(|d| d.trim().to_string())
            .collect();
        dst.sort();
        dst.dedup();
        if let Some(bad) = dst
            .iter()
            .find(|d| d.is_empty() || !d.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            bail!("--dienststelle `{bad}`: expected a dienststellennummer (letters, digits, -)");
        }
        let scoped = roles.contains(&Role::Sachbearbeitung) || roles.contains(&Role::Leitung);
        if scoped && !roles.contains(&Role::Administration) && dst.is_empty() {
            bail!("roles sachbearbeitung and leitung need at least one --dienststelle");
        }
        Ok((roles, dst))
    }
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    if !ok {
        bail!("user name `{name}`: 1 to 64 letters, digits, . - _ or @");
    }
    Ok(())
}

/// Reads a new password: twice without echo on a terminal, else the first
/// line of stdin.
fn read_new_password(name: &str) -> anyhow::Result<String> {
    let pw = if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password(format!("New password for {name}: "))?;
        let b = rpassword::prompt_password("Repeat it: ")?;
        if a != b {
            bail!("the two passwords differ; nothing was changed");
        }
        a
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if pw.chars().count() < MIN_PASSWORD_CHARS {
        bail!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters; nothing was changed"
        );
    }
    Ok(pw)
}

/// Runs a `user` subcommand.
pub fn run(config: Option<&Path>, cmd: UserCommand) -> anyhow::Result<i32> {
    let settings = load_settings(config)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = Store::connect(&settings.store).await?;
        let code = command(&store, cmd).await;
        store.close().await;
        code
    })
}

async fn audit(store: &Store, action: Action, name: &str) -> anyhow::Result<()> {
    let entry = NewAudit::new("system", action, None).detail(name);
    store.audit(&entry, Utc::now()).await?;
    Ok(())
}

fn missing(name: &str) -> anyhow::Error {
    anyhow::anyhow!("no user `{name}`")
}

async fn command(store: &Store, cmd: UserCommand) -> anyhow::Result<i32> {
    let now = Utc::now();
    match cmd {
        UserCommand::Add(args) => {
            check_name(&args.name)?;
            let (roles, dienststellen) = args.checked()?;
            if store.user_by_name(&args.name).await?.is_some() {
                bail!("user `{}` exists already", args.name);
            }
            let password_hash = hash_password(&read_new_password(&args.name)?)?;
            let user = NewUser {
                name: args.name.clone(),
                password_hash,
                roles,
                dienststellen,
            };
            match store.create_user(&user, now).await {
                Err(e) if is_unique_violation(&e) => bail!("user `{}` exists already", args.name),
                r => r?,
            };
            audit(store, Action::UserAdd, &args.name).await?;
            println!("user {} created", args.name);
        }
        UserCommand::List => {
            for u in store.users().await? {
                let roles: Vec<&str> = u.roles.iter().map(|r| r.as_str()).collect();
                let state = if u.disabled {
                    "disabled"
                } else if u.locked_until.is_some_and(|t| t > now) {
                    "locked"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{}\t{state}",
                    u.name,
                    roles.join(","),
                    if u.dienststellen.is_empty() {
                        "-".into()
                    } else {
                        u.dienststellen.join(",")
                    }
                );
            }
        }
        UserCommand::Disable { name } => {
            if !store.set_user_disabled(&name, true, now).await? {
                return Err(missing(&name));
            }
            audit(store, Action::UserDisable, &name).await?;
            println!("user {name} disabled; its sessions ended");
        }
        UserCommand::Enable { name } => {
            if !store.set_user_disabled(&name, false, now).await? {
                return Err(missing(&name));
            }
            audit(store, Action::UserEnable, &name).await?;
            println!("user {name} enabled");
        }
        UserCommand::Passwd { name } => {
            let Some(user) = store.user_by_name(&name).await? else {
                return Err(missing(&name));
            };
            if user.password_hash().is_none() {
                anyhow::bail!(
                    "{name} signs in through the OpenID provider ([web.oidc]) and has no password here"
                );
            }
            let hash = hash_password(&read_new_password(&name)?)?;
            if !store.set_password_hash(&name, &hash, now).await? {
                return Err(missing(&name));
            }
            audit(store, Action::UserPasswd, &name).await?;
            println!("password of {name} changed; its sessions ended");
        }
        UserCommand::Roles(args) => {
            let (roles, dienststellen) = args.checked()?;
            if !store
                .set_user_roles(&args.name, &roles, &dienststellen, now)
                .await?
            {
                return Err(missing(&args.name));
            }
            audit(store, Action::UserRoles, &args.name).await?;
            println!("roles of {} changed", args.name);
        }
    }
    Ok(0)
}
