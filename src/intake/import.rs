//! `needtoknow import`: customers, tickets, messages and documents exported from another
//! helpdesk, one JSON object per line, written through the same intake functions as the
//! API (validation, card redaction, encryption, audit) by a service account.
//!
//! The line format (README, "Importing from another helpdesk"):
//!
//! ```text
//! {"type":"customer","externalId":"zd-user-1","fullName":"…","email":"…", …}
//! {"type":"ticket","externalId":"zd-1","customer":"zd-user-1","channel":"email","topic":"billing",
//!  "subject":"…","status":"resolved","createdAt":"2026-03-01T10:00:00Z","resolvedAt":"…"}
//! {"type":"message","externalId":"zd-c-5","ticket":"zd-1","author":"customer","body":"…","createdAt":"…"}
//! {"type":"document","externalId":"zd-a-3","ticket":"zd-1","kind":"id_document","fileName":"scan.png",
//!  "contentBase64":"…"}
//! ```
//!
//! A ticket names its customer, a message or document its ticket, by external id, on an
//! earlier line. Lines are read one at a time (memory stays flat) and written in batches
//! (of `--batch` records or 32 MiB of lines, whichever comes first), one transaction each, with a savepoint per record: a bad record is rolled back alone
//! and written to the reject file with its line number and the reason (never its content),
//! and a record is never half written. Every record has an external id, so running the same
//! file again (after a crash or Ctrl-C) writes nothing twice.

use std::io::{BufRead, Write};

use base64::Engine;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, TransactionTrait};
use serde::Deserialize;

use super::{CustomerRef, History, Intake, RawCustomer, TicketInput};
use crate::error::{ApiError, ApiResult};
use crate::input::{Body, ExternalId, Line};
use crate::tickets::Author;
use crate::vocabulary::{AttachmentKind, Permission, TicketStatus};

/// One line of an import file.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Record {
    /// A customer.
    Customer(RawCustomer),
    /// A ticket.
    Ticket(RawTicket),
    /// A message of a ticket.
    Message(RawMessage),
    /// A document of a ticket.
    Document(RawDocument),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawTicket {
    external_id: String,
    customer: String,
    channel: String,
    topic: String,
    subject: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    resolved_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawMessage {
    external_id: String,
    ticket: String,
    author: String,
    body: String,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawDocument {
    external_id: String,
    ticket: String,
    kind: String,
    file_name: String,
    content_base64: String,
}

/// A record checked and ready to write.
enum Parsed {
    Customer(super::CustomerInput),
    Ticket(TicketInput),
    Message {
        external_id: ExternalId,
        ticket: ExternalId,
        author: Author,
        body: Body,
        at: Option<DateTime<Utc>>,
    },
    Document {
        ticket: ExternalId,
        document: super::NewDocument,
    },
}

/// What an import did, counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Lines read (blank lines included).
    pub lines: u64,
    /// Customers created or changed.
    pub customers: u64,
    /// Tickets opened.
    pub tickets: u64,
    /// Messages added.
    pub messages: u64,
    /// Documents attached.
    pub documents: u64,
    /// Records already there (an earlier run wrote them), left as they were.
    pub unchanged: u64,
    /// Records refused, each in the reject file.
    pub rejected: u64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} lines: {} customers, {} tickets, {} messages, {} documents written; {} already there; {} rejected",
            self.lines,
            self.customers,
            self.tickets,
            self.messages,
            self.documents,
            self.unchanged,
            self.rejected
        )
    }
}

/// What one record did.
enum Outcome {
    Customer,
    Ticket,
    Message,
    Document,
    Unchanged,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadUserInput(message.into())
}

impl Intake<'_> {
    /// Checks one line's record against everything that does not need the database.
    fn parse_record(&self, line: &str, today: chrono::NaiveDate) -> ApiResult<Parsed> {
        let record: Record = serde_json::from_str(line).map_err(|e| {
            // serde's message names the field and position, never the value.
            bad(format!(
                "not a record of the import format: {}",
                describe(&e)
            ))
        })?;
        Ok(match record {
            Record::Customer(raw) => Parsed::Customer(raw.parse(today)?),
            Record::Ticket(raw) => {
                let status: TicketStatus = match raw.status.as_deref() {
                    None => TicketStatus::Open,
                    Some(s) => s
                        .parse()
                        .map_err(|_| bad("`status` must be open, pending, resolved or closed"))?,
                };
                let resolved = matches!(status, TicketStatus::Resolved | TicketStatus::Closed);
                let created_at = raw.created_at.unwrap_or_else(Utc::now);
                if created_at > Utc::now() || raw.resolved_at.is_some_and(|r| r > Utc::now()) {
                    return Err(bad(
                        "`createdAt` and `resolvedAt` must not be in the future",
                    ));
                }
                let input = TicketInput {
                    customer: CustomerRef::External(ExternalId::parse("customer", &raw.customer)?),
                    external_id: Some(ExternalId::parse("externalId", &raw.external_id)?),
                    channel: raw.channel,
                    topic: raw.topic,
                    subject: Line::parse("subject", &raw.subject)?,
                    message: None,
                    notice: None,
                    history: Some(History {
                        status,
                        created_at,
                        resolved_at: if resolved {
                            Some(raw.resolved_at.unwrap_or(created_at))
                        } else {
                            None
                        },
                    }),
                };
                self.check_ticket(&input)?;
                Parsed::Ticket(input)
            }
            Record::Message(raw) => Parsed::Message {
                external_id: ExternalId::parse("externalId", &raw.external_id)?,
                ticket: ExternalId::parse("ticket", &raw.ticket)?,
                author: match raw.author.as_str() {
                    "customer" => Author::Customer,
                    "agent" => Author::Agent,
                    "system" => Author::System,
                    _ => return Err(bad("`author` must be customer, agent or system")),
                },
                body: Body::parse("body", &raw.body)?,
                at: raw.created_at,
            },
            Record::Document(raw) => {
                let kind: AttachmentKind = raw
                    .kind
                    .parse()
                    .map_err(|_| bad("`kind` must be id_document, receipt or screenshot"))?;
                let content = base64::engine::general_purpose::STANDARD
                    .decode(raw.content_base64.as_bytes())
                    .map_err(|_| bad("`contentBase64` is not base64"))?;
                let document_type = self.check_document(&content)?;
                Parsed::Document {
                    ticket: ExternalId::parse("ticket", &raw.ticket)?,
                    document: super::NewDocument {
                        external_id: Some(ExternalId::parse("externalId", &raw.external_id)?),
                        kind,
                        file_name: Line::parse("fileName", &raw.file_name)?,
                        content,
                        document_type,
                    },
                }
            }
        })
    }

    /// The ticket with external id `id` if the caller may do `permission` on it; rejected
    /// as not found otherwise (another team's ticket included).
    async fn imported_ticket(
        &self,
        txn: &DatabaseTransaction,
        id: &ExternalId,
        permission: Permission,
    ) -> ApiResult<entity::ticket::Model> {
        let row = entity::ticket::Entity::find()
            .filter(entity::ticket::Column::ExternalId.eq(id.as_str()))
            .one(txn)
            .await?
            .filter(|row| self.agent.may(self.policy, permission, row))
            .ok_or_else(|| bad("`ticket` names no ticket of an earlier line"))?;
        Ok(row)
    }

    /// Writes one checked record inside the batch's transaction.
    async fn write_record(&self, txn: &DatabaseTransaction, record: &Parsed) -> ApiResult<Outcome> {
        Ok(match record {
            Parsed::Customer(input) => {
                if !self
                    .policy
                    .authorize(&self.agent.facts(), Permission::UpsertCustomer, None)
                {
                    return Err(self.refuse("create or update customers"));
                }
                let done = self.upsert_customer_in(txn, input).await?;
                if done.created || !done.changed.is_empty() {
                    Outcome::Customer
                } else {
                    Outcome::Unchanged
                }
            }
            Parsed::Ticket(input) => match self.open_ticket_in(txn, input).await {
                Ok(done) if done.created => Outcome::Ticket,
                Ok(_) => Outcome::Unchanged,
                Err(ApiError::NotFound) => {
                    return Err(bad(
                        "`customer` names no customer of an earlier line (or an erased one)",
                    ))
                }
                Err(other) => return Err(other),
            },
            Parsed::Message {
                external_id,
                ticket,
                author,
                body,
                at,
            } => {
                let row = self
                    .imported_ticket(txn, ticket, Permission::AppendMessage)
                    .await?;
                let posted = self
                    .append_message_in(txn, &row, *author, body, Some(external_id), *at)
                    .await?;
                if posted.created {
                    Outcome::Message
                } else {
                    Outcome::Unchanged
                }
            }
            Parsed::Document { ticket, document } => {
                let row = self
                    .imported_ticket(txn, ticket, Permission::AttachDocument)
                    .await?;
                let external = document.external_id.as_ref().map(ExternalId::as_str);
                let before = entity::attachment::Entity::find()
                    .filter(entity::attachment::Column::ExternalId.eq(external))
                    .one(txn)
                    .await?;
                self.attach_document_in(txn, &row, document).await?;
                if before.is_some() {
                    Outcome::Unchanged
                } else {
                    Outcome::Document
                }
            }
        })
    }

    /// Imports every line of `input`, `batch` records per transaction. Refused lines go to
    /// `rejects` as JSON lines `{"line": N, "reason": "…"}`; `progress` is told the bytes
    /// read and the counts after each batch. Stops at the first error that is not the
    /// record's fault (the database, the audit trail), after the batches before it
    /// committed: run it again to go on.
    pub async fn import(
        &self,
        input: impl BufRead,
        batch: usize,
        rejects: &mut impl Write,
        mut progress: impl FnMut(u64, &Report),
    ) -> anyhow::Result<Report> {
        let mut report = Report::default();
        // Refused lines wait with the batch, so the reject file lists them in line order.
        let mut pending: Vec<(u64, ApiResult<Parsed>)> = Vec::with_capacity(batch);
        let mut read = 0u64;
        // Documents make lines large: a batch is also cut at this many bytes of lines, so
        // memory stays bounded whatever the records hold.
        const BATCH_BYTES: usize = 32 * 1024 * 1024;
        let mut pending_bytes = 0usize;
        let mut analyzed_at = 0u64;
        let today = Utc::now().date_naive();
        for line in input.lines() {
            let line = line.map_err(|e| anyhow::anyhow!("reading the import: {e}"))?;
            report.lines += 1;
            read += line.len() as u64 + 1;
            if line.trim().is_empty() {
                continue;
            }
            pending_bytes += line.len();
            pending.push((report.lines, self.parse_record(&line, today)));
            if pending.len() >= batch || pending_bytes >= BATCH_BYTES {
                self.write_batch(&mut pending, rejects, &mut report).await?;
                pending_bytes = 0;
                self.refresh_statistics(&report, &mut analyzed_at).await?;
                progress(read, &report);
            }
        }
        self.write_batch(&mut pending, rejects, &mut report).await?;
        progress(read, &report);
        Ok(report)
    }

    /// On PostgreSQL, refreshes the planner's statistics of the tables the import fills
    /// each time the records written have doubled (from 1 000). Without it, a database
    /// whose statistics say "empty" (a fresh one, or one analyzed before the import) keeps
    /// planning the import's look-ups by external id as sequential scans, and every record
    /// costs more than the one before: 150 000 records took 20 minutes instead of 6.
    async fn refresh_statistics(
        &self,
        report: &Report,
        analyzed_at: &mut u64,
    ) -> anyhow::Result<()> {
        use sea_orm::ConnectionTrait;
        let db = self.writer.connection();
        let written = report.customers + report.tickets + report.messages + report.documents;
        if db.get_database_backend() != sea_orm::DatabaseBackend::Postgres
            || written < (*analyzed_at * 2).max(1_000)
        {
            return Ok(());
        }
        db.execute_unprepared("ANALYZE customers, tickets, messages, attachments, audit_events")
            .await
            .map_err(|e| anyhow::anyhow!("refreshing planner statistics: {e}"))?;
        *analyzed_at = written;
        Ok(())
    }

    /// Writes `pending` in one transaction, each record under a savepoint.
    async fn write_batch(
        &self,
        pending: &mut Vec<(u64, ApiResult<Parsed>)>,
        rejects: &mut impl Write,
        report: &mut Report,
    ) -> anyhow::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let records = &*pending;
        let outcomes = self
            .writer
            .transaction(|txn| async move {
                // Another attempt (after contention) starts from nothing.
                self.with_deferred(Vec::clear);
                let mut outcomes = Vec::with_capacity(records.len());
                for (line, record) in records {
                    let record = match record {
                        Ok(record) => record,
                        Err(error) => {
                            outcomes.push((*line, Err(error.clone())));
                            continue;
                        }
                    };
                    let savepoint = txn.begin().await?;
                    let audited = self.with_deferred(|events| events.len());
                    match self.write_record(&savepoint, record).await {
                        Ok(outcome) => {
                            savepoint.commit().await?;
                            outcomes.push((*line, Ok(outcome)));
                        }
                        Err(
                            error @ (ApiError::BadUserInput(_)
                            | ApiError::NotFound
                            | ApiError::Forbidden(_)
                            | ApiError::Conflict { .. }),
                        ) => {
                            savepoint.rollback().await?;
                            // The record's deferred audit events go with it.
                            self.with_deferred(|events| events.truncate(audited));
                            outcomes.push((*line, Err(error)));
                        }
                        Err(other) => return Err(other),
                    }
                }
                let events = self.with_deferred(std::mem::take);
                crate::audit::append_in(&txn, &events)
                    .await
                    .map_err(|e| ApiError::internal(e, "auditing an import batch"))?;
                Ok::<_, ApiError>((outcomes, txn))
            })
            .await
            .map_err(|e| anyhow::anyhow!("writing a batch: {} ({})", e.message(), e.code()))?;
        for (line, outcome) in outcomes {
            match outcome {
                Ok(Outcome::Customer) => report.customers += 1,
                Ok(Outcome::Ticket) => report.tickets += 1,
                Ok(Outcome::Message) => report.messages += 1,
                Ok(Outcome::Document) => report.documents += 1,
                Ok(Outcome::Unchanged) => report.unchanged += 1,
                Err(error) => reject(rejects, line, &error, report)?,
            }
        }
        pending.clear();
        Ok(())
    }
}

impl Intake<'_> {
    /// Runs `f` on the batch's deferred audit events. Without a buffer (events appended as
    /// they happen, inside each record's savepoint) it runs on an empty list.
    fn with_deferred<T>(&self, f: impl FnOnce(&mut Vec<crate::audit::NewEvent>) -> T) -> T {
        match &self.deferred_audit {
            Some(events) => f(&mut events.lock().unwrap_or_else(|p| p.into_inner())),
            None => f(&mut Vec::new()),
        }
    }
}

/// A serde error, as the position and what was expected: never the input's text.
fn describe(error: &serde_json::Error) -> String {
    let text = error.to_string();
    // serde_json quotes unexpected string values ("invalid value: string \"…\""); keep the
    // kind of problem and its position only.
    let kind = match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            "malformed JSON".to_owned()
        }
        _ if text.contains("unknown variant") => {
            "`type` must be customer, ticket, message or document".to_owned()
        }
        _ if text.contains("unknown field") => text
            .split(" at line")
            .next()
            .unwrap_or("an unknown field")
            .to_owned(),
        _ if text.contains("missing field") => text
            .split(" at line")
            .next()
            .unwrap_or("a missing field")
            .to_owned(),
        _ => "a field of the wrong type".to_owned(),
    };
    format!("{kind} (column {})", error.column())
}

fn reject(
    rejects: &mut impl Write,
    line: u64,
    error: &ApiError,
    report: &mut Report,
) -> anyhow::Result<()> {
    report.rejected += 1;
    let reason = match error {
        ApiError::NotFound => "not found (an erased customer, or another team's ticket)".to_owned(),
        other => other.message(),
    };
    writeln!(
        rejects,
        "{}",
        serde_json::json!({ "line": line, "code": error.code(), "reason": reason })
    )
    .map_err(|e| anyhow::anyhow!("writing the reject file: {e}"))
}
