//! Rows decoded by position, for the reads that return many rows per request.
//!
//! A model derived by sea-orm finds each of its columns by name: it formats the column's
//! prefixed name into a new string and looks it up in the row's column map, for every
//! column of every row. A page of 50 tickets decodes thousands of rows (chat history,
//! other tickets, invoices), and that lookup was a visible share of its time. A select of
//! an entity lists its columns in the entity's order, so the hot reads decode them by
//! index instead: [`Positional::from_columns`] on the raw rows of `E::find()`.
//!
//! Each model's field list below must follow its entity's column order; a unit test
//! compares them, so a changed entity fails the build's tests instead of decoding a column
//! into the wrong field.

use std::cell::RefCell;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{agent, attachment, customer, invoice, message, payment_method, ticket};
use sea_orm::sqlx::{postgres::Postgres, sqlite::Sqlite, Decode, Row, Type};
use sea_orm::{DbErr, QueryResult, TryGetable};

/// A model that can be read from consecutive columns of a row, in its entity's order.
pub trait Positional: Sized {
    /// The model's fields, in the order its entity selects their columns.
    const FIELDS: &'static [&'static str];

    /// The model from `row`'s columns `from .. from + FIELDS.len()`.
    fn from_columns(row: &QueryResult, from: usize) -> Result<Self, DbErr>;
}

/// The column at `at` of `row`, read from sqlx's row.
///
/// Through sea-orm, every NULL a nullable column held cost a formatted error message
/// (built, then dropped for `None`): thousands per page. Debug builds, which the tests
/// run, keep sqlx's check of the column's type against `T`, so a model that no longer
/// matches its table fails the tests; release builds skip it (it compares type
/// descriptions for every column of every row).
pub fn column<T: FromColumn>(row: &QueryResult, at: usize) -> Result<T, DbErr> {
    T::from_column(row, at)
}

/// A type a column is read as by [`column`].
pub trait FromColumn: Sized {
    /// The column at `at` of `row`.
    fn from_column(row: &QueryResult, at: usize) -> Result<Self, DbErr>;
}

/// [`FromColumn`] through sqlx's own decoding, for `T` and `Option<T>`.
macro_rules! from_column_by_sqlx {
    ($($t:ty),*) => {$(
        impl FromColumn for $t {
            fn from_column(row: &QueryResult, at: usize) -> Result<Self, DbErr> {
                decoded(row, at)
            }
        }

        impl FromColumn for Option<$t> {
            fn from_column(row: &QueryResult, at: usize) -> Result<Self, DbErr> {
                decoded(row, at)
            }
        }
    )*};
}

from_column_by_sqlx!(i32, i64, bool, String, Vec<u8>, chrono::NaiveDate);

/// Text read straight into shared memory: one allocation, where a `String` read and then
/// copied into what a response shows (a subject into its ticket summary) took two.
impl FromColumn for Arc<str> {
    fn from_column(row: &QueryResult, at: usize) -> Result<Self, DbErr> {
        text(row, at, |s: &str| Arc::from(s))
    }
}

/// A word of the vocabulary as a row holds it (a ticket's topic or status, a message's
/// author kind): the same few values in every row, so each thread keeps the ones it has
/// read and hands out those instead of allocating a string per row (a supervisor's page
/// reads about 1 600 messages and 500 other tickets). Only for columns of vocabulary:
/// what a thread keeps stays in memory for its life, so never a column of personal data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word(Arc<str>);

/// Words each thread keeps. Topics are a vocabulary admins extend; past this many, words
/// are read as they come, not kept.
const WORDS_KEPT: usize = 64;

thread_local! {
    static WORDS: RefCell<Vec<Arc<str>>> = const { RefCell::new(Vec::new()) };
}

impl Word {
    /// The word `text`, shared with the rows read before it on this thread.
    pub fn new(text: &str) -> Word {
        WORDS.with_borrow_mut(|words| {
            if let Some(word) = words.iter().find(|w| ***w == *text) {
                return Word(word.clone());
            }
            let word: Arc<str> = Arc::from(text);
            if words.len() < WORDS_KEPT {
                words.push(word.clone());
            }
            Word(word)
        })
    }

    /// The word, to be shown: the same shared text.
    pub fn shared(&self) -> Arc<str> {
        self.0.clone()
    }
}

impl std::ops::Deref for Word {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl FromColumn for Word {
    fn from_column(row: &QueryResult, at: usize) -> Result<Self, DbErr> {
        text(row, at, Word::new)
    }
}

/// The text at `at` of `row`, borrowed from the row and made into `T` by `make`.
fn text<T>(row: &QueryResult, at: usize, make: impl FnOnce(&str) -> T) -> Result<T, DbErr> {
    let decoded = if let Some(row) = row.try_as_pg_row() {
        get::<_, &str>(row, at).map(make)
    } else if let Some(row) = row.try_as_sqlite_row() {
        get::<_, &str>(row, at).map(make)
    } else {
        return row.try_get_by_index::<String>(at).map(|s| make(&s));
    };
    decoded.map_err(|error| DbErr::Type(format!("column {at}: {error}")))
}

/// Timestamps read straight from PostgreSQL's binary form (microseconds since
/// 2000-01-01 UTC, big-endian): sqlx rebuilds its epoch and adds the microseconds as a
/// duration for each, about 400 instructions a timestamp, and a supervisor's page reads
/// thousands. Anything else (SQLite's text, a type other than a timestamp) goes through
/// sqlx.
impl FromColumn for DateTime<Utc> {
    fn from_column(row: &QueryResult, at: usize) -> Result<Self, DbErr> {
        match postgres_timestamp(row, at)? {
            Some(Some(time)) => Ok(time),
            Some(None) => Err(DbErr::Type(format!("column {at}: unexpected NULL"))),
            None => decoded(row, at),
        }
    }
}

impl FromColumn for Option<DateTime<Utc>> {
    fn from_column(row: &QueryResult, at: usize) -> Result<Self, DbErr> {
        match postgres_timestamp(row, at)? {
            Some(time) => Ok(time),
            None => decoded(row, at),
        }
    }
}

/// The timestamp at `at` of a PostgreSQL row in binary form (`Some(None)` for NULL);
/// `None` when `row` is not such a row or the column not such a value.
fn postgres_timestamp(
    row: &QueryResult,
    at: usize,
) -> Result<Option<Option<DateTime<Utc>>>, DbErr> {
    use sea_orm::sqlx::postgres::PgValueFormat;
    use sea_orm::sqlx::{TypeInfo, ValueRef};
    let Some(row) = row.try_as_pg_row() else {
        return Ok(None);
    };
    let value = row
        .try_get_raw(at)
        .map_err(|error| DbErr::Type(format!("column {at}: {error}")))?;
    if value.is_null() {
        return Ok(Some(None));
    }
    if value.format() != PgValueFormat::Binary
        || !matches!(value.type_info().name(), "TIMESTAMPTZ" | "TIMESTAMP")
    {
        return Ok(None);
    }
    let bytes: [u8; 8] = value
        .as_bytes()
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| DbErr::Type(format!("column {at}: a timestamp is not 8 bytes")))?;
    from_postgres_micros(i64::from_be_bytes(bytes))
        .map(|time| Some(Some(time)))
        .ok_or_else(|| DbErr::Type(format!("column {at}: timestamp out of range")))
}

/// The time `micros` microseconds after 2000-01-01 00:00 UTC, PostgreSQL's epoch; `None`
/// out of chrono's range (PostgreSQL's `infinity` among others).
fn from_postgres_micros(micros: i64) -> Option<DateTime<Utc>> {
    /// 2000-01-01 00:00 UTC in microseconds since 1970-01-01.
    const POSTGRES_EPOCH: i64 = 946_684_800_000_000;
    DateTime::from_timestamp_micros(micros.checked_add(POSTGRES_EPOCH)?)
}

/// sqlx's decoding of the column at `at` of `row`.
fn decoded<T>(row: &QueryResult, at: usize) -> Result<T, DbErr>
where
    T: TryGetable
        + Type<Postgres>
        + for<'r> Decode<'r, Postgres>
        + Type<Sqlite>
        + for<'r> Decode<'r, Sqlite>,
{
    let decoded = if let Some(row) = row.try_as_pg_row() {
        get(row, at)
    } else if let Some(row) = row.try_as_sqlite_row() {
        get(row, at)
    } else {
        return row.try_get_by_index(at);
    };
    decoded.map_err(|error| DbErr::Type(format!("column {at}: {error}")))
}

/// [`column`] on one backend's row: type-checked in debug builds only.
fn get<'r, R, T>(row: &'r R, at: usize) -> Result<T, sea_orm::sqlx::Error>
where
    R: Row,
    usize: sea_orm::sqlx::ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    if cfg!(debug_assertions) {
        row.try_get(at)
    } else {
        row.try_get_unchecked(at)
    }
}

/// Implements [`Positional`] for each model from its fields in column order.
macro_rules! positional {
    ($($model:ty { $($field:ident),* $(,)? })*) => {$(
        impl Positional for $model {
            const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            fn from_columns(row: &QueryResult, from: usize) -> Result<Self, DbErr> {
                let mut at = from;
                $(
                    let $field = column(row, at)?;
                    at += 1;
                )*
                debug_assert_eq!(at - from, Self::FIELDS.len());
                Ok(Self { $($field),* })
            }
        }
    )*};
}

positional! {
    agent::Model { id, handle, display_name, role, team, queues, active, created_at, kind }
    attachment::Model {
        id, ticket_id, kind, file_name, size_bytes, content, purge_after, created_at,
        wrapped_key, external_id,
    }
    customer::Model {
        id, account_status, plan, customer_since, region, preferred_language, full_name,
        email, phone, street, city, postal_code, country, date_of_birth, email_index,
        phone_index, external_id,
    }
    invoice::Model { id, customer_id, number, amount_cents, currency, status, issued_at, paid_at }
    message::Model { id, ticket_id, author_kind, author_agent_id, body, created_at, external_id }
    payment_method::Model {
        id, customer_id, brand, last4, exp_month, exp_year, billing_street, billing_city,
        billing_postal_code, billing_country,
    }
    ticket::Model {
        id, customer_id, team, topic, status, subject, channel, assignee_id, created_at,
        resolved_at, external_id,
    }
    TicketSummaryRow { id, customer_id, topic, status, subject, created_at, resolved_at }
    ChatMessageRow { id, ticket_id, author_kind, body, created_at }
}

/// A message as a chat history shows it: five of its seven columns (not the agent who
/// wrote it, nor the id of the channel's copy). A supervisor's page reads about 1 600.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessageRow {
    /// The message's id (its body is sealed to it).
    pub id: i32,
    /// Its ticket.
    pub ticket_id: i32,
    /// `customer` or `agent`.
    pub author_kind: Word,
    /// The sealed body.
    pub body: Vec<u8>,
    /// When it was written.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A ticket as a list of a customer's tickets shows it: the columns the other-ticket
/// summaries and the identity documents' look-up read, of the eleven a ticket has. A page
/// reads hundreds of these (its customers' other tickets), and the four columns left out
/// (two of them strings) were a third of the decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketSummaryRow {
    /// The ticket's id.
    pub id: i32,
    /// Its customer.
    pub customer_id: i32,
    /// Its topic.
    pub topic: Word,
    /// Its status, as stored.
    pub status: Word,
    /// Its subject.
    pub subject: Arc<str>,
    /// When it was opened.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it was resolved, if it was.
    pub resolved_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<ticket::Model> for TicketSummaryRow {
    fn from(t: ticket::Model) -> TicketSummaryRow {
        TicketSummaryRow {
            id: t.id,
            customer_id: t.customer_id,
            topic: Word::new(&t.topic),
            status: Word::new(&t.status),
            subject: t.subject.into(),
            created_at: t.created_at,
            resolved_at: t.resolved_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{EntityTrait, IdenStatic, Iterable};

    fn columns<E: EntityTrait>() -> Vec<&'static str> {
        E::Column::iter().map(|c| c.as_str()).collect()
    }

    #[test]
    fn every_positional_model_lists_its_entitys_columns_in_order() {
        assert_eq!(agent::Model::FIELDS, columns::<agent::Entity>());
        assert_eq!(attachment::Model::FIELDS, columns::<attachment::Entity>());
        assert_eq!(customer::Model::FIELDS, columns::<customer::Entity>());
        assert_eq!(invoice::Model::FIELDS, columns::<invoice::Entity>());
        assert_eq!(message::Model::FIELDS, columns::<message::Entity>());
        assert_eq!(
            payment_method::Model::FIELDS,
            columns::<payment_method::Entity>()
        );
        assert_eq!(ticket::Model::FIELDS, columns::<ticket::Entity>());
    }

    proptest::proptest! {
        /// A PostgreSQL timestamp is read as sqlx reads it: its epoch plus the
        /// microseconds as a duration.
        #[test]
        fn postgres_timestamps_are_read_as_sqlx_reads_them(
            micros in -60_000_000_000_000_000i64..250_000_000_000_000_000,
        ) {
            let epoch = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap();
            let sqlx = (epoch + chrono::TimeDelta::microseconds(micros)).and_utc();
            proptest::prop_assert_eq!(from_postgres_micros(micros), Some(sqlx));
        }
    }

    /// PostgreSQL's `infinity` is out of range, not a panic.
    #[test]
    fn an_infinite_postgres_timestamp_is_an_error() {
        assert_eq!(from_postgres_micros(i64::MAX), None);
        assert_eq!(from_postgres_micros(i64::MIN), None);
    }

    /// A word read again on the same thread is the text kept the first time, and a thread
    /// that has kept as many words as it keeps still reads new ones whole.
    #[test]
    fn words_are_shared_and_never_wrong() {
        let first = Word::new("shipping");
        let again = Word::new(&String::from("shipping"));
        assert!(Arc::ptr_eq(&first.shared(), &again.shared()));
        for n in 0..WORDS_KEPT + 8 {
            assert_eq!(&*Word::new(&format!("topic_{n}")), format!("topic_{n}"));
        }
        assert_eq!(&*Word::new("shipping"), "shipping");
        assert!(Arc::ptr_eq(
            &Word::new("shipping").shared(),
            &first.shared()
        ));
    }

    /// A row read from some of a table's columns names only columns it has (the loaders
    /// select them by these names).
    #[test]
    fn a_row_of_some_columns_reads_columns_its_table_has() {
        let tickets = columns::<ticket::Entity>();
        for field in TicketSummaryRow::FIELDS {
            assert!(tickets.contains(field), "{field}");
        }
        let messages = columns::<message::Entity>();
        for field in ChatMessageRow::FIELDS {
            assert!(messages.contains(field), "{field}");
        }
    }
}
