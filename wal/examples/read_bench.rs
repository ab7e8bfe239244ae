//! Random reads by lsn, page cache warm: writes RECORDS records (100-byte
//! payloads, 64 KiB record limit, default 64 MiB segments) into a temporary folder, then times
//! READS `Wal::read_into` calls at random lsns, and the same through a
//! standalone `SegmentReader`. Every answer is checked.
//!
//! `cargo run --release -p fundledger-wal --example read_bench [RECORDS [READS [SEGMENT_BYTES]]]`
//! (defaults 1000000, 100000 and 64 MiB). Results go in `wal/README.md`.

use std::convert::Infallible;
use std::time::Instant;

use fundledger_wal::{FrameBatch, RecoveryPolicy, SegmentReader, Wal, WalConfig};

const PAYLOAD_BYTES: usize = 100;
const BATCH_RECORDS: u64 = 1000;

fn payload(lsn: u64) -> Vec<u8> {
    let mut bytes = lsn.to_le_bytes().repeat(PAYLOAD_BYTES / 8 + 1);
    bytes.truncate(PAYLOAD_BYTES);
    bytes
}

/// xorshift64*: no dependency, deterministic.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn argument(position: usize, default: u64) -> u64 {
    std::env::args().nth(position).and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let records = argument(1, 1_000_000).max(1);
    let reads = argument(2, 100_000);
    let temp = tempfile::tempdir()?;
    let mut cfg = WalConfig { min_free_bytes: 0, ..WalConfig::new(temp.path().join("wal")) };
    cfg.segment_bytes = argument(3, cfg.segment_bytes);
    // Payloads are 100 bytes; a small record limit admits small segments.
    cfg.max_record_bytes = 64 << 10;
    let (wal, _) = Wal::open(cfg.clone(), RecoveryPolicy::default(), 1, |_, _| Ok::<(), Infallible>(()))?;

    let started = Instant::now();
    let mut lsn = 1;
    while lsn <= records {
        let mut batch = FrameBatch::new();
        for batch_lsn in lsn..(lsn + BATCH_RECORDS).min(records + 1) {
            batch.push(&payload(batch_lsn));
        }
        let lsns = wal.append(&batch)?;
        wal.wait_durable_blocking(lsns.end - 1)?;
        lsn = lsns.end;
    }
    let segments = std::fs::read_dir(&cfg.dir)?
        .filter(|entry| entry.as_ref().is_ok_and(|entry| entry.file_name().to_string_lossy().ends_with(".wal")));
    println!("wrote {records} records in {:.1} s, {} segments", started.elapsed().as_secs_f64(), segments.count());

    let mut state = 0x9E37_79B9_7F4A_7C15;
    let mut buffer = Vec::new();
    let started = Instant::now();
    for _ in 0..reads {
        let lsn = 1 + next(&mut state) % records;
        wal.read_into(lsn, &mut buffer)?;
        assert_eq!(buffer, payload(lsn), "lsn {lsn}");
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("Wal::read_into: {reads} random reads in {seconds:.3} s: {:.0} reads/s", reads as f64 / seconds);

    wal.shutdown()?;
    let mut reader = SegmentReader::open(&cfg.dir);
    let started = Instant::now();
    for _ in 0..reads {
        let lsn = 1 + next(&mut state) % records;
        reader.read_into(lsn, &mut buffer)?;
        assert_eq!(buffer, payload(lsn), "lsn {lsn}");
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("SegmentReader::read_into: {reads} random reads in {seconds:.3} s: {:.0} reads/s", reads as f64 / seconds);
    Ok(())
}
