//! Trial balance: the double-entry books of the whole ledger, posted from
//! every durable record in lsn order.
//!
//! Five books: bank custody (an asset: what the bank holds for the
//! platform) and four liabilities (customer available, customer frozen by
//! holds, withdrawals in flight, suspense). Every record posts debits and
//! credits that sum to zero (asserted per record, TIGER_STYLE); a debit is
//! positive, so assets carry positive balances and liabilities negative
//! ones. Deposits debit custody and credit the customer; payouts that
//! succeeded credit custody (money left the bank); transfers move between
//! customers' books only.
//!
//! `balanced` ([`TrialBalanceView::balanced`]) is checked against what the
//! books did not produce: the journals' per-account balances, folded
//! independently by the history. It needs every record balanced, custody
//! equal to customer total plus open suspense, no liability below zero,
//! and the customer books equal to the sum of every account's balance.
//!
//! Owns the posting rules. Must not change balances or know about actors.

use crate::domain::money::Money;
use crate::domain::record::{PayoutOutcome, Record, TransferType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Book {
    BankCustody,
    CustomerAvailable,
    CustomerFrozen,
    WithdrawalsInFlight,
    Suspense,
}

impl Book {
    const COUNT: usize = 5;

    fn index(self) -> usize {
        self as usize
    }
}

/// Postings of one record, `(book, debit)`: every movement is one debit
/// and one credit (kept on the stack: the indexer posts every record).
pub type Postings = [(Book, i128); 2];

/// The postings a record makes (none for records that move no money).
pub fn postings(record: &Record) -> Option<Postings> {
    use Book::*;
    let pair = |debit: Book, credit: Book, amount: Money| {
        Some([(debit, i128::from(amount.0)), (credit, -i128::from(amount.0))])
    };
    match record {
        Record::Deposit(deposit) => pair(BankCustody, CustomerAvailable, deposit.notification.amount),
        Record::SuspenseOpened(entry) => pair(BankCustody, Suspense, entry.notification.amount),
        Record::AdjustmentDeposit(adjustment) => pair(Suspense, CustomerAvailable, adjustment.amount),
        Record::SuspenseReturned(returned) => pair(Suspense, BankCustody, returned.amount),
        Record::Movement(movement) => match movement.kind {
            TransferType::Transfer => pair(CustomerAvailable, CustomerAvailable, movement.amount),
            TransferType::Freeze | TransferType::PayFreeze => pair(CustomerAvailable, CustomerFrozen, movement.amount),
            TransferType::Unfreeze | TransferType::UnfreezePay => {
                pair(CustomerFrozen, CustomerAvailable, movement.amount)
            }
        },
        Record::WithdrawalRequested(withdrawal) => pair(CustomerAvailable, WithdrawalsInFlight, withdrawal.amount),
        Record::WithdrawalFinished(finished) => match finished.outcome {
            PayoutOutcome::Succeeded { .. } => pair(WithdrawalsInFlight, BankCustody, finished.amount),
            PayoutOutcome::Failed { .. } => pair(WithdrawalsInFlight, CustomerAvailable, finished.amount),
        },
        _ => None,
    }
}

/// The books' balances (debit-positive, in fen).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrialBalance {
    balances: [i128; Book::COUNT],
    records_posted: u64,
}

impl TrialBalance {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn balance(&self, book: Book) -> i128 {
        self.balances[book.index()]
    }

    pub fn records_posted(&self) -> u64 {
        self.records_posted
    }

    /// Every book's balance, in [`Book`] order (a state checkpoint keeps
    /// them and [`Self::from_balances`] restores them).
    pub fn balances(&self) -> [i128; 5] {
        self.balances
    }

    pub fn from_balances(balances: [i128; 5], records_posted: u64) -> Self {
        Self { balances, records_posted }
    }

    /// Post one durable record, in lsn order.
    pub fn apply(&mut self, lsn: u64, record: &Record) {
        let Some(postings) = postings(record) else { return };
        let sum: i128 = postings.iter().map(|(_, amount)| amount).sum();
        assert_eq!(sum, 0, "lsn {lsn}: postings do not balance: {postings:?}");
        for (book, amount) in postings {
            self.balances[book.index()] += amount;
        }
        self.records_posted += 1;
    }

    /// The view at `lsn`, checked against the journals' sums of every
    /// account's available and frozen balance (fen).
    pub fn view(&self, lsn: u64, journal_available_fen: i128, journal_frozen_fen: i128) -> TrialBalanceView {
        use Book::*;
        let liability = |book: Book| -self.balance(book);
        let customer_available = liability(CustomerAvailable);
        let customer_frozen = liability(CustomerFrozen) + liability(WithdrawalsInFlight);
        let suspense_open = liability(Suspense);
        let bank_custody = self.balance(BankCustody);
        let customer_total = customer_available + customer_frozen;
        let balanced = self.balances.iter().sum::<i128>() == 0
            && bank_custody == customer_total + suspense_open
            && [customer_available, customer_frozen, suspense_open, liability(WithdrawalsInFlight), bank_custody]
                .iter()
                .all(|amount| *amount >= 0)
            && customer_available == journal_available_fen
            && customer_frozen == journal_frozen_fen;
        TrialBalanceView {
            lsn,
            customer_available,
            customer_frozen,
            customer_total,
            suspense_open,
            bank_custody,
            withdrawals_in_flight: liability(WithdrawalsInFlight),
            balanced,
        }
    }
}

/// `GET /v1/ledger/trial-balance`, in fen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrialBalanceView {
    pub lsn: u64,
    pub customer_available: i128,
    pub customer_frozen: i128,
    pub customer_total: i128,
    pub suspense_open: i128,
    pub bank_custody: i128,
    pub withdrawals_in_flight: i128,
    pub balanced: bool,
}

#[cfg(test)]
mod tests {
    //! A property test over generated sequences of every movement type,
    //! folded through the whole history (journals and books together).

    use std::sync::Arc;

    use proptest::prelude::*;

    use crate::domain::ids::{AccountId, SuspenseId};
    use crate::domain::money::Money;
    use crate::domain::record::*;
    use crate::finance::history::HistoryState;

    const ACCOUNTS: u64 = 3;

    #[derive(Clone, Debug)]
    enum Op {
        Deposit(u64, i64),
        Suspense(i64),
        Adjust(u64, i64),
        Return,
        Transfer(TransferType, u64, u64, i64),
        Withdraw(u64, i64),
        Finish(bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        let account = 1..=ACCOUNTS;
        let fen = 1i64..100_000;
        let kind = prop_oneof![
            Just(TransferType::Transfer),
            Just(TransferType::Freeze),
            Just(TransferType::Unfreeze),
            Just(TransferType::UnfreezePay),
            Just(TransferType::PayFreeze),
        ];
        prop_oneof![
            (account.clone(), fen.clone()).prop_map(|(a, f)| Op::Deposit(a, f)),
            fen.clone().prop_map(Op::Suspense),
            (account.clone(), fen.clone()).prop_map(|(a, f)| Op::Adjust(a, f)),
            Just(Op::Return),
            (kind, account.clone(), account.clone(), fen.clone()).prop_map(|(k, a, b, f)| Op::Transfer(k, a, b, f)),
            (account, fen).prop_map(|(a, f)| Op::Withdraw(a, f)),
            any::<bool>().prop_map(Op::Finish),
        ]
    }

    /// A tiny model of the rules, enough to generate only valid records.
    #[derive(Default)]
    struct Model {
        records: Vec<Record>,
        available: [i64; ACCOUNTS as usize + 1],
        /// (hold id, account, remaining)
        holds: Vec<(String, u64, i64)>,
        /// (suspense number, remaining, returned)
        suspense: Vec<(u64, i64, bool)>,
        withdrawals: Vec<(String, u64, i64)>,
        next: u64,
    }

    fn notification(fen: i64, id: u64) -> Notification {
        Notification {
            bank: "SIMBANK".into(),
            notification_id: format!("N{id}").into(),
            bank_serial: format!("B{id}").into(),
            to_account_no: "1".into(),
            amount: Money(fen),
            payer_name: "p".into(),
            payer_account_no: "2".into(),
            booked_at: "2026-11-24T00:00:00.000Z".into(),
        }
    }

    fn movement(
        id: String,
        kind: TransferType,
        payer: u64,
        payee: Option<u64>,
        fen: i64,
        hold: Option<(String, u64, i64, i64)>,
    ) -> Record {
        let (hold_id, hold_account, hold_amount, hold_remaining) = match hold {
            Some((hold_id, account, amount, remaining)) => {
                (Some(hold_id.into()), Some(AccountId(account)), Money(amount), Money(remaining))
            }
            None => (None, None, Money::ZERO, Money::ZERO),
        };
        Record::Movement(Arc::new(Movement {
            id: id.into(),
            kind,
            payer: AccountId(payer),
            payee: payee.map(AccountId),
            amount: Money(fen),
            requested_amount: Some(Money(fen)),
            hold_id,
            hold_account,
            hold_amount,
            hold_remaining,
            order_id: None,
            memo: None,
            committed_at_ms: 1_795_478_400_000,
            operator: "p".into(),
        }))
    }

    impl Model {
        fn new() -> Self {
            let mut model = Model::default();
            for number in 1..=ACCOUNTS {
                let application = Arc::new(fixtures::application(number, "SIMBANK"));
                model.records.push(Record::ApplicationCreated(application));
                model.records.push(Record::ApplicationApproved(fixtures::approval(number)));
            }
            model
        }

        fn id(&mut self, prefix: &str) -> String {
            self.next += 1;
            format!("{prefix}-{}", self.next)
        }

        fn step(&mut self, op: Op) {
            let at = 1_795_478_400_000;
            match op {
                Op::Deposit(account, fen) => {
                    let id = self.id("d");
                    self.available[account as usize] += fen;
                    self.records.push(Record::Deposit(Arc::new(Deposit {
                        notification: notification(fen, self.next),
                        account_id: AccountId(account),
                        at_ms: at,
                    })));
                    let _ = id;
                }
                Op::Suspense(fen) => {
                    let number = self.suspense.len() as u64 + 1;
                    self.next += 1;
                    self.suspense.push((number, fen, false));
                    self.records.push(Record::SuspenseOpened(Arc::new(SuspenseEntry {
                        suspense_id: SuspenseId(number),
                        notification: notification(fen, self.next),
                        reason: SuspenseReason::AdjustmentAccount,
                        at_ms: at,
                    })));
                }
                Op::Adjust(account, fen) => {
                    let Some(entry) =
                        self.suspense.iter_mut().find(|(_, remaining, returned)| !returned && *remaining > 0)
                    else {
                        return;
                    };
                    let amount = fen.min(entry.1);
                    entry.1 -= amount;
                    let (number, remaining) = (entry.0, entry.1);
                    self.available[account as usize] += amount;
                    let id = self.id("adj");
                    self.records.push(Record::AdjustmentDeposit(Arc::new(Adjustment {
                        id: id.into(),
                        suspense_id: SuspenseId(number),
                        account_id: AccountId(account),
                        amount: Money(amount),
                        memo: None,
                        suspense_remaining: Money(remaining),
                        at_ms: at,
                        operator: "f".into(),
                    })));
                }
                Op::Return => {
                    let Some(entry) =
                        self.suspense.iter_mut().find(|(_, remaining, returned)| !returned && *remaining > 0)
                    else {
                        return;
                    };
                    let (number, amount) = (entry.0, entry.1);
                    entry.1 = 0;
                    entry.2 = true;
                    let id = self.id("ret");
                    self.records.push(Record::SuspenseReturned(Arc::new(SuspenseReturn {
                        id: id.into(),
                        suspense_id: SuspenseId(number),
                        amount: Money(amount),
                        memo: None,
                        at_ms: at,
                        operator: "f".into(),
                    })));
                }
                Op::Transfer(kind, payer, payee, fen) => self.transfer(kind, payer, payee, fen),
                Op::Withdraw(account, fen) => {
                    let amount = fen.min(self.available[account as usize]);
                    if amount == 0 {
                        return;
                    }
                    self.available[account as usize] -= amount;
                    let id = self.id("w");
                    self.withdrawals.push((id.clone(), account, amount));
                    self.records.push(Record::WithdrawalRequested(Arc::new(Withdrawal {
                        id: id.into(),
                        account_id: AccountId(account),
                        amount: Money(amount),
                        memo: None,
                        bank: "SIMBANK".into(),
                        settlement_account: SettlementAccount {
                            bank_name: "b".into(),
                            account_no: "6222".into(),
                            account_name: "n".into(),
                        },
                        created_at_ms: at,
                        operator: "p".into(),
                    })));
                }
                Op::Finish(succeeded) => {
                    if self.withdrawals.is_empty() {
                        return;
                    }
                    let (id, account, amount) = self.withdrawals.remove(0);
                    let outcome = if succeeded {
                        PayoutOutcome::Succeeded { bank_serial: "SB1".into() }
                    } else {
                        self.available[account as usize] += amount;
                        PayoutOutcome::Failed { reason: "PAYEE_ACCOUNT_CLOSED".into() }
                    };
                    self.records.push(Record::WithdrawalFinished(Arc::new(WithdrawalFinished {
                        id: id.into(),
                        account_id: AccountId(account),
                        amount: Money(amount),
                        outcome,
                        finished_at_ms: at,
                    })));
                }
            }
        }

        fn transfer(&mut self, kind: TransferType, payer: u64, payee: u64, fen: i64) {
            let id = self.id("t");
            if kind.uses_hold() {
                let Some(index) = self.holds.iter().position(|(_, account, remaining)| {
                    *remaining > 0 && (kind == TransferType::Unfreeze || *account != payee)
                }) else {
                    return;
                };
                let (hold_id, account, remaining) = self.holds[index].clone();
                let amount = fen.min(remaining);
                self.holds[index].2 -= amount;
                let hold = Some((hold_id, account, 0, remaining - amount));
                if kind == TransferType::Unfreeze {
                    self.available[account as usize] += amount;
                    self.records.push(movement(id, kind, account, None, amount, hold));
                } else {
                    self.available[payee as usize] += amount;
                    self.records.push(movement(id, kind, account, Some(payee), amount, hold));
                }
                return;
            }
            let amount = fen.min(self.available[payer as usize]);
            if amount == 0 || (kind.has_payee() && payer == payee) {
                return;
            }
            self.available[payer as usize] -= amount;
            match kind {
                TransferType::Transfer => {
                    self.available[payee as usize] += amount;
                    self.records.push(movement(id, kind, payer, Some(payee), amount, None));
                }
                TransferType::Freeze => {
                    self.holds.push((id.clone(), payer, amount));
                    let hold = Some((id.clone(), payer, amount, amount));
                    self.records.push(movement(id, kind, payer, None, amount, hold));
                }
                _ => {
                    self.holds.push((id.clone(), payee, amount));
                    let hold = Some((id.clone(), payee, amount, amount));
                    self.records.push(movement(id, kind, payer, Some(payee), amount, hold));
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn the_trial_balance_stays_balanced_through_every_movement_type(ops in proptest::collection::vec(op(), 1..120)) {
            let mut model = Model::new();
            for op in ops {
                model.step(op);
            }
            let mut history = HistoryState::default();
            for (index, record) in model.records.iter().enumerate() {
                history.apply(index as u64 + 1, record);
                let view = history.trial_balance();
                prop_assert!(view.balanced, "after record {index}: {view:?}");
            }
            let view = history.trial_balance();
            let available: i64 = model.available.iter().sum();
            let holds: i64 = model.holds.iter().map(|(_, _, remaining)| remaining).sum();
            let in_flight: i64 = model.withdrawals.iter().map(|(_, _, amount)| amount).sum();
            let suspense: i64 = model.suspense.iter().map(|(_, remaining, _)| remaining).sum();
            prop_assert_eq!(view.customer_available, i128::from(available));
            prop_assert_eq!(view.customer_frozen, i128::from(holds + in_flight));
            prop_assert_eq!(view.withdrawals_in_flight, i128::from(in_flight));
            prop_assert_eq!(view.suspense_open, i128::from(suspense));
            prop_assert_eq!(view.bank_custody, i128::from(available + holds + in_flight + suspense));
        }
    }

    #[test]
    fn a_journal_that_disagrees_with_the_books_is_not_balanced() {
        let mut books = super::TrialBalance::new();
        books.apply(
            1,
            &Record::SuspenseOpened(Arc::new(SuspenseEntry {
                suspense_id: SuspenseId(1),
                notification: notification(500, 1),
                reason: SuspenseReason::UnknownAccount,
                at_ms: 0,
            })),
        );
        assert!(books.view(1, 0, 0).balanced);
        assert!(!books.view(1, 1, 0).balanced, "customer books differ from the journals");
        assert_eq!(books.view(1, 0, 0).bank_custody, 500);
    }
}
