//! Reads by lsn (`Wal::read`, `SegmentReader`) and the offset sidecars
//! behind them: every lsn across segment rolls, torn tails, damaged
//! sidecars of every kind, reads past durable and below retention, and the
//! I/O a read does.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::config::OPEN_SEGMENTS_MAX;
use crate::fs::{WalFile, WalFs, WalReadFile};
use crate::segment::sidecar_file_name;
use crate::sidecar::{encode_entries, SIDECAR_ENTRY_BYTES};
use crate::{verify_with_fs, ReadError, SegmentReader, Severity};

/// Small segments: 60 records of up to 150 bytes make about 25 of them.
const SEGMENT_BYTES: u64 = 400;

fn first_lsn_of(segment: &Path) -> u64 {
    segment.file_stem().and_then(|stem| stem.to_str()).and_then(|stem| stem.parse().ok()).expect("segment name")
}

fn sidecar_of(segment: &Path) -> PathBuf {
    sim_dir().join(sidecar_file_name(first_lsn_of(segment)))
}

/// The sidecar a segment's bytes call for.
fn expected_sidecar(segment_bytes: &[u8]) -> Vec<u8> {
    let mut entries = Vec::new();
    encode_entries(frame_offsets(segment_bytes).into_iter().map(|offset| offset as u64), &mut entries);
    entries
}

fn reader(fs: &SimFs) -> SegmentReader {
    SegmentReader::with_fs(Arc::new(fs.clone()), &sim_dir())
}

fn assert_reads_all(read: &mut dyn FnMut(u64) -> Result<Vec<u8>, ReadError>, payloads: &[Vec<u8>], what: &str) {
    for (index, expected) in payloads.iter().enumerate() {
        let lsn = index as u64 + 1;
        match read(lsn) {
            Ok(found) => assert_eq!(&found, expected, "{what}: lsn {lsn}"),
            Err(error) => panic!("{what}: lsn {lsn}: {error}"),
        }
    }
}

fn assert_sidecars_exact(fs: &SimFs, what: &str) {
    for segment in segment_paths(fs, &sim_dir()) {
        let bytes = fs.file_bytes(&segment).expect("segment");
        let sidecar = fs.file_bytes(&sidecar_of(&segment));
        assert_eq!(sidecar, Some(expected_sidecar(&bytes)), "{what}: sidecar of {}", segment.display());
    }
}

#[test]
fn every_lsn_reads_back_across_segment_rolls() {
    let fs = SimFs::new();
    let cfg = sim_config(SEGMENT_BYTES);
    let payloads = payloads(60, 150);
    let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    append_durably(&wal, &payloads);
    assert!(segment_paths(&fs, &sim_dir()).len() >= 10, "the log rolled over many segments");
    assert_sidecars_exact(&fs, "the writer's sidecars");
    assert_reads_all(&mut |lsn| wal.read(lsn), &payloads, "live log");
    // Random order, so the open-file cache evicts and reopens.
    let mut rng = crate::fs::sim::SplitMix::new(7);
    for _ in 0..500 {
        let lsn = 1 + rng.below(payloads.len() as u64);
        assert_eq!(wal.read(lsn).expect("read"), payloads[lsn as usize - 1], "lsn {lsn}");
    }
    let mut buffer = vec![1, 2, 3];
    wal.read_into(5, &mut buffer).expect("read into");
    assert_eq!(buffer, payloads[4]);
    wal.shutdown().expect("shutdown");

    let mut standalone = reader(&fs);
    assert_reads_all(&mut |lsn| standalone.read(lsn), &payloads, "standalone reader");
    let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("reopen");
    assert_reads_all(&mut |lsn| wal.read(lsn), &payloads, "reopened log");
}

#[test]
fn reads_past_durable_or_below_lsn_1_are_refused() {
    let fs = SimFs::new();
    let cfg = sim_config(SEGMENT_BYTES);
    let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    assert!(matches!(wal.read(1), Err(ReadError::NotDurable { lsn: 1, durable_lsn: 0 })));
    let payloads = payloads(5, 100);
    for payload in &payloads {
        wal.append_one(payload).expect("append");
    }
    wal.wait_durable_blocking(5).expect("durable");
    fs.hold_syncs(true);
    let pending = wal.append_one(b"not yet durable").expect("append");
    // Written or not, a record is not served before its fsync.
    assert!(matches!(wal.read(pending), Err(ReadError::NotDurable { lsn: 6, durable_lsn: 5 })));
    assert!(matches!(wal.read(1000), Err(ReadError::NotDurable { lsn: 1000, durable_lsn: 5 })));
    assert!(matches!(wal.read(0), Err(ReadError::Removed { lsn: 0, first_lsn_retained: 1 })));
    fs.hold_syncs(false);
    wal.wait_durable_blocking(pending).expect("durable");
    assert_eq!(wal.read(pending).expect("durable now"), b"not yet durable");
    assert_eq!(wal.read(5).expect("read"), payloads[4]);

    let mut standalone = reader(&fs);
    match standalone.read(7) {
        Err(ReadError::PastEnd { lsn: 7, last_lsn: 6 }) => {}
        other => panic!("expected PastEnd, got {other:?}"),
    }
    let empty = SimFs::new();
    empty.create_dir_all(&sim_dir()).expect("dir");
    assert!(matches!(reader(&empty).read(1), Err(ReadError::PastEnd { lsn: 1, last_lsn: 0 })));
    assert!(matches!(reader(&SimFs::new()).read(1), Err(ReadError::Io { .. })), "no folder");
}

#[test]
fn after_a_torn_tail_reads_stop_at_the_recovered_end() {
    let fs = SimFs::new();
    let cfg = sim_config(SEGMENT_BYTES);
    let payloads = payloads(30, 150);
    write_log(&fs, &cfg, &payloads);
    let segments = segment_paths(&fs, &sim_dir());
    let tail = segments.last().expect("segments").clone();
    let intact = fs.file_bytes(&tail).expect("tail");
    let last_frame_at = *frame_offsets(&intact).last().expect("frames");
    // Torn in the middle of the last frame; the sidecar still lists it.
    fs.set_file_bytes(&tail, intact[..last_frame_at + 9].to_vec());

    let mut standalone = reader(&fs);
    assert_reads_all(&mut |lsn| standalone.read(lsn), &payloads[..29], "before restart");
    assert!(matches!(standalone.read(30), Err(ReadError::PastEnd { lsn: 30, last_lsn: 29 })));

    let (wal, report, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("reopen");
    assert_eq!(report.next_lsn, 30);
    assert!(report.torn_tail.is_some());
    assert_sidecars_exact(&fs, "start-up rewrites the tail's sidecar");
    assert_reads_all(&mut |lsn| wal.read(lsn), &payloads[..29], "after restart");
    assert!(matches!(wal.read(30), Err(ReadError::NotDurable { lsn: 30, durable_lsn: 29 })));
    let lsn = wal.append_one(b"after the tear").expect("append");
    wal.wait_durable_blocking(lsn).expect("durable");
    assert_eq!(wal.read(30).expect("the new lsn 30"), b"after the tear");
}

#[test]
fn power_loss_leaves_sidecars_that_reads_survive() {
    for seed in 0..40 {
        let fs = SimFs::new();
        let cfg = sim_config(SEGMENT_BYTES);
        let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
        let payloads = payloads(40, 150);
        for payload in &payloads {
            wal.append_one(payload).expect("append");
        }
        wal.wait_durable_blocking(40).expect("durable");
        // Sidecars are never fsynced: a power loss leaves them empty or torn.
        let rebooted = fs.crash_torn(seed);
        drop(wal);
        let mut standalone = reader(&rebooted);
        assert_reads_all(&mut |lsn| standalone.read(lsn), &payloads, &format!("seed {seed}, before restart"));
        let (wal, report, _) = open_sim(&rebooted, &cfg, RecoveryPolicy::default()).expect("restart");
        assert_eq!(report.next_lsn, 41, "seed {seed}");
        assert_reads_all(&mut |lsn| wal.read(lsn), &payloads, &format!("seed {seed}, after restart"));
        assert_sidecars_exact(&rebooted, &format!("seed {seed}: rebuilt by reads and start-up"));
    }
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Deleted,
    Empty,
    Truncated,
    TooLong,
    Garbage,
    Zeroed,
    /// Each entry points at the next record's frame: valid frames, wrong lsns.
    Shifted,
    /// The entries of the segment before: offsets of frames of other lsns.
    Swapped,
}

const DAMAGES: [Damage; 8] = [
    Damage::Deleted,
    Damage::Empty,
    Damage::Truncated,
    Damage::TooLong,
    Damage::Garbage,
    Damage::Zeroed,
    Damage::Shifted,
    Damage::Swapped,
];

fn damage_sidecar(fs: &SimFs, segment: &Path, damage: Damage, seed: u64) {
    let path = sidecar_of(segment);
    let mut bytes = fs.file_bytes(&path).unwrap_or_default();
    let mut rng = crate::fs::sim::SplitMix::new(seed);
    match damage {
        Damage::Deleted => {
            let _ = fs.remove(&path);
            return;
        }
        Damage::Empty => bytes.clear(),
        Damage::Truncated => bytes.truncate(rng.below(bytes.len() as u64 + 1) as usize),
        Damage::TooLong => bytes.extend((0..1 + rng.below(40)).map(|_| rng.next_u64() as u8)),
        Damage::Garbage => bytes.iter_mut().for_each(|byte| *byte = rng.next_u64() as u8),
        Damage::Zeroed => bytes.iter_mut().for_each(|byte| *byte = 0),
        Damage::Shifted => {
            if bytes.len() >= SIDECAR_ENTRY_BYTES {
                bytes.rotate_left(SIDECAR_ENTRY_BYTES);
            }
        }
        Damage::Swapped => {
            let first = fs.file_bytes(&sim_dir().join(sidecar_file_name(1))).unwrap_or_default();
            bytes = if first == bytes { bytes.iter().rev().copied().collect() } else { first };
        }
    }
    if fs.file_bytes(&path).is_none() {
        fs.create(&path).expect("create sidecar");
    }
    fs.set_file_bytes(&path, bytes);
}

#[test]
fn damaged_sidecars_are_rebuilt_and_reads_stay_right() {
    for (round, damage) in DAMAGES.into_iter().enumerate() {
        let fs = SimFs::new();
        let cfg = sim_config(SEGMENT_BYTES);
        let payloads = payloads(50, 150);
        write_log(&fs, &cfg, &payloads);
        let segments = segment_paths(&fs, &sim_dir());
        for (index, segment) in segments.iter().enumerate() {
            damage_sidecar(&fs, segment, damage, (round * 100 + index) as u64);
        }
        let what = format!("{damage:?}");
        let mut standalone = reader(&fs);
        assert_reads_all(&mut |lsn| standalone.read(lsn), &payloads, &what);
        // Sealed sidecars were rebuilt by those reads; the tail's is left to
        // start-up (a live writer may be appending to it).
        for segment in &segments[..segments.len() - 1] {
            let bytes = fs.file_bytes(segment).expect("segment");
            assert_eq!(fs.file_bytes(&sidecar_of(segment)), Some(expected_sidecar(&bytes)), "{what}: {segment:?}");
        }
        let report = verify_with_fs(&fs, &sim_dir());
        assert!(report.is_ok(), "{what}: {report}");
        let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("reopen");
        assert_sidecars_exact(&fs, &what);
        assert_reads_all(&mut |lsn| wal.read(lsn), &payloads, &what);
        assert!(verify_with_fs(&fs, &sim_dir()).findings.is_empty(), "{what}");
    }
}

#[test]
fn the_tail_sidecar_removed_under_a_running_log_costs_only_speed() {
    let fs = SimFs::new();
    let cfg = sim_config(1 << 20);
    let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    let payloads = payloads(30, 150);
    for payload in &payloads[..10] {
        wal.append_one(payload).expect("append");
    }
    wal.wait_durable_blocking(10).expect("durable");
    fs.remove(&sim_dir().join(sidecar_file_name(1))).expect("remove the live sidecar");
    for payload in &payloads[10..] {
        wal.append_one(payload).expect("append");
    }
    wal.wait_durable_blocking(30).expect("durable");
    assert_reads_all(&mut |lsn| wal.read(lsn), &payloads, "scanning the tail");
}

#[test]
fn reads_below_retention_are_refused() {
    let fs = SimFs::new();
    let cfg = sim_config(SEGMENT_BYTES);
    let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    let payloads = payloads(50, 150);
    for payload in &payloads {
        wal.append_one(payload).expect("append");
    }
    wal.wait_durable_blocking(50).expect("durable");
    assert_reads_all(&mut |lsn| wal.read(lsn), &payloads, "before retention");
    // Segment 1 open in the reader's cache: retention through the log must
    // still make it unreadable.
    assert_eq!(wal.read(1).expect("read"), payloads[0]);
    let removed = wal.remove_segments_covered(30, |_| true).expect("retention");
    assert!(removed.len() >= 3, "{removed:?}");
    for segment in &removed {
        assert!(fs.file_bytes(segment).is_none() && fs.file_bytes(&sidecar_of(segment)).is_none(), "{segment:?}");
    }
    let first_kept = first_lsn_of(&segment_paths(&fs, &sim_dir())[0]);
    assert!(first_kept > 1 && first_kept <= 31);
    for lsn in 0..first_kept {
        match wal.read(lsn) {
            Err(ReadError::Removed { lsn: refused, first_lsn_retained }) => {
                assert_eq!((refused, first_lsn_retained), (lsn, first_kept))
            }
            other => panic!("lsn {lsn}: expected Removed, got {other:?}"),
        }
    }
    for lsn in first_kept..=50 {
        assert_eq!(wal.read(lsn).expect("kept"), payloads[lsn as usize - 1], "lsn {lsn}");
    }
}

#[test]
fn a_standalone_reader_notices_segments_removed_behind_it() {
    let fs = SimFs::new();
    let cfg = sim_config(SEGMENT_BYTES);
    let payloads = payloads(50, 150);
    write_log(&fs, &cfg, &payloads);
    let mut standalone = reader(&fs);
    assert_eq!(standalone.read(50).expect("read"), payloads[49]);
    let removed = crate::remove_segments_covered(&fs, &sim_dir(), 30, |_| true).expect("retention");
    let first_kept = first_lsn_of(&segment_paths(&fs, &sim_dir())[0]);
    assert!(!removed.is_empty());
    // Never opened before the removal: found gone, folder listed again.
    assert!(
        matches!(standalone.read(1), Err(ReadError::Removed { lsn: 1, first_lsn_retained }) if first_lsn_retained == first_kept)
    );
    for lsn in first_kept..=50 {
        assert_eq!(standalone.read(lsn).expect("kept"), payloads[lsn as usize - 1], "lsn {lsn}");
    }
}

/// Counts what readers do: whole-file reads, positioned-read bytes, and
/// read handles alive.
#[derive(Debug, Default)]
struct Counters {
    whole_reads: AtomicU64,
    read_at_bytes: AtomicU64,
    handles_alive: AtomicU64,
    handles_alive_max: AtomicU64,
}

#[derive(Debug)]
struct CountingFs {
    inner: SimFs,
    counters: Arc<Counters>,
}

#[derive(Debug)]
struct CountingFile {
    inner: Box<dyn WalReadFile>,
    counters: Arc<Counters>,
}

impl Drop for CountingFile {
    fn drop(&mut self) {
        self.counters.handles_alive.fetch_sub(1, Ordering::Relaxed);
    }
}

impl WalReadFile for CountingFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read_at(offset, buf)?;
        self.counters.read_at_bytes.fetch_add(read as u64, Ordering::Relaxed);
        Ok(read)
    }
    fn len_bytes(&self) -> io::Result<u64> {
        self.inner.len_bytes()
    }
}

impl WalFs for CountingFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        self.inner.create(path)
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        self.inner.open(path)
    }
    fn read(&self, path: &Path, bytes_max: u64) -> io::Result<Vec<u8>> {
        self.counters.whole_reads.fetch_add(1, Ordering::Relaxed);
        self.inner.read(path, bytes_max)
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn WalReadFile>> {
        let inner = self.inner.open_read(path)?;
        let alive = self.counters.handles_alive.fetch_add(1, Ordering::Relaxed) + 1;
        self.counters.handles_alive_max.fetch_max(alive, Ordering::Relaxed);
        Ok(Box::new(CountingFile { inner, counters: self.counters.clone() }))
    }
    fn len_bytes(&self, path: &Path) -> io::Result<u64> {
        self.inner.len_bytes(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn free_bytes(&self, dir: &Path) -> io::Result<u64> {
        self.inner.free_bytes(dir)
    }
}

#[test]
fn a_read_through_a_good_sidecar_reads_one_entry_pair_and_one_frame() {
    let fs = SimFs::new();
    let cfg = sim_config(SEGMENT_BYTES);
    let payloads = payloads(200, 150);
    write_log(&fs, &cfg, &payloads);
    let segments = segment_paths(&fs, &sim_dir()).len();
    assert!(segments > 4 * OPEN_SEGMENTS_MAX, "{segments} segments");
    let counters = Arc::new(Counters::default());
    let counting = CountingFs { inner: fs.clone(), counters: counters.clone() };
    let mut standalone = SegmentReader::with_fs(Arc::new(counting), &sim_dir());
    let mut rng = crate::fs::sim::SplitMix::new(3);
    let mut payload = Vec::new();
    for _ in 0..2000 {
        let lsn = 1 + rng.below(payloads.len() as u64);
        let before = counters.read_at_bytes.load(Ordering::Relaxed);
        standalone.read_into(lsn, &mut payload).expect("read");
        assert_eq!(payload, payloads[lsn as usize - 1], "lsn {lsn}");
        let read_bytes = counters.read_at_bytes.load(Ordering::Relaxed) - before;
        let frame_bytes = (crate::format::FRAME_HEADER_BYTES + payload.len()) as u64;
        // The last record of the tail has no next entry: header, then frame.
        let header_bytes = crate::format::FRAME_HEADER_BYTES as u64;
        assert!(read_bytes <= 2 * SIDECAR_ENTRY_BYTES as u64 + header_bytes + frame_bytes, "lsn {lsn}: {read_bytes}");
    }
    assert_eq!(counters.whole_reads.load(Ordering::Relaxed), 0, "no segment was scanned");
    let handles_max = counters.handles_alive_max.load(Ordering::Relaxed);
    assert!(handles_max <= 2 * OPEN_SEGMENTS_MAX as u64, "{handles_max} read handles open at once");
    drop(standalone);
    assert_eq!(counters.handles_alive.load(Ordering::Relaxed), 0);
}

#[test]
fn verify_notes_sidecar_trouble_but_passes_the_log() {
    let fs = SimFs::new();
    let cfg = sim_config(SEGMENT_BYTES);
    write_log(&fs, &cfg, &payloads(30, 150));
    assert!(verify_with_fs(&fs, &sim_dir()).findings.is_empty());
    let segments = segment_paths(&fs, &sim_dir());
    damage_sidecar(&fs, &segments[0], Damage::Garbage, 1);
    damage_sidecar(&fs, &segments[1], Damage::Deleted, 1);
    damage_sidecar(&fs, &segments[2], Damage::TooLong, 1);
    let orphan = sim_dir().join(sidecar_file_name(999_999));
    fs.create(&orphan).expect("orphan");
    let report = verify_with_fs(&fs, &sim_dir());
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.findings.len(), 4, "{report}");
    assert!(report.findings.iter().all(|finding| finding.severity == Severity::Note), "{report}");
    assert!(report.findings.iter().any(|finding| finding.file == orphan), "{report}");
    // Start-up removes the orphan; the sealed sidecars wait for a read.
    let (_wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    assert!(fs.file_bytes(&orphan).is_none());
    assert_eq!(verify_with_fs(&fs, &sim_dir()).findings.len(), 3);
}

#[test]
fn a_segment_cut_in_its_header_loses_its_sidecar_too() {
    let fs = SimFs::new();
    let cfg = sim_config(SEGMENT_BYTES);
    let payloads = payloads(30, 150);
    write_log(&fs, &cfg, &payloads);
    let tail = segment_paths(&fs, &sim_dir()).last().expect("segments").clone();
    let kept_lsns = first_lsn_of(&tail) - 1;
    fs.set_file_bytes(&tail, fs.file_bytes(&tail).expect("tail")[..10].to_vec());
    let (wal, report, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    assert_eq!(report.next_lsn, kept_lsns + 1);
    // The writer created the segment again, with a new, empty sidecar.
    assert_eq!(fs.file_bytes(&sidecar_of(&tail)), Some(Vec::new()));
    assert_reads_all(&mut |lsn| wal.read(lsn), &payloads[..kept_lsns as usize], "after the cut");
}

#[test]
fn read_records_through_the_reader_matches_read_records() {
    let fs = SimFs::new();
    let cfg = sim_config(SEGMENT_BYTES);
    let payloads = payloads(60, 150);
    write_log(&fs, &cfg, &payloads);
    let collect_all = |from_lsn: u64| {
        let mut records = Vec::new();
        crate::read_records_with_fs(&fs, &sim_dir(), from_lsn, |lsn, payload| {
            records.push((lsn, payload.to_vec()));
            std::ops::ControlFlow::Continue(())
        })
        .expect("read_records");
        records
    };
    for from_lsn in [0, 1, 2, 17, 33, 59, 60, 61, 500] {
        for damage in [None, Some(Damage::Garbage), Some(Damage::Deleted)] {
            if let Some(damage) = damage {
                for segment in segment_paths(&fs, &sim_dir()) {
                    damage_sidecar(&fs, &segment, damage, from_lsn);
                }
            }
            let mut records = Vec::new();
            reader(&fs)
                .read_records(from_lsn, |lsn, payload| {
                    records.push((lsn, payload.to_vec()));
                    std::ops::ControlFlow::Continue(())
                })
                .expect("reader");
            assert_eq!(records, collect_all(from_lsn), "from {from_lsn}, {damage:?}");
            let expected_len = payloads.len().saturating_sub(from_lsn.max(1) as usize - 1);
            assert_eq!(records.len(), expected_len, "from {from_lsn}");
        }
    }
}

/// A reader that listed the folder before the writer moved on to a new
/// segment finds the new segment's records without scanning the one it
/// thought was last (a whole 64 MiB read in a server whose history reads
/// back deferred bank instructions as they are written).
#[test]
fn a_record_in_a_segment_created_since_the_last_listing_is_found_without_a_scan() {
    let fs = SimFs::new();
    let cfg = sim_config(SEGMENT_BYTES);
    let payloads = payloads(60, 150);
    let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    let counters = Arc::new(Counters::default());
    let counting = CountingFs { inner: fs.clone(), counters: counters.clone() };
    let mut standalone = SegmentReader::with_fs(Arc::new(counting), &sim_dir());
    let mut payload = Vec::new();
    for expected in &payloads {
        let lsn = wal.append_one(expected).expect("append");
        wal.wait_durable_blocking(lsn).expect("durable");
        standalone.read_into(lsn, &mut payload).expect("read");
        assert_eq!(&payload, expected, "lsn {lsn}");
        let mut run = Vec::new();
        standalone
            .read_run(lsn, lsn, |lsn, payload| {
                run.push((lsn, payload.to_vec()));
                std::ops::ControlFlow::Continue(())
            })
            .expect("run");
        assert_eq!(run, vec![(lsn, expected.clone())], "run of lsn {lsn}");
    }
    let segments = segment_paths(&fs, &sim_dir()).len();
    assert!(segments > 10, "{segments} segments");
    assert_eq!(counters.whole_reads.load(Ordering::Relaxed), 0, "no segment was scanned");
    assert!(matches!(standalone.read(61), Err(ReadError::PastEnd { lsn: 61, last_lsn: 60 })), "past the end");
    wal.shutdown().expect("shutdown");
}

/// The segment being written is preallocated (zeros to its full length):
/// reading a live log's records (the checkpointer's `read_records`, a
/// reader's fallback scan of the tail) reads its frames and at most about
/// a chunk more, not the unused room.
#[test]
fn reading_a_live_preallocated_tail_does_not_read_its_unused_room() {
    let fs = SimFs::new();
    let segment_bytes = 16 << 20;
    let cfg = sim_config(segment_bytes);
    let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    let payloads = payloads(100, 150);
    append_durably(&wal, &payloads);
    let tail = segment_paths(&fs, &sim_dir());
    assert_eq!(tail.len(), 1);
    assert_eq!(fs.file_bytes(&tail[0]).expect("tail").len() as u64, segment_bytes, "preallocated");
    let counters = Arc::new(Counters::default());
    let counting = CountingFs { inner: fs.clone(), counters: counters.clone() };
    let mut records = Vec::new();
    crate::read_records_with_fs(&counting, &sim_dir(), 1, |lsn, payload| {
        records.push((lsn, payload.to_vec()));
        std::ops::ControlFlow::Continue(())
    })
    .expect("read records");
    assert_eq!(records, expected_records(&payloads));
    let read_bytes = counters.read_at_bytes.load(Ordering::Relaxed);
    assert!(read_bytes <= 2 << 20, "read {read_bytes} bytes of a {segment_bytes}-byte tail");
    assert_eq!(counters.whole_reads.load(Ordering::Relaxed), 0, "no whole-file read");
    wal.shutdown().expect("shutdown");
}

#[test]
fn a_run_reads_the_same_records_as_one_by_one_across_segments_and_damage() {
    let fs = SimFs::new();
    let cfg = sim_config(SEGMENT_BYTES);
    let payloads = payloads(60, 150);
    write_log(&fs, &cfg, &payloads);
    let run = |from: u64, to: u64, stop_after: usize| {
        let mut records = Vec::new();
        reader(&fs)
            .read_run(from, to, |lsn, payload| {
                records.push((lsn, payload.to_vec()));
                if records.len() == stop_after {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            })
            .map(|()| records)
    };
    for (from, to) in [(1, 60), (1, 1), (2, 17), (17, 59), (33, 33), (5, 4)] {
        for damage in [None, Some(Damage::Garbage), Some(Damage::Deleted)] {
            if let Some(damage) = damage {
                for segment in segment_paths(&fs, &sim_dir()) {
                    damage_sidecar(&fs, &segment, damage, from);
                }
            }
            let expected: Vec<_> = (from..=to).map(|lsn| (lsn, payloads[lsn as usize - 1].clone())).collect();
            assert_eq!(run(from, to, usize::MAX).expect("run"), expected, "{from}..={to}, {damage:?}");
        }
    }
    assert_eq!(run(10, 60, 3).expect("run").len(), 3, "visit stops the run");
    assert!(matches!(run(59, 61, usize::MAX), Err(ReadError::PastEnd { .. })), "past the end is an error");
    assert!(matches!(run(0, 2, usize::MAX), Err(ReadError::Removed { .. })), "lsn 0 is never a record");
}

/// What a proptest case does to one segment's sidecar.
fn any_damage() -> impl Strategy<Value = Option<Damage>> {
    prop_oneof![
        3 => Just(None),
        1 => proptest::sample::select(DAMAGES.to_vec()).prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn reads_return_what_was_appended_whatever_happens_to_sidecars(
        segment_bytes in 241u64..3000,
        sizes in proptest::collection::vec(0usize..=200, 1..150),
        damages in proptest::collection::vec(any_damage(), 64),
        seed in any::<u64>(),
        reopen in any::<bool>(),
    ) {
        let fs = SimFs::new();
        let cfg = sim_config(segment_bytes);
        let payloads: Vec<Vec<u8>> =
            sizes.iter().enumerate().map(|(index, &size)| payload(seed.wrapping_add(index as u64), size)).collect();
        write_log(&fs, &cfg, &payloads);
        for (index, segment) in segment_paths(&fs, &sim_dir()).iter().enumerate() {
            if let Some(damage) = damages[index % damages.len()] {
                damage_sidecar(&fs, segment, damage, seed ^ index as u64);
            }
        }
        if reopen {
            let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("reopen");
            for (index, expected) in payloads.iter().enumerate() {
                prop_assert_eq!(&wal.read(index as u64 + 1).expect("read"), expected);
            }
            let past = payloads.len() as u64 + 1;
            prop_assert!(matches!(wal.read(past), Err(ReadError::NotDurable { .. })), "lsn {} is past durable", past);
        } else {
            let mut standalone = reader(&fs);
            for (index, expected) in payloads.iter().enumerate() {
                prop_assert_eq!(&standalone.read(index as u64 + 1).expect("read"), expected);
            }
            let past = payloads.len() as u64 + 1;
            prop_assert!(matches!(standalone.read(past), Err(ReadError::PastEnd { .. })), "lsn {} is past the end", past);
        }
    }
}

/// Fails every non-empty write to a sidecar while `failing` is on, to show
/// that a sidecar is only a hint: the log never fails for it.
#[derive(Debug, Clone)]
struct SidecarWritesFail {
    inner: SimFs,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug)]
struct MaybeFailingFile {
    inner: Box<dyn WalFile>,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl WalFile for MaybeFailingFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if !bytes.is_empty() && self.failing.load(Ordering::Relaxed) {
            return Err(io::Error::other("injected sidecar write error"));
        }
        self.inner.write_all(bytes)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn len_bytes(&self) -> io::Result<u64> {
        self.inner.len_bytes()
    }
    fn truncate(&mut self, len_bytes: u64) -> io::Result<()> {
        self.inner.truncate(len_bytes)
    }
    fn preallocate(&mut self, len_bytes: u64) -> io::Result<bool> {
        self.inner.preallocate(len_bytes)
    }
}

impl WalFs for SidecarWritesFail {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let inner = self.inner.create(path)?;
        if !path.to_string_lossy().contains(".idx") {
            return Ok(inner);
        }
        Ok(Box::new(MaybeFailingFile { inner, failing: self.failing.clone() }))
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        self.inner.open(path)
    }
    fn read(&self, path: &Path, bytes_max: u64) -> io::Result<Vec<u8>> {
        self.inner.read(path, bytes_max)
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn WalReadFile>> {
        self.inner.open_read(path)
    }
    fn len_bytes(&self, path: &Path) -> io::Result<u64> {
        self.inner.len_bytes(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn free_bytes(&self, dir: &Path) -> io::Result<u64> {
        self.inner.free_bytes(dir)
    }
}

#[test]
fn a_failing_sidecar_write_never_fails_the_log() {
    let sim = SimFs::new();
    let fs = SidecarWritesFail { inner: sim.clone(), failing: Default::default() };
    let cfg = sim_config(SEGMENT_BYTES);
    let open = |fs: &SidecarWritesFail| {
        let (wal, _) = Wal::open_with_fs(Arc::new(fs.clone()), cfg.clone(), RecoveryPolicy::default(), 1, |_, _| {
            Ok::<(), std::convert::Infallible>(())
        })
        .expect("open");
        wal
    };
    let wal = open(&fs);
    let payloads = payloads(60, 150);
    for payload in &payloads[..10] {
        wal.append_one(payload).expect("append");
    }
    wal.wait_durable_blocking(10).expect("durable");
    // The writer's appends fail (it gives up on that segment's sidecar), and
    // so do rebuilds by readers.
    fs.failing.store(true, Ordering::Relaxed);
    for payload in &payloads[10..40] {
        wal.append_one(payload).expect("append");
    }
    wal.wait_durable_blocking(40).expect("sidecar errors do not fail the log");
    assert_eq!(wal.health(), crate::Health::Healthy);
    assert_reads_all(&mut |lsn| wal.read(lsn), &payloads[..40], "sidecar writes failing");
    // New segments get working sidecars again.
    fs.failing.store(false, Ordering::Relaxed);
    for payload in &payloads[40..] {
        wal.append_one(payload).expect("append");
    }
    wal.wait_durable_blocking(60).expect("durable");
    assert_reads_all(&mut |lsn| wal.read(lsn), &payloads, "after the errors");
    wal.shutdown().expect("shutdown");
    // Start-up with sidecar writes failing still opens and reads.
    fs.failing.store(true, Ordering::Relaxed);
    let wal = open(&fs);
    assert_reads_all(&mut |lsn| wal.read(lsn), &payloads, "opened with sidecar writes failing");
    wal.shutdown().expect("shutdown");
    fs.failing.store(false, Ordering::Relaxed);
    let wal = open(&fs);
    assert_reads_all(&mut |lsn| wal.read(lsn), &payloads, "reopened");
    drop(wal);
    assert_sidecars_exact(&sim, "rebuilt once writes work");
}
