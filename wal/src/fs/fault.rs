//! `FaultFs`: another file system (the real one, in the server's test hook)
//! with faults switched on from outside while it runs.
//!
//! `SimFs` is for tests that own the whole file system in memory; this is
//! for making a running server's log fail on a real disk: after a switch
//! turns on, every `sync_data` fails, or the next write stops halfway
//! (a short write) and fails, or free space reads as some chosen value.
//! Each switch is a closure the owner decides (an environment variable
//! naming a trigger file, in fundledger's debug builds).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::{WalFile, WalFs, WalReadFile};

/// A switch: true when the fault is on.
pub type FaultSwitch = Arc<dyn Fn() -> bool + Send + Sync>;
/// Free bytes to report instead of the real ones, when `Some`.
pub type FreeBytesOverride = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

#[derive(Clone, Default)]
pub struct Faults {
    /// Every file `sync_data` fails with EIO while on.
    pub fsync_fails: Option<FaultSwitch>,
    /// While on, a write writes the first half of its bytes and fails.
    pub write_fails: Option<FaultSwitch>,
    pub free_bytes: Option<FreeBytesOverride>,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faults")
            .field("fsync_fails", &self.fsync_fails.is_some())
            .field("write_fails", &self.write_fails.is_some())
            .field("free_bytes", &self.free_bytes.is_some())
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct FaultFs {
    inner: Arc<dyn WalFs>,
    faults: Faults,
}

impl FaultFs {
    pub fn new(inner: Arc<dyn WalFs>, faults: Faults) -> Self {
        Self { inner, faults }
    }
}

fn is_on(switch: &Option<FaultSwitch>) -> bool {
    switch.as_ref().is_some_and(|on| on())
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected fault: {what} failed (EIO)"))
}

#[derive(Debug)]
struct FaultFile {
    inner: Box<dyn WalFile>,
    faults: Faults,
}

impl WalFile for FaultFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if is_on(&self.faults.write_fails) {
            self.inner.write_all(&bytes[..bytes.len() / 2])?;
            return Err(injected("write"));
        }
        self.inner.write_all(bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        if is_on(&self.faults.fsync_fails) {
            return Err(injected("fsync"));
        }
        self.inner.sync_data()
    }

    fn len_bytes(&self) -> io::Result<u64> {
        self.inner.len_bytes()
    }

    fn truncate(&mut self, len_bytes: u64) -> io::Result<()> {
        self.inner.truncate(len_bytes)
    }

    fn preallocate(&mut self, len_bytes: u64) -> io::Result<bool> {
        self.inner.preallocate(len_bytes)
    }
}

impl WalFs for FaultFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        Ok(Box::new(FaultFile { inner: self.inner.create(path)?, faults: self.faults.clone() }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        Ok(Box::new(FaultFile { inner: self.inner.open(path)?, faults: self.faults.clone() }))
    }

    fn read(&self, path: &Path, bytes_max: u64) -> io::Result<Vec<u8>> {
        self.inner.read(path, bytes_max)
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn WalReadFile>> {
        self.inner.open_read(path)
    }

    fn len_bytes(&self, path: &Path) -> io::Result<u64> {
        self.inner.len_bytes(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if is_on(&self.faults.fsync_fails) {
            return Err(injected("directory fsync"));
        }
        self.inner.sync_dir(dir)
    }

    fn free_bytes(&self, dir: &Path) -> io::Result<u64> {
        if let Some(free_bytes) = self.faults.free_bytes.as_ref().and_then(|free_bytes| free_bytes()) {
            return Ok(free_bytes);
        }
        self.inner.free_bytes(dir)
    }
}
