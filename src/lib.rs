//! needtoknow: a GraphQL backend for customer-support tools that reveals customer data on a
//! need-to-know basis.
//!
//! Map of the crate, from the top layer down (top-level modules import only downwards;
//! `tests/architecture.rs` checks it, and `docs/ARCHITECTURE.md` explains it):
//! - [`startup`] builds and runs the service (shared by `main` and the tests); [`http`] is
//!   the transport, [`graphiql`] the in-browser IDE it serves in dev mode; [`cli`] reads
//!   flags and environment variables, [`config`] layers them over the config file and the
//!   built-in defaults and checks them.
//! - [`api`]: the GraphQL adapters (one file per feature) and the schema.
//! - [`disclosure`] is the one path by which customer data reaches a response: it asks the
//!   policy, consults grants, writes the audit event, and only then hands the field's
//!   renderer the customer's opener.
//! - [`request`]: one request's facts, and the services built from them.
//! - Services: [`tickets`] (visibility in SQL, status changes, contact lookup), [`reveal`]
//!   (the grant workflow and its Redis or in-process store), [`privacy`] (export,
//!   erasure), [`customers`] (masks, verification), [`agents`], [`consent`], [`retention`];
//!   [`loaders`] batch the loads behind every list; [`demo`] and [`seed`] make data.
//! - [`policy`] loads the Oso policies in `policies/` and answers, with cached decisions,
//!   which tickets and audit events an agent may see and how much of each data class and
//!   field they see; it also holds the admin tools (`check`'s vocabulary lint, `diff`,
//!   coverage). [`audit`] is the hash-chained audit trail. [`crypto`] encrypts personal
//!   data at rest; its `Opener` is the only way to decrypt.
//! - [`vocabulary`] declares once the words code and policies share (the field table among
//!   them); [`ids`] the typed ids; [`error`] the errors clients see; [`telemetry`], [`db`] (connecting, backups), [`writer`] (the one path of writes), [`rows`] (rows decoded by position), [`ledger`] (erasures kept outside the database),
//!   [`limits`], [`ratelimit`], [`allowlist`], [`metrics`], [`remembered`] (answers cached
//!   for a moment, forgotten on a change announced through Redis) are infrastructure.

pub mod admin;
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
pub mod documents;
pub mod error;
pub mod graphiql;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod input;
pub mod intake;
pub mod ledger;
pub mod limits;
pub mod loaders;
pub mod metrics;
pub mod policy;
pub mod privacy;
pub mod ratelimit;
pub mod remembered;
pub mod request;
pub mod retention;
pub mod reveal;
pub mod rows;
pub mod seed;
pub mod startup;
pub mod telemetry;
pub mod tickets;
pub mod vocabulary;
pub mod writer;
