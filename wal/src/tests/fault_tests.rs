use std::sync::mpsc;
use std::time::Duration;

use super::*;
use crate::{AppendError, Health};

const SEGMENT_BYTES: u64 = 4096;

enum Fault {
    Fsync,
    Write,
    ShortWrite,
}

/// After the fault: failed for good, waiters get Err, durable_lsn stops,
/// admit and append refuse; a restart after power loss recovers exactly
/// the synced prefix.
fn fatal_io_error_fails_the_log(fault: Fault) {
    let fs = SimFs::new();
    let cfg = sim_config(SEGMENT_BYTES);
    let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    let synced = payloads(3, 50);
    for payload in &synced {
        wal.append_one(payload).expect("append");
    }
    wal.wait_durable_blocking(3).expect("durable");
    fs.hold_syncs(true);
    match fault {
        Fault::Fsync => fs.fail_syncs_after(0),
        Fault::Write => fs.fail_writes_after(0, false),
        Fault::ShortWrite => fs.fail_writes_after(0, true),
    }
    let lsn = wal.append_one(b"doomed").expect("queued before the failure");
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = {
        let wal = wal.clone();
        std::thread::spawn(move || done_tx.send(wal.wait_durable_blocking(lsn)).expect("send"))
    };
    let future = wal.wait_durable(lsn);
    fs.hold_syncs(false);
    assert!(done_rx.recv_timeout(Duration::from_secs(5)).expect("waiter released").is_err());
    assert!(block_on(future).is_err());
    waiter.join().expect("waiter");
    assert_eq!(wal.durable_lsn(), 3);
    assert!(matches!(wal.health(), Health::Failed(reason) if reason.contains("injected")));
    assert_eq!(wal.admit(), Err(AppendError::Failed));
    assert_eq!(wal.append_one(b"after"), Err(AppendError::Failed));
    assert_eq!(wal.wait_durable_blocking(3), Ok(()), "what was durable stays durable");
    assert!(wal.shutdown().is_err());
    assert_eq!(wal.durable_lsn(), 3);

    let rebooted = fs.crash();
    let (_wal, _, records) = open_sim(&rebooted, &cfg, RecoveryPolicy::default()).expect("restart");
    assert_eq!(records, expected_records(&synced));
}

#[test]
fn fsync_error_is_fatal() {
    fatal_io_error_fails_the_log(Fault::Fsync);
}

#[test]
fn write_error_is_fatal() {
    fatal_io_error_fails_the_log(Fault::Write);
}

#[test]
fn short_write_is_fatal() {
    fatal_io_error_fails_the_log(Fault::ShortWrite);
}

/// A failed fsync is never retried: after it, no sync is attempted again
/// even when the disk "recovers" (fsyncgate).
#[test]
fn a_failed_fsync_is_never_retried() {
    let fs = SimFs::new();
    let (wal, _, _) = open_sim(&fs, &sim_config(SEGMENT_BYTES), RecoveryPolicy::default()).expect("open");
    fs.fail_syncs_after(0);
    let lsn = wal.append_one(b"a").expect("append");
    assert!(wal.wait_durable_blocking(lsn).is_err());
    fs.clear_faults();
    let syncs = fs.sync_count();
    assert_eq!(wal.append_one(b"b"), Err(AppendError::Failed));
    assert!(wal.shutdown().is_err());
    assert_eq!(fs.sync_count(), syncs);
    assert_eq!(wal.durable_lsn(), 0);
}

/// Failure while creating the next segment is fatal too.
#[test]
fn failure_during_rotation_is_fatal() {
    for syncs_ok in 0..4 {
        let fs = SimFs::new();
        let cfg = sim_config(300);
        let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
        let first = payloads(3, 60);
        for payload in &first {
            wal.append_one(payload).expect("append");
        }
        wal.wait_durable_blocking(3).expect("durable");
        fs.fail_syncs_after(syncs_ok);
        let mut batch = crate::FrameBatch::new();
        for seed in 10..20 {
            batch.push(&payload(seed, 60));
        }
        let lsns = wal.append(&batch).expect("append");
        let outcome = wal.wait_durable_blocking(lsns.end - 1);
        assert!(outcome.is_err(), "syncs_ok {syncs_ok}");
        let durable = wal.durable_lsn();
        drop(wal);
        let (_wal, _, records) = open_sim(&fs.crash(), &cfg, RecoveryPolicy::default()).expect("restart");
        assert!(records.len() as u64 >= durable, "syncs_ok {syncs_ok}: lost acknowledged records");
        assert!(records.len() < 13);
    }
}
