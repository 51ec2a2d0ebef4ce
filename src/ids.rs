//! Ids as the API takes them, parsed once at the edge into types that say what they name:
//! code inside never re-checks an id or confuses a ticket's with a customer's.

use std::fmt;

use crate::error::{ApiError, ApiResult};

/// Declares a database id: a positive integer, written as a GraphQL `ID`.
macro_rules! numeric_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(i32);

        impl $name {
            /// Parses the value of the argument `argument`; anything but a positive integer
            /// is `BAD_USER_INPUT`, naming the argument.
            pub fn parse(id: &str, argument: &str) -> ApiResult<$name> {
                id.parse::<i32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map($name)
                    .ok_or_else(|| {
                        ApiError::BadUserInput(format!(
                            concat!("`{}` is not a ", $kind, " id"),
                            argument
                        ))
                    })
            }

            /// The database key.
            pub fn get(self) -> i32 {
                self.0
            }
        }

        impl From<i32> for $name {
            fn from(id: i32) -> Self {
                $name(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

numeric_id!(
    /// A ticket.
    TicketId,
    "ticket"
);
numeric_id!(
    /// A customer.
    CustomerId,
    "customer"
);
numeric_id!(
    /// A pending (or decided) reveal request.
    RevealRequestId,
    "reveal request"
);

/// A reveal grant's opaque id (random, URL-safe). An id that cannot be one is `NOT_FOUND`,
/// exactly like an unknown one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GrantId(String);

impl GrantId {
    /// Parses a grant id as a client sends it.
    pub fn parse(id: &str) -> ApiResult<GrantId> {
        let shaped = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if shaped {
            Ok(GrantId(id.to_owned()))
        } else {
            Err(ApiError::NotFound)
        }
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_integers_and_errors_name_the_argument() {
        assert_eq!(TicketId::parse("7", "ticketId").unwrap().get(), 7);
        for bad in ["0", "-1", "x", "", "99999999999"] {
            let error = TicketId::parse(bad, "ticketId").unwrap_err();
            assert!(
                matches!(error, ApiError::BadUserInput(ref m) if m == "`ticketId` is not a ticket id"),
                "{bad}"
            );
        }
        assert!(CustomerId::parse("12", "customerId").is_ok());
    }

    #[test]
    fn a_grant_id_that_cannot_exist_is_not_found() {
        assert!(GrantId::parse("abc_DEF-123").is_ok());
        for bad in ["", "a b", "x".repeat(65).as_str(), "é"] {
            assert!(
                matches!(GrantId::parse(bad), Err(ApiError::NotFound)),
                "{bad}"
            );
        }
    }
}
