//! The client-id index: one effect per client id (invariant 5).
//!
//! Owns the map from client id to its state: `InFlight` while one request
//! holding the id's [`Claim`] is being judged, `Done` once it committed.
//! Refused requests are forgotten (a retry is judged afresh, API.md,
//! Idempotency). It doubles as the hold directory: a hold is named by the
//! id of the movement that opened it.
//!
//! Why claims travel inside actor messages: if a client hangs up, its
//! handler future is dropped, but a message already in an actor's mailbox is
//! still applied. The claim is finalized by the actor that applied (or
//! refused) the item, so a retry can never slip in between and apply it a
//! second time. A claim dropped unfinalized (its message never ran) is
//! released.
//!
//! Deadlock freedom: nobody waits for an in-flight id while holding a claim
//! of its own ([`IdIndex::try_claim`] never blocks; callers release what
//! they hold before they wait).
//!
//! The map is sharded by the id's hash, so two transfers share a lock only
//! when their ids fall in the same shard, and only for a few instructions.
//! An id is hashed once per claim: the hash picks the shard and the slot,
//! and the claim keeps it, so that finalizing finds its slot again by the
//! hash and the key's pointer, without hashing or comparing the id's bytes
//! (the map is large and cold by then: docs/PERFORMANCE.md).
//!
//! Memory: the map keeps ids of records the history archive does not hold
//! yet; after each archive write the history calls
//! [`IdIndex::forget_through`], and an id missing from the map is looked
//! up in the archive ([`IdArchive`]: a Bloom filter per run answers "new
//! id" without I/O almost always). Order makes this safe: an id is
//! forgotten only after the archive's runs holding it are published, and
//! the lookup happens under the id's shard lock.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::domain::record::{Adjustment, Deposit, Movement, SuspenseEntry, SuspenseReturn, Withdrawal};
use crate::prefetch;

const SHARDS: usize = 64;

/// What a client id committed.
#[derive(Clone, Debug)]
pub enum Committed {
    Movement {
        lsn: u64,
        movement: Arc<Movement>,
    },
    /// A bank notification credited to an account (keyed by bank serial).
    Deposit {
        lsn: u64,
        deposit: Arc<Deposit>,
    },
    /// A bank notification put in suspense (keyed by bank serial).
    Suspense {
        lsn: u64,
        entry: Arc<SuspenseEntry>,
    },
    /// A withdrawal accepted (its `withdrawal_hold`); its current state is
    /// in the history, this is the original answer.
    Withdrawal {
        lsn: u64,
        withdrawal: Arc<Withdrawal>,
    },
    Adjustment {
        lsn: u64,
        adjustment: Arc<Adjustment>,
    },
    SuspenseReturn {
        lsn: u64,
        suspense_return: Arc<SuspenseReturn>,
    },
    /// The id may have committed long ago, but the archive could not be
    /// read to tell (an I/O error or damage): the request is refused with
    /// 503, never judged again.
    Unavailable {
        reason: Arc<str>,
    },
    /// The id committed at `lsn`, whose record `wal.retention_days`
    /// removed: it cannot be answered again, only refused (409).
    Forgotten {
        lsn: u64,
    },
}

/// Where ids of older records are found (the history archive).
pub trait IdArchive: Send + Sync {
    fn find(&self, key: &str) -> Result<Option<Committed>, String>;

    /// Start loading what [`IdArchive::find`] of `key` reads first (a
    /// hint, given a few ids ahead by a loop over many; nothing is read or
    /// changed).
    fn prefetch(&self, _key: &str) {}
}

impl Committed {
    pub fn lsn(&self) -> u64 {
        match self {
            Committed::Movement { lsn, .. }
            | Committed::Deposit { lsn, .. }
            | Committed::Suspense { lsn, .. }
            | Committed::Withdrawal { lsn, .. }
            | Committed::Adjustment { lsn, .. }
            | Committed::SuspenseReturn { lsn, .. } => *lsn,
            Committed::Unavailable { .. } => 0,
            Committed::Forgotten { lsn } => *lsn,
        }
    }

    /// `Err` (503) when the archive could not tell what the id committed.
    pub fn available(self) -> Result<Committed, crate::http::error::ApiError> {
        match self {
            Committed::Unavailable { reason } => Err(crate::http::error::ApiError::new(
                crate::http::error::ErrorCode::LogUnavailable,
                format!("the history archive cannot be read: {reason}"),
            )),
            Committed::Forgotten { lsn } => Err(crate::http::error::ApiError::new(
                crate::http::error::ErrorCode::IdReused,
                format!("the id was used at lsn {lsn}, in history that wal.retention_days removed"),
            )),
            committed => Ok(committed),
        }
    }

    /// For reads (`GET` by id): `None` when retention removed the record
    /// (its history is gone: not found), `Err` (503) when the archive could
    /// not be read.
    pub fn readable(self) -> Result<Option<Committed>, crate::http::error::ApiError> {
        match self {
            Committed::Forgotten { .. } => Ok(None),
            committed => committed.available().map(Some),
        }
    }

    pub fn movement(&self) -> Option<&Arc<Movement>> {
        match self {
            Committed::Movement { movement, .. } => Some(movement),
            _ => None,
        }
    }
}

enum Slot {
    /// Being judged; `waited` once someone waits for the outcome.
    InFlight {
        waited: bool,
    },
    Done(Committed),
}

pub enum TryClaim {
    Claimed(Claim),
    Done(Committed),
    /// Another request holds the id; wait on this (holding no claim).
    Busy(Waiter),
}

/// One shard: its slots, and the signal that an awaited claim ended. The
/// signal is per shard, not per claim, so that claiming allocates nothing
/// but the key (a claim with nobody waiting on it never touches it).
struct Shard {
    slots: Mutex<Slots>,
    released: Notify,
    /// Where the table's control bytes start and its bucket mask, as of
    /// the last claim: read without the lock, only to prefetch
    /// ([`IdIndex::prefetch_claim`]); a stale pair loads the wrong lines
    /// and harms nothing.
    layout: [AtomicUsize; 2],
}

/// A shard's table, and how often a claim's commit had to look for its
/// entry.
#[derive(Default)]
struct Slots {
    /// Each id's slot by its [`IdHash`]; the id is the one allocation of a
    /// claim (the claim keeps only its address, [`KeyAddr`]).
    table: HashTable<Keyed>,
    /// Commits that did not find their entry in the bucket it was inserted
    /// in (the table grew or was rebuilt since) and probed for it.
    probed: u64,
}

/// Where a claim's entry was inserted. Its commit looks in that bucket
/// first: entries stay where they are until the table grows or is
/// rebuilt, and the bucket holds the claim's entry exactly when its key
/// is at the claim's [`KeyAddr`].
/// Probing the table for it again was the batch path's largest single
/// cost after the accounts themselves (the table is large and cold by
/// then, docs/PERFORMANCE.md).
#[derive(Clone, Copy, Debug)]
struct Placed {
    bucket: usize,
    /// The entry's address then: only ever prefetched ([`Claim::prefetch`]),
    /// never read through.
    at: usize,
}

impl Placed {
    /// Where the table's control bytes started then (hashbrown's layout:
    /// bucket `i` ends `i` entries below them): only ever prefetched.
    fn control_bytes(self) -> usize {
        self.at.wrapping_add((self.bucket + 1) * std::mem::size_of::<Keyed>())
    }
}

/// One id in a shard's table, with its hash: the table grows and is
/// rebuilt without reading any id's bytes again (cold by then, each a
/// cache miss; a growth of the table under a claim read them all: 2% of
/// the batch path's time, docs/PERFORMANCE.md).
struct Keyed {
    hash: IdHash,
    id: Arc<str>,
    slot: Slot,
}

impl Keyed {
    fn hash(&self) -> u64 {
        self.hash.0
    }
}

/// An id's hash under the index's hasher: bits 32..38 pick the shard, and
/// the table uses the low bits (the bucket) and the top seven (the control
/// byte), so the shard's choice leaves both spread evenly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdHash(u64);

impl IdHash {
    fn shard(self) -> usize {
        (self.0 >> 32) as usize % SHARDS
    }
}

pub struct IdIndex {
    /// Each claim holds its shard (to finalize it), not the whole index: a
    /// reference count per claim on one shared index was written by every
    /// gateway thread, 2.4% of the batch path's time (docs/PERFORMANCE.md).
    shards: Box<[Arc<Shard>]>,
    hasher: RandomState,
    archive: std::sync::OnceLock<Arc<dyn IdArchive>>,
}

pub struct Waiter {
    index: Arc<IdIndex>,
    id: Box<str>,
    hash: IdHash,
}

impl Waiter {
    /// Resolves when the holder finalized or dropped its claim.
    pub async fn wait(self) {
        let shard = self.index.shard(self.hash);
        loop {
            let released = shard.released.notified();
            tokio::pin!(released);
            {
                let mut slots = shard.slots.lock();
                match Shard::get_mut(&mut slots, self.hash, &self.id) {
                    Some(Slot::InFlight { waited }) => *waited = true,
                    _ => return,
                }
                // Registered before the lock is released, so the holder's
                // notification cannot slip in between.
                released.as_mut().enable();
            }
            released.await;
        }
    }
}

impl Default for IdIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl IdIndex {
    pub fn new() -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                let layout = [AtomicUsize::new(0), AtomicUsize::new(0)];
                Arc::new(Shard { slots: Mutex::new(Slots::default()), released: Notify::new(), layout })
            })
            .collect();
        Self { shards, hasher: RandomState::default(), archive: std::sync::OnceLock::new() }
    }

    /// Connect the archive that holds ids this map forgot.
    pub fn set_archive(&self, archive: Arc<dyn IdArchive>) {
        let _ = self.archive.set(archive);
    }

    /// An id not in the map: what the archive says of it.
    fn archived(&self, id: &str) -> Option<Committed> {
        let archive = self.archive.get()?;
        match archive.find(id) {
            Ok(found) => found,
            Err(reason) => {
                tracing::error!(%reason, "the id archive cannot be read");
                Some(Committed::Unavailable { reason: reason.into() })
            }
        }
    }

    /// Forget committed ids at or below `lsn` (the archive holds them now).
    ///
    /// Each shard's lock is held only to take the forgotten entries out and
    /// to make room (below); they are freed after it is released (an id and
    /// its movement each, thousands per shard per archive write: freed
    /// under the lock, they kept the requests of that shard waiting).
    ///
    /// Room: the table is left with room for as many ids as it held just
    /// now, so that the next archive write's worth of claims fits without
    /// the table growing under a claim. Taken out, ids leave tombstones
    /// that count against the room, so the table is rebuilt here when they
    /// would make it grow, or when it is far larger than its last fill
    /// (after a burst).
    pub fn forget_through(&self, lsn: u64) {
        let mut forgotten = Vec::new();
        for shard in self.shards.iter() {
            {
                let mut slots = shard.slots.lock();
                let held = slots.table.len();
                forgotten.extend(
                    slots
                        .table
                        .extract_if(|keyed| matches!(&keyed.slot, Slot::Done(committed) if committed.lsn() <= lsn)),
                );
                make_room(&mut slots, held);
            }
            drop_prefetched(&mut forgotten);
        }
    }

    /// `id`'s hash: the shard and slot it claims, and what
    /// [`IdIndex::prefetch_claim`] and [`IdIndex::try_claim_hashed`] take.
    pub fn hash(&self, id: &str) -> IdHash {
        IdHash(self.hasher.hash_one(id))
    }

    fn shard(&self, hash: IdHash) -> &Arc<Shard> {
        &self.shards[hash.shard()]
    }

    pub fn try_claim(self: &Arc<Self>, id: &str) -> TryClaim {
        self.try_claim_hashed(id, self.hash(id))
    }

    /// Start loading what a claim of the id whose hash is `hash` will
    /// probe and write: its shard's lock, the control bytes where its probe
    /// starts and the bucket there (where a new id most often goes). A
    /// hint for a loop over many ids to give a few places ahead: each is a
    /// cache miss in a table of hundreds of thousands of ids, waited for in
    /// turn otherwise. Assumes hashbrown's layout (buckets below the
    /// control bytes, the probe starting at the hash's low bits); if that
    /// changes, it loads the wrong lines and nothing else.
    pub fn prefetch_claim(&self, hash: IdHash) {
        let shard = self.shard(hash);
        prefetch::value(Arc::as_ptr(shard));
        let [ctrl, mask] = [&shard.layout[0], &shard.layout[1]].map(|word| word.load(Ordering::Relaxed));
        if ctrl == 0 {
            return;
        }
        let start = hash.0 as usize & mask;
        prefetch::line(std::ptr::without_provenance(ctrl.wrapping_add(start)));
        let bucket = ctrl.wrapping_sub((start + 1) * std::mem::size_of::<Keyed>());
        prefetch::value(std::ptr::without_provenance::<Keyed>(bucket));
    }

    /// [`IdIndex::prefetch_claim`] for what a new id's claim reads next:
    /// the archive's filters, asked whether the id was committed before
    /// the map forgot it (one cache miss per run, waited for under the
    /// shard's lock otherwise). A hint like the other.
    pub fn prefetch_archived(&self, id: &str) {
        if let Some(archive) = self.archive.get() {
            archive.prefetch(id);
        }
    }

    /// [`IdIndex::try_claim`] of an id whose hash is `hash`
    /// ([`IdIndex::hash`]).
    pub fn try_claim_hashed(self: &Arc<Self>, id: &str, hash: IdHash) -> TryClaim {
        debug_assert_eq!(hash, self.hash(id));
        let shard = self.shard(hash);
        let mut slots = shard.slots.lock();
        match slots.table.entry(hash.0, |keyed| *keyed.id == *id, Keyed::hash) {
            Entry::Occupied(entry) => match &entry.get().slot {
                Slot::Done(committed) => TryClaim::Done(committed.clone()),
                Slot::InFlight { .. } => TryClaim::Busy(Waiter { index: Arc::clone(self), id: id.into(), hash }),
            },
            Entry::Vacant(entry) => {
                // Under the shard lock: an id is forgotten only once the
                // archive shows it, so it is found in one or the other.
                if let Some(committed) = self.archived(id) {
                    return TryClaim::Done(committed);
                }
                let id: Arc<str> = id.into();
                let key = KeyAddr::of(&id);
                let entry = entry.insert(Keyed { hash, id, slot: Slot::InFlight { waited: false } });
                let placed = Placed { bucket: entry.bucket_index(), at: std::ptr::from_ref(entry.get()).addr() };
                let mask = entry.into_table().num_buckets() - 1;
                shard.layout[0].store(placed.control_bytes(), Ordering::Relaxed);
                shard.layout[1].store(mask, Ordering::Relaxed);
                TryClaim::Claimed(Claim { shard: Arc::clone(shard), key, hash, placed, finalized: false })
            }
        }
    }

    /// Claim `id`, waiting (while holding nothing) for any other holder.
    pub async fn claim(self: &Arc<Self>, id: &str) -> Result<Claim, Committed> {
        loop {
            match self.try_claim(id) {
                TryClaim::Claimed(claim) => return Ok(claim),
                TryClaim::Done(committed) => return Err(committed),
                TryClaim::Busy(waiter) => waiter.wait().await,
            }
        }
    }

    /// The committed state of `id`, waiting for an in-flight holder.
    pub async fn get(self: &Arc<Self>, id: &str) -> Option<Committed> {
        loop {
            {
                let hash = self.hash(id);
                let slots = self.shard(hash).slots.lock();
                match slots.table.find(hash.0, |keyed| *keyed.id == *id).map(|keyed| &keyed.slot) {
                    None => return self.archived(id),
                    Some(Slot::Done(committed)) => return Some(committed.clone()),
                    Some(Slot::InFlight { .. }) => {}
                }
            }
            Waiter { index: Arc::clone(self), id: id.into(), hash: self.hash(id) }.wait().await;
        }
    }

    /// Recovery: the id committed at some earlier run.
    pub fn insert_recovered(&self, id: Arc<str>, committed: Committed) {
        let hash = self.hash(&id);
        let mut slots = self.shard(hash).slots.lock();
        match slots.table.entry(hash.0, |keyed| keyed.id == id, Keyed::hash) {
            Entry::Occupied(_) => panic!("a client id committed twice in the log: {id}"),
            Entry::Vacant(entry) => {
                entry.insert(Keyed { hash, id, slot: Slot::Done(committed) });
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.slots.lock().table.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shard {
    /// The slot of `id` (its hash `hash`).
    fn get_mut<'a>(slots: &'a mut Slots, hash: IdHash, id: &str) -> Option<&'a mut Slot> {
        slots.table.find_mut(hash.0, |keyed| *keyed.id == *id).map(|keyed| &mut keyed.slot)
    }

    /// End the in-flight claim whose entry's key is at `key` (found by
    /// address, see [`KeyAddr`]): `Some` commits it, `None` forgets it.
    fn finalize(&self, key: KeyAddr, hash: IdHash, placed: Placed, outcome: Option<Committed>) {
        let mut slots = self.slots.lock();
        let in_bucket = slots.table.get_bucket(placed.bucket).is_some_and(|keyed| KeyAddr::of(&keyed.id) == key);
        let found = if in_bucket {
            slots.table.get_bucket_entry(placed.bucket)
        } else {
            slots.probed += 1;
            slots.table.find_entry(hash.0, |keyed| KeyAddr::of(&keyed.id) == key)
        };
        let Ok(mut entry) = found else { panic!("a claimed id is in flight until its claim ends") };
        let Slot::InFlight { waited } = entry.get().slot else {
            panic!("a claimed id {} is in flight until its claim ends", entry.get().id)
        };
        match outcome {
            // In place: inserting would allocate a key only to drop it.
            Some(committed) => entry.get_mut().slot = Slot::Done(committed),
            None => {
                entry.remove();
            }
        }
        drop(slots);
        if waited {
            self.released.notify_waiters();
        }
    }
}

/// Drops the forgotten entries, loading the allocations each one shares
/// ([`DROP_PREFETCH_AHEAD`] entries ahead) before its turn comes. They were
/// made seconds ago on other threads and are cold by now: dropped one
/// after another, every id's key and record cost a cache miss each, which
/// the archive writer's thread waited for in turn (docs/PERFORMANCE.md).
fn drop_prefetched(entries: &mut Vec<Keyed>) {
    let mut drain = entries.drain(..);
    loop {
        if let Some(ahead) = drain.as_slice().get(DROP_PREFETCH_AHEAD) {
            prefetch_entry(ahead);
        }
        // Halfway there, its record's lines have come in: the id's bytes,
        // which the record's drop frees (a free writes into the block).
        if let Some(Keyed { slot: Slot::Done(Committed::Movement { movement, .. }), .. }) =
            drain.as_slice().get(DROP_PREFETCH_AHEAD / 2)
        {
            prefetch::line(movement.id.as_ptr());
        }
        let Some(entry) = drain.next() else { break };
        drop(entry);
    }
}

/// How many entries ahead [`drop_prefetched`] loads: enough misses in
/// flight to cover a memory access, few enough to stay in L1.
const DROP_PREFETCH_AHEAD: usize = 8;

/// The key's reference counts, and the counts and fields of the record an
/// entry shares (its `drop` reads them all when it is the last owner).
fn prefetch_entry(Keyed { id: key, slot, .. }: &Keyed) {
    // An `Arc`'s counts sit just before its data (two words).
    prefetch::line(Arc::as_ptr(key).cast::<u8>().wrapping_sub(16));
    let Slot::Done(committed) = slot else { return };
    let record = match committed {
        Committed::Movement { movement, .. } => Arc::as_ptr(movement).cast::<u8>(),
        Committed::Deposit { deposit, .. } => Arc::as_ptr(deposit).cast::<u8>(),
        Committed::Suspense { entry, .. } => Arc::as_ptr(entry).cast::<u8>(),
        Committed::Withdrawal { withdrawal, .. } => Arc::as_ptr(withdrawal).cast::<u8>(),
        Committed::Adjustment { adjustment, .. } => Arc::as_ptr(adjustment).cast::<u8>(),
        Committed::SuspenseReturn { suspense_return, .. } => Arc::as_ptr(suspense_return).cast::<u8>(),
        Committed::Unavailable { .. } | Committed::Forgotten { .. } => return,
    };
    for offset in [0, 64, 128] {
        prefetch::line(record.wrapping_sub(16).wrapping_add(offset));
    }
}

/// Leaves `slots` (which held `held` ids before some were taken out) with
/// room for `held` ids without growing, rebuilding it when its tombstones
/// would make it grow or when it is more than [`ROOM_SHRINK_FACTOR`] times
/// as large as that. Each kept entry is moved by its kept hash.
fn make_room(slots: &mut Slots, held: usize) {
    let table = &mut slots.table;
    let kept = table.len();
    let room = table.capacity() - kept;
    if room >= held - kept && table.capacity() <= held.max(ROOM_MIN) * ROOM_SHRINK_FACTOR {
        return;
    }
    let mut rebuilt = HashTable::with_capacity(held.max(ROOM_MIN));
    for keyed in table.drain() {
        rebuilt.insert_unique(keyed.hash(), keyed, Keyed::hash);
    }
    *table = rebuilt;
}

/// A shard's table is not rebuilt smaller than this many ids.
const ROOM_MIN: usize = 64;

/// How much larger than its last fill a shard's table may stay.
const ROOM_SHRINK_FACTOR: usize = 4;

/// The right to commit one client id. Finalize with [`Claim::commit`];
/// dropping it releases the id.
pub struct Claim {
    /// The id's shard (where it is finalized).
    shard: Arc<Shard>,
    /// Where the map's key of the id is (not a share of it: see [`KeyAddr`]).
    key: KeyAddr,
    hash: IdHash,
    placed: Placed,
    finalized: bool,
}

/// The address of an in-flight entry's key: what a claim finds its entry
/// by. The entry holds the key until the claim ends (only the claim ends
/// an in-flight entry; forgets take committed ones), so while the claim
/// lives no other entry's key can be at that address. A claim that
/// shared the key instead wrote its count twice, the second time (at the
/// commit, thousands of items later) a cache miss (docs/PERFORMANCE.md).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct KeyAddr(usize);

impl KeyAddr {
    fn of(id: &Arc<str>) -> KeyAddr {
        KeyAddr(Arc::as_ptr(id).cast::<u8>().addr())
    }
}

impl Claim {
    /// Start loading the id's entry, which [`Claim::commit`] writes, and
    /// its bucket's control byte, which it checks: a hint for a loop over
    /// many claims to give a few places ahead. (If the entry moved since,
    /// this loads nothing useful, and harms nothing.) Assumes hashbrown's
    /// layout, as [`IdIndex::prefetch_claim`] does.
    pub fn prefetch(&self) {
        let placed = self.placed;
        prefetch::value(std::ptr::without_provenance::<Keyed>(placed.at));
        prefetch::line(std::ptr::without_provenance(placed.control_bytes().wrapping_add(placed.bucket)));
    }

    pub fn commit(mut self, committed: Committed) {
        self.finalized = true;
        self.shard.finalize(self.key, self.hash, self.placed, Some(committed));
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.finalized {
            self.shard.finalize(self.key, self.hash, self.placed, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn movement(id: &str) -> Arc<Movement> {
        Arc::new(crate::domain::record::fixtures::transfer(id, 1, 2, 100, 0))
    }

    #[tokio::test]
    async fn a_dropped_claim_is_forgotten_and_a_committed_one_remembered() {
        let index = Arc::new(IdIndex::new());
        let claim = index.claim("a").await.unwrap();
        assert!(matches!(index.try_claim("a"), TryClaim::Busy(_)));
        drop(claim);
        let claim = index.claim("a").await.unwrap();
        claim.commit(Committed::Movement { lsn: 7, movement: movement("a") });
        assert_eq!(index.claim("a").await.err().map(|c| c.lsn()), Some(7));
        assert_eq!(index.get("a").await.map(|c| c.lsn()), Some(7));
        assert!(index.get("b").await.is_none());
    }

    /// Every entry is dropped, the last ones (with nothing left to load
    /// ahead) and in-flight ones included.
    #[test]
    fn a_prefetched_drop_lets_go_of_every_entry() {
        let movements: Vec<Arc<Movement>> = (0..20).map(|n| movement(&format!("m{n}"))).collect();
        let keys: Vec<Arc<str>> = (0..21).map(|n| Arc::from(format!("k{n}"))).collect();
        let index = IdIndex::new();
        let keyed = |key: &Arc<str>, slot| Keyed { hash: index.hash(key), id: Arc::clone(key), slot };
        let mut entries: Vec<Keyed> = movements
            .iter()
            .zip(&keys)
            .enumerate()
            .map(|(lsn, (movement, key))| {
                let committed = Committed::Movement { lsn: lsn as u64 + 1, movement: Arc::clone(movement) };
                keyed(key, Slot::Done(committed))
            })
            .collect();
        entries.push(keyed(&keys[20], Slot::InFlight { waited: false }));
        assert!(movements.iter().all(|movement| Arc::strong_count(movement) == 2));
        drop_prefetched(&mut entries);
        assert!(entries.is_empty());
        assert!(movements.iter().all(|movement| Arc::strong_count(movement) == 1), "a record is still held");
        assert!(keys.iter().all(|key| Arc::strong_count(key) == 1), "a key is still held");
    }

    #[tokio::test]
    async fn waiters_see_the_holders_outcome() {
        let index = Arc::new(IdIndex::new());
        let claim = index.claim("x").await.unwrap();
        let waiting = {
            let index = Arc::clone(&index);
            tokio::spawn(async move { index.claim("x").await.err().map(|c| c.lsn()) })
        };
        tokio::task::yield_now().await;
        claim.commit(Committed::Movement { lsn: 3, movement: movement("x") });
        assert_eq!(waiting.await.unwrap(), Some(3));
    }

    /// Claims outlive many resizes of their shard's table (every slot moves
    /// each time): each one still finds its own slot by its kept hash, and
    /// an equal id claimed later is a different key.
    #[test]
    fn claims_finalize_their_own_slots_across_table_growth_and_forgetting() {
        const IDS: u64 = 20_000;
        let index = Arc::new(IdIndex::new());
        let claims: Vec<Claim> = (0..IDS)
            .map(|n| match index.try_claim(&format!("id-{n}")) {
                TryClaim::Claimed(claim) => claim,
                _ => panic!("id-{n} is new"),
            })
            .collect();
        assert_eq!(index.len(), IDS as usize);
        for (n, claim) in (0..IDS).zip(claims) {
            if n % 3 == 0 {
                drop(claim);
            } else {
                claim.commit(Committed::Movement { lsn: n + 1, movement: movement(&format!("id-{n}")) });
            }
        }
        let committed = (0..IDS).filter(|n| n % 3 != 0).count();
        assert_eq!(index.len(), committed);
        index.forget_through(IDS / 2);
        for n in 0..IDS {
            let expected = (n % 3 != 0 && n + 1 > IDS / 2).then_some(n + 1);
            match index.try_claim(&format!("id-{n}")) {
                TryClaim::Done(done) => assert_eq!(Some(done.lsn()), expected, "id-{n}"),
                TryClaim::Claimed(_) => assert_eq!(expected, None, "id-{n} was forgotten or released"),
                TryClaim::Busy(_) => panic!("id-{n} has no holder"),
            }
        }
        assert_eq!(index.len(), (IDS / 2..IDS).filter(|n| n % 3 != 0).count());
    }

    /// Each shard's ids held and room for more without growing, and its
    /// table's allocation (which grows with its buckets).
    fn shape(index: &IdIndex) -> Vec<(usize, usize, usize)> {
        let shapes = index.shards.iter().map(|shard| {
            let slots = shard.slots.lock();
            (slots.table.len(), slots.table.capacity(), slots.table.allocation_size())
        });
        shapes.collect()
    }

    fn allocations(index: &IdIndex) -> Vec<usize> {
        shape(index).into_iter().map(|(_, _, allocation)| allocation).collect()
    }

    fn claim_new(index: &Arc<IdIndex>, id: &str) -> Claim {
        match index.try_claim(id) {
            TryClaim::Claimed(claim) => claim,
            _ => panic!("{id} is new"),
        }
    }

    /// After a forget each shard has room for as many ids as it held, so
    /// the next archive write's worth of claims does not grow any table;
    /// claims in flight across the rebuild finalize their own slots; a
    /// table left large by a burst is made smaller at the next forget.
    #[test]
    fn a_forget_leaves_room_for_as_many_ids_as_were_held() {
        const IDS: u64 = (SHARDS * 300) as u64;
        let index = Arc::new(IdIndex::new());
        let fill = |round: &str, lsn_base: u64, count: u64| {
            for n in 0..count {
                let id = format!("{round}-{n}");
                claim_new(&index, &id).commit(Committed::Movement { lsn: lsn_base + n, movement: movement(&id) });
            }
        };
        fill("a", 1, IDS);
        let in_flight: Vec<Claim> = (0..SHARDS * 4).map(|n| claim_new(&index, &format!("open-{n}"))).collect();
        let held = shape(&index);
        index.forget_through(IDS);
        assert_eq!(index.len(), in_flight.len(), "only the claims in flight are left");
        let after = shape(&index);
        for ((held, _, _), (kept, capacity, _)) in held.iter().zip(&after) {
            assert!(capacity - kept >= held - kept, "room for what the shard held: {held} held, now {after:?}");
        }
        let probed = |index: &IdIndex| index.shards.iter().map(|shard| shard.slots.lock().probed).sum::<u64>();
        let probed_before = probed(&index);
        // Claims finalized straight in their buckets (no table grew in
        // between), some released among them.
        let refill: Vec<Claim> = (0..IDS).map(|n| claim_new(&index, &format!("a-{n}"))).collect();
        for (n, claim) in (0..IDS).zip(refill) {
            if n % 5 == 0 {
                drop(claim);
            } else {
                let movement = movement(&format!("a-{n}"));
                claim.commit(Committed::Movement { lsn: IDS + 1 + n, movement });
            }
        }
        assert_eq!(probed(&index), probed_before, "every claim found its entry in its bucket");
        assert_eq!(allocations(&index), after.iter().map(|shape| shape.2).collect::<Vec<_>>(), "no table grew");
        for n in 0..IDS {
            match index.try_claim(&format!("a-{n}")) {
                TryClaim::Done(done) => assert!(n % 5 != 0 && done.lsn() == IDS + 1 + n, "a-{n}: {}", done.lsn()),
                TryClaim::Claimed(claim) => {
                    assert!(n % 5 == 0, "a-{n} was committed");
                    let movement = movement(&format!("a-{n}"));
                    claim.commit(Committed::Movement { lsn: IDS + 1 + n, movement });
                }
                TryClaim::Busy(_) => panic!("a-{n} has no holder"),
            }
        }
        for (n, claim) in in_flight.into_iter().enumerate() {
            if n % 2 == 0 {
                let movement = movement(&format!("open-{n}"));
                claim.commit(Committed::Movement { lsn: 10 * IDS, movement });
            } else {
                drop(claim);
            }
        }
        assert_eq!(index.len(), IDS as usize + SHARDS * 2);
        for n in 0..SHARDS * 4 {
            let id = format!("open-{n}");
            match index.try_claim(&id) {
                TryClaim::Done(done) => assert!(n % 2 == 0 && done.lsn() == 10 * IDS, "{id}"),
                TryClaim::Claimed(_) => assert!(n % 2 == 1, "{id} was committed"),
                TryClaim::Busy(_) => panic!("{id} has no holder"),
            }
        }

        // A burst of four times as many, then a quiet round.
        index.forget_through(u64::MAX);
        fill("burst", 1, 4 * IDS);
        index.forget_through(u64::MAX);
        let burst = allocations(&index);
        fill("quiet", 1, IDS / 4);
        index.forget_through(u64::MAX);
        let quiet = allocations(&index);
        assert!(quiet.iter().zip(&burst).all(|(quiet, burst)| quiet < burst), "{quiet:?} after {burst:?}");
        assert!(index.is_empty());
    }

    /// Loading a claim's lines ahead is only a hint: on an empty index, on
    /// grown tables and across a rebuild (its layout stale) the claims made
    /// after it are the ones made without it.
    #[test]
    fn prefetched_claims_claim_as_any_other() {
        let index = Arc::new(IdIndex::new());
        for round in 0..3u64 {
            let ids: Vec<String> = (0..5_000).map(|n| format!("r{round}-{n}")).collect();
            let hashes: Vec<IdHash> = ids.iter().map(|id| index.hash(id)).collect();
            for (at, (id, &hash)) in ids.iter().zip(&hashes).enumerate() {
                if let Some(&ahead) = hashes.get(at + 8) {
                    index.prefetch_claim(ahead);
                }
                index.prefetch_claim(IdHash(u64::MAX - at as u64));
                let lsn = round * 10_000 + at as u64 + 1;
                match index.try_claim_hashed(id, hash) {
                    TryClaim::Claimed(claim) => claim.commit(Committed::Movement { lsn, movement: movement(id) }),
                    _ => panic!("{id} is new"),
                }
                assert!(matches!(index.try_claim(id), TryClaim::Done(done) if done.lsn() == lsn), "{id}");
            }
            index.forget_through(u64::MAX);
        }
        assert!(index.is_empty());
    }

    #[test]
    fn ids_spread_over_every_shard() {
        let index = IdIndex::new();
        let mut used = [0usize; SHARDS];
        for n in 0..(SHARDS * 200) {
            used[index.hash(&format!("order-{n}")).shard()] += 1;
        }
        assert!(used.iter().all(|&count| count > 100), "ids per shard: {used:?}");
    }
}
