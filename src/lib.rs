//! fundledger: the system of record for a fund-agency marketplace's money.
//!
//! # Layout
//!
//! In the order a transfer meets them:
//!
//! - [`http`]: [`http::serve`] accepts connections with explicit header,
//!   body and idle limits; the router has one file per resource;
//!   [`http::extract`] authenticates, checks the body's type, size and
//!   syntax; [`http::rate`] applies per-token rate limits; every error maps
//!   to the API's codes in one place ([`http::error`]); [`http::openapi`]
//!   describes it all.
//! - [`gateway`]: claims the client id ([`gateway::idempotency`]), checks
//!   that accounts and holds exist, plans batches into per-account messages
//!   ([`gateway::transfers`]), routes withdrawals ([`gateway::withdrawals`])
//!   and bank credits ([`gateway::notifications`]).
//! - [`actors`]: one actor per account with work to do ([`actors::account`];
//!   idle accounts are plain data in the [`actors::directory`] until their
//!   next message activates an actor, docs/ACCOUNTS.md) judges with the
//!   pure rules of [`domain`], applies its side, appends the result to the
//!   log ([`actors::log`]) and tells the payee's actor; the registry opens
//!   accounts, the suspense actor holds unmatched credits, the finance
//!   actor ([`actors::finance`]) records reconciliation runs and the
//!   maker-checker decisions on their discrepancies.
//! - `fundledger_wal` (its own crate): group commit, one fdatasync per
//!   group; the gateway answers once the record's lsn is durable.
//! - Bank side: the outbox ([`actors::outbox`]) follows the durable log and
//!   hands every movement, adjustment, return and payout to its bank's
//!   adaptor ([`actors::bank`]), at least once, idempotent at the bank.
//! - [`finance`]: read models built from the durable log (journals, holds,
//!   orders; each bank's days, reconciliation runs and discrepancies in
//!   [`finance::reconciliation`]; the double-entry books of
//!   [`finance::trial_balance`]), receipts and their amounts in words. An
//!   uploaded statement streams past the body buffer into the matcher
//!   ([`http::reconciliations`]).
//! - [`recovery`]: loads the newest valid checkpoint and replays the log
//!   after it into the same state at start-up; [`checkpointer`] writes the
//!   next checkpoint on its own thread from the durable log.
//! - [`console`]: the finance console at `/console/`, server-rendered HTML
//!   for staff, a client of the JSON API in-process (same tokens, same
//!   role checks).
//!
//! [`domain`] holds money, ids, records and the balance rules as pure
//! functions, free of actors and I/O; [`codec`] is the only bincode user;
//! [`limits`] every fixed bound; [`config`] the TOML file; [`allocator`]
//! the allocator's options, set once at start.

pub mod actors;
pub mod allocator;
pub mod app;
pub mod checkpointer;
pub mod cli;
pub mod clock;
pub mod codec;
pub mod config;
pub mod console;
pub mod domain;
pub mod finance;
pub mod gateway;
pub mod http;
pub mod huge_pages;
pub mod json_out;
pub mod limits;
pub mod prefetch;
pub mod recovery;
pub mod threads;
