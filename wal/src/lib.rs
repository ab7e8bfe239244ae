//! fundledger's write-ahead log. It knows nothing of accounts: a record is an
//! opaque payload with a log sequence number (`lsn`, from 1, no gaps).
//!
//! # Layout
//!
//! In the order an appended record meets them:
//!
//! - [`batch`]: [`FrameBatch`], records encoded by the caller outside any
//!   lock, already laid out as frames.
//! - [`wal`]: [`Wal`], the shared handle: `admit`, `append` (lsn assignment
//!   and a memcpy into the pending buffer), `wait_durable`, `shutdown`.
//! - `writer`: the one writer thread: group commit (swap, seal, one write,
//!   one fdatasync, publish `durable_lsn`, wake waiters), segment rotation,
//!   fatal error handling.
//! - [`format`](mod@format): the byte layout of frames, segment headers and checkpoints,
//!   documented field by field next to the code that writes it.
//! - [`segment`]: segment names, creation (preallocated to `segment_bytes`,
//!   so commits change no file size), and the frame-by-frame scan with the
//!   torn-tail test and the unused-room test of the last segment.
//! - [`sidecar`]: each segment's offset sidecar (a hint, never fsynced,
//!   always checked), appended by the writer.
//! - [`reader`]: [`SegmentReader`], one record by lsn in two positioned
//!   reads (`Wal::read`, `wal inspect`), falling back to a scan and a
//!   sidecar rebuild when the hint is wrong.
//! - [`fs`]: the file system trait, the real one, `SimFs` (simulated
//!   crashes and I/O errors; feature `sim` or tests), and [`FaultFs`]
//!   (faults switched on from outside in a running process).
//! - [`recovery`]: start-up: check every frame, replay, truncate a torn tail
//!   or refuse damage ([`RecoveryPolicy`]).
//! - [`checkpoint`]: snapshots at an lsn (opaque payloads: write, load the
//!   newest the caller accepts, prune), and retention of segments a
//!   checkpoint covers; [`verify()`] and [`read_records`]:
//!   read-only checks and iteration.
//! - [`config`]: [`WalConfig`] and every limit, in one place.
//!
//! # Folder
//!
//! `DATA_DIR/wal/` holds segments `<first lsn, 20 digits>.wal` (names sort
//! in log order), each with its offset sidecar `<first lsn, 20 digits>.idx`,
//! checkpoints `checkpoint-<lsn, 20 digits>.ckpt`, and `*.tmp` files while a
//! checkpoint or sidecar is written (start-up removes leftovers).
//!
//! # Durability
//!
//! `durable_lsn` only moves after an fdatasync that covers that record and
//! every record before it returned successfully; a new segment is created,
//! its header fsynced and the directory fsynced before anything in it is
//! acknowledged. The segment being written is preallocated (`fallocate`:
//! its length is final, the room past the last frame reads as zeros), so a
//! commit's fdatasync writes data and no file size; only the last segment
//! ever ends in such zeros (a segment is cut to its last frame, durably,
//! before the next is created, and at a clean stop), where a scan calls
//! them unused room, not a torn tail, and recovery cuts them. Should a
//! power loss undo a rotation's cut, the earlier segment's zeros are cut
//! again at start-up: the next segment's first lsn, checked by every
//! reader, shows that they hide no record. A write or fsync error fails the log for good (fsyncgate):
//! no retry, no further acknowledgement, `Health::Failed`; a restart recovers
//! from disk.
//!
//! # Bounds
//!
//! - payload: `max_record_bytes` (≤ [`config::RECORD_BYTES_MAX`]); readers
//!   check every length field against the format limit before using it;
//! - segment: `segment_bytes` (≤ [`config::SEGMENT_BYTES_MAX`]), which is
//!   also the memory recovery and `verify` need (one segment at a time);
//! - history reads: one small struct per segment and at most
//!   [`config::OPEN_SEGMENTS_MAX`] open segments; a read by lsn reads one
//!   sidecar entry pair and one frame (a fallback scan reads one segment);
//! - backlog: `admit` refuses while appended-but-not-durable bytes exceed
//!   `max_pending_bytes`. `append` never blocks or refuses for load, so the
//!   pending buffer holds at most `max_pending_bytes` plus what callers
//!   admitted at the same moment append (one batch each); the writer's two
//!   buffers are shrunk back after a burst.

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod format;
pub mod fs;
pub mod reader;
pub mod recovery;
pub mod segment;
mod shared;
pub mod sidecar;
pub mod stats;
pub mod verify;
pub mod wal;
mod writer;

pub use batch::FrameBatch;
pub use checkpoint::{
    load_accepted_checkpoint, load_latest_checkpoint, load_latest_checkpoint_with_fs, prune_checkpoints,
    read_checkpoint_at, remove_segments_covered, write_checkpoint, write_checkpoint_parts_with_fs,
    write_checkpoint_with_fs,
};
pub use config::{RecoveryPolicy, WalConfig};
pub use error::{AppendError, CheckpointError, Health, LogFailed, OpenError, ReadError};
pub use fs::fault::{FaultFs, Faults};
#[cfg(any(test, feature = "sim"))]
pub use fs::SimFs;
pub use fs::{RealFs, WalFile, WalFs, WalReadFile};
pub use reader::SegmentReader;
pub use recovery::{DroppedBytes, RecoveryReport, TailReport, TruncationReport};
pub use shared::DurableWait;
pub use stats::{StatsSnapshot, WalStats};
pub use verify::{read_records, read_records_with_fs, verify, verify_with_fs, Finding, Severity, VerifyReport};
pub use wal::Wal;

#[cfg(test)]
mod tests;
