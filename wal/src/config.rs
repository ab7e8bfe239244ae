//! Configuration and every limit of the crate, kept in one place.

use std::path::PathBuf;
use std::time::Duration;

use crate::format::{FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES};

/// Largest payload the format admits, whatever the config says. Readers
/// (recovery, `verify`, `read_records`) reject a length field above it before
/// touching the bytes it claims, so a flipped bit can never make them read
/// or allocate gigabytes.
pub const RECORD_BYTES_MAX: u32 = 64 << 20;
/// Largest segment file. Readers load one segment at a time into memory, so
/// this is also the memory bound of recovery and `verify`.
pub const SEGMENT_BYTES_MAX: u64 = 1 << 30;

pub const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;
pub const RECORD_BYTES_DEFAULT: u32 = 1 << 20;
pub const PENDING_BYTES_DEFAULT: usize = 64 << 20;
pub const MIN_FREE_BYTES_DEFAULT: u64 = 1 << 30;

/// How often the writer re-reads free disk space (statvfs). Between reads it
/// subtracts what it wrote, so the floor is never overshot by more than what
/// other processes wrote in this interval.
pub(crate) const DISK_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The torn-tail check looks for any valid frame after a bad one. Candidates
/// are pre-filtered on version byte, length and lsn window, so the CRC work is
/// tiny in practice; this caps it against adversarial bytes. When the cap is
/// hit the bad frame is treated as damage (refuse to start), the safe side.
pub(crate) const TAIL_SCAN_CRC_BYTES_MAX: usize = 256 << 20;

/// Segments a [`crate::SegmentReader`] (and so `Wal::read`) keeps open at
/// once, each as two read handles (segment and sidecar), least recently
/// used closed first. Bounds file descriptors whatever the history size;
/// random reads over more segments than this pay an open per miss.
pub const OPEN_SEGMENTS_MAX: usize = 8;

/// A reader keeps its frame buffer between reads; after a large record it
/// gives memory back above this capacity.
pub(crate) const READ_BUFFER_BYTES_KEPT: usize = 1 << 20;

/// The writer keeps its two group buffers; after a burst it gives memory
/// back above this capacity (or `max_pending_bytes`, whichever is larger).
pub(crate) const GROUP_BUFFER_BYTES_KEPT: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalConfig {
    /// `DATA_DIR/wal`.
    pub dir: PathBuf,
    /// A segment file never exceeds this; a group that would pass it
    /// continues in a new segment.
    pub segment_bytes: u64,
    /// Payload bound; a larger append gets `AppendError::TooLarge`.
    pub max_record_bytes: u32,
    /// Backlog (appended, not yet durable) above which `admit` answers
    /// `Overloaded`.
    pub max_pending_bytes: usize,
    /// Free-space floor checked by `admit`; 0 turns the check off.
    pub min_free_bytes: u64,
}

impl WalConfig {
    /// The contract's defaults (API.md, `[wal]`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            max_record_bytes: RECORD_BYTES_DEFAULT,
            max_pending_bytes: PENDING_BYTES_DEFAULT,
            min_free_bytes: MIN_FREE_BYTES_DEFAULT,
        }
    }

    /// The whole frame of the largest record must fit in an empty segment:
    /// that is what lets the writer always make progress by rotating.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_record_bytes == 0 || self.max_record_bytes > RECORD_BYTES_MAX {
            return Err(format!("max_record_bytes {} must be in 1..={RECORD_BYTES_MAX}", self.max_record_bytes));
        }
        let smallest_segment_bytes = self.segment_bytes_min();
        if self.segment_bytes < smallest_segment_bytes || self.segment_bytes > SEGMENT_BYTES_MAX {
            return Err(format!(
                "segment_bytes {} must be in {smallest_segment_bytes}..={SEGMENT_BYTES_MAX} \
                 (a segment header plus one frame of max_record_bytes must fit)",
                self.segment_bytes
            ));
        }
        if self.max_pending_bytes == 0 {
            return Err("max_pending_bytes must be positive".to_string());
        }
        Ok(())
    }

    fn segment_bytes_min(&self) -> u64 {
        (SEGMENT_HEADER_BYTES + FRAME_HEADER_BYTES) as u64 + u64::from(self.max_record_bytes)
    }
}

/// What recovery does with damage that is not a torn tail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecoveryPolicy {
    /// Truncate a torn tail (crash in mid-write); refuse anything else.
    #[default]
    TolerateTailCorruption,
    /// The operator's explicit choice (`--truncate-corrupt-log`): cut the
    /// log at the first bad frame, delete every later segment, report it.
    TruncateCorrupt,
}
