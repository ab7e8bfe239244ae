//! `Wal`: the handle appenders, waiters and history readers share.
//!
//! `read` serves one durable record by lsn from the segments through a
//! [`SegmentReader`] behind its own lock: readers never take the `pending`
//! lock nor wait for the writer, so history reads stay off the
//! acknowledgement path.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::batch::FrameBatch;
use crate::config::{RecoveryPolicy, WalConfig};
use crate::error::{AppendError, Health, LogFailed, OpenError, ReadError};
use crate::format;
use crate::fs::{RealFs, WalFs};
use crate::reader::SegmentReader;
use crate::recovery::{self, RecoveryReport, TailSegment};
use crate::segment::{create_segment, OpenSegment};
use crate::shared::{lock, DurableWait, Shared};
use crate::sidecar::SidecarAppender;
use crate::stats::WalStats;
use crate::writer;

/// The write-ahead log. Cheap to clone; every clone is the same log. The
/// writer thread stops when `shutdown` is called or the last clone drops.
#[derive(Clone)]
pub struct Wal {
    inner: Arc<WalHandle>,
}

struct WalHandle {
    shared: Arc<Shared>,
    /// Held for the whole join, so concurrent `shutdown`s all return after
    /// the queue is written.
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Held across a read's I/O (two positioned reads, or a fallback scan):
    /// reads queue behind each other, never behind appends.
    reader: Mutex<SegmentReader>,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.inner.shared.cfg.dir)
            .field("last_lsn", &self.last_lsn())
            .field("durable_lsn", &self.durable_lsn())
            .finish()
    }
}

impl Wal {
    /// Recovers the log in `cfg.dir` (created if absent), calling `replay`
    /// for every record with lsn >= `from_lsn` in lsn order, then starts the
    /// writer thread. On `Err` the replayed state must be discarded.
    pub fn open<E: fmt::Display>(
        cfg: WalConfig,
        policy: RecoveryPolicy,
        from_lsn: u64,
        replay: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<(Wal, RecoveryReport), OpenError> {
        Self::open_with_fs(Arc::new(RealFs), cfg, policy, from_lsn, replay)
    }

    /// `open` on any file system (the simulated one in fault tests).
    pub fn open_with_fs<E: fmt::Display>(
        fs: Arc<dyn WalFs>,
        cfg: WalConfig,
        policy: RecoveryPolicy,
        from_lsn: u64,
        replay: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<(Wal, RecoveryReport), OpenError> {
        cfg.validate().map_err(OpenError::Config)?;
        let recovered = recovery::recover(&*fs, &cfg, policy, from_lsn, replay)?;
        let mut report = recovered.report;
        let created = recovered.tail.is_none();
        let segment = open_tail(&*fs, &cfg, recovered.tail, report.next_lsn)?;
        report.segments += usize::from(created);
        let reader = Mutex::new(SegmentReader::with_fs(fs.clone(), &cfg.dir));
        let shared = Arc::new(Shared::new(cfg, fs, report.next_lsn));
        shared.refresh_disk();
        let thread = writer::spawn(shared.clone(), segment).map_err(OpenError::Spawn)?;
        tracing::info!(%report, "wal open");
        let inner = Arc::new(WalHandle { shared, writer: Mutex::new(Some(thread)), reader });
        Ok((Wal { inner }, report))
    }

    /// Cheap admission check before a caller changes state: `Failed` once
    /// the log failed, `Closed` after shutdown, `DiskLow` below
    /// `min_free_bytes`, `Overloaded` while the backlog (appended, not yet
    /// durable) exceeds `max_pending_bytes`.
    ///
    /// The backlog bound is soft: `append` itself never refuses for load, so
    /// the backlog can pass `max_pending_bytes` by what the callers that were
    /// admitted at the same moment append. Callers admit once per batch.
    pub fn admit(&self) -> Result<(), AppendError> {
        self.inner.shared.admit()
    }

    /// Assigns consecutive lsns to every record of `batch`, in order, and
    /// queues them for the writer thread; returns the lsn range. Never waits
    /// for I/O: the critical section is a memcpy plus lsn stamping (the crc
    /// is computed on the writer thread). Enqueue order is log order.
    pub fn append(&self, batch: &FrameBatch) -> Result<Range<u64>, AppendError> {
        let shared = &self.inner.shared;
        let max_record_bytes = shared.cfg.max_record_bytes;
        if batch.payload_bytes_max() > max_record_bytes as usize {
            return Err(AppendError::TooLarge { payload_bytes: batch.payload_bytes_max(), max_record_bytes });
        }
        let mut pending = lock(&shared.pending);
        if shared.is_failed() {
            return Err(AppendError::Failed);
        }
        if pending.closing {
            return Err(AppendError::Closed);
        }
        let first_lsn = pending.next_lsn;
        let base = pending.frames.len();
        pending.frames.extend_from_slice(batch.frames());
        format::stamp_lsns(&mut pending.frames[base..], first_lsn, batch.len());
        pending.next_lsn = first_lsn + batch.len() as u64;
        shared.last_lsn.store(pending.next_lsn - 1, Ordering::Release);
        shared.backlog_bytes.fetch_add(batch.frame_bytes() as u64, Ordering::Relaxed);
        let lsns = first_lsn..pending.next_lsn;
        // Read under the lock the writer sets it under: a writer about to
        // sleep either sees these frames first or is woken here. Cleared by
        // the one append that wakes it: until the woken writer runs (tens of
        // microseconds on a busy machine) the appends after it would each
        // call into the kernel to wake it again.
        let wake = !lsns.is_empty() && pending.writer_waiting;
        if wake {
            pending.writer_waiting = false;
        }
        drop(pending);
        if wake {
            shared.writer_wake.notify_one();
        }
        Ok(lsns)
    }

    pub fn append_one(&self, payload: &[u8]) -> Result<u64, AppendError> {
        let mut batch = FrameBatch::new();
        batch.push(payload);
        Ok(self.append(&batch)?.start)
    }

    /// The last lsn assigned (0 for an empty log).
    pub fn last_lsn(&self) -> u64 {
        self.inner.shared.last_lsn.load(Ordering::Acquire)
    }

    /// Every record at or below this is fsynced.
    pub fn durable_lsn(&self) -> u64 {
        self.inner.shared.durable_lsn.load(Ordering::Acquire)
    }

    /// Resolves once `durable_lsn() >= lsn`; `Err` if the log failed (or was
    /// shut down) before that. Needs no particular async runtime.
    pub fn wait_durable(&self, lsn: u64) -> DurableWait {
        assert!(lsn <= self.last_lsn(), "waiting for lsn {lsn}, which was never assigned");
        DurableWait::new(self.inner.shared.clone(), lsn)
    }

    pub fn wait_durable_blocking(&self, lsn: u64) -> Result<(), LogFailed> {
        assert!(lsn <= self.last_lsn(), "waiting for lsn {lsn}, which was never assigned");
        self.inner.shared.wait_durable_blocking(lsn)
    }

    /// The payload of the durable record `lsn`, read from its segment (two
    /// positioned reads through the offset sidecar; see [`SegmentReader`]).
    /// `NotDurable` above `durable_lsn()`, `Removed` below the oldest
    /// segment kept.
    pub fn read(&self, lsn: u64) -> Result<Vec<u8>, ReadError> {
        let mut payload = Vec::new();
        self.read_into(lsn, &mut payload)?;
        Ok(payload)
    }

    /// [`Wal::read`] into a caller's buffer (cleared first).
    pub fn read_into(&self, lsn: u64, payload: &mut Vec<u8>) -> Result<(), ReadError> {
        payload.clear();
        let durable_lsn = self.durable_lsn();
        if lsn > durable_lsn {
            return Err(ReadError::NotDurable { lsn, durable_lsn });
        }
        lock(&self.inner.reader).read_into(lsn, payload)
    }

    /// [`SegmentReader::read_run`] over the durable records
    /// `from_lsn ..= to_lsn` (`NotDurable` if `to_lsn` is not).
    pub fn read_run(
        &self,
        from_lsn: u64,
        to_lsn: u64,
        visit: impl FnMut(u64, &[u8]) -> std::ops::ControlFlow<()>,
    ) -> Result<(), ReadError> {
        let durable_lsn = self.durable_lsn();
        if to_lsn > durable_lsn {
            return Err(ReadError::NotDurable { lsn: to_lsn, durable_lsn });
        }
        lock(&self.inner.reader).read_run(from_lsn, to_lsn, visit)
    }

    /// Retention through the log: [`crate::remove_segments_covered`] on this
    /// log's folder, then the reader forgets what it knew of the segments.
    pub fn remove_segments_covered(
        &self,
        covered_lsn: u64,
        is_expired: impl Fn(&std::path::Path) -> bool,
    ) -> std::io::Result<Vec<std::path::PathBuf>> {
        let shared = &self.inner.shared;
        let removed = crate::checkpoint::remove_segments_covered(&*shared.fs, &shared.cfg.dir, covered_lsn, is_expired);
        lock(&self.inner.reader).reset();
        removed
    }

    pub fn health(&self) -> Health {
        self.inner.shared.health()
    }

    pub fn stats(&self) -> &WalStats {
        &self.inner.shared.stats
    }

    #[cfg(test)]
    pub(crate) fn inner_shared(&self) -> &Shared {
        &self.inner.shared
    }

    pub fn config(&self) -> &WalConfig {
        &self.inner.shared.cfg
    }

    /// Stops accepting, writes and fsyncs everything queued, joins the
    /// writer thread. Idempotent; `Err` if the log had failed.
    pub fn shutdown(&self) -> Result<(), LogFailed> {
        self.inner.shutdown()
    }
}

impl WalHandle {
    fn shutdown(&self) -> Result<(), LogFailed> {
        let mut writer = lock(&self.writer);
        self.shared.closing.store(true, std::sync::atomic::Ordering::Release);
        lock(&self.shared.pending).closing = true;
        self.shared.writer_wake.notify_one();
        if let Some(thread) = writer.take() {
            if thread.join().is_err() {
                tracing::error!("the wal writer thread panicked");
            }
        }
        match self.shared.failure.get() {
            Some(reason) => Err(LogFailed { reason: reason.clone() }),
            None => Ok(()),
        }
    }
}

impl Drop for WalHandle {
    fn drop(&mut self) {
        // Errors were logged when they happened.
        let _ = self.shutdown();
    }
}

/// The segment the writer continues in: the recovered last one, fsynced
/// again (recovery may have read bytes a crashed process wrote but never
/// fsynced, and replayed them: they must be durable before anything after
/// them is acknowledged), or a new one. The recovered one's sidecar is
/// rewritten from recovery's scan, so it matches exactly what was kept.
fn open_tail(
    fs: &dyn WalFs,
    cfg: &WalConfig,
    tail: Option<TailSegment>,
    next_lsn: u64,
) -> Result<OpenSegment, OpenError> {
    let io_error = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| OpenError::Io { path, source }
    };
    let Some(tail) = tail else {
        return create_segment(fs, &cfg.dir, next_lsn, cfg.segment_bytes)
            .map_err(|failure| OpenError::Io { path: failure.path, source: failure.source });
    };
    let mut file = fs.open(&tail.path).map_err(io_error(&tail.path))?;
    let len_bytes = file.len_bytes().map_err(io_error(&tail.path))?;
    if len_bytes != tail.len_bytes {
        let changed = std::io::Error::other(format!(
            "changed during recovery: {len_bytes} bytes, {} expected (is another process using this folder?)",
            tail.len_bytes
        ));
        return Err(OpenError::Io { path: tail.path, source: changed });
    }
    crate::segment::preallocate(&mut *file, &tail.path, cfg.segment_bytes);
    file.sync_data().map_err(io_error(&tail.path))?;
    let sidecar = SidecarAppender::replace(fs, &cfg.dir, tail.first_lsn, &tail.sidecar_entries);
    fs.sync_dir(&cfg.dir).map_err(io_error(&cfg.dir))?;
    Ok(OpenSegment { file, path: tail.path, first_lsn: tail.first_lsn, len_bytes, sidecar })
}
