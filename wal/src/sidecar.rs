//! The offset sidecar of a segment (`<first lsn, 20 digits>.idx`, layout in
//! [`crate::format`]): entry `i` is the byte offset of the frame of lsn
//! `first_lsn + i` in its segment, so a reader finds one record with two
//! small positioned reads instead of scanning the segment.
//!
//! This module owns the sidecar's encoding and every write to it: the
//! writer thread appends the offsets of the frames it wrote, recovery
//! rewrites the tail segment's sidecar from its scan, and readers rebuild a
//! sealed segment's sidecar that does not match. It never touches segment
//! bytes.
//!
//! A sidecar is a hint. It is never fsynced (a power loss may leave it
//! short, long, or holding garbage), no write to it can fail the log, and
//! every offset read from it is checked against the frame it points at
//! (CRC, lsn) before anything is answered.

use std::io;
use std::path::{Path, PathBuf};

use crate::format;
use crate::fs::{WalFile, WalFs};
use crate::segment::sidecar_file_name;

/// Bytes of one entry: a little-endian u32 byte offset. Enough because no
/// segment may pass 4 GiB (checked below).
pub const SIDECAR_ENTRY_BYTES: usize = 4;

const _: () = assert!(crate::config::SEGMENT_BYTES_MAX <= u32::MAX as u64, "sidecar offsets are u32");

/// Appends the entries of `offsets` (frame offsets in a segment) to `out`.
pub(crate) fn encode_entries(offsets: impl IntoIterator<Item = u64>, out: &mut Vec<u8>) {
    for offset in offsets {
        // Offsets come from segments read or written within SEGMENT_BYTES_MAX;
        // u32::MAX could only be a wrong hint, which every read rejects.
        let offset = u32::try_from(offset).unwrap_or(u32::MAX);
        out.extend_from_slice(&offset.to_le_bytes());
    }
}

/// Entry `index` of sidecar bytes, if the bytes hold it.
pub(crate) fn entry(bytes: &[u8], index: usize) -> Option<u64> {
    let at = index.checked_mul(SIDECAR_ENTRY_BYTES)?;
    let field = bytes.get(at..at + SIDECAR_ENTRY_BYTES)?;
    Some(u64::from(format::u32_at(field, 0)))
}

pub(crate) fn sidecar_path(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(sidecar_file_name(first_lsn))
}

/// Removes a sidecar; an absent one is fine.
pub(crate) fn remove_sidecar(fs: &dyn WalFs, dir: &Path, first_lsn: u64) -> io::Result<()> {
    match fs.remove(&sidecar_path(dir, first_lsn)) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Replaces the sidecar of segment `first_lsn` with `entries`: written to a
/// temporary file, then renamed over the old one, so a concurrent reader
/// sees one or the other whole. Returns the file, open for appending.
pub(crate) fn replace_sidecar(
    fs: &dyn WalFs,
    dir: &Path,
    first_lsn: u64,
    entries: &[u8],
) -> io::Result<Box<dyn WalFile>> {
    let path = sidecar_path(dir, first_lsn);
    let temporary = dir.join(format!("{}.tmp", sidecar_file_name(first_lsn)));
    match fs.remove(&temporary) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut file = fs.create(&temporary)?;
    file.write_all(entries)?;
    fs.rename(&temporary, &path)?;
    Ok(file)
}

/// The writer's handle on the tail segment's sidecar.
#[derive(Debug)]
pub(crate) struct SidecarAppender {
    file: Box<dyn WalFile>,
    /// Reused for every group's entries.
    entries: Vec<u8>,
}

impl SidecarAppender {
    /// Replaces the sidecar of `first_lsn` with `entries`; `None` (logged)
    /// when that fails, which only costs the hint.
    pub(crate) fn replace(fs: &dyn WalFs, dir: &Path, first_lsn: u64, entries: &[u8]) -> Option<SidecarAppender> {
        match replace_sidecar(fs, dir, first_lsn, entries) {
            Ok(file) => Some(SidecarAppender { file, entries: Vec::new() }),
            Err(error) => {
                let path = sidecar_path(dir, first_lsn);
                tracing::warn!(path = %path.display(), %error, "cannot write a wal offset sidecar; reads of that segment will scan it");
                None
            }
        }
    }

    /// Appends the offsets of the whole frames in `frames` (our own bytes,
    /// just written at `start_offset` of the segment).
    pub(crate) fn append(&mut self, start_offset: u64, frames: &[u8]) -> io::Result<()> {
        self.entries.clear();
        let mut offset = 0;
        while offset < frames.len() {
            encode_entries([start_offset + offset as u64], &mut self.entries);
            offset += format::frame_bytes_in_memory(&frames[offset..]);
        }
        self.file.write_all(&self.entries)
    }
}
