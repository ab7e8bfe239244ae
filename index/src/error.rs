//! The crate's one error type.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index I/O error on {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// Bytes on disk are not a valid run: bad magic, version, bound, offset,
    /// CRC, or order. `offset` is where the bad part starts.
    #[error("run {} is corrupt at byte offset {offset}: {reason}", path.display())]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    /// A caller broke the contract: wrong key or value length, bad spec,
    /// runs of different shapes merged together.
    #[error("invalid index request: {0}")]
    Invalid(String),
    /// The writer was fed a key lower than the one before it.
    #[error("keys out of order: {key} after {previous}")]
    Unsorted { previous: String, key: String },
    /// The writer was fed the same key twice (also: the same key in two runs
    /// being merged, or in two runs of a set).
    #[error("duplicate key {key}")]
    Duplicate { key: String },
}

impl IndexError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        IndexError::Io { path: path.into(), source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        IndexError::Corrupt { path: path.into(), offset, reason: reason.into() }
    }
}

/// Keys in error messages, as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
