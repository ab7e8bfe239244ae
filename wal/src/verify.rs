//! Read-only access: `verify` (every retained segment and checkpoint, also
//! those below the newest checkpoint) and `read_records` (for `wal inspect`
//! and history reads).
//!
//! `verify` also compares each intact segment's offset sidecar with the
//! frames it found; a missing or mismatched sidecar is a note, never
//! damage: it is a hint that readers check and rebuild.

use std::fmt;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::checkpoint::{list_checkpoints, read_checkpoint_bytes};
use crate::error::ReadError;
use crate::fs::{RealFs, WalFs};
use crate::segment::{
    classify, list_segments, read_frames, read_segment, read_segment_from, scan_frames, scan_segment, scan_segment_at,
    DirEntry, ScanEnd, SegmentFile,
};
use crate::sidecar;

/// Checkpoints larger than this are reported, not read, by `verify`.
const VERIFY_CHECKPOINT_BYTES_MAX: u64 = 1 << 34;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing, harmless (a leftover temporary file).
    Note,
    /// What a crash in mid-write leaves; start-up truncates it.
    TornTail,
    /// Start-up refuses this without `--truncate-corrupt-log`.
    Damage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub file: PathBuf,
    pub offset: Option<u64>,
    pub lsn: Option<u64>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub dir: PathBuf,
    pub segments: usize,
    pub records: u64,
    pub first_lsn: Option<u64>,
    pub last_lsn: Option<u64>,
    pub checkpoints: usize,
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// Intact, or the only flaw is a torn tail.
    pub fn is_ok(&self) -> bool {
        self.findings.iter().all(|finding| finding.severity != Severity::Damage)
    }

    fn add(&mut self, severity: Severity, file: &Path, offset: Option<u64>, lsn: Option<u64>, message: String) {
        self.findings.push(Finding { severity, file: file.to_path_buf(), offset, lsn, message });
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Note => "note",
            Severity::TornTail => "torn tail",
            Severity::Damage => "DAMAGE",
        };
        write!(f, "{severity}: {}", self.file.display())?;
        if let Some(offset) = self.offset {
            write!(f, " at byte offset {offset}")?;
        }
        if let Some(lsn) = self.lsn {
            write!(f, " (lsn {lsn})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.is_ok() { "ok" } else { "DAMAGED" };
        write!(f, "{}: {verdict}: {} segments, {} records", self.dir.display(), self.segments, self.records)?;
        if let (Some(first), Some(last)) = (self.first_lsn, self.last_lsn) {
            write!(f, " (lsn {first}..={last})")?;
        }
        write!(f, ", {} checkpoints", self.checkpoints)?;
        for finding in &self.findings {
            write!(f, "\n{finding}")?;
        }
        Ok(())
    }
}

pub fn verify(dir: &Path) -> VerifyReport {
    verify_with_fs(&RealFs, dir)
}

pub fn verify_with_fs(fs: &dyn WalFs, dir: &Path) -> VerifyReport {
    let mut report = VerifyReport {
        dir: dir.to_path_buf(),
        segments: 0,
        records: 0,
        first_lsn: None,
        last_lsn: None,
        checkpoints: 0,
        findings: Vec::new(),
    };
    match fs.list(dir) {
        Ok(names) => note_strangers(&mut report, dir, &names),
        Err(error) => {
            report.add(Severity::Damage, dir, None, None, format!("cannot list the wal folder: {error}"));
            return report;
        }
    }
    match list_segments(fs, dir) {
        Ok(segments) => verify_segments(fs, &segments, &mut report),
        Err(error) => report.add(Severity::Damage, dir, None, None, format!("cannot list segments: {error}")),
    }
    verify_checkpoints(fs, dir, &mut report);
    report
}

fn note_strangers(report: &mut VerifyReport, dir: &Path, names: &[String]) {
    for name in names {
        let message = match classify(name) {
            DirEntry::Temporary => "temporary file (an interrupted write; start-up removes it)",
            DirEntry::Other => "unexpected file in the wal folder",
            DirEntry::CheckpointLike => "starts with `checkpoint` but is not a checkpoint name",
            DirEntry::Sidecar(first_lsn) if !names.contains(&crate::segment::segment_file_name(first_lsn)) => {
                "offset sidecar without its segment (start-up removes it)"
            }
            DirEntry::Segment(_) | DirEntry::Sidecar(_) | DirEntry::Checkpoint(_) => continue,
        };
        report.add(Severity::Note, &dir.join(name), None, None, message.to_string());
    }
}

/// Each segment is checked on its own (so damage in one does not hide
/// damage in the next), plus the lsn chain between neighbours.
fn verify_segments(fs: &dyn WalFs, segments: &[SegmentFile], report: &mut VerifyReport) {
    report.segments = segments.len();
    let mut lsn_expected: Option<u64> = None;
    for (index, segment) in segments.iter().enumerate() {
        if let Some(expected) = lsn_expected.filter(|&expected| expected != segment.first_lsn) {
            let message =
                format!("segment starts at lsn {}, the previous one ends at lsn {}", segment.first_lsn, expected - 1);
            report.add(Severity::Damage, &segment.path, Some(0), Some(expected), message);
        }
        lsn_expected = verify_segment(fs, segment, index + 1 == segments.len(), report);
    }
}

/// Returns the lsn after the segment when it is clean.
fn verify_segment(fs: &dyn WalFs, segment: &SegmentFile, is_last: bool, report: &mut VerifyReport) -> Option<u64> {
    let data = match read_segment(fs, &segment.path) {
        Ok(data) => data,
        Err(error) => {
            report.add(Severity::Damage, &segment.path, None, None, format!("cannot read: {error}"));
            return None;
        }
    };
    let mut entries = Vec::new();
    let outcome = scan_segment_at(&data, segment.first_lsn, is_last, |frame| {
        sidecar::encode_entries([frame.offset], &mut entries);
        ControlFlow::Continue(())
    });
    if matches!(outcome.end, ScanEnd::Clean | ScanEnd::Unused { .. }) {
        check_sidecar(fs, segment, &entries, report);
    }
    if outcome.records > 0 {
        report.first_lsn.get_or_insert(segment.first_lsn);
        report.last_lsn = Some(outcome.next_lsn - 1);
    }
    report.records += outcome.records;
    match outcome.end {
        ScanEnd::Unused { offset } if !is_last => {
            let message = "zeros after the last frame (preallocated room whose cut at rotation a power loss undid; \
                           start-up cuts it)";
            report.add(Severity::Note, &segment.path, Some(offset), Some(outcome.next_lsn), message.to_string());
            return Some(outcome.next_lsn);
        }
        ScanEnd::Clean | ScanEnd::Stopped | ScanEnd::Unused { .. } => return Some(outcome.next_lsn),
        ScanEnd::Torn { offset, reason } => {
            let message =
                format!("{reason}; {} bytes after it would be truncated at start-up", data.len() as u64 - offset);
            report.add(Severity::TornTail, &segment.path, Some(offset), Some(outcome.next_lsn), message);
        }
        ScanEnd::Damaged { offset, lsn, reason } => {
            report.add(Severity::Damage, &segment.path, Some(offset), Some(lsn), reason);
        }
    }
    None
}

/// A sidecar that does not hold exactly `entries` is noted: readers rebuild
/// it (start-up rewrites the last segment's).
fn check_sidecar(fs: &dyn WalFs, segment: &SegmentFile, entries: &[u8], report: &mut VerifyReport) {
    let Some(dir) = segment.path.parent() else {
        return;
    };
    let path = sidecar::sidecar_path(dir, segment.first_lsn);
    let message = match fs.read(&path, entries.len() as u64) {
        Ok(found) if found == entries => return,
        Ok(_) => "offset sidecar does not match the segment (a hint: rebuilt when read)".to_string(),
        Err(error) if error.kind() == std::io::ErrorKind::FileTooLarge => {
            "offset sidecar is longer than the segment's records (a hint: rebuilt when read)".to_string()
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            "no offset sidecar (a hint: rebuilt when read)".to_string()
        }
        Err(error) => format!("cannot read the offset sidecar: {error}"),
    };
    report.add(Severity::Note, &path, None, Some(segment.first_lsn), message);
}

fn verify_checkpoints(fs: &dyn WalFs, dir: &Path, report: &mut VerifyReport) {
    let checkpoints = match list_checkpoints(fs, dir) {
        Ok(checkpoints) => checkpoints,
        Err(error) => {
            report.add(Severity::Damage, dir, None, None, format!("cannot list checkpoints: {error}"));
            return;
        }
    };
    report.checkpoints = checkpoints.len();
    for (lsn, path) in checkpoints {
        if let Err(reason) = read_checkpoint_bytes(fs, &path, lsn, VERIFY_CHECKPOINT_BYTES_MAX) {
            report.add(Severity::Damage, &path, None, Some(lsn), format!("checkpoint unusable: {reason}"));
        }
    }
}

/// Calls `visit(lsn, payload)` for every record with lsn >= `from_lsn`, in
/// order, until it breaks. Stops quietly at a torn tail (or the tail a live
/// writer is writing); damage is an error naming file and offset.
pub fn read_records(
    dir: &Path,
    from_lsn: u64,
    visit: impl FnMut(u64, &[u8]) -> ControlFlow<()>,
) -> Result<(), ReadError> {
    read_records_with_fs(&RealFs, dir, from_lsn, visit)
}

pub fn read_records_with_fs(
    fs: &dyn WalFs,
    dir: &Path,
    from_lsn: u64,
    visit: impl FnMut(u64, &[u8]) -> ControlFlow<()>,
) -> Result<(), ReadError> {
    let segments = list_segments(fs, dir).map_err(|source| ReadError::Io { path: dir.to_path_buf(), source })?;
    read_records_in(fs, &segments, from_lsn, None, visit)
}

/// `read_records` over `segments`. `start`, when known (found through the
/// sidecar), is the segment index and frame offset of `from_lsn`: that
/// segment is read from there; otherwise from the start of the segment
/// holding `from_lsn`.
pub(crate) fn read_records_in(
    fs: &dyn WalFs,
    segments: &[SegmentFile],
    from_lsn: u64,
    start: Option<(usize, u64)>,
    mut visit: impl FnMut(u64, &[u8]) -> ControlFlow<()>,
) -> Result<(), ReadError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReadError::Io { path, source }
    };
    let first = match start {
        Some((index, _)) => index,
        None => segments.iter().rposition(|segment| segment.first_lsn <= from_lsn).unwrap_or(0),
    };
    let mut lsn_expected = segments.get(first).map(|segment| segment.first_lsn);
    for (index, segment) in segments.iter().enumerate().skip(first) {
        if lsn_expected != Some(segment.first_lsn) {
            let lsn = lsn_expected.unwrap_or(segment.first_lsn);
            let reason = format!("segment starts at lsn {}, expected {lsn}", segment.first_lsn);
            return Err(ReadError::Corrupt { file: segment.path.clone(), offset: 0, lsn, reason });
        }
        let is_last = index + 1 == segments.len();
        // The last segment may be the live tail, preallocated: read only
        // as far as its frames go (its end, torn or unused, ends the read
        // either way).
        let read_from = |offset: u64| match is_last {
            true => read_frames(fs, &segment.path, offset),
            false if offset == 0 => read_segment(fs, &segment.path),
            false => read_segment_from(fs, &segment.path, offset),
        };
        let outcome = match start.filter(|&(start_index, _)| start_index == index) {
            Some((_, offset)) => {
                let data = read_from(offset).map_err(io_error(&segment.path))?;
                scan_frames(&data, offset, from_lsn, is_last, |frame| visit(frame.lsn, frame.payload))
            }
            None => {
                let data = read_from(0).map_err(io_error(&segment.path))?;
                scan_segment(&data, segment.first_lsn, is_last, |lsn, payload| {
                    if lsn < from_lsn {
                        ControlFlow::Continue(())
                    } else {
                        visit(lsn, payload)
                    }
                })
            }
        };
        match outcome.end {
            ScanEnd::Clean => lsn_expected = Some(outcome.next_lsn),
            // In an earlier segment: a cut a power loss undid (the next
            // segment's first lsn is checked like after a clean one).
            ScanEnd::Unused { .. } if !is_last => lsn_expected = Some(outcome.next_lsn),
            ScanEnd::Stopped | ScanEnd::Torn { .. } | ScanEnd::Unused { .. } => return Ok(()),
            ScanEnd::Damaged { offset, lsn, reason } => {
                return Err(ReadError::Corrupt { file: segment.path.clone(), offset, lsn, reason });
            }
        }
    }
    Ok(())
}
