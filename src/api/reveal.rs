//! `requestReveal`, `approveReveal`, `denyReveal`, `revokeReveal`, `myGrants`,
//! `pendingRevealRequests`.

use async_graphql::{Context, Enum, Object, SimpleObject, ID};
use chrono::{DateTime, Duration, Utc};
use entity::{agent, reveal_request, ticket};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::audit::{Action, NewEvent};
use crate::disclosure::{Field, Gate};
use crate::error::{ApiError, ApiResult};
use crate::ids::{GrantId, RevealRequestId, TicketId};
use crate::policy::{Access, DataClass, RevealOption};
use crate::request::RequestContext;
use crate::reveal::store::Grant;
use crate::reveal::{expand, new_grant_id, Reason};
use crate::tickets;
use crate::vocabulary::Permission;

/// Grants live 15 minutes unless the policy says otherwise (and configuration caps it).
const DEFAULT_GRANT_SECONDS: i64 = 900;

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
            id: ID(grant.id.clone()),
            ticket_id: ID(grant.ticket_id.to_string()),
            field: grant.field.to_string(),
            data_class: grant.field.class(),
            granted_at: grant.granted_at,
            expires_at: grant.expires_at,
            approved: grant.approved_by.is_some(),
        }
    }
}

/// Where a reveal request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum RevealRequestStatus {
    /// Waiting for a supervisor.
    Pending,
    /// Approved: grants were issued.
    Approved,
    /// Denied, with a note.
    Denied,
}

impl RevealRequestStatus {
    fn as_str(self) -> &'static str {
        match self {
            RevealRequestStatus::Pending => "pending",
            RevealRequestStatus::Approved => "approved",
            RevealRequestStatus::Denied => "denied",
        }
    }

    fn parse(s: &str) -> ApiResult<Self> {
        match s {
            "pending" => Ok(RevealRequestStatus::Pending),
            "approved" => Ok(RevealRequestStatus::Approved),
            "denied" => Ok(RevealRequestStatus::Denied),
            _ => Err(ApiError::internal(
                anyhow::anyhow!("unknown request status"),
                "reading a reveal request",
            )),
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
        id: ID(row.id.to_string()),
        ticket_id: ID(row.ticket_id.to_string()),
        requester: handle_of(request, Some(row.agent_id))
            .await?
            .unwrap_or_default(),
        fields,
        reason: row.reason,
        status: RevealRequestStatus::parse(&row.status)?,
        created_at: row.created_at,
        decided_at: row.decided_at,
        decided_by: handle_of(request, row.decided_by).await?,
        note: row.note,
    })
}

/// Builds grants of `fields` for `holder` on `ticket`, with lifetimes from the policy,
/// capped by configuration.
fn build_grants(
    request: &RequestContext,
    holder: &crate::agents::Agent,
    ticket: &ticket::Model,
    fields: &[Field],
    approved_by: Option<i32>,
) -> Vec<Grant> {
    let now = Utc::now();
    let facts = tickets::facts(holder, ticket);
    let cap = i64::try_from(request.settings.max_grant.as_secs()).unwrap_or(i64::MAX);
    fields
        .iter()
        .map(|field| {
            let seconds = request
                .policy
                .reveal_seconds(&holder.facts(), &facts, field.class())
                .unwrap_or(DEFAULT_GRANT_SECONDS)
                .clamp(1, cap);
            Grant {
                id: new_grant_id(),
                agent_id: holder.id,
                ticket_id: ticket.id,
                customer_id: ticket.customer_id,
                field: *field,
                granted_at: now,
                expires_at: now + Duration::seconds(seconds),
                approved_by,
            }
        })
        .collect()
}

fn event(
    request: &RequestContext,
    action: Action,
    ticket: &ticket::Model,
    fields: Vec<String>,
    reason: Option<String>,
) -> NewEvent {
    request.audit_event(
        action,
        Some(ticket.customer_id),
        Some(ticket.id),
        fields,
        reason,
    )
}

fn names(fields: &[Field]) -> Vec<String> {
    fields.iter().map(|f| f.graphql_name().to_owned()).collect()
}

/// Stores grants and audits them; if the audit fails the grants are withdrawn again.
async fn issue(request: &RequestContext, grants: &[Grant], events: &[NewEvent]) -> ApiResult<()> {
    request.grant_store.put(grants).await.map_err(|error| {
        tracing::warn!(%error, "cannot store grants");
        ApiError::RevealUnavailable
    })?;
    if let Err(error) = request.audit.append(events).await {
        let _ = request.grant_store.remove(grants).await;
        return Err(ApiError::internal(error, "auditing a reveal"));
    }
    Ok(())
}

async fn load_request(
    request: &RequestContext,
    id: &ID,
) -> ApiResult<(reveal_request::Model, ticket::Model)> {
    let id = RevealRequestId::parse(id, "requestId")?.get();
    let row = reveal_request::Entity::find_by_id(id)
        .one(&request.db)
        .await?
        .ok_or(ApiError::NotFound)?;
    let ticket = ticket::Entity::find_by_id(row.ticket_id)
        .one(&request.db)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((row, ticket))
}

/// Checks that the caller may decide `row`: a supervisor of the ticket's team (per policy),
/// not the requester, and the request still pending.
fn check_decider(
    request: &RequestContext,
    row: &reveal_request::Model,
    ticket: &ticket::Model,
) -> ApiResult<()> {
    if !request.may(Permission::ApproveReveal, ticket) {
        return Err(ApiError::Forbidden(
            "only a supervisor of the ticket's team may decide reveal requests".into(),
        ));
    }
    if row.agent_id == request.agent.id {
        return Err(ApiError::Forbidden(
            "you cannot decide your own reveal request".into(),
        ));
    }
    if row.status != RevealRequestStatus::Pending.as_str() {
        return Err(ApiError::BadUserInput(format!(
            "this reveal request was already {}",
            row.status
        )));
    }
    Ok(())
}

/// Moves a request out of `pending`, once: a replayed decision changes nothing.
async fn decide(
    request: &RequestContext,
    row: &reveal_request::Model,
    status: RevealRequestStatus,
    note: Option<String>,
) -> ApiResult<reveal_request::Model> {
    let result = reveal_request::Entity::update_many()
        .col_expr(
            reveal_request::Column::Status,
            sea_orm::sea_query::Expr::value(status.as_str()),
        )
        .col_expr(
            reveal_request::Column::DecidedBy,
            sea_orm::sea_query::Expr::value(request.agent.id),
        )
        .col_expr(
            reveal_request::Column::DecidedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .col_expr(
            reveal_request::Column::Note,
            sea_orm::sea_query::Expr::value(note),
        )
        .filter(reveal_request::Column::Id.eq(row.id))
        .filter(reveal_request::Column::Status.eq(RevealRequestStatus::Pending.as_str()))
        .exec(&request.db)
        .await?;
    if result.rows_affected != 1 {
        return Err(ApiError::BadUserInput(
            "this reveal request was already decided".into(),
        ));
    }
    reveal_request::Entity::find_by_id(row.id)
        .one(&request.db)
        .await?
        .ok_or(ApiError::NotFound)
}

async fn undo_decision(request: &RequestContext, id: i32) {
    let reset = reveal_request::Entity::update_many()
        .col_expr(
            reveal_request::Column::Status,
            sea_orm::sea_query::Expr::value(RevealRequestStatus::Pending.as_str()),
        )
        .col_expr(
            reveal_request::Column::DecidedBy,
            sea_orm::sea_query::Expr::value(Option::<i32>::None),
        )
        .col_expr(
            reveal_request::Column::DecidedAt,
            sea_orm::sea_query::Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            reveal_request::Column::Note,
            sea_orm::sea_query::Expr::value(Option::<String>::None),
        )
        .filter(reveal_request::Column::Id.eq(id))
        .exec(&request.db)
        .await;
    if let Err(error) = reset {
        tracing::error!(%error, "could not return a reveal request to pending");
    }
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
    ) -> ApiResult<RevealOutcome> {
        let request = RequestContext::get(ctx);
        let rate = crate::ratelimit::Rate {
            max: request.settings.reveals_per_hour,
            window: std::time::Duration::from_secs(3600),
        };
        let key = format!("reveal:{}", request.agent.id);
        if let crate::ratelimit::Verdict::Limited { retry_after_secs } =
            request.limiter.hit(&key, rate).await
        {
            return Err(ApiError::RateLimited { retry_after_secs });
        }
        let reason = Reason::parse(&reason)?;
        let fields = expand(&fields)?;
        let ticket = request
            .visible_ticket(TicketId::parse(&ticket_id, "ticketId")?)
            .await?;
        let gate = Gate::new(
            request.policy.clone(),
            &request.agent,
            &ticket,
            &tickets::facts(&request.agent, &ticket),
        );
        let (mut now, mut approval, mut already) = (Vec::new(), Vec::new(), Vec::new());
        for field in fields {
            let decision = gate.decision(field);
            match (decision.access, decision.reveal) {
                (Access::Plain, _) => already.push(field),
                (_, RevealOption::WithReason) => now.push(field),
                (_, RevealOption::WithApproval) => approval.push(field),
                (_, RevealOption::None) => {
                    return Err(ApiError::Forbidden(
                        "one or more of these fields cannot be revealed on this ticket; \
                         `accessSummary` lists what can be requested"
                            .into(),
                    ))
                }
            }
        }
        let mut outcome = RevealOutcome {
            grants: Vec::new(),
            request: None,
            already_visible: names(&already),
        };
        if now.is_empty() && approval.is_empty() {
            return Ok(outcome);
        }
        let mut requested: Vec<Field> = now.iter().chain(approval.iter()).copied().collect();
        requested.sort_by_key(|f| f.index());
        let asked = event(
            request,
            Action::RevealRequested,
            &ticket,
            names(&requested),
            Some(reason.as_str().to_owned()),
        );
        if !now.is_empty() {
            let grants = build_grants(request, &request.agent, &ticket, &now, None);
            let granted = event(
                request,
                Action::RevealGranted,
                &ticket,
                names(&now),
                Some(reason.as_str().to_owned()),
            );
            issue(request, &grants, &[asked.clone(), granted]).await?;
            outcome.grants = grants.iter().map(GrantObject::from).collect();
        }
        if !approval.is_empty() {
            if now.is_empty() {
                request
                    .audit
                    .append(&[asked])
                    .await
                    .map_err(|e| ApiError::internal(e, "auditing a reveal request"))?;
            }
            let row = reveal_request::ActiveModel {
                agent_id: Set(request.agent.id),
                ticket_id: Set(ticket.id),
                customer_id: Set(ticket.customer_id),
                team: Set(ticket.team.clone()),
                fields: Set(serde_json::to_string(&names(&approval))
                    .map_err(|e| ApiError::internal(e, "encoding fields"))?),
                reason: Set(reason.as_str().to_owned()),
                status: Set(RevealRequestStatus::Pending.as_str().to_owned()),
                created_at: Set(Utc::now()),
                ..Default::default()
            }
            .insert(&request.db)
            .await?;
            outcome.request = Some(to_object(request, row).await?);
        }
        Ok(outcome)
    }

    /// Approves a pending request (supervisors of the ticket's team, not the requester):
    /// the requester gets grants for the requested fields.
    async fn approve_reveal(
        &self,
        ctx: &Context<'_>,
        request_id: ID,
        note: Option<String>,
    ) -> ApiResult<RevealRequest> {
        let request = RequestContext::get(ctx);
        let note = note.map(|n| Reason::parse(&n)).transpose()?;
        let (row, ticket) = load_request(request, &request_id).await?;
        check_decider(request, &row, &ticket)?;
        let requester = agent::Entity::find_by_id(row.agent_id)
            .one(&request.db)
            .await?
            .ok_or(ApiError::NotFound)?;
        if !requester.active {
            return Err(ApiError::BadUserInput(
                "the requester has been disabled".into(),
            ));
        }
        let requester = crate::agents::Agent::try_from(requester)
            .map_err(|e| ApiError::internal(e, "reading the requester"))?;
        let fields: Vec<Field> = serde_json::from_str::<Vec<String>>(&row.fields)
            .map_err(|e| ApiError::internal(e, "reading a reveal request"))?
            .iter()
            .filter_map(|f| Field::named(f))
            .collect();
        let decided = decide(
            request,
            &row,
            RevealRequestStatus::Approved,
            note.as_ref().map(|n| n.as_str().to_owned()),
        )
        .await?;
        let grants = build_grants(
            request,
            &requester,
            &ticket,
            &fields,
            Some(request.agent.id),
        );
        let approved = event(
            request,
            Action::RevealApproved,
            &ticket,
            names(&fields),
            note.map(|n| n.as_str().to_owned()),
        );
        if let Err(error) = issue(request, &grants, &[approved]).await {
            undo_decision(request, row.id).await;
            return Err(error);
        }
        to_object(request, decided).await
    }

    /// Denies a pending request, with a note for the requester (10-500 characters).
    async fn deny_reveal(
        &self,
        ctx: &Context<'_>,
        request_id: ID,
        note: String,
    ) -> ApiResult<RevealRequest> {
        let request = RequestContext::get(ctx);
        let note = Reason::parse(&note)?;
        let (row, ticket) = load_request(request, &request_id).await?;
        check_decider(request, &row, &ticket)?;
        let fields: Vec<String> = serde_json::from_str(&row.fields)
            .map_err(|e| ApiError::internal(e, "reading a reveal request"))?;
        let decided = decide(
            request,
            &row,
            RevealRequestStatus::Denied,
            Some(note.as_str().to_owned()),
        )
        .await?;
        let denied = event(
            request,
            Action::RevealDenied,
            &ticket,
            fields,
            Some(note.as_str().to_owned()),
        );
        if let Err(error) = request.audit.append(&[denied]).await {
            undo_decision(request, row.id).await;
            return Err(ApiError::internal(error, "auditing a denial"));
        }
        to_object(request, decided).await
    }

    /// Revokes a grant: its holder may, and so may whoever the policy allows
    /// (`allow(agent, "revoke_reveal", ticket)`: supervisors of the ticket's team).
    async fn revoke_reveal(&self, ctx: &Context<'_>, grant_id: ID) -> ApiResult<GrantObject> {
        let request = RequestContext::get(ctx);
        let grant_id = GrantId::parse(&grant_id)?;
        let grant = request
            .grant_store
            .find(grant_id.as_str())
            .await
            .map_err(|error| {
                tracing::warn!(%error, "cannot read grants");
                ApiError::RevealUnavailable
            })?
            .filter(|g| g.is_active(Utc::now()))
            .ok_or(ApiError::NotFound)?;
        let ticket = ticket::Entity::find_by_id(grant.ticket_id)
            .one(&request.db)
            .await?
            .ok_or(ApiError::NotFound)?;
        if grant.agent_id != request.agent.id && !request.may(Permission::RevokeReveal, &ticket) {
            return Err(ApiError::Forbidden(
                "only the holder or a supervisor of the ticket's team may revoke this grant".into(),
            ));
        }
        request
            .grant_store
            .remove(std::slice::from_ref(&grant))
            .await
            .map_err(|error| {
                tracing::warn!(%error, "cannot revoke a grant");
                ApiError::RevealUnavailable
            })?;
        let revoked = event(
            request,
            Action::RevealRevoked,
            &ticket,
            vec![grant.field.to_string()],
            None,
        );
        request
            .audit
            .append(&[revoked])
            .await
            .map_err(|e| ApiError::internal(e, "auditing a revocation"))?;
        Ok(GrantObject::from(&grant))
    }
}

/// Reveal queries.
#[derive(Default)]
pub struct RevealQuery;

#[Object]
impl RevealQuery {
    /// The caller's active grants, soonest to expire first. `REVEAL_UNAVAILABLE` when the
    /// grant store cannot be reached.
    async fn my_grants(&self, ctx: &Context<'_>) -> ApiResult<Vec<GrantObject>> {
        let request = RequestContext::get(ctx);
        let now = Utc::now();
        let mut grants = request
            .grant_store
            .of_agent(request.agent.id)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "cannot read grants");
                ApiError::RevealUnavailable
            })?;
        grants.retain(|g| g.is_active(now));
        grants.sort_by_key(|g| g.expires_at);
        Ok(grants.iter().map(GrantObject::from).collect())
    }

    /// Pending reveal requests the caller may decide (supervisors: their team's tickets),
    /// oldest first.
    async fn pending_reveal_requests(&self, ctx: &Context<'_>) -> ApiResult<Vec<RevealRequest>> {
        let request = RequestContext::get(ctx);
        let rows = reveal_request::Entity::find()
            .filter(reveal_request::Column::Team.eq(request.agent.team.clone()))
            .filter(reveal_request::Column::Status.eq(RevealRequestStatus::Pending.as_str()))
            .order_by_asc(reveal_request::Column::Id)
            .limit(200)
            .all(&request.db)
            .await?;
        let mut out = Vec::new();
        for row in rows {
            let Some(ticket) = ticket::Entity::find_by_id(row.ticket_id)
                .one(&request.db)
                .await?
            else {
                continue;
            };
            if row.agent_id != request.agent.id && request.may(Permission::ApproveReveal, &ticket) {
                out.push(to_object(request, row).await?);
            }
        }
        Ok(out)
    }
}
