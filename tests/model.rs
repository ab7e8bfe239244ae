//! Model-based test of the account actors, black-box: proptest generates
//! random sequences of every operation (deposits, the five transfer types,
//! withdrawals, retries of old ids, graceful restarts and kill -9 in the
//! middle) and runs each against the real server and a small reference
//! model written from API.md alone. Every answer (status and error code)
//! must be the one the model predicts, and at every check point, after each
//! restart and at the end, every balance, hold and journal must equal the
//! model's.
//!
//! A restart loads the newest checkpoint (written each second) and replays
//! the log after it: the model does not change across it, because every
//! answered movement is durable. At the end, `wal verify` must find every
//! checkpoint equal to the log folded to its lsn.
//!
//! Cases: `FUNDLEDGER_MODEL_CASES` (default 12; each starts a server).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

const ACCOUNTS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    Deposit {
        account: usize,
        cents: i64,
    },
    Transfer {
        payer: usize,
        payee: usize,
        cents: i64,
    },
    Freeze {
        payer: usize,
        cents: i64,
    },
    PayFreeze {
        payer: usize,
        payee: usize,
        cents: i64,
    },
    /// `hold`: an index into the holds opened so far (modulo their count).
    Unfreeze {
        hold: usize,
        cents: Option<i64>,
    },
    UnfreezePay {
        hold: usize,
        payee: usize,
        cents: Option<i64>,
    },
    Withdraw {
        account: usize,
        cents: i64,
    },
    /// Send an earlier request again, unchanged (modulo the count sent).
    Retry {
        index: usize,
    },
    Restart {
        kill9: bool,
    },
    /// A company applies for an account; the application waits for a
    /// decision (across restarts and checkpoints).
    Apply,
    /// Approve (opening an account) or reject a waiting application
    /// (`application`: an index into them, modulo their count).
    Decide {
        application: usize,
        approve: bool,
    },
}

fn account() -> impl Strategy<Value = usize> {
    0..ACCOUNTS
}

/// Small amounts so that refusals (insufficient funds, exceeded holds) and
/// successes both happen often.
fn amount_cents() -> impl Strategy<Value = i64> {
    prop_oneof![1i64..=500, 1i64..=5_000, Just(100)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (account(), 100i64..=20_000).prop_map(|(account, cents)| Op::Deposit { account, cents }),
        5 => (account(), account(), amount_cents()).prop_map(|(payer, payee, cents)| Op::Transfer { payer, payee, cents }),
        4 => (account(), amount_cents()).prop_map(|(payer, cents)| Op::Freeze { payer, cents }),
        3 => (account(), account(), amount_cents()).prop_map(|(payer, payee, cents)| Op::PayFreeze { payer, payee, cents }),
        4 => (any::<usize>(), proptest::option::of(amount_cents())).prop_map(|(hold, cents)| Op::Unfreeze { hold, cents }),
        3 => (any::<usize>(), account(), proptest::option::of(amount_cents()))
            .prop_map(|(hold, payee, cents)| Op::UnfreezePay { hold, payee, cents }),
        2 => (account(), amount_cents()).prop_map(|(account, cents)| Op::Withdraw { account, cents }),
        2 => any::<usize>().prop_map(|index| Op::Retry { index }),
        1 => any::<bool>().prop_map(|kill9| Op::Restart { kill9 }),
        1 => Just(Op::Apply),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(application, approve)| Op::Decide { application, approve }),
    ]
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Book {
    available: i64,
    frozen: i64,
}

struct Hold {
    id: String,
    account: usize,
    amount: i64,
    remaining: i64,
}

/// The reference model: what API.md says each operation does.
#[derive(Default)]
struct Model {
    books: [Book; ACCOUNTS],
    holds: Vec<Hold>,
    /// Withdrawals accepted (all succeed: the settlement accounts do not
    /// end in 9999), by id: account and amount.
    withdrawals: BTreeMap<String, (usize, i64)>,
    /// Every transfer request sent that committed, with its first answer.
    committed: Vec<(Value, Value)>,
}

/// What the model expects of one request: `Ok` (with the status) or the
/// refusal's status and code.
type Expect = Result<u16, (u16, &'static str)>;

impl Model {
    fn debit_available(&mut self, account: usize, cents: i64) -> Result<(), (u16, &'static str)> {
        if self.books[account].available < cents {
            return Err((422, "INSUFFICIENT_FUNDS"));
        }
        self.books[account].available -= cents;
        Ok(())
    }

    fn hold_use(&mut self, hold: usize, cents: Option<i64>) -> Result<(usize, i64), (u16, &'static str)> {
        let hold = &mut self.holds[hold];
        if hold.remaining == 0 {
            return Err((422, "HOLD_CLOSED"));
        }
        let cents = cents.unwrap_or(hold.remaining);
        if cents > hold.remaining {
            return Err((422, "HOLD_EXCEEDED"));
        }
        hold.remaining -= cents;
        Ok((hold.account, cents))
    }
}

struct Run {
    server: Server,
    accounts: Vec<(String, String, String)>,
    model: Model,
    next_id: u64,
    prefix: String,
    /// Restarts that loaded a checkpoint (the rest replayed from lsn 1).
    from_checkpoint: u64,
    /// Applications waiting for a decision.
    waiting: Vec<String>,
    /// Accounts opened by `Decide` (not in the model's books: none of the
    /// other operations use them), and applications rejected.
    opened: Vec<String>,
    rejected: Vec<String>,
}

impl Run {
    fn start() -> Run {
        // A checkpoint (the folded state) each second once the history
        // archive, which writes every 8 records, has indexed new ones: most
        // restarts load one and replay the records after it.
        let server =
            Server::start_with(Options { checkpoint_every_s: 1, history_memory_records: 8, ..Options::default() });
        let mut accounts = Vec::new();
        for i in 0..ACCOUNTS {
            let name = format!("模型客户{i}");
            let (id, sub) = server.open_account(&name);
            accounts.push((id, sub, name));
        }
        Run {
            server,
            accounts,
            model: Model::default(),
            next_id: 0,
            prefix: uid("m"),
            from_checkpoint: 0,
            waiting: Vec::new(),
            opened: Vec::new(),
            rejected: Vec::new(),
        }
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("{}-{}", self.prefix, self.next_id)
    }

    fn account_id(&self, index: usize) -> &str {
        &self.accounts[index].0
    }

    /// Sends a transfer the model has judged; checks the answer.
    fn transfer(&mut self, body: Value, expect: Expect, what: &str) -> Result<(), TestCaseError> {
        let (status, answer) = self.server.transfer(&body);
        match expect {
            Ok(want) => {
                prop_assert_eq!(status, want, "{}: {} -> {}", what, body, answer);
                prop_assert_eq!(&answer["status"], "committed", "{}: {}", what, answer);
                self.model.committed.push((body, answer));
            }
            Err((want_status, want_code)) => {
                prop_assert_eq!(status, want_status, "{}: {} -> {}", what, body, answer);
                prop_assert_eq!(&answer["error"]["code"], want_code, "{}: {} -> {}", what, body, answer);
            }
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let what = format!("{op:?}");
        match *op {
            Op::Deposit { account, cents } => {
                let (_, sub, name) = &self.accounts[account];
                let lsn = self.server.deposit(sub, name, &amount(cents));
                prop_assert!(lsn > 0);
                self.model.books[account].available += cents;
            }
            Op::Transfer { payer, payee, cents } => {
                let id = self.id();
                let body = json!({"id": id, "type": "transfer", "payer": self.account_id(payer),
                    "payee": self.account_id(payee), "amount": amount(cents)});
                let expect = if payer == payee {
                    Err((422, "SAME_ACCOUNT"))
                } else {
                    self.model.debit_available(payer, cents).map(|()| {
                        self.model.books[payee].available += cents;
                        201
                    })
                };
                self.transfer(body, expect, &what)?;
            }
            Op::Freeze { payer, cents } => {
                let id = self.id();
                let body =
                    json!({"id": id, "type": "freeze", "payer": self.account_id(payer), "amount": amount(cents)});
                let expect = self.model.debit_available(payer, cents).map(|()| {
                    self.model.books[payer].frozen += cents;
                    self.model.holds.push(Hold { id: id.clone(), account: payer, amount: cents, remaining: cents });
                    201
                });
                self.transfer(body, expect, &what)?;
            }
            Op::PayFreeze { payer, payee, cents } => {
                let id = self.id();
                let body = json!({"id": id, "type": "pay_freeze", "payer": self.account_id(payer),
                    "payee": self.account_id(payee), "amount": amount(cents)});
                let expect = if payer == payee {
                    Err((422, "SAME_ACCOUNT"))
                } else {
                    self.model.debit_available(payer, cents).map(|()| {
                        self.model.books[payee].frozen += cents;
                        self.model.holds.push(Hold { id: id.clone(), account: payee, amount: cents, remaining: cents });
                        201
                    })
                };
                self.transfer(body, expect, &what)?;
            }
            Op::Unfreeze { hold, cents } => {
                if self.model.holds.is_empty() {
                    return Ok(());
                }
                let hold = hold % self.model.holds.len();
                let id = self.id();
                let mut body = json!({"id": id, "type": "unfreeze", "hold_id": self.model.holds[hold].id});
                if let Some(cents) = cents {
                    body["amount"] = json!(amount(cents));
                }
                let expect = self.model.hold_use(hold, cents).map(|(account, cents)| {
                    self.model.books[account].frozen -= cents;
                    self.model.books[account].available += cents;
                    201
                });
                self.transfer(body, expect, &what)?;
            }
            Op::UnfreezePay { hold, payee, cents } => {
                if self.model.holds.is_empty() {
                    return Ok(());
                }
                let hold = hold % self.model.holds.len();
                let id = self.id();
                let mut body = json!({"id": id, "type": "unfreeze_pay", "hold_id": self.model.holds[hold].id,
                    "payee": self.account_id(payee)});
                if let Some(cents) = cents {
                    body["amount"] = json!(amount(cents));
                }
                // Which check comes first when both fail is not API.md's to
                // say; the model only sends a same-account unfreeze-pay to
                // a hold that is open and big enough.
                let expect = if self.model.holds[hold].account == payee {
                    let open = self.model.holds[hold].remaining > 0
                        && cents.is_none_or(|c| c <= self.model.holds[hold].remaining);
                    if !open {
                        return Ok(());
                    }
                    Err((422, "SAME_ACCOUNT"))
                } else {
                    self.model.hold_use(hold, cents).map(|(account, cents)| {
                        self.model.books[account].frozen -= cents;
                        self.model.books[payee].available += cents;
                        201
                    })
                };
                self.transfer(body, expect, &what)?;
            }
            Op::Withdraw { account, cents } => {
                let id = self.id();
                let body = json!({"id": id, "account_id": self.account_id(account), "amount": amount(cents)});
                let (status, answer) = self.server.post("/v1/withdrawals", PLATFORM, &body);
                match self.model.debit_available(account, cents) {
                    Ok(()) => {
                        prop_assert_eq!(status, 202, "{}: {}", what, answer);
                        self.model.books[account].frozen += cents;
                        self.model.withdrawals.insert(id, (account, cents));
                    }
                    Err((want_status, want_code)) => {
                        prop_assert_eq!(status, want_status, "{}: {}", what, answer);
                        prop_assert_eq!(&answer["error"]["code"], want_code, "{}: {}", what, answer);
                    }
                }
            }
            Op::Retry { index } => {
                if self.model.committed.is_empty() {
                    return Ok(());
                }
                let (body, first) = self.model.committed[index % self.model.committed.len()].clone();
                let (status, answer) = self.server.transfer(&body);
                prop_assert_eq!(status, 201, "retry of {}: {}", body, answer);
                // The original answer, not the state since (API.md,
                // Idempotency): same lsn, same hold snapshot.
                prop_assert_eq!(&answer, &first, "retry of {}", body);
            }
            Op::Restart { kill9 } => {
                if kill9 {
                    // Give the checkpointer (each second) a moment, so that
                    // most kill -9 restarts have a checkpoint to load.
                    let newest = self.server.checkpoints().last().map_or(0, |(lsn, _)| *lsn);
                    let deadline = Instant::now() + Duration::from_millis(1500);
                    while self.server.checkpoints().last().map_or(0, |(lsn, _)| *lsn) == newest
                        && Instant::now() < deadline
                    {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    self.server.kill9();
                } else {
                    self.server.stop();
                }
                self.server.restart();
                if self.server.loaded_checkpoint() > 0 {
                    self.from_checkpoint += 1;
                }
                self.check()?;
            }
            Op::Apply => {
                let (status, answer) = self.server.apply(&format!("模型申请{}", self.next_id), &credential_no());
                self.next_id += 1;
                prop_assert_eq!(status, 201, "{}: {}", what, answer);
                self.waiting.push(answer["application_id"].as_str().unwrap_or_default().to_string());
            }
            Op::Decide { application, approve } => {
                if self.waiting.is_empty() {
                    return Ok(());
                }
                let id = self.waiting.remove(application % self.waiting.len());
                let (path, body) = match approve {
                    true => (format!("/v1/applications/{id}/approve"), json!({})),
                    false => (format!("/v1/applications/{id}/reject"), json!({"reason": "模型"})),
                };
                let (status, answer) = self.server.post(&path, RISK, &body);
                prop_assert_eq!(status, 200, "{}: {}", what, answer);
                prop_assert_eq!(&answer["status"], if approve { "approved" } else { "rejected" }, "{}", answer);
                match approve {
                    true => self.opened.push(answer["account_id"].as_str().unwrap_or_default().to_string()),
                    false => self.rejected.push(id),
                }
            }
        }
        Ok(())
    }

    /// Waits for the withdrawals to be paid out (all succeed), then compares
    /// every balance, hold and journal with the model.
    fn check(&mut self) -> Result<(), TestCaseError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let ids: Vec<String> = self.model.withdrawals.keys().cloned().collect();
        for id in ids {
            loop {
                let shown = self.server.get_ok(&format!("/v1/withdrawals/{id}"), PLATFORM);
                if shown["status"] == "succeeded" {
                    let (account, cents) = self.model.withdrawals[&id];
                    self.model.books[account].frozen -= cents;
                    self.model.withdrawals.remove(&id);
                    break;
                }
                prop_assert_eq!(&shown["status"], "processing", "withdrawal {}", id);
                prop_assert!(Instant::now() < deadline, "withdrawal {} still processing after 60 s", id);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for (index, book) in self.model.books.iter().enumerate() {
            let account_id = &self.accounts[index].0;
            let balance = self.server.assert_consistent(account_id);
            prop_assert_eq!(
                (balance.available, balance.frozen),
                (book.available, book.frozen),
                "{}: server (available, frozen) vs model",
                account_id
            );
        }
        // The onboarding between restarts: every decision and every
        // waiting application as it was, each opened account there.
        for id in &self.waiting {
            let shown = self.server.get_ok(&format!("/v1/applications/{id}"), RISK);
            prop_assert_eq!(&shown["status"], "pending_review", "{}", shown);
        }
        for id in &self.rejected {
            let shown = self.server.get_ok(&format!("/v1/applications/{id}"), RISK);
            prop_assert_eq!(&shown["status"], "rejected", "{}", shown);
        }
        for account_id in &self.opened {
            let shown = self.server.get_ok(&format!("/v1/accounts/{account_id}"), PLATFORM);
            prop_assert!(shown["status"] == "active" || shown["status"] == "signing", "{}", shown);
        }
        for hold in &self.model.holds {
            let shown = self.server.get_ok(&format!("/v1/holds/{}", hold.id), FINANCE);
            prop_assert_eq!(cents(&shown["amount"]), hold.amount, "{}", shown);
            prop_assert_eq!(cents(&shown["remaining"]), hold.remaining, "{}", shown);
            prop_assert_eq!(&shown["account_id"], self.accounts[hold.account].0.as_str(), "{}", shown);
            let status = if hold.remaining > 0 { "open" } else { "closed" };
            prop_assert_eq!(&shown["status"], status, "{}", shown);
        }
        Ok(())
    }
}

#[test]
fn random_operations_with_restarts_match_the_model() {
    let cases = std::env::var("FUNDLEDGER_MODEL_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(12);
    // Each case starts a server: a few cases, long sequences, and shrinking
    // kept short (a failure prints its whole sequence anyway).
    let config = Config { cases, max_shrink_iters: 16, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let sequences = proptest::collection::vec(op(), 30..60);
    let from_checkpoint = std::cell::Cell::new(0);
    let result = runner.run(&sequences, |ops| {
        let mut run = Run::start();
        for (step, op) in ops.iter().enumerate() {
            run.apply(op).map_err(|e| TestCaseError::fail(format!("step {step} {op:?}: {e}")))?;
            if step % 15 == 14 {
                run.check()?;
            }
        }
        // The end: one more kill -9 and restart, then the last comparison.
        run.apply(&Op::Restart { kill9: true })?;
        from_checkpoint.set(from_checkpoint.get() + run.from_checkpoint);
        // Every checkpoint written on the way equals the log folded to it.
        run.server.kill9();
        let (ok, report) = run.server.wal_verify();
        prop_assert!(ok, "{}", report);
        prop_assert_eq!(
            report.matches("loads cleanly").count(),
            report.matches("equals the log folded to it").count(),
            "{}",
            report
        );
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    assert!(from_checkpoint.get() > 0, "no restart loaded a checkpoint: the test would not cover them");
}
