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

use std::borrow::Cow;
use std::collections::HashMap;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, FragmentDefinition, SelectionSet};

use super::shape::collect_fields;
use async_graphql::{
    registry, ContextSelectionSet, Name, OutputType, Positioned, ScalarType, ServerResult, Value,
    ID,
};
use chrono::{DateTime, Utc};

/// An object whose fields are all computed: it is served without a future per field.
pub trait Flat: OutputType {
    /// The fields, as their Rust names in `snake_case`; the schema's names are their
    /// camelCase (the derive's rule). A unit test checks that these cover every field the
    /// schema declares for the type.
    const FIELDS: &'static [&'static str];

    /// The value of field `FIELDS[index]`, whose sub-selections are `selections` (empty
    /// sets for a leaf).
    fn value<'d>(&self, index: usize, walk: &Walk<'d>, selections: &[&'d SelectionSet]) -> Value;
}

/// A field's value in response form.
pub trait FlatValue {
    /// This value under `selections` (ignored by leaves).
    fn flat<'d>(&self, walk: &Walk<'d>, selections: &[&'d SelectionSet]) -> Value;
}

/// A value served by [`Flat`]: what a resolver returns instead of `T`.
pub struct Eager<T>(pub T);

impl<T: Flat> OutputType for Eager<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn create_type_info(registry: &mut registry::Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let walk = Walk {
            fragments: &ctx.query_env.fragments,
        };
        Ok(walk.object(&self.0, &[&ctx.item.node]))
    }
}

/// One pass over a document's selections: what it needs to expand fragment spreads.
pub struct Walk<'d> {
    fragments: &'d HashMap<Name, Positioned<FragmentDefinition>>,
}

/// One response key of an object and how to fill it.
struct Slot<'d> {
    key: Name,
    /// The field's index in [`Flat::FIELDS`]; `None` for `__typename`.
    index: Option<usize>,
    /// Every selection set under this key (a field selected twice merges them).
    selections: Vec<&'d SelectionSet>,
}

impl<'d> Walk<'d> {
    /// `item` under `selections`.
    pub fn object<T: Flat>(&self, item: &T, selections: &[&'d SelectionSet]) -> Value {
        let plan = self.plan::<T>(selections);
        self.fill(item, &plan)
    }

    /// Every item of `items` under `selections`, planned once.
    pub fn list<T: Flat>(&self, items: &[T], selections: &[&'d SelectionSet]) -> Value {
        let plan = self.plan::<T>(selections);
        Value::List(items.iter().map(|item| self.fill(item, &plan)).collect())
    }

    fn fill<T: Flat>(&self, item: &T, plan: &[Slot<'d>]) -> Value {
        let mut map = IndexMap::with_capacity(plan.len());
        for slot in plan {
            let value = match slot.index {
                Some(index) => item.value(index, self, &slot.selections),
                None => Value::String(item.introspection_type_name().into_owned()),
            };
            map.insert(slot.key.clone(), value);
        }
        Value::Object(map)
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
                let name = fields[0].name.node.as_str();
                Slot {
                    key: fields[0].response_key().node.clone(),
                    index: (name != "__typename").then(|| {
                        T::FIELDS
                            .iter()
                            .position(|rust| camel_case_of(rust, name))
                            // Validation admits only the schema's fields, and the unit test
                            // keeps FIELDS complete; past both, the key is served as null.
                            .unwrap_or(usize::MAX)
                    }),
                    selections: fields.iter().map(|f| &f.selection_set.node).collect(),
                }
            })
            .collect()
    }
}

/// Whether `camel` is the camelCase of the `snake_case` name `snake` (`exp_month`,
/// `expMonth`), the way async-graphql's derives name fields.
fn camel_case_of(snake: &str, camel: &str) -> bool {
    let mut expected = snake.split('_').enumerate().flat_map(|(i, word)| {
        let mut chars = word.chars();
        let first = chars
            .next()
            .map(|c| if i == 0 { c } else { c.to_ascii_uppercase() });
        first.into_iter().chain(chars)
    });
    let mut given = camel.chars();
    loop {
        match (expected.next(), given.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

impl<T: FlatValue> FlatValue for Option<T> {
    fn flat<'d>(&self, walk: &Walk<'d>, selections: &[&'d SelectionSet]) -> Value {
        match self {
            Some(value) => value.flat(walk, selections),
            None => Value::Null,
        }
    }
}

impl<T: Flat> FlatValue for Vec<T> {
    fn flat<'d>(&self, walk: &Walk<'d>, selections: &[&'d SelectionSet]) -> Value {
        walk.list(self, selections)
    }
}

impl FlatValue for String {
    fn flat<'d>(&self, _: &Walk<'d>, _: &[&'d SelectionSet]) -> Value {
        Value::String(self.clone())
    }
}

impl FlatValue for ID {
    fn flat<'d>(&self, _: &Walk<'d>, _: &[&'d SelectionSet]) -> Value {
        Value::String(self.0.clone())
    }
}

impl FlatValue for i32 {
    fn flat<'d>(&self, _: &Walk<'d>, _: &[&'d SelectionSet]) -> Value {
        Value::Number((*self).into())
    }
}

impl FlatValue for i64 {
    fn flat<'d>(&self, _: &Walk<'d>, _: &[&'d SelectionSet]) -> Value {
        Value::Number((*self).into())
    }
}

impl FlatValue for DateTime<Utc> {
    fn flat<'d>(&self, _: &Walk<'d>, _: &[&'d SelectionSet]) -> Value {
        // The scalar's own rendering, so both paths print timestamps alike.
        ScalarType::to_value(self)
    }
}

/// [`FlatValue`] for enums, rendered as their GraphQL names.
macro_rules! flat_enums {
    ($($enum:ty),* $(,)?) => {$(
        impl FlatValue for $enum {
            fn flat<'d>(&self, _: &Walk<'d>, _: &[&'d SelectionSet]) -> Value {
                async_graphql::resolver_utils::enum_value(*self)
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
            ) -> async_graphql::Value {
                let mut at = 0usize;
                $(
                    if at == index {
                        return $crate::api::flat::FlatValue::flat(&self.$field, walk, selections);
                    }
                    at += 1;
                )*
                let _ = at;
                async_graphql::Value::Null
            }
        }

        impl$(<$($generics)*>)? $crate::api::flat::FlatValue for $ty $(where $($bounds)*)? {
            fn flat<'d>(
                &self,
                walk: &$crate::api::flat::Walk<'d>,
                selections: &[&'d async_graphql::parser::types::SelectionSet],
            ) -> async_graphql::Value {
                walk.object(self, selections)
            }
        }
    };
}

pub(crate) use flat_object;

flat_object!(crate::disclosure::HandOff { role, label });

#[cfg(test)]
mod tests {
    use super::{camel_case_of, Flat};
    use crate::api::customers::{
        ChatMessage, IdentityDocument, Invoice, PaymentMethod, Protected, TicketSummary,
    };
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

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
