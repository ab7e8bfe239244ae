//! The checkpointer: its own thread that writes checkpoints, prunes old ones
//! and applies segment retention (`wal.checkpoint_every_records`,
//! `wal.checkpoint_every_s`, `wal.retention_days`).
//!
//! Owns the files `checkpoint-*` in the wal folder once the server runs, and
//! the removal of archived segments. It never touches live actors or their
//! state and never blocks an actix arbiter or the HTTP runtime: it builds
//! checkpoint N+1 from checkpoint N (or from lsn 1) plus the *durable*
//! records after it, read back from the segments: N's record items are
//! copied as they are and each new record is decoded once as a check
//! ([`checkpoint::Extender`]); so a checkpoint only ever contains records
//! that were acknowledged-durable, in lsn order. It folds nothing: the
//! live server and every start-up fold the same records, and
//! `fundledger wal verify` folds checkpoints offline. (Until 2026-11-25 it
//! folded every record of the history again on each run: about a tenth of
//! the server's CPU under batch load, and a second copy of the state.)
//!
//! Memory: while it runs it holds checkpoint N's bytes and the new
//! checkpoint's bytes (see [`crate::codec::checkpoint`]); nothing between
//! runs.
//!
//! Files: it keeps exactly two checkpoints, the new one and the one it was
//! built from (checked when read), so a corrupt newest always falls back to a
//! valid one. Retention removes only segments whose records are all at or
//! below the *older* kept checkpoint, so the fallback also has its log.
//!
//! A failure (I/O, a record that does not decode) is logged and retried at the
//! next trigger; it never affects the log or the answers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use fundledger_wal::{Health, Wal, WalFs};

use crate::codec::checkpoint;
use crate::limits;

pub struct Settings {
    pub dir: PathBuf,
    pub every_records: u64,
    /// 0 = by records only.
    pub every_s: u64,
    /// 0 = keep every segment.
    pub retention_days: u64,
}

pub struct Checkpointer {
    fs: Arc<dyn WalFs>,
    wal: Wal,
    settings: Settings,
    /// The checkpoint the next one is built from (0: none, build from lsn 1).
    base_lsn: u64,
}

/// What one checkpoint run did, for the log line and tests.
#[derive(Debug)]
pub struct Written {
    pub lsn: u64,
    pub records_read: u64,
    pub bytes: usize,
    pub segments_removed: usize,
    pub ms: u64,
}

impl Checkpointer {
    /// `base_lsn`: the checkpoint start-up loaded (0 when it replayed from
    /// lsn 1).
    pub fn new(fs: Arc<dyn WalFs>, wal: Wal, settings: Settings, base_lsn: u64) -> Self {
        assert!(settings.every_records > 0, "checkpoint_every_records is validated to be at least 1000");
        Self { fs, wal, settings, base_lsn }
    }

    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new().name("checkpointer".into()).spawn(move || self.run())
    }

    fn run(mut self) {
        let mut last_at = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(limits::CHECKPOINT_POLL_MS));
            match self.wal.health() {
                Health::Healthy => {}
                // Writes are turned away; a checkpoint would eat the floor.
                Health::DiskLow => continue,
                // Fatal until restart; the next start-up recovers from disk.
                Health::Failed(_) => return,
            }
            let durable = self.wal.durable_lsn();
            let by_records = durable >= self.base_lsn.saturating_add(self.settings.every_records);
            let by_time = self.settings.every_s > 0
                && durable > self.base_lsn
                && last_at.elapsed() >= Duration::from_secs(self.settings.every_s);
            if !(by_records || by_time) {
                continue;
            }
            match self.checkpoint(durable) {
                Ok(written) => tracing::info!(?written, "checkpoint"),
                Err(error) => tracing::error!(%error, lsn = durable, "checkpoint failed; the next trigger retries"),
            }
            last_at = Instant::now();
        }
    }

    /// Writes the checkpoint at `target` (at most the durable lsn), prunes,
    /// applies retention.
    pub fn checkpoint(&mut self, target: u64) -> Result<Written, String> {
        assert!(target <= self.wal.durable_lsn(), "checkpoints hold durable records only");
        let started = Instant::now();
        let dir = self.settings.dir.clone();
        let (bytes, records_read) = self.build(target)?;
        fundledger_wal::write_checkpoint_with_fs(&*self.fs, &dir, target, &bytes)
            .map_err(|error| format!("writing checkpoint {target}: {error}"))?;
        let covered = self.base_lsn;
        fundledger_wal::prune_checkpoints(&*self.fs, &dir, &[target, covered])
            .map_err(|error| format!("pruning checkpoints: {error}"))?;
        self.base_lsn = target;
        let segments_removed = self.retention(covered)?;
        Ok(Written {
            lsn: target,
            records_read,
            bytes: bytes.len(),
            segments_removed,
            ms: started.elapsed().as_millis() as u64,
        })
    }

    /// The checkpoint at `target`: the base checkpoint's records copied as
    /// they are, then the durable records after it from the segments, each
    /// decoded once as a check. Nothing is folded here (the live server and
    /// every start-up fold them; `fundledger wal verify` folds checkpoints
    /// offline), so a run costs a copy of the history, not a second state.
    fn build(&self, target: u64) -> Result<(Vec<u8>, u64), String> {
        let dir = &self.settings.dir;
        let base = if self.base_lsn > 0 {
            let payload =
                fundledger_wal::read_checkpoint_at(&*self.fs, dir, self.base_lsn, limits::CHECKPOINT_BYTES_MAX)
                    .map_err(|error| format!("base checkpoint {}: {error}", self.base_lsn))?;
            Some(payload)
        } else {
            None
        };
        let mut extender = checkpoint::Extender::new(base.as_deref())
            .map_err(|error| format!("base checkpoint {}: {error}", self.base_lsn))?;
        drop(base);
        let mut failure = None;
        let mut records_read = 0;
        fundledger_wal::read_records_with_fs(&*self.fs, dir, self.base_lsn + 1, |lsn, payload| {
            if lsn > target {
                return std::ops::ControlFlow::Break(());
            }
            records_read += 1;
            match extender.push(lsn, payload) {
                Ok(()) => std::ops::ControlFlow::Continue(()),
                Err(error) => {
                    failure = Some(format!("lsn {lsn}: {error}"));
                    std::ops::ControlFlow::Break(())
                }
            }
        })
        .map_err(|error| format!("reading the log after lsn {}: {error}", self.base_lsn))?;
        if let Some(error) = failure {
            return Err(error);
        }
        let bytes = extender.finish(target).map_err(|error| format!("the log before the durable lsn: {error}"))?;
        Ok((bytes, records_read))
    }

    /// Removes archived segments covered by the older kept checkpoint and
    /// older than `retention_days` (by file modification time).
    fn retention(&self, covered_lsn: u64) -> Result<usize, String> {
        if self.settings.retention_days == 0 || covered_lsn == 0 {
            return Ok(0);
        }
        let age = Duration::from_secs(self.settings.retention_days.saturating_mul(86_400));
        let cutoff = SystemTime::now().checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
        let is_expired = |path: &Path| {
            std::fs::metadata(path).and_then(|meta| meta.modified()).is_ok_and(|modified| modified < cutoff)
        };
        // Through the log, so its history reader forgets the removed segments.
        self.wal
            .remove_segments_covered(covered_lsn, is_expired)
            .map(|removed| removed.len())
            .map_err(|error| format!("retention: {error}"))
    }
}
