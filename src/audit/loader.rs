//! Audit events for plaintext views, batched per request: every protected field resolved
//! `PLAIN` in one level of a query is recorded in one transaction, one event per ticket.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_graphql::dataloader::Loader;

use super::{Action, AuditLog, NewEvent};
use crate::disclosure::Field;

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
    /// The agent viewing.
    pub actor_agent_id: i32,
    /// Their role.
    pub actor_role: String,
    /// The request.
    pub request_id: String,
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
                NewEvent {
                    actor_agent_id: Some(self.actor_agent_id),
                    actor_role: self.actor_role.clone(),
                    action: Action::Viewed,
                    customer_id: Some(customer_id),
                    ticket_id: Some(ticket_id),
                    fields: fields.iter().map(|f| f.graphql_name().to_owned()).collect(),
                    reason: None,
                    request_id: self.request_id.clone(),
                }
            })
            .collect();
        self.log.append(&events).await.map_err(Arc::new)?;
        Ok(keys.iter().map(|k| (*k, ())).collect())
    }
}
