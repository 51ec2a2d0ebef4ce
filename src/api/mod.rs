//! The GraphQL layer: thin adapters, one file per feature, that parse arguments into typed
//! values, call the feature's service (or the disclosure gate), and map errors; and the
//! schema that merges them, built apart from the transport.

pub mod agents;
pub mod audit;
pub mod consent;
pub mod customers;
pub mod flat;
pub mod inputs;
pub mod intake;
pub mod node;
pub mod pages;
pub mod privacy;
pub mod reveal;
pub mod shape;
pub mod tickets;
pub mod verification;

use async_graphql::{EmptySubscription, MergedObject, Schema};

use crate::limits::QueryLimits;
use agents::{AgentMutation, AgentQuery};
use audit::AuditQuery;
use consent::ConsentMutation;
use intake::IntakeMutation;
use node::NodeQuery;
use privacy::{PrivacyMutation, PrivacyQuery};
use reveal::{RevealMutation, RevealQuery};
use tickets::{ContactLookupQuery, TicketMutation, TicketQuery};
use verification::VerificationMutation;

/// The query root.
#[derive(MergedObject, Default)]
pub struct Query(
    NodeQuery,
    AgentQuery,
    TicketQuery,
    ContactLookupQuery,
    RevealQuery,
    AuditQuery,
    PrivacyQuery,
);

/// The mutation root. Every mutation is nullable: when one fails, its key is `null` and
/// the error names its path, while the other mutations of the same document (which run in
/// order, a failure not stopping the next) report their own outcomes.
#[derive(MergedObject, Default)]
pub struct Mutation(
    RevealMutation,
    TicketMutation,
    ConsentMutation,
    VerificationMutation,
    PrivacyMutation,
    IntakeMutation,
    AgentMutation,
);

/// The global id of the object of GraphQL type `kind` with `key` (see [`crate::ids`]).
pub(crate) fn gid(kind: &str, key: impl crate::ids::Key) -> async_graphql::ID {
    async_graphql::ID(crate::ids::global(kind, key))
}

/// A global id, an `ID!` in the schema, encoded only when a response selects it and then
/// straight into the response: the ids of a page's ticket summaries and chat messages
/// (about two thousand) were each a `String` made, copied into the response and dropped,
/// and one of a summary's two ids is seldom selected.
#[derive(Clone, Copy)]
pub struct LazyId<K> {
    kind: &'static str,
    key: K,
}

impl<K> LazyId<K> {
    /// The global id of the object of GraphQL type `kind` with `key`.
    pub fn new(kind: &'static str, key: K) -> LazyId<K> {
        LazyId { kind, key }
    }
}

impl<K: crate::ids::Key + Send + Sync> async_graphql::OutputType for LazyId<K> {
    fn type_name() -> std::borrow::Cow<'static, str> {
        <async_graphql::ID as async_graphql::OutputType>::type_name()
    }

    fn create_type_info(registry: &mut async_graphql::registry::Registry) -> String {
        <async_graphql::ID as async_graphql::OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        _ctx: &async_graphql::ContextSelectionSet<'_>,
        _field: &async_graphql::Positioned<async_graphql::parser::types::Field>,
    ) -> async_graphql::ServerResult<async_graphql::Value> {
        Ok(async_graphql::Value::String(crate::ids::global(
            self.kind, &self.key,
        )))
    }
}

impl<K: crate::ids::Key + Send + Sync> flat::FlatValue for LazyId<K> {
    fn flat<'d>(
        &self,
        _: &flat::Walk<'d>,
        _: &[&'d async_graphql::parser::types::SelectionSet],
        out: &mut Vec<u8>,
    ) {
        // Base64url needs no JSON escaping.
        out.push(b'"');
        crate::ids::write_global(self.kind, &self.key, out);
        out.push(b'"');
    }
}

/// Runs a mutation and makes its result nullable. Every mutation field is nullable, as
/// GitHub's and Shopify's are: mutations of one document run one after the other and a
/// failed one does not stop the next, so each must report its own outcome (a failure is
/// `null` at its key with the error naming its path) instead of nulling all of `data`,
/// which would hide the ones that succeeded.
pub(crate) async fn nullable<T>(
    mutation: impl std::future::Future<Output = crate::error::ApiResult<T>>,
) -> crate::error::ApiResult<Option<T>> {
    mutation.await.map(Some)
}

/// needtoknow's schema.
pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema's SDL as `needtoknow schema` prints it and `schema.graphql` holds it: with
/// `@specifiedBy` on custom scalars, as introspection reports them.
pub fn sdl() -> String {
    build_schema().sdl_with_options(async_graphql::SDLExportOptions::new().include_specified_by())
}

/// Builds the schema with default limits, introspection on (what `needtoknow schema`
/// prints).
pub fn build_schema() -> AppSchema {
    build_schema_with(&QueryLimits::default(), true)
}

/// Builds the schema with `limits`; without `introspection`, introspection queries and
/// field suggestions in error messages are off (production).
pub fn build_schema_with(limits: &QueryLimits, introspection: bool) -> AppSchema {
    build(limits, introspection, async_graphql::ValidationMode::Strict)
}

/// The schema of [`build_schema_with`], validating only what depends on the request
/// (limits, fragment cycles): for documents that passed the full validation before, whose
/// variables [`inputs::InputTypes`] checks (`documents.rs` says when).
pub fn build_fast_schema_with(limits: &QueryLimits, introspection: bool) -> AppSchema {
    build(limits, introspection, async_graphql::ValidationMode::Fast)
}

fn build(
    limits: &QueryLimits,
    introspection: bool,
    validation: async_graphql::ValidationMode,
) -> AppSchema {
    // Depth is checked by `crate::limits`, which gives introspection its own allowance.
    let builder = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .validation_mode(validation)
        .limit_complexity(limits.complexity)
        .limit_recursive_depth(limits.recursion)
        .limit_directives(limits.directives);
    if introspection {
        builder.finish()
    } else {
        builder
            .disable_introspection()
            .disable_suggestions()
            .finish()
    }
}
