//! needtoknow: a GraphQL backend for customer-support tools that reveals customer data on a
//! need-to-know basis.
//!
//! Map of the crate:
//! - [`startup`] builds and runs the service (shared by `main` and the tests); [`config`]
//!   and [`cli`] read settings; [`telemetry`] sets up logs and request ids; [`db`] connects
//!   and migrates; [`http`] is the transport; [`graphql`] the schema; [`error`] the errors
//!   clients see; [`loaders`] the batched loads behind every list.
//! - [`vocabulary`] declares once the words code and policies share: data classes and
//!   their fields, levels, reveal options, scopes, statuses, permissions.
//! - [`policy`] loads the Oso policies in `policies/` and answers, with cached decisions,
//!   which tickets and audit events an agent may see and how much of each data class and
//!   field they see; it also holds the admin tools (`check`'s vocabulary lint, `diff`,
//!   coverage).
//! - [`disclosure`] is the one path by which customer data reaches a response: it asks the
//!   policy, picks the mask, and is where grants and audit events attach.
//! - Features: [`agents`] (tokens, `me`), [`tickets`] (visibility in SQL, `ticket`,
//!   `tickets`), [`customers`] (the `Customer` type and its masks).
//! - [`reveal`] issues, stores (Redis or in-process) and revokes reveal grants.
//! - [`audit`] is the hash-chained audit trail: plaintext views, reveals, `audit verify`.
//! - [`crypto`] encrypts personal data at rest; [`retention`] deletes it on schedule.
//! - [`demo`] seeds the demo dataset; [`seed`] generates benchmark data.

pub mod agents;
pub mod allowlist;
pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod consent;
pub mod crypto;
pub mod customers;
pub mod db;
pub mod demo;
pub mod disclosure;
pub mod error;
pub mod http;
pub mod ids;
pub mod limits;
pub mod loaders;
pub mod metrics;
pub mod policy;
pub mod privacy;
pub mod ratelimit;
pub mod request;
pub mod retention;
pub mod reveal;
pub mod seed;
pub mod startup;
pub mod telemetry;
pub mod tickets;
pub mod vocabulary;
