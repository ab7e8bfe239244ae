//! Between HTTP and the actors: idempotency, existence checks, routing.

pub mod idempotency;
pub mod notifications;
pub mod transfers;
pub mod withdrawals;
