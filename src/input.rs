//! What writers send, parsed at the edge into types the services trust ("parse, don't
//! validate"): external ids, names and other single-line text, message bodies, emails,
//! E.164 phone numbers, dates of birth, regions and language tags.
//!
//! Every refusal is `BAD_USER_INPUT` with a message that names the input and the rule, and
//! never repeats the value (it may be personal data).

use chrono::NaiveDate;

use crate::error::{ApiError, ApiResult};

/// The longest message body or hand-off note, in characters.
pub const MAX_BODY_CHARS: usize = 20_000;
/// The longest single-line text (a name, a subject, an address line), in characters.
pub const MAX_LINE_CHARS: usize = 200;

fn bad(what: &str, rule: &str) -> ApiError {
    ApiError::BadUserInput(format!("`{what}` {rule}"))
}

/// The first invisible formatting character of `text`, if any: zero-width spaces and
/// joiners, bidirectional overrides and isolates, the byte-order mark, soft hyphens and
/// other Unicode format characters. They hide text from a reader (and from the redaction of
/// card numbers, emails and phone numbers), so nothing stored may contain them.
///
/// A hand-written list rather than a Unicode-tables crate: it is the format (`Cf`)
/// characters of current Unicode that occur in text, and it must not change under us.
pub fn invisible_char(text: &str) -> Option<char> {
    text.chars().find(|&c| is_invisible(c))
}

/// Whether `c` is an invisible formatting character (see [`invisible_char`]).
pub fn is_invisible(c: char) -> bool {
    matches!(c,
            '\u{00AD}' | '\u{061C}' | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}' | '\u{E0020}'..='\u{E007F}')
}

/// Checks text common to every input: within `max` characters, no control characters
/// (except newlines and tabs where `multiline`), no invisible formatting.
fn text(what: &str, value: &str, max: usize, multiline: bool) -> ApiResult<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(bad(what, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(bad(what, &format!("is longer than {max} characters")));
    }
    if invisible_char(value).is_some() {
        return Err(bad(
            what,
            "contains invisible formatting characters (zero-width or bidirectional controls)",
        ));
    }
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if value.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(bad(what, "contains control characters"));
    }
    Ok(value.to_owned())
}

/// One line of text: a name, a subject, an address line (1–200 characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line(String);

impl Line {
    /// Parses `value` as the input `what`.
    pub fn parse(what: &str, value: &str) -> ApiResult<Line> {
        text(what, value, MAX_LINE_CHARS, false).map(Line)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A message body or note: 1–20 000 characters, several lines allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body(String);

impl Body {
    /// Parses `value` as the input `what`.
    pub fn parse(what: &str, value: &str) -> ApiResult<Body> {
        text(what, value, MAX_BODY_CHARS, true).map(Body)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id another system (a helpdesk, a CRM, a chat platform) gives a record: 1–128
/// printable ASCII characters without spaces.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExternalId(String);

impl ExternalId {
    /// Parses `value` as the input `what`.
    pub fn parse(what: &str, value: &str) -> ApiResult<ExternalId> {
        if value.is_empty() || value.len() > 128 || !value.chars().all(|c| c.is_ascii_graphic()) {
            return Err(bad(
                what,
                "must be 1-128 printable ASCII characters without spaces",
            ));
        }
        Ok(ExternalId(value.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address of a plausible shape (`local@domain.tld`); the domain is lower-cased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses `value` as the input `what`.
    pub fn parse(what: &str, value: &str) -> ApiResult<Email> {
        let value = value.trim();
        let malformed = || bad(what, "is not an email address (local@domain.tld)");
        if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(malformed());
        }
        let (local, domain) = value.rsplit_once('@').ok_or_else(malformed)?;
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        let labels: Vec<&str> = domain.split('.').collect();
        if local.is_empty()
            || local.len() > 64
            || local.contains('@')
            || invisible_char(local).is_some()
            || labels.len() < 2
            || !labels.iter().all(|l| label_ok(l))
            || labels.last().is_some_and(|tld| tld.len() < 2)
        {
            return Err(malformed());
        }
        Ok(Email(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number in E.164: `+`, then 8 to 15 digits; spaces, dashes, dots and
/// parentheses between them are allowed and kept as the customer wrote them (masks keep
/// the grouping; the blind index ignores it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// Parses `value` as the input `what`.
    pub fn parse(what: &str, value: &str) -> ApiResult<Phone> {
        let value = value.trim();
        let malformed = || {
            bad(
                what,
                "is not an E.164 phone number (+ and 8-15 digits, e.g. +15550100223)",
            )
        };
        let rest = value.strip_prefix('+').ok_or_else(malformed)?;
        let mut digits = String::with_capacity(16);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(malformed()),
            }
        }
        if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err(malformed());
        }
        Ok(Phone(
            value.split_whitespace().collect::<Vec<_>>().join(" "),
        ))
    }

    /// The number as written (validated).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A date in the past (a date of birth, the day someone became a customer):
/// `YYYY-MM-DD`, not in the future, not before 1900.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PastDate(NaiveDate);

/// A date of birth.
pub type DateOfBirth = PastDate;

impl PastDate {
    /// Parses `value` as the input `what`, as of `today`.
    pub fn parse(what: &str, value: &str, today: NaiveDate) -> ApiResult<PastDate> {
        let date = NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
            .map_err(|_| bad(what, "is not a date (YYYY-MM-DD)"))?;
        if date > today {
            return Err(bad(what, "is in the future"));
        }
        if date < NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN) {
            return Err(bad(what, "is before 1900"));
        }
        Ok(PastDate(date))
    }

    /// The date.
    pub fn date(self) -> NaiveDate {
        self.0
    }

    /// `YYYY-MM-DD`, the stored form.
    pub fn to_stored(self) -> String {
        self.0.format("%Y-%m-%d").to_string()
    }
}

/// A region or country: an ISO 3166-1 alpha-2 code (`US`, `GB`), upper-cased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Country(String);

impl Country {
    /// Parses `value` as the input `what`.
    pub fn parse(what: &str, value: &str) -> ApiResult<Country> {
        let value = value.trim();
        if value.len() != 2 || !value.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(bad(what, "is not an ISO 3166-1 alpha-2 code (e.g. US, GB)"));
        }
        Ok(Country(value.to_ascii_uppercase()))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A language tag of the common BCP 47 shapes: `en`, `pt-BR`, `zh-Hant`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Language(String);

impl Language {
    /// Parses `value` as the input `what`.
    pub fn parse(what: &str, value: &str) -> ApiResult<Language> {
        let value = value.trim();
        let mut parts = value.split('-');
        let primary = parts.next().unwrap_or_default();
        let ok = (2..=3).contains(&primary.len())
            && primary.chars().all(|c| c.is_ascii_alphabetic())
            && parts.all(|p| {
                (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric())
            })
            && value.len() <= 35;
        if !ok {
            return Err(bad(what, "is not a language tag (e.g. en, pt-BR)"));
        }
        Ok(Language(value.to_owned()))
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
    }

    #[test]
    fn phones_must_be_e164_and_anything_else_is_refused() {
        assert_eq!(
            Phone::parse("phone", " +1 555  0100 2233")
                .unwrap()
                .as_str(),
            "+1 555 0100 2233"
        );
        assert!(Phone::parse("phone", "+44 (20) 7946-0958").is_ok());
        for bad in [
            "555 0100",
            "+1 555",
            "+1234567890123456",
            "+0 555 0100 2233",
            "+1 555 O100 2233",
            "",
        ] {
            assert!(Phone::parse("phone", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert_eq!(
            Email::parse("email", "Robin.Sample@Example.COM")
                .unwrap()
                .as_str(),
            "Robin.Sample@example.com"
        );
        for bad in [
            "robin",
            "robin@",
            "@example.com",
            "robin@example",
            "robin@exa mple.com",
            "robin@-x.com",
            "a@b.c",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_date_of_birth_is_not_in_the_future() {
        assert!(DateOfBirth::parse("dateOfBirth", "1984-07-19", today()).is_ok());
        assert!(DateOfBirth::parse("dateOfBirth", "2026-12-02", today()).is_err());
        assert!(DateOfBirth::parse("dateOfBirth", "1899-12-31", today()).is_err());
        assert!(DateOfBirth::parse("dateOfBirth", "19/07/1984", today()).is_err());
    }

    #[test]
    fn invisible_formatting_and_empty_or_long_text_are_refused() {
        assert!(Body::parse("body", "pay to 4242\u{200B}4242 4242 4242").is_err());
        assert!(Body::parse("body", "\u{202E}gnp.exe").is_err());
        assert!(Body::parse("body", "   ").is_err());
        assert!(Body::parse("body", &"x".repeat(MAX_BODY_CHARS + 1)).is_err());
        assert!(Body::parse("body", "line one\nline two").is_ok());
        assert!(Line::parse("subject", "line one\nline two").is_err());
        let error = Body::parse("body", "secret\u{200B}").unwrap_err();
        assert!(
            !error.message().contains("secret"),
            "errors never repeat the value"
        );
    }

    #[test]
    fn external_ids_regions_and_languages() {
        assert!(ExternalId::parse("externalId", "zendesk:12345").is_ok());
        assert!(ExternalId::parse("externalId", "has space").is_err());
        assert!(ExternalId::parse("externalId", "").is_err());
        assert_eq!(Country::parse("region", "gb").unwrap().as_str(), "GB");
        assert!(Country::parse("region", "GBR").is_err());
        assert!(Language::parse("preferredLanguage", "pt-BR").is_ok());
        assert!(Language::parse("preferredLanguage", "english please").is_err());
    }
}
