//! The sandbox bank's index of its books by reference: which line booked a
//! reference, so that a repeated call gets the original answer, without
//! the books' whole history in memory (DESIGN.md, History and memory:
//! memory grows with accounts, not with the transfers ever made; before
//! this, the sandbox kept one answer per booked line, about 120 bytes per
//! transfer).
//!
//! The newest answers are in memory ([`References::get`] looks there
//! first), at most [`SANDBOX_RECENT_REFERENCES`] of them. Older ones are in
//! runs of the `fundledger-index` crate in the folder given to
//! [`References::open`] (`<books folder>/references/`): key
//! `hash u64 BE ‖ position u64 BE`, no value, where the hash is the index
//! crate's format hash of the reference and the position is the line's
//! byte offset in the books file plus one. Positions play the part of the
//! history's lsns: a run covers the lines up to its watermark, and
//! start-up reads again every line above the runs' watermark. A hash may
//! collide: the line at each position is read back (one positioned read)
//! and its reference compared.
//!
//! When the memory holds its bound, the caller's thread (a bank call)
//! sorts it into a run (temporary file, fsync, rename, directory fsync);
//! runs are merged in size tiers of [`MERGE_FANOUT`] on a thread of their
//! own, so a bank call never waits for a large merge.
//!
//! Must not: decide what is booked, or write the books file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use fundledger_index::{Direction, IndexError, MergeJob, Run, RunSet, RunSpec};
use hashbrown::HashMap;

use super::sandbox::BookLine;
use super::BankAnswer;
use crate::limits::{SANDBOX_BOOK_LINE_BYTES_MAX, SANDBOX_RECENT_REFERENCES};

const KEY_BYTES: usize = 16;
const PREFIX_BYTES: usize = 8;
/// Blocks of about 16 KiB (1024 keys): the sparse index keeps 0.02 bytes
/// per reference in memory instead of 0.08.
const BLOCK_BYTES: usize = 16 * 1024;
/// Runs of one size tier merged at once (as the history archive does).
const MERGE_FANOUT: usize = 4;
/// Bloom bits per prefix of the runs small enough to keep their filter
/// whole in memory: nearly every reference looked up is new, and each
/// false positive reads a block (as the history archive's lookup table).
const SMALL_RUN_BITS: u64 = 16;

fn hash(reference: &str) -> u64 {
    fundledger_index::format::prefix_hash(reference.as_bytes())
}

fn key(hash: u64, position: u64) -> [u8; KEY_BYTES] {
    let mut key = [0u8; KEY_BYTES];
    key[..PREFIX_BYTES].copy_from_slice(&hash.to_be_bytes());
    key[PREFIX_BYTES..].copy_from_slice(&position.to_be_bytes());
    key
}

fn key_position(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(PREFIX_BYTES..KEY_BYTES)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

fn index_error(error: IndexError) -> String {
    format!("sandbox references: {error}")
}

/// Where the memory stood before a batch's lines were added: what
/// [`References::forget_since`] goes back to when their write failed.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    keys: usize,
    last_position: u64,
}

type MergeOutcome = Result<(MergeJob, Run), IndexError>;

pub struct References {
    dir: PathBuf,
    runs: RunSet,
    /// The answers of the lines above the runs' watermark.
    recent: HashMap<Box<str>, BankAnswer>,
    /// Their keys, in booking order (for the next run, and to forget).
    recent_keys: Vec<[u8; KEY_BYTES]>,
    /// Position of the newest line `recent` holds (the next run's watermark).
    last_position: u64,
    merging: Option<JoinHandle<MergeOutcome>>,
    /// Answers held in memory before they are written as a run
    /// ([`SANDBOX_RECENT_REFERENCES`]; tests use less).
    recent_max: usize,
}

impl References {
    /// Opens (or creates) the runs in `dir` for a books file whose whole
    /// lines end at byte `books_bytes`. Runs that reach beyond it (the books
    /// were cut under them, which the sandbox itself never does) are
    /// dropped, and the caller reads those lines again; runs that cannot be
    /// opened (damaged) are all dropped the same way.
    pub fn open(dir: &Path, books_bytes: u64) -> Result<Self, String> {
        Self::open_with(dir, books_bytes, SANDBOX_RECENT_REFERENCES)
    }

    /// [`References::open`], holding at most `recent_max` answers in memory.
    pub fn open_with(dir: &Path, books_bytes: u64, recent_max: usize) -> Result<Self, String> {
        let spec =
            RunSpec::new(KEY_BYTES, 0, PREFIX_BYTES).with_block_bytes(BLOCK_BYTES).with_small_run_bits(SMALL_RUN_BITS);
        let afresh = |why: String| -> Result<RunSet, String> {
            // The index is derived from the books: the caller reads every
            // line again and the runs are written anew.
            tracing::warn!(dir = %dir.display(), %why, "sandbox references: building the index again from the books");
            std::fs::remove_dir_all(dir).map_err(|error| format!("cannot remove {}: {error}", dir.display()))?;
            RunSet::open(dir, spec).map_err(index_error)
        };
        let mut runs = match RunSet::open(dir, spec) {
            Ok(runs) => runs,
            Err(error) => afresh(index_error(error))?,
        };
        if runs.watermark() > books_bytes && runs.remove_runs_above(books_bytes).is_err() {
            drop(runs);
            runs = afresh(format!("a run reaches past the books' end at byte {books_bytes}"))?;
        }
        let last_position = runs.watermark();
        let references = Self {
            dir: dir.to_path_buf(),
            runs,
            recent: HashMap::new(),
            recent_keys: Vec::new(),
            last_position,
            merging: None,
            recent_max: recent_max.max(1),
        };
        references.report_metrics();
        Ok(references)
    }

    /// Lines at positions up to here are in the runs.
    pub fn watermark(&self) -> u64 {
        self.runs.watermark()
    }

    /// Answers held in memory.
    #[cfg(test)]
    pub fn recent_len(&self) -> usize {
        self.recent.len()
    }

    /// Entries of each run, oldest first.
    #[cfg(test)]
    pub fn run_sizes(&self) -> Vec<u64> {
        self.runs.runs().iter().map(|member| member.run.entry_count()).collect()
    }

    /// Runs on disk.
    pub fn run_count(&self) -> usize {
        self.runs.runs().len()
    }

    /// `/metrics`, after each change of the runs:
    /// `fundledger_sandbox_reference_runs{bank}` and
    /// `fundledger_sandbox_reference_memory_bytes{bank}`, what the runs keep
    /// in memory (Bloom filters, sparse indexes: about 1.27 bytes per
    /// reference, 0.65 or 0.33 in runs large enough to keep only their
    /// filter's fold; it does grow with the bank's history).
    fn report_metrics(&self) {
        let bank = self.dir.parent().and_then(Path::file_name).map(|name| name.to_string_lossy().into_owned());
        let bank = bank.unwrap_or_default();
        let memory: usize = self.runs.runs().iter().map(|member| member.run.memory_bytes()).sum();
        metrics::gauge!("fundledger_sandbox_reference_runs", "bank" => bank.clone()).set(self.run_count() as f64);
        metrics::gauge!("fundledger_sandbox_reference_memory_bytes", "bank" => bank).set(memory as f64);
    }

    /// The answer booked under `reference`, if any: from memory, else from
    /// the line the runs point at in `books` (read back and compared).
    pub fn get(&self, reference: &str, books: &File) -> Result<Option<BankAnswer>, String> {
        if let Some(answer) = self.recent.get(reference) {
            return Ok(Some(answer.clone()));
        }
        let prefix = hash(reference).to_be_bytes();
        // Reads only the runs whose filter admits the prefix: none, mostly.
        for entry in self.runs.get_prefix(&prefix, Direction::Forward).map_err(index_error)? {
            let entry = entry.map_err(index_error)?;
            let position = key_position(&entry.key).filter(|&position| position > 0);
            let Some(position) = position else {
                return Err(format!("sandbox references: a key of {} bytes", entry.key.len()));
            };
            let line = read_line_at(books, position - 1)?;
            if line.reference == reference {
                return Ok(Some(line.answer()));
            }
        }
        Ok(None)
    }

    /// Where the memory stands now (see [`Mark`]).
    pub fn mark(&self) -> Mark {
        Mark { keys: self.recent_keys.len(), last_position: self.last_position }
    }

    /// Remembers that the line at `position` (its byte offset + 1, above
    /// every position so far) booked `reference` with `answer`. A reference
    /// already booked keeps its first answer.
    pub fn insert(&mut self, reference: &str, position: u64, answer: BankAnswer) {
        assert!(position > self.last_position, "book lines are added in file order");
        self.last_position = position;
        if let hashbrown::hash_map::EntryRef::Vacant(vacant) = self.recent.entry_ref(reference) {
            vacant.insert_with_key(reference.into(), answer);
            self.recent_keys.push(key(hash(reference), position));
        }
    }

    /// Forgets `references`, inserted since `mark` (their lines were not
    /// written after all).
    pub fn forget_since(&mut self, mark: Mark, references: &[&str]) {
        for reference in references {
            self.recent.remove(*reference);
        }
        self.recent_keys.truncate(mark.keys);
        self.last_position = mark.last_position;
    }

    /// Once the memory holds its bound: writes it as a run and drops it.
    /// Installs a merge that finished, and starts one if a size tier is
    /// full. On an error the memory is kept (and written next time).
    pub fn flush_if_full(&mut self) -> Result<(), String> {
        self.finish_merge()?;
        if self.recent.len() >= self.recent_max {
            self.flush()?;
            self.report_metrics();
        }
        // Also after a merge was installed: its output may fill the next tier.
        self.start_merge()
    }

    /// Writes what memory holds as one run (nothing if it holds nothing).
    fn flush(&mut self) -> Result<(), String> {
        if self.recent_keys.is_empty() {
            return Ok(());
        }
        let mut keys = std::mem::take(&mut self.recent_keys);
        fundledger_index::sort_keys(&mut keys);
        let first = self.runs.watermark() + 1;
        let written =
            self.runs.write_run(first, self.last_position, keys.len() as u64, keys.iter().map(|k| (k, [0u8; 0])));
        match written {
            Ok(_) => {
                self.recent.clear();
                self.recent.shrink_to(self.recent_max);
                keys.clear();
                self.recent_keys = keys;
                Ok(())
            }
            Err(error) => {
                // Keep the keys for the next attempt (sorted order is as good).
                self.recent_keys = keys;
                Err(index_error(error))
            }
        }
    }

    fn start_merge(&mut self) -> Result<(), String> {
        if self.merging.is_some() {
            return Ok(());
        }
        let Some(start) = self.runs.full_tier(MERGE_FANOUT) else { return Ok(()) };
        let job = self.runs.prepare_merge(start, MERGE_FANOUT).map_err(index_error)?;
        let handle = std::thread::Builder::new()
            .name("sandbox-refs-merge".into())
            .spawn(move || {
                crate::threads::run_in_background();
                let output = job.run()?;
                Ok((job, output))
            })
            .map_err(|error| format!("cannot start a merge of {}: {error}", self.dir.display()))?;
        self.merging = Some(handle);
        Ok(())
    }

    /// Installs a merge that has finished (does not wait for one).
    fn finish_merge(&mut self) -> Result<(), String> {
        if self.merging.as_ref().is_some_and(JoinHandle::is_finished) {
            self.install_merge()?;
        }
        Ok(())
    }

    /// Waits for the merge in progress, if any, and installs it.
    fn install_merge(&mut self) -> Result<(), String> {
        let Some(handle) = self.merging.take() else { return Ok(()) };
        let (job, output) = handle
            .join()
            .map_err(|_| "sandbox references: the merge thread panicked".to_string())?
            .map_err(index_error)?;
        self.runs.finish_merge(job, output).map_err(index_error)?;
        self.report_metrics();
        Ok(())
    }

    /// Waits for a merge in progress and installs it (tests).
    #[cfg(test)]
    pub fn settle(&mut self) -> Result<(), String> {
        self.install_merge()
    }
}

/// The line that starts at byte `offset` of `books`.
fn read_line_at(books: &File, offset: u64) -> Result<BookLine, String> {
    let mut line = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let read = books
            .read_at(&mut chunk, offset + line.len() as u64)
            .map_err(|error| format!("sandbox books: cannot read at {offset}: {error}"))?;
        if read == 0 {
            return Err(format!("sandbox books: the line at {offset} has no end"));
        }
        match chunk[..read].iter().position(|&byte| byte == b'\n') {
            Some(end) => {
                line.extend_from_slice(&chunk[..end]);
                break;
            }
            None => line.extend_from_slice(&chunk[..read]),
        }
        if line.len() > SANDBOX_BOOK_LINE_BYTES_MAX {
            return Err(format!(
                "sandbox books: the line at {offset} is longer than {SANDBOX_BOOK_LINE_BYTES_MAX} bytes"
            ));
        }
    }
    serde_json::from_slice(&line).map_err(|error| format!("sandbox books: bad line at {offset}: {error}"))
}
