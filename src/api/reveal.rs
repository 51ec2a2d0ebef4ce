//! `requestReveal`, `approveReveal`, `denyReveal`, `revokeReveal`, `myGrants`,
//! `pendingRevealRequests`.

use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::{agent, reveal_request};
use sea_orm::EntityTrait;

use super::pages::{numeric_key, Page, Window};
use crate::error::{ApiError, ApiResult};
use crate::ids::{GrantId, RevealRequestId, TicketId};
use crate::policy::DataClass;
use crate::request::RequestContext;
use crate::reveal::store::Grant;
use crate::reveal::workflow::names;
use crate::reveal::{expand, Reason};
pub use crate::vocabulary::RevealRequestStatus;

/// An active reveal grant.
#[derive(SimpleObject)]
#[graphql(name = "Grant")]
pub struct GrantObject {
    /// Opaque id, for `revokeReveal`.
    pub id: ID,
    /// The ticket it is scoped to.
    pub ticket_id: ID,
    /// The field it reveals (schema name on `Customer`).
    pub field: String,
    /// The field's data class.
    pub data_class: DataClass,
    /// When it was granted.
    pub granted_at: DateTime<Utc>,
    /// When it stops revealing.
    pub expires_at: DateTime<Utc>,
    /// Whether a supervisor approved it.
    pub approved: bool,
}

impl From<&Grant> for GrantObject {
    fn from(grant: &Grant) -> Self {
        GrantObject {
            id: super::gid("Grant", &grant.id),
            ticket_id: super::gid("Ticket", grant.ticket_id),
            field: grant.field.to_string(),
            data_class: grant.field.class(),
            granted_at: grant.granted_at,
            expires_at: grant.expires_at,
            approved: grant.approved_by.is_some(),
        }
    }
}

/// A reveal that needs a supervisor's approval.
#[derive(SimpleObject)]
pub struct RevealRequest {
    /// Opaque id, for `approveReveal` / `denyReveal`.
    pub id: ID,
    /// The ticket.
    pub ticket_id: ID,
    /// Handle of the agent asking.
    pub requester: String,
    /// The fields asked for.
    pub fields: Vec<String>,
    /// The requester's reason.
    pub reason: String,
    /// Where it stands.
    pub status: RevealRequestStatus,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was decided.
    pub decided_at: Option<DateTime<Utc>>,
    /// Handle of the supervisor who decided.
    pub decided_by: Option<String>,
    /// The supervisor's note.
    pub note: Option<String>,
}

/// What `requestReveal` did.
#[derive(SimpleObject)]
pub struct RevealOutcome {
    /// Grants issued at once (`WITH_REASON` fields).
    pub grants: Vec<GrantObject>,
    /// The pending request for `WITH_APPROVAL` fields, if any.
    pub request: Option<RevealRequest>,
    /// Requested fields that are already `PLAIN` (nothing to reveal).
    pub already_visible: Vec<String>,
}

async fn handle_of(request: &RequestContext, id: Option<i32>) -> ApiResult<Option<String>> {
    let Some(id) = id else { return Ok(None) };
    Ok(agent::Entity::find_by_id(id)
        .one(&request.db)
        .await?
        .map(|a| a.handle))
}

async fn to_object(
    request: &RequestContext,
    row: reveal_request::Model,
) -> ApiResult<RevealRequest> {
    let fields: Vec<String> = serde_json::from_str(&row.fields)
        .map_err(|e| ApiError::internal(e, "reading a reveal request"))?;
    Ok(RevealRequest {
        id: super::gid("RevealRequest", row.id),
        ticket_id: super::gid("Ticket", row.ticket_id),
        requester: handle_of(request, Some(row.agent_id))
            .await?
            .unwrap_or_default(),
        fields,
        reason: row.reason,
        status: row.status.parse().map_err(|_| {
            ApiError::internal(
                anyhow::anyhow!("unknown request status"),
                "reading a reveal request",
            )
        })?,
        created_at: row.created_at,
        decided_at: row.decided_at,
        decided_by: handle_of(request, row.decided_by).await?,
        note: row.note,
    })
}

/// Reveal mutations.
#[derive(Default)]
pub struct RevealMutation;

#[Object]
impl RevealMutation {
    /// Asks to see fields (or whole data classes) of the ticket's customer in plaintext.
    /// `WITH_REASON` fields are granted at once; `WITH_APPROVAL` fields become one pending
    /// request for a supervisor; a field whose reveal option is `NONE` refuses the whole
    /// request with `FORBIDDEN` and changes nothing. `reason`: 10-500 characters.
    async fn request_reveal(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        #[graphql(
            desc = "Field names of `Customer` (e.g. `email`) or data classes (e.g. `contact`)."
        )]
        fields: Vec<String>,
        reason: String,
    ) -> ApiResult<Option<RevealOutcome>> {
        super::nullable(async {
            let request = RequestContext::get(ctx);
            let reveals = request.reveals();
            reveals.check_rate().await?;
            let reason = Reason::parse(&reason)?;
            let fields = expand(&fields)?;
            let ticket = request
                .visible_ticket(TicketId::parse(&ticket_id, "ticketId")?)
                .await?;
            let done = reveals.request(&ticket, &fields, &reason).await?;
            Ok(RevealOutcome {
                grants: done.grants.iter().map(GrantObject::from).collect(),
                request: match done.pending {
                    Some(row) => Some(to_object(request, row).await?),
                    None => None,
                },
                already_visible: names(&done.already_visible),
            })
        })
        .await
    }

    /// Approves a pending request (supervisors of the ticket's team, not the requester):
    /// the requester gets grants for the requested fields.
    async fn approve_reveal(
        &self,
        ctx: &Context<'_>,
        request_id: ID,
        note: Option<String>,
    ) -> ApiResult<Option<RevealRequest>> {
        super::nullable(async {
            let request = RequestContext::get(ctx);
            let note = note.map(|n| Reason::parse(&n)).transpose()?;
            let id = RevealRequestId::parse(&request_id, "requestId")?;
            let decided = request.reveals().approve(id, note).await?;
            to_object(request, decided).await
        })
        .await
    }

    /// Denies a pending request, with a note for the requester (10-500 characters).
    async fn deny_reveal(
        &self,
        ctx: &Context<'_>,
        request_id: ID,
        note: String,
    ) -> ApiResult<Option<RevealRequest>> {
        super::nullable(async {
            let request = RequestContext::get(ctx);
            let note = Reason::parse(&note)?;
            let id = RevealRequestId::parse(&request_id, "requestId")?;
            let decided = request.reveals().deny(id, note).await?;
            to_object(request, decided).await
        })
        .await
    }

    /// Revokes a grant: its holder may, and so may whoever the policy allows
    /// (`allow(agent, "revoke_reveal", ticket)`: supervisors of the ticket's team).
    async fn revoke_reveal(
        &self,
        ctx: &Context<'_>,
        grant_id: ID,
    ) -> ApiResult<Option<GrantObject>> {
        super::nullable(async {
            let request = RequestContext::get(ctx);
            let grant_id = GrantId::parse(&grant_id)?;
            let grant = request.reveals().revoke(&grant_id).await?;
            Ok(GrantObject::from(&grant))
        })
        .await
    }
}

/// Reveal queries.
#[derive(Default)]
pub struct RevealQuery;

#[Object]
impl RevealQuery {
    /// The caller's active grants, soonest to expire first, as a Relay connection.
    /// `REVEAL_UNAVAILABLE` when the grant store cannot be reached.
    async fn my_grants(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, from 1 to the configured maximum (default 20).")]
        first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge of the previous page.")] after: Option<String>,
        #[graphql(desc = "Page size reading backward.")] last: Option<i32>,
        #[graphql(desc = "Cursor of the first edge of the next page.")] before: Option<String>,
    ) -> ApiResult<Page<GrantObject>> {
        let request = RequestContext::get(ctx);
        let window = Window::configured(request, "grant", first, after, last, before)?;
        let grants = request.reveals().mine().await?;
        let keyed = grants
            .iter()
            .map(|g| {
                let key = format!("{}:{}", numeric_key(g.expires_at.timestamp_micros()), g.id);
                (key, GrantObject::from(g))
            })
            .collect();
        Ok(window.slice("grant", keyed))
    }

    /// Pending reveal requests the caller may decide (supervisors: their team's tickets),
    /// oldest first, as a Relay connection (of the oldest 200).
    async fn pending_reveal_requests(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, from 1 to the configured maximum (default 20).")]
        first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge of the previous page.")] after: Option<String>,
        #[graphql(desc = "Page size reading backward.")] last: Option<i32>,
        #[graphql(desc = "Cursor of the first edge of the next page.")] before: Option<String>,
    ) -> ApiResult<Page<RevealRequest>> {
        let request = RequestContext::get(ctx);
        let window = Window::configured(request, "reveal_request", first, after, last, before)?;
        let mut keyed = Vec::new();
        for row in request.reveals().pending().await? {
            let key = numeric_key(row.id.into());
            keyed.push((key, to_object(request, row).await?));
        }
        Ok(window.slice("reveal_request", keyed))
    }
}
