//! Customers as agents see them: every field through the disclosure gate, with its mask.

pub mod graphql;
pub mod mask;
pub mod privacy;
pub mod verification;
