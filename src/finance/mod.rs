//! The finance side: read models of the durable log. Never edits balances.

pub mod archive;
pub mod day;
pub mod history;
pub mod receipts;
pub mod reconciliation;
pub mod state;
pub mod trial_balance;
pub mod words;
