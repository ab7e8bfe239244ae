//! Runs, merges and run sets against a `BTreeMap` model: random key and
//! value sizes, random entries, random prefix lookups and ranges in both
//! directions with limits.

mod common;

use common::{collect, model_prefix, model_range, write_run, Model};
use fundledger_index::{merge, Direction, Run, RunSet, RunSpec};
use proptest::prelude::*;

/// Few distinct bytes (0, 1, 2 and 0xff) so that keys share prefixes and
/// ranges hit the padding bytes of prefix bounds.
fn key_byte() -> impl Strategy<Value = u8> + Clone {
    prop::sample::select(vec![0u8, 1, 2, 0xff])
}

#[derive(Debug, Clone)]
struct Case {
    spec: RunSpec,
    model: Model,
    prefixes: Vec<Vec<u8>>,
    ranges: Vec<(Vec<u8>, Vec<u8>, Direction, usize)>,
    /// Entry `i` of the model goes to run `parts[i % parts.len()] % run_count`.
    parts: Vec<usize>,
    run_count: usize,
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Forward), Just(Direction::Reverse)]
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..=9, 0usize..=5, 1usize..=6).prop_flat_map(|(key_bytes, value_bytes, entries_per_block)| {
        let key = prop::collection::vec(key_byte(), key_bytes);
        let entries = prop::collection::btree_map(key.clone(), prop::collection::vec(any::<u8>(), value_bytes), 0..120);
        let prefixes = prop::collection::vec(prop::collection::vec(key_byte(), 0..=key_bytes), 1..12);
        let ranges = prop::collection::vec((key.clone(), key, direction(), 0usize..40), 1..12);
        let parts = prop::collection::vec(0usize..8, 1..16);
        (0..=key_bytes, entries, prefixes, ranges, parts, 1usize..=4).prop_map(
            move |(prefix_bytes, model, prefixes, ranges, parts, run_count)| Case {
                spec: RunSpec { entries_per_block, ..RunSpec::new(key_bytes, value_bytes, prefix_bytes) },
                model,
                prefixes,
                ranges,
                parts,
                run_count,
            },
        )
    })
}

type Answer = Result<common::Pairs, String>;

/// Every query of the case, answered by `query` and by the model.
fn check_queries(
    case: &Case,
    mut prefix_query: impl FnMut(&[u8], Direction) -> Answer,
    mut range_query: impl FnMut(&[u8], &[u8], Direction, usize) -> Answer,
) -> Result<(), TestCaseError> {
    let lowest = vec![0u8; case.spec.key_bytes];
    let highest = vec![0xffu8; case.spec.key_bytes];
    for direction in [Direction::Forward, Direction::Reverse] {
        let everything = range_query(&lowest, &highest, direction, usize::MAX);
        prop_assert_eq!(everything, Ok(model_range(&case.model, &lowest, &highest, direction)));
    }
    let existing = case.model.keys().take(4).map(|key| key[..case.spec.prefix_bytes].to_vec());
    for prefix in case.prefixes.iter().cloned().chain(existing) {
        for direction in [Direction::Forward, Direction::Reverse] {
            prop_assert_eq!(
                prefix_query(&prefix, direction),
                Ok(model_prefix(&case.model, &prefix, direction)),
                "prefix {:?}",
                prefix
            );
        }
    }
    for (lo, hi, direction, limit) in &case.ranges {
        let mut expected = model_range(&case.model, lo, hi, *direction);
        expected.truncate(*limit);
        prop_assert_eq!(range_query(lo, hi, *direction, *limit), Ok(expected), "range {:?} ..= {:?}", lo, hi);
    }
    Ok(())
}

fn check_run(case: &Case, run: &Run) -> Result<(), TestCaseError> {
    prop_assert_eq!(run.entry_count(), case.model.len() as u64);
    check_queries(
        case,
        |prefix, direction| run.get_prefix(prefix, direction).and_then(collect).map_err(|error| error.to_string()),
        |lo, hi, direction, limit| {
            run.range(lo, hi, direction)
                .and_then(|entries| collect(entries.take(limit)))
                .map_err(|error| error.to_string())
        },
    )?;
    for key in case.model.keys() {
        prop_assert!(run.may_contain_prefix(&key[..case.spec.prefix_bytes]));
    }
    Ok(())
}

fn check_set(case: &Case, set: &RunSet) -> Result<(), TestCaseError> {
    check_queries(
        case,
        |prefix, direction| set.get_prefix(prefix, direction).and_then(collect).map_err(|error| error.to_string()),
        |lo, hi, direction, limit| {
            set.range(lo, hi, direction)
                .and_then(|entries| collect(entries.take(limit)))
                .map_err(|error| error.to_string())
        },
    )
}

/// The case's entries split over `run_count` parts.
fn split(case: &Case) -> Vec<Model> {
    let mut parts = vec![Model::new(); case.run_count];
    for (position, (key, value)) in case.model.iter().enumerate() {
        let part = case.parts[position % case.parts.len()] % case.run_count;
        parts[part].insert(key.clone(), value.clone());
    }
    parts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn a_run_answers_like_the_model(case in case()) {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("one.run");
        let written = write_run(&path, case.spec, 7, &case.model);
        check_run(&case, &written)?;
        let reopened = Run::open(&path).unwrap();
        prop_assert_eq!(reopened.watermark(), 7);
        prop_assert_eq!(reopened.spec(), case.spec);
        check_run(&case, &reopened)?;
    }

    #[test]
    fn a_merge_answers_like_the_model(case in case()) {
        let directory = tempfile::tempdir().unwrap();
        let runs: Vec<Run> = split(&case)
            .iter()
            .enumerate()
            .map(|(number, part)| write_run(&directory.path().join(format!("{number}.run")), case.spec, number as u64, part))
            .collect();
        let inputs: Vec<&Run> = runs.iter().collect();
        let merged = merge(&inputs, &directory.path().join("merged.run"), 99).unwrap();
        prop_assert_eq!(merged.watermark(), 99);
        check_run(&case, &merged)?;
    }

    #[test]
    fn a_run_set_answers_like_the_model_before_and_after_merging(case in case()) {
        let directory = tempfile::tempdir().unwrap();
        let mut set = RunSet::open(directory.path(), case.spec).unwrap();
        for (number, part) in split(&case).iter().enumerate() {
            let first = number as u64 * 10 + 1;
            set.write_run(first, first + 9, part.len() as u64, part.iter()).unwrap();
        }
        check_set(&case, &set)?;
        if case.run_count >= 2 {
            set.merge_runs(0, case.run_count).unwrap();
            prop_assert_eq!(set.runs().len(), 1);
        }
        check_set(&case, &set)?;
        let reopened = RunSet::open(directory.path(), case.spec).unwrap();
        prop_assert_eq!(reopened.watermark(), case.run_count as u64 * 10);
        check_set(&case, &reopened)?;
    }
}
