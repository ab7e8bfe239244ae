//! Recovery: read the segments from the one holding `from_lsn` on, check
//! every frame, replay, and deal with a bad frame:
//!
//! - a torn tail (bad frame in the last segment, no valid frame after it: a
//!   crash in mid-write) is truncated, fsynced and reported;
//! - anything else is refused with the file, byte offset and lsn, unless the
//!   operator chose `RecoveryPolicy::TruncateCorrupt`: then the log is cut at
//!   the first bad frame, later segments are deleted, and exactly what was
//!   dropped is reported.
//!
//! The tail segment is scanned whole anyway, so recovery hands the writer
//! the offsets of exactly the frames it kept, and the writer's sidecar
//! starts out exact. Sidecars of removed segments are removed with them,
//! and an orphan sidecar (its segment removed by a crash in between) is
//! removed at start-up. Sealed segments' sidecars are left to readers,
//! which check them on first use.

use std::fmt;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::config::{RecoveryPolicy, WalConfig};
use crate::error::OpenError;
use crate::format::SEGMENT_HEADER_BYTES;
use crate::fs::WalFs;
use crate::segment::{
    self, classify, list_segments, read_segment, read_segment_from, segment_file_name, DirEntry, ScanEnd, SegmentFile,
};
use crate::sidecar;

/// What recovery found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The lsn the next append gets.
    pub next_lsn: u64,
    pub records_replayed: u64,
    pub torn_tail: Option<TailReport>,
    /// Segment files in the folder after recovery.
    pub segments: usize,
    /// Only with `RecoveryPolicy::TruncateCorrupt` and damage found.
    pub dropped_by_truncation: Option<TruncationReport>,
}

/// A torn tail that recovery cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailReport {
    pub file: PathBuf,
    pub offset: u64,
    /// From `offset` to the last non-zero byte: the torn write's bytes.
    /// Zeros after them (the segment's preallocated room, up to
    /// `segment_bytes`) are cut too but not counted.
    pub bytes_dropped: u64,
    /// The lsn the torn frame would have had (the first not recovered).
    pub lsn: u64,
    pub reason: String,
}

/// What `TruncateCorrupt` dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncationReport {
    /// Where the first bad frame was.
    pub file: PathBuf,
    pub offset: u64,
    /// The first lsn not kept.
    pub lsn: u64,
    pub reason: String,
    /// Every file cut or removed, in log order.
    pub dropped: Vec<DroppedBytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedBytes {
    pub file: PathBuf,
    /// Bytes from here to the end were dropped.
    pub offset: u64,
    /// From `offset` to the file's last non-zero byte: zeros after it (a
    /// live segment's preallocated room) are dropped too but not counted,
    /// as in [`TailReport::bytes_dropped`].
    pub bytes: u64,
    /// The whole file was deleted (the cut fell inside its header, or it
    /// came after the cut).
    pub removed: bool,
}

impl TruncationReport {
    pub fn bytes_dropped(&self) -> u64 {
        self.dropped.iter().map(|dropped| dropped.bytes).sum()
    }
}

impl fmt::Display for TailReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "torn tail in {} at byte offset {} (lsn {}): {}; {} bytes dropped",
            self.file.display(),
            self.offset,
            self.lsn,
            self.reason,
            self.bytes_dropped
        )
    }
}

impl fmt::Display for TruncationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "log truncated at {} byte offset {} (first lsn dropped {}): {}; {} bytes dropped:",
            self.file.display(),
            self.offset,
            self.lsn,
            self.reason,
            self.bytes_dropped()
        )?;
        for dropped in &self.dropped {
            let what = if dropped.removed { "removed" } else { "cut" };
            write!(f, " [{what} {} from offset {}, {} bytes]", dropped.file.display(), dropped.offset, dropped.bytes)?;
        }
        Ok(())
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wal recovered: {} records replayed, next lsn {}, {} segments",
            self.records_replayed, self.next_lsn, self.segments
        )?;
        if let Some(tail) = &self.torn_tail {
            write!(f, "; {tail}")?;
        }
        if let Some(truncation) = &self.dropped_by_truncation {
            write!(f, "; {truncation}")?;
        }
        Ok(())
    }
}

/// The segment the writer continues in, if recovery kept one.
#[derive(Debug)]
pub(crate) struct TailSegment {
    pub path: PathBuf,
    pub first_lsn: u64,
    pub len_bytes: u64,
    /// Sidecar entries of every frame kept ([`crate::sidecar`]).
    pub sidecar_entries: Vec<u8>,
}

pub(crate) struct Recovered {
    pub report: RecoveryReport,
    pub tail: Option<TailSegment>,
}

/// A bad frame (or segment) that is not a torn tail.
struct Damage {
    index: usize,
    offset: u64,
    lsn: u64,
    reason: String,
}

struct Recovery<'a> {
    fs: &'a dyn WalFs,
    dir: &'a Path,
    policy: RecoveryPolicy,
    segments: Vec<SegmentFile>,
    from_lsn: u64,
    next_lsn: u64,
    replayed: u64,
    torn_tail: Option<TailReport>,
    truncation: Option<TruncationReport>,
    tail: Option<TailSegment>,
    segments_removed: usize,
    /// Sidecar entries of the valid frames of the segment scanned last.
    scanned_entries: Vec<u8>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io { path: path.to_path_buf(), source }
}

pub(crate) fn recover<E: fmt::Display>(
    fs: &dyn WalFs,
    cfg: &WalConfig,
    policy: RecoveryPolicy,
    from_lsn: u64,
    mut replay: impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<Recovered, OpenError> {
    prepare_dir(fs, &cfg.dir)?;
    let segments = list_segments(fs, &cfg.dir).map_err(io_error(&cfg.dir))?;
    let from_lsn = from_lsn.max(1);
    let Some(start) = start_index(&segments, from_lsn)? else {
        return Ok(Recovered { report: empty_report(from_lsn), tail: None });
    };
    let next_lsn = segments[start].first_lsn;
    let mut recovery = Recovery {
        fs,
        dir: &cfg.dir,
        policy,
        segments,
        from_lsn,
        next_lsn,
        replayed: 0,
        torn_tail: None,
        truncation: None,
        tail: None,
        segments_removed: 0,
        scanned_entries: Vec::new(),
    };
    for index in start..recovery.segments.len() {
        if recovery.segment(index, &mut replay)?.is_break() {
            break;
        }
    }
    recovery.finish()
}

fn empty_report(next_lsn: u64) -> RecoveryReport {
    RecoveryReport { next_lsn, records_replayed: 0, torn_tail: None, segments: 0, dropped_by_truncation: None }
}

/// Creates the folder, drops leftovers of interrupted checkpoint writes, and
/// warns about files that do not belong.
fn prepare_dir(fs: &dyn WalFs, dir: &Path) -> Result<(), OpenError> {
    create_dir_durably(fs, dir)?;
    let mut removed_any = false;
    let names = fs.list(dir).map_err(io_error(dir))?;
    for name in &names {
        let path = dir.join(name);
        match classify(name) {
            DirEntry::Temporary => {
                fs.remove(&path).map_err(io_error(&path))?;
                tracing::info!(path = %path.display(), "removed a temporary file left by an interrupted write");
                removed_any = true;
            }
            DirEntry::Other => tracing::warn!(path = %path.display(), "unexpected file in the wal folder, ignored"),
            DirEntry::Sidecar(first_lsn) => {
                if !names.contains(&segment_file_name(first_lsn)) {
                    fs.remove(&path).map_err(io_error(&path))?;
                    tracing::info!(path = %path.display(), "removed an offset sidecar whose segment is gone");
                    removed_any = true;
                }
            }
            DirEntry::Segment(_) | DirEntry::Checkpoint(_) | DirEntry::CheckpointLike => {}
        }
    }
    if removed_any {
        fs.sync_dir(dir).map_err(io_error(dir))?;
    }
    Ok(())
}

/// Creates `dir` and fsyncs the parent of every folder it created: the
/// segments' own directory fsyncs do not make the folder's name durable.
fn create_dir_durably(fs: &dyn WalFs, dir: &Path) -> Result<(), OpenError> {
    let is_missing = |folder: &Path| matches!(fs.list(folder), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
    let created: Vec<&Path> =
        dir.ancestors().take_while(|folder| !folder.as_os_str().is_empty() && is_missing(folder)).collect();
    fs.create_dir_all(dir).map_err(io_error(dir))?;
    for folder in created.iter().rev() {
        if let Some(parent) = folder.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            fs.sync_dir(parent).map_err(io_error(parent))?;
        }
    }
    Ok(())
}

/// The last segment starting at or before `from_lsn`: earlier ones hold only
/// records the checkpoint covers.
fn start_index(segments: &[SegmentFile], from_lsn: u64) -> Result<Option<usize>, OpenError> {
    let Some(first) = segments.first() else {
        return Ok(None);
    };
    match segments.iter().rposition(|segment| segment.first_lsn <= from_lsn) {
        Some(index) => Ok(Some(index)),
        None => Err(OpenError::MissingRecords { from_lsn, first_lsn_retained: first.first_lsn }),
    }
}

impl Recovery<'_> {
    fn segment<E: fmt::Display>(
        &mut self,
        index: usize,
        replay: &mut impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<ControlFlow<()>, OpenError> {
        let segment = self.segments[index].clone();
        self.scanned_entries.clear();
        if segment.first_lsn != self.next_lsn {
            let reason = format!(
                "segment starts at lsn {} but the log before it ends at lsn {}",
                segment.first_lsn,
                self.next_lsn - 1
            );
            self.damaged(Damage { index, offset: 0, lsn: self.next_lsn, reason })?;
            return Ok(ControlFlow::Break(()));
        }
        let data = read_segment(self.fs, &segment.path).map_err(io_error(&segment.path))?;
        let is_last = index + 1 == self.segments.len();
        let (from_lsn, mut replayed, mut replay_error) = (self.from_lsn, 0, None);
        let entries = &mut self.scanned_entries;
        entries.clear();
        let outcome = segment::scan_segment_at(&data, segment.first_lsn, is_last, |frame| {
            sidecar::encode_entries([frame.offset], entries);
            let (lsn, payload) = (frame.lsn, frame.payload);
            if lsn < from_lsn {
                return ControlFlow::Continue(());
            }
            match replay(lsn, payload) {
                Ok(()) => {
                    replayed += 1;
                    ControlFlow::Continue(())
                }
                Err(error) => {
                    replay_error = Some(OpenError::Replay { lsn, message: error.to_string() });
                    ControlFlow::Break(())
                }
            }
        });
        if let Some(error) = replay_error {
            return Err(error);
        }
        self.replayed += replayed;
        self.next_lsn = outcome.next_lsn;
        let file_bytes = data.len() as u64;
        match outcome.end {
            ScanEnd::Clean => {
                if is_last {
                    self.tail = Some(TailSegment {
                        path: segment.path,
                        first_lsn: segment.first_lsn,
                        len_bytes: file_bytes,
                        sidecar_entries: std::mem::take(&mut self.scanned_entries),
                    });
                }
                Ok(ControlFlow::Continue(()))
            }
            ScanEnd::Stopped => unreachable!("the scan stops early only on a replay error"),
            ScanEnd::Unused { offset } => {
                // Preallocated room after the last frame: no damage, nothing
                // lost. Cut it (the writer preallocates the tail again). In
                // an earlier segment it is a cut at rotation that a power
                // loss undid: harmless if the next segment starts right
                // after (checked when it is read), so cut it again.
                let removed = self.cut(&segment, offset)?;
                tracing::debug!(file = %segment.path.display(), offset, "wal segment: unused preallocated space cut");
                if !is_last {
                    return Ok(ControlFlow::Continue(()));
                }
                self.tail = self.tail_after_cut(&segment, offset, removed);
                Ok(ControlFlow::Break(()))
            }
            ScanEnd::Torn { offset, reason } => {
                let written_end = torn_bytes_end(&data, offset);
                self.cut_torn_tail(&segment, offset, written_end, reason)?;
                Ok(ControlFlow::Break(()))
            }
            ScanEnd::Damaged { offset, lsn, reason } => {
                self.damaged(Damage { index, offset, lsn, reason })?;
                Ok(ControlFlow::Break(()))
            }
        }
    }

    /// Cuts the tail from `offset` on; `written_end`: where its last
    /// non-zero byte ends ([`torn_bytes_end`]), for the report.
    fn cut_torn_tail(
        &mut self,
        segment: &SegmentFile,
        offset: u64,
        written_end: u64,
        reason: String,
    ) -> Result<(), OpenError> {
        assert!(offset <= written_end);
        let removed = self.cut(segment, offset)?;
        self.tail = self.tail_after_cut(segment, offset, removed);
        if removed {
            self.fs.sync_dir(self.dir).map_err(io_error(self.dir))?;
        }
        let report = TailReport {
            file: segment.path.clone(),
            offset,
            bytes_dropped: written_end - offset,
            lsn: self.next_lsn,
            reason,
        };
        tracing::warn!(
            file = %report.file.display(), offset, bytes_dropped = report.bytes_dropped, lsn = report.lsn,
            reason = %report.reason, "wal torn tail (crash in mid-write) truncated"
        );
        self.torn_tail = Some(report);
        Ok(())
    }

    /// Cuts `segment` at `offset` durably; a cut inside the header removes
    /// the file (it then holds no record) and its sidecar. Returns whether
    /// it was removed.
    fn cut(&mut self, segment: &SegmentFile, offset: u64) -> Result<bool, OpenError> {
        if offset < SEGMENT_HEADER_BYTES as u64 {
            segment::remove_segment(self.fs, self.dir, segment.first_lsn).map_err(io_error(&segment.path))?;
            self.segments_removed += 1;
            return Ok(true);
        }
        let mut file = self.fs.open(&segment.path).map_err(io_error(&segment.path))?;
        file.truncate(offset).map_err(io_error(&segment.path))?;
        file.sync_data().map_err(io_error(&segment.path))?;
        Ok(false)
    }

    /// The scan stopped at the cut, so the entries it collected are exactly
    /// the frames kept.
    fn tail_after_cut(&mut self, segment: &SegmentFile, offset: u64, removed: bool) -> Option<TailSegment> {
        let sidecar_entries = std::mem::take(&mut self.scanned_entries);
        let kept = TailSegment {
            path: segment.path.clone(),
            first_lsn: segment.first_lsn,
            len_bytes: offset,
            sidecar_entries,
        };
        (!removed).then_some(kept)
    }

    fn damaged(&mut self, damage: Damage) -> Result<(), OpenError> {
        let file = self.segments[damage.index].path.clone();
        if self.policy == RecoveryPolicy::TolerateTailCorruption {
            return Err(OpenError::Corrupt { file, offset: damage.offset, lsn: damage.lsn, reason: damage.reason });
        }
        let mut dropped = Vec::new();
        for index in damage.index..self.segments.len() {
            let segment = self.segments[index].clone();
            let offset = if index == damage.index { damage.offset } else { 0 };
            let bytes = self.written_bytes_from(&segment.path, offset)?;
            let removed = self.cut(&segment, offset)?;
            if index == damage.index {
                self.tail = self.tail_after_cut(&segment, offset, removed);
            }
            dropped.push(DroppedBytes { file: segment.path, offset, bytes, removed });
        }
        self.fs.sync_dir(self.dir).map_err(io_error(self.dir))?;
        let report = TruncationReport { file, offset: damage.offset, lsn: damage.lsn, reason: damage.reason, dropped };
        tracing::error!(report = %report, "wal damage truncated by operator request (--truncate-corrupt-log)");
        self.next_lsn = damage.lsn;
        self.truncation = Some(report);
        Ok(())
    }

    /// The bytes of `path` from `offset` to its last non-zero byte (what a
    /// cut there drops of its records); the whole rest of the file when it
    /// cannot be read (the report then counts zeros too).
    fn written_bytes_from(&self, path: &Path, offset: u64) -> Result<u64, OpenError> {
        let file_bytes = self.fs.len_bytes(path).map_err(io_error(path))?;
        Ok(match read_segment_from(self.fs, path, offset) {
            Ok(rest) => torn_bytes_end(&rest, 0),
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "cannot read a segment to count the bytes a cut drops");
                file_bytes.saturating_sub(offset)
            }
        })
    }

    fn finish(self) -> Result<Recovered, OpenError> {
        if self.next_lsn < self.from_lsn {
            return Err(OpenError::LogBehind { from_lsn: self.from_lsn, next_lsn: self.next_lsn });
        }
        let report = RecoveryReport {
            next_lsn: self.next_lsn,
            records_replayed: self.replayed,
            torn_tail: self.torn_tail,
            segments: self.segments.len() - self.segments_removed,
            dropped_by_truncation: self.truncation,
        };
        Ok(Recovered { report, tail: self.tail })
    }
}

/// Where the bytes of a torn tail starting at `offset` end: after the
/// last non-zero byte of `data` (a whole segment's bytes), at least
/// `offset`.
fn torn_bytes_end(data: &[u8], offset: u64) -> u64 {
    let start = usize::try_from(offset).map_or(data.len(), |start| start.min(data.len()));
    let written = data[start..].iter().rposition(|&byte| byte != 0).map_or(0, |last| last + 1);
    offset.max(start as u64 + written as u64)
}
