//! [`RunSet`]: the runs of one logical table in one directory, read as one
//! sorted map. Owns that directory: it creates runs there, merges them, and
//! removes `*.tmp` leftovers and runs a merge has made redundant. Files whose
//! names it does not recognise are left alone.
//!
//! # Names
//!
//! A run is named `<first, 20 digits>-<watermark, 20 digits>.run`: it holds
//! the entries the caller derived from lsns `first ..= watermark` (the header's
//! `watermark` must agree with the name). Runs of a set cover disjoint lsn
//! intervals; a merge only takes neighbours, and its output covers exactly
//! their union. So after a crash between a merge's rename and the deletion of
//! its inputs, start-up finds runs whose interval lies inside another's and
//! removes them (after the covering run opened cleanly). Intervals that
//! overlap without one containing the other are refused.
//!
//! # Keys that end in the lsn
//!
//! [`RunSet::get_by_lsn`] serves tables whose key is `prefix ‖ lsn` (the lsn
//! u64 big-endian in the last 8 bytes, e.g. the journal's `account ‖ lsn`):
//! for one full prefix, key order is lsn order, and the runs' lsn intervals
//! are disjoint, so it reads the runs one after another (newest first for a
//! reverse page) instead of merging them, and a page touches only the runs
//! it needs. Every entry's lsn is checked against its run's interval: a key
//! that breaks the assumption is an error, never an answer out of order.
//!
//! # Concurrency
//!
//! Runs are immutable and held in `Arc`s: a caller may clone [`RunSet::runs`]
//! out and merge them on another thread with [`crate::merge()`]; this type
//! itself is single-threaded and its merge is synchronous.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{hex, IndexError};
use crate::format::prefix_hash;
use crate::limits::{MERGE_ANY_ABOVE_RUNS, RUN_SET_RUNS_MAX};
use crate::merge::merge_as;
use crate::run::{Direction, Entry, Run, RunRange};
use crate::writer::{sync_directory, RunSpec, RunWriter};

const RUN_SUFFIX: &str = ".run";
const TEMPORARY_SUFFIX: &str = ".tmp";
const NUMBER_DIGITS: usize = 20;
/// The lsn at the end of a key, for [`RunSet::get_by_lsn`].
const LSN_BYTES: usize = 8;

#[derive(Debug, Clone)]
pub struct Member {
    /// First lsn the run covers (from its name); its `watermark()` is the last.
    pub first: u64,
    pub run: Arc<Run>,
}

impl Member {
    fn last(&self) -> u64 {
        self.run.watermark()
    }

    /// How many lsns the run covers.
    pub fn lsn_span(&self) -> u64 {
        self.last() - self.first + 1
    }
}

#[derive(Debug)]
pub struct RunSet {
    directory: PathBuf,
    spec: RunSpec,
    /// In lsn order: each covers lsns above the one before.
    members: Vec<Member>,
}

/// `<first>-<watermark>.run`.
pub fn run_file_name(first: u64, watermark: u64) -> String {
    format!("{first:0width$}-{watermark:0width$}{RUN_SUFFIX}", width = NUMBER_DIGITS)
}

fn parse_run_file_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(RUN_SUFFIX)?;
    let (first, last) = stem.split_once('-')?;
    let digits = |part: &str| part.len() == NUMBER_DIGITS && part.bytes().all(|byte| byte.is_ascii_digit());
    if !digits(first) || !digits(last) {
        return None;
    }
    Some((first.parse().ok()?, last.parse().ok()?))
}

impl RunSet {
    /// Opens (creating the directory if needed) every run in `directory`,
    /// which must all have `spec`'s shape. Removes `*.tmp` leftovers and runs
    /// covered by another run. A run that fails to open is an error: the set
    /// would otherwise answer with entries missing.
    pub fn open(directory: &Path, spec: RunSpec) -> Result<RunSet, IndexError> {
        spec.check()?;
        let io = |error| IndexError::io(directory, error);
        std::fs::create_dir_all(directory).map_err(io)?;
        let mut temporaries = Vec::new();
        let mut named = Vec::new();
        for item in std::fs::read_dir(directory).map_err(io)? {
            let name = item.map_err(io)?.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(TEMPORARY_SUFFIX) {
                temporaries.push(directory.join(name));
            } else if let Some((first, last)) = parse_run_file_name(name) {
                if first > last {
                    return Err(IndexError::corrupt(
                        directory.join(name),
                        0,
                        "run name's first lsn above its watermark",
                    ));
                }
                named.push((first, last, directory.join(name)));
            }
        }
        if named.len() > RUN_SET_RUNS_MAX {
            return Err(IndexError::Invalid(format!(
                "{} runs in {}, at most {RUN_SET_RUNS_MAX}",
                named.len(),
                directory.display()
            )));
        }
        // A covering run sorts before the runs it covers (same first, higher last).
        named.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut kept: Vec<(u64, u64, PathBuf)> = Vec::new();
        let mut covered = Vec::new();
        for (first, last, path) in named {
            match kept.last() {
                Some(&(_, kept_last, _)) if last <= kept_last => covered.push(path),
                Some((_, kept_last, kept_path)) if first <= *kept_last => {
                    return Err(IndexError::corrupt(
                        &path,
                        0,
                        format!("its lsn interval overlaps that of {} without containing it", kept_path.display()),
                    ))
                }
                _ => kept.push((first, last, path)),
            }
        }
        let mut members = Vec::with_capacity(kept.len());
        for (first, last, path) in kept {
            let run = Run::open(&path)?;
            if run.watermark() != last {
                return Err(IndexError::corrupt(
                    &path,
                    0,
                    format!("header watermark {} differs from the name", run.watermark()),
                ));
            }
            if !run.spec().same_shape(&spec) {
                return Err(IndexError::Invalid(format!(
                    "{} is {:?}, the set is {spec:?}",
                    path.display(),
                    run.spec()
                )));
            }
            members.push(Member { first, run: Arc::new(run) });
        }
        // Only now, with every covering run open, is anything deleted.
        let removals = temporaries.len() + covered.len();
        for path in temporaries.into_iter().chain(covered) {
            std::fs::remove_file(&path).map_err(|error| IndexError::io(&path, error))?;
        }
        if removals > 0 {
            sync_directory(directory)?;
        }
        Ok(RunSet { directory: directory.to_path_buf(), spec, members })
    }

    pub fn runs(&self) -> &[Member] {
        &self.members
    }

    /// The highest lsn any run covers (0 for none): the caller rebuilds
    /// everything above it from the log.
    pub fn watermark(&self) -> u64 {
        self.members.last().map_or(0, Member::last)
    }

    /// Writes a run of `entries` (sorted, unique keys) covering lsns
    /// `first ..= watermark`, above every run already in the set.
    pub fn write_run<Key, Value>(
        &mut self,
        first: u64,
        watermark: u64,
        prefixes_expected: u64,
        entries: impl IntoIterator<Item = (Key, Value)>,
    ) -> Result<Arc<Run>, IndexError>
    where
        Key: AsRef<[u8]>,
        Value: AsRef<[u8]>,
    {
        if first > watermark || self.members.last().is_some_and(|member| first <= member.last()) {
            return Err(IndexError::Invalid(format!(
                "run for lsns {first} ..= {watermark} does not follow the set's watermark {}",
                self.watermark()
            )));
        }
        if self.members.len() >= RUN_SET_RUNS_MAX {
            return Err(IndexError::Invalid(format!("the set already holds {RUN_SET_RUNS_MAX} runs: merge first")));
        }
        let path = self.directory.join(run_file_name(first, watermark));
        let mut writer = RunWriter::create(&path, self.spec, watermark, prefixes_expected)?;
        for (key, value) in entries {
            writer.push(key.as_ref(), value.as_ref())?;
        }
        let run = Arc::new(writer.finish()?);
        self.members.push(Member { first, run: Arc::clone(&run) });
        Ok(run)
    }

    /// Deletes the runs above `watermark` (their lsns will be derived
    /// again). A run that straddles it is an error: it cannot be cut.
    pub fn remove_runs_above(&mut self, watermark: u64) -> Result<(), IndexError> {
        let keep = self.members.partition_point(|member| member.last() <= watermark);
        if let Some(straddling) = self.members.get(keep).filter(|member| member.first <= watermark) {
            return Err(IndexError::Invalid(format!(
                "run {} straddles lsn {watermark}: it cannot be cut there",
                straddling.run.path().display()
            )));
        }
        for member in self.members.split_off(keep) {
            let path = member.run.path();
            std::fs::remove_file(path).map_err(|error| IndexError::io(path, error))?;
        }
        sync_directory(&self.directory)
    }

    /// Merges the `count` neighbouring runs from position `start` into one,
    /// then deletes them. A crash in between leaves them covered by the
    /// output, and the next `open` removes them.
    pub fn merge_runs(&mut self, start: usize, count: usize) -> Result<(), IndexError> {
        let job = self.prepare_merge(start, count)?;
        let output = job.run()?;
        self.finish_merge(job, output)
    }

    /// The first half of [`RunSet::merge_runs`], for merging on another
    /// thread: what to merge and where. The set may write new runs
    /// meanwhile; [`RunSet::finish_merge`] installs the output.
    pub fn prepare_merge(&self, start: usize, count: usize) -> Result<MergeJob, IndexError> {
        let end = start.checked_add(count).filter(|&end| count >= 2 && end <= self.members.len());
        let Some(end) = end else {
            return Err(IndexError::Invalid(format!("merge of runs {start} + {count} of {}", self.members.len())));
        };
        let inputs = self.members[start..end].to_vec();
        let first = inputs[0].first;
        let watermark = inputs[count - 1].last();
        let path = self.directory.join(run_file_name(first, watermark));
        Ok(MergeJob { first, watermark, inputs, path, spec: self.spec })
    }

    /// Replaces a merge's inputs by its output and deletes their files. The
    /// inputs must still be in the set, side by side.
    pub fn finish_merge(&mut self, job: MergeJob, output: Run) -> Result<(), IndexError> {
        let start = self.members.iter().position(|member| Arc::ptr_eq(&member.run, &job.inputs[0].run));
        let end = start.map(|start| start + job.inputs.len());
        let same = |start: usize, end: usize| {
            end <= self.members.len()
                && self.members[start..end].iter().zip(&job.inputs).all(|(a, b)| Arc::ptr_eq(&a.run, &b.run))
        };
        let (Some(start), Some(end)) = (start, end) else {
            return Err(IndexError::Invalid("a merge's inputs left the set before it finished".into()));
        };
        if !same(start, end) || output.watermark() != job.watermark {
            return Err(IndexError::Invalid("a merge's inputs changed before it finished".into()));
        }
        let merged = Member { first: job.first, run: Arc::new(output) };
        let removed: Vec<Member> = self.members.splice(start..end, [merged]).collect();
        for member in &removed {
            let path = member.run.path();
            std::fs::remove_file(path).map_err(|error| IndexError::io(path, error))?;
        }
        sync_directory(&self.directory)
    }

    /// Where the next merge of `fanout` neighbouring runs starts, if one is
    /// due: the newest window whose runs share one size tier (tier:
    /// floor(log_fanout of entries)). That is size-tiered merging, under
    /// which a run is rewritten about log_fanout(history / flush) times and
    /// a set holds about `fanout - 1` runs per tier. Not only the newest
    /// runs: runs written while a merge ran sit above its output, and the
    /// output's tier must still fill and merge.
    pub fn full_tier(&self, fanout: usize) -> Option<usize> {
        self.full_tier_by(fanout, |member| member.run.entry_count())
    }

    /// [`RunSet::full_tier`] with tiers of `size` (entries, or the lsns a
    /// run covers: a table whose entries per lsn vary has runs that
    /// straddle a tier's bound by entries but not by lsns).
    ///
    /// Runs that straddle a bound anyway (a short flush) can sit between
    /// runs of another tier and never form a window. So once the set holds
    /// more than [`MERGE_ANY_ABOVE_RUNS`] runs, the window with the least
    /// `size` is merged instead: the run count stays far below
    /// [`RUN_SET_RUNS_MAX`] whatever the sizes.
    pub fn full_tier_by(&self, fanout: usize, size: impl Fn(&Member) -> u64) -> Option<usize> {
        let fanout = fanout.max(2);
        let tier = |member: &Member| size(member).max(1).ilog(fanout as u64);
        let last_start = self.members.len().checked_sub(fanout)?;
        let same_tier = (0..=last_start).rev().find(|&start| {
            let window = &self.members[start..start + fanout];
            window.iter().all(|member| tier(member) == tier(&window[0]))
        });
        if same_tier.is_some() || self.members.len() <= MERGE_ANY_ABOVE_RUNS {
            return same_tier;
        }
        let window_size = |start: usize| -> u64 { self.members[start..start + fanout].iter().map(&size).sum() };
        (0..=last_start).rev().min_by_key(|&start| window_size(start))
    }

    /// Every entry whose key starts with `prefix`, across all runs, in key order.
    pub fn get_prefix(&self, prefix: &[u8], direction: Direction) -> Result<SetRange<'_>, IndexError> {
        get_prefix_in(&self.members, &self.spec, prefix, direction)
    }

    /// Every entry whose key is `prefix ‖ lsn` (`prefix` exactly K − 8 bytes),
    /// in lsn order, reading the runs one after another (module doc).
    pub fn get_by_lsn(&self, prefix: &[u8], direction: Direction) -> Result<LsnRange<'_>, IndexError> {
        get_by_lsn_in(&self.members, &self.spec, prefix, direction)
    }

    /// Every entry with `lo <= key <= hi`, across all runs, in key order.
    pub fn range(&self, lo: &[u8], hi: &[u8], direction: Direction) -> Result<SetRange<'_>, IndexError> {
        range_in(&self.members, lo, hi, direction)
    }

    /// The runs as they are now, to read from other threads while this set
    /// goes on writing and merging (runs are immutable; a merged-away run's
    /// file is deleted, but an open `Run` keeps reading it: its descriptor
    /// stays valid until the last `Arc` is dropped).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { spec: self.spec, members: self.members.clone().into() }
    }
}

/// A merge prepared by [`RunSet::prepare_merge`]: [`MergeJob::run`] needs
/// no access to the set (run it on any thread).
#[derive(Debug)]
pub struct MergeJob {
    first: u64,
    watermark: u64,
    inputs: Vec<Member>,
    path: PathBuf,
    /// The set's: the output takes its block size.
    spec: RunSpec,
}

impl MergeJob {
    /// Entries the merge will write.
    pub fn entry_count(&self) -> u64 {
        self.inputs.iter().map(|member| member.run.entry_count()).sum()
    }

    /// Writes the merged run (temporary file, fsync, rename, directory fsync).
    pub fn run(&self) -> Result<Run, IndexError> {
        let runs: Vec<&Run> = self.inputs.iter().map(|member| member.run.as_ref()).collect();
        merge_as(&runs, self.spec, &self.path, self.watermark)
    }
}

/// A read-only view of a [`RunSet`] at one moment: cheap to clone, `Send`
/// and `Sync`; the same reads as the set.
#[derive(Debug, Clone)]
pub struct Snapshot {
    spec: RunSpec,
    members: Arc<[Member]>,
}

impl Snapshot {
    /// A view with no runs.
    pub fn empty(spec: RunSpec) -> Snapshot {
        Snapshot { spec, members: Arc::new([]) }
    }

    pub fn runs(&self) -> &[Member] {
        &self.members
    }

    pub fn watermark(&self) -> u64 {
        self.members.last().map_or(0, Member::last)
    }

    /// [`RunSet::get_prefix`] on this view.
    pub fn get_prefix(&self, prefix: &[u8], direction: Direction) -> Result<SetRange<'_>, IndexError> {
        get_prefix_in(&self.members, &self.spec, prefix, direction)
    }

    /// Start loading the filter lines a [`Snapshot::get_prefix`] of
    /// `prefix` will check, one per run (a hint: nothing is read or
    /// changed). A loop looking up many prefixes calls it a few prefixes
    /// ahead, so that those cache misses are not waited for in turn.
    pub fn prefetch_prefix(&self, prefix: &[u8]) {
        let prefix_bytes = self.spec.prefix_bytes;
        if prefix_bytes == 0 || prefix.len() < prefix_bytes || prefix.len() > self.spec.key_bytes {
            return;
        }
        let hash = prefix_hash(&prefix[..prefix_bytes]);
        for member in self.members.iter() {
            member.run.prefetch_filter(prefix_bytes, hash);
        }
    }

    /// [`RunSet::get_by_lsn`] on this view.
    pub fn get_by_lsn(&self, prefix: &[u8], direction: Direction) -> Result<LsnRange<'_>, IndexError> {
        get_by_lsn_in(&self.members, &self.spec, prefix, direction)
    }

    /// [`RunSet::range`] on this view.
    pub fn range(&self, lo: &[u8], hi: &[u8], direction: Direction) -> Result<SetRange<'_>, IndexError> {
        range_in(&self.members, lo, hi, direction)
    }

    /// Memory the runs hold (sparse indexes and Bloom filters).
    pub fn memory_bytes(&self) -> usize {
        self.members.iter().map(|member| member.run.memory_bytes()).sum()
    }
}

fn get_prefix_in<'a>(
    members: &'a [Member],
    spec: &RunSpec,
    prefix: &[u8],
    direction: Direction,
) -> Result<SetRange<'a>, IndexError> {
    if prefix.len() > spec.key_bytes {
        return Err(IndexError::Invalid(format!("prefix of {} bytes for {}-byte keys", prefix.len(), spec.key_bytes)));
    }
    // Each run's filter once, with one hash for all: only runs that may
    // hold the prefix are read (and a prefix no run admits allocates nothing).
    let mut hashed = None;
    let prefix_bytes = spec.prefix_bytes;
    if members.len() > 1 && prefix_bytes > 0 && prefix.len() >= prefix_bytes {
        // Every filter's line first: a new client id is checked against
        // every lookup run, each line a cache miss of its own, which go out
        // together this way instead of one after another.
        let hash = prefix_hash(&prefix[..prefix_bytes]);
        for member in members {
            member.run.touch_filter(prefix_bytes, hash);
        }
        hashed = Some((prefix_bytes, hash));
    }
    let sources = members
        .iter()
        .filter(|member| member.run.may_contain_prefix_with(prefix, &mut hashed))
        .map(|member| member.run.prefix_range(prefix, direction))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SetRange::new(sources, direction))
}

fn get_by_lsn_in<'a>(
    members: &'a [Member],
    spec: &RunSpec,
    prefix: &[u8],
    direction: Direction,
) -> Result<LsnRange<'a>, IndexError> {
    if spec.key_bytes.checked_sub(LSN_BYTES) != Some(prefix.len()) {
        return Err(IndexError::Invalid(format!(
            "get_by_lsn needs a prefix of key bytes − {LSN_BYTES} ({}), not {}",
            spec.key_bytes,
            prefix.len()
        )));
    }
    Ok(LsnRange { members, prefix: prefix.to_vec(), direction, consumed: 0, current: None })
}

fn range_in<'a>(members: &'a [Member], lo: &[u8], hi: &[u8], direction: Direction) -> Result<SetRange<'a>, IndexError> {
    let sources = members.iter().map(|member| member.run.range(lo, hi, direction)).collect::<Result<Vec<_>, _>>()?;
    Ok(SetRange::new(sources, direction))
}

/// A lazy read over several runs, merged in key order; one block per run in
/// memory. A key found in two runs is an error.
pub struct SetRange<'a> {
    sources: Vec<RunRange<'a>>,
    heads: Vec<Option<Entry>>,
    direction: Direction,
    started: bool,
    finished: bool,
}

impl<'a> SetRange<'a> {
    fn new(sources: Vec<RunRange<'a>>, direction: Direction) -> Self {
        let heads = vec![None; sources.len()];
        SetRange { sources, heads, direction, started: false, finished: false }
    }

    fn advance(&mut self) -> Result<Option<Entry>, IndexError> {
        if !self.started {
            for (head, source) in self.heads.iter_mut().zip(&mut self.sources) {
                *head = source.next().transpose()?;
            }
            self.started = true;
        }
        let wanted = match self.direction {
            Direction::Forward => Ordering::Less,
            Direction::Reverse => Ordering::Greater,
        };
        let mut best: Option<usize> = None;
        for candidate in 0..self.heads.len() {
            let Some(head) = &self.heads[candidate] else { continue };
            let Some(best_head) = best.and_then(|index| self.heads[index].as_ref()) else {
                best = Some(candidate);
                continue;
            };
            match head.key.cmp(&best_head.key) {
                Ordering::Equal => return Err(IndexError::Duplicate { key: hex(&head.key) }),
                order if order == wanted => best = Some(candidate),
                _ => {}
            }
        }
        let Some(best) = best else { return Ok(None) };
        let entry = self.heads[best].take();
        self.heads[best] = self.sources[best].next().transpose()?;
        Ok(entry)
    }
}

impl Iterator for SetRange<'_> {
    type Item = Result<Entry, IndexError>;

    /// After an error the iterator is over.
    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.advance() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(error) => {
                self.finished = true;
                Some(Err(error))
            }
        }
    }
}

/// A lazy read of one `prefix ‖ lsn` key range, run after run.
pub struct LsnRange<'a> {
    members: &'a [Member],
    prefix: Vec<u8>,
    direction: Direction,
    /// Runs started so far, counted from the oldest (forward) or newest.
    consumed: usize,
    /// The run being read, with its lsn interval.
    current: Option<(RunRange<'a>, &'a Member)>,
}

impl LsnRange<'_> {
    fn advance(&mut self) -> Result<Option<Entry>, IndexError> {
        loop {
            if let Some((range, member)) = &mut self.current {
                if let Some(entry) = range.next().transpose()? {
                    let mut lsn = [0u8; LSN_BYTES];
                    lsn.copy_from_slice(&entry.key[entry.key.len() - LSN_BYTES..]);
                    let lsn = u64::from_be_bytes(lsn);
                    if lsn < member.first || lsn > member.last() {
                        return Err(IndexError::corrupt(
                            member.run.path(),
                            0,
                            format!("key {} ends in lsn {lsn}, outside the run's interval", hex(&entry.key)),
                        ));
                    }
                    return Ok(Some(entry));
                }
                self.current = None;
            }
            if self.consumed == self.members.len() {
                return Ok(None);
            }
            let position = match self.direction {
                Direction::Forward => self.consumed,
                Direction::Reverse => self.members.len() - 1 - self.consumed,
            };
            self.consumed += 1;
            let member = &self.members[position];
            self.current = Some((member.run.get_prefix(&self.prefix, self.direction)?, member));
        }
    }
}

impl Iterator for LsnRange<'_> {
    type Item = Result<Entry, IndexError>;

    /// After an error the iterator is over.
    fn next(&mut self) -> Option<Self::Item> {
        match self.advance() {
            Ok(entry) => entry.map(Ok),
            Err(error) => {
                self.consumed = self.members.len();
                self.current = None;
                Some(Err(error))
            }
        }
    }
}
