//! Values that are complete before the response is built, served in one synchronous pass.
//!
//! async-graphql resolves every field of every object as its own boxed future, polled
//! through a `FuturesUnordered` (an allocation for the future, another for its task, a
//! context and a path node each), and every item of a list likewise. That is the right
//! machinery for fields that wait on something, and pure overhead for a protected value
//! whose level, metadata and items were all decided and rendered by the gate already: a
//! page of 50 tickets with their customers' histories carries about 10 000 such values.
//!
//! A type whose every field is at hand implements [`Flat`]; a resolver returns it wrapped in
//! [`Eager`], which serves the field's whole subtree in one pass over the selection set:
//! each list's selection is planned once (fragments and repeated fields merged, as the
//! specification's CollectFields does) and applied to every item. The schema is unchanged:
//! [`Eager`] registers the wrapped type, whose `SimpleObject` derive still declares it.
//! `@skip` and `@include` were removed from the document before execution; no other
//! directive applies to these fields.
//!
//! The pass writes JSON, not a tree of `Value`s: a page's protected values would otherwise
//! be built as about 10 000 maps and strings, walked once to serialize them and then
//! dropped, and that churn was a large share of a page's CPU. When the request carries
//! [`RawValues`] (the transport adds it, see [`merges_objects`]), [`Eager`] hands the
//! executor the written JSON as a `Value::Binary` and [`write_response`] copies it into the
//! response as it is. Without it (a document that selects an object twice under one key,
//! whose parts async-graphql merges as trees, or a caller executing the schema directly),
//! the JSON is read back into a `Value`.

use std::borrow::Cow;
use std::collections::HashMap;

use async_graphql::parser::types::{
    ExecutableDocument, Field, FragmentDefinition, Selection, SelectionSet,
};

use super::shape::collect_fields;
use async_graphql::{
    registry, Context, ContextBase, ContextSelectionSet, Name, OutputType, Positioned, ScalarType,
    ServerError, ServerResult, Value, ID,
};
use chrono::{DateTime, Utc};
use rustc_hash::FxBuildHasher;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// An object whose fields are all computed: it is served without a future per field.
pub trait Flat: OutputType {
    /// The fields, as their Rust names in `snake_case`; the schema's names are their
    /// camelCase (the derive's rule). A unit test checks that these cover every field the
    /// schema declares for the type.
    const FIELDS: &'static [&'static str];

    /// Writes the value of field `FIELDS[index]` as JSON to `out`; its sub-selections are
    /// `selections` (empty sets for a leaf).
    fn value<'d>(
        &self,
        index: usize,
        walk: &Walk<'d>,
        selections: &[&'d SelectionSet],
        out: &mut Vec<u8>,
    );
}

/// A field's value in response form.
pub trait FlatValue {
    /// Writes this value under `selections` (ignored by leaves) as JSON to `out`.
    fn flat<'d>(&self, walk: &Walk<'d>, selections: &[&'d SelectionSet], out: &mut Vec<u8>);
}

/// Request data (`Request::data`) saying that the response will be written by
/// [`write_response`], so [`Eager`] values may stay written JSON.
pub struct RawValues;

/// The `OutputType` items of a wrapper that serves `T` under `T`'s own GraphQL type, so the
/// schema does not change.
macro_rules! the_type_of_t {
    () => {
        fn type_name() -> Cow<'static, str> {
            T::type_name()
        }

        fn qualified_type_name() -> String {
            T::qualified_type_name()
        }

        fn create_type_info(registry: &mut registry::Registry) -> String {
            T::create_type_info(registry)
        }
    };
}

/// A value served by [`Flat`]: what a resolver returns instead of `T`.
pub struct Eager<T>(pub T);

impl<T: Flat> OutputType for Eager<T> {
    the_type_of_t!();

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let walk = Walk::of(ctx);
        let mut out = Vec::with_capacity(128);
        walk.object(&self.0, &[&ctx.item.node], &mut out);
        written(ctx, out)
    }
}

impl<T: Flat> FlatValue for Eager<T> {
    fn flat<'d>(&self, walk: &Walk<'d>, selections: &[&'d SelectionSet], out: &mut Vec<u8>) {
        walk.object(&self.0, selections, out);
    }
}

/// `out`, the JSON a one-pass value was written as, handed to the executor: as it is when
/// the request carries [`RawValues`], read back into a `Value` otherwise.
fn written(ctx: &ContextSelectionSet<'_>, out: Vec<u8>) -> ServerResult<Value> {
    if ctx.data_opt::<RawValues>().is_some() {
        return Ok(Value::Binary(out.into()));
    }
    serde_json::from_slice(&out).map_err(|error| {
        tracing::error!(%error, "a one-pass value did not read back");
        ServerError::new("internal error", Some(ctx.item.pos))
    })
}

/// An object whose fields wait on something (the gate, the loaders), so that [`Flat`]
/// cannot serve it, but whose values are written in one pass all the same: its selected
/// fields' resolvers run side by side inside one future and each writes its value as
/// JSON. async-graphql would give every field a boxed future of its own, a path node, a
/// slot in a `FuturesUnordered` and an entry in an `IndexMap`, about 700 of each for a
/// page's customers.
pub trait Gather: OutputType {
    /// Writes the value of field `ctx.item` (its context, whose path errors take) under
    /// `selections` as JSON.
    fn field<'a>(
        &'a self,
        ctx: &'a Context<'a>,
        walk: &'a Walk<'a>,
        selections: &'a [&'a SelectionSet],
    ) -> impl Future<Output = Result<Vec<u8>, Failed>> + Send + 'a;
}

/// A value served by [`Gather`]: what a resolver returns instead of `T`. The schema is
/// unchanged, as with [`Eager`]; a field that fails is `null` with its error at its path,
/// as async-graphql would answer it, and fails the whole object where it is non-null.
pub struct Gathered<T>(pub T);

impl<T: Gather + Sync> OutputType for Gathered<T> {
    the_type_of_t!();

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let out = gather(&self.0, ctx, &[&ctx.item.node]).await?;
        written(ctx, out)
    }
}

/// Writes `item` under `sets` as JSON; `ctx` is the context of the field it is the value
/// of (for paths and errors). `Err` when a non-null field failed: the object is then null,
/// as the specification has it, and the error goes to whoever holds the object.
pub async fn gather<T: Gather + Sync, C: Sync>(
    item: &T,
    ctx: &ContextBase<'_, C>,
    sets: &[&SelectionSet],
) -> ServerResult<Vec<u8>> {
    let walk = Walk::of(ctx);
    let name = T::type_name();
    let types = &ctx.schema_env.registry.types;
    // Fragments on the type itself or on an interface or union it belongs to apply.
    let applies = |condition: &str| {
        condition == name
            || types
                .get(condition)
                .is_some_and(|t| t.is_possible_type(&name))
    };
    let grouped = collect_fields(sets, walk.fragments, &applies, &|_| true);
    let values = futures_util::future::join_all(grouped.iter().map(|(_, fields)| {
        let walk = &walk;
        async move {
            let first = fields[0];
            let field_ctx = ctx.with_field(first);
            if first.node.name.node == "__typename" {
                let mut out = Vec::new();
                string(&mut out, &item.introspection_type_name());
                return Ok(out);
            }
            let sets: Vec<&SelectionSet> =
                fields.iter().map(|f| &f.node.selection_set.node).collect();
            item.field(&field_ctx, walk, &sets)
                .await
                .map_err(|error| match error {
                    Failed::Here(error) => {
                        field_ctx.set_error_path(error.into_server_error(first.pos))
                    }
                    Failed::Below(error) => error,
                })
        }
    }))
    .await;
    // Sized for the whole object (keys are plain names, written as they are, and `null`
    // is what a failed field takes), so that it is not copied as it grows.
    let size = grouped
        .iter()
        .zip(&values)
        .map(|((key, _), value)| key.len() + 4 + value.as_ref().map_or(4, Vec::len))
        .sum::<usize>();
    let mut out = Vec::with_capacity(size + 2);
    out.push(b'{');
    for (n, ((response_key, fields), value)) in grouped.iter().zip(values).enumerate() {
        if n > 0 {
            out.push(b',');
        }
        key(&mut out, response_key);
        match value {
            Ok(json) => out.extend_from_slice(&json),
            Err(error) => {
                let non_null = types
                    .get(name.as_ref())
                    .and_then(|t| t.field_by_name(fields[0].node.name.node.as_str()))
                    .is_some_and(|f| f.ty.ends_with('!'));
                if non_null {
                    return Err(error);
                }
                ctx.add_error(error);
                out.extend_from_slice(b"null");
            }
        }
    }
    out.push(b'}');
    Ok(out)
}

/// How a [`Gather`] field failed.
pub enum Failed {
    /// Its resolver failed: the error is this field's.
    Here(async_graphql::Error),
    /// A non-null field of the object it is failed, with its own path.
    Below(ServerError),
}

impl<E: Into<async_graphql::Error>> From<E> for Failed {
    fn from(error: E) -> Failed {
        Failed::Here(error.into())
    }
}

/// One pass over a document's selections: what it needs to expand fragment spreads, and
/// the request's [`Plans`] when it has them.
pub struct Walk<'d> {
    fragments: &'d HashMap<Name, Positioned<FragmentDefinition>>,
    plans: Option<&'d Plans>,
}

/// Request data (`Request::data`, added by the transport): how each selection set of the
/// document that holds plain fields only (no fragment, no response key twice) maps onto
/// the fields of each [`Flat`] type it was met with.
///
/// A page plans the same few selections hundreds of times: every protected value of
/// every customer (`fullName { access reveal value }` for 50 customers) is an object of
/// its own. Planned from scratch each time (fragments merged, names matched, slots
/// allocated), that was about 6 % of a frontline page's instructions; looked up, it is a
/// hash and a reference count. The document does not change while the request runs, and
/// every set walked is one of its own (nothing builds a selection set while executing),
/// so a set's address names it; the cache lives and dies with the request.
#[derive(Default)]
pub struct Plans(Mutex<HashMap<PlanKey, Option<Indices>, FxBuildHasher>>);

/// Which plan: where the type's [`Flat::FIELDS`] are, how many, and where the set is.
type PlanKey = (usize, usize, usize);

/// The plan of a set of plain fields: each field's index in [`Flat::FIELDS`], in order;
/// `None` for `__typename`.
type Indices = Arc<[Option<usize>]>;

impl<'d> Walk<'d> {
    /// The walk of the document `ctx` executes.
    fn of<C>(ctx: &'d ContextBase<'_, C>) -> Walk<'d> {
        Walk {
            fragments: &ctx.query_env.fragments,
            plans: ctx.data_opt::<Plans>(),
        }
    }

    /// For a `T` under `selections` when they are one set of plain fields: the index in
    /// [`Flat::FIELDS`] of each of its fields in order (`None` for `__typename`), as
    /// [`Walk::plan`] would have them. `None` for any other selection, planned each time.
    fn simple<T: Flat>(&self, selections: &[&'d SelectionSet]) -> Option<Indices> {
        let (plans, [set]) = (self.plans?, selections) else {
            return None;
        };
        // `T::FIELDS` (where it is and how long) stands for `T`: types whose field lists
        // are one constant share their plans, which are then the same.
        let key = (
            T::FIELDS.as_ptr() as usize,
            T::FIELDS.len(),
            *set as *const SelectionSet as usize,
        );
        // A poisoned lock only means another thread panicked mid-insert of a whole entry.
        let mut plans = plans.0.lock().unwrap_or_else(|p| p.into_inner());
        plans
            .entry(key)
            .or_insert_with(|| simple_plan::<T>(set))
            .clone()
    }
}

/// [`Walk::simple`]'s plan of `set` for a `T`, worked out.
fn simple_plan<T: Flat>(set: &SelectionSet) -> Option<Indices> {
    let mut indices = Vec::with_capacity(set.items.len());
    for (n, selection) in set.items.iter().enumerate() {
        let Selection::Field(field) = &selection.node else {
            return None;
        };
        let key = &field.node.response_key().node;
        let repeated = set.items[..n].iter().any(|earlier| {
            matches!(&earlier.node, Selection::Field(f) if &f.node.response_key().node == key)
        });
        if repeated {
            return None;
        }
        let name = field.node.name.node.as_str();
        indices.push((name != "__typename").then(|| field_index::<T>(name)));
    }
    Some(indices.into())
}

/// The index in [`Flat::FIELDS`] of the schema's field `name` of a `T`.
fn field_index<T: Flat>(name: &str) -> usize {
    T::FIELDS
        .iter()
        .position(|rust| camel_case_of(rust, name))
        // Validation admits only the schema's fields, and the unit test keeps FIELDS
        // complete; past both, the key is served as null.
        .unwrap_or(usize::MAX)
}

/// One response key of an object and how to fill it.
struct Slot<'d> {
    key: &'d str,
    /// The field's index in [`Flat::FIELDS`]; `None` for `__typename`.
    index: Option<usize>,
    /// Every selection set under this key (a field selected twice merges them).
    selections: Vec<&'d SelectionSet>,
}

impl<'d> Walk<'d> {
    /// Writes `item` under `selections`.
    pub fn object<T: Flat>(&self, item: &T, selections: &[&'d SelectionSet], out: &mut Vec<u8>) {
        if let Some(indices) = self.simple::<T>(selections) {
            return self.fill_simple(item, selections[0], &indices, out);
        }
        let plan = self.plan::<T>(selections);
        self.fill(item, &plan, out);
    }

    /// Writes every item of `items` under `selections`, planned once.
    pub fn list<T: Flat>(&self, items: &[T], selections: &[&'d SelectionSet], out: &mut Vec<u8>) {
        out.push(b'[');
        if let Some(indices) = self.simple::<T>(selections) {
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                self.fill_simple(item, selections[0], &indices, out);
            }
        } else {
            let plan = self.plan::<T>(selections);
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                self.fill(item, &plan, out);
            }
        }
        out.push(b']');
    }

    /// [`Walk::fill`] for a set of plain fields whose indices [`Walk::simple`] gave.
    fn fill_simple<T: Flat>(
        &self,
        item: &T,
        set: &'d SelectionSet,
        indices: &[Option<usize>],
        out: &mut Vec<u8>,
    ) {
        out.push(b'{');
        let fields = set.items.iter().filter_map(|s| match &s.node {
            Selection::Field(field) => Some(field),
            _ => None,
        });
        for (n, (field, index)) in fields.zip(indices).enumerate() {
            if n > 0 {
                out.push(b',');
            }
            key(out, field.node.response_key().node.as_str());
            match *index {
                Some(index) => item.value(index, self, &[&field.node.selection_set.node], out),
                None => string(out, &item.introspection_type_name()),
            }
        }
        out.push(b'}');
    }

    fn fill<T: Flat>(&self, item: &T, plan: &[Slot<'d>], out: &mut Vec<u8>) {
        out.push(b'{');
        for (n, slot) in plan.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            key(out, slot.key);
            match slot.index {
                Some(index) => item.value(index, self, &slot.selections, out),
                None => string(out, &item.introspection_type_name()),
            }
        }
        out.push(b'}');
    }

    /// The response keys of a `T` under `selections`, in selection order. `@skip` and
    /// `@include` are gone from the document by now, and a `T` is an object type that
    /// implements no interface, so only fragments on `T` itself apply.
    fn plan<T: Flat>(&self, selections: &[&'d SelectionSet]) -> Vec<Slot<'d>> {
        let type_name = T::type_name();
        let grouped = collect_fields(
            selections,
            self.fragments,
            &|condition| condition == type_name,
            &|_| true,
        );
        grouped
            .into_iter()
            .map(|(_, fields)| {
                let name = fields[0].node.name.node.as_str();
                Slot {
                    key: fields[0].node.response_key().node.as_str(),
                    index: (name != "__typename").then(|| field_index::<T>(name)),
                    selections: fields.iter().map(|f| &f.node.selection_set.node).collect(),
                }
            })
            .collect()
    }
}

/// Whether `camel` is the camelCase of the `snake_case` name `snake` (`exp_month`,
/// `expMonth`), the way async-graphql's derives name fields: the first letter after each
/// `_` upper-cased, the `_` dropped. Compared byte by byte (every list of every customer
/// plans its fields with it).
fn camel_case_of(snake: &str, camel: &str) -> bool {
    let mut camel = camel.bytes();
    let mut upper = false;
    for byte in snake.bytes() {
        if byte == b'_' {
            upper = true;
            continue;
        }
        let expected = if upper {
            byte.to_ascii_uppercase()
        } else {
            byte
        };
        upper = false;
        if camel.next() != Some(expected) {
            return false;
        }
    }
    camel.next().is_none()
}

/// Writes a response key and its colon (`"fullName":`). A key is a GraphQL name (letters,
/// digits and `_`; the parser admits nothing else), which JSON never escapes.
fn key(out: &mut Vec<u8>, name: &str) {
    out.reserve(name.len() + 3);
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Writes `text` as a JSON string.
///
/// Most strings of a response (names, subjects, ids, timestamps, enum values) hold nothing
/// JSON must escape. serde_json looks every byte up in its escape table, which was 5 % of
/// a page's instructions; [`needs_escape`] looks at eight bytes at a time, and a string
/// with anything to escape is still written by serde_json.
fn string(out: &mut Vec<u8>, text: &str) {
    use serde::Serializer;
    if needs_escape(text.as_bytes()) {
        // Writing to a `Vec` cannot fail.
        let _ = serde_json::Serializer::new(&mut *out).serialize_str(text);
    } else {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// Whether `bytes` hold a byte a JSON string must escape: a control character (below
/// 0x20), `"` or `\`.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Whether a byte of `word` is below `n` (n ≤ 0x80); exact, no false positives.
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS != 0;
    let zero = |word: u64| below(word, 1);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(word);
        if below(word, 0x20)
            || zero(word ^ (ONES * u64::from(b'"')))
            || zero(word ^ (ONES * u64::from(b'\\')))
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Writes `n` as a JSON number.
fn number(out: &mut Vec<u8>, n: i64) {
    use serde::Serializer;
    // Writing to a `Vec` cannot fail.
    let _ = serde_json::Serializer::new(&mut *out).serialize_i64(n);
}

impl<T: FlatValue> FlatValue for Option<T> {
    fn flat<'d>(&self, walk: &Walk<'d>, selections: &[&'d SelectionSet], out: &mut Vec<u8>) {
        match self {
            Some(value) => value.flat(walk, selections, out),
            None => out.extend_from_slice(b"null"),
        }
    }
}

impl<T: Flat> FlatValue for Vec<T> {
    fn flat<'d>(&self, walk: &Walk<'d>, selections: &[&'d SelectionSet], out: &mut Vec<u8>) {
        walk.list(self, selections, out);
    }
}

impl<T: Flat> FlatValue for Arc<[T]> {
    fn flat<'d>(&self, walk: &Walk<'d>, selections: &[&'d SelectionSet], out: &mut Vec<u8>) {
        walk.list(self, selections, out);
    }
}

impl FlatValue for String {
    fn flat<'d>(&self, _: &Walk<'d>, _: &[&'d SelectionSet], out: &mut Vec<u8>) {
        string(out, self);
    }
}

impl FlatValue for Arc<str> {
    fn flat<'d>(&self, _: &Walk<'d>, _: &[&'d SelectionSet], out: &mut Vec<u8>) {
        string(out, self);
    }
}

impl FlatValue for str {
    fn flat<'d>(&self, _: &Walk<'d>, _: &[&'d SelectionSet], out: &mut Vec<u8>) {
        string(out, self);
    }
}

impl FlatValue for bool {
    fn flat<'d>(&self, _: &Walk<'d>, _: &[&'d SelectionSet], out: &mut Vec<u8>) {
        out.extend_from_slice(if *self { b"true" } else { b"false" });
    }
}

impl FlatValue for ID {
    fn flat<'d>(&self, _: &Walk<'d>, _: &[&'d SelectionSet], out: &mut Vec<u8>) {
        string(out, &self.0);
    }
}

impl FlatValue for i32 {
    fn flat<'d>(&self, _: &Walk<'d>, _: &[&'d SelectionSet], out: &mut Vec<u8>) {
        number(out, i64::from(*self));
    }
}

impl FlatValue for i64 {
    fn flat<'d>(&self, _: &Walk<'d>, _: &[&'d SelectionSet], out: &mut Vec<u8>) {
        number(out, *self);
    }
}

impl FlatValue for DateTime<Utc> {
    fn flat<'d>(&self, _: &Walk<'d>, _: &[&'d SelectionSet], out: &mut Vec<u8>) {
        timestamp(out, self);
    }
}

/// Writes `time` as the `DateTime` scalar renders it (chrono's `to_rfc3339`: fractional
/// seconds in 3, 6 or 9 digits as far as they go, then `+00:00`; a unit test holds the
/// two together), without the `String` the scalar allocates: a page of ticket histories
/// has about a thousand timestamps. Years outside 0–9999 and leap seconds take the
/// scalar's own path.
fn timestamp(out: &mut Vec<u8>, time: &DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let naive = time.naive_utc();
    let year = naive.year();
    let nanos = naive.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        match ScalarType::to_value(time) {
            Value::String(text) => string(out, &text),
            other => write_value(out, &other),
        }
        return;
    }
    let two = |out: &mut Vec<u8>, n: u32| {
        out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8])
    };
    let year = year.unsigned_abs();
    out.push(b'"');
    two(out, year / 100);
    two(out, year % 100);
    out.push(b'-');
    two(out, naive.month());
    out.push(b'-');
    two(out, naive.day());
    out.push(b'T');
    two(out, naive.hour());
    out.push(b':');
    two(out, naive.minute());
    out.push(b':');
    two(out, naive.second());
    let (digits, mut fraction) = match nanos {
        0 => (0, 0),
        n if n % 1_000_000 == 0 => (3, n / 1_000_000),
        n if n % 1_000 == 0 => (6, n / 1_000),
        n => (9, n),
    };
    if digits > 0 {
        let mut text = [b'0'; 9];
        for at in (0..digits).rev() {
            text[at] = b'0' + (fraction % 10) as u8;
            fraction /= 10;
        }
        out.push(b'.');
        out.extend_from_slice(&text[..digits]);
    }
    out.extend_from_slice(b"+00:00\"");
}

/// [`FlatValue`] for enums, rendered as their GraphQL names.
macro_rules! flat_enums {
    ($($enum:ty),* $(,)?) => {$(
        impl FlatValue for $enum {
            fn flat<'d>(&self, _: &Walk<'d>, _: &[&'d SelectionSet], out: &mut Vec<u8>) {
                // The name as `enum_value` finds it, without the `Value` it would allocate.
                match <$enum as async_graphql::resolver_utils::EnumType>::items()
                    .iter()
                    .find(|item| item.value == *self)
                {
                    Some(item) => string(out, item.name),
                    None => out.extend_from_slice(b"null"),
                }
            }
        }
    )*};
}

flat_enums!(
    crate::policy::Access,
    crate::policy::RevealOption,
    crate::policy::DataClass,
    crate::vocabulary::TicketStatus,
);

/// Writes `value` as JSON, as serde would, except that a `Value::Binary` is JSON an
/// [`Eager`] value wrote already and is copied as it is.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Boolean(true) => out.extend_from_slice(b"true"),
        Value::Boolean(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => {
            // Writing to a `Vec` cannot fail.
            let _ =
                serde::Serialize::serialize(number, &mut serde_json::Serializer::new(&mut *out));
        }
        Value::String(text) => string(out, text),
        Value::Enum(name) => string(out, name),
        Value::Binary(json) => out.extend_from_slice(json),
        Value::List(items) => {
            out.push(b'[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (n, (key, item)) in map.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                string(out, key);
                out.push(b':');
                write_value(out, item);
            }
            out.push(b'}');
        }
    }
}

/// About how many bytes [`write_value`] writes for `value`: exact for written JSON, which
/// is nearly all of a large response, and an estimate for the rest (escapes are not
/// counted, numbers are taken as five bytes).
fn written_size(value: &Value) -> usize {
    match value {
        Value::Binary(json) => json.len(),
        Value::String(text) => text.len() + 2,
        Value::Enum(name) => name.len() + 2,
        Value::List(items) => {
            items
                .iter()
                .map(|item| written_size(item) + 1)
                .sum::<usize>()
                + 2
        }
        Value::Object(map) => {
            map.iter()
                .map(|(key, item)| key.len() + 4 + written_size(item))
                .sum::<usize>()
                + 2
        }
        Value::Null | Value::Boolean(_) | Value::Number(_) => 5,
    }
}

/// `response` as JSON, as its serde form, with the [`Eager`] values a request with
/// [`RawValues`] left written copied as they are.
pub fn write_response(response: &async_graphql::Response) -> Vec<u8> {
    // Sized for the data up front: a page is a few hundred kilobytes, and growing to that
    // copied it about twice over.
    let mut out = Vec::with_capacity(written_size(&response.data) + 1024);
    out.extend_from_slice(b"{\"data\":");
    write_value(&mut out, &response.data);
    if !response.extensions.is_empty() {
        out.extend_from_slice(b",\"extensions\":");
        // Writing to a `Vec` cannot fail, and these values hold no written JSON.
        let _ = serde_json::to_writer(&mut out, &response.extensions);
    }
    if !response.errors.is_empty() {
        out.extend_from_slice(b",\"errors\":");
        let _ = serde_json::to_writer(&mut out, &response.errors);
    }
    out.push(b'}');
    out
}

/// Whether `document` selects some field with a selection set twice under one response
/// key (fragments expanded; type conditions and `@skip`/`@include` ignored, so the answer
/// errs towards yes). async-graphql merges the values of such a key as trees, so the
/// transport leaves out [`RawValues`] for such a document.
pub fn merges_objects(document: &ExecutableDocument) -> bool {
    fn merges<'d>(
        sets: &[&'d SelectionSet],
        fragments: &'d HashMap<Name, Positioned<FragmentDefinition>>,
        depth: usize,
    ) -> bool {
        // Validation refuses fragment cycles, and the limits bound depth far below this.
        if depth > 64 {
            return true;
        }
        collect_fields(sets, fragments, &|_| true, &|_| true)
            .iter()
            .any(|(_, fields)| {
                let inner: Vec<&SelectionSet> = fields
                    .iter()
                    .map(|f| &f.node.selection_set.node)
                    .filter(|set| !set.items.is_empty())
                    .collect();
                !inner.is_empty() && (fields.len() > 1 || merges(&inner, fragments, depth + 1))
            })
    }
    document
        .operations
        .iter()
        .any(|(_, op)| merges(&[&op.node.selection_set.node], &document.fragments, 0))
}

/// [`Flat`] (and [`FlatValue`]) for an object type, from its fields in declaration order.
macro_rules! flat_object {
    ($(@[$($generics:tt)*])? $ty:ty { $($field:ident),* $(,)? } $(where $($bounds:tt)*)?) => {
        impl$(<$($generics)*>)? $crate::api::flat::Flat for $ty $(where $($bounds)*)? {
            const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            fn value<'d>(
                &self,
                index: usize,
                walk: &$crate::api::flat::Walk<'d>,
                selections: &[&'d async_graphql::parser::types::SelectionSet],
                out: &mut Vec<u8>,
            ) {
                let mut at = 0usize;
                $(
                    if at == index {
                        return $crate::api::flat::FlatValue::flat(&self.$field, walk, selections, out);
                    }
                    at += 1;
                )*
                let _ = at;
                out.extend_from_slice(b"null");
            }
        }

        impl$(<$($generics)*>)? $crate::api::flat::FlatValue for $ty $(where $($bounds)*)? {
            fn flat<'d>(
                &self,
                walk: &$crate::api::flat::Walk<'d>,
                selections: &[&'d async_graphql::parser::types::SelectionSet],
                out: &mut Vec<u8>,
            ) {
                walk.object(self, selections, out);
            }
        }
    };
}

pub(crate) use flat_object;

flat_object!(crate::disclosure::HandOff { role, label });
flat_object!(crate::disclosure::summary::AccessSummary {
    classes,
    fields,
    sentence
});
flat_object!(crate::disclosure::summary::ClassAccess {
    data_class,
    access,
    reveal,
    hand_off,
    uniform
});
flat_object!(crate::disclosure::summary::FieldAccess {
    field,
    data_class,
    access,
    reveal,
    field_rule,
    hand_off
});

#[cfg(test)]
mod tests {
    use super::{
        camel_case_of, key, needs_escape, string, timestamp, write_value, Flat, FlatValue, Walk,
    };
    use crate::api::customers::{
        ChatMessage, IdentityDocument, Invoice, PaymentMethod, Protected, TicketSummary,
    };
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    use chrono::DateTime;
    use std::collections::HashMap;

    /// Enums are written as their GraphQL names, as the executor writes them.
    #[test]
    fn enums_are_written_as_the_executor_writes_them() {
        use crate::policy::{Access, RevealOption};
        let walk = Walk {
            fragments: &HashMap::new(),
            plans: None,
        };
        let mut flat = Vec::new();
        let mut executor = Vec::new();
        for access in [Access::Plain, Access::Masked, Access::Hidden] {
            access.flat(&walk, &[], &mut flat);
            write_value(
                &mut executor,
                &async_graphql::resolver_utils::enum_value(access),
            );
        }
        RevealOption::None.flat(&walk, &[], &mut flat);
        let none = async_graphql::resolver_utils::enum_value(RevealOption::None);
        write_value(&mut executor, &none);
        assert_eq!(
            String::from_utf8(flat).unwrap(),
            "\"PLAIN\"\"MASKED\"\"HIDDEN\"\"NONE\""
        );
        assert_eq!(
            String::from_utf8(executor).unwrap(),
            "\"PLAIN\"\"MASKED\"\"HIDDEN\"\"NONE\""
        );
    }

    proptest::proptest! {
        /// Timestamps of every fractional precision, and years outside 0–9999, are written
        /// as the `DateTime` scalar writes them.
        #[test]
        fn timestamps_are_written_as_the_scalar_writes_them(
            seconds in -70_000_000_000i64..300_000_000_000,
            nanos in 0u32..1_000_000_000,
            granularity in 0usize..4,
        ) {
            let nanos = [0, nanos / 1_000_000 * 1_000_000, nanos / 1_000 * 1_000, nanos][granularity];
            let time = DateTime::from_timestamp(seconds, nanos).unwrap();
            let mut out = Vec::new();
            timestamp(&mut out, &time);
            proptest::prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&time.to_rfc3339()).unwrap()
            );
        }
    }

    /// A selection of plain fields, planned once per request and then looked up, is
    /// written as a selection planned afresh is; any other selection (repeated keys,
    /// fragments) is planned afresh every time.
    #[test]
    fn a_plan_looked_up_writes_what_a_fresh_plan_writes() {
        use crate::policy::{Access, DataClass, RevealOption};
        use async_graphql::parser::types::{DocumentOperations, Selection};
        let value = Protected::<String> {
            value: Some("Robin S.".into()),
            access: Access::Masked,
            reveal: RevealOption::WithReason,
            grant_expires_at: None,
            data_class: DataClass::Name,
            hand_off: std::sync::Arc::new([]),
        };
        let document = async_graphql::parser::parse_query(
            "{ a { access reveal value } b { v: value __typename access dataClass } \
               c { value value } d { ...F access } e { handOff { role } } } \
             fragment F on ProtectedString { reveal }",
        )
        .unwrap();
        let DocumentOperations::Single(operation) = &document.operations else {
            panic!("one operation")
        };
        let plans = super::Plans::default();
        let fresh = Walk {
            fragments: &document.fragments,
            plans: None,
        };
        let cached = Walk {
            fragments: &document.fragments,
            plans: Some(&plans),
        };
        for selection in &operation.node.selection_set.node.items {
            let Selection::Field(field) = &selection.node else {
                panic!("fields only")
            };
            let set = &field.node.selection_set.node;
            let mut expected = Vec::new();
            fresh.object(&value, &[set], &mut expected);
            for round in 0..2 {
                let mut out = Vec::new();
                cached.object(&value, &[set], &mut out);
                assert_eq!(out, expected, "{} round {round}", field.node.name.node);
            }
        }
        // Six sets (`handOff { role }` is one), four of plain fields only.
        let planned = plans.0.lock().unwrap();
        assert_eq!(planned.len(), 6);
        assert_eq!(planned.values().filter(|p| p.is_some()).count(), 4);
    }

    /// A response key is written as serde_json writes the name, then a colon.
    #[test]
    fn keys_are_written_as_serde_json_writes_them_with_a_colon() {
        for name in ["id", "fullName", "_private", "a1", "__typename"] {
            let mut out = Vec::new();
            key(&mut out, name);
            assert_eq!(
                out,
                format!("{}:", serde_json::to_string(name).unwrap()).into_bytes()
            );
        }
    }

    /// Every string is written exactly as serde_json writes it, whether or not it holds
    /// something to escape, at every position within the eight-byte words.
    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let specials = [
            "\"", "\\", "\n", "\u{1}", "\u{1f}", "\t", "\u{7f}", " ", "é", "€", "😀", "!", "#",
            "[", "]", "~", "\u{80}",
        ];
        for prefix in 0..17 {
            for special in specials {
                let text = format!("{}{special}{}", "a".repeat(prefix), "b".repeat(prefix % 5));
                let mut out = Vec::new();
                string(&mut out, &text);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    serde_json::to_string(&text).unwrap(),
                    "{text:?}"
                );
                let escaped = serde_json::to_string(&text).unwrap() != format!("\"{text}\"");
                assert_eq!(needs_escape(text.as_bytes()), escaped, "{text:?}");
            }
        }
        for byte in 0u8..=0x7f {
            // In an eight-byte word, next to a multi-byte character, and in the remainder.
            for text in [
                format!("abc{}défgh", byte as char),
                format!("abcdefgh{}ijk", byte as char),
            ] {
                let escaped = serde_json::to_string(&text).unwrap() != format!("\"{text}\"");
                assert_eq!(needs_escape(text.as_bytes()), escaped, "byte {byte:#x}");
            }
        }
    }

    /// The schema's fields of the object type `T` registers.
    fn schema_fields<T: Flat>() -> Vec<String> {
        let sdl = crate::api::sdl();
        let document = async_graphql::parser::parse_schema(&sdl).expect("the SDL parses");
        document
            .definitions
            .into_iter()
            .find_map(|definition| match definition {
                TypeSystemDefinition::Type(ty) if ty.node.name.node.as_str() == T::type_name() => {
                    match ty.node.kind {
                        TypeKind::Object(object) => Some(
                            object
                                .fields
                                .into_iter()
                                .map(|f| f.node.name.node.to_string())
                                .collect(),
                        ),
                        _ => None,
                    }
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{} is an object type of the schema", T::type_name()))
    }

    fn serves_every_field<T: Flat>() {
        let declared = schema_fields::<T>();
        for name in &declared {
            assert!(
                T::FIELDS.iter().any(|rust| camel_case_of(rust, name)),
                "{}.{name} is in the schema but not in its Flat::FIELDS",
                T::type_name()
            );
        }
        assert_eq!(declared.len(), T::FIELDS.len(), "{}", T::type_name());
    }

    /// A field added to one of these types must be served by the flat path too, or a
    /// client asking for it would get null.
    #[test]
    fn every_flat_type_serves_every_field_the_schema_declares() {
        serves_every_field::<crate::disclosure::HandOff>();
        serves_every_field::<crate::disclosure::summary::AccessSummary>();
        serves_every_field::<crate::disclosure::summary::ClassAccess>();
        serves_every_field::<crate::disclosure::summary::FieldAccess>();
        serves_every_field::<crate::api::tickets::Assignee>();
        serves_every_field::<crate::api::tickets::Message>();
        serves_every_field::<crate::api::tickets::HandOffTarget>();
        serves_every_field::<ChatMessage>();
        serves_every_field::<IdentityDocument>();
        serves_every_field::<Invoice>();
        serves_every_field::<PaymentMethod>();
        serves_every_field::<TicketSummary>();
        serves_every_field::<Protected<String>>();
        serves_every_field::<Protected<Vec<ChatMessage>>>();
        serves_every_field::<Protected<Vec<IdentityDocument>>>();
        serves_every_field::<Protected<Vec<Invoice>>>();
        serves_every_field::<Protected<Vec<PaymentMethod>>>();
        serves_every_field::<Protected<Vec<TicketSummary>>>();
    }

    #[test]
    fn values_are_written_as_serde_writes_them_and_written_json_is_copied() {
        use async_graphql::{Name, Value};
        let value = Value::from_json(serde_json::json!({
            "text": "quote \" backslash \\ newline \n tab \t control \u{1} é ✓",
            "numbers": [0, -7, 9_007_199_254_740_993_i64, 1.5, -0.25],
            "flags": [true, false, null],
            "nested": { "empty": {}, "list": [] },
        }))
        .unwrap();
        let mut out = Vec::new();
        super::write_value(&mut out, &value);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(&value).unwrap()
        );

        let mut out = Vec::new();
        super::write_value(&mut out, &Value::Enum(Name::new("MASKED")));
        assert_eq!(out, b"\"MASKED\"");

        let written = Value::Binary(br#"{"value":"r***@example.com"}"#.to_vec().into());
        let mut map = async_graphql::indexmap::IndexMap::new();
        map.insert(Name::new("email"), written);
        let mut out = Vec::new();
        super::write_value(&mut out, &Value::Object(map));
        assert_eq!(out, br#"{"email":{"value":"r***@example.com"}}"#);
    }

    #[test]
    fn a_response_is_written_in_its_serde_form() {
        let mut response = async_graphql::Response::new(
            async_graphql::Value::from_json(serde_json::json!({ "me": { "handle": "frontline" } }))
                .unwrap(),
        );
        response
            .errors
            .push(async_graphql::ServerError::new("no", None));
        response
            .extensions
            .insert("cost".into(), async_graphql::Value::from(3));
        let written = super::write_response(&response);
        assert_eq!(
            String::from_utf8(written).unwrap(),
            serde_json::to_string(&response).unwrap()
        );
        let data_only = async_graphql::Response::new(async_graphql::Value::Null);
        assert_eq!(super::write_response(&data_only), br#"{"data":null}"#);
    }

    /// Only documents that select an object twice under one key (where async-graphql
    /// merges trees) are built as trees throughout.
    #[test]
    fn documents_that_select_an_object_twice_under_one_key_are_found() {
        let merges = |query: &str| {
            super::merges_objects(&async_graphql::parser::parse_query(query).unwrap())
        };
        assert!(!merges("{ me { handle } ticket(id: 1) { id subject } }"));
        assert!(
            !merges("{ me { handle handle id } }"),
            "leaves merge as they are"
        );
        assert!(merges("{ me { handle } me { id } }"));
        assert!(merges(
            "{ t: ticket(id: 1) { customer { email { value } email { access } } } }"
        ));
        assert!(merges(
            "{ ticket(id: 1) { customer { email { value } ...F } } } \
             fragment F on Customer { email { access } }"
        ));
        assert!(merges(
            "{ ticket(id: 1) { ... on Ticket { customer { id } } customer { id } } }"
        ));
        assert!(!merges(
            "{ ticket(id: 1) { ...F } } fragment F on Ticket { customer { email { value } } }"
        ));
    }

    #[test]
    fn rust_names_match_the_schema_names_the_derive_gives_them() {
        assert!(camel_case_of("body", "body"));
        assert!(camel_case_of("exp_month", "expMonth"));
        assert!(camel_case_of("last4", "last4"));
        assert!(camel_case_of("grant_expires_at", "grantExpiresAt"));
        assert!(!camel_case_of("exp_month", "exp_month"));
        assert!(!camel_case_of("exp_month", "expMonthly"));
        assert!(!camel_case_of("body", "bod"));
    }
}
