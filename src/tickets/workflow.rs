//! What agents do to tickets. Today: changing a ticket's status, which on resolving or
//! closing revokes every reveal grant on it. The write side (claim, assign, hand off,
//! reply) belongs here too.

use chrono::Utc;
use entity::ticket;
use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};

use crate::agents::Agent;
use crate::audit::{Action, Actor, AuditLog, NewEvent};
use crate::error::{ApiError, ApiResult};
use crate::policy::PolicySet;
use crate::reveal::store::GrantStore;
use crate::vocabulary::{Permission, TicketStatus};

/// One agent's ticket workflow within one request.
pub struct Tickets<'a> {
    /// The database.
    pub db: &'a DatabaseConnection,
    /// The policy snapshot of the request.
    pub policy: &'a PolicySet,
    /// Where grants live.
    pub grants: &'a GrantStore,
    /// The audit trail.
    pub audit: &'a AuditLog,
    /// The calling agent.
    pub agent: &'a Agent,
    /// The calling agent as the actor of audit events.
    pub actor: Actor,
}

impl Tickets<'_> {
    /// Sets the status of `ticket` (one the caller may see), if the policy grants
    /// `set_status` on it. Resolving or closing revokes every grant on the ticket, audited
    /// one event per grant; if the grant store cannot be reached, nothing changes
    /// (`REVEAL_UNAVAILABLE`).
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
        let closing = matches!(status, TicketStatus::Resolved | TicketStatus::Closed);
        if closing {
            let revoked = self
                .grants
                .remove_for_ticket(ticket.id)
                .await
                .map_err(|error| {
                    tracing::warn!(%error, "cannot revoke the ticket's grants");
                    ApiError::RevealUnavailable
                })?;
            let events: Vec<NewEvent> = revoked
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
            self.audit
                .append(&events)
                .await
                .map_err(|e| ApiError::internal(e, "auditing revocations"))?;
        }
        let resolved_at = if closing {
            ticket.resolved_at.or(Some(Utc::now()))
        } else {
            None
        };
        let mut active: ticket::ActiveModel = ticket.into();
        active.status = Set(status.as_str().to_owned());
        active.resolved_at = Set(resolved_at);
        Ok(active.update(self.db).await?)
    }
}
