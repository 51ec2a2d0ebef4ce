//! Connecting to the database (SQLite file or PostgreSQL), applying migrations, and the
//! one way the service writes.
//!
//! # The writer discipline
//!
//! SQLite lets one connection write at a time. When two connections of one process write
//! at once, the one whose transaction began with a read and then tries to write loses with
//! `SQLITE_BUSY` at once, whatever the busy timeout (its snapshot is stale), and a request
//! that only wanted to append an audit event failed with `INTERNAL`. So the service:
//!
//! - writes through one [`Writer`]: on SQLite a single connection whose transactions
//!   start `IMMEDIATE` (they take the write lock first, so they never have to upgrade), in
//!   WAL mode with a busy timeout for writers of other processes (the CLI);
//! - reads through a pool of read-only connections ([`Connections::read`]), which WAL never
//!   blocks. A write that slips onto the read pool fails loudly in the tests rather than
//!   racing the writer;
//! - on PostgreSQL shares one pool for both, and retries a transaction that lost to a
//!   serialization failure, a deadlock or a lock time-out a bounded number of times.
//!
//! Contention that outlasts the retries is [`is_transient`]: the client gets
//! `UNAVAILABLE` with a retry hint, never `INTERNAL` (see [`crate::error::ApiError`]).

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, RuntimeErr, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};

use crate::config::{DatabaseSettings, Settings};

/// How long a SQLite connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts of one write transaction that loses to contention, the first included.
const ATTEMPTS: u32 = 4;

/// The service's connections: reads from a pool, writes through one [`Writer`].
#[derive(Clone)]
pub struct Connections {
    /// For reads. On SQLite these connections are read-only.
    pub read: DatabaseConnection,
    /// For every write.
    pub writer: Writer,
}

/// The SQLite file's URL, creating its directory; `None` for PostgreSQL.
fn url_of(settings: &Settings) -> anyhow::Result<String> {
    Ok(match &settings.database {
        DatabaseSettings::Sqlite { path } => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create data directory {}", dir.display()))?;
            }
            format!("sqlite://{}?mode=rwc", path.display())
        }
        DatabaseSettings::Postgres { url } => url.expose().clone(),
    })
}

/// A pool of at most `max` connections; SQLite connections get WAL, the busy timeout,
/// foreign keys and secure delete (deleted content is overwritten with zeros, so a purge
/// or an erasure leaves no bytes behind in the file), and are read-only when asked.
async fn pool(
    settings: &Settings,
    max: u32,
    read_only: bool,
) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url_of(settings)?);
    options
        .connect_timeout(settings.database_timeout)
        .acquire_timeout(settings.database_timeout)
        .idle_timeout(Duration::from_secs(300))
        .max_connections(max)
        .sqlx_logging(false);
    if matches!(settings.database, DatabaseSettings::Sqlite { .. }) {
        options.map_sqlx_sqlite_opts(move |o| {
            let o = o
                .busy_timeout(BUSY_TIMEOUT)
                .foreign_keys(true)
                .read_only(read_only);
            if read_only {
                o
            } else {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .pragma("secure_delete", "ON")
            }
        });
    }
    tokio::time::timeout(settings.database_timeout * 2, Database::connect(options))
        .await
        .map_err(|_| anyhow::anyhow!("timed out"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(|| format!("cannot connect to the {}", settings.database.describe()))
}

/// One read-write pool, for the CLI and tests: a single process doing one thing at a time.
/// Connects with bounded timeouts. A database that is down fails here, with the reason and
/// without the URL (it may hold a password).
pub async fn connect(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let max = match settings.database {
        DatabaseSettings::Sqlite { .. } => 8,
        DatabaseSettings::Postgres { .. } => 16,
    };
    pool(settings, max, false).await
}

/// The service's connections (see the module's documentation). The writer connects first,
/// so the file exists and is in WAL mode before any read-only connection opens it.
pub async fn connect_service(settings: &Settings) -> anyhow::Result<Connections> {
    match settings.database {
        DatabaseSettings::Sqlite { .. } => {
            let writer = Writer::new(pool(settings, 1, false).await?);
            // WAL is persistent in the file; make sure it is set before readers arrive.
            writer
                .connection()
                .execute_unprepared("PRAGMA journal_mode=WAL;")
                .await
                .context("cannot configure the SQLite database")?;
            let read = pool(settings, 8, true).await?;
            Ok(Connections { read, writer })
        }
        DatabaseSettings::Postgres { .. } => {
            let db = pool(settings, 16, false).await?;
            Ok(Connections {
                read: db.clone(),
                writer: Writer::new(db),
            })
        }
    }
}

/// Applies pending migrations.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None)
        .await
        .context("cannot apply database migrations")
}

/// Writes a consistent copy of the SQLite database to `dest` (`VACUUM INTO`: one read
/// transaction, so writers carry on meanwhile and the copy is one point in time). The copy
/// holds only the database: master keys live in their own file or the environment, the
/// erasure ledger in its own file. PostgreSQL is refused with the way to back it up.
pub async fn backup(settings: &Settings, dest: &std::path::Path) -> anyhow::Result<()> {
    if let DatabaseSettings::Postgres { .. } = settings.database {
        anyhow::bail!(
            "`backup` copies the embedded SQLite database; on PostgreSQL use `pg_dump --format=custom --file=DEST \"$DATABASE_URL\"` (see README, Backup and restore)"
        );
    }
    if dest.exists() {
        anyhow::bail!("{} already exists; choose a new file", dest.display());
    }
    let dest_text = dest
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("the backup path must be valid UTF-8"))?;
    let db = pool(settings, 1, true).await?;
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        DatabaseBackend::Sqlite,
        "VACUUM INTO ?",
        [dest_text.into()],
    ))
    .await
    .with_context(|| format!("cannot write the backup {}", dest.display()))?;
    Ok(())
}

/// Whether the database answers, within `timeout`.
pub async fn ping(db: &DatabaseConnection, timeout: Duration) -> bool {
    matches!(tokio::time::timeout(timeout, db.ping()).await, Ok(Ok(())))
}

/// The one path of writes. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    conn: DatabaseConnection,
}

impl Writer {
    /// Writes through `conn`: the service's single writer connection, or any read-write
    /// connection in the CLI and tests.
    pub fn new(conn: DatabaseConnection) -> Writer {
        Writer { conn }
    }

    /// The connection writes go through, for a single statement outside a transaction.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Begins a write transaction: `BEGIN IMMEDIATE` on SQLite, so it holds the write lock
    /// from its first statement.
    pub async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        if self.conn.get_database_backend() == DatabaseBackend::Sqlite {
            self.conn
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..Default::default()
                })
                .await
        } else {
            self.conn.begin().await
        }
    }

    /// Runs `job` in one transaction and commits what it hands back. When the database
    /// refuses it for contention ([`is_transient`]), the transaction is rolled back and
    /// `job` runs again, at most [`ATTEMPTS`] times in all with a growing, jittered pause;
    /// the last error is returned. `job` must therefore do nothing outside the database
    /// that a second run would repeat.
    pub async fn transaction<T, E, F, Fut>(&self, mut job: F) -> Result<T, E>
    where
        F: FnMut(DatabaseTransaction) -> Fut,
        Fut: Future<Output = Result<(T, DatabaseTransaction), E>>,
        E: From<DbErr> + Transient,
    {
        let mut attempt = 1;
        loop {
            let outcome = match self.begin().await {
                Ok(txn) => match job(txn).await {
                    Ok((value, txn)) => txn.commit().await.map(|()| value).map_err(E::from),
                    Err(error) => Err(error),
                },
                Err(error) => Err(E::from(error)),
            };
            match outcome {
                Err(error) if error.is_transient() && attempt < ATTEMPTS => {
                    tracing::debug!(attempt, "write transaction lost to contention; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// 10 ms, 40 ms, 160 ms, … with up to half of it again as jitter, so retries that collided
/// once do not collide again.
fn backoff(attempt: u32) -> Duration {
    let base = 10u64 * 4u64.pow(attempt.saturating_sub(1).min(4));
    let jitter = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base + jitter)
}

/// Errors that may be contention, which a retry can cure.
pub trait Transient {
    /// Whether this error is contention or a momentarily unreachable database.
    fn is_transient(&self) -> bool;
}

impl Transient for DbErr {
    fn is_transient(&self) -> bool {
        is_transient(self)
    }
}

impl Transient for anyhow::Error {
    fn is_transient(&self) -> bool {
        self.chain()
            .any(|cause| cause.downcast_ref::<DbErr>().is_some_and(is_transient))
    }
}

/// Whether `error` is contention or a momentarily unreachable database rather than a
/// fault: SQLite busy or locked, PostgreSQL serialization failure (40001), deadlock
/// (40P01) or lock time-out (55P03), no pooled connection free in time, or the server's
/// connection lost.
pub fn is_transient(error: &DbErr) -> bool {
    use sea_orm::sqlx::Error as SqlxError;
    match error {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => match &**e {
            SqlxError::PoolTimedOut | SqlxError::Io(_) => true,
            SqlxError::Database(db) => db.code().is_some_and(|code| {
                // SQLite reports extended codes; their low byte is the primary code
                // (5 busy, 6 locked).
                matches!(&*code, "40001" | "40P01" | "55P03")
                    || code.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
            }),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert!(backoff(1) >= Duration::from_millis(10) && backoff(1) <= Duration::from_millis(15));
        assert!(backoff(3) >= Duration::from_millis(160));
        assert!(backoff(40) <= Duration::from_millis(3_840));
    }

    #[test]
    fn faults_are_not_transient() {
        assert!(!is_transient(&DbErr::RecordNotFound("x".into())));
        assert!(!is_transient(&DbErr::Custom("constraint".into())));
        assert!(is_transient(&DbErr::ConnectionAcquire(
            sea_orm::ConnAcquireErr::Timeout
        )));
    }
}
