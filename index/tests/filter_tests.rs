//! The Bloom filter as runs use it: a merge's filter holds each shared
//! prefix once, and a run whose filter is too large to keep whole keeps its
//! fold and asks the disk, without ever missing a prefix it holds.

use std::os::unix::fs::FileExt;

use fundledger_index::{merge, merge_as, Direction, FilterResidence, Run, RunSpec, RunWriter};

const PREFIXES: u64 = 100_000;

fn spec() -> RunSpec {
    RunSpec::new(16, 0, 8)
}

fn key(prefix: u64, suffix: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&prefix.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
    key[8..].copy_from_slice(&suffix.to_be_bytes());
    key
}

/// A run of one key per prefix `0 .. PREFIXES`, each with `suffix`.
fn write_run(path: &std::path::Path, suffix: u64) -> Run {
    write_run_as(path, suffix, spec())
}

fn write_run_as(path: &std::path::Path, suffix: u64, spec: RunSpec) -> Run {
    let mut keys: Vec<[u8; 16]> = (0..PREFIXES).map(|prefix| key(prefix, suffix)).collect();
    keys.sort_unstable();
    let mut writer = RunWriter::create(path, spec, suffix, PREFIXES).unwrap();
    for key in &keys {
        writer.push(key, &[]).unwrap();
    }
    writer.finish().unwrap()
}

/// Keeps filters up to 64 KiB whole, folds larger ones by 2.
const HALVED: FilterResidence = FilterResidence { whole_bytes_max: 64 * 1024, half_bytes_max: u64::MAX };

fn holds(run: &Run, prefix: u64) -> bool {
    run.may_contain_prefix(&key(prefix, 0)[..8])
}

#[test]
fn a_merge_of_runs_sharing_their_prefixes_keeps_a_filter_for_the_distinct_ones() {
    let directory = tempfile::tempdir().unwrap();
    let first = write_run(&directory.path().join("a.run"), 1);
    let second = write_run(&directory.path().join("b.run"), 2);
    let merged = merge(&[&first, &second], &directory.path().join("m.run"), 2).unwrap();
    assert_eq!(merged.entry_count(), 2 * PREFIXES);
    assert_eq!(merged.prefix_count(), PREFIXES);
    // Sized for the sum of the inputs' prefixes, folded to the distinct ones:
    // no larger than one input's (the sparse index doubled with the entries).
    let bloom_and_index = |run: &Run| run.memory_bytes();
    assert!(
        bloom_and_index(&merged) < bloom_and_index(&first) + bloom_and_index(&second) * 3 / 10,
        "merged {} bytes, inputs {} and {}",
        bloom_and_index(&merged),
        bloom_and_index(&first),
        bloom_and_index(&second)
    );
    assert!((0..PREFIXES).all(|prefix| holds(&merged, prefix)));
    let false_positives = (PREFIXES..PREFIXES * 11).filter(|&prefix| holds(&merged, prefix)).count();
    assert!(false_positives < 20_000, "{false_positives} false positives in 1,000,000");
}

#[test]
fn a_run_with_a_large_filter_keeps_its_fold_and_checks_the_lines_on_disk() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("r.run");
    let whole = write_run(&path, 1);
    let halved = Run::open_keeping(&path, HALVED).unwrap();
    assert_eq!(whole.disk_filter_reads(), (0, 0));
    let saved = whole.memory_bytes() - halved.memory_bytes();
    assert!(saved > 60_000, "keeps the fold: {} bytes instead of {}", halved.memory_bytes(), whole.memory_bytes());

    assert!((0..PREFIXES).all(|prefix| holds(&halved, prefix)));
    let (reads, mismatches) = halved.disk_filter_reads();
    assert_eq!((reads, mismatches), (PREFIXES, 0), "every held prefix passes the fold and is read");

    let absent = PREFIXES..PREFIXES * 11;
    let whole_positives = absent.clone().filter(|&prefix| holds(&whole, prefix)).count();
    let halved_positives = absent.clone().filter(|&prefix| holds(&halved, prefix)).count();
    assert_eq!(halved_positives, whole_positives, "the disk lines answer as the whole filter does");
    let (reads, mismatches) = halved.disk_filter_reads();
    let absent_reads = reads - PREFIXES;
    // The fold has 5 bits per prefix and 7 probes: about 14% of absent ones pass it.
    assert!((50_000..250_000).contains(&absent_reads), "{absent_reads} disk reads for 1,000,000 absent prefixes");
    assert_eq!(mismatches, 0);

    let entries: Vec<_> =
        halved.get_prefix(&key(77, 0)[..8], Direction::Forward).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].key, key(77, 1));
}

#[test]
fn a_run_with_a_larger_filter_keeps_its_fold_by_four() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("r.run");
    let whole = write_run(&path, 1);
    let halved = Run::open_keeping(&path, HALVED).unwrap();
    let quartered =
        Run::open_keeping(&path, FilterResidence { whole_bytes_max: 32 * 1024, half_bytes_max: 64 * 1024 }).unwrap();
    let (whole_bytes, halved_bytes, quartered_bytes) =
        (whole.memory_bytes(), halved.memory_bytes(), quartered.memory_bytes());
    assert!(
        whole_bytes - quartered_bytes >= 3 * (whole_bytes - halved_bytes) / 2,
        "{quartered_bytes} bytes folded by 4, {halved_bytes} by 2, {whole_bytes} whole"
    );
    assert!((0..PREFIXES).all(|prefix| holds(&quartered, prefix)));
    let absent = PREFIXES..PREFIXES * 11;
    let whole_positives = absent.clone().filter(|&prefix| holds(&whole, prefix)).count();
    assert_eq!(absent.clone().filter(|&prefix| holds(&quartered, prefix)).count(), whole_positives);
    let (reads, mismatches) = quartered.disk_filter_reads();
    let absent_reads = reads - PREFIXES;
    // 2.5 bits per prefix and 7 probes: about 64% of absent ones pass the fold.
    assert!((500_000..800_000).contains(&absent_reads), "{absent_reads} disk reads for 1,000,000 absent prefixes");
    assert_eq!(mismatches, 0);
}

#[test]
fn a_filter_changed_on_disk_after_open_answers_maybe_never_no() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("r.run");
    write_run(&path, 1);
    let halved = Run::open_keeping(&path, HALVED).unwrap();
    // Zero everything between the header and the footer: blocks, index, filter.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let length = file.metadata().unwrap().len();
    file.write_all_at(&vec![0u8; (length - 44 - 256) as usize], 256).unwrap();
    assert!((0..PREFIXES).all(|prefix| holds(&halved, prefix)), "a zeroed line must not hide a prefix");
    let (reads, mismatches) = halved.disk_filter_reads();
    assert_eq!(reads, PREFIXES);
    assert_eq!(mismatches, PREFIXES, "every read found lines that do not OR to the fold");
    // The process-wide counters (for /metrics) saw them too.
    let (all_reads, all_mismatches) = fundledger_index::filter_disk_reads();
    assert!(all_reads >= PREFIXES && all_mismatches >= PREFIXES, "{all_reads} reads, {all_mismatches} mismatches");
}

#[test]
fn small_runs_of_a_set_that_asks_for_more_bits_read_a_tenth_as_many_blocks_for_absent_prefixes() {
    let directory = tempfile::tempdir().unwrap();
    let sixteen = spec().with_small_run_bits(16);
    let plain = write_run(&directory.path().join("plain.run"), 1);
    let more = write_run_as(&directory.path().join("more.run"), 1, sixteen);
    assert!((0..PREFIXES).all(|prefix| holds(&more, prefix)), "no held prefix is ever missed");
    let absent = PREFIXES..PREFIXES * 11;
    let plain_positives = absent.clone().filter(|&prefix| holds(&plain, prefix)).count();
    let more_positives = absent.clone().filter(|&prefix| holds(&more, prefix)).count();
    // 10 bits and 7 probes: 0.96% expected; 16 bits: 0.10%.
    assert!((5_000..15_000).contains(&plain_positives), "{plain_positives} false positives in 1,000,000 at 10 bits");
    assert!(more_positives < 2_000, "{more_positives} false positives in 1,000,000 at 16 bits");
    assert!(
        more.memory_bytes() > plain.memory_bytes() + PREFIXES as usize * 5 / 8,
        "about 6 bits a prefix more in memory"
    );

    // Each false positive is a block read; a lookup of a held prefix reads one too.
    let before = fundledger_index::range_block_reads();
    let found = more.get_prefix(&key(77, 0)[..8], Direction::Forward).unwrap().count();
    assert_eq!(found, 1);
    assert!(fundledger_index::range_block_reads() > before, "the lookup's block read is counted");

    // A merge by the set's spec keeps the bits; by the runs' own (their
    // files do not record it) it gets the default.
    let other = write_run_as(&directory.path().join("other.run"), 2, sixteen);
    let merged = merge_as(&[&more, &other], sixteen, &directory.path().join("m16.run"), 2).unwrap();
    let merged_positives = absent.clone().filter(|&prefix| holds(&merged, prefix)).count();
    assert!(merged_positives < 2_000, "{merged_positives} false positives in 1,000,000 after a merge at 16 bits");
    let merged_plain = merge(&[&more, &other], &directory.path().join("m10.run"), 2).unwrap();
    assert!(merged_plain.memory_bytes() < merged.memory_bytes());
}

#[test]
fn a_run_too_large_to_keep_its_filter_whole_at_the_small_runs_bits_gets_the_default() {
    let sixteen = spec().with_small_run_bits(16);
    // 4 MiB of filter at 16 bits a prefix: 2,097,152 prefixes.
    assert_eq!(sixteen.bits_per_prefix(2_097_152), 16);
    assert_eq!(sixteen.bits_per_prefix(2_097_153), 10);
    assert_eq!(spec().bits_per_prefix(1_000), 10, "the default for a set that asks for nothing");
    assert_eq!(spec().with_small_run_bits(64).bits_per_prefix(1_000), 24, "clamped to the most the limits allow");
    assert_eq!(spec().with_small_run_bits(2).bits_per_prefix(1_000), 10, "never fewer than the default");
}
