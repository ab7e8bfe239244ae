//! How long the history archive's writer takes for one hand-over of the
//! recent journal (`history.memory_records` records, each a transfer
//! posting to its payer and its payee, accounts drawn at random), per
//! record: posting the entries (the indexer's side, without its
//! prefetches), writing the runs (`Archive::write`, into a fresh archive
//! under DIR), and dropping the hand-over. Over many accounts most lists
//! hold one entry and sit far apart in memory, which is what this shows
//! (issue 5, target 5; docs/PERFORMANCE.md).
//!
//! usage: cargo run --release --example archive_write [ACCOUNTS] [ROUNDS] [DIR]
//! (default: 1,000,000 accounts, 4 rounds, a temporary folder under /tmp;
//! /dev/shm keeps the disk out of it)

use std::time::Instant;

use fundledger::domain::account::Balance;
use fundledger::domain::ids::AccountId;
use fundledger::domain::money::Money;
use fundledger::finance::archive::{Archive, JournalIndexEntry, Recent};
use fundledger::finance::history::JournalKind;

/// `history.memory_records`' default (config/default.toml).
const RECORDS: u64 = 262_144;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let accounts: u64 = args.next().map_or(Ok(1_000_000), |arg| arg.parse())?;
    let rounds: u32 = args.next().map_or(Ok(4), |arg| arg.parse())?;
    let parent = args.next().unwrap_or_else(|| std::env::temp_dir().display().to_string());
    if accounts < 2 {
        return Err("a transfer needs two accounts".into());
    }
    // xorshift64: the same accounts every run.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..rounds {
        let started = Instant::now();
        let mut recent = Recent::default();
        for lsn in 1..=RECORDS {
            recent.note_lsn(lsn);
            let payer = next() % accounts;
            let payee = (payer + 1 + next() % (accounts - 1)) % accounts;
            recent.post(AccountId(payer + 1), entry(lsn, JournalKind::TransferOut));
            recent.post(AccountId(payee + 1), entry(lsn, JournalKind::TransferIn));
        }
        let posted = started.elapsed();
        let dir = tempfile::tempdir_in(&parent)?;
        let archive = Archive::open(dir.path())?;
        let started = Instant::now();
        archive.write(&recent)?.publish();
        let written = started.elapsed();
        let started = Instant::now();
        drop(recent);
        let dropped = started.elapsed();
        let per_record = |took: std::time::Duration| took.as_nanos() as f64 / RECORDS as f64;
        println!(
            "round {round}: {accounts} accounts, {RECORDS} records: post {:.0} ns, write {:.0} ns, drop {:.0} ns per record",
            per_record(posted),
            per_record(written),
            per_record(dropped),
        );
    }
    Ok(())
}

fn entry(lsn: u64, kind: JournalKind) -> JournalIndexEntry {
    JournalIndexEntry {
        lsn,
        at_ms: lsn as i64,
        kind,
        available_delta: Money(1),
        frozen_delta: Money::ZERO,
        after: Balance { available: Money(lsn as i64), frozen: Money::ZERO },
    }
}
