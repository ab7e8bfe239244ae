//! Bank instructions the bank has not answered yet, as the lsns of the
//! records that asked for them: what the recovery fold and the checkpoint
//! keep, and what the outbox sends again after a restart.
//!
//! Kept as a compressed bitmap of lsns ([`RoaringTreemap`]), not as the
//! instructions themselves: the work is read back from the log when it is
//! sent. Millions of unanswered instructions (a bank slower than the ledger
//! for hours) cost about a bit each, where a map of instructions cost about
//! 100 bytes each, in the fold and in every checkpoint.
//!
//! An answer names the lsn it answers ([`BankSync::lsn`], record schema 2).
//! One recorded under schema 1 names only the reference, so the references
//! of instructions asked for under schema 1 are kept too
//! ([`PendingInstructions::legacy`])
//! until answered: a log written before the upgrade is folded exactly, and
//! that map never grows after it (no new record is of schema 1).
//!
//! Must not: know what an instruction is or where it goes (the outbox
//! derives that from the record).

use hashbrown::HashMap;
use roaring::RoaringTreemap;

use super::record::{BankSync, RecordSchema};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PendingInstructions {
    lsns: RoaringTreemap,
    /// Reference → lsn of the pending instructions asked for under record
    /// schema 1, whose answers may name no lsn.
    legacy: HashMap<Box<str>, u64>,
}

impl PendingInstructions {
    pub fn new(lsns: RoaringTreemap, legacy: impl IntoIterator<Item = (u64, Box<str>)>) -> Self {
        let legacy = legacy.into_iter().map(|(lsn, reference)| (reference, lsn)).collect();
        Self { lsns, legacy }
    }

    /// The record at `lsn` (of `schema`) asks the bank for instruction
    /// `reference`.
    pub fn requested(&mut self, lsn: u64, reference: &str, schema: RecordSchema) {
        self.lsns.insert(lsn);
        if schema.0 < 2 {
            self.legacy.insert(reference.into(), lsn);
        }
    }

    /// The bank answered; an answer for something not pending (answered
    /// twice) changes nothing.
    pub fn answered(&mut self, sync: &BankSync) {
        let lsn = if sync.lsn != 0 {
            if self.legacy.get(&sync.reference) == Some(&sync.lsn) {
                self.legacy.remove(&sync.reference);
            }
            sync.lsn
        } else {
            match self.legacy.remove(&sync.reference) {
                Some(lsn) => lsn,
                None => return,
            }
        };
        self.lsns.remove(lsn);
    }

    pub fn lsns(&self) -> &RoaringTreemap {
        &self.lsns
    }

    pub fn into_lsns(self) -> RoaringTreemap {
        self.lsns
    }

    /// The schema-1 instructions still pending, (lsn, reference) by lsn.
    pub fn legacy(&self) -> Vec<(u64, Box<str>)> {
        let mut legacy: Vec<_> = self.legacy.iter().map(|(reference, lsn)| (*lsn, reference.clone())).collect();
        legacy.sort_unstable();
        legacy
    }

    pub fn len(&self) -> u64 {
        self.lsns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lsns.is_empty()
    }

    /// Every legacy reference names a pending lsn.
    pub fn invariant_violation(&self) -> Option<String> {
        self.legacy
            .iter()
            .find(|(_, lsn)| !self.lsns.contains(**lsn))
            .map(|(reference, lsn)| format!("schema-1 instruction {reference} at lsn {lsn} is not pending"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::domain::record::InstructionKind;

    fn answer(reference: &str, lsn: u64) -> BankSync {
        BankSync {
            reference: reference.into(),
            bank: "SIMBANK".into(),
            kind: InstructionKind::ForcedTransfer,
            outcome: Ok("SB1".into()),
            at_ms: 0,
            lsn,
        }
    }

    #[derive(Clone, Debug)]
    enum Step {
        /// A new instruction (lsns only grow), of schema 1 or 2.
        Request { legacy: bool },
        /// The answer to the n-th instruction so far, naming its lsn or not
        /// (only schema-1 answers name none, and only for schema-1 ones).
        Answer { nth: usize, names_lsn: bool },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            any::<bool>().prop_map(|legacy| Step::Request { legacy }),
            (any::<usize>(), any::<bool>()).prop_map(|(nth, names_lsn)| Step::Answer { nth, names_lsn }),
        ]
    }

    proptest! {
        /// Against a plain map of every instruction: the same ones pending,
        /// however the answers interleave, repeat or name (or not) lsns.
        #[test]
        fn pending_is_what_a_map_of_instructions_says(
            steps in proptest::collection::vec(step(), 0..200),
            gaps in proptest::collection::vec(1u64..100_000, 200),
        ) {
            let mut pending = PendingInstructions::default();
            let mut model: BTreeMap<u64, (String, bool)> = BTreeMap::new();
            let mut asked: Vec<(u64, String, bool)> = Vec::new();
            let mut lsn = 0;
            for (index, step) in steps.into_iter().enumerate() {
                match step {
                    Step::Request { legacy } => {
                        lsn += gaps[index];
                        let reference = format!("t-{lsn}");
                        let schema = RecordSchema(if legacy { 1 } else { 2 });
                        pending.requested(lsn, &reference, schema);
                        model.insert(lsn, (reference.clone(), legacy));
                        asked.push((lsn, reference, legacy));
                    }
                    Step::Answer { nth, names_lsn } => {
                        if asked.is_empty() {
                            continue;
                        }
                        let (at, reference, legacy) = &asked[nth % asked.len()];
                        let named = if names_lsn || !legacy { *at } else { 0 };
                        pending.answered(&answer(reference, named));
                        model.remove(at);
                    }
                }
                prop_assert_eq!(pending.invariant_violation(), None);
            }
            prop_assert_eq!(pending.lsns().iter().collect::<Vec<_>>(), model.keys().copied().collect::<Vec<_>>());
            let legacy: Vec<_> = model
                .iter()
                .filter(|(_, (_, legacy))| *legacy)
                .map(|(lsn, (reference, _))| (*lsn, Box::<str>::from(reference.as_str())))
                .collect();
            prop_assert_eq!(pending.legacy(), legacy.clone());
            let rebuilt = PendingInstructions::new(pending.lsns().clone(), legacy);
            prop_assert_eq!(rebuilt, pending);
        }
    }

    #[test]
    fn a_million_pending_in_a_run_take_little_memory() {
        let mut pending = PendingInstructions::default();
        for lsn in (1..=2_000_000u64).step_by(2) {
            pending.requested(lsn, "t", RecordSchema(2));
        }
        assert_eq!(pending.len(), 1_000_000);
        // 31 bitmap containers of 8 KiB for 2 M lsns: a bit per lsn.
        let bytes = pending.lsns().serialized_size();
        assert!(bytes < 300_000, "{bytes} bytes for a million pending");
    }
}
