//! The one classification of every protected customer field into a data class.
//!
//! A field's schema description names its class; a unit test keeps the two in step.

use crate::policy::DataClass;

/// A protected field of a customer, as the schema exposes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `Customer.accountStatus`.
    AccountStatus,
    /// `Customer.plan`.
    Plan,
    /// `Customer.customerSince`.
    CustomerSince,
    /// `Customer.region`.
    Region,
    /// `Customer.fullName`.
    FullName,
    /// `Customer.email`.
    Email,
    /// `Customer.phone`.
    Phone,
    /// `Customer.postalAddress`.
    PostalAddress,
    /// `Customer.dateOfBirth`.
    DateOfBirth,
    /// `Customer.identityDocuments`.
    IdentityDocuments,
    /// `Customer.paymentMethods` (with their billing addresses).
    PaymentMethods,
    /// `Customer.invoices`.
    Invoices,
    /// `Customer.otherTickets`.
    OtherTickets,
    /// `Customer.chatHistory`.
    ChatHistory,
}

impl Field {
    /// Every protected field.
    pub const ALL: [Field; 14] = [
        Field::AccountStatus,
        Field::Plan,
        Field::CustomerSince,
        Field::Region,
        Field::FullName,
        Field::Email,
        Field::Phone,
        Field::PostalAddress,
        Field::DateOfBirth,
        Field::IdentityDocuments,
        Field::PaymentMethods,
        Field::Invoices,
        Field::OtherTickets,
        Field::ChatHistory,
    ];

    /// The field's position in [`Field::ALL`], the schema order lists use.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The field's data class: the one place that says it.
    pub fn class(self) -> DataClass {
        match self {
            Field::AccountStatus | Field::Plan | Field::CustomerSince | Field::Region => {
                DataClass::Account
            }
            Field::FullName => DataClass::Name,
            Field::Email | Field::Phone => DataClass::Contact,
            Field::PostalAddress => DataClass::Address,
            Field::DateOfBirth | Field::IdentityDocuments => DataClass::Identity,
            Field::PaymentMethods | Field::Invoices => DataClass::Billing,
            Field::OtherTickets => DataClass::TicketHistory,
            Field::ChatHistory => DataClass::ChatHistory,
        }
    }

    /// The field's name in the GraphQL schema (on `Customer`).
    pub fn graphql_name(self) -> &'static str {
        match self {
            Field::AccountStatus => "accountStatus",
            Field::Plan => "plan",
            Field::CustomerSince => "customerSince",
            Field::Region => "region",
            Field::FullName => "fullName",
            Field::Email => "email",
            Field::Phone => "phone",
            Field::PostalAddress => "postalAddress",
            Field::DateOfBirth => "dateOfBirth",
            Field::IdentityDocuments => "identityDocuments",
            Field::PaymentMethods => "paymentMethods",
            Field::Invoices => "invoices",
            Field::OtherTickets => "otherTickets",
            Field::ChatHistory => "chatHistory",
        }
    }
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
}
