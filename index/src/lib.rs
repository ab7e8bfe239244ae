//! fundledger's on-disk history index. It knows nothing of accounts: an
//! entry is a fixed-size key (compared as bytes; callers encode integers
//! big-endian) and a fixed-size value.
//!
//! The server keeps recent entries in memory (its memtable, not this crate's
//! business); when that buffer reaches its bound it sorts the entries and
//! writes them here as an immutable sorted **run**. Reads merge the runs (and
//! the caller merges its memtable on top); runs are merged in the background
//! to keep their count small. Nothing is ever updated or deleted: keys carry
//! the lsn, so they are unique by construction, and a duplicate is an error.
//!
//! # Layout
//!
//! In the order an entry meets them:
//!
//! - [`writer`]: [`RunWriter`] streams sorted entries into `<name>.tmp`, then
//!   fsync, rename, directory fsync.
//! - [`format`](mod@format): the byte layout of a run, field by field, next to
//!   the code that encodes and decodes it.
//! - [`bloom`]: the blocked Bloom filter over a key prefix of P bytes.
//! - [`run`]: [`Run::open`] (checks all metadata), `get_prefix` and `range`,
//!   forward or reverse, lazily block by block (each block checked on read).
//! - [`merge`](mod@merge): [`merge()`], the k-way merge of runs into one.
//! - [`run_set`]: [`RunSet`], the runs of one table in one directory: names
//!   that carry the lsn interval, start-up clean-up, reads across runs
//!   (merged by key, or run after run for keys that end in the lsn).
//! - [`limits`]: every bound, in one place.
//! - [`error`]: the one error type, [`IndexError`].
//!
//! # Failure
//!
//! Bytes that are not a valid run give [`IndexError::Corrupt`] (file and
//! offset), from `open` for the metadata and from the read for a data block:
//! never a panic and never a wrong entry. Every length read from a file is
//! checked against [`limits`] before anything is allocated for it.

pub mod bloom;
pub mod error;
pub mod format;
pub mod limits;
pub mod merge;
pub mod prefetch;
pub mod run;
pub mod run_set;
pub mod writer;

pub use error::IndexError;
pub use format::compare_keys;
pub use merge::{merge, merge_as};
pub use run::{filter_disk_reads, range_block_reads, Direction, Entry, FilterResidence, Run, RunRange};
pub use run_set::{run_file_name, LsnRange, Member, MergeJob, RunSet, SetRange, Snapshot};
pub use writer::{sort_keys, RunSpec, RunWriter};
