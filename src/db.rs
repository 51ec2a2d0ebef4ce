//! Connecting to the database (SQLite file or PostgreSQL), applying migrations, backups.
//!
//! # The writer discipline
//!
//! SQLite lets one connection write at a time. When two connections of one process write
//! at once, the one whose transaction began with a read and then tries to write loses with
//! `SQLITE_BUSY` at once, whatever the busy timeout (its snapshot is stale), and a request
//! that only wanted to append an audit event failed with `INTERNAL`. So the service:
//!
//! - writes through one [`Writer`] (`writer.rs`): on SQLite a single connection whose transactions
//!   start `IMMEDIATE` (they take the write lock first, so they never have to upgrade), in
//!   WAL mode with a busy timeout for writers of other processes (the CLI);
//! - reads through a pool of read-only connections ([`Connections::read`]), which WAL never
//!   blocks. A write that slips onto the read pool fails loudly in the tests rather than
//!   racing the writer;
//! - on PostgreSQL shares one pool for both, and retries a transaction that lost to a
//!   serialization failure, a deadlock or a lock time-out a bounded number of times.
//!
//! Contention that outlasts the retries is [`crate::writer::is_transient`]: the client gets
//! `UNAVAILABLE` with a retry hint, never `INTERNAL` (see [`crate::error::ApiError`]).

use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection};

use crate::config::{DatabaseSettings, Settings};
pub use crate::writer::Writer;

/// How long a SQLite connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many rows a SQLite connection's thread may read ahead of the statement's reader.
/// sqlx passes each row from that thread through a bounded channel (50 by default); once
/// the channel is full, every row taken wakes the blocked thread again, so a page's few
/// thousand rows cost as many thread hand-offs. A channel holding a page's largest result
/// lets the thread run through it without waiting.
const ROW_BUFFER: usize = 4096;

/// How much of a SQLite file its connections read through memory mapping instead of a
/// `read` call per page missing from their page cache (2 MiB each by default). Pages are
/// still written with `write`; an I/O error on a mapped page would end the process
/// rather than fail one statement, which a local file makes unlikely.
const MMAP_SIZE: u64 = 1 << 30;

/// The size a SQLite WAL file is cut back to when a write starts it over. Under sustained
/// load, with readers always active, the WAL cannot start over and grows (316 MB after 18
/// minutes of the peer benchmark); without a limit SQLite reuses the file from its start
/// afterwards but never shrinks it, so the disk held a burst's size for good.
const WAL_SIZE_LIMIT: u64 = 64 << 20;

/// How long a PostgreSQL connection may sit idle in the pool before it is pinged on the
/// way out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

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
/// or an erasure leaves no bytes behind in the file), read rows ahead ([`ROW_BUFFER`])
/// and the file through a memory map ([`MMAP_SIZE`]), and are read-only when asked;
/// writing ones cut the WAL back to [`WAL_SIZE_LIMIT`] when they start it over.
async fn pool(
    settings: &Settings,
    max: u32,
    read_only: bool,
) -> anyhow::Result<DatabaseConnection> {
    open(settings, pool_options(settings, max, read_only)?).await
}

/// The options of [`pool`].
fn pool_options(settings: &Settings, max: u32, read_only: bool) -> anyhow::Result<ConnectOptions> {
    let mut options = ConnectOptions::new(url_of(settings)?);
    options
        .connect_timeout(settings.database_timeout)
        .acquire_timeout(settings.database_timeout)
        .idle_timeout(Duration::from_secs(300))
        .max_connections(max)
        .sqlx_logging(false);
    // sqlx pings a connection every time it leaves the pool (sea-orm's default): on
    // PostgreSQL one more round trip before every statement, on SQLite one more hand-off
    // to the connection's thread. A PostgreSQL connection is pinged only once it has been
    // idle long enough for the server, a proxy or a firewall to have dropped it; one that
    // breaks while in use fails its statement (answered UNAVAILABLE or INTERNAL, see
    // `is_transient`) and is not reused. sqlx also pings every connection as it goes back
    // to the pool, in a task of its own after the statement (off the request's path, one
    // more round trip per statement); no option turns that off (BENCHMARKS.md, 2026-12-03,
    // third stop). A SQLite file does not go away: never pinged.
    match settings.database {
        DatabaseSettings::Postgres { .. } => {
            options.test_before_acquire_if_idle_for(PING_AFTER_IDLE);
        }
        DatabaseSettings::Sqlite { .. } => {
            options.test_before_acquire(false);
            options.map_sqlx_sqlite_opts(move |o| {
                let o = o
                    .row_buffer_size(ROW_BUFFER)
                    .pragma("mmap_size", MMAP_SIZE.to_string())
                    .busy_timeout(BUSY_TIMEOUT)
                    .foreign_keys(true)
                    .read_only(read_only);
                if read_only {
                    o
                } else {
                    o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string())
                        .pragma("secure_delete", "ON")
                }
            });
        }
    }
    Ok(options)
}

/// Connects `options`, bounded by the database timeout.
async fn open(settings: &Settings, options: ConnectOptions) -> anyhow::Result<DatabaseConnection> {
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
            let mut writer = pool_options(settings, 1, false)?;
            // The writer's connection stays open, so the WAL and shared-memory files that
            // read-only connections need are never cleaned away under them.
            writer.min_connections(1);
            let writer = Writer::new(open(settings, writer).await?);
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
    // Read-write only because a read-only connection cannot open a WAL database whose
    // service is stopped; VACUUM INTO never writes to the source.
    let db = pool(settings, 1, false).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction that loses to contention runs again and commits once; a fault is not
    /// retried; what a failed attempt wrote is rolled back.
    #[tokio::test]
    async fn contention_is_retried_and_faults_are_not() {
        use sea_orm::{DatabaseTransaction, DbErr};
        use std::sync::atomic::{AtomicU32, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::for_data_dir(
            dir.path(),
            DatabaseSettings::Sqlite {
                path: dir.path().join("t.sqlite"),
            },
        );
        let writer = connect_service(&settings).await.unwrap().writer;
        writer
            .connection()
            .execute_unprepared("CREATE TABLE t (n INTEGER)")
            .await
            .unwrap();
        let attempts = AtomicU32::new(0);
        let attempts = &attempts;
        writer
            .transaction(|txn| async move {
                txn.execute_unprepared("INSERT INTO t VALUES (1)").await?;
                if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout));
                }
                Ok(((), txn))
            })
            .await
            .unwrap();
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        let fault = writer
            .transaction(|txn| async move {
                txn.execute_unprepared("INSERT INTO t VALUES (2)").await?;
                attempts.fetch_add(1, Ordering::SeqCst);
                Err::<((), DatabaseTransaction), _>(DbErr::Custom("a fault".into()))
            })
            .await;
        assert!(fault.is_err());
        assert_eq!(attempts.load(Ordering::SeqCst), 3, "a fault runs once");
        let rows = writer
            .connection()
            .query_all_raw(sea_orm::Statement::from_string(
                DatabaseBackend::Sqlite,
                "SELECT n FROM t",
            ))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "only the committed attempt's row is there");
    }

    /// A burst of writes larger than [`WAL_SIZE_LIMIT`] grows the WAL file; once it is
    /// checkpointed, the next write starts the WAL over and the file shrinks back to the
    /// limit instead of holding the burst's size on disk for good.
    #[tokio::test]
    async fn the_wal_file_shrinks_back_after_a_burst_of_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        let settings =
            Settings::for_data_dir(dir.path(), DatabaseSettings::Sqlite { path: path.clone() });
        let connections = connect_service(&settings).await.unwrap();
        // A reader that has read once and stays open, as the service's readers do.
        connections
            .read
            .execute_unprepared("SELECT 1")
            .await
            .unwrap();
        let db = connections.writer.connection();
        db.execute_unprepared("CREATE TABLE t (b BLOB)")
            .await
            .unwrap();
        let mib = (WAL_SIZE_LIMIT >> 20) + 16;
        db.execute_unprepared(&format!(
            "INSERT INTO t SELECT zeroblob(1048576) FROM \
             (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {mib}) \
             SELECT i FROM n)"
        ))
        .await
        .unwrap();
        let wal = path.with_extension("sqlite-wal");
        let size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap();
        assert!(
            size() > WAL_SIZE_LIMIT,
            "the burst went through the WAL: {}",
            size()
        );
        db.execute_unprepared("INSERT INTO t VALUES (x'00')")
            .await
            .unwrap();
        assert!(size() <= WAL_SIZE_LIMIT, "the WAL kept {} bytes", size());
    }
}
