//! Parsed GraphQL documents, kept by their text: a client sends the same few operations
//! over and over, so each is parsed and checked against the limits once, not on every
//! request (parsing was about 5 % of a one-ticket request's CPU).
//!
//! Entries are keyed by the whole document text (never by a hash alone, so no two
//! documents can share an entry) and the cache is bounded by the total text it holds.
//!
//! Each entry also remembers whether the document passed async-graphql's full validation
//! against the schema. Until it has, requests of it run on the strictly validating schema;
//! after, on the one validating in fast mode, which skips the rules that read only the
//! document and the schema (their answer cannot change: the schema is fixed for the
//! process's life). The one rule that reads the request, the variables' values, is kept by
//! `api::inputs` on every request. Full validation was about a fifth of a one-ticket
//! request's instructions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_graphql::parser::types::{ExecutableDocument, OperationDefinition, OperationType};

use crate::limits::QueryLimits;

/// Total document text kept, in bytes (parsed forms take a few times more).
const CAPACITY_BYTES: u64 = 2 * 1024 * 1024;
/// Documents kept at most (an estimate the cache sizes its tables by).
const CAPACITY_DOCUMENTS: usize = 1024;

/// A parsed document and what the limits say of it.
pub struct Parsed {
    /// The document, handed to the executor.
    pub document: ExecutableDocument,
    /// Why the limits refuse it, if they do.
    pub refused: Option<String>,
    /// Whether it selects an object twice under one key ([`crate::api::flat::merges_objects`]):
    /// its response is then built as a tree throughout.
    pub merges_objects: bool,
    /// Whether the document passed the full validation once.
    validated: AtomicBool,
}

impl Parsed {
    /// The operation `name` picks (or the only one), if the document has it.
    pub fn operation(&self, name: Option<&str>) -> Option<&OperationDefinition> {
        let mut operations = self.document.operations.iter();
        match name {
            Some(name) => operations
                .find(|(n, _)| n.is_some_and(|n| n.as_str() == name))
                .map(|(_, op)| &op.node),
            None => {
                let (_, op) = operations.next()?;
                operations.next().is_none().then_some(&op.node)
            }
        }
    }

    /// Whether the document passed async-graphql's full validation before: it may then run
    /// on the schema validating in fast mode.
    pub fn validated(&self) -> bool {
        self.validated.load(Ordering::Relaxed)
    }

    /// Records that the document passed the full validation.
    pub fn mark_validated(&self) {
        self.validated.store(true, Ordering::Relaxed);
    }

    /// The type of the operation `name` picks (or of the only one).
    pub fn operation_type(&self, name: Option<&str>) -> Option<OperationType> {
        self.operation(name).map(|op| op.ty)
    }
}

#[derive(Clone)]
struct ByLength;

impl quick_cache::Weighter<String, Arc<Parsed>> for ByLength {
    fn weight(&self, key: &String, _: &Arc<Parsed>) -> u64 {
        key.len() as u64 + 1
    }
}

/// The service's parsed documents. Cheap to clone.
#[derive(Clone)]
pub struct Documents {
    cache: Arc<quick_cache::sync::Cache<String, Arc<Parsed>, ByLength>>,
    limits: QueryLimits,
}

impl Documents {
    /// An empty cache checking documents against `limits`.
    pub fn new(limits: QueryLimits) -> Documents {
        Documents {
            cache: Arc::new(quick_cache::sync::Cache::with_weighter(
                CAPACITY_DOCUMENTS,
                CAPACITY_BYTES,
                ByLength,
            )),
            limits,
        }
    }

    /// `query` parsed and checked: `Ok(None)` when it does not parse (the executor then
    /// reports the parser's error), `Err` when it is larger than the limit.
    pub fn parse(&self, query: &str) -> Result<Option<Arc<Parsed>>, String> {
        crate::limits::check_size(query, &self.limits)?;
        if let Some(parsed) = self.cache.get(query) {
            return Ok(Some(parsed));
        }
        let Ok(document) = async_graphql::parser::parse_query(query) else {
            return Ok(None);
        };
        let refused = crate::limits::check_document(&document, &self.limits).err();
        let merges_objects = crate::api::flat::merges_objects(&document);
        let parsed = Arc::new(Parsed {
            document,
            refused,
            merges_objects,
            validated: AtomicBool::new(false),
        });
        self.cache.insert(query.to_owned(), parsed.clone());
        Ok(Some(parsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_is_parsed_once_and_its_limits_remembered() {
        let documents = Documents::new(QueryLimits {
            aliases: 1,
            ..QueryLimits::default()
        });
        let first = documents.parse("{ a: me { handle } }").unwrap().unwrap();
        let again = documents.parse("{ a: me { handle } }").unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert!(first.refused.is_none());
        let refused = documents
            .parse("{ a: me { handle } b: me { handle } }")
            .unwrap()
            .unwrap();
        assert!(refused.refused.as_deref().unwrap().contains("aliases"));
        assert!(documents.parse("{ not valid").unwrap().is_none());
        assert_eq!(
            first.operation_type(None),
            Some(OperationType::Query),
            "the only operation"
        );
    }

    #[test]
    fn an_oversized_document_is_refused_before_parsing() {
        let documents = Documents::new(QueryLimits {
            document_bytes: 8,
            ..QueryLimits::default()
        });
        assert!(documents.parse("{ me { handle } }").is_err());
    }
}
