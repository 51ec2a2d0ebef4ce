//! Consent and transparency: versioned, plain-language notices the chat widget shows before
//! an agent accesses anything (readable without an agent token), and the consents agents
//! record on a ticket. Recording consent decides how long transcripts are kept
//! ([`crate::retention`]).
//!
//! Notices live beside the policies in `notices.json` and reload with them:
//!
//! ```json
//! [{ "kind": "recording", "version": "2026-01", "topics": ["*"], "channels": ["chat"],
//!    "text": "To help you best, we'll need to access your account details. …" }]
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One version of a notice, for some topics and channels (`*` matches any).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// What the customer consents to, e.g. `recording`.
    pub kind: String,
    /// The notice's version; consents record which one the customer saw.
    pub version: String,
    /// Topics it applies to.
    pub topics: Vec<String>,
    /// Channels it applies to.
    pub channels: Vec<String>,
    /// The plain-language text.
    pub text: String,
}

fn matches(list: &[String], word: &str) -> bool {
    list.iter().any(|w| w == "*" || w == word)
}

/// The notices of a policy directory (none if `notices.json` is absent).
#[derive(Clone, Debug, Default)]
pub struct Notices(Vec<Notice>);

impl Notices {
    /// Reads `dir/notices.json`.
    pub fn load(dir: &Path) -> Result<Notices, String> {
        let path = dir.join("notices.json");
        if !path.exists() {
            return Ok(Notices::default());
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let notices: Vec<Notice> =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for notice in &notices {
            if notice.text.trim().is_empty() || notice.version.trim().is_empty() {
                return Err(format!(
                    "{}: every notice needs a version and a text",
                    path.display()
                ));
            }
        }
        Ok(Notices(notices))
    }

    /// The notices for a topic and channel: for each kind, the latest version (the last one
    /// listed) that applies.
    pub fn current(&self, topic: &str, channel: &str) -> Vec<&Notice> {
        let mut out: Vec<&Notice> = Vec::new();
        for notice in self
            .0
            .iter()
            .filter(|n| matches(&n.topics, topic) && matches(&n.channels, channel))
        {
            match out.iter_mut().find(|n| n.kind == notice.kind) {
                Some(slot) => *slot = notice,
                None => out.push(notice),
            }
        }
        out
    }

    /// Whether `kind` has a notice of `version`.
    pub fn has(&self, kind: &str, version: &str) -> bool {
        self.0
            .iter()
            .any(|n| n.kind == kind && n.version == version)
    }
}

/// Records that `customer_id` accepted notice `kind` at `version`, replacing any consent of
/// the same kind given before, in one transaction.
/// Audited (`consent_recorded`, on the ticket through which it was given) in the same
/// transaction. Under an idempotency key, a retried delivery answers the consent it
/// recorded.
pub async fn record(
    writer: &crate::writer::Writer,
    step: crate::idempotency::Step<'_>,
    actor: &crate::audit::Actor,
    ticket: &entity::ticket::Model,
    kind: &str,
    version: &str,
) -> crate::error::ApiResult<entity::consent::Model> {
    let customer_id = ticket.customer_id;
    let event = actor.event(
        crate::audit::Action::ConsentRecorded,
        Some(customer_id),
        Some(ticket.id),
        Vec::new(),
        Some(format!("{kind}, notice {version}")),
    );
    let event = &event;
    use sea_orm::EntityTrait;
    if let Some(id) = step.recorded::<i32>()? {
        // A retried delivery: the consent it recorded (gone only if the customer was
        // erased since), never a second one.
        return entity::consent::Entity::find_by_id(id)
            .one(writer.connection())
            .await?
            .ok_or(crate::error::ApiError::NotFound);
    }
    let step = &step;
    writer
        .transaction(|txn| async move {
            let row = record_in(&txn, customer_id, kind, version).await?;
            crate::audit::append_in(&txn, std::slice::from_ref(event))
                .await
                .map_err(|e| crate::error::ApiError::internal(e, "auditing a consent"))?;
            step.record_in(&txn, &row.id).await?;
            Ok::<_, crate::error::ApiError>((row, txn))
        })
        .await
}

/// Withdraws `customer_id`'s consents of `kind`; returns how many were in force.
/// Audited (`consent_withdrawn`) when a consent was in force. Under an idempotency key, a
/// retried delivery answers the count it recorded.
pub async fn withdraw(
    writer: &crate::writer::Writer,
    step: crate::idempotency::Step<'_>,
    actor: &crate::audit::Actor,
    ticket: &entity::ticket::Model,
    kind: &str,
) -> crate::error::ApiResult<u64> {
    let customer_id = ticket.customer_id;
    let event = actor.event(
        crate::audit::Action::ConsentWithdrawn,
        Some(customer_id),
        Some(ticket.id),
        Vec::new(),
        Some(kind.to_owned()),
    );
    let event = &event;
    if let Some(n) = step.recorded::<u64>()? {
        return Ok(n);
    }
    let step = &step;
    writer
        .transaction(|txn| async move {
            let n = withdraw_in(&txn, customer_id, kind).await?;
            if n > 0 {
                crate::audit::append_in(&txn, std::slice::from_ref(event))
                    .await
                    .map_err(|e| crate::error::ApiError::internal(e, "auditing a consent"))?;
            }
            step.record_in(&txn, &n).await?;
            Ok::<_, crate::error::ApiError>((n, txn))
        })
        .await
}

/// Records a consent inside the caller's transaction (replacing one of the same kind given
/// before), unaudited: the caller audits it with the write it belongs to (see
/// [`record`], and `openTicket`, which records the notice shown before the chat).
pub async fn record_in(
    db: &impl sea_orm::ConnectionTrait,
    customer_id: i32,
    kind: &str,
    version: &str,
) -> Result<entity::consent::Model, sea_orm::DbErr> {
    use sea_orm::{ActiveModelTrait, Set};
    withdraw_in(db, customer_id, kind).await?;
    entity::consent::ActiveModel {
        customer_id: Set(customer_id),
        kind: Set(kind.to_owned()),
        notice_version: Set(version.to_owned()),
        given_at: Set(chrono::Utc::now()),
        withdrawn_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// [`withdraw`], inside the caller's transaction.
async fn withdraw_in(
    db: &impl sea_orm::ConnectionTrait,
    customer_id: i32,
    kind: &str,
) -> Result<u64, sea_orm::DbErr> {
    use entity::consent;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let result = consent::Entity::update_many()
        .col_expr(
            consent::Column::WithdrawnAt,
            sea_orm::sea_query::Expr::value(chrono::Utc::now()),
        )
        .filter(consent::Column::CustomerId.eq(customer_id))
        .filter(consent::Column::Kind.eq(kind))
        .filter(consent::Column::WithdrawnAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
