//! Writes, merges and reads runs in the server's pattern and prints
//! throughput. Numbers and the exact command are kept in `index/README.md`.
//!
//! ```text
//! cargo run --release -p fundledger-index --example bench -- [transfers] [journal entries per run] [dir]
//! ```
//!
//! Per transfer (lsn 1, 2, ...): two journal entries, key = account u64 BE
//! (one of 10,000) ‖ lsn u64 BE, a 40-byte value; and one client-id entry,
//! key = id hash u64 BE ‖ lsn u64 BE, an 8-byte value. Both memtables are
//! flushed at the same lsn, when the journal one reaches its bound; the time
//! of a flush is its sort plus the run's write, fsync and rename. Reads run
//! on one thread with a warm page cache (the runs were just written).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fundledger_index::{Direction, IndexError, RunSet, RunSpec};

const ACCOUNTS: u64 = 10_000;
const JOURNAL_VALUE_BYTES: usize = 40;
const ID_VALUE_BYTES: usize = 8;
const PAGE_ENTRIES: usize = 50;
const ID_LOOKUPS: usize = 200_000;
const PAGES: usize = 20_000;

type JournalEntry = ([u8; 16], [u8; JOURNAL_VALUE_BYTES]);
type IdEntry = ([u8; 16], [u8; ID_VALUE_BYTES]);

/// splitmix64: deterministic, no dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }
}

fn key(high: u64, lsn: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&high.to_be_bytes());
    key[8..].copy_from_slice(&lsn.to_be_bytes());
    key
}

/// Client-id hash of transfer `lsn`; absent ids use another seed.
fn id_hash(seed: u64, lsn: u64) -> u64 {
    Random(seed ^ lsn.wrapping_mul(0xd6e8_feb8_6659_fd93)).next()
}

struct Tables {
    journal: RunSet,
    ids: RunSet,
    flush_time: Duration,
    sort_time: Duration,
    entries_written: u64,
}

fn write(directory: &Path, transfers: u64, journal_entries_per_run: usize) -> Result<Tables, IndexError> {
    let mut tables = Tables {
        journal: RunSet::open(&directory.join("journal"), RunSpec::new(16, JOURNAL_VALUE_BYTES, 0))?,
        ids: RunSet::open(&directory.join("ids"), RunSpec::new(16, ID_VALUE_BYTES, 8))?,
        flush_time: Duration::ZERO,
        sort_time: Duration::ZERO,
        entries_written: 0,
    };
    let mut random = Random(1);
    let mut journal: Vec<JournalEntry> = Vec::with_capacity(journal_entries_per_run + 2);
    let mut ids: Vec<IdEntry> = Vec::with_capacity(journal_entries_per_run / 2 + 1);
    let mut first_lsn = 1;
    for lsn in 1..=transfers {
        let payer = random.next() % ACCOUNTS;
        let payee = (payer + 1 + random.next() % (ACCOUNTS - 1)) % ACCOUNTS;
        let mut value = [0u8; JOURNAL_VALUE_BYTES];
        value[..8].copy_from_slice(&lsn.to_le_bytes());
        journal.push((key(payer, lsn), value));
        journal.push((key(payee, lsn), value));
        ids.push((key(id_hash(7, lsn), lsn), lsn.to_le_bytes()));
        if journal.len() >= journal_entries_per_run || lsn == transfers {
            let started = Instant::now();
            tables.sort_time += flush(&mut tables.journal, &mut journal, first_lsn, lsn)?;
            tables.sort_time += flush(&mut tables.ids, &mut ids, first_lsn, lsn)?;
            tables.flush_time += started.elapsed();
            first_lsn = lsn + 1;
        }
    }
    tables.entries_written = transfers * 3;
    Ok(tables)
}

/// The memtable's flush: sort, then write one run. Returns the sort's time.
fn flush<const V: usize>(
    set: &mut RunSet,
    memtable: &mut Vec<([u8; 16], [u8; V])>,
    first_lsn: u64,
    lsn: u64,
) -> Result<Duration, IndexError> {
    let started = Instant::now();
    memtable.sort_unstable_by_key(|entry| entry.0);
    let sorted = started.elapsed();
    set.write_run(first_lsn, lsn, memtable.len() as u64, memtable.iter().map(|(key, value)| (key, value)))?;
    memtable.clear();
    Ok(sorted)
}

fn per_second(count: u64, elapsed: Duration) -> String {
    format!(
        "{:>12.0}/s ({:.2} µs each)",
        count as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / count as f64
    )
}

fn measure_reads(label: &str, tables: &Tables, transfers: u64) -> Result<(), IndexError> {
    let mut random = Random(99);
    let started = Instant::now();
    for _ in 0..ID_LOOKUPS {
        let absent = id_hash(8, random.next());
        let found = tables.ids.get_prefix(&absent.to_be_bytes(), Direction::Forward)?.count();
        assert_eq!(found, 0);
    }
    let absent = started.elapsed();
    let mut bloom_maybes = 0usize;
    for _ in 0..ID_LOOKUPS {
        let absent = id_hash(8, random.next()).to_be_bytes();
        bloom_maybes += tables.ids.runs().iter().filter(|member| member.run.may_contain_prefix(&absent)).count();
    }
    let bloom_lookups = ID_LOOKUPS * tables.ids.runs().len();
    let started = Instant::now();
    for _ in 0..ID_LOOKUPS {
        let lsn = 1 + random.next() % transfers;
        let mut found = tables.ids.get_prefix(&id_hash(7, lsn).to_be_bytes(), Direction::Forward)?;
        let entry = found.next().expect("a present id")?;
        assert_eq!(entry.key[8..], lsn.to_be_bytes());
    }
    let present = started.elapsed();
    let started = Instant::now();
    let mut page_entries = 0u64;
    for _ in 0..PAGES {
        let account = random.next() % ACCOUNTS;
        let mut previous: Option<Vec<u8>> = None;
        for entry in tables.journal.get_prefix(&account.to_be_bytes(), Direction::Reverse)?.take(PAGE_ENTRIES) {
            let entry = entry?;
            assert!(previous.as_ref().is_none_or(|previous| entry.key < *previous), "newest first");
            previous = Some(entry.key);
            page_entries += 1;
        }
    }
    let pages = started.elapsed();
    let started = Instant::now();
    for _ in 0..PAGES {
        let account = random.next() % ACCOUNTS;
        let page = tables.journal.get_by_lsn(&account.to_be_bytes(), Direction::Reverse)?.take(PAGE_ENTRIES);
        assert_eq!(page.collect::<Result<Vec<_>, _>>()?.len(), PAGE_ENTRIES);
    }
    let pages_by_lsn = started.elapsed();
    println!("{label}: {} journal runs, {} id runs", tables.journal.runs().len(), tables.ids.runs().len());
    println!(
        "  get_prefix, absent id:   {} (Bloom false positives: {:.2}% of run lookups)",
        per_second(ID_LOOKUPS as u64, absent),
        bloom_maybes as f64 * 100.0 / bloom_lookups as f64
    );
    println!("  get_prefix, present id:  {}", per_second(ID_LOOKUPS as u64, present));
    println!(
        "  journal page of {PAGE_ENTRIES}, newest first: {} ({:.1} entries per page)",
        per_second(PAGES as u64, pages),
        page_entries as f64 / PAGES as f64
    );
    println!("  the same, run after run (get_by_lsn): {}", per_second(PAGES as u64, pages_by_lsn));
    for (name, set) in [("journal", &tables.journal), ("ids", &tables.ids)] {
        let entries: u64 = set.runs().iter().map(|member| member.run.entry_count()).sum();
        let memory: usize = set.runs().iter().map(|member| member.run.memory_bytes()).sum();
        let file_bytes: u64 = set.runs().iter().map(|member| member.run.file_bytes()).sum();
        println!(
            "  {name:<8} {entries} entries, {file_bytes} file bytes, {memory} bytes in memory ({:.3} per entry)",
            memory as f64 / entries as f64
        );
    }
    Ok(())
}

fn main() -> Result<(), IndexError> {
    let mut arguments = std::env::args().skip(1);
    let transfers: u64 = arguments.next().map_or(1_000_000, |text| text.parse().expect("transfers: a number"));
    let per_run: usize = arguments.next().map_or(262_144, |text| text.parse().expect("entries per run: a number"));
    let directory = PathBuf::from(arguments.next().unwrap_or_else(|| "target/index-bench".into()));
    assert!(!directory.exists(), "{} exists: pick an empty place", directory.display());

    let started = Instant::now();
    let mut tables = write(&directory, transfers, per_run)?;
    let total = started.elapsed();
    println!(
        "write: {transfers} transfers, {} entries; sort + write + fsync: {} entries {}; with generation: {:.2} s",
        tables.entries_written,
        tables.entries_written,
        per_second(tables.entries_written, tables.flush_time),
        total.as_secs_f64()
    );
    println!(
        "  = {:.0} transfers/s; of the flush time {:.0} ms sorting, {:.0} ms writing runs",
        transfers as f64 / tables.flush_time.as_secs_f64(),
        tables.sort_time.as_secs_f64() * 1e3,
        (tables.flush_time - tables.sort_time).as_secs_f64() * 1e3
    );
    measure_reads("before merge", &tables, transfers)?;

    let started = Instant::now();
    let journal_runs = tables.journal.runs().len();
    let id_runs = tables.ids.runs().len();
    if journal_runs >= 2 {
        tables.journal.merge_runs(0, journal_runs)?;
    }
    if id_runs >= 2 {
        tables.ids.merge_runs(0, id_runs)?;
    }
    let merged = started.elapsed();
    println!("merge: {} entries {}", tables.entries_written, per_second(tables.entries_written, merged));
    measure_reads("after merge", &tables, transfers)?;

    let started = Instant::now();
    let journal = RunSet::open(&directory.join("journal"), RunSpec::new(16, JOURNAL_VALUE_BYTES, 0))?;
    let ids = RunSet::open(&directory.join("ids"), RunSpec::new(16, ID_VALUE_BYTES, 8))?;
    println!("reopen: {:.2} ms", started.elapsed().as_secs_f64() * 1e3);
    drop((journal, ids, tables));
    std::fs::remove_dir_all(&directory).map_err(|error| IndexError::Io { path: directory, source: error })
}
