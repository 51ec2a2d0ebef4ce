//! Data-subject rights for the privacy officer: export everything held on a customer, and
//! erase a customer for good (crypto-shredding: the data key is destroyed, the rows
//! deleted, the audit trail kept with pseudonymous ids).

use async_graphql::{Context, Json, Object, SimpleObject, ID};
use base64::Engine;
use chrono::{DateTime, Utc};
use entity::{
    attachment, audit_event, consent, customer, data_key, invoice, message, payment_method,
    reveal_request, ticket,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};
use serde_json::{json, Value};

use crate::audit::{Action, NewEvent};
use crate::crypto::vault::{decrypt_bytes, decrypt_text};
use crate::error::{ApiError, ApiResult};
use crate::ids::CustomerId;
use crate::request::RequestContext;
use crate::vocabulary::{Field, Permission, Storage};

fn require(request: &RequestContext, permission: Permission) -> ApiResult<()> {
    if request.allowed(permission) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "your role may not {} customer data",
            permission.action()
        )))
    }
}

fn event(request: &RequestContext, action: Action, customer_id: i32) -> NewEvent {
    request.audit_event(action, Some(customer_id), None, Vec::new(), None)
}

/// What `eraseCustomer` did (the same answer every time for the same customer).
#[derive(SimpleObject)]
pub struct Erasure {
    /// The erased customer's (now pseudonymous) id.
    pub customer_id: ID,
    /// When the erasure happened.
    pub erased_at: DateTime<Utc>,
}

/// Privacy-officer queries.
#[derive(Default)]
pub struct PrivacyQuery;

#[Object]
impl PrivacyQuery {
    /// Everything held on a customer, decrypted, plus the access report (dates, purposes,
    /// roles of every recorded access), as one JSON document. Recorded in the audit trail
    /// before it is returned. For roles the policy allows (`allow(agent, "export",
    /// "customer_data")`).
    async fn export_customer_data(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
    ) -> ApiResult<Json<Value>> {
        let request = RequestContext::get(ctx);
        require(request, Permission::ExportCustomerData)?;
        let id = CustomerId::parse(&customer_id, "customerId")?.get();
        let db = &request.db;
        let row = customer::Entity::find_by_id(id)
            .one(db)
            .await?
            .ok_or(ApiError::NotFound)?;
        let key = request.data_key(id).await?;
        let text = |table, column, row_id, sealed: &[u8]| {
            decrypt_text(&key, table, column, row_id, sealed)
        };

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
                let content = decrypt_bytes(&key, "attachments", "content", a.id, &a.content)?;
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
                let value = super::customers::stored_text(&row, &key, field)?;
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
        request
            .audit
            .append(&[event(request, Action::CustomerExported, id)])
            .await
            .map_err(|e| ApiError::internal(e, "auditing an export"))?;
        Ok(Json(document))
    }
}

/// Privacy-officer mutations.
#[derive(Default)]
pub struct PrivacyMutation;

#[Object]
impl PrivacyMutation {
    /// Erases a customer for good: destroys their data key (so any copy of their
    /// ciphertext, in backups too, stays unreadable), deletes their rows, revokes grants on
    /// their tickets, and records the erasure. The audit trail stays verifiable, naming the
    /// customer only by their former id. Erasing again answers the same; an unknown
    /// customer is `NOT_FOUND`. For roles the policy allows (`allow(agent, "erase",
    /// "customer_data")`).
    async fn erase_customer(&self, ctx: &Context<'_>, customer_id: ID) -> ApiResult<Erasure> {
        let request = RequestContext::get(ctx);
        require(request, Permission::EraseCustomerData)?;
        let id = CustomerId::parse(&customer_id, "customerId")?.get();
        let db = &request.db;
        if customer::Entity::find_by_id(id).one(db).await?.is_none() {
            let previous = audit_event::Entity::find()
                .filter(audit_event::Column::CustomerId.eq(id))
                .filter(audit_event::Column::Action.eq(Action::CustomerErased.as_str()))
                .one(db)
                .await?;
            return match previous {
                Some(event) => Ok(Erasure {
                    customer_id,
                    erased_at: event.occurred_at,
                }),
                None => Err(ApiError::NotFound),
            };
        }
        let tickets: Vec<i32> = ticket::Entity::find()
            .filter(ticket::Column::CustomerId.eq(id))
            .all(db)
            .await?
            .into_iter()
            .map(|t| t.id)
            .collect();
        for ticket in &tickets {
            request
                .grant_store
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
        request.vault.forget(id);
        request
            .audit
            .append(&[event(request, Action::CustomerErased, id)])
            .await
            .map_err(|e| ApiError::internal(e, "auditing an erasure"))?;
        Ok(Erasure {
            customer_id,
            erased_at: Utc::now(),
        })
    }
}
