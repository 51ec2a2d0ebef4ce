//! Tickets: which ones an agent may see (filtered in SQL from the policy's scopes), what
//! agents do to them, and how a message is stored.

pub mod lookup;
pub mod visibility;
pub mod workflow;

/// A status as stored; a word the vocabulary does not know is a broken row.
pub fn stored_status(status: &str) -> crate::error::ApiResult<crate::vocabulary::TicketStatus> {
    status.parse().map_err(|_| {
        crate::error::ApiError::internal(
            anyhow::anyhow!("unknown ticket status in the database"),
            "reading a ticket",
        )
    })
}

/// Stores a message on a ticket. Every message enters through here: card numbers are
/// replaced by `[card ••••NNNN]` before anything is written (PCI DSS 3.3/3.4), and the body
/// is sealed with the customer's data key, bound to the message's row.
pub async fn add_message(
    db: &impl sea_orm::ConnectionTrait,
    key: &crate::crypto::vault::DataKey,
    ticket_id: i32,
    author_kind: &str,
    author_agent_id: Option<i32>,
    body: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<entity::message::Model, sea_orm::DbErr> {
    use sea_orm::{ActiveModelTrait, Set};
    // The row id is part of the ciphertext's associated data, so the row comes first.
    let row = entity::message::ActiveModel {
        ticket_id: Set(ticket_id),
        author_kind: Set(author_kind.to_owned()),
        author_agent_id: Set(author_agent_id),
        body: Set(Vec::new()),
        created_at: Set(at),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let redacted = crate::customers::mask::redact_cards_for_storage(body);
    let sealed =
        crate::crypto::vault::seal_field(key, "messages", "body", row.id, redacted.as_bytes());
    let mut row: entity::message::ActiveModel = row.into();
    row.body = Set(sealed);
    row.update(db).await
}
