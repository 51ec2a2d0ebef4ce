//! The one path by which customer data reaches a response.
//!
//! Resolvers of protected fields call [`Gate::disclose`] (or [`Gate::disclose_loaded`]) and
//! nothing else: the gate asks the policy (through cached decisions), records plaintext
//! views of audited classes in the audit trail, and only for a `PLAIN` or `MASKED` level
//! calls the resolver's renderer, telling it which form to produce. A `HIDDEN` field is
//! never rendered, and list fields are not even loaded. Reveal grants hook in here too, in
//! one place, so no field can forget them.

pub mod summary;

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use crate::vocabulary::{Field, HandOff};

use crate::audit::loader::View;
use crate::crypto::vault::Opener;
use crate::error::ApiResult;
use crate::policy::{Access, DataClass, Decided, Decision, PolicySet, RevealOption, Subject};
use crate::request::RequestContext;

/// Which form a renderer must produce: the gate never asks for a hidden value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// The value itself.
    Plain,
    /// The field's mask.
    Masked,
}

/// A disclosed value with its metadata, as the gate decided it; the GraphQL layer serves it
/// as a `Protected…` object so a UI can render masks and reveal buttons.
pub struct Disclosed<T> {
    /// The value in the form `access` says; null when `access` is `HIDDEN`.
    pub value: Option<T>,
    /// `PLAIN`, `MASKED` or `HIDDEN`.
    pub access: Access,
    /// How the agent could see more: `NONE`, `WITH_REASON` or `WITH_APPROVAL`.
    pub reveal: RevealOption,
    /// When the reveal grant showing this value expires; null without an active grant.
    pub grant_expires_at: Option<DateTime<Utc>>,
    /// The field's data class.
    pub data_class: DataClass,
    /// When `HIDDEN`: the roles that would see this class on this ticket's topic (shared
    /// by every field with the same decision and facts).
    pub hand_off: Arc<[HandOff]>,
}

/// How one field is served in one response.
struct Resolved {
    /// The level served and the policy's reveal option.
    decision: Decision,
    /// The form to render; `None` when hidden.
    shown: Option<Shown>,
    /// The expiry of the grant that makes it plain, if one does.
    grant: Option<DateTime<Utc>>,
}

/// The decisions for one agent on one ticket: the purpose of every access it serves.
pub struct Gate {
    policy: Arc<PolicySet>,
    /// The policy's decisions for the agent's and the ticket's facts, with their
    /// hand-offs.
    decisions: Arc<Decided>,
    ticket_id: i32,
    customer_id: i32,
    /// The customer's opener, loaded by the first field this gate renders and shared by
    /// the others (one key look-up per ticket, none when every field is hidden).
    opener: tokio::sync::OnceCell<Opener>,
}

impl Gate {
    /// The gate on `ticket` for the agent whose policy facts are `agent`, the ticket's
    /// being `facts`.
    pub fn new(
        policy: Arc<PolicySet>,
        agent: &crate::policy::AgentFacts,
        ticket: &entity::ticket::Model,
        facts: &crate::policy::TicketFacts,
    ) -> Gate {
        let decisions = policy.decide(agent, facts);
        Gate {
            policy,
            decisions,
            ticket_id: ticket.id,
            customer_id: ticket.customer_id,
            opener: tokio::sync::OnceCell::new(),
        }
    }

    /// The customer's opener, loaded once per gate.
    async fn opener(&self, request: &RequestContext) -> ApiResult<&Opener> {
        // Loaded by the first field that needs it; boxed, so the other fields' futures do
        // not carry the loading's state (see `RequestGrants::active`).
        if let Some(opener) = self.opener.get() {
            return Ok(opener);
        }
        Box::pin(
            self.opener
                .get_or_try_init(|| request.opener(self.customer_id)),
        )
        .await
    }

    /// The policy's decision for a field (its field-level answer, else its class's).
    pub fn decision(&self, field: Field) -> Decision {
        self.decisions.field(field)
    }

    /// Discloses a field whose value is at hand: `render` runs only for `PLAIN` or `MASKED`,
    /// with the opener of the customer's sealed fields (it may fail, e.g. when a value
    /// cannot be decrypted). The customer's key is not even loaded for a hidden field.
    pub async fn disclose<T>(
        &self,
        request: &RequestContext,
        field: Field,
        render: impl FnOnce(Shown, &Opener) -> ApiResult<T>,
    ) -> ApiResult<Disclosed<T>> {
        let resolved = self.resolve(request, field).await;
        let value = match resolved.shown {
            Some(shown) => Some(render(shown, self.opener(request).await?)?),
            None => None,
        };
        Ok(self.wrap(field, resolved, value))
    }

    /// Discloses a field that must be loaded first: `load` runs only for `PLAIN` or `MASKED`,
    /// with the opener of the customer's sealed fields, so hidden data is never read from
    /// the database nor decrypted.
    pub async fn disclose_loaded<T, F, Fut>(
        &self,
        request: &RequestContext,
        field: Field,
        load: F,
    ) -> ApiResult<Disclosed<T>>
    where
        F: FnOnce(Shown, Opener) -> Fut,
        Fut: Future<Output = ApiResult<T>>,
    {
        let resolved = self.resolve(request, field).await;
        let value = match resolved.shown {
            Some(shown) => Some(load(shown, self.opener(request).await?.clone()).await?),
            None => None,
        };
        Ok(self.wrap(field, resolved, value))
    }

    /// The form a field is shown in, and the expiry of the grant that shows it, if any.
    ///
    /// A revealable field (reveal option not `NONE`) is `PLAIN` while the agent holds an
    /// active grant for it on this ticket. A plaintext view of an audited class is recorded
    /// before the value is rendered; if the audit event cannot be written, the field falls
    /// back to its policy level, or to its mask if that level is `PLAIN` (fail closed: never
    /// unaudited plaintext).
    async fn resolve(&self, request: &RequestContext, field: Field) -> Resolved {
        let policy = self.decisions.field(field);
        let grant = if policy.access != Access::Plain && policy.reveal != RevealOption::None {
            request.grants.expiry(self.ticket_id, field).await
        } else {
            None
        };
        let decision = match grant {
            Some(_) => Decision {
                access: Access::Plain,
                reveal: policy.reveal,
            },
            None => policy,
        };
        let shown = |decision: Decision| match decision.access {
            Access::Hidden => None,
            Access::Masked => Some(Shown::Masked),
            Access::Plain => Some(Shown::Plain),
        };
        if decision.access != Access::Plain || !field.class().audited() {
            return Resolved {
                decision,
                shown: shown(decision),
                grant,
            };
        }
        let view = View {
            ticket_id: self.ticket_id,
            customer_id: self.customer_id,
            field,
        };
        // Boxed: only a plaintext view waits here, and inline the wait would make every
        // field's future larger.
        match Box::pin(request.loaders.audit.load_one(view)).await {
            Ok(_) => Resolved {
                decision,
                shown: Some(Shown::Plain),
                grant,
            },
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    field = field.graphql_name(),
                    "audit write failed; serving the field without plaintext"
                );
                let fallback = if policy.access == Access::Plain {
                    Decision {
                        access: Access::Masked,
                        reveal: RevealOption::None,
                    }
                } else {
                    policy
                };
                Resolved {
                    decision: fallback,
                    shown: shown(fallback),
                    grant: None,
                }
            }
        }
    }

    /// Every data class and field with its decision and hand-off, and the sentence built
    /// from them.
    pub fn summary(&self) -> summary::AccessSummary {
        let classes: Vec<summary::ClassAccess> = DataClass::ALL
            .into_iter()
            .map(|class| {
                let decision = self.decisions.class(class);
                summary::ClassAccess {
                    data_class: class,
                    access: decision.access,
                    reveal: decision.reveal,
                    hand_off: self.hand_off(Subject::Class(class), decision).to_vec(),
                    uniform: self.decisions.uniform(class),
                }
            })
            .collect();
        let fields: Vec<summary::FieldAccess> = Field::ALL
            .into_iter()
            .map(|field| {
                let decision = self.decisions.field(field);
                summary::FieldAccess {
                    field: field.graphql_name().to_owned(),
                    data_class: field.class(),
                    access: decision.access,
                    reveal: decision.reveal,
                    field_rule: self.decisions.field_rule(field).is_some(),
                    hand_off: self.hand_off(Subject::Field(field), decision).to_vec(),
                }
            })
            .collect();
        let sentence = summary::sentence(&classes, &fields);
        summary::AccessSummary {
            classes,
            fields,
            sentence,
        }
    }

    fn hand_off(&self, subject: Subject, decision: Decision) -> Arc<[HandOff]> {
        self.policy
            .hand_offs(&self.decisions, subject, decision.access)
    }

    fn wrap<T>(&self, field: Field, resolved: Resolved, value: Option<T>) -> Disclosed<T> {
        let decision = resolved.decision;
        let class = field.class();
        let hand_off = self.hand_off(Subject::Field(field), decision);
        Disclosed {
            value,
            access: decision.access,
            reveal: decision.reveal,
            grant_expires_at: resolved.grant,
            data_class: class,
            hand_off,
        }
    }
}
