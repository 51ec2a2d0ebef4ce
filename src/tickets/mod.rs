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

/// Who wrote a message, as stored in `messages.author_kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum Author {
    /// The customer (through a channel integration).
    Customer,
    /// The channel or another system (e.g. "the customer left the chat").
    System,
    /// An agent replying to the customer.
    Agent,
    /// An agent's internal note (a hand-off note); never sent to the customer.
    Internal,
}

impl Author {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Author::Customer => "customer",
            Author::System => "system",
            Author::Agent => "agent",
            Author::Internal => "internal",
        }
    }
}

/// A message to store.
#[derive(Clone, Copy, Debug)]
pub struct NewMessage<'a> {
    /// Who wrote it.
    pub author: Author,
    /// The agent who wrote it, for agent replies and notes.
    pub author_agent_id: Option<i32>,
    /// The text (card numbers are redacted before storage).
    pub body: &'a str,
    /// When it was written.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The id the channel gives it.
    pub external_id: Option<&'a str>,
}

/// A message written by [`post_in`], and whether it reopened a resolved ticket.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Posted {
    /// The message's id.
    pub message_id: i32,
    /// The ticket's id.
    pub ticket_id: i32,
    /// The ticket's status after the message (`open` when it reopened).
    pub ticket_status: String,
    /// Whether the message reopened a resolved ticket.
    pub reopened: bool,
    /// Whether it was written now (false: its external id named a message already there).
    #[serde(default = "written")]
    pub created: bool,
}

fn written() -> bool {
    true
}

/// The audit events of a message [`post_in`] wrote: `message_added` (naming its author's
/// kind), and `ticket_reopened` when it reopened the ticket.
pub fn message_events(
    actor: &crate::audit::Actor,
    posted: &Posted,
    customer_id: i32,
    author: Author,
) -> Vec<crate::audit::NewEvent> {
    use crate::audit::Action;
    let mut events = vec![actor.event(
        Action::MessageAdded,
        Some(customer_id),
        Some(posted.ticket_id),
        Vec::new(),
        Some(format!("by {}", author.as_str())),
    )];
    if posted.reopened {
        events.push(actor.event(
            Action::TicketReopened,
            Some(customer_id),
            Some(posted.ticket_id),
            Vec::new(),
            Some(format!("by a message of {}", author.as_str())),
        ));
    }
    events
}

/// Why [`post_in`] refused a message.
#[derive(Debug)]
pub enum PostError {
    /// The ticket is closed: nothing more may be written to it.
    Closed,
    /// The ticket or its customer's key is gone (erased).
    Gone,
    /// The database failed.
    Database(sea_orm::DbErr),
}

impl From<sea_orm::DbErr> for PostError {
    fn from(error: sea_orm::DbErr) -> Self {
        PostError::Database(error)
    }
}

impl From<PostError> for crate::error::ApiError {
    fn from(error: PostError) -> Self {
        match error {
            PostError::Closed => crate::error::ApiError::Conflict {
                message: "the ticket is closed: nothing more can be added; open a new ticket"
                    .into(),
                retry_after_secs: None,
            },
            PostError::Gone => crate::error::ApiError::NotFound,
            PostError::Database(e) => e.into(),
        }
    }
}

/// Writes a message dated `at` to ticket `ticket_id` inside the caller's transaction,
/// reading the ticket's status there: a closed ticket refuses it; a resolved one reopens
/// (`open`, its resolution cleared) unless the message is dated before the resolution (an
/// import's history). The body is redacted and sealed by [`add_message`]. Returns what
/// was written; the caller audits it in the same transaction.
pub async fn post_in(
    txn: &sea_orm::DatabaseTransaction,
    vault: &crate::crypto::vault::Vault,
    ticket_id: i32,
    message: &NewMessage<'_>,
) -> Result<Posted, PostError> {
    let at = message.at;
    use crate::vocabulary::TicketStatus;
    use sea_orm::{ActiveModelTrait, EntityTrait, Set};
    let ticket = entity::ticket::Entity::find_by_id(ticket_id)
        .one(txn)
        .await?
        .ok_or(PostError::Gone)?;
    let status: TicketStatus = ticket
        .status
        .parse()
        .map_err(|_| PostError::Database(sea_orm::DbErr::Custom("unknown ticket status".into())))?;
    if status == TicketStatus::Closed {
        return Err(PostError::Closed);
    }
    let key = vault
        .data_key(txn, ticket.customer_id)
        .await
        .map_err(|e| PostError::Database(sea_orm::DbErr::Custom(format!("{e:#}"))))?
        .ok_or(PostError::Gone)?;
    let stored = add_message(txn, &key, ticket.id, message).await?;
    // A message written after the resolution reopens the ticket; an imported one dated
    // before it is history and does not.
    let reopened = status == TicketStatus::Resolved
        && ticket.resolved_at.is_none_or(|resolved| at >= resolved);
    if reopened {
        let mut active: entity::ticket::ActiveModel = ticket.clone().into();
        active.status = Set(TicketStatus::Open.as_str().to_owned());
        active.resolved_at = Set(None);
        active.update(txn).await?;
    }
    Ok(Posted {
        message_id: stored.id,
        ticket_id: ticket.id,
        ticket_status: if reopened { TicketStatus::Open } else { status }
            .as_str()
            .to_owned(),
        reopened,
        created: true,
    })
}

/// Stores a message on a ticket. Every message enters through here: card numbers are
/// replaced by `[card ••••NNNN]` before anything is written (PCI DSS 3.3/3.4), and the body
/// is sealed with the customer's data key, bound to the message's row.
pub async fn add_message(
    db: &impl sea_orm::ConnectionTrait,
    key: &crate::crypto::vault::DataKey,
    ticket_id: i32,
    message: &NewMessage<'_>,
) -> Result<entity::message::Model, sea_orm::DbErr> {
    use sea_orm::{ActiveModelTrait, Set};
    // The row id is part of the ciphertext's associated data, so the row comes first.
    let row = entity::message::ActiveModel {
        ticket_id: Set(ticket_id),
        author_kind: Set(message.author.as_str().to_owned()),
        author_agent_id: Set(message.author_agent_id),
        body: Set(Vec::new()),
        created_at: Set(message.at),
        external_id: Set(message.external_id.map(str::to_owned)),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let redacted = crate::customers::mask::redact_cards_for_storage(message.body);
    let sealed =
        crate::crypto::vault::seal_field(key, "messages", "body", row.id, redacted.as_bytes());
    let mut row: entity::message::ActiveModel = row.into();
    row.body = Set(sealed);
    row.update(db).await
}
