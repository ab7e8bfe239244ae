//! The writer's contract: it refuses unsorted, duplicate and mis-sized input
//! and bad specs, leaves nothing behind when abandoned, and writes empty runs.

mod common;

use common::collect;
use fundledger_index::limits::{KEY_BYTES_MAX, VALUE_BYTES_MAX};
use fundledger_index::{compare_keys, sort_keys, Direction, IndexError, Run, RunSpec, RunWriter};
use proptest::prelude::*;

fn spec() -> RunSpec {
    RunSpec::new(2, 1, 1)
}

#[test]
fn an_unsorted_key_is_refused_and_nothing_is_left_behind() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("unsorted.run");
    let mut writer = RunWriter::create(&path, spec(), 1, 10).unwrap();
    writer.push(&[0, 5], &[1]).unwrap();
    writer.push(&[1, 0], &[1]).unwrap();
    let refused = writer.push(&[0, 9], &[1]);
    assert!(matches!(refused, Err(IndexError::Unsorted { .. })), "{refused:?}");
    drop(writer);
    assert_eq!(std::fs::read_dir(directory.path()).unwrap().count(), 0, "the .tmp file was left behind");
}

#[test]
fn a_duplicate_key_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let mut writer = RunWriter::create(&directory.path().join("duplicate.run"), spec(), 1, 10).unwrap();
    writer.push(&[0, 5], &[1]).unwrap();
    assert!(matches!(writer.push(&[0, 5], &[2]), Err(IndexError::Duplicate { .. })));
    // The refused entry changed nothing: the writer goes on from the last good key.
    writer.push(&[0, 6], &[3]).unwrap();
    let run = writer.finish().unwrap();
    assert_eq!(run.entry_count(), 2);
}

#[test]
fn mis_sized_entries_are_refused() {
    let directory = tempfile::tempdir().unwrap();
    let mut writer = RunWriter::create(&directory.path().join("sizes.run"), spec(), 1, 10).unwrap();
    assert!(matches!(writer.push(&[0, 5, 1], &[1]), Err(IndexError::Invalid(_))));
    assert!(matches!(writer.push(&[0, 5], &[]), Err(IndexError::Invalid(_))));
    assert_eq!(writer.entry_count(), 0);
}

#[test]
fn specs_outside_the_bounds_are_refused() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("spec.run");
    let bad = [
        RunSpec::new(0, 1, 0),
        RunSpec::new(KEY_BYTES_MAX + 1, 0, 0),
        RunSpec::new(4, VALUE_BYTES_MAX + 1, 0),
        RunSpec::new(4, 4, 5),
        RunSpec { entries_per_block: 0, ..RunSpec::new(4, 4, 0) },
        RunSpec { entries_per_block: 1 << 20, ..RunSpec::new(4, 4, 0) },
    ];
    for spec in bad {
        assert!(matches!(RunWriter::create(&path, spec, 1, 1), Err(IndexError::Invalid(_))), "{spec:?} accepted");
    }
    let largest = RunSpec::new(KEY_BYTES_MAX, VALUE_BYTES_MAX, KEY_BYTES_MAX);
    let mut writer = RunWriter::create(&path, largest, 1, 1).unwrap();
    writer.push(&[7; KEY_BYTES_MAX], &[8; VALUE_BYTES_MAX]).unwrap();
    let run = writer.finish().unwrap();
    let found = collect(run.get_prefix(&[7; KEY_BYTES_MAX], Direction::Forward).unwrap()).unwrap();
    assert_eq!(found, vec![(vec![7; KEY_BYTES_MAX], vec![8; VALUE_BYTES_MAX])]);
}

#[test]
fn an_empty_run_opens_and_answers_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("empty.run");
    let run = RunWriter::create(&path, spec(), 3, 0).unwrap().finish().unwrap();
    assert_eq!((run.entry_count(), run.block_count(), run.watermark()), (0, 0, 3));
    let reopened = Run::open(&path).unwrap();
    assert!(collect(reopened.range(&[0, 0], &[0xff, 0xff], Direction::Reverse).unwrap()).unwrap().is_empty());
    assert!(collect(reopened.get_prefix(&[], Direction::Forward).unwrap()).unwrap().is_empty());
}

#[test]
fn finish_replaces_the_tmp_file_with_the_run() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("named.run");
    let mut writer = RunWriter::create(&path, spec(), 1, 1).unwrap();
    writer.push(&[1, 1], &[1]).unwrap();
    assert!(directory.path().join("named.run.tmp").exists());
    assert!(!path.exists(), "visible under its name before finish");
    writer.finish().unwrap();
    let names: Vec<_> = std::fs::read_dir(directory.path()).unwrap().map(|item| item.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("named.run")]);
}

#[test]
fn queries_of_the_wrong_size_are_refused() {
    let directory = tempfile::tempdir().unwrap();
    let run = RunWriter::create(&directory.path().join("q.run"), spec(), 1, 0).unwrap().finish().unwrap();
    assert!(matches!(run.range(&[0], &[0, 0], Direction::Forward), Err(IndexError::Invalid(_))));
    assert!(matches!(run.get_prefix(&[0, 0, 0], Direction::Forward), Err(IndexError::Invalid(_))));
}

#[test]
fn runs_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    // A merge thread reads runs that readers are reading too (pread takes &self).
    shareable::<Run>();
    shareable::<fundledger_index::RunSet>();
}

#[test]
fn a_failed_rename_is_an_io_error_and_leaves_no_tmp() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("taken.run");
    // A non-empty directory under the run's name: the rename cannot replace it.
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("inside"), b"x").unwrap();
    let mut writer = RunWriter::create(&path, spec(), 1, 1).unwrap();
    writer.push(&[1, 1], &[1]).unwrap();
    assert!(matches!(writer.finish(), Err(IndexError::Io { .. })));
    assert!(!directory.path().join("taken.run.tmp").exists());
}

#[test]
fn a_missing_directory_is_an_io_error() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("absent").join("x.run");
    assert!(matches!(RunWriter::create(&path, spec(), 1, 1), Err(IndexError::Io { .. })));
}

#[test]
fn larger_blocks_mean_fewer_index_entries_and_the_same_reads() {
    let directory = tempfile::tempdir().unwrap();
    let write = |spec: RunSpec, name: &str| {
        let mut writer = RunWriter::create(&directory.path().join(name), spec, 1, 1000).unwrap();
        for n in 0..5000u32 {
            writer.push(&n.to_be_bytes(), &[7u8; 53]).unwrap();
        }
        writer.finish().unwrap()
    };
    let small = write(RunSpec::new(4, 53, 2), "small.run");
    let large = write(RunSpec::new(4, 53, 2).with_block_bytes(16 * 1024), "large.run");
    assert_eq!(large.spec().entries_per_block, 16 * 1024 / 57);
    assert!(large.block_count() * 3 < small.block_count(), "{} vs {}", large.block_count(), small.block_count());
    assert!(large.memory_bytes() < small.memory_bytes());
    let reopened = Run::open(large.path()).unwrap();
    let found = collect(reopened.get_prefix(&[0, 0, 0x12], Direction::Forward).unwrap()).unwrap();
    assert_eq!(found.len(), 256);
    assert_eq!(found[0].0, 0x1200u32.to_be_bytes());
    // Past the reader's bound a spec is refused.
    let huge = RunSpec { entries_per_block: 2 * 1024 * 1024 / 57, ..RunSpec::new(4, 53, 2) };
    assert!(matches!(RunWriter::create(&directory.path().join("huge.run"), huge, 1, 10), Err(IndexError::Invalid(_))));
}

#[test]
fn a_run_larger_than_the_writeback_step_reads_back_whole() {
    // Several WRITEBACK_BYTES steps: each starts writeback of what came
    // before, and the run must read back exactly as pushed.
    let directory = tempfile::tempdir().unwrap();
    let spec = RunSpec::new(8, 24, 8);
    let entries = 4 * fundledger_index::limits::WRITEBACK_BYTES / 32 + 17;
    let mut writer = RunWriter::create(&directory.path().join("large.run"), spec, 1, entries).unwrap();
    for n in 0..entries {
        writer.push(&n.to_be_bytes(), &[(n % 251) as u8; 24]).unwrap();
    }
    let run = writer.finish().unwrap();
    assert_eq!(run.entry_count(), entries);
    let reopened = Run::open(run.path()).unwrap();
    let all = collect(reopened.range(&[0; 8], &[0xff; 8], Direction::Forward).unwrap()).unwrap();
    assert_eq!(all.len() as u64, entries);
    for (n, (key, value)) in all.iter().enumerate() {
        assert_eq!(key.as_slice(), (n as u64).to_be_bytes().as_slice());
        assert_eq!(value.as_slice(), [(n as u64 % 251) as u8; 24].as_slice());
    }
}

proptest! {
    #[test]
    fn keys_sort_in_byte_order(
        mut short in proptest::collection::vec(any::<[u8; 5]>(), 0..200),
        mut even in proptest::collection::vec(any::<[u8; 16]>(), 0..200),
        mut odd in proptest::collection::vec(any::<[u8; 17]>(), 0..200),
        shared_word in any::<[u8; 8]>(),
    ) {
        // Keys equal in their first words too, so later words decide.
        for (index, key) in odd.iter_mut().enumerate().filter(|(index, _)| index % 3 == 0) {
            key[..8].copy_from_slice(&shared_word);
            key[16] = index as u8;
        }
        let mut expected = short.clone();
        expected.sort_unstable();
        sort_keys(&mut short);
        prop_assert_eq!(short, expected);
        let mut expected = even.clone();
        expected.sort_unstable();
        sort_keys(&mut even);
        prop_assert_eq!(even, expected);
        let mut expected = odd.clone();
        expected.sort_unstable();
        sort_keys(&mut odd);
        prop_assert_eq!(odd, expected);
    }

    #[test]
    fn keys_compare_as_their_bytes(
        a in proptest::collection::vec(any::<u8>(), 0..40),
        b in proptest::collection::vec(any::<u8>(), 0..40),
        shared in 0usize..40,
    ) {
        // Any two byte strings; and the same length with a shared start,
        // so that every word, and the padded tail, gets to decide.
        prop_assert_eq!(compare_keys(&a, &b), a.cmp(&b));
        let mut c = a.clone();
        c.resize(b.len(), 0);
        let shared = shared.min(b.len());
        c[..shared].copy_from_slice(&b[..shared]);
        prop_assert_eq!(compare_keys(&c, &b), c.cmp(&b));
        prop_assert_eq!(compare_keys(&b, &b), std::cmp::Ordering::Equal);
    }
}
