//! State shared by the appenders, the writer thread and the waiters.
//!
//! Locks, and why each exists:
//! - `pending`: the bytes appended since the writer last took them, and lsn
//!   assignment. Held for a memcpy; never across I/O.
//! - `waiters`: wakers of `wait_durable` futures, and the condvar of blocking
//!   waiters. The writer takes it once per group, after publishing.
//!
//! Lock order: never both at once.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::config::WalConfig;
use crate::error::{AppendError, Health, LogFailed};
use crate::fs::WalFs;
use crate::stats::WalStats;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere already failed the log (see writer::FailOnPanic);
    // the data under these locks stays consistent at every await point.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Appended, not yet taken by the writer.
#[derive(Debug)]
pub(crate) struct Pending {
    /// Frames, lsns stamped, crc not yet computed (the writer seals them).
    pub frames: Vec<u8>,
    /// Lsn of the first frame in `frames` (== `next_lsn` when empty).
    pub first_lsn: u64,
    pub next_lsn: u64,
    pub closing: bool,
    /// The writer sleeps on `writer_wake`: an append must wake it (and
    /// clears this, so that one append does). When it is busy it takes
    /// what is pending without a wake-up (a condvar notify is a futex
    /// syscall whether or not anyone waits).
    pub writer_waiting: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Waiters {
    id_last: u64,
    /// Keyed by (lsn awaited, waiter id), so a group wakes a prefix.
    wakers: BTreeMap<(u64, u64), Waker>,
}

impl Waiters {
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.wakers.is_empty()
    }
}

/// Free space, refreshed by the writer thread (never per append).
#[derive(Debug, Default)]
pub(crate) struct DiskGauge {
    pub free_bytes: AtomicU64,
    pub low: AtomicBool,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub cfg: WalConfig,
    pub fs: Arc<dyn WalFs>,
    pub pending: Mutex<Pending>,
    pub writer_wake: Condvar,
    pub last_lsn: AtomicU64,
    pub durable_lsn: AtomicU64,
    /// Bytes appended and not yet durable: what `admit` bounds.
    pub backlog_bytes: AtomicU64,
    pub failure: OnceLock<Arc<str>>,
    /// Set when `shutdown` starts: `admit` refuses from then on.
    pub closing: AtomicBool,
    /// Set when the writer thread has ended: nothing more becomes durable.
    pub stopped: AtomicBool,
    pub waiters: Mutex<Waiters>,
    pub waiters_cv: Condvar,
    pub disk: DiskGauge,
    pub stats: WalStats,
}

impl Shared {
    pub(crate) fn new(cfg: WalConfig, fs: Arc<dyn WalFs>, next_lsn: u64) -> Self {
        assert!(next_lsn >= 1, "lsns start at 1");
        let pending =
            Pending { frames: Vec::new(), first_lsn: next_lsn, next_lsn, closing: false, writer_waiting: false };
        Self {
            cfg,
            fs,
            pending: Mutex::new(pending),
            writer_wake: Condvar::new(),
            last_lsn: AtomicU64::new(next_lsn - 1),
            durable_lsn: AtomicU64::new(next_lsn - 1),
            backlog_bytes: AtomicU64::new(0),
            failure: OnceLock::new(),
            closing: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            waiters: Mutex::new(Waiters::default()),
            waiters_cv: Condvar::new(),
            disk: DiskGauge::default(),
            stats: WalStats::default(),
        }
    }

    pub(crate) fn is_failed(&self) -> bool {
        self.failure.get().is_some()
    }

    pub(crate) fn admit(&self) -> Result<(), AppendError> {
        if self.is_failed() {
            return Err(AppendError::Failed);
        }
        if self.closing.load(Ordering::Acquire) {
            return Err(AppendError::Closed);
        }
        if self.disk.low.load(Ordering::Relaxed) {
            return Err(AppendError::DiskLow);
        }
        if self.backlog_bytes.load(Ordering::Relaxed) > self.cfg.max_pending_bytes as u64 {
            return Err(AppendError::Overloaded);
        }
        Ok(())
    }

    pub(crate) fn health(&self) -> Health {
        if let Some(reason) = self.failure.get() {
            return Health::Failed(reason.to_string());
        }
        if self.disk.low.load(Ordering::Relaxed) {
            return Health::DiskLow;
        }
        Health::Healthy
    }

    /// Fatal: never retried (fsyncgate), durable_lsn never moves again.
    pub(crate) fn fail(&self, reason: String) {
        if self.failure.set(reason.clone().into()).is_ok() {
            tracing::error!(
                dir = %self.cfg.dir.display(),
                durable_lsn = self.durable_lsn.load(Ordering::Acquire),
                %reason,
                "write-ahead log failed: refusing writes until a restart recovers from disk"
            );
        }
        self.wake_all();
    }

    /// The writer has ended: release everyone still waiting.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.wake_all();
    }

    /// Called by the writer after the fsync covering `lsn` returned.
    pub(crate) fn publish_durable(&self, lsn: u64, records: u64, bytes: u64) {
        let durable_before = self.durable_lsn.load(Ordering::Acquire);
        assert!(!self.is_failed(), "nothing becomes durable after a failure");
        assert_eq!(lsn - durable_before, records, "a group continues right after the durable prefix");
        assert!(lsn <= self.last_lsn.load(Ordering::Acquire), "only assigned lsns become durable");
        self.durable_lsn.store(lsn, Ordering::Release);
        self.stats.record_group(records, bytes);
        self.backlog_bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.wake_through(lsn);
    }

    pub(crate) fn disk_written(&self, bytes: u64) {
        let free_bytes = self.disk.free_bytes.load(Ordering::Relaxed).saturating_sub(bytes);
        self.disk.free_bytes.store(free_bytes, Ordering::Relaxed);
        if self.cfg.min_free_bytes > 0 && free_bytes < self.cfg.min_free_bytes {
            self.disk.low.store(true, Ordering::Relaxed);
        }
    }

    /// Re-reads free space; a failing statvfs keeps the last answer.
    pub(crate) fn refresh_disk(&self) {
        if self.cfg.min_free_bytes == 0 {
            return;
        }
        match self.fs.free_bytes(&self.cfg.dir) {
            Ok(free_bytes) => {
                self.disk.free_bytes.store(free_bytes, Ordering::Relaxed);
                let low = free_bytes < self.cfg.min_free_bytes;
                if self.disk.low.swap(low, Ordering::Relaxed) != low {
                    tracing::warn!(free_bytes, min_free_bytes = self.cfg.min_free_bytes, low, "wal disk space");
                }
            }
            Err(error) => tracing::warn!(%error, dir = %self.cfg.dir.display(), "cannot read free disk space"),
        }
    }

    /// `Some` once the wait for `lsn` is over.
    fn durable_outcome(&self, lsn: u64) -> Option<Result<(), LogFailed>> {
        if self.durable_lsn.load(Ordering::Acquire) >= lsn {
            return Some(Ok(()));
        }
        if let Some(reason) = self.failure.get() {
            return Some(Err(LogFailed { reason: reason.clone() }));
        }
        if self.stopped.load(Ordering::Acquire) {
            return Some(Err(LogFailed { reason: "the log was shut down before this record was written".into() }));
        }
        None
    }

    fn wake_through(&self, lsn: u64) {
        let ready = {
            let mut waiters = lock(&self.waiters);
            let later = waiters.wakers.split_off(&(lsn.saturating_add(1), 0));
            std::mem::replace(&mut waiters.wakers, later)
        };
        self.waiters_cv.notify_all();
        ready.into_values().for_each(Waker::wake);
    }

    fn wake_all(&self) {
        let all = std::mem::take(&mut lock(&self.waiters).wakers);
        self.waiters_cv.notify_all();
        all.into_values().for_each(Waker::wake);
    }

    pub(crate) fn wait_durable_blocking(&self, lsn: u64) -> Result<(), LogFailed> {
        let mut waiters = lock(&self.waiters);
        loop {
            // Checked under the lock the writer takes after publishing, so a
            // wake-up cannot slip between the check and the wait.
            if let Some(outcome) = self.durable_outcome(lsn) {
                return outcome;
            }
            waiters = self.waiters_cv.wait(waiters).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Resolves once the record with `lsn` is durable. Needs no runtime: it
/// registers its waker with the writer thread, which wakes it after the
/// fsync (so it works from tokio, actix, or `block_on`). Dropping it
/// unregisters.
#[derive(Debug)]
#[must_use = "a future does nothing unless awaited"]
pub struct DurableWait {
    shared: Arc<Shared>,
    lsn: u64,
    id: Option<u64>,
}

impl DurableWait {
    pub(crate) fn new(shared: Arc<Shared>, lsn: u64) -> Self {
        Self { shared, lsn, id: None }
    }
}

impl Future for DurableWait {
    type Output = Result<(), LogFailed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(outcome) = this.shared.durable_outcome(this.lsn) {
            this.unregister();
            return Poll::Ready(outcome);
        }
        let mut waiters = lock(&this.shared.waiters);
        // Again under the lock: the writer publishes before taking it.
        if let Some(outcome) = this.shared.durable_outcome(this.lsn) {
            if let Some(id) = this.id.take() {
                waiters.wakers.remove(&(this.lsn, id));
            }
            return Poll::Ready(outcome);
        }
        let id = *this.id.get_or_insert_with(|| {
            waiters.id_last += 1;
            waiters.id_last
        });
        match waiters.wakers.get_mut(&(this.lsn, id)) {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                waiters.wakers.insert((this.lsn, id), cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl DurableWait {
    fn unregister(&mut self) {
        if let Some(id) = self.id.take() {
            lock(&self.shared.waiters).wakers.remove(&(self.lsn, id));
        }
    }
}

impl Drop for DurableWait {
    fn drop(&mut self) {
        self.unregister();
    }
}
