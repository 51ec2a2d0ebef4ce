//! Reveal grants: an agent gets plaintext beyond their policy level only through a grant —
//! scoped to (agent, ticket, field), reasoned, short-lived, revocable and audited.
//!
//! `WITH_REASON` reveals are granted at once; `WITH_APPROVAL` reveals become pending requests
//! that a supervisor of the ticket's team approves or denies. Grants live in the
//! [`store::GrantStore`]; pending requests in the database. Every step writes an audit event.

pub mod store;
pub mod workflow;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;

use crate::audit::{Action, Actor, AuditLog, NewEvent};
use crate::error::ApiError;
use crate::vocabulary::{Field, Subject};
use store::{Grant, GrantStore};

/// Shortest and longest reason, in characters, after trimming.
pub const REASON_CHARS: std::ops::RangeInclusive<usize> = 10..=500;

/// Characters that change how the text around them is shown without being seen (bidi
/// overrides, which can make an audit line read differently from what it holds, and
/// zero-width characters): [`crate::input::is_invisible`], one list for every input.
pub use crate::input::is_invisible;

/// Why an agent needs to see more: trimmed, 10-500 characters, no control characters and
/// no invisible formatting characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    /// Parses a reason as typed by the agent.
    pub fn parse(text: &str) -> Result<Reason, ApiError> {
        let text = text.trim();
        let chars = text.chars().count();
        if !REASON_CHARS.contains(&chars) {
            return Err(ApiError::BadUserInput(format!(
                "`reason` must be {} to {} characters after trimming (got {chars})",
                REASON_CHARS.start(),
                REASON_CHARS.end()
            )));
        }
        if text.chars().any(char::is_control) {
            return Err(ApiError::BadUserInput(
                "`reason` must not contain control characters (line breaks, tabs, …)".into(),
            ));
        }
        if text.chars().any(is_invisible) {
            return Err(ApiError::BadUserInput(
                "`reason` must not contain invisible formatting characters (bidi overrides, zero-width spaces)".into(),
            ));
        }
        Ok(Reason(text.to_owned()))
    }

    /// The reason's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Expands field names and class names into protected fields (deduplicated, in schema
/// order). Classes `account` and `ticket_history` are never revealable (they are plain or
/// not shown at all), but the policy decides that, not this function.
pub fn expand(subjects: &[String]) -> Result<Vec<Field>, ApiError> {
    if subjects.is_empty() {
        return Err(ApiError::BadUserInput(
            "`fields` must name at least one field or class".into(),
        ));
    }
    if subjects.len() > Field::ALL.len() {
        return Err(ApiError::BadUserInput(
            "`fields` names too many fields".into(),
        ));
    }
    let mut fields = BTreeSet::new();
    for subject in subjects {
        let Some(subject) = Subject::parse(subject) else {
            return Err(ApiError::BadUserInput(format!(
                "`fields`: {:?} is neither a field of Customer nor a data class",
                subject.chars().take(40).collect::<String>()
            )));
        };
        match subject {
            Subject::Field(field) => {
                fields.insert(field.index());
            }
            Subject::Class(class) => fields.extend(class.fields().map(Field::index)),
        }
    }
    Ok(fields.into_iter().map(|i| Field::ALL[i]).collect())
}

/// The grants of the agent making one request, fetched at most once per request (one round
/// trip to the store). If the store fails, the request sees no grants: protected fields
/// fall back to their policy level.
pub struct RequestGrants {
    store: GrantStore,
    audit: AuditLog,
    agent_id: i32,
    actor: Actor,
    cell: OnceCell<Arc<[Grant]>>,
}

impl RequestGrants {
    /// The grants of the agent `actor` names, for one request.
    pub fn new(store: GrantStore, audit: AuditLog, agent_id: i32, actor: Actor) -> Self {
        RequestGrants {
            store,
            audit,
            agent_id,
            actor,
            cell: OnceCell::new(),
        }
    }

    /// The agent's active grants (by the service's clock).
    pub async fn active(&self) -> Arc<[Grant]> {
        // Every protected field of a response asks, and only the first one fetches. The
        // fetch is boxed so that the others, and every future that awaits this one, do not
        // carry its state: inline, it made each protected field's future about 700 bytes
        // larger, and such a future is moved several times on its way to being polled.
        if let Some(grants) = self.cell.get() {
            return grants.clone();
        }
        Box::pin(self.fetch()).await
    }

    /// [`RequestGrants::active`] the first time: one round trip to the store.
    async fn fetch(&self) -> Arc<[Grant]> {
        self.cell
            .get_or_init(|| async {
                match self.store.of_agent(self.agent_id).await {
                    Ok(all) => {
                        let now = Utc::now();
                        let (active, expired): (Vec<Grant>, Vec<Grant>) =
                            all.into_iter().partition(|g| g.is_active(now));
                        if !expired.is_empty() {
                            self.record_expiry(&expired).await;
                        }
                        active.into()
                    }
                    Err(error) => {
                        tracing::warn!(%error, "grant store unavailable; serving policy levels");
                        Arc::from([])
                    }
                }
            })
            .await
            .clone()
    }

    /// When the active grant for `field` on `ticket_id` expires, if there is one.
    pub async fn expiry(&self, ticket_id: i32, field: Field) -> Option<DateTime<Utc>> {
        let now = Utc::now();
        self.active()
            .await
            .iter()
            .filter(|g| g.ticket_id == ticket_id && g.field == field && g.is_active(now))
            .map(|g| g.expires_at)
            .max()
    }

    /// Records "grant expiry seen" and drops the expired grants from the store.
    async fn record_expiry(&self, expired: &[Grant]) {
        let events: Vec<NewEvent> = expired
            .iter()
            .map(|g| {
                self.actor.event(
                    Action::GrantExpired,
                    Some(g.customer_id),
                    Some(g.ticket_id),
                    vec![g.field.to_string()],
                    None,
                )
            })
            .collect();
        match self.audit.append(&events).await {
            Ok(()) => {
                if let Err(error) = self.store.remove(expired).await {
                    tracing::warn!(%error, "could not drop expired grants");
                }
            }
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "could not audit grant expiry")
            }
        }
    }
}

/// A fresh grant id.
pub fn new_grant_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        assert_eq!(
            Reason::parse("  customer asked to update email  ")
                .unwrap()
                .as_str(),
            "customer asked to update email"
        );
        for bad in [
            "",
            "too short",
            &"x".repeat(501),
            "line one\nline two is here",
            "refund \u{202E}dnufer\u{202C} for the customer",
            "zero\u{200B}width space reason",
        ] {
            assert!(Reason::parse(bad).is_err(), "{bad:?}");
        }
        assert!(
            Reason::parse(&"é".repeat(500)).is_ok(),
            "characters, not bytes"
        );
    }

    #[test]
    fn classes_expand_to_their_fields() {
        let fields = expand(&["contact".into(), "email".into(), "paymentMethods".into()]).unwrap();
        assert_eq!(fields, [Field::Email, Field::Phone, Field::PaymentMethods]);
        assert!(expand(&["socialSecurityNumber".into()]).is_err());
        assert!(expand(&[]).is_err());
    }
}
