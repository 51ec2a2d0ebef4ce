//! Masks for the `MASKED` access level, and the redaction of card numbers before storage.
//!
//! The product fixes what an agent sees when the policy answers `MASKED` for a customer field:
//! a name shrinks to first name and last initial, an email to its first character and domain,
//! a phone number to its last two digits, an address to city and country, a date of birth to
//! its year, and a chat message to its text with emails, phone numbers, card numbers, IBANs and
//! dates of birth replaced by markers. These are pure functions, so the one path for protected
//! data can apply them after the policy has decided, and they can be tested without a database.
//!
//! [`redact_cards_for_storage`] is different: it runs on every incoming message before it is
//! stored, because a full card number must never reach the database (PCI DSS 3.3/3.4). Only the
//! last four digits survive, in a form that the masks above leave alone.
//!
//! The scanners walk the text by hand over `char_indices` instead of using regular expressions:
//! card numbers and IBANs need checksums and backtracking to a group boundary anyway, and every
//! function here must accept arbitrary text (any Unicode, empty strings) without panicking.

use std::borrow::Cow;
use std::ops::RangeInclusive;

/// Digits in a payment card number (ISO/IEC 7812).
const CARD_DIGITS: RangeInclusive<usize> = 13..=19;
/// Characters in an IBAN without spaces: 4 for country and check digits, then 11 to 30.
const IBAN_CHARS: RangeInclusive<usize> = 15..=34;
/// Fewer digits than this are order numbers, amounts or years, not phone numbers.
const PHONE_MIN_DIGITS: usize = 7;
/// The longest number E.164 allows; the cap also keeps scanning linear.
const PHONE_MAX_DIGITS: usize = 15;
/// Longest local part (RFC 5321); the cap also keeps scanning linear.
const EMAIL_LOCAL_MAX: usize = 64;
/// Longest domain (RFC 1035).
const EMAIL_DOMAIN_MAX: usize = 255;

/// The mask the field table names for a scalar field (`Storage::Column`).
pub fn apply(mask: crate::vocabulary::Mask, value: &str) -> String {
    use crate::vocabulary::Mask;
    match mask {
        Mask::Stars => "***".to_owned(),
        Mask::Name => mask_name(value),
        Mask::Email => mask_email(value),
        Mask::Phone => mask_phone(value),
        Mask::Year => mask_date_of_birth(value),
    }
}

/// Masks a full name to the first name and the initial of the last name (`Robin S.`).
///
/// The last word is used for the initial so that middle names and particles such as "von"
/// stay hidden; a single-word name is shown as it is, since it has nothing left to shorten.
pub fn mask_name(full_name: &str) -> String {
    let mut words = full_name.split_whitespace();
    let Some(first) = words.next() else {
        return String::new();
    };
    match words.last().and_then(|last| last.chars().next()) {
        Some(initial) => format!("{first} {initial}."),
        None => first.to_owned(),
    }
}

/// Masks an email address to the first character of its local part and its domain
/// (`r***@example.com`).
///
/// The last `@` separates the domain, because a quoted local part may itself contain `@`.
/// Without a usable local part nothing is shown, so a malformed value cannot leak.
pub fn mask_email(email: &str) -> String {
    let Some((local, domain)) = email.trim().rsplit_once('@') else {
        return "***".to_owned();
    };
    match local.chars().next() {
        Some(first) => format!("{first}***@{domain}"),
        None => "***".to_owned(),
    }
}

/// Masks a phone number to its last two digits, keeping its punctuation (`+* *** **** **33`).
///
/// A number with two digits or fewer is masked entirely, since its last two digits would be
/// the whole number. Any Unicode digit counts, so non-ASCII digits cannot leak.
pub fn mask_phone(phone: &str) -> String {
    let digits = phone.chars().filter(|c| c.is_numeric()).count();
    let hidden = if digits > 2 { digits - 2 } else { digits };
    let mut seen = 0;
    phone
        .chars()
        .map(|c| {
            if c.is_numeric() {
                seen += 1;
                if seen <= hidden {
                    return '*';
                }
            }
            c
        })
        .collect()
}

/// Masks a postal address to its city and country (`Springfield, US`).
///
/// The street and postal code are never passed in, so they cannot leak; an empty part is
/// left out rather than shown as a dangling comma.
pub fn mask_address(city: &str, country: &str) -> String {
    match (city.trim(), country.trim()) {
        (part, "") | ("", part) => part.to_owned(),
        (city, country) => format!("{city}, {country}"),
    }
}

/// Masks an ISO date of birth (`1984-07-19`) to its year (`1984`).
///
/// Anything that does not start with four ASCII digits is masked entirely, because its year
/// cannot be told apart from the rest of it.
pub fn mask_date_of_birth(date: &str) -> String {
    match date.get(..4) {
        Some(year) if year.bytes().all(|b| b.is_ascii_digit()) => year.to_owned(),
        _ => "****".to_owned(),
    }
}

/// Tells whether a string of ASCII digits passes the Luhn check that card numbers carry.
///
/// Card detection relies on it to leave ordinary long numbers alone. Empty input or any
/// non-digit character yields `false`.
pub fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum = digits.bytes().rev().enumerate().fold(0, |sum, (i, b)| {
        let digit = u32::from(b - b'0');
        let doubled = digit * 2;
        // Every second digit from the right is doubled, and its two digits are summed.
        let value = if i % 2 == 0 {
            digit
        } else if doubled > 9 {
            doubled - 9
        } else {
            doubled
        };
        (sum + value) % 10
    });
    sum == 0
}

/// Returns the `MASKED` form of a chat message body.
///
/// Emails, IBANs, card numbers (Luhn-checked), dates that may be dates of birth and phone
/// numbers are replaced by `[email]`, `[iban]`, `[card]`, `[date]` and `[phone]`, checked in
/// that order at each position. Punctuation after a match stays outside the marker, and
/// short numbers such as `INV-2001` or `order 12345` are left as they are.
pub fn redact_message(body: &str) -> String {
    // An email needs an `@` and every other pattern a digit: a message with neither (most
    // chat lines) is copied without trying five patterns at each of its characters.
    let has_at = body.contains('@');
    let has_digit = body.bytes().any(|b| b.is_ascii_digit());
    if !has_at && !has_digit {
        return body.to_owned();
    }
    // Only a character that can open a pattern is tried: for an email, a local part's
    // character that does not continue one (`email_at` refuses the others); else an
    // uppercase letter (IBAN), a digit (card, date, phone), `+` or `(` (phone). Every
    // matcher refuses any other first character itself; this spares the calls, and
    // the copying of the text between openers one character at a time.
    let email_opens = move |b: u8, before: Option<u8>| {
        has_at && is_local_byte(b) && !before.is_some_and(is_local_byte)
    };
    let number_opens = move |b: u8| {
        has_digit && (b.is_ascii_digit() || b.is_ascii_uppercase() || b == b'+' || b == b'(')
    };
    replace_matches(
        body,
        |b, before| email_opens(b, before) || number_opens(b),
        |text, at, b, before| {
            let email = || email_opens(b, before).then(|| email_at(text, at)).flatten();
            let (end, marker) = email().map(|end| (end, "[email]")).or_else(|| {
                if !number_opens(b) {
                    return None;
                }
                iban_at(text, at)
                    .map(|end| (end, "[iban]"))
                    .or_else(|| card_at(text, at).map(|(end, _)| (end, "[card]")))
                    .or_else(|| date_at(text, at).map(|end| (end, "[date]")))
                    .or_else(|| phone_at(text, at).map(|end| (end, "[phone]")))
            })?;
            Some((end, Cow::Borrowed(marker)))
        },
    )
}

/// Replaces every card number in a message with `[card ••••NNNN]`, keeping its last 4 digits.
///
/// Every incoming message goes through this before it is stored, so a full card number never
/// reaches the database (PCI DSS 3.3/3.4). A card number is 13 to 19 digits, optionally grouped
/// by single spaces or hyphens, that passes the Luhn check. The function is idempotent: its
/// output holds only four digits per card, which is no card number.
pub fn redact_cards_for_storage(body: &str) -> String {
    replace_matches(
        body,
        |b, _| b.is_ascii_digit(),
        |text, at, _, _| {
            let (end, digits) = card_at(text, at)?;
            let last4 = digits
                .get(digits.len().saturating_sub(4)..)
                .unwrap_or_default();
            Some((end, Cow::Owned(format!("[card ••••{last4}]"))))
        },
    )
}

/// Copies `body`, replacing each match that `find` reports (its end and marker).
///
/// `find` is asked only at the ASCII bytes that `opens` accepts, given the byte before
/// (every pattern starts with an ASCII character); it gets the text, the position, the
/// byte there and the byte before. The text between matches is copied in runs, not
/// character by character. Matching resumes after the end of a match, so matches never
/// overlap.
fn replace_matches(
    body: &str,
    opens: impl Fn(u8, Option<u8>) -> bool,
    find: impl Fn(&str, usize, u8, Option<u8>) -> Option<(usize, Cow<'static, str>)>,
) -> String {
    let bytes = body.as_bytes();
    let mut out = String::with_capacity(body.len());
    // `body[copied..at]` is the text read but not yet copied. Both ends are char
    // boundaries: `at` stands on an ASCII byte, and a match's end is checked to be one.
    let mut copied = 0;
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        let before = at.checked_sub(1).and_then(|i| bytes.get(i).copied());
        if b.is_ascii() && opens(b, before) {
            if let Some((end, marker)) =
                find(body, at, b, before).filter(|&(end, _)| end > at && body.is_char_boundary(end))
            {
                out.push_str(body.get(copied..at).unwrap_or_default());
                out.push_str(&marker);
                copied = end;
                at = end;
                continue;
            }
        }
        at += 1;
    }
    out.push_str(body.get(copied..).unwrap_or_default());
    out
}

/// The character starting at byte offset `at`, if any.
fn char_at(text: &str, at: usize) -> Option<char> {
    text.get(at..)?.chars().next()
}

/// The character just before byte offset `at`, if any.
fn char_before(text: &str, at: usize) -> Option<char> {
    text.get(..at)?.chars().next_back()
}

/// Whether a match may start at `at`: it must not continue a word or number.
fn starts_token(text: &str, at: usize) -> bool {
    !char_before(text, at).is_some_and(char::is_alphanumeric)
}

/// Whether a match may end at `end`: it must not be followed by more of a word or number.
fn ends_token(text: &str, end: usize) -> bool {
    !char_at(text, end).is_some_and(char::is_alphanumeric)
}

/// A run of ASCII units (digits, or IBAN characters) split into groups by single separators.
struct GroupedRun {
    /// The units without their separators.
    units: String,
    /// For every complete group: the byte offset just past it and the units up to it.
    /// A match may only end at one of these, never in the middle of a group.
    group_ends: Vec<(usize, usize)>,
}

/// Scans the grouped run starting at `start`, giving up after `max_units` units.
///
/// Card numbers and IBANs share this scanner; callers try the group ends longest first, so
/// that "4242 4242 4242 4242 2 times" still finds the 16-digit card.
fn grouped_run(
    text: &str,
    start: usize,
    is_unit: fn(char) -> bool,
    is_separator: fn(char) -> bool,
    max_units: usize,
) -> GroupedRun {
    let mut run = GroupedRun {
        units: String::new(),
        group_ends: Vec::new(),
    };
    let mut in_group = false;
    for (offset, c) in text.get(start..).unwrap_or_default().char_indices() {
        if is_unit(c) {
            if run.units.len() == max_units {
                // The group in progress is too long to end a match.
                return run;
            }
            run.units.push(c);
            in_group = true;
        } else {
            if !in_group {
                return run;
            }
            run.group_ends.push((start + offset, run.units.len()));
            if !is_separator(c) {
                return run;
            }
            in_group = false;
        }
    }
    if in_group {
        run.group_ends.push((text.len(), run.units.len()));
    }
    run
}

/// Finds a Luhn-valid card number starting at `start`: its end and its digits.
///
/// Only neighbouring digits stop a match, not letters: a card number glued to a word
/// ("ref4242…") is still a card number and must not be stored. A leading `+` does stop it,
/// because that is an international phone number, which may pass the Luhn check by chance.
fn card_at(text: &str, start: usize) -> Option<(usize, String)> {
    if !char_at(text, start).is_some_and(|c| c.is_ascii_digit())
        || char_before(text, start).is_some_and(|c| c.is_ascii_digit() || c == '+')
    {
        return None;
    }
    let run = grouped_run(
        text,
        start,
        |c| c.is_ascii_digit(),
        |c| c == ' ' || c == '-',
        *CARD_DIGITS.end(),
    );
    run.group_ends.iter().rev().find_map(|&(end, count)| {
        let digits = run.units.get(..count)?;
        (CARD_DIGITS.contains(&count) && luhn_valid(digits)).then(|| (end, digits.to_owned()))
    })
}

/// Finds an IBAN starting at `start` and returns its end.
///
/// Only uppercase letters count, as in the printed form ISO 13616 prescribes; this keeps
/// ordinary words after an IBAN out of the candidate.
fn iban_at(text: &str, start: usize) -> Option<usize> {
    if !starts_token(text, start) {
        return None;
    }
    let Some([a, b, c, d]) = text.get(start..)?.as_bytes().get(..4) else {
        return None;
    };
    if !(a.is_ascii_uppercase()
        && b.is_ascii_uppercase()
        && c.is_ascii_digit()
        && d.is_ascii_digit())
    {
        return None;
    }
    let run = grouped_run(
        text,
        start,
        |c| c.is_ascii_uppercase() || c.is_ascii_digit(),
        |c| c == ' ',
        *IBAN_CHARS.end(),
    );
    run.group_ends.iter().rev().find_map(|&(end, count)| {
        let iban = run.units.get(..count)?;
        (IBAN_CHARS.contains(&count) && ends_token(text, end) && iban_checksum_valid(iban))
            .then_some(end)
    })
}

/// The ISO 13616 mod-97 check: move the first four characters to the end, read letters as
/// 10 to 35, and the number must leave remainder 1.
fn iban_checksum_valid(iban: &str) -> bool {
    let (Some(head), Some(tail)) = (iban.get(..4), iban.get(4..)) else {
        return false;
    };
    let mut remainder = 0;
    for c in tail.chars().chain(head.chars()) {
        let Some(value) = c.to_digit(36) else {
            return false;
        };
        let shift = if value < 10 { 10 } else { 100 };
        remainder = (remainder * shift + value) % 97;
    }
    remainder == 1
}

/// Reads up to five ASCII digits at `at`: their value, how many there were, and their end.
///
/// Five digits are enough to reject a too-long year without any risk of overflow.
fn number_at(text: &str, at: usize) -> Option<(u32, usize, usize)> {
    let mut value = 0;
    let mut len = 0;
    for c in text.get(at..)?.chars().take(5) {
        // `to_digit` accepts ASCII digits only, so each digit is one byte long.
        let Some(digit) = c.to_digit(10) else {
            break;
        };
        value = value * 10 + digit;
        len += 1;
    }
    (len > 0).then_some((value, len, at + len))
}

/// Whether year, month and day are in the range a date of birth could have.
fn plausible_date(year: u32, month: u32, day: u32) -> bool {
    (1900..=2099).contains(&year) && (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// Finds a date that may be a date of birth starting at `start` and returns its end.
///
/// Accepted forms are YYYY-MM-DD, DD.MM.YYYY and DD/MM/YYYY or MM/DD/YYYY; day and month
/// may have one or two digits, since people type "3.2.1990" too.
fn date_at(text: &str, start: usize) -> Option<usize> {
    if !starts_token(text, start) {
        return None;
    }
    let (first, first_len, at) = number_at(text, start)?;
    let separator = char_at(text, at).filter(|c| matches!(c, '-' | '.' | '/'))?;
    let (second, second_len, at) = number_at(text, at + 1)?;
    if char_at(text, at) != Some(separator) {
        return None;
    }
    let (third, third_len, end) = number_at(text, at + 1)?;
    let short = |len| (1..=2).contains(&len);
    let year_first = first_len == 4 && short(second_len) && short(third_len);
    let year_last = short(first_len) && short(second_len) && third_len == 4;
    let plausible = match separator {
        '-' => year_first && plausible_date(first, second, third),
        '.' => year_last && plausible_date(third, second, first),
        // Slashes are read both ways, since both orders are common.
        _ => {
            year_last
                && (plausible_date(third, second, first) || plausible_date(third, first, second))
        }
    };
    (plausible && ends_token(text, end)).then_some(end)
}

/// Finds a phone number starting at `start` and returns its end.
///
/// A phone number starts with `+`, a digit or `(`, continues over digits, spaces, hyphens,
/// dots and parentheses (at most two in a row), and has at least seven digits. It stops
/// before a date, so "call 555 1234 on 19.07.1984" keeps the two apart, and it ends at its
/// last digit (or the parenthesis closing one it opened), leaving punctuation outside.
fn phone_at(text: &str, start: usize) -> Option<usize> {
    let opens = char_at(text, start).is_some_and(|c| c.is_ascii_digit() || c == '+' || c == '(');
    if !opens || !starts_token(text, start) {
        return None;
    }
    let mut digits = 0;
    let mut end = start;
    let mut in_number = false;
    let mut separators = 0;
    for (offset, c) in text.get(start..)?.char_indices() {
        let at = start + offset;
        if c.is_ascii_digit() {
            if digits == PHONE_MAX_DIGITS || (!in_number && date_at(text, at).is_some()) {
                break;
            }
            digits += 1;
            end = at + 1;
            in_number = true;
            separators = 0;
        } else if (offset == 0 && c == '+')
            || (separators < 2 && matches!(c, ' ' | '-' | '.' | '(' | ')'))
        {
            in_number = false;
            separators += 1;
        } else {
            break;
        }
    }
    let number = text.get(start..end)?;
    if number.matches('(').count() > number.matches(')').count() && char_at(text, end) == Some(')')
    {
        end += 1;
    }
    (digits >= PHONE_MIN_DIGITS && ends_token(text, end)).then_some(end)
}

/// Whether `c` may appear in the local part of an email address.
fn is_local_char(c: char) -> bool {
    u8::try_from(c).is_ok_and(is_local_byte)
}

/// [`is_local_char`] for one byte of UTF-8 text (no byte of a longer character is one).
fn is_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// Finds an email address starting at `start` and returns its end.
///
/// The domain needs at least two labels and a final label of two or more letters; a trailing
/// dot is not part of it, so "write to robin@example.com." keeps its full stop.
fn email_at(text: &str, start: usize) -> Option<usize> {
    if char_before(text, start).is_some_and(is_local_char) {
        return None;
    }
    let (at_sign, _) = text
        .get(start..)?
        .char_indices()
        .take(EMAIL_LOCAL_MAX + 1)
        .find(|&(_, c)| !is_local_char(c))
        .filter(|&(offset, c)| c == '@' && offset > 0)?;
    let domain_start = start + at_sign + 1;
    let domain = text.get(domain_start..)?;
    let mut end = None;
    let (mut labels, mut label_len, mut label_alphabetic) = (0, 0, true);
    // A sentinel at the end of the text closes the last label like any other non-label char.
    for (offset, c) in domain.char_indices().chain([(domain.len(), '\0')]) {
        if offset > EMAIL_DOMAIN_MAX {
            break;
        }
        if c.is_ascii_alphanumeric() || c == '-' {
            label_len += 1;
            label_alphabetic &= c.is_ascii_alphabetic();
            continue;
        }
        if label_len == 0 {
            break;
        }
        labels += 1;
        if labels >= 2 && label_alphabetic && label_len >= 2 {
            end = Some(domain_start + offset);
        }
        if c != '.' {
            break;
        }
        (label_len, label_alphabetic) = (0, true);
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_names_keep_the_first_name_and_last_initial() {
        assert_eq!(mask_name("Robin Sample"), "Robin S.");
        assert_eq!(mask_name("Kim Placeholder"), "Kim P.");
    }

    #[test]
    fn a_single_word_name_is_shown_whole() {
        assert_eq!(mask_name("Cher"), "Cher");
    }

    #[test]
    fn middle_names_and_particles_are_dropped_and_the_last_word_gives_the_initial() {
        assert_eq!(mask_name("Anna Maria von Trapp"), "Anna T.");
    }

    #[test]
    fn extra_whitespace_around_and_between_names_is_ignored() {
        assert_eq!(mask_name("  Robin \t  Sample \n"), "Robin S.");
    }

    #[test]
    fn an_empty_or_blank_name_masks_to_nothing() {
        assert_eq!(mask_name(""), "");
        assert_eq!(mask_name(" \t\n"), "");
    }

    #[test]
    fn a_multi_byte_last_initial_is_kept_as_a_whole_character() {
        assert_eq!(mask_name("Zoë Ødegaard"), "Zoë Ø.");
        assert_eq!(mask_name("Björk Guðmundsdóttir"), "Björk G.");
        assert_eq!(mask_name("太郎 山田"), "太郎 山.");
        assert_eq!(mask_name("🙂 🙃x"), "🙂 🙃.");
    }

    #[test]
    fn emails_keep_the_first_local_character_and_the_domain() {
        assert_eq!(mask_email("robin.sample@example.com"), "r***@example.com");
        assert_eq!(
            mask_email("kim.placeholder@example.org"),
            "k***@example.org"
        );
    }

    #[test]
    fn the_last_at_sign_separates_the_domain() {
        assert_eq!(mask_email("\"a@b\"@example.com"), "\"***@example.com");
    }

    #[test]
    fn an_email_without_an_at_sign_is_masked_entirely() {
        assert_eq!(mask_email("robin.sample.example.com"), "***");
        assert_eq!(mask_email(""), "***");
    }

    #[test]
    fn an_email_with_an_empty_local_part_is_masked_entirely() {
        assert_eq!(mask_email("@example.com"), "***");
    }

    #[test]
    fn a_multi_byte_first_character_of_an_email_is_kept_whole() {
        assert_eq!(mask_email("élodie@example.fr"), "é***@example.fr");
    }

    #[test]
    fn phones_keep_only_their_last_two_digits_and_their_punctuation() {
        assert_eq!(mask_phone("+1 555 0100 2233"), "+* *** **** **33");
        assert_eq!(mask_phone("+44 20 7946 0958"), "+** ** **** **58");
        assert_eq!(mask_phone("(555) 010-0223"), "(***) ***-**23");
    }

    #[test]
    fn short_phones_are_masked_entirely() {
        assert_eq!(mask_phone("12"), "**");
        assert_eq!(mask_phone("+7"), "+*");
        assert_eq!(mask_phone("123"), "*23");
        assert_eq!(mask_phone(""), "");
    }

    #[test]
    fn non_ascii_digits_in_a_phone_are_masked_too() {
        assert_eq!(mask_phone("٠١٢٣٤"), "***٣٤");
        assert_eq!(mask_phone("phone: ☎ 12 34"), "phone: ☎ ** 34");
    }

    #[test]
    fn addresses_show_city_and_country_only() {
        assert_eq!(mask_address("Springfield", "US"), "Springfield, US");
        assert_eq!(mask_address("Cambridge", "GB"), "Cambridge, GB");
    }

    #[test]
    fn an_address_with_one_empty_part_shows_just_the_other() {
        assert_eq!(mask_address("Springfield", ""), "Springfield");
        assert_eq!(mask_address(" ", "US"), "US");
        assert_eq!(mask_address("", ""), "");
        assert_eq!(mask_address("Zürich", "CH"), "Zürich, CH");
    }

    #[test]
    fn a_date_of_birth_keeps_only_its_year() {
        assert_eq!(mask_date_of_birth("1984-07-19"), "1984");
        assert_eq!(mask_date_of_birth("1990-02-03"), "1990");
    }

    #[test]
    fn a_date_of_birth_not_starting_with_four_ascii_digits_is_masked_entirely() {
        assert_eq!(mask_date_of_birth(""), "****");
        assert_eq!(mask_date_of_birth("198"), "****");
        assert_eq!(mask_date_of_birth("19.07.1984"), "****");
        assert_eq!(mask_date_of_birth("198é-07-19"), "****");
        assert_eq!(mask_date_of_birth("١٩٨٤-٠٧-١٩"), "****");
    }

    #[test]
    fn the_luhn_check_accepts_valid_card_numbers_and_rejects_others() {
        assert!(luhn_valid("4242424242424242"));
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("5454545454545454"));
        assert!(!luhn_valid("4242424242424241"));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("4242 4242 4242 4242"));
        assert!(!luhn_valid("٤٢٤٢"));
    }

    #[test]
    fn card_numbers_are_reduced_to_their_last_four_digits_before_storage() {
        assert_eq!(
            redact_cards_for_storage("You charged my card 4242 4242 4242 4242 twice."),
            "You charged my card [card ••••4242] twice."
        );
        assert_eq!(
            redact_cards_for_storage("4111-1111-1111-1111"),
            "[card ••••1111]"
        );
        assert_eq!(
            redact_cards_for_storage("Mastercard 5454545454545454, thanks"),
            "Mastercard [card ••••5454], thanks"
        );
    }

    #[test]
    fn a_card_number_glued_to_letters_is_still_redacted_before_storage() {
        assert_eq!(
            redact_cards_for_storage("ref4242424242424242x"),
            "ref[card ••••4242]x"
        );
    }

    #[test]
    fn several_card_numbers_in_one_message_are_all_redacted() {
        assert_eq!(
            redact_cards_for_storage("4242424242424242 and 4111 1111 1111 1111."),
            "[card ••••4242] and [card ••••1111]."
        );
    }

    #[test]
    fn a_card_followed_by_more_digits_is_found_at_its_group_boundary() {
        assert_eq!(
            redact_cards_for_storage("4242 4242 4242 4242 2 times"),
            "[card ••••4242] 2 times"
        );
    }

    #[test]
    fn numbers_that_fail_luhn_or_have_the_wrong_length_are_stored_unchanged() {
        for body in [
            "4242 4242 4242 4241",
            "424242424242",
            "42424242424242424242",
            "Still waiting for INV-2001 refund.",
            "order 12345",
            "4242  4242  4242  4242",
            "",
        ] {
            assert_eq!(redact_cards_for_storage(body), body);
        }
    }

    #[test]
    fn an_international_phone_number_is_not_taken_for_a_card() {
        // 4915112345678 has 13 digits and happens to pass the Luhn check.
        assert!(luhn_valid("4915112345678"));
        assert_eq!(
            redact_cards_for_storage("tel:+4915112345678"),
            "tel:+4915112345678"
        );
        assert_eq!(redact_message("tel:+4915112345678"), "tel:[phone]");
    }

    #[test]
    fn redacting_cards_for_storage_is_idempotent() {
        let once = redact_cards_for_storage("Karte 4242 4242 4242 4242 — danke ✓ 5454545454545454");
        assert_eq!(once, "Karte [card ••••4242] — danke ✓ [card ••••5454]");
        assert_eq!(redact_cards_for_storage(&once), once);
    }

    #[test]
    fn masked_messages_replace_phones_and_emails_and_keep_punctuation_outside() {
        assert_eq!(
            redact_message("Call me at +1 555 0100 2233 or write to robin.sample@example.com."),
            "Call me at [phone] or write to [email]."
        );
        assert_eq!(
            redact_message("Mail kim.placeholder@example.org, or +44 20 7946 0958!"),
            "Mail [email], or [phone]!"
        );
    }

    #[test]
    fn masked_messages_leave_an_already_redacted_card_alone() {
        let body = "You charged my card [card ••••4242] twice.";
        assert_eq!(redact_message(body), body);
    }

    #[test]
    fn masked_messages_replace_card_numbers() {
        assert_eq!(
            redact_message("card 4242 4242 4242 4242, and 4111-1111-1111-1111."),
            "card [card], and [card]."
        );
    }

    #[test]
    fn masked_messages_replace_dates_of_birth_in_all_accepted_forms() {
        assert_eq!(redact_message("born 1984-07-19"), "born [date]");
        assert_eq!(redact_message("born 19.07.1984."), "born [date].");
        assert_eq!(redact_message("19/07/1984, 07/19/1984"), "[date], [date]");
        assert_eq!(redact_message("(3.2.1990)"), "([date])");
    }

    #[test]
    fn masked_messages_replace_valid_ibans_grouped_or_not() {
        assert_eq!(
            redact_message("IBAN DE89 3704 0044 0532 0130 00 please"),
            "IBAN [iban] please"
        );
        assert_eq!(redact_message("GB82WEST12345698765432."), "[iban].");
    }

    #[test]
    fn an_iban_with_a_wrong_check_digit_is_not_marked_as_an_iban() {
        assert!(!redact_message("DE00 3704 0044 0532 0130 00").contains("[iban]"));
    }

    #[test]
    fn masked_messages_leave_short_numbers_and_plain_text_untouched() {
        for body in [
            "Still waiting for INV-2001 refund.",
            "4242",
            "Tracking stopped two days ago.",
            "order 12345",
            "The reset email never arrives.",
            "version 1.2.3 on 2024",
            "robin@localhost and a@b.c",
            "",
        ] {
            assert_eq!(redact_message(body), body);
        }
    }

    #[test]
    fn a_phone_in_parentheses_is_replaced_with_its_parentheses() {
        assert_eq!(
            redact_message("call (555) 010-0223 now"),
            "call [phone] now"
        );
        assert_eq!(redact_message("(tel +1 555 0100 2233)"), "(tel [phone])");
    }

    #[test]
    fn a_phone_number_stops_before_a_following_date() {
        assert_eq!(
            redact_message("call 555 1234 19.07.1984"),
            "call [phone] [date]"
        );
    }

    #[test]
    fn unicode_text_around_matches_is_preserved() {
        assert_eq!(
            redact_message("Grüße — schreib an robin@example.com ✓"),
            "Grüße — schreib an [email] ✓"
        );
        assert_eq!(redact_message("電話 +81 3 1234 5678。"), "電話 [phone]。");
        assert_eq!(
            redact_message("メールはrobin@example.comまで"),
            "メールは[email]まで"
        );
    }

    #[test]
    fn an_email_with_a_non_ascii_local_part_still_loses_its_domain() {
        // Only ASCII counts as local part, so the match starts after the last non-ASCII letter.
        assert_eq!(redact_message("zoë.müller@example.de"), "zoë.mü[email]");
    }

    #[test]
    fn no_input_makes_any_function_panic() {
        let samples = [
            "",
            "@",
            "@@",
            "a@",
            "@b.co",
            "+",
            "(",
            "((((",
            ")",
            "é",
            "1",
            "٤٢٤٢",
            "🙂@🙂.🙂",
            "DE",
            "DE89",
            "12.",
            "1-",
            "1984-",
            "1984-07-",
            "31/31/2000",
            "a@b.",
            "..@..",
            "4242-",
            "-4242 4242 4242 4242-",
            "+1 (555) 0100-2233)",
            "GB82 WEST 1234 5698 7654 32",
        ];
        for sample in samples {
            let _ = mask_name(sample);
            let _ = mask_email(sample);
            let _ = mask_phone(sample);
            let _ = mask_address(sample, sample);
            let _ = mask_date_of_birth(sample);
            let _ = luhn_valid(sample);
            let _ = redact_message(sample);
            let stored = redact_cards_for_storage(sample);
            assert_eq!(redact_cards_for_storage(&stored), stored);
        }
    }

    /// The next draw below `n` of a small deterministic generator (a 64-bit LCG).
    fn draw(state: &mut u64, n: usize) -> usize {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(*state >> 33).unwrap_or(0) % n
    }

    #[test]
    fn card_redaction_is_idempotent_on_generated_text() {
        // A small deterministic generator over characters that stress the scanners.
        let alphabet: Vec<char> = "4242 4111-5454 0[]•a.@+é1 9".chars().collect();
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..3000 {
            let body: String = (0..40)
                .map(|_| alphabet[draw(&mut state, alphabet.len())])
                .collect();
            let stored = redact_cards_for_storage(&body);
            assert_eq!(redact_cards_for_storage(&stored), stored, "input: {body:?}");
            let _ = redact_message(&body);
        }
    }

    /// `redact_message` tries its patterns only where a pattern's first character stands;
    /// on generated text it must redact exactly as trying every pattern everywhere does.
    #[test]
    fn trying_patterns_only_where_one_can_open_changes_no_redaction() {
        let everywhere = |body: &str| {
            replace_matches(
                body,
                |_, _| true,
                |text, at, _, _| {
                    let (end, marker) = email_at(text, at)
                        .map(|end| (end, "[email]"))
                        .or_else(|| iban_at(text, at).map(|end| (end, "[iban]")))
                        .or_else(|| card_at(text, at).map(|(end, _)| (end, "[card]")))
                        .or_else(|| date_at(text, at).map(|end| (end, "[date]")))
                        .or_else(|| phone_at(text, at).map(|end| (end, "[phone]")))?;
                    Some((end, Cow::Borrowed(marker)))
                },
            )
        };
        // Pieces of every pattern, and single characters that glue them to each other.
        let pieces = [
            "4242 4242 4242 4242",
            "4111-1111-1111-1111",
            "+44 20 7946 0958",
            "(555) 0100 22",
            "robin.s@example.com",
            "a@b.co",
            "DE89 3704 0044 0532 0130 00",
            "GB82WEST12345698765432",
            "19.07.1984",
            "1984-07-19",
            "07/19/1984",
            "3.2.1990",
            "12345",
            "INV-2001",
            "[card ••••4242]",
            " ",
            " ",
            "-",
            ".",
            "/",
            "+",
            "(",
            ")",
            "@",
            "é",
            "٤",
            "Z",
            "x",
            "7",
            "_",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut redacted = 0;
        for _ in 0..20_000 {
            let body: String = (0..8)
                .map(|_| pieces[draw(&mut state, pieces.len())])
                .collect();
            let expected = everywhere(&body);
            assert_eq!(redact_message(&body), expected, "input: {body:?}");
            redacted += usize::from(expected != body);
        }
        // The generator must reach the patterns, or the comparison says little.
        assert!(
            redacted > 10_000,
            "only {redacted} generated texts had a match"
        );
    }
}
