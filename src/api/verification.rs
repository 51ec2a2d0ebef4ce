//! Verification without revelation: an agent checks what a caller says (date of birth,
//! postcode, the last 4 digits of a card) against the record and learns only match or no
//! match per item — never the values. Rate-limited per agent and ticket, and audited.

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use entity::{customer, payment_method};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::audit::Action;
use crate::crypto::vault::decrypt_text;
use crate::error::{ApiError, ApiResult};
use crate::ids::TicketId;
use crate::ratelimit::{Rate, Verdict};
use crate::request::RequestContext;

/// What the caller said.
#[derive(InputObject)]
pub struct IdentityAnswers {
    /// Date of birth, `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
    /// Postcode of the postal address (spaces and case do not matter).
    pub postal_code: Option<String>,
    /// Last 4 digits of any payment method on file.
    pub card_last4: Option<String>,
}

/// The outcome for one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum Check {
    /// The answer matches the record.
    Match,
    /// It does not.
    NoMatch,
    /// No answer was given for this item.
    NotGiven,
}

/// Match or no match per item; never a value.
#[derive(SimpleObject)]
pub struct IdentityCheck {
    /// Date of birth.
    pub date_of_birth: Check,
    /// Postcode.
    pub postal_code: Check,
    /// Card's last 4.
    pub card_last4: Check,
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

/// Identity verification.
#[derive(Default)]
pub struct VerificationMutation;

#[Object]
impl VerificationMutation {
    /// Checks the caller's answers against the ticket's customer. For whoever the policy
    /// allows (`allow(agent, "verify_identity", ticket)`: the assignee, supervisors of the
    /// team); rate-limited per agent and ticket (`RATE_LIMITED`); every check is audited
    /// with the items checked and their outcomes, never the answers.
    async fn verify_customer_identity(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        answers: IdentityAnswers,
    ) -> ApiResult<IdentityCheck> {
        let request = RequestContext::get(ctx);
        let ticket = request
            .visible_ticket(TicketId::parse(&ticket_id, "ticketId")?)
            .await?;
        if !request.may(crate::vocabulary::Permission::VerifyIdentity, &ticket) {
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
            max: request.settings.identity_checks_per_hour,
            window: std::time::Duration::from_secs(3600),
        };
        let key = format!("identity:{}:{}", request.agent.id, ticket.id);
        if let Verdict::Limited { retry_after_secs } = request.limiter.hit(&key, rate).await {
            return Err(ApiError::RateLimited { retry_after_secs });
        }
        let id = ticket.customer_id;
        let row = customer::Entity::find_by_id(id)
            .one(&request.db)
            .await?
            .ok_or(ApiError::NotFound)?;
        let data_key = request.data_key(id).await?;
        let born = decrypt_text(
            &data_key,
            "customers",
            "date_of_birth",
            id,
            &row.date_of_birth,
        )?;
        let postcode = decrypt_text(&data_key, "customers", "postal_code", id, &row.postal_code)?;
        let cards: Vec<String> = payment_method::Entity::find()
            .filter(payment_method::Column::CustomerId.eq(id))
            .all(&request.db)
            .await?
            .into_iter()
            .map(|p| p.last4)
            .collect();
        let check = IdentityCheck {
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
        request
            .audit
            .append(&[request.audit_event(
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
