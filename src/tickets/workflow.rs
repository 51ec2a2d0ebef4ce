//! What agents do to tickets. Today: changing a ticket's status, which on resolving or
//! closing revokes every reveal grant on it. The write side (claim, assign, hand off,
//! reply) belongs here too.

use chrono::Utc;
use entity::ticket;
use sea_orm::{ActiveModelTrait, Set};

use crate::agents::Agent;
use crate::audit::{Action, Actor, NewEvent};
use crate::error::{ApiError, ApiResult};
use crate::policy::PolicySet;
use crate::reveal::store::GrantStore;
use crate::vocabulary::{Permission, TicketStatus};
use crate::writer::Writer;

/// One agent's ticket workflow within one request.
pub struct Tickets<'a> {
    /// Where writes go.
    pub writer: &'a Writer,
    /// The policy snapshot of the request.
    pub policy: &'a PolicySet,
    /// Where grants live.
    pub grants: &'a GrantStore,
    /// The calling agent.
    pub agent: &'a Agent,
    /// The calling agent as the actor of audit events.
    pub actor: Actor,
    /// The request's idempotency claim, if it sent a key.
    pub claim: Option<&'a crate::idempotency::Claim>,
}

impl Tickets<'_> {
    /// Sets the status of `ticket` (one the caller may see), if the policy grants
    /// `set_status` on it. Resolving or closing revokes every grant on the ticket, audited
    /// one event per grant; if the grant store cannot be reached, nothing changes
    /// (`REVEAL_UNAVAILABLE`). The grants go first (failing closed: a failure after that
    /// leaves fewer grants, never more); the status and the revocations' audit events are
    /// then written in one transaction.
    pub async fn set_status(
        &self,
        ticket: ticket::Model,
        status: TicketStatus,
    ) -> ApiResult<ticket::Model> {
        if !self.agent.may(self.policy, Permission::SetStatus, &ticket) {
            return Err(ApiError::Forbidden(
                "you may not change this ticket's status".into(),
            ));
        }
        let step = crate::idempotency::step(self.claim);
        if step.recorded::<i32>()?.is_some() {
            // A retried delivery: the status was set; the ticket as it is now answers.
            return Ok(ticket);
        }
        let closing = matches!(status, TicketStatus::Resolved | TicketStatus::Closed);
        let mut events: Vec<NewEvent> = Vec::new();
        if closing {
            let revoked = self
                .grants
                .remove_for_ticket(ticket.id)
                .await
                .map_err(|error| {
                    tracing::warn!(%error, "cannot revoke the ticket's grants");
                    ApiError::RevealUnavailable
                })?;
            events = revoked
                .iter()
                .map(|g| {
                    self.actor.event(
                        Action::RevealRevoked,
                        Some(g.customer_id),
                        Some(g.ticket_id),
                        vec![g.field.to_string()],
                        Some(format!("ticket {}", status.as_str())),
                    )
                })
                .collect();
        }
        let resolved_at = if closing {
            ticket.resolved_at.or(Some(Utc::now()))
        } else {
            None
        };
        let (events, step) = (&events, &step);
        self.writer
            .transaction(|txn| {
                let mut active: ticket::ActiveModel = ticket.clone().into();
                active.status = Set(status.as_str().to_owned());
                active.resolved_at = Set(resolved_at);
                async move {
                    let row = active.update(&txn).await?;
                    crate::audit::append_in(&txn, events)
                        .await
                        .map_err(|e| ApiError::internal(e, "auditing revocations"))?;
                    step.record_in(&txn, &row.id).await?;
                    Ok((row, txn))
                }
            })
            .await
    }
}
