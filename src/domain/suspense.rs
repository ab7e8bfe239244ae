//! Suspense entries (bank credits waiting for finance) and their rules, as
//! pure state: how much of an entry is left, whether an adjustment fits,
//! whether it may be returned.
//!
//! Owns the meaning of `open` / `assigned` / `returned` (API.md, Suspense
//! and adjustment deposits): `open` while `remaining > 0`, `assigned` once
//! adjustments used it all, `returned` once its remaining went back to the
//! payer. The suspense actor judges with these rules; recovery and the
//! history read model fold the same records through [`SuspenseBook::apply`].
//! Must not know about actors or the log.

use std::sync::Arc;

use super::ids::SuspenseId;
use super::money::Money;
use super::record::{Record, SuspenseEntry};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspenseStatus {
    Open,
    Assigned,
    Returned,
}

impl SuspenseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Assigned => "assigned",
            Self::Returned => "returned",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "open" => Self::Open,
            "assigned" => Self::Assigned,
            "returned" => Self::Returned,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug)]
pub struct SuspenseState {
    pub entry: Arc<SuspenseEntry>,
    pub remaining: Money,
    pub returned: bool,
}

impl SuspenseState {
    pub fn status(&self) -> SuspenseStatus {
        if self.returned {
            SuspenseStatus::Returned
        } else if self.remaining.0 > 0 {
            SuspenseStatus::Open
        } else {
            SuspenseStatus::Assigned
        }
    }
}

/// Why finance's request against an entry was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspenseRefusal {
    NotFound,
    /// The adjustment is above the entry's remaining.
    Exceeded,
    /// The entry is not open (returned, or all assigned).
    Closed,
}

#[derive(Clone, Debug, Default)]
pub struct SuspenseBook {
    /// Index = suspense number - 1.
    entries: Vec<SuspenseState>,
}

impl SuspenseBook {
    pub fn next_id(&self) -> SuspenseId {
        SuspenseId(self.entries.len() as u64 + 1)
    }

    pub fn get(&self, id: SuspenseId) -> Option<&SuspenseState> {
        self.entries.get(usize::try_from(id.0).ok()?.checked_sub(1)?)
    }

    fn get_mut(&mut self, id: SuspenseId) -> &mut SuspenseState {
        let index = usize::try_from(id.0).ok().and_then(|n| n.checked_sub(1)).expect("suspense ids start at 1");
        self.entries.get_mut(index).expect("records name suspense entries that exist")
    }

    pub fn entries(&self) -> &[SuspenseState] {
        &self.entries
    }

    /// An adjustment of `amount` out of entry `id`: the remaining after it.
    /// A returned entry is closed; an open or assigned one refuses an
    /// amount above what is left.
    pub fn judge_adjustment(&self, id: SuspenseId, amount: Money) -> Result<Money, SuspenseRefusal> {
        let state = self.get(id).ok_or(SuspenseRefusal::NotFound)?;
        if state.returned {
            return Err(SuspenseRefusal::Closed);
        }
        if amount.0 <= 0 || amount > state.remaining {
            return Err(SuspenseRefusal::Exceeded);
        }
        Ok(Money(state.remaining.0 - amount.0))
    }

    /// A return of entry `id`: the amount that goes back (its remaining).
    pub fn judge_return(&self, id: SuspenseId) -> Result<Money, SuspenseRefusal> {
        let state = self.get(id).ok_or(SuspenseRefusal::NotFound)?;
        if state.status() != SuspenseStatus::Open {
            return Err(SuspenseRefusal::Closed);
        }
        Ok(state.remaining)
    }

    /// Fold one record (in lsn order); records of other kinds are ignored.
    pub fn apply(&mut self, record: &Record) {
        match record {
            Record::SuspenseOpened(entry) => {
                assert_eq!(entry.suspense_id, self.next_id(), "suspense ids are sequential");
                let remaining = entry.notification.amount;
                self.entries.push(SuspenseState { entry: Arc::clone(entry), remaining, returned: false });
            }
            Record::AdjustmentDeposit(adjustment) => {
                let state = self.get_mut(adjustment.suspense_id);
                assert!(!state.returned, "{}: adjustment of a returned entry", adjustment.suspense_id);
                state.remaining = state.remaining.checked_sub(adjustment.amount).expect("no overflow");
                assert!(!state.remaining.is_negative(), "{}: adjusted past its amount", adjustment.suspense_id);
                assert_eq!(
                    state.remaining, adjustment.suspense_remaining,
                    "{}: replay diverged",
                    adjustment.suspense_id
                );
            }
            Record::SuspenseReturned(returned) => {
                let state = self.get_mut(returned.suspense_id);
                assert!(
                    !state.returned && state.remaining == returned.amount,
                    "{}: return diverged",
                    returned.suspense_id
                );
                state.remaining = Money::ZERO;
                state.returned = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::AccountId;
    use crate::domain::record::{Adjustment, Notification, SuspenseReason, SuspenseReturn};

    fn opened(id: u64, fen: i64) -> Record {
        Record::SuspenseOpened(Arc::new(SuspenseEntry {
            suspense_id: SuspenseId(id),
            notification: Notification {
                bank: "B".into(),
                notification_id: "n".into(),
                bank_serial: "s".into(),
                to_account_no: "1".into(),
                amount: Money(fen),
                payer_name: "p".into(),
                payer_account_no: "2".into(),
                booked_at: "2026-11-24T00:00:00.000Z".into(),
            },
            reason: SuspenseReason::AdjustmentAccount,
            at_ms: 0,
        }))
    }

    fn adjustment(id: u64, fen: i64, remaining: i64) -> Record {
        Record::AdjustmentDeposit(Arc::new(Adjustment {
            id: "a".into(),
            suspense_id: SuspenseId(id),
            account_id: AccountId(1),
            amount: Money(fen),
            memo: None,
            suspense_remaining: Money(remaining),
            at_ms: 0,
            operator: "f".into(),
        }))
    }

    #[test]
    fn adjustments_use_up_an_entry_and_returns_close_it() {
        let mut book = SuspenseBook::default();
        book.apply(&opened(1, 1000));
        book.apply(&opened(2, 500));
        assert_eq!(book.judge_adjustment(SuspenseId(3), Money(1)), Err(SuspenseRefusal::NotFound));
        assert_eq!(book.judge_adjustment(SuspenseId(1), Money(1001)), Err(SuspenseRefusal::Exceeded));
        assert_eq!(book.judge_adjustment(SuspenseId(1), Money(600)), Ok(Money(400)));
        book.apply(&adjustment(1, 600, 400));
        assert_eq!(book.get(SuspenseId(1)).unwrap().status(), SuspenseStatus::Open);
        book.apply(&adjustment(1, 400, 0));
        assert_eq!(book.get(SuspenseId(1)).unwrap().status(), SuspenseStatus::Assigned);
        assert_eq!(book.judge_adjustment(SuspenseId(1), Money(1)), Err(SuspenseRefusal::Exceeded));
        assert_eq!(book.judge_return(SuspenseId(1)), Err(SuspenseRefusal::Closed));
        assert_eq!(book.judge_return(SuspenseId(2)), Ok(Money(500)));
        book.apply(&Record::SuspenseReturned(Arc::new(SuspenseReturn {
            id: "r".into(),
            suspense_id: SuspenseId(2),
            amount: Money(500),
            memo: None,
            at_ms: 0,
            operator: "f".into(),
        })));
        let state = book.get(SuspenseId(2)).unwrap();
        assert_eq!((state.status(), state.remaining), (SuspenseStatus::Returned, Money::ZERO));
        assert_eq!(book.judge_adjustment(SuspenseId(2), Money(1)), Err(SuspenseRefusal::Closed));
        assert_eq!(book.judge_return(SuspenseId(2)), Err(SuspenseRefusal::Closed));
    }
}
