//! Audit events for plaintext views, batched per request: every protected field resolved
//! `PLAIN` in one level of a query is recorded in one transaction, one event per ticket.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_graphql::dataloader::Loader;

use super::{Action, Actor, AuditLog, NewEvent};
use crate::vocabulary::Field;

/// One field of one customer shown in plaintext on one ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct View {
    /// The ticket (the purpose).
    pub ticket_id: i32,
    /// The customer.
    pub customer_id: i32,
    /// The field shown.
    pub field: Field,
}

/// Writes the `viewed` events of one request's agent.
pub struct ViewAuditor {
    /// Where events go.
    pub log: AuditLog,
    /// The agent viewing, in this request, under this policy.
    pub actor: Actor,
}

impl Loader<View> for ViewAuditor {
    type Value = ();
    type Error = Arc<anyhow::Error>;

    async fn load(&self, keys: &[View]) -> Result<HashMap<View, ()>, Self::Error> {
        let mut per_ticket: BTreeMap<(i32, i32), Vec<Field>> = BTreeMap::new();
        for view in keys {
            per_ticket
                .entry((view.ticket_id, view.customer_id))
                .or_default()
                .push(view.field);
        }
        let events: Vec<NewEvent> = per_ticket
            .into_iter()
            .map(|((ticket_id, customer_id), mut fields)| {
                fields.sort_by_key(|f| f.index());
                fields.dedup();
                self.actor.event(
                    Action::Viewed,
                    Some(customer_id),
                    Some(ticket_id),
                    fields.iter().map(|f| f.graphql_name().to_owned()).collect(),
                    None,
                )
            })
            .collect();
        self.log.append(&events).await.map_err(Arc::new)?;
        Ok(keys.iter().map(|k| (*k, ())).collect())
    }
}
