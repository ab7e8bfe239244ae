//! Reconciliation (对账): the ledger's side of a bank's day, the matching of
//! a bank statement against it, and the record finance keeps of each run
//! and of each discrepancy until it is resolved (maker-checker).
//!
//! Owns three pure pieces, each folded from durable records in lsn order
//! by [`crate::finance::history`] (and so by recovery, which replays
//! through the history):
//! - [`BankDays`]: every movement that reaches a bank, by bank and UTC day
//!   of its commit (API.md: notifications credited or put in suspense,
//!   adjustment deposits, suspense returns, transfers of every type,
//!   withdrawals on the day they succeeded).
//! - [`Matcher`]: matches statement lines, streamed one at a time, against
//!   one day's ledger lines by `reference`. Its memory is the day's ledger
//!   lines plus at most [`limits::RECONCILIATION_DISCREPANCIES_MAX`]
//!   discrepancies, whatever the statement's size; the counts are exact.
//! - [`ReconciliationBook`]: runs (`REC000001`), their discrepancies
//!   (`D000001`) and each one's life, `open` → `proposed` → `resolved`, with
//!   the rules a proposal and an approval must meet (two different
//!   operators). `Clone` and self-contained so that a checkpoint can hold
//!   it; the finance actor judges with a copy of it.
//!
//! Must not touch balances, and must not know about actors, HTTP or I/O.

use hashbrown::{HashMap, HashSet};
use std::sync::Arc;

use crate::domain::by_account::ByAccount;
use crate::domain::ids::{AccountId, ApplicationId, DiscrepancyId, ReconciliationId};
use crate::domain::money::Money;
use crate::domain::record::{
    DiscrepancyKind, DiscrepancyLine, DiscrepancyProposed, DiscrepancyResolved, PayoutOutcome, ReconciliationRecorded,
    ReconciliationSummary, Record, Resolution, StatementKind,
};
use crate::limits;

const DAY_MS: i64 = 86_400_000;

/// The UTC day number (days since 1970-01-01) of an instant.
pub fn day_of_ms(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// `YYYY-MM-DD` (exactly that form) to its day number.
pub fn parse_date(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes.iter().enumerate().all(|(index, b)| index == 4 || index == 7 || b.is_ascii_digit());
    if !shaped {
        return None;
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(day_of_ms(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis()))
}

/// One movement of the ledger that the bank should also show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerLine {
    pub lsn: u64,
    pub reference: Box<str>,
    pub kind: StatementKind,
    pub amount: Money,
}

/// The ledger's side of every bank's days: which bank each account,
/// application and suspense entry belongs to, so that each record that a
/// bank should also show is placed on one bank's day ([`BankDays::place`]).
/// The lines themselves are not kept: the history names each placed
/// record in the archive under its bank and day, and a reconciliation
/// reads them back ([`BankDays::line`]).
///
/// Memory: each account's and suspense entry's bank, and the ids of the
/// adjustment deposits (for discrepancy resolutions).
#[derive(Clone, Debug)]
pub struct BankDays {
    /// Bank codes seen, so that the maps hold a small index.
    banks: Vec<Box<str>>,
    /// Application → bank, until approval opens its account.
    application_banks: HashMap<ApplicationId, BankIndex>,
    /// Each account's bank ([`NO_BANK`] for a number no approval gave):
    /// read for every movement ([`ByAccount`], not a hash map).
    account_banks: ByAccount<BankIndex>,
    /// How many of `account_banks`' slots hold a bank. While that is all
    /// of them and one bank is known, every account there is banks there:
    /// placing a movement then reads no slot (a cache miss per movement
    /// over a million accounts, docs/PERFORMANCE.md).
    banked: usize,
    /// Bank of each suspense entry; index = suspense number - 1.
    suspense_banks: Vec<BankIndex>,
    adjustment_ids: HashSet<Box<str>>,
}

type BankIndex = u32;

/// An account number without a bank in [`BankDays::account_banks`].
const NO_BANK: BankIndex = BankIndex::MAX;

impl Default for BankDays {
    fn default() -> Self {
        Self {
            banks: Vec::new(),
            application_banks: HashMap::new(),
            account_banks: ByAccount::new(NO_BANK),
            banked: 0,
            suspense_banks: Vec::new(),
            adjustment_ids: HashSet::new(),
        }
    }
}

/// Where a record shows at a bank: which bank, which day, and its line.
pub struct Placed<'a> {
    pub bank: &'a str,
    pub day: i64,
    pub reference: &'a str,
    pub kind: StatementKind,
    pub amount: Money,
}

/// The archive key of one bank's day (see [`crate::finance::archive`]).
pub fn bank_day_key(bank: &str, day: i64) -> String {
    format!("{bank}\u{1f}{day}")
}

impl BankDays {
    pub fn new() -> Self {
        Self::default()
    }

    /// The days of a state checkpoint: the bank codes in the order they
    /// were met (the maps hold their indexes); the rest is folded again
    /// from the checkpoint's entity records.
    pub fn with_banks(banks: Vec<Box<str>>) -> Self {
        Self { banks, ..Self::default() }
    }

    pub fn banks(&self) -> &[Box<str>] {
        &self.banks
    }

    /// Each account's bank by account number (`u32::MAX`: none) and each
    /// undecided application's, by id: what a state checkpoint keeps of
    /// the registry for a fold that does not read it again.
    pub fn places(&self) -> (Vec<u32>, Vec<(ApplicationId, u32)>) {
        let mut applications: Vec<_> = self.application_banks.iter().map(|(id, bank)| (*id, *bank)).collect();
        applications.sort_unstable();
        (self.account_banks.values().copied().collect(), applications)
    }

    /// The places of [`BankDays::places`], into days restored from a
    /// checkpoint's banks (nothing folded yet); refused when a place names
    /// a bank the checkpoint does not have.
    pub fn restore_places(
        &mut self,
        accounts: Vec<u32>,
        applications: Vec<(ApplicationId, u32)>,
    ) -> Result<(), String> {
        let known = |bank: u32| bank == NO_BANK || (bank as usize) < self.banks.len();
        if !accounts.iter().chain(applications.iter().map(|(_, bank)| bank)).all(|&bank| known(bank)) {
            return Err(format!("a bank place outside the {} banks", self.banks.len()));
        }
        if accounts.len() > limits::ACCOUNTS_MAX as usize {
            return Err(format!("{} account banks, more than accounts can be", accounts.len()));
        }
        self.banked = accounts.iter().filter(|&&bank| bank != NO_BANK).count();
        self.account_banks = ByAccount::from_values(accounts, NO_BANK);
        self.application_banks = applications.into_iter().collect();
        Ok(())
    }

    /// Whether an adjustment deposit with this id was committed.
    pub fn has_adjustment(&self, id: &str) -> bool {
        self.adjustment_ids.contains(id)
    }

    /// The index of a bank code (few banks: a linear search).
    fn bank_index(&mut self, bank: &str) -> BankIndex {
        match self.banks.iter().position(|known| &**known == bank) {
            Some(index) => index as BankIndex,
            None => {
                self.banks.push(bank.into());
                (self.banks.len() - 1) as BankIndex
            }
        }
    }

    fn account_bank(&self, account: AccountId) -> Option<BankIndex> {
        if self.one_bank_for_all() {
            let listed = account.0 >= 1 && account.0 <= self.account_banks.len() as u64;
            return listed.then_some(0);
        }
        Some(self.account_banks.get(account)).filter(|&bank| bank != NO_BANK)
    }

    /// Whether one bank is known and every listed account banks there.
    fn one_bank_for_all(&self) -> bool {
        self.banks.len() == 1 && self.banked == self.account_banks.len()
    }

    /// Start loading what [`BankDays::place`] reads of `account` (a hint).
    pub fn prefetch_account(&self, account: AccountId) {
        if !self.one_bank_for_all() {
            self.account_banks.prefetch(account);
        }
    }

    fn suspense_bank(&self, suspense_number: u64) -> BankIndex {
        let index = usize::try_from(suspense_number).ok().and_then(|n| n.checked_sub(1));
        index
            .and_then(|index| self.suspense_banks.get(index))
            .copied()
            .expect("records name suspense entries that exist")
    }

    /// Fold one durable record, in lsn order.
    pub fn apply(&mut self, _lsn: u64, record: &Record) {
        match record {
            Record::ApplicationCreated(application) => {
                let bank = self.bank_index(&application.bank);
                self.application_banks.insert(application.application_id, bank);
            }
            Record::ApplicationApproved(decision) => {
                if let (Some(account), Some(bank)) =
                    (decision.account_id, self.application_banks.remove(&decision.application_id))
                {
                    let slot = self.account_banks.get_mut(account);
                    if *slot == NO_BANK {
                        self.banked += 1;
                    }
                    *slot = bank;
                }
            }
            Record::ApplicationRejected(decision) => {
                self.application_banks.remove(&decision.application_id);
            }
            Record::Deposit(deposit) => {
                self.bank_index(&deposit.notification.bank);
            }
            Record::SuspenseOpened(entry) => {
                let bank = self.bank_index(&entry.notification.bank);
                self.suspense_banks.push(bank);
            }
            Record::AdjustmentDeposit(adjustment) => {
                self.adjustment_ids.insert(adjustment.id.clone());
            }
            _ => {}
        }
    }

    /// Where `record` shows at a bank, if it does (after it was applied).
    pub fn place<'a>(&'a self, record: &'a Record) -> Option<Placed<'a>> {
        let bank_code = |index: BankIndex| self.banks.get(index as usize).map(|bank| &**bank);
        let (bank, at_ms, reference, kind, amount) = match record {
            Record::Movement(movement) => {
                let bank = self.account_bank(movement.payer)?;
                (bank, movement.committed_at_ms, &*movement.id, StatementKind::ForcedTransfer, movement.amount)
            }
            Record::Deposit(deposit) => {
                let notification = &deposit.notification;
                let bank = self.banks.iter().position(|known| *known == notification.bank)? as BankIndex;
                (bank, deposit.at_ms, &*notification.notification_id, StatementKind::Credit, notification.amount)
            }
            Record::SuspenseOpened(entry) => {
                let notification = &entry.notification;
                let bank = self.suspense_bank(entry.suspense_id.0);
                (bank, entry.at_ms, &*notification.notification_id, StatementKind::Credit, notification.amount)
            }
            Record::AdjustmentDeposit(adjustment) => {
                let bank = self.suspense_bank(adjustment.suspense_id.0);
                (bank, adjustment.at_ms, &*adjustment.id, StatementKind::Adjustment, adjustment.amount)
            }
            Record::SuspenseReturned(returned) => {
                let bank = self.suspense_bank(returned.suspense_id.0);
                (bank, returned.at_ms, &*returned.id, StatementKind::Return, returned.amount)
            }
            Record::WithdrawalFinished(finished) if matches!(finished.outcome, PayoutOutcome::Succeeded { .. }) => {
                let bank = self.account_bank(finished.account_id)?;
                (bank, finished.finished_at_ms, &*finished.id, StatementKind::Payout, finished.amount)
            }
            _ => return None,
        };
        Some(Placed { bank: bank_code(bank)?, day: day_of_ms(at_ms), reference, kind, amount })
    }

    /// The ledger line of `record` (at `lsn`) if it shows on `bank`'s `day`.
    pub fn line(&self, lsn: u64, record: &Record, bank: &str, day: i64) -> Option<LedgerLine> {
        let placed = self.place(record).filter(|placed| placed.bank == bank && placed.day == day)?;
        Some(LedgerLine { lsn, reference: placed.reference.into(), kind: placed.kind, amount: placed.amount })
    }
}

/// One line of a bank statement, as far as matching needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankLine {
    pub reference: Box<str>,
    pub kind: StatementKind,
    pub amount: Money,
}

/// Matches a statement, line by line, against one day of the ledger.
///
/// A bank line matches an unmatched ledger line with its `reference`
/// (preferring one of the same kind: a bank's notification ids and the
/// clients' ids are separate spaces and may collide). Equal amounts:
/// matched; different: `amount_mismatch`. No ledger line left for the
/// reference (a repeated bank line included): `missing_in_ledger`. Ledger
/// lines no bank line matched: `missing_in_bank`, in lsn order.
pub struct Matcher {
    ledger: Vec<(LedgerLine, bool)>,
    by_reference: HashMap<Box<str>, Vec<usize>>,
    summary: ReconciliationSummary,
    discrepancies: Vec<DiscrepancyLine>,
    discrepancies_max: usize,
}

impl Matcher {
    pub fn new(ledger: Vec<LedgerLine>, discrepancies_max: usize) -> Self {
        let mut by_reference: HashMap<Box<str>, Vec<usize>> = HashMap::with_capacity(ledger.len());
        for (index, line) in ledger.iter().enumerate() {
            by_reference.entry(line.reference.clone()).or_default().push(index);
        }
        let summary = ReconciliationSummary { ledger_lines: ledger.len() as u64, ..Default::default() };
        let ledger = ledger.into_iter().map(|line| (line, false)).collect();
        Self { ledger, by_reference, summary, discrepancies: Vec::new(), discrepancies_max }
    }

    fn note(&mut self, line: DiscrepancyLine) {
        if self.discrepancies.len() < self.discrepancies_max {
            self.discrepancies.push(line);
        }
    }

    pub fn bank_line(&mut self, line: &BankLine) {
        self.summary.bank_lines += 1;
        let candidates = self.by_reference.get(&line.reference).map_or(&[][..], Vec::as_slice);
        let unmatched = |index: &&usize| !self.ledger[**index].1;
        let found = candidates
            .iter()
            .filter(unmatched)
            .find(|index| self.ledger[**index].0.kind == line.kind)
            .or_else(|| candidates.iter().find(unmatched))
            .copied();
        let Some(index) = found else {
            self.summary.missing_in_ledger += 1;
            let reference = line.reference.clone();
            let kind = DiscrepancyKind::MissingInLedger;
            return self.note(DiscrepancyLine { kind, reference, ledger_amount: None, bank_amount: Some(line.amount) });
        };
        self.ledger[index].1 = true;
        let ledger_amount = self.ledger[index].0.amount;
        if ledger_amount == line.amount {
            self.summary.matched += 1;
        } else {
            self.summary.amount_mismatch += 1;
            self.note(DiscrepancyLine {
                kind: DiscrepancyKind::AmountMismatch,
                reference: line.reference.clone(),
                ledger_amount: Some(ledger_amount),
                bank_amount: Some(line.amount),
            });
        }
    }

    /// The counts and the first discrepancies (missing_in_bank last).
    pub fn finish(mut self) -> (ReconciliationSummary, Vec<DiscrepancyLine>) {
        let ledger = std::mem::take(&mut self.ledger);
        for (line, matched) in ledger {
            if !matched {
                self.summary.missing_in_bank += 1;
                self.note(DiscrepancyLine {
                    kind: DiscrepancyKind::MissingInBank,
                    reference: line.reference,
                    ledger_amount: Some(line.amount),
                    bank_amount: None,
                });
            }
        }
        let summary = self.summary;
        assert_eq!(summary.matched + summary.amount_mismatch + summary.missing_in_ledger, summary.bank_lines);
        assert_eq!(summary.matched + summary.amount_mismatch + summary.missing_in_bank, summary.ledger_lines);
        (summary, self.discrepancies)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscrepancyStatus {
    Open,
    Proposed,
    Resolved,
}

impl DiscrepancyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Proposed => "proposed",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Open, Self::Proposed, Self::Resolved].into_iter().find(|status| status.as_str() == text)
    }
}

#[derive(Clone, Debug)]
pub struct DiscrepancyState {
    pub discrepancy_id: DiscrepancyId,
    pub reconciliation_id: ReconciliationId,
    pub line: DiscrepancyLine,
    pub proposal: Option<Arc<DiscrepancyProposed>>,
    pub resolution: Option<Arc<DiscrepancyResolved>>,
}

impl DiscrepancyState {
    pub fn status(&self) -> DiscrepancyStatus {
        match (&self.proposal, &self.resolution) {
            (_, Some(_)) => DiscrepancyStatus::Resolved,
            (Some(_), None) => DiscrepancyStatus::Proposed,
            (None, None) => DiscrepancyStatus::Open,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Run {
    pub lsn: u64,
    pub record: Arc<ReconciliationRecorded>,
}

/// Why a proposal or an approval was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscrepancyRefusal {
    NotFound,
    /// Proposing needs `open`, approving `proposed`; this is the status.
    InvalidState(DiscrepancyStatus),
    /// The approver proposed it (maker-checker needs two people).
    SameOperator,
}

/// A judged request: apply it, or it is a repeat of what already happened
/// (the same operator asking the same again): answer the current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judged {
    Apply,
    Repeat,
}

/// Every reconciliation run and discrepancy, with their rules.
#[derive(Clone, Debug, Default)]
pub struct ReconciliationBook {
    /// Index = reconciliation number - 1.
    runs: Vec<Run>,
    /// Index = discrepancy number - 1.
    discrepancies: Vec<DiscrepancyState>,
}

impl ReconciliationBook {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn next_reconciliation_id(&self) -> ReconciliationId {
        ReconciliationId(self.runs.len() as u64 + 1)
    }

    pub fn next_discrepancy_id(&self) -> DiscrepancyId {
        DiscrepancyId(self.discrepancies.len() as u64 + 1)
    }

    pub fn run(&self, id: ReconciliationId) -> Option<&Run> {
        self.runs.get(usize::try_from(id.0).ok()?.checked_sub(1)?)
    }

    pub fn discrepancy(&self, id: DiscrepancyId) -> Option<&DiscrepancyState> {
        self.discrepancies.get(usize::try_from(id.0).ok()?.checked_sub(1)?)
    }

    pub fn discrepancies(&self) -> &[DiscrepancyState] {
        &self.discrepancies
    }

    /// The discrepancies a run recorded, in order.
    pub fn discrepancies_of(&self, run: &ReconciliationRecorded) -> &[DiscrepancyState] {
        let start = usize::try_from(run.first_discrepancy_id.0).unwrap_or(usize::MAX).saturating_sub(1);
        let end = start.saturating_add(run.discrepancies.len()).min(self.discrepancies.len());
        self.discrepancies.get(start..end).unwrap_or(&[])
    }

    pub fn judge_proposal(
        &self,
        id: DiscrepancyId,
        resolution: &Resolution,
        operator: &str,
    ) -> Result<Judged, DiscrepancyRefusal> {
        let state = self.discrepancy(id).ok_or(DiscrepancyRefusal::NotFound)?;
        match (state.status(), &state.proposal) {
            (DiscrepancyStatus::Open, _) => Ok(Judged::Apply),
            (DiscrepancyStatus::Proposed, Some(proposal))
                if &*proposal.operator == operator && proposal.resolution == *resolution =>
            {
                Ok(Judged::Repeat)
            }
            (status, _) => Err(DiscrepancyRefusal::InvalidState(status)),
        }
    }

    pub fn judge_approval(&self, id: DiscrepancyId, operator: &str) -> Result<Judged, DiscrepancyRefusal> {
        let state = self.discrepancy(id).ok_or(DiscrepancyRefusal::NotFound)?;
        match (state.status(), &state.proposal, &state.resolution) {
            (DiscrepancyStatus::Resolved, _, Some(resolved)) if &*resolved.operator == operator => Ok(Judged::Repeat),
            (DiscrepancyStatus::Proposed, Some(proposal), _) if &*proposal.operator == operator => {
                Err(DiscrepancyRefusal::SameOperator)
            }
            (DiscrepancyStatus::Proposed, _, _) => Ok(Judged::Apply),
            (status, _, _) => Err(DiscrepancyRefusal::InvalidState(status)),
        }
    }

    /// Fold one durable record, in lsn order; other records are ignored.
    pub fn apply(&mut self, lsn: u64, record: &Record) {
        match record {
            Record::ReconciliationRecorded(run) => {
                assert_eq!(run.reconciliation_id, self.next_reconciliation_id(), "reconciliation ids are sequential");
                assert_eq!(run.first_discrepancy_id, self.next_discrepancy_id(), "discrepancy ids are sequential");
                assert!(run.discrepancies.len() <= limits::RECONCILIATION_DISCREPANCIES_MAX);
                assert!(run.discrepancies.len() as u64 <= run.summary.discrepancies());
                for line in &run.discrepancies {
                    self.discrepancies.push(DiscrepancyState {
                        discrepancy_id: self.next_discrepancy_id(),
                        reconciliation_id: run.reconciliation_id,
                        line: line.clone(),
                        proposal: None,
                        resolution: None,
                    });
                }
                self.runs.push(Run { lsn, record: Arc::clone(run) });
            }
            Record::DiscrepancyProposed(proposed) => {
                let state = self.discrepancy_mut(proposed.discrepancy_id);
                assert_eq!(state.status(), DiscrepancyStatus::Open, "{}: proposed twice", proposed.discrepancy_id);
                state.proposal = Some(Arc::clone(proposed));
            }
            Record::DiscrepancyResolved(resolved) => {
                let state = self.discrepancy_mut(resolved.discrepancy_id);
                assert_eq!(state.status(), DiscrepancyStatus::Proposed, "{}: not proposed", resolved.discrepancy_id);
                let proposer = state.proposal.as_ref().map(|proposal| proposal.operator.clone());
                assert_ne!(proposer.as_deref(), Some(&*resolved.operator), "maker-checker: two operators");
                state.resolution = Some(Arc::clone(resolved));
            }
            _ => {}
        }
    }

    fn discrepancy_mut(&mut self, id: DiscrepancyId) -> &mut DiscrepancyState {
        let index = usize::try_from(id.0).ok().and_then(|n| n.checked_sub(1)).expect("discrepancy ids start at 1");
        self.discrepancies.get_mut(index).expect("records name discrepancies that exist")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(reference: &str, kind: StatementKind, fen: i64) -> LedgerLine {
        LedgerLine { lsn: 1, reference: reference.into(), kind, amount: Money(fen) }
    }

    fn bank(reference: &str, kind: StatementKind, fen: i64) -> BankLine {
        BankLine { reference: reference.into(), kind, amount: Money(fen) }
    }

    #[test]
    fn one_of_each_discrepancy_and_exact_counts() {
        use StatementKind::*;
        let day = vec![
            ledger("t-1", ForcedTransfer, 100),
            ledger("t-2", ForcedTransfer, 200),
            ledger("N1", Credit, 500),
            ledger("w-1", Payout, 50),
        ];
        let mut matcher = Matcher::new(day, 10);
        matcher.bank_line(&bank("t-1", ForcedTransfer, 100));
        matcher.bank_line(&bank("N1", Credit, 499));
        matcher.bank_line(&bank("w-1", Payout, 50));
        matcher.bank_line(&bank("x-9", ForcedTransfer, 7));
        let (summary, discrepancies) = matcher.finish();
        assert_eq!(
            summary,
            ReconciliationSummary {
                bank_lines: 4,
                ledger_lines: 4,
                matched: 2,
                missing_in_ledger: 1,
                missing_in_bank: 1,
                amount_mismatch: 1
            }
        );
        let kinds: Vec<_> = discrepancies.iter().map(|d| (d.kind, &*d.reference)).collect();
        assert_eq!(
            kinds,
            vec![
                (DiscrepancyKind::AmountMismatch, "N1"),
                (DiscrepancyKind::MissingInLedger, "x-9"),
                (DiscrepancyKind::MissingInBank, "t-2")
            ]
        );
    }

    #[test]
    fn a_repeated_bank_line_is_missing_in_ledger_and_the_cap_keeps_counts_exact() {
        let mut matcher = Matcher::new(vec![ledger("t-1", StatementKind::ForcedTransfer, 1)], 2);
        for _ in 0..5 {
            matcher.bank_line(&bank("t-1", StatementKind::ForcedTransfer, 1));
        }
        let (summary, discrepancies) = matcher.finish();
        assert_eq!((summary.matched, summary.missing_in_ledger), (1, 4));
        assert_eq!(discrepancies.len(), 2);
    }

    #[test]
    fn colliding_references_prefer_the_same_kind() {
        let day = vec![ledger("N1", StatementKind::ForcedTransfer, 1), ledger("N1", StatementKind::Credit, 2)];
        let mut matcher = Matcher::new(day, 10);
        matcher.bank_line(&bank("N1", StatementKind::Credit, 2));
        matcher.bank_line(&bank("N1", StatementKind::ForcedTransfer, 1));
        assert_eq!(matcher.finish().0.matched, 2);
    }

    #[test]
    fn dates_parse_only_in_their_one_form() {
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_date("2026-11-24"), Some(day_of_ms(1_795_478_400_000)));
        for bad in ["2026-1-24", "2026-13-01", "2026-02-30", "20261124", "", "2026-11-24T00:00:00Z", "+026-11-24"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(day_of_ms(-1), -1);
    }

    fn recorded(id: u64, first: u64, lines: usize) -> Record {
        let line = DiscrepancyLine {
            kind: DiscrepancyKind::MissingInBank,
            reference: "t".into(),
            ledger_amount: Some(Money(1)),
            bank_amount: None,
        };
        Record::ReconciliationRecorded(Arc::new(ReconciliationRecorded {
            reconciliation_id: ReconciliationId(id),
            bank: "B".into(),
            date: "2026-11-24".into(),
            uploaded: true,
            summary: ReconciliationSummary {
                ledger_lines: lines as u64,
                missing_in_bank: lines as u64,
                ..Default::default()
            },
            discrepancies: vec![line; lines],
            first_discrepancy_id: DiscrepancyId(first),
            at_ms: 0,
            operator: "a".into(),
        }))
    }

    #[test]
    fn the_largest_run_record_fits_in_one_log_record() {
        let line = DiscrepancyLine {
            kind: DiscrepancyKind::AmountMismatch,
            reference: "x".repeat(crate::domain::ids::CLIENT_ID_CHARS_MAX).into(),
            ledger_amount: Some(Money(i64::MAX)),
            bank_amount: Some(Money(i64::MAX)),
        };
        let record = Record::ReconciliationRecorded(Arc::new(ReconciliationRecorded {
            reconciliation_id: ReconciliationId(u64::MAX),
            bank: "B".repeat(64).into(),
            date: "2026-11-24".into(),
            uploaded: true,
            summary: ReconciliationSummary { bank_lines: u64::MAX, ..Default::default() },
            discrepancies: vec![line; limits::RECONCILIATION_DISCREPANCIES_MAX],
            first_discrepancy_id: DiscrepancyId(u64::MAX),
            at_ms: i64::MAX,
            operator: "o".repeat(256).into(),
        }));
        let mut bytes = Vec::new();
        crate::codec::encode_into(&record, &mut bytes).unwrap();
        assert!(bytes.len() < limits::RECORD_BYTES_MAX, "{} bytes", bytes.len());
    }

    #[test]
    fn the_ledger_side_is_kept_by_bank_and_utc_day() {
        use crate::domain::record::{Deposit, Notification};
        let deposit = |bank: &str, id: &str, at_ms: i64| {
            Record::Deposit(Arc::new(Deposit {
                notification: Notification {
                    bank: bank.into(),
                    notification_id: id.into(),
                    bank_serial: id.into(),
                    to_account_no: "1".into(),
                    amount: Money(5),
                    payer_name: "p".into(),
                    payer_account_no: "2".into(),
                    booked_at: "".into(),
                },
                account_id: AccountId(1),
                at_ms,
            }))
        };
        let mut days = BankDays::new();
        let records = [deposit("A", "N1", DAY_MS - 1), deposit("A", "N2", DAY_MS), deposit("B", "N3", DAY_MS + 5)];
        for (lsn, record) in records.iter().enumerate() {
            days.apply(lsn as u64 + 1, record);
        }
        let references = |bank: &str, day: i64| -> Vec<String> {
            let lines =
                records.iter().enumerate().filter_map(|(lsn, record)| days.line(lsn as u64 + 1, record, bank, day));
            lines.map(|line| line.reference.to_string()).collect()
        };
        assert_eq!(references("A", 0), ["N1"]);
        assert_eq!(references("A", 1), ["N2"]);
        assert_eq!(references("B", 1), ["N3"]);
        assert!(references("C", 1).is_empty());
    }

    #[test]
    fn maker_checker_needs_two_operators_and_repeats_are_answered() {
        let mut book = ReconciliationBook::new();
        book.apply(1, &recorded(1, 1, 2));
        book.apply(2, &recorded(2, 3, 1));
        assert_eq!(book.next_discrepancy_id(), DiscrepancyId(4));
        assert_eq!(
            book.discrepancies_of(&book.run(ReconciliationId(2)).unwrap().record.clone())[0].discrepancy_id.0,
            3
        );
        let note = Resolution { note: Some("bank fee".into()), adjustment_id: None };
        let id = DiscrepancyId(1);
        assert_eq!(book.judge_proposal(DiscrepancyId(9), &note, "a"), Err(DiscrepancyRefusal::NotFound));
        assert_eq!(book.judge_approval(id, "b"), Err(DiscrepancyRefusal::InvalidState(DiscrepancyStatus::Open)));
        assert_eq!(book.judge_proposal(id, &note, "a"), Ok(Judged::Apply));
        let proposed =
            DiscrepancyProposed { discrepancy_id: id, resolution: note.clone(), at_ms: 0, operator: "a".into() };
        book.apply(3, &Record::DiscrepancyProposed(Arc::new(proposed)));
        assert_eq!(book.judge_proposal(id, &note, "a"), Ok(Judged::Repeat));
        let other = Resolution { note: Some("other".into()), adjustment_id: None };
        assert_eq!(
            book.judge_proposal(id, &other, "a"),
            Err(DiscrepancyRefusal::InvalidState(DiscrepancyStatus::Proposed))
        );
        assert_eq!(book.judge_approval(id, "a"), Err(DiscrepancyRefusal::SameOperator));
        assert_eq!(book.judge_approval(id, "b"), Ok(Judged::Apply));
        let resolved = DiscrepancyResolved { discrepancy_id: id, note: None, at_ms: 0, operator: "b".into() };
        book.apply(4, &Record::DiscrepancyResolved(Arc::new(resolved)));
        assert_eq!(book.discrepancy(id).unwrap().status(), DiscrepancyStatus::Resolved);
        assert_eq!(book.judge_approval(id, "b"), Ok(Judged::Repeat));
        assert_eq!(book.judge_approval(id, "c"), Err(DiscrepancyRefusal::InvalidState(DiscrepancyStatus::Resolved)));
        let copy = book.clone();
        assert_eq!(copy.discrepancy(id).unwrap().status(), DiscrepancyStatus::Resolved);
    }

    /// Accounts' banks by account number: a movement shows at its payer's
    /// bank; a number no approval gave (a gap, none yet, zero) shows
    /// nowhere.
    #[test]
    fn a_movement_is_placed_at_its_payers_bank() {
        use crate::domain::record::fixtures;
        let mut days = BankDays::default();
        for (number, bank) in [(1, "BANK_A"), (3, "BANK_B")] {
            days.apply(0, &Record::ApplicationCreated(Arc::new(fixtures::application(number, bank))));
            days.apply(0, &Record::ApplicationApproved(fixtures::approval(number)));
        }
        let from =
            |payer: u64| Record::Movement(Arc::new(fixtures::transfer(&format!("t-{payer}"), payer, 1, 5, 86_400_000)));
        let bank_of = |payer: u64| days.place(&from(payer)).map(|placed| (placed.bank.to_owned(), placed.day));
        assert_eq!(bank_of(1), Some(("BANK_A".to_owned(), 1)));
        assert_eq!(bank_of(3), Some(("BANK_B".to_owned(), 1)));
        for nowhere in [0, 2, 4, u64::MAX] {
            assert_eq!(bank_of(nowhere), None, "account {nowhere}");
        }
    }

    /// With one bank known and every listed account banked there, a
    /// movement is placed without its payer's slot being read: the same
    /// places as reading it, gaps (a number no approval gave) and numbers
    /// past the list included, whether folded or restored.
    #[test]
    fn with_one_bank_every_listed_account_is_placed_there() {
        use crate::domain::record::fixtures;
        let from =
            |payer: u64| Record::Movement(Arc::new(fixtures::transfer(&format!("t-{payer}"), payer, 1, 5, 86_400_000)));
        let banks_of = |days: &BankDays| -> Vec<Option<String>> {
            [0, 1, 2, 3, 4, u64::MAX]
                .into_iter()
                .map(|payer| days.place(&from(payer)).map(|placed| placed.bank.to_owned()))
                .collect()
        };
        let a = || Some("BANK_A".to_owned());
        let mut days = BankDays::default();
        for number in [1, 3] {
            days.apply(0, &Record::ApplicationCreated(Arc::new(fixtures::application(number, "BANK_A"))));
            days.apply(0, &Record::ApplicationApproved(fixtures::approval(number)));
        }
        assert!(!days.one_bank_for_all(), "account 2 has no bank yet");
        assert_eq!(banks_of(&days), [None, a(), None, a(), None, None]);
        days.apply(0, &Record::ApplicationCreated(Arc::new(fixtures::application(2, "BANK_A"))));
        days.apply(0, &Record::ApplicationApproved(fixtures::approval(2)));
        assert!(days.one_bank_for_all());
        assert_eq!(banks_of(&days), [None, a(), a(), a(), None, None]);

        let (accounts, applications) = days.places();
        let mut restored = BankDays::with_banks(days.banks().to_vec());
        restored.restore_places(accounts, applications).expect("its own places");
        assert!(restored.one_bank_for_all());
        for state in [&days, &restored] {
            assert_eq!(state.banked, state.account_banks.values().filter(|&&bank| bank != NO_BANK).count());
        }
        assert_eq!(banks_of(&restored), banks_of(&days));
        let mut gap = BankDays::with_banks(days.banks().to_vec());
        gap.restore_places(vec![0, NO_BANK, 0], Vec::new()).expect("places within its bank");
        assert!(!gap.one_bank_for_all(), "a restored gap");
        assert_eq!(banks_of(&gap), [None, a(), None, a(), None, None]);

        let second = Record::ApplicationCreated(Arc::new(fixtures::application(4, "BANK_B")));
        days.apply(0, &second);
        assert!(!days.one_bank_for_all(), "a second bank");
        assert_eq!(banks_of(&days), [None, a(), a(), a(), None, None]);
    }
}
