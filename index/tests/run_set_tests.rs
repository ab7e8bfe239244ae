//! A run set's directory across restarts: leftovers of a crashed write or
//! merge are cleaned up, damage and inconsistent names are refused, and
//! nothing is deleted before what covers it has opened.

mod common;

use std::path::Path;

use common::{collect, model_prefix, Model};
use fundledger_index::{merge, run_file_name, Direction, IndexError, Run, RunSet, RunSpec};
use proptest::prelude::*;

fn spec() -> RunSpec {
    RunSpec { entries_per_block: 2, ..RunSpec::new(3, 1, 1) }
}

/// Entries whose keys are `[table, lsn, 0]` for lsns `first ..= last`.
fn entries(first: u8, last: u8) -> Model {
    (first..=last).map(|lsn| (vec![lsn % 3, lsn, 0], vec![lsn])).collect()
}

fn names(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(directory).unwrap().map(|item| item.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

fn everything(set: &RunSet) -> Model {
    collect(set.range(&[0; 3], &[0xff; 3], Direction::Forward).unwrap()).unwrap().into_iter().collect()
}

#[test]
fn start_up_removes_tmp_leftovers_and_keeps_unknown_files() {
    let directory = tempfile::tempdir().unwrap();
    let mut set = RunSet::open(directory.path(), spec()).unwrap();
    set.write_run(1, 10, 10, &entries(1, 10)).unwrap();
    drop(set);
    std::fs::write(directory.path().join(format!("{}.tmp", run_file_name(11, 20))), b"half a run").unwrap();
    std::fs::write(directory.path().join("README"), b"not ours").unwrap();
    let set = RunSet::open(directory.path(), spec()).unwrap();
    assert_eq!(names(directory.path()), vec![run_file_name(1, 10), "README".to_string()]);
    assert_eq!(everything(&set), entries(1, 10));
    assert_eq!(set.watermark(), 10);
}

#[test]
fn inputs_of_a_merge_that_crashed_before_deleting_them_are_removed() {
    let directory = tempfile::tempdir().unwrap();
    let mut set = RunSet::open(directory.path(), spec()).unwrap();
    set.write_run(1, 10, 10, &entries(1, 10)).unwrap();
    set.write_run(11, 20, 10, &entries(11, 20)).unwrap();
    set.write_run(21, 30, 10, &entries(21, 30)).unwrap();
    // The merge of the first two renamed its output into place, then the process died.
    let inputs: Vec<&Run> = set.runs()[..2].iter().map(|member| member.run.as_ref()).collect();
    merge(&inputs, &directory.path().join(run_file_name(1, 20)), 20).unwrap();
    drop(set);
    let set = RunSet::open(directory.path(), spec()).unwrap();
    assert_eq!(names(directory.path()), vec![run_file_name(1, 20), run_file_name(21, 30)]);
    assert_eq!(everything(&set), entries(1, 30));
}

#[test]
fn a_damaged_covering_run_fails_start_up_and_deletes_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let mut set = RunSet::open(directory.path(), spec()).unwrap();
    set.write_run(1, 10, 10, &entries(1, 10)).unwrap();
    set.write_run(11, 20, 10, &entries(11, 20)).unwrap();
    let inputs: Vec<&Run> = set.runs().iter().map(|member| member.run.as_ref()).collect();
    let merged = directory.path().join(run_file_name(1, 20));
    merge(&inputs, &merged, 20).unwrap();
    drop(set);
    let mut bytes = std::fs::read(&merged).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&merged, bytes).unwrap();
    assert!(matches!(RunSet::open(directory.path(), spec()), Err(IndexError::Corrupt { .. })));
    assert_eq!(names(directory.path()).len(), 3);
}

#[test]
fn overlapping_intervals_and_a_name_that_lies_are_refused() {
    let directory = tempfile::tempdir().unwrap();
    let mut set = RunSet::open(directory.path(), spec()).unwrap();
    set.write_run(1, 10, 10, &entries(1, 10)).unwrap();
    set.write_run(11, 20, 10, &entries(11, 20)).unwrap();
    drop(set);
    let renamed = directory.path().join(run_file_name(5, 20));
    std::fs::rename(directory.path().join(run_file_name(11, 20)), &renamed).unwrap();
    assert!(matches!(RunSet::open(directory.path(), spec()), Err(IndexError::Corrupt { .. })));
    std::fs::rename(&renamed, directory.path().join(run_file_name(11, 25))).unwrap();
    let refused = RunSet::open(directory.path(), spec());
    assert!(matches!(refused, Err(IndexError::Corrupt { reason, .. }) if reason.contains("watermark")));
}

#[test]
fn a_run_must_follow_the_set_and_have_its_shape() {
    let directory = tempfile::tempdir().unwrap();
    let mut set = RunSet::open(directory.path(), spec()).unwrap();
    set.write_run(1, 10, 10, &entries(1, 10)).unwrap();
    assert!(matches!(set.write_run(10, 20, 1, &entries(11, 11)), Err(IndexError::Invalid(_))));
    assert!(matches!(set.write_run(30, 20, 1, &entries(11, 11)), Err(IndexError::Invalid(_))));
    assert!(matches!(set.merge_runs(0, 2), Err(IndexError::Invalid(_))));
    drop(set);
    let other_shape = RunSpec::new(3, 2, 1);
    assert!(matches!(RunSet::open(directory.path(), other_shape), Err(IndexError::Invalid(_))));
}

#[test]
fn the_same_key_in_two_runs_is_an_error_not_an_answer() {
    let directory = tempfile::tempdir().unwrap();
    let mut set = RunSet::open(directory.path(), spec()).unwrap();
    set.write_run(1, 10, 10, &entries(1, 10)).unwrap();
    set.write_run(11, 20, 10, &entries(5, 5)).unwrap();
    for direction in [Direction::Forward, Direction::Reverse] {
        let answer = collect(set.range(&[0; 3], &[0xff; 3], direction).unwrap());
        assert!(matches!(answer, Err(IndexError::Duplicate { .. })), "{answer:?}");
    }
    assert!(matches!(set.merge_runs(0, 2), Err(IndexError::Duplicate { .. })));
    assert_eq!(set.runs().len(), 2, "a failed merge changed the set");
}

#[test]
fn newest_first_pages_across_runs() {
    let directory = tempfile::tempdir().unwrap();
    let mut set = RunSet::open(directory.path(), spec()).unwrap();
    for first in [1u8, 11, 21, 31] {
        set.write_run(u64::from(first), u64::from(first) + 9, 10, &entries(first, first + 9)).unwrap();
    }
    let page: Vec<u8> = collect(set.get_prefix(&[1], Direction::Reverse).unwrap().take(5))
        .unwrap()
        .into_iter()
        .map(|(key, _)| key[1])
        .collect();
    assert_eq!(page, vec![40, 37, 34, 31, 28]);
}

/// `prefix ‖ lsn BE` with a 2-byte prefix: the journal's shape, smaller.
fn lsn_key(prefix: u8, lsn: u64) -> Vec<u8> {
    let mut key = vec![0, prefix];
    key.extend_from_slice(&lsn.to_be_bytes());
    key
}

fn lsn_spec() -> RunSpec {
    RunSpec { entries_per_block: 3, ..RunSpec::new(10, 2, 0) }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Reading run after run gives what the model (and the merging read) gives.
    #[test]
    fn get_by_lsn_answers_like_the_model(
        prefixes_per_lsn in prop::collection::vec(prop::collection::btree_set(0u8..4, 0..3), 1..150),
        cuts in prop::collection::btree_set(1usize..150, 0..8),
        limit in 0usize..60,
    ) {
        let directory = tempfile::tempdir().unwrap();
        let mut set = RunSet::open(directory.path(), lsn_spec()).unwrap();
        let mut model = Model::new();
        let mut boundaries: Vec<usize> = cuts.into_iter().filter(|&cut| cut < prefixes_per_lsn.len()).collect();
        boundaries.push(prefixes_per_lsn.len());
        let mut first = 1u64;
        for end in boundaries {
            let last = end as u64;
            let mut part = Model::new();
            for lsn in first..=last {
                for &prefix in &prefixes_per_lsn[lsn as usize - 1] {
                    part.insert(lsn_key(prefix, lsn), vec![prefix, lsn as u8]);
                }
            }
            set.write_run(first, last, 4, &part).unwrap();
            model.extend(part);
            first = last + 1;
        }
        for prefix in 0u8..5 {
            for direction in [Direction::Forward, Direction::Reverse] {
                let mut expected = model_prefix(&model, &[0, prefix], direction);
                let by_lsn = collect(set.get_by_lsn(&[0, prefix], direction).unwrap()).unwrap();
                prop_assert_eq!(&by_lsn, &expected);
                let merged = collect(set.get_prefix(&[0, prefix], direction).unwrap()).unwrap();
                prop_assert_eq!(&merged, &expected);
                expected.truncate(limit);
                prop_assert_eq!(collect(set.get_by_lsn(&[0, prefix], direction).unwrap().take(limit)).unwrap(), expected);
            }
        }
    }
}

#[test]
fn get_by_lsn_refuses_a_key_outside_its_runs_interval() {
    let directory = tempfile::tempdir().unwrap();
    let mut set = RunSet::open(directory.path(), lsn_spec()).unwrap();
    set.write_run(1, 10, 1, [(lsn_key(1, 5), [0, 0])]).unwrap();
    // Lsn 3 in the run of lsns 11 ..= 20: a reverse page would put it before lsn 5.
    set.write_run(11, 20, 1, [(lsn_key(1, 3), [0, 0]), (lsn_key(1, 12), [0, 0])]).unwrap();
    for direction in [Direction::Forward, Direction::Reverse] {
        let answer = collect(set.get_by_lsn(&[0, 1], direction).unwrap());
        assert!(matches!(answer, Err(IndexError::Corrupt { .. })), "{answer:?}");
    }
    assert!(matches!(set.get_by_lsn(&[0, 1, 2], Direction::Forward), Err(IndexError::Invalid(_))));
}

/// A merge prepared, run while the set writes a newer run, then finished:
/// a snapshot taken before it still reads the merged-away runs (their files
/// are gone, their descriptors are not), and the set reads the same entries.
#[test]
fn a_merge_runs_beside_new_writes_and_old_snapshots_keep_reading() {
    let directory = tempfile::tempdir().unwrap();
    let mut set = RunSet::open(directory.path(), spec()).unwrap();
    set.write_run(1, 10, 10, &entries(1, 10)).unwrap();
    set.write_run(11, 20, 10, &entries(11, 20)).unwrap();
    let before = set.snapshot();
    let job = set.prepare_merge(0, 2).unwrap();
    assert_eq!(job.entry_count(), 20);
    let output = std::thread::scope(|scope| scope.spawn(|| job.run()).join().unwrap()).unwrap();
    set.write_run(21, 30, 10, &entries(21, 30)).unwrap();
    set.finish_merge(job, output).unwrap();
    assert_eq!(names(directory.path()), vec![run_file_name(1, 20), run_file_name(21, 30)]);
    assert_eq!(everything(&set), entries(1, 30));
    let old: Model =
        collect(before.range(&[0; 3], &[0xff; 3], Direction::Forward).unwrap()).unwrap().into_iter().collect();
    assert_eq!(old, entries(1, 20));
    assert_eq!(set.snapshot().watermark(), 30);
    // A job whose inputs were merged away meanwhile is refused, not applied twice.
    let stale = set.prepare_merge(0, 2).unwrap();
    set.merge_runs(0, 2).unwrap();
    let output = stale.run();
    assert!(output.is_err() || set.finish_merge(stale, output.unwrap()).is_err());
}

/// Entries `[0, lsn, 0]` for lsns `first ..= last`: `last - first + 1` of them.
fn write_sized(set: &mut RunSet, first: u8, last: u8) {
    let model: Model = (first..=last).map(|lsn| (vec![0, lsn, 0], vec![lsn])).collect();
    set.write_run(u64::from(first), u64::from(last), 1, &model).unwrap();
}

#[test]
fn a_full_tier_below_newer_runs_is_found_and_merged() {
    let directory = tempfile::tempdir().unwrap();
    let mut set = RunSet::open(directory.path(), spec()).unwrap();
    // Four runs of 4 entries (tier 1 of fanout 4), then one of 1 (tier 0) on top:
    // as when a flush lands while the merge that made them ran.
    for first in [1u8, 5, 9, 13] {
        write_sized(&mut set, first, first + 3);
    }
    write_sized(&mut set, 17, 17);
    assert_eq!(set.full_tier(4), Some(0));
    set.merge_runs(0, 4).unwrap();
    assert_eq!(set.runs().len(), 2);
    assert_eq!(set.full_tier(4), None);
    assert_eq!(everything(&set).len(), 17);
}

#[test]
fn a_merge_writes_at_the_sets_block_size() {
    let directory = tempfile::tempdir().unwrap();
    let mut set = RunSet::open(directory.path(), spec()).unwrap();
    write_sized(&mut set, 1, 8);
    write_sized(&mut set, 9, 16);
    assert_eq!(set.runs()[0].run.block_count(), 4, "2 entries a block");
    drop(set);
    // The same table opened with larger blocks: old runs read as they are.
    let larger = RunSpec { entries_per_block: 8, ..spec() };
    let mut set = RunSet::open(directory.path(), larger).unwrap();
    assert_eq!(everything(&set).len(), 16);
    set.merge_runs(0, 2).unwrap();
    assert_eq!(set.runs()[0].run.block_count(), 2, "16 entries, 8 a block");
    assert_eq!(everything(&set).len(), 16);
}

#[test]
fn runs_whose_entries_straddle_a_tier_bound_share_a_tier_by_lsns() {
    let directory = tempfile::tempdir().unwrap();
    let mut set = RunSet::open(directory.path(), spec()).unwrap();
    // Four runs of 4 lsns each, with 4, 3, 4 and 3 entries (tiers 1, 0, 1, 0 by entries).
    for first in [1u8, 5, 9, 13] {
        let entries = if first % 8 == 1 { 4 } else { 3 };
        let model: Model = (first..first + entries).map(|lsn| (vec![0, lsn, 0], vec![lsn])).collect();
        set.write_run(u64::from(first), u64::from(first) + 3, 1, &model).unwrap();
    }
    assert_eq!(set.full_tier(4), None);
    assert_eq!(set.full_tier_by(4, fundledger_index::Member::lsn_span), Some(0));
}

#[test]
fn runs_that_never_share_a_tier_are_still_merged_once_there_are_many() {
    let directory = tempfile::tempdir().unwrap();
    let mut set = RunSet::open(directory.path(), spec()).unwrap();
    let runs = fundledger_index::limits::MERGE_ANY_ABOVE_RUNS as u64 + 2;
    for lsn in 1..=runs {
        let model: Model = [(vec![(lsn >> 8) as u8, lsn as u8, 0], vec![1])].into_iter().collect();
        set.write_run(lsn, lsn, 1, &model).unwrap();
    }
    // Sizes 1 and 4 in turn (tiers 0 and 1): no 4 neighbours share a tier.
    let size = |member: &fundledger_index::Member| if member.first % 2 == 0 { 4 } else { member.lsn_span() };
    assert_eq!(set.full_tier(4), Some(runs as usize - 4), "by entries they do");
    let merges = std::iter::from_fn(|| {
        let start = set.full_tier_by(4, size)?;
        set.merge_runs(start, 4).unwrap();
        Some(start)
    })
    .count();
    assert!(merges >= 1);
    assert!(set.runs().len() <= fundledger_index::limits::MERGE_ANY_ABOVE_RUNS, "{} runs", set.runs().len());
    assert_eq!(everything(&set).len(), runs as usize);
}

/// Loading filter lines ahead is a hint: for a prefix of any length (too
/// short to hash, exactly one filter prefix, a whole key, longer than a
/// key), over runs with and without entries, it reads nothing wrong, and
/// the lookups after it find what they found without it.
#[test]
fn prefetching_a_prefix_of_any_length_changes_no_lookup() {
    let directory = tempfile::tempdir().unwrap();
    let mut set = RunSet::open(directory.path(), spec()).unwrap();
    set.write_run(1, 10, 10, &entries(1, 10)).unwrap();
    set.write_run(11, 11, 0, &Model::new()).unwrap();
    set.write_run(12, 20, 10, &entries(12, 20)).unwrap();
    let snapshot = set.snapshot();
    let model = entries(1, 10).into_iter().chain(entries(12, 20)).collect::<Model>();
    for prefix in [&[][..], &[1], &[2, 5], &[2, 5, 0], &[2, 5, 0, 0], &[9, 9, 9, 9, 9]] {
        snapshot.prefetch_prefix(prefix);
        let found = snapshot.get_prefix(prefix, Direction::Forward).map(|entries| collect(entries).unwrap());
        if prefix.len() <= 3 {
            assert_eq!(found.unwrap(), model_prefix(&model, prefix, Direction::Forward), "prefix {prefix:?}");
        } else {
            assert!(found.is_err(), "a prefix longer than a key is refused");
        }
    }
}
