//! The finance side's whole folded state in one value: each bank's days
//! (the ledger side of reconciliation), the reconciliation runs and their
//! discrepancies, and the double-entry books of the trial balance.
//!
//! Owns nothing but the order in which one record reaches the three. It is
//! `Clone` and folded only by [`FinanceState::apply`], so a checkpoint of
//! the recovered state can hold it whole and recovery can go on folding
//! from there. Must not touch balances, actors or I/O.

use crate::domain::record::Record;
use crate::finance::reconciliation::{BankDays, ReconciliationBook};
use crate::finance::trial_balance::TrialBalance;

#[derive(Clone, Debug, Default)]
pub struct FinanceState {
    pub bank_days: BankDays,
    pub reconciliations: ReconciliationBook,
    pub books: TrialBalance,
}

impl FinanceState {
    /// The state of an empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fold one durable record, in lsn order.
    pub fn apply(&mut self, lsn: u64, record: &Record) {
        self.bank_days.apply(lsn, record);
        self.reconciliations.apply(lsn, record);
        self.books.apply(lsn, record);
    }
}
