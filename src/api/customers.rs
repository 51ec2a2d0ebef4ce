//! The `Customer` type and the item types of its protected lists.
//!
//! Every resolver here goes through [`Gate`]; none reads a personal value otherwise.

use std::sync::Arc;

use async_graphql::{Context, Object, SimpleObject, ID};
use base64::Engine;
use chrono::{DateTime, Utc};
use entity::{attachment, customer};

use super::flat::{flat_object, Eager, Failed, FlatValue, Gather, Walk};
use super::LazyId;
use crate::crypto::vault::Opener;
use crate::customers::mask;
use crate::customers::stored_text;
use crate::disclosure::{Disclosed, Field, Gate, HandOff, Shown};
use crate::error::{ApiError, ApiResult};
use crate::ids::Pair;
use crate::loaders::load_error;
use crate::policy::{Access, DataClass, RevealOption};
use crate::request::RequestContext;
use crate::rows::{ChatMessageRow, TicketSummaryRow};
use crate::tickets::stored_status;
use crate::vocabulary::Storage;
use crate::vocabulary::TicketStatus;
use async_graphql::parser::types::SelectionSet;

// Concrete list types of `Protected<T>` (the derive takes paths, not generic arguments).
type IdentityDocuments = Vec<IdentityDocument>;
type PaymentMethods = Vec<PaymentMethod>;
type Invoices = Vec<Invoice>;
type TicketHistory = Vec<TicketSummary>;
type ChatHistory = Vec<ChatMessage>;

/// A protected value with its metadata, so a UI can render masks and reveal buttons.
#[derive(SimpleObject)]
#[graphql(
    concrete(name = "ProtectedString", params(String)),
    concrete(name = "ProtectedIdentityDocuments", params(IdentityDocuments)),
    concrete(name = "ProtectedPaymentMethods", params(PaymentMethods)),
    concrete(name = "ProtectedInvoices", params(Invoices)),
    concrete(name = "ProtectedTicketHistory", params(TicketHistory)),
    concrete(name = "ProtectedChatHistory", params(ChatHistory))
)]
pub struct Protected<T: async_graphql::OutputType> {
    /// The value in the form `access` says; null when `access` is `HIDDEN`.
    pub value: Option<T>,
    /// `PLAIN`, `MASKED` or `HIDDEN`.
    pub access: Access,
    /// How the agent could see more: `NONE`, `WITH_REASON` or `WITH_APPROVAL`.
    pub reveal: RevealOption,
    /// When the reveal grant showing this value expires; null without an active grant.
    pub grant_expires_at: Option<DateTime<Utc>>,
    /// The field's data class.
    pub data_class: DataClass,
    /// When `HIDDEN`: the roles that would see this class on this ticket's topic.
    pub hand_off: Arc<[HandOff]>,
}

flat_object!(
    @[T: async_graphql::OutputType + FlatValue]
    Protected<T> { value, access, reveal, grant_expires_at, data_class, hand_off }
    where Protected<T>: async_graphql::OutputType
);

/// The `Protected…` types: resolvers serve them only through [`Eager`], so their values are
/// whole, in selection order and without failed fields, and the response-shape walk
/// (`api::shape`) keeps them as they are.
pub fn served_whole() -> Vec<String> {
    use async_graphql::OutputType;
    vec![
        Protected::<String>::type_name().into_owned(),
        Protected::<IdentityDocuments>::type_name().into_owned(),
        Protected::<PaymentMethods>::type_name().into_owned(),
        Protected::<Invoices>::type_name().into_owned(),
        Protected::<TicketHistory>::type_name().into_owned(),
        Protected::<ChatHistory>::type_name().into_owned(),
    ]
}

impl<T: async_graphql::OutputType> From<Disclosed<T>> for Protected<T> {
    fn from(d: Disclosed<T>) -> Self {
        Protected {
            value: d.value,
            access: d.access,
            reveal: d.reveal,
            grant_expires_at: d.grant_expires_at,
            data_class: d.data_class,
            hand_off: d.hand_off,
        }
    }
}

/// The customer behind a ticket, as the asking agent may see them on that ticket.
pub struct Customer {
    row: Arc<customer::Model>,
    gate: Arc<Gate>,
    /// The ticket through which the customer is reached (excluded from their history).
    ticket_id: i32,
    /// The customer's tickets when they came with that ticket (one ticket asked for with
    /// `otherTickets`); otherwise they are loaded when a field needs them.
    tickets: Option<Arc<[TicketSummaryRow]>>,
}

impl Customer {
    /// The customer `row` reached through ticket `ticket_id`, disclosed by `gate`.
    pub fn new(row: Arc<customer::Model>, gate: Arc<Gate>, ticket_id: i32) -> Customer {
        Customer {
            row,
            gate,
            ticket_id,
            tickets: None,
        }
    }

    /// The same customer, with their tickets already read (`tickets`, all of them).
    pub fn with_tickets(self, tickets: Option<Arc<[TicketSummaryRow]>>) -> Customer {
        Customer { tickets, ..self }
    }

    fn text(&self, opener: &Opener, column: &'static str, sealed: &[u8]) -> ApiResult<String> {
        opener.text("customers", column, self.row.id, sealed)
    }

    async fn plain_or(
        &self,
        ctx: &Context<'_>,
        field: Field,
        plain: impl FnOnce(&Opener) -> ApiResult<String>,
        masked: impl FnOnce(&Opener) -> ApiResult<String>,
    ) -> ApiResult<Option<Eager<Protected<String>>>> {
        self.gate
            .disclose(
                RequestContext::get(ctx),
                field,
                |shown, opener| match shown {
                    Shown::Plain => plain(opener),
                    Shown::Masked => masked(opener),
                },
            )
            .await
            .map(|d| Some(Eager(d.into())))
    }

    /// A scalar field stored in one column of `customers` (`Storage::Column` in the field
    /// table): read, decrypted if sealed, masked as the table says, through the gate.
    async fn scalar(
        &self,
        ctx: &Context<'_>,
        field: Field,
    ) -> ApiResult<Option<Eager<Protected<String>>>> {
        let Storage::Column { mask, .. } = field.storage() else {
            return Err(ApiError::internal(
                anyhow::anyhow!("{field} is not stored in one column"),
                "reading a customer",
            ));
        };
        let value = |opener: &Opener| stored_text(&self.row, opener, field);
        self.plain_or(ctx, field, value, |opener| {
            Ok(mask::apply(mask, &value(opener)?))
        })
        .await
    }

    /// The customer's tickets as loaded, shared by the fields that need them (not copied:
    /// a page's other tickets are hundreds of rows); [`Customer::others`] leaves this one out.
    async fn customer_tickets(&self, ctx: &Context<'_>) -> ApiResult<Arc<[TicketSummaryRow]>> {
        if let Some(tickets) = &self.tickets {
            return Ok(tickets.clone());
        }
        Ok(RequestContext::get(ctx)
            .loaders
            .tickets_of_customer
            .load_one(self.row.id)
            .await
            .map_err(load_error)?
            .unwrap_or_default())
    }

    /// The customer's tickets other than the one this customer was reached through.
    fn others<'a>(
        &self,
        tickets: &'a [TicketSummaryRow],
    ) -> impl Iterator<Item = &'a TicketSummaryRow> {
        let this = self.ticket_id;
        tickets.iter().filter(move |t| t.id != this)
    }
}

/// Protected fields are nullable only so that a value that cannot be decrypted fails alone
/// (`null` with an `INTERNAL` error at its path) while the rest of the response is served.
#[Object]
impl Customer {
    /// Global id of this customer *as reached through this ticket*: the same person
    /// through another ticket is another object, with that ticket's access. `node(id:)`
    /// refetches it through the same ticket-bound check.
    pub(super) async fn id(&self) -> ID {
        super::gid("Customer", Pair(self.ticket_id, self.row.id))
    }

    /// Account status. Class `account`. MASKED: `***`.
    async fn account_status(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<Eager<Protected<String>>>> {
        self.scalar(ctx, Field::AccountStatus).await
    }

    /// Plan. Class `account`. MASKED: `***`.
    async fn plan(&self, ctx: &Context<'_>) -> ApiResult<Option<Eager<Protected<String>>>> {
        self.scalar(ctx, Field::Plan).await
    }

    /// Customer since (ISO 8601 date). Class `account`. MASKED: the year.
    async fn customer_since(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<Eager<Protected<String>>>> {
        self.scalar(ctx, Field::CustomerSince).await
    }

    /// Region. Class `account`. MASKED: `***`.
    async fn region(&self, ctx: &Context<'_>) -> ApiResult<Option<Eager<Protected<String>>>> {
        self.scalar(ctx, Field::Region).await
    }

    /// Preferred language, a BCP 47 tag (`en`, `pt-BR`). Class `account`. MASKED: `***`.
    async fn preferred_language(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<Eager<Protected<String>>>> {
        self.scalar(ctx, Field::PreferredLanguage).await
    }

    /// Full name. Class `name`. MASKED: first name and last initial (`Robin S.`).
    async fn full_name(&self, ctx: &Context<'_>) -> ApiResult<Option<Eager<Protected<String>>>> {
        self.scalar(ctx, Field::FullName).await
    }

    /// Email address. Class `contact`. MASKED: first character of the local part, `***`,
    /// then the domain (`r***@example.com`).
    async fn email(&self, ctx: &Context<'_>) -> ApiResult<Option<Eager<Protected<String>>>> {
        self.scalar(ctx, Field::Email).await
    }

    /// Phone number. Class `contact`. MASKED: all digits but the last two replaced
    /// (`+* *** **** **33`).
    async fn phone(&self, ctx: &Context<'_>) -> ApiResult<Option<Eager<Protected<String>>>> {
        self.scalar(ctx, Field::Phone).await
    }

    /// Postal address on one line. Class `address`. MASKED: city and country only.
    async fn postal_address(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<Eager<Protected<String>>>> {
        let row = &self.row;
        let city = |o: &Opener| self.text(o, "city", &row.city);
        let country = |o: &Opener| self.text(o, "country", &row.country);
        self.plain_or(
            ctx,
            Field::PostalAddress,
            |o| {
                Ok(one_line_address(
                    &self.text(o, "street", &row.street)?,
                    &city(o)?,
                    &self.text(o, "postal_code", &row.postal_code)?,
                    &country(o)?,
                ))
            },
            |o| Ok(mask::mask_address(&city(o)?, &country(o)?)),
        )
        .await
    }

    /// Date of birth (ISO 8601). Class `identity`. MASKED: the year only.
    async fn date_of_birth(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<Eager<Protected<String>>>> {
        self.scalar(ctx, Field::DateOfBirth).await
    }

    /// Identity documents (attachments of kind `id_document` on the customer's tickets).
    /// Class `identity`. MASKED: kind and size only, no file name or content.
    async fn identity_documents(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<Eager<Protected<Vec<IdentityDocument>>>>> {
        let request = RequestContext::get(ctx);
        self.gate
            .disclose_loaded(
                request,
                Field::IdentityDocuments,
                |shown, opener| async move {
                    let mut tickets: Vec<i32> = self
                        .others(&self.customer_tickets(ctx).await?)
                        .map(|t| t.id)
                        .collect();
                    tickets.push(self.ticket_id);
                    tickets.sort_unstable();
                    let loaded = request
                        .loaders
                        .attachments
                        .load_many(tickets.iter().copied())
                        .await
                        .map_err(load_error)?;
                    tickets
                        .iter()
                        .filter_map(|id| loaded.get(id))
                        .flat_map(|rows| rows.iter())
                        .filter(|a| a.kind == "id_document")
                        .map(|a| IdentityDocument::render(a, self.ticket_id, &opener, shown))
                        .collect()
                },
            )
            .await
            .map(|d| Some(Eager(d.into())))
    }

    /// Payment methods with their billing addresses. Class `billing`. MASKED: brand and
    /// last 4 only. A full card number or CVV is never stored.
    async fn payment_methods(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<Eager<Protected<Vec<PaymentMethod>>>>> {
        let request = RequestContext::get(ctx);
        self.gate
            .disclose_loaded(request, Field::PaymentMethods, |shown, opener| async move {
                let rows =
                    (request.loaders.payment_methods(self.row.id).await).map_err(load_error)?;
                rows.iter()
                    .map(|p| PaymentMethod::render(p, self.ticket_id, &opener, shown))
                    .collect()
            })
            .await
            .map(|d| Some(Eager(d.into())))
    }

    /// Invoices (payment history). Class `billing`. MASKED: number, status and issue date;
    /// no amounts.
    async fn invoices(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<Eager<Protected<Vec<Invoice>>>>> {
        let request = RequestContext::get(ctx);
        self.gate
            .disclose_loaded(request, Field::Invoices, |shown, _opener| async move {
                let rows = (request.loaders.invoices(self.row.id).await).map_err(load_error)?;
                Ok(rows.iter().map(|i| Invoice::render(i, shown)).collect())
            })
            .await
            .map(|d| Some(Eager(d.into())))
    }

    /// The customer's other tickets, oldest first. Class `ticket_history`. MASKED: topic,
    /// status and dates; no subject.
    async fn other_tickets(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<Eager<Protected<Vec<TicketSummary>>>>> {
        let request = RequestContext::get(ctx);
        self.gate
            .disclose_loaded(request, Field::OtherTickets, |shown, _opener| async move {
                let rows = self.customer_tickets(ctx).await?;
                self.others(&rows)
                    .map(|t| TicketSummary::render(t, self.ticket_id, shown))
                    .collect()
            })
            .await
            .map(|d| Some(Eager(d.into())))
    }

    /// The messages of the customer's other tickets, oldest first. Class `chat_history`.
    /// MASKED: the text with emails, phone numbers, card numbers, IBANs and dates replaced
    /// by `[email]`, `[phone]`, `[card]`, `[iban]` and `[date]`.
    async fn chat_history(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<Eager<Protected<Vec<ChatMessage>>>>> {
        let request = RequestContext::get(ctx);
        self.gate
            .disclose_loaded(request, Field::ChatHistory, |shown, opener| async move {
                // Read beside the other tickets, not after them: one round trip.
                let messages = request.loaders.chat_history(self.row.id);
                let messages = messages.await.map_err(load_error)?;
                messages
                    .iter()
                    .filter(|m| m.ticket_id != self.ticket_id)
                    .map(|m| ChatMessage::render(m, &opener, shown))
                    .collect()
            })
            .await
            .map(|d| Some(Eager(d.into())))
    }
}

/// A customer reached through a ticket is written in one pass ([`Gathered`]): the same
/// resolvers as above, run side by side in one future. `node(id:)` serves a customer
/// through the resolvers above one by one; both paths give the same response (a test in
/// `tests/api` compares them).
impl Gather for Customer {
    async fn field<'a>(
        &'a self,
        ctx: &'a Context<'a>,
        walk: &'a Walk<'a>,
        selections: &'a [&'a SelectionSet],
    ) -> Result<Vec<u8>, Failed> {
        let mut out = Vec::with_capacity(64);
        match ctx.item.node.name.node.as_str() {
            "id" => self.id(ctx).await?.flat(walk, selections, &mut out),
            "accountStatus" => self
                .account_status(ctx)
                .await??
                .flat(walk, selections, &mut out),
            "plan" => self.plan(ctx).await??.flat(walk, selections, &mut out),
            "customerSince" => self
                .customer_since(ctx)
                .await??
                .flat(walk, selections, &mut out),
            "region" => self.region(ctx).await??.flat(walk, selections, &mut out),
            "preferredLanguage" => self
                .preferred_language(ctx)
                .await??
                .flat(walk, selections, &mut out),
            "fullName" => self.full_name(ctx).await??.flat(walk, selections, &mut out),
            "email" => self.email(ctx).await??.flat(walk, selections, &mut out),
            "phone" => self.phone(ctx).await??.flat(walk, selections, &mut out),
            "postalAddress" => self
                .postal_address(ctx)
                .await??
                .flat(walk, selections, &mut out),
            "dateOfBirth" => self
                .date_of_birth(ctx)
                .await??
                .flat(walk, selections, &mut out),
            "identityDocuments" => self
                .identity_documents(ctx)
                .await??
                .flat(walk, selections, &mut out),
            "paymentMethods" => self
                .payment_methods(ctx)
                .await??
                .flat(walk, selections, &mut out),
            "invoices" => self.invoices(ctx).await??.flat(walk, selections, &mut out),
            "otherTickets" => self
                .other_tickets(ctx)
                .await??
                .flat(walk, selections, &mut out),
            "chatHistory" => self
                .chat_history(ctx)
                .await??
                .flat(walk, selections, &mut out),
            // Validation admits only the schema's fields; the test named above keeps this
            // list complete.
            _ => out.extend_from_slice(b"null"),
        }
        Ok(out)
    }
}

fn one_line_address(street: &str, city: &str, postal_code: &str, country: &str) -> String {
    format!("{street}, {city} {postal_code}, {country}")
}

/// An identity document's metadata and, when plain, its content.
#[derive(Clone, SimpleObject)]
pub struct IdentityDocument {
    /// Global id of this document as seen through the ticket it was reached from.
    pub id: ID,
    /// Always `id_document`.
    pub kind: String,
    /// File name; null when masked.
    pub file_name: Option<String>,
    /// Size in bytes.
    pub size_bytes: i64,
    /// The file, base64-encoded; null when masked.
    pub content_base64: Option<String>,
}

flat_object!(IdentityDocument {
    id,
    kind,
    file_name,
    size_bytes,
    content_base64
});

impl IdentityDocument {
    fn render(
        row: &attachment::Model,
        through: i32,
        opener: &Opener,
        shown: Shown,
    ) -> ApiResult<IdentityDocument> {
        let plain = shown == Shown::Plain;
        let content = if plain {
            let bytes = opener.attachment(row.id, row.wrapped_key.as_deref(), &row.content)?;
            Some(base64::engine::general_purpose::STANDARD.encode(bytes))
        } else {
            None
        };
        Ok(IdentityDocument {
            id: super::gid("IdentityDocument", Pair(through, row.id)),
            kind: row.kind.clone(),
            file_name: plain.then(|| row.file_name.clone()),
            size_bytes: row.size_bytes,
            content_base64: content,
        })
    }
}

/// A payment method.
#[derive(Clone, SimpleObject)]
pub struct PaymentMethod {
    /// Global id of this payment method as seen through the ticket it was reached from.
    pub id: ID,
    /// Card brand, e.g. `Visa`.
    pub brand: String,
    /// Last four digits.
    pub last4: String,
    /// Expiry month (1-12); null when masked.
    pub exp_month: Option<i32>,
    /// Expiry year; null when masked.
    pub exp_year: Option<i32>,
    /// Billing address on one line; null when masked.
    pub billing_address: Option<String>,
}

flat_object!(PaymentMethod {
    id,
    brand,
    last4,
    exp_month,
    exp_year,
    billing_address
});

impl PaymentMethod {
    fn render(
        row: &entity::payment_method::Model,
        through: i32,
        opener: &Opener,
        shown: Shown,
    ) -> ApiResult<PaymentMethod> {
        let plain = shown == Shown::Plain;
        let text = |column, sealed: &[u8]| opener.text("payment_methods", column, row.id, sealed);
        let billing_address = if plain {
            Some(one_line_address(
                &text("billing_street", &row.billing_street)?,
                &text("billing_city", &row.billing_city)?,
                &text("billing_postal_code", &row.billing_postal_code)?,
                &text("billing_country", &row.billing_country)?,
            ))
        } else {
            None
        };
        Ok(PaymentMethod {
            id: super::gid("PaymentMethod", Pair(through, row.id)),
            brand: row.brand.clone(),
            last4: row.last4.clone(),
            exp_month: plain.then_some(row.exp_month),
            exp_year: plain.then_some(row.exp_year),
            billing_address,
        })
    }
}

/// An invoice.
#[derive(Clone, SimpleObject)]
pub struct Invoice {
    /// Invoice number, e.g. `INV-1001`.
    pub number: String,
    /// `paid`, `open`, `refunded`, ….
    pub status: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// Amount in minor units (cents); null when masked.
    pub amount_cents: Option<i64>,
    /// ISO 4217 currency; null when masked.
    pub currency: Option<String>,
    /// When it was paid; null when unpaid or masked.
    pub paid_at: Option<DateTime<Utc>>,
}

flat_object!(Invoice {
    number,
    status,
    issued_at,
    amount_cents,
    currency,
    paid_at
});

impl Invoice {
    fn render(row: &entity::invoice::Model, shown: Shown) -> Invoice {
        let plain = shown == Shown::Plain;
        Invoice {
            number: row.number.clone(),
            status: row.status.clone(),
            issued_at: row.issued_at,
            amount_cents: plain.then_some(row.amount_cents),
            currency: plain.then(|| row.currency.clone()),
            paid_at: if plain { row.paid_at } else { None },
        }
    }
}

/// Another ticket of the same customer.
#[derive(Clone, SimpleObject)]
pub struct TicketSummary {
    /// Global id of this summary (seen through the ticket it was reached from); not the
    /// ticket's own id, so a client cache never mixes the summary with the ticket.
    pub id: LazyId<Pair>,
    /// The other ticket's id, for `ticket(id:)` (the agent may still be unable to open it).
    pub ticket_id: LazyId<i32>,
    /// Subject; null when masked.
    pub subject: Option<Arc<str>>,
    /// Topic.
    pub topic: Arc<str>,
    /// Status.
    pub status: TicketStatus,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// When it was resolved, if it was.
    pub resolved_at: Option<DateTime<Utc>>,
}

flat_object!(TicketSummary {
    id,
    ticket_id,
    subject,
    topic,
    status,
    created_at,
    resolved_at
});

impl TicketSummary {
    fn render(row: &TicketSummaryRow, through: i32, shown: Shown) -> ApiResult<TicketSummary> {
        Ok(TicketSummary {
            id: LazyId::new("TicketSummary", Pair(through, row.id)),
            ticket_id: LazyId::new("Ticket", row.id),
            subject: (shown == Shown::Plain).then(|| row.subject.clone()),
            topic: row.topic.shared(),
            status: stored_status(&row.status)?,
            created_at: row.created_at,
            resolved_at: row.resolved_at,
        })
    }
}

/// A message of another ticket of the customer.
#[derive(Clone, SimpleObject)]
pub struct ChatMessage {
    /// The ticket it belongs to.
    pub ticket_id: LazyId<i32>,
    /// `customer` or `agent`.
    pub author_kind: Arc<str>,
    /// The text, redacted when masked.
    pub body: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

flat_object!(ChatMessage {
    ticket_id,
    author_kind,
    body,
    created_at
});

impl ChatMessage {
    fn render(row: &ChatMessageRow, opener: &Opener, shown: Shown) -> ApiResult<ChatMessage> {
        let body = opener.text("messages", "body", row.id, &row.body)?;
        Ok(ChatMessage {
            ticket_id: LazyId::new("Ticket", row.ticket_id),
            author_kind: row.author_kind.shared(),
            body: match shown {
                Shown::Plain => body,
                Shown::Masked => mask::redact_message(&body),
            },
            created_at: row.created_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::vocabulary::Field;

    /// Frontend teams read a field's data class in the schema; it must match the code.
    #[test]
    fn every_protected_field_names_its_class_in_the_schema() {
        let sdl = crate::api::build_schema().sdl();
        let customer = sdl
            .split("type Customer implements Node {")
            .nth(1)
            .and_then(|rest| rest.split("\n}").next())
            .expect("Customer type in SDL");
        for field in Field::ALL {
            let name = field.graphql_name();
            let at = customer
                .find(&format!("\t{name}"))
                .or_else(|| customer.find(&format!(" {name}")))
                .unwrap_or_else(|| panic!("{name} missing from Customer"));
            let doc = &customer[..at];
            let doc = doc.rsplit("\"\"\"").nth(1).unwrap_or_default();
            assert!(
                doc.contains(&format!("Class `{}`", field.class())),
                "description of {name} must say Class `{}`: {doc:?}",
                field.class()
            );
        }
    }
}
