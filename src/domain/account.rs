//! One account's book and the balance rules, as pure functions.
//!
//! Owns: the meaning of every movement for each side (`apply_debit_side`,
//! `apply_credit_side`) and the judgement of a request against a book
//! (`judge`), and of withdrawals (`judge_withdrawal`,
//! `apply_withdrawal_hold`, `apply_withdrawal_finished`: the amount sits in
//! frozen while its payout is processing). Must not touch actors, the log
//! or the clock: the account actor and recovery both call these same
//! functions, which is why a replay
//! rebuilds exactly the state the actors had.
//!
//! Invariant 1 (DESIGN.md) is asserted after every change
//! ([`AccountBook::assert_invariants`]): `total = available + frozen`,
//! nothing negative, `frozen = open holds' remaining + withdrawals
//! processing`. Assertions stay on in release: a ledger that would go on
//! with a broken book must stop instead.

use std::sync::Arc;

use hashbrown::HashMap;

use super::ids::AccountId;
use super::money::Money;
use super::record::{Movement, TransferType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountStatus {
    Signing,
    Active,
    SignFailed,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signing => "signing",
            Self::Active => "active",
            Self::SignFailed => "sign_failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "signing" => Self::Signing,
            "active" => Self::Active,
            "sign_failed" => Self::SignFailed,
            _ => return None,
        })
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }

    pub fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Signing,
            1 => Self::Active,
            _ => Self::SignFailed,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balance {
    pub available: Money,
    pub frozen: Money,
}

impl Balance {
    pub fn total(self) -> Money {
        self.available
            .checked_add(self.frozen)
            .expect("total = available + frozen fits i64 (guarded by the custody bound)")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hold {
    pub amount: Money,
    pub remaining: Money,
}

/// Why a request was refused by the rules (all 422 but `HoldNotFound`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    AccountNotActive,
    SameAccount,
    InsufficientFunds,
    HoldNotFound,
    HoldClosed,
    HoldExceeded,
    /// A credit would push a balance past `i64` fen; never reached while
    /// deposits respect the custody bound, but refused rather than wrapped.
    BalanceOverflow,
}

/// What a transfer request asks, already checked for syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferRequest {
    pub id: Box<str>,
    pub kind: TransferType,
    pub payer: Option<AccountId>,
    pub payee: Option<AccountId>,
    pub hold_id: Option<Box<str>>,
    pub amount: Option<Money>,
    pub order_id: Option<Box<str>>,
    pub memo: Option<Box<str>>,
}

impl TransferRequest {
    /// Whether a committed movement is what this request asked for (the
    /// idempotency comparison: same id and same fields).
    pub fn matches(&self, movement: &Movement) -> bool {
        let payer_matches = match self.kind {
            TransferType::Unfreeze | TransferType::UnfreezePay => true,
            _ => self.payer == Some(movement.payer),
        };
        let hold_matches = !self.kind.uses_hold() || self.hold_id == movement.hold_id;
        self.kind == movement.kind
            && payer_matches
            && hold_matches
            && self.payee == movement.payee
            && self.amount == movement.requested_amount
            && self.order_id == movement.order_id
            && self.memo == movement.memo
    }
}

/// Everything an account actor owns: its balances, open holds and
/// processing withdrawals, and the lsn of its latest change.
#[derive(Clone, Debug, Default)]
pub struct AccountBook {
    pub balance: Balance,
    pub withdrawals_processing: Money,
    pub last_lsn: u64,
    /// Open holds and processing withdrawals, kept apart and only while
    /// there are any: most accounts have none most of the time, and the
    /// book is what every transfer reads (over a million accounts, a cache
    /// miss per line: with its entry two lines instead of three; the book
    /// is 40 bytes instead of 112, issue 5 target 5). `None` when both
    /// are empty.
    open: Option<Box<OpenItems>>,
}

/// An account's open holds and processing withdrawals.
#[derive(Clone, Debug, Default)]
struct OpenItems {
    holds: HashMap<Box<str>, Hold>,
    /// Withdrawals in processing by id, with their amounts (they sum to
    /// `withdrawals_processing`).
    withdrawals: HashMap<Box<str>, Money>,
}

/// The sum of withdrawals' amounts, wide enough never to overflow.
fn processing_sum<'a>(withdrawals: impl Iterator<Item = (&'a Box<str>, &'a Money)>) -> i128 {
    withdrawals.map(|(_, amount)| i128::from(amount.0)).sum()
}

/// The facts a judgement needs besides the book itself.
pub struct Context<'a> {
    pub own: AccountId,
    pub own_active: bool,
    /// Whether the payee (if the type has one) is active.
    pub payee_active: bool,
    pub now_ms: i64,
    pub operator: &'a Arc<str>,
}

impl AccountBook {
    /// A book as a checkpoint keeps it (its invariants unchecked: see
    /// [`Self::invariant_violation`]).
    pub fn from_parts(
        balance: Balance,
        holds: impl IntoIterator<Item = (Box<str>, Hold)>,
        withdrawals: impl IntoIterator<Item = (Box<str>, Money)>,
        last_lsn: u64,
    ) -> Self {
        let open = OpenItems { holds: holds.into_iter().collect(), withdrawals: withdrawals.into_iter().collect() };
        // Past i64 only in a checkpoint that is wrong: kept out of step, so
        // that `invariant_violation` refuses it rather than a sum panicking.
        let processing = processing_sum(open.withdrawals.iter());
        let withdrawals_processing = Money(i64::try_from(processing).unwrap_or(i64::MAX));
        let mut book = Self { balance, withdrawals_processing, last_lsn, open: Some(Box::new(open)) };
        book.close_if_empty();
        book
    }

    /// The open hold `id` of this account.
    pub fn hold(&self, id: &str) -> Option<&Hold> {
        self.open.as_ref()?.holds.get(id)
    }

    /// Every open hold, in no particular order.
    pub fn holds(&self) -> impl Iterator<Item = (&Box<str>, &Hold)> {
        self.open.iter().flat_map(|open| open.holds.iter())
    }

    /// The amount of withdrawal `id`, if it is processing here.
    pub fn withdrawal(&self, id: &str) -> Option<Money> {
        self.open.as_ref()?.withdrawals.get(id).copied()
    }

    /// Every processing withdrawal with its amount, in no particular order.
    pub fn withdrawals(&self) -> impl Iterator<Item = (&Box<str>, &Money)> {
        self.open.iter().flat_map(|open| open.withdrawals.iter())
    }

    fn open_mut(&mut self) -> &mut OpenItems {
        self.open.get_or_insert_with(Box::default)
    }

    /// Drop the open items' maps once both are empty (their memory too).
    fn close_if_empty(&mut self) {
        if self.open.as_ref().is_some_and(|open| open.holds.is_empty() && open.withdrawals.is_empty()) {
            self.open = None;
        }
    }

    fn open_hold(&mut self, id: &str, amount: Money) {
        let previous = self.open_mut().holds.insert(id.into(), Hold { amount, remaining: amount });
        assert!(previous.is_none(), "hold {id} opened twice");
    }

    pub fn assert_invariants(&self, account: AccountId) {
        if let Some(violation) = self.invariant_violation(account) {
            panic!("{violation}");
        }
    }

    /// The first of the book's invariants it breaks, if any: no negative
    /// balance, frozen = open holds' remaining + withdrawals processing,
    /// each open hold's remaining in `1..=amount`. (For a book from outside,
    /// such as a checkpoint, to be refused rather than asserted.)
    pub fn invariant_violation(&self, account: AccountId) -> Option<String> {
        let Balance { available, frozen } = self.balance;
        if available.is_negative() || frozen.is_negative() {
            return Some(format!("{account}: available {available} or frozen {frozen} < 0"));
        }
        // Sums in i128: a book restored from a checkpoint is judged here,
        // and its amounts must not overflow the check that refuses it.
        let held: i128 = self.holds().map(|(_, hold)| i128::from(hold.remaining.0)).sum();
        if i128::from(frozen.0) != held + i128::from(self.withdrawals_processing.0) {
            return Some(format!("{account}: frozen must equal open holds' remaining plus withdrawals processing"));
        }
        if processing_sum(self.withdrawals()) != i128::from(self.withdrawals_processing.0) {
            return Some(format!("{account}: withdrawals processing out of step"));
        }
        self.holds()
            .find(|(_, hold)| !(hold.remaining.0 > 0 && hold.remaining <= hold.amount))
            .map(|(hold_id, _)| format!("{account}: hold {hold_id} remaining out of range"))
    }

    /// Judge a request whose owning account is this one (the payer, or the
    /// hold's account for `unfreeze*`), without changing anything. The
    /// accepted movement takes the request's strings (no copy per item).
    pub fn judge(&self, request: TransferRequest, context: &Context) -> Result<Movement, Refusal> {
        if !context.own_active {
            return Err(Refusal::AccountNotActive);
        }
        if request.kind.has_payee() {
            if request.payee == Some(context.own) {
                return Err(Refusal::SameAccount);
            }
            if !context.payee_active {
                return Err(Refusal::AccountNotActive);
            }
        }
        let (amount, hold_after) = if request.kind.uses_hold() {
            let hold_id = request.hold_id.as_deref().ok_or(Refusal::HoldNotFound)?;
            let hold = self.hold(hold_id).ok_or(Refusal::HoldClosed)?;
            let amount = request.amount.unwrap_or(hold.remaining);
            if amount > hold.remaining {
                return Err(Refusal::HoldExceeded);
            }
            let remaining = Money(hold.remaining.0 - amount.0);
            (amount, Some((hold.amount, remaining)))
        } else {
            let amount = request.amount.ok_or(Refusal::InsufficientFunds)?;
            if self.balance.available < amount {
                return Err(Refusal::InsufficientFunds);
            }
            if request.kind == TransferType::Freeze {
                self.balance.frozen.checked_add(amount).ok_or(Refusal::BalanceOverflow)?;
            }
            (amount, None)
        };
        let TransferRequest { id, kind, payer: _, payee, hold_id, amount: requested_amount, order_id, memo } = request;
        let (hold_id, hold_account, hold_amount, hold_remaining) = match (kind, hold_after) {
            (_, Some((amount, remaining))) => (hold_id, Some(context.own), amount, remaining),
            (TransferType::Freeze, None) => (Some(id.clone()), Some(context.own), amount, amount),
            (TransferType::PayFreeze, None) => (Some(id.clone()), payee, amount, amount),
            _ => (None, None, Money::ZERO, Money::ZERO),
        };
        Ok(Movement {
            id,
            kind,
            payer: context.own,
            payee,
            amount,
            requested_amount,
            hold_id,
            hold_account,
            hold_amount,
            hold_remaining,
            order_id,
            memo,
            committed_at_ms: context.now_ms,
            operator: Arc::clone(context.operator),
        })
    }

    /// The payer's side of a movement (the side whose actor wrote it).
    pub fn apply_debit_side(&mut self, movement: &Movement, lsn: u64) {
        let amount = movement.amount;
        let balance = &mut self.balance;
        match movement.kind {
            TransferType::Transfer | TransferType::PayFreeze => {
                balance.available = sub(balance.available, amount);
            }
            TransferType::Freeze => {
                balance.available = sub(balance.available, amount);
                balance.frozen = add(balance.frozen, amount);
                self.open_hold(&movement.id, amount);
            }
            TransferType::Unfreeze | TransferType::UnfreezePay => {
                balance.frozen = sub(balance.frozen, amount);
                if movement.kind == TransferType::Unfreeze {
                    balance.available = add(balance.available, amount);
                }
                self.release_hold(movement);
            }
        }
        self.touch(lsn);
        self.assert_invariants(movement.payer);
    }

    /// The payee's side of a movement; a no-op for types without a payee.
    pub fn apply_credit_side(&mut self, movement: &Movement, lsn: u64) {
        let Some(payee) = movement.payee else { return };
        let amount = movement.amount;
        match movement.kind {
            TransferType::Transfer | TransferType::UnfreezePay => {
                self.balance.available = add(self.balance.available, amount);
            }
            TransferType::PayFreeze => {
                self.balance.frozen = add(self.balance.frozen, amount);
                self.open_hold(&movement.id, amount);
            }
            TransferType::Freeze | TransferType::Unfreeze => unreachable!("no payee side"),
        }
        self.touch(lsn);
        self.assert_invariants(payee);
    }

    /// A bank credit to available (deposits and adjustment deposits).
    pub fn apply_deposit(&mut self, account: AccountId, amount: Money, lsn: u64) {
        self.balance.available = add(self.balance.available, amount);
        self.touch(lsn);
        self.assert_invariants(account);
    }

    /// Judge a withdrawal of `amount` from this account: it must be active
    /// and have `amount` available.
    pub fn judge_withdrawal(&self, amount: Money, own_active: bool) -> Result<(), Refusal> {
        if !own_active {
            return Err(Refusal::AccountNotActive);
        }
        if amount.0 <= 0 || self.balance.available < amount {
            return Err(Refusal::InsufficientFunds);
        }
        Ok(())
    }

    /// `withdrawal_hold`: available to frozen, for the payout in processing.
    pub fn apply_withdrawal_hold(&mut self, account: AccountId, id: &str, amount: Money, lsn: u64) {
        self.balance.available = sub(self.balance.available, amount);
        self.balance.frozen = add(self.balance.frozen, amount);
        self.withdrawals_processing = add(self.withdrawals_processing, amount);
        let previous = self.open_mut().withdrawals.insert(id.into(), amount);
        assert!(previous.is_none(), "{account}: withdrawal {id} held twice");
        self.touch(lsn);
        self.assert_invariants(account);
    }

    /// The payout's end: `withdrawal_settled` (frozen and total go down) or
    /// `withdrawal_released` (back to available). Whether `id` is still
    /// processing here is the caller's question ([`Self::is_processing`]).
    pub fn apply_withdrawal_finished(&mut self, account: AccountId, id: &str, succeeded: bool, lsn: u64) {
        let amount = self.open_mut().withdrawals.remove(id).expect("only a processing withdrawal finishes");
        self.close_if_empty();
        self.withdrawals_processing = sub(self.withdrawals_processing, amount);
        self.balance.frozen = sub(self.balance.frozen, amount);
        if !succeeded {
            self.balance.available = add(self.balance.available, amount);
        }
        self.touch(lsn);
        self.assert_invariants(account);
    }

    pub fn is_processing(&self, withdrawal_id: &str) -> bool {
        self.withdrawal(withdrawal_id).is_some()
    }

    /// Whether `amount` can be credited without leaving `i64`.
    pub fn can_credit(&self, amount: Money) -> bool {
        self.balance.total().checked_add(amount).is_some()
    }

    fn release_hold(&mut self, movement: &Movement) {
        let hold_id = movement.hold_id.as_deref().expect("unfreeze records name their hold");
        let holds = &mut self.open_mut().holds;
        let hold = holds.get_mut(hold_id).expect("an unfreeze's hold is open on its account");
        hold.remaining = sub(hold.remaining, movement.amount);
        assert_eq!(hold.remaining, movement.hold_remaining, "hold {hold_id}: replay diverged");
        if hold.remaining == Money::ZERO {
            holds.remove(hold_id);
            self.close_if_empty();
        }
    }

    /// Credits from other accounts arrive out of lsn order, so the latest
    /// lsn is a maximum, not the last one seen.
    fn touch(&mut self, lsn: u64) {
        self.last_lsn = self.last_lsn.max(lsn);
    }
}

fn add(left: Money, right: Money) -> Money {
    left.checked_add(right).expect("balance overflow: credits are checked before they commit")
}

fn sub(left: Money, right: Money) -> Money {
    let result = left.checked_sub(right).expect("balance underflow");
    assert!(!result.is_negative(), "a debit would make a balance negative");
    result
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    const ACCOUNTS: u64 = 3;

    #[derive(Clone, Debug)]
    enum Op {
        Deposit { account: u64, fen: i64 },
        Move { kind: TransferType, payer: u64, payee: u64, fen: Option<i64>, hold: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1..=ACCOUNTS, 1i64..5_000).prop_map(|(account, fen)| Op::Deposit { account, fen }),
            (0usize..5, 1..=ACCOUNTS, 1..=ACCOUNTS, proptest::option::of(1i64..3_000), 0usize..8).prop_map(
                |(kind, payer, payee, fen, hold)| Op::Move {
                    kind: [
                        TransferType::Transfer,
                        TransferType::Freeze,
                        TransferType::Unfreeze,
                        TransferType::UnfreezePay,
                        TransferType::PayFreeze
                    ][kind],
                    payer,
                    payee,
                    fen,
                    hold,
                }
            ),
        ]
    }

    /// A deliberately simple model: balances and holds as plain numbers.
    #[derive(Default)]
    struct Model {
        available: HashMap<u64, i64>,
        frozen: HashMap<u64, i64>,
        /// hold id -> (account, remaining)
        holds: HashMap<String, (u64, i64)>,
    }

    impl Model {
        /// What the model says should happen: Ok(amount) or the refusal.
        fn expect(
            &self,
            kind: TransferType,
            payer: u64,
            payee: u64,
            fen: Option<i64>,
            hold_id: &str,
        ) -> Result<i64, Refusal> {
            if kind.has_payee() && payer == payee {
                return Err(Refusal::SameAccount);
            }
            if kind.uses_hold() {
                let &(_, remaining) = self.holds.get(hold_id).ok_or(Refusal::HoldClosed)?;
                let amount = fen.unwrap_or(remaining);
                return if amount > remaining { Err(Refusal::HoldExceeded) } else { Ok(amount) };
            }
            let amount = fen.unwrap_or(1);
            if self.available.get(&payer).copied().unwrap_or(0) < amount {
                return Err(Refusal::InsufficientFunds);
            }
            Ok(amount)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random sequences of every movement against the books agree with
        /// the model, keep invariant 1 on every account, and conserve money.
        #[test]
        fn books_follow_the_model(ops in proptest::collection::vec(op(), 1..120)) {
            let mut books: HashMap<u64, AccountBook> = (1..=ACCOUNTS).map(|n| (n, AccountBook::default())).collect();
            let mut model = Model::default();
            let mut deposited = 0i64;
            let mut opened: Vec<String> = Vec::new();
            let mut hold_owner: HashMap<String, u64> = HashMap::new();
            for (step, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Deposit { account, fen } => {
                        books.get_mut(&account).unwrap().apply_deposit(AccountId(account), Money(fen), 0);
                        *model.available.entry(account).or_default() += fen;
                        deposited += fen;
                    }
                    Op::Move { kind, payer, payee, fen, hold } => {
                        let id = format!("m{step}");
                        let hold_id = opened.get(hold % opened.len().max(1)).cloned().unwrap_or_else(|| "none".into());
                        if kind.uses_hold() && !hold_owner.contains_key(&hold_id) {
                            continue; // the gateway answers 404 before any actor sees it
                        }
                        let owner = if kind.uses_hold() { hold_owner[&hold_id] } else { payer };
                        let fen = if kind.uses_hold() { fen } else { Some(fen.unwrap_or(1)) };
                        let request = TransferRequest {
                            id: id.clone().into(),
                            kind,
                            payer: (!kind.uses_hold()).then_some(AccountId(payer)),
                            payee: kind.has_payee().then_some(AccountId(payee)),
                            hold_id: kind.uses_hold().then(|| hold_id.clone().into()),
                            amount: fen.map(Money),
                            order_id: None,
                            memo: None,
                        };
                        let context = Context { own: AccountId(owner), own_active: true, payee_active: true, now_ms: 0, operator: &Arc::from("t") };
                        let expected = model.expect(kind, owner, payee, fen, &hold_id);
                        let judged = books[&owner].judge(request, &context);
                        match (&judged, expected) {
                            (Ok(movement), Ok(amount)) => prop_assert_eq!(movement.amount.0, amount),
                            (Err(got), Err(want)) => prop_assert_eq!(*got, want),
                            (got, want) => prop_assert!(false, "step {}: judged {:?}, model {:?}", step, got, want),
                        }
                        let Ok(movement) = judged else { continue };
                        books.get_mut(&owner).unwrap().apply_debit_side(&movement, step as u64 + 1);
                        if let Some(payee) = movement.payee.filter(|_| kind.has_payee()) {
                            books.get_mut(&payee.0).unwrap().apply_credit_side(&movement, step as u64 + 1);
                        }
                        let amount = movement.amount.0;
                        match kind {
                            TransferType::Transfer => {
                                *model.available.entry(owner).or_default() -= amount;
                                *model.available.entry(payee).or_default() += amount;
                            }
                            TransferType::Freeze => {
                                *model.available.entry(owner).or_default() -= amount;
                                *model.frozen.entry(owner).or_default() += amount;
                                model.holds.insert(id.clone(), (owner, amount));
                                hold_owner.insert(id.clone(), owner);
                                opened.push(id);
                            }
                            TransferType::PayFreeze => {
                                *model.available.entry(owner).or_default() -= amount;
                                *model.frozen.entry(payee).or_default() += amount;
                                model.holds.insert(id.clone(), (payee, amount));
                                hold_owner.insert(id.clone(), payee);
                                opened.push(id);
                            }
                            TransferType::Unfreeze | TransferType::UnfreezePay => {
                                *model.frozen.entry(owner).or_default() -= amount;
                                let target = if kind == TransferType::Unfreeze { owner } else { payee };
                                *model.available.entry(target).or_default() += amount;
                                let remaining = { let hold = model.holds.get_mut(&hold_id).unwrap(); hold.1 -= amount; hold.1 };
                                prop_assert_eq!(movement.hold_remaining.0, remaining);
                                if remaining == 0 { model.holds.remove(&hold_id); }
                            }
                        }
                    }
                }
                let mut total = 0i64;
                for (number, book) in &books {
                    book.assert_invariants(AccountId(*number));
                    prop_assert_eq!(book.balance.available.0, model.available.get(number).copied().unwrap_or(0));
                    prop_assert_eq!(book.balance.frozen.0, model.frozen.get(number).copied().unwrap_or(0));
                    // The book's open holds are the model's, and its maps
                    // are kept only while it has any.
                    let mut held: Vec<_> = book.holds().map(|(id, hold)| (id.to_string(), hold.remaining.0)).collect();
                    held.sort();
                    let mut open: Vec<_> = model.holds.iter().filter(|(_, (owner, _))| owner == number).map(|(id, (_, remaining))| (id.clone(), *remaining)).collect();
                    open.sort();
                    prop_assert_eq!(&held, &open);
                    prop_assert_eq!(book.open.is_some(), !held.is_empty());
                    total += book.balance.total().0;
                }
                prop_assert_eq!(total, deposited, "money is conserved");
            }
        }
    }

    #[test]
    fn a_withdrawal_freezes_then_settles_or_releases() {
        let account = AccountId(1);
        let mut book = AccountBook::default();
        book.apply_deposit(account, Money(1000), 1);
        assert_eq!(book.judge_withdrawal(Money(1001), true), Err(Refusal::InsufficientFunds));
        assert_eq!(book.judge_withdrawal(Money(10), false), Err(Refusal::AccountNotActive));
        assert_eq!(book.judge_withdrawal(Money(1000), true), Ok(()));
        book.apply_withdrawal_hold(account, "w1", Money(300), 2);
        book.apply_withdrawal_hold(account, "w2", Money(200), 3);
        assert_eq!(book.balance, Balance { available: Money(500), frozen: Money(500) });
        assert_eq!(book.withdrawals_processing, Money(500));
        assert_eq!(book.judge_withdrawal(Money(501), true), Err(Refusal::InsufficientFunds));
        book.apply_withdrawal_finished(account, "w1", true, 4);
        assert_eq!(book.balance, Balance { available: Money(500), frozen: Money(200) });
        assert!(!book.is_processing("w1") && book.is_processing("w2"));
        assert!(book.open.is_some(), "w2 still processing");
        book.apply_withdrawal_finished(account, "w2", false, 5);
        assert_eq!(book.balance, Balance { available: Money(700), frozen: Money::ZERO });
        assert_eq!(book.withdrawals_processing, Money::ZERO);
        assert_eq!(book.last_lsn, 5);
        assert!(book.open.is_none(), "nothing open: the maps are gone");
    }

    #[test]
    fn holds_and_withdrawals_share_frozen() {
        let account = AccountId(1);
        let mut book = AccountBook::default();
        book.apply_deposit(account, Money(1000), 1);
        let freeze = TransferRequest {
            id: "f".into(),
            kind: TransferType::Freeze,
            payer: Some(account),
            payee: None,
            hold_id: None,
            amount: Some(Money(400)),
            order_id: None,
            memo: None,
        };
        let context =
            Context { own: account, own_active: true, payee_active: true, now_ms: 0, operator: &Arc::from("t") };
        let movement = book.judge(freeze, &context).unwrap();
        book.apply_debit_side(&movement, 2);
        book.apply_withdrawal_hold(account, "w", Money(600), 3);
        assert_eq!(book.balance, Balance { available: Money::ZERO, frozen: Money(1000) });
        assert_eq!(book.judge_withdrawal(Money(1), true), Err(Refusal::InsufficientFunds));
        book.apply_withdrawal_finished(account, "w", true, 4);
        assert_eq!(book.balance, Balance { available: Money::ZERO, frozen: Money(400) });
    }

    #[test]
    fn a_closed_account_refuses_and_same_account_is_refused() {
        let mut book = AccountBook::default();
        book.apply_deposit(AccountId(1), Money(1000), 1);
        let request = TransferRequest {
            id: "t".into(),
            kind: TransferType::Transfer,
            payer: Some(AccountId(1)),
            payee: Some(AccountId(1)),
            hold_id: None,
            amount: Some(Money(10)),
            order_id: None,
            memo: None,
        };
        let mut context =
            Context { own: AccountId(1), own_active: true, payee_active: true, now_ms: 0, operator: &Arc::from("t") };
        assert_eq!(book.judge(request.clone(), &context), Err(Refusal::SameAccount));
        context.own_active = false;
        assert_eq!(book.judge(request, &context), Err(Refusal::AccountNotActive));
    }

    #[test]
    fn a_book_that_breaks_an_invariant_is_named_not_asserted() {
        let mut book = AccountBook::default();
        book.apply_deposit(AccountId(1), Money(1000), 1);
        assert_eq!(book.invariant_violation(AccountId(1)), None);
        let mut frozen_adrift = book.clone();
        frozen_adrift.balance.frozen = Money(5);
        let mut hold_overdrawn = book.clone();
        hold_overdrawn.open_mut().holds.insert("h".into(), Hold { amount: Money(5), remaining: Money(6) });
        hold_overdrawn.balance = Balance { available: Money(994), frozen: Money(6) };
        let mut negative = book.clone();
        negative.balance.available = Money(-1);
        let mut withdrawals_adrift = book;
        withdrawals_adrift.open_mut().withdrawals.insert("w".into(), Money(3));
        // A checkpoint's book whose amounts sum past i64: refused, no panic.
        let huge = [("w1".into(), Money(i64::MAX)), ("w2".into(), Money(i64::MAX))];
        let overflowing = AccountBook::from_parts(
            Balance { available: Money::ZERO, frozen: Money(i64::MAX) },
            std::iter::empty(),
            huge,
            1,
        );
        let huge_holds = [
            ("h1".into(), Hold { amount: Money(i64::MAX), remaining: Money(i64::MAX) }),
            ("h2".into(), Hold { amount: Money(i64::MAX), remaining: Money(i64::MAX) }),
        ];
        let holds_overflowing = AccountBook::from_parts(
            Balance { available: Money::ZERO, frozen: Money(i64::MAX) },
            huge_holds,
            std::iter::empty(),
            1,
        );
        for (what, book) in [
            ("frozen must equal", frozen_adrift),
            ("remaining out of range", hold_overdrawn),
            ("< 0", negative),
            ("withdrawals processing out of step", withdrawals_adrift),
            ("withdrawals processing out of step", overflowing),
            ("frozen must equal", holds_overflowing),
        ] {
            let violation = book.invariant_violation(AccountId(1)).unwrap_or_default();
            assert!(violation.contains(what), "{what}: {violation:?}");
        }
    }
}
