//! The reveal workflow: asking, approving, denying and revoking, with the grant store, the
//! database and the audit trail kept in step. Plain functions over one request's facts,
//! testable without HTTP; `api/reveal.rs` only parses arguments and shapes answers.

use chrono::{Duration, Utc};
use entity::{agent, reveal_request, ticket};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use super::store::{Grant, GrantStore};
use super::{new_grant_id, Reason};
use crate::agents::Agent;
use crate::audit::{Action, Actor, AuditLog, NewEvent};
use crate::error::{ApiError, ApiResult};
use crate::ids::{GrantId, RevealRequestId};
use crate::policy::PolicySet;
use crate::ratelimit::{Rate, RateLimiter, Verdict};
use crate::vocabulary::{Access, Field, Permission, RevealOption, RevealRequestStatus};
use crate::writer::Writer;

/// Grants live 15 minutes unless the policy says otherwise (and configuration caps it).
pub const DEFAULT_GRANT_SECONDS: i64 = 900;

/// One agent's reveals within one request.
pub struct Reveals<'a> {
    /// The database (pending requests), for reads.
    pub db: &'a DatabaseConnection,
    /// Where writes go.
    pub writer: &'a Writer,
    /// The policy snapshot of the request.
    pub policy: &'a PolicySet,
    /// Where grants live.
    pub store: &'a GrantStore,
    /// The audit trail.
    pub audit: &'a AuditLog,
    /// Rate limits.
    pub limiter: &'a RateLimiter,
    /// The calling agent.
    pub agent: &'a Agent,
    /// The calling agent as the actor of audit events.
    pub actor: Actor,
    /// The longest a grant may last, whatever the policy says.
    pub max_grant: std::time::Duration,
    /// `requestReveal` calls per agent per hour.
    pub reveals_per_hour: u64,
    /// The request's idempotency claim, if it sent a key.
    pub claim: Option<&'a crate::idempotency::Claim>,
}

/// What a reveal request recorded under an idempotency key: enough to answer a retry.
#[derive(serde::Serialize, serde::Deserialize)]
struct RequestedRecord {
    grants: Vec<Grant>,
    pending: Option<i32>,
    already_visible: Vec<Field>,
}

/// What a reveal request did.
#[derive(Debug)]
pub struct Requested {
    /// Grants issued at once (`WITH_REASON` fields).
    pub grants: Vec<Grant>,
    /// The pending request for `WITH_APPROVAL` fields, if any.
    pub pending: Option<reveal_request::Model>,
    /// Requested fields already `PLAIN`.
    pub already_visible: Vec<Field>,
}

impl Reveals<'_> {
    /// Counts a reveal request against the caller's hourly limit; `RATE_LIMITED` past it.
    pub async fn check_rate(&self) -> ApiResult<()> {
        let rate = Rate {
            max: self.reveals_per_hour,
            window: std::time::Duration::from_secs(3600),
        };
        match self
            .limiter
            .hit(&format!("reveal:{}", self.agent.id), rate)
            .await
        {
            Verdict::Limited { retry_after_secs } => {
                Err(ApiError::RateLimited { retry_after_secs })
            }
            _ => Ok(()),
        }
    }

    /// Asks to reveal `fields` of `ticket`'s customer (a ticket the caller may see).
    /// `WITH_REASON` fields are granted at once; `WITH_APPROVAL` fields become one pending
    /// request; any field whose reveal option is `NONE` refuses the whole request with
    /// `FORBIDDEN` and changes nothing.
    pub async fn request(
        &self,
        ticket: &ticket::Model,
        fields: &[Field],
        reason: &Reason,
    ) -> ApiResult<Requested> {
        let decisions = self
            .policy
            .decide(&self.agent.facts(), &self.agent.ticket_facts(ticket));
        let (mut now, mut approval, mut already) = (Vec::new(), Vec::new(), Vec::new());
        for &field in fields {
            let decision = decisions.field(field);
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
        let step = crate::idempotency::step(self.claim);
        if let Some(record) = step.recorded::<RequestedRecord>()? {
            // A retried delivery: answer what the first one did, write nothing.
            let pending = match record.pending {
                Some(id) => reveal_request::Entity::find_by_id(id).one(self.db).await?,
                None => None,
            };
            return Ok(Requested {
                grants: record.grants,
                pending,
                already_visible: record.already_visible,
            });
        }
        let mut outcome = Requested {
            grants: Vec::new(),
            pending: None,
            already_visible: already,
        };
        if now.is_empty() && approval.is_empty() {
            return Ok(outcome);
        }
        let mut requested: Vec<Field> = now.iter().chain(approval.iter()).copied().collect();
        requested.sort_by_key(|f| f.index());
        let reason_text = Some(reason.as_str().to_owned());
        let mut events = vec![self.event(
            Action::RevealRequested,
            ticket,
            names(&requested),
            reason_text.clone(),
        )];
        let grants = self.build_grants(self.agent, ticket, &now, None);
        if !now.is_empty() {
            events.push(self.event(Action::RevealGranted, ticket, names(&now), reason_text));
        }
        let pending = if approval.is_empty() {
            None
        } else {
            let fields = serde_json::to_string(&names(&approval))
                .map_err(|e| ApiError::internal(e, "encoding fields"))?;
            Some(reveal_request::ActiveModel {
                agent_id: Set(self.agent.id),
                ticket_id: Set(ticket.id),
                customer_id: Set(ticket.customer_id),
                team: Set(ticket.team.clone()),
                fields: Set(fields),
                reason: Set(reason.as_str().to_owned()),
                status: Set(RevealRequestStatus::Pending.as_str().to_owned()),
                created_at: Set(Utc::now()),
                ..Default::default()
            })
        };
        // The request, its pending row and the grants' audit events commit together; the
        // grants are stored after (audit first: never a stored grant without its event).
        let (events, pending, grants_ref, step) = (&events, &pending, &grants, &step);
        let already_visible = outcome.already_visible.clone();
        let already_visible = &already_visible;
        let row = self
            .writer
            .transaction(|txn| async move {
                let row = match pending {
                    Some(row) => Some(row.clone().insert(&txn).await?),
                    None => None,
                };
                crate::audit::append_in(&txn, events)
                    .await
                    .map_err(|e| ApiError::internal(e, "auditing a reveal request"))?;
                let record = RequestedRecord {
                    grants: grants_ref.clone(),
                    pending: row.as_ref().map(|r| r.id),
                    already_visible: already_visible.clone(),
                };
                step.record_in(&txn, &record).await?;
                Ok::<_, ApiError>((row, txn))
            })
            .await?;
        outcome.pending = row;
        if !grants.is_empty() {
            self.store_grants(&grants, ticket).await?;
            outcome.grants = grants;
        }
        Ok(outcome)
    }

    /// Approves a pending request (a supervisor of the ticket's team per policy, not the
    /// requester): the requester gets grants for the requested fields. If the grants
    /// cannot be issued and audited, the request is pending again.
    pub async fn approve(
        &self,
        id: RevealRequestId,
        note: Option<Reason>,
    ) -> ApiResult<reveal_request::Model> {
        let step = crate::idempotency::step(self.claim);
        if let Some(decided) = self.replayed_decision(&step).await? {
            return Ok(decided);
        }
        let (row, ticket) = self.load_request(id).await?;
        self.check_decider(&row, &ticket)?;
        let requester = agent::Entity::find_by_id(row.agent_id)
            .one(self.db)
            .await?
            .ok_or(ApiError::NotFound)?;
        if !requester.active {
            return Err(ApiError::BadUserInput(
                "the requester has been disabled".into(),
            ));
        }
        let requester = Agent::try_from(requester)
            .map_err(|e| ApiError::internal(e, "reading the requester"))?;
        let fields = stored_fields(&row)?;
        let note = note.map(|n| n.as_str().to_owned());
        let approved = self.event(
            Action::RevealApproved,
            &ticket,
            names(&fields),
            note.clone(),
        );
        let decided = self
            .decide(&row, RevealRequestStatus::Approved, note, approved, &step)
            .await?;
        let grants = self.build_grants(&requester, &ticket, &fields, Some(self.agent.id));
        if let Err(error) = self.store.put(&grants).await {
            tracing::warn!(%error, "cannot store grants");
            self.undo_decision(row.id, &ticket, &fields, &step).await;
            return Err(ApiError::RevealUnavailable);
        }
        Ok(decided)
    }

    /// Denies a pending request, with a note for the requester.
    pub async fn deny(
        &self,
        id: RevealRequestId,
        note: Reason,
    ) -> ApiResult<reveal_request::Model> {
        let step = crate::idempotency::step(self.claim);
        if let Some(decided) = self.replayed_decision(&step).await? {
            return Ok(decided);
        }
        let (row, ticket) = self.load_request(id).await?;
        self.check_decider(&row, &ticket)?;
        let fields = stored_fields(&row)?;
        let note = Some(note.as_str().to_owned());
        let denied = self.event(Action::RevealDenied, &ticket, names(&fields), note.clone());
        self.decide(&row, RevealRequestStatus::Denied, note, denied, &step)
            .await
    }

    /// Revokes an active grant: its holder may, and whoever the policy allows
    /// (`revoke_reveal` on the ticket).
    pub async fn revoke(&self, id: &GrantId) -> ApiResult<Grant> {
        let step = crate::idempotency::step(self.claim);
        if let Some(grant) = step.recorded::<Grant>()? {
            return Ok(grant);
        }
        let grant = self
            .store
            .find(id.as_str())
            .await
            .map_err(unavailable("cannot read grants"))?
            .filter(|g| g.is_active(Utc::now()))
            .ok_or(ApiError::NotFound)?;
        let ticket = ticket::Entity::find_by_id(grant.ticket_id)
            .one(self.db)
            .await?
            .ok_or(ApiError::NotFound)?;
        if grant.agent_id != self.agent.id
            && !self
                .agent
                .may(self.policy, Permission::RevokeReveal, &ticket)
        {
            return Err(ApiError::Forbidden(
                "only the holder or a supervisor of the ticket's team may revoke this grant".into(),
            ));
        }
        self.store
            .remove(std::slice::from_ref(&grant))
            .await
            .map_err(unavailable("cannot revoke a grant"))?;
        let revoked = self.event(
            Action::RevealRevoked,
            &ticket,
            vec![grant.field.to_string()],
            None,
        );
        let (revoked, grant_ref, step) = (&revoked, &grant, &step);
        self.writer
            .transaction(|txn| async move {
                crate::audit::append_in(&txn, std::slice::from_ref(revoked))
                    .await
                    .map_err(|e| ApiError::internal(e, "auditing a revocation"))?;
                step.record_in(&txn, grant_ref).await?;
                Ok::<_, ApiError>(((), txn))
            })
            .await?;
        Ok(grant)
    }

    /// The caller's active grants, soonest to expire first.
    pub async fn mine(&self) -> ApiResult<Vec<Grant>> {
        let now = Utc::now();
        let mut grants = self
            .store
            .of_agent(self.agent.id)
            .await
            .map_err(unavailable("cannot read grants"))?;
        grants.retain(|g| g.is_active(now));
        grants.sort_by_key(|g| g.expires_at);
        Ok(grants)
    }

    /// Pending requests the caller may decide (not their own), oldest first, at most 200.
    pub async fn pending(&self) -> ApiResult<Vec<reveal_request::Model>> {
        let rows = reveal_request::Entity::find()
            .filter(reveal_request::Column::Team.eq(self.agent.team.clone()))
            .filter(reveal_request::Column::Status.eq(RevealRequestStatus::Pending.as_str()))
            .order_by_asc(reveal_request::Column::Id)
            .limit(200)
            .all(self.db)
            .await?;
        let mut out = Vec::new();
        for row in rows {
            let Some(ticket) = ticket::Entity::find_by_id(row.ticket_id)
                .one(self.db)
                .await?
            else {
                continue;
            };
            if row.agent_id != self.agent.id
                && self
                    .agent
                    .may(self.policy, Permission::ApproveReveal, &ticket)
            {
                out.push(row);
            }
        }
        Ok(out)
    }

    fn event(
        &self,
        action: Action,
        ticket: &ticket::Model,
        fields: Vec<String>,
        reason: Option<String>,
    ) -> NewEvent {
        self.actor.event(
            action,
            Some(ticket.customer_id),
            Some(ticket.id),
            fields,
            reason,
        )
    }

    /// Grants of `fields` for `holder` on `ticket`, with lifetimes from the policy, capped
    /// by configuration.
    fn build_grants(
        &self,
        holder: &Agent,
        ticket: &ticket::Model,
        fields: &[Field],
        approved_by: Option<i32>,
    ) -> Vec<Grant> {
        let now = Utc::now();
        let facts = holder.ticket_facts(ticket);
        let cap = i64::try_from(self.max_grant.as_secs()).unwrap_or(i64::MAX);
        fields
            .iter()
            .map(|&field| {
                let seconds = self
                    .policy
                    .reveal_seconds(&holder.facts(), &facts, field.class())
                    .unwrap_or(DEFAULT_GRANT_SECONDS)
                    .clamp(1, cap);
                Grant {
                    id: new_grant_id(),
                    agent_id: holder.id,
                    ticket_id: ticket.id,
                    customer_id: ticket.customer_id,
                    field,
                    granted_at: now,
                    expires_at: now + Duration::seconds(seconds),
                    approved_by,
                }
            })
            .collect()
    }

    /// Stores grants whose issue is already audited. If the store refuses them, the trail
    /// says so (`reveal_revoked`, "not issued") and the caller gets `REVEAL_UNAVAILABLE`.
    async fn store_grants(&self, grants: &[Grant], ticket: &ticket::Model) -> ApiResult<()> {
        let Err(error) = self.store.put(grants).await else {
            return Ok(());
        };
        tracing::warn!(%error, "cannot store grants");
        let fields = grants.iter().map(|g| g.field.to_string()).collect();
        let not_issued = self.event(
            Action::RevealRevoked,
            ticket,
            fields,
            Some("not issued: the grant store was unavailable".into()),
        );
        if let Err(error) = self.audit.append(&[not_issued]).await {
            tracing::error!(
                error = format!("{error:#}"),
                "cannot audit grants that were not issued"
            );
        }
        Err(ApiError::RevealUnavailable)
    }

    /// The request a retried delivery of a decision decided, as it is now.
    async fn replayed_decision(
        &self,
        step: &crate::idempotency::Step<'_>,
    ) -> ApiResult<Option<reveal_request::Model>> {
        match step.recorded::<i32>()? {
            Some(id) => Ok(reveal_request::Entity::find_by_id(id).one(self.db).await?),
            None => Ok(None),
        }
    }

    async fn load_request(
        &self,
        id: RevealRequestId,
    ) -> ApiResult<(reveal_request::Model, ticket::Model)> {
        let row = reveal_request::Entity::find_by_id(id.get())
            .one(self.db)
            .await?
            .ok_or(ApiError::NotFound)?;
        let ticket = ticket::Entity::find_by_id(row.ticket_id)
            .one(self.db)
            .await?
            .ok_or(ApiError::NotFound)?;
        Ok((row, ticket))
    }

    /// The caller may decide `row`: allowed by the policy on its ticket, not the
    /// requester, and the request still pending.
    fn check_decider(&self, row: &reveal_request::Model, ticket: &ticket::Model) -> ApiResult<()> {
        if !self
            .agent
            .may(self.policy, Permission::ApproveReveal, ticket)
        {
            return Err(ApiError::Forbidden(
                "only a supervisor of the ticket's team may decide reveal requests".into(),
            ));
        }
        if row.agent_id == self.agent.id {
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

    /// Moves a request out of `pending`, once, with its audit event in the same
    /// transaction: a replayed decision changes nothing.
    async fn decide(
        &self,
        row: &reveal_request::Model,
        status: RevealRequestStatus,
        note: Option<String>,
        event: NewEvent,
        step: &crate::idempotency::Step<'_>,
    ) -> ApiResult<reveal_request::Model> {
        use sea_orm::sea_query::Expr;
        let (id, decider, note, event) = (row.id, self.agent.id, &note, &event);
        self.writer
            .transaction(|txn| async move {
                let result = reveal_request::Entity::update_many()
                    .col_expr(reveal_request::Column::Status, Expr::value(status.as_str()))
                    .col_expr(reveal_request::Column::DecidedBy, Expr::value(decider))
                    .col_expr(reveal_request::Column::DecidedAt, Expr::value(Utc::now()))
                    .col_expr(reveal_request::Column::Note, Expr::value(note.clone()))
                    .filter(reveal_request::Column::Id.eq(id))
                    .filter(
                        reveal_request::Column::Status.eq(RevealRequestStatus::Pending.as_str()),
                    )
                    .exec(&txn)
                    .await?;
                if result.rows_affected != 1 {
                    return Err(ApiError::BadUserInput(
                        "this reveal request was already decided".into(),
                    ));
                }
                crate::audit::append_in(&txn, std::slice::from_ref(event))
                    .await
                    .map_err(|e| ApiError::internal(e, "auditing a decision"))?;
                let row = reveal_request::Entity::find_by_id(id)
                    .one(&txn)
                    .await?
                    .ok_or(ApiError::NotFound)?;
                step.record_in(&txn, &row.id).await?;
                Ok((row, txn))
            })
            .await
    }

    /// An approval whose grants could not be stored: the request is pending again, and the
    /// trail says so.
    async fn undo_decision(
        &self,
        id: i32,
        ticket: &ticket::Model,
        fields: &[Field],
        step: &crate::idempotency::Step<'_>,
    ) {
        use sea_orm::sea_query::Expr;
        let undone = self.event(
            Action::RevealRevoked,
            ticket,
            names(fields),
            Some("approval undone: the grant store was unavailable".into()),
        );
        let undone = &undone;
        let reset = self
            .writer
            .transaction(|txn| async move {
                reveal_request::Entity::update_many()
                    .col_expr(
                        reveal_request::Column::Status,
                        Expr::value(RevealRequestStatus::Pending.as_str()),
                    )
                    .col_expr(
                        reveal_request::Column::DecidedBy,
                        Expr::value(Option::<i32>::None),
                    )
                    .col_expr(
                        reveal_request::Column::DecidedAt,
                        Expr::value(Option::<chrono::DateTime<Utc>>::None),
                    )
                    .col_expr(
                        reveal_request::Column::Note,
                        Expr::value(Option::<String>::None),
                    )
                    .filter(reveal_request::Column::Id.eq(id))
                    .exec(&txn)
                    .await?;
                crate::audit::append_in(&txn, std::slice::from_ref(undone)).await?;
                step.forget_in(&txn)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                Ok::<_, anyhow::Error>(((), txn))
            })
            .await;
        if let Err(error) = reset {
            tracing::error!(
                error = format!("{error:#}"),
                "could not return a reveal request to pending"
            );
        }
    }
}

/// The fields a stored request names (unknown names are an error, never another field).
pub fn stored_fields(row: &reveal_request::Model) -> ApiResult<Vec<Field>> {
    serde_json::from_str::<Vec<Field>>(&row.fields)
        .map_err(|e| ApiError::internal(e, "reading a reveal request"))
}

/// Schema names of `fields`.
pub fn names(fields: &[Field]) -> Vec<String> {
    fields.iter().map(|f| f.graphql_name().to_owned()).collect()
}

/// A grant-store failure: logged, answered `REVEAL_UNAVAILABLE`.
fn unavailable<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> ApiError {
    move |error| {
        tracing::warn!(%error, "{what}");
        ApiError::RevealUnavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DatabaseSettings, Settings};
    use crate::vocabulary::TicketStatus;

    /// A fresh SQLite database with the shipped policy, one frontline agent and one
    /// account-access ticket assigned to them.
    async fn world() -> (
        tempfile::TempDir,
        DatabaseConnection,
        PolicySet,
        Agent,
        ticket::Model,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::for_data_dir(
            dir.path(),
            DatabaseSettings::Sqlite {
                path: dir.path().join("t.sqlite"),
            },
        );
        let db = crate::db::connect(&settings).await.unwrap();
        crate::db::migrate(&db).await.unwrap();
        let policy =
            PolicySet::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
                .unwrap();
        let (agent, _) = crate::agents::create(
            &crate::writer::Writer::new(db.clone()),
            policy.vocabulary(),
            &crate::audit::Actor::system("test", "test"),
            crate::agents::NewAgent {
                handle: "fl".into(),
                display_name: "fl".into(),
                role: "frontline".into(),
                team: "support".into(),
                queues: vec![],
                service: false,
            },
        )
        .await
        .unwrap();
        let customer = entity::customer::ActiveModel {
            account_status: Set("active".into()),
            plan: Set("basic".into()),
            customer_since: Set(chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()),
            region: Set("US".into()),
            full_name: Set(Vec::new()),
            email: Set(Vec::new()),
            phone: Set(Vec::new()),
            street: Set(Vec::new()),
            city: Set(Vec::new()),
            postal_code: Set(Vec::new()),
            country: Set(Vec::new()),
            date_of_birth: Set(Vec::new()),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
        let ticket = ticket::ActiveModel {
            customer_id: Set(customer.id),
            team: Set("support".into()),
            topic: Set("account_access".into()),
            status: Set(TicketStatus::Open.as_str().into()),
            subject: Set("s".into()),
            channel: Set("chat".into()),
            assignee_id: Set(Some(agent.id)),
            created_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
        (dir, db, policy, agent, ticket)
    }

    /// A `WITH_REASON` field is granted at once and audited twice (asked, granted); a
    /// field the policy offers no reveal for refuses the whole request and writes nothing.
    #[tokio::test]
    async fn a_reasoned_reveal_is_granted_and_an_impossible_one_changes_nothing() {
        let (_dir, db, policy, agent, ticket) = world().await;
        let store = GrantStore::memory();
        let audit = AuditLog::new(crate::writer::Writer::new(db.clone()));
        let limiter = store.rate_limiter();
        let writer = crate::writer::Writer::new(db.clone());
        let reveals = Reveals {
            db: &db,
            writer: &writer,
            policy: &policy,
            store: &store,
            audit: &audit,
            limiter: &limiter,
            agent: &agent,
            actor: Actor {
                agent_id: Some(agent.id),
                role: agent.role.clone(),
                request_id: "test".into(),
                policy_version: Some(policy.version().to_owned()),
                idempotency_key: None,
            },
            max_grant: std::time::Duration::from_secs(600),
            reveals_per_hour: 30,
            claim: None,
        };
        let reason = Reason::parse("the customer asked us to confirm it").unwrap();
        // Creating the agent was audited; nothing else may be.
        let events_before = entity::audit_event::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .len();

        let refused = reveals
            .request(&ticket, &[Field::Email, Field::PaymentMethods], &reason)
            .await
            .unwrap_err();
        assert!(matches!(refused, ApiError::Forbidden(_)));
        assert!(reveals.mine().await.unwrap().is_empty());
        assert_eq!(
            entity::audit_event::Entity::find()
                .all(&db)
                .await
                .unwrap()
                .len(),
            events_before
        );

        let done = reveals
            .request(&ticket, &[Field::Email], &reason)
            .await
            .unwrap();
        assert_eq!(done.grants.len(), 1);
        let grant = &done.grants[0];
        assert_eq!(grant.field, Field::Email);
        // The policy says 900 s; configuration caps it at 600.
        assert_eq!((grant.expires_at - grant.granted_at).num_seconds(), 600);
        assert_eq!(reveals.mine().await.unwrap().len(), 1);
        let actions: Vec<String> = entity::audit_event::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(
            actions,
            ["agent_created", "reveal_requested", "reveal_granted"]
        );
    }
}
