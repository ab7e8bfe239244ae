//! Every bound of the crate, in one place. Readers check each length and
//! count read from a file against these before allocating or reading what it
//! claims, so a flipped bit can never make them allocate gigabytes.

/// Largest key. Keys are compared as bytes; 256 covers any composite key the
/// server builds (today 16: account or id hash, then lsn, big-endian).
pub const KEY_BYTES_MAX: usize = 256;
/// Largest value.
pub const VALUE_BYTES_MAX: usize = 4096;
/// A block holds this many bytes of entries or fewer (at least one entry):
/// one pread of about a page per block read.
pub const BLOCK_BYTES_TARGET: usize = 4096;

/// A run writer starts writing its bytes to the disk every this many bytes
/// (`writer::start_writeback`), so that a run's final fsync finds at most
/// about this much of it not yet on its way.
pub const WRITEBACK_BYTES: u64 = 1 << 20;

/// Largest block a reader accepts: one entry of maximal key and value fits,
/// and a table may ask for larger blocks than [`BLOCK_BYTES_TARGET`]
/// (`RunSpec::with_block_bytes`) up to this.
pub const BLOCK_BYTES_MAX: usize = 64 * 1024;
/// Most entries in one run (2^40: far beyond any memtable or merge).
pub const ENTRIES_MAX: u64 = 1 << 40;
/// Largest sparse index (first key and CRC of every block) a reader loads:
/// it stays in memory while the run is open.
pub const INDEX_BYTES_MAX: u64 = 256 << 20;
/// Largest Bloom filter a reader loads (it stays in memory while the run is
/// open); a writer asked for more clamps to it (more false positives, never
/// a wrong answer).
pub const BLOOM_BYTES_MAX: u64 = 128 << 20; // a multiple of BLOOM_LINE_BYTES
/// Bloom bits per distinct prefix the writer was told to expect: with
/// [`BLOOM_HASHES`] probes, about 1% false positives (0.96% for lines of
/// 512 bits).
pub const BLOOM_BITS_PER_PREFIX: u64 = 10;
/// Most bits per prefix a set may ask for its small runs
/// (`RunSpec::with_small_run_bits`): 16 give 0.10% false positives with 7
/// probes, 24 would give 0.01%.
pub const BLOOM_BITS_PER_PREFIX_MAX: u64 = 24;
/// Probes per Bloom lookup (ln 2 × 10 bits ≈ 7).
pub const BLOOM_HASHES: u32 = 7;
/// Largest probe count the format allows: each probe takes 9 bits of one
/// 64-bit hash (a bit within a 512-bit line).
pub const BLOOM_HASHES_MAX: u32 = 7;
/// The filter is made of cache lines of this many bytes; one lookup touches
/// one line (one cache miss per run instead of one per probe).
pub const BLOOM_LINE_BYTES: u64 = 64;
/// Smallest filter written: one line.
pub const BLOOM_BYTES_MIN: u64 = BLOOM_LINE_BYTES;
/// Largest factor a writer folds its filter by once it knows its distinct
/// prefixes (`Bloom::fold_to_fit`; a merge sizes for the sum of its inputs').
pub const BLOOM_FOLD_MAX: u64 = 8;
/// A filter of at least 16 × this many lines gets a multiple of it:
/// lcm(1 ..= 8) × 4, so every fold up to [`BLOOM_FOLD_MAX`] divides it and
/// leaves a count divisible by 4 (for the folds an open run keeps in
/// memory, [`BLOOM_WHOLE_BYTES_MAX`]).
pub const BLOOM_FOLD_GRAIN_LINES: u64 = 3360;
/// An open run keeps a filter of at most this many bytes whole in memory.
/// A larger one keeps only its fold by 2 (5 bits per prefix instead of
/// 10), or by 4 above [`BLOOM_HALF_BYTES_MAX`] (2.5 bits), when its line
/// count allows. A prefix the fold admits (about 14% of absent ones for a
/// fold by 2, 64% for a fold by 4) is checked against its lines on disk:
/// one `pread` of 128 or 256 bytes, compared with the fold, so a changed
/// byte on disk can only turn the answer into "maybe". This is Monkey's
/// idea (Dayan et al., SIGMOD 2017) in its simplest form: the largest runs
/// of a size-tiered set hold most prefixes and get the fewest bits in
/// memory, while the lines on disk keep every run's false-positive rate
/// at about 1%. The other half of it: a set may give the runs whose filter
/// stays whole in memory more bits per prefix
/// (`RunSpec::with_small_run_bits`), which costs little memory (they are
/// the small runs) and makes their false positives rarer.
pub const BLOOM_WHOLE_BYTES_MAX: u64 = 4 << 20;
/// Above this, a run keeps its filter's fold by 4 (see
/// [`BLOOM_WHOLE_BYTES_MAX`]).
pub const BLOOM_HALF_BYTES_MAX: u64 = 64 << 20;
/// Most runs one merge reads at once (memory: one block per input).
pub const MERGE_RUNS_MAX: usize = 64;
/// Most runs a [`crate::RunSet`] opens.
pub const RUN_SET_RUNS_MAX: usize = 1024;
/// Above this many runs, `RunSet::full_tier` merges the cheapest window of
/// neighbours when no window shares a size tier (runs that straddle a
/// tier's bound). A safety valve, not the policy: size-tiered merging keeps
/// about 3 runs per tier (some 30 at 10^10 entries), and the cheapest
/// window, taken again and again, rewrites the newest runs far more often.
pub const MERGE_ANY_ABOVE_RUNS: usize = 128;

// A probe takes 9 bits (a bit of a 512-bit line) of one 64-bit hash.
const _: () = assert!(BLOOM_HASHES >= 1 && BLOOM_HASHES <= BLOOM_HASHES_MAX && 9 * BLOOM_HASHES_MAX <= 64);
const _: () = assert!(BLOOM_LINE_BYTES * 8 == 512 && BLOOM_BYTES_MAX % BLOOM_LINE_BYTES == 0);
// Every fold up to the maximum divides the grain and leaves a multiple of 4.
const _: () = assert!(BLOOM_FOLD_GRAIN_LINES % (840 * 4) == 0 && BLOOM_FOLD_MAX <= 8);
const _: () = assert!(BLOOM_WHOLE_BYTES_MAX < BLOOM_HALF_BYTES_MAX);
const _: () = assert!(BLOOM_BITS_PER_PREFIX <= BLOOM_BITS_PER_PREFIX_MAX);
const _: () = assert!(MERGE_ANY_ABOVE_RUNS < RUN_SET_RUNS_MAX);
// The default block holds at least one entry of any allowed shape.
const _: () = assert!(BLOCK_BYTES_TARGET <= BLOCK_BYTES_MAX && KEY_BYTES_MAX + VALUE_BYTES_MAX <= BLOCK_BYTES_MAX);
