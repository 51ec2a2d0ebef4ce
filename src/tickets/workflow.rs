//! What agents do to tickets: reply, claim, assign, hand off, and change the status (which
//! on resolving or closing revokes every reveal grant on it). Each is asked of the policy
//! (`allow(agent, action, ticket)`), written in one transaction with its audit events, and
//! takes a step of the request's idempotency claim.

use chrono::Utc;
use entity::ticket;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};

use crate::agents::Agent;
use crate::audit::{Action, Actor, NewEvent};
use crate::error::{ApiError, ApiResult};
use crate::policy::PolicySet;
use crate::reveal::store::GrantStore;
use crate::vocabulary::{Permission, TicketStatus};
use crate::writer::Writer;

/// One agent's ticket workflow within one request.
pub struct Tickets<'a> {
    /// Reads (agents named by handle).
    pub db: &'a DatabaseConnection,
    /// Customers' data keys (messages are sealed).
    pub vault: &'a crate::crypto::vault::Vault,
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
    /// `set_status` on it; a change is audited (`ticket_status_changed`). Resolving or
    /// closing revokes every grant on the ticket, audited one event per grant; if the grant store cannot be reached, nothing changes
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
            events = self.revocations(&revoked, &format!("ticket {}", status.as_str()));
        }
        // Every status set is audited, a repeated one too ("pending -> pending"): the
        // trail records what agents did.
        events.push(self.actor.event(
            Action::TicketStatusChanged,
            Some(ticket.customer_id),
            Some(ticket.id),
            Vec::new(),
            Some(format!("{} -> {}", ticket.status, status.as_str())),
        ));
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

/// A role a ticket can be handed off to, and the topic it moves to: the role's agents
/// would see something of the customer that the caller does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandOffTarget {
    /// The role.
    pub role: String,
    /// How to name it to a customer.
    pub label: String,
    /// The topic the ticket takes: its own when the role helps on it, else the first topic
    /// (in policy order) on which it does.
    pub topic: String,
}

/// What a hand-off did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HandedOff {
    /// The ticket's id.
    pub ticket_id: i32,
    /// The role it went to.
    pub role: String,
    /// Its topic now.
    pub topic: String,
    /// The agent it was assigned to, if one was named; otherwise it waits in the topic's
    /// queue.
    pub assignee_id: Option<i32>,
    /// The note's message id.
    pub note_message_id: i32,
    /// How many of the previous assignee's reveal grants on it were revoked.
    pub revoked_grants: usize,
}

impl Tickets<'_> {
    fn refuse(&self, what: &str) -> ApiError {
        ApiError::Forbidden(format!("you may not {what}"))
    }

    /// Replies to the customer on `ticket` (one the caller may see), if the policy grants
    /// `reply` on it. The body is redacted and sealed like every message; a closed ticket
    /// refuses it (`CONFLICT`), a resolved one reopens. Audited (`message_added`).
    pub async fn reply(
        &self,
        ticket: &ticket::Model,
        body: &crate::input::Body,
    ) -> ApiResult<crate::tickets::Posted> {
        if !self.agent.may(self.policy, Permission::Reply, ticket) {
            return Err(self.refuse("reply on this ticket"));
        }
        let step = crate::idempotency::step(self.claim);
        if let Some(done) = step.recorded::<crate::tickets::Posted>()? {
            return Ok(done);
        }
        let step = &step;
        self.writer
            .transaction(|txn| async move {
                let message = crate::tickets::NewMessage {
                    author: crate::tickets::Author::Agent,
                    author_agent_id: Some(self.agent.id),
                    body: body.as_str(),
                    at: chrono::Utc::now(),
                    external_id: None,
                };
                let posted = crate::tickets::post_in(&txn, self.vault, ticket.id, &message).await?;
                let events = crate::tickets::message_events(
                    &self.actor,
                    &posted,
                    ticket.customer_id,
                    crate::tickets::Author::Agent,
                );
                crate::audit::append_in(&txn, &events)
                    .await
                    .map_err(|e| ApiError::internal(e, "auditing a reply"))?;
                step.record_in(&txn, &posted).await?;
                Ok::<_, ApiError>((posted, txn))
            })
            .await
    }

    /// Takes `ticket`, an unassigned ticket of the caller's queues (the policy's `claim`).
    /// When two agents claim at once, the first wins and the second gets `CONFLICT`.
    /// Audited (`ticket_claimed`).
    pub async fn claim(&self, ticket: &ticket::Model) -> ApiResult<ticket::Model> {
        if !self.agent.may(self.policy, Permission::Claim, ticket) {
            return Err(self.refuse("claim this ticket (only unassigned tickets of your queues)"));
        }
        let step = crate::idempotency::step(self.claim);
        if step.recorded::<i32>()?.is_some() {
            return self.reread(ticket.id).await;
        }
        let step = &step;
        let me = self.agent.id;
        self.writer
            .transaction(|txn| async move {
                use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
                let taken = ticket::Entity::update_many()
                    .col_expr(ticket::Column::AssigneeId, Expr::value(me))
                    .filter(ticket::Column::Id.eq(ticket.id))
                    .filter(ticket::Column::AssigneeId.is_null())
                    .exec(&txn)
                    .await?;
                if taken.rows_affected == 0 {
                    return Err(ApiError::Conflict {
                        message: "someone else took this ticket first".into(),
                        retry_after_secs: None,
                    });
                }
                let event = self.actor.event(
                    Action::TicketClaimed,
                    Some(ticket.customer_id),
                    Some(ticket.id),
                    Vec::new(),
                    None,
                );
                crate::audit::append_in(&txn, &[event])
                    .await
                    .map_err(|e| ApiError::internal(e, "auditing a claim"))?;
                step.record_in(&txn, &ticket.id).await?;
                let row = ticket::Entity::find_by_id(ticket.id)
                    .one(&txn)
                    .await?
                    .ok_or(ApiError::NotFound)?;
                Ok::<_, ApiError>((row, txn))
            })
            .await
    }

    async fn reread(&self, id: i32) -> ApiResult<ticket::Model> {
        use sea_orm::EntityTrait;
        ticket::Entity::find_by_id(id)
            .one(self.writer.connection())
            .await?
            .ok_or(ApiError::NotFound)
    }

    /// An active agent (not a service account) of the ticket's team, by handle; a clear
    /// `BAD_USER_INPUT` otherwise.
    async fn assignable(&self, ticket: &ticket::Model, handle: &str) -> ApiResult<Agent> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let row = entity::agent::Entity::find()
            .filter(entity::agent::Column::Handle.eq(handle))
            .one(self.db)
            .await?;
        let agent = match row {
            Some(row) if row.active && row.kind == "agent" && row.team == ticket.team => {
                Agent::try_from(row).map_err(|e| ApiError::internal(e, "reading an agent"))?
            }
            _ => {
                return Err(ApiError::BadUserInput(
                    "`agent` must be the handle of an active agent of the ticket's team".into(),
                ))
            }
        };
        Ok(agent)
    }

    /// Revokes `agent_id`'s reveal grants on `ticket_id`; the revocations' audit events.
    /// A grant store that does not answer fails the change (`REVEAL_UNAVAILABLE`), so an
    /// agent never keeps grants on a ticket they lost.
    async fn revoke_grants_of(
        &self,
        agent_id: Option<i32>,
        ticket_id: i32,
        why: &str,
    ) -> ApiResult<Vec<NewEvent>> {
        let Some(agent_id) = agent_id else {
            return Ok(Vec::new());
        };
        let unavailable = |error: crate::reveal::store::StoreError| {
            tracing::warn!(%error, "cannot revoke the previous assignee's grants");
            ApiError::RevealUnavailable
        };
        let grants: Vec<_> = self
            .grants
            .of_agent(agent_id)
            .await
            .map_err(unavailable)?
            .into_iter()
            .filter(|g| g.ticket_id == ticket_id)
            .collect();
        self.grants.remove(&grants).await.map_err(unavailable)?;
        Ok(self.revocations(&grants, why))
    }

    /// One `reveal_revoked` event per grant, with `why` as the reason.
    fn revocations(&self, grants: &[crate::reveal::store::Grant], why: &str) -> Vec<NewEvent> {
        grants
            .iter()
            .map(|g| {
                self.actor.event(
                    Action::RevealRevoked,
                    Some(g.customer_id),
                    Some(g.ticket_id),
                    vec![g.field.to_string()],
                    Some(why.to_owned()),
                )
            })
            .collect()
    }

    /// Assigns `ticket` to the agent `handle` (the policy's `assign`, e.g. supervisors on
    /// their team's tickets). The previous assignee's reveal grants on it are revoked.
    /// Audited (`ticket_assigned`, naming both agents by id).
    pub async fn assign(&self, ticket: &ticket::Model, handle: &str) -> ApiResult<ticket::Model> {
        if !self.agent.may(self.policy, Permission::Assign, ticket) {
            return Err(self.refuse("assign this ticket"));
        }
        let target = self.assignable(ticket, handle).await?;
        let step = crate::idempotency::step(self.claim);
        if step.recorded::<i32>()?.is_some() {
            return self.reread(ticket.id).await;
        }
        let previous = ticket.assignee_id.filter(|id| *id != target.id);
        let mut events = self
            .revoke_grants_of(previous, ticket.id, "ticket reassigned")
            .await?;
        events.push(self.actor.event(
            Action::TicketAssigned,
            Some(ticket.customer_id),
            Some(ticket.id),
            Vec::new(),
            Some(match ticket.assignee_id {
                Some(from) => format!("from agent {from} to agent {}", target.id),
                None => format!("to agent {}", target.id),
            }),
        ));
        let (events, step) = (&events, &step);
        self.writer
            .transaction(|txn| {
                let mut active: ticket::ActiveModel = ticket.clone().into();
                active.assignee_id = Set(Some(target.id));
                async move {
                    let row = active.update(&txn).await?;
                    crate::audit::append_in(&txn, events)
                        .await
                        .map_err(|e| ApiError::internal(e, "auditing an assignment"))?;
                    step.record_in(&txn, &row.id).await?;
                    Ok::<_, ApiError>((row, txn))
                }
            })
            .await
    }

    /// The roles `ticket` can be handed off to by the caller: each role (other than the
    /// caller's) whose agents would see a class or field the caller does not, on the
    /// ticket's topic or, failing that, on the first topic where they would.
    pub fn hand_off_targets(&self, ticket: &ticket::Model) -> Vec<HandOffTarget> {
        self.policy
            .hand_off_targets(&self.agent.facts(), &self.agent.ticket_facts(ticket))
            .into_iter()
            .map(|(role, topic)| HandOffTarget {
                role: role.name,
                label: role.label,
                topic,
            })
            .collect()
    }

    /// Hands `ticket` off to `role` (one of [`Tickets::hand_off_targets`]): the ticket
    /// takes the target's topic and waits unassigned in that queue, or goes to the agent
    /// `to_agent` (who must have that role, in the ticket's team). The note is redacted
    /// like chat and kept as an internal message; the previous assignee's reveal grants on
    /// the ticket are revoked, and they lose the ticket's customer data at their next
    /// request. Audited (`ticket_handed_off`, with the role, topic and agent id, and the
    /// note's `message_added`).
    pub async fn hand_off(
        &self,
        ticket: &ticket::Model,
        role: &str,
        to_agent: Option<&str>,
        note: &crate::input::Body,
    ) -> ApiResult<HandedOff> {
        if !self.agent.may(self.policy, Permission::HandOff, ticket) {
            return Err(self.refuse("hand off this ticket"));
        }
        let targets = self.hand_off_targets(ticket);
        let Some(target) = targets.iter().find(|t| t.role == role) else {
            let names: Vec<&str> = targets.iter().map(|t| t.role.as_str()).collect();
            return Err(ApiError::BadUserInput(format!(
                "`to` must be one of this ticket's hand-off targets: {}",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        };
        let assignee = match to_agent {
            Some(handle) => {
                let agent = self.assignable(ticket, handle).await?;
                if agent.role != target.role {
                    return Err(ApiError::BadUserInput(format!(
                        "`agent` must have the role {}",
                        target.role
                    )));
                }
                Some(agent.id)
            }
            None => None,
        };
        let step = crate::idempotency::step(self.claim);
        if let Some(done) = step.recorded::<HandedOff>()? {
            return Ok(done);
        }
        let previous = ticket.assignee_id.filter(|id| Some(*id) != assignee);
        let mut events = self
            .revoke_grants_of(previous, ticket.id, "ticket handed off")
            .await?;
        let revoked_grants = events.len();
        events.push(self.actor.event(
            Action::TicketHandedOff,
            Some(ticket.customer_id),
            Some(ticket.id),
            Vec::new(),
            Some(match assignee {
                Some(id) => format!("to {} on {}, agent {id}", target.role, target.topic),
                None => format!("to {} on {}, queue", target.role, target.topic),
            }),
        ));
        let note = crate::customers::mask::redact_message(note.as_str());
        let (events, step, target, note) = (&events, &step, target, &note);
        self.writer
            .transaction(|txn| async move {
                let message = crate::tickets::NewMessage {
                    author: crate::tickets::Author::Internal,
                    author_agent_id: Some(self.agent.id),
                    body: note,
                    at: chrono::Utc::now(),
                    external_id: None,
                };
                let posted = crate::tickets::post_in(&txn, self.vault, ticket.id, &message).await?;
                let mut active: ticket::ActiveModel = ticket.clone().into();
                active.topic = Set(target.topic.clone());
                active.assignee_id = Set(assignee);
                if posted.reopened {
                    active.status = Set(TicketStatus::Open.as_str().to_owned());
                    active.resolved_at = Set(None);
                }
                active.update(&txn).await?;
                let mut events = events.clone();
                events.extend(crate::tickets::message_events(
                    &self.actor,
                    &posted,
                    ticket.customer_id,
                    crate::tickets::Author::Internal,
                ));
                crate::audit::append_in(&txn, &events)
                    .await
                    .map_err(|e| ApiError::internal(e, "auditing a hand-off"))?;
                let done = HandedOff {
                    ticket_id: ticket.id,
                    role: target.role.clone(),
                    topic: target.topic.clone(),
                    assignee_id: assignee,
                    note_message_id: posted.message_id,
                    revoked_grants,
                };
                step.record_in(&txn, &done).await?;
                Ok::<_, ApiError>((done, txn))
            })
            .await
    }
}
