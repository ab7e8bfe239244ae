//! The finance actor: the one writer of reconciliation runs and of the
//! discrepancies' proposals and approvals (maker-checker).
//!
//! Owns the assignment of sequential ids (`REC000001`, `D000001`) and the
//! judging of proposals and approvals against its copy of the
//! [`ReconciliationBook`] (pure rules in [`crate::finance::reconciliation`]);
//! one actor serializes them, so two approvals of one discrepancy cannot
//! both pass. It applies each record to its copy, then appends it; the
//! history folds the same record once it is durable, and reads come from
//! there.
//!
//! Must not touch balances: a discrepancy resolved by an adjustment names
//! an adjustment deposit made the usual way (`POST /v1/adjustments`).

use std::sync::Arc;

use actix::prelude::*;

use super::log::{LedgerLog, LogError};
use crate::domain::ids::{DiscrepancyId, ReconciliationId};
use crate::domain::record::{
    DiscrepancyLine, DiscrepancyProposed, DiscrepancyResolved, ReconciliationRecorded, ReconciliationSummary, Record,
    Resolution,
};
use crate::finance::reconciliation::{DiscrepancyRefusal, Judged, ReconciliationBook};
use crate::limits;

pub struct FinanceActor {
    book: ReconciliationBook,
    log: LedgerLog,
    /// Set when an append failed after the book changed: from then on this
    /// actor answers nothing (its copy is ahead of the log).
    poisoned: bool,
}

impl FinanceActor {
    pub fn new(book: ReconciliationBook, log: LedgerLog) -> Self {
        Self { book, log, poisoned: false }
    }

    fn admit(&self) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Unavailable);
        }
        self.log.admit()
    }

    fn append(&mut self, record: Record) -> Result<u64, LogError> {
        // The lsn is only known after the append; the book's own copy does
        // not use it (reads come from the history).
        self.book.apply(0, &record);
        match self.log.append(vec![record]) {
            Ok(lsns) => Ok(lsns.start),
            Err(error) => {
                tracing::error!(%error, "finance: append failed after a change in memory; stops answering");
                self.poisoned = true;
                Err(error)
            }
        }
    }
}

impl Actor for FinanceActor {
    type Context = Context<Self>;
}

#[derive(Debug)]
pub enum FinanceError {
    Refused(DiscrepancyRefusal),
    Log(LogError),
}

/// Record a finished reconciliation; answers its id and lsn.
pub struct RecordReconciliation {
    pub bank: Box<str>,
    pub date: Box<str>,
    pub uploaded: bool,
    pub summary: ReconciliationSummary,
    pub discrepancies: Vec<DiscrepancyLine>,
    pub operator: Box<str>,
}

impl Message for RecordReconciliation {
    type Result = Result<(ReconciliationId, u64), LogError>;
}

impl Handler<RecordReconciliation> for FinanceActor {
    type Result = Result<(ReconciliationId, u64), LogError>;

    fn handle(&mut self, message: RecordReconciliation, _: &mut Self::Context) -> Self::Result {
        self.admit()?;
        let mut discrepancies = message.discrepancies;
        discrepancies.truncate(limits::RECONCILIATION_DISCREPANCIES_MAX);
        let id = self.book.next_reconciliation_id();
        let record = ReconciliationRecorded {
            reconciliation_id: id,
            bank: message.bank,
            date: message.date,
            uploaded: message.uploaded,
            summary: message.summary,
            discrepancies,
            first_discrepancy_id: self.book.next_discrepancy_id(),
            at_ms: crate::clock::now_ms(),
            operator: message.operator,
        };
        let lsn = self.append(Record::ReconciliationRecorded(Arc::new(record)))?;
        Ok((id, lsn))
    }
}

/// Propose a resolution (maker). `Ok(None)`: the same operator proposed
/// the same before; nothing new is written.
pub struct Propose {
    pub discrepancy_id: DiscrepancyId,
    pub resolution: Resolution,
    pub operator: Box<str>,
}

impl Message for Propose {
    type Result = Result<Option<u64>, FinanceError>;
}

impl Handler<Propose> for FinanceActor {
    type Result = Result<Option<u64>, FinanceError>;

    fn handle(&mut self, message: Propose, _: &mut Self::Context) -> Self::Result {
        self.admit().map_err(FinanceError::Log)?;
        let judged = self
            .book
            .judge_proposal(message.discrepancy_id, &message.resolution, &message.operator)
            .map_err(FinanceError::Refused)?;
        if judged == Judged::Repeat {
            return Ok(None);
        }
        let record = DiscrepancyProposed {
            discrepancy_id: message.discrepancy_id,
            resolution: message.resolution,
            at_ms: crate::clock::now_ms(),
            operator: message.operator,
        };
        self.append(Record::DiscrepancyProposed(Arc::new(record))).map(Some).map_err(FinanceError::Log)
    }
}

/// Approve a proposal (checker): another operator than the proposer.
pub struct Approve {
    pub discrepancy_id: DiscrepancyId,
    pub note: Option<Box<str>>,
    pub operator: Box<str>,
}

impl Message for Approve {
    type Result = Result<Option<u64>, FinanceError>;
}

impl Handler<Approve> for FinanceActor {
    type Result = Result<Option<u64>, FinanceError>;

    fn handle(&mut self, message: Approve, _: &mut Self::Context) -> Self::Result {
        self.admit().map_err(FinanceError::Log)?;
        let judged =
            self.book.judge_approval(message.discrepancy_id, &message.operator).map_err(FinanceError::Refused)?;
        if judged == Judged::Repeat {
            return Ok(None);
        }
        let record = DiscrepancyResolved {
            discrepancy_id: message.discrepancy_id,
            note: message.note,
            at_ms: crate::clock::now_ms(),
            operator: message.operator,
        };
        self.append(Record::DiscrepancyResolved(Arc::new(record))).map(Some).map_err(FinanceError::Log)
    }
}
