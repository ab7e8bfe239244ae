use std::sync::mpsc;
use std::task::{Context, Waker};
use std::time::Duration;

use super::*;
use crate::verify::read_records_with_fs;
use crate::{AppendError, FrameBatch};

const SEGMENT_BYTES: u64 = 4096;

/// Durable as far as a power loss right now would leave it.
fn durable_on_disk(fs: &SimFs) -> u64 {
    let mut last = 0;
    read_records_with_fs(&fs.durable_snapshot(), &sim_dir(), 1, |lsn, _| {
        last = lsn;
        std::ops::ControlFlow::Continue(())
    })
    .expect("durable image reads");
    last
}

#[test]
fn a_waiter_is_released_only_after_the_sync_that_covers_it() {
    let fs = SimFs::new();
    let cfg = sim_config(SEGMENT_BYTES);
    let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    fs.hold_syncs(true);
    let syncs_before = fs.sync_count();
    let lsn = wal.append_one(b"first").expect("append");
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = {
        let wal = wal.clone();
        std::thread::spawn(move || done_tx.send(wal.wait_durable_blocking(lsn)).expect("send"))
    };
    let mut future = Box::pin(wal.wait_durable(lsn));
    assert!(future.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
    assert!(done_rx.recv_timeout(Duration::from_millis(50)).is_err(), "released before its fsync");
    assert_eq!(wal.durable_lsn(), 0);
    assert_eq!(durable_on_disk(&fs), 0);
    fs.hold_syncs(false);
    assert_eq!(done_rx.recv_timeout(Duration::from_secs(5)).expect("released"), Ok(()));
    assert!(fs.sync_count() > syncs_before);
    assert!(durable_on_disk(&fs) >= lsn);
    assert_eq!(block_on(future), Ok(()));
    waiter.join().expect("waiter");
}

/// Many threads append and wait: lsns are unique, increasing per thread,
/// gapless overall; each waiter, when released, finds its record in what a
/// power loss would leave; everything is recovered.
#[test]
fn concurrent_appenders_get_unique_lsns_and_are_all_recovered() {
    let fs = SimFs::new();
    let cfg = sim_config(SEGMENT_BYTES);
    let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    let threads: Vec<_> = (0..8u64)
        .map(|thread| {
            let (wal, fs) = (wal.clone(), fs.clone());
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                let mut batch = FrameBatch::new();
                for round in 0..60u64 {
                    batch.clear();
                    let count = 1 + (round + thread) % 3;
                    let payloads: Vec<Vec<u8>> =
                        (0..count).map(|i| payload(thread * 10_000 + round * 10 + i, 20)).collect();
                    payloads.iter().for_each(|p| batch.push(p));
                    let lsns = wal.append(&batch).expect("append");
                    mine.extend(lsns.clone().zip(payloads));
                    if round % 10 == 9 {
                        wal.wait_durable_blocking(lsns.end - 1).expect("durable");
                        assert!(durable_on_disk(&fs) >= lsns.end - 1, "acknowledged before it was on disk");
                    }
                }
                mine
            })
        })
        .collect();
    let mut all: Records = Vec::new();
    for thread in threads {
        let mine = thread.join().expect("appender");
        assert!(mine.windows(2).all(|pair| pair[0].0 < pair[1].0), "lsns increase per thread");
        all.extend(mine);
    }
    all.sort();
    assert!(all.iter().enumerate().all(|(i, (lsn, _))| *lsn == i as u64 + 1), "lsns are gapless and unique");
    wal.wait_durable_blocking(wal.last_lsn()).expect("durable");
    let stats = wal.stats().snapshot();
    assert_eq!(stats.records_written, all.len() as u64);
    assert!(stats.groups >= 1 && stats.groups <= stats.records_written && stats.fsyncs >= stats.groups);
    assert_eq!(stats.group_records_histogram.iter().sum::<u64>(), stats.groups);
    wal.shutdown().expect("shutdown");
    let (_wal, _, records) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("reopen");
    assert_eq!(records, all);
}

#[test]
fn async_waiters_resolve_without_a_runtime() {
    let fs = SimFs::new();
    let (wal, _, _) = open_sim(&fs, &sim_config(SEGMENT_BYTES), RecoveryPolicy::default()).expect("open");
    let lsns: Vec<u64> = (0..50).map(|i| wal.append_one(&payload(i, 10)).expect("append")).collect();
    for lsn in lsns.iter().rev() {
        assert_eq!(block_on(wal.wait_durable(*lsn)), Ok(()));
    }
    assert_eq!(block_on(wal.wait_durable(0)), Ok(()));
    fn assert_send_static<T: Send + 'static>(_: &T) {}
    assert_send_static(&wal.wait_durable(1));
}

#[test]
fn dropped_futures_unregister() {
    let fs = SimFs::new();
    let (wal, _, _) = open_sim(&fs, &sim_config(SEGMENT_BYTES), RecoveryPolicy::default()).expect("open");
    fs.hold_syncs(true);
    let lsn = wal.append_one(b"a").expect("append");
    for _ in 0..100 {
        let mut future = Box::pin(wal.wait_durable(lsn));
        assert!(future.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
    }
    assert!(crate::shared::lock(&wal.inner_shared().waiters).is_empty());
    fs.hold_syncs(false);
    assert_eq!(wal.wait_durable_blocking(lsn), Ok(()));
}

#[test]
fn too_large_records_are_refused_without_assigning_lsns() {
    let fs = SimFs::new();
    let cfg = sim_config(SEGMENT_BYTES);
    let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    let mut batch = FrameBatch::new();
    batch.push(b"fine");
    batch.push(&vec![0u8; cfg.max_record_bytes as usize + 1]);
    assert_eq!(
        wal.append(&batch),
        Err(AppendError::TooLarge {
            payload_bytes: cfg.max_record_bytes as usize + 1,
            max_record_bytes: cfg.max_record_bytes
        })
    );
    assert_eq!(wal.last_lsn(), 0);
    assert_eq!(wal.append(&FrameBatch::new()), Ok(1..1));
    assert_eq!(wal.append_one(&vec![1u8; cfg.max_record_bytes as usize]), Ok(1));
}

#[test]
fn shutdown_writes_everything_queued_and_is_idempotent() {
    let fs = SimFs::new();
    let cfg = sim_config(SEGMENT_BYTES);
    let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    for i in 0..100 {
        wal.append_one(&payload(i, 30)).expect("append");
    }
    let clone = wal.clone();
    let other = std::thread::spawn(move || clone.shutdown());
    assert_eq!(wal.shutdown(), Ok(()));
    assert_eq!(other.join().expect("join"), Ok(()));
    assert_eq!(wal.durable_lsn(), 100);
    assert_eq!(wal.append_one(b"late"), Err(AppendError::Closed));
    assert_eq!(wal.admit(), Err(AppendError::Closed));
    assert_eq!(wal.wait_durable_blocking(100), Ok(()));
    assert_eq!(wal.shutdown(), Ok(()));
    let (_wal, _, records) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("reopen");
    assert_eq!(records.len(), 100);
}

#[test]
fn admit_refuses_while_the_backlog_is_over_its_bound() {
    let fs = SimFs::new();
    let mut cfg = sim_config(SEGMENT_BYTES);
    cfg.max_pending_bytes = 200;
    let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    fs.hold_syncs(true);
    assert_eq!(wal.admit(), Ok(()));
    for i in 0..10 {
        wal.append_one(&payload(i, 50)).expect("append never refuses for load");
    }
    assert_eq!(wal.admit(), Err(AppendError::Overloaded));
    fs.hold_syncs(false);
    wal.wait_durable_blocking(wal.last_lsn()).expect("durable");
    assert_eq!(wal.admit(), Ok(()));
}

#[test]
fn admit_refuses_below_the_free_space_floor() {
    let fs = SimFs::new();
    let mut cfg = sim_config(SEGMENT_BYTES);
    cfg.min_free_bytes = 10_000;
    fs.set_free_bytes(Some(5_000));
    let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    assert_eq!(wal.admit(), Err(AppendError::DiskLow));
    assert_eq!(wal.health(), crate::Health::DiskLow);
    fs.set_free_bytes(Some(1 << 30));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while wal.admit().is_err() {
        assert!(std::time::Instant::now() < deadline, "free space never re-read");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(wal.health(), crate::Health::Healthy);
}

#[test]
fn writes_count_against_free_space_between_checks() {
    let fs = SimFs::new();
    let mut cfg = sim_config(SEGMENT_BYTES);
    cfg.min_free_bytes = 10_000;
    // Creating the first segment preallocates the rest of it: 10,500 left.
    let preallocated = SEGMENT_BYTES - crate::format::SEGMENT_HEADER_BYTES as u64;
    fs.set_free_bytes(Some(10_500 + preallocated));
    let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    assert_eq!(wal.admit(), Ok(()));
    for i in 0..10 {
        wal.append_one(&payload(i, 100)).expect("append");
    }
    wal.wait_durable_blocking(wal.last_lsn()).expect("durable");
    assert_eq!(wal.admit(), Err(AppendError::DiskLow));
}

/// An append wakes a writer that sleeps (it notifies only then): each of
/// five appends made while the writer sleeps is durable long before the
/// writer's own timeout would have woken it (250 ms; a lost wake-up costs
/// about that every time, so the median tells the two apart).
#[test]
fn an_append_wakes_a_sleeping_writer() {
    let fs = SimFs::new();
    let cfg = sim_config(SEGMENT_BYTES);
    let (wal, _, _) = open_sim(&fs, &cfg, RecoveryPolicy::default()).expect("open");
    let sleeping = || crate::shared::lock(&wal.inner_shared().pending).writer_waiting;
    let mut waits = Vec::new();
    for round in 0..5u64 {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !sleeping() {
            assert!(std::time::Instant::now() < deadline, "the writer never went to sleep");
            std::thread::sleep(Duration::from_millis(1));
        }
        let started = std::time::Instant::now();
        let lsn = wal.append_one(&payload(round, 16)).expect("append");
        wal.wait_durable_blocking(lsn).expect("durable");
        waits.push(started.elapsed());
    }
    waits.sort();
    assert!(waits[2] < crate::config::DISK_CHECK_INTERVAL / 2, "appends waited for the writer's timeout: {waits:?}");
}
