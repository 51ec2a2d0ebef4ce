//! Verification without revelation: what a caller says (date of birth, postcode, the last
//! 4 digits of a card) is checked against the record, and the agent learns only match or
//! no match per item, never the values. Rate-limited per agent and ticket, and audited
//! with the items and outcomes, never the answers.

use entity::{customer, payment_method, ticket};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::agents::Agent;
use crate::audit::{Action, Actor, AuditLog};
use crate::crypto::vault::Vault;
use crate::error::{ApiError, ApiResult};
use crate::policy::PolicySet;
use crate::ratelimit::{Rate, RateLimiter, Verdict};
use crate::vocabulary::Permission;

/// The outcome for one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum Check {
    /// The answer matches the record.
    Match,
    /// It does not.
    NoMatch,
    /// No answer was given for this item.
    NotGiven,
}

/// What the caller said (each answer at most 40 characters, no control characters: checked
/// after the permission, as before the layering pass).
#[derive(Clone, Debug, Default)]
pub struct Answers {
    /// Date of birth, `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
    /// Postcode of the postal address.
    pub postal_code: Option<String>,
    /// Last 4 digits of a payment method.
    pub card_last4: Option<String>,
}

/// Match or no match per item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Date of birth.
    pub date_of_birth: Check,
    /// Postcode.
    pub postal_code: Check,
    /// Card's last 4.
    pub card_last4: Check,
}

/// One agent's identity checks within one request.
pub struct Verification<'a> {
    /// The database.
    pub db: &'a DatabaseConnection,
    /// The policy snapshot of the request.
    pub policy: &'a PolicySet,
    /// Customers' data keys.
    pub vault: &'a Vault,
    /// The audit trail.
    pub audit: &'a AuditLog,
    /// Rate limits.
    pub limiter: &'a RateLimiter,
    /// The calling agent.
    pub agent: &'a Agent,
    /// The calling agent as the actor of audit events.
    pub actor: Actor,
    /// Checks per agent and ticket per hour.
    pub checks_per_hour: u64,
}

impl Verification<'_> {
    /// Checks `answers` against the customer of `ticket` (one the caller may see), if the
    /// policy grants `verify_identity` on it.
    pub async fn check(&self, ticket: &ticket::Model, answers: &Answers) -> ApiResult<Outcome> {
        if !self
            .agent
            .may(self.policy, Permission::VerifyIdentity, ticket)
        {
            return Err(ApiError::Forbidden(
                "you may not verify identities on this ticket".into(),
            ));
        }
        for answer in [
            &answers.date_of_birth,
            &answers.postal_code,
            &answers.card_last4,
        ]
        .into_iter()
        .flatten()
        {
            if answer.chars().count() > 40 || answer.chars().any(char::is_control) {
                return Err(ApiError::BadUserInput(
                    "answers are at most 40 characters, without control characters".into(),
                ));
            }
        }
        let rate = Rate {
            max: self.checks_per_hour,
            window: std::time::Duration::from_secs(3600),
        };
        let key = format!("identity:{}:{}", self.agent.id, ticket.id);
        if let Verdict::Limited { retry_after_secs } = self.limiter.hit(&key, rate).await {
            return Err(ApiError::RateLimited { retry_after_secs });
        }
        let id = ticket.customer_id;
        let row = customer::Entity::find_by_id(id)
            .one(self.db)
            .await?
            .ok_or(ApiError::NotFound)?;
        // Compared here, never returned: the agent learns match or no match.
        let opener = self.vault.opener(self.db, id).await?;
        let born = opener.text("customers", "date_of_birth", id, &row.date_of_birth)?;
        let postcode = opener.text("customers", "postal_code", id, &row.postal_code)?;
        let cards: Vec<String> = payment_method::Entity::find()
            .filter(payment_method::Column::CustomerId.eq(id))
            .all(self.db)
            .await?
            .into_iter()
            .map(|p| p.last4)
            .collect();
        let check = Outcome {
            date_of_birth: compare(answers.date_of_birth.as_ref(), &[born]),
            postal_code: compare(answers.postal_code.as_ref(), &[postcode]),
            card_last4: compare(answers.card_last4.as_ref(), &cards),
        };
        let outcomes: Vec<String> = [
            ("dateOfBirth", check.date_of_birth),
            ("postalCode", check.postal_code),
            ("cardLast4", check.card_last4),
        ]
        .iter()
        .filter(|(_, c)| *c != Check::NotGiven)
        .map(|(field, c)| {
            format!(
                "{field}: {}",
                if *c == Check::Match {
                    "match"
                } else {
                    "no match"
                }
            )
        })
        .collect();
        let fields = outcomes
            .iter()
            .filter_map(|o| o.split(':').next())
            .map(str::to_owned)
            .collect();
        self.audit
            .append(&[self.actor.event(
                Action::IdentityChecked,
                Some(id),
                Some(ticket.id),
                fields,
                Some(outcomes.join(", ")),
            )])
            .await
            .map_err(|e| ApiError::internal(e, "auditing an identity check"))?;
        Ok(check)
    }
}

fn normalize(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

fn compare(given: Option<&String>, actual: &[String]) -> Check {
    match given {
        None => Check::NotGiven,
        Some(given) if actual.iter().any(|a| normalize(a) == normalize(given)) => Check::Match,
        Some(_) => Check::NoMatch,
    }
}
