//! `SimFs`: an in-memory file system for fault tests.
//!
//! It keeps, per file, the bytes a successful `sync_data` made durable, and
//! per directory the names a successful `sync_dir` made durable. A simulated
//! crash ([`SimFs::crash`], [`SimFs::crash_torn`]) throws the rest away (or
//! keeps a random prefix of unsynced appends, optionally garbling its last
//! sector, as a real disk may) and returns a handle for the "rebooted"
//! machine; handles and open files from before the crash fail from then on,
//! like a dead process. Faults: failing writes, short writes, failing syncs,
//! low free space, and holding syncs to observe what waits for them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::{WalFile, WalFs, WalReadFile};

/// Sector size for garbling torn writes.
const SECTOR_BYTES: usize = 512;

#[derive(Debug, Clone)]
pub struct SimFs {
    world: Arc<World>,
    generation: u64,
}

#[derive(Debug, Default)]
struct World {
    state: Mutex<SimState>,
    syncs_released: Condvar,
}

#[derive(Debug, Default)]
struct SimState {
    generation: u64,
    dirs: BTreeSet<PathBuf>,
    names: BTreeMap<PathBuf, u64>,
    names_durable: BTreeMap<PathBuf, u64>,
    inodes: HashMap<u64, Inode>,
    inode_next: u64,
    faults: Faults,
    syncs_held: bool,
    sync_count: u64,
    free_bytes: Option<u64>,
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Lowest offset changed since the last sync; everything below it equals
    /// `durable`. Lets a sync copy only the new bytes.
    dirty_from: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    /// Writes that still succeed before every write fails.
    writes_ok_left: Option<u64>,
    /// The failing write first writes half its bytes.
    short_write: bool,
    /// Syncs (file or directory) that still succeed before every sync fails.
    syncs_ok_left: Option<u64>,
}

#[derive(Debug)]
struct SimFile {
    world: Arc<World>,
    generation: u64,
    inode: u64,
    /// Where this handle's next write goes ([`WalFile`]).
    end: usize,
}

fn lock(world: &World) -> MutexGuard<'_, SimState> {
    world.state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn crashed() -> io::Error {
    io::Error::other("simulated machine crashed; this handle belongs to the dead process")
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} error"))
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} not found", path.display()))
}

/// splitmix64: deterministic, dependency-free randomness for crashes.
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..bound (bound > 0).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        self.next_u64() % bound
    }
}

impl Default for SimFs {
    fn default() -> Self {
        Self::new()
    }
}

impl SimFs {
    pub fn new() -> Self {
        Self { world: Arc::new(World::default()), generation: 0 }
    }

    fn state(&self) -> io::Result<MutexGuard<'_, SimState>> {
        let state = lock(&self.world);
        if state.generation != self.generation {
            return Err(crashed());
        }
        Ok(state)
    }

    /// Power loss: keep only synced bytes and synced names. Returns the
    /// handle of the rebooted machine; faults and held syncs are cleared.
    pub fn crash(&self) -> SimFs {
        self.crash_with(None)
    }

    /// Power loss in mid-write: each file keeps its synced bytes plus a
    /// random prefix of what was appended after; half the time the last
    /// sector of that unsynced prefix is garbled.
    pub fn crash_torn(&self, seed: u64) -> SimFs {
        self.crash_with(Some(SplitMix::new(seed)))
    }

    fn crash_with(&self, mut rng: Option<SplitMix>) -> SimFs {
        let mut state = lock(&self.world);
        state.generation += 1;
        state.names = state.names_durable.clone();
        let live: BTreeSet<u64> = state.names.values().copied().collect();
        state.inodes.retain(|id, _| live.contains(id));
        for inode in state.inodes.values_mut() {
            inode.data = surviving_bytes(inode, rng.as_mut());
            inode.durable = inode.data.clone();
            inode.dirty_from = inode.data.len();
        }
        state.faults = Faults::default();
        state.syncs_held = false;
        let generation = state.generation;
        drop(state);
        self.world.syncs_released.notify_all();
        SimFs { world: self.world.clone(), generation }
    }

    /// An independent file system holding what a power loss right now would
    /// leave (synced bytes and names only); this one carries on untouched.
    pub fn durable_snapshot(&self) -> SimFs {
        let state = lock(&self.world);
        let names = state.names_durable.clone();
        let inodes = names
            .values()
            .filter_map(|id| state.inodes.get(id).map(|inode| (*id, inode.durable.clone())))
            .map(|(id, durable)| (id, Inode { data: durable.clone(), dirty_from: durable.len(), durable }))
            .collect();
        let snapshot = SimState {
            dirs: state.dirs.clone(),
            names: names.clone(),
            names_durable: names,
            inodes,
            inode_next: state.inode_next,
            ..SimState::default()
        };
        SimFs { world: Arc::new(World { state: Mutex::new(snapshot), syncs_released: Condvar::new() }), generation: 0 }
    }

    /// After `writes_ok` more successful writes, every write fails; with
    /// `short`, the first failing write writes half its bytes first.
    pub fn fail_writes_after(&self, writes_ok: u64, short: bool) {
        let mut state = lock(&self.world);
        state.faults.writes_ok_left = Some(writes_ok);
        state.faults.short_write = short;
    }

    /// After `syncs_ok` more successful syncs (file or directory), every
    /// sync fails.
    pub fn fail_syncs_after(&self, syncs_ok: u64) {
        lock(&self.world).faults.syncs_ok_left = Some(syncs_ok);
    }

    pub fn clear_faults(&self) {
        lock(&self.world).faults = Faults::default();
    }

    /// While held, every file sync (`sync_data`) blocks until released.
    pub fn hold_syncs(&self, held: bool) {
        lock(&self.world).syncs_held = held;
        self.world.syncs_released.notify_all();
    }

    /// Successful syncs so far (file and directory).
    pub fn sync_count(&self) -> u64 {
        lock(&self.world).sync_count
    }

    /// What `free_bytes` answers (writes then use it up); `None` means plenty.
    pub fn set_free_bytes(&self, free_bytes: Option<u64>) {
        lock(&self.world).free_bytes = free_bytes;
    }

    /// Current (not necessarily durable) content of a file.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let state = lock(&self.world);
        let id = state.names.get(path)?;
        state.inodes.get(id).map(|inode| inode.data.clone())
    }

    /// Replaces a file's content, durably (for corruption tests). The file
    /// must exist.
    pub fn set_file_bytes(&self, path: &Path, bytes: Vec<u8>) {
        let mut state = lock(&self.world);
        let id = *state.names.get(path).unwrap_or_else(|| panic!("{} not in SimFs", path.display()));
        let inode = state.inodes.entry(id).or_default();
        inode.durable = bytes.clone();
        inode.dirty_from = bytes.len();
        inode.data = bytes;
    }

    /// Paths of every current file, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        lock(&self.world).names.keys().cloned().collect()
    }
}

/// What of `inode` survives a power loss. With `rng`, writes since the
/// last sync land in order: a random prefix of the changed bytes (appended,
/// or written over preallocated zeros) survives over the durable ones, its
/// last sector garbled half the time. A file cut below its durable length
/// since the last sync keeps only the durable bytes.
fn surviving_bytes(inode: &Inode, rng: Option<&mut SplitMix>) -> Vec<u8> {
    let start = inode.dirty_from;
    let in_order = inode.data.len() >= inode.durable.len() && inode.data.len() > start;
    let Some(rng) = rng.filter(|_| in_order) else {
        return inode.durable.clone();
    };
    assert!(start <= inode.durable.len() && inode.data[..start] == inode.durable[..start]);
    let kept_end = start + rng.below((inode.data.len() - start) as u64 + 1) as usize;
    let mut bytes = inode.durable.clone();
    if bytes.len() < kept_end {
        bytes.resize(kept_end, 0);
    }
    bytes[start..kept_end].copy_from_slice(&inode.data[start..kept_end]);
    if kept_end > start && rng.below(2) == 0 {
        let sector_start = ((kept_end - 1) / SECTOR_BYTES * SECTOR_BYTES).max(start);
        for byte in &mut bytes[sector_start..kept_end] {
            *byte = rng.next_u64() as u8;
        }
    }
    bytes
}

impl SimState {
    fn take_write_permit(&mut self) -> Result<(), bool> {
        match self.faults.writes_ok_left {
            Some(0) => Err(std::mem::take(&mut self.faults.short_write)),
            Some(ref mut left) => {
                *left -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn take_sync_permit(&mut self) -> io::Result<()> {
        match self.faults.syncs_ok_left {
            Some(0) => Err(injected("fsync")),
            Some(ref mut left) => {
                *left -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn inode_mut(&mut self, id: u64) -> &mut Inode {
        self.inodes.entry(id).or_default()
    }

    fn require_dir(&self, path: &Path) -> io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new(""));
        if self.dirs.contains(dir) {
            Ok(())
        } else {
            Err(not_found(dir))
        }
    }

    fn inode_of(&self, path: &Path) -> io::Result<u64> {
        self.names.get(path).copied().ok_or_else(|| not_found(path))
    }
}

impl SimFile {
    fn state(&self) -> io::Result<MutexGuard<'_, SimState>> {
        let state = lock(&self.world);
        if state.generation != self.generation {
            return Err(crashed());
        }
        Ok(state)
    }
}

impl WalReadFile for SimFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut state = self.state()?;
        let data = &state.inode_mut(self.inode).data;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
        let read = buf.len().min(data.len() - start);
        buf[..read].copy_from_slice(&data[start..start + read]);
        Ok(read)
    }

    fn len_bytes(&self) -> io::Result<u64> {
        let mut state = self.state()?;
        Ok(state.inode_mut(self.inode).data.len() as u64)
    }
}

impl WalFile for SimFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.state()?;
        let permit = state.take_write_permit();
        let written = match permit {
            Ok(()) => bytes,
            Err(true) => &bytes[..bytes.len() / 2],
            Err(false) => &[],
        };
        if let Some(free_bytes) = state.free_bytes.as_mut() {
            *free_bytes = free_bytes.saturating_sub(written.len() as u64);
        }
        let start = self.end;
        let inode = state.inode_mut(self.inode);
        if inode.data.len() < start {
            inode.data.resize(start, 0);
        }
        inode.dirty_from = inode.dirty_from.min(start);
        let overwritten = written.len().min(inode.data.len() - start);
        inode.data[start..start + overwritten].copy_from_slice(&written[..overwritten]);
        inode.data.extend_from_slice(&written[overwritten..]);
        drop(state);
        self.end = start + written.len();
        permit.map_err(|_| injected("write"))
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut state = self.state()?;
        while state.syncs_held {
            state = self.world.syncs_released.wait(state).unwrap_or_else(PoisonError::into_inner);
            if state.generation != self.generation {
                return Err(crashed());
            }
        }
        state.take_sync_permit()?;
        state.sync_count += 1;
        let inode = state.inode_mut(self.inode);
        let dirty_from = inode.dirty_from.min(inode.durable.len());
        inode.durable.truncate(dirty_from);
        inode.durable.extend_from_slice(&inode.data[dirty_from..]);
        inode.dirty_from = inode.data.len();
        Ok(())
    }

    fn len_bytes(&self) -> io::Result<u64> {
        drop(self.state()?);
        Ok(self.end as u64)
    }

    fn truncate(&mut self, len_bytes: u64) -> io::Result<()> {
        let mut state = self.state()?;
        let inode = state.inode_mut(self.inode);
        let len_bytes = usize::try_from(len_bytes).map_err(|_| injected("truncate"))?;
        inode.data.resize(len_bytes, 0);
        inode.dirty_from = inode.dirty_from.min(len_bytes);
        drop(state);
        self.end = len_bytes;
        Ok(())
    }

    /// Like `fallocate`: zeros to `len_bytes`, space taken from
    /// [`SimFs::set_free_bytes`]; without the space, `Ok(false)`.
    fn preallocate(&mut self, len_bytes: u64) -> io::Result<bool> {
        let mut state = self.state()?;
        let len_bytes = usize::try_from(len_bytes).map_err(|_| injected("preallocate"))?;
        let added = len_bytes.saturating_sub(state.inode_mut(self.inode).data.len());
        if let Some(free_bytes) = state.free_bytes.as_mut() {
            if (*free_bytes as usize) < added {
                return Ok(false);
            }
            *free_bytes -= added as u64;
        }
        let inode = state.inode_mut(self.inode);
        if added > 0 {
            inode.dirty_from = inode.dirty_from.min(inode.data.len());
            inode.data.resize(len_bytes, 0);
        }
        Ok(true)
    }
}

impl WalFs for SimFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state()?;
        for ancestor in dir.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let mut state = self.state()?;
        state.require_dir(path)?;
        if state.names.contains_key(path) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", path.display())));
        }
        state.inode_next += 1;
        let inode = state.inode_next;
        state.inodes.insert(inode, Inode::default());
        state.names.insert(path.to_path_buf(), inode);
        Ok(Box::new(SimFile { world: self.world.clone(), generation: self.generation, inode, end: 0 }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let mut state = self.state()?;
        let inode = state.inode_of(path)?;
        let end = state.inode_mut(inode).data.len();
        Ok(Box::new(SimFile { world: self.world.clone(), generation: self.generation, inode, end }))
    }

    fn read(&self, path: &Path, bytes_max: u64) -> io::Result<Vec<u8>> {
        let mut state = self.state()?;
        let inode = state.inode_of(path)?;
        let data = &state.inode_mut(inode).data;
        if data.len() as u64 > bytes_max {
            return Err(super::too_large(path, bytes_max));
        }
        Ok(data.clone())
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn WalReadFile>> {
        let state = self.state()?;
        let inode = state.inode_of(path)?;
        Ok(Box::new(SimFile { world: self.world.clone(), generation: self.generation, inode, end: 0 }))
    }

    fn len_bytes(&self, path: &Path) -> io::Result<u64> {
        let mut state = self.state()?;
        let inode = state.inode_of(path)?;
        Ok(state.inode_mut(inode).data.len() as u64)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state()?;
        state.require_dir(to)?;
        let inode = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_path_buf(), inode);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state()?;
        state.names.remove(path).map(|_| ()).ok_or_else(|| not_found(path))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.state()?;
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let in_dir = state.names.keys().filter(|path| path.parent() == Some(dir));
        Ok(in_dir.filter_map(|path| path.file_name()).map(|name| name.to_string_lossy().into_owned()).collect())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state()?;
        state.take_sync_permit()?;
        state.sync_count += 1;
        state.names_durable.retain(|path, _| path.parent() != Some(dir));
        let current: Vec<(PathBuf, u64)> =
            state.names.iter().filter(|(path, _)| path.parent() == Some(dir)).map(|(p, i)| (p.clone(), *i)).collect();
        state.names_durable.extend(current);
        Ok(())
    }

    fn free_bytes(&self, _dir: &Path) -> io::Result<u64> {
        Ok(self.state()?.free_bytes.unwrap_or(u64::MAX))
    }
}
