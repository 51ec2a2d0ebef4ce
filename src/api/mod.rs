//! The GraphQL layer: thin adapters, one file per feature, that parse arguments into typed
//! values, call the feature's service (or the disclosure gate), and map errors; and the
//! schema that merges them, built apart from the transport.

pub mod agents;
pub mod audit;
pub mod consent;
pub mod customers;
pub mod intake;
pub mod privacy;
pub mod reveal;
pub mod tickets;
pub mod verification;

use async_graphql::{EmptySubscription, MergedObject, Schema};

use crate::limits::QueryLimits;
use agents::{AgentMutation, AgentQuery};
use audit::AuditQuery;
use consent::ConsentMutation;
use intake::IntakeMutation;
use privacy::{PrivacyMutation, PrivacyQuery};
use reveal::{RevealMutation, RevealQuery};
use tickets::{ContactLookupQuery, TicketMutation, TicketQuery};
use verification::VerificationMutation;

/// The query root.
#[derive(MergedObject, Default)]
pub struct Query(
    AgentQuery,
    TicketQuery,
    ContactLookupQuery,
    RevealQuery,
    AuditQuery,
    PrivacyQuery,
);

/// The mutation root.
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

/// needtoknow's schema.
pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema with default limits, introspection on (what `needtoknow schema`
/// prints).
pub fn build_schema() -> AppSchema {
    build_schema_with(&QueryLimits::default(), true)
}

/// Builds the schema with `limits`; without `introspection`, introspection queries and
/// field suggestions in error messages are off (production).
pub fn build_schema_with(limits: &QueryLimits, introspection: bool) -> AppSchema {
    let builder = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(limits.depth)
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
