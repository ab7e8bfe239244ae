//! Damaged run files: every flipped bit, every truncation, extra bytes and
//! random garbage give an error from `open` or from the read that meets the
//! damage; never a panic and never a wrong entry.

mod common;

use std::path::Path;

use common::{collect, model_prefix, model_range, write_run, Model};
use fundledger_index::{Direction, IndexError, Run, RunSpec};
use proptest::prelude::*;

/// A run of several blocks with a Bloom filter: K = 4, V = 3, P = 2, three
/// entries per block, ten entries (four blocks, the last one short).
fn small_run(path: &Path) -> (Model, Vec<u8>) {
    let spec = RunSpec { entries_per_block: 3, ..RunSpec::new(4, 3, 2) };
    let model: Model = (0u8..10).map(|n| (vec![n / 4, n, 0, n], vec![n, n ^ 0x5a, 7])).collect();
    written(path, spec, model)
}

/// No Bloom filter and no values: K = 4, V = 0, P = 0, two blocks.
fn keys_only_run(path: &Path) -> (Model, Vec<u8>) {
    let spec = RunSpec { entries_per_block: 4, ..RunSpec::new(4, 0, 0) };
    let model: Model = (0u8..7).map(|n| (vec![0, n, n, 1], Vec::new())).collect();
    written(path, spec, model)
}

fn empty_run(path: &Path) -> (Model, Vec<u8>) {
    written(path, RunSpec::new(4, 3, 2), Model::new())
}

fn written(path: &Path, spec: RunSpec, model: Model) -> (Model, Vec<u8>) {
    write_run(path, spec, 42, &model);
    let bytes = std::fs::read(path).unwrap();
    (model, bytes)
}

#[derive(Debug, Default)]
struct Outcome {
    open_failed: usize,
    read_failed: usize,
}

/// Opens the file at `path` and reads everything in several ways. Every
/// answer must be an error or exactly the model's; returns whether `open`
/// or some read failed (`None`: everything read fine and correct).
fn check_never_wrong(path: &Path, model: &Model) -> Option<Outcome> {
    let run = match Run::open(path) {
        Ok(run) => run,
        Err(IndexError::Corrupt { .. }) => return Some(Outcome { open_failed: 1, read_failed: 0 }),
        Err(other) => panic!("damage reported as {other:?}, not as corruption"),
    };
    let mut failed = false;
    let mut queries: Vec<(Vec<u8>, Vec<u8>)> = model.keys().map(|key| (key.clone(), key.clone())).collect();
    queries.push((vec![0; 4], vec![0xff; 4]));
    queries.push((vec![0, 2, 0, 0], vec![1, 5, 0xff, 0xff]));
    for (lo, hi) in queries {
        for direction in [Direction::Forward, Direction::Reverse] {
            match run.range(&lo, &hi, direction).and_then(collect) {
                Ok(answer) => assert_eq!(answer, model_range(model, &lo, &hi, direction), "a wrong answer"),
                Err(IndexError::Corrupt { .. }) => failed = true,
                Err(other) => panic!("damage reported as {other:?}"),
            }
        }
    }
    for prefix in [&[0u8][..], &[1, 4], &[2, 9, 0], &[0, 0, 0, 0], &[3], &[0, 7]] {
        match run.get_prefix(prefix, Direction::Reverse).and_then(collect) {
            Ok(answer) => assert_eq!(answer, model_prefix(model, prefix, Direction::Reverse), "a wrong answer"),
            Err(IndexError::Corrupt { .. }) => failed = true,
            Err(other) => panic!("damage reported as {other:?}"),
        }
    }
    failed.then_some(Outcome { open_failed: 0, read_failed: 1 })
}

#[test]
fn the_undamaged_run_reads_back() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("small.run");
    let (model, _) = small_run(&path);
    assert!(check_never_wrong(&path, &model).is_none());
}

/// Every bit of the file flipped in turn; returns how often `open` failed and
/// how often only a read did.
fn flip_every_bit(fixture: fn(&Path) -> (Model, Vec<u8>)) -> Outcome {
    let directory = tempfile::tempdir().unwrap();
    let (model, bytes) = fixture(&directory.path().join("original.run"));
    let damaged = directory.path().join("damaged.run");
    let mut total = Outcome::default();
    for offset in 0..bytes.len() {
        for bit in 0..8 {
            let mut copy = bytes.clone();
            copy[offset] ^= 1 << bit;
            std::fs::write(&damaged, &copy).unwrap();
            // Every byte is under a CRC, so a single flipped bit never goes unnoticed.
            let outcome = check_never_wrong(&damaged, &model)
                .unwrap_or_else(|| panic!("bit {bit} of byte {offset} flipped and nothing noticed"));
            total.open_failed += outcome.open_failed;
            total.read_failed += outcome.read_failed;
        }
    }
    total
}

#[test]
fn every_flipped_bit_is_an_error_at_open_or_at_read() {
    for fixture in [small_run, keys_only_run] {
        let total = flip_every_bit(fixture);
        // Metadata damage stops `open`; data damage is found by the read of that block.
        assert!(total.open_failed > 0 && total.read_failed > 0, "{total:?}");
    }
    let total = flip_every_bit(empty_run);
    assert!(total.open_failed > 0 && total.read_failed == 0, "an empty run is all metadata: {total:?}");
}

#[test]
fn every_truncation_and_any_extra_byte_fail_open() {
    for fixture in [small_run, keys_only_run, empty_run] {
        let directory = tempfile::tempdir().unwrap();
        let (_, bytes) = fixture(&directory.path().join("original.run"));
        let damaged = directory.path().join("damaged.run");
        for length in 0..bytes.len() {
            std::fs::write(&damaged, &bytes[..length]).unwrap();
            assert!(matches!(Run::open(&damaged), Err(IndexError::Corrupt { .. })), "cut at {length} opened");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        std::fs::write(&damaged, &longer).unwrap();
        assert!(matches!(Run::open(&damaged), Err(IndexError::Corrupt { .. })));
    }
}

#[test]
fn a_block_swapped_with_another_is_refused() {
    // Both blocks carry valid bytes: only the index (first keys and CRCs) tells them apart.
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("small.run");
    let (model, mut bytes) = small_run(&path);
    let data_offset = 56 + 2 * 4;
    let block_bytes = 3 * 7;
    let (first, second) = bytes[data_offset..].split_at_mut(block_bytes);
    first.swap_with_slice(&mut second[..block_bytes]);
    std::fs::write(&path, &bytes).unwrap();
    let outcome = check_never_wrong(&path, &model).expect("swapped blocks unnoticed");
    assert_eq!(outcome.read_failed, 1);
}

#[test]
fn a_missing_file_is_an_io_error() {
    let directory = tempfile::tempdir().unwrap();
    assert!(matches!(Run::open(&directory.path().join("absent.run")), Err(IndexError::Io { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random bytes spliced into a valid run (a write of garbage over part of
    /// it): an error or the right answer, never a panic.
    #[test]
    fn garbage_over_any_part_is_never_a_wrong_answer(
        at in any::<prop::sample::Index>(),
        garbage in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("small.run");
        let (model, mut bytes) = small_run(&path);
        let start = at.index(bytes.len());
        let end = (start + garbage.len()).min(bytes.len());
        let changed = bytes[start..end] != garbage[..end - start];
        bytes[start..end].copy_from_slice(&garbage[..end - start]);
        std::fs::write(&path, &bytes).unwrap();
        let outcome = check_never_wrong(&path, &model);
        prop_assert!(outcome.is_some() || !changed, "garbage at {} unnoticed", start);
    }

    /// A file of nothing but random bytes.
    #[test]
    fn random_bytes_never_open_as_a_run(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("random.run");
        std::fs::write(&path, &bytes).unwrap();
        prop_assert!(Run::open(&path).is_err());
    }
}
