//! [`RunWriter`]: streams sorted entries into a new run file (format in
//! [`crate::format`]). Owns the `.tmp` file until `finish` renames it; it
//! never touches any other file, and a writer dropped unfinished removes its
//! `.tmp`.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::bloom::{Bloom, BloomBuilder};
use crate::error::{hex, IndexError};
use crate::format::{compare_keys, Footer, HeaderFields};
use crate::limits::{
    BLOCK_BYTES_MAX, BLOCK_BYTES_TARGET, BLOOM_BITS_PER_PREFIX, BLOOM_BITS_PER_PREFIX_MAX, BLOOM_HASHES,
    BLOOM_WHOLE_BYTES_MAX, ENTRIES_MAX, WRITEBACK_BYTES,
};
use crate::run::Run;

/// The shape of a run's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSpec {
    /// K: every key has exactly this many bytes.
    pub key_bytes: usize,
    /// V: every value has exactly this many bytes.
    pub value_bytes: usize,
    /// P ≤ K: the Bloom filter covers the first P bytes of each key (0: no
    /// filter). `get_prefix` with at least P bytes consults it.
    pub prefix_bytes: usize,
    /// Entries per block; [`RunSpec::new`] picks about [`BLOCK_BYTES_TARGET`]
    /// bytes' worth. Smaller blocks (tests) are fine within the bounds.
    pub entries_per_block: usize,
    /// Bloom bits per prefix for a run whose filter stays whole in memory
    /// ([`RunSpec::with_small_run_bits`]); not part of the format (a
    /// reader needs only the filter's lines and probes).
    pub small_run_bits: u64,
}

impl RunSpec {
    pub fn new(key_bytes: usize, value_bytes: usize, prefix_bytes: usize) -> Self {
        let entries_per_block = (BLOCK_BYTES_TARGET / (key_bytes + value_bytes).max(1)).max(1);
        RunSpec { key_bytes, value_bytes, prefix_bytes, entries_per_block, small_run_bits: BLOOM_BITS_PER_PREFIX }
    }

    /// The same shape, whose runs give their filter `bits` bits per prefix
    /// (at most [`BLOOM_BITS_PER_PREFIX_MAX`]) as long as it stays whole in
    /// memory ([`BLOOM_WHOLE_BYTES_MAX`]), and [`BLOOM_BITS_PER_PREFIX`]
    /// beyond. For a set looked up mostly for absent prefixes (new client
    /// ids): each false positive reads a block from disk, and the small
    /// runs, most of a size-tiered set's runs, are where more bits cost
    /// least memory (Monkey, Dayan et al., SIGMOD 2017).
    pub fn with_small_run_bits(self, bits: u64) -> Self {
        RunSpec { small_run_bits: bits.clamp(BLOOM_BITS_PER_PREFIX, BLOOM_BITS_PER_PREFIX_MAX), ..self }
    }

    /// Bloom bits per prefix for a run of `prefixes` distinct prefixes.
    pub fn bits_per_prefix(&self, prefixes: u64) -> u64 {
        if prefixes.saturating_mul(self.small_run_bits) <= BLOOM_WHOLE_BYTES_MAX * 8 {
            self.small_run_bits
        } else {
            BLOOM_BITS_PER_PREFIX
        }
    }

    /// The same shape with blocks of about `bytes` (at most
    /// [`BLOCK_BYTES_MAX`]): fewer blocks keep a smaller sparse index in
    /// memory, and each block read is larger.
    pub fn with_block_bytes(self, bytes: usize) -> Self {
        let entries_per_block = (bytes.min(BLOCK_BYTES_MAX) / (self.key_bytes + self.value_bytes).max(1)).max(1);
        RunSpec { entries_per_block, ..self }
    }

    pub(crate) fn check(&self) -> Result<(), IndexError> {
        self.fields(0, 0, 0).check_bounds().map_err(IndexError::Invalid)
    }

    /// Same entries and filter shape (block size may differ).
    pub(crate) fn same_shape(&self, other: &RunSpec) -> bool {
        (self.key_bytes, self.value_bytes, self.prefix_bytes)
            == (other.key_bytes, other.value_bytes, other.prefix_bytes)
    }

    fn fields(&self, entry_count: u64, prefix_count: u64, watermark: u64) -> HeaderFields {
        HeaderFields {
            key_bytes: self.key_bytes,
            value_bytes: self.value_bytes,
            prefix_bytes: self.prefix_bytes,
            entries_per_block: self.entries_per_block,
            bloom_hashes: BLOOM_HASHES,
            entry_count,
            prefix_count,
            watermark,
        }
    }
}

/// Sorts fixed-size keys into the byte order a [`RunWriter`] wants,
/// comparing them as big-endian integers 8 bytes at a time instead of
/// calling `memcmp` per comparison (a flush sorts a quarter of a million
/// keys in one stretch of a core that requests may wait behind).
pub fn sort_keys<const N: usize>(keys: &mut [[u8; N]]) {
    keys.sort_unstable_by(|a, b| compare_keys(a, b));
}

pub struct RunWriter {
    path: PathBuf,
    temporary: PathBuf,
    /// `None` once `finish` has taken it, or after an I/O error.
    file: Option<BufWriter<File>>,
    spec: RunSpec,
    watermark: u64,
    block: Vec<u8>,
    block_entries: usize,
    /// First key and CRC of every block written so far.
    index: Vec<u8>,
    bloom: BloomBuilder,
    entry_count: u64,
    prefix_count: u64,
    min_key: Vec<u8>,
    previous_key: Vec<u8>,
    /// Set once the `.tmp` file has its final name.
    renamed: bool,
    /// Bytes handed to the file so far, and how many of them were handed
    /// on to the disk (see [`WRITEBACK_BYTES`]).
    written: u64,
    written_back: u64,
}

impl RunWriter {
    /// Starts `<path>.tmp` (replacing a leftover one). `prefixes_expected`
    /// sizes the Bloom filter: the number of distinct P-byte prefixes the
    /// caller will push (the entry count is always a safe answer); more only
    /// raises the false-positive rate. `finish` folds a filter sized for
    /// many more prefixes than were pushed down to fit (`Bloom::fold_to_fit`).
    pub fn create(path: &Path, spec: RunSpec, watermark: u64, prefixes_expected: u64) -> Result<Self, IndexError> {
        spec.check()?;
        let temporary = temporary_path(path);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)
            .map_err(|error| IndexError::io(&temporary, error))?;
        let mut file = BufWriter::with_capacity(1 << 20, file);
        // Room for the header, written in place by `finish` once min and max are known.
        let header_bytes = spec.fields(0, 0, 0).header_bytes();
        let placeholder = vec![0u8; header_bytes];
        file.write_all(&placeholder).map_err(|error| IndexError::io(&temporary, error))?;
        let bloom = BloomBuilder::new(if spec.prefix_bytes == 0 {
            Bloom::empty()
        } else {
            Bloom::sized_for(prefixes_expected, spec.bits_per_prefix(prefixes_expected))
        });
        Ok(RunWriter {
            path: path.to_path_buf(),
            temporary,
            file: Some(file),
            spec,
            watermark,
            block: Vec::with_capacity(spec.entries_per_block * (spec.key_bytes + spec.value_bytes)),
            block_entries: 0,
            index: Vec::new(),
            bloom,
            entry_count: 0,
            prefix_count: 0,
            min_key: vec![0; spec.key_bytes],
            previous_key: vec![0; spec.key_bytes],
            renamed: false,
            written: header_bytes as u64,
            written_back: 0,
        })
    }

    /// Appends one entry; keys must be strictly increasing.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Result<(), IndexError> {
        if key.len() != self.spec.key_bytes || value.len() != self.spec.value_bytes {
            return Err(IndexError::Invalid(format!(
                "entry of {} + {} bytes in a run of {} + {}",
                key.len(),
                value.len(),
                self.spec.key_bytes,
                self.spec.value_bytes
            )));
        }
        if self.file.is_none() {
            return Err(unusable());
        }
        if self.entry_count >= ENTRIES_MAX {
            return Err(IndexError::Invalid(format!("a run holds at most {ENTRIES_MAX} entries")));
        }
        let prefix_bytes = self.spec.prefix_bytes;
        if self.entry_count == 0 {
            self.min_key.copy_from_slice(key);
        } else {
            match compare_keys(key, &self.previous_key) {
                std::cmp::Ordering::Less => {
                    return Err(IndexError::Unsorted { previous: hex(&self.previous_key), key: hex(key) })
                }
                std::cmp::Ordering::Equal => return Err(IndexError::Duplicate { key: hex(key) }),
                std::cmp::Ordering::Greater => {}
            }
        }
        // Keys arrive sorted, so equal prefixes are adjacent: one insert per distinct prefix.
        if prefix_bytes > 0
            && (self.entry_count == 0 || compare_keys(&key[..prefix_bytes], &self.previous_key[..prefix_bytes]).is_ne())
        {
            self.bloom.insert(&key[..prefix_bytes]);
            self.prefix_count += 1;
        }
        if self.block_entries == 0 {
            self.index.extend_from_slice(key);
        }
        self.block.extend_from_slice(key);
        self.block.extend_from_slice(value);
        self.block_entries += 1;
        self.entry_count += 1;
        self.previous_key.copy_from_slice(key);
        if self.block_entries == self.spec.entries_per_block {
            self.flush_block()?;
        }
        Ok(())
    }

    pub fn entry_count(&self) -> u64 {
        self.entry_count
    }

    fn flush_block(&mut self) -> Result<(), IndexError> {
        if self.block_entries == 0 {
            return Ok(());
        }
        let file = self.file.as_mut().ok_or_else(unusable)?;
        if let Err(error) = file.write_all(&self.block) {
            // The writer's state no longer matches the file: refuse everything from here on.
            self.file = None;
            return Err(IndexError::io(&self.temporary, error));
        }
        self.index.extend_from_slice(&crc32fast::hash(&self.block).to_le_bytes());
        self.written += self.block.len() as u64;
        if self.written - self.written_back >= WRITEBACK_BYTES {
            if let Err(error) = file.flush() {
                self.file = None;
                return Err(IndexError::io(&self.temporary, error));
            }
            start_writeback(file.get_ref(), self.written_back, self.written - self.written_back);
            self.written_back = self.written;
        }
        self.block.clear();
        self.block_entries = 0;
        Ok(())
    }

    /// Writes index, bloom, footer and header, fsyncs, renames to the final
    /// name, fsyncs the directory, and opens the result.
    ///
    /// On an error nothing new is left under the final name unless the
    /// rename itself happened (then the directory fsync failed): a retry
    /// with a new writer for the same name replaces it. A retry never
    /// fsyncs the failed file again (fsyncgate): it writes a new one.
    pub fn finish(mut self) -> Result<Run, IndexError> {
        self.flush_block()?;
        let mut bloom = std::mem::replace(&mut self.bloom, BloomBuilder::new(Bloom::empty())).finish();
        if self.entry_count == 0 {
            bloom = Bloom::empty();
        } else if self.spec.prefix_bytes > 0 {
            // Sized for what the caller expected; a merge's inputs may share prefixes.
            bloom.fold_to_fit(self.prefix_count, self.spec.bits_per_prefix(self.prefix_count));
        }
        let max_key = if self.entry_count == 0 { vec![0; self.spec.key_bytes] } else { self.previous_key.clone() };
        let fields = self.spec.fields(self.entry_count, self.prefix_count, self.watermark);
        let layout = fields.layout(bloom.bytes().len() as u64).map_err(IndexError::Invalid)?;
        assert_eq!(layout.index_bytes, self.index.len() as u64);
        let header = fields.encode(&self.min_key, &max_key);
        let footer = Footer {
            index_offset: layout.index_offset,
            bloom_offset: layout.bloom_offset,
            bloom_bytes: layout.bloom_bytes,
            file_bytes: layout.file_bytes,
            meta_crc: 0,
        }
        .encode_without_crc();
        let mut crc = crc32fast::Hasher::new();
        for section in [&header[..], &self.index, bloom.bytes(), &footer] {
            crc.update(section);
        }
        let meta_crc = crc.finalize();

        let temporary = self.temporary.clone();
        let io = |error| IndexError::io(&temporary, error);
        let mut file = self.file.take().ok_or_else(unusable)?;
        file.write_all(&self.index).map_err(io)?;
        file.write_all(bloom.bytes()).map_err(io)?;
        file.write_all(&footer).map_err(io)?;
        file.write_all(&meta_crc.to_le_bytes()).map_err(io)?;
        let file = file.into_inner().map_err(|error| io(error.into_error()))?;
        file.write_all_at(&header, 0).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&self.temporary, &self.path).map_err(io)?;
        self.renamed = true;
        sync_parent_directory(&self.path)?;
        Run::open(&self.path)
    }
}

impl Drop for RunWriter {
    fn drop(&mut self) {
        if !self.renamed {
            // Unfinished (an error, or the caller gave up): nobody will rename it.
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

fn unusable() -> IndexError {
    IndexError::Invalid("run writer unusable after an I/O error".into())
}

pub(crate) fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// fsync of the directory holding `path`, so a create or rename in it
/// survives a power loss.
pub(crate) fn sync_parent_directory(path: &Path) -> Result<(), IndexError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_directory(parent),
        _ => sync_directory(Path::new(".")),
    }
}

/// fsync of a directory, so creates, renames and removals in it survive a
/// power loss.
pub(crate) fn sync_directory(directory: &Path) -> Result<(), IndexError> {
    File::open(directory).and_then(|handle| handle.sync_all()).map_err(|error| IndexError::io(directory, error))
}

/// Starts writing `len` bytes of `file` from `offset` to the disk, without
/// waiting (`sync_file_range(SYNC_FILE_RANGE_WRITE)`): a run's bytes then
/// reach the disk while it is written, and its final fsync finds little
/// left, instead of queueing the whole run (tens of megabytes after a merge)
/// ahead of the log's next fdatasync. Durability still comes from that
/// fsync; this is a hint, and an error is ignored (the fsync reports it).
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off64_t::try_from(offset), libc::off64_t::try_from(len)) else { return };
    // SAFETY: a plain syscall on a file descriptor `file` keeps open; no
    // memory is passed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}
