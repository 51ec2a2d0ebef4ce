//! Limits on what one GraphQL request may ask, checked before anything runs: document size,
//! aliases and root fields here; depth, complexity (list fields weighted by their page
//! size), recursion and directives by async-graphql's validation, configured in
//! [`crate::api::build_schema`].

use async_graphql::parser::types::{Selection, SelectionSet};
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
