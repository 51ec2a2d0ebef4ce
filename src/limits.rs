//! Limits on what one GraphQL request may ask, checked before anything runs: document size,
//! aliases, root fields and depth here; complexity (list fields weighted by their page
//! size), recursion and directives by async-graphql's validation, configured in
//! [`crate::api::build_schema`].
//!
//! Depth is counted here rather than by async-graphql so that introspection (fields under
//! `__schema` and `__type`) has an allowance of its own, [`INTROSPECTION_DEPTH`]: the
//! standard introspection query of graphql-js, which GraphiQL, graphql-codegen and IDE
//! plugins send, nests its type references deeper than a data query needs.

use async_graphql::parser::types::{FragmentDefinition, Selection, SelectionSet};
use async_graphql::Positioned;

/// The limits, each configurable (see README, Configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// Largest query document, in bytes.
    pub document_bytes: usize,
    /// Most aliases in one document.
    pub aliases: usize,
    /// Most fields at the root of an operation.
    pub root_fields: usize,
    /// Deepest selection nesting.
    pub depth: usize,
    /// Highest complexity: one per field, list fields multiplied by their page size.
    pub complexity: usize,
    /// Deepest recursion while parsing.
    pub recursion: usize,
    /// Most directives on one field.
    pub directives: usize,
    /// Largest `first` of a ticket page (at most `tickets::graphql::MAX_PAGE_SIZE`).
    pub page_size: i32,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            document_bytes: 16 * 1024,
            aliases: 30,
            root_fields: 10,
            depth: 12,
            complexity: 20_000,
            recursion: 32,
            directives: 4,
            page_size: 100,
        }
    }
}

/// How deep a selection under `__schema` or `__type` may nest, counted from the root. The
/// standard introspection query of graphql-js 16 and 17 reaches 13.
pub const INTROSPECTION_DEPTH: usize = 20;

/// The deepest nesting under the data root fields of `set`, and under its introspection
/// root fields (a field with no sub-selection is 1 deep), fragments expanded. Counting
/// stops past `bound`, so a fragment cycle (which validation refuses anyway) cannot recurse
/// forever.
fn depth(set: &SelectionSet, fragments: &Fragments, bound: usize) -> (usize, usize) {
    let mut data = 0;
    let mut introspection = 0;
    for item in &set.items {
        let deepest = item_depth(item, fragments, bound, 0);
        let is_introspection = matches!(&item.node, Selection::Field(f)
            if matches!(f.node.name.node.as_str(), "__schema" | "__type"));
        if is_introspection {
            introspection = introspection.max(deepest);
        } else {
            data = data.max(deepest);
        }
    }
    (data, introspection)
}

type Fragments = std::collections::HashMap<async_graphql::Name, Positioned<FragmentDefinition>>;

/// How deep `item` reaches from `level`, fragments expanded, counting stopped past `bound`.
fn item_depth(
    item: &Positioned<Selection>,
    fragments: &Fragments,
    bound: usize,
    level: usize,
) -> usize {
    if level > bound {
        return level;
    }
    let deepest = |set: &SelectionSet, level: usize| {
        set.items
            .iter()
            .map(|item| item_depth(item, fragments, bound, level))
            .max()
            .unwrap_or(level)
    };
    match &item.node {
        Selection::Field(field) => deepest(&field.node.selection_set.node, level + 1),
        Selection::InlineFragment(fragment) => deepest(&fragment.node.selection_set.node, level),
        Selection::FragmentSpread(spread) => fragments
            .get(&spread.node.fragment_name.node)
            .map_or(level, |f| deepest(&f.node.selection_set.node, level)),
    }
}

fn count_aliases(set: &Positioned<SelectionSet>) -> usize {
    set.node
        .items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + count_aliases(&field.node.selection_set)
            }
            Selection::InlineFragment(fragment) => count_aliases(&fragment.node.selection_set),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// The document's size against its limit.
pub fn check_size(query: &str, limits: &QueryLimits) -> Result<(), String> {
    if query.len() > limits.document_bytes {
        return Err(format!(
            "the query document is {} bytes; the limit is {}",
            query.len(),
            limits.document_bytes
        ));
    }
    Ok(())
}

/// A parsed document's aliases and root fields against their limits.
pub fn check_document(
    document: &async_graphql::parser::types::ExecutableDocument,
    limits: &QueryLimits,
) -> Result<(), String> {
    let mut aliases = document
        .fragments
        .values()
        .map(|f| count_aliases(&f.node.selection_set))
        .sum::<usize>();
    for (_, operation) in document.operations.iter() {
        let set = &operation.node.selection_set;
        aliases += count_aliases(set);
        if set.node.items.len() > limits.root_fields {
            return Err(format!(
                "an operation selects {} root fields; the limit is {}",
                set.node.items.len(),
                limits.root_fields
            ));
        }
        let bound = limits.depth.max(INTROSPECTION_DEPTH);
        let (data, introspection) = depth(&set.node, &document.fragments, bound);
        if data > limits.depth {
            return Err(format!(
                "the query is nested {} levels deep; the limit is {}",
                if data > bound {
                    format!("more than {bound}")
                } else {
                    data.to_string()
                },
                limits.depth
            ));
        }
        if introspection > INTROSPECTION_DEPTH {
            return Err(format!(
                "the introspection query is nested {} levels deep; the limit is {INTROSPECTION_DEPTH}",
                if introspection > bound { format!("more than {bound}") } else { introspection.to_string() },
            ));
        }
    }
    if aliases > limits.aliases {
        return Err(format!(
            "the query uses {aliases} aliases; the limit is {}",
            limits.aliases
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Size, then aliases and root fields, as `documents::Documents` applies them; a
    /// document that does not parse passes (the executor reports the parser's error).
    fn check(query: &str, limits: &QueryLimits) -> Result<(), String> {
        check_size(query, limits)?;
        match async_graphql::parser::parse_query(query) {
            Ok(document) => check_document(&document, limits),
            Err(_) => Ok(()),
        }
    }

    #[test]
    fn depth_is_counted_through_fragments_and_names_the_limit() {
        let limits = QueryLimits {
            depth: 3,
            ..QueryLimits::default()
        };
        assert!(check("{ me { queues } }", &limits).is_ok());
        assert!(check("{ a { b { c } } }", &limits).is_ok());
        let refused = check("{ a { ...F } } fragment F on A { b { c { d } } }", &limits);
        assert_eq!(
            refused.unwrap_err(),
            "the query is nested 4 levels deep; the limit is 3"
        );
        let cycle = check("{ a { ...F } } fragment F on A { b { ...F } }", &limits);
        assert!(cycle.unwrap_err().contains("more than"));
    }

    #[test]
    fn introspection_has_its_own_depth_allowance() {
        let limits = QueryLimits {
            depth: 3,
            ..QueryLimits::default()
        };
        let nested = |levels: usize| {
            format!(
                "{{ __schema {{ types {{ {}name{} }} }} }}",
                "ofType { ".repeat(levels),
                " }".repeat(levels)
            )
        };
        assert!(check(&nested(15), &limits).is_ok());
        assert!(check(&nested(19), &limits)
            .unwrap_err()
            .contains("the limit is 20"));
        assert!(
            check(
                "{ me { a { b { c } } } __schema { types { name } } }",
                &limits
            )
            .is_err(),
            "data fields beside introspection keep the data limit"
        );
    }

    #[test]
    fn aliases_and_root_fields_are_counted_through_fragments() {
        let limits = QueryLimits {
            aliases: 2,
            root_fields: 2,
            ..QueryLimits::default()
        };
        assert!(check("{ a: me { handle } b: me { handle } }", &limits).is_ok());
        assert!(check(
            "{ a: me { handle } b: me { handle } c: me { handle } }",
            &limits
        )
        .is_err());
        assert!(check(
            "{ me { ...F } } fragment F on Agent { a: handle b: handle c: handle }",
            &limits
        )
        .is_err());
        assert!(check(
            "{ me { handle } x: me { handle } y: me { handle } }",
            &limits
        )
        .unwrap_err()
        .contains("root fields"));
        assert!(
            check("{ not valid", &limits).is_ok(),
            "parse errors are reported by the executor"
        );
    }
}
