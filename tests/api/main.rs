//! Black-box tests of the HTTP API: each spins the real application on port 0 with the
//! demo dataset, against a fresh SQLite file and a fresh PostgreSQL database.

mod agent_admin;
#[path = "../common/mod.rs"]
mod common;
mod conformance;
mod helpers;
mod import;
mod intake;

mod audit;
mod auth;
mod bad_input;
mod consent;
mod encryption;
mod health;
mod hostile;
mod instances;
mod policy_admin;
mod policy_matrix;
mod policy_reload;
mod privacy;
mod ratelimit;
mod retention;
mod reveal;
mod sso;
mod tickets;
mod transport;
mod verification;
mod writes;
