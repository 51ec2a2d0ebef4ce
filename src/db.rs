//! Connecting to the database (SQLite file or PostgreSQL) and applying migrations.

use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

use crate::config::{DatabaseSettings, Settings};

/// Connects with bounded timeouts. A database that is down fails here, with the reason and
/// without the URL (it may hold a password).
pub async fn connect(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let url = match &settings.database {
        DatabaseSettings::Sqlite { path } => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create data directory {}", dir.display()))?;
            }
            format!("sqlite://{}?mode=rwc", path.display())
        }
        DatabaseSettings::Postgres { url } => url.expose().clone(),
    };
    let mut options = ConnectOptions::new(url);
    options
        .connect_timeout(settings.database_timeout)
        .acquire_timeout(settings.database_timeout)
        .idle_timeout(Duration::from_secs(300))
        .max_connections(16)
        .sqlx_logging(false);
    if matches!(settings.database, DatabaseSettings::Sqlite { .. }) {
        // One writer at a time in SQLite; WAL lets readers proceed meanwhile.
        options.max_connections(8);
    }
    let db = tokio::time::timeout(settings.database_timeout * 2, Database::connect(options))
        .await
        .map_err(|_| anyhow::anyhow!("timed out"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(|| format!("cannot connect to the {}", settings.database.describe()))?;
    if matches!(settings.database, DatabaseSettings::Sqlite { .. }) {
        db.execute_unprepared("PRAGMA journal_mode=WAL;")
            .await
            .context("cannot configure the SQLite database")?;
    }
    Ok(db)
}

/// Applies pending migrations.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None)
        .await
        .context("cannot apply database migrations")
}

/// Whether the database answers, within `timeout`.
pub async fn ping(db: &DatabaseConnection, timeout: Duration) -> bool {
    matches!(tokio::time::timeout(timeout, db.ping()).await, Ok(Ok(())))
}
