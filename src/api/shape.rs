//! Responses in the shape the GraphQL specification gives them, which async-graphql 7 does
//! not quite produce:
//!
//! - **Keys in selection order** (spec §7.2.2). async-graphql inserts an object's fields as
//!   their futures complete (upstream issue #612), so two identical requests could give
//!   different bytes, which breaks response caches, snapshot tests and diffs.
//! - **Errors null their field, or the nearest nullable parent** (§6.4.4). async-graphql
//!   leaves the key of a failed field out, even when the field is non-null, so a typed
//!   client finds a key missing instead of the `null` the schema promised.
//!
//! [`Shapes::complete`] walks an executed response beside the operation's selection sets
//! and the schema's types (read from the SDL once, at start-up) and fixes both. An object
//! whose keys already come in order is kept as it is, so the usual cost is one comparison
//! per key.

use std::collections::HashMap;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{
    BaseType, Directive, ExecutableDocument, Field, FragmentDefinition, OperationDefinition,
    OperationType, Selection, SelectionSet, Type, TypeKind, TypeSystemDefinition,
};
use async_graphql::{Name, Positioned, Value, Variables};
use smallvec::{smallvec, SmallVec};

/// What the walk needs to know of one named type.
enum Kind {
    /// An object type: its fields' types and the abstract types it belongs to.
    Object {
        fields: HashMap<Name, Type>,
        abstracts: Vec<Name>,
    },
    /// An interface or a union: the object types it may be.
    Abstract {
        fields: HashMap<Name, Type>,
        possible: Vec<Name>,
    },
}

/// The schema's composite types, for completing responses.
pub struct Shapes {
    types: HashMap<Name, Kind>,
    query: Name,
    mutation: Name,
    /// Types whose values are always built in selection order and never hold a failed
    /// field (see [`Shapes::served_whole`]): the walk keeps them as they are.
    whole: std::collections::HashSet<Name>,
}

/// The fields of one object selected under one response key, in selection order. Nearly
/// always one field: it is kept inline, since a page's objects and protected values are
/// grouped hundreds of times per request and each key would otherwise take an allocation.
pub(crate) type Grouped<'d> = Vec<(&'d str, SmallVec<[&'d Positioned<Field>; 1]>)>;

/// The specification's CollectFields: the fields of `sets` that apply to one object,
/// grouped by response key in the order they are first selected, fragments expanded.
/// `applies` says whether a fragment's type condition holds for the object, `included`
/// whether a selection's `@skip`/`@include` keep it. The response-shape walk and the
/// one-pass values of `api::flat` both group fields through here.
pub(crate) fn collect_fields<'d>(
    sets: &[&'d SelectionSet],
    fragments: &'d HashMap<Name, Positioned<FragmentDefinition>>,
    applies: &dyn Fn(&str) -> bool,
    included: &dyn Fn(&[Positioned<Directive>]) -> bool,
) -> Grouped<'d> {
    let collect = Collect {
        fragments,
        applies,
        included,
    };
    let mut grouped: Grouped<'d> = Vec::with_capacity(sets.iter().map(|set| set.items.len()).sum());
    for set in sets {
        collect.set(set, &mut grouped, 0);
    }
    grouped
}

/// What [`collect_fields`] needs while it recurses.
struct Collect<'d, 'f> {
    fragments: &'d HashMap<Name, Positioned<FragmentDefinition>>,
    applies: &'f dyn Fn(&str) -> bool,
    included: &'f dyn Fn(&[Positioned<Directive>]) -> bool,
}

impl<'d> Collect<'d, '_> {
    fn set(&self, set: &'d SelectionSet, grouped: &mut Grouped<'d>, depth: usize) {
        // Validation refuses fragment cycles; the bound only keeps a bug from recursing
        // forever.
        if depth > 64 {
            return;
        }
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    if !(self.included)(&field.node.directives) {
                        continue;
                    }
                    let key = field.node.response_key().node.as_str();
                    match grouped.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, fields)) => fields.push(field),
                        None => grouped.push((key, smallvec![field])),
                    }
                }
                Selection::InlineFragment(fragment) => {
                    let condition = fragment.node.type_condition.as_ref();
                    if (self.included)(&fragment.node.directives)
                        && condition.is_none_or(|c| (self.applies)(&c.node.on.node))
                    {
                        self.set(&fragment.node.selection_set.node, grouped, depth + 1);
                    }
                }
                Selection::FragmentSpread(spread) => {
                    let Some(fragment) = self.fragments.get(&spread.node.fragment_name.node) else {
                        continue;
                    };
                    if (self.included)(&spread.node.directives)
                        && (self.applies)(&fragment.node.type_condition.node.on.node)
                    {
                        self.set(&fragment.node.selection_set.node, grouped, depth + 1);
                    }
                }
            }
        }
    }
}

/// One walk's facts: the document and the request's variables.
struct Walk<'d> {
    document: &'d ExecutableDocument,
    operation: &'d OperationDefinition,
    variables: &'d Variables,
}

impl Shapes {
    /// The shapes of the schema printed as `sdl` (plus the introspection types).
    pub fn from_sdl(sdl: &str) -> anyhow::Result<Shapes> {
        let mut types: HashMap<Name, Kind> = HashMap::new();
        let mut query = Name::new("Query");
        let mut mutation = Name::new("Mutation");
        let mut members: Vec<(Name, Name)> = Vec::new();
        for source in [sdl, INTROSPECTION_SDL] {
            let document = async_graphql::parser::parse_schema(source)?;
            for definition in document.definitions {
                match definition {
                    TypeSystemDefinition::Schema(schema) => {
                        if let Some(name) = schema.node.query {
                            query = name.node;
                        }
                        if let Some(name) = schema.node.mutation {
                            mutation = name.node;
                        }
                    }
                    TypeSystemDefinition::Type(ty) => {
                        let name = ty.node.name.node.clone();
                        let fields = |list: Vec<
                            Positioned<async_graphql::parser::types::FieldDefinition>,
                        >| {
                            list.into_iter()
                                .map(|f| (f.node.name.node, f.node.ty.node))
                                .collect::<HashMap<_, _>>()
                        };
                        let kind = match ty.node.kind {
                            TypeKind::Object(object) => {
                                for interface in &object.implements {
                                    members.push((interface.node.clone(), name.clone()));
                                }
                                Kind::Object {
                                    fields: fields(object.fields),
                                    abstracts: object
                                        .implements
                                        .into_iter()
                                        .map(|i| i.node)
                                        .collect(),
                                }
                            }
                            TypeKind::Interface(interface) => Kind::Abstract {
                                fields: fields(interface.fields),
                                possible: Vec::new(),
                            },
                            TypeKind::Union(union) => {
                                for member in &union.members {
                                    members.push((name.clone(), member.node.clone()));
                                }
                                Kind::Abstract {
                                    fields: HashMap::new(),
                                    possible: Vec::new(),
                                }
                            }
                            _ => continue,
                        };
                        types.insert(name, kind);
                    }
                    TypeSystemDefinition::Directive(_) => {}
                }
            }
        }
        for (abstract_type, object) in members {
            if let Some(Kind::Object { abstracts, .. }) = types.get_mut(&object) {
                if !abstracts.contains(&abstract_type) {
                    abstracts.push(abstract_type.clone());
                }
            }
            if let Some(Kind::Abstract { possible, .. }) = types.get_mut(&abstract_type) {
                possible.push(object);
            }
        }
        // The introspection entry points, which the printed SDL leaves out too.
        if let Some(Kind::Object { fields, .. }) = types.get_mut(&query) {
            for (name, ty) in [("__schema", "__Schema!"), ("__type", "__Type")] {
                fields.extend(Type::new(ty).map(|ty| (Name::new(name), ty)));
            }
        }
        Ok(Shapes {
            types,
            query,
            mutation,
            whole: Default::default(),
        })
    }

    /// Declares the object types whose values are built whole, in selection order and
    /// without failing fields (`api::flat` serves them in one pass), so the walk does not
    /// descend into them when they are selected once: on a page of tickets they are most
    /// of the response.
    pub fn served_whole(mut self, types: impl IntoIterator<Item = String>) -> Shapes {
        self.whole.extend(types.into_iter().map(Name::new));
        self
    }

    /// `data` of `operation` (of `document`) executed with `variables`, completed: keys in
    /// selection order, failed fields null (or their nearest nullable parent; `data`
    /// itself when a non-null root field failed).
    pub fn complete(
        &self,
        data: Value,
        document: &ExecutableDocument,
        operation: &OperationDefinition,
        variables: &Variables,
    ) -> Value {
        let root = match operation.ty {
            OperationType::Query => &self.query,
            OperationType::Mutation => &self.mutation,
            OperationType::Subscription => return data,
        };
        let walk = Walk {
            document,
            operation,
            variables,
        };
        let map = match data {
            Value::Object(map) => map,
            // Every root field failed: async-graphql answers `null` for the whole object.
            Value::Null => IndexMap::new(),
            other => return other,
        };
        let groups = self.group(root, &[&operation.selection_set.node], &walk);
        self.complete_object(map, root, &groups, &walk)
            .unwrap_or(Value::Null)
    }

    /// The selected fields of an object of type `object`, grouped by response key in the
    /// order they are first selected (the spec's CollectFields).
    fn group<'d>(&self, object: &str, sets: &[&'d SelectionSet], walk: &Walk<'d>) -> Grouped<'d> {
        collect_fields(
            sets,
            &walk.document.fragments,
            &|condition| self.applies(condition, object),
            &|directives| walk.included(directives),
        )
    }

    /// Whether a fragment on `condition` applies to an object of type `object`.
    fn applies(&self, condition: &str, object: &str) -> bool {
        condition == object
            || matches!(self.types.get(object), Some(Kind::Object { abstracts, .. })
                if abstracts.iter().any(|a| a.as_str() == condition))
    }

    /// The type of field `name` of type `owner`.
    fn field_type(&self, owner: &str, name: &str) -> Option<&Type> {
        match self.types.get(owner)? {
            Kind::Object { fields, .. } | Kind::Abstract { fields, .. } => fields.get(name),
        }
    }

    /// An object completed against its grouped selection; `None` when a non-null field of
    /// it failed, so the object itself becomes null.
    fn complete_object(
        &self,
        mut map: IndexMap<Name, Value>,
        object: &str,
        groups: &Grouped<'_>,
        walk: &Walk<'_>,
    ) -> Option<Value> {
        let in_order =
            map.len() == groups.len() && map.keys().zip(groups).all(|(k, (g, _))| k.as_str() == *g);
        if in_order {
            for ((_, value), (_, fields)) in map.iter_mut().zip(groups) {
                let taken = std::mem::take(value);
                *value = self.complete_field(Some(taken), object, fields, walk)?;
            }
            return Some(Value::Object(map));
        }
        let mut ordered = IndexMap::with_capacity(groups.len().max(map.len()));
        for (key, fields) in groups {
            let value = map.shift_remove(*key);
            let value = self.complete_field(value, object, fields, walk)?;
            ordered.insert(Name::new(key), value);
        }
        // Nothing should be left; if something is, it is served rather than lost.
        ordered.extend(map);
        Some(Value::Object(ordered))
    }

    /// One field's value (`None`: the field failed and its key is missing).
    fn complete_field(
        &self,
        value: Option<Value>,
        object: &str,
        fields: &[&Positioned<Field>],
        walk: &Walk<'_>,
    ) -> Option<Value> {
        let name = fields[0].node.name.node.as_str();
        let Some(ty) = self.field_type(object, name) else {
            // `__typename`, or a field this walk does not know: as it came.
            return Some(value.unwrap_or(Value::Null));
        };
        let Some(value) = value else {
            return ty.nullable.then_some(Value::Null);
        };
        let sets: Vec<&SelectionSet> = fields.iter().map(|f| &f.node.selection_set.node).collect();
        self.complete_value(value, ty, &sets, walk)
    }

    /// A value of type `ty`; `None` when it is null where `ty` is non-null.
    fn complete_value(
        &self,
        value: Value,
        ty: &Type,
        sets: &[&SelectionSet],
        walk: &Walk<'_>,
    ) -> Option<Value> {
        let completed = match (value, &ty.base) {
            (Value::Null, _) => None,
            (Value::List(items), BaseType::List(item_type)) => {
                // Items of one object type share their grouped selection.
                let shared = match &item_type.base {
                    BaseType::Named(name)
                        if matches!(self.types.get(name), Some(Kind::Object { .. })) =>
                    {
                        Some((name, self.group(name, sets, walk)))
                    }
                    _ => None,
                };
                items
                    .into_iter()
                    .map(|item| match (&shared, item) {
                        (Some((name, groups)), Value::Object(map)) => self
                            .complete_object(map, name, groups, walk)
                            .or_else(|| item_type.nullable.then_some(Value::Null)),
                        (_, item) => self.complete_value(item, item_type, sets, walk),
                    })
                    .collect::<Option<Vec<_>>>()
                    .map(Value::List)
            }
            // A one-pass value left as the JSON it was written as (`api::flat::RawValues`):
            // whole by construction, and only left so when no key selects it twice.
            (Value::Binary(json), _) => Some(Value::Binary(json)),
            // Selected once, the object came whole from one resolver; selected under one
            // key several times, async-graphql merged the parts as they finished, so the
            // walk puts them in order.
            (Value::Object(map), BaseType::Named(name))
                if sets.len() == 1 && self.whole.contains(name) =>
            {
                Some(Value::Object(map))
            }
            (Value::Object(map), BaseType::Named(name)) => match self.types.get(name) {
                Some(Kind::Object { .. }) => {
                    let groups = self.group(name, sets, walk);
                    self.complete_object(map, name, &groups, walk)
                }
                Some(Kind::Abstract { possible, .. }) => {
                    let object = self.concrete(&map, possible, sets, walk);
                    let groups = self.group(object.unwrap_or(name), sets, walk);
                    self.complete_object(map, object.unwrap_or(name), &groups, walk)
                }
                None => Some(Value::Object(map)),
            },
            (value, _) => Some(value),
        };
        match completed {
            Some(value) => Some(value),
            None => ty.nullable.then_some(Value::Null),
        }
    }

    /// Which of `possible` an object of an interface or union type is: the one whose
    /// selection has every key the object has (the first such, in schema order).
    fn concrete<'s>(
        &self,
        map: &IndexMap<Name, Value>,
        possible: &'s [Name],
        sets: &[&SelectionSet],
        walk: &Walk<'_>,
    ) -> Option<&'s str> {
        if let Some(Value::String(name)) = map.get("__typename") {
            if let Some(found) = possible.iter().find(|p| p.as_str() == name) {
                return Some(found.as_str());
            }
        }
        possible
            .iter()
            .find(|p| {
                let groups = self.group(p, sets, walk);
                map.keys()
                    .all(|k| groups.iter().any(|(g, _)| *g == k.as_str()))
            })
            .map(|p| p.as_str())
    }
}

impl Walk<'_> {
    /// Whether `@skip` and `@include` let a selection through.
    fn included(&self, directives: &[Positioned<Directive>]) -> bool {
        directives.iter().all(|directive| {
            let condition = || {
                let value = directive.node.get_argument("if")?.node.clone();
                match value.into_const_with(|name| self.variable(&name).ok_or(())) {
                    Ok(Value::Boolean(b)) => Some(b),
                    _ => None,
                }
            };
            match directive.node.name.node.as_str() {
                "skip" => condition() != Some(true),
                "include" => condition() != Some(false),
                _ => true,
            }
        })
    }

    /// A variable's value: the request's, or the operation's default.
    fn variable(&self, name: &Name) -> Option<Value> {
        self.variables.get(name).cloned().or_else(|| {
            self.operation
                .variable_definitions
                .iter()
                .find(|d| d.node.name.node == *name)
                .and_then(|d| d.node.default_value.as_ref())
                .map(|v| v.node.clone())
        })
    }
}

/// The introspection types (GraphQL spec, §4.5), which the printed SDL leaves out.
const INTROSPECTION_SDL: &str = r#"
type __Schema { description: String types: [__Type!]! queryType: __Type! mutationType: __Type
  subscriptionType: __Type directives: [__Directive!]! }
type __Type { kind: __TypeKind! name: String description: String specifiedByURL: String
  fields(includeDeprecated: Boolean = false): [__Field!] interfaces: [__Type!]
  possibleTypes: [__Type!] enumValues(includeDeprecated: Boolean = false): [__EnumValue!]
  inputFields(includeDeprecated: Boolean = false): [__InputValue!] ofType: __Type
  isOneOf: Boolean }
type __Field { name: String! description: String args(includeDeprecated: Boolean = false): [__InputValue!]!
  type: __Type! isDeprecated: Boolean! deprecationReason: String }
type __InputValue { name: String! description: String type: __Type! defaultValue: String
  isDeprecated: Boolean! deprecationReason: String }
type __EnumValue { name: String! description: String isDeprecated: Boolean! deprecationReason: String }
type __Directive { name: String! description: String locations: [__DirectiveLocation!]!
  args(includeDeprecated: Boolean = false): [__InputValue!]! isRepeatable: Boolean! }
enum __TypeKind { SCALAR OBJECT INTERFACE UNION ENUM INPUT_OBJECT LIST NON_NULL }
enum __DirectiveLocation { QUERY }
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    const SDL: &str = r#"
        type Query { a: A! b: A maybe: [A!] node: Node }
        type A implements Node { id: ID! x: String! y: String list: [A!]! }
        type B implements Node { id: ID! z: String }
        interface Node { id: ID! }
    "#;

    /// `data` (keys sorted, as `serde_json` keeps them) completed, as response text.
    fn complete(query: &str, data: serde_json::Value) -> String {
        let shapes = Shapes::from_sdl(SDL).unwrap();
        let document = parse_query(query).unwrap();
        let (_, operation) = document.operations.iter().next().unwrap();
        let data = Value::from_json(data).unwrap();
        let done = shapes.complete(data, &document, &operation.node, &Variables::default());
        serde_json::to_string(&done).unwrap()
    }

    #[test]
    fn keys_follow_the_selection_through_fragments() {
        let data = serde_json::json!({ "b": { "y": "2", "x": "1" }, "a": { "x": "1" } });
        let done = complete("{ a { x } b { ...F x } } fragment F on A { y }", data);
        assert_eq!(done, r#"{"a":{"x":"1"},"b":{"y":"2","x":"1"}}"#);
    }

    #[test]
    fn a_failed_nullable_field_is_null_and_a_failed_non_null_field_nulls_its_parent() {
        let done = complete("{ b { x y } }", serde_json::json!({ "b": { "x": "1" } }));
        assert_eq!(done, r#"{"b":{"x":"1","y":null}}"#);
        let done = complete("{ b { x y } }", serde_json::json!({ "b": { "y": "1" } }));
        assert_eq!(done, r#"{"b":null}"#, "x is non-null: b becomes null");
        let done = complete(
            "{ b { x } a { x } }",
            serde_json::json!({ "b": { "x": "1" } }),
        );
        assert_eq!(done, "null", "a is non-null at the root: data is null");
        let done = complete("{ b { x } }", serde_json::Value::Null);
        assert_eq!(done, r#"{"b":null}"#, "every root field failed");
    }

    #[test]
    fn a_failed_item_of_a_non_null_list_nulls_the_list() {
        let done = complete(
            "{ maybe { x } }",
            serde_json::json!({ "maybe": [{ "x": "1" }, {}] }),
        );
        assert_eq!(done, r#"{"maybe":null}"#);
    }

    #[test]
    fn skipped_fields_and_fragments_on_other_types_are_not_expected() {
        let done = complete(
            "query($s: Boolean = true) { b { x @skip(if: $s) y } node { id ... on B { z } ... on A { x } } }",
            serde_json::json!({ "b": { "y": "2" }, "node": { "x": "1", "id": "7" } }),
        );
        assert_eq!(done, r#"{"b":{"y":"2"},"node":{"id":"7","x":"1"}}"#);
    }
}
