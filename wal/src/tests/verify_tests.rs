//! `verify`, `read_records` and a whole life cycle on the real file system.

use std::ops::ControlFlow;
use std::path::Path;

use super::*;
use crate::segment::segment_file_name;
use crate::{read_records, verify, write_checkpoint, ReadError, Severity};

fn real_config(dir: &Path) -> WalConfig {
    WalConfig { segment_bytes: 600, max_record_bytes: 200, min_free_bytes: 0, ..WalConfig::new(dir) }
}

fn open_real(cfg: &WalConfig) -> Result<(Wal, RecoveryReport, Records), OpenError> {
    let mut records = Vec::new();
    let (wal, report) = Wal::open(cfg.clone(), RecoveryPolicy::default(), 1, |lsn, payload| {
        records.push((lsn, payload.to_vec()));
        Ok::<(), std::convert::Infallible>(())
    })?;
    Ok((wal, report, records))
}

/// A log of `count` records over several segments, on disk.
fn real_log(count: u64) -> (tempfile::TempDir, WalConfig, Vec<Vec<u8>>) {
    let temp = tempfile::tempdir().expect("tempdir");
    let cfg = real_config(&temp.path().join("data").join("wal"));
    let payloads = payloads(count, 120);
    let (wal, _, _) = open_real(&cfg).expect("open creates the folder");
    for payload in &payloads {
        wal.append_one(payload).expect("append");
    }
    wal.shutdown().expect("shutdown");
    (temp, cfg, payloads)
}

fn read_all(dir: &Path, from_lsn: u64) -> Result<Records, ReadError> {
    let mut records = Vec::new();
    read_records(dir, from_lsn, |lsn, payload| {
        records.push((lsn, payload.to_vec()));
        ControlFlow::Continue(())
    })?;
    Ok(records)
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset] ^= 0x01;
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn real_log_round_trips_and_reads_back() {
    let (_temp, cfg, payloads) = real_log(40);
    let (wal, report, records) = open_real(&cfg).expect("reopen");
    assert_eq!(records, expected_records(&payloads));
    assert!(report.segments > 3);
    assert_eq!(read_all(&cfg.dir, 1).expect("read"), expected_records(&payloads));
    assert_eq!(read_all(&cfg.dir, 25).expect("read"), expected_records(&payloads)[24..].to_vec());
    let mut first_three = Vec::new();
    read_records(&cfg.dir, 1, |lsn, _| {
        first_three.push(lsn);
        if first_three.len() == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .expect("read");
    assert_eq!(first_three, vec![1, 2, 3]);
    assert!(wal.stats().fsyncs.load(std::sync::atomic::Ordering::Relaxed) == 0);
}

#[test]
fn verify_an_intact_log() {
    let (_temp, cfg, payloads) = real_log(40);
    write_checkpoint(&cfg.dir, 20, b"snapshot").expect("checkpoint");
    let report = verify(&cfg.dir);
    assert!(report.is_ok(), "{report}");
    assert!(report.findings.is_empty(), "{report}");
    assert_eq!(report.records, payloads.len() as u64);
    assert_eq!((report.first_lsn, report.last_lsn, report.checkpoints), (Some(1), Some(40), 1));
}

#[test]
fn verify_reports_a_torn_tail_as_ok() {
    let (_temp, cfg, payloads) = real_log(40);
    let last =
        std::fs::read_dir(&cfg.dir).expect("dir").filter_map(|e| e.ok()).map(|e| e.path()).max().expect("segments");
    let len = std::fs::metadata(&last).expect("meta").len();
    std::fs::OpenOptions::new().write(true).open(&last).expect("open").set_len(len - 3).expect("cut");
    let report = verify(&cfg.dir);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].severity, Severity::TornTail);
    assert_eq!(report.findings[0].file, last);
    assert_eq!(read_all(&cfg.dir, 1).expect("a torn tail ends reading quietly").len(), payloads.len() - 1);
    let (_wal, recovery, records) = open_real(&cfg).expect("start-up truncates it");
    assert_eq!(records.len(), payloads.len() - 1);
    assert!(recovery.torn_tail.is_some());
    assert!(verify(&cfg.dir).findings.is_empty());
}

#[test]
fn verify_names_file_and_offset_of_mid_log_damage() {
    let (_temp, cfg, _payloads) = real_log(40);
    let first_segment = cfg.dir.join(segment_file_name(1));
    let bytes = std::fs::read(&first_segment).expect("read");
    let frame_at = frame_offsets(&bytes)[1];
    flip(&first_segment, frame_at + 20);
    write_checkpoint(&cfg.dir, 5, b"x").expect("checkpoint");
    let checkpoint = cfg.dir.join(crate::segment::checkpoint_file_name(5));
    flip(&checkpoint, 32);
    std::fs::write(cfg.dir.join("stray.txt"), b"?").expect("stray");

    let report = verify(&cfg.dir);
    assert!(!report.is_ok());
    let text = report.to_string();
    assert!(text.contains(&format!("{} at byte offset {frame_at}", first_segment.display())), "{text}");
    assert!(text.contains(&checkpoint.display().to_string()), "{text}");
    let damage: Vec<_> = report.findings.iter().filter(|f| f.severity == Severity::Damage).collect();
    assert_eq!(damage.len(), 2, "{text}");
    assert!(report.findings.iter().any(|f| f.severity == Severity::Note && f.file.ends_with("stray.txt")));
    // Later segments are still checked and counted.
    assert!(report.records > 30, "{text}");

    match read_all(&cfg.dir, 1) {
        Err(ReadError::Corrupt { file, offset, lsn, .. }) => {
            assert_eq!((file, offset, lsn), (first_segment.clone(), frame_at as u64, 2))
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let refused = open_real(&cfg).map(|_| ()).expect_err("damage refuses to start");
    assert!(refused.to_string().contains(&format!("offset {frame_at}")), "{refused}");
}

#[test]
fn verify_of_a_missing_folder_is_damage() {
    let temp = tempfile::tempdir().expect("tempdir");
    let report = verify(&temp.path().join("absent"));
    assert!(!report.is_ok());
}
