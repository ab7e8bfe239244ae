//! Error and status types of the public API.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// The log cannot make the awaited record durable: a write or fsync failed
/// (fatal until restart), or the log was shut down first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("write-ahead log unavailable: {reason}")]
pub struct LogFailed {
    pub reason: Arc<str>,
}

/// Why an append (or an admission check) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// A write or fsync failed; `Wal::health` has the reason.
    #[error("the write-ahead log has failed and accepts nothing until a restart")]
    Failed,
    #[error("free disk space is below the configured floor")]
    DiskLow,
    #[error("the write-ahead log backlog exceeds max_pending_bytes")]
    Overloaded,
    #[error("a record of {payload_bytes} bytes exceeds max_record_bytes ({max_record_bytes})")]
    TooLarge { payload_bytes: usize, max_record_bytes: u32 },
    #[error("the write-ahead log is shut down")]
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// Free space below `min_free_bytes`: writes are turned away, the log
    /// itself is fine.
    DiskLow,
    /// Fatal until restart.
    Failed(String),
}

/// Why `Wal::open` refused to start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("invalid wal config: {0}")]
    Config(String),
    #[error("wal I/O error on {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "wal damaged in {} at byte offset {offset} (lsn {lsn}): {reason}; \
         refusing to start (an operator may pass --truncate-corrupt-log to drop everything from there on)",
        file.display()
    )]
    Corrupt { file: PathBuf, offset: u64, lsn: u64, reason: String },
    #[error("replaying lsn {lsn} failed: {message}")]
    Replay { lsn: u64, message: String },
    #[error("the log starts at lsn {first_lsn_retained} but records from lsn {from_lsn} are needed")]
    MissingRecords { from_lsn: u64, first_lsn_retained: u64 },
    #[error("the log ends before lsn {from_lsn} (next lsn would be {next_lsn}): it is behind the checkpoint")]
    LogBehind { from_lsn: u64, next_lsn: u64 },
    #[error("cannot start the wal writer thread: {0}")]
    Spawn(io::Error),
}

/// Why `read_records` stopped early, or a read by lsn (`Wal::read`,
/// `SegmentReader::read`) found no record.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// `Wal::read` of a record not durable yet (or never assigned).
    #[error("lsn {lsn} is not durable yet (durable lsn {durable_lsn})")]
    NotDurable { lsn: u64, durable_lsn: u64 },
    /// Below the oldest segment kept: removed by retention. (Lsn 0 is never
    /// assigned and is answered this way too.)
    #[error("lsn {lsn} is below the oldest record kept (lsn {first_lsn_retained}): removed by retention")]
    Removed { lsn: u64, first_lsn_retained: u64 },
    /// Past the last record on disk (`SegmentReader`, which has no durable lsn).
    #[error("no record with lsn {lsn}: the log on disk ends at lsn {last_lsn}")]
    PastEnd { lsn: u64, last_lsn: u64 },
    #[error("wal I/O error on {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("wal damaged in {} at byte offset {offset} (lsn {lsn}): {reason}", file.display())]
    Corrupt { file: PathBuf, offset: u64, lsn: u64, reason: String },
}

/// Why checkpoints could not be listed or read (a corrupt checkpoint is not
/// an error: loading falls back to the previous one).
#[derive(Debug, thiserror::Error)]
#[error("checkpoint I/O error on {}: {source}", path.display())]
pub struct CheckpointError {
    pub path: PathBuf,
    pub source: io::Error,
}
