//! Intake: what arrives from the channels (a chat widget's backend, an email gateway, a
//! helpdesk sync, `needtoknow import`). Customers are created or updated by their external
//! id, tickets opened with their first message and the consent notice the customer saw,
//! messages and documents added.
//!
//! Privacy is applied on the way in: card numbers are redacted before storage, every
//! personal value is sealed under the customer's data key (a document under a key of its
//! own), blind indexes are updated, and each write is audited (never with values) in the
//! transaction that makes it. The policy decides who may write (`allow(agent, "upsert",
//! "customer")`, `"open"`, `"append_message"`, `"attach_document"` on a ticket); the
//! shipped `intake` role may write and reads nothing back, so every answer here holds ids,
//! statuses and names of fields, never a value.

pub mod document;
pub mod import;

use chrono::Utc;
use entity::{attachment, customer, ticket};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, QueryFilter, Set,
};
use serde::{Deserialize, Serialize};

use crate::agents::Agent;
use crate::audit::{Action, Actor, NewEvent};
use crate::crypto::vault::{seal_attachment, seal_field, Opener, Vault};
use crate::error::{ApiError, ApiResult};
use crate::idempotency::Claim;
use crate::input::{
    Body, Country, DateOfBirth, Email, ExternalId, Language, Line, PastDate, Phone,
};
use crate::policy::PolicySet;
use crate::tickets::{post_in, Author, Posted};
use crate::vocabulary::{Field, Permission, TicketStatus};
use crate::writer::Writer;
use document::DocumentType;

/// A postal address as a writer sends it.
#[derive(Clone, Debug)]
pub struct Address {
    /// Street and number.
    pub street: Line,
    /// City.
    pub city: Line,
    /// Postal code.
    pub postal_code: Line,
    /// Country.
    pub country: Country,
}

/// A customer as a channel or CRM knows them: every field but the external id is optional,
/// and only the fields given change.
#[derive(Clone, Debug)]
pub struct CustomerInput {
    /// The id the helpdesk or CRM gives the customer.
    pub external_id: ExternalId,
    /// Full name.
    pub full_name: Option<Line>,
    /// Email address.
    pub email: Option<Email>,
    /// Phone number.
    pub phone: Option<Phone>,
    /// Postal address.
    pub postal_address: Option<Address>,
    /// Date of birth.
    pub date_of_birth: Option<DateOfBirth>,
    /// Region (a country code).
    pub region: Option<Country>,
    /// Plan.
    pub plan: Option<Line>,
    /// Preferred language.
    pub preferred_language: Option<Language>,
    /// When they became a customer (new customers default to today).
    pub customer_since: Option<crate::input::PastDate>,
}

/// A postal address as a writer sends it, unchecked.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawAddress {
    /// Street and number.
    pub street: String,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
}

/// A customer as a writer sends it (the GraphQL input, an import line), unchecked:
/// [`RawCustomer::parse`] turns it into a [`CustomerInput`] or names the first bad field.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawCustomer {
    /// The helpdesk's or CRM's id.
    pub external_id: String,
    /// Full name.
    pub full_name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Phone number (E.164).
    pub phone: Option<String>,
    /// Postal address.
    pub postal_address: Option<RawAddress>,
    /// Date of birth, `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
    /// Region (country code).
    pub region: Option<String>,
    /// Plan.
    pub plan: Option<String>,
    /// Preferred language (BCP 47).
    pub preferred_language: Option<String>,
    /// Customer since, `YYYY-MM-DD`.
    pub customer_since: Option<String>,
}

impl RawCustomer {
    /// Checks every field, as of `today` (dates must not be in the future).
    pub fn parse(self, today: chrono::NaiveDate) -> ApiResult<CustomerInput> {
        let line = |what: &str, v: Option<String>| v.map(|v| Line::parse(what, &v)).transpose();
        let date =
            |what: &str, v: Option<String>| v.map(|v| PastDate::parse(what, &v, today)).transpose();
        Ok(CustomerInput {
            external_id: ExternalId::parse("externalId", &self.external_id)?,
            full_name: line("fullName", self.full_name)?,
            email: self.email.map(|v| Email::parse("email", &v)).transpose()?,
            phone: self.phone.map(|v| Phone::parse("phone", &v)).transpose()?,
            postal_address: self
                .postal_address
                .map(|a| -> ApiResult<Address> {
                    Ok(Address {
                        street: Line::parse("postalAddress.street", &a.street)?,
                        city: Line::parse("postalAddress.city", &a.city)?,
                        postal_code: Line::parse("postalAddress.postalCode", &a.postal_code)?,
                        country: Country::parse("postalAddress.country", &a.country)?,
                    })
                })
                .transpose()?,
            date_of_birth: date("dateOfBirth", self.date_of_birth)?,
            region: self
                .region
                .map(|v| Country::parse("region", &v))
                .transpose()?,
            plan: line("plan", self.plan)?,
            preferred_language: self
                .preferred_language
                .map(|v| Language::parse("preferredLanguage", &v))
                .transpose()?,
            customer_since: date("customerSince", self.customer_since)?,
        })
    }
}

/// What `upsert_customer` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upserted {
    /// The customer's id.
    pub customer_id: i32,
    /// Whether the customer was created.
    pub created: bool,
    /// The fields whose values changed, by schema name (never the values).
    pub changed: Vec<String>,
}

/// The customer a ticket is for.
#[derive(Clone, Debug)]
pub enum CustomerRef {
    /// By the service's id.
    Id(i32),
    /// By the external id given to `upsert_customer`.
    External(ExternalId),
}

/// The consent notice the customer saw before the conversation began.
#[derive(Clone, Debug)]
pub struct NoticeShown {
    /// Its kind, e.g. `recording`.
    pub kind: String,
    /// Its version.
    pub version: String,
}

/// A ticket as a channel opens it.
#[derive(Clone, Debug)]
pub struct TicketInput {
    /// Whose ticket it is.
    pub customer: CustomerRef,
    /// The id the channel gives the ticket: a second delivery finds it instead of opening
    /// another.
    pub external_id: Option<ExternalId>,
    /// The channel (a `channel(...)` word of the policy).
    pub channel: String,
    /// The topic (a `topic(...)` word of the policy).
    pub topic: String,
    /// The subject (card numbers are redacted before storage).
    pub subject: Line,
    /// The customer's first message.
    pub message: Option<Body>,
    /// The consent notice shown before the conversation, recorded with the ticket.
    pub notice: Option<NoticeShown>,
    /// Its past, when it comes from another helpdesk (`needtoknow import`): status and
    /// dates as they were there. `None`: a new ticket, `open` now.
    pub history: Option<History>,
}

/// A ticket's past in the helpdesk it is imported from.
#[derive(Clone, Debug)]
pub struct History {
    /// Its status there.
    pub status: TicketStatus,
    /// When it was opened (its first message is dated so too).
    pub created_at: chrono::DateTime<Utc>,
    /// When it was resolved, if it was.
    pub resolved_at: Option<chrono::DateTime<Utc>>,
}

/// What `open_ticket` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opened {
    /// The ticket's id.
    pub ticket_id: i32,
    /// The customer's id.
    pub customer_id: i32,
    /// Whether the ticket was opened now (false: its external id named an existing one).
    pub created: bool,
}

/// A document to attach, its bytes checked ([`Intake::check_document`]).
#[derive(Clone, Debug)]
pub struct NewDocument {
    /// What it is.
    pub kind: crate::vocabulary::AttachmentKind,
    /// Its file name (kept as given, never trusted for its type).
    pub file_name: Line,
    /// Its bytes.
    pub content: Vec<u8>,
    /// The type its bytes showed.
    pub document_type: DocumentType,
    /// The id the channel gives it: a second delivery with it attaches nothing.
    pub external_id: Option<ExternalId>,
}

/// What `attach_document` stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attached {
    /// The attachment's id.
    pub attachment_id: i32,
    /// The ticket's id.
    pub ticket_id: i32,
    /// The type its bytes showed.
    pub document_type: DocumentType,
    /// Its size in bytes.
    pub size_bytes: i64,
}

/// A writer of customers, tickets, messages and documents within one request.
pub struct Intake<'a> {
    /// Reads (which tickets the caller may see, for the error a refusal gets).
    pub db: &'a DatabaseConnection,
    /// Where writes go.
    pub writer: &'a Writer,
    /// The request's policy snapshot.
    pub policy: &'a PolicySet,
    /// Customers' data keys.
    pub vault: &'a Vault,
    /// The caller (a service account or an agent).
    pub agent: &'a Agent,
    /// The caller as the actor of audit events.
    pub actor: Actor,
    /// The request's idempotency claim, if it sent a key.
    pub claim: Option<&'a Claim>,
    /// The largest document accepted, in bytes.
    pub max_document_bytes: usize,
    /// Where the `…_in` methods put their audit events: `None` appends them at once (in
    /// the caller's transaction); an import collects a batch's events here and appends
    /// them once before the batch commits (one lock and one chain read per batch).
    pub deferred_audit: Option<std::sync::Mutex<Vec<NewEvent>>>,
}

/// A namespace for PostgreSQL advisory locks on external ids (the audit chain uses another).
const EXTERNAL_ID_LOCK: i32 = 7_411_003;

/// Serializes writers of the same external id for the rest of `txn`, so two deliveries
/// racing on PostgreSQL cannot both insert (SQLite's single writer already serializes).
async fn lock_external_id(
    txn: &DatabaseTransaction,
    id: &ExternalId,
) -> Result<(), sea_orm::DbErr> {
    if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            [EXTERNAL_ID_LOCK.into(), id.as_str().into()],
        ))
        .await?;
    }
    Ok(())
}

fn database(error: anyhow::Error) -> ApiError {
    ApiError::internal(error, "writing customer data")
}

impl Intake<'_> {
    /// Audits `events` in `txn`, or defers them to the batch (see `deferred_audit`).
    async fn audit_in(
        &self,
        txn: &DatabaseTransaction,
        events: Vec<NewEvent>,
        doing: &'static str,
    ) -> ApiResult<()> {
        if let Some(deferred) = &self.deferred_audit {
            deferred
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(events);
            return Ok(());
        }
        crate::audit::append_in(txn, &events)
            .await
            .map_err(|e| ApiError::internal(e, doing))
    }

    fn refuse(&self, what: &str) -> ApiError {
        ApiError::Forbidden(format!("your role may not {what}"))
    }

    /// Creates the customer with `input.external_id`, or updates the fields given. New
    /// customers get a data key in the same transaction; every value is sealed under it,
    /// and the blind indexes of email and phone follow the values. Audited as
    /// `customer_created` or `customer_updated` with the names of the changed fields; an
    /// update that changes nothing writes nothing.
    pub async fn upsert_customer(&self, input: CustomerInput) -> ApiResult<Upserted> {
        if !self
            .policy
            .authorize(&self.agent.facts(), Permission::UpsertCustomer, None)
        {
            return Err(self.refuse("create or update customers"));
        }
        let step = crate::idempotency::step(self.claim);
        if let Some(done) = step.recorded::<Upserted>()? {
            return Ok(done);
        }
        let (input, step) = (&input, &step);
        self.writer
            .transaction(|txn| async move {
                let done = self.upsert_customer_in(&txn, input).await?;
                step.record_in(&txn, &done).await?;
                Ok::<_, ApiError>((done, txn))
            })
            .await
    }

    /// [`Intake::upsert_customer`] inside the caller's transaction (the import batches
    /// records); the caller checks the permission and records idempotency.
    pub async fn upsert_customer_in(
        &self,
        txn: &DatabaseTransaction,
        input: &CustomerInput,
    ) -> ApiResult<Upserted> {
        let blind = self.vault.blind().map_err(database)?;
        lock_external_id(txn, &input.external_id).await?;
        let found = customer::Entity::find()
            .filter(customer::Column::ExternalId.eq(input.external_id.as_str()))
            .one(txn)
            .await?;
        let (row, created) = match found {
            Some(row) => (row, false),
            None => (self.insert_customer(txn, input).await?, true),
        };
        let key = match created {
            true => self
                .vault
                .create_data_key(txn, row.id)
                .await
                .map_err(database)?,
            false => self
                .vault
                .data_key(txn, row.id)
                .await
                .map_err(database)?
                .ok_or(ApiError::NotFound)?,
        };
        let opener: Option<Opener> = match created {
            true => None,
            false => Some(self.vault.opener(txn, row.id).await?),
        };
        let id = row.id;
        let mut active: customer::ActiveModel = row.clone().into();
        let mut changed: Vec<String> = Vec::new();
        let seal =
            |column: &str, value: &str| seal_field(&key, "customers", column, id, value.as_bytes());
        // Each given field: compare with what is stored (decrypted here, never
        // returned), then seal the new value.
        let mut sealed_fields: Vec<(Field, &str, &str)> = Vec::new();
        if let Some(v) = &input.full_name {
            sealed_fields.push((Field::FullName, "full_name", v.as_str()));
        }
        if let Some(v) = &input.email {
            sealed_fields.push((Field::Email, "email", v.as_str()));
        }
        if let Some(v) = &input.phone {
            sealed_fields.push((Field::Phone, "phone", v.as_str()));
        }
        let dob = input.date_of_birth.map(DateOfBirth::to_stored);
        if let Some(v) = &dob {
            sealed_fields.push((Field::DateOfBirth, "date_of_birth", v.as_str()));
        }
        for (field, column, value) in sealed_fields {
            let before = match &opener {
                Some(o) => Some(crate::customers::stored_text(&row, o, field)?),
                None => None,
            };
            if before.as_deref() == Some(value) {
                continue;
            }
            let sealed = seal(column, value);
            match field {
                Field::FullName => active.full_name = Set(sealed),
                Field::Email => {
                    active.email = Set(sealed);
                    active.email_index = Set(Some(blind.email(value)));
                }
                Field::Phone => {
                    active.phone = Set(sealed);
                    active.phone_index = Set(Some(blind.phone(value)));
                }
                _ => active.date_of_birth = Set(sealed),
            }
            changed.push(field.graphql_name().to_owned());
        }
        if let Some(address) = &input.postal_address {
            let parts = [
                ("street", &row.street, address.street.as_str()),
                ("city", &row.city, address.city.as_str()),
                (
                    "postal_code",
                    &row.postal_code,
                    address.postal_code.as_str(),
                ),
                ("country", &row.country, address.country.as_str()),
            ];
            let mut differs = created;
            if let Some(o) = &opener {
                for (column, stored, value) in &parts {
                    if o.text("customers", column, id, stored)? != *value {
                        differs = true;
                    }
                }
            }
            if differs {
                active.street = Set(seal("street", parts[0].2));
                active.city = Set(seal("city", parts[1].2));
                active.postal_code = Set(seal("postal_code", parts[2].2));
                active.country = Set(seal("country", parts[3].2));
                changed.push(Field::PostalAddress.graphql_name().to_owned());
            }
        }
        if created {
            // Fields not given are stored as sealed empty text, so every column of a
            // customer decrypts. The entity sets each column by name.
            let address: &[&str] = match input.postal_address {
                None => &["street", "city", "postal_code", "country"],
                Some(_) => &[],
            };
            let empty = [
                Field::FullName,
                Field::Email,
                Field::Phone,
                Field::DateOfBirth,
            ]
            .into_iter()
            .filter(|f| !changed.iter().any(|c| c == f.graphql_name()))
            .map(Field::storage_column)
            .chain(address.iter().copied());
            for column in empty {
                let target: customer::Column = column.parse().map_err(|_| {
                    ApiError::internal(anyhow::anyhow!("no column {column}"), "sealing a customer")
                })?;
                active.set(target, seal(column, "").into());
            }
        }
        for (field, given, stored) in [
            (
                Field::Region,
                input.region.as_ref().map(Country::as_str),
                &row.region,
            ),
            (
                Field::Plan,
                input.plan.as_ref().map(Line::as_str),
                &row.plan,
            ),
            (
                Field::PreferredLanguage,
                input.preferred_language.as_ref().map(Language::as_str),
                &row.preferred_language,
            ),
        ] {
            let Some(value) = given else { continue };
            if !created && value == stored {
                continue;
            }
            match field {
                Field::Region => active.region = Set(value.to_owned()),
                Field::Plan => active.plan = Set(value.to_owned()),
                _ => active.preferred_language = Set(value.to_owned()),
            }
            changed.push(field.graphql_name().to_owned());
        }
        if let Some(since) = input.customer_since.map(crate::input::PastDate::date) {
            if created || since != row.customer_since {
                active.customer_since = Set(since);
                changed.push(Field::CustomerSince.graphql_name().to_owned());
            }
        }
        changed.sort_by_key(|name| Field::named(name).map(Field::index));
        if created || !changed.is_empty() {
            active.update(txn).await?;
            let action = if created {
                Action::CustomerCreated
            } else {
                Action::CustomerUpdated
            };
            let event = self
                .actor
                .event(action, Some(id), None, changed.clone(), None);
            self.audit_in(txn, vec![event], "auditing a customer write")
                .await?;
        }
        let done = Upserted {
            customer_id: id,
            created,
            changed,
        };
        Ok(done)
    }

    /// A new customer row: account facts given or defaulted, sealed columns empty until
    /// the row's key exists (the row id is bound into every ciphertext).
    async fn insert_customer(
        &self,
        txn: &DatabaseTransaction,
        input: &CustomerInput,
    ) -> Result<customer::Model, sea_orm::DbErr> {
        customer::ActiveModel {
            account_status: Set("active".into()),
            plan: Set(String::new()),
            customer_since: Set(Utc::now().date_naive()),
            region: Set(String::new()),
            preferred_language: Set("en".into()),
            full_name: Set(Vec::new()),
            email: Set(Vec::new()),
            phone: Set(Vec::new()),
            street: Set(Vec::new()),
            city: Set(Vec::new()),
            postal_code: Set(Vec::new()),
            country: Set(Vec::new()),
            date_of_birth: Set(Vec::new()),
            email_index: Set(None),
            phone_index: Set(None),
            external_id: Set(Some(input.external_id.as_str().to_owned())),
            ..Default::default()
        }
        .insert(txn)
        .await
    }

    /// The checks of a new ticket: topic and channel are words of the policy, the notice
    /// a published one for them, and the policy allows `open` on it.
    pub fn check_ticket(&self, input: &TicketInput) -> ApiResult<()> {
        let vocabulary = self.policy.vocabulary();
        if !vocabulary.has_topic(&input.topic) {
            return Err(ApiError::BadUserInput(format!(
                "`topic` must be one of: {}",
                vocabulary.topics.join(", ")
            )));
        }
        if !vocabulary.has_channel(&input.channel) {
            return Err(ApiError::BadUserInput(format!(
                "`channel` must be one of: {}",
                vocabulary.channels.join(", ")
            )));
        }
        if let Some(notice) = &input.notice {
            if !crate::policy::is_word(&notice.kind)
                || !self
                    .policy
                    .notices()
                    .current(&input.topic, &input.channel)
                    .iter()
                    .any(|n| n.kind == notice.kind)
                || !self.policy.notices().has(&notice.kind, &notice.version)
            {
                return Err(ApiError::BadUserInput(
                    "`notice` must name a published notice for this topic and channel (see GET /public/consent-notices)".into(),
                ));
            }
        }
        let prospective = ticket::Model {
            id: 0,
            customer_id: 0,
            team: self.agent.team.clone(),
            topic: input.topic.clone(),
            status: TicketStatus::Open.as_str().to_owned(),
            subject: String::new(),
            channel: input.channel.clone(),
            assignee_id: None,
            created_at: Utc::now(),
            resolved_at: None,
            external_id: None,
        };
        if !self
            .agent
            .may(self.policy, Permission::OpenTicket, &prospective)
        {
            return Err(self.refuse("open tickets on this topic"));
        }
        Ok(())
    }

    /// Opens a ticket for a customer, in the caller's team, unassigned and `open`, with the
    /// customer's first message and the consent notice they saw, all in one transaction
    /// and audited (`ticket_opened`, `message_added`, `consent_recorded`). The topic and
    /// channel must be words of the policy, the notice a published one, and the policy must
    /// allow `open` on the new ticket. A ticket whose external id exists is answered, not
    /// opened again.
    pub async fn open_ticket(&self, input: TicketInput) -> ApiResult<Opened> {
        self.check_ticket(&input)?;
        let step = crate::idempotency::step(self.claim);
        if let Some(done) = step.recorded::<Opened>()? {
            return Ok(done);
        }
        let (input, step) = (&input, &step);
        self.writer
            .transaction(|txn| async move {
                let done = self.open_ticket_in(&txn, input).await?;
                step.record_in(&txn, &done).await?;
                Ok::<_, ApiError>((done, txn))
            })
            .await
    }

    /// [`Intake::open_ticket`] inside the caller's transaction, after its checks
    /// ([`Intake::check_ticket`]).
    pub async fn open_ticket_in(
        &self,
        txn: &DatabaseTransaction,
        input: &TicketInput,
    ) -> ApiResult<Opened> {
        if let Some(external) = &input.external_id {
            lock_external_id(txn, external).await?;
            let existing = ticket::Entity::find()
                .filter(ticket::Column::ExternalId.eq(external.as_str()))
                .one(txn)
                .await?;
            if let Some(existing) = existing {
                let done = Opened {
                    ticket_id: existing.id,
                    customer_id: existing.customer_id,
                    created: false,
                };
                return Ok(done);
            }
        }
        let customer = match &input.customer {
            CustomerRef::Id(id) => customer::Entity::find_by_id(*id).one(txn).await?,
            CustomerRef::External(external) => {
                customer::Entity::find()
                    .filter(customer::Column::ExternalId.eq(external.as_str()))
                    .one(txn)
                    .await?
            }
        };
        // An erased customer is gone: no ticket can be opened for them.
        let customer = customer.ok_or(ApiError::NotFound)?;
        let (status, now, resolved_at) = match &input.history {
            Some(h) => (h.status, h.created_at, h.resolved_at),
            None => (TicketStatus::Open, Utc::now(), None),
        };
        let subject = crate::customers::mask::redact_cards_for_storage(input.subject.as_str());
        let row = ticket::ActiveModel {
            customer_id: Set(customer.id),
            team: Set(self.agent.team.clone()),
            topic: Set(input.topic.clone()),
            status: Set(status.as_str().to_owned()),
            subject: Set(subject),
            channel: Set(input.channel.clone()),
            assignee_id: Set(None),
            created_at: Set(now),
            resolved_at: Set(resolved_at),
            external_id: Set(input.external_id.as_ref().map(|e| e.as_str().to_owned())),
            ..Default::default()
        }
        .insert(txn)
        .await?;
        let mut events: Vec<NewEvent> = vec![self.actor.event(
            Action::TicketOpened,
            Some(customer.id),
            Some(row.id),
            Vec::new(),
            Some(format!("channel {}, topic {}", row.channel, row.topic)),
        )];
        if let Some(message) = &input.message {
            let message = crate::tickets::NewMessage {
                author: Author::Customer,
                author_agent_id: None,
                body: message.as_str(),
                at: now,
                external_id: None,
            };
            let posted = post_in(txn, self.vault, row.id, &message).await?;
            events.extend(crate::tickets::message_events(
                &self.actor,
                &posted,
                customer.id,
                Author::Customer,
            ));
        }
        if let Some(notice) = &input.notice {
            crate::consent::record_in(txn, customer.id, &notice.kind, &notice.version).await?;
            events.push(self.actor.event(
                Action::ConsentRecorded,
                Some(customer.id),
                Some(row.id),
                Vec::new(),
                Some(format!("{}, notice {}", notice.kind, notice.version)),
            ));
        }
        self.audit_in(txn, events, "auditing a new ticket").await?;
        let done = Opened {
            ticket_id: row.id,
            customer_id: customer.id,
            created: true,
        };
        Ok(done)
    }

    /// The ticket `id` if the policy grants the caller `permission` on it. Otherwise
    /// `FORBIDDEN` when the caller may see the ticket, and `NOT_FOUND` when not (exactly
    /// like a ticket that does not exist: another team's ticket stays invisible).
    async fn ticket_for(&self, id: i32, permission: Permission) -> ApiResult<ticket::Model> {
        let row = ticket::Entity::find_by_id(id)
            .one(self.db)
            .await?
            .ok_or(ApiError::NotFound)?;
        if self.agent.may(self.policy, permission, &row) {
            return Ok(row);
        }
        let scopes = self.policy.ticket_scopes(&self.agent.facts());
        match crate::tickets::visibility::find_visible(self.db, self.agent, &scopes, id).await? {
            Some(_) => Err(self.refuse(&format!("do `{}` on this ticket", permission.action()))),
            None => Err(ApiError::NotFound),
        }
    }

    /// Adds a customer's or the system's message to a ticket (`append_message`). Card
    /// numbers are redacted and the body sealed; a closed ticket refuses it (`CONFLICT`),
    /// a resolved one reopens. Audited (`message_added`, and `ticket_reopened`).
    pub async fn append_message(
        &self,
        ticket_id: i32,
        author: Author,
        body: Body,
        external_id: Option<ExternalId>,
    ) -> ApiResult<Posted> {
        if author == Author::Internal {
            return Err(ApiError::BadUserInput(
                "`author` must be CUSTOMER or SYSTEM (agents reply with replyToTicket)".into(),
            ));
        }
        let row = self
            .ticket_for(ticket_id, Permission::AppendMessage)
            .await?;
        let step = crate::idempotency::step(self.claim);
        if let Some(done) = step.recorded::<Posted>()? {
            return Ok(done);
        }
        let (body, step, external_id, row) = (&body, &step, external_id.as_ref(), &row);
        self.writer
            .transaction(|txn| async move {
                let posted = self
                    .append_message_in(&txn, row, author, body, external_id, None)
                    .await?;
                step.record_in(&txn, &posted).await?;
                Ok::<_, ApiError>((posted, txn))
            })
            .await
    }

    /// [`Intake::append_message`] inside the caller's transaction, on a ticket the caller
    /// was allowed to write to, dated `at` (now when `None`; an import keeps the original
    /// date). A message whose external id exists is answered, not added again.
    pub async fn append_message_in(
        &self,
        txn: &DatabaseTransaction,
        row: &ticket::Model,
        author: Author,
        body: &Body,
        external_id: Option<&ExternalId>,
        at: Option<chrono::DateTime<Utc>>,
    ) -> ApiResult<Posted> {
        if let Some(external) = external_id {
            lock_external_id(txn, external).await?;
            let existing = entity::message::Entity::find()
                .filter(entity::message::Column::ExternalId.eq(external.as_str()))
                .one(txn)
                .await?;
            if let Some(existing) = existing {
                if existing.ticket_id != row.id {
                    return Err(ApiError::Conflict {
                        message: "`externalId` names a message of another ticket".into(),
                        retry_after_secs: None,
                    });
                }
                let current = ticket::Entity::find_by_id(row.id)
                    .one(txn)
                    .await?
                    .ok_or(ApiError::NotFound)?;
                return Ok(Posted {
                    message_id: existing.id,
                    ticket_id: row.id,
                    ticket_status: current.status,
                    reopened: false,
                    created: false,
                });
            }
        }
        let at = at.unwrap_or_else(Utc::now);
        let message = crate::tickets::NewMessage {
            author,
            author_agent_id: None,
            body: body.as_str(),
            at,
            external_id: external_id.map(ExternalId::as_str),
        };
        let posted = post_in(txn, self.vault, row.id, &message).await?;
        let events = crate::tickets::message_events(&self.actor, &posted, row.customer_id, author);
        self.audit_in(txn, events, "auditing a message").await?;
        Ok(posted)
    }

    /// Attaches a document to a ticket (`attach_document`): at most `max_document_bytes`,
    /// of a type its bytes show (PDF, PNG, JPEG, HEIC; the file name and the claimed type
    /// are not trusted), sealed under a key of its own. The retention sweeper purges it a
    /// configured time after the ticket is resolved. Audited (`document_attached`, with its
    /// kind and type). A closed ticket refuses it (`CONFLICT`).
    pub async fn attach_document(
        &self,
        ticket_id: i32,
        kind: crate::vocabulary::AttachmentKind,
        file_name: Line,
        content: Vec<u8>,
    ) -> ApiResult<Attached> {
        let document_type = self.check_document(&content)?;
        let row = self
            .ticket_for(ticket_id, Permission::AttachDocument)
            .await?;
        let step = crate::idempotency::step(self.claim);
        if let Some(done) = step.recorded::<Attached>()? {
            return Ok(done);
        }
        let document = NewDocument {
            kind,
            file_name,
            content,
            document_type,
            external_id: None,
        };
        let (document, step, row) = (&document, &step, &row);
        self.writer
            .transaction(|txn| async move {
                let done = self.attach_document_in(&txn, row, document).await?;
                step.record_in(&txn, &done).await?;
                Ok::<_, ApiError>((done, txn))
            })
            .await
    }

    /// The checks of a document's bytes: not empty, within the size limit, and of a type
    /// its bytes show.
    pub fn check_document(&self, content: &[u8]) -> ApiResult<DocumentType> {
        if content.len() > self.max_document_bytes {
            return Err(ApiError::BadUserInput(format!(
                "`file` is larger than {} bytes",
                self.max_document_bytes
            )));
        }
        if content.is_empty() {
            return Err(ApiError::BadUserInput("`file` is empty".into()));
        }
        let document_type = DocumentType::sniff(content).ok_or_else(|| {
            ApiError::BadUserInput(
                "`file` is not a PDF, PNG, JPEG or HEIC document (its bytes were checked, not its name)"
                    .into(),
            )
        })?;
        Ok(document_type)
    }

    /// [`Intake::attach_document`] inside the caller's transaction, on a ticket the caller
    /// was allowed to attach to, with bytes [`Intake::check_document`] accepted.
    pub async fn attach_document_in(
        &self,
        txn: &DatabaseTransaction,
        row: &ticket::Model,
        document: &NewDocument,
    ) -> ApiResult<Attached> {
        let NewDocument {
            kind,
            file_name,
            content,
            document_type,
            external_id,
        } = document;
        let (kind, document_type, external_id) = (*kind, *document_type, external_id.as_ref());
        let size = i64::try_from(content.len()).unwrap_or(i64::MAX);
        if let Some(external) = external_id {
            lock_external_id(txn, external).await?;
            let existing = attachment::Entity::find()
                .filter(attachment::Column::ExternalId.eq(external.as_str()))
                .one(txn)
                .await?;
            if let Some(existing) = existing {
                if existing.ticket_id != row.id {
                    return Err(ApiError::Conflict {
                        message: "`externalId` names a document of another ticket".into(),
                        retry_after_secs: None,
                    });
                }
                return Ok(Attached {
                    attachment_id: existing.id,
                    ticket_id: row.id,
                    document_type,
                    size_bytes: existing.size_bytes,
                });
            }
        }
        let current = ticket::Entity::find_by_id(row.id)
            .one(txn)
            .await?
            .ok_or(ApiError::NotFound)?;
        if current.status == TicketStatus::Closed.as_str() {
            return Err(crate::tickets::PostError::Closed.into());
        }
        let key = self
            .vault
            .data_key(txn, current.customer_id)
            .await
            .map_err(database)?
            .ok_or(ApiError::NotFound)?;
        let stored = attachment::ActiveModel {
            ticket_id: Set(current.id),
            kind: Set(kind.as_str().to_owned()),
            file_name: Set(file_name.as_str().to_owned()),
            size_bytes: Set(size),
            content: Set(Vec::new()),
            purge_after: Set(None),
            created_at: Set(Utc::now()),
            wrapped_key: Set(None),
            external_id: Set(external_id.map(|e| e.as_str().to_owned())),
            ..Default::default()
        }
        .insert(txn)
        .await?;
        let (wrapped, sealed) = seal_attachment(&key, stored.id, content);
        let id = stored.id;
        let mut stored: attachment::ActiveModel = stored.into();
        stored.content = Set(sealed);
        stored.wrapped_key = Set(Some(wrapped));
        stored.update(txn).await?;
        let event = self.actor.event(
            Action::DocumentAttached,
            Some(current.customer_id),
            Some(current.id),
            vec![Field::IdentityDocuments.graphql_name().to_owned()]
                .into_iter()
                .filter(|_| kind == crate::vocabulary::AttachmentKind::IdDocument)
                .collect(),
            Some(format!("{}, {}", kind.as_str(), document_type.media_type())),
        );
        self.audit_in(txn, vec![event], "auditing a document")
            .await?;
        let done = Attached {
            attachment_id: id,
            ticket_id: current.id,
            document_type,
            size_bytes: size,
        };
        Ok(done)
    }
}
