//! One day's money at a glance, for the console's dashboard
//! (`GET /v1/ledger/day`): what came in from banks, what was paid out,
//! and what moved between customers, from the durable history alone.
//!
//! Owns only this sum; must not change the history. It reads every
//! journal entry once (a linear pass under the history's read lock:
//! milliseconds per million entries), which is fine for a page a person
//! opens, not for a hot path.

use super::history::{HistoryState, JournalKind};

/// Sums in fen and counts. `money_in`: bank credits recorded that day,
/// credited to a customer (`deposit`) or put in suspense; adjustment
/// deposits are not counted again (their money came in as suspense).
/// `money_out`: payouts that succeeded (`withdrawal_settled`).
/// `transfers`: movements from one customer to another (counted once, on
/// the payee's side: `transfer_in`, `unfreeze_pay_in`, `pay_freeze_in`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayFigures {
    pub money_in_fen: i128,
    pub money_in_count: u64,
    pub money_out_fen: i128,
    pub money_out_count: u64,
    pub transfers_fen: i128,
    pub transfers_count: u64,
}

/// The figures of `[from_ms, to_ms)`.
pub fn day_figures(history: &HistoryState, from_ms: i64, to_ms: i64) -> DayFigures {
    let mut figures = DayFigures::default();
    let within = |at_ms: i64| (from_ms..to_ms).contains(&at_ms);
    for entry in history.journals().flatten().filter(|entry| within(entry.at_ms)) {
        let moved = i128::from(entry.available_delta.fen()) + i128::from(entry.frozen_delta.fen());
        match entry.kind {
            JournalKind::Deposit => {
                figures.money_in_fen += moved;
                figures.money_in_count += 1;
            }
            JournalKind::WithdrawalSettled => {
                figures.money_out_fen -= moved;
                figures.money_out_count += 1;
            }
            JournalKind::TransferIn | JournalKind::UnfreezePayIn | JournalKind::PayFreezeIn => {
                figures.transfers_fen += moved;
                figures.transfers_count += 1;
            }
            _ => {}
        }
    }
    for state in history.suspense().entries().iter().filter(|state| within(state.entry.at_ms)) {
        figures.money_in_fen += i128::from(state.entry.notification.amount.fen());
        figures.money_in_count += 1;
    }
    figures
}
