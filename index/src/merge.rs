//! [`merge()`]: k-way merge of runs into one new run. Reads its inputs (one
//! block of each in memory at a time) and writes only its output; deleting
//! the inputs is the caller's business (see [`crate::RunSet`]).

use std::path::Path;

use crate::error::IndexError;
use crate::format::compare_keys;
use crate::limits::MERGE_RUNS_MAX;
use crate::run::{Block, Run};
use crate::writer::{RunSpec, RunWriter};

/// Merges `runs` (same K, V and P; at most [`MERGE_RUNS_MAX`]) into a new run
/// at `out_path` with `watermark`, and opens it. A key present in two inputs
/// is an error ([`IndexError::Duplicate`]): keys are unique by construction,
/// so a duplicate means a bug or a run merged twice. The output keeps the
/// block size of the first input; its Bloom filter is sized for the sum of
/// the inputs' distinct prefixes, then folded to what it holds.
pub fn merge(runs: &[&Run], out_path: &Path, watermark: u64) -> Result<Run, IndexError> {
    let Some(first) = runs.first() else {
        return Err(IndexError::Invalid("merge of no runs".into()));
    };
    merge_as(runs, first.spec(), out_path, watermark)
}

/// [`merge()`] into a run of `spec`: the inputs' shape, and perhaps another
/// block size (a set whose block size changed rewrites old runs at the new
/// one as it merges them).
pub fn merge_as(runs: &[&Run], spec: RunSpec, out_path: &Path, watermark: u64) -> Result<Run, IndexError> {
    let Some(first) = runs.first() else {
        return Err(IndexError::Invalid("merge of no runs".into()));
    };
    if runs.len() > MERGE_RUNS_MAX {
        return Err(IndexError::Invalid(format!("merge of {} runs, at most {MERGE_RUNS_MAX}", runs.len())));
    }
    if let Some(other) = runs.iter().find(|run| !run.spec().same_shape(&spec)) {
        return Err(IndexError::Invalid(format!(
            "merge into {spec:?} of runs of other shapes: {} is {:?}, {} is {:?}",
            first.path().display(),
            first.spec(),
            other.path().display(),
            other.spec()
        )));
    }
    let prefixes_expected = runs.iter().map(|run| run.prefix_count()).fold(0u64, u64::saturating_add);
    let mut writer = RunWriter::create(out_path, spec, watermark, prefixes_expected)?;
    let mut cursors = runs.iter().map(|run| ScanCursor::start(run)).collect::<Result<Vec<_>, _>>()?;
    loop {
        let mut smallest: Option<usize> = None;
        for (candidate, cursor) in cursors.iter().enumerate() {
            let Some(key) = cursor.key() else { continue };
            // An equal key in two inputs reaches the writer twice in a row: it refuses it as a duplicate.
            if smallest.and_then(|index| cursors[index].key()).is_none_or(|best| compare_keys(key, best).is_lt()) {
                smallest = Some(candidate);
            }
        }
        let Some(index) = smallest else { break };
        let cursor = &mut cursors[index];
        if let (Some(key), Some(value)) = (cursor.key(), cursor.value()) {
            writer.push(key, value)?;
        }
        cursor.advance()?;
    }
    writer.finish()
}

/// Every entry of a run in key order, without copying: the merge's input.
struct ScanCursor<'a> {
    run: &'a Run,
    block: Option<Block>,
    position: usize,
}

impl<'a> ScanCursor<'a> {
    fn start(run: &'a Run) -> Result<Self, IndexError> {
        let block = if run.block_count() > 0 { Some(run.read_block(0)?) } else { None };
        Ok(ScanCursor { run, block, position: 0 })
    }

    fn key(&self) -> Option<&[u8]> {
        self.block.as_ref().map(|block| block.key(self.position))
    }

    fn value(&self) -> Option<&[u8]> {
        self.block.as_ref().map(|block| block.value(self.position))
    }

    fn advance(&mut self) -> Result<(), IndexError> {
        let Some(block) = &self.block else { return Ok(()) };
        self.position += 1;
        if self.position < block.entries() {
            return Ok(());
        }
        let next = block.number() + 1;
        self.position = 0;
        self.block = if next < self.run.block_count() { Some(self.run.read_block(next)?) } else { None };
        Ok(())
    }
}
