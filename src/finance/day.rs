//! One day's money at a glance, for the console's dashboard
//! (`GET /v1/ledger/day`): what came in from banks, what was paid out,
//! and what moved between customers, from the durable history alone.
//!
//! Owns only this sum; must not change the history. The history folds
//! each day's journal figures as it posts entries (a few words per day),
//! so a day costs a map lookup plus a pass over the day's suspense
//! entries.

use super::history::{HistoryState, JournalKind};
use crate::domain::money::Money;

/// Sums in fen and counts. `money_in`: bank credits recorded that day,
/// credited to a customer (`deposit`) or put in suspense; adjustment
/// deposits are not counted again (their money came in as suspense).
/// `money_out`: payouts that succeeded (`withdrawal_settled`).
/// `transfers`: movements from one customer to another (counted once, on
/// the payee's side: `transfer_in`, `unfreeze_pay_in`, `pay_freeze_in`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct DayFigures {
    pub money_in_fen: i128,
    pub money_in_count: u64,
    pub money_out_fen: i128,
    pub money_out_count: u64,
    pub transfers_fen: i128,
    pub transfers_count: u64,
}

impl DayFigures {
    /// Count one journal entry (the history calls this as it posts).
    pub fn add(&mut self, kind: JournalKind, available_delta: Money, frozen_delta: Money) {
        let moved = i128::from(available_delta.fen()) + i128::from(frozen_delta.fen());
        match kind {
            JournalKind::Deposit => {
                self.money_in_fen += moved;
                self.money_in_count += 1;
            }
            JournalKind::WithdrawalSettled => {
                self.money_out_fen -= moved;
                self.money_out_count += 1;
            }
            JournalKind::TransferIn | JournalKind::UnfreezePayIn | JournalKind::PayFreezeIn => {
                self.transfers_fen += moved;
                self.transfers_count += 1;
            }
            _ => {}
        }
    }
}

/// The figures of the UTC day `[from_ms, from_ms + 1 day)`: the journal's
/// part folded day by day as entries are posted, plus the suspense
/// entries of that day.
pub fn day_figures(history: &HistoryState, from_ms: i64) -> DayFigures {
    const DAY_MS: i64 = 86_400_000;
    let mut figures = history.day(from_ms);
    let within = |at_ms: i64| (from_ms..from_ms + DAY_MS).contains(&at_ms);
    for state in history.suspense().entries().iter().filter(|state| within(state.entry.at_ms)) {
        figures.money_in_fen += i128::from(state.entry.notification.amount.fen());
        figures.money_in_count += 1;
    }
    figures
}
