//! [`Run`]: one open run file, and reads from it (format in
//! [`crate::format`]). Owns the file handle and the metadata kept in memory;
//! it never writes: a run is immutable once renamed into place.
//!
//! # Memory
//!
//! An open run keeps its header, its sparse index (K + 4 bytes per block)
//! and its Bloom filter (10 bits per distinct prefix). For the journal shape
//! (K = 16, V = 40: 73 entries per 4 KiB block) that is 0.27 bytes per entry,
//! plus 1.25 bytes per distinct prefix when P > 0 (rounded up to 64 bytes).
//! A filter above [`BLOOM_WHOLE_BYTES_MAX`] stays in memory only as its
//! fold by 2 or 4 (0.625 or 0.31 bytes per prefix, [`crate::bloom`]); a
//! prefix the fold admits is checked against its lines on disk
//! ([`DiskLines`]).
//!
//! # Reads
//!
//! `get_prefix` asks the Bloom filter first (when the prefix has at least P
//! bytes), then binary-searches the sparse index in memory, then preads only
//! the blocks that hold the range, one at a time, as the iterator is pulled.
//! There is no block cache: a read is one `pread` of a block (about 4 KiB)
//! served by the kernel's page cache when hot; a cache can sit above this
//! later if measurements ask for one. Every block is checked when read (see
//! the format); a bad block is an error from the iterator, never a wrong
//! entry.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::bloom::{line_admits, line_of, Bloom};
use crate::error::IndexError;
use crate::format::{
    compare_keys, prefix_hash, Footer, HeaderFields, Layout, FOOTER_BYTES, HEADER_FIXED_BYTES, INDEX_CRC_BYTES,
    META_CRC_AT,
};
use crate::limits::{BLOOM_HALF_BYTES_MAX, BLOOM_LINE_BYTES, BLOOM_WHOLE_BYTES_MAX};
use crate::writer::RunSpec;

/// Reads of filter lines on disk by every run of the process, and those
/// that answered "maybe" because the lines could not be read or did not
/// OR to the fold ([`filter_disk_reads`]).
static DISK_READS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static DISK_MISMATCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Filter lines read from disk by all runs of this process so far, and how
/// many of those reads found lines that could not be read or did not match
/// the fold in memory (a file changed under an open run: worth an alarm).
pub fn filter_disk_reads() -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (DISK_READS.load(Relaxed), DISK_MISMATCHES.load(Relaxed))
}

/// Blocks read by lookups and ranges (not merges) of every run of the
/// process ([`range_block_reads`]).
static RANGE_BLOCK_READS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Blocks read from disk by lookups and ranges of all runs of this process
/// so far: for a set looked up mostly for absent prefixes, each is a
/// filter's false positive (or a prefix that is there).
pub fn range_block_reads() -> u64 {
    RANGE_BLOCK_READS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The largest fold a run keeps in memory instead of its whole filter.
const FOLD_FACTOR_MAX: u64 = 4;

/// How much of a run's Bloom filter stays in memory (limits'
/// [`BLOOM_WHOLE_BYTES_MAX`] explains the trade).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterResidence {
    /// Filters up to this many bytes stay whole.
    pub whole_bytes_max: u64,
    /// Filters up to this many bytes keep their fold by 2; larger ones
    /// their fold by 4.
    pub half_bytes_max: u64,
}

impl FilterResidence {
    pub const DEFAULT: FilterResidence =
        FilterResidence { whole_bytes_max: BLOOM_WHOLE_BYTES_MAX, half_bytes_max: BLOOM_HALF_BYTES_MAX };

    /// The fold a filter of `bytes` in `lines` lines keeps in memory: the
    /// factor its size asks for, or the largest smaller one that divides
    /// the line count (1: whole).
    fn fold_factor(&self, bytes: u64, lines: u64) -> u64 {
        let wanted = if bytes > self.half_bytes_max {
            FOLD_FACTOR_MAX
        } else if bytes > self.whole_bytes_max {
            2
        } else {
            1
        };
        [4, 2, 1].into_iter().find(|&factor| factor <= wanted && lines % factor == 0).unwrap_or(1)
    }
}

/// One key and its value, copied out of a block.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Key order of a range read: `Reverse` yields the highest key first
/// (journal pages are newest-first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Reverse,
}

#[derive(Debug)]
pub struct Run {
    path: PathBuf,
    file: File,
    fields: HeaderFields,
    layout: Layout,
    min_key: Vec<u8>,
    max_key: Vec<u8>,
    /// First key of every block, back to back.
    index_keys: Vec<u8>,
    block_crcs: Vec<u32>,
    /// The whole filter, or its fold when `disk_lines` is set.
    bloom: Bloom,
    disk_lines: Option<DiskLines>,
}

/// Where the whole filter of a run that keeps only its fold in memory lies
/// in the file, and how often it was read.
#[derive(Debug)]
struct DiskLines {
    offset: u64,
    lines: u64,
    /// The fold in memory: every `factor` lines on disk OR to one of its.
    factor: u64,
    reads: std::sync::atomic::AtomicU64,
    /// Reads that failed, or whose two lines did not OR to the fold
    /// (answered "maybe").
    mismatches: std::sync::atomic::AtomicU64,
}

impl Run {
    /// Opens a run: reads and checks header, footer, sparse index and Bloom
    /// filter (their CRC, every bound, the offsets, the order of the index
    /// keys). Data blocks are checked when read.
    pub fn open(path: &Path) -> Result<Run, IndexError> {
        Run::open_keeping(path, FilterResidence::DEFAULT)
    }

    /// [`Run::open`], keeping the filter in memory as `residence` says
    /// (tests use small bounds).
    pub fn open_keeping(path: &Path, residence: FilterResidence) -> Result<Run, IndexError> {
        let file = File::open(path).map_err(|error| IndexError::io(path, error))?;
        let file_bytes = file.metadata().map_err(|error| IndexError::io(path, error))?.len();
        let corrupt = |offset: u64, reason: String| IndexError::corrupt(path, offset, reason);
        if file_bytes < (HEADER_FIXED_BYTES + FOOTER_BYTES) as u64 {
            return Err(corrupt(0, format!("{file_bytes} bytes: shorter than a header and a footer")));
        }
        let mut fixed = [0u8; HEADER_FIXED_BYTES];
        read_exact_at(&file, path, &mut fixed, 0)?;
        let fields = HeaderFields::decode(&fixed).map_err(|reason| corrupt(0, reason))?;
        let footer_offset = file_bytes - FOOTER_BYTES as u64;
        let mut footer_bytes = [0u8; FOOTER_BYTES];
        read_exact_at(&file, path, &mut footer_bytes, footer_offset)?;
        let footer = Footer::decode(&footer_bytes).map_err(|reason| corrupt(footer_offset, reason))?;
        let layout = fields.layout(footer.bloom_bytes).map_err(|reason| corrupt(footer_offset, reason))?;
        if layout.file_bytes != file_bytes
            || footer.file_bytes != file_bytes
            || footer.index_offset != layout.index_offset
            || footer.bloom_offset != layout.bloom_offset
        {
            return Err(corrupt(
                footer_offset,
                format!("footer and header disagree with each other or with the file length {file_bytes}: {footer:?}"),
            ));
        }
        // Every length below is bounded by `layout` (header ≤ 56 + 2 × KEY_BYTES_MAX,
        // index ≤ INDEX_BYTES_MAX, bloom ≤ BLOOM_BYTES_MAX) and fits the file.
        let mut header = vec![0u8; fields.header_bytes()];
        read_exact_at(&file, path, &mut header, 0)?;
        let mut index = vec![0u8; layout.index_bytes as usize];
        read_exact_at(&file, path, &mut index, layout.index_offset)?;
        let mut bloom = vec![0u8; layout.bloom_bytes as usize];
        read_exact_at(&file, path, &mut bloom, layout.bloom_offset)?;
        let mut crc = crc32fast::Hasher::new();
        for section in [&header[..], &index, &bloom, &footer_bytes[..META_CRC_AT]] {
            crc.update(section);
        }
        let computed = crc.finalize();
        if computed != footer.meta_crc {
            return Err(corrupt(
                footer_offset + META_CRC_AT as u64,
                format!("metadata crc mismatch: stored {:#010x}, computed {computed:#010x}", footer.meta_crc),
            ));
        }
        let key_bytes = fields.key_bytes;
        let mut index_keys = Vec::with_capacity(layout.block_count as usize * key_bytes);
        let mut block_crcs = Vec::with_capacity(layout.block_count as usize);
        for slot in index.chunks_exact(key_bytes + INDEX_CRC_BYTES) {
            index_keys.extend_from_slice(&slot[..key_bytes]);
            let mut crc = [0u8; INDEX_CRC_BYTES];
            crc.copy_from_slice(&slot[key_bytes..]);
            block_crcs.push(u32::from_le_bytes(crc));
        }
        let mut run = Run {
            path: path.to_path_buf(),
            file,
            fields,
            layout,
            min_key: header[HEADER_FIXED_BYTES..][..key_bytes].to_vec(),
            max_key: header[HEADER_FIXED_BYTES + key_bytes..][..key_bytes].to_vec(),
            index_keys,
            block_crcs,
            bloom: Bloom::from_bytes(bloom, fields.bloom_hashes),
            disk_lines: None,
        };
        let lines = run.bloom.lines();
        let factor = residence.fold_factor(layout.bloom_bytes, lines);
        if factor > 1 {
            // Checked whole above; memory keeps the fold (module doc).
            run.bloom = run.bloom.fold(factor);
            run.disk_lines = Some(DiskLines {
                offset: layout.bloom_offset,
                lines,
                factor,
                reads: std::sync::atomic::AtomicU64::new(0),
                mismatches: std::sync::atomic::AtomicU64::new(0),
            });
        }
        run.check_index_order().map_err(|reason| corrupt(layout.index_offset, reason))?;
        Ok(run)
    }

    /// Index keys strictly increasing and consistent with min and max key.
    fn check_index_order(&self) -> Result<(), String> {
        if self.fields.entry_count == 0 {
            let zeros = vec![0u8; self.fields.key_bytes];
            if self.min_key != zeros || self.max_key != zeros || self.fields.prefix_count != 0 {
                return Err("an empty run with non-zero min key, max key or prefix count".into());
            }
            return Ok(());
        }
        if self.fields.prefix_bytes > 0 && self.fields.prefix_count == 0 {
            return Err("a non-empty run with prefix count 0".into());
        }
        if self.index_key(0) != self.min_key.as_slice() {
            return Err("first block's first key is not the min key".into());
        }
        for block in 1..self.layout.block_count {
            if self.index_key(block - 1) >= self.index_key(block) {
                return Err(format!("block {block}'s first key is not above block {}'s", block - 1));
            }
        }
        if self.index_key(self.layout.block_count - 1) > self.max_key.as_slice() {
            return Err("last block's first key is above the max key".into());
        }
        Ok(())
    }

    fn index_key(&self, block: u64) -> &[u8] {
        &self.index_keys[block as usize * self.fields.key_bytes..][..self.fields.key_bytes]
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its shape and block size, as its header says (the bits per prefix
    /// its writer chose are not recorded: the default).
    pub fn spec(&self) -> RunSpec {
        RunSpec {
            entries_per_block: self.fields.entries_per_block,
            ..RunSpec::new(self.fields.key_bytes, self.fields.value_bytes, self.fields.prefix_bytes)
        }
    }

    pub fn watermark(&self) -> u64 {
        self.fields.watermark
    }

    pub fn entry_count(&self) -> u64 {
        self.fields.entry_count
    }

    pub fn prefix_count(&self) -> u64 {
        self.fields.prefix_count
    }

    pub fn block_count(&self) -> u64 {
        self.layout.block_count
    }

    pub fn file_bytes(&self) -> u64 {
        self.layout.file_bytes
    }

    /// Bytes this open run keeps in memory (index, CRCs, Bloom filter, keys).
    pub fn memory_bytes(&self) -> usize {
        self.index_keys.len()
            + self.block_crcs.len() * INDEX_CRC_BYTES
            + self.bloom.bytes().len()
            + 2 * self.min_key.len()
    }

    /// `false` only when no key of this run starts with `prefix`. Uses the
    /// Bloom filter when `prefix` has at least P bytes, the min/max keys always.
    pub fn may_contain_prefix(&self, prefix: &[u8]) -> bool {
        self.may_contain_prefix_with(prefix, &mut None)
    }

    /// [`Run::may_contain_prefix`], with the Bloom hash of the prefix's
    /// first P bytes kept in `hashed` (`(P, hash)`) for the next run that
    /// checks the same prefix: a set checks every run, and its runs share P.
    /// [`Bloom::touch`] of this run's filter for a prefix whose first
    /// `prefix_bytes` hash to `hash` (nothing if this run's filter is over
    /// another length).
    pub(crate) fn touch_filter(&self, prefix_bytes: usize, hash: u64) {
        if self.fields.entry_count > 0 && self.fields.prefix_bytes == prefix_bytes {
            self.bloom.touch(hash);
        }
    }

    /// [`Bloom::prefetch_hash`] of this run's filter for a prefix whose
    /// first `prefix_bytes` hash to `hash`: as [`Run::touch_filter`], but
    /// nothing waits for the line.
    pub(crate) fn prefetch_filter(&self, prefix_bytes: usize, hash: u64) {
        if self.fields.entry_count > 0 && self.fields.prefix_bytes == prefix_bytes {
            self.bloom.prefetch_hash(hash);
        }
    }

    pub(crate) fn may_contain_prefix_with(&self, prefix: &[u8], hashed: &mut Option<(usize, u64)>) -> bool {
        if self.fields.entry_count == 0 || prefix.len() > self.fields.key_bytes {
            return false;
        }
        let prefix_bytes = self.fields.prefix_bytes;
        if prefix_bytes > 0 && prefix.len() >= prefix_bytes {
            let hash = match *hashed {
                Some((bytes, hash)) if bytes == prefix_bytes => hash,
                _ => {
                    let hash = prefix_hash(&prefix[..prefix_bytes]);
                    *hashed = Some((prefix_bytes, hash));
                    hash
                }
            };
            if !self.bloom.may_contain_hash(hash) || !self.disk_lines_admit(hash) {
                return false;
            }
        }
        let length = prefix.len();
        compare_keys(prefix, &self.min_key[..length]).is_ge() && compare_keys(prefix, &self.max_key[..length]).is_le()
    }

    /// For a run that keeps only the fold of its filter: whether the whole
    /// filter's line admits `hash` (which the fold admitted). Reads the
    /// lines the fold's line came from; when they do not OR to it (the
    /// file changed under the run) or cannot be read, the answer is
    /// "maybe": the data block read that follows checks its CRC.
    fn disk_lines_admit(&self, hash: u64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(disk) = &self.disk_lines else { return true };
        disk.reads.fetch_add(1, Relaxed);
        DISK_READS.fetch_add(1, Relaxed);
        let line = line_of(hash, disk.lines);
        let group = line / disk.factor;
        let line_bytes = BLOOM_LINE_BYTES as usize;
        let mut bytes = [0u8; FOLD_FACTOR_MAX as usize * BLOOM_LINE_BYTES as usize];
        let bytes = &mut bytes[..disk.factor as usize * line_bytes];
        let read = self.file.read_exact_at(bytes, disk.offset + group * disk.factor * BLOOM_LINE_BYTES);
        let folded = self.bloom.line(group);
        let matches = read.is_ok()
            && (0..line_bytes)
                .all(|at| bytes.chunks_exact(line_bytes).fold(0u8, |or, line| or | line[at]) == folded[at]);
        if !matches {
            disk.mismatches.fetch_add(1, Relaxed);
            DISK_MISMATCHES.fetch_add(1, Relaxed);
            return true;
        }
        let within = (line % disk.factor) as usize;
        line_admits(&bytes[within * line_bytes..][..line_bytes], hash, self.fields.bloom_hashes)
    }

    /// Reads of the filter's lines on disk so far (0 for a run whose filter
    /// is whole in memory), and how many of them answered "maybe" because
    /// the lines could not be read or did not match.
    pub fn disk_filter_reads(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.disk_lines.as_ref().map_or((0, 0), |disk| (disk.reads.load(Relaxed), disk.mismatches.load(Relaxed)))
    }

    /// Every entry whose key starts with `prefix` (0 ..= K bytes), lazily.
    pub fn get_prefix(&self, prefix: &[u8], direction: Direction) -> Result<RunRange<'_>, IndexError> {
        if prefix.len() <= self.fields.key_bytes && !self.may_contain_prefix(prefix) {
            // The common case of a client-id check: no allocation, no read.
            return Ok(RunRange::empty(self, direction));
        }
        self.prefix_range(prefix, direction)
    }

    /// [`Run::get_prefix`] without the filter check, for a caller that
    /// made it already.
    pub(crate) fn prefix_range(&self, prefix: &[u8], direction: Direction) -> Result<RunRange<'_>, IndexError> {
        let (lo, hi) = prefix_bounds(prefix, self.fields.key_bytes)?;
        self.range(&lo, &hi, direction)
    }

    /// Every entry with `lo <= key <= hi` (both K bytes), lazily, block by
    /// block; take a limit with `Iterator::take`.
    pub fn range(&self, lo: &[u8], hi: &[u8], direction: Direction) -> Result<RunRange<'_>, IndexError> {
        let key_bytes = self.fields.key_bytes;
        if lo.len() != key_bytes || hi.len() != key_bytes {
            return Err(IndexError::Invalid(format!(
                "range bounds of {} and {} bytes in a run of {key_bytes}-byte keys",
                lo.len(),
                hi.len()
            )));
        }
        if self.fields.entry_count == 0 || lo > hi || hi < self.min_key.as_slice() || lo > self.max_key.as_slice() {
            return Ok(RunRange::empty(self, direction));
        }
        // Blocks whose first key is at most the bound: the bound's entry, if any, is in the last of them.
        let blocks_at_or_below = |bound: &[u8]| {
            let (mut low, mut high) = (0u64, self.layout.block_count);
            while low < high {
                let middle = low + (high - low) / 2;
                if self.index_key(middle) <= bound {
                    low = middle + 1;
                } else {
                    high = middle;
                }
            }
            low
        };
        let first_block = match direction {
            Direction::Forward => blocks_at_or_below(lo).saturating_sub(1),
            Direction::Reverse => match blocks_at_or_below(hi).checked_sub(1) {
                Some(block) => block,
                None => return Ok(RunRange::empty(self, direction)),
            },
        };
        Ok(RunRange {
            run: self,
            lo: lo.to_vec(),
            hi: hi.to_vec(),
            direction,
            block: None,
            next_block: first_block,
            position: 0,
            started: false,
            finished: false,
        })
    }

    /// Reads and checks one block.
    pub(crate) fn read_block(&self, number: u64) -> Result<Block, IndexError> {
        let entries_per_block = self.fields.entries_per_block as u64;
        let first_entry = number * entries_per_block;
        assert!(first_entry < self.fields.entry_count, "block {number} past the end of {}", self.path.display());
        let entries = entries_per_block.min(self.fields.entry_count - first_entry) as usize;
        let entry_bytes = self.fields.entry_bytes();
        let offset = self.layout.data_offset + first_entry * entry_bytes as u64;
        let mut bytes = vec![0u8; entries * entry_bytes];
        read_exact_at(&self.file, &self.path, &mut bytes, offset)?;
        let corrupt = |reason: String| IndexError::corrupt(&self.path, offset, reason);
        let computed = crc32fast::hash(&bytes);
        let stored = self.block_crcs[number as usize];
        if computed != stored {
            return Err(corrupt(format!(
                "block {number} crc mismatch: stored {stored:#010x}, computed {computed:#010x}"
            )));
        }
        let block = Block { number, bytes, entries, key_bytes: self.fields.key_bytes, entry_bytes };
        if block.key(0) != self.index_key(number) {
            return Err(corrupt(format!("block {number}'s first key differs from the index")));
        }
        for position in 1..entries {
            if compare_keys(block.key(position - 1), block.key(position)).is_ge() {
                return Err(corrupt(format!("block {number}: key {position} is not above the one before")));
            }
        }
        let last = block.key(entries - 1);
        let fits_next = if number + 1 < self.layout.block_count {
            compare_keys(last, self.index_key(number + 1)).is_lt()
        } else {
            last == self.max_key.as_slice()
        };
        if !fits_next {
            return Err(corrupt(format!("block {number}'s last key is out of order with what follows it")));
        }
        Ok(block)
    }
}

/// The K-byte bounds of every key starting with `prefix`.
pub(crate) fn prefix_bounds(prefix: &[u8], key_bytes: usize) -> Result<(Vec<u8>, Vec<u8>), IndexError> {
    if prefix.len() > key_bytes {
        return Err(IndexError::Invalid(format!("prefix of {} bytes for {key_bytes}-byte keys", prefix.len())));
    }
    let mut lo = vec![0x00u8; key_bytes];
    let mut hi = vec![0xffu8; key_bytes];
    lo[..prefix.len()].copy_from_slice(prefix);
    hi[..prefix.len()].copy_from_slice(prefix);
    Ok((lo, hi))
}

fn read_exact_at(file: &File, path: &Path, buffer: &mut [u8], offset: u64) -> Result<(), IndexError> {
    file.read_exact_at(buffer, offset).map_err(|error| IndexError::io(path, error))
}

/// One checked block in memory.
pub(crate) struct Block {
    number: u64,
    bytes: Vec<u8>,
    entries: usize,
    key_bytes: usize,
    entry_bytes: usize,
}

impl Block {
    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    pub(crate) fn key(&self, position: usize) -> &[u8] {
        &self.bytes[position * self.entry_bytes..][..self.key_bytes]
    }

    pub(crate) fn value(&self, position: usize) -> &[u8] {
        &self.bytes[position * self.entry_bytes + self.key_bytes..][..self.entry_bytes - self.key_bytes]
    }

    /// Number of keys below `bound` (keys `<= bound` when `inclusive`).
    fn count_below(&self, bound: &[u8], inclusive: bool) -> usize {
        let (mut low, mut high) = (0, self.entries);
        while low < high {
            let middle = low + (high - low) / 2;
            let key = self.key(middle);
            if key < bound || inclusive && key == bound {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }
}

/// A lazy range read over one run: one block in memory at a time.
pub struct RunRange<'a> {
    run: &'a Run,
    lo: Vec<u8>,
    hi: Vec<u8>,
    direction: Direction,
    block: Option<Block>,
    /// The block to read when `block` is `None`.
    next_block: u64,
    /// Forward: the next entry to yield. Reverse: entries before it are left.
    position: usize,
    started: bool,
    finished: bool,
}

impl<'a> RunRange<'a> {
    fn empty(run: &'a Run, direction: Direction) -> Self {
        RunRange {
            run,
            lo: Vec::new(),
            hi: Vec::new(),
            direction,
            block: None,
            next_block: 0,
            position: 0,
            started: true,
            finished: true,
        }
    }

    fn load_block(&mut self) -> Result<(), IndexError> {
        RANGE_BLOCK_READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let block = self.run.read_block(self.next_block)?;
        self.position = match (self.direction, self.started) {
            (Direction::Forward, false) => block.count_below(&self.lo, false),
            (Direction::Forward, true) => 0,
            (Direction::Reverse, false) => block.count_below(&self.hi, true),
            (Direction::Reverse, true) => block.entries(),
        };
        self.started = true;
        self.block = Some(block);
        Ok(())
    }

    /// The next entry in range, or `Ok(None)` at the end.
    fn advance(&mut self) -> Result<Option<Entry>, IndexError> {
        while !self.finished {
            let Some(block) = &self.block else {
                self.load_block()?;
                continue;
            };
            let position = match self.direction {
                Direction::Forward if self.position < block.entries() => Some(self.position),
                Direction::Reverse if self.position > 0 => Some(self.position - 1),
                _ => None,
            };
            let Some(position) = position else {
                let next = match self.direction {
                    Direction::Forward => Some(block.number + 1).filter(|&next| next < self.run.block_count()),
                    Direction::Reverse => block.number.checked_sub(1),
                };
                match next {
                    Some(next) => self.next_block = next,
                    None => self.finished = true,
                }
                self.block = None;
                continue;
            };
            let key = block.key(position);
            let in_range = match self.direction {
                Direction::Forward => key <= self.hi.as_slice(),
                Direction::Reverse => key >= self.lo.as_slice(),
            };
            if !in_range {
                self.finished = true;
                break;
            }
            let entry = Entry { key: key.to_vec(), value: block.value(position).to_vec() };
            match self.direction {
                Direction::Forward => self.position += 1,
                Direction::Reverse => self.position -= 1,
            }
            return Ok(Some(entry));
        }
        self.block = None;
        Ok(None)
    }
}

impl Iterator for RunRange<'_> {
    type Item = Result<Entry, IndexError>;

    /// After an error the iterator is over.
    fn next(&mut self) -> Option<Self::Item> {
        match self.advance() {
            Ok(entry) => entry.map(Ok),
            Err(error) => {
                self.finished = true;
                self.block = None;
                Some(Err(error))
            }
        }
    }
}
