//! Recovery: replay the log into the state the actors had, and check it.
//!
//! Owns the fold from records to the whole ledger state at start-up. It
//! calls the same pure rules the actors call ([`AccountBook`]'s
//! `apply_*`), never judging a business rule again (the log stores
//! results). Every account's invariants are asserted as each record is
//! applied, and at the end the history's folded balances must equal the
//! books exactly.
//!
//! A checkpoint is loaded here too ([`Recovered::load_checkpoint`]): a
//! state checkpoint ([`crate::codec::checkpoint`], schema 4, 3 or 2) is restored
//! from its image ([`Recovered::image`] is the other direction: the
//! checkpointer folds the log with this same code and writes the image);
//! an old records checkpoint (schema 1) is folded like the log. The
//! checkpointer's fold may keep its base's registry records encoded
//! ([`Recovered::load_checkpoint_keeping_registry`]): it then holds the
//! accounts' books and banks, not their registry entries, which no record
//! after a checkpoint needs.
//! `fundledger wal verify` loads checkpoints offline without the read
//! models ([`Recovered::without_read_models`]).
//!
//! Must not talk to actors: it runs before any exist.

use hashbrown::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;

use crate::actors::directory::AccountInfo;
use crate::actors::outbox::instruction_reference;
use crate::actors::registry::account_info;
use crate::codec::checkpoint::{self, BankPlaces, BookImage, EncodedRegistry, StateImage, TotalsImage};
use crate::domain::account::Hold;
use crate::domain::account::{AccountBook, AccountStatus, Balance};
use crate::domain::ids::AccountId;
use crate::domain::pending::PendingInstructions;
use crate::domain::record::{Notification, PayoutOutcome, Record, RecordSchema, Withdrawal};
use crate::domain::registry::Applications;
use crate::domain::suspense::SuspenseBook;
use crate::finance::archive::PrefetchStep;
use crate::finance::history::HistoryState;
use crate::finance::trial_balance::TrialBalance;
use crate::gateway::idempotency::{Committed, IdIndex};

/// An account's registry entry (its book is in [`Recovered::books`]).
pub struct RecoveredAccount {
    pub info: Arc<AccountInfo>,
    pub status: AccountStatus,
    pub sub_account_no: Option<Box<str>>,
}

pub struct Recovered {
    pub applications: Applications,
    /// Each account's registry entry, account n at n - 1. Empty in a fold
    /// that keeps its base checkpoint's registry encoded
    /// ([`Recovered::load_checkpoint_keeping_registry`]); else one per book.
    pub accounts: Vec<RecoveredAccount>,
    /// Each account's book, account n at n - 1.
    pub books: Vec<AccountBook>,
    pub ids: Arc<IdIndex>,
    pub notifications: Arc<IdIndex>,
    pub suspense: SuspenseBook,
    /// Withdrawals still processing at the end of the log, by id, with the
    /// lsn of their hold: the outbox asks the bank about each (their
    /// payouts may or may not have been made before the crash).
    pub withdrawals_pending: HashMap<Box<str>, (u64, Arc<Withdrawal>)>,
    /// Bank instructions (forced transfers, adjustments, returns) without
    /// the bank's answer in the log: the lsns of their records.
    pub instructions_pending: PendingInstructions,
    pub history: HistoryState,
    pub last_lsn: u64,
    /// Whether the read models (id and notification indexes, history) are
    /// built ([`Recovered::without_read_models`] skips them).
    read_models: bool,
    /// Records at or below this lsn are in the history archive: their ids
    /// are found there, not kept in memory.
    indexed_through: u64,
    /// The entity records folded so far ([`is_entity`]), kept only when
    /// this state is folded to write a checkpoint
    /// ([`Recovered::for_checkpoint`]).
    entities: Option<Vec<(u64, Record)>>,
    /// The registry's records as the base checkpoint encoded them, when
    /// they were not folded again: the registry side of this fold is then
    /// only the accounts' books and the banks' places, and the registry
    /// records folded after it are among `entities`.
    registry: Option<EncodedRegistry>,
    /// Records decoded ahead of their fold ([`Recovered::apply_payload_ahead`]).
    ahead: VecDeque<(u64, Record, RecordSchema)>,
}

/// How many records [`Recovered::apply_payload_ahead`] decodes before it
/// folds them: enough loads in flight to cover a memory access each,
/// few enough to stay in the caches.
const FOLD_AHEAD: usize = 8;

/// Whether a state checkpoint keeps `record` as it is: the records of
/// applications, account signing, suspense entries and reconciliations,
/// which grow with accounts and days, not with transfers; their entities
/// are folded again from them on load. Every other record's effect is in
/// the checkpoint's books, pending work and totals.
pub fn is_entity(record: &Record) -> bool {
    match record {
        Record::ApplicationCreated(_)
        | Record::ApplicationApproved(_)
        | Record::ApplicationRejected(_)
        | Record::AccountSigned { .. }
        | Record::AccountSignFailed { .. }
        | Record::SuspenseOpened(_)
        | Record::AdjustmentDeposit(_)
        | Record::SuspenseReturned(_)
        | Record::ReconciliationRecorded(_)
        | Record::DiscrepancyProposed(_)
        | Record::DiscrepancyResolved(_) => true,
        Record::Movement(_)
        | Record::Deposit(_)
        | Record::WithdrawalRequested(_)
        | Record::WithdrawalFinished(_)
        | Record::BankSynced(_) => false,
    }
}

/// The key of a bank notification in the notification index: one bank's
/// serial numbers are unique only at that bank.
pub fn notification_key(notification: &Notification) -> String {
    format!("{}\u{1f}{}", notification.bank, notification.bank_serial)
}

/// The id a record commits and what a retry of it is answered with: the
/// client id (movements, withdrawals, adjustments, returns) or the
/// notification key (deposits, suspense entries).
pub fn committed_of(lsn: u64, record: &Record) -> Option<(std::borrow::Cow<'_, str>, Committed)> {
    use std::borrow::Cow;
    Some(match record {
        Record::Movement(movement) => {
            (Cow::Borrowed(&*movement.id), Committed::Movement { lsn, movement: Arc::clone(movement) })
        }
        Record::Deposit(deposit) => (
            Cow::Owned(notification_key(&deposit.notification)),
            Committed::Deposit { lsn, deposit: Arc::clone(deposit) },
        ),
        Record::SuspenseOpened(entry) => {
            (Cow::Owned(notification_key(&entry.notification)), Committed::Suspense { lsn, entry: Arc::clone(entry) })
        }
        Record::WithdrawalRequested(withdrawal) => {
            (Cow::Borrowed(&*withdrawal.id), Committed::Withdrawal { lsn, withdrawal: Arc::clone(withdrawal) })
        }
        Record::AdjustmentDeposit(adjustment) => {
            (Cow::Borrowed(&*adjustment.id), Committed::Adjustment { lsn, adjustment: Arc::clone(adjustment) })
        }
        Record::SuspenseReturned(returned) => {
            (Cow::Borrowed(&*returned.id), Committed::SuspenseReturn { lsn, suspense_return: Arc::clone(returned) })
        }
        _ => return None,
    })
}

impl Default for Recovered {
    fn default() -> Self {
        Self::new()
    }
}

impl Recovered {
    pub fn new() -> Self {
        Self {
            applications: Applications::default(),
            accounts: Vec::new(),
            books: Vec::new(),
            ids: Arc::new(IdIndex::new()),
            notifications: Arc::new(IdIndex::new()),
            suspense: SuspenseBook::default(),
            withdrawals_pending: HashMap::new(),
            instructions_pending: PendingInstructions::default(),
            history: HistoryState::default(),
            last_lsn: 0,
            read_models: true,
            indexed_through: 0,
            entities: None,
            registry: None,
            ahead: VecDeque::new(),
        }
    }

    /// The fold of a server whose history archive holds the records up to
    /// `indexed_through`.
    pub fn with_archive(indexed_through: u64) -> Self {
        Self { history: HistoryState::indexed_through(indexed_through), indexed_through, ..Self::new() }
    }

    /// The fold the checkpointer runs up to a checkpoint at most at
    /// `indexed_through`: no ids or journal entries in memory, and the
    /// entity records kept for [`Self::image`].
    pub fn for_checkpoint(indexed_through: u64) -> Self {
        Self { entities: Some(Vec::new()), ..Self::with_archive(indexed_through) }
    }

    /// Everything but the read models: the fold that checks a checkpoint
    /// offline.
    pub fn without_read_models() -> Self {
        Self { read_models: false, ..Self::new() }
    }

    /// Load checkpoint `lsn` (its payload as the wal crate read and checked
    /// it) into this empty state: restore a state checkpoint, fold an old
    /// records checkpoint. On `Err` the state is half-built: discard it.
    pub fn load_checkpoint(&mut self, lsn: u64, payload: &[u8]) -> Result<(), String> {
        if self.last_lsn != 0 || self.history.applied_lsn() != 0 {
            return Err("a checkpoint is loaded into an empty state".into());
        }
        match checkpoint::schema(payload) {
            Some(checkpoint::STATE_SCHEMA | checkpoint::STATE_SCHEMA_3 | checkpoint::STATE_SCHEMA_2) => {
                let image = checkpoint::decode_state(payload).map_err(|error| error.to_string())?;
                self.restore(image)?;
            }
            _ => {
                checkpoint::decode(payload, |lsn, record, schema| self.apply_of_schema(lsn, &record, schema))
                    .map_err(|error| error.to_string())?;
            }
        }
        if self.last_lsn != lsn {
            return Err(format!("checkpoint named lsn {lsn} holds the state at lsn {}", self.last_lsn));
        }
        Ok(())
    }

    /// [`Self::load_checkpoint`] for the checkpointer: a schema-4 state's
    /// registry records are not decoded or folded again but kept as read
    /// ([`checkpoint::decode_state_keeping_registry`]), the banks they
    /// give accounts and applications taken from the checkpoint's places;
    /// the fold then has books and no registry entries
    /// ([`Self::accounts`] stays empty). Other schemas load as in
    /// [`Self::load_checkpoint`].
    pub fn load_checkpoint_keeping_registry(&mut self, lsn: u64, payload: Vec<u8>) -> Result<(), String> {
        if checkpoint::schema(&payload) != Some(checkpoint::STATE_SCHEMA) || self.entities.is_none() {
            return self.load_checkpoint(lsn, &payload);
        }
        if self.last_lsn != 0 || self.history.applied_lsn() != 0 {
            return Err("a checkpoint is loaded into an empty state".into());
        }
        let (image, registry) =
            checkpoint::decode_state_keeping_registry(payload).map_err(|error| error.to_string())?;
        let registry = registry.ok_or("a schema-4 checkpoint without its registry part")?;
        self.restore_keeping(image, registry)?;
        if self.last_lsn != lsn {
            return Err(format!("checkpoint named lsn {lsn} holds the state at lsn {}", self.last_lsn));
        }
        Ok(())
    }

    /// The state as a checkpoint image. Only a state folded for a
    /// checkpoint ([`Self::for_checkpoint`]) has one: it kept its entity
    /// records. Checks that every journal sums to its book first.
    pub fn image(&self) -> Result<StateImage, String> {
        if self.registry.is_some() {
            return Err("this state keeps its registry encoded: see into_checkpoint".into());
        }
        let entities = self.entities.clone().ok_or("this state was not folded for a checkpoint")?;
        self.image_with(entities)
    }

    /// [`Self::image`] of a state that ends here, with the registry
    /// records it kept encoded, if it did (the checkpointer's case; what
    /// [`checkpoint::encode_state_parts`] takes): its entity records move
    /// into the image instead of being copied.
    pub fn into_checkpoint(mut self) -> Result<(StateImage, Option<EncodedRegistry>), String> {
        if !self.ahead.is_empty() {
            return Err("records decoded ahead are not folded yet: see finish_ahead".into());
        }
        let entities = self.entities.take().ok_or("this state was not folded for a checkpoint")?;
        let image = self.image_with(entities)?;
        Ok((image, self.registry.take()))
    }

    fn image_with(&self, entities: Vec<(u64, Record)>) -> Result<StateImage, String> {
        if self.history.applied_lsn() != self.last_lsn {
            return Err(format!("history at lsn {}, books at lsn {}", self.history.applied_lsn(), self.last_lsn));
        }
        let mut books = Vec::with_capacity(self.books.len());
        for (id, book) in numbered(&self.books) {
            if self.history.balance(id) != book.balance {
                return Err(format!("{id}: journal does not sum to the balance at lsn {}", self.last_lsn));
            }
            let mut holds: Vec<_> =
                book.holds().map(|(hold_id, hold)| (hold_id.clone(), hold.amount, hold.remaining)).collect();
            holds.sort_unstable();
            let mut withdrawals: Vec<_> = book.withdrawals().map(|(id, amount)| (id.clone(), *amount)).collect();
            withdrawals.sort_unstable();
            let Balance { available, frozen } = book.balance;
            books.push(BookImage { available, frozen, holds, withdrawals, last_lsn: book.last_lsn });
        }
        let mut withdrawals: Vec<_> =
            self.withdrawals_pending.values().map(|(lsn, withdrawal)| (*lsn, Arc::clone(withdrawal))).collect();
        withdrawals.sort_unstable_by_key(|(lsn, _)| *lsn);
        let finance = self.history.finance();
        let (accounts, applications) = finance.bank_days.places();
        Ok(StateImage {
            last_lsn: self.last_lsn,
            banks: finance.bank_days.banks().to_vec(),
            entities,
            books,
            withdrawals,
            pending: self.instructions_pending.clone(),
            totals: TotalsImage { balances: finance.books.balances(), records_posted: finance.books.records_posted() },
            days: self.history.days().iter().map(|(day, figures)| (*day, *figures)).collect(),
            bank_sync_failures: self.history.bank_sync_failures().to_vec(),
            places: Some(BankPlaces { accounts, applications }),
        })
    }

    /// Restore a state checkpoint's image into this empty state. Its ids
    /// and journals are in the history archive, which must reach its lsn.
    fn restore(&mut self, image: StateImage) -> Result<(), String> {
        self.check_archive_reaches(image.last_lsn)?;
        self.history = HistoryState::restoring(self.indexed_through, image.banks.clone());
        // Grown once, not by doubling: over a million accounts each
        // doubling copies (and each index resize re-reads) all before it.
        let created =
            image.entities.iter().filter(|(_, record)| matches!(record, Record::ApplicationCreated(_))).count();
        self.applications.reserve(created);
        self.accounts.reserve_exact(image.books.len());
        self.books.reserve_exact(image.books.len());
        for (lsn, record) in &image.entities {
            self.restore_entity(*lsn, record)?;
            self.apply_registry(*lsn, record)?;
        }
        if let Some(places) = &image.places {
            let (accounts, applications) = self.history.finance().bank_days.places();
            if places.accounts != accounts || places.applications != applications {
                return Err(format!(
                    "checkpoint lsn {}: its banks of accounts and applications differ from what its registry folds to",
                    image.last_lsn
                ));
            }
        }
        self.restore_rest(image)
    }

    /// [`Self::restore`] without folding the registry's records, kept
    /// encoded in `registry`: the accounts are the image's books, their
    /// banks the image's places.
    fn restore_keeping(&mut self, image: StateImage, registry: EncodedRegistry) -> Result<(), String> {
        self.check_archive_reaches(image.last_lsn)?;
        self.history = HistoryState::restoring(self.indexed_through, image.banks.clone());
        let places = image.places.clone().ok_or("a checkpoint without its registry's places")?;
        if places.accounts.len() > image.books.len() {
            return Err(format!(
                "checkpoint has banks for {} accounts, books for {}",
                places.accounts.len(),
                image.books.len()
            ));
        }
        self.history.restore_places(places.accounts, places.applications)?;
        for (lsn, record) in &image.entities {
            if checkpoint::is_registry(record) {
                return Err(format!("lsn {lsn}: a registry record among a checkpoint's other entities"));
            }
            self.restore_entity(*lsn, record)?;
        }
        self.registry = Some(registry);
        self.restore_rest(image)
    }

    fn check_archive_reaches(&self, last_lsn: u64) -> Result<(), String> {
        if self.read_models && self.indexed_through < last_lsn {
            return Err(format!(
                "the history archive indexes records up to lsn {}, short of the checkpoint's lsn {last_lsn} \
                 (the ids and journals in between would be missing)",
                self.indexed_through
            ));
        }
        Ok(())
    }

    /// An entity record of a checkpoint into the suspense book and the
    /// history's entity parts (the registry's side is the caller's).
    fn restore_entity(&mut self, lsn: u64, record: &Record) -> Result<(), String> {
        if !is_entity(record) {
            return Err(format!("lsn {lsn}: a checkpoint's entity record is not one"));
        }
        if matches!(record, Record::SuspenseOpened(_) | Record::AdjustmentDeposit(_) | Record::SuspenseReturned(_)) {
            self.suspense.apply(record);
        }
        self.history.apply_entity(lsn, record);
        Ok(())
    }

    /// The books, withdrawals, pending instructions and totals of a
    /// checkpoint whose accounts are opened (one empty book each).
    fn restore_rest(&mut self, image: StateImage) -> Result<(), String> {
        let StateImage { last_lsn, entities, books, withdrawals, pending, totals, days, bank_sync_failures, .. } =
            image;
        // A fold of the registry opened an empty book per account; a fold
        // keeping it encoded opened none and takes the image's count.
        if self.registry.is_none() && books.len() != self.books.len() {
            return Err(format!("checkpoint has {} books for {} accounts", books.len(), self.books.len()));
        }
        let mut restored = Vec::with_capacity(books.len());
        for (index, image) in books.into_iter().enumerate() {
            let holds = image.holds.into_iter().map(|(id, amount, remaining)| (id, Hold { amount, remaining }));
            let book = AccountBook::from_parts(
                Balance { available: image.available, frozen: image.frozen },
                holds,
                image.withdrawals,
                image.last_lsn,
            );
            // Refused, not asserted: the previous checkpoint is tried.
            if let Some(violation) = book.invariant_violation(AccountId(index as u64 + 1)) {
                return Err(format!("checkpoint lsn {last_lsn}: {violation}"));
            }
            restored.push(book);
        }
        self.books = restored;
        for (lsn, withdrawal) in &withdrawals {
            let book = self.book(withdrawal.account_id, *lsn)?;
            if book.withdrawal(&withdrawal.id) != Some(withdrawal.amount) {
                return Err(format!("withdrawal {} in flight but not processing on its account", withdrawal.id));
            }
            self.withdrawals_pending.insert(withdrawal.id.clone(), (*lsn, Arc::clone(withdrawal)));
        }
        self.instructions_pending = pending;
        let balances = numbered(&self.books).map(|(id, book)| (id, book.balance));
        let books = TrialBalance::from_balances(totals.balances, totals.records_posted);
        self.history.restored(last_lsn, balances, withdrawals, books, days, bank_sync_failures);
        self.last_lsn = last_lsn;
        if self.entities.is_some() {
            // The records folded after this one are appended (the decoder
            // left room for them).
            self.entities = Some(entities);
        }
        Ok(())
    }

    fn book(&mut self, id: AccountId, lsn: u64) -> Result<&mut AccountBook, String> {
        self.books
            .get_mut(index_of(id))
            .ok_or_else(|| format!("lsn {lsn}: record names account {id}, which no earlier record opened"))
    }

    /// [`Self::apply_payload`], [`FOLD_AHEAD`] records later: the record is
    /// decoded now and what its fold will touch (the payer's and payee's
    /// books and journal balances, the payer's bank) is loaded ahead (a
    /// hint, see [`crate::prefetch`]); the record that many before it is
    /// folded. Over a million accounts each of those is a cache miss the
    /// fold otherwise waits for, one after another. [`Self::finish_ahead`]
    /// folds the records still waiting; until then [`Self::last_lsn`]
    /// lags behind.
    pub fn apply_payload_ahead(&mut self, lsn: u64, payload: &[u8]) -> Result<(), String> {
        let (record, schema) =
            crate::codec::decode_with_schema(payload).map_err(|error| format!("lsn {lsn}: {error}"))?;
        if let Record::Movement(movement) = &record {
            for account in [Some(movement.payer), movement.payee].into_iter().flatten() {
                if let Some(book) = self.books.get(index_of(account)) {
                    crate::prefetch::value(book);
                }
            }
        }
        self.history.prefetch(&record, PrefetchStep::Place);
        self.ahead.push_back((lsn, record, schema));
        if self.ahead.len() > FOLD_AHEAD {
            self.apply_next_ahead()?;
        }
        Ok(())
    }

    /// Folds the records [`Self::apply_payload_ahead`] still holds.
    pub fn finish_ahead(&mut self) -> Result<(), String> {
        while !self.ahead.is_empty() {
            self.apply_next_ahead()?;
        }
        Ok(())
    }

    fn apply_next_ahead(&mut self) -> Result<(), String> {
        let Some((lsn, record, schema)) = self.ahead.pop_front() else { return Ok(()) };
        self.apply_of_schema(lsn, &record, schema).map_err(|error| format!("lsn {lsn}: {error}"))
    }

    /// Decode a payload from the log and apply it, in lsn order.
    pub fn apply_payload(&mut self, lsn: u64, payload: &[u8]) -> Result<(), String> {
        let (record, schema) = crate::codec::decode_with_schema(payload).map_err(|error| error.to_string())?;
        self.apply_of_schema(lsn, &record, schema)
    }

    /// Apply one record written in `schema`, in lsn order.
    pub fn apply_of_schema(&mut self, lsn: u64, record: &Record, schema: RecordSchema) -> Result<(), String> {
        if lsn != self.last_lsn + 1 {
            return Err(format!("lsn {lsn} follows {}: the log has a gap", self.last_lsn));
        }
        self.last_lsn = lsn;
        match record {
            Record::ApplicationCreated(_)
            | Record::ApplicationRejected(_)
            | Record::ApplicationApproved(_)
            | Record::AccountSigned { .. }
            | Record::AccountSignFailed { .. } => self.apply_registry(lsn, record)?,
            Record::Movement(movement) => {
                if let Some(hold_id) = movement.hold_id.as_deref().filter(|_| movement.kind.uses_hold()) {
                    let payer = self.book(movement.payer, lsn)?;
                    if payer.hold(hold_id).is_none() {
                        return Err(format!(
                            "lsn {lsn}: movement {} uses hold {hold_id}, not open on {}",
                            movement.id, movement.payer
                        ));
                    }
                }
                if let Some(payee) = movement.payee.filter(|_| movement.kind.has_payee()) {
                    self.book(payee, lsn)?;
                }
                self.book(movement.payer, lsn)?.apply_debit_side(movement, lsn);
                if let Some(payee) = movement.payee.filter(|_| movement.kind.has_payee()) {
                    self.book(payee, lsn)?.apply_credit_side(movement, lsn);
                }
            }
            Record::Deposit(deposit) => {
                let book = self.book(deposit.account_id, lsn)?;
                book.apply_deposit(deposit.account_id, deposit.notification.amount, lsn);
            }
            Record::SuspenseOpened(entry) => {
                if entry.suspense_id != self.suspense.next_id() {
                    return Err(format!("lsn {lsn}: suspense entry {} opened out of order", entry.suspense_id));
                }
                self.suspense.apply(record);
            }
            Record::WithdrawalRequested(withdrawal) => {
                let book = self.book(withdrawal.account_id, lsn)?;
                book.apply_withdrawal_hold(withdrawal.account_id, &withdrawal.id, withdrawal.amount, lsn);
                self.withdrawals_pending.insert(withdrawal.id.clone(), (lsn, Arc::clone(withdrawal)));
            }
            Record::WithdrawalFinished(finished) => {
                let book = self.book(finished.account_id, lsn)?;
                if book.withdrawal(&finished.id) != Some(finished.amount) {
                    return Err(format!("lsn {lsn}: withdrawal {} finished but not processing", finished.id));
                }
                let succeeded = matches!(finished.outcome, PayoutOutcome::Succeeded { .. });
                book.apply_withdrawal_finished(finished.account_id, &finished.id, succeeded, lsn);
                self.withdrawals_pending.remove(&finished.id);
            }
            Record::AdjustmentDeposit(adjustment) => {
                let state = self.suspense.get(adjustment.suspense_id);
                if state.is_none_or(|state| state.remaining < adjustment.amount || state.returned) {
                    return Err(format!("lsn {lsn}: adjustment {} exceeds its suspense entry", adjustment.id));
                }
                self.suspense.apply(record);
                let book = self.book(adjustment.account_id, lsn)?;
                book.apply_deposit(adjustment.account_id, adjustment.amount, lsn);
            }
            Record::SuspenseReturned(returned) => {
                if self.suspense.judge_return(returned.suspense_id) != Ok(returned.amount) {
                    return Err(format!("lsn {lsn}: return {} of an entry that is not open", returned.id));
                }
                self.suspense.apply(record);
            }
            Record::BankSynced(sync) => self.instructions_pending.answered(sync),
            // Finance's records: only the history's read models fold them.
            Record::ReconciliationRecorded(_) | Record::DiscrepancyProposed(_) | Record::DiscrepancyResolved(_) => {}
        }
        if let Some(reference) = instruction_reference(record, &self.suspense) {
            self.instructions_pending.requested(lsn, reference, schema);
        }
        if let Some(entities) = self.entities.as_mut().filter(|_| is_entity(record)) {
            entities.push((lsn, record.clone()));
        }
        if self.read_models {
            self.index(lsn, record);
        }
        Ok(())
    }

    /// Applications and the accounts they open (the same for the log and
    /// for a state checkpoint's entity records); other records are ignored.
    /// A fold keeping its registry encoded opens each account's book only
    /// (the history's days fold the banks).
    fn apply_registry(&mut self, lsn: u64, record: &Record) -> Result<(), String> {
        let keeping = self.registry.is_some();
        match record {
            Record::ApplicationCreated(_) | Record::ApplicationRejected(_) if !keeping => {
                self.applications.apply(record)
            }
            Record::ApplicationApproved(decision) => {
                let account_id = decision.account_id.ok_or_else(|| format!("lsn {lsn}: approval without account"))?;
                if account_id.0 != self.books.len() as u64 + 1 {
                    return Err(format!("lsn {lsn}: account {account_id} opened out of order"));
                }
                if !keeping {
                    let application = self
                        .applications
                        .get(decision.application_id)
                        .map(|state| Arc::clone(&state.application))
                        .ok_or_else(|| {
                            format!("lsn {lsn}: approval of unknown application {}", decision.application_id)
                        })?;
                    self.applications.apply(record);
                    self.accounts.push(RecoveredAccount {
                        info: Arc::new(account_info(account_id, &application, decision.decided_at_ms)),
                        status: AccountStatus::Signing,
                        sub_account_no: None,
                    });
                }
                self.books.push(AccountBook::default());
            }
            Record::AccountSigned { account_id, sub_account_no, .. } => {
                self.book(*account_id, lsn)?;
                if let Some(account) = self.accounts.get_mut(index_of(*account_id)) {
                    account.status = AccountStatus::Active;
                    account.sub_account_no = Some(sub_account_no.clone());
                }
            }
            Record::AccountSignFailed { account_id, .. } => {
                self.book(*account_id, lsn)?;
                if let Some(account) = self.accounts.get_mut(index_of(*account_id)) {
                    account.status = AccountStatus::SignFailed;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The read models of one applied record: the client-id index, the
    /// bank-notification index (ids of records the archive holds are found
    /// there instead) and the history.
    fn index(&mut self, lsn: u64, record: &Record) {
        if lsn > self.indexed_through {
            if let Some((key, committed)) = committed_of(lsn, record) {
                let index = if matches!(committed, Committed::Deposit { .. } | Committed::Suspense { .. }) {
                    &self.notifications
                } else {
                    &self.ids
                };
                index.insert_recovered(key.into(), committed);
            }
        }
        self.history.apply(lsn, record);
    }

    /// The end-of-replay check: every book's invariants, and the journal's
    /// folded balances equal to the books (journals sum to balances).
    pub fn check(&self) {
        for (id, book) in numbered(&self.books) {
            book.assert_invariants(id);
            if self.read_models {
                assert_eq!(self.history.balance(id), book.balance, "{id}: journal does not sum to the balance");
            }
        }
    }
}

/// Where account `id` sits in the lists by account number (an index past
/// every list for number 0).
fn index_of(id: AccountId) -> usize {
    usize::try_from(id.0).ok().and_then(|n| n.checked_sub(1)).unwrap_or(usize::MAX)
}

/// Books with their account numbers (account n at n - 1).
fn numbered(books: &[AccountBook]) -> impl Iterator<Item = (AccountId, &AccountBook)> {
    books.iter().enumerate().map(|(index, book)| (AccountId(index as u64 + 1), book))
}
