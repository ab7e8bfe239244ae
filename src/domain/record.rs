//! What the log stores: the results of committed changes, never requests.
//!
//! Replay applies these without judging any business rule again (DESIGN.md,
//! Write-ahead log), so each record carries everything its effect needs:
//! the movement's amount (defaults already resolved), both accounts, the
//! hold it opened or touched, its time and operator.
//!
//! Schema evolution: variants are only ever appended; the codec prefixes
//! every payload with [`RECORD_SCHEMA_VERSION`], and a reader refuses a
//! version it does not know rather than guess. A type whose fields changed
//! between versions decodes by the payload's version ([`RecordSchema`], the
//! decoder's context).
//!
//! | version | change |
//! |---|---|
//! | 1 | the first |
//! | 2 | [`BankSync::lsn`]: a bank's answer names the lsn of the record it answers |

use std::sync::Arc;

use bincode::{Decode, Encode};

use super::ids::{AccountId, ApplicationId, DiscrepancyId, ReconciliationId, SuspenseId};
use super::money::Money;

/// The version this build writes.
pub const RECORD_SCHEMA_VERSION: u8 = 2;
/// The oldest version this build still reads.
pub const RECORD_SCHEMA_OLDEST: u8 = 1;

/// The schema version of the payload being decoded: the context of every
/// record decode, so that a type can read what an older version wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordSchema(pub u8);

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[bincode(decode_context = "RecordSchema")]
pub enum Record {
    ApplicationCreated(Arc<Application>),
    ApplicationApproved(ApplicationDecision),
    ApplicationRejected(ApplicationDecision),
    AccountSigned {
        account_id: AccountId,
        sub_account_no: Box<str>,
        at_ms: i64,
    },
    AccountSignFailed {
        account_id: AccountId,
        reason: Box<str>,
        at_ms: i64,
    },
    Movement(Arc<Movement>),
    Deposit(Arc<Deposit>),
    SuspenseOpened(Arc<SuspenseEntry>),
    /// A withdrawal accepted: its amount moved from available to frozen
    /// (journal `withdrawal_hold`); the payout is pending at the bank.
    WithdrawalRequested(Arc<Withdrawal>),
    /// The bank's final answer to a withdrawal's payout (journal
    /// `withdrawal_settled` or `withdrawal_released`).
    WithdrawalFinished(Arc<WithdrawalFinished>),
    /// Finance credited an account out of a suspense entry (调帐入款).
    AdjustmentDeposit(Arc<Adjustment>),
    /// Finance sent a suspense entry's remaining back to the payer (退票).
    SuspenseReturned(Arc<SuspenseReturn>),
    /// The bank's final answer to an outbox instruction (forced transfer,
    /// adjustment or return), by the ledger's reference.
    BankSynced(Arc<BankSync>),
    /// Finance reconciled one bank's day: the summary and the first
    /// discrepancies (at most `limits::RECONCILIATION_DISCREPANCIES_MAX`),
    /// numbered from `first_discrepancy_id` on. Never touches balances.
    ReconciliationRecorded(Arc<ReconciliationRecorded>),
    /// A finance operator proposed how a discrepancy is resolved (maker).
    DiscrepancyProposed(Arc<DiscrepancyProposed>),
    /// Another finance operator approved the proposal (checker): resolved.
    DiscrepancyResolved(Arc<DiscrepancyResolved>),
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SettlementAccount {
    pub bank_name: Box<str>,
    pub account_no: Box<str>,
    /// The holder: an application's own name (same-name accounts), shared
    /// with [`Application::name`] (encoded as a plain string).
    pub account_name: Arc<str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Application {
    pub application_id: ApplicationId,
    /// Shared with its settlement account's holder name (encoded as a
    /// plain string): kept per account for life, one allocation less each.
    pub name: Arc<str>,
    pub credential_no: Box<str>,
    pub bank: Box<str>,
    pub settlement_account: SettlementAccount,
    pub created_at_ms: i64,
    /// Shared with the caller's token (encoded as a plain string): kept per
    /// account for life, one allocation less each.
    pub operator: Arc<str>,
}

/// Approval (which opens account `account_id` in status `signing`) or
/// rejection of an application.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ApplicationDecision {
    pub application_id: ApplicationId,
    /// Set on approval only.
    pub account_id: Option<AccountId>,
    /// The approval's note or the rejection's reason.
    pub text: Option<Box<str>>,
    pub decided_at_ms: i64,
    /// As [`Application::operator`].
    pub operator: Arc<str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum TransferType {
    Transfer,
    Freeze,
    Unfreeze,
    UnfreezePay,
    PayFreeze,
}

impl TransferType {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "transfer" => Self::Transfer,
            "freeze" => Self::Freeze,
            "unfreeze" => Self::Unfreeze,
            "unfreeze_pay" => Self::UnfreezePay,
            "pay_freeze" => Self::PayFreeze,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transfer => "transfer",
            Self::Freeze => "freeze",
            Self::Unfreeze => "unfreeze",
            Self::UnfreezePay => "unfreeze_pay",
            Self::PayFreeze => "pay_freeze",
        }
    }

    /// Types that open a hold named by their own id.
    pub fn opens_hold(self) -> bool {
        matches!(self, Self::Freeze | Self::PayFreeze)
    }

    /// Types that act on an existing hold (`hold_id`).
    pub fn uses_hold(self) -> bool {
        matches!(self, Self::Unfreeze | Self::UnfreezePay)
    }

    /// Types that credit a second account.
    pub fn has_payee(self) -> bool {
        matches!(self, Self::Transfer | Self::UnfreezePay | Self::PayFreeze)
    }
}

/// One committed movement of any of the five types. Decoded by hand
/// (below), in the order the derived encoding writes the fields.
#[derive(Clone, Debug, PartialEq, Eq, Encode)]
pub struct Movement {
    pub id: Box<str>,
    pub kind: TransferType,
    /// The account money left: the payer, or the hold's account for
    /// `unfreeze` and `unfreeze_pay`. Its actor wrote this record.
    pub payer: AccountId,
    pub payee: Option<AccountId>,
    pub amount: Money,
    /// The amount as the request gave it (`None` when `unfreeze*` took the
    /// hold's remaining by default); kept so that a retry is compared with
    /// what was asked, not with what was resolved.
    pub requested_amount: Option<Money>,
    /// The hold this movement opened (its own id) or touched.
    pub hold_id: Option<Box<str>>,
    /// The hold's account, amount and remaining after this movement.
    pub hold_account: Option<AccountId>,
    pub hold_amount: Money,
    pub hold_remaining: Money,
    pub order_id: Option<Box<str>>,
    pub memo: Option<Box<str>>,
    pub committed_at_ms: i64,
    /// Shared by every movement of one caller's request (one allocation
    /// per token, not per movement); encoded as a string like the others.
    pub operator: Arc<str>,
}

impl<Context> Decode<Context> for Movement {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        use crate::codec::fields;
        Ok(Self {
            id: fields::boxed_str(decoder)?,
            kind: Decode::decode(decoder)?,
            payer: Decode::decode(decoder)?,
            payee: Decode::decode(decoder)?,
            amount: Decode::decode(decoder)?,
            requested_amount: Decode::decode(decoder)?,
            hold_id: fields::optional_boxed_str(decoder)?,
            hold_account: Decode::decode(decoder)?,
            hold_amount: Decode::decode(decoder)?,
            hold_remaining: Decode::decode(decoder)?,
            order_id: fields::optional_boxed_str(decoder)?,
            memo: fields::optional_boxed_str(decoder)?,
            committed_at_ms: Decode::decode(decoder)?,
            operator: fields::shared_str(decoder)?,
        })
    }
}
bincode::impl_borrow_decode!(Movement);

/// A bank credit that went to a customer's available balance.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Deposit {
    pub notification: Notification,
    pub account_id: AccountId,
    pub at_ms: i64,
}

/// The bank's notification as received (after its signature was checked).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Notification {
    pub bank: Box<str>,
    pub notification_id: Box<str>,
    pub bank_serial: Box<str>,
    pub to_account_no: Box<str>,
    pub amount: Money,
    pub payer_name: Box<str>,
    pub payer_account_no: Box<str>,
    pub booked_at: Box<str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum SuspenseReason {
    AdjustmentAccount,
    NameMismatch,
    UnknownAccount,
}

impl SuspenseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AdjustmentAccount => "adjustment_account",
            Self::NameMismatch => "name_mismatch",
            Self::UnknownAccount => "unknown_account",
        }
    }
}

/// A bank credit that no customer could be credited with automatically.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SuspenseEntry {
    pub suspense_id: SuspenseId,
    pub notification: Notification,
    pub reason: SuspenseReason,
    pub at_ms: i64,
}

/// A withdrawal (出金) as accepted: everything its payout needs, so that a
/// replay can resend it without reading anything else.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Withdrawal {
    pub id: Box<str>,
    pub account_id: AccountId,
    pub amount: Money,
    pub memo: Option<Box<str>>,
    pub bank: Box<str>,
    /// The account's same-name settlement account at the time of the request.
    pub settlement_account: SettlementAccount,
    pub created_at_ms: i64,
    pub operator: Box<str>,
}

/// How a payout ended at the bank.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum PayoutOutcome {
    Succeeded { bank_serial: Box<str> },
    Failed { reason: Box<str> },
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct WithdrawalFinished {
    pub id: Box<str>,
    pub account_id: AccountId,
    pub amount: Money,
    pub outcome: PayoutOutcome,
    pub finished_at_ms: i64,
}

/// An adjustment deposit: `amount` out of suspense entry `suspense_id`
/// into `account_id`'s available balance.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Adjustment {
    pub id: Box<str>,
    pub suspense_id: SuspenseId,
    pub account_id: AccountId,
    pub amount: Money,
    pub memo: Option<Box<str>>,
    /// What is left of the suspense entry after this adjustment.
    pub suspense_remaining: Money,
    pub at_ms: i64,
    pub operator: Box<str>,
}

/// A suspense entry's remaining sent back to the payer.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SuspenseReturn {
    pub id: Box<str>,
    pub suspense_id: SuspenseId,
    pub amount: Money,
    pub memo: Option<Box<str>>,
    pub at_ms: i64,
    pub operator: Box<str>,
}

/// What kind of bank instruction an outbox entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum InstructionKind {
    ForcedTransfer,
    Adjustment,
    Return,
}

impl InstructionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ForcedTransfer => "forced_transfer",
            Self::Adjustment => "adjustment",
            Self::Return => "return",
        }
    }
}

/// The bank's final answer to one outbox instruction.
#[derive(Clone, Debug, PartialEq, Eq, Encode)]
pub struct BankSync {
    pub reference: Box<str>,
    pub bank: Box<str>,
    pub kind: InstructionKind,
    /// `Ok(bank_serial)` when confirmed, `Err(reason)` on a definitive refusal.
    pub outcome: Result<Box<str>, Box<str>>,
    pub at_ms: i64,
    /// The lsn of the record whose instruction this answers (schema 2 on),
    /// so that pending work is kept as a set of lsns, not of references;
    /// 0 in an answer recorded under schema 1, which names only the
    /// reference.
    pub lsn: u64,
}

impl Decode<RecordSchema> for BankSync {
    fn decode<D: bincode::de::Decoder<Context = RecordSchema>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let schema = *decoder.context();
        use crate::codec::fields;
        Ok(Self {
            reference: fields::boxed_str(decoder)?,
            bank: fields::boxed_str(decoder)?,
            kind: Decode::decode(decoder)?,
            outcome: fields::boxed_str_result(decoder)?,
            at_ms: Decode::decode(decoder)?,
            lsn: if schema.0 >= 2 { Decode::decode(decoder)? } else { 0 },
        })
    }
}
bincode::impl_borrow_decode_with_context!(BankSync, RecordSchema);

/// What a bank statement line is (API.md, Reconciliation: `kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum StatementKind {
    /// Money in, by notification (credited or put in suspense).
    Credit,
    /// 调帐 out of the public adjustment account (an adjustment deposit).
    Adjustment,
    /// 退票 of a suspense entry, by the return's id.
    Return,
    /// Any of the five transfer types.
    ForcedTransfer,
    /// A withdrawal, on the day it succeeded.
    Payout,
}

impl StatementKind {
    pub const ALL: [StatementKind; 5] =
        [Self::Credit, Self::Adjustment, Self::Return, Self::ForcedTransfer, Self::Payout];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credit => "credit",
            Self::Adjustment => "adjustment",
            Self::Return => "return",
            Self::ForcedTransfer => "forced_transfer",
            Self::Payout => "payout",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum DiscrepancyKind {
    MissingInLedger,
    MissingInBank,
    AmountMismatch,
}

impl DiscrepancyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingInLedger => "missing_in_ledger",
            Self::MissingInBank => "missing_in_bank",
            Self::AmountMismatch => "amount_mismatch",
        }
    }
}

/// The counts of one reconciliation (API.md's `summary`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct ReconciliationSummary {
    pub bank_lines: u64,
    pub ledger_lines: u64,
    pub matched: u64,
    pub missing_in_ledger: u64,
    pub missing_in_bank: u64,
    pub amount_mismatch: u64,
}

impl ReconciliationSummary {
    pub fn discrepancies(&self) -> u64 {
        self.missing_in_ledger + self.missing_in_bank + self.amount_mismatch
    }
}

/// One difference between the bank's lines and the ledger's.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DiscrepancyLine {
    pub kind: DiscrepancyKind,
    pub reference: Box<str>,
    pub ledger_amount: Option<Money>,
    pub bank_amount: Option<Money>,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ReconciliationRecorded {
    pub reconciliation_id: ReconciliationId,
    pub bank: Box<str>,
    /// The UTC day, `YYYY-MM-DD`.
    pub date: Box<str>,
    /// Whether the bank's lines were uploaded (else fetched from the bank).
    pub uploaded: bool,
    pub summary: ReconciliationSummary,
    /// The first discrepancies found; they get the ids
    /// `first_discrepancy_id`, `first_discrepancy_id + 1`, ...
    pub discrepancies: Vec<DiscrepancyLine>,
    pub first_discrepancy_id: DiscrepancyId,
    pub at_ms: i64,
    pub operator: Box<str>,
}

/// How finance proposes to close a discrepancy: a note, or an adjustment
/// deposit (by its id) that put the money right, with an optional note.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Resolution {
    pub note: Option<Box<str>>,
    pub adjustment_id: Option<Box<str>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DiscrepancyProposed {
    pub discrepancy_id: DiscrepancyId,
    pub resolution: Resolution,
    pub at_ms: i64,
    pub operator: Box<str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DiscrepancyResolved {
    pub discrepancy_id: DiscrepancyId,
    pub note: Option<Box<str>>,
    pub at_ms: i64,
    pub operator: Box<str>,
}

/// Records for unit tests: the fields a test does not care about filled
/// in once, here.
#[cfg(test)]
pub mod fixtures {
    use super::*;

    /// A `transfer` of `fen` from `payer` to `payee`, committed at `at_ms`
    /// (struct update syntax changes the rest).
    pub fn transfer(id: &str, payer: u64, payee: u64, fen: i64, at_ms: i64) -> Movement {
        Movement {
            id: id.into(),
            kind: TransferType::Transfer,
            payer: AccountId(payer),
            payee: Some(AccountId(payee)),
            amount: Money(fen),
            requested_amount: Some(Money(fen)),
            hold_id: None,
            hold_account: None,
            hold_amount: Money::ZERO,
            hold_remaining: Money::ZERO,
            order_id: None,
            memo: None,
            committed_at_ms: at_ms,
            operator: "p".into(),
        }
    }

    /// Application `number` at `bank`.
    pub fn application(number: u64, bank: &str) -> Application {
        Application {
            application_id: ApplicationId(number),
            name: "n".into(),
            credential_no: format!("c{number}").into(),
            bank: bank.into(),
            settlement_account: SettlementAccount {
                bank_name: "b".into(),
                account_no: "6222".into(),
                account_name: "n".into(),
            },
            created_at_ms: 0,
            operator: "p".into(),
        }
    }

    /// The approval of application `number`, opening account `number`.
    pub fn approval(number: u64) -> ApplicationDecision {
        ApplicationDecision {
            application_id: ApplicationId(number),
            account_id: Some(AccountId(number)),
            text: None,
            decided_at_ms: 0,
            operator: "r".into(),
        }
    }
}
