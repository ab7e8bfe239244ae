//! The history archive: the on-disk index that finds old history in the
//! log's segments (DESIGN.md, History and memory).
//!
//! Owns three tables of the `fundledger-index` crate under
//! `<data_dir>/history/` (the history's threads write and merge them:
//! `history-archive` each flush's runs, `history-merge` the merges):
//!
//! - `journal`: key `account u64 BE ‖ lsn u64 BE`, value the entry's
//!   numbers ([`JournalIndexEntry`], 41 bytes): kind, deltas, balances
//!   after, time. What made the entry (ids, counterparty) is read from the
//!   record at that lsn.
//! - `lookup`: key `tag u8 ‖ hash u64 BE ‖ lsn u64 BE`, no value: the lsns
//!   of the records that carry a string key (a client id, an order id, a
//!   hold id, ...; [`Tag`]). A hash may collide: readers compare the key
//!   in the record itself. A schema-1 bank answer (it names only a
//!   reference) is written under its client id's tag ([`Tag::on_disk`]),
//!   so readers of either also compare the record's kind.
//! - `answers`: key `answered lsn u64 BE ‖ lsn u64 BE`, no value, no Bloom
//!   filter: the bank's answers (schema 2 names the lsn of the record it
//!   answers). An answer follows its record closely in the log, so each
//!   run covers a narrow range of answered lsns and its min and max keys
//!   rule it out for almost every lookup. Before this table (2026-12-06)
//!   answers were looked up by reference in `lookup`, where an answer
//!   written in a later run than its movement (a bank far behind) cost a
//!   filter entry of its own.
//!
//! Memory: each open run keeps its Bloom filter (10 bits per distinct
//! prefix: about 1.25 bytes per client id, the one per-record cost left;
//! a half or a quarter of that in runs whose filter is above 4 or 64 MiB,
//! which keep only its fold, see the index crate's `limits`) and its
//! sparse index (one key and CRC per block; blocks are 64 KiB in the
//! journal and 16 KiB in the lookup and answers tables for that reason).
//!
//! Records are served by [`Archive::record`]: the log's own segments, two
//! positioned reads each (`Wal::read`).
//!
//! The history read model ([`super::history`]) keeps the entries of the
//! newest records in memory ([`Recent`]) and hands them here when there
//! are `history.memory_records` of them: the writer
//! thread sorts them, writes one run per table (temporary file, fsync,
//! rename, directory fsync), publishes the new runs, and only then is the
//! memory dropped. Both tables always cover the same lsns: a crash between
//! the two writes leaves one table a run ahead, and [`Archive::open`]
//! removes that run (the log replays it again).
//!
//! Metrics: `fundledger_history_archive_lsn` (the last lsn the runs
//! cover), `fundledger_history_archive_runs{table}`,
//! `fundledger_history_archive_memory_bytes` (sparse indexes and Bloom
//! filters), `fundledger_history_archive_write_errors_total`; the history
//! sets `fundledger_history_memory_records` (records indexed in memory).
//!
//! Must not: judge or change balances, or read anything but the log and
//! its own files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fundledger_index::{Direction, IndexError, Member, MergeJob, RunSet, RunSpec, Snapshot};
use hashbrown::HashMap;
use parking_lot::{Mutex, RwLock};
use smallvec::SmallVec;

use crate::domain::account::Balance;
use crate::domain::by_account::ByAccount;
use crate::domain::ids::AccountId;
use crate::domain::money::Money;
use crate::domain::record::Record;
use crate::finance::history::JournalKind;
use crate::limits;

const JOURNAL_KEY_BYTES: usize = 16;
const JOURNAL_VALUE_BYTES: usize = 41;
const LOOKUP_KEY_BYTES: usize = 17;
/// A lookup key's prefix: tag and hash (what its Bloom filter holds).
const LOOKUP_PREFIX_BYTES: usize = 9;
const ANSWER_KEY_BYTES: usize = 16;
/// Runs of one size tier merged at once in the lookup table (size-tiered
/// merging, tiers by the lsns a run covers: a run is rewritten about
/// log4(history / flush) times, and a table holds at most about 3 runs
/// per tier). Every new client id is checked against each lookup run's
/// filter, so this table keeps few runs.
const LOOKUP_MERGE_FANOUT: usize = 4;
/// The same for the journal and answers tables: 8, so that an entry is
/// rewritten log8 instead of log4 times (two-thirds as many bytes; the
/// journal is about two-thirds of what the archive writes, and on a VM
/// whose page cache pages are fresh memory its merges were most of the
/// writer's time: docs/PERFORMANCE.md). They hold up to about 7 runs per
/// tier: a journal page reads a block from each run that holds the account
/// (about 20 at a hundred million transfers instead of 13), and an answers
/// lookup rules runs out by their min and max keys.
const WIDE_MERGE_FANOUT: usize = 8;

/// What a lookup key names. Part of the on-disk format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Tag {
    /// A client id: movements, withdrawals, adjustments, suspense returns.
    ClientId = b'i',
    /// A bank notification: `bank \u{1f} serial` of a deposit or a
    /// suspense entry.
    Notification = b'n',
    /// A deposit's `notification_id` (receipts look deposits up by it).
    DepositNotificationId = b'd',
    /// An order's movements.
    Order = b'o',
    /// A hold's movements (the one that opened it and those that used it).
    Hold = b'h',
    /// A withdrawal's request and its finish.
    Withdrawal = b'w',
    /// The bank's answers to an instruction, by reference. Written under
    /// [`Tag::ClientId`] since 2026-12-06 ([`Tag::on_disk`]); runs written
    /// before keep this tag, and readers look under both.
    Reference = b'r',
    /// The records one bank should show on one day (`bank \u{1f} day`,
    /// [`crate::finance::reconciliation::bank_day_key`]).
    BankDay = b'b',
}

impl Tag {
    /// The tag a name is written under. A reference is the client id of
    /// what the instruction mirrors (a movement's, a withdrawal's, ...), so
    /// the bank's answer shares that id's prefix: one Bloom filter entry
    /// per transfer instead of two once both are in one run (the filters
    /// are what the archive keeps in memory per record: issue 5, target 7).
    fn on_disk(self) -> Tag {
        match self {
            Tag::Reference => Tag::ClientId,
            tag => tag,
        }
    }
}

/// The 64-bit hash a lookup key stores (the index crate's format hash:
/// stable across versions and processes).
pub fn key_hash(key: &str) -> u64 {
    fundledger_index::format::prefix_hash(key.as_bytes())
}

fn lookup_key(tag: Tag, hash: u64, lsn: u64) -> [u8; LOOKUP_KEY_BYTES] {
    let mut key = [0u8; LOOKUP_KEY_BYTES];
    key[0] = tag as u8;
    key[1..9].copy_from_slice(&hash.to_be_bytes());
    key[9..].copy_from_slice(&lsn.to_be_bytes());
    key
}

fn answer_key(answered: u64, lsn: u64) -> [u8; ANSWER_KEY_BYTES] {
    let mut key = [0u8; ANSWER_KEY_BYTES];
    key[..8].copy_from_slice(&answered.to_be_bytes());
    key[8..].copy_from_slice(&lsn.to_be_bytes());
    key
}

fn lookup_prefix(tag: Tag, hash: u64) -> [u8; LOOKUP_PREFIX_BYTES] {
    let mut prefix = [0u8; LOOKUP_PREFIX_BYTES];
    prefix[0] = tag as u8;
    prefix[1..].copy_from_slice(&hash.to_be_bytes());
    prefix
}

fn key_lsn(key: &[u8]) -> u64 {
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&key[key.len() - 8..]);
    u64::from_be_bytes(lsn)
}

/// One journal entry's numbers: what the journal table stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalIndexEntry {
    pub lsn: u64,
    pub at_ms: i64,
    pub kind: JournalKind,
    pub available_delta: Money,
    pub frozen_delta: Money,
    pub after: Balance,
}

impl JournalIndexEntry {
    fn key(&self, account: AccountId) -> [u8; JOURNAL_KEY_BYTES] {
        let mut key = [0u8; JOURNAL_KEY_BYTES];
        key[..8].copy_from_slice(&account.0.to_be_bytes());
        key[8..].copy_from_slice(&self.lsn.to_be_bytes());
        key
    }

    fn value(&self) -> [u8; JOURNAL_VALUE_BYTES] {
        let mut value = [0u8; JOURNAL_VALUE_BYTES];
        value[0] = self.kind as u8;
        let numbers =
            [self.available_delta.0, self.frozen_delta.0, self.after.available.0, self.after.frozen.0, self.at_ms];
        for (slot, number) in value[1..].chunks_exact_mut(8).zip(numbers) {
            slot.copy_from_slice(&number.to_le_bytes());
        }
        value
    }

    fn decode(key: &[u8], value: &[u8]) -> Result<Self, String> {
        if key.len() != JOURNAL_KEY_BYTES || value.len() != JOURNAL_VALUE_BYTES {
            return Err(format!("journal entry of {} + {} bytes", key.len(), value.len()));
        }
        let kind = JournalKind::from_code(value[0]).ok_or_else(|| format!("journal kind code {}", value[0]))?;
        let mut numbers = [0i64; 5];
        for (number, bytes) in numbers.iter_mut().zip(value[1..].chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            *number = i64::from_le_bytes(word);
        }
        let [available_delta, frozen_delta, available, frozen, at_ms] = numbers;
        Ok(Self {
            lsn: key_lsn(key),
            at_ms,
            kind,
            available_delta: Money(available_delta),
            frozen_delta: Money(frozen_delta),
            after: Balance { available: Money(available), frozen: Money(frozen) },
        })
    }
}

/// Entries of the newest records, not yet in a run.
#[derive(Default, Clone)]
pub struct Recent {
    /// First and last lsn covered (0, 0: none).
    pub first_lsn: u64,
    pub last_lsn: u64,
    journal: RecentJournal,
    /// Every lookup key, for the run (client ids and notifications
    /// included: recent ones are also in the gateway's id indexes).
    pub lookup: Vec<[u8; LOOKUP_KEY_BYTES]>,
    /// Lsns by (tag, hash) for the tags read through the history (not
    /// client ids and notifications, which the id indexes serve).
    pub named: HashMap<(Tag, u64), Lsns>,
    /// Every answers key (`answered ‖ lsn`), for the run.
    pub answers: Vec<[u8; ANSWER_KEY_BYTES]>,
    /// Lsns of the bank's answers by the lsn they answer.
    pub answered: HashMap<u64, Lsns>,
    /// How many journal entries an account's list starts with room for
    /// (from the last batch taken; 0: the default growth).
    journal_room: usize,
    /// Journal entries posted, all accounts together.
    journal_entries: usize,
}

/// How many lists ahead [`Archive::write`] loads the journal list it will
/// write (the list's own lines), and the entries of a list that spilled
/// to the heap (which the list, loaded by then, points to).
const JOURNAL_PREFETCH_AHEAD: usize = 16;
const JOURNAL_PREFETCH_SPILLED_AHEAD: usize = 8;

/// The steps of [`Recent::prefetch_journal`], each a while after the one
/// before: an account's place, its list (which the place points to), the
/// room its next entry goes in (which the list points to, once the list
/// holds more than its inline one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefetchStep {
    Place,
    List,
    Tail,
}

/// Lsns under one key: nearly always one (a transfer's one bank answer, an
/// order's one movement), kept without an allocation of its own.
pub type Lsns = SmallVec<[u64; 1]>;

/// One account's recent journal entries. Over many accounts most hold one
/// between hand-overs (a million accounts, 262,144 records a batch): kept
/// in the map's slot, where a `Vec` allocated room for four (224 bytes)
/// for each.
pub type JournalList = SmallVec<[JournalIndexEntry; 1]>;

/// The most entries an account's journal list starts with room for.
const JOURNAL_ROOM_MAX: usize = 32;

/// Recent journal entries by account: each account's list, in the order
/// the accounts were first posted, found through its place by account
/// number (accounts are numbered from 1 as they open). One array access
/// per posting where a hash map by account probed its table (`Recent::post`
/// was 35% of the indexer's samples under batch, a part of it the probe).
#[derive(Default, Clone)]
struct RecentJournal {
    /// Each account's place in `lists`, plus one (0: no entry yet).
    places: ByAccount<u32>,
    lists: Vec<(AccountId, JournalList)>,
}

impl RecentJournal {
    /// Empty, with places for the accounts `self` saw and room for as many
    /// lists.
    fn emptied(&self) -> Self {
        Self { places: ByAccount::with_len(self.places.len(), 0), lists: Vec::with_capacity(self.lists.len()) }
    }

    /// `account`'s list, begun with room for `room` entries if it has none.
    fn list_mut(&mut self, account: AccountId, room: usize) -> &mut JournalList {
        let place = self.places.get_mut(account);
        if *place == 0 {
            self.lists.push((account, JournalList::with_capacity(room)));
            // Accounts number at most limits::ACCOUNTS_MAX (ByAccount checks).
            *place = u32::try_from(self.lists.len()).expect("fewer lists than accounts");
        }
        let index = *place as usize - 1;
        &mut self.lists[index].1
    }

    /// Start loading `account`'s place (a hint).
    fn prefetch_place(&self, account: AccountId) {
        self.places.prefetch(account);
    }

    /// Start loading `account`'s list: reads its place, so call
    /// [`RecentJournal::prefetch_place`] a while before.
    fn prefetch_list(&self, account: AccountId) {
        if let Some(list) = self.places.get(account).checked_sub(1).and_then(|at| self.lists.get(at as usize)) {
            crate::prefetch::value(list);
        }
    }

    /// Start loading where `account`'s next entry goes: reads its place
    /// and list, so call [`RecentJournal::prefetch_list`] a while before.
    /// (An inline list's room is the list itself.)
    fn prefetch_tail(&self, account: AccountId) {
        if let Some(list) = self.list(account).filter(|list| list.spilled()) {
            crate::prefetch::value(list.as_ptr().wrapping_add(list.len()));
        }
    }

    fn list(&self, account: AccountId) -> Option<&JournalList> {
        match self.places.get(account) {
            0 => None,
            place => Some(&self.lists[place as usize - 1].1),
        }
    }

    /// Accounts with entries.
    fn accounts(&self) -> usize {
        self.lists.len()
    }

    /// Every list's index in `lists`, in account order: each is
    /// `account << 32 | index` ([`RecentJournal::at`]). With the index
    /// beside its account the writer reads the lists in that order without
    /// looking each account's place up again (over a million accounts the
    /// places are 4 MB, a miss per account: `Archive::write` 339 ns per
    /// transfer against 248 over 10,000, docs/PERFORMANCE.md).
    fn in_account_order(&self) -> Vec<u64> {
        const { assert!(limits::ACCOUNTS_MAX < 1 << 32, "an account number fits above a list's index") };
        let mut order: Vec<u64> =
            self.lists.iter().enumerate().map(|(index, (account, _))| account.0 << 32 | index as u64).collect();
        // One list per account: the accounts alone order the keys.
        order.sort_unstable();
        order
    }

    /// The list a key of [`RecentJournal::in_account_order`] names.
    fn at(&self, key: u64) -> &(AccountId, JournalList) {
        &self.lists[(key & u64::from(u32::MAX)) as usize]
    }

    /// Start loading the list a key names (a hint).
    fn prefetch_at(&self, key: u64) {
        crate::prefetch::value(self.at(key));
    }

    /// Start loading the entries of the list a key names, if they spilled
    /// to the heap: reads the list, so call [`RecentJournal::prefetch_at`]
    /// a while before.
    fn prefetch_spilled_at(&self, key: u64) {
        let (_, list) = self.at(key);
        if list.spilled() {
            crate::prefetch::value(list.as_ptr());
        }
    }
}

impl Recent {
    pub fn records(&self) -> u64 {
        if self.last_lsn == 0 {
            0
        } else {
            self.last_lsn - self.first_lsn + 1
        }
    }

    pub fn note_lsn(&mut self, lsn: u64) {
        if self.first_lsn == 0 {
            self.first_lsn = lsn;
        }
        self.last_lsn = lsn;
    }

    /// Start loading where `account`'s next posting goes, in two steps a
    /// while apart: its place, then (once the place is in) its list.
    pub fn prefetch_journal(&self, account: AccountId, step: PrefetchStep) {
        match step {
            PrefetchStep::Place => self.journal.prefetch_place(account),
            PrefetchStep::List => self.journal.prefetch_list(account),
            PrefetchStep::Tail => self.journal.prefetch_tail(account),
        }
    }

    pub fn post(&mut self, account: AccountId, entry: JournalIndexEntry) {
        self.journal.list_mut(account, self.journal_room).push(entry);
        self.journal_entries += 1;
    }

    /// Hand these entries over (to be written as runs) and start again,
    /// with room for as many as these held: every account's list, the maps
    /// and the key lists otherwise grew again from nothing after each
    /// hand-over, copying as they doubled (4% of the indexer under batch
    /// load).
    pub fn take(&mut self) -> Recent {
        // The mean per account, rounded down to a power of two: all lists
        // together start with room for at most as many entries as these
        // held, however unevenly they were spread.
        // Counted as posted: this runs under the history's write lock, and
        // a million accounts' lists are not walked there.
        debug_assert_eq!(self.journal_entries, self.journal.lists.iter().map(|(_, list)| list.len()).sum::<usize>());
        let journal_room = match self.journal_entries.checked_div(self.journal.accounts()) {
            None | Some(0) => 0,
            Some(mean) => (1 << mean.ilog2()).min(JOURNAL_ROOM_MAX),
        };
        let next = Recent {
            journal: self.journal.emptied(),
            lookup: Vec::with_capacity(self.lookup.len()),
            named: HashMap::with_capacity(self.named.len()),
            answers: Vec::with_capacity(self.answers.len()),
            answered: HashMap::with_capacity(self.answered.len()),
            journal_room,
            ..Recent::default()
        };
        std::mem::replace(self, next)
    }

    pub fn name(&mut self, tag: Tag, key: &str, lsn: u64) {
        let hash = key_hash(key);
        self.lookup.push(lookup_key(tag.on_disk(), hash, lsn));
        if !matches!(tag, Tag::ClientId | Tag::Notification) {
            self.named.entry((tag, hash)).or_default().push(lsn);
        }
    }

    /// The bank's answer at `lsn` to the record at `answered`.
    pub fn answer(&mut self, answered: u64, lsn: u64) {
        self.answers.push(answer_key(answered, lsn));
        self.answered.entry(answered).or_default().push(lsn);
    }

    /// Lsns of the answers in memory to the record at `answered`.
    pub fn answers_to(&self, answered: u64) -> &[u64] {
        self.answered.get(&answered).map_or(&[], |lsns| lsns.as_slice())
    }

    pub fn journal(&self, account: AccountId) -> &[JournalIndexEntry] {
        self.journal.list(account).map_or(&[], |list| list.as_slice())
    }

    pub fn named(&self, tag: Tag, key: &str) -> &[u64] {
        self.named.get(&(tag, key_hash(key))).map_or(&[], |lsns| lsns.as_slice())
    }
}

/// The published runs of both tables.
#[derive(Clone, Debug)]
pub struct ArchiveRuns {
    pub journal: Snapshot,
    pub lookup: Snapshot,
    pub answers: Snapshot,
}

impl ArchiveRuns {
    pub fn watermark(&self) -> u64 {
        self.journal.watermark()
    }

    /// Journal entries of `account` with `lo <= lsn <= hi`, in `direction`.
    pub fn journal(
        &self,
        account: AccountId,
        lo: u64,
        hi: u64,
        direction: Direction,
    ) -> Result<impl Iterator<Item = Result<JournalIndexEntry, ArchiveError>> + '_, ArchiveError> {
        let mut low = [0u8; JOURNAL_KEY_BYTES];
        low[..8].copy_from_slice(&account.0.to_be_bytes());
        let mut high = low;
        low[8..].copy_from_slice(&lo.to_be_bytes());
        high[8..].copy_from_slice(&hi.to_be_bytes());
        let range = self.journal.range(&low, &high, direction)?;
        Ok(range.map(|entry| {
            let entry = entry?;
            JournalIndexEntry::decode(&entry.key, &entry.value).map_err(ArchiveError::Format)
        }))
    }

    /// The lsns of records named `key` under `tag` (a hash match: the
    /// caller compares the record's key, and for a tag written under
    /// another one, [`Tag::on_disk`], the record's kind), in lsn order.
    pub fn named(&self, tag: Tag, key: &str) -> Result<Vec<u64>, ArchiveError> {
        let hash = key_hash(key);
        let mut lsns = self.named_under(tag.on_disk(), hash)?;
        if tag.on_disk() != tag {
            // Runs written before the tag moved keep it under its own.
            lsns.extend(self.named_under(tag, hash)?);
            lsns.sort_unstable();
        }
        Ok(lsns)
    }

    /// Start loading what [`Self::named`] of `key` under `tag` checks
    /// first: each lookup run's filter line (a hint; see
    /// [`fundledger_index::Snapshot::prefetch_prefix`]). Runs written
    /// under a tag's old value are left to the lookup itself.
    pub fn prefetch_named(&self, tag: Tag, key: &str) {
        self.lookup.prefetch_prefix(&lookup_prefix(tag.on_disk(), key_hash(key)));
    }

    /// The lsns of the bank's answers to the record at `answered` (schema
    /// 2 answers; a schema-1 one is found by reference, [`Self::named`]),
    /// in lsn order.
    pub fn answers_to(&self, answered: u64) -> Result<Vec<u64>, ArchiveError> {
        let (low, high) = (answer_key(answered, 0), answer_key(answered, u64::MAX));
        let mut lsns = Vec::new();
        for entry in self.answers.range(&low, &high, Direction::Forward)? {
            lsns.push(key_lsn(&entry?.key));
        }
        Ok(lsns)
    }

    fn named_under(&self, tag: Tag, hash: u64) -> Result<Vec<u64>, ArchiveError> {
        let prefix = lookup_prefix(tag, hash);
        // Reads only the runs whose filter admits the prefix: for a new
        // client id, none, and nothing is allocated.
        let mut lsns = Vec::new();
        for entry in self.lookup.get_prefix(&prefix, Direction::Forward)? {
            lsns.push(key_lsn(&entry?.key));
        }
        // One hash, several runs: merged by key, and the key ends in the lsn.
        debug_assert!(lsns.windows(2).all(|pair| pair[0] < pair[1]));
        Ok(lsns)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("history index: {0}")]
    Index(#[from] IndexError),
    #[error("history index: {0}")]
    Format(String),
    #[error("history record: {0}")]
    Log(#[from] fundledger_wal::ReadError),
    #[error("history record at lsn {lsn} does not decode: {reason}")]
    Decode { lsn: u64, reason: String },
}

impl ArchiveError {
    /// A record removed by `wal.retention_days`: its history is gone.
    pub fn is_removed(&self) -> bool {
        matches!(self, ArchiveError::Log(fundledger_wal::ReadError::Removed { .. }))
    }
}

struct Tables {
    journal: RunSet,
    lookup: RunSet,
    answers: RunSet,
}

impl Tables {
    fn snapshot(&self) -> ArchiveRuns {
        ArchiveRuns {
            journal: self.journal.snapshot(),
            lookup: self.lookup.snapshot(),
            answers: self.answers.snapshot(),
        }
    }

    /// Each table with the runs it merges at once.
    fn sets(&mut self) -> [(&mut RunSet, usize); 3] {
        [
            (&mut self.lookup, LOOKUP_MERGE_FANOUT),
            (&mut self.answers, WIDE_MERGE_FANOUT),
            (&mut self.journal, WIDE_MERGE_FANOUT),
        ]
    }
}

/// The archive's files and the log it reads records from.
/// A flush's runs, written and durable but not yet seen by readers.
/// [`Unpublished::publish`] makes them visible; the history calls it under
/// its write lock, as it drops the same entries from memory, so that a
/// reader sees each entry once: in memory or in a run. Until then no merge
/// can publish (it would show the new runs too).
#[must_use = "written runs are invisible until published"]
pub struct Unpublished<'a> {
    archive: &'a Archive,
    runs: ArchiveRuns,
    _publishing: parking_lot::MutexGuard<'a, ()>,
}

impl Unpublished<'_> {
    /// The runs as they will be published.
    pub fn runs(&self) -> &ArchiveRuns {
        &self.runs
    }

    pub fn publish(self) {
        self.archive.publish(self.runs);
    }
}

pub struct Archive {
    dir: PathBuf,
    tables: Mutex<Tables>,
    /// Held from writing a flush's runs until the history publishes them
    /// ([`Unpublished`]), and by a merge while it finishes and publishes:
    /// merges run on their own thread, and one finishing in between would
    /// publish the flush's runs while the history still serves their
    /// entries from memory. Taken before `tables`.
    publishing: Mutex<()>,
    runs: RwLock<ArchiveRuns>,
    /// Bumped on every publish: lets the hot path keep a per-thread copy of
    /// the runs ([`Archive::with_runs`]) instead of taking `runs`' lock.
    version: std::sync::atomic::AtomicU64,
    wal: std::sync::OnceLock<fundledger_wal::Wal>,
}

/// Journal blocks of about 64 KiB (1149 entries): the sparse index keeps
/// one key and CRC per block in memory, 0.017 bytes per entry instead of
/// the 0.35 of 4 KiB blocks, and a journal page is one account's run of
/// entries, so the larger read is mostly entries the page shows. Runs
/// written with smaller blocks are read as they are and rewritten at this
/// size when merged.
const JOURNAL_BLOCK_BYTES: usize = 64 * 1024;
/// Lookup blocks of about 16 KiB (963 keys): 0.02 bytes per key in memory
/// instead of 0.09; a lookup reads one block per run its filter admits.
const LOOKUP_BLOCK_BYTES: usize = 16 * 1024;

fn journal_spec() -> RunSpec {
    RunSpec::new(JOURNAL_KEY_BYTES, JOURNAL_VALUE_BYTES, 8).with_block_bytes(JOURNAL_BLOCK_BYTES)
}

/// Bloom bits per prefix of the lookup runs small enough to keep their
/// filter whole in memory: 0.1% false positives instead of 1% (each one a
/// block read for a new client id), for 0.75 bytes more per key in the
/// small runs only (docs/PERFORMANCE.md).
const LOOKUP_SMALL_RUN_BITS: u64 = 16;

fn lookup_spec() -> RunSpec {
    RunSpec::new(LOOKUP_KEY_BYTES, 0, LOOKUP_PREFIX_BYTES)
        .with_block_bytes(LOOKUP_BLOCK_BYTES)
        .with_small_run_bits(LOOKUP_SMALL_RUN_BITS)
}

/// No filter (prefix 0): min and max keys rule runs out (module doc).
fn answers_spec() -> RunSpec {
    RunSpec::new(ANSWER_KEY_BYTES, 0, 0).with_block_bytes(LOOKUP_BLOCK_BYTES)
}

impl Archive {
    /// Opens (or creates) `<data_dir>/history`. When one table is ahead of
    /// the other (a crash between their writes), its extra runs go.
    pub fn open(data_dir: &Path) -> Result<Arc<Archive>, ArchiveError> {
        let dir = data_dir.join("history");
        let journal = RunSet::open(&dir.join("journal"), journal_spec())?;
        let lookup = RunSet::open(&dir.join("lookup"), lookup_spec())?;
        let mut answers = RunSet::open(&dir.join("answers"), answers_spec())?;
        let older = journal.watermark().min(lookup.watermark());
        if answers.runs().is_empty() && older > 0 {
            // An archive written before the answers table: its answers are
            // in `lookup`. One empty run brings the table level with it.
            answers.write_run(1, older, 0, std::iter::empty::<([u8; ANSWER_KEY_BYTES], [u8; 0])>())?;
        }
        let mut tables = Tables { journal, lookup, answers };
        let watermark = tables.sets().iter().map(|(set, _)| set.watermark()).min().unwrap_or(0);
        for (set, _) in tables.sets() {
            if set.watermark() > watermark {
                set.remove_runs_above(watermark)?;
            }
        }
        let runs = tables.snapshot();
        Ok(Arc::new(Archive {
            dir,
            tables: Mutex::new(tables),
            publishing: Mutex::new(()),
            runs: RwLock::new(runs),
            version: std::sync::atomic::AtomicU64::new(0),
            wal: std::sync::OnceLock::new(),
        }))
    }

    /// Removes every run (the log was cut below them: they would name
    /// records that are gone); the log's replay indexes everything again.
    pub fn reset(data_dir: &Path) -> Result<(), ArchiveError> {
        let dir = data_dir.join("history");
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(ArchiveError::Format(format!("cannot remove {}: {error}", dir.display()))),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Connect the log the records are read from (once it is open).
    pub fn set_wal(&self, wal: fundledger_wal::Wal) {
        let _ = self.wal.set(wal);
    }

    pub fn watermark(&self) -> u64 {
        self.runs.read().watermark()
    }

    /// The published runs (cheap: two `Arc`s).
    pub fn runs(&self) -> ArchiveRuns {
        self.runs.read().clone()
    }

    /// The record at `lsn`, from the log's segments.
    pub fn record(&self, lsn: u64) -> Result<Record, ArchiveError> {
        let Some(wal) = self.wal.get() else {
            return Err(ArchiveError::Format("the log is not open yet".into()));
        };
        let payload = wal.read(lsn)?;
        crate::codec::decode(&payload).map_err(|error| ArchiveError::Decode { lsn, reason: error.to_string() })
    }

    /// Writes `recent` as one run per table (sorted here). Returns the
    /// runs to publish; the caller publishes them together with dropping
    /// `recent` from memory.
    pub fn write(&self, recent: &Recent) -> Result<Unpublished<'_>, ArchiveError> {
        let publishing = self.publishing.lock();
        let (first, last) = (recent.first_lsn, recent.last_lsn);
        // Each account's entries are in lsn order (the indexer posts in
        // lsn order), so accounts in order give the keys in order: no sort
        // of every entry, and no copy of them.
        let order = recent.journal.in_account_order();
        // The lists sit in first-posted order, so accounts in order read
        // them all over: each list a few accounts ahead is loaded meanwhile.
        let journal = order.iter().enumerate().flat_map(|(at, &key)| {
            if let Some(&ahead) = order.get(at + JOURNAL_PREFETCH_AHEAD) {
                recent.journal.prefetch_at(ahead);
            }
            if let Some(&ahead) = order.get(at + JOURNAL_PREFETCH_SPILLED_AHEAD) {
                recent.journal.prefetch_spilled_at(ahead);
            }
            let (account, list) = recent.journal.at(key);
            list.iter().map(move |entry| (entry.key(*account), entry.value()))
        });
        let mut lookup = recent.lookup.clone();
        fundledger_index::sort_keys(&mut lookup);
        lookup.dedup();
        // The Bloom filter holds prefixes (tag ‖ hash), not keys: a bank
        // day's key, for one, repeats its prefix for every record of the day.
        let names = 1 + lookup
            .windows(2)
            .filter(|pair| pair[0][..LOOKUP_PREFIX_BYTES] != pair[1][..LOOKUP_PREFIX_BYTES])
            .count() as u64;
        let accounts = order.len() as u64;
        let mut answers = recent.answers.clone();
        fundledger_index::sort_keys(&mut answers);
        let mut tables = self.tables.lock();
        // `open` trims whichever table is ahead. A table already at `last`
        // got its run in an attempt that failed on another one: it is not
        // written twice.
        if tables.lookup.watermark() < last {
            tables.lookup.write_run(first, last, names, lookup.iter().map(|key| (key, [0u8; 0])))?;
        }
        if tables.answers.watermark() < last {
            tables.answers.write_run(first, last, 0, answers.iter().map(|key| (key, [0u8; 0])))?;
        }
        if tables.journal.watermark() < last {
            tables.journal.write_run(first, last, accounts, journal)?;
        }
        Ok(Unpublished { archive: self, runs: tables.snapshot(), _publishing: publishing })
    }

    /// Makes `runs` what readers see.
    fn publish(&self, runs: ArchiveRuns) {
        let mut published = self.runs.write();
        *published = runs;
        self.version.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// `read` on the published runs through a per-thread copy, renewed only
    /// when a publish happened since: the id lookup of every new transfer
    /// takes no lock shared by all threads.
    pub fn with_runs<T>(&self, read: impl FnOnce(&ArchiveRuns) -> T) -> T {
        thread_local! {
            static CACHED: std::cell::RefCell<Option<(usize, u64, ArchiveRuns)>> = const { std::cell::RefCell::new(None) };
        }
        let me = self as *const Archive as usize;
        CACHED.with(|cached| {
            let mut cached = cached.borrow_mut();
            let version = self.version.load(std::sync::atomic::Ordering::Acquire);
            let fresh = matches!(&*cached, Some((owner, seen, _)) if *owner == me && *seen == version);
            if !fresh {
                // The version is read before the runs: a publish in between
                // leaves an older version with newer runs, renewed next call.
                *cached = Some((me, version, self.runs()));
            }
            match &*cached {
                Some((_, _, runs)) => read(runs),
                None => read(&self.runs()),
            }
        })
    }

    /// One merge step if a tier is full: the newest runs of a table all in
    /// one size tier, as many as its fanout ([`LOOKUP_MERGE_FANOUT`],
    /// [`WIDE_MERGE_FANOUT`]). The merge itself runs without the
    /// tables' lock. Returns whether it merged (call again until `false`).
    pub fn merge_step(&self) -> Result<bool, ArchiveError> {
        let jobs: Vec<(usize, MergeJob)> = {
            let mut tables = self.tables.lock();
            let mut jobs = Vec::new();
            for (table, (set, fanout)) in tables.sets().into_iter().enumerate() {
                // Tiers by lsns covered: flushes cover about `history.memory_records`
                // lsns each, while their entries vary with the records' mix.
                if let Some(start) = set.full_tier_by(fanout, Member::lsn_span) {
                    jobs.push((table, set.prepare_merge(start, fanout)?));
                }
            }
            jobs
        };
        if jobs.is_empty() {
            return Ok(false);
        }
        for (table, job) in jobs {
            let output = job.run()?;
            let _publishing = self.publishing.lock();
            let mut tables = self.tables.lock();
            tables.sets()[table].0.finish_merge(job, output)?;
            // Same entries, fewer runs: no memory changes hands.
            self.publish(tables.snapshot());
        }
        Ok(true)
    }

    /// Bytes the runs keep in memory (sparse indexes, Bloom filters).
    pub fn memory_bytes(&self) -> usize {
        let runs = self.runs.read();
        runs.journal.memory_bytes() + runs.lookup.memory_bytes() + runs.answers.memory_bytes()
    }

    /// `/metrics`: how far the archive reaches, its runs and their memory.
    pub fn report_metrics(&self) {
        let runs = self.runs();
        metrics::gauge!("fundledger_history_archive_lsn").set(runs.watermark() as f64);
        metrics::gauge!("fundledger_history_archive_runs", "table" => "journal").set(runs.journal.runs().len() as f64);
        metrics::gauge!("fundledger_history_archive_runs", "table" => "lookup").set(runs.lookup.runs().len() as f64);
        metrics::gauge!("fundledger_history_archive_runs", "table" => "answers").set(runs.answers.runs().len() as f64);
        let memory = runs.journal.memory_bytes() + runs.lookup.memory_bytes() + runs.answers.memory_bytes();
        metrics::gauge!("fundledger_history_archive_memory_bytes").set(memory as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_entry_survives_its_encoding() {
        let entry = JournalIndexEntry {
            lsn: 42,
            at_ms: -5,
            kind: JournalKind::PayFreezeIn,
            available_delta: Money(-7),
            frozen_delta: Money(i64::MAX),
            after: Balance { available: Money(1), frozen: Money(i64::MAX) },
        };
        let account = AccountId(9);
        assert_eq!(JournalIndexEntry::decode(&entry.key(account), &entry.value()), Ok(entry));
        assert!(JournalIndexEntry::decode(&entry.key(account), &[99; JOURNAL_VALUE_BYTES]).is_err());
    }

    /// A deposit of 1 at `lsn` that leaves `lsn` available.
    fn deposit_entry(lsn: u64) -> JournalIndexEntry {
        JournalIndexEntry {
            lsn,
            at_ms: 0,
            kind: JournalKind::Deposit,
            available_delta: Money(1),
            frozen_delta: Money::ZERO,
            after: Balance { available: Money(lsn as i64), frozen: Money::ZERO },
        }
    }

    /// A hand-over takes every entry and leaves an empty set behind, whose
    /// lists start with room for the mean per account (never more in all
    /// than was handed over), and whose one-lsn keys need no list.
    #[test]
    fn recent_entries_hand_over_whole_and_start_again_with_room() {
        let mut recent = Recent::default();
        // One busy account (40 entries) and nine with one each: mean 4.9.
        for lsn in 1..=49u64 {
            recent.note_lsn(lsn);
            let account = if lsn <= 40 { 1 } else { lsn };
            recent.post(AccountId(account), deposit_entry(lsn));
            recent.answer(lsn, lsn + 1000);
            recent.name(Tag::Order, "o-1", lsn);
        }
        let taken = recent.take();
        assert_eq!((taken.records(), taken.journal(AccountId(1)).len()), (49, 40));
        assert_eq!((taken.answers_to(7), taken.named(Tag::Order, "o-1").len()), (&[1007][..], 49));
        assert!(!taken.answered[&7].spilled(), "one answer needs no list of its own");
        assert_eq!(recent.records(), 0);
        assert!(recent.journal.accounts() == 0 && recent.lookup.is_empty() && recent.answered.is_empty());
        assert!(recent.journal(AccountId(1)).is_empty() && recent.journal(AccountId(49)).is_empty());
        assert_eq!(recent.journal_room, 4, "the mean rounded down to a power of two");
        recent.post(AccountId(3), deposit_entry(50));
        assert_eq!(recent.journal.list(AccountId(3)).map(|list| list.capacity()), Some(4));
        assert!(recent.journal(AccountId(1)).is_empty(), "only account 3 has an entry");
        let mut sparse = Recent::default();
        sparse.post(AccountId(1), deposit_entry(1));
        assert!(
            sparse.journal.list(AccountId(1)).is_some_and(|list| !list.spilled()),
            "an account's one entry needs no list of its own"
        );
        assert_eq!(Recent::default().take().journal_room, 0, "nothing handed over: no room");
    }

    /// Lists are found by account number whatever order accounts are
    /// first posted in; numbers never posted, below or above the highest,
    /// read as no entries; the accounts go to the run in number order.
    #[test]
    fn journal_lists_are_found_by_account_number_in_any_order() {
        let mut recent = Recent::default();
        for (lsn, account) in [(1u64, 5u64), (2, 2), (3, 5), (4, 1000), (5, 2), (6, 5)] {
            recent.note_lsn(lsn);
            recent.post(AccountId(account), deposit_entry(lsn));
        }
        let lsns =
            |recent: &Recent, account| recent.journal(AccountId(account)).iter().map(|e| e.lsn).collect::<Vec<_>>();
        assert_eq!(lsns(&recent, 5), vec![1, 3, 6]);
        assert_eq!(lsns(&recent, 2), vec![2, 5]);
        assert_eq!(lsns(&recent, 1000), vec![4]);
        for absent in [0, 1, 3, 999, 1001, u64::MAX] {
            assert!(lsns(&recent, absent).is_empty(), "account {absent}");
        }
        assert_eq!(recent.journal.accounts(), 3);
        let order = recent.journal.in_account_order();
        let accounts: Vec<AccountId> = order.iter().map(|&key| recent.journal.at(key).0).collect();
        assert_eq!(accounts, [AccountId(2), AccountId(5), AccountId(1000)]);
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::open(dir.path()).unwrap();
        archive.write(&recent).unwrap().publish();
        let written = |account| -> Vec<u64> {
            let runs = archive.runs();
            let entries = runs.journal(AccountId(account), 0, u64::MAX, Direction::Forward).unwrap();
            entries.map(|entry| entry.unwrap().lsn).collect()
        };
        for account in [5, 2, 1000, 1, 3] {
            assert_eq!(written(account), lsns(&recent, account), "account {account} as written");
        }
        let taken = recent.take();
        assert_eq!(lsns(&taken, 5), vec![1, 3, 6], "the taken set reads as before");
        assert!(lsns(&recent, 5).is_empty() && lsns(&recent, 1000).is_empty(), "the new set starts empty");
        recent.post(AccountId(1000), deposit_entry(7));
        assert_eq!(lsns(&recent, 1000), vec![7]);
    }

    #[test]
    fn written_runs_answer_journals_and_names_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::open(dir.path()).unwrap();
        let mut recent = Recent::default();
        for lsn in 1..=10u64 {
            recent.note_lsn(lsn);
            let entry = JournalIndexEntry {
                lsn,
                at_ms: lsn as i64,
                kind: JournalKind::Deposit,
                available_delta: Money(1),
                frozen_delta: Money::ZERO,
                after: Balance { available: Money(lsn as i64), frozen: Money::ZERO },
            };
            recent.post(AccountId(lsn % 2 + 1), entry);
            recent.name(Tag::Order, if lsn < 5 { "o-1" } else { "o-2" }, lsn);
        }
        archive.write(&recent).unwrap().publish();
        let runs = archive.runs();
        let lsns: Vec<u64> =
            runs.journal(AccountId(1), 0, u64::MAX, Direction::Forward).unwrap().map(|e| e.unwrap().lsn).collect();
        assert_eq!(lsns, vec![2, 4, 6, 8, 10]);
        let newest = runs.journal(AccountId(2), 0, 8, Direction::Reverse).unwrap().next().unwrap().unwrap();
        assert_eq!(newest.lsn, 7);
        assert_eq!(runs.named(Tag::Order, "o-1").unwrap(), vec![1, 2, 3, 4]);
        assert!(runs.named(Tag::Hold, "o-1").unwrap().is_empty());
        drop((runs, archive));
        let archive = Archive::open(dir.path()).unwrap();
        assert_eq!(archive.watermark(), 10);
        assert_eq!(archive.runs().named(Tag::Order, "o-2").unwrap(), (5..=10).collect::<Vec<_>>());
    }

    #[test]
    fn a_bank_answer_shares_its_client_ids_prefix_and_old_runs_still_answer() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::open(dir.path()).unwrap();
        // A run as written before references moved under the client id's tag.
        archive
            .tables
            .lock()
            .lookup
            .write_run(1, 2, 1, [(lookup_key(Tag::Reference, key_hash("t-0"), 2), [0u8; 0])])
            .unwrap();
        archive.tables.lock().journal.write_run(1, 2, 1, std::iter::empty::<([u8; 16], [u8; 41])>()).unwrap();
        let mut recent = Recent::default();
        for (lsn, tag, key) in [(3, Tag::ClientId, "t-1"), (4, Tag::Reference, "t-1"), (5, Tag::ClientId, "t-2")] {
            recent.note_lsn(lsn);
            recent.name(tag, key, lsn);
        }
        let written = archive.write(&recent).unwrap();
        let newest = written.runs().lookup.runs().last().unwrap().run.clone();
        assert_eq!(newest.entry_count(), 3);
        assert_eq!(newest.prefix_count(), 2, "t-1's id and its bank answer: one prefix");
        written.publish();
        let runs = archive.runs();
        // Under the client id both records answer (readers compare kinds).
        assert_eq!(runs.named(Tag::Reference, "t-1").unwrap(), vec![3, 4]);
        assert_eq!(runs.named(Tag::ClientId, "t-1").unwrap(), vec![3, 4]);
        assert_eq!(runs.named(Tag::Reference, "t-0").unwrap(), vec![2], "an old run's reference");
        assert!(runs.named(Tag::Reference, "t-3").unwrap().is_empty());
    }

    #[test]
    fn answers_are_found_by_the_lsn_they_answer() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::open(dir.path()).unwrap();
        for (first, last) in [(1u64, 4u64), (5, 8)] {
            let mut recent = Recent::default();
            for lsn in first..=last {
                recent.note_lsn(lsn);
            }
            // Each run answers the records two before its own.
            recent.answer(first - 1, first + 1);
            recent.answer(first + 1, first + 3);
            archive.write(&recent).unwrap().publish();
        }
        let runs = archive.runs();
        assert_eq!(runs.answers.runs().len(), 2);
        assert_eq!(runs.answers_to(0).unwrap(), vec![2]);
        assert_eq!(runs.answers_to(4).unwrap(), vec![6]);
        assert_eq!(runs.answers_to(6).unwrap(), vec![8]);
        assert!(runs.answers_to(5).unwrap().is_empty());
        assert_eq!(runs.lookup.runs()[0].run.entry_count(), 0, "answers take no lookup (filter) entry");
    }

    #[test]
    fn an_archive_from_before_the_answers_table_keeps_its_runs() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::open(dir.path()).unwrap();
        let mut recent = Recent::default();
        recent.note_lsn(1);
        recent.name(Tag::ClientId, "t-1", 1);
        recent.note_lsn(2);
        recent.name(Tag::Reference, "t-1", 2);
        archive.write(&recent).unwrap().publish();
        drop(archive);
        // As written before the table existed.
        std::fs::remove_dir_all(dir.path().join("history/answers")).unwrap();
        let archive = Archive::open(dir.path()).unwrap();
        assert_eq!(archive.watermark(), 2, "nothing trimmed");
        let runs = archive.runs();
        assert_eq!(runs.answers.watermark(), 2);
        assert_eq!(runs.named(Tag::Reference, "t-1").unwrap(), vec![1, 2], "old answers by reference");
        assert!(runs.answers_to(1).unwrap().is_empty());
        // And it goes on from there.
        let mut next = Recent::default();
        next.note_lsn(3);
        next.answer(1, 3);
        archive.write(&next).unwrap().publish();
        drop(archive);
        let archive = Archive::open(dir.path()).unwrap();
        assert_eq!(archive.watermark(), 3);
        assert_eq!(archive.runs().answers_to(1).unwrap(), vec![3]);
    }

    #[test]
    fn a_table_left_ahead_by_a_crash_is_trimmed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::open(dir.path()).unwrap();
        let mut recent = Recent::default();
        recent.note_lsn(1);
        recent.name(Tag::Order, "o", 1);
        archive.write(&recent).unwrap().publish();
        // The second flush wrote its lookup run and died before the journal's.
        let mut next = Recent::default();
        next.note_lsn(2);
        next.name(Tag::Order, "o", 2);
        archive.tables.lock().lookup.write_run(2, 2, 1, next.lookup.iter().map(|key| (key, [0u8; 0]))).unwrap();
        drop(archive);
        let archive = Archive::open(dir.path()).unwrap();
        assert_eq!(archive.watermark(), 1);
        assert_eq!(archive.runs().named(Tag::Order, "o").unwrap(), vec![1]);
    }

    #[test]
    fn each_table_merges_its_fanout_of_runs_of_a_tier() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::open(dir.path()).unwrap();
        let write = |lsn: u64| {
            let mut recent = Recent::default();
            recent.note_lsn(lsn);
            recent.name(Tag::Hold, "h", lsn);
            recent.answer(lsn, lsn);
            recent.post(AccountId(1), deposit_entry(lsn));
            archive.write(&recent).unwrap().publish();
        };
        let counts = || {
            let runs = archive.runs();
            (runs.lookup.runs().len(), runs.answers.runs().len(), runs.journal.runs().len())
        };
        for lsn in 1..=4u64 {
            write(lsn);
        }
        // The lookup table merges four; the journal and answers wait for eight.
        assert!(archive.merge_step().unwrap());
        assert!(!archive.merge_step().unwrap());
        assert_eq!(counts(), (1, 4, 4));
        for lsn in 5..=8u64 {
            write(lsn);
        }
        assert!(archive.merge_step().unwrap());
        assert!(!archive.merge_step().unwrap());
        assert_eq!(counts(), (2, 1, 1));
        let runs = archive.runs();
        assert_eq!(runs.named(Tag::Hold, "h").unwrap(), (1..=8).collect::<Vec<u64>>());
        assert_eq!(runs.answers_to(5).unwrap(), vec![5]);
        let journal: Vec<u64> = runs
            .journal(AccountId(1), 0, u64::MAX, Direction::Reverse)
            .unwrap()
            .map(|entry| entry.unwrap().lsn)
            .collect();
        assert_eq!(journal, (1..=8).rev().collect::<Vec<u64>>());
    }

    /// Merges run on their own thread: one that finishes while a flush's
    /// runs are written but not yet published waits, so that it cannot
    /// show readers entries the history still serves from memory.
    #[test]
    fn a_merge_does_not_publish_a_flush_before_the_history_does() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Arc::new(Archive::open(dir.path()).unwrap());
        let recent = |lsn: u64| {
            let mut recent = Recent::default();
            recent.note_lsn(lsn);
            recent.name(Tag::Hold, "h", lsn);
            recent
        };
        for lsn in 1..=3u64 {
            archive.write(&recent(lsn)).unwrap().publish();
        }
        let written = archive.write(&recent(4)).unwrap();
        assert_eq!(written.runs().lookup.runs().len(), 4, "a full tier of lookup runs");
        let merging = {
            let archive = Arc::clone(&archive);
            std::thread::spawn(move || archive.merge_step().unwrap())
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(archive.runs().lookup.runs().len(), 3, "nothing published before the flush is");
        assert_eq!(archive.runs().named(Tag::Hold, "h").unwrap(), vec![1, 2, 3]);
        written.publish();
        assert!(merging.join().unwrap(), "the merge finishes once the flush is published");
        let runs = archive.runs();
        assert_eq!(runs.lookup.runs().len(), 1);
        assert_eq!(runs.named(Tag::Hold, "h").unwrap(), vec![1, 2, 3, 4]);
    }
}
