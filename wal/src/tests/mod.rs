//! The crate's tests. Fault tests run the real writer and recovery on
//! `SimFs`; a few run on the real file system in a temporary folder.

mod checkpoint_tests;
mod commit_tests;
mod fault_fs_tests;
mod fault_tests;
mod format_tests;
mod power_loss_tests;
mod reader_tests;
mod recovery_tests;
mod sim_tests;
mod verify_tests;

use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use crate::fs::SimFs;
use crate::{OpenError, RecoveryPolicy, RecoveryReport, Wal, WalConfig};

pub(crate) type Records = Vec<(u64, Vec<u8>)>;

pub(crate) fn sim_dir() -> PathBuf {
    PathBuf::from("/sim/data/wal")
}

/// Small limits so a handful of records spans several segments.
pub(crate) fn sim_config(segment_bytes: u64) -> WalConfig {
    WalConfig { dir: sim_dir(), segment_bytes, max_record_bytes: 200, max_pending_bytes: 1 << 20, min_free_bytes: 0 }
}

pub(crate) fn open_sim(
    fs: &SimFs,
    cfg: &WalConfig,
    policy: RecoveryPolicy,
) -> Result<(Wal, RecoveryReport, Records), OpenError> {
    open_sim_from(fs, cfg, policy, 1)
}

pub(crate) fn open_sim_from(
    fs: &SimFs,
    cfg: &WalConfig,
    policy: RecoveryPolicy,
    from_lsn: u64,
) -> Result<(Wal, RecoveryReport, Records), OpenError> {
    let mut records = Vec::new();
    let (wal, report) = Wal::open_with_fs(Arc::new(fs.clone()), cfg.clone(), policy, from_lsn, |lsn, payload| {
        records.push((lsn, payload.to_vec()));
        Ok::<(), Infallible>(())
    })?;
    Ok((wal, report, records))
}

/// A payload that differs by `seed` and has `len` bytes.
pub(crate) fn payload(seed: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8).collect()
}

/// Opens a fresh log, appends `payloads` one by one, waits, shuts down.
pub(crate) fn write_log(fs: &SimFs, cfg: &WalConfig, payloads: &[Vec<u8>]) {
    let (wal, report, records) = open_sim(fs, cfg, RecoveryPolicy::default()).expect("open");
    assert!(records.is_empty(), "write_log starts from an empty log");
    assert_eq!(report.next_lsn, 1);
    append_durably(&wal, payloads);
    wal.shutdown().expect("shutdown");
}

/// Appends `payloads` one by one and waits until the last is durable.
pub(crate) fn append_durably(wal: &Wal, payloads: &[Vec<u8>]) {
    for payload in payloads {
        wal.append_one(payload).expect("append");
    }
    wal.wait_durable_blocking(wal.last_lsn()).expect("durable");
}

/// Payloads 1..=count of lengths cycling through 0..max_len.
pub(crate) fn payloads(count: u64, max_len: usize) -> Vec<Vec<u8>> {
    (1..=count).map(|seed| payload(seed, (seed as usize * 13) % max_len)).collect()
}

pub(crate) fn expected_records(payloads: &[Vec<u8>]) -> Records {
    payloads.iter().enumerate().map(|(i, p)| (i as u64 + 1, p.clone())).collect()
}

pub(crate) fn segment_paths(fs: &SimFs, dir: &Path) -> Vec<PathBuf> {
    fs.paths().into_iter().filter(|p| p.parent() == Some(dir) && p.extension().is_some_and(|e| e == "wal")).collect()
}

/// Offsets where each frame of a segment starts, up to the end of the
/// file or of its frames (a live or crashed tail ends in preallocated zeros).
pub(crate) fn frame_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut offset = crate::format::SEGMENT_HEADER_BYTES;
    while offset < bytes.len() && bytes[offset..].iter().any(|&byte| byte != 0) {
        offsets.push(offset);
        let frame = crate::format::decode_frame(&bytes[offset..], u32::MAX).expect("test logs are intact");
        offset += frame.frame_bytes();
    }
    offsets
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Minimal executor: proves the futures need no runtime.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}
