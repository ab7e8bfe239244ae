//! # Run file format
//!
//! This module owns the byte layout: constants, encoding and decoding of the
//! header and footer, the Bloom hash. It does no I/O; `writer` and `run` do.
//!
//! A run is an immutable file of entries sorted by key, keys unique. Every
//! key is `K` bytes and every value `V` bytes, fixed per run. Keys compare as
//! bytes (callers encode integers big-endian). Every integer of the format
//! itself is little-endian. Every CRC is CRC-32 (IEEE, `crc32fast::hash`).
//! [`FORMAT_VERSION`] is 1.
//!
//! | offset           | bytes           | section  | content                                                 |
//! |------------------|-----------------|----------|---------------------------------------------------------|
//! | 0                | 56 + 2K         | header   | fixed fields, then the min key and the max key          |
//! | `data_offset`    | `n` × (K + V)   | data     | entries in key order, key then value, in blocks         |
//! | `index_offset`   | `blocks` × (K+4)| index    | per block: its first key, then the CRC-32 of its bytes  |
//! | `bloom_offset`   | `bloom_bytes`   | bloom    | Bloom filter over the first P bytes of every key        |
//! | end − 44         | 44              | footer   | offsets, file length, magic, CRC of all metadata        |
//!
//! ## Header
//!
//! | offset  | bytes | field               | meaning                                                 |
//! |--------:|------:|---------------------|---------------------------------------------------------|
//! | 0       | 8     | `magic`             | `FLIDXRUN`                                              |
//! | 8       | 4     | `version`           | [`FORMAT_VERSION`]                                      |
//! | 12      | 4     | `key_bytes`         | K, 1 ..= [`KEY_BYTES_MAX`]                              |
//! | 16      | 4     | `value_bytes`       | V, 0 ..= [`VALUE_BYTES_MAX`]                            |
//! | 20      | 4     | `prefix_bytes`      | P ≤ K, the key prefix the Bloom filter covers (0: none) |
//! | 24      | 4     | `entries_per_block` | B ≥ 1, B × (K + V) ≤ [`BLOCK_BYTES_MAX`]                |
//! | 28      | 4     | `bloom_hashes`      | probes per Bloom lookup, 1 ..= [`BLOOM_HASHES_MAX`]     |
//! | 32      | 8     | `entry_count`       | n ≤ [`ENTRIES_MAX`]                                     |
//! | 40      | 8     | `prefix_count`      | distinct P-byte prefixes among the keys (sizes merges)  |
//! | 48      | 8     | `watermark`         | caller's number, e.g. the lsn the run covers up to      |
//! | 56      | K     | `min_key`           | first key (zeros when n = 0)                            |
//! | 56 + K  | K     | `max_key`           | last key (zeros when n = 0)                             |
//!
//! ## Data
//!
//! `data_offset` = 56 + 2K. `blocks` = ⌈n / B⌉. Block `i` starts at
//! `data_offset + i × B × (K + V)` and holds B entries (the last one
//! `n − (blocks − 1) × B`). No padding anywhere, so any entry's place is
//! computed, never read. A block is checked when it is read: its CRC (from
//! the index), its first key (equal to the index's), its keys strictly
//! increasing, its last key below the next block's first key (for the last
//! block: equal to `max_key`).
//!
//! ## Bloom filter
//!
//! A blocked filter: `lines` = `bloom_bytes` / 64 cache lines of 512 bits;
//! bit `j` is bit `j % 8` of byte `j / 8`. For a prefix `p` (the first P
//! bytes of a key), `h1` = [`prefix_hash`]`(p)`, `h2` =
//! [`fmix64`]`(h1 ^ 0x9e3779b97f4a7c15)`, the line is `(h1 × lines) >> 64`
//! (128-bit product), and probe `i` in `0 .. bloom_hashes` sets bit
//! `line × 512 + ((h2 >> 9i) & 511)`. So a lookup touches one cache line.
//! Empty (0 bytes: every lookup says "maybe") when P = 0 or n = 0, otherwise
//! a multiple of 64 bytes, at least [`BLOOM_BYTES_MIN`].
//!
//! ## Footer
//!
//! | offset | bytes | field          | meaning                                                        |
//! |-------:|------:|----------------|----------------------------------------------------------------|
//! | 0      | 8     | `index_offset` | `data_offset + n × (K + V)`                                     |
//! | 8      | 8     | `bloom_offset` | `index_offset + blocks × (K + 4)`                              |
//! | 16     | 8     | `bloom_bytes`  | ≤ [`BLOOM_BYTES_MAX`], a multiple of 64                        |
//! | 24     | 8     | `file_bytes`   | `bloom_offset + bloom_bytes + 44`: a truncated file never opens |
//! | 32     | 8     | `magic`        | `FLIDXEND`                                                     |
//! | 40     | 4     | `meta_crc`     | CRC-32 of header ‖ index ‖ bloom ‖ footer bytes 0 .. 40         |
//!
//! The offsets are redundant with the header; `open` recomputes them and
//! refuses a file where they differ. Before allocating anything, `open`
//! checks every field against the bounds in the tables and the index and
//! Bloom sizes against [`INDEX_BYTES_MAX`] and [`BLOOM_BYTES_MAX`], with
//! checked arithmetic throughout. Every byte of the file is covered by a
//! CRC: the metadata by `meta_crc` (checked at open), each block by its own
//! (checked at each read).
//!
//! ## Writing
//!
//! A run is written to `<name>.tmp`, fsynced, renamed to `<name>`, and the
//! directory fsynced; a reader never sees a partial run under its name.

use crate::limits::{
    BLOCK_BYTES_MAX, BLOOM_BYTES_MAX, BLOOM_BYTES_MIN, BLOOM_HASHES_MAX, BLOOM_LINE_BYTES, ENTRIES_MAX,
    INDEX_BYTES_MAX, KEY_BYTES_MAX, VALUE_BYTES_MAX,
};

pub const FORMAT_VERSION: u32 = 1;
pub const HEADER_MAGIC: [u8; 8] = *b"FLIDXRUN";
pub const FOOTER_MAGIC: [u8; 8] = *b"FLIDXEND";
pub const HEADER_FIXED_BYTES: usize = 56;
pub const FOOTER_BYTES: usize = 44;
/// Bytes of a block's CRC in the index, after its first key.
pub const INDEX_CRC_BYTES: usize = 4;

const VERSION_AT: usize = 8;
const KEY_BYTES_AT: usize = 12;
const VALUE_BYTES_AT: usize = 16;
const PREFIX_BYTES_AT: usize = 20;
const ENTRIES_PER_BLOCK_AT: usize = 24;
const BLOOM_HASHES_AT: usize = 28;
const ENTRY_COUNT_AT: usize = 32;
const PREFIX_COUNT_AT: usize = 40;
const WATERMARK_AT: usize = 48;

const INDEX_OFFSET_AT: usize = 0;
const BLOOM_OFFSET_AT: usize = 8;
const BLOOM_BYTES_AT: usize = 16;
const FILE_BYTES_AT: usize = 24;
const FOOTER_MAGIC_AT: usize = 32;
pub const META_CRC_AT: usize = 40;

/// The fixed header fields (everything but the min and max key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderFields {
    pub key_bytes: usize,
    pub value_bytes: usize,
    pub prefix_bytes: usize,
    pub entries_per_block: usize,
    pub bloom_hashes: u32,
    pub entry_count: u64,
    pub prefix_count: u64,
    pub watermark: u64,
}

/// Where each section lives, all derived from the header and `bloom_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub data_offset: u64,
    pub block_count: u64,
    pub index_offset: u64,
    pub index_bytes: u64,
    pub bloom_offset: u64,
    pub bloom_bytes: u64,
    pub file_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub index_offset: u64,
    pub bloom_offset: u64,
    pub bloom_bytes: u64,
    pub file_bytes: u64,
    pub meta_crc: u32,
}

impl HeaderFields {
    pub fn header_bytes(&self) -> usize {
        HEADER_FIXED_BYTES + 2 * self.key_bytes
    }

    pub fn entry_bytes(&self) -> usize {
        self.key_bytes + self.value_bytes
    }

    pub fn encode(&self, min_key: &[u8], max_key: &[u8]) -> Vec<u8> {
        assert_eq!(min_key.len(), self.key_bytes);
        assert_eq!(max_key.len(), self.key_bytes);
        let mut bytes = Vec::with_capacity(self.header_bytes());
        bytes.extend_from_slice(&HEADER_MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        for field in [self.key_bytes, self.value_bytes, self.prefix_bytes, self.entries_per_block] {
            bytes.extend_from_slice(&u32::try_from(field).expect("spec bounded by the writer").to_le_bytes());
        }
        bytes.extend_from_slice(&self.bloom_hashes.to_le_bytes());
        bytes.extend_from_slice(&self.entry_count.to_le_bytes());
        bytes.extend_from_slice(&self.prefix_count.to_le_bytes());
        bytes.extend_from_slice(&self.watermark.to_le_bytes());
        bytes.extend_from_slice(min_key);
        bytes.extend_from_slice(max_key);
        assert_eq!(bytes.len(), self.header_bytes());
        bytes
    }

    /// Decodes and bounds the fixed part; `Err` is the reason, at offset 0.
    pub fn decode(bytes: &[u8; HEADER_FIXED_BYTES]) -> Result<Self, String> {
        if bytes[..8] != HEADER_MAGIC {
            return Err("wrong header magic (not a run file)".into());
        }
        let version = read_u32(bytes, VERSION_AT);
        if version != FORMAT_VERSION {
            return Err(format!("unknown format version {version}"));
        }
        let fields = HeaderFields {
            key_bytes: read_u32(bytes, KEY_BYTES_AT) as usize,
            value_bytes: read_u32(bytes, VALUE_BYTES_AT) as usize,
            prefix_bytes: read_u32(bytes, PREFIX_BYTES_AT) as usize,
            entries_per_block: read_u32(bytes, ENTRIES_PER_BLOCK_AT) as usize,
            bloom_hashes: read_u32(bytes, BLOOM_HASHES_AT),
            entry_count: read_u64(bytes, ENTRY_COUNT_AT),
            prefix_count: read_u64(bytes, PREFIX_COUNT_AT),
            watermark: read_u64(bytes, WATERMARK_AT),
        };
        fields.check_bounds()?;
        if fields.bloom_hashes == 0 || fields.bloom_hashes > BLOOM_HASHES_MAX {
            return Err(format!("bloom_hashes {} outside 1 ..= {BLOOM_HASHES_MAX}", fields.bloom_hashes));
        }
        if fields.entry_count > ENTRIES_MAX {
            return Err(format!("entry_count {} above {ENTRIES_MAX}", fields.entry_count));
        }
        if fields.prefix_count > fields.entry_count {
            return Err(format!("prefix_count {} above entry_count {}", fields.prefix_count, fields.entry_count));
        }
        Ok(fields)
    }

    /// The shape bounds shared by the writer's spec check and the reader.
    pub fn check_bounds(&self) -> Result<(), String> {
        if self.key_bytes == 0 || self.key_bytes > KEY_BYTES_MAX {
            return Err(format!("key_bytes {} outside 1 ..= {}", self.key_bytes, KEY_BYTES_MAX));
        }
        if self.value_bytes > VALUE_BYTES_MAX {
            return Err(format!("value_bytes {} above {}", self.value_bytes, VALUE_BYTES_MAX));
        }
        if self.prefix_bytes > self.key_bytes {
            return Err(format!("prefix_bytes {} above key_bytes {}", self.prefix_bytes, self.key_bytes));
        }
        let block_bytes = (self.entries_per_block as u64).saturating_mul(self.entry_bytes() as u64);
        if self.entries_per_block == 0 || block_bytes > BLOCK_BYTES_MAX as u64 {
            return Err(format!(
                "entries_per_block {} × entry bytes {} outside 1 entry ..= {BLOCK_BYTES_MAX} bytes",
                self.entries_per_block,
                self.entry_bytes()
            ));
        }
        Ok(())
    }

    /// Offsets of every section, or why they do not fit the bounds. Only
    /// checked arithmetic: the inputs may come from a damaged file.
    pub fn layout(&self, bloom_bytes: u64) -> Result<Layout, String> {
        let overflow = || "section offsets overflow".to_string();
        let entry_bytes = self.entry_bytes() as u64;
        let data_offset = self.header_bytes() as u64;
        let block_count = self.entry_count.div_ceil(self.entries_per_block as u64);
        let index_bytes = block_count.checked_mul((self.key_bytes + INDEX_CRC_BYTES) as u64).ok_or_else(overflow)?;
        if index_bytes > INDEX_BYTES_MAX {
            return Err(format!("sparse index of {index_bytes} bytes above {INDEX_BYTES_MAX}"));
        }
        if bloom_bytes > BLOOM_BYTES_MAX {
            return Err(format!("bloom of {bloom_bytes} bytes above {BLOOM_BYTES_MAX}"));
        }
        let has_bloom = self.prefix_bytes > 0 && self.entry_count > 0;
        if has_bloom && (bloom_bytes < BLOOM_BYTES_MIN || bloom_bytes % BLOOM_LINE_BYTES != 0)
            || !has_bloom && bloom_bytes != 0
        {
            return Err(format!("bloom of {bloom_bytes} bytes does not fit prefix_bytes and entry_count"));
        }
        let data_bytes = self.entry_count.checked_mul(entry_bytes).ok_or_else(overflow)?;
        let index_offset = data_offset.checked_add(data_bytes).ok_or_else(overflow)?;
        let bloom_offset = index_offset.checked_add(index_bytes).ok_or_else(overflow)?;
        let file_bytes = bloom_offset
            .checked_add(bloom_bytes)
            .and_then(|end| end.checked_add(FOOTER_BYTES as u64))
            .ok_or_else(overflow)?;
        Ok(Layout { data_offset, block_count, index_offset, index_bytes, bloom_offset, bloom_bytes, file_bytes })
    }
}

impl Footer {
    /// Footer bytes 0 .. 40 (everything the meta CRC covers).
    pub fn encode_without_crc(&self) -> [u8; META_CRC_AT] {
        let mut bytes = [0u8; META_CRC_AT];
        bytes[INDEX_OFFSET_AT..][..8].copy_from_slice(&self.index_offset.to_le_bytes());
        bytes[BLOOM_OFFSET_AT..][..8].copy_from_slice(&self.bloom_offset.to_le_bytes());
        bytes[BLOOM_BYTES_AT..][..8].copy_from_slice(&self.bloom_bytes.to_le_bytes());
        bytes[FILE_BYTES_AT..][..8].copy_from_slice(&self.file_bytes.to_le_bytes());
        bytes[FOOTER_MAGIC_AT..][..8].copy_from_slice(&FOOTER_MAGIC);
        bytes
    }

    pub fn decode(bytes: &[u8; FOOTER_BYTES]) -> Result<Self, String> {
        if bytes[FOOTER_MAGIC_AT..][..8] != FOOTER_MAGIC {
            return Err("wrong footer magic (not a run file, or cut short)".into());
        }
        Ok(Footer {
            index_offset: read_u64(bytes, INDEX_OFFSET_AT),
            bloom_offset: read_u64(bytes, BLOOM_OFFSET_AT),
            bloom_bytes: read_u64(bytes, BLOOM_BYTES_AT),
            file_bytes: read_u64(bytes, FILE_BYTES_AT),
            meta_crc: read_u32(bytes, META_CRC_AT),
        })
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Orders two keys as a run does (bytes, lexicographically), comparing
/// them as big-endian integers 8 bytes at a time and the tail byte by
/// byte, instead of calling `memcmp`: a merge compares every entry with
/// the head of each other input, and `memcmp` calls were a third of its
/// time (docs/PERFORMANCE.md). Keys of different lengths (never two keys
/// of one run) fall back to the slice order.
#[inline]
pub fn compare_keys(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    if a.len() != b.len() {
        return a.cmp(b);
    }
    let mut at = 0;
    while at + 8 <= a.len() {
        let order = key_word(a, at).cmp(&key_word(b, at));
        if order.is_ne() {
            return order;
        }
        at += 8;
    }
    while at < a.len() {
        let order = a[at].cmp(&b[at]);
        if order.is_ne() {
            return order;
        }
        at += 1;
    }
    std::cmp::Ordering::Equal
}

/// The big-endian word of `key` at `at` (8 bytes must follow).
#[inline]
fn key_word(key: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&key[at..at + 8]);
    u64::from_be_bytes(word)
}

/// Bloom hash of a key prefix. Part of the format: changing it needs a new
/// [`FORMAT_VERSION`]. Eight bytes at a time (the last chunk zero-padded),
/// multiply-xorshift, then MurmurHash3's 64-bit finalizer.
pub fn prefix_hash(prefix: &[u8]) -> u64 {
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut hash = (prefix.len() as u64).wrapping_mul(MULTIPLIER) ^ 0x243f_6a88_85a3_08d3;
    let mut mix = |word: [u8; 8]| {
        hash = (hash ^ u64::from_le_bytes(word)).wrapping_mul(MULTIPLIER);
        hash ^= hash >> 29;
    };
    // Whole words as loads; only the last, short one is copied (a copy of
    // a length known only at run time is a call to memcpy per word).
    let mut words = prefix.chunks_exact(8);
    for word in words.by_ref() {
        mix(word.try_into().expect("chunks of 8"));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        mix(word);
    }
    fmix64(hash)
}

/// MurmurHash3's 64-bit finalizer.
pub fn fmix64(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::{RunSpec, RunWriter};

    fn fields() -> HeaderFields {
        HeaderFields {
            key_bytes: 16,
            value_bytes: 40,
            prefix_bytes: 8,
            entries_per_block: 73,
            bloom_hashes: 7,
            entry_count: 1000,
            prefix_count: 10,
            watermark: 99,
        }
    }

    fn fixed(bytes: &[u8]) -> [u8; HEADER_FIXED_BYTES] {
        let mut fixed = [0u8; HEADER_FIXED_BYTES];
        fixed.copy_from_slice(&bytes[..HEADER_FIXED_BYTES]);
        fixed
    }

    #[test]
    fn the_header_round_trips_and_sits_where_the_table_says() {
        let bytes = fields().encode(&[1; 16], &[2; 16]);
        assert_eq!(bytes.len(), 56 + 32);
        assert_eq!(&bytes[..8], b"FLIDXRUN");
        assert_eq!(bytes[12], 16);
        assert_eq!(bytes[48], 99);
        assert_eq!(&bytes[56..72], &[1; 16]);
        assert_eq!(&bytes[72..88], &[2; 16]);
        assert_eq!(HeaderFields::decode(&fixed(&bytes)), Ok(fields()));
    }

    #[test]
    fn the_layout_follows_the_formulas() {
        let layout = fields().layout(64).unwrap();
        let blocks = 1000u64.div_ceil(73);
        assert_eq!(layout.block_count, blocks);
        assert_eq!(layout.data_offset, 88);
        assert_eq!(layout.index_offset, 88 + 1000 * 56);
        assert_eq!(layout.bloom_offset, layout.index_offset + blocks * 20);
        assert_eq!(layout.file_bytes, layout.bloom_offset + 64 + 44);
        assert!(fields().layout(96).is_err(), "a filter of part of a line");
        assert!(fields().layout(0).is_err(), "a run with P > 0 and entries needs a filter");
        assert!(HeaderFields { prefix_bytes: 0, ..fields() }.layout(64).is_err(), "a filter without P");
        assert!(fields().layout(crate::limits::BLOOM_BYTES_MAX + 1).is_err());
        let huge = HeaderFields { entry_count: crate::limits::ENTRIES_MAX, entries_per_block: 1, ..fields() };
        assert!(huge.layout(64).is_err(), "an index above INDEX_BYTES_MAX");
    }

    #[test]
    fn header_fields_outside_the_bounds_are_refused() {
        let good = fields().encode(&[1; 16], &[2; 16]);
        let with = |at: usize, value: &[u8]| {
            let mut bytes = fixed(&good);
            bytes[at..at + value.len()].copy_from_slice(value);
            HeaderFields::decode(&bytes)
        };
        assert!(with(0, b"X").is_err(), "magic");
        assert!(with(VERSION_AT, &2u32.to_le_bytes()).is_err(), "version");
        assert!(with(KEY_BYTES_AT, &0u32.to_le_bytes()).is_err(), "K = 0");
        assert!(with(KEY_BYTES_AT, &u32::MAX.to_le_bytes()).is_err(), "K huge");
        assert!(with(VALUE_BYTES_AT, &u32::MAX.to_le_bytes()).is_err(), "V huge");
        assert!(with(PREFIX_BYTES_AT, &17u32.to_le_bytes()).is_err(), "P > K");
        assert!(with(ENTRIES_PER_BLOCK_AT, &0u32.to_le_bytes()).is_err(), "B = 0");
        assert!(with(ENTRIES_PER_BLOCK_AT, &u32::MAX.to_le_bytes()).is_err(), "B huge");
        assert!(with(BLOOM_HASHES_AT, &8u32.to_le_bytes()).is_err(), "more probes than 64 hash bits give");
        assert!(with(BLOOM_HASHES_AT, &0u32.to_le_bytes()).is_err(), "no probes");
        assert!(with(ENTRY_COUNT_AT, &u64::MAX.to_le_bytes()).is_err(), "n huge");
        assert!(with(PREFIX_COUNT_AT, &1001u64.to_le_bytes()).is_err(), "more prefixes than entries");
    }

    /// The hash of every length, whole words and a short last one alike, is
    /// the one of the word-at-a-time definition (kept here as written
    /// first): the hash is part of the format.
    #[test]
    fn the_prefix_hash_of_every_length_is_the_defined_one() {
        fn defined(prefix: &[u8]) -> u64 {
            const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut hash = (prefix.len() as u64).wrapping_mul(MULTIPLIER) ^ 0x243f_6a88_85a3_08d3;
            for chunk in prefix.chunks(8) {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                hash = (hash ^ u64::from_le_bytes(word)).wrapping_mul(MULTIPLIER);
                hash ^= hash >> 29;
            }
            fmix64(hash)
        }
        let bytes: Vec<u8> = (0..64u32).map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in 0..=bytes.len() {
            for start in [0, 1, 7] {
                let prefix = &bytes[start.min(len)..len];
                assert_eq!(prefix_hash(prefix), defined(prefix), "{} bytes", prefix.len());
            }
        }
    }

    /// Pins the format: a change to any byte the writer produces (or to the
    /// Bloom hash) fails here and needs a new FORMAT_VERSION.
    #[test]
    fn a_known_run_has_known_bytes() {
        assert_eq!(prefix_hash(b"fundledger"), 0xb236_7558_962f_1d18);
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("golden.run");
        let spec = RunSpec { entries_per_block: 2, ..RunSpec::new(4, 2, 2) };
        let mut writer = RunWriter::create(&path, spec, 7, 3).unwrap();
        for n in 0u8..5 {
            writer.push(&[0, n / 2, n, 1], &[n, 0xee]).unwrap();
        }
        writer.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 56 + 8 + 5 * 6 + 3 * 8 + 64 + 44);
        assert_eq!(crc32fast::hash(&bytes), 0x9771_5e09);
    }
}
