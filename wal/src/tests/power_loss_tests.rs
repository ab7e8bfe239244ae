//! Seeded power-loss simulation: random appends, waits, injected faults
//! and a crash at a random moment (the writer thread still running), then
//! recovery. Every record reported durable must come back, and what comes
//! back must be a prefix of what was appended.

use super::*;
use crate::fs::sim::SplitMix;
use crate::FrameBatch;

const RUNS: u64 = 2000;

struct Run {
    rng: SplitMix,
    fs: SimFs,
    cfg: WalConfig,
    /// Payload of lsn i + 1, for every append that returned Ok.
    appended: Vec<Vec<u8>>,
    /// Highest lsn the log told us was durable.
    durable_reported: u64,
}

impl Run {
    fn new(seed: u64) -> Self {
        let mut rng = SplitMix::new(seed);
        let mut cfg = sim_config(0);
        cfg.max_record_bytes = 64;
        cfg.segment_bytes = 120 + rng.below(400);
        Self { rng, fs: SimFs::new(), cfg, appended: Vec::new(), durable_reported: 0 }
    }

    fn steps(&mut self, wal: &Wal) {
        for _ in 0..1 + self.rng.below(12) {
            match self.rng.below(10) {
                0..=5 => self.append(wal),
                6 | 7 => self.wait(wal),
                8 => self.inject_fault(),
                _ => std::thread::yield_now(),
            }
        }
    }

    fn append(&mut self, wal: &Wal) {
        let mut batch = FrameBatch::new();
        let mut payloads = Vec::new();
        for _ in 0..1 + self.rng.below(4) {
            let bytes = payload(self.rng.next_u64(), self.rng.below(65) as usize);
            batch.push(&bytes);
            payloads.push(bytes);
        }
        if let Ok(lsns) = wal.append(&batch) {
            assert_eq!(lsns.start, self.appended.len() as u64 + 1, "lsns continue the log");
            self.appended.extend(payloads);
        }
    }

    fn wait(&mut self, wal: &Wal) {
        let lsn = wal.last_lsn();
        if wal.wait_durable_blocking(lsn).is_ok() {
            self.durable_reported = self.durable_reported.max(lsn);
        }
    }

    fn inject_fault(&mut self) {
        let after = self.rng.below(3);
        match self.rng.below(3) {
            0 => self.fs.fail_syncs_after(after),
            1 => self.fs.fail_writes_after(after, false),
            _ => self.fs.fail_writes_after(after, true),
        }
    }

    /// Crash, restart, check; returns the next lsn after recovery.
    fn crash_and_check(&mut self, wal: Wal, seed: u64) {
        self.durable_reported = self.durable_reported.max(wal.durable_lsn());
        self.fs = self.fs.crash_torn(seed);
        drop(wal); // the dead process's writer finds its files gone
        let (wal, report, records) =
            open_sim(&self.fs, &self.cfg, RecoveryPolicy::default()).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let recovered = records.len() as u64;
        assert!(
            recovered >= self.durable_reported,
            "seed {seed}: lost durable records ({recovered} < {})",
            self.durable_reported
        );
        assert!(recovered <= self.appended.len() as u64, "seed {seed}: recovered records never appended");
        assert_eq!(records, expected_records(&self.appended[..recovered as usize]), "seed {seed}: not a prefix");
        assert_eq!(report.next_lsn, recovered + 1);
        // Whatever the crash left of the (never fsynced) offset sidecars,
        // reads by lsn answer exactly what recovery replayed.
        for (lsn, payload) in &records {
            assert_eq!(&wal.read(*lsn).unwrap_or_else(|e| panic!("seed {seed}: lsn {lsn}: {e}")), payload);
        }
        self.appended.truncate(recovered as usize);
        self.durable_reported = recovered;
        self.after_restart(wal, seed);
    }

    /// The recovered log takes appends again.
    fn after_restart(&mut self, wal: Wal, seed: u64) {
        let bytes = payload(seed, 7);
        let lsn = wal.append_one(&bytes).expect("append after restart");
        assert_eq!(lsn, self.appended.len() as u64 + 1);
        wal.wait_durable_blocking(lsn).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        self.appended.push(bytes);
        self.durable_reported = lsn;
    }
}

#[test]
fn power_loss_never_loses_a_durable_record() {
    for seed in 0..RUNS {
        let mut run = Run::new(seed);
        let (wal, _, _) = open_sim(&run.fs, &run.cfg, RecoveryPolicy::default()).expect("open");
        run.steps(&wal);
        run.crash_and_check(wal, seed);
        // A second life, so recovery of an already-recovered log is covered.
        if seed % 4 == 0 {
            let (wal, _, _) = open_sim(&run.fs, &run.cfg, RecoveryPolicy::default()).expect("reopen");
            run.steps(&wal);
            run.crash_and_check(wal, seed.wrapping_mul(7919));
        }
    }
}
