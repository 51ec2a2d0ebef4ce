//! Data-subject rights, for the privacy officer: export everything held on a customer, and
//! erase a customer for good (crypto-shredding: the data key is destroyed, the rows
//! deleted, the audit trail kept with pseudonymous ids). Who may do either is the
//! policy's decision, checked by the caller; this module is the workflow.
//!
//! Erasures (and the retention sweeper's purges) are also written to the [`crate::ledger`], outside
//! the database, and [`reapply`] re-applies them at start-up, so restoring an older backup
//! does not bring erased data back.

use base64::Engine;
use chrono::{DateTime, Utc};
use entity::{
    attachment, audit_event, consent, customer, data_key, invoice, message, payment_method,
    reveal_request, ticket,
};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::{json, Value};

use crate::audit::{Action, Actor, AuditLog, NewEvent};
use crate::crypto::vault::Vault;
use crate::error::{ApiError, ApiResult};
use crate::ids::CustomerId;
use crate::ledger;
use crate::reveal::store::GrantStore;
use crate::vocabulary::{Field, Storage};
use crate::writer::Writer;

/// The privacy officer's workflows within one request.
pub struct Privacy<'a> {
    /// The database, for reads.
    pub db: &'a DatabaseConnection,
    /// Where writes go.
    pub writer: &'a Writer,
    /// Where erasures are recorded outside the database.
    pub ledger: &'a ledger::Ledger,
    /// The audit trail.
    pub audit: &'a AuditLog,
    /// Where grants live (an erasure revokes the customer's).
    pub grants: &'a GrantStore,
    /// Customers' data keys.
    pub vault: &'a Vault,
    /// Who acts.
    pub actor: Actor,
}

impl Privacy<'_> {
    /// Everything held on a customer, decrypted, plus the access report (dates, purposes,
    /// roles of every recorded access), as one JSON document; the export is audited before
    /// it is returned.
    pub async fn export(&self, customer_id: CustomerId) -> ApiResult<Value> {
        let db = self.db;
        let id = customer_id.get();
        let row = customer::Entity::find_by_id(id)
            .one(db)
            .await?
            .ok_or(ApiError::NotFound)?;
        // The export is the privacy officer's deliberate path to every value.
        let opener = self.vault.opener(db, id).await?;
        let text =
            |table, column, row_id, sealed: &[u8]| opener.text(table, column, row_id, sealed);

        let mut payment_methods = Vec::new();
        for p in payment_method::Entity::find()
            .filter(payment_method::Column::CustomerId.eq(id))
            .order_by_asc(payment_method::Column::Id)
            .all(db)
            .await?
        {
            payment_methods.push(json!({
                "brand": p.brand, "last4": p.last4, "expMonth": p.exp_month, "expYear": p.exp_year,
                "billingAddress": {
                    "street": text("payment_methods", "billing_street", p.id, &p.billing_street)?,
                    "city": text("payment_methods", "billing_city", p.id, &p.billing_city)?,
                    "postalCode": text("payment_methods", "billing_postal_code", p.id, &p.billing_postal_code)?,
                    "country": text("payment_methods", "billing_country", p.id, &p.billing_country)?,
                },
            }));
        }
        let invoices: Vec<Value> = invoice::Entity::find()
            .filter(invoice::Column::CustomerId.eq(id))
            .order_by_asc(invoice::Column::Id)
            .all(db)
            .await?
            .into_iter()
            .map(|i| {
                json!({ "number": i.number, "amountCents": i.amount_cents, "currency": i.currency,
                             "status": i.status, "issuedAt": i.issued_at, "paidAt": i.paid_at })
            })
            .collect();
        let mut tickets = Vec::new();
        for t in ticket::Entity::find()
            .filter(ticket::Column::CustomerId.eq(id))
            .order_by_asc(ticket::Column::Id)
            .all(db)
            .await?
        {
            let mut messages = Vec::new();
            for m in message::Entity::find()
                .filter(message::Column::TicketId.eq(t.id))
                .order_by_asc(message::Column::Id)
                .all(db)
                .await?
            {
                messages.push(
                    json!({ "authorKind": m.author_kind, "createdAt": m.created_at,
                                      "body": text("messages", "body", m.id, &m.body)? }),
                );
            }
            let mut attachments = Vec::new();
            for a in attachment::Entity::find()
                .filter(attachment::Column::TicketId.eq(t.id))
                .order_by_asc(attachment::Column::Id)
                .all(db)
                .await?
            {
                let content = opener.bytes("attachments", "content", a.id, &a.content)?;
                attachments.push(json!({ "kind": a.kind, "fileName": a.file_name, "sizeBytes": a.size_bytes,
                                         "contentBase64": base64::engine::general_purpose::STANDARD.encode(content) }));
            }
            tickets.push(json!({ "id": t.id.to_string(), "subject": t.subject, "topic": t.topic, "status": t.status,
                                 "channel": t.channel, "createdAt": t.created_at, "resolvedAt": t.resolved_at,
                                 "messages": messages, "attachments": attachments }));
        }
        let consents: Vec<Value> = consent::Entity::find()
            .filter(consent::Column::CustomerId.eq(id))
            .order_by_asc(consent::Column::Id)
            .all(db)
            .await?
            .into_iter()
            .map(|c| json!({ "kind": c.kind, "noticeVersion": c.notice_version, "givenAt": c.given_at, "withdrawnAt": c.withdrawn_at }))
            .collect();
        let topics: std::collections::HashMap<i32, String> = tickets
            .iter()
            .filter_map(|t| {
                Some((
                    t["id"].as_str()?.parse().ok()?,
                    t["topic"].as_str()?.to_owned(),
                ))
            })
            .collect();
        let access: Vec<Value> = audit_event::Entity::find()
            .filter(audit_event::Column::CustomerId.eq(id))
            .order_by_asc(audit_event::Column::Seq)
            .all(db)
            .await?
            .into_iter()
            .map(|e| json!({ "at": e.occurred_at, "action": e.action, "role": e.actor_role,
                             "ticketId": e.ticket_id.map(|t| t.to_string()),
                             "purpose": e.ticket_id.and_then(|t| topics.get(&t).cloned()),
                             "fields": serde_json::from_str::<Value>(&e.fields).unwrap_or(Value::Null) }))
            .collect();
        // Every field stored in one column comes from the field table; the address is
        // several columns.
        let mut customer = serde_json::Map::new();
        customer.insert("id".into(), json!(id.to_string()));
        for field in Field::ALL {
            if let Storage::Column { .. } = field.storage() {
                let value = crate::customers::stored_text(&row, &opener, field)?;
                customer.insert(field.graphql_name().into(), json!(value));
            }
        }
        customer.insert(
            Field::PostalAddress.graphql_name().into(),
            json!({
                "street": text("customers", "street", id, &row.street)?,
                "city": text("customers", "city", id, &row.city)?,
                "postalCode": text("customers", "postal_code", id, &row.postal_code)?,
                "country": text("customers", "country", id, &row.country)?,
            }),
        );
        let document = json!({
            "customer": customer,
            "paymentMethods": payment_methods,
            "invoices": invoices,
            "tickets": tickets,
            "consents": consents,
            "accessReport": access,
        });
        self.audit
            .append(&[self.event(Action::CustomerExported, id)])
            .await
            .map_err(|e| ApiError::internal(e, "auditing an export"))?;
        Ok(document)
    }

    /// Erases a customer: revokes grants on their tickets, records the erasure in the
    /// ledger, then destroys their data key and deletes their rows in one transaction with
    /// its audit event. Erasing again answers the first erasure's time; an unknown customer
    /// is `NOT_FOUND`.
    pub async fn erase(&self, customer_id: CustomerId) -> ApiResult<DateTime<Utc>> {
        let db = self.db;
        let id = customer_id.get();
        let key = data_key::Entity::find_by_id(id).one(db).await?;
        if customer::Entity::find_by_id(id).one(db).await?.is_none() {
            let previous = audit_event::Entity::find()
                .filter(audit_event::Column::CustomerId.eq(id))
                .filter(audit_event::Column::Action.eq(Action::CustomerErased.as_str()))
                .one(db)
                .await?;
            return previous.map(|e| e.occurred_at).ok_or(ApiError::NotFound);
        }
        let tickets: Vec<i32> = ticket::Entity::find()
            .filter(ticket::Column::CustomerId.eq(id))
            .all(db)
            .await?
            .into_iter()
            .map(|t| t.id)
            .collect();
        for ticket in &tickets {
            self.grants
                .remove_for_ticket(*ticket)
                .await
                .map_err(|error| {
                    tracing::warn!(%error, "cannot revoke grants before an erasure");
                    ApiError::RevealUnavailable
                })?;
        }
        let now = Utc::now();
        if let Some(key) = &key {
            // The intent is durable before anything is deleted: a crash from here on is
            // completed at the next start.
            self.ledger
                .append(&[ledger::Entry::Erasure {
                    customer: id,
                    key_created: key.created_at,
                    at: now,
                }])
                .map_err(|e| ApiError::internal(e, "recording an erasure in the ledger"))?;
        }
        let event = self.event(Action::CustomerErased, id);
        let event = &event;
        self.writer
            .transaction(|txn| async move {
                delete_customer(&txn, id).await?;
                crate::audit::append_in(&txn, std::slice::from_ref(event))
                    .await
                    .map_err(|e| ApiError::internal(e, "auditing an erasure"))?;
                Ok::<_, ApiError>(((), txn))
            })
            .await?;
        self.vault.forget(id);
        Ok(now)
    }

    fn event(&self, action: Action, customer_id: i32) -> NewEvent {
        self.actor
            .event(action, Some(customer_id), None, Vec::new(), None)
    }
}

/// Deletes customer `id`'s data key and every row of theirs, inside `txn`.
async fn delete_customer(txn: &DatabaseTransaction, id: i32) -> Result<(), sea_orm::DbErr> {
    let tickets: Vec<i32> = ticket::Entity::find()
        .filter(ticket::Column::CustomerId.eq(id))
        .all(txn)
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect();
    data_key::Entity::delete_by_id(id).exec(txn).await?;
    reveal_request::Entity::delete_many()
        .filter(reveal_request::Column::CustomerId.eq(id))
        .exec(txn)
        .await?;
    message::Entity::delete_many()
        .filter(message::Column::TicketId.is_in(tickets.clone()))
        .exec(txn)
        .await?;
    attachment::Entity::delete_many()
        .filter(attachment::Column::TicketId.is_in(tickets))
        .exec(txn)
        .await?;
    ticket::Entity::delete_many()
        .filter(ticket::Column::CustomerId.eq(id))
        .exec(txn)
        .await?;
    payment_method::Entity::delete_many()
        .filter(payment_method::Column::CustomerId.eq(id))
        .exec(txn)
        .await?;
    invoice::Entity::delete_many()
        .filter(invoice::Column::CustomerId.eq(id))
        .exec(txn)
        .await?;
    consent::Entity::delete_many()
        .filter(consent::Column::CustomerId.eq(id))
        .exec(txn)
        .await?;
    customer::Entity::delete_by_id(id).exec(txn).await?;
    Ok(())
}

/// What [`reapply`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reapplied {
    /// Customers erased again.
    pub erasures: u64,
    /// Rows purged again.
    pub purges: u64,
}

/// Re-applies every ledger entry the database does not reflect (after a restore from a
/// backup older than the erasure or purge), each with its audit event. Runs at start-up,
/// before the service accepts requests. An entry whose row is gone, or whose id now names
/// another customer or row (the fingerprint differs), is left alone.
pub async fn reapply(
    db: &DatabaseConnection,
    writer: &Writer,
    ledger: &ledger::Ledger,
) -> anyhow::Result<Reapplied> {
    use anyhow::Context;
    let mut done = Reapplied::default();
    let actor = Actor {
        agent_id: None,
        role: "system".into(),
        request_id: "erasure-ledger".into(),
        policy_version: None,
    };
    for entry in ledger.entries()? {
        match entry {
            ledger::Entry::Erasure {
                customer,
                key_created,
                ..
            } => {
                let key = data_key::Entity::find_by_id(customer)
                    .one(db)
                    .await
                    .context("reading a data key")?;
                if key.is_none_or(|k| k.created_at != key_created) {
                    continue;
                }
                let event = actor.event(
                    Action::CustomerErased,
                    Some(customer),
                    None,
                    Vec::new(),
                    Some("re-applied from the erasure ledger (the database was restored from an older backup)".into()),
                );
                let event = &event;
                writer
                    .transaction(|txn| async move {
                        delete_customer(&txn, customer).await?;
                        crate::audit::append_in(&txn, std::slice::from_ref(event)).await?;
                        Ok::<_, anyhow::Error>(((), txn))
                    })
                    .await
                    .context("re-applying an erasure")?;
                done.erasures += 1;
            }
            ledger::Entry::Purge {
                table, id, digest, ..
            } => {
                let (ticket, content) = match table.as_str() {
                    "attachments" => match attachment::Entity::find_by_id(id)
                        .one(db)
                        .await
                        .context("reading an attachment")?
                    {
                        Some(row) => (row.ticket_id, row.content),
                        None => continue,
                    },
                    "messages" => match message::Entity::find_by_id(id)
                        .one(db)
                        .await
                        .context("reading a message")?
                    {
                        Some(row) => (row.ticket_id, row.body),
                        None => continue,
                    },
                    _ => continue,
                };
                if ledger::digest(&content) != digest {
                    continue;
                }
                let customer = ticket::Entity::find_by_id(ticket)
                    .one(db)
                    .await
                    .context("reading a ticket")?
                    .map(|t| t.customer_id);
                let event = actor.event(
                    Action::Purged,
                    customer,
                    Some(ticket),
                    vec![table.clone()],
                    Some("1 row(s) re-purged from the erasure ledger (the database was restored from an older backup)".into()),
                );
                let (event, table) = (&event, table.as_str());
                writer
                    .transaction(|txn| async move {
                        if table == "attachments" {
                            attachment::Entity::delete_by_id(id).exec(&txn).await?;
                        } else {
                            message::Entity::delete_by_id(id).exec(&txn).await?;
                        }
                        crate::audit::append_in(&txn, std::slice::from_ref(event)).await?;
                        Ok::<_, anyhow::Error>(((), txn))
                    })
                    .await
                    .context("re-applying a purge")?;
                done.purges += 1;
            }
        }
    }
    if done != Reapplied::default() {
        tracing::warn!(
            erasures = done.erasures,
            purges = done.purges,
            "the database held data the erasure ledger says was erased or purged (restored from an older backup?); erased it again"
        );
    }
    Ok(done)
}
