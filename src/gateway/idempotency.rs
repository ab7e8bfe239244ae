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
use hashbrown::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::domain::record::{Adjustment, Deposit, Movement, SuspenseEntry, SuspenseReturn, Withdrawal};

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
    /// Keyed by the id the claim holds too (one allocation per claim).
    slots: Mutex<HashMap<Arc<str>, Slot>>,
    released: Notify,
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
}

impl Waiter {
    /// Resolves when the holder finalized or dropped its claim.
    pub async fn wait(self) {
        let shard = self.index.shard(&self.id);
        loop {
            let released = shard.released.notified();
            tokio::pin!(released);
            {
                let mut slots = shard.slots.lock();
                match slots.get_mut(&*self.id) {
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
            .map(|_| Arc::new(Shard { slots: Mutex::new(HashMap::new()), released: Notify::new() }))
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
    /// Each shard's lock is held only to take the forgotten entries out;
    /// they are freed after it is released (an id and its movement each,
    /// thousands per shard per archive write: freed under the lock, they
    /// kept the requests of that shard waiting).
    pub fn forget_through(&self, lsn: u64) {
        let mut forgotten = Vec::new();
        for shard in self.shards.iter() {
            {
                let mut slots = shard.slots.lock();
                forgotten.extend(
                    slots.extract_if(|_, slot| matches!(slot, Slot::Done(committed) if committed.lsn() <= lsn)),
                );
                let kept = slots.len();
                slots.shrink_to(kept * 2);
            }
            forgotten.clear();
        }
    }

    fn shard(&self, id: &str) -> &Arc<Shard> {
        let hash = self.hasher.hash_one(id) as usize;
        &self.shards[hash % SHARDS]
    }

    pub fn try_claim(self: &Arc<Self>, id: &str) -> TryClaim {
        let shard = self.shard(id);
        let mut slots = shard.slots.lock();
        match slots.get(id) {
            Some(Slot::Done(committed)) => TryClaim::Done(committed.clone()),
            Some(Slot::InFlight { .. }) => TryClaim::Busy(Waiter { index: Arc::clone(self), id: id.into() }),
            None => {
                // Under the shard lock: an id is forgotten only once the
                // archive shows it, so it is found in one or the other.
                if let Some(committed) = self.archived(id) {
                    return TryClaim::Done(committed);
                }
                let id: Arc<str> = id.into();
                slots.insert(Arc::clone(&id), Slot::InFlight { waited: false });
                TryClaim::Claimed(Claim { shard: Arc::clone(shard), id, finalized: false })
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
                let slots = self.shard(id).slots.lock();
                match slots.get(id) {
                    None => return self.archived(id),
                    Some(Slot::Done(committed)) => return Some(committed.clone()),
                    Some(Slot::InFlight { .. }) => {}
                }
            }
            Waiter { index: Arc::clone(self), id: id.into() }.wait().await;
        }
    }

    /// Recovery: the id committed at some earlier run.
    pub fn insert_recovered(&self, id: Arc<str>, committed: Committed) {
        let previous = self.shard(&id).slots.lock().insert(id, Slot::Done(committed));
        assert!(previous.is_none(), "a client id committed twice in the log");
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.slots.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shard {
    /// End an in-flight claim: `Some` commits it, `None` forgets it.
    fn finalize(&self, id: &str, outcome: Option<Committed>) {
        let mut slots = self.slots.lock();
        let Some(slot) = slots.get_mut(id) else { panic!("a claimed id {id} is in flight until its claim ends") };
        let Slot::InFlight { waited } = *slot else { panic!("a claimed id {id} is in flight until its claim ends") };
        match outcome {
            // In place: inserting would allocate a key only to drop it.
            Some(committed) => *slot = Slot::Done(committed),
            None => {
                slots.remove(id);
            }
        }
        drop(slots);
        if waited {
            self.released.notify_waiters();
        }
    }
}

/// The right to commit one client id. Finalize with [`Claim::commit`];
/// dropping it releases the id.
pub struct Claim {
    /// The id's shard (where it is finalized).
    shard: Arc<Shard>,
    /// The map's key, shared.
    id: Arc<str>,
    finalized: bool,
}

impl Claim {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn commit(mut self, committed: Committed) {
        self.finalized = true;
        self.shard.finalize(&self.id, Some(committed));
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.finalized {
            self.shard.finalize(&self.id, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::AccountId;
    use crate::domain::money::Money;
    use crate::domain::record::TransferType;

    fn movement(id: &str) -> Arc<Movement> {
        Arc::new(Movement {
            id: id.into(),
            kind: TransferType::Transfer,
            payer: AccountId(1),
            payee: Some(AccountId(2)),
            amount: Money(100),
            requested_amount: Some(Money(100)),
            hold_id: None,
            hold_account: None,
            hold_amount: Money::ZERO,
            hold_remaining: Money::ZERO,
            order_id: None,
            memo: None,
            committed_at_ms: 0,
            operator: "platform".into(),
        })
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
}
