//! The actors and what they share: account actors (balances), the registry
//! (applications, opening accounts), the suspense actor, the finance actor
//! (reconciliation runs and discrepancies), bank adaptors, the
//! directory that routes to account actors, and the log handle.

pub mod account;
pub mod bank;
pub mod directory;
pub mod finance;
pub mod log;
pub mod outbox;
pub mod registry;
pub mod spawner;
pub mod suspense;
