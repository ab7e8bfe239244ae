//! Segment files: names, listing, creation, and the frame-by-frame scan that
//! recovery, `verify`, `read_records` and the lsn reader share (including
//! the torn-tail test). A scan may start at any frame boundary, so a reader
//! that found a frame through the offset sidecar ([`crate::sidecar`]) need
//! not read the segment before it.

use std::fmt;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::config::{RECORD_BYTES_MAX, SEGMENT_BYTES_MAX, TAIL_SCAN_CRC_BYTES_MAX};
use crate::format::{self, FrameFault, HeaderFault, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use crate::fs::{WalFile, WalFs};
use crate::sidecar::SidecarAppender;

const SEGMENT_SUFFIX: &str = ".wal";
const SIDECAR_SUFFIX: &str = ".idx";
const CHECKPOINT_PREFIX: &str = "checkpoint";
const CHECKPOINT_SUFFIX: &str = ".ckpt";
const TEMPORARY_SUFFIX: &str = ".tmp";
const LSN_DIGITS: usize = 20;

pub fn segment_file_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}{SEGMENT_SUFFIX}")
}

/// The offset sidecar of the segment starting at `first_lsn`.
pub fn sidecar_file_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}{SIDECAR_SUFFIX}")
}

pub fn checkpoint_file_name(lsn: u64) -> String {
    format!("{CHECKPOINT_PREFIX}-{lsn:020}{CHECKPOINT_SUFFIX}")
}

/// What a name in the wal folder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirEntry {
    Segment(u64),
    /// The offset sidecar of the segment starting at this lsn.
    Sidecar(u64),
    Checkpoint(u64),
    /// Starts with `checkpoint` but is not a name we write.
    CheckpointLike,
    Temporary,
    Other,
}

fn parse_lsn(digits: &str) -> Option<u64> {
    let well_formed = digits.len() == LSN_DIGITS && digits.bytes().all(|b| b.is_ascii_digit());
    well_formed.then(|| digits.parse().ok()).flatten()
}

pub(crate) fn classify(name: &str) -> DirEntry {
    if name.ends_with(TEMPORARY_SUFFIX) {
        return DirEntry::Temporary;
    }
    if let Some(lsn) = name.strip_suffix(SEGMENT_SUFFIX).and_then(parse_lsn) {
        return DirEntry::Segment(lsn);
    }
    if let Some(lsn) = name.strip_suffix(SIDECAR_SUFFIX).and_then(parse_lsn) {
        return DirEntry::Sidecar(lsn);
    }
    if let Some(rest) = name.strip_prefix(CHECKPOINT_PREFIX) {
        let lsn = rest.strip_prefix('-').and_then(|r| r.strip_suffix(CHECKPOINT_SUFFIX)).and_then(parse_lsn);
        return lsn.map_or(DirEntry::CheckpointLike, DirEntry::Checkpoint);
    }
    DirEntry::Other
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentFile {
    pub first_lsn: u64,
    pub path: PathBuf,
}

/// Segments of `dir`, in log order.
pub(crate) fn list_segments(fs: &dyn WalFs, dir: &Path) -> io::Result<Vec<SegmentFile>> {
    let mut segments: Vec<SegmentFile> = fs
        .list(dir)?
        .into_iter()
        .filter_map(|name| match classify(&name) {
            DirEntry::Segment(first_lsn) => Some(SegmentFile { first_lsn, path: dir.join(name) }),
            _ => None,
        })
        .collect();
    segments.sort_by_key(|segment| segment.first_lsn);
    Ok(segments)
}

pub(crate) fn read_segment(fs: &dyn WalFs, path: &Path) -> io::Result<Vec<u8>> {
    fs.read(path, SEGMENT_BYTES_MAX)
}

/// A segment opened for positioned reads, and its length (at most
/// [`SEGMENT_BYTES_MAX`], so that it may size a buffer).
fn open_segment_read(fs: &dyn WalFs, path: &Path) -> io::Result<(Box<dyn crate::fs::WalReadFile>, u64)> {
    let file = fs.open_read(path)?;
    let len_bytes = file.len_bytes()?;
    if len_bytes > SEGMENT_BYTES_MAX {
        let message = format!("{} is larger than the {SEGMENT_BYTES_MAX}-byte segment limit", path.display());
        return Err(io::Error::new(io::ErrorKind::FileTooLarge, message));
    }
    Ok((file, len_bytes))
}

/// The bytes of a segment from `offset` to its end (a positioned read: the
/// bytes before `offset` are not read).
pub(crate) fn read_segment_from(fs: &dyn WalFs, path: &Path, offset: u64) -> io::Result<Vec<u8>> {
    let (file, len_bytes) = open_segment_read(fs, path)?;
    let mut bytes = vec![0; len_bytes.saturating_sub(offset) as usize];
    let read = file.read_at(offset, &mut bytes)?;
    bytes.truncate(read);
    Ok(bytes)
}

/// Bytes read at a time by [`read_frames`].
const FRAMES_READ_CHUNK_BYTES: usize = 1 << 20;

/// The bytes of the last segment from `offset` (0, or a frame boundary) as
/// far as its frames go, read a chunk at a time, walking the frames' lengths
/// (no CRC): reading stops at the first place where no frame can start (the
/// zeros of preallocated room, or damage), keeping what stopped it for the
/// scan to classify. So a reader of a live tail reads the tail's frames and
/// at most about a chunk more, not the whole preallocated length. Only
/// recovery and `verify`, which must tell a torn tail from damage, read the
/// last segment whole.
pub(crate) fn read_frames(fs: &dyn WalFs, path: &Path, offset: u64) -> io::Result<Vec<u8>> {
    let (file, len_bytes) = open_segment_read(fs, path)?;
    let available = len_bytes.saturating_sub(offset) as usize;
    let mut bytes = Vec::new();
    // The next frame boundary in `bytes`.
    let mut boundary = if offset == 0 { SEGMENT_HEADER_BYTES } else { 0 };
    while bytes.len() < available {
        let read_from = bytes.len();
        bytes.resize(read_from + (available - read_from).min(FRAMES_READ_CHUNK_BYTES), 0);
        let read = file.read_at(offset + read_from as u64, &mut bytes[read_from..])?;
        bytes.truncate(read_from + read);
        if read == 0 {
            break;
        }
        while let Some(header) = bytes.get(boundary..boundary + FRAME_HEADER_BYTES) {
            let Some(frame_bytes) = format::frame_bytes_if_plausible(header) else {
                return Ok(bytes);
            };
            if boundary + frame_bytes > bytes.len() {
                break;
            }
            boundary += frame_bytes;
        }
    }
    Ok(bytes)
}

/// A failed file operation, with what and where, for the fatal-error log.
#[derive(Debug)]
pub(crate) struct IoFailure {
    pub op: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

impl IoFailure {
    pub(crate) fn at<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> IoFailure + 'a {
        move |source| IoFailure { op, path: path.to_path_buf(), source }
    }
}

impl fmt::Display for IoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.display(), self.source)
    }
}

/// The segment the writer appends to.
#[derive(Debug)]
pub(crate) struct OpenSegment {
    pub file: Box<dyn WalFile>,
    pub path: PathBuf,
    pub first_lsn: u64,
    pub len_bytes: u64,
    /// Where the writer appends frame offsets; `None` once writing it failed
    /// (readers then find it short and fall back to a scan).
    pub sidecar: Option<SidecarAppender>,
}

/// Creates a segment durably: file, header, space for `segment_bytes`
/// (zeros, [`preallocate`]), fsync, directory fsync. Only then may a record
/// in it be acknowledged. Its empty sidecar is created before the directory
/// fsync, which makes its name durable for free; a failure there only costs
/// the hint.
pub(crate) fn create_segment(
    fs: &dyn WalFs,
    dir: &Path,
    first_lsn: u64,
    segment_bytes: u64,
) -> Result<OpenSegment, IoFailure> {
    let path = dir.join(segment_file_name(first_lsn));
    let mut file = fs.create(&path).map_err(IoFailure::at("create", &path))?;
    file.write_all(&format::encode_segment_header(first_lsn)).map_err(IoFailure::at("write header of", &path))?;
    preallocate(&mut *file, &path, segment_bytes);
    file.sync_data().map_err(IoFailure::at("fdatasync", &path))?;
    let sidecar = SidecarAppender::replace(fs, dir, first_lsn, &[]);
    fs.sync_dir(dir).map_err(IoFailure::at("fsync directory", dir))?;
    tracing::debug!(path = %path.display(), first_lsn, "created wal segment");
    Ok(OpenSegment { file, path, first_lsn, len_bytes: SEGMENT_HEADER_BYTES as u64, sidecar })
}

/// Gives the segment being written its full length up front, so that its
/// commits change no metadata (see [`WalFile::preallocate`]). The bytes past
/// the last frame then read as zeros until written: a scan of the last
/// segment calls such a tail [`ScanEnd::Unused`], the writer cuts a segment
/// to its last frame before it starts the next one and when it stops, and
/// recovery cuts and preallocates the tail again. A failure only costs the
/// speed-up.
pub(crate) fn preallocate(file: &mut dyn WalFile, path: &Path, segment_bytes: u64) {
    match file.preallocate(segment_bytes) {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(path = %path.display(), "wal segment not preallocated (not supported, or no room)")
        }
        Err(error) => tracing::warn!(path = %path.display(), %error, "cannot preallocate a wal segment; appending"),
    }
}

/// Removes a segment and then its sidecar (a sidecar left alone by a crash
/// in between is removed at start-up).
pub(crate) fn remove_segment(fs: &dyn WalFs, dir: &Path, first_lsn: u64) -> io::Result<()> {
    fs.remove(&dir.join(segment_file_name(first_lsn)))?;
    crate::sidecar::remove_sidecar(fs, dir, first_lsn)
}

/// How a segment scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// Every byte belongs to a valid frame.
    Clean,
    /// The visitor asked to stop.
    Stopped,
    /// A bad frame in the last segment with no valid frame after it.
    Torn { offset: u64, reason: String },
    /// The bytes from `offset` on are all zeros: preallocated room the
    /// writer had not used yet ([`preallocate`]), not damage. Normally only
    /// in the last segment; in an earlier one, a cut at rotation that a
    /// power loss undid, harmless when the next segment starts at the lsn
    /// after (every reader checks that).
    Unused { offset: u64 },
    /// Anything else.
    Damaged { offset: u64, lsn: u64, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanOutcome {
    /// The lsn the next frame would carry.
    pub next_lsn: u64,
    pub records: u64,
    /// Header plus the valid frames: where the next frame belongs.
    pub valid_bytes: u64,
    pub end: ScanEnd,
}

/// One valid frame a scan met, with the file offset where its frame starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameAt<'a> {
    pub lsn: u64,
    pub payload: &'a [u8],
    pub offset: u64,
}

/// Checks every frame of one segment (header, crc, version, length bound,
/// lsns consecutive from the name's lsn), calling `visit` for each valid one.
pub(crate) fn scan_segment(
    data: &[u8],
    name_lsn: u64,
    is_last: bool,
    mut visit: impl FnMut(u64, &[u8]) -> ControlFlow<()>,
) -> ScanOutcome {
    scan_segment_at(data, name_lsn, is_last, |frame| visit(frame.lsn, frame.payload))
}

/// [`scan_segment`], telling `visit` where each frame starts.
pub(crate) fn scan_segment_at(
    data: &[u8],
    name_lsn: u64,
    is_last: bool,
    visit: impl FnMut(FrameAt<'_>) -> ControlFlow<()>,
) -> ScanOutcome {
    if let Err(fault) = check_header(data, name_lsn) {
        let end = classify_fault(data, 0, 0, name_lsn, is_last && fault_may_be_torn_header(&fault), fault.to_string());
        return ScanOutcome { next_lsn: name_lsn, records: 0, valid_bytes: 0, end };
    }
    scan_frames(&data[SEGMENT_HEADER_BYTES..], SEGMENT_HEADER_BYTES as u64, name_lsn, is_last, visit)
}

/// Checks the frames in `data`: a segment's bytes from `base_offset` (a
/// frame boundary after the header) to the end of the file, the first
/// frame carrying `first_lsn`. Offsets in the outcome are file offsets.
pub(crate) fn scan_frames(
    data: &[u8],
    base_offset: u64,
    first_lsn: u64,
    is_last: bool,
    mut visit: impl FnMut(FrameAt<'_>) -> ControlFlow<()>,
) -> ScanOutcome {
    let mut outcome = ScanOutcome { next_lsn: first_lsn, records: 0, valid_bytes: base_offset, end: ScanEnd::Clean };
    let mut offset = 0;
    while offset < data.len() {
        let fault = match format::decode_frame(&data[offset..], RECORD_BYTES_MAX) {
            Ok(frame) if frame.lsn == outcome.next_lsn => {
                let at = FrameAt { lsn: frame.lsn, payload: frame.payload, offset: base_offset + offset as u64 };
                if visit(at).is_break() {
                    outcome.end = ScanEnd::Stopped;
                }
                offset += frame.frame_bytes();
                outcome.next_lsn += 1;
                outcome.records += 1;
                outcome.valid_bytes = base_offset + offset as u64;
                if outcome.end == ScanEnd::Stopped {
                    return outcome;
                }
                continue;
            }
            // A valid frame with the wrong lsn is never a crash artifact.
            Ok(frame) => {
                let reason = FrameFault::LsnOrder { expected: outcome.next_lsn, found: frame.lsn }.to_string();
                let offset = base_offset + offset as u64;
                outcome.end = ScanEnd::Damaged { offset, lsn: outcome.next_lsn, reason };
                return outcome;
            }
            Err(fault) => fault,
        };
        if data[offset..].iter().all(|&byte| byte == 0) {
            outcome.end = ScanEnd::Unused { offset: base_offset + offset as u64 };
            return outcome;
        }
        outcome.end = classify_fault(data, offset, base_offset, outcome.next_lsn, is_last, fault.to_string());
        return outcome;
    }
    outcome.valid_bytes = base_offset + data.len() as u64;
    outcome
}

fn check_header(data: &[u8], name_lsn: u64) -> Result<(), HeaderFault> {
    let found = format::decode_segment_header(data)?;
    if found != name_lsn {
        return Err(HeaderFault::FirstLsn { expected: name_lsn, found });
    }
    Ok(())
}

/// A header that disagrees with the file name was written whole: damage.
fn fault_may_be_torn_header(fault: &HeaderFault) -> bool {
    !matches!(fault, HeaderFault::FirstLsn { .. })
}

/// A bad frame at `offset` is a torn tail only in the last segment with no
/// valid frame after it. `data` starts at file offset `base_offset`.
fn classify_fault(data: &[u8], offset: usize, base_offset: u64, lsn: u64, is_last: bool, reason: String) -> ScanEnd {
    let offset_u64 = base_offset + offset as u64;
    if !is_last {
        let reason = format!("{reason} (not in the last segment, so not a torn tail)");
        return ScanEnd::Damaged { offset: offset_u64, lsn, reason };
    }
    match find_later_frame(data, offset + 1, lsn) {
        LaterFrame::None => ScanEnd::Torn { offset: offset_u64, reason },
        LaterFrame::At { offset: later, lsn: later_lsn } => {
            let later = base_offset + later as u64;
            let reason = format!(
                "{reason}; a valid frame (lsn {later_lsn}) follows at offset {later}, so this is not a torn tail"
            );
            ScanEnd::Damaged { offset: offset_u64, lsn, reason }
        }
        LaterFrame::Unknown => {
            let reason = format!("{reason}; could not rule out valid frames after it (scan budget spent)");
            ScanEnd::Damaged { offset: offset_u64, lsn, reason }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum LaterFrame {
    None,
    At { offset: usize, lsn: u64 },
    Unknown,
}

/// Looks at every byte offset from `from` for a valid frame with an lsn a
/// later record could carry: at least `lsn_expected`, and at most one per
/// `FRAME_HEADER_BYTES` of the file beyond it. Linear in the bytes left;
/// CRC work only for candidates passing the cheap header filter, capped.
fn find_later_frame(data: &[u8], from: usize, lsn_expected: u64) -> LaterFrame {
    let lsn_last_possible = lsn_expected.saturating_add((data.len() / FRAME_HEADER_BYTES) as u64);
    let mut crc_bytes_left = TAIL_SCAN_CRC_BYTES_MAX;
    for offset in from..data.len() {
        let candidate = &data[offset..];
        let Some(frame_bytes) = format::plausible_frame_bytes(candidate, lsn_expected..=lsn_last_possible) else {
            continue;
        };
        if frame_bytes > crc_bytes_left {
            return LaterFrame::Unknown;
        }
        crc_bytes_left -= frame_bytes;
        if let Ok(frame) = format::decode_frame(candidate, RECORD_BYTES_MAX) {
            return LaterFrame::At { offset, lsn: frame.lsn };
        }
    }
    LaterFrame::None
}
