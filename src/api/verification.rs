//! `verifyCustomerIdentity` (the workflow is `crate::customers::verification`): an agent checks what a caller says (date of birth,
//! postcode, the last 4 digits of a card) against the record and learns only match or no
//! match per item — never the values. Rate-limited per agent and ticket, and audited.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};

use crate::customers::verification::Answers;
pub use crate::customers::verification::Check;
use crate::error::ApiResult;
use crate::ids::TicketId;
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
    ) -> ApiResult<Option<IdentityCheck>> {
        super::nullable(async {
            let request = RequestContext::get(ctx);
            let ticket = request
                .visible_ticket(TicketId::parse(&ticket_id, "ticketId")?)
                .await?;
            let outcome = request
                .verification()
                .check(
                    &ticket,
                    &Answers {
                        date_of_birth: answers.date_of_birth,
                        postal_code: answers.postal_code,
                        card_last4: answers.card_last4,
                    },
                )
                .await?;
            Ok(IdentityCheck {
                date_of_birth: outcome.date_of_birth,
                postal_code: outcome.postal_code,
                card_last4: outcome.card_last4,
            })
        })
        .await
    }
}
