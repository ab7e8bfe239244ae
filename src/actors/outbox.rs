//! The outbox: bank work derived from the durable log, sent at least once,
//! idempotent at the bank by the ledger's reference.
//!
//! Fed by the history indexer ([`crate::finance::history`]), which sees
//! every record once it is durable and in lsn order, so nothing reaches the
//! bank before the ledger's own record of it is on disk (a crash can never
//! leave a payout the log does not know of). At start-up, recovery hands
//! over what the log left pending (withdrawals still processing), and the
//! outbox asks the bank about each before sending anything again.
//!
//! For every payout: call the bank with a timeout; a transient error is
//! retried with capped exponential backoff; an unknown outcome (a timeout)
//! is resolved by a status query by reference before any resend; the final
//! answer goes to the account's actor as a [`FinishWithdrawal`] (it ignores
//! a second answer for a withdrawal already finished). Calls run on the
//! blocking pool, at most [`BANK_CALLS_IN_FLIGHT_MAX`] at once; the queue
//! never blocks a transfer (the indexer only enqueues).
//!
//! Must not change balances: it sends messages to account actors.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};

use super::account::FinishWithdrawal;
use super::bank::{BankAnswer, BankApi, Banks, CallError, PayoutRequest};
use super::directory::Directory;
use crate::domain::record::{PayoutOutcome, Withdrawal};

/// Bank calls running at once, over every bank.
pub const BANK_CALLS_IN_FLIGHT_MAX: usize = 64;

/// How long one bank call may take before its outcome counts as unknown.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

const BACKOFF_FIRST: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One piece of bank work.
#[derive(Clone, Debug)]
pub enum BankWork {
    /// Pay a withdrawal out. `resumed`: recovered from the log after a
    /// restart, so its outcome is unknown: query before sending.
    Payout { withdrawal: Arc<Withdrawal>, resumed: bool },
}

pub type OutboxSender = mpsc::UnboundedSender<BankWork>;

/// Start the outbox on the current (actix) runtime.
pub fn start(banks: Arc<Banks>, directory: Arc<Directory>) -> OutboxSender {
    let (sender, mut receiver) = mpsc::unbounded_channel::<BankWork>();
    let in_flight = Arc::new(Semaphore::new(BANK_CALLS_IN_FLIGHT_MAX));
    actix::spawn(async move {
        while let Some(work) = receiver.recv().await {
            let banks = Arc::clone(&banks);
            let directory = Arc::clone(&directory);
            let in_flight = Arc::clone(&in_flight);
            actix::spawn(async move { run(work, &banks, &directory, &in_flight).await });
        }
    });
    sender
}

async fn run(work: BankWork, banks: &Banks, directory: &Directory, in_flight: &Semaphore) {
    match work {
        BankWork::Payout { withdrawal, resumed } => {
            let Some(bank) = banks.get(&withdrawal.bank) else {
                tracing::error!(withdrawal = %withdrawal.id, bank = %withdrawal.bank, "bank no longer configured; withdrawal stays processing");
                return;
            };
            let Some(account) = directory.get(withdrawal.account_id) else {
                tracing::error!(withdrawal = %withdrawal.id, "withdrawal of an unknown account");
                return;
            };
            let request = PayoutRequest {
                reference: withdrawal.id.clone(),
                from_account_no: account.sub_account_no().unwrap_or_default().into(),
                to_account_no: withdrawal.settlement_account.account_no.clone(),
                to_account_name: withdrawal.settlement_account.account_name.clone(),
                amount: withdrawal.amount,
            };
            let api = Arc::clone(&bank.api);
            let reference = request.reference.clone();
            let answer = until_final(&api, in_flight, resumed, &reference, move |api| api.payout(&request)).await;
            let outcome = match answer {
                Ok(bank_serial) => PayoutOutcome::Succeeded { bank_serial },
                Err(reason) => PayoutOutcome::Failed { reason },
            };
            tracing::info!(withdrawal = %withdrawal.id, ?outcome, "payout answered");
            account.addr.do_send(FinishWithdrawal { id: withdrawal.id.clone(), amount: withdrawal.amount, outcome });
        }
    }
}

/// Call until the bank gives a final answer: retry transient errors with
/// backoff, and after an unknown outcome ask before sending again.
async fn until_final<F>(
    api: &Arc<dyn BankApi>,
    in_flight: &Semaphore,
    query_first: bool,
    reference: &str,
    send: F,
) -> BankAnswer
where
    F: Fn(&dyn BankApi) -> Result<BankAnswer, CallError> + Send + Sync + Clone + 'static,
{
    let mut must_query = query_first;
    let mut backoff = BACKOFF_FIRST;
    loop {
        let result = if must_query {
            let reference: Box<str> = reference.into();
            match call(api, in_flight, move |api| api.query(&reference)).await {
                Ok(Some(answer)) => return answer,
                Ok(None) => {
                    must_query = false;
                    continue;
                }
                Err(error) => Err(error),
            }
        } else {
            call(api, in_flight, send.clone()).await
        };
        match result {
            Ok(answer) => return answer,
            Err(CallError::Transient(why)) => tracing::debug!(%reference, %why, "bank call failed; retrying"),
            Err(CallError::Unknown(why)) => {
                tracing::debug!(%reference, %why, "bank outcome unknown; querying");
                must_query = true;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One blocking bank call with a timeout; a timeout is an unknown outcome.
async fn call<T: Send + 'static>(
    api: &Arc<dyn BankApi>,
    in_flight: &Semaphore,
    f: impl FnOnce(&dyn BankApi) -> Result<T, CallError> + Send + 'static,
) -> Result<T, CallError> {
    let _permit = in_flight.acquire().await.expect("the semaphore is never closed");
    let api = Arc::clone(api);
    match tokio::time::timeout(CALL_TIMEOUT, tokio::task::spawn_blocking(move || f(&*api))).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) => Err(CallError::Unknown(format!("bank call panicked: {join_error}"))),
        Err(_) => Err(CallError::Unknown("bank call timed out".into())),
    }
}
