//! The schema: migrations embedded in the binary, one folder per dialect,
//! applied at start.

use anyhow::Context as _;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::SqlSafeStr;

use crate::Store;

/// Migrations embedded in the binary, one folder per dialect.
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "outbox_pending",
        include_str!("../migrations/sqlite/0002_outbox_pending.sql"),
    ),
    (
        3,
        "dead_letter_meta",
        include_str!("../migrations/sqlite/0003_dead_letter_meta.sql"),
    ),
    (
        4,
        "workbench",
        include_str!("../migrations/sqlite/0004_workbench.sql"),
    ),
    (
        5,
        "retention",
        include_str!("../migrations/sqlite/0005_retention.sql"),
    ),
    (
        6,
        "name_failures",
        include_str!("../migrations/sqlite/0006_name_failures.sql"),
    ),
    (
        7,
        "failure_memory",
        include_str!("../migrations/sqlite/0007_failure_memory.sql"),
    ),
    (
        8,
        "applicant_as_written",
        include_str!("../migrations/sqlite/0008_applicant_as_written.sql"),
    ),
    (
        9,
        "searches",
        include_str!("../migrations/sqlite/0009_searches.sql"),
    ),
    (
        10,
        "mitwirkung",
        include_str!("../migrations/sqlite/0010_mitwirkung.sql"),
    ),
    (
        11,
        "kennzahlen",
        include_str!("../migrations/sqlite/0011_kennzahlen.sql"),
    ),
    (
        12,
        "corrected_fields",
        include_str!("../migrations/sqlite/0012_corrected_fields.sql"),
    ),
    (
        13,
        "fitconnect",
        include_str!("../migrations/sqlite/0013_fitconnect.sql"),
    ),
    (
        14,
        "oidc",
        include_str!("../migrations/sqlite/0014_oidc.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "lz4",
        include_str!("../migrations/postgres/0002_lz4.sql"),
    ),
    (
        3,
        "inline",
        include_str!("../migrations/postgres/0003_inline.sql"),
    ),
    (
        4,
        "outbox_pending",
        include_str!("../migrations/postgres/0004_outbox_pending.sql"),
    ),
    (
        5,
        "dead_letter_meta",
        include_str!("../migrations/postgres/0005_dead_letter_meta.sql"),
    ),
    (
        6,
        "workbench",
        include_str!("../migrations/postgres/0006_workbench.sql"),
    ),
    (
        7,
        "retention",
        include_str!("../migrations/postgres/0007_retention.sql"),
    ),
    (
        8,
        "name_failures",
        include_str!("../migrations/postgres/0008_name_failures.sql"),
    ),
    (
        9,
        "failure_memory",
        include_str!("../migrations/postgres/0009_failure_memory.sql"),
    ),
    (
        10,
        "applicant_as_written",
        include_str!("../migrations/postgres/0010_applicant_as_written.sql"),
    ),
    (
        11,
        "searches",
        include_str!("../migrations/postgres/0011_searches.sql"),
    ),
    (
        12,
        "mitwirkung",
        include_str!("../migrations/postgres/0012_mitwirkung.sql"),
    ),
    (
        13,
        "kennzahlen",
        include_str!("../migrations/postgres/0013_kennzahlen.sql"),
    ),
    (
        14,
        "corrected_fields",
        include_str!("../migrations/postgres/0014_corrected_fields.sql"),
    ),
    (
        15,
        "fitconnect",
        include_str!("../migrations/postgres/0015_fitconnect.sql"),
    ),
    (
        16,
        "oidc",
        include_str!("../migrations/postgres/0016_oidc.sql"),
    ),
];

/// How often a failed SQLite migration is tried again (see `migrate_until`).
const SQLITE_MIGRATE_TRIES: u32 = 20;

fn migrator(list: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        list.iter()
            .map(|(v, d, sql)| {
                Migration::new(
                    *v,
                    (*d).into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

impl Store {
    /// Applies the embedded migrations of this dialect (idempotent; safe to
    /// run from several daemons at once, sqlx takes a lock).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        self.migrate_until(i64::MAX).await
    }

    /// Applies the embedded migrations up to and including `version` only
    /// (for tests that check how a later migration treats existing rows).
    #[doc(hidden)]
    pub async fn migrate_until(&self, version: i64) -> anyhow::Result<()> {
        let upto = |list: &[(i64, &'static str, &'static str)]| {
            let keep: Vec<_> = list.iter().copied().filter(|m| m.0 <= version).collect();
            migrator(&keep)
        };
        match self {
            Store::Sqlite(p) => {
                let m = upto(SQLITE_MIGRATIONS);
                // SQLite has no lock sqlx could take across processes: two
                // starting at once (the daemon and `allegro-bridge web` on a
                // new file) may both try a migration; the loser's statement
                // fails against what the winner applied. Trying again reads
                // the applied versions anew and skips them.
                let mut tries = 0;
                loop {
                    match m.run(p).await {
                        Err(e) if tries < SQLITE_MIGRATE_TRIES => {
                            tries += 1;
                            tracing::debug!(error = %e, tries, "migration raced another process; trying again");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                        r => break r,
                    }
                }
            }
            Store::Postgres(p) => upto(POSTGRES_MIGRATIONS).run(p).await,
        }
        .context("database migration failed")
    }
}
