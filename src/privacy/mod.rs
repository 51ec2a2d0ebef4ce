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
                let content = opener.attachment(a.id, a.wrapped_key.as_deref(), &a.content)?;
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
/// another customer or row (the fingerprint differs), is left alone. The rows are looked up
/// in batches, so a ledger of many entries costs a few queries, not one per entry.
pub async fn reapply(
    db: &DatabaseConnection,
    writer: &Writer,
    ledger: &ledger::Ledger,
) -> anyhow::Result<Reapplied> {
    use anyhow::Context;
    use std::collections::BTreeMap;
    const BATCH: usize = 500;
    let mut erasures: BTreeMap<i32, DateTime<Utc>> = BTreeMap::new();
    let mut purges: BTreeMap<(&'static str, i32), String> = BTreeMap::new();
    for entry in ledger.entries()? {
        match entry {
            ledger::Entry::Erasure {
                customer,
                key_created,
                ..
            } => {
                erasures.insert(customer, key_created);
            }
            ledger::Entry::Purge {
                table, id, digest, ..
            } => match table.as_str() {
                "attachments" => {
                    purges.insert(("attachments", id), digest);
                }
                "messages" => {
                    purges.insert(("messages", id), digest);
                }
                _ => {}
            },
        }
    }

    // Customers whose data key is back: the same key (same creation time) as when erased.
    let mut erase = Vec::new();
    let ids: Vec<i32> = erasures.keys().copied().collect();
    for chunk in ids.chunks(BATCH) {
        for key in data_key::Entity::find()
            .filter(data_key::Column::CustomerId.is_in(chunk.to_vec()))
            .all(db)
            .await
            .context("reading data keys")?
        {
            if erasures.get(&key.customer_id) == Some(&key.created_at) {
                erase.push(key.customer_id);
            }
        }
    }
    // Rows the sweeper purged that are back: the same ciphertext.
    let mut purge: Vec<(&'static str, i32, i32)> = Vec::new();
    for table in ["attachments", "messages"] {
        let ids: Vec<i32> = purges
            .keys()
            .filter(|(t, _)| *t == table)
            .map(|(_, id)| *id)
            .collect();
        for chunk in ids.chunks(BATCH) {
            let rows: Vec<(i32, i32, Vec<u8>)> = if table == "attachments" {
                attachment::Entity::find()
                    .filter(attachment::Column::Id.is_in(chunk.to_vec()))
                    .all(db)
                    .await
                    .context("reading attachments")?
                    .into_iter()
                    .map(|a| (a.id, a.ticket_id, a.content))
                    .collect()
            } else {
                message::Entity::find()
                    .filter(message::Column::Id.is_in(chunk.to_vec()))
                    .all(db)
                    .await
                    .context("reading messages")?
                    .into_iter()
                    .map(|m| (m.id, m.ticket_id, m.body))
                    .collect()
            };
            for (id, ticket, content) in rows {
                if purges.get(&(table, id)) == Some(&ledger::digest(&content)) {
                    purge.push((table, id, ticket));
                }
            }
        }
    }

    let actor = Actor {
        agent_id: None,
        role: "system".into(),
        request_id: "erasure-ledger".into(),
        policy_version: None,
        idempotency_key: None,
    };
    let mut done = Reapplied::default();
    for customer in erase {
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
    for (table, id, ticket) in purge {
        let customer = ticket::Entity::find_by_id(ticket)
            .one(db)
            .await
            .context("reading a ticket")?
            .map(|t| t.customer_id);
        let event = actor.event(
            Action::Purged,
            customer,
            Some(ticket),
            vec![table.to_owned()],
            Some("1 row(s) re-purged from the erasure ledger (the database was restored from an older backup)".into()),
        );
        let event = &event;
        // A row an erasure above already took is not purged, nor audited, twice.
        let deleted = writer
            .transaction(|txn| async move {
                let deleted = if table == "attachments" {
                    attachment::Entity::delete_by_id(id).exec(&txn).await?
                } else {
                    message::Entity::delete_by_id(id).exec(&txn).await?
                }
                .rows_affected;
                if deleted > 0 {
                    crate::audit::append_in(&txn, std::slice::from_ref(event)).await?;
                }
                Ok::<_, anyhow::Error>((deleted, txn))
            })
            .await
            .context("re-applying a purge")?;
        done.purges += deleted;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DatabaseSettings, Settings};
    use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set};

    /// A customer with a data key created at `at`; returns their id.
    async fn customer_with_key(db: &DatabaseConnection, at: DateTime<Utc>) -> i32 {
        let row = customer::ActiveModel {
            account_status: Set("active".into()),
            plan: Set("basic".into()),
            customer_since: Set(chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()),
            region: Set("US".into()),
            preferred_language: Set("en".into()),
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
        .insert(db)
        .await
        .unwrap();
        data_key::ActiveModel {
            customer_id: Set(row.id),
            master_version: Set(1),
            wrapped: Set(vec![1, 2, 3]),
            created_at: Set(at),
        }
        .insert(db)
        .await
        .unwrap();
        row.id
    }

    /// The ledger erases a customer whose key is back, and leaves alone a customer who
    /// merely has the same id (another key); a second pass finds nothing to do.
    #[tokio::test]
    async fn reapply_erases_the_same_customer_and_never_one_that_reuses_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::for_data_dir(
            dir.path(),
            DatabaseSettings::Sqlite {
                path: dir.path().join("t.sqlite"),
            },
        );
        let db = crate::db::connect(&settings).await.unwrap();
        crate::db::migrate(&db).await.unwrap();
        let writer = Writer::new(db.clone());
        let ledger = ledger::Ledger::at(dir.path().join("ledger.jsonl"));
        let created = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let erased = customer_with_key(&db, created).await;
        let reused = customer_with_key(&db, created + chrono::Duration::seconds(1)).await;
        ledger
            .append(&[
                ledger::Entry::Erasure {
                    customer: erased,
                    key_created: created,
                    at: Utc::now(),
                },
                ledger::Entry::Erasure {
                    customer: reused,
                    key_created: created,
                    at: Utc::now(),
                },
            ])
            .unwrap();
        let done = reapply(&db, &writer, &ledger).await.unwrap();
        assert_eq!(done.erasures, 1);
        assert!(customer::Entity::find_by_id(erased)
            .one(&db)
            .await
            .unwrap()
            .is_none());
        assert!(customer::Entity::find_by_id(reused)
            .one(&db)
            .await
            .unwrap()
            .is_some());
        assert_eq!(audit_event::Entity::find().count(&db).await.unwrap(), 1);
        assert_eq!(
            reapply(&db, &writer, &ledger).await.unwrap(),
            Reapplied::default()
        );
    }
}
