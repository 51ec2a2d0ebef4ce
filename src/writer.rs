//! The one path of writes: [`Writer`] runs a transaction, retrying it when it loses to
//! contention, and [`is_transient`] tells contention from faults. Which connection writes
//! (SQLite's single writer, PostgreSQL's pool) is decided by [`crate::db`]; this module
//! imports nothing else of the crate, so every service can write through it.

use std::future::Future;
use std::time::Duration;

use sea_orm::{
    DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr, RuntimeErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

/// Attempts of one write transaction that loses to contention, the first included.
const ATTEMPTS: u32 = 4;

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
pub fn backoff(attempt: u32) -> Duration {
    let base = 10u64 * 4u64.pow(attempt.saturating_sub(1).min(4));
    let jitter = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base + jitter)
}

/// A write that lost a race to a concurrent writer and succeeds when run again, found by
/// the code that wrote it rather than by the database's error codes (for example an audit
/// append after a chain head that another writer moved). Put it in an error's chain
/// (`.context(LostRace)`) and [`Transient`] counts the error as contention.
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("lost a race to a concurrent writer")]
pub struct LostRace;

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
        self.downcast_ref::<LostRace>().is_some()
            || self
                .chain()
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
    fn a_lost_race_is_transient_under_any_context() {
        let lost = anyhow::Error::from(DbErr::Custom("unique".into()))
            .context(LostRace)
            .context("auditing a claim");
        assert!(lost.is_transient());
        assert!(!anyhow::Error::from(DbErr::Custom("unique".into())).is_transient());
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
