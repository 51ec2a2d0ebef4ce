//! The words the code and the policies share: data classes and the customer fields in each,
//! access levels, reveal options, ticket and audit scopes, ticket statuses and the
//! permissions the host asks the policy about.
//!
//! This module imports nothing else of the crate: every other layer builds on it. Roles and
//! topics are not here: they are data that the policy defines (`role(...)` and `topic(...)`
//! facts) and admins extend without a code change.

use std::fmt;
use std::str::FromStr;

/// A word from a policy, a case file or a request that the host does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown word {0:?}")]
pub struct UnknownWord(pub String);

/// Declares a closed vocabulary: an enum, its words as policies write them, `ALL`, `as_str`,
/// `Display` and `FromStr`.
macro_rules! words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $word:literal, )* }
    ) => {
        $(#[$meta])*
        pub enum $name { $( $(#[$vmeta])* $variant, )* }

        impl $name {
            /// Every word, in declaration order.
            pub const ALL: [$name; [$($word),*].len()] = [$($name::$variant),*];

            /// The word as policies, case files and the database write it.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $word, )* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                match s {
                    $( $word => Ok($name::$variant), )*
                    other => Err(UnknownWord(other.to_owned())),
                }
            }
        }
    };
}

words! {
    /// A class of customer data; every protected field belongs to exactly one.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, async_graphql::Enum)]
    pub enum DataClass {
        /// Account status, plan, customer since, region, preferred language.
        Account => "account",
        /// Full name.
        Name => "name",
        /// Email and phone.
        Contact => "contact",
        /// Postal address.
        Address => "address",
        /// Date of birth and identity documents.
        Identity => "identity",
        /// Payment methods, billing address, invoices.
        Billing => "billing",
        /// The customer's other tickets.
        TicketHistory => "ticket_history",
        /// The messages of the customer's other tickets.
        ChatHistory => "chat_history",
    }
}

impl DataClass {
    /// Whether a plaintext view of the class is audited: every class but `account` and
    /// `ticket_history`.
    pub fn audited(self) -> bool {
        !matches!(self, DataClass::Account | DataClass::TicketHistory)
    }

    /// How a sentence to the customer names the class.
    pub fn phrase(self) -> &'static str {
        match self {
            DataClass::Account => "your account details",
            DataClass::Name => "your name",
            DataClass::Contact => "your contact details",
            DataClass::Address => "your address",
            DataClass::Identity => "your identity documents",
            DataClass::Billing => "your payment history",
            DataClass::TicketHistory => "your other tickets",
            DataClass::ChatHistory => "your earlier conversations",
        }
    }

    /// The fields of the class, in schema order.
    pub fn fields(self) -> impl Iterator<Item = Field> {
        Field::ALL.into_iter().filter(move |f| f.class() == self)
    }
}

/// Where a field's value is stored and how it is masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// One column of `customers`: sealed (encrypted under the customer's data key) or not,
    /// shown `MASKED` with `mask`. Such a field needs no code of its own beyond its
    /// resolver's one line: reading, decrypting, masking and the export follow from this.
    Column {
        /// The column of `customers`.
        column: &'static str,
        /// Whether the column holds an encrypted envelope.
        sealed: bool,
        /// The form of a `MASKED` value.
        mask: Mask,
    },
    /// Several columns or rows, read and masked by the field's own resolver.
    Composite,
}

/// The form a `MASKED` scalar value takes (implemented in `customers::mask`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mask {
    /// `***`.
    Stars,
    /// First name and last initial: `Robin S.`.
    Name,
    /// First character of the local part, `***`, the domain: `r***@example.com`.
    Email,
    /// All digits but the last two replaced: `+* *** **** **33`.
    Phone,
    /// The year of a date.
    Year,
}

/// `Column` storage, in the table below.
const fn column(column: &'static str, mask: Mask) -> Storage {
    Storage::Column {
        column,
        sealed: false,
        mask,
    }
}

/// `Column` storage of an encrypted column, in the table below.
const fn sealed(column: &'static str, mask: Mask) -> Storage {
    Storage::Column {
        column,
        sealed: true,
        mask,
    }
}

/// Declares every protected customer field once: its schema name, its data class, how a
/// sentence to the customer names it, and where it is stored. Everything else about fields
/// derives from this table.
macro_rules! fields {
    ( $( $(#[$vmeta:meta])* $variant:ident => $name:literal, $class:ident, $phrase:literal, $storage:expr; )* ) => {
        /// A protected field of a customer, as the schema exposes it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Field { $( $(#[$vmeta])* $variant, )* }

        impl Field {
            /// Every protected field, in schema order.
            pub const ALL: [Field; [$($name),*].len()] = [$(Field::$variant),*];

            /// The field's name in the GraphQL schema (on `Customer`), which is also how
            /// policies, case files, grants and audit events name it.
            pub fn graphql_name(self) -> &'static str {
                match self { $( Field::$variant => $name, )* }
            }

            /// The field's data class: the one place that says it.
            pub fn class(self) -> DataClass {
                match self { $( Field::$variant => DataClass::$class, )* }
            }

            /// How a sentence to the customer names the field.
            pub fn phrase(self) -> &'static str {
                match self { $( Field::$variant => $phrase, )* }
            }

            /// Where the field's value is stored and how it is masked.
            pub fn storage(self) -> Storage {
                match self { $( Field::$variant => $storage, )* }
            }
        }
    };
}

fields! {
    /// `Customer.accountStatus`.
    AccountStatus => "accountStatus", Account, "your account status", column("account_status", Mask::Stars);
    /// `Customer.plan`.
    Plan => "plan", Account, "your plan", column("plan", Mask::Stars);
    /// `Customer.customerSince`.
    CustomerSince => "customerSince", Account, "how long you have been a customer", column("customer_since", Mask::Year);
    /// `Customer.region`.
    Region => "region", Account, "your region", column("region", Mask::Stars);
    /// `Customer.preferredLanguage`.
    PreferredLanguage => "preferredLanguage", Account, "your preferred language", column("preferred_language", Mask::Stars);
    /// `Customer.fullName`.
    FullName => "fullName", Name, "your name", sealed("full_name", Mask::Name);
    /// `Customer.email`.
    Email => "email", Contact, "your email address", sealed("email", Mask::Email);
    /// `Customer.phone`.
    Phone => "phone", Contact, "your phone number", sealed("phone", Mask::Phone);
    /// `Customer.postalAddress` (street, city, postal code, country).
    PostalAddress => "postalAddress", Address, "your address", Storage::Composite;
    /// `Customer.dateOfBirth`.
    DateOfBirth => "dateOfBirth", Identity, "your date of birth", sealed("date_of_birth", Mask::Year);
    /// `Customer.identityDocuments`.
    IdentityDocuments => "identityDocuments", Identity, "your identity documents", Storage::Composite;
    /// `Customer.paymentMethods` (with their billing addresses).
    PaymentMethods => "paymentMethods", Billing, "your payment methods", Storage::Composite;
    /// `Customer.invoices`.
    Invoices => "invoices", Billing, "your invoices", Storage::Composite;
    /// `Customer.otherTickets`.
    OtherTickets => "otherTickets", TicketHistory, "your other tickets", Storage::Composite;
    /// `Customer.chatHistory`.
    ChatHistory => "chatHistory", ChatHistory, "your earlier conversations", Storage::Composite;
}

impl Field {
    /// The `customers` column of a field stored in one (`Storage::Column`), else "".
    pub fn storage_column(self) -> &'static str {
        match self.storage() {
            Storage::Column { column, .. } => column,
            Storage::Composite => "",
        }
    }

    /// The field's position in [`Field::ALL`], the schema order lists use.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The field with this schema name.
    pub fn named(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.graphql_name() == name)
    }
}

/// Fields are stored (in grants, audit events) by their schema name; a stored name the
/// vocabulary does not know is an error, never some other field.
impl serde::Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.graphql_name())
    }
}

impl<'de> serde::Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Field::named(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown field {name:?}")))
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.graphql_name())
    }
}

/// What a policy answer is about: a whole data class, or one field (a field-level rule
/// overrides its class's answer for that field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A data class, e.g. `identity`.
    Class(DataClass),
    /// A field, e.g. `dateOfBirth`.
    Field(Field),
}

impl Subject {
    /// How many subjects there are: every class, then every field.
    pub const COUNT: usize = DataClass::ALL.len() + Field::ALL.len();

    /// The subject's position among [`Subject::COUNT`]: classes first, then fields.
    pub fn index(self) -> usize {
        match self {
            Subject::Class(class) => class as usize,
            Subject::Field(field) => DataClass::ALL.len() + field.index(),
        }
    }

    /// A class name or a field's schema name.
    pub fn parse(word: &str) -> Option<Subject> {
        word.parse()
            .ok()
            .map(Subject::Class)
            .or_else(|| Field::named(word).map(Subject::Field))
    }

    /// The class, or the field's class.
    pub fn class(self) -> DataClass {
        match self {
            Subject::Class(class) => class,
            Subject::Field(field) => field.class(),
        }
    }

    /// The word as policies write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::Class(class) => class.as_str(),
            Subject::Field(field) => field.graphql_name(),
        }
    }
}

/// A role that would see a hidden class on this ticket's topic.
#[derive(Clone, Debug, PartialEq, Eq, async_graphql::SimpleObject)]
pub struct HandOff {
    /// The role, e.g. `billing`.
    pub role: String,
    /// How to name it to a customer, e.g. `a billing specialist`.
    pub label: String,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

words! {
    /// How much of a protected value an agent sees. Ordered from least to most.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, async_graphql::Enum)]
    pub enum Access {
        /// Nothing: the value is absent from the whole response.
        Hidden => "HIDDEN",
        /// A reduced form (see each field's description).
        Masked => "MASKED",
        /// The value itself.
        Plain => "PLAIN",
    }
}

words! {
    /// Whether, and how, an agent may get more than their access level.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, async_graphql::Enum)]
    pub enum RevealOption {
        /// No reveal is possible.
        None => "NONE",
        /// A supervisor must approve a reveal request.
        WithApproval => "WITH_APPROVAL",
        /// The agent may reveal it themselves by giving a reason.
        WithReason => "WITH_REASON",
    }
}

impl RevealOption {
    /// Orders options by how easily they reveal: `NONE` < `WITH_APPROVAL` < `WITH_REASON`.
    pub fn rank(self) -> u8 {
        match self {
            RevealOption::None => 0,
            RevealOption::WithApproval => 1,
            RevealOption::WithReason => 2,
        }
    }
}

words! {
    /// A kind of ticket an agent may see, as the policy's `ticket_scope` names it. The host
    /// turns each into a SQL condition, so lists are filtered in the database.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum TicketScope {
        /// Tickets assigned to the agent.
        Assigned => "assigned",
        /// Unassigned tickets whose topic is in the agent's queues.
        Queue => "queue",
        /// Every ticket of the agent's team.
        Team => "team",
    }
}

words! {
    /// Which audit events an agent may read, as the policy's `audit_scope` names it. The
    /// host turns each into a SQL condition, like ticket scopes.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum AuditScope {
        /// Events the agent acted in.
        Own => "own",
        /// Events about tickets of the agent's team (events naming no ticket excluded).
        Team => "team",
        /// Every event, including those naming no ticket (agent admin, policy reloads,
        /// retention purges).
        All => "all",
    }
}

words! {
    /// A ticket's status (fixed; policies may read it as `ticket.status`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, async_graphql::Enum)]
    pub enum TicketStatus {
        /// Waiting for an agent.
        Open => "open",
        /// Waiting for the customer or a third party.
        Pending => "pending",
        /// Solved.
        Resolved => "resolved",
        /// Closed for good.
        Closed => "closed",
    }
}

words! {
    /// Where a reveal request that needs approval stands.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, async_graphql::Enum)]
    pub enum RevealRequestStatus {
        /// Waiting for a supervisor.
        Pending => "pending",
        /// Approved: grants were issued.
        Approved => "approved",
        /// Denied, with a note.
        Denied => "denied",
    }
}

words! {
    /// What an attachment is. `id_document`s belong to the `identity` class; retention
    /// periods are configured per kind.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, async_graphql::Enum)]
    pub enum AttachmentKind {
        /// An identity scan (passport, ID card, driving licence).
        IdDocument => "id_document",
        /// A receipt or invoice the customer sent.
        Receipt => "receipt",
        /// A screenshot.
        Screenshot => "screenshot",
    }
}

/// What a permission is about: a ticket (the policy sees its facts) or a named resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// A ticket, as `Ticket` facts for the asking agent.
    Ticket,
    /// A resource named by a string, e.g. `"access_report"`.
    Named(&'static str),
}

/// A permission the host asks the policy about with `allow(agent, action, resource)`.
/// The host asks about nothing else, so `policy check` can tell a misspelled action from a
/// real one, and a policy granting an action nobody asks about is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Approve or deny a reveal request on a ticket.
    ApproveReveal,
    /// Revoke another agent's grant on a ticket.
    RevokeReveal,
    /// Resolve or close a ticket.
    SetStatus,
    /// Check what a caller says against the record on a ticket.
    VerifyIdentity,
    /// Read per-customer access reports.
    ReadAccessReport,
    /// Find tickets by a customer's email or phone.
    LookupByContact,
    /// Export everything held on a customer.
    ExportCustomerData,
    /// Erase a customer.
    EraseCustomerData,
    /// Create or update customers from a channel or CRM (`upsertCustomer`).
    UpsertCustomer,
    /// Open a ticket; the policy sees the new ticket's facts (its topic, `open`,
    /// unassigned, in the caller's team when it is the caller's team).
    OpenTicket,
    /// Add a customer's or the system's message to a ticket (integrations).
    AppendMessage,
    /// Attach a document (an identity scan, a receipt) to a ticket.
    AttachDocument,
    /// Reply to the customer on a ticket.
    Reply,
    /// Take an unassigned ticket.
    Claim,
    /// Assign a ticket to an agent.
    Assign,
    /// Hand a ticket off to another role (its queue, or one of its agents).
    HandOff,
    /// List, create, change and disable agents and service accounts; issue their tokens.
    ManageAgents,
}

impl Permission {
    /// Every permission the host asks about.
    pub const ALL: [Permission; 17] = [
        Permission::ApproveReveal,
        Permission::RevokeReveal,
        Permission::SetStatus,
        Permission::VerifyIdentity,
        Permission::ReadAccessReport,
        Permission::LookupByContact,
        Permission::ExportCustomerData,
        Permission::EraseCustomerData,
        Permission::UpsertCustomer,
        Permission::OpenTicket,
        Permission::AppendMessage,
        Permission::AttachDocument,
        Permission::Reply,
        Permission::Claim,
        Permission::Assign,
        Permission::HandOff,
        Permission::ManageAgents,
    ];

    /// What the permission is about.
    pub fn resource(self) -> Resource {
        match self {
            Permission::ApproveReveal
            | Permission::RevokeReveal
            | Permission::SetStatus
            | Permission::VerifyIdentity
            | Permission::OpenTicket
            | Permission::AppendMessage
            | Permission::AttachDocument
            | Permission::Reply
            | Permission::Claim
            | Permission::Assign
            | Permission::HandOff => Resource::Ticket,
            Permission::UpsertCustomer => Resource::Named("customer"),
            Permission::ManageAgents => Resource::Named("agents"),
            Permission::ReadAccessReport => Resource::Named("access_report"),
            Permission::LookupByContact => Resource::Named("customer_by_contact"),
            Permission::ExportCustomerData | Permission::EraseCustomerData => {
                Resource::Named("customer_data")
            }
        }
    }

    /// The action word (`allow`'s second argument).
    pub fn action(self) -> &'static str {
        match self {
            Permission::ApproveReveal => "approve_reveal",
            Permission::RevokeReveal => "revoke_reveal",
            Permission::SetStatus => "set_status",
            Permission::VerifyIdentity => "verify_identity",
            Permission::ReadAccessReport => "read",
            Permission::LookupByContact => "lookup",
            Permission::ExportCustomerData => "export",
            Permission::EraseCustomerData => "erase",
            Permission::UpsertCustomer => "upsert",
            Permission::OpenTicket => "open",
            Permission::AppendMessage => "append_message",
            Permission::AttachDocument => "attach_document",
            Permission::Reply => "reply",
            Permission::Claim => "claim",
            Permission::Assign => "assign",
            Permission::HandOff => "hand_off",
            Permission::ManageAgents => "manage",
        }
    }

    /// `action` on `resource`, as a person reads it: `set_status on a ticket`,
    /// `read access_report`.
    pub fn describe(self) -> String {
        match self.resource() {
            Resource::Ticket => format!("{} on a ticket", self.action()),
            Resource::Named(name) => format!("{} {name}", self.action()),
        }
    }
}

/// The attributes of `Agent` that a policy may read.
pub const AGENT_ATTRIBUTES: [&str; 3] = ["role", "team", "queues"];

/// The attributes of `Ticket` that a policy may read (computed for the asking agent).
pub const TICKET_ATTRIBUTES: [&str; 5] = [
    "topic",
    "status",
    "assigned_to_me",
    "unassigned",
    "in_my_team",
];

/// Roles and topics are identifiers: lower-case ASCII letters, digits and underscores.
pub fn is_word(word: &str) -> bool {
    !word.is_empty()
        && word.len() <= 64
        && word.starts_with(|c: char| c.is_ascii_lowercase())
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_sits_at_its_index_in_all() {
        for (i, field) in Field::ALL.into_iter().enumerate() {
            assert_eq!(field.index(), i, "{field:?}");
        }
    }

    #[test]
    fn class_and_field_names_never_collide() {
        for class in DataClass::ALL {
            assert!(Field::named(class.as_str()).is_none(), "{class}");
        }
        assert_eq!(
            Subject::parse("dateOfBirth"),
            Some(Subject::Field(Field::DateOfBirth))
        );
        assert_eq!(
            Subject::parse("identity"),
            Some(Subject::Class(DataClass::Identity))
        );
        assert_eq!(Subject::parse("identiy"), None);
    }

    #[test]
    fn a_stored_field_name_round_trips_and_an_unknown_one_is_an_error() {
        let json = serde_json::to_string(&Field::DateOfBirth).unwrap();
        assert_eq!(json, "\"dateOfBirth\"");
        assert_eq!(
            serde_json::from_str::<Field>(&json).unwrap(),
            Field::DateOfBirth
        );
        assert!(serde_json::from_str::<Field>("\"shoeSize\"").is_err());
    }

    #[test]
    fn every_word_round_trips() {
        for s in TicketStatus::ALL {
            assert_eq!(s.as_str().parse::<TicketStatus>(), Ok(s));
        }
        let mut pairs: Vec<_> = Permission::ALL.map(|p| (p.action(), p.resource())).to_vec();
        pairs.dedup();
        assert_eq!(
            pairs.len(),
            Permission::ALL.len(),
            "each permission is one pair"
        );
    }
}
