//! Ids as the API takes them, parsed once at the edge into types that say what they name:
//! code inside never re-checks an id or confuses a ticket's with a customer's.
//!
//! Objects carry **global ids** (Relay object identification): the base64url text
//! `Type:key`, unique across types, so a normalized client cache (Relay, Apollo) never
//! mixes two objects. Where an object is a view through a ticket (a customer, their payment
//! methods, their documents, their other tickets) the key starts with that ticket's id, so
//! the same record seen through two tickets, with two access levels, is two objects.
//! Arguments take a global id of the right type, or the plain database number.

use std::fmt;

use base64::Engine;

/// The global id of the object of type `kind` with `key` (e.g. `global("Ticket", 7)`).
///
/// Written without `format!`: a page of tickets makes thousands of ids (every chat
/// message names its ticket).
pub fn global(kind: &str, key: impl Key) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text_of(kind, key))
}

/// Appends the global id [`global`] makes to `out`, without an allocation of its own: the
/// text `Type:key` is written at the end of `out`, encoded after it, and the encoding
/// moved over the text (a page writes about a thousand ids).
pub fn write_global(kind: &str, key: impl Key, out: &mut Vec<u8>) {
    let start = out.len();
    write_text(kind, key, out);
    let text_end = out.len();
    let room = base64::encoded_len(text_end - start, false).unwrap_or_default();
    out.resize(text_end + room, 0);
    let (text, encoded) = out.split_at_mut(text_end);
    // `room` is exactly what the encoding takes, so this cannot run short.
    let written = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode_slice(&text[start..], encoded)
        .unwrap_or_default();
    out.copy_within(text_end..text_end + written, start);
    out.truncate(start + written);
}

/// The text a global id encodes: `Type:key`.
fn text_of(kind: &str, key: impl Key) -> Vec<u8> {
    let mut text = Vec::with_capacity(kind.len() + 24);
    write_text(kind, key, &mut text);
    text
}

/// Appends the text a global id encodes, `Type:key`, to `out`.
fn write_text(kind: &str, key: impl Key, out: &mut Vec<u8>) {
    out.extend_from_slice(kind.as_bytes());
    out.push(b':');
    key.write(out);
}

/// The key of a global id: a number, text, or a [`Pair`].
pub trait Key {
    /// Appends the key's text to `out`.
    fn write(&self, out: &mut Vec<u8>);
}

impl Key for i32 {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
    }
}

impl Key for i64 {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
    }
}

impl Key for str {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl Key for String {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl<K: Key + ?Sized> Key for &K {
    fn write(&self, out: &mut Vec<u8>) {
        (**self).write(out);
    }
}

/// The key `through:row`: row `row` seen through ticket `through` (see the module's
/// description).
#[derive(Clone, Copy)]
pub struct Pair(pub i32, pub i32);

impl Key for Pair {
    fn write(&self, out: &mut Vec<u8>) {
        self.0.write(out);
        out.push(b':');
        self.1.write(out);
    }
}

/// The type and key of a global id; `None` when `id` is not one.
pub fn parse_global(id: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (kind, key) = text.split_once(':')?;
    let named = !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphabetic());
    named.then(|| (kind.to_owned(), key.to_owned()))
}

use crate::error::{ApiError, ApiResult};

/// Declares a database id: a positive integer, written as a GraphQL `ID`.
macro_rules! numeric_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal, $type_name:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(i32);

        impl $name {
            /// Parses the value of the argument `argument`: a global id of this type (the
            /// last part of its key is the number) or a positive integer; anything else is
            /// `BAD_USER_INPUT`, naming the argument.
            pub fn parse(id: &str, argument: &str) -> ApiResult<$name> {
                let number = match parse_global(id) {
                    Some((kind, key)) if kind == $type_name => {
                        key.rsplit(':').next().unwrap_or_default().to_owned()
                    }
                    Some(_) => String::new(),
                    None => id.to_owned(),
                };
                number
                    .parse::<i32>()
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

        impl $name {
            /// The type name in this id's global form.
            pub const TYPE: &'static str = $type_name;
        }
    };
}

numeric_id!(
    /// A ticket.
    TicketId,
    "ticket",
    "Ticket"
);
numeric_id!(
    /// A customer.
    CustomerId,
    "customer",
    "Customer"
);
numeric_id!(
    /// A pending (or decided) reveal request.
    RevealRequestId,
    "reveal request",
    "RevealRequest"
);

/// A reveal grant's opaque id (random, URL-safe). An id that cannot be one is `NOT_FOUND`,
/// exactly like an unknown one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GrantId(String);

impl GrantId {
    /// Parses a grant id as a client sends it (global, or as stored).
    pub fn parse(id: &str) -> ApiResult<GrantId> {
        let stored = match parse_global(id) {
            Some((kind, key)) if kind == "Grant" => key,
            Some(_) => return Err(ApiError::NotFound),
            None => id.to_owned(),
        };
        let id = stored.as_str();
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
    fn global_ids_of_the_right_type_are_taken_and_others_refused() {
        let ticket = global("Ticket", 7);
        assert_eq!(TicketId::parse(&ticket, "id").unwrap().get(), 7);
        assert!(RevealRequestId::parse(&ticket, "requestId").is_err());
        let customer = global("Customer", "7:12");
        assert_eq!(
            CustomerId::parse(&customer, "customerId").unwrap().get(),
            12
        );
        assert!(TicketId::parse(&customer, "id").is_err());
        assert_eq!(parse_global(&ticket), Some(("Ticket".into(), "7".into())));
        assert_eq!(parse_global("12"), None, "plain numbers are not global ids");
        let grant = global("Grant", "abc_DEF");
        assert_eq!(GrantId::parse(&grant).unwrap().as_str(), "abc_DEF");
    }

    #[test]
    fn a_global_id_written_into_a_buffer_is_the_one_made_alone() {
        let mut out = b"[".to_vec();
        write_global("TicketSummary", Pair(7, 12), &mut out);
        write_global("Ticket", 123_456, &mut out);
        let expected = format!(
            "[{}{}",
            global("TicketSummary", Pair(7, 12)),
            global("Ticket", 123_456)
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
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
