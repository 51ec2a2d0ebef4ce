//! Retention: personal data is kept only as long as needed after a ticket is resolved.
//!
//! Periods are configured per attachment kind and for chat transcripts (with and without
//! the customer's recording consent). The sweeper runs inside the service on an interval
//! and on demand (`needtoknow retention sweep [--as-of]`); it is idempotent, deletes rows
//! (and so their ciphertext), records one audit event per purge without any content, and
//! never touches tickets that are not resolved or closed.
//!
//! Each purged row is first recorded in the erasure ledger
//! ([`crate::ledger`]), then deleted in one transaction with its audit event, so a
//! restored backup cannot bring it back.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use entity::{attachment, consent, message, ticket};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::audit::{Action, NewEvent};
use crate::ledger::{self, Ledger};
use crate::writer::Writer;

/// How long data is kept after its ticket is resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Per attachment kind (e.g. `id_document`); kinds not listed are kept.
    pub attachments: BTreeMap<String, chrono::Duration>,
    /// Chat transcripts when the customer consented to recording.
    pub transcripts: chrono::Duration,
    /// Chat transcripts without recording consent.
    pub transcripts_without_consent: chrono::Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            attachments: BTreeMap::from([("id_document".to_owned(), chrono::Duration::days(7))]),
            transcripts: chrono::Duration::days(365),
            transcripts_without_consent: chrono::Duration::zero(),
        }
    }
}

/// Parses `7d`, `12h`, `30m`, `0d`: a non-negative whole number and a unit.
pub fn parse_period(text: &str) -> Result<chrono::Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a period like 7d, 12h or 30m"))?;
    if n < 0 {
        return Err(format!("{text:?}: a period cannot be negative"));
    }
    match unit {
        "d" => Ok(chrono::Duration::days(n)),
        "h" => Ok(chrono::Duration::hours(n)),
        "m" => Ok(chrono::Duration::minutes(n)),
        _ => Err(format!("{text:?} is not a period like 7d, 12h or 30m")),
    }
}

impl RetentionPolicy {
    /// Parses the `retention` setting: comma-separated `name=period` entries over the
    /// defaults; names are attachment kinds, `transcripts` and `transcripts_without_consent`.
    /// The error does not name the setting: the caller knows where the value came from.
    pub fn parse(spec: &str) -> Result<RetentionPolicy, String> {
        let mut policy = RetentionPolicy::default();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, period) = entry
                .split_once('=')
                .ok_or_else(|| format!("{entry:?} is not name=period"))?;
            let period = parse_period(period).map_err(|e| format!("{}: {e}", name.trim()))?;
            match name.trim() {
                "transcripts" => policy.transcripts = period,
                "transcripts_without_consent" => policy.transcripts_without_consent = period,
                kind if crate::policy::is_word(kind) => {
                    policy.attachments.insert(kind.to_owned(), period);
                }
                other => return Err(format!("{other:?} is not a name")),
            }
        }
        Ok(policy)
    }
}

/// What one sweep deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Attachments deleted.
    pub attachments: u64,
    /// Messages deleted.
    pub messages: u64,
}

/// Where the sweeper reads, writes and records.
#[derive(Clone)]
pub struct Sweeper {
    /// For reads.
    pub db: DatabaseConnection,
    /// Where writes go.
    pub writer: Writer,
    /// Where purges are recorded outside the database.
    pub ledger: Ledger,
    /// The periods.
    pub policy: RetentionPolicy,
}

impl Sweeper {
    /// Deletes what the policy no longer allows to keep as of `as_of`.
    #[tracing::instrument(name = "retention.sweep", skip_all, fields(%as_of))]
    pub async fn sweep(&self, as_of: DateTime<Utc>) -> anyhow::Result<SweepReport> {
        let db = &self.db;
        let resolved = ticket::Entity::find()
            .filter(ticket::Column::Status.is_in(["resolved", "closed"]))
            .filter(ticket::Column::ResolvedAt.is_not_null())
            .all(db)
            .await
            .context("listing resolved tickets")?;
        let mut report = SweepReport::default();
        for ticket in resolved {
            let Some(resolved_at) = ticket.resolved_at else {
                continue;
            };
            let mut attachments = Vec::new();
            for (kind, period) in &self.policy.attachments {
                if resolved_at + *period > as_of {
                    continue;
                }
                attachments.extend(
                    attachment::Entity::find()
                        .filter(attachment::Column::TicketId.eq(ticket.id))
                        .filter(attachment::Column::Kind.eq(kind.as_str()))
                        .all(db)
                        .await
                        .context("listing attachments past retention")?
                        .into_iter()
                        .map(|a| (a.id, ledger::digest(&a.content))),
                );
            }
            let consented = consent::Entity::find()
                .filter(consent::Column::CustomerId.eq(ticket.customer_id))
                .filter(consent::Column::Kind.eq("recording"))
                .filter(consent::Column::WithdrawnAt.is_null())
                .one(db)
                .await
                .context("reading consents")?
                .is_some();
            let period = if consented {
                self.policy.transcripts
            } else {
                self.policy.transcripts_without_consent
            };
            let mut messages = Vec::new();
            if resolved_at + period <= as_of {
                messages = message::Entity::find()
                    .filter(message::Column::TicketId.eq(ticket.id))
                    .all(db)
                    .await
                    .context("listing messages past retention")?
                    .into_iter()
                    .map(|m| (m.id, ledger::digest(&m.body)))
                    .collect();
            }
            if attachments.is_empty() && messages.is_empty() {
                continue;
            }
            self.purge(&ticket, &attachments, &messages).await?;
            report.attachments += attachments.len() as u64;
            report.messages += messages.len() as u64;
        }
        if report != SweepReport::default() {
            tracing::info!(
                attachments = report.attachments,
                messages = report.messages,
                "retention sweep purged data"
            );
        }
        Ok(report)
    }

    /// Records the rows in the ledger, then deletes them with their audit events in one
    /// transaction.
    async fn purge(
        &self,
        ticket: &ticket::Model,
        attachments: &[(i32, String)],
        messages: &[(i32, String)],
    ) -> anyhow::Result<()> {
        let at = Utc::now();
        let entries: Vec<ledger::Entry> = [("attachments", attachments), ("messages", messages)]
            .into_iter()
            .flat_map(|(table, rows)| {
                rows.iter().map(move |(id, digest)| ledger::Entry::Purge {
                    table: table.into(),
                    id: *id,
                    digest: digest.clone(),
                    at,
                })
            })
            .collect();
        self.ledger
            .append(&entries)
            .context("recording a purge in the erasure ledger")?;
        let mut events = Vec::new();
        for (count, field) in [
            (attachments.len(), "attachments"),
            (messages.len(), "messages"),
        ] {
            if count > 0 {
                events.push(NewEvent {
                    actor_agent_id: None,
                    actor_role: "retention".into(),
                    action: Action::Purged,
                    customer_id: Some(ticket.customer_id),
                    ticket_id: Some(ticket.id),
                    fields: vec![field.into()],
                    reason: Some(format!("{count} row(s) past retention")),
                    request_id: "retention".into(),
                    policy_version: None,
                    idempotency_key: None,
                });
            }
        }
        let ids = |rows: &[(i32, String)]| rows.iter().map(|(id, _)| *id).collect::<Vec<_>>();
        let (attachment_ids, message_ids, events) = (ids(attachments), ids(messages), &events);
        self.writer
            .transaction(|txn| {
                let (attachment_ids, message_ids) = (attachment_ids.clone(), message_ids.clone());
                async move {
                    attachment::Entity::delete_many()
                        .filter(attachment::Column::Id.is_in(attachment_ids))
                        .exec(&txn)
                        .await
                        .context("purging attachments")?;
                    message::Entity::delete_many()
                        .filter(message::Column::Id.is_in(message_ids))
                        .exec(&txn)
                        .await
                        .context("purging messages")?;
                    crate::audit::append_in(&txn, events)
                        .await
                        .context("auditing a purge")?;
                    Ok::<_, anyhow::Error>(((), txn))
                }
            })
            .await
    }

    /// Runs the sweeper every `interval` for as long as the runtime lives (first run after
    /// one interval, so start-up stays quick).
    pub fn spawn(self, interval: Duration) {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                if let Err(error) = self.sweep(Utc::now()).await {
                    tracing::error!(
                        error = format!("{error:#}"),
                        "retention sweep failed; will retry"
                    );
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_negative_or_garbage_is_refused() {
        assert_eq!(parse_period("7d"), Ok(chrono::Duration::days(7)));
        assert_eq!(parse_period("0d"), Ok(chrono::Duration::zero()));
        assert_eq!(parse_period("12h"), Ok(chrono::Duration::hours(12)));
        for bad in ["-1d", "7", "d", "7w", "", "1.5d"] {
            assert!(parse_period(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_retention_setting_overrides_the_defaults() {
        let policy =
            RetentionPolicy::parse("id_document=1d, receipt=30d,transcripts_without_consent=2d")
                .unwrap();
        assert_eq!(policy.attachments["id_document"], chrono::Duration::days(1));
        assert_eq!(policy.attachments["receipt"], chrono::Duration::days(30));
        assert_eq!(policy.transcripts, chrono::Duration::days(365));
        assert_eq!(
            policy.transcripts_without_consent,
            chrono::Duration::days(2)
        );
        assert!(RetentionPolicy::parse("id_document=-7d")
            .unwrap_err()
            .contains("negative"));
        assert!(RetentionPolicy::parse("id_document").is_err());
    }
}
