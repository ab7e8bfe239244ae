//! Checkpoints: opaque snapshots of the whole state at an lsn (layout in
//! [`crate::format`]). Written to a temporary file, fsynced, renamed,
//! directory fsynced, so a crash leaves either the old set or the new one.
//!
//! Also what may be deleted once checkpoints exist: older checkpoints
//! ([`prune_checkpoints`], the caller names the ones to keep) and segments
//! every kept checkpoint covers ([`remove_segments_covered`], retention).
//! The caller decides when; this module only makes each step durable.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::CheckpointError;
use crate::format::{self, CHECKPOINT_HEADER_BYTES};
use crate::fs::{RealFs, WalFs};
use crate::segment::{checkpoint_file_name, classify, DirEntry};

pub fn write_checkpoint(dir: &Path, lsn: u64, bytes: &[u8]) -> io::Result<()> {
    write_checkpoint_with_fs(&RealFs, dir, lsn, bytes)
}

pub fn write_checkpoint_with_fs(fs: &dyn WalFs, dir: &Path, lsn: u64, bytes: &[u8]) -> io::Result<()> {
    write_checkpoint_parts_with_fs(fs, dir, lsn, &[bytes])
}

/// [`write_checkpoint_with_fs`] of the payload that is `parts` one after
/// another, each written as it is (one write per part after the header).
pub fn write_checkpoint_parts_with_fs(fs: &dyn WalFs, dir: &Path, lsn: u64, parts: &[&[u8]]) -> io::Result<()> {
    let path = dir.join(checkpoint_file_name(lsn));
    let temporary = dir.join(format!("{}.tmp", checkpoint_file_name(lsn)));
    match fs.remove(&temporary) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut file = fs.create(&temporary)?;
    file.write_all(&format::checkpoint_header_of_parts(lsn, parts))?;
    for part in parts.iter().filter(|part| !part.is_empty()) {
        file.write_all(part)?;
    }
    file.sync_data()?;
    drop(file);
    fs.rename(&temporary, &path)?;
    fs.sync_dir(dir)?;
    let payload_bytes: usize = parts.iter().map(|part| part.len()).sum();
    tracing::info!(path = %path.display(), lsn, payload_bytes, "checkpoint written");
    Ok(())
}

/// Checkpoints in `dir`, newest first.
pub fn list_checkpoints(fs: &dyn WalFs, dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut checkpoints: Vec<(u64, PathBuf)> = fs
        .list(dir)?
        .into_iter()
        .filter_map(|name| match classify(&name) {
            DirEntry::Checkpoint(lsn) => Some((lsn, dir.join(name))),
            _ => None,
        })
        .collect();
    checkpoints.sort_by_key(|checkpoint| std::cmp::Reverse(checkpoint.0));
    Ok(checkpoints)
}

/// The newest valid checkpoint whose payload is at most `max_bytes`. A
/// corrupt (or oversized) newer one is logged and skipped, falling back to
/// the one before. `Ok(None)` when there is none (or the folder is absent).
pub fn load_latest_checkpoint(dir: &Path, max_bytes: u64) -> Result<Option<(u64, Vec<u8>)>, CheckpointError> {
    load_latest_checkpoint_with_fs(&RealFs, dir, max_bytes)
}

pub fn load_latest_checkpoint_with_fs(
    fs: &dyn WalFs,
    dir: &Path,
    max_bytes: u64,
) -> Result<Option<(u64, Vec<u8>)>, CheckpointError> {
    let checkpoints = match list_checkpoints(fs, dir) {
        Ok(checkpoints) => checkpoints,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CheckpointError { path: dir.to_path_buf(), source }),
    };
    for (lsn, path) in checkpoints {
        match read_checkpoint(fs, &path, lsn, max_bytes) {
            Ok(payload) => return Ok(Some((lsn, payload))),
            Err(Skip::Invalid(reason)) => {
                tracing::error!(path = %path.display(), %reason, "checkpoint unusable, falling back to the previous one");
            }
            Err(Skip::Io(source)) => return Err(CheckpointError { path, source }),
        }
    }
    Ok(None)
}

enum Skip {
    Invalid(String),
    Io(io::Error),
}

/// Reads and checks one checkpoint; returns its payload.
pub(crate) fn read_checkpoint_bytes(fs: &dyn WalFs, path: &Path, lsn: u64, max_bytes: u64) -> Result<Vec<u8>, String> {
    read_checkpoint(fs, path, lsn, max_bytes).map_err(|skip| match skip {
        Skip::Invalid(reason) => reason,
        Skip::Io(error) => error.to_string(),
    })
}

fn read_checkpoint(fs: &dyn WalFs, path: &Path, lsn: u64, max_bytes: u64) -> Result<Vec<u8>, Skip> {
    let file_bytes_max = max_bytes.saturating_add(CHECKPOINT_HEADER_BYTES as u64);
    let file = fs.open_read(path).map_err(Skip::Io)?;
    let file_bytes = file.len_bytes().map_err(Skip::Io)?;
    if file_bytes > file_bytes_max {
        return Err(Skip::Invalid(format!("larger than the {max_bytes}-byte checkpoint limit")));
    }
    // The header and the payload into buffers of their own: the payload
    // is never moved to drop the header.
    let mut header = [0u8; CHECKPOINT_HEADER_BYTES];
    let header_read = file.read_at(0, &mut header).map_err(Skip::Io)?;
    let payload_bytes = usize::try_from(file_bytes.saturating_sub(CHECKPOINT_HEADER_BYTES as u64))
        .map_err(|_| Skip::Invalid("larger than this machine can address".into()))?;
    let mut payload = vec![0u8; payload_bytes];
    let payload_read = file.read_at(CHECKPOINT_HEADER_BYTES as u64, &mut payload).map_err(Skip::Io)?;
    // A file that shrank since its length was read fails the checks below.
    payload.truncate(payload_read);
    let found_lsn = match format::check_checkpoint(&header[..header_read], &payload) {
        Ok(found_lsn) => found_lsn,
        Err(fault) => return Err(Skip::Invalid(fault.to_string())),
    };
    if found_lsn != lsn {
        return Err(Skip::Invalid(format!("says lsn {found_lsn}, its file name says {lsn}")));
    }
    Ok(payload)
}

/// Like [`load_latest_checkpoint_with_fs`], but the caller also judges each
/// payload (`accept` decodes it): newest first, the first one that passes
/// both the frame check and `accept` wins; every one refused is logged and
/// the next older one is tried. `Ok(None)` when none passes.
pub fn load_accepted_checkpoint<T>(
    fs: &dyn WalFs,
    dir: &Path,
    max_bytes: u64,
    mut accept: impl FnMut(u64, Vec<u8>) -> Result<T, String>,
) -> Result<Option<(u64, T)>, CheckpointError> {
    let checkpoints = match list_checkpoints(fs, dir) {
        Ok(checkpoints) => checkpoints,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CheckpointError { path: dir.to_path_buf(), source }),
    };
    for (lsn, path) in checkpoints {
        let reason = match read_checkpoint(fs, &path, lsn, max_bytes) {
            Ok(payload) => match accept(lsn, payload) {
                Ok(state) => return Ok(Some((lsn, state))),
                Err(reason) => reason,
            },
            Err(Skip::Invalid(reason)) => reason,
            Err(Skip::Io(source)) => return Err(CheckpointError { path, source }),
        };
        tracing::error!(path = %path.display(), %reason, "checkpoint unusable, falling back to the previous one");
    }
    Ok(None)
}

/// Reads and checks the checkpoint at `lsn` (frame, CRC, lsn); its payload.
pub fn read_checkpoint_at(fs: &dyn WalFs, dir: &Path, lsn: u64, max_bytes: u64) -> Result<Vec<u8>, String> {
    read_checkpoint_bytes(fs, &dir.join(checkpoint_file_name(lsn)), lsn, max_bytes)
}

/// Removes every checkpoint whose lsn is not in `keep`, then fsyncs the
/// directory. The caller keeps the newest and the one it was built from,
/// so a corrupt newest always has a valid fallback whose segments are kept.
pub fn prune_checkpoints(fs: &dyn WalFs, dir: &Path, keep: &[u64]) -> io::Result<usize> {
    let mut removed = 0;
    for (lsn, path) in list_checkpoints(fs, dir)? {
        if !keep.contains(&lsn) {
            fs.remove(&path)?;
            tracing::info!(path = %path.display(), "old checkpoint removed");
            removed += 1;
        }
    }
    if removed > 0 {
        fs.sync_dir(dir)?;
    }
    Ok(removed)
}

/// Retention (`wal.retention_days`): removes whole segments, oldest first,
/// whose every record has an lsn at or below `covered_lsn` (the lsn of the
/// oldest checkpoint the caller keeps, so no fallback ever needs them) and
/// that `is_expired` says are old enough. Stops at the first segment that
/// does not qualify, so the log left is contiguous; never removes the last
/// segment (the writer's). Each segment's offset sidecar goes with it.
/// Returns the removed segments' paths. A running `Wal` should be told
/// (`Wal::remove_segments_covered` does both).
pub fn remove_segments_covered(
    fs: &dyn WalFs,
    dir: &Path,
    covered_lsn: u64,
    is_expired: impl Fn(&Path) -> bool,
) -> io::Result<Vec<PathBuf>> {
    let segments = crate::segment::list_segments(fs, dir)?;
    let mut removed = Vec::new();
    for pair in segments.windows(2) {
        let (segment, next) = (&pair[0], &pair[1]);
        // The segment holds lsns first_lsn ..= next.first_lsn - 1.
        if next.first_lsn.saturating_sub(1) > covered_lsn || !is_expired(&segment.path) {
            break;
        }
        crate::segment::remove_segment(fs, dir, segment.first_lsn)?;
        tracing::info!(path = %segment.path.display(), covered_lsn, "segment removed by retention");
        removed.push(segment.path.clone());
    }
    if !removed.is_empty() {
        fs.sync_dir(dir)?;
    }
    Ok(removed)
}
