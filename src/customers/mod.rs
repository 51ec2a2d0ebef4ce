//! Customers' personal data on its way out and in: the masks (`mask.rs`) applied after the
//! policy decides, and the card redaction applied before anything is stored.

pub mod mask;
