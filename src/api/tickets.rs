//! The `Ticket` type and the `ticket` / `tickets` queries.

use std::sync::Arc;

use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::{customer, ticket};

use super::customers::Customer;
use super::flat::{flat_object, gather, Failed, FlatValue, Gather, Gathered, Walk};
use super::pages::{numeric_key, Page, Window, DEFAULT_PAGE_SIZE};
use crate::disclosure::summary::AccessSummary;
use crate::disclosure::Gate;
use crate::error::{ApiError, ApiResult};
use crate::ids::TicketId;
use crate::loaders::load_error;
use crate::policy::is_word;
use crate::request::RequestContext;
use crate::tickets::lookup::{self, Contact};
use crate::tickets::stored_status;
use crate::tickets::visibility::{self, Joined, TicketFilter};
use async_graphql::parser::types::SelectionSet;

/// The largest `first` any configuration accepts (the configured limit is
/// `QueryLimits::page_size`); complexity is counted up to it.
pub const MAX_PAGE_SIZE: i32 = 1000;

use crate::vocabulary::TicketStatus;

/// A support ticket the agent may see. Its customer is reachable only through it.
pub struct Ticket {
    row: ticket::Model,
    /// The customer's row when it came with the ticket (a page joins it); shared with the
    /// customer object rather than copied (its sealed fields are a dozen allocations).
    customer: Option<Arc<customer::Model>>,
    /// The assignee when it came with the ticket (`Some(None)`: unassigned); `None`: not
    /// read yet.
    assignee: Option<Option<Assignee>>,
    /// All of the customer's tickets, when they came with the ticket.
    customer_tickets: Option<Arc<[crate::rows::TicketSummaryRow]>>,
}

impl Ticket {
    fn new(row: ticket::Model) -> Ticket {
        Ticket {
            row,
            customer: None,
            assignee: None,
            customer_tickets: None,
        }
    }

    /// A ticket read with its customer and assignee.
    fn joined(joined: Joined) -> Ticket {
        Ticket {
            row: joined.ticket,
            customer: joined.customer.map(Arc::new),
            assignee: Some(joined.assignee.map(|(handle, display_name)| Assignee {
                handle,
                display_name,
            })),
            customer_tickets: None,
        }
    }
}

/// The assignee of a ticket.
#[derive(Clone, SimpleObject)]
pub struct Assignee {
    /// The assignee's handle.
    pub handle: String,
    /// The assignee's display name.
    pub display_name: String,
}

flat_object!(Assignee {
    handle,
    display_name
});

/// A message of the ticket's own conversation (card numbers were redacted on arrival).
#[derive(SimpleObject)]
pub struct Message {
    /// Opaque id.
    pub id: ID,
    /// `customer`, `system` (from the channel), `agent` (a reply) or `internal` (an
    /// agent's note, e.g. a hand-off's; never shown to the customer).
    pub author_kind: String,
    /// The text.
    pub body: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

flat_object!(Message {
    id,
    author_kind,
    body,
    created_at
});

#[Object]
impl Ticket {
    /// Global id (`node(id:)` and `ticket(id:)` take it).
    pub(super) async fn id(&self) -> ID {
        super::gid("Ticket", self.row.id)
    }

    /// Subject line.
    async fn subject(&self) -> &str {
        &self.row.subject
    }

    /// Topic (a word of the policy vocabulary, e.g. `billing`).
    async fn topic(&self) -> &str {
        &self.row.topic
    }

    /// Status.
    async fn status(&self) -> ApiResult<TicketStatus> {
        stored_status(&self.row.status)
    }

    /// Channel it came in on, e.g. `email` or `chat`.
    async fn channel(&self) -> &str {
        &self.row.channel
    }

    /// The team that owns the ticket.
    async fn team(&self) -> &str {
        &self.row.team
    }

    /// When it was opened.
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    /// When it was resolved, if it was.
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.row.resolved_at
    }

    /// Whether the calling agent is the assignee.
    async fn assigned_to_me(&self, ctx: &Context<'_>) -> bool {
        self.row.assignee_id == Some(RequestContext::get(ctx).agent.id)
    }

    /// The assigned agent; null when unassigned.
    async fn assignee(&self, ctx: &Context<'_>) -> ApiResult<Option<Assignee>> {
        if let Some(joined) = &self.assignee {
            return Ok(joined.clone());
        }
        let Some(id) = self.row.assignee_id else {
            return Ok(None);
        };
        let row = RequestContext::get(ctx)
            .loaders
            .agent
            .load_one(id)
            .await
            .map_err(load_error)?;
        Ok(row.map(|a| Assignee {
            handle: a.handle,
            display_name: a.display_name,
        }))
    }

    /// The ticket's conversation, oldest first (null, with an `INTERNAL` error, if a
    /// message cannot be decrypted).
    async fn messages(&self, ctx: &Context<'_>) -> ApiResult<Option<Vec<Message>>> {
        let request = RequestContext::get(ctx);
        let rows = request
            .loaders
            .messages
            .load_one(self.row.id)
            .await
            .map_err(load_error)?
            .unwrap_or_default();
        if rows.is_empty() {
            return Ok(Some(Vec::new()));
        }
        // The ticket's own messages are the ticket's content, not a protected class:
        // whoever may see the ticket reads them (card numbers were redacted before storage).
        let opener = request.opener(self.row.customer_id).await?;
        rows.iter()
            .map(|m| {
                Ok(Message {
                    id: super::gid("Message", m.id),
                    author_kind: m.author_kind.clone(),
                    body: opener.text("messages", "body", m.id, &m.body)?,
                    created_at: m.created_at,
                })
            })
            .collect::<ApiResult<Vec<Message>>>()
            .map(Some)
    }

    /// The roles this ticket can be handed off to (`handOffTicket`'s `to`): each role whose
    /// agents would see something of the customer that the caller does not, with the
    /// topic the ticket would take. Empty when the caller sees everything.
    async fn hand_off_targets(&self, ctx: &Context<'_>) -> Vec<HandOffTarget> {
        RequestContext::get(ctx)
            .tickets()
            .hand_off_targets(&self.row)
            .into_iter()
            .map(|t| HandOffTarget {
                role: t.role,
                label: t.label,
                topic: t.topic,
            })
            .collect()
    }

    /// What the calling agent can and cannot see of the customer on this ticket, per data
    /// class, with a sentence to read to the customer.
    async fn access_summary(&self, ctx: &Context<'_>) -> AccessSummary {
        self.gate(RequestContext::get(ctx)).summary()
    }

    /// The customer, each field disclosed as the policy allows on this ticket.
    async fn customer(&self, ctx: &Context<'_>) -> ApiResult<Gathered<Customer>> {
        Ok(Gathered(
            self.customer_view(RequestContext::get(ctx)).await?,
        ))
    }
}

/// A ticket is written in one pass ([`Gathered`]) on a page and by `ticket(id:)`: the
/// resolvers above, run side by side in one future, its customer gathered the same way.
/// `node(id:)` serves a ticket through the resolvers one by one; both paths give the same
/// response (a test in `tests/api` compares them).
impl Gather for Ticket {
    async fn field<'a>(
        &'a self,
        ctx: &'a Context<'a>,
        walk: &'a Walk<'a>,
        selections: &'a [&'a SelectionSet],
    ) -> Result<Vec<u8>, Failed> {
        let mut out = Vec::with_capacity(32);
        match ctx.item.node.name.node.as_str() {
            "id" => self.id(ctx).await?.flat(walk, selections, &mut out),
            "subject" => self.subject(ctx).await?.flat(walk, selections, &mut out),
            "topic" => self.topic(ctx).await?.flat(walk, selections, &mut out),
            "status" => self.status(ctx).await??.flat(walk, selections, &mut out),
            "channel" => self.channel(ctx).await?.flat(walk, selections, &mut out),
            "team" => self.team(ctx).await?.flat(walk, selections, &mut out),
            "createdAt" => self.created_at(ctx).await?.flat(walk, selections, &mut out),
            "resolvedAt" => self
                .resolved_at(ctx)
                .await?
                .flat(walk, selections, &mut out),
            "assignedToMe" => self
                .assigned_to_me(ctx)
                .await?
                .flat(walk, selections, &mut out),
            "assignee" => self.assignee(ctx).await??.flat(walk, selections, &mut out),
            "messages" => self.messages(ctx).await??.flat(walk, selections, &mut out),
            "handOffTargets" => self
                .hand_off_targets(ctx)
                .await?
                .flat(walk, selections, &mut out),
            "accessSummary" => self
                .access_summary(ctx)
                .await?
                .flat(walk, selections, &mut out),
            "customer" => {
                let customer = self.customer(ctx).await??;
                return gather(&customer.0, ctx, selections)
                    .await
                    .map_err(Failed::Below);
            }
            // Validation admits only the schema's fields; the test named above keeps this
            // list complete.
            _ => out.extend_from_slice(b"null"),
        }
        Ok(out)
    }
}

impl Ticket {
    /// The ticket `id`, if the calling agent may see it (else `NOT_FOUND`, like a ticket
    /// that does not exist), with its customer's row.
    pub(super) async fn visible(request: &RequestContext, id: TicketId) -> ApiResult<Ticket> {
        // The agent's grants are read alongside, so the fields below find them ready.
        let (found, _) = tokio::join!(
            request.visible_ticket_with_customer(id),
            request.grants.active()
        );
        Ok(Ticket::joined(found?))
    }

    /// [`Ticket::visible`], with all of its customer's tickets read in the same statement:
    /// for a request that shows the customer's other tickets (or what is found through
    /// them), which would otherwise cost a statement of its own once the ticket is known.
    pub(super) async fn visible_with_customer_tickets(
        request: &RequestContext,
        id: TicketId,
    ) -> ApiResult<Ticket> {
        let (found, _) = tokio::join!(
            request.visible_ticket_with_customer_tickets(id),
            request.grants.active()
        );
        let (joined, tickets) = found?;
        Ok(Ticket {
            customer_tickets: Some(tickets.into()),
            ..Ticket::joined(joined)
        })
    }

    /// The ticket's customer's database id.
    pub(super) fn customer_id(&self) -> i32 {
        self.row.customer_id
    }

    /// The customer as the calling agent sees them through this ticket.
    pub(super) async fn customer_view(&self, request: &RequestContext) -> ApiResult<Customer> {
        let row = match &self.customer {
            Some(row) => Some(row.clone()),
            None => request
                .loaders
                .customer
                .load_one(self.row.customer_id)
                .await
                .map_err(load_error)?
                .map(Arc::new),
        };
        let row = row.ok_or_else(|| {
            ApiError::internal(
                anyhow::anyhow!("ticket without customer"),
                "loading a customer",
            )
        })?;
        Ok(
            Customer::new(row, Arc::new(self.gate(request)), self.row.id)
                .with_tickets(self.customer_tickets.clone()),
        )
    }

    /// The disclosure gate of the calling agent on this ticket.
    fn gate(&self, request: &RequestContext) -> Gate {
        Gate::new(
            request.policy.clone(),
            &request.agent_facts,
            &self.row,
            &request.agent.ticket_facts(&self.row),
        )
    }
}

/// The kind of `tickets`' cursors (`ticket:<id>`, base64url).
const CURSOR: &str = "ticket";
/// The kind of `ticketsByContact`'s cursors.
const BY_CONTACT: &str = "contact_ticket";

/// Ticket queries.
#[derive(Default)]
pub struct TicketQuery;

/// Tickets of the customer an inbound email or phone number belongs to.
#[derive(Default)]
pub struct ContactLookupQuery;

#[Object]
impl ContactLookupQuery {
    /// The tickets the calling agent may see of the customer with exactly this email or
    /// phone (give one), found through blind indexes — e.g. to link an inbound email to its
    /// customer. Reveals nothing the agent could not already open; an unknown contact gives
    /// an empty connection. For roles the policy allows (`allow(agent, "lookup",
    /// "customer_by_contact")`).
    #[allow(clippy::too_many_arguments)] // the two contacts and the four of a connection
    async fn tickets_by_contact(
        &self,
        ctx: &Context<'_>,
        email: Option<String>,
        phone: Option<String>,
        #[graphql(desc = "Page size, from 1 to the configured maximum (default 20).")]
        first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge of the previous page.")] after: Option<String>,
        #[graphql(desc = "Page size reading backward.")] last: Option<i32>,
        #[graphql(desc = "Cursor of the first edge of the next page.")] before: Option<String>,
    ) -> ApiResult<Page<Gathered<Ticket>>> {
        let request = RequestContext::get(ctx);
        if !request.allowed(crate::vocabulary::Permission::LookupByContact) {
            return Err(ApiError::Forbidden(
                "your role may not look customers up by contact".into(),
            ));
        }
        let contact = Contact::parse(email, phone)?;
        let window = Window::configured(request, BY_CONTACT, first, after, last, before)?;
        let scopes = request.ticket_scopes();
        let rows = lookup::by_contact(
            &request.db,
            &request.vault,
            &request.agent,
            &scopes,
            &contact,
        )
        .await?;
        let keyed = rows
            .into_iter()
            .map(|row| (numeric_key(row.id.into()), Gathered(Ticket::new(row))))
            .collect();
        Ok(window.slice(BY_CONTACT, keyed))
    }
}

/// Ticket mutations.
#[derive(Default)]
pub struct TicketMutation;

#[Object]
impl TicketMutation {
    /// Sets a ticket's status (the assignee, or whoever the policy allows:
    /// `allow(agent, "set_status", ticket)`). Resolving or closing a ticket revokes every
    /// reveal grant on it; if the grant store cannot be reached, nothing changes and the
    /// answer is `REVEAL_UNAVAILABLE`.
    async fn set_ticket_status(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        status: TicketStatus,
    ) -> ApiResult<Option<Ticket>> {
        super::nullable(async {
            let request = RequestContext::get(ctx);
            let row = request
                .visible_ticket(TicketId::parse(&ticket_id, "ticketId")?)
                .await?;
            let row = request.tickets().set_status(row, status).await?;
            Ok(Ticket::new(row))
        })
        .await
    }

    /// Replies to the customer on a ticket (`allow(agent, "reply", ticket)`: the assignee,
    /// or a supervisor of the team). Card numbers are redacted before storage. Replying on
    /// a **closed** ticket is refused (`CONFLICT`); on a **resolved** ticket it reopens it.
    /// Audited (`MESSAGE_ADDED`).
    async fn reply_to_ticket(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        body: String,
    ) -> ApiResult<Option<super::intake::MessagePayload>> {
        super::nullable(async {
            let request = RequestContext::get(ctx);
            let body = crate::input::Body::parse("body", &body)?;
            let row = request
                .visible_ticket(TicketId::parse(&ticket_id, "ticketId")?)
                .await?;
            request.tickets().reply(&row, &body).await?.try_into()
        })
        .await
    }

    /// Takes an unassigned ticket of one of my queues (`allow(agent, "claim", ticket)`).
    /// If someone took it first, `CONFLICT`. Audited (`TICKET_CLAIMED`).
    async fn claim_ticket(&self, ctx: &Context<'_>, ticket_id: ID) -> ApiResult<Option<Ticket>> {
        super::nullable(async {
            let request = RequestContext::get(ctx);
            let row = request
                .visible_ticket(TicketId::parse(&ticket_id, "ticketId")?)
                .await?;
            Ok(Ticket::new(request.tickets().claim(&row).await?))
        })
        .await
    }

    /// Assigns a ticket to an agent of its team, by handle (`allow(agent, "assign",
    /// ticket)`: shipped, supervisors of the team). The previous assignee's reveal grants
    /// on it are revoked. Audited (`TICKET_ASSIGNED`).
    async fn assign_ticket(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        agent: String,
    ) -> ApiResult<Option<Ticket>> {
        super::nullable(async {
            let request = RequestContext::get(ctx);
            let row = request
                .visible_ticket(TicketId::parse(&ticket_id, "ticketId")?)
                .await?;
            Ok(Ticket::new(request.tickets().assign(&row, &agent).await?))
        })
        .await
    }

    /// Hands a ticket off to a role that can help ("I can connect you with our billing
    /// specialist"): `to` is one of the ticket's `handOffTargets` (`allow(agent,
    /// "hand_off", ticket)`). The ticket takes the target's topic and waits in that queue,
    /// or goes to `agent` (a handle with that role, in the team). The note is redacted like
    /// chat and kept as an internal message; the customer is not asked again. The previous
    /// assignee's reveal grants on the ticket are revoked, and they lose its customer data
    /// at their next request. Audited (`TICKET_HANDED_OFF`).
    async fn hand_off_ticket(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        to: String,
        agent: Option<String>,
        note: String,
    ) -> ApiResult<Option<HandOffPayload>> {
        super::nullable(async {
            let request = RequestContext::get(ctx);
            let note = crate::input::Body::parse("note", &note)?;
            let row = request
                .visible_ticket(TicketId::parse(&ticket_id, "ticketId")?)
                .await?;
            let done = request
                .tickets()
                .hand_off(&row, &to, agent.as_deref(), &note)
                .await?;
            Ok(HandOffPayload {
                ticket_id: super::gid("Ticket", done.ticket_id),
                role: done.role,
                topic: done.topic,
                assigned: done.assignee_id.is_some(),
                note_message_id: super::gid("Message", done.note_message_id),
                revoked_grants: i32::try_from(done.revoked_grants).unwrap_or(i32::MAX),
            })
        })
        .await
    }
}

/// What a hand-off did. The ticket may no longer be visible to the caller.
#[derive(SimpleObject)]
pub struct HandOffPayload {
    /// The ticket's id.
    pub ticket_id: ID,
    /// The role it went to.
    pub role: String,
    /// Its topic now.
    pub topic: String,
    /// Whether it went to a named agent (otherwise it waits in the topic's queue).
    pub assigned: bool,
    /// The id of the internal message holding the (redacted) note.
    pub note_message_id: ID,
    /// How many of the previous assignee's reveal grants on the ticket were revoked.
    pub revoked_grants: i32,
}

/// A role a ticket can be handed off to.
#[derive(SimpleObject)]
pub struct HandOffTarget {
    /// The role, e.g. `billing` (the value of `handOffTicket`'s `to`).
    pub role: String,
    /// How to name it to the customer, e.g. `a billing specialist`.
    pub label: String,
    /// The topic the ticket takes when handed off to this role.
    pub topic: String,
}

flat_object!(HandOffTarget { role, label, topic });

#[Object]
impl TicketQuery {
    /// A ticket the calling agent may see. Any other id, existing or not, is `NOT_FOUND`.
    /// Nullable so that one ticket that cannot be shown is `null` (with the error at its
    /// path) while the other root fields of the document are still served.
    async fn ticket(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Gathered<Ticket>>> {
        let request = RequestContext::get(ctx);
        let id = TicketId::parse(&id, "id")?;
        let customer = ctx.look_ahead().field("customer");
        if customer.field("otherTickets").exists() || customer.field("identityDocuments").exists() {
            Ticket::visible_with_customer_tickets(request, id).await
        } else {
            Ticket::visible(request, id).await
        }
        .map(|ticket| Some(Gathered(ticket)))
    }

    /// The tickets the calling agent may see, oldest first, as a Relay connection: `first`
    /// (with `after`) reads forward, `last` (with `before`) backward; never both.
    #[graphql(
        complexity = "first.or(last).unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE) as usize * child_complexity"
    )]
    #[allow(clippy::too_many_arguments)] // the four of a connection and two filters
    async fn tickets(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Page size, from 1 to the configured maximum (default maximum 100; default 20)."
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge of the previous page.")] after: Option<String>,
        #[graphql(desc = "Page size reading backward, from 1 to the configured maximum.")]
        last: Option<i32>,
        #[graphql(desc = "Cursor of the first edge of the next page.")] before: Option<String>,
        #[graphql(desc = "Only tickets with this status.")] status: Option<TicketStatus>,
        #[graphql(desc = "Only tickets of this topic.")] topic: Option<String>,
    ) -> ApiResult<Page<Gathered<Ticket>>> {
        let request = RequestContext::get(ctx);
        let window = Window::configured(request, CURSOR, first, after, last, before)?;
        let (after, before) = window.numbers("tickets")?;
        let range = visibility::Range {
            after,
            before,
            from_the_end: window.backward(),
        };
        if let Some(topic) = &topic {
            if !is_word(topic) {
                return Err(ApiError::BadUserInput(
                    "`topic` must be a topic name (lower-case letters, digits, underscores)".into(),
                ));
            }
        }
        let filter = TicketFilter {
            status: status.map(|s| s.as_str().to_owned()),
            topic,
        };
        let scopes = request.ticket_scopes();
        // The agent's grants are read alongside the page, so that every ticket's fields find
        // them ready: fields waiting on the grant store at different times would split the
        // page's batched loads into several statements.
        let (rows, _) = tokio::join!(
            visibility::page(
                &request.db,
                &request.agent,
                &scopes,
                &filter,
                range,
                window.limit()
            ),
            request.grants.active()
        );
        let rows = rows?
            .into_iter()
            .map(|joined| {
                let id = joined.ticket.id.to_string();
                (id, Gathered(Ticket::joined(joined)))
            })
            .collect();
        Ok(window.page(CURSOR, rows))
    }
}
