//! The sandbox bank (API.md, The sandbox bank): an in-process bank that
//! behaves like a real one, deterministically, so every path can be driven
//! from outside.
//!
//! Signing ([`SandboxBank`]): the adaptor pre-signs the account, then
//! queries its signing status with backoff (10 ms, doubling, capped at 2 s)
//! until the bank answers finally, `sign_delay_ms` after the pre-sign:
//! sub-account `3109401` + the 8 digits of the account number, or, for a
//! `credential_no` ending in `FAIL`, a refusal. After a crash in `signing`,
//! recovery asks again and the polling resumes.
//!
//! Books ([`SandboxBooks`], the [`BankApi`] side): payouts succeed unless
//! the payee's account number ends in `9999` (`PAYEE_ACCOUNT_CLOSED`);
//! instructions are confirmed with a bank serial. Every answer is booked
//! under the ledger's reference before it is given, so a repeated
//! reference gets the original answer and a payout is never made twice.
//!
//! The books live in `DATA_DIR/sandbox/<code>/books.jsonl`: one JSON object
//! per line, appended and fsynced (fdatasync) before the call returns, the
//! way a real bank's books survive its own crashes. A line is
//! `{"kind", "reference", "account_no", "counter_account_no", "amount",
//! "result", "bank_serial", "failure_reason", "booked_at"}` with `kind` one
//! of `payout`, `forced_transfer`, `adjustment`, `return`, `credit` (an
//! incoming remittance; `reference` is its notification id) or
//! `delivered` (a credit's notification was accepted by the ledger). A torn
//! last line (a crash in mid-write, never answered) is cut off at start-up;
//! any other bad line stops start-up.
//!
//! Loading: the books grow with every call the bank ever answered (the
//! file, and one answer per reference in memory), so reading them takes
//! time proportional to the bank's whole history. The ledger does not wait
//! for it: [`SandboxBooks::open_in_background`] reads them on a thread of
//! their own while the server starts and serves, as a real bank's books are
//! not the ledger's to load. Until they are read every call is answered
//! with a transient error ("still loading": the caller sends again later,
//! as after any bank outage); if they cannot be read, every call keeps
//! failing that way and the error is logged.
//!
//! Statement ([`BankApi::statement`]): the lines booked on a UTC date
//! (by `booked_at`) that moved money: payouts that succeeded, forced
//! transfers, adjustments, returns and credits, with the `kind`s of
//! API.md's Reconciliation. Read from the books file line by line, so
//! memory holds that one day's lines only.
//!
//! Crash points (debug builds only, for the crash tests): a file
//! `crash-point` in the books' folder holding `before_book`, `after_book`
//! or `after_answer` makes the process abort at that point of the next
//! payout (the file is removed first, so the restart goes on): before the
//! bank books the payout, after it booked it but before the ledger hears
//! the answer, or after the ledger heard it but before it is in the log.
//! Release builds contain no such hook.
//!
//! Fault knobs: `fault_rate` is the share of calls answered with a
//! transient error before the bank acts; `unknown_rate` the share that
//! "time out" (half of those after the bank booked the call, half before),
//! so the caller must query before it sends again.

use hashbrown::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use parking_lot::{MappedMutexGuard, Mutex, MutexGuard};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::book_json;
use super::{BankAnswer, BankApi, CallError, InstructionRequest, PayoutRequest, Sign, StatementLine};
use crate::actors::account::SignResult;
use crate::config::BankConfig;
use crate::domain::money::Money;
use crate::domain::record::StatementKind;

pub struct SandboxBank {
    config: BankConfig,
    /// The bank's side of signing: when each account still waiting for its
    /// final answer was pre-signed (forgotten once answered, so it does
    /// not grow with accounts).
    presigned: HashMap<u64, Instant>,
}

/// First sign-status query comes right after pre-signing; each further one
/// waits twice as long, up to this cap.
const SIGN_POLL_FIRST_MS: u64 = 10;
const SIGN_POLL_MAX_MS: u64 = 2_000;

/// What the bank's sign-status query (签约状态查询) answers.
#[derive(Debug, PartialEq, Eq)]
enum SignStatus {
    Pending,
    Signed(String),
    Refused(&'static str),
}

impl SandboxBank {
    pub fn new(config: BankConfig) -> Self {
        Self { config, presigned: HashMap::new() }
    }

    /// The sub-account number the sandbox gives an account.
    pub fn sub_account_no(account_number: u64) -> String {
        format!("3109401{:08}", account_number % 100_000_000)
    }

    /// The bank side of pre-signing (附属账户预签约): accepted at once; a
    /// repeated pre-sign while the first waits keeps the first one's time.
    /// One repeated after the final answer (the ledger crashed before it
    /// recorded it) starts over and ends the same way.
    fn presign(&mut self, account_number: u64) {
        self.presigned.entry(account_number).or_insert_with(Instant::now);
    }

    /// The bank side of the status query: pending until `sign_delay_ms`
    /// after pre-signing, then final.
    fn sign_status(&self, account_number: u64, credential_no: &str) -> SignStatus {
        let Some(presigned_at) = self.presigned.get(&account_number) else {
            return SignStatus::Refused("SIGN_UNKNOWN: no pre-sign for this account");
        };
        if presigned_at.elapsed() < Duration::from_millis(self.config.sign_delay_ms) {
            return SignStatus::Pending;
        }
        if credential_no.ends_with("FAIL") {
            SignStatus::Refused("SIGN_REFUSED: the bank refused the credential")
        } else {
            SignStatus::Signed(Self::sub_account_no(account_number))
        }
    }

    /// Query the status after `wait_ms`, again with a doubled wait while
    /// the bank says pending, and hand the final answer to the account.
    fn poll_sign_status(&mut self, request: Sign, wait_ms: u64, ctx: &mut Context<Self>) {
        ctx.run_later(Duration::from_millis(wait_ms), move |bank, ctx| {
            let account_number = request.info.account_id.0;
            let outcome = match bank.sign_status(account_number, request.info.credential_no()) {
                SignStatus::Pending => {
                    let next_ms = (wait_ms.max(SIGN_POLL_FIRST_MS) * 2).min(SIGN_POLL_MAX_MS);
                    return bank.poll_sign_status(request, next_ms, ctx);
                }
                SignStatus::Signed(sub_account_no) => Ok(sub_account_no.into()),
                SignStatus::Refused(reason) => Err(reason.into()),
            };
            bank.presigned.remove(&account_number);
            request.account.do_send(SignResult { outcome });
        });
    }
}

impl Actor for SandboxBank {
    type Context = Context<Self>;
}

impl Handler<Sign> for SandboxBank {
    type Result = ();

    fn handle(&mut self, request: Sign, ctx: &mut Self::Context) {
        self.presign(request.info.account_id.0);
        self.poll_sign_status(request, 0, ctx);
    }
}

/// The reason the sandbox refuses a payout to an account ending in 9999.
pub const PAYEE_ACCOUNT_CLOSED: &str = "PAYEE_ACCOUNT_CLOSED";

/// One line of the sandbox's books.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookLine {
    pub kind: String,
    pub reference: String,
    pub account_no: String,
    pub counter_account_no: String,
    pub amount: String,
    pub result: String,
    pub bank_serial: Option<String>,
    pub failure_reason: Option<String>,
    pub booked_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_name: Option<String>,
}

impl BookLine {
    fn answer(&self) -> BankAnswer {
        match (&self.bank_serial, &self.failure_reason) {
            (Some(serial), _) if self.result == "succeeded" => Ok(serial.as_str().into()),
            (_, Some(reason)) => Err(reason.as_str().into()),
            _ => Err("UNKNOWN".into()),
        }
    }
}

struct Books {
    file: File,
    /// Lines booked (the next bank serial is one more).
    line_count: u64,
    /// Every reference's answer: all a repeated call needs (memory grows
    /// with the references booked, one small entry each).
    by_reference: HashMap<Box<str>, BankAnswer>,
    /// Incoming remittances, kept whole for delivery (few).
    credits: Vec<BookLine>,
    delivered: hashbrown::HashSet<String>,
}

/// The books while they are read, once read, or why they could not be.
enum Opening {
    Loading,
    Failed(String),
    Open(Books),
}

pub struct SandboxBooks {
    config: BankConfig,
    path: PathBuf,
    books: Mutex<Opening>,
}

/// Where a test may make the process abort in the middle of a payout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    BeforeBook,
    AfterBook,
    AfterAnswer,
}

impl CrashPoint {
    fn as_str(self) -> &'static str {
        match self {
            Self::BeforeBook => "before_book",
            Self::AfterBook => "after_book",
            Self::AfterAnswer => "after_answer",
        }
    }
}

fn sync_dir(path: &Path) -> Result<(), String> {
    File::open(path).and_then(|dir| dir.sync_all()).map_err(|error| format!("cannot sync {}: {error}", path.display()))
}

impl SandboxBooks {
    /// Open (or create) `data_dir/sandbox/<code>/books.jsonl` and read it
    /// before returning.
    pub fn open(config: BankConfig, data_dir: &Path) -> Result<Self, String> {
        let (path, file) = Self::create(&config, data_dir)?;
        let books = Books::load(&path, file)?;
        Ok(Self { config, path, books: Mutex::new(Opening::Open(books)) })
    }

    /// Create the books' folder and file at once (a configuration error
    /// stops start-up), and read them on a thread of their own (see the
    /// module docs, Loading).
    pub fn open_in_background(config: BankConfig, data_dir: &Path) -> Result<Arc<Self>, String> {
        let (path, file) = Self::create(&config, data_dir)?;
        let books = Arc::new(Self { config, path, books: Mutex::new(Opening::Loading) });
        let loading = Arc::clone(&books);
        std::thread::Builder::new()
            .name(format!("sandbox-books-{}", books.config.code))
            .spawn(move || {
                let started = Instant::now();
                let opened = match Books::load(&loading.path, file) {
                    Ok(books) => {
                        tracing::info!(bank = %loading.config.code, lines = books.line_count,
                            ms = started.elapsed().as_millis() as u64, "sandbox books loaded");
                        Opening::Open(books)
                    }
                    Err(error) => {
                        tracing::error!(bank = %loading.config.code, %error, "sandbox books cannot be read; every call to this bank fails");
                        Opening::Failed(error)
                    }
                };
                *loading.books.lock() = opened;
            })
            .map_err(|error| format!("cannot start the sandbox books loader: {error}"))?;
        Ok(books)
    }

    /// The folder (synced into its parents) and the file (synced if new).
    fn create(config: &BankConfig, data_dir: &Path) -> Result<(PathBuf, File), String> {
        let sandbox_dir = data_dir.join("sandbox");
        let dir = sandbox_dir.join(&config.code);
        std::fs::create_dir_all(&dir).map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
        sync_dir(data_dir)?;
        sync_dir(&sandbox_dir)?;
        let path = dir.join("books.jsonl");
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|error| format!("cannot open {}: {error}", path.display()))?;
        if !existed {
            file.sync_all().map_err(|error| error.to_string())?;
            sync_dir(&dir)?;
        }
        Ok((path, file))
    }

    /// The books once read; a transient error while they are read (or for
    /// good if they could not be).
    fn books(&self) -> Result<MappedMutexGuard<'_, Books>, CallError> {
        MutexGuard::try_map(self.books.lock(), |opening| match opening {
            Opening::Open(books) => Some(books),
            Opening::Loading | Opening::Failed(_) => None,
        })
        .map_err(|opening| match &*opening {
            Opening::Failed(error) => CallError::Transient(format!("sandbox: the books cannot be read: {error}")),
            _ => CallError::Transient("sandbox: the books are still loading".into()),
        })
    }

    /// Whether the books are still being read.
    pub fn is_loading(&self) -> bool {
        matches!(*self.books.lock(), Opening::Loading)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Abort the process here if a test armed this crash point (debug
    /// builds only; see the module docs).
    pub fn crash_if_armed(&self, point: CrashPoint) {
        if cfg!(debug_assertions) {
            let file = self.path.with_file_name("crash-point");
            let armed = std::fs::read_to_string(&file).is_ok_and(|text| text.trim() == point.as_str());
            if armed && std::fs::remove_file(&file).is_ok() {
                eprintln!("sandbox: crash point {} reached; aborting", point.as_str());
                std::process::abort();
            }
        }
    }

    /// Lines booked so far (`None` until the books are read).
    pub fn line_count(&self) -> Option<u64> {
        self.books().ok().map(|books| books.line_count)
    }

    /// Credits booked whose notification the ledger has not yet accepted.
    pub fn undelivered_credits(&self) -> Result<Vec<BookLine>, CallError> {
        let books = self.books()?;
        Ok(books
            .credits
            .iter()
            .filter(|line| line.kind == "credit" && !books.delivered.contains(&line.reference))
            .cloned()
            .collect())
    }

    /// Book an incoming remittance; returns its line (notification id in
    /// `reference`, `bank_serial`).
    pub fn book_credit(
        &self,
        to_account_no: &str,
        amount: Money,
        payer_name: &str,
        payer_account_no: &str,
    ) -> Result<BookLine, CallError> {
        let mut books = self.books()?;
        let serial = books.next_serial();
        let line = BookLine {
            kind: "credit".into(),
            reference: format!("N{}", &serial[2..]),
            account_no: to_account_no.into(),
            counter_account_no: payer_account_no.into(),
            amount: amount.to_string(),
            result: "succeeded".into(),
            bank_serial: Some(serial),
            failure_reason: None,
            booked_at: crate::clock::format_ms(crate::clock::now_ms()),
            payer_name: Some(payer_name.into()),
        };
        books.append(line.clone()).map_err(CallError::Unknown)?;
        Ok(line)
    }

    /// Note that the ledger accepted the notification of credit `reference`.
    pub fn mark_delivered(&self, reference: &str) -> Result<(), String> {
        let mut books = self.books().map_err(|error| error.to_string())?;
        if books.delivered.contains(reference) {
            return Ok(());
        }
        let line = BookLine {
            kind: "delivered".into(),
            reference: reference.into(),
            account_no: String::new(),
            counter_account_no: String::new(),
            amount: "0.00".into(),
            result: "succeeded".into(),
            bank_serial: None,
            failure_reason: None,
            booked_at: crate::clock::format_ms(crate::clock::now_ms()),
            payer_name: None,
        };
        books.append(line)
    }

    /// Roll the fault dice: `Some(error)` before the bank acts, and whether
    /// the answer is lost after it acted.
    fn dice(&self) -> (Option<CallError>, bool) {
        let mut rng = rand::thread_rng();
        if self.config.fault_rate > 0.0 && rng.gen::<f64>() < self.config.fault_rate {
            return (Some(CallError::Transient("sandbox: simulated transient fault".into())), false);
        }
        if self.config.unknown_rate > 0.0 && rng.gen::<f64>() < self.config.unknown_rate {
            if rng.gen::<bool>() {
                return (None, true);
            }
            return (Some(CallError::Unknown("sandbox: simulated timeout before booking".into())), false);
        }
        (None, false)
    }

    /// Book `make(serial)` under `reference` unless it is there already;
    /// the original answer either way.
    fn book_once(&self, reference: &str, make: impl FnOnce(String) -> BookLine) -> Result<BankAnswer, CallError> {
        let (fault, lose_answer) = self.dice();
        if let Some(error) = fault {
            return Err(error);
        }
        let mut books = self.books()?;
        let answer = match books.by_reference.get(reference) {
            Some(answer) => answer.clone(),
            None => {
                let line = make(books.next_serial());
                let answer = line.answer();
                books.append(line).map_err(CallError::Unknown)?;
                answer
            }
        };
        if lose_answer {
            return Err(CallError::Unknown("sandbox: simulated timeout after booking".into()));
        }
        Ok(answer)
    }
}

fn file_flush(file: &mut File) -> Result<(), String> {
    file.flush().map_err(|error| error.to_string())
}

/// Parse the books; returns the lines, the bytes they cover, and the file
/// length. Only a bad last line without a newline is a torn tail.
fn read_lines(path: &Path) -> Result<(Vec<BookLine>, u64, u64), String> {
    let file = File::open(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let total = file.metadata().map_err(|error| error.to_string())?.len();
    let mut reader = BufReader::new(file);
    let mut lines = Vec::new();
    let mut good: u64 = 0;
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        let read = reader.read_until(b'\n', &mut buffer).map_err(|error| error.to_string())?;
        if read == 0 {
            break;
        }
        let complete = buffer.ends_with(b"\n");
        match serde_json::from_slice::<BookLine>(&buffer) {
            Ok(line) if complete => {
                lines.push(line);
                good += read as u64;
            }
            _ if !complete => break,
            _ => return Err(format!("{}: bad line at offset {good}", path.display())),
        }
    }
    Ok((lines, good, total))
}

impl Books {
    /// Read every line of the books file (cutting off a torn last line).
    fn load(path: &Path, mut file: File) -> Result<Books, String> {
        let (lines, good_bytes, total_bytes) = read_lines(path)?;
        if good_bytes < total_bytes {
            tracing::warn!(path = %path.display(), offset = good_bytes, "sandbox books: cutting off a torn last line");
            file.set_len(good_bytes).map_err(|error| error.to_string())?;
            file.sync_all().map_err(|error| error.to_string())?;
        }
        file_flush(&mut file)?;
        let mut books = Books {
            file,
            line_count: 0,
            by_reference: HashMap::new(),
            credits: Vec::new(),
            delivered: Default::default(),
        };
        for line in lines {
            books.remember(line);
        }
        Ok(books)
    }

    fn next_serial(&self) -> String {
        format!("SB{:012}", self.line_count + 1)
    }

    fn remember(&mut self, line: BookLine) {
        if line.kind == "delivered" {
            self.delivered.insert(line.reference.clone());
        } else {
            self.by_reference.insert(line.reference.as_str().into(), line.answer());
            if line.kind == "credit" {
                self.credits.push(line);
            }
        }
        self.line_count += 1;
    }

    /// Write one line and fdatasync it before anyone hears of it.
    fn append(&mut self, line: BookLine) -> Result<(), String> {
        self.append_all(vec![line])
    }

    /// Write lines with one write and one fdatasync.
    fn append_all(&mut self, lines: Vec<BookLine>) -> Result<(), String> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(lines.len() * 256);
        for line in &lines {
            book_json::write_line(&mut bytes, line);
            bytes.push(b'\n');
        }
        self.write_synced(&bytes)?;
        for line in lines {
            self.remember(line);
        }
        Ok(())
    }

    /// Write whole lines with one write and one fdatasync.
    fn write_synced(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.file.write_all(bytes).map_err(|error| format!("sandbox books: {error}"))?;
        self.file.sync_data().map_err(|error| format!("sandbox books: {error}"))
    }
}

/// Instructions (forced transfers, adjustments, returns) are confirmed.
/// (The batch path writes the same bytes with
/// [`book_json::write_instruction_line`].)
pub(super) fn instruction_line(request: &InstructionRequest, serial: String, booked_at: &str) -> BookLine {
    BookLine {
        kind: request.kind.as_str().into(),
        reference: request.reference.to_string(),
        account_no: request.from_account_no.to_string(),
        counter_account_no: request.to_account_no.to_string(),
        amount: request.amount.to_string(),
        result: "succeeded".into(),
        bank_serial: Some(serial),
        failure_reason: None,
        booked_at: booked_at.into(),
        payer_name: None,
    }
}

impl SandboxBooks {
    /// The statement of `date` from the books file (a torn last line, being
    /// written right now, is not booked yet and is skipped).
    fn statement_lines(&self, date: &str) -> Result<Vec<StatementLine>, String> {
        let file = File::open(&self.path).map_err(|error| format!("cannot read {}: {error}", self.path.display()))?;
        let mut reader = BufReader::new(file);
        let mut buffer = Vec::new();
        let mut statement = Vec::new();
        loop {
            buffer.clear();
            let read = reader.read_until(b'\n', &mut buffer).map_err(|error| error.to_string())?;
            if read == 0 || !buffer.ends_with(b"\n") {
                break;
            }
            let line: BookLine = serde_json::from_slice(&buffer)
                .map_err(|error| format!("{}: bad line: {error}", self.path.display()))?;
            if !line.booked_at.starts_with(date) || line.result != "succeeded" {
                continue;
            }
            let Some(kind) = StatementKind::parse(&line.kind) else { continue };
            let amount = Money::parse_amount(&line.amount)
                .ok_or_else(|| format!("{}: bad amount {:?}", self.path.display(), line.amount))?;
            statement.push(StatementLine {
                bank_serial: line.bank_serial.unwrap_or_default().into(),
                reference: line.reference.into(),
                kind,
                account_no: line.account_no.into(),
                counter_account_no: line.counter_account_no.into(),
                amount,
                booked_at: line.booked_at.into(),
            });
        }
        Ok(statement)
    }
}

impl BankApi for SandboxBooks {
    fn statement(&self, date: &str) -> Result<Vec<StatementLine>, CallError> {
        if let (Some(error), _) = self.dice() {
            return Err(CallError::Transient(error.to_string()));
        }
        self.statement_lines(date).map_err(CallError::Transient)
    }

    fn payout(&self, request: &PayoutRequest) -> Result<BankAnswer, CallError> {
        self.crash_if_armed(CrashPoint::BeforeBook);
        let answer = self.book_once(&request.reference, |serial| {
            let refused = request.to_account_no.ends_with("9999");
            BookLine {
                kind: "payout".into(),
                reference: request.reference.to_string(),
                account_no: request.from_account_no.to_string(),
                counter_account_no: request.to_account_no.to_string(),
                amount: request.amount.to_string(),
                result: if refused { "failed" } else { "succeeded" }.into(),
                bank_serial: (!refused).then_some(serial),
                failure_reason: refused.then(|| PAYEE_ACCOUNT_CLOSED.to_string()),
                booked_at: crate::clock::format_ms(crate::clock::now_ms()),
                payer_name: None,
            }
        });
        self.crash_if_armed(CrashPoint::AfterBook);
        answer
    }

    fn instruct(&self, request: &InstructionRequest) -> Result<BankAnswer, CallError> {
        self.book_once(&request.reference, |serial| {
            instruction_line(request, serial, &crate::clock::format_ms(crate::clock::now_ms()))
        })
    }

    /// One dice roll, one write and one sync for the whole batch. Each new
    /// line is written straight into the batch's bytes and only its answer
    /// is remembered (an instruction line is never needed whole again).
    fn instruct_batch(&self, requests: &[InstructionRequest]) -> Result<Vec<BankAnswer>, CallError> {
        let (fault, lose_answer) = self.dice();
        if let Some(error) = fault {
            return Err(error);
        }
        let mut guard = self.books()?;
        let books = &mut *guard;
        let mut answers = Vec::with_capacity(requests.len());
        // References booked by this batch, so that a failed write forgets
        // them again (a repeat within the batch finds the first one's answer
        // in `by_reference` meanwhile).
        let mut booked: Vec<&str> = Vec::new();
        let mut bytes = Vec::with_capacity(requests.len() * 320);
        // One time for the whole batch: it is booked by one sync.
        let booked_at = book_json::Quoted::new(&crate::clock::format_ms(crate::clock::now_ms()));
        for request in requests {
            let answer = match books.by_reference.entry_ref(&*request.reference) {
                hashbrown::hash_map::EntryRef::Occupied(known) => known.get().clone(),
                hashbrown::hash_map::EntryRef::Vacant(vacant) => {
                    let serial_number = books.line_count + booked.len() as u64 + 1;
                    let serial = book_json::serial(serial_number);
                    book_json::write_instruction_line(&mut bytes, request, &serial, &booked_at);
                    bytes.push(b'\n');
                    let answer: BankAnswer = Ok(serial.into());
                    vacant.insert(answer.clone());
                    booked.push(&request.reference);
                    answer
                }
            };
            answers.push(answer);
        }
        if !booked.is_empty() {
            if let Err(error) = books.write_synced(&bytes) {
                for reference in booked {
                    books.by_reference.remove(reference);
                }
                return Err(CallError::Unknown(error));
            }
            books.line_count += booked.len() as u64;
        }
        if lose_answer {
            return Err(CallError::Unknown("sandbox: simulated timeout after booking".into()));
        }
        Ok(answers)
    }

    fn query_batch(&self, references: &[Box<str>]) -> Result<Vec<Option<BankAnswer>>, CallError> {
        if let (Some(error), _) = self.dice() {
            return Err(CallError::Transient(error.to_string()));
        }
        let books = self.books()?;
        Ok(references.iter().map(|reference| books.by_reference.get(&**reference).cloned()).collect())
    }

    fn query(&self, reference: &str) -> Result<Option<BankAnswer>, CallError> {
        if let (Some(error), _) = self.dice() {
            return Err(CallError::Transient(error.to_string()));
        }
        let books = self.books()?;
        Ok(books.by_reference.get(reference).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BankKind;

    fn config(fault_rate: f64, unknown_rate: f64) -> BankConfig {
        BankConfig {
            code: "SIMBANK".into(),
            kind: BankKind::Sandbox,
            notify_secret: "s".into(),
            public_adjustment_account: "310940100000000".into(),
            sign_delay_ms: 0,
            fault_rate,
            unknown_rate,
            notify_max_age_s: 0,
        }
    }

    #[test]
    fn signing_is_pending_until_the_delay_then_final() {
        let mut bank = SandboxBank::new(BankConfig { sign_delay_ms: 60_000, ..config(0.0, 0.0) });
        assert!(matches!(bank.sign_status(7, "C1"), SignStatus::Refused(_)), "no pre-sign yet");
        bank.presign(7);
        assert_eq!(bank.sign_status(7, "C1"), SignStatus::Pending);
        let mut bank = SandboxBank::new(config(0.0, 0.0));
        bank.presign(7);
        bank.presign(8);
        assert_eq!(bank.sign_status(7, "C1"), SignStatus::Signed("310940100000007".into()));
        assert!(
            matches!(bank.sign_status(8, "C2FAIL"), SignStatus::Refused(reason) if reason.starts_with("SIGN_REFUSED"))
        );
    }

    fn payout(reference: &str, to: &str) -> PayoutRequest {
        PayoutRequest {
            reference: reference.into(),
            from_account_no: "310940100000001".into(),
            to_account_no: to.into(),
            to_account_name: "n".into(),
            amount: Money(12_345),
        }
    }

    #[test]
    fn a_reference_is_paid_once_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let books = SandboxBooks::open(config(0.0, 0.0), dir.path()).unwrap();
        let first = books.payout(&payout("w-1", "6222020000000001")).unwrap();
        assert!(first.is_ok());
        assert_eq!(books.payout(&payout("w-1", "6222020000000001")).unwrap(), first);
        let refused = books.payout(&payout("w-2", "6222020000009999")).unwrap();
        assert_eq!(refused, Err(PAYEE_ACCOUNT_CLOSED.into()));
        assert_eq!(books.query("w-1").unwrap(), Some(first.clone()));
        assert_eq!(books.query("w-3").unwrap(), None);
        drop(books);
        // A torn last line (a crash in mid-write) is cut off.
        let path = dir.path().join("sandbox/SIMBANK/books.jsonl");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"kind\":\"payo").unwrap();
        drop(file);
        let books = SandboxBooks::open(config(0.0, 0.0), dir.path()).unwrap();
        assert_eq!(books.line_count(), Some(2));
        assert_eq!(books.payout(&payout("w-1", "6222020000000001")).unwrap(), first);
        assert_eq!(books.line_count(), Some(2), "no second payout");
    }

    /// Waits (up to 10 s) until the background read is done.
    fn loaded(books: &SandboxBooks) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while books.is_loading() {
            assert!(Instant::now() < deadline, "the books never finished loading");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn books_read_in_the_background_answer_as_before_once_read() {
        let dir = tempfile::tempdir().unwrap();
        let books = SandboxBooks::open(config(0.0, 0.0), dir.path()).unwrap();
        let first = books.payout(&payout("w-1", "6222020000000001")).unwrap();
        drop(books);
        let books = SandboxBooks::open_in_background(config(0.0, 0.0), dir.path()).unwrap();
        loaded(&books);
        assert_eq!(books.line_count(), Some(1));
        assert_eq!(books.query("w-1").unwrap(), Some(first.clone()));
        assert_eq!(books.payout(&payout("w-1", "6222020000000001")).unwrap(), first, "the original answer");
        assert_eq!(books.line_count(), Some(1), "no second payout");
    }

    #[test]
    fn books_that_cannot_be_read_fail_every_call_transiently() {
        let dir = tempfile::tempdir().unwrap();
        let books = SandboxBooks::open(config(0.0, 0.0), dir.path()).unwrap();
        assert!(books.payout(&payout("w-1", "6222020000000001")).unwrap().is_ok());
        assert!(books.payout(&payout("w-2", "6222020000000001")).unwrap().is_ok());
        drop(books);
        // Damage in a middle line (not a torn tail): the books cannot be read.
        let path = dir.path().join("sandbox/SIMBANK/books.jsonl");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[3] = b'#';
        std::fs::write(&path, bytes).unwrap();
        assert!(SandboxBooks::open(config(0.0, 0.0), dir.path()).is_err(), "a foreground open refuses");
        let books = SandboxBooks::open_in_background(config(0.0, 0.0), dir.path()).unwrap();
        loaded(&books);
        assert_eq!(books.line_count(), None);
        for answer in [books.query("w-1").map(|_| ()), books.payout(&payout("w-3", "1")).map(|_| ())] {
            match answer {
                Err(CallError::Transient(why)) => assert!(why.contains("cannot be read"), "{why}"),
                other => panic!("a call to unreadable books: {other:?}"),
            }
        }
        assert!(matches!(books.undelivered_credits(), Err(CallError::Transient(_))));
    }

    #[test]
    fn faults_never_book_twice() {
        let dir = tempfile::tempdir().unwrap();
        let books = SandboxBooks::open(config(0.3, 0.3), dir.path()).unwrap();
        let mut answers = Vec::new();
        for _ in 0..200 {
            match books.payout(&payout("w-1", "6222020000000001")) {
                Ok(answer) => answers.push(answer),
                Err(_) => continue,
            }
        }
        assert!(!answers.is_empty());
        assert!(answers.windows(2).all(|pair| pair[0] == pair[1]));
        assert_eq!(books.line_count(), Some(1));
    }

    #[test]
    fn a_batch_books_each_reference_once() {
        let dir = tempfile::tempdir().unwrap();
        let books = SandboxBooks::open(config(0.0, 0.0), dir.path()).unwrap();
        let request = |reference: &str| InstructionRequest {
            reference: reference.into(),
            kind: crate::domain::record::InstructionKind::ForcedTransfer,
            from_account_no: "1".into(),
            to_account_no: "2".into(),
            amount: Money(5),
        };
        let first = books.instruct(&request("t-1")).unwrap();
        let answers = books.instruct_batch(&[request("t-1"), request("t-2"), request("t-2")]).unwrap();
        assert_eq!(answers[0], first);
        assert_eq!(answers[1], answers[2]);
        assert_ne!(answers[1], first);
        assert_eq!(books.line_count(), Some(2));
        let found = books.query_batch(&["t-2".into(), "t-3".into()]).unwrap();
        assert_eq!(found, vec![Some(answers[1].clone()), None]);
        // The batch's line reads back as the line serde writes, and its
        // answer survives reopening.
        let text = std::fs::read_to_string(books.path()).unwrap();
        let last: BookLine = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        let serial = answers[1].clone().unwrap().to_string();
        assert_eq!(serial, "SB000000000002");
        assert_eq!(last, instruction_line(&request("t-2"), serial, &last.booked_at));
        drop(books);
        let books = SandboxBooks::open(config(0.0, 0.0), dir.path()).unwrap();
        assert_eq!(books.line_count(), Some(2));
        let again = books.instruct_batch(&[request("t-2"), request("t-3")]).unwrap();
        assert_eq!(again[0], answers[1], "the original answer, not a second booking");
        assert_eq!(again[1], Ok("SB000000000003".into()));
        assert_eq!(books.line_count(), Some(3));
    }

    #[test]
    fn the_statement_lists_what_moved_money_that_day() {
        let dir = tempfile::tempdir().unwrap();
        let books = SandboxBooks::open(config(0.0, 0.0), dir.path()).unwrap();
        books.payout(&payout("w-1", "6222020000000001")).unwrap().unwrap();
        books.payout(&payout("w-2", "6222020000009999")).unwrap().unwrap_err();
        let request = InstructionRequest {
            reference: "t-1".into(),
            kind: crate::domain::record::InstructionKind::ForcedTransfer,
            from_account_no: "1".into(),
            to_account_no: "2".into(),
            amount: Money(5),
        };
        books.instruct(&request).unwrap().unwrap();
        let credit = books.book_credit("310940100000001", Money(500), "n", "6222").unwrap();
        books.mark_delivered(&credit.reference).unwrap();
        let today = &crate::clock::format_ms(crate::clock::now_ms())[..10];
        let lines = books.statement(today).unwrap();
        let seen: Vec<(&str, StatementKind, Money)> =
            lines.iter().map(|line| (&*line.reference, line.kind, line.amount)).collect();
        assert_eq!(
            seen,
            vec![
                ("w-1", StatementKind::Payout, Money(12_345)),
                ("t-1", StatementKind::ForcedTransfer, Money(5)),
                (&*credit.reference, StatementKind::Credit, Money(500)),
            ]
        );
        assert!(books.statement("1999-01-01").unwrap().is_empty());
    }

    #[test]
    fn credits_are_booked_until_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let books = SandboxBooks::open(config(0.0, 0.0), dir.path()).unwrap();
        let credit = books.book_credit("310940100000001", Money(500), "n", "6222").unwrap();
        assert_eq!(books.undelivered_credits().unwrap(), vec![credit.clone()]);
        books.mark_delivered(&credit.reference).unwrap();
        drop(books);
        let books = SandboxBooks::open(config(0.0, 0.0), dir.path()).unwrap();
        assert!(books.undelivered_credits().unwrap().is_empty());
    }
}
