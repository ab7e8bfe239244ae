use std::convert::Infallible;
use std::sync::Arc;

use super::*;
use crate::format::{FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use crate::fs::WalFs;
use crate::segment::segment_file_name;

const ONE_SEGMENT_BYTES: u64 = 1 << 20;

fn assert_appends_continue(fs: &SimFs, cfg: &WalConfig, mut expected: Records) {
    let (wal, report, records) = open_sim(fs, cfg, RecoveryPolicy::default()).expect("reopen");
    assert!(report.torn_tail.is_none(), "a truncated log reopens clean");
    assert_eq!(records, expected);
    let next = payload(999, 10);
    let lsn = wal.append_one(&next).expect("append after recovery");
    assert_eq!(lsn, expected.len() as u64 + 1);
    wal.wait_durable_blocking(lsn).expect("durable");
    wal.shutdown().expect("shutdown");
    expected.push((lsn, next));
    let (_wal, _, records) = open_sim(fs, cfg, RecoveryPolicy::default()).expect("reopen again");
    assert_eq!(records, expected);
}

#[test]
fn recovers_an_intact_log() {
    let fs = SimFs::new();
    let cfg = sim_config(ONE_SEGMENT_BYTES);
    let payloads = payloads(20, 150);
    write_log(&fs, &cfg, &payloads);
    let (_wal, report, records) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    assert_eq!(records, expected_records(&payloads));
    assert_eq!(report.next_lsn, 21);
    assert_eq!(report.records_replayed, 20);
    assert_eq!(report.segments, 1);
    assert!(report.torn_tail.is_none() && report.dropped_by_truncation.is_none());
}

#[test]
fn torn_tail_at_every_offset_of_the_last_frame() {
    let fs = SimFs::new();
    let cfg = sim_config(ONE_SEGMENT_BYTES);
    let payloads = vec![payload(1, 40), payload(2, 0), payload(3, 90), payload(4, 60)];
    write_log(&fs, &cfg, &payloads);
    let path = sim_dir().join(segment_file_name(1));
    let intact = fs.file_bytes(&path).expect("segment");
    let last_frame_at = *frame_offsets(&intact).last().expect("frames");
    for cut in last_frame_at..intact.len() {
        fs.set_file_bytes(&path, intact[..cut].to_vec());
        let (wal, report, records) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("torn tail opens");
        drop(wal);
        assert_eq!(records, expected_records(&payloads[..3]), "cut at {cut}");
        assert_eq!(report.next_lsn, 4);
        match (cut == last_frame_at, report.torn_tail) {
            (true, None) => {}
            (false, Some(tail)) => {
                assert_eq!((tail.file, tail.offset, tail.lsn), (path.clone(), last_frame_at as u64, 4));
                // Up to the torn bytes' last non-zero byte (a cut that
                // ends in a payload's zeros looks like unused room).
                let written = intact[last_frame_at..cut].iter().rposition(|&byte| byte != 0).map_or(0, |at| at + 1);
                assert_eq!(tail.bytes_dropped, written as u64, "cut at {cut}");
            }
            (at_boundary, tail) => panic!("cut at {cut} (boundary {at_boundary}): unexpected {tail:?}"),
        }
        assert_appends_continue(&fs, &cfg, expected_records(&payloads[..3]));
    }
}

/// Five frames, then `tail(bytes)` changes the segment's bytes: opens,
/// keeps the five records, and returns the frames' end and the torn
/// tail's report.
fn torn_after_five_frames(tail: impl FnOnce(&mut Vec<u8>)) -> (u64, crate::TailReport) {
    let fs = SimFs::new();
    let cfg = sim_config(ONE_SEGMENT_BYTES);
    let payloads = payloads(5, 100);
    write_log(&fs, &cfg, &payloads);
    let path = sim_dir().join(segment_file_name(1));
    let mut bytes = fs.file_bytes(&path).expect("segment");
    let intact_bytes = bytes.len() as u64;
    tail(&mut bytes);
    fs.set_file_bytes(&path, bytes);
    let (_wal, report, records) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("opens");
    assert_eq!(records, expected_records(&payloads));
    (intact_bytes, report.torn_tail.expect("torn tail"))
}

#[test]
fn garbage_after_the_last_frame_is_a_torn_tail() {
    let (intact_bytes, tail) = torn_after_five_frames(|bytes| {
        bytes.extend_from_slice(&[0u8; 700]);
        bytes.extend((0..300u32).map(|i| (i * 7919 % 256) as u8));
    });
    assert_eq!((tail.offset, tail.bytes_dropped), (intact_bytes, 1000));
}

/// A write torn in a preallocated tail leaves part of a frame and then
/// the segment's zeros: the report counts the torn bytes, not the
/// megabytes of unused room after them, and the records before stay.
#[test]
fn a_torn_frame_in_preallocated_room_reports_only_its_own_bytes() {
    let torn: Vec<u8> = (1..=37u8).collect();
    let (intact_bytes, tail) = torn_after_five_frames(|bytes| {
        bytes.extend_from_slice(&torn);
        bytes.resize(ONE_SEGMENT_BYTES as usize, 0);
    });
    assert_eq!((tail.offset, tail.bytes_dropped), (intact_bytes, torn.len() as u64));
    assert!(tail.to_string().contains("37 bytes dropped"), "{tail}");
}

/// Flip one bit in every byte of a middle frame: refused, naming file,
/// offset and lsn. Never taken for a torn tail.
#[test]
fn damage_in_a_middle_frame_refuses_to_open() {
    let fs = SimFs::new();
    let cfg = sim_config(ONE_SEGMENT_BYTES);
    let payloads = payloads(6, 50);
    write_log(&fs, &cfg, &payloads);
    let path = sim_dir().join(segment_file_name(1));
    let intact = fs.file_bytes(&path).expect("segment");
    let offsets = frame_offsets(&intact);
    let (frame_at, frame_end) = (offsets[3], offsets[4]);
    for position in frame_at..frame_end {
        let mut damaged = intact.clone();
        damaged[position] ^= 1 << (position % 8);
        fs.set_file_bytes(&path, damaged);
        match open_sim(&fs, &cfg, RecoveryPolicy::default()) {
            Err(OpenError::Corrupt { file, offset, lsn, reason }) => {
                assert_eq!((file, offset, lsn), (path.clone(), frame_at as u64, 4), "flip at {position}: {reason}");
            }
            other => panic!("flip at {position}: expected Corrupt, got {:?}", other.map(|(_, r, _)| r)),
        }
    }
}

#[test]
fn flipped_length_bits_of_a_middle_frame_are_damage() {
    let fs = SimFs::new();
    let cfg = sim_config(ONE_SEGMENT_BYTES);
    let payloads = payloads(4, 100);
    write_log(&fs, &cfg, &payloads);
    let path = sim_dir().join(segment_file_name(1));
    let intact = fs.file_bytes(&path).expect("segment");
    let frame_at = frame_offsets(&intact)[1];
    for bit in 0..32 {
        let mut damaged = intact.clone();
        damaged[frame_at + 4 + bit / 8] ^= 1 << (bit % 8);
        fs.set_file_bytes(&path, damaged);
        let error = open_sim(&fs, &cfg, RecoveryPolicy::default()).map(|_| ()).expect_err("length flip");
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(&format!("offset {frame_at}")), "{message}");
    }
}

#[test]
fn damage_in_an_earlier_segment_is_never_a_torn_tail() {
    let fs = SimFs::new();
    let cfg = sim_config(300);
    let payloads = payloads(30, 60);
    write_log(&fs, &cfg, &payloads);
    let segments = segment_paths(&fs, &sim_dir());
    assert!(segments.len() >= 3);
    // Cut the last frame of the first segment short: in the last segment
    // that would be a torn tail, here it is damage.
    let first = fs.file_bytes(&segments[0]).expect("segment");
    let last_frame_at = *frame_offsets(&first).last().expect("frames");
    fs.set_file_bytes(&segments[0], first[..last_frame_at + 5].to_vec());
    match open_sim(&fs, &cfg, RecoveryPolicy::default()) {
        Err(OpenError::Corrupt { file, offset, .. }) => {
            assert_eq!((file, offset), (segments[0].clone(), last_frame_at as u64))
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|(_, r, _)| r)),
    }
}

#[test]
fn truncate_corrupt_cuts_at_the_first_bad_frame_and_reports_it() {
    let fs = SimFs::new();
    let cfg = sim_config(300);
    let payloads = payloads(40, 60);
    write_log(&fs, &cfg, &payloads);
    let segments = segment_paths(&fs, &sim_dir());
    assert!(segments.len() >= 4, "{} segments", segments.len());
    let damaged_path = segments[1].clone();
    let mut bytes = fs.file_bytes(&damaged_path).expect("segment");
    let offsets = frame_offsets(&bytes);
    let bad_at = offsets[1];
    bytes[bad_at + FRAME_HEADER_BYTES] ^= 0x40;
    fs.set_file_bytes(&damaged_path, bytes.clone());
    let first_lsn_of_segment: u64 =
        damaged_path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse().ok()).expect("name");
    let bad_lsn = first_lsn_of_segment + 1;

    let (wal, report, records) = open_sim(&fs, &cfg, RecoveryPolicy::TruncateCorrupt).expect("operator truncates");
    assert_eq!(records, expected_records(&payloads[..bad_lsn as usize - 1]));
    assert_eq!(report.next_lsn, bad_lsn);
    let truncation = report.dropped_by_truncation.clone().expect("reported");
    assert_eq!(
        (truncation.file.clone(), truncation.offset, truncation.lsn),
        (damaged_path.clone(), bad_at as u64, bad_lsn)
    );
    assert_eq!(truncation.dropped.len(), segments.len() - 1);
    assert!(!truncation.dropped[0].removed);
    assert_eq!(truncation.dropped[0].bytes, (bytes.len() - bad_at) as u64);
    assert!(truncation.dropped[1..].iter().all(|dropped| dropped.removed && dropped.offset == 0));
    assert!(truncation.to_string().contains(&damaged_path.display().to_string()));
    assert_eq!(segment_paths(&fs, &sim_dir()), segments[..2].to_vec());
    assert_eq!(report.segments, 2);
    drop(wal);
    assert_appends_continue(&fs, &cfg, expected_records(&payloads[..bad_lsn as usize - 1]));
}

#[test]
fn truncate_corrupt_with_a_damaged_header_removes_the_segment() {
    let fs = SimFs::new();
    let cfg = sim_config(300);
    let payloads = payloads(30, 60);
    write_log(&fs, &cfg, &payloads);
    let segments = segment_paths(&fs, &sim_dir());
    let mut bytes = fs.file_bytes(&segments[1]).expect("segment");
    bytes[2] ^= 1;
    fs.set_file_bytes(&segments[1], bytes);
    assert!(matches!(open_sim(&fs, &cfg, RecoveryPolicy::default()), Err(OpenError::Corrupt { offset: 0, .. })));
    let (_wal, report, records) = open_sim(&fs, &cfg, RecoveryPolicy::TruncateCorrupt).expect("truncates");
    let kept = frame_offsets(&fs.file_bytes(&segments[0]).expect("first")).len();
    assert_eq!(records.len(), kept);
    assert_eq!(report.next_lsn, kept as u64 + 1);
    // The removed segment is recreated empty, with the same first lsn.
    assert_eq!(segment_paths(&fs, &sim_dir()), segments[..2].to_vec());
}

#[test]
fn empty_or_torn_header_last_segment_is_a_torn_tail() {
    for header_bytes in [0, 1, SEGMENT_HEADER_BYTES - 1] {
        let fs = SimFs::new();
        let cfg = sim_config(ONE_SEGMENT_BYTES);
        let payloads = payloads(3, 40);
        write_log(&fs, &cfg, &payloads);
        let next = sim_dir().join(segment_file_name(4));
        let header = crate::format::encode_segment_header(4);
        let mut file = fs.create(&next).expect("create");
        file.write_all(&header[..header_bytes]).expect("write");
        file.sync_data().expect("sync");
        fs.sync_dir(&sim_dir()).expect("sync dir");
        let (wal, report, records) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("opens");
        assert_eq!(records, expected_records(&payloads));
        let tail = report.torn_tail.expect("torn");
        assert_eq!((tail.file, tail.offset, tail.bytes_dropped), (next.clone(), 0, header_bytes as u64));
        assert_eq!(wal.append_one(b"x").expect("append"), 4);
        wal.shutdown().expect("shutdown");
        let (_wal, _, records) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("reopen");
        assert_eq!(records.len(), 4);
    }
}

#[test]
fn header_that_disagrees_with_its_name_is_damage() {
    let fs = SimFs::new();
    let cfg = sim_config(ONE_SEGMENT_BYTES);
    write_log(&fs, &cfg, &payloads(3, 40));
    let path = sim_dir().join(segment_file_name(1));
    let mut bytes = fs.file_bytes(&path).expect("segment");
    bytes[..SEGMENT_HEADER_BYTES].copy_from_slice(&crate::format::encode_segment_header(2));
    fs.set_file_bytes(&path, bytes);
    assert!(matches!(open_sim(&fs, &cfg, RecoveryPolicy::default()), Err(OpenError::Corrupt { offset: 0, .. })));
}

#[test]
fn rotation_keeps_every_segment_within_its_bound() {
    let fs = SimFs::new();
    let segment_bytes = 400;
    let cfg = sim_config(segment_bytes);
    let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    let mut expected = Vec::new();
    for round in 0..40u64 {
        // Batches of up to 9 records: some groups span several segments.
        let mut batch = crate::FrameBatch::new();
        for index in 0..(round % 10) {
            let bytes = payload(round * 100 + index, ((round * 37 + index * 11) % 200) as usize);
            batch.push(&bytes);
            expected.push(bytes);
        }
        let lsns = wal.append(&batch).expect("append");
        assert_eq!(lsns.end - lsns.start, round % 10);
    }
    wal.wait_durable_blocking(wal.last_lsn()).expect("durable");
    wal.shutdown().expect("shutdown");
    let segments = segment_paths(&fs, &sim_dir());
    assert!(segments.len() > 20, "{} segments", segments.len());
    let mut next_lsn = 1;
    for path in &segments {
        let bytes = fs.file_bytes(path).expect("segment");
        assert!(bytes.len() as u64 <= segment_bytes, "{} has {} bytes", path.display(), bytes.len());
        assert_eq!(path.file_name().and_then(|n| n.to_str()), Some(segment_file_name(next_lsn).as_str()));
        next_lsn += frame_offsets(&bytes).len() as u64;
    }
    let (_wal, report, records) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("reopen");
    assert_eq!(records, expected_records(&expected));
    assert_eq!(report.segments, segments.len());
}

#[test]
fn replay_starts_at_from_lsn_and_skips_older_segments() {
    let fs = SimFs::new();
    let cfg = sim_config(300);
    let payloads = payloads(60, 60);
    write_log(&fs, &cfg, &payloads);
    for from_lsn in [1, 2, 17, 45, 60, 61] {
        let (_wal, report, records) = open_sim_from(&fs, &cfg, RecoveryPolicy::default(), from_lsn).expect("open");
        assert_eq!(records, expected_records(&payloads)[from_lsn as usize - 1..].to_vec());
        assert_eq!(report.next_lsn, 61);
    }
    assert!(matches!(
        open_sim_from(&fs, &cfg, RecoveryPolicy::default(), 70),
        Err(OpenError::LogBehind { from_lsn: 70, next_lsn: 61 })
    ));
    // Damage in a segment wholly below from_lsn is not read at start-up.
    let first = sim_dir().join(segment_file_name(1));
    fs.set_file_bytes(&first, b"garbage".to_vec());
    assert!(open_sim_from(&fs, &cfg, RecoveryPolicy::default(), 50).is_ok());
    fs.remove(&first).expect("remove");
    assert!(matches!(
        open_sim(&fs, &cfg, RecoveryPolicy::default()),
        Err(OpenError::MissingRecords { from_lsn: 1, .. })
    ));
}

#[test]
fn an_empty_folder_with_a_checkpoint_starts_at_from_lsn() {
    let fs = SimFs::new();
    let cfg = sim_config(ONE_SEGMENT_BYTES);
    let (wal, report, _) = open_sim_from(&fs, &cfg, RecoveryPolicy::default(), 101).expect("open");
    assert_eq!((report.next_lsn, report.segments), (101, 1));
    assert_eq!(wal.last_lsn(), 100);
    assert_eq!(wal.append_one(b"a").expect("append"), 101);
}

#[test]
fn replay_error_stops_open_and_names_the_lsn() {
    let fs = SimFs::new();
    let cfg = sim_config(ONE_SEGMENT_BYTES);
    write_log(&fs, &cfg, &payloads(5, 40));
    let opened = Wal::open_with_fs(Arc::new(fs.clone()), cfg, RecoveryPolicy::default(), 1, |lsn, _| {
        if lsn == 3 {
            Err("bad record")
        } else {
            Ok(())
        }
    });
    match opened {
        Err(OpenError::Replay { lsn, message }) => assert_eq!((lsn, message.as_str()), (3, "bad record")),
        other => panic!("expected Replay, got {:?}", other.map(|(_, r)| r)),
    }
}

#[test]
fn leftover_temporary_files_are_removed_and_strangers_ignored() {
    let fs = SimFs::new();
    let cfg = sim_config(ONE_SEGMENT_BYTES);
    fs.create_dir_all(&sim_dir()).expect("dir");
    let tmp = sim_dir().join("checkpoint-00000000000000000009.ckpt.tmp");
    let stranger = sim_dir().join("notes.txt");
    fs.create(&tmp).expect("tmp");
    fs.create(&stranger).expect("stranger");
    let (_wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    assert!(fs.file_bytes(&tmp).is_none());
    assert!(fs.file_bytes(&stranger).is_some());
}

#[test]
fn invalid_config_is_refused() {
    let mut cfg = sim_config(ONE_SEGMENT_BYTES);
    cfg.segment_bytes = (SEGMENT_HEADER_BYTES + FRAME_HEADER_BYTES) as u64 + u64::from(cfg.max_record_bytes) - 1;
    let opened =
        Wal::open_with_fs(Arc::new(SimFs::new()), cfg, RecoveryPolicy::default(), 1, |_, _| Ok::<(), Infallible>(()));
    assert!(matches!(opened, Err(OpenError::Config(_))));
}

/// A segment is created at its full length (zeros past the header), so the
/// writer's commits change no metadata. A crash leaves the unused zeros
/// after the last frame: recovery keeps every synced record, reports no
/// torn tail, and gives the tail its full length again. A clean stop, and
/// every segment roll, cut a segment to its last frame.
#[test]
fn a_preallocated_tail_recovers_quietly_and_only_the_tail_keeps_its_zeros() {
    let segment_bytes = 4096;
    let cfg = sim_config(segment_bytes);
    let (wal, crashed, payloads, segments) = crashed_with_a_preallocated_tail(&cfg);
    let (last, sealed) = segments.split_last().expect("segments");
    for path in sealed {
        let bytes = crashed.file_bytes(path).expect("segment");
        let offsets = frame_offsets(&bytes);
        let last_frame = *offsets.last().expect("frames");
        let frame = crate::format::decode_frame(&bytes[last_frame..], u32::MAX).expect("frame");
        assert_eq!(last_frame + frame.frame_bytes(), bytes.len(), "{} ends at its last frame", path.display());
    }
    let tail = crashed.file_bytes(last).expect("tail");
    assert_eq!(tail.len() as u64, segment_bytes, "the tail has its full length");
    assert_eq!(tail.last(), Some(&0), "the tail ends in unused zeros");
    let verified = crate::verify_with_fs(&crashed, &sim_dir());
    // Sidecars are hints, not fsynced with each group: notes at most.
    let flaws: Vec<_> = verified.findings.iter().filter(|finding| finding.severity != crate::Severity::Note).collect();
    assert!(flaws.is_empty(), "{flaws:?}");
    assert_eq!(verified.records, payloads.len() as u64);

    let (reopened, report, records) = open_sim(&crashed, &cfg, RecoveryPolicy::default()).expect("reopen");
    assert_eq!(records, expected_records(&payloads));
    assert!(report.torn_tail.is_none() && report.dropped_by_truncation.is_none(), "{report:?}");
    assert_eq!(crashed.file_bytes(last).expect("tail").len() as u64, segment_bytes, "preallocated again");
    let next = payload(7, 40);
    let lsn = reopened.append_one(&next).expect("append after recovery");
    reopened.wait_durable_blocking(lsn).expect("durable");
    reopened.shutdown().expect("shutdown");
    let tail = crashed.file_bytes(last).expect("tail");
    let last_frame = *frame_offsets(&tail).last().expect("frames");
    assert_eq!(last_frame + FRAME_HEADER_BYTES + next.len(), tail.len(), "a clean stop cuts the unused zeros");
    let (_wal, _, records) = open_sim(&crashed, &cfg, RecoveryPolicy::default()).expect("reopen again");
    assert_eq!(records.len(), payloads.len() + 1);
    assert_eq!(records.last(), Some(&(lsn, next)));
    wal.shutdown().expect("shutdown the original");
}

/// The writer cuts a segment to its last frame before the next exists; if
/// a power loss undid that cut, the earlier segment ends in zeros. Every
/// record is still there and the next segment starts right after them:
/// start-up cuts the zeros again, `verify` notes them, nothing is damage.
/// Zeros that hide records are still damage (the next segment's first lsn
/// does not follow).
#[test]
fn zeros_after_the_frames_of_an_earlier_segment_are_cut_not_damage() {
    let fs = SimFs::new();
    let cfg = sim_config(400);
    let payloads = payloads(40, 150);
    write_log(&fs, &cfg, &payloads);
    let segments = segment_paths(&fs, &sim_dir());
    assert!(segments.len() > 4, "{} segments", segments.len());
    let first = &segments[0];
    let intact = fs.file_bytes(first).expect("segment");
    let mut undone_cut = intact.clone();
    undone_cut.resize(400, 0);
    fs.set_file_bytes(first, undone_cut);
    let verified = crate::verify_with_fs(&fs, &sim_dir());
    assert!(verified.is_ok(), "{:?}", verified.findings);
    assert!(verified.findings.iter().any(|finding| finding.severity == crate::Severity::Note), "noted");
    let (wal, report, records) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("opens");
    assert_eq!(records, expected_records(&payloads));
    assert!(report.torn_tail.is_none() && report.dropped_by_truncation.is_none(), "{report:?}");
    assert_eq!(fs.file_bytes(first), Some(intact.clone()), "cut again");
    wal.shutdown().expect("shutdown");

    // The last frame of the first segment zeroed: a record is missing.
    let offsets = frame_offsets(&intact);
    let mut hidden = intact[..*offsets.last().expect("frames")].to_vec();
    hidden.resize(400, 0);
    fs.set_file_bytes(first, hidden);
    match open_sim(&fs, &cfg, RecoveryPolicy::default()) {
        Err(OpenError::Corrupt { .. }) => {}
        other => panic!("a hidden record must be damage: {:?}", other.map(|(_, report, _)| report)),
    }
}

/// 200 records written durably over segments of `cfg`'s size, and what a
/// crash right after the last fsync leaves (a copy of the files): every
/// segment but the last cut to its last frame, the last one preallocated.
/// The log that wrote them goes on running (for the caller to stop).
fn crashed_with_a_preallocated_tail(cfg: &WalConfig) -> (Wal, SimFs, Vec<Vec<u8>>, Vec<std::path::PathBuf>) {
    let fs = SimFs::new();
    let (wal, _, _) = open_sim(&fs, cfg, RecoveryPolicy::default()).expect("open");
    let payloads = payloads(200, 150);
    append_durably(&wal, &payloads);
    let crashed = fs.durable_snapshot();
    let segments = segment_paths(&crashed, &sim_dir());
    assert!(segments.len() > 3, "{} segments", segments.len());
    (wal, crashed, payloads, segments)
}

/// `--truncate-corrupt-log` over a crashed log: the live tail it drops
/// still has its preallocated zeros, and the report counts the bytes of
/// records dropped, not the unused room.
#[test]
fn a_truncation_counts_the_dropped_records_bytes_not_the_tails_unused_room() {
    let segment_bytes = 4096;
    let cfg = sim_config(segment_bytes);
    let (_wal, crashed, _, segments) = crashed_with_a_preallocated_tail(&cfg);
    let whole: u64 = segments[1..].iter().map(|path| crashed.file_bytes(path).expect("segment").len() as u64).sum();
    let tail = crashed.file_bytes(segments.last().expect("tail")).expect("tail");
    assert_eq!(tail.len() as u64, segment_bytes, "the tail has its full length");
    let tail_written = tail.iter().rposition(|&byte| byte != 0).expect("records in the tail") + 1;
    assert!(tail_written < tail.len(), "room left after the records");
    // Damage the second segment's first frame.
    let damaged = &segments[1];
    let mut bytes = crashed.file_bytes(damaged).expect("segment");
    let first_frame = frame_offsets(&bytes)[0];
    bytes[first_frame + FRAME_HEADER_BYTES] ^= 0xff;
    crashed.set_file_bytes(damaged, bytes.clone());

    let (_reopened, report, _) = open_sim(&crashed, &cfg, RecoveryPolicy::TruncateCorrupt).expect("operator truncates");
    let truncation = report.dropped_by_truncation.expect("reported");
    assert_eq!(truncation.dropped.len(), segments.len() - 1);
    assert_eq!(truncation.dropped[0].bytes, (bytes.len() - first_frame) as u64, "the damaged segment's frames");
    let last = truncation.dropped.last().expect("the tail");
    assert_eq!(
        (last.offset, last.bytes),
        (0, tail_written as u64),
        "the tail's records, not its {segment_bytes} bytes"
    );
    assert!(truncation.bytes_dropped() < whole, "{} of {whole} bytes", truncation.bytes_dropped());
}
