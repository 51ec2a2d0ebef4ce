//! The append-only, hash-chained audit trail.
//!
//! Each event records who did what, when, on which ticket (the purpose) and customer, which
//! fields, why (the reason, if any) and the request id — never a personal value. Each event
//! carries the hash of the previous one and its own hash over its content, so
//! [`verify`] finds the first event that was edited, deleted, inserted or reordered.
//!
//! The chain cannot fork: an event's sequence number is its predecessor's plus one,
//! given by whoever appends it, so a second event after the same one takes a number
//! already taken and the primary key refuses it. [`AuditLog`] relies on this to append
//! optimistically, in one statement after the head it remembers, and starts again from
//! the new head when another writer (another instance, or a write's own events through
//! [`append_in`]) got there first. (The key grows at one end of its index; a unique index
//! on `prev_hash`, which did this before, took every insert to a random page of an index
//! as large as the trail: BENCHMARKS.md, "2026-12-04, fifteenth stop".)
//!
//! A write transaction appends its own events under the chain's lock, and never gives up
//! for a lost race: when an optimistic append takes the head it read, it holds the others
//! back and appends again (`append_locked`).

pub mod loader;
pub mod trail;

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use entity::audit_event;
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, QueryOrder, QuerySelect,
    Set, Statement,
};

use crate::writer::{LostRace, Transient, Writer};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain's last event, which the next one follows: its sequence number and its hash
/// (0 and [`GENESIS`] for an empty chain).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Head {
    seq: i32,
    hash: String,
}

impl Head {
    /// The head of an empty chain.
    fn genesis() -> Head {
        Head {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }
}

/// What an event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, async_graphql::Enum)]
pub enum Action {
    /// A response carried plaintext of a protected class (other than `account` and
    /// `ticket_history`).
    Viewed,
    /// An agent asked to reveal fields.
    RevealRequested,
    /// A reveal was granted (self-service with a reason).
    RevealGranted,
    /// A supervisor approved a reveal request.
    RevealApproved,
    /// A supervisor denied a reveal request.
    RevealDenied,
    /// A grant was revoked.
    RevealRevoked,
    /// A grant was seen to have expired.
    GrantExpired,
    /// The privacy officer exported everything held on a customer.
    CustomerExported,
    /// The privacy officer erased a customer (crypto-shredding).
    CustomerErased,
    /// The retention sweeper deleted data whose retention period had passed.
    Purged,
    /// An agent checked what a caller said against the record (match / no match only).
    IdentityChecked,
    /// A new policy replaced the running one (the reason names the old and new versions
    /// and what triggered the reload).
    PolicyReloaded,
    /// An admin changed an agent's role, team or queues (the reason says what changed).
    AgentUpdated,
    /// A customer's consent was recorded (the reason names its kind and notice version).
    ConsentRecorded,
    /// A customer's consent was withdrawn (the reason names its kind).
    ConsentWithdrawn,
    /// A customer was created by a channel or import (the fields name what was given).
    CustomerCreated,
    /// A customer's details changed (the fields name which, never their values).
    CustomerUpdated,
    /// A ticket was opened (the reason names its channel and topic).
    TicketOpened,
    /// A ticket's status changed (the reason names the old and new status).
    TicketStatusChanged,
    /// A message was added to a ticket (the reason names its author kind).
    MessageAdded,
    /// A message on a resolved ticket reopened it.
    TicketReopened,
    /// A document was attached to a ticket (the reason names its kind and type).
    DocumentAttached,
    /// An agent took an unassigned ticket.
    TicketClaimed,
    /// A ticket was assigned (the reason names the agents by id).
    TicketAssigned,
    /// A ticket was handed off (the reason names the role, topic and agent by id).
    TicketHandedOff,
    /// An admin created an agent or service account (the reason names its handle and role).
    AgentCreated,
    /// An admin disabled an agent (its tokens were revoked).
    AgentDisabled,
    /// An admin issued a new token for an agent (never the token).
    AgentTokenIssued,
}

impl Action {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Viewed => "viewed",
            Action::RevealRequested => "reveal_requested",
            Action::RevealGranted => "reveal_granted",
            Action::RevealApproved => "reveal_approved",
            Action::RevealDenied => "reveal_denied",
            Action::RevealRevoked => "reveal_revoked",
            Action::GrantExpired => "grant_expired",
            Action::CustomerExported => "customer_exported",
            Action::CustomerErased => "customer_erased",
            Action::Purged => "purged",
            Action::IdentityChecked => "identity_checked",
            Action::PolicyReloaded => "policy_reloaded",
            Action::AgentUpdated => "agent_updated",
            Action::ConsentRecorded => "consent_recorded",
            Action::ConsentWithdrawn => "consent_withdrawn",
            Action::CustomerCreated => "customer_created",
            Action::CustomerUpdated => "customer_updated",
            Action::TicketOpened => "ticket_opened",
            Action::TicketStatusChanged => "ticket_status_changed",
            Action::MessageAdded => "message_added",
            Action::TicketReopened => "ticket_reopened",
            Action::DocumentAttached => "document_attached",
            Action::TicketClaimed => "ticket_claimed",
            Action::TicketAssigned => "ticket_assigned",
            Action::TicketHandedOff => "ticket_handed_off",
            Action::AgentCreated => "agent_created",
            Action::AgentDisabled => "agent_disabled",
            Action::AgentTokenIssued => "agent_token_issued",
        }
    }

    /// Every action.
    pub const ALL: [Action; 28] = [
        Action::Viewed,
        Action::RevealRequested,
        Action::RevealGranted,
        Action::RevealApproved,
        Action::RevealDenied,
        Action::RevealRevoked,
        Action::GrantExpired,
        Action::CustomerExported,
        Action::CustomerErased,
        Action::Purged,
        Action::IdentityChecked,
        Action::PolicyReloaded,
        Action::AgentUpdated,
        Action::ConsentRecorded,
        Action::ConsentWithdrawn,
        Action::CustomerCreated,
        Action::CustomerUpdated,
        Action::TicketOpened,
        Action::TicketStatusChanged,
        Action::MessageAdded,
        Action::TicketReopened,
        Action::DocumentAttached,
        Action::TicketClaimed,
        Action::TicketAssigned,
        Action::TicketHandedOff,
        Action::AgentCreated,
        Action::AgentDisabled,
        Action::AgentTokenIssued,
    ];

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// An event to append. Holds ids, field names and reasons only — never a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The agent who acted.
    pub actor_agent_id: Option<i32>,
    /// Their role at the time.
    pub actor_role: String,
    /// What happened.
    pub action: Action,
    /// The customer concerned.
    pub customer_id: Option<i32>,
    /// The ticket: the purpose of the access.
    pub ticket_id: Option<i32>,
    /// The field names concerned (schema names).
    pub fields: Vec<String>,
    /// The agent's reason, when one was given.
    pub reason: Option<String>,
    /// The request that caused it.
    pub request_id: String,
    /// The version of the policy in force ([`crate::policy::PolicySet::version`]); `None`
    /// where no policy is involved.
    pub policy_version: Option<String>,
    /// The `Idempotency-Key` the request was delivered under, if it sent one.
    pub idempotency_key: Option<String>,
}

/// Who acts, in which request, under which policy: what every event of one request shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The agent, or `None` for the service itself and the CLI.
    pub agent_id: Option<i32>,
    /// Their role (`cli`, `system` when no agent acts).
    pub role: String,
    /// The request (or `cli`, `retention`, `policy-reload`).
    pub request_id: String,
    /// The version of the policy in force, when a policy decides.
    pub policy_version: Option<String>,
    /// The `Idempotency-Key` the request was delivered under, if it sent one.
    pub idempotency_key: Option<String>,
}

impl Actor {
    /// The service itself or a command acting with no agent (`role` is e.g. `cli` or
    /// `system`), in `request_id`, with no policy deciding.
    pub fn system(role: &str, request_id: &str) -> Actor {
        Actor {
            agent_id: None,
            role: role.to_owned(),
            request_id: request_id.to_owned(),
            policy_version: None,
            idempotency_key: None,
        }
    }

    /// An event by this actor.
    pub fn event(
        &self,
        action: Action,
        customer_id: Option<i32>,
        ticket_id: Option<i32>,
        fields: Vec<String>,
        reason: Option<String>,
    ) -> NewEvent {
        NewEvent {
            actor_agent_id: self.agent_id,
            actor_role: self.role.clone(),
            action,
            customer_id,
            ticket_id,
            fields,
            reason,
            request_id: self.request_id.clone(),
            policy_version: self.policy_version.clone(),
            idempotency_key: self.idempotency_key.clone(),
        }
    }
}

/// The hashed content of an event: every stored column except `seq` and `hash`, in a fixed
/// order. `policy_version` and `idempotency_key` are left out when absent, so events
/// written before those columns existed keep their hashes.
#[derive(Serialize)]
struct Hashed<'a> {
    prev_hash: &'a str,
    occurred_at: String,
    actor_agent_id: Option<i32>,
    actor_role: &'a str,
    action: &'a str,
    customer_id: Option<i32>,
    ticket_id: Option<i32>,
    fields: &'a str,
    reason: Option<&'a str>,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<&'a str>,
}

fn hash_of(row: &audit_event::Model) -> String {
    let content = Hashed {
        prev_hash: &row.prev_hash,
        occurred_at: timestamp(row.occurred_at),
        actor_agent_id: row.actor_agent_id,
        actor_role: &row.actor_role,
        action: &row.action,
        customer_id: row.customer_id,
        ticket_id: row.ticket_id,
        fields: &row.fields,
        reason: row.reason.as_deref(),
        request_id: &row.request_id,
        policy_version: row.policy_version.as_deref(),
        idempotency_key: row.idempotency_key.as_deref(),
    };
    let bytes = serde_json::to_vec(&content).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// Microsecond precision: what both SQLite and PostgreSQL store exactly.
fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// Most rows in one INSERT: 14 parameters each stays under SQLite's 32 766.
const INSERT_CHUNK: usize = 2_000;

/// Attempts of one append's statement, the first included, when the database is busy
/// or unreachable.
const APPEND_ATTEMPTS: u32 = 4;

/// Races for the head an optimistic append may lose before it takes the chain's lock
/// instead: two, so a head moved once by another instance costs one more statement, and
/// a chain kept busy by write transactions (which append under the lock) does not starve
/// the appends that do not take it.
const OPTIMISTIC_RACES: u32 = 2;

/// Events waiting to be written, and who waits for them.
struct Waiting {
    events: Vec<NewEvent>,
    done: tokio::sync::oneshot::Sender<Result<(), Arc<str>>>,
}

/// Appends events to the chain. Cheap to clone.
///
/// Appends are group-committed: requests that append while a write is under way queue
/// their events, and the next writer takes the whole queue in one statement (one commit,
/// one fsync) and answers each of them. Every caller still returns only once its own events
/// are committed, so values are never served before their audit events exist.
///
/// The statement inserts after the head this log last wrote or read, with no transaction
/// and no lock of its own: one round trip (on PostgreSQL it waits only while a write
/// transaction that lost the head holds the appends back, see `append_locked`). When
/// another writer moved the head in the meantime, the primary key refuses the insert
/// (the number after the head is taken); the log reads the new head and inserts again,
/// and when the chain is that busy twice in a row, it appends under the chain's lock like
/// a write transaction.
///
/// A write that must stand or fall with its audit events appends them inside its own
/// transaction with [`append_in`] instead.
#[derive(Clone)]
pub struct AuditLog {
    writer: Writer,
    /// Held by the one append writing at a time. It holds the chain's head as this log
    /// last wrote or read it: `None` when unknown (at first, and after a write that may or
    /// may not have landed), so the next append reads it.
    head: Arc<tokio::sync::Mutex<Option<Head>>>,
    queue: Arc<std::sync::Mutex<Vec<Waiting>>>,
    /// How long each [`AuditLog::append`] waited, when the service reports it.
    latency: Option<prometheus::Histogram>,
}

impl AuditLog {
    /// The audit log written through `writer`.
    pub fn new(writer: Writer) -> AuditLog {
        AuditLog {
            writer,
            head: Arc::default(),
            queue: Arc::default(),
            latency: None,
        }
    }

    /// The same log, recording how long each append waits (queueing behind another
    /// writer's commit included) in `latency`.
    pub fn timed(self, latency: prometheus::Histogram) -> AuditLog {
        AuditLog {
            latency: Some(latency),
            ..self
        }
    }

    /// Appends `events`, chained after the current last event, and returns once they are
    /// committed. Either all are written or none.
    #[tracing::instrument(name = "audit.append", skip_all, fields(events = events.len()))]
    pub async fn append(&self, events: &[NewEvent]) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let appended = self.append_grouped(events).await;
        if let Some(latency) = &self.latency {
            latency.observe(started.elapsed().as_secs_f64());
        }
        appended
    }

    /// [`AuditLog::append`]'s group commit: joins the queue, and either a writer already
    /// under way takes the events along or this call starts writing the whole queue.
    ///
    /// The batch is written by a task of its own, which answers everyone in it: the
    /// caller that started it may be cancelled (a request dropped at shutdown) while the
    /// others in its batch still wait, and they must get the batch's real outcome, not an
    /// error for a write that may well have landed.
    async fn append_grouped(&self, events: &[NewEvent]) -> anyhow::Result<()> {
        use tokio::sync::oneshot::error::TryRecvError;
        use tracing::Instrument;
        let (done, mut outcome) = tokio::sync::oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Waiting {
                events: events.to_vec(),
                done,
            });
        // Either a writer takes our events along and answers, or we get the lock and write.
        let head = tokio::select! {
            biased;
            result = &mut outcome => return answered(result),
            head = self.head.clone().lock_owned() => head,
        };
        match outcome.try_recv() {
            Err(TryRecvError::Empty) => {}
            // The writer before us took our events along (or its task ended without
            // answering: a panic, or the runtime shutting down).
            answer => return answered(answer),
        }
        let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
        let log = self.clone();
        let write = async move {
            let mut head = head;
            let appends: Vec<&[NewEvent]> = batch.iter().map(|w| w.events.as_slice()).collect();
            let written = log
                .write(&mut head, &appends)
                .await
                .map_err(|e| Arc::<str>::from(format!("{e:#}")));
            for waiting in batch {
                let _ = waiting.done.send(written.clone());
            }
        };
        // Detached: it holds the chain's head until the batch is written and answered.
        tokio::spawn(write.instrument(tracing::Span::current()));
        answered(outcome.await)
    }

    /// Writes appends after the chain's head, in order, in one statement: after `head`
    /// when known, else after the head read now. A busy or unreachable database (reading
    /// the head or inserting) is retried after a pause. A lost race is tried once more
    /// after the new head; when that loses too, the chain is busy with other writers, and
    /// the append queues for the chain's lock like a write transaction does, which always
    /// makes progress.
    async fn write(&self, head: &mut Option<Head>, appends: &[&[NewEvent]]) -> anyhow::Result<()> {
        let events: Vec<&NewEvent> = appends.iter().flat_map(|a| a.iter()).collect();
        if events.len() <= INSERT_CHUNK {
            let conn = self.writer.connection();
            let (mut attempt, mut lost_races) = (1, 0);
            loop {
                // Taken, not read: if this future is dropped mid-insert, the next append
                // finds the head unknown and reads it.
                let error = match insert_after(conn, head.take(), &events).await {
                    Ok(last) => {
                        *head = Some(last);
                        return Ok(());
                    }
                    Err(error) => error,
                };
                if error.downcast_ref::<LostRace>().is_some() {
                    lost_races += 1;
                    if lost_races >= OPTIMISTIC_RACES {
                        break;
                    }
                } else if error.is_transient() && attempt < APPEND_ATTEMPTS {
                    tokio::time::sleep(crate::writer::backoff(attempt)).await;
                } else {
                    return Err(error);
                }
                attempt += 1;
            }
        }
        *head = Some(self.write_in_transaction(appends).await?);
        Ok(())
    }

    /// Writes appends under the chain's lock, in one transaction, after the head read
    /// there (in chunks when they are more rows than one statement takes; retried as a
    /// whole when it loses to contention). Returns the new head.
    async fn write_in_transaction(&self, appends: &[&[NewEvent]]) -> anyhow::Result<Head> {
        self.writer
            .transaction(|txn| async move {
                let head = append_locked(&txn, appends).await?;
                Ok::<_, anyhow::Error>((head, txn))
            })
            .await
            .context("committing audit events")
    }
}

/// What a caller of [`AuditLog::append`] learns from the batch its events were written in:
/// the batch's outcome, or, when the batch's writer ended without answering, that nothing
/// of its events is known to be written.
fn answered<E>(outcome: Result<Result<(), Arc<str>>, E>) -> anyhow::Result<()> {
    match outcome {
        Ok(result) => result.map_err(|e| anyhow::anyhow!("{e}")),
        Err(_) => anyhow::bail!("the audit write was abandoned"),
    }
}

/// Appends `events` inside `txn`, a write transaction of the caller's (begun by
/// [`Writer`]): they are committed, or rolled back, with the rest of that transaction.
/// This is how a write and its audit trail stand or fall together.
pub async fn append_in(
    txn: &sea_orm::DatabaseTransaction,
    events: &[NewEvent],
) -> anyhow::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    append_locked(txn, &[events]).await.map(drop)
}

/// Chains appends after the head inside `txn`, under the chain's lock, and returns the new
/// head.
///
/// On SQLite the writer's transaction already holds the database's write lock: nothing
/// can come between reading the head and inserting. On PostgreSQL the chain's advisory
/// lock ([`migration::AUDIT_CHAIN_LOCK`]) orders the appends of transactions across
/// connections and instances, but not the optimistic one-statement appends, which keep
/// flowing so that reads do not wait for writes. When one of them takes the head between
/// this read and this insert, the insert is rolled back to a savepoint, the transaction
/// raises the barrier ([`migration::AUDIT_APPEND_BARRIER`], which every INSERT of events
/// takes shared through a trigger): the statements under way commit, no new one starts,
/// and the head read then stays the head. So a transaction never gives up for a lost
/// race; it pays a second read and insert, once.
async fn append_locked(
    txn: &sea_orm::DatabaseTransaction,
    appends: &[&[NewEvent]],
) -> anyhow::Result<Head> {
    if txn.get_database_backend() != DatabaseBackend::Postgres {
        return insert_after_head(txn, appends).await;
    }
    txn.execute_unprepared(&format!(
        "SELECT pg_advisory_xact_lock({}); SAVEPOINT audit_append",
        migration::AUDIT_CHAIN_LOCK
    ))
    .await
    .context("locking the audit chain")?;
    match insert_after_head(txn, appends).await {
        Err(error) if error.downcast_ref::<LostRace>().is_some() => {
            txn.execute_unprepared(&format!(
                "ROLLBACK TO SAVEPOINT audit_append; SELECT pg_advisory_xact_lock({})",
                migration::AUDIT_APPEND_BARRIER
            ))
            .await
            .context("holding the audit chain's appends back")?;
            insert_after_head(txn, appends).await
        }
        inserted => inserted,
    }
}

/// Reads the chain's head in `txn` and inserts appends after it, all stamped with one time.
async fn insert_after_head(
    txn: &sea_orm::DatabaseTransaction,
    appends: &[&[NewEvent]],
) -> anyhow::Result<Head> {
    let mut head = read_head(txn).await?;
    let occurred_at = now_micros();
    for events in appends {
        insert(txn, events, occurred_at, &mut head).await?;
    }
    Ok(head)
}

/// Inserts `events` in one statement on `conn`, outside any transaction, after `head` (or
/// after the head read now, when `None`), and returns the new head. An insert refused
/// because another event already follows that head is [`LostRace`].
async fn insert_after(
    conn: &DatabaseConnection,
    head: Option<Head>,
    events: &[&NewEvent],
) -> anyhow::Result<Head> {
    let head = match head {
        Some(head) => head,
        None => read_head(conn).await?,
    };
    let (rows, last) = chain(events.iter().copied(), now_micros(), head)?;
    audit_event::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await
        .map_err(refused)?;
    Ok(last)
}

/// The chain's last event ([`Head::genesis`] for an empty chain). The chain cannot fork
/// and an event is only appended once its predecessor is committed, so the highest
/// sequence number is the head. PostgreSQL reads it through `audit_chain_last()`
/// (migration 16), which plans the query on every call: a plan kept from when the trail
/// was short scans the whole trail.
async fn read_head(conn: &impl ConnectionTrait) -> anyhow::Result<Head> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => "SELECT seq, hash FROM audit_chain_last()",
        _ => "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1",
    };
    let head = conn
        .query_one_raw(Statement::from_string(backend, sql))
        .await
        .and_then(|row| {
            row.map(|row| {
                Ok(Head {
                    seq: row.try_get("", "seq")?,
                    hash: row.try_get("", "hash")?,
                })
            })
            .transpose()
        })
        .context("reading the audit chain head")?;
    Ok(head.unwrap_or_else(Head::genesis))
}

/// The error of an INSERT of events, marked [`LostRace`] when the database refused it
/// because another event already follows its first row's predecessor: the sequence number
/// is the table's only unique constraint, and the first row's is the predecessor's plus
/// one.
fn refused(error: sea_orm::DbErr) -> anyhow::Error {
    let lost = matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    );
    let error = anyhow::Error::from(error).context("writing audit events");
    if lost {
        error.context(LostRace)
    } else {
        error
    }
}

/// Chains `events` after `head`: their rows, numbered on from the head's sequence number,
/// and the new head.
fn chain<'a>(
    events: impl IntoIterator<Item = &'a NewEvent>,
    occurred_at: DateTime<Utc>,
    head: Head,
) -> anyhow::Result<(Vec<audit_event::ActiveModel>, Head)> {
    let events = events.into_iter();
    let mut rows = Vec::with_capacity(events.size_hint().0);
    let Head {
        mut seq,
        hash: mut prev_hash,
    } = head;
    for event in events {
        seq = seq
            .checked_add(1)
            .context("the audit trail has run out of sequence numbers")?;
        let mut row = audit_event::Model {
            seq,
            occurred_at,
            actor_agent_id: event.actor_agent_id,
            actor_role: event.actor_role.clone(),
            action: event.action.as_str().to_owned(),
            customer_id: event.customer_id,
            ticket_id: event.ticket_id,
            fields: serde_json::to_string(&event.fields).context("encoding fields")?,
            reason: event.reason.clone(),
            request_id: event.request_id.clone(),
            policy_version: event.policy_version.clone(),
            idempotency_key: event.idempotency_key.clone(),
            prev_hash,
            hash: String::new(),
        };
        row.hash = hash_of(&row);
        prev_hash = row.hash.clone();
        rows.push(audit_event::ActiveModel {
            seq: Set(row.seq),
            occurred_at: Set(row.occurred_at),
            actor_agent_id: Set(row.actor_agent_id),
            actor_role: Set(row.actor_role),
            action: Set(row.action),
            customer_id: Set(row.customer_id),
            ticket_id: Set(row.ticket_id),
            fields: Set(row.fields),
            reason: Set(row.reason),
            request_id: Set(row.request_id),
            policy_version: Set(row.policy_version),
            idempotency_key: Set(row.idempotency_key),
            prev_hash: Set(row.prev_hash),
            hash: Set(row.hash),
        });
    }
    Ok((
        rows,
        Head {
            seq,
            hash: prev_hash,
        },
    ))
}

/// Chains `events` after `head` and inserts them inside `txn` (in chunks of at most
/// `INSERT_CHUNK` rows, within every database's bound on parameters). An insert whose head
/// another append took first is [`LostRace`] (see [`append_locked`]).
async fn insert(
    txn: &sea_orm::DatabaseTransaction,
    events: &[NewEvent],
    occurred_at: DateTime<Utc>,
    head: &mut Head,
) -> anyhow::Result<()> {
    let (rows, last) = chain(events, occurred_at, head.clone())?;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(INSERT_CHUNK).collect();
        audit_event::Entity::insert_many(chunk)
            .exec_without_returning(txn)
            .await
            .map_err(refused)?;
    }
    *head = last;
    Ok(())
}

/// The outcome of walking the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every event links to its predecessor and matches its hash.
    Intact {
        /// How many events were checked.
        events: u64,
    },
    /// The first event where the chain breaks, and how.
    Broken {
        /// The event's sequence number.
        seq: i32,
        /// What is wrong, in words.
        problem: String,
    },
}

/// Walks the whole chain in sequence order, a page at a time.
pub async fn verify(db: &DatabaseConnection) -> anyhow::Result<Verdict> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let mut expected_prev = GENESIS.to_owned();
    let mut last_seq = 0;
    let mut count = 0u64;
    loop {
        let page = audit_event::Entity::find()
            .filter(audit_event::Column::Seq.gt(last_seq))
            .order_by_asc(audit_event::Column::Seq)
            .limit(1000)
            .all(db)
            .await
            .context("reading the audit trail")?;
        if page.is_empty() {
            return Ok(Verdict::Intact { events: count });
        }
        for row in page {
            if row.prev_hash != expected_prev {
                let problem = if count == 0 && row.prev_hash != GENESIS {
                    "the first event does not start the chain: events before it were deleted"
                        .to_owned()
                } else {
                    "does not link to the event before it: an event was deleted, inserted or \
                     reordered here"
                        .to_owned()
                };
                return Ok(Verdict::Broken {
                    seq: row.seq,
                    problem,
                });
            }
            if hash_of(&row) != row.hash {
                return Ok(Verdict::Broken {
                    seq: row.seq,
                    problem: "its content does not match its hash: the event was edited".to_owned(),
                });
            }
            expected_prev = row.hash.clone();
            last_seq = row.seq;
            count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_through_its_stored_form() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
    }

    /// Events are numbered on from the head, each linked to the one before, and the new
    /// head is the last of them; a trail out of numbers is an error, not a wrap-around.
    #[test]
    fn events_are_numbered_on_from_the_head() {
        let actor = Actor::system("cli", "r");
        let events = [
            actor.event(Action::Purged, None, None, vec![], None),
            actor.event(Action::Purged, None, None, vec![], None),
        ];
        let head = Head {
            seq: 7,
            hash: "a".repeat(64),
        };
        let (rows, last) = chain(&events, now_micros(), head.clone()).unwrap();
        let rows: Vec<audit_event::Model> = rows
            .into_iter()
            .map(|row| sea_orm::TryIntoModel::try_into_model(row).unwrap())
            .collect();
        assert_eq!([rows[0].seq, rows[1].seq], [8, 9]);
        assert_eq!(rows[0].prev_hash, head.hash);
        assert_eq!(rows[1].prev_hash, rows[0].hash);
        assert_eq!(
            last,
            Head {
                seq: 9,
                hash: rows[1].hash.clone()
            }
        );
        let full = Head {
            seq: i32::MAX,
            ..Head::genesis()
        };
        assert!(chain(&events, now_micros(), full).is_err());
    }

    #[test]
    fn the_hash_covers_every_column_but_seq() {
        let row = audit_event::Model {
            seq: 1,
            occurred_at: now_micros(),
            actor_agent_id: Some(1),
            actor_role: "billing".into(),
            action: "viewed".into(),
            customer_id: Some(2),
            ticket_id: Some(3),
            fields: "[\"email\"]".into(),
            reason: None,
            request_id: "r".into(),
            policy_version: None,
            idempotency_key: None,
            prev_hash: GENESIS.into(),
            hash: String::new(),
        };
        let base = hash_of(&row);
        assert_eq!(
            hash_of(&audit_event::Model {
                seq: 9,
                ..row.clone()
            }),
            base
        );
        for changed in [
            audit_event::Model {
                customer_id: Some(3),
                ..row.clone()
            },
            audit_event::Model {
                fields: "[\"phone\"]".into(),
                ..row.clone()
            },
            audit_event::Model {
                reason: Some("x".into()),
                ..row.clone()
            },
            audit_event::Model {
                prev_hash: "1".into(),
                ..row.clone()
            },
            audit_event::Model {
                idempotency_key: Some("delivery-1".into()),
                ..row.clone()
            },
            audit_event::Model {
                policy_version: Some("0123456789abcdef".into()),
                ..row.clone()
            },
        ] {
            assert_ne!(hash_of(&changed), base);
        }
    }
}
