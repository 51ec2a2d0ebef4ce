//! Data-subject rights, for the privacy officer: export everything held on a customer, and
//! erase a customer for good (crypto-shredding: the data key is destroyed, the rows
//! deleted, the audit trail kept with pseudonymous ids). Who may do either is the
//! policy's decision, checked by the caller; this module is the workflow.

use base64::Engine;
use chrono::{DateTime, Utc};
use entity::{
    attachment, audit_event, consent, customer, data_key, invoice, message, payment_method,
    reveal_request, ticket,
};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use serde_json::{json, Value};

use crate::audit::{Action, Actor, AuditLog, NewEvent};
use crate::crypto::vault::Vault;
use crate::error::{ApiError, ApiResult};
use crate::ids::CustomerId;
use crate::reveal::store::GrantStore;
use crate::vocabulary::{Field, Storage};

/// The privacy officer's workflows within one request.
pub struct Privacy<'a> {
    /// The database.
    pub db: &'a DatabaseConnection,
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

    /// Erases a customer: revokes grants on their tickets, destroys their data key and
    /// deletes their rows in one transaction, then records the erasure. Erasing again
    /// answers the first erasure's time; an unknown customer is `NOT_FOUND`.
    pub async fn erase(&self, customer_id: CustomerId) -> ApiResult<DateTime<Utc>> {
        let db = self.db;
        let id = customer_id.get();
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
        let txn = db.begin().await?;
        data_key::Entity::delete_by_id(id).exec(&txn).await?;
        reveal_request::Entity::delete_many()
            .filter(reveal_request::Column::CustomerId.eq(id))
            .exec(&txn)
            .await?;
        for ticket in &tickets {
            message::Entity::delete_many()
                .filter(message::Column::TicketId.eq(*ticket))
                .exec(&txn)
                .await?;
            attachment::Entity::delete_many()
                .filter(attachment::Column::TicketId.eq(*ticket))
                .exec(&txn)
                .await?;
        }
        ticket::Entity::delete_many()
            .filter(ticket::Column::CustomerId.eq(id))
            .exec(&txn)
            .await?;
        payment_method::Entity::delete_many()
            .filter(payment_method::Column::CustomerId.eq(id))
            .exec(&txn)
            .await?;
        invoice::Entity::delete_many()
            .filter(invoice::Column::CustomerId.eq(id))
            .exec(&txn)
            .await?;
        consent::Entity::delete_many()
            .filter(consent::Column::CustomerId.eq(id))
            .exec(&txn)
            .await?;
        customer::Entity::delete_by_id(id).exec(&txn).await?;
        txn.commit().await?;
        self.vault.forget(id);
        self.audit
            .append(&[self.event(Action::CustomerErased, id)])
            .await
            .map_err(|e| ApiError::internal(e, "auditing an erasure"))?;
        Ok(Utc::now())
    }

    fn event(&self, action: Action, customer_id: i32) -> NewEvent {
        self.actor
            .event(action, Some(customer_id), None, Vec::new(), None)
    }
}
