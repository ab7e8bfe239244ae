//! Checkpoints: opaque snapshots of the whole state at an lsn (layout in
//! [`crate::format`]). Written to a temporary file, fsynced, renamed,
//! directory fsynced, so a crash leaves either the old set or the new one.

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
    let path = dir.join(checkpoint_file_name(lsn));
    let temporary = dir.join(format!("{}.tmp", checkpoint_file_name(lsn)));
    match fs.remove(&temporary) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut file = fs.create(&temporary)?;
    file.write_all(&format::encode_checkpoint(lsn, bytes))?;
    file.sync_data()?;
    drop(file);
    fs.rename(&temporary, &path)?;
    fs.sync_dir(dir)?;
    tracing::info!(path = %path.display(), lsn, payload_bytes = bytes.len(), "checkpoint written");
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
    let mut bytes = match fs.read(path, file_bytes_max) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::FileTooLarge => {
            return Err(Skip::Invalid(format!("larger than the {max_bytes}-byte checkpoint limit")));
        }
        Err(error) => return Err(Skip::Io(error)),
    };
    let found_lsn = match format::decode_checkpoint(&bytes) {
        Ok((found_lsn, _payload)) => found_lsn,
        Err(fault) => return Err(Skip::Invalid(fault.to_string())),
    };
    if found_lsn != lsn {
        return Err(Skip::Invalid(format!("says lsn {found_lsn}, its file name says {lsn}")));
    }
    bytes.drain(..CHECKPOINT_HEADER_BYTES);
    Ok(bytes)
}
