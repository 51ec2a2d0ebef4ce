//! Intake mutations for channel integrations: customers, tickets, messages, documents.
//! Their answers hold ids, statuses and field names, never a value, so a write-only role
//! (the shipped `intake`) learns nothing it did not send.

use async_graphql::{Context, InputObject, Object, SimpleObject, Upload, ID};

use crate::error::{ApiError, ApiResult};
use crate::ids::TicketId;
use crate::input::{Body, ExternalId, Line};
use crate::intake::document::DocumentType;
use crate::intake::{
    CustomerInput as Customer, CustomerRef, NoticeShown, RawAddress, RawCustomer,
    TicketInput as NewTicket,
};
use crate::request::RequestContext;
use crate::tickets::Author;
use crate::vocabulary::{AttachmentKind, TicketStatus};

/// A postal address.
#[derive(InputObject)]
pub struct PostalAddressInput {
    /// Street and number.
    pub street: String,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code, e.g. `GB`.
    pub country: String,
}

/// A customer as the channel or CRM knows them. Only the fields given change; values are
/// encrypted at rest, and email and phone get blind indexes for `ticketsByContact`.
#[derive(InputObject)]
pub struct CustomerInput {
    /// The helpdesk's or CRM's id for the customer (1-128 printable ASCII characters): the
    /// key of the upsert.
    pub external_id: String,
    /// Full name.
    pub full_name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Phone number in E.164 (`+15550100223`; spaces and dashes are dropped).
    pub phone: Option<String>,
    /// Postal address.
    pub postal_address: Option<PostalAddressInput>,
    /// Date of birth, `YYYY-MM-DD`, not in the future.
    pub date_of_birth: Option<String>,
    /// Region: an ISO 3166-1 alpha-2 code.
    pub region: Option<String>,
    /// Plan, e.g. `premium`.
    pub plan: Option<String>,
    /// Preferred language, a BCP 47 tag such as `en` or `pt-BR`.
    pub preferred_language: Option<String>,
    /// When they became a customer, `YYYY-MM-DD` (new customers: today).
    pub customer_since: Option<String>,
}

impl CustomerInput {
    fn parse(self) -> ApiResult<Customer> {
        RawCustomer {
            external_id: self.external_id,
            full_name: self.full_name,
            email: self.email,
            phone: self.phone,
            postal_address: self.postal_address.map(|a| RawAddress {
                street: a.street,
                city: a.city,
                postal_code: a.postal_code,
                country: a.country,
            }),
            date_of_birth: self.date_of_birth,
            region: self.region,
            plan: self.plan,
            preferred_language: self.preferred_language,
            customer_since: self.customer_since,
        }
        .parse(chrono::Utc::now().date_naive())
    }
}

/// What `upsertCustomer` did.
#[derive(SimpleObject)]
pub struct UpsertCustomerPayload {
    /// The customer's id.
    pub customer_id: ID,
    /// Whether the customer was created.
    pub created: bool,
    /// The names of the fields whose values changed (as on `Customer`), never the values.
    pub changed_fields: Vec<String>,
}

/// The consent notice the customer saw before the conversation began (see
/// `GET /public/consent-notices`).
#[derive(InputObject)]
pub struct NoticeInput {
    /// Its kind, e.g. `recording`.
    pub kind: String,
    /// Its version.
    pub notice_version: String,
}

/// A ticket as a channel opens it.
#[derive(InputObject)]
pub struct OpenTicketInput {
    /// The customer by the service's id (from `upsertCustomer`) ...
    pub customer_id: Option<ID>,
    /// ... or by the external id given to `upsertCustomer` (exactly one of the two).
    pub customer_external_id: Option<String>,
    /// The channel's id for the ticket: a second delivery with it answers the same ticket.
    pub external_id: Option<String>,
    /// The channel, a `channel(...)` word of the policy (shipped: email, chat, web, phone).
    pub channel: String,
    /// The topic, a `topic(...)` word of the policy.
    pub topic: String,
    /// The subject line (card numbers are redacted before storage).
    pub subject: String,
    /// The customer's first message (card numbers are redacted before storage).
    pub message: Option<String>,
    /// The consent notice shown before the conversation, recorded like `recordConsent`.
    pub notice: Option<NoticeInput>,
}

/// What `openTicket` did.
#[derive(SimpleObject)]
pub struct OpenTicketPayload {
    /// The ticket's id.
    pub ticket_id: ID,
    /// The customer's id.
    pub customer_id: ID,
    /// False when `externalId` named a ticket opened before (nothing was written).
    pub created: bool,
    /// Always `OPEN` for a new ticket.
    pub status: TicketStatus,
}

/// Who wrote a message an integration delivers.
#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq)]
pub enum MessageAuthor {
    /// The customer.
    Customer,
    /// The channel or another system.
    System,
}

/// A message an integration delivers.
#[derive(InputObject)]
pub struct AppendMessageInput {
    /// Who wrote it.
    pub author: MessageAuthor,
    /// The text: 1-20 000 characters, no invisible formatting characters.
    pub body: String,
    /// The channel's id for the message: a second delivery with it adds nothing.
    pub external_id: Option<String>,
}

/// A message as written.
#[derive(SimpleObject)]
pub struct MessagePayload {
    /// The message's id.
    pub message_id: ID,
    /// The ticket's id.
    pub ticket_id: ID,
    /// The ticket's status after the message (`OPEN` if it reopened a resolved ticket).
    pub ticket_status: TicketStatus,
    /// Whether the message reopened a resolved ticket.
    pub reopened: bool,
}

impl TryFrom<crate::tickets::Posted> for MessagePayload {
    type Error = ApiError;
    fn try_from(p: crate::tickets::Posted) -> ApiResult<Self> {
        Ok(MessagePayload {
            message_id: super::gid("Message", p.message_id),
            ticket_id: super::gid("Ticket", p.ticket_id),
            ticket_status: crate::tickets::stored_status(&p.ticket_status)?,
            reopened: p.reopened,
        })
    }
}

/// A stored document.
#[derive(SimpleObject)]
pub struct DocumentPayload {
    /// The attachment's id.
    pub attachment_id: ID,
    /// The ticket's id.
    pub ticket_id: ID,
    /// The type its bytes showed.
    pub document_type: DocumentType,
    /// Its media type, e.g. `image/png`.
    pub media_type: String,
    /// Its size in bytes.
    pub size_bytes: i64,
}

/// Intake mutations.
#[derive(Default)]
pub struct IntakeMutation;

#[Object]
impl IntakeMutation {
    /// Creates or updates a customer by `externalId` (`allow(agent, "upsert",
    /// "customer")`; shipped: the `intake` role). Returns the id and the names of the
    /// changed fields. Audited as `CUSTOMER_CREATED` / `CUSTOMER_UPDATED` with field names.
    async fn upsert_customer(
        &self,
        ctx: &Context<'_>,
        input: CustomerInput,
    ) -> ApiResult<Option<UpsertCustomerPayload>> {
        super::nullable(async {
            let request = RequestContext::get(ctx);
            let done = request.intake().upsert_customer(input.parse()?).await?;
            Ok(UpsertCustomerPayload {
                customer_id: super::gid("Customer", done.customer_id),
                created: done.created,
                changed_fields: done.changed,
            })
        })
        .await
    }

    /// Opens a ticket in the caller's team, unassigned, with the customer's first message
    /// and the consent notice they saw (`allow(agent, "open", ticket)`). An erased or
    /// unknown customer is `NOT_FOUND`; an unknown topic or channel `BAD_USER_INPUT`.
    /// Audited (`TICKET_OPENED`, `MESSAGE_ADDED`, `CONSENT_RECORDED`).
    async fn open_ticket(
        &self,
        ctx: &Context<'_>,
        input: OpenTicketInput,
    ) -> ApiResult<Option<OpenTicketPayload>> {
        super::nullable(async {
            let request = RequestContext::get(ctx);
            let customer = match (input.customer_id, input.customer_external_id) {
                (Some(id), None) => {
                    CustomerRef::Id(crate::ids::CustomerId::parse(&id, "customerId")?.get())
                }
                (None, Some(external)) => {
                    CustomerRef::External(ExternalId::parse("customerExternalId", &external)?)
                }
                _ => {
                    return Err(ApiError::BadUserInput(
                        "give exactly one of `customerId` and `customerExternalId`".into(),
                    ))
                }
            };
            let ticket = NewTicket {
                customer,
                external_id: input
                    .external_id
                    .map(|e| ExternalId::parse("externalId", &e))
                    .transpose()?,
                channel: input.channel,
                topic: input.topic,
                subject: Line::parse("subject", &input.subject)?,
                message: input
                    .message
                    .map(|m| Body::parse("message", &m))
                    .transpose()?,
                notice: input.notice.map(|n| NoticeShown {
                    kind: n.kind,
                    version: n.notice_version,
                }),
                history: None,
            };
            let done = request.intake().open_ticket(ticket).await?;
            Ok(OpenTicketPayload {
                ticket_id: super::gid("Ticket", done.ticket_id),
                customer_id: super::gid("Customer", done.customer_id),
                created: done.created,
                status: TicketStatus::Open,
            })
        })
        .await
    }

    /// Adds the customer's or the system's message to a ticket (`allow(agent,
    /// "append_message", ticket)`). Card numbers are redacted before storage. Writing to a
    /// **closed** ticket is refused (`CONFLICT`); writing to a **resolved** ticket reopens
    /// it. Another team's ticket is `NOT_FOUND`. Audited (`MESSAGE_ADDED`).
    async fn append_message(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        input: AppendMessageInput,
    ) -> ApiResult<Option<MessagePayload>> {
        super::nullable(async {
            let request = RequestContext::get(ctx);
            let id = TicketId::parse(&ticket_id, "ticketId")?;
            let author = match input.author {
                MessageAuthor::Customer => Author::Customer,
                MessageAuthor::System => Author::System,
            };
            let body = Body::parse("body", &input.body)?;
            let external = input
                .external_id
                .map(|e| ExternalId::parse("externalId", &e))
                .transpose()?;
            request
                .intake()
                .append_message(id.get(), author, body, external)
                .await?
                .try_into()
        })
        .await
    }

    /// Attaches an identity document to a ticket, uploaded with the GraphQL multipart
    /// request spec (`allow(agent, "attach_document", ticket)`). At most
    /// `NEEDTOKNOW_MAX_DOCUMENT_BYTES` (10 MiB by default); its bytes must be a PDF, PNG,
    /// JPEG or HEIC (the file name and declared type are not trusted). Encrypted under a
    /// key of its own, and purged with its key by the retention sweeper a configured time
    /// after the ticket is resolved. Audited (`DOCUMENT_ATTACHED`).
    async fn attach_identity_document(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        file: Upload,
    ) -> ApiResult<Option<DocumentPayload>> {
        super::nullable(async { attach(ctx, ticket_id, AttachmentKind::IdDocument, file).await })
            .await
    }

    /// Attaches a receipt or a screenshot (or an identity document) to a ticket, like
    /// `attachIdentityDocument`.
    async fn attach_document(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        kind: AttachmentKind,
        file: Upload,
    ) -> ApiResult<Option<DocumentPayload>> {
        super::nullable(async { attach(ctx, ticket_id, kind, file).await }).await
    }
}

async fn attach(
    ctx: &Context<'_>,
    ticket_id: ID,
    kind: AttachmentKind,
    file: Upload,
) -> ApiResult<DocumentPayload> {
    use std::io::Read;
    let request = RequestContext::get(ctx);
    let id = TicketId::parse(&ticket_id, "ticketId")?;
    let upload = file.value(ctx).map_err(|_| {
        ApiError::BadUserInput("`file` is not an uploaded file of this request".into())
    })?;
    let file_name = Line::parse("file name", &upload.filename)?;
    let limit = request.settings.max_document_bytes;
    let mut content = Vec::new();
    upload
        .into_read()
        .take(u64::try_from(limit).unwrap_or(u64::MAX) + 1)
        .read_to_end(&mut content)
        .map_err(|e| ApiError::internal(e, "reading an upload"))?;
    let done = request
        .intake()
        .attach_document(id.get(), kind, file_name, content)
        .await?;
    Ok(DocumentPayload {
        attachment_id: super::gid("Attachment", done.attachment_id),
        ticket_id: super::gid("Ticket", done.ticket_id),
        document_type: done.document_type,
        media_type: done.document_type.media_type().to_owned(),
        size_bytes: done.size_bytes,
    })
}
