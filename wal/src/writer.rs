//! The writer thread: group commit.
//!
//! One dedicated `std::thread` (never async: fdatasync blocks, and an actix
//! arbiter or tokio worker blocked on it would stall every account it
//! serves). Loop: take everything appended while the previous fsync ran
//! (swap buffers under the `pending` lock), check and seal each frame, write
//! it with one `write_all` per segment touched, one fdatasync, then publish
//! `durable_lsn` and wake every waiter at or below it. Nothing is
//! acknowledged before the fsync that covers it and every record before it.
//!
//! A group that would pass `segment_bytes` fills the current segment with
//! whole frames, fsyncs it, cuts its unused preallocated room (durably),
//! and continues in a new segment (created preallocated and
//! fsynced, directory fsynced, before anything in it can be acknowledged).
//!
//! After each segment write it appends the frames' offsets to the segment's
//! sidecar ([`crate::sidecar`]), before the fsync, so every durable record
//! has its entry by the time `durable_lsn` covers it. The sidecar is a hint:
//! an error writing it is logged and the writer stops maintaining that
//! segment's sidecar; it never fails the log.
//!
//! Any write or fsync error is fatal (fsyncgate: after a failed fsync Linux
//! may mark the dirty pages clean, so a retry could "succeed" without the
//! data): the log is marked failed, every waiter gets `LogFailed`, and the
//! thread ends. A restart recovers from what is on disk.

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crate::config::{DISK_CHECK_INTERVAL, GROUP_BUFFER_BYTES_KEPT};
use crate::format::{self, SEGMENT_HEADER_BYTES};
use crate::segment::{create_segment, IoFailure, OpenSegment};
use crate::shared::{lock, Pending, Shared};

pub(crate) fn spawn(shared: Arc<Shared>, segment: OpenSegment) -> std::io::Result<JoinHandle<()>> {
    let writer = Writer { shared, segment, spare: Vec::new(), disk_checked_at: Instant::now() };
    thread::Builder::new().name("wal-writer".to_string()).spawn(move || writer.run())
}

struct Writer {
    shared: Arc<Shared>,
    segment: OpenSegment,
    /// The other half of the double buffer, swapped into `pending`.
    spare: Vec<u8>,
    disk_checked_at: Instant,
}

struct Group {
    frames: Vec<u8>,
    first_lsn: u64,
}

/// If the writer panics (a failed assertion), fail the log so that no
/// waiter hangs. (Release builds abort on panic anyway.)
struct FailOnPanic(Arc<Shared>);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.fail("the wal writer thread panicked".to_string());
        }
        self.0.stop();
    }
}

impl Writer {
    fn run(mut self) {
        let _guard = FailOnPanic(self.shared.clone());
        while let Some(mut group) = self.next_group() {
            if let Err(failure) = self.commit(&mut group) {
                self.shared.fail(failure.to_string());
                return;
            }
            self.recycle(group.frames);
            self.refresh_disk_if_due();
        }
        // Stopped cleanly: leave the tail as long as its frames, so that a
        // restart has nothing to cut (a crash leaves the zeros to recovery).
        if let Err(failure) = self.cut_unused() {
            tracing::warn!(%failure, "cannot cut the wal tail's unused space; the next start-up does");
        }
        tracing::debug!(
            durable_lsn = self.shared.durable_lsn.load(std::sync::atomic::Ordering::Acquire),
            "wal writer stopped"
        );
    }

    /// Waits for appended bytes; `None` once closing and drained.
    fn next_group(&mut self) -> Option<Group> {
        loop {
            let mut pending = lock(&self.shared.pending);
            loop {
                if !pending.frames.is_empty() {
                    return Some(take_group(&mut pending, &mut self.spare));
                }
                if pending.closing {
                    return None;
                }
                pending.writer_waiting = true;
                let (guard, wait) = self
                    .shared
                    .writer_wake
                    .wait_timeout(pending, DISK_CHECK_INTERVAL)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                pending = guard;
                pending.writer_waiting = false;
                if wait.timed_out() {
                    break;
                }
            }
            drop(pending);
            self.refresh_disk_if_due();
        }
    }

    fn commit(&mut self, group: &mut Group) -> Result<(), IoFailure> {
        let records = format::seal_frames(&mut group.frames, group.first_lsn, self.shared.cfg.max_record_bytes);
        let mut rest: &[u8] = &group.frames;
        while !rest.is_empty() {
            let fitting_bytes = self.fitting_bytes(rest);
            if fitting_bytes == 0 {
                self.rotate(format::lsn_in_memory(rest))?;
                continue;
            }
            let path = &self.segment.path;
            self.segment.file.write_all(&rest[..fitting_bytes]).map_err(IoFailure::at("write", path))?;
            self.note_offsets(&rest[..fitting_bytes]);
            self.segment.len_bytes += fitting_bytes as u64;
            rest = &rest[fitting_bytes..];
            if !rest.is_empty() {
                self.sync()?;
            }
        }
        self.sync()?;
        let bytes = group.frames.len() as u64;
        // Free space first: a released waiter's next admit sees the bytes used.
        self.shared.disk_written(bytes);
        self.shared.publish_durable(group.first_lsn + records - 1, records, bytes);
        Ok(())
    }

    /// Appends the offsets of `frames`, just written at the segment's end,
    /// to its sidecar; on error gives up on this segment's sidecar.
    fn note_offsets(&mut self, frames: &[u8]) {
        let Some(sidecar) = self.segment.sidecar.as_mut() else {
            return;
        };
        if let Err(error) = sidecar.append(self.segment.len_bytes, frames) {
            tracing::warn!(
                segment = %self.segment.path.display(), %error,
                "cannot append to the wal offset sidecar; reads of this segment will scan it"
            );
            self.segment.sidecar = None;
        }
    }

    /// Bytes of whole frames from the start of `frames` that fit in the
    /// current segment.
    fn fitting_bytes(&self, frames: &[u8]) -> usize {
        let room_bytes = self.shared.cfg.segment_bytes.saturating_sub(self.segment.len_bytes);
        let mut fitting_bytes = 0;
        while fitting_bytes < frames.len() {
            let frame_bytes = format::frame_bytes_in_memory(&frames[fitting_bytes..]);
            if (fitting_bytes + frame_bytes) as u64 > room_bytes {
                break;
            }
            fitting_bytes += frame_bytes;
        }
        fitting_bytes
    }

    /// Only called with the current segment fsynced (see `commit`). The
    /// segment is cut to its last frame, durably, before the next exists:
    /// only the last segment may end in preallocated zeros.
    fn rotate(&mut self, first_lsn: u64) -> Result<(), IoFailure> {
        // Config validation guarantees any frame fits in an empty segment.
        assert!(self.segment.len_bytes > SEGMENT_HEADER_BYTES as u64, "rotating an empty segment");
        assert!(first_lsn > self.segment.first_lsn);
        self.cut_unused()?;
        self.segment =
            create_segment(&*self.shared.fs, &self.shared.cfg.dir, first_lsn, self.shared.cfg.segment_bytes)?;
        Ok(())
    }

    /// Cuts the preallocated zeros after the current segment's last frame
    /// and fsyncs the new length.
    fn cut_unused(&mut self) -> Result<(), IoFailure> {
        let path = &self.segment.path;
        self.segment.file.truncate(self.segment.len_bytes).map_err(IoFailure::at("truncate", path))?;
        self.segment.file.sync_data().map_err(IoFailure::at("fdatasync", path))
    }

    fn sync(&mut self) -> Result<(), IoFailure> {
        let started = Instant::now();
        self.segment.file.sync_data().map_err(IoFailure::at("fdatasync", &self.segment.path))?;
        self.shared.stats.record_fsync(started.elapsed());
        Ok(())
    }

    /// Keeps the buffer for the next swap, giving back memory after a burst.
    fn recycle(&mut self, mut frames: Vec<u8>) {
        frames.clear();
        let kept_bytes = GROUP_BUFFER_BYTES_KEPT.max(self.shared.cfg.max_pending_bytes);
        if frames.capacity() > kept_bytes {
            frames.shrink_to(kept_bytes);
        }
        self.spare = frames;
    }

    fn refresh_disk_if_due(&mut self) {
        if self.disk_checked_at.elapsed() >= DISK_CHECK_INTERVAL {
            self.shared.refresh_disk();
            self.disk_checked_at = Instant::now();
        }
    }
}

fn take_group(pending: &mut Pending, spare: &mut Vec<u8>) -> Group {
    assert!(spare.is_empty());
    let frames = std::mem::replace(&mut pending.frames, std::mem::take(spare));
    let first_lsn = pending.first_lsn;
    pending.first_lsn = pending.next_lsn;
    Group { frames, first_lsn }
}
