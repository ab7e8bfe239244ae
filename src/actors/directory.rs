//! The account directory: account id -> its slot (the account's state when
//! idle, or its live actor), status and fixed facts.
//!
//! Owns the routing table every request goes through, so it must be cheap
//! to read and must not be one lock shared by every account: account ids
//! are sequential numbers, so the directory is a two-level array of
//! write-once cells (`OnceLock`), read without any lock. Status is an atomic
//! kept current by the account's own actor (the only writer of its status),
//! so that a payer's actor can see whether a payee is active without
//! asking the payee's actor (invariant 6: no actor awaits another).
//!
//! # Virtual account actors (activation and passivation)
//!
//! An account has a live actor only while messages are on their way to it
//! (issue 5, target 5: a live actix actor costs more than a KiB, a million
//! idle accounts must not each hold one). Each entry's [`Slot`] is either
//! `Idle` (the account's book, as plain data) or `Live` (the address of its
//! actor, which then owns the book). The slot sits behind a mutex of its
//! own (one per account, held for a few instructions, never across an
//! await or I/O), and `pending` counts the messages sent to the live actor
//! and not yet handled or dropped:
//!
//! - Sending ([`Directory::send`], [`Directory::do_send`]) locks the slot;
//!   if it is idle it takes the book out and starts an actor with it
//!   (activation, on the [`Spawner`]'s arbiters), then counts the message
//!   in `pending` and only then releases the lock. The message travels with
//!   a [`Ticket`] that uncounts it when it is dropped: after its handler
//!   ran, or unhandled if its request future was dropped first.
//! - A live actor that has handled nothing for a while
//!   ([`limits::ACCOUNT_IDLE_PASSIVATE_MS`]) locks its slot and, only if
//!   `pending` is 0, puts its book back as `Idle` and stops (passivation,
//!   [`super::account`]). `pending` only grows under the lock, so once
//!   the actor has seen 0 under it no message can reach the old mailbox:
//!   every later sender finds `Idle` and activates a fresh actor with the
//!   book that already holds every earlier message's effect.
//!
//! - A credit sent without waiting ([`Directory::do_send`]) to an idle
//!   account is applied to the idle book in place, under the lock, with no
//!   actor ([`AccountMessage::apply_idle`]): the slot being idle means
//!   every earlier message was handled, so this is the order a mailbox
//!   would give. Half the messages of a batch are credits, and at a
//!   million accounts most payees are idle.
//! - A transfer request to an idle payer ([`Directory::send_transfers`],
//!   the gateway's path) is judged, applied and appended in place too,
//!   under the lock, by the same code the actor runs ([`Owner`]); its
//!   credits and id claims go out after the lock is released. So a burst of
//!   transfers over many accounts starts no actor at all, and a busy
//!   account's actor is only a queue for the moments it is contended; the
//!   short passivation period lets it go back to the fast path soon.
//!
//! So one account's messages are still handled one at a time, in the
//! order they entered its mailbox, by exactly one owner of its book at any
//! moment (the slot or one actor): nothing is applied twice or lost across
//! activation and passivation. Locks are never nested (a sender holds only
//! the target's slot lock, the actor only its own), so no deadlock.
//!
//! Must not hold balances outside a slot, nor judge or change a book other
//! than through [`Owner`] (the account actor's own rules) under the slot's
//! lock: the slot keeps the book while no actor does.

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use actix::prelude::*;
use parking_lot::{Mutex, RwLock};

use super::account::{AccountActor, AccountMessage, ApplyTransfers, ItemOutcome, Leased, Owner};
use super::spawner::Spawner;
use crate::actors::bank::AccountNo;
use crate::domain::account::{AccountBook, AccountStatus};
use crate::domain::ids::AccountId;
use crate::domain::keyed_ids::KeyedIds;
use crate::domain::record::{Application, SettlementAccount};
use crate::huge_pages::{HugeSlice, HUGE_PAGE_BYTES};
use crate::limits;
use crate::prefetch;

/// Accounts per chunk of cells: one huge page of them (a cell is an
/// account's whole entry, two cache lines: 16,384), so that over a million
/// accounts reaching an entry is neither a TLB miss nor a load of a
/// pointer to it first ([`crate::huge_pages`]).
const CHUNK_ACCOUNTS: u64 = (HUGE_PAGE_BYTES / std::mem::size_of::<Cell>()) as u64;

/// What never changes about an account once it is opened.
#[derive(Debug)]
pub struct AccountInfo {
    pub account_id: AccountId,
    pub created_at_ms: i64,
    /// The application it was opened from, shared with the registry (not
    /// copied: its strings are most of an idle account's memory, issue 5
    /// target 5): the account's name, credential, bank and settlement
    /// account are the application's.
    pub application: Arc<Application>,
}

impl AccountInfo {
    pub fn name(&self) -> &str {
        &self.application.name
    }

    pub fn credential_no(&self) -> &str {
        &self.application.credential_no
    }

    /// The bank code of its sub-account.
    pub fn bank(&self) -> &str {
        &self.application.bank
    }

    pub fn settlement_account(&self) -> &SettlementAccount {
        &self.application.settlement_account
    }
}

/// An account's state while no actor owns it.
#[derive(Debug, Default)]
pub struct IdleAccount {
    pub book: AccountBook,
    /// The lsn of the latest status change (see [`AccountActor`]).
    pub status_lsn: u64,
}

/// Who holds an account's book right now.
pub enum Slot {
    Idle(IdleAccount),
    Live(Addr<AccountActor>),
    /// Only while a slot is being switched under its lock; never seen
    /// by anyone else.
    Moving,
}

pub struct AccountEntry {
    pub info: Arc<AccountInfo>,
    status: AtomicU8,
    /// The index of its bank's code in [`Directory::bank_codes`] (or
    /// [`BANK_UNINDEXED`]): routing a bank instruction reads this byte,
    /// not the application's string three pointers away (cache misses
    /// over a million accounts).
    bank: u8,
    /// Inline (a sub-account number is 15 bytes): a bank instruction
    /// copies it from here, in the entry's lines it reads anyway
    /// ([`crate::actors::bank::AccountNo`]).
    sub_account_no: OnceLock<AccountNo>,
    slot: Mutex<Slot>,
    /// Messages sent to the live actor and not yet handled or dropped.
    /// Raised only under `slot`'s lock; lowered by [`Ticket`]s anywhere.
    pending: AtomicU32,
}

/// [`AccountEntry::bank_index`] of an account whose bank code did not fit
/// in the table (more than 255 codes): look it up by name.
pub const BANK_UNINDEXED: u8 = u8::MAX;

impl AccountEntry {
    /// Its bank's index in [`Directory::bank_codes`], or [`BANK_UNINDEXED`].
    pub fn bank_index(&self) -> u8 {
        self.bank
    }

    pub fn status(&self) -> AccountStatus {
        AccountStatus::from_u8(self.status.load(Ordering::Acquire))
    }

    pub fn sub_account_no(&self) -> Option<&str> {
        self.sub_account_no.get().map(AccountNo::as_str)
    }

    /// A copy of its sub-account number, for a bank instruction.
    pub fn sub_account_no_copy(&self) -> Option<AccountNo> {
        self.sub_account_no.get().cloned()
    }

    /// Whether an actor owns the account now (tests and metrics).
    pub fn is_live(&self) -> bool {
        matches!(*self.slot.lock(), Slot::Live(_))
    }

    /// Passivation, called by the account's live actor `addr` on itself:
    /// if no message is on its way to it, the slot takes `take()` (its
    /// book) back and `true` says the actor must stop now and never handle
    /// another message.
    pub(super) fn passivate(&self, addr: &Addr<AccountActor>, take: impl FnOnce() -> IdleAccount) -> bool {
        let mut slot = self.slot.lock();
        assert!(
            matches!(&*slot, Slot::Live(live) if live == addr),
            "{}: only the live actor passivates its account",
            self.info.account_id
        );
        if self.pending.load(Ordering::Acquire) != 0 {
            return false;
        }
        *slot = Slot::Idle(take());
        true
    }
}

/// One message counted in its account's `pending`; uncounts it when
/// dropped (after the handler ran, or with a message never delivered).
pub struct Ticket(&'static AccountEntry);

impl Drop for Ticket {
    fn drop(&mut self) {
        let before = self.0.pending.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "{}: more tickets dropped than issued", self.0.info.account_id);
    }
}

/// A registered account's entry, in place (found by its number), padded
/// to whole cache lines so that no two entries share one.
#[repr(align(64))]
struct Cell(OnceLock<AccountEntry>);

/// Chunks are made once and never freed (see [`Directory`]): entries are
/// `'static`, so a [`Ticket`] or an [`AccountRef`] borrows one without a
/// count shared across threads.
type Chunk = HugeSlice<Cell>;

/// What [`Directory::send_transfers`] did with a message.
pub enum Sent<F> {
    /// Applied in place (the account was idle): its answers, now. A batch
    /// touches thousands of idle payers; their answers need no future each.
    Applied(Vec<ItemOutcome>),
    /// In the live actor's mailbox: its answers, when they come.
    Mailbox(F),
}

impl<F: Future<Output = Result<Vec<ItemOutcome>, MailboxError>>> Sent<F> {
    /// The answers, however they come.
    pub async fn answers(self) -> Result<Vec<ItemOutcome>, MailboxError> {
        match self {
            Sent::Applied(answers) => Ok(answers),
            Sent::Mailbox(answers) => answers.await,
        }
    }
}

/// The process's one directory lives as long as the process; its chunks
/// are leaked even if it is dropped (tests make several), so that an
/// entry can be borrowed for `'static`.
pub struct Directory {
    chunks: Box<[OnceLock<&'static Chunk>]>,
    /// Highest account number registered.
    count: AtomicU64,
    /// Sub-account number -> account, for bank notifications (not a
    /// transfer's path); the number itself is read back from the account's
    /// entry, not copied.
    by_sub_account: RwLock<KeyedIds<AccountId>>,
    /// Bank codes of registered accounts, in order of first use: what an
    /// entry's `bank` byte indexes. Only grows (a few banks).
    bank_codes: RwLock<Vec<Box<str>>>,
    /// Where activated actors run; set once the actor system is up.
    spawner: OnceLock<Spawner>,
    /// Accounts with a live actor, and activations ever (for tests and
    /// metrics).
    live: AtomicU64,
    activations: AtomicU64,
    /// Messages applied to an idle book in place.
    applied_idle: AtomicU64,
}

impl Default for Directory {
    fn default() -> Self {
        Self::new()
    }
}

impl Directory {
    pub fn new() -> Self {
        let chunk_count = limits::ACCOUNTS_MAX.div_ceil(CHUNK_ACCOUNTS) as usize;
        let chunks = (0..chunk_count).map(|_| OnceLock::new()).collect();
        Self {
            chunks,
            count: AtomicU64::new(0),
            by_sub_account: RwLock::new(KeyedIds::default()),
            bank_codes: RwLock::new(Vec::new()),
            spawner: OnceLock::new(),
            live: AtomicU64::new(0),
            activations: AtomicU64::new(0),
            applied_idle: AtomicU64::new(0),
        }
    }

    /// Where account actors are activated; called once, from inside the
    /// actor system, before any message is sent to an account.
    pub fn set_spawner(&self, spawner: Spawner) {
        assert!(self.spawner.set(spawner).is_ok(), "the account spawner is set once");
    }

    fn cell(&self, id: AccountId) -> Option<&'static Cell> {
        let index = id.0.checked_sub(1)?;
        let chunk = self.chunks.get((index / CHUNK_ACCOUNTS) as usize)?;
        let chunk = chunk
            .get_or_init(|| Box::leak(Box::new(HugeSlice::new(CHUNK_ACCOUNTS as usize, |_| Cell(OnceLock::new())))));
        chunk.get((index % CHUNK_ACCOUNTS) as usize)
    }

    /// The cell of an account whose chunk exists (no chunk is made).
    fn existing_cell(&self, id: AccountId) -> Option<&'static Cell> {
        let index = id.0.checked_sub(1)?;
        let chunk = self.chunks.get((index / CHUNK_ACCOUNTS) as usize)?.get()?;
        chunk.get((index % CHUNK_ACCOUNTS) as usize)
    }

    /// Start loading account `id`'s entry (status, slot and book; a hint,
    /// see [`crate::prefetch`]): its address is computed from the number,
    /// nothing is read first. Over a million accounts the entries are 128
    /// MB: reading one is a miss.
    pub fn prefetch_entry(&self, id: AccountId) {
        if let Some(cell) = self.existing_cell(id) {
            prefetch::value(cell);
        }
    }

    pub fn get(&self, id: AccountId) -> Option<&'static AccountEntry> {
        if id.0 == 0 || id.0 > self.count.load(Ordering::Acquire) {
            return None;
        }
        self.cell(id)?.0.get()
    }

    /// Register a newly opened (or recovered) account, idle: its actor
    /// starts with the first message sent to it. Ids are handed out in
    /// order by the registry, one writer.
    pub fn insert(
        &self,
        info: Arc<AccountInfo>,
        status: AccountStatus,
        sub_account_no: Option<Box<str>>,
        book: AccountBook,
    ) {
        let id = info.account_id;
        assert!(id.0 <= limits::ACCOUNTS_MAX, "account limit is checked before approval");
        book.assert_invariants(id);
        let bank = self.bank_index(info.bank());
        let entry = AccountEntry {
            info,
            status: AtomicU8::new(status.as_u8()),
            bank,
            sub_account_no: OnceLock::new(),
            slot: Mutex::new(Slot::Idle(IdleAccount { book, status_lsn: 0 })),
            pending: AtomicU32::new(0),
        };
        let cell = self.cell(id).expect("account id within the directory");
        assert!(cell.0.set(entry).is_ok(), "account {id} registered twice");
        if let Some(sub) = sub_account_no {
            self.set_sub_account(id, sub);
        }
        self.count.fetch_max(id.0, Ordering::AcqRel);
    }

    /// `code`'s index in [`Directory::bank_codes`], added if new; past 255
    /// codes, [`BANK_UNINDEXED`].
    fn bank_index(&self, code: &str) -> u8 {
        let position = |codes: &[Box<str>]| codes.iter().position(|known| **known == *code);
        if let Some(index) = position(&self.bank_codes.read()) {
            return index as u8;
        }
        let mut codes = self.bank_codes.write();
        if let Some(index) = position(&codes) {
            return index as u8;
        }
        if codes.len() >= usize::from(BANK_UNINDEXED) {
            return BANK_UNINDEXED;
        }
        codes.push(code.into());
        (codes.len() - 1) as u8
    }

    /// The bank codes entries' [`AccountEntry::bank_index`] points into.
    pub fn bank_codes(&self) -> Vec<Box<str>> {
        self.bank_codes.read().clone()
    }

    /// How many bank codes entries name. Codes are only ever added, each
    /// before the first entry that names it is inserted: while this is 1,
    /// every account there is has index 0.
    pub fn bank_code_count(&self) -> usize {
        self.bank_codes.read().len()
    }

    /// The account's live actor, activated if it was idle, with `message`
    /// counted as on its way to it. Returns the address to send it to.
    pub(super) fn lease<M: AccountMessage>(
        self: &Arc<Self>,
        entry: &'static AccountEntry,
        message: M,
    ) -> (Addr<AccountActor>, Leased<M>) {
        debug_assert!(
            self.get(entry.info.account_id).is_some_and(|found| std::ptr::eq(found, entry)),
            "entries come from this directory"
        );
        let mut slot = entry.slot.lock();
        if let Slot::Idle(_) = &*slot {
            self.activate(entry, &mut slot, false);
        }
        let Slot::Live(addr) = &*slot else { unreachable!("a slot is idle or live outside its lock") };
        entry.pending.fetch_add(1, Ordering::AcqRel);
        (addr.clone(), Leased { message, ticket: Ticket(entry) })
    }

    /// Called by an actor that has passivated (its book is back in the slot).
    pub(super) fn passivated(&self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    /// Send `message` to the account and wait for its answer (activating
    /// the account's actor if it is idle). The message enters the mailbox
    /// before this returns, like [`Addr::send`]; its answer is awaited.
    pub fn send<M: AccountMessage>(
        self: &Arc<Self>,
        entry: &'static AccountEntry,
        message: M,
    ) -> impl Future<Output = Result<M::Output, MailboxError>> {
        let (addr, leased) = self.lease(entry, message);
        addr.send(leased)
    }

    /// Under the slot's lock, an idle slot: move its book into a new actor
    /// (`poisoned`: one that answers nothing, see [`Spawner::activate`]).
    fn activate(self: &Arc<Self>, entry: &AccountEntry, slot: &mut Slot, poisoned: bool) {
        let Slot::Idle(idle) = std::mem::replace(slot, Slot::Moving) else { unreachable!("only idle slots activate") };
        let spawner = self.spawner.get().expect("the actor system sets the spawner before accounts get messages");
        let addr = spawner.activate(entry.info.account_id, entry.status(), idle, Arc::clone(self), poisoned);
        self.live.fetch_add(1, Ordering::Relaxed);
        self.activations.fetch_add(1, Ordering::Relaxed);
        *slot = Slot::Live(addr);
    }

    /// [`ApplyTransfers`] for the account (its payer side), answered. If
    /// the account is idle the sender applies it in place, under the slot's
    /// lock, with the same code its actor runs ([`Owner`]): the slot being
    /// idle means every earlier message was handled, so this is the order
    /// a mailbox would give, without an actor's start, two thread hand-offs
    /// and its stop. The payees' credits and the id claims go out after the
    /// lock is released ([`super::account::Applied::finish`]), so no sender ever holds two
    /// slot locks. A live account gets the message in its mailbox.
    ///
    /// If the append fails after the book changed, the book is ahead of
    /// the log: a poisoned actor takes it over, which answers nothing (as
    /// a live actor does after such a failure).
    ///
    /// `id` is the entry's account (the caller knows it: reading it from
    /// the entry's info would be a cache miss of its own over many
    /// accounts).
    pub fn send_transfers(
        self: &Arc<Self>,
        id: AccountId,
        entry: &'static AccountEntry,
        message: ApplyTransfers,
    ) -> Sent<impl Future<Output = Result<Vec<ItemOutcome>, MailboxError>>> {
        debug_assert_eq!(id, entry.info.account_id);
        let spawner = self.spawner.get().expect("the actor system sets the spawner before accounts get messages");
        let mut slot = entry.slot.lock();
        let Slot::Idle(idle) = &mut *slot else {
            drop(slot);
            return Sent::Mailbox(self.send(entry, message));
        };
        let owner = Owner { id, status: entry.status(), book: &mut idle.book, log: spawner.log() };
        let applied = owner.apply_transfers(message, self);
        if applied.log_failed {
            tracing::error!(account = %id, "append failed after a change in memory; account stops answering");
            self.activate(entry, &mut slot, true);
        }
        drop(slot);
        let (answers, credits_in_place) = applied.finish(self);
        // One count for the message and its credits: the counter is shared
        // by every gateway thread.
        self.count_applied_idle(1 + credits_in_place);
        Sent::Applied(answers)
    }

    pub(super) fn count_applied_idle(&self, messages: u64) {
        if messages > 0 {
            self.applied_idle.fetch_add(messages, Ordering::Relaxed);
        }
    }

    /// Send `message` to the account without waiting (nor the mailbox
    /// bound, like [`Addr::do_send`]). A message that needs only the book
    /// ([`AccountMessage::apply_idle`]: credits) is applied in place if
    /// the account is idle: every earlier message was handled before it
    /// went idle, so this is the order a mailbox would give, without an
    /// actor's start and stop.
    pub fn do_send<M: AccountMessage>(self: &Arc<Self>, entry: &'static AccountEntry, message: M) {
        if self.deliver(entry.info.account_id, entry, message) {
            self.count_applied_idle(1);
        }
    }

    /// [`Directory::do_send`] without counting: true if it was applied in
    /// place (the caller counts). `id` is the entry's account (see
    /// [`Directory::send_transfers`]).
    pub(super) fn deliver<M: AccountMessage>(
        self: &Arc<Self>,
        id: AccountId,
        entry: &'static AccountEntry,
        message: M,
    ) -> bool {
        debug_assert_eq!(id, entry.info.account_id);
        let message = {
            let mut slot = entry.slot.lock();
            match &mut *slot {
                Slot::Idle(idle) => match message.apply_idle(id, idle) {
                    Ok(()) => return true,
                    Err(message) => message,
                },
                _ => message,
            }
        };
        let (addr, leased) = self.lease(entry, message);
        addr.do_send(leased);
        false
    }

    /// Accounts with a live actor now.
    pub fn live_count(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    /// Actors activated since start.
    pub fn activation_count(&self) -> u64 {
        self.activations.load(Ordering::Relaxed)
    }

    /// Messages applied to an idle account's book without an actor.
    pub fn applied_idle_count(&self) -> u64 {
        self.applied_idle.load(Ordering::Relaxed)
    }

    /// Called by the account's own actor when its status changes.
    pub fn set_status(&self, id: AccountId, status: AccountStatus) {
        if let Some(entry) = self.get(id) {
            entry.status.store(status.as_u8(), Ordering::Release);
        }
    }

    pub fn set_sub_account(&self, id: AccountId, sub_account_no: Box<str>) {
        let Some(cell) = self.cell(id) else { return };
        let Some(entry) = cell.0.get() else { return };
        if entry.sub_account_no.set(AccountNo::from(&*sub_account_no)).is_ok() {
            self.by_sub_account.write().insert(&sub_account_no, id, |id| self.sub_account_of(id));
        }
    }

    pub fn by_sub_account(&self, sub_account_no: &str) -> Option<&'static AccountEntry> {
        let id = self.by_sub_account.read().get(sub_account_no, |id| self.sub_account_of(id))?;
        self.get(id)
    }

    /// The sub-account number the index reads back for `id`: from the cell
    /// itself, since [`Directory::insert`] indexes a recovered account's
    /// number before it raises `count` (which [`Directory::get`] checks).
    fn sub_account_of(&self, id: AccountId) -> Option<&str> {
        self.cell(id)?.0.get()?.sub_account_no()
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    pub fn status(&self, id: AccountId) -> Option<AccountStatus> {
        self.get(id).map(|entry| entry.status())
    }
}

/// An account to send messages to later (the bank's signing answer):
/// the directory and the account, never a possibly passivated actor's
/// address.
#[derive(Clone)]
pub struct AccountRef {
    pub directory: Arc<Directory>,
    pub entry: &'static AccountEntry,
}

impl AccountRef {
    pub fn do_send<M: AccountMessage>(&self, message: M) {
        self.directory.do_send(self.entry, message);
    }
}

/// Account `n`'s facts for tests: trader n, credential Cn, bank SIMBANK.
#[cfg(test)]
pub(crate) fn test_info(n: u64) -> Arc<AccountInfo> {
    test_info_at(n, "SIMBANK")
}

/// [`test_info`] at another bank.
#[cfg(test)]
pub(crate) fn test_info_at(n: u64, bank: &str) -> Arc<AccountInfo> {
    let application = Application {
        application_id: crate::domain::ids::ApplicationId(n),
        name: format!("trader {n}").into(),
        credential_no: format!("C{n}").into(),
        bank: bank.into(),
        settlement_account: SettlementAccount {
            bank_name: "bank".into(),
            account_no: format!("6222{n:012}").into(),
            account_name: format!("trader {n}").into(),
        },
        created_at_ms: 0,
        operator: "test".into(),
    };
    Arc::new(AccountInfo { account_id: AccountId(n), created_at_ms: 0, application: Arc::new(application) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each entry keeps its bank as an index into the directory's codes,
    /// one index per code, in order of first use.
    #[test]
    fn entries_index_their_bank_code() {
        let directory = Directory::new();
        for (n, bank) in [(1, "SIMBANK"), (2, "OTHER"), (3, "SIMBANK")] {
            directory.insert(test_info_at(n, bank), AccountStatus::Active, None, AccountBook::default());
        }
        let codes = directory.bank_codes();
        assert_eq!(codes, vec!["SIMBANK".into(), "OTHER".into()]);
        for n in 1..=3 {
            let entry = directory.get(AccountId(n)).expect("registered");
            assert_eq!(&*codes[usize::from(entry.bank_index())], entry.info.bank(), "account {n}");
        }
    }

    /// A prefetch of any number, a request's included, changes nothing:
    /// it makes no chunk for an account that does not exist, and the
    /// accounts read the same after it.
    #[test]
    fn prefetching_any_account_number_changes_nothing() {
        let directory = Directory::new();
        for n in 1..=3 {
            directory.insert(test_info(n), AccountStatus::Active, None, AccountBook::default());
        }
        let made = |directory: &Directory| directory.chunks.iter().filter(|chunk| chunk.get().is_some()).count();
        assert_eq!(made(&directory), 1);
        for n in [0, 1, 3, 4, CHUNK_ACCOUNTS + 1, limits::ACCOUNTS_MAX, limits::ACCOUNTS_MAX + 1, u64::MAX] {
            directory.prefetch_entry(AccountId(n));
        }
        assert_eq!(made(&directory), 1, "no chunk made for accounts that do not exist");
        for n in 1..=3 {
            let entry = directory.get(AccountId(n)).expect("registered");
            assert_eq!((entry.info.account_id, entry.status()), (AccountId(n), AccountStatus::Active));
        }
        assert!(directory.get(AccountId(4)).is_none());
    }

    /// Recovered accounts come with their sub-account number (indexed
    /// while inserted), signed ones get it later; bank notifications find
    /// both by it, and nothing else.
    #[test]
    fn accounts_are_found_by_their_sub_account_number() {
        let directory = Directory::new();
        for n in 1..=300 {
            let sub = (n % 2 == 0).then(|| format!("31094010{n:07}").into());
            directory.insert(test_info(n), AccountStatus::Active, sub, AccountBook::default());
        }
        for n in (1..=300).filter(|n| n % 2 == 1) {
            directory.set_sub_account(AccountId(n), format!("31094010{n:07}").into());
        }
        for n in 1..=300 {
            let found = directory.by_sub_account(&format!("31094010{n:07}")).map(|entry| entry.info.account_id);
            assert_eq!(found, Some(AccountId(n)));
        }
        assert!(directory.by_sub_account("310940100000301").is_none());
        assert!(directory.by_sub_account("").is_none());
    }

    /// What an idle account costs here: its entry (112 bytes on x86-64,
    /// in a cell of two cache lines: its book's holds and withdrawals kept
    /// apart while it has none, its sub-account number inline) and its
    /// fixed facts (24 bytes: the
    /// strings are the application's, shared with the registry). A guard
    /// against the slot quietly growing back towards a live actor's size
    /// (`AccountActor` plus its context, about a KiB).
    #[test]
    fn an_idle_account_stays_small() {
        let entry = std::mem::size_of::<AccountEntry>();
        eprintln!(
            "AccountEntry {entry} (Slot {}, AccountBook {}), AccountInfo {}, AccountActor {}",
            std::mem::size_of::<Slot>(),
            std::mem::size_of::<AccountBook>(),
            std::mem::size_of::<AccountInfo>(),
            std::mem::size_of::<AccountActor>(),
        );
        assert_eq!(std::mem::size_of::<Cell>(), 128, "AccountEntry grew to {entry} bytes: past two cache lines");
        assert!(std::mem::size_of::<AccountInfo>() <= 24, "AccountInfo holds no strings of its own");
    }
}
