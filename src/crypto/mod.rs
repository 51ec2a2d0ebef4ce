//! Encryption at rest: versioned AES-256-GCM-SIV envelopes bound to their table, column and
//! row ([`envelope`]); master keys ([`keys`]); per-customer data keys and field encryption
//! ([`vault`]); blind indexes for exact lookups ([`blind`]).

pub mod blind;
pub mod envelope;
pub mod keys;
pub mod vault;
