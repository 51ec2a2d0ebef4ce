//! The one path by which customer data reaches a response.
//!
//! Resolvers of protected fields call [`Gate::disclose`] (or [`Gate::disclose_loaded`]) and
//! nothing else: the gate asks the policy (through cached decisions), and only for a `PLAIN`
//! or `MASKED` level calls the resolver's renderer, telling it which form to produce. A
//! `HIDDEN` field is never rendered, and list fields are not even loaded. Reveal grants and
//! audit events hook in here, in one place, so no field can forget them.

pub mod fields;
pub mod summary;

use std::future::Future;
use std::sync::Arc;

use async_graphql::{OutputType, SimpleObject};
use chrono::{DateTime, Utc};

pub use fields::Field;

use crate::agents::Agent;
use crate::customers::graphql::{
    ChatMessage, IdentityDocument, Invoice, PaymentMethod, TicketSummary,
};

// Concrete list types of `Protected<T>` (the derive takes paths, not generic arguments).
type IdentityDocuments = Vec<IdentityDocument>;
type PaymentMethods = Vec<PaymentMethod>;
type Invoices = Vec<Invoice>;
type TicketHistory = Vec<TicketSummary>;
type ChatHistory = Vec<ChatMessage>;
use crate::error::ApiResult;
use crate::policy::{Access, ClassDecisions, DataClass, Decision, PolicySet, RevealOption};

/// Which form a renderer must produce: the gate never asks for a hidden value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// The value itself.
    Plain,
    /// The field's mask.
    Masked,
}

/// A role that would see a hidden class on this ticket's topic.
#[derive(Clone, Debug, SimpleObject)]
pub struct HandOff {
    /// The role, e.g. `billing`.
    pub role: String,
    /// How to name it to a customer, e.g. `a billing specialist`.
    pub label: String,
}

/// A protected value with its metadata, so a UI can render masks and reveal buttons.
#[derive(SimpleObject)]
#[graphql(
    concrete(name = "ProtectedString", params(String)),
    concrete(name = "ProtectedIdentityDocuments", params(IdentityDocuments)),
    concrete(name = "ProtectedPaymentMethods", params(PaymentMethods)),
    concrete(name = "ProtectedInvoices", params(Invoices)),
    concrete(name = "ProtectedTicketHistory", params(TicketHistory)),
    concrete(name = "ProtectedChatHistory", params(ChatHistory))
)]
pub struct Protected<T: OutputType> {
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
    /// When `HIDDEN`: the roles that would see this class on this ticket's topic.
    pub hand_off: Vec<HandOff>,
}

/// The decisions for one agent on one ticket: the purpose of every access it serves.
pub struct Gate {
    policy: Arc<PolicySet>,
    decisions: Arc<ClassDecisions>,
    role: String,
    topic: String,
}

impl Gate {
    /// The gate for `agent` on a ticket of `topic`, with decisions for `facts`.
    pub fn new(policy: Arc<PolicySet>, agent: &Agent, ticket: &crate::policy::TicketFacts) -> Gate {
        let decisions = policy.decide(&agent.facts(), ticket);
        Gate {
            policy,
            decisions,
            role: agent.role.clone(),
            topic: ticket.topic.clone(),
        }
    }

    /// The policy's decision for a data class.
    pub fn decision(&self, class: DataClass) -> Decision {
        self.decisions.get(class)
    }

    /// Discloses a field whose value is at hand: `render` runs only for `PLAIN` or `MASKED`.
    pub fn disclose<T: OutputType>(
        &self,
        field: Field,
        render: impl FnOnce(Shown) -> T,
    ) -> Protected<T> {
        let (decision, shown) = self.resolve(field);
        self.wrap(field, decision, shown.map(render))
    }

    /// Discloses a field that must be loaded first: `load` runs only for `PLAIN` or `MASKED`,
    /// so hidden data is never read from the database.
    pub async fn disclose_loaded<T, F, Fut>(&self, field: Field, load: F) -> ApiResult<Protected<T>>
    where
        T: OutputType,
        F: FnOnce(Shown) -> Fut,
        Fut: Future<Output = ApiResult<T>>,
    {
        let (decision, shown) = self.resolve(field);
        let value = match shown {
            Some(shown) => Some(load(shown).await?),
            None => None,
        };
        Ok(self.wrap(field, decision, value))
    }

    /// Every data class with its decision and hand-off, and the sentence built from them.
    pub fn summary(&self) -> summary::AccessSummary {
        let classes: Vec<summary::ClassAccess> = DataClass::ALL
            .into_iter()
            .map(|class| {
                let decision = self.decisions.get(class);
                summary::ClassAccess {
                    data_class: class,
                    access: decision.access,
                    reveal: decision.reveal,
                    hand_off: self.hand_off(class, decision),
                }
            })
            .collect();
        let sentence = summary::sentence(&classes);
        summary::AccessSummary { classes, sentence }
    }

    fn hand_off(&self, class: DataClass, decision: Decision) -> Vec<HandOff> {
        if decision.access != Access::Hidden {
            return Vec::new();
        }
        self.policy
            .hand_off_roles(&self.topic, class, &self.role)
            .into_iter()
            .map(|r| HandOff {
                role: r.name,
                label: r.label,
            })
            .collect()
    }

    fn resolve(&self, field: Field) -> (Decision, Option<Shown>) {
        let decision = self.decisions.get(field.class());
        let shown = match decision.access {
            Access::Plain => Some(Shown::Plain),
            Access::Masked => Some(Shown::Masked),
            Access::Hidden => None,
        };
        (decision, shown)
    }

    fn wrap<T: OutputType>(
        &self,
        field: Field,
        decision: Decision,
        value: Option<T>,
    ) -> Protected<T> {
        let class = field.class();
        let hand_off = self.hand_off(class, decision);
        Protected {
            value,
            access: decision.access,
            reveal: decision.reveal,
            grant_expires_at: None,
            data_class: class,
            hand_off,
        }
    }
}
