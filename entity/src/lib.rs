//! needtoknow's sea-orm entities: plain data mirrored from `migration/`, with no GraphQL or
//! policy concerns. The service crate decides what of it reaches a response.

pub mod agent;
pub mod api_token;
pub mod attachment;
pub mod audit_event;
pub mod consent;
pub mod customer;
pub mod data_key;
pub mod idempotency_key;
pub mod invoice;
pub mod message;
pub mod meta;
pub mod payment_method;
pub mod reveal_request;
pub mod ticket;

pub use sea_orm;
