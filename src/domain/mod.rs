//! The ledger's vocabulary and rules as pure data and functions: no
//! actors, no I/O, no clock. Property tests and recovery call these
//! directly.

pub mod account;
pub mod by_account;
pub mod ids;
pub mod keyed_ids;
pub mod money;
pub mod pending;
pub mod record;
pub mod registry;
pub mod suspense;
