//! The checkpointer: its own thread that writes checkpoints, prunes old ones
//! and applies segment retention (`wal.checkpoint_every_records`,
//! `wal.checkpoint_every_s`, `wal.retention_days`).
//!
//! Owns the files `checkpoint-*` in the wal folder once the server runs, and
//! the removal of archived segments. It never touches live actors or their
//! state and never blocks an actix arbiter or the HTTP runtime: it builds
//! the state at lsn N+1 from checkpoint N (or from lsn 1) plus the
//! *durable* records after it, read back from the segments, folded by
//! recovery's own code ([`Recovered::for_checkpoint`]), and writes that
//! state (schema 3, [`crate::codec::checkpoint`]); so a checkpoint only
//! ever reflects records that were acknowledged-durable, and every run
//! exercises the start-up path.
//!
//! A state checkpoint holds no ids or journals: those are read from the
//! history archive, so a checkpoint is only written at an lsn the archive
//! has already indexed and made durable (`archive_watermark`); start-up
//! uses it only when the archive reaches it.
//!
//! Cost: each run folds the records since the previous checkpoint once more
//! (the live server folded them in its actors) and decodes and encodes the
//! state: time and memory grow with accounts, open holds and pending work,
//! never with history. The registry's records (three per account, most of
//! a state's bytes) are neither decoded nor folded again: they are written
//! into the new checkpoint as the base held them, with the registry
//! records since appended ([`Recovered::load_checkpoint_keeping_registry`],
//! [`checkpoint::encode_state_parts`]); start-up still decodes and folds
//! them all, and refuses a checkpoint whose banks of accounts differ from
//! what they fold to. Memory is held only while it runs. After each run it
//! rests four times as long as the run took
//! ([`limits::CHECKPOINT_DUTY_PERCENT`]), so with many accounts under load
//! it takes a fifth of a core, not a third of the machine.
//!
//! Files: it keeps exactly two checkpoints, the new one and the one it was
//! built from (checked when read), so a corrupt newest always falls back to a
//! valid one. Retention removes only segments whose records are all at or
//! below the *older* kept checkpoint, so the fallback also has its log, and
//! below the oldest bank instruction still pending, whose record the outbox
//! reads back to send it.
//!
//! A failure (I/O, a record that does not decode) is logged and retried at the
//! next trigger; it never affects the log or the answers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use fundledger_wal::{Health, Wal, WalFs};

use crate::codec::checkpoint;
use crate::limits;
use crate::recovery::Recovered;

/// A run's state, with the base's registry records as they were read
/// (`None` when the base was of an older schema, or there was none).
struct Built {
    image: checkpoint::StateImage,
    kept: Option<checkpoint::EncodedRegistry>,
}

/// How far the history archive has indexed and made durable (its
/// watermark), read at each trigger.
pub type ArchiveWatermark = Arc<dyn Fn() -> u64 + Send + Sync>;

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
    archive_watermark: ArchiveWatermark,
    /// The checkpoint the next one is built from (0: none, build from lsn 1).
    base_lsn: u64,
}

/// How long the checkpointer rests after a run that took `took`, so that it
/// takes at most [`limits::CHECKPOINT_DUTY_PERCENT`] of one core's time.
fn rest_after(took: Duration) -> Duration {
    const PERCENT: u32 = limits::CHECKPOINT_DUTY_PERCENT;
    const { assert!(PERCENT > 0 && PERCENT <= 100) };
    took * (100 - PERCENT) / PERCENT
}

/// What one checkpoint run did, for the log line and tests.
#[derive(Debug)]
pub struct Written {
    pub lsn: u64,
    pub records_read: u64,
    pub bytes: usize,
    pub segments_removed: usize,
    /// Wall-clock time of the run.
    pub ms: u64,
    /// This thread's CPU time during the run (0 where the clock cannot be
    /// read): the run's own cost, whatever else the cores were doing.
    pub cpu_ms: u64,
}

impl Checkpointer {
    /// `base_lsn`: the checkpoint start-up loaded (0 when it replayed from
    /// lsn 1).
    pub fn new(
        fs: Arc<dyn WalFs>,
        wal: Wal,
        settings: Settings,
        archive_watermark: ArchiveWatermark,
        base_lsn: u64,
    ) -> Self {
        assert!(settings.every_records > 0, "checkpoint_every_records is validated to be at least 1000");
        Self { fs, wal, settings, archive_watermark, base_lsn }
    }

    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new().name("checkpointer".into()).spawn(move || self.run())
    }

    fn run(mut self) {
        crate::threads::run_in_background();
        let mut last_at = Instant::now();
        let mut rest_until = last_at;
        loop {
            std::thread::sleep(Duration::from_millis(limits::CHECKPOINT_POLL_MS));
            match self.wal.health() {
                Health::Healthy => {}
                // Writes are turned away; a checkpoint would eat the floor.
                Health::DiskLow => continue,
                // Fatal until restart; the next start-up recovers from disk.
                Health::Failed(_) => return,
            }
            if Instant::now() < rest_until {
                continue;
            }
            // The archive indexes durable records only, so this is durable too.
            let target = (self.archive_watermark)().min(self.wal.durable_lsn());
            let by_records = target >= self.base_lsn.saturating_add(self.settings.every_records);
            let by_time = self.settings.every_s > 0
                && target > self.base_lsn
                && last_at.elapsed() >= Duration::from_secs(self.settings.every_s);
            if !(by_records || by_time) {
                continue;
            }
            let started = Instant::now();
            let outcome = self.checkpoint(target);
            last_at = Instant::now();
            let rest = rest_after(last_at - started);
            rest_until = last_at + rest;
            match outcome {
                Ok(written) => tracing::info!(?written, rest_ms = rest.as_millis() as u64, "checkpoint"),
                Err(error) => tracing::error!(%error, lsn = target, "checkpoint failed; the next trigger retries"),
            }
        }
    }

    /// Writes the checkpoint at `target` (at most the durable lsn and the
    /// archive's watermark), prunes, applies retention.
    pub fn checkpoint(&mut self, target: u64) -> Result<Written, String> {
        assert!(target <= self.wal.durable_lsn(), "checkpoints hold durable records only");
        if target > (self.archive_watermark)() {
            return Err(format!("the history archive does not reach lsn {target} yet"));
        }
        let started = Instant::now();
        let cpu_at_start = crate::threads::cpu_time();
        let dir = self.settings.dir.clone();
        let (built, records_read, oldest_pending) = self.build(target)?;
        let bytes = checkpoint::encode_state_parts(&built.image, built.kept.as_ref())
            .map_err(|error| format!("encoding checkpoint {target}: {error}"))?;
        fundledger_wal::write_checkpoint_parts_with_fs(&*self.fs, &dir, target, &bytes.parts())
            .map_err(|error| format!("writing checkpoint {target}: {error}"))?;
        let covered = self.base_lsn;
        fundledger_wal::prune_checkpoints(&*self.fs, &dir, &[target, covered])
            .map_err(|error| format!("pruning checkpoints: {error}"))?;
        self.base_lsn = target;
        // A pending instruction's record is read back when it is sent.
        let segments_removed = self.retention(oldest_pending.map_or(covered, |lsn| covered.min(lsn - 1)))?;
        Ok(Written {
            lsn: target,
            records_read,
            bytes: bytes.len(),
            segments_removed,
            ms: started.elapsed().as_millis() as u64,
            cpu_ms: cpu_at_start
                .zip(crate::threads::cpu_time())
                .map_or(0, |(start, end)| end.saturating_sub(start).as_millis() as u64),
        })
    }

    /// The state at `target`: the base checkpoint loaded, the durable
    /// records after it folded, the result encoded; with the records read
    /// and the oldest lsn of an instruction still pending.
    fn build(&self, target: u64) -> Result<(Built, u64, Option<u64>), String> {
        let dir = &self.settings.dir;
        let mut state = Recovered::for_checkpoint(target);
        if self.base_lsn > 0 {
            let payload =
                fundledger_wal::read_checkpoint_at(&*self.fs, dir, self.base_lsn, limits::CHECKPOINT_BYTES_MAX)
                    .map_err(|error| format!("base checkpoint {}: {error}", self.base_lsn))?;
            // The registry's records (most of a state's bytes) are
            // written again as they were read, not decoded and folded.
            state
                .load_checkpoint_keeping_registry(self.base_lsn, payload)
                .map_err(|error| format!("base checkpoint {}: {error}", self.base_lsn))?;
        }
        let mut failure = None;
        let mut records_read = 0;
        fundledger_wal::read_records_with_fs(&*self.fs, dir, self.base_lsn + 1, |lsn, payload| {
            if lsn > target {
                return std::ops::ControlFlow::Break(());
            }
            records_read += 1;
            let folded = state.apply_payload_ahead(lsn, payload);
            match folded {
                Ok(()) => std::ops::ControlFlow::Continue(()),
                Err(error) => {
                    failure = Some(error);
                    std::ops::ControlFlow::Break(())
                }
            }
        })
        .map_err(|error| format!("reading the log after lsn {}: {error}", self.base_lsn))?;
        if let Some(error) = failure {
            return Err(error);
        }
        state.finish_ahead()?;
        if state.last_lsn != target {
            return Err(format!("the log after lsn {} ends at lsn {}, before {target}", self.base_lsn, state.last_lsn));
        }
        let (image, kept) = state.into_checkpoint()?;
        let oldest_pending = image.pending.lsns().min();
        Ok((Built { image, kept }, records_read, oldest_pending))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_followed_by_four_times_its_length_of_rest() {
        assert_eq!(limits::CHECKPOINT_DUTY_PERCENT, 20, "the figures below assume a fifth of a core");
        assert_eq!(rest_after(Duration::from_secs(5)), Duration::from_secs(20));
        assert_eq!(rest_after(Duration::from_millis(30)), Duration::from_millis(120));
        assert_eq!(rest_after(Duration::ZERO), Duration::ZERO);
        let run = Duration::from_millis(1234);
        let share = run.as_secs_f64() / (run + rest_after(run)).as_secs_f64();
        assert!((share - 0.20).abs() < 1e-6, "share of time spent checkpointing: {share}");
    }
}
