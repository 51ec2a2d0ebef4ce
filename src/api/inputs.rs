//! A request's variables, checked against the types its operation declares before it runs
//! (the specification's "CoerceVariableValues").
//!
//! async-graphql checks variable values while it validates the whole document against the
//! schema, and it validates on every request: for a one-ticket query that was about a fifth
//! of the service's instructions. Every validation rule but one reads only the document and
//! the schema, so a document that passed once passes again, whatever its variables; the
//! service then runs it in validation's fast mode (see `documents.rs`), and this check
//! keeps the one part that depends on the request: the variables' values. It runs on every
//! request, so a wrong variable gets the same answer the first time and the hundredth.
//!
//! Values of custom scalars (`DateTime`, `JSON`, `Upload`) are not checked here, as
//! async-graphql's validation did not check them either: their resolvers parse them.
//!
//! A variable is checked against the type it declares, where async-graphql checked its
//! value in each place it is used. The two agree because the full validation (which every
//! document passes once) makes each use accept the declared type, except in one case: a
//! nullable variable given `null` and passed where a non-null value with a default is
//! expected (`CreateAgentInput.queues` is one). So a request that gives any variable
//! `null` runs the full validation again (`http.rs`).

use std::collections::{HashMap, HashSet};

use async_graphql::parser::types::{
    BaseType, OperationDefinition, Type, TypeKind, TypeSystemDefinition,
};
use async_graphql::{Name, Value, Variables};

/// Where a value sits in a request's variables (`$input.queues[2]`), written out only
/// when it is reported: most requests pass, and their checks allocate nothing.
#[derive(Clone, Copy)]
enum At<'a> {
    /// The variable itself.
    Variable(&'a Name),
    /// An item of a list.
    Item(&'a At<'a>, usize),
    /// A field of an input object.
    Field(&'a At<'a>, &'a Name),
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Variable(name) => write!(f, "${name}"),
            At::Item(list, n) => write!(f, "{list}[{n}]"),
            At::Field(object, field) => write!(f, "{object}.{field}"),
        }
    }
}

/// What a value of an input type must be.
enum Input {
    Int,
    Float,
    String,
    Boolean,
    Id,
    /// Anything (a custom scalar: checked where it is used).
    Any,
    /// One of these names, as a string.
    Enum(HashSet<Name>),
    /// An object of these fields: name, type, whether it has a default.
    Object(Vec<(Name, Type, bool)>),
}

/// The schema's input types, by name.
pub struct InputTypes {
    types: HashMap<Name, Input>,
}

impl InputTypes {
    /// The input types of the schema `sdl` describes, with GraphQL's built-in scalars.
    pub fn from_sdl(sdl: &str) -> anyhow::Result<InputTypes> {
        let mut types: HashMap<Name, Input> = [
            ("Int", Input::Int),
            ("Float", Input::Float),
            ("String", Input::String),
            ("Boolean", Input::Boolean),
            ("ID", Input::Id),
        ]
        .into_iter()
        .map(|(name, input)| (Name::new(name), input))
        .collect();
        for definition in async_graphql::parser::parse_schema(sdl)?.definitions {
            let TypeSystemDefinition::Type(ty) = definition else {
                continue;
            };
            let name = ty.node.name.node;
            let input = match ty.node.kind {
                TypeKind::Scalar => Input::Any,
                TypeKind::Enum(e) => {
                    Input::Enum(e.values.into_iter().map(|v| v.node.value.node).collect())
                }
                TypeKind::InputObject(object) => Input::Object(
                    object
                        .fields
                        .into_iter()
                        .map(|f| {
                            let field = f.node;
                            (
                                field.name.node,
                                field.ty.node,
                                field.default_value.is_some(),
                            )
                        })
                        .collect(),
                ),
                _ => continue,
            };
            types.insert(name, input);
        }
        Ok(InputTypes { types })
    }

    /// Whether `variables` fit the variables `operation` declares; otherwise what is wrong,
    /// naming the variable and the place in it, never the value.
    pub fn check(
        &self,
        operation: &OperationDefinition,
        variables: &Variables,
    ) -> Result<(), String> {
        for definition in &operation.variable_definitions {
            let definition = &definition.node;
            let name = &definition.name.node;
            let given = variables.get(name).or(definition
                .default_value
                .as_ref()
                .map(|default| &default.node));
            let ty = &definition.var_type.node;
            self.value(ty, given, At::Variable(name))
                .map_err(|problem| format!("variable `${name}` (`{ty}`): {problem}"))?;
        }
        Ok(())
    }

    /// Whether `value` (absent: `None`) is a value of `ty`; `at` names where it sits.
    fn value(&self, ty: &Type, value: Option<&Value>, at: At<'_>) -> Result<(), String> {
        let value = match value {
            None | Some(Value::Null) if ty.nullable => return Ok(()),
            None | Some(Value::Null) => return Err(format!("{at} is required")),
            Some(value) => value,
        };
        match &ty.base {
            BaseType::List(item) => match value {
                Value::List(items) => items
                    .iter()
                    .enumerate()
                    .try_for_each(|(n, v)| self.value(item, Some(v), At::Item(&at, n))),
                // A single value stands for a list of one.
                single => self.value(item, Some(single), at),
            },
            BaseType::Named(name) => self.named(name, value, at),
        }
    }

    fn named(&self, name: &Name, value: &Value, at: At<'_>) -> Result<(), String> {
        let Some(input) = self.types.get(name) else {
            return Err(format!("{at}: `{name}` is not an input type"));
        };
        let fits = match (input, value) {
            (Input::Any, _) => true,
            (Input::Int, Value::Number(n)) => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
            (Input::Float, Value::Number(_)) => true,
            (Input::String, Value::String(_)) => true,
            (Input::Boolean, Value::Boolean(_)) => true,
            (Input::Id, Value::String(_)) => true,
            (Input::Id, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Input::Enum(names), Value::String(s)) => names.contains(s.as_str()),
            (Input::Enum(names), Value::Enum(e)) => names.contains(e),
            (Input::Object(fields), Value::Object(given)) => {
                for key in given.keys() {
                    if !fields.iter().any(|(field, _, _)| field == key) {
                        return Err(format!("{at} has no field `{key}` in `{name}`"));
                    }
                }
                for (field, ty, has_default) in fields {
                    let value = given.get(field);
                    if value.is_none() && *has_default {
                        continue;
                    }
                    self.value(ty, value, At::Field(&at, field))?;
                }
                true
            }
            _ => false,
        };
        if fits {
            Ok(())
        } else {
            Err(format!("{at} is not a `{name}`"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(document: &str, variables: serde_json::Value) -> Result<(), String> {
        let inputs = InputTypes::from_sdl(&crate::api::sdl()).expect("the SDL parses");
        let document = async_graphql::parser::parse_query(document).expect("the query parses");
        let (_, operation) = document.operations.iter().next().expect("one operation");
        inputs.check(&operation.node, &Variables::from_json(variables))
    }

    #[test]
    fn variables_of_the_declared_types_pass() {
        let query = "query ($id: ID!, $first: Int, $status: TicketStatus) { ticket(id: $id) { id } tickets(first: $first, status: $status) { edges { cursor } } }";
        assert_eq!(check(query, json!({ "id": "dGlja2V0OjE" })), Ok(()));
        assert_eq!(
            check(query, json!({ "id": 7, "first": 5, "status": "OPEN" })),
            Ok(())
        );
        assert_eq!(check(query, json!({ "id": "x", "first": null })), Ok(()));
    }

    #[test]
    fn a_wrong_variable_is_named_without_its_value() {
        let query = "query ($id: ID!, $first: Int, $status: TicketStatus) { ticket(id: $id) { id } tickets(first: $first, status: $status) { edges { cursor } } }";
        let missing = check(query, json!({})).unwrap_err();
        assert!(
            missing.contains("`$id`") && missing.contains("required"),
            "{missing}"
        );
        let null = check(query, json!({ "id": null })).unwrap_err();
        assert!(null.contains("required"), "{null}");
        let object = check(query, json!({ "id": { "secret": "robin" } })).unwrap_err();
        assert!(
            object.contains("is not a `ID`") && !object.contains("robin"),
            "{object}"
        );
        let big = check(query, json!({ "id": "x", "first": 3_000_000_000u64 })).unwrap_err();
        assert!(big.contains("`$first`"), "{big}");
        let fraction = check(query, json!({ "id": "x", "first": 1.5 })).unwrap_err();
        assert!(fraction.contains("`$first`"), "{fraction}");
        let status = check(query, json!({ "id": "x", "status": "ESCALATED" })).unwrap_err();
        assert!(status.contains("`TicketStatus`"), "{status}");
    }

    #[test]
    fn input_objects_are_checked_field_by_field() {
        let query = "mutation ($input: PostalAddressInput!) { __typename }";
        let unknown = check(
            query,
            json!({ "input": { "street": "a", "city": "b", "postalCode": "c", "country": "US", "planet": "x" } }),
        )
        .unwrap_err();
        assert!(unknown.contains("no field `planet`"), "{unknown}");
        let missing = check(query, json!({ "input": { "street": "a" } })).unwrap_err();
        assert!(missing.contains("$input."), "{missing}");
    }

    #[test]
    fn a_single_value_stands_for_a_list_and_custom_scalars_are_left_to_their_resolvers() {
        let inputs = InputTypes::from_sdl("scalar DateTime type Query { a: Int }").unwrap();
        let list: Type = Type::new("[Int!]").unwrap();
        let name = Name::new("l");
        let l = At::Variable(&name);
        assert!(inputs.value(&list, Some(&Value::from(3)), l).is_ok());
        assert!(inputs
            .value(
                &list,
                Some(&Value::List(vec![Value::from(1), Value::Null])),
                l
            )
            .unwrap_err()
            .contains("$l[1]"));
        let date: Type = Type::new("DateTime!").unwrap();
        let name = Name::new("d");
        let d = At::Variable(&name);
        assert!(inputs
            .value(&date, Some(&Value::from("yesterday")), d)
            .is_ok());
        assert!(inputs.value(&date, None, d).is_err());
    }
}
