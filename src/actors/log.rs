//! The ledger's handle on the write-ahead log: encode records, append them
//! (the `lsn` is assigned here, so enqueue order is log order), feed the
//! history index, and wait for durability.
//!
//! Owns the [`crate::codec`] call on the write path and the feed to
//! [`crate::finance::history`]. Must not judge or change any state: callers
//! have decided what happened before they call [`LedgerLog::append`].
//!
//! The blocking work (write, fdatasync) runs on the WAL crate's own writer
//! thread; appending is a memcpy under the WAL's short lock, so account
//! actors never block an arbiter on I/O.
//!
//! The history feed is bounded in records: appended records count in a
//! backlog until the indexer has folded them, and [`LedgerLog::admit`]
//! turns changes away (`Overloaded`, a 503 with `Retry-After`) while it
//! holds [`limits::HISTORY_FEED_RECORDS_MAX`] or more, so an indexer that
//! falls behind (a slow archive) costs answers, never unbounded memory.
//! (Admitted appends may pass the bound by what they carry: at most one
//! request's records per concurrent appender.) The channel is also bounded
//! in batches; a full one makes an appender wait for the indexer, which
//! always keeps receiving, so there is no cycle.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use fundledger_wal::{AppendError, FrameBatch, Wal};

use crate::codec;
use crate::domain::record::Record;
use crate::limits;

/// Records handed to the history indexer, with the first one's lsn.
pub struct Appended {
    pub first_lsn: u64,
    pub records: Vec<Record>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("the log cannot be written")]
    Unavailable,
    #[error("the disk is nearly full")]
    DiskLow,
    #[error("the log is overloaded")]
    Overloaded,
}

impl From<AppendError> for LogError {
    fn from(error: AppendError) -> Self {
        match error {
            AppendError::DiskLow => LogError::DiskLow,
            AppendError::Overloaded => LogError::Overloaded,
            _ => LogError::Unavailable,
        }
    }
}

#[derive(Clone)]
pub struct LedgerLog {
    wal: Wal,
    feed: SyncSender<Appended>,
    backlog: FeedBacklog,
}

/// Records appended and not yet folded by the history indexer.
#[derive(Clone, Debug, Default)]
pub struct FeedBacklog(Arc<AtomicUsize>);

impl FeedBacklog {
    pub fn records(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// The indexer folded `records` of them.
    pub fn indexed(&self, records: usize) {
        let before = self.0.fetch_sub(records, Ordering::AcqRel);
        debug_assert!(before >= records, "indexed {records} of a backlog of {before}");
    }

    fn appended(&self, records: usize) {
        self.0.fetch_add(records, Ordering::AcqRel);
    }
}

thread_local! {
    /// Reused frame buffer: no allocation per append once it has grown.
    static SCRATCH: RefCell<FrameBatch> = RefCell::new(FrameBatch::new());
}

impl LedgerLog {
    pub fn new(wal: Wal, feed: SyncSender<Appended>) -> Self {
        Self { wal, feed, backlog: FeedBacklog::default() }
    }

    /// What the history indexer reports folded records to.
    pub fn feed_backlog(&self) -> FeedBacklog {
        self.backlog.clone()
    }

    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    /// Whether a change may start now (log healthy, disk above the floor,
    /// backlog under its bound). Callers check before changing memory.
    pub fn admit(&self) -> Result<(), LogError> {
        if self.backlog.records() >= limits::HISTORY_FEED_RECORDS_MAX {
            return Err(LogError::Overloaded);
        }
        self.wal.admit().map_err(LogError::from)
    }

    /// Append `records` in order; they get consecutive lsns.
    pub fn append(&self, records: Vec<Record>) -> Result<Range<u64>, LogError> {
        assert!(!records.is_empty(), "append at least one record");
        let lsns = SCRATCH.with(|scratch| {
            let mut batch = scratch.borrow_mut();
            batch.clear();
            for record in &records {
                batch.push_with(|out| codec::encode_into(record, out)).expect("records of bounded size always encode");
            }
            self.wal.append(&batch)
        })?;
        assert_eq!(lsns.end - lsns.start, records.len() as u64, "one lsn per record");
        let first_lsn = lsns.start;
        self.backlog.appended(records.len());
        // The indexer only stops when the process stops; a send error then
        // means nobody will read history again, so it is safe to ignore.
        let _ = self.feed.send(Appended { first_lsn, records });
        Ok(lsns)
    }

    pub async fn wait_durable(&self, lsn: u64) -> Result<(), LogError> {
        if lsn == 0 {
            return Ok(());
        }
        self.wal.wait_durable(lsn).await.map_err(|_| LogError::Unavailable)
    }

    pub fn durable_lsn(&self) -> u64 {
        self.wal.durable_lsn()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use fundledger_wal::{RecoveryPolicy, WalConfig};

    use super::*;
    use crate::domain::ids::AccountId;

    fn signed(n: u64) -> Record {
        Record::AccountSigned { account_id: AccountId(n), sub_account_no: format!("S{n}").into(), at_ms: 0 }
    }

    /// Appended records count until the indexer says it folded them; at
    /// the bound the log turns changes away, and takes them again below it.
    #[test]
    fn an_indexer_that_falls_behind_turns_changes_away() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) =
            Wal::open(
                WalConfig::new(dir.path().join("wal")),
                RecoveryPolicy::default(),
                1,
                |_, _| Ok::<(), String>(()),
            )
            .expect("a fresh log opens");
        let (feed, indexer) = sync_channel(16);
        let log = LedgerLog::new(wal, feed);
        let backlog = log.feed_backlog();
        log.append(vec![signed(1), signed(2)]).expect("appended");
        assert_eq!(backlog.records(), 2);
        assert_eq!(log.admit(), Ok(()));
        backlog.appended(limits::HISTORY_FEED_RECORDS_MAX - 2);
        assert_eq!(log.admit(), Err(LogError::Overloaded), "at the bound");
        backlog.indexed(1);
        assert_eq!(log.admit(), Ok(()), "one folded: below the bound again");
        let appended = indexer.recv().expect("fed");
        assert_eq!((appended.first_lsn, appended.records.len()), (1, 2));
    }
}
