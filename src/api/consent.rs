//! Recording and withdrawing consents on a ticket's customer.

use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::consent;

use crate::error::{ApiError, ApiResult};
use crate::ids::TicketId;
use crate::policy::is_word;
use crate::request::RequestContext;

/// A consent of the ticket's customer.
#[derive(SimpleObject)]
pub struct Consent {
    /// What was consented to, e.g. `recording`.
    pub kind: String,
    /// The notice version the customer saw.
    pub notice_version: String,
    /// When it was given.
    pub given_at: DateTime<Utc>,
    /// When it was withdrawn, if it was.
    pub withdrawn_at: Option<DateTime<Utc>>,
}

impl From<consent::Model> for Consent {
    fn from(row: consent::Model) -> Self {
        Consent {
            kind: row.kind,
            notice_version: row.notice_version,
            given_at: row.given_at,
            withdrawn_at: row.withdrawn_at,
        }
    }
}

/// Consent mutations.
#[derive(Default)]
pub struct ConsentMutation;

#[Object]
impl ConsentMutation {
    /// Records that the customer of a ticket the agent may see accepted a notice (by kind
    /// and version, as the widget showed it). A consent of the same kind given before is
    /// replaced. Audited as `CONSENT_RECORDED` (kind and notice version, never who the
    /// customer is beyond their id).
    async fn record_consent(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        kind: String,
        notice_version: String,
    ) -> ApiResult<Option<Consent>> {
        super::nullable(async {
        let request = RequestContext::get(ctx);
        let ticket = request
            .visible_ticket(TicketId::parse(&ticket_id, "ticketId")?)
            .await?;
        let notices = request.policy.notices();
        if !is_word(&kind) || notice_version.len() > 64 || !notices.has(&kind, &notice_version) {
            return Err(ApiError::BadUserInput(
                "`kind` and `noticeVersion` must name a published notice (see GET /public/consent-notices)".into(),
            ));
        }
        let row = crate::consent::record(
            &request.writer,
            crate::idempotency::step(request.idempotency.as_deref()),
            &request.actor(),
            &ticket,
            &kind,
            &notice_version,
        )
        .await?;
        Ok(row.into())
    })
        .await
    }

    /// Records that the customer of a ticket withdrew a consent. Withdrawing what was never
    /// given is harmless. Returns how many consents were withdrawn; a withdrawal that ended
    /// one is audited as `CONSENT_WITHDRAWN`.
    async fn withdraw_consent(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        kind: String,
    ) -> ApiResult<Option<u64>> {
        super::nullable(async {
            let request = RequestContext::get(ctx);
            let ticket = request
                .visible_ticket(TicketId::parse(&ticket_id, "ticketId")?)
                .await?;
            if !is_word(&kind) {
                return Err(ApiError::BadUserInput(
                    "`kind` is not a consent kind".into(),
                ));
            }
            crate::consent::withdraw(
                &request.writer,
                crate::idempotency::step(request.idempotency.as_deref()),
                &request.actor(),
                &ticket,
                &kind,
            )
            .await
        })
        .await
    }
}
