//! Linking an inbound contact to a customer's tickets: by the blind index of an exact email
//! address or phone number, confirmed by decrypting and comparing, and answered only with
//! tickets the agent may see anyway.

use entity::{customer, ticket};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use super::visibility;
use crate::agents::Agent;
use crate::crypto::blind::{normalize_email, normalize_phone};
use crate::crypto::vault::Vault;
use crate::error::{ApiError, ApiResult};
use crate::vocabulary::TicketScope;

/// An inbound contact, checked for shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contact {
    /// An email address.
    Email(String),
    /// A phone number (at least 6 digits).
    Phone(String),
}

impl Contact {
    /// Exactly one of an email address (≤ 254 characters, with `@`) or a phone number
    /// (≤ 40 characters, at least 6 digits).
    pub fn parse(email: Option<String>, phone: Option<String>) -> ApiResult<Contact> {
        match (email, phone) {
            (Some(email), None) if email.len() <= 254 && email.contains('@') => {
                Ok(Contact::Email(email))
            }
            (None, Some(phone)) if phone.len() <= 40 && normalize_phone(&phone).len() >= 6 => {
                Ok(Contact::Phone(phone))
            }
            _ => Err(ApiError::BadUserInput(
                "give exactly one of `email` (an address) or `phone` (at least 6 digits)".into(),
            )),
        }
    }
}

/// The tickets visible to `agent` (under `scopes`) of the customers whose email or phone is
/// exactly `contact`.
pub async fn by_contact(
    db: &DatabaseConnection,
    vault: &Vault,
    agent: &Agent,
    scopes: &[TicketScope],
    contact: &Contact,
) -> ApiResult<Vec<ticket::Model>> {
    let blind = vault
        .blind()
        .map_err(|e| ApiError::internal(e, "blind index"))?;
    let (column, index, wanted, field) = match contact {
        Contact::Email(email) => (
            customer::Column::EmailIndex,
            blind.email(email),
            normalize_email(email),
            "email",
        ),
        Contact::Phone(phone) => (
            customer::Column::PhoneIndex,
            blind.phone(phone),
            normalize_phone(phone),
            "phone",
        ),
    };
    let candidates = customer::Entity::find()
        .filter(column.eq(index))
        .all(db)
        .await?;
    let ids: Vec<i32> = candidates.iter().map(|c| c.id).collect();
    // Matching compares, and answers only tickets the agent may see anyway.
    let openers = vault
        .openers(db, &ids)
        .await
        .map_err(|e| ApiError::internal(e, "loading keys"))?;
    let mut matched = Vec::new();
    for candidate in &candidates {
        let Some(opener) = openers.get(&candidate.id) else {
            continue;
        };
        let sealed = if field == "email" {
            &candidate.email
        } else {
            &candidate.phone
        };
        let value = opener.text("customers", field, candidate.id, sealed)?;
        let normalized = if field == "email" {
            normalize_email(&value)
        } else {
            normalize_phone(&value)
        };
        if normalized == wanted {
            matched.push(candidate.id);
        }
    }
    if matched.is_empty() {
        return Ok(Vec::new());
    }
    let Some(visible) = visibility::visibility(agent, scopes) else {
        return Ok(Vec::new());
    };
    Ok(ticket::Entity::find()
        .filter(visible)
        .filter(ticket::Column::CustomerId.is_in(matched))
        .all(db)
        .await?)
}
