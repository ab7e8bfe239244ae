//! `FaultFs` over the real file system: switched-on faults fail the log the
//! way real ones do, and a restart (without faults) recovers every record
//! that was durable; a short write leaves a torn tail that is cut off.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::*;
use crate::fs::fault::{FaultFs, Faults};
use crate::{Health, RealFs};

fn real_config(dir: &Path) -> WalConfig {
    WalConfig {
        dir: dir.join("wal"),
        segment_bytes: 64 * 1024,
        max_record_bytes: 200,
        max_pending_bytes: 1 << 20,
        min_free_bytes: 0,
    }
}

fn open_real(fs: Arc<dyn crate::WalFs>, cfg: &WalConfig) -> (Wal, Records) {
    let mut records = Vec::new();
    let (wal, _) = Wal::open_with_fs(fs, cfg.clone(), RecoveryPolicy::default(), 1, |lsn, payload| {
        records.push((lsn, payload.to_vec()));
        Ok::<(), Infallible>(())
    })
    .expect("open");
    (wal, records)
}

fn switch(flag: &Arc<AtomicBool>) -> crate::fs::fault::FaultSwitch {
    let flag = Arc::clone(flag);
    Arc::new(move || flag.load(Ordering::Relaxed))
}

#[test]
fn fsync_fault_fails_the_log_and_a_restart_recovers_the_durable_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = real_config(dir.path());
    let on = Arc::new(AtomicBool::new(false));
    let faults = Faults { fsync_fails: Some(switch(&on)), ..Faults::default() };
    let (wal, _) = open_real(Arc::new(FaultFs::new(Arc::new(RealFs), faults)), &cfg);
    let durable = payloads(5, 100);
    for payload in &durable {
        wal.append_one(payload).expect("append");
    }
    wal.wait_durable_blocking(5).expect("durable");
    on.store(true, Ordering::Relaxed);
    let lsn = wal.append_one(b"unacknowledged").expect("queued");
    assert!(wal.wait_durable_blocking(lsn).is_err());
    assert!(matches!(wal.health(), Health::Failed(reason) if reason.contains("injected")));
    assert_eq!(wal.durable_lsn(), 5);
    drop(wal);

    // The write itself reached the page cache: the unacknowledged record may
    // be there after a restart, whole; nothing else may differ.
    let (_wal, records) = open_real(Arc::new(RealFs), &cfg);
    assert_eq!(records[..5], expected_records(&durable)[..]);
    assert!(records.len() == 5 || records[5] == (6, b"unacknowledged".to_vec()), "{records:?}");
    assert!(records.len() <= 6);
}

#[test]
fn short_write_leaves_a_torn_tail_that_restart_cuts_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = real_config(dir.path());
    let on = Arc::new(AtomicBool::new(false));
    let faults = Faults { write_fails: Some(switch(&on)), ..Faults::default() };
    let (wal, _) = open_real(Arc::new(FaultFs::new(Arc::new(RealFs), faults)), &cfg);
    let durable = payloads(4, 100);
    for payload in &durable {
        wal.append_one(payload).expect("append");
    }
    wal.wait_durable_blocking(4).expect("durable");
    on.store(true, Ordering::Relaxed);
    let lsn = wal.append_one(&payload(99, 150)).expect("queued");
    assert!(wal.wait_durable_blocking(lsn).is_err());
    assert!(matches!(wal.health(), Health::Failed(_)));
    drop(wal);

    let (_wal, records) = open_real(Arc::new(RealFs), &cfg);
    assert_eq!(records, expected_records(&durable), "the half-written record is wholly absent");
}

#[test]
fn free_bytes_override_turns_writes_away_and_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = real_config(dir.path());
    cfg.min_free_bytes = 1000;
    let free = Arc::new(AtomicU64::new(u64::MAX));
    let faults = Faults {
        free_bytes: Some({
            let free = Arc::clone(&free);
            Arc::new(move || Some(free.load(Ordering::Relaxed)))
        }),
        ..Faults::default()
    };
    let (wal, _) = open_real(Arc::new(FaultFs::new(Arc::new(RealFs), faults)), &cfg);
    assert_eq!(wal.health(), Health::Healthy);
    free.store(10, Ordering::Relaxed);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while wal.health() != Health::DiskLow {
        assert!(std::time::Instant::now() < deadline, "the writer never saw the low disk");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(wal.admit(), Err(crate::AppendError::DiskLow));
    free.store(u64::MAX, Ordering::Relaxed);
    while wal.health() != Health::Healthy {
        assert!(std::time::Instant::now() < deadline, "the writer never saw the space come back");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(wal.admit(), Ok(()));
}

/// On the real file system a segment being written is as long as
/// `segment_bytes` from the start (the commits then only write data), and
/// a copy of the folder taken while the log runs (what kill -9 leaves)
/// recovers every durable record with no torn tail. A clean stop cuts the
/// tail to its last frame.
#[test]
fn the_segment_being_written_is_preallocated_and_a_copy_of_a_running_log_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = real_config(dir.path());
    let (wal, _) = open_real(Arc::new(RealFs), &cfg);
    let payloads = payloads(1000, 150);
    append_durably(&wal, &payloads);
    let segments = crate::segment::list_segments(&RealFs, &cfg.dir).expect("list");
    let (tail, sealed) = segments.split_last().expect("segments");
    assert!(!sealed.is_empty(), "1,000 records of up to 150 bytes fill more than one 64 KiB segment");
    let tail_bytes = std::fs::metadata(&tail.path).expect("tail").len();
    assert_eq!(tail_bytes, cfg.segment_bytes, "the tail is preallocated");
    for segment in sealed {
        let bytes = std::fs::read(&segment.path).expect("segment");
        assert_ne!(bytes.last(), Some(&0), "{} was cut to its last frame", segment.path.display());
    }

    let copy = tempfile::tempdir().expect("tempdir");
    let copy_cfg = real_config(copy.path());
    std::fs::create_dir_all(&copy_cfg.dir).expect("mkdir");
    for entry in std::fs::read_dir(&cfg.dir).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), copy_cfg.dir.join(entry.file_name())).expect("copy");
    }
    let (copied, report) =
        Wal::open_with_fs(Arc::new(RealFs), copy_cfg.clone(), RecoveryPolicy::default(), 1, |_, _| {
            Ok::<(), Infallible>(())
        })
        .expect("open the copy");
    assert_eq!(report.next_lsn, payloads.len() as u64 + 1);
    assert_eq!(report.records_replayed, payloads.len() as u64);
    assert!(report.torn_tail.is_none(), "{report:?}");
    copied.shutdown().expect("shutdown the copy");

    wal.shutdown().expect("shutdown");
    let tail_bytes = std::fs::metadata(&tail.path).expect("tail").len();
    assert!(tail_bytes < cfg.segment_bytes, "a clean stop cuts the tail ({tail_bytes} bytes)");
    let (_wal, records) = open_real(Arc::new(RealFs), &cfg);
    assert_eq!(records, expected_records(&payloads));
}
