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
//! Memory: the answers of the newest lines are in memory, older ones are
//! found through an index on disk ([`super::references`]), so memory does
//! not grow with the bank's history. Undelivered credits are kept whole.
//!
//! Loading: the books file grows with every call the bank ever answered,
//! and start-up reads it through (lines the reference index covers are
//! only counted, except credits and deliveries), so it takes time
//! proportional to the bank's whole history. The ledger does not wait
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
use super::references::References;
use super::{BankAnswer, BankApi, CallError, InstructionRequest, PayoutRequest, Sign, StatementLine};
use crate::actors::account::SignResult;
use crate::config::BankConfig;
use crate::domain::money::Money;
use crate::domain::record::StatementKind;
use crate::limits::{SANDBOX_BOOK_LINE_BYTES_MAX, SANDBOX_RECENT_REFERENCES};

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
    pub(super) fn answer(&self) -> BankAnswer {
        match (&self.bank_serial, &self.failure_reason) {
            (Some(serial), _) if self.result == "succeeded" => Ok(serial.as_str().into()),
            (_, Some(reason)) => Err(reason.as_str().into()),
            _ => Err("UNKNOWN".into()),
        }
    }
}

struct Books {
    file: File,
    /// Bytes of whole lines in the file: where the next line starts.
    bytes: u64,
    /// Lines booked (the next bank serial is one more).
    line_count: u64,
    /// Every reference's answer: all a repeated call needs (the newest in
    /// memory, the rest found on disk; [`References`]).
    references: References,
    /// Incoming remittances whose notification the ledger has not yet
    /// accepted, kept whole for delivery, in booking order (few: each is
    /// delivered right after it is booked).
    credits: Vec<BookLine>,
}

/// The books while they are read, once read, or why they could not be.
enum Opening {
    Loading,
    Failed(String),
    Open(Box<Books>),
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
        Self::open_with(config, data_dir, SANDBOX_RECENT_REFERENCES)
    }

    /// [`SandboxBooks::open`], with at most `recent_references` answers in
    /// memory (tests reach the on-disk index with a few).
    fn open_with(config: BankConfig, data_dir: &Path, recent_references: usize) -> Result<Self, String> {
        let (path, file) = Self::create(&config, data_dir)?;
        let books = Books::load(&path, file, recent_references)?;
        Ok(Self { config, path, books: Mutex::new(Opening::Open(Box::new(books))) })
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
                let opened = match Books::load(&loading.path, file, SANDBOX_RECENT_REFERENCES) {
                    Ok(books) => {
                        tracing::info!(bank = %loading.config.code, lines = books.line_count,
                            ms = started.elapsed().as_millis() as u64, "sandbox books loaded");
                        Opening::Open(Box::new(books))
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
            Opening::Open(books) => Some(&mut **books),
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
        Ok(self.books()?.credits.clone())
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
        if !books.credits.iter().any(|credit| credit.reference == reference) {
            // Delivered before (or never booked): nothing to note.
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
        let answer = match books.references.get(reference, &books.file).map_err(CallError::Transient)? {
            Some(answer) => answer,
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

/// The kind of a books line from its first bytes (every line starts with
/// `{"kind":"`, as [`book_json::write_line`] and serde write it), or
/// `None` for a line that does not.
fn line_kind(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"{\"kind\":\"")?;
    let end = rest.iter().position(|&byte| byte == b'"')?;
    Some(&rest[..end])
}

impl Books {
    /// Read the books file (cutting off a torn last line) into what a call
    /// needs: the lines above the reference index's watermark are parsed
    /// and remembered again; those below are only counted, except credits
    /// and deliveries, which are parsed wherever they are (so an old
    /// undelivered credit is still delivered).
    fn load(path: &Path, file: File, recent_references: usize) -> Result<Books, String> {
        let total_bytes = file.metadata().map_err(|error| error.to_string())?.len();
        let references_dir = path.with_file_name("references");
        let references = References::open_with(&references_dir, total_bytes, recent_references)?;
        let watermark = references.watermark();
        let reader = File::open(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let mut reader = BufReader::with_capacity(1 << 20, reader);
        let mut books = Books { file, bytes: 0, line_count: 0, references, credits: Vec::new() };
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            let limit = SANDBOX_BOOK_LINE_BYTES_MAX as u64 + 1;
            let read = std::io::Read::take(&mut reader, limit)
                .read_until(b'\n', &mut buffer)
                .map_err(|error| error.to_string())?;
            if read == 0 {
                break;
            }
            if !buffer.ends_with(b"\n") {
                if read as u64 == limit {
                    return Err(format!(
                        "{}: a line longer than {SANDBOX_BOOK_LINE_BYTES_MAX} bytes at offset {}",
                        path.display(),
                        books.bytes
                    ));
                }
                break; // a torn last line
            }
            let position = books.bytes + 1;
            let parse = position > watermark
                || !matches!(line_kind(&buffer), Some(kind) if kind != b"credit" && kind != b"delivered");
            if parse {
                let line: BookLine = serde_json::from_slice(&buffer)
                    .map_err(|_| format!("{}: bad line at offset {}", path.display(), books.bytes))?;
                books.remember(line, position, position > watermark);
            }
            books.line_count += 1;
            books.bytes += read as u64;
        }
        if books.bytes < total_bytes {
            tracing::warn!(path = %path.display(), offset = books.bytes, "sandbox books: cutting off a torn last line");
            books.file.set_len(books.bytes).map_err(|error| error.to_string())?;
            books.file.sync_all().map_err(|error| error.to_string())?;
        }
        file_flush(&mut books.file)?;
        Ok(books)
    }

    fn next_serial(&self) -> String {
        format!("SB{:012}", self.line_count + 1)
    }

    /// Take in `line`, booked at `position` (its offset + 1); `index` it
    /// unless the reference index has it already.
    fn remember(&mut self, line: BookLine, position: u64, index: bool) {
        if line.kind == "delivered" {
            self.credits.retain(|credit| credit.reference != line.reference);
            return;
        }
        if index {
            self.references.insert(&line.reference, position, line.answer());
            self.flush_references();
        }
        if line.kind == "credit" {
            self.credits.push(line);
        }
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
        let mut positions = Vec::with_capacity(lines.len());
        for line in &lines {
            positions.push(self.bytes + bytes.len() as u64 + 1);
            book_json::write_line(&mut bytes, line);
            bytes.push(b'\n');
        }
        self.write_synced(&bytes)?;
        for (line, position) in lines.into_iter().zip(positions) {
            self.remember(line, position, true);
            self.line_count += 1;
        }
        Ok(())
    }

    /// Write whole lines with one write and one fdatasync. On an error,
    /// what may have been written is cut off again (best effort; start-up
    /// cuts a torn tail too).
    fn write_synced(&mut self, bytes: &[u8]) -> Result<(), String> {
        let written = self.file.write_all(bytes).and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.bytes += bytes.len() as u64;
                Ok(())
            }
            Err(error) => {
                let _ = self.file.set_len(self.bytes);
                Err(format!("sandbox books: {error}"))
            }
        }
    }

    /// Write the reference index's memory to disk once it holds its bound.
    /// A failure is logged and the answers stay in memory (the next call
    /// tries again): the lines themselves are booked already.
    fn flush_references(&mut self) {
        if let Err(error) = self.references.flush_if_full() {
            tracing::error!(%error, "sandbox: cannot write the reference index; answers stay in memory until it can");
        }
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
        // in `references` meanwhile).
        let mark = books.references.mark();
        let mut booked: Vec<&str> = Vec::new();
        let mut bytes = Vec::with_capacity(requests.len() * 320);
        // One time for the whole batch: it is booked by one sync.
        let booked_at = book_json::Quoted::new(&crate::clock::format_ms(crate::clock::now_ms()));
        for request in requests {
            let known = books.references.get(&request.reference, &books.file).map_err(CallError::Transient);
            let answer = match known {
                Ok(Some(answer)) => answer,
                Ok(None) => {
                    let serial_number = books.line_count + booked.len() as u64 + 1;
                    let serial = book_json::serial(serial_number);
                    let position = books.bytes + bytes.len() as u64 + 1;
                    book_json::write_instruction_line(&mut bytes, request, &serial, &booked_at);
                    bytes.push(b'\n');
                    let answer: BankAnswer = Ok(serial.into());
                    books.references.insert(&request.reference, position, answer.clone());
                    booked.push(&request.reference);
                    answer
                }
                Err(error) => {
                    books.references.forget_since(mark, &booked);
                    return Err(error);
                }
            };
            answers.push(answer);
        }
        if !booked.is_empty() {
            if let Err(error) = books.write_synced(&bytes) {
                books.references.forget_since(mark, &booked);
                return Err(CallError::Unknown(error));
            }
            books.line_count += booked.len() as u64;
            books.flush_references();
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
        references
            .iter()
            .map(|reference| books.references.get(reference, &books.file).map_err(CallError::Transient))
            .collect()
    }

    fn query(&self, reference: &str) -> Result<Option<BankAnswer>, CallError> {
        if let (Some(error), _) = self.dice() {
            return Err(CallError::Transient(error.to_string()));
        }
        let books = self.books()?;
        books.references.get(reference, &books.file).map_err(CallError::Transient)
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

    fn forced(reference: &str) -> InstructionRequest {
        InstructionRequest {
            reference: reference.into(),
            kind: crate::domain::record::InstructionKind::ForcedTransfer,
            from_account_no: "1".into(),
            to_account_no: "2".into(),
            amount: Money(5),
        }
    }

    /// Waits for a merge of the reference index in progress.
    fn settled(books: &SandboxBooks) {
        match &mut *books.books.lock() {
            Opening::Open(books) => books.references.settle().unwrap(),
            _ => panic!("the books are not open"),
        }
    }

    #[test]
    fn old_references_answer_from_disk_and_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        // Three answers in memory at most: the rest go to runs on disk.
        let books = SandboxBooks::open_with(config(0.0, 0.0), dir.path(), 3).unwrap();
        let credit = books.book_credit("310940100000001", Money(100), "Payer", "6222").unwrap();
        let mut answers = Vec::new();
        for batch in 0..10 {
            let requests: Vec<_> = (0..5).map(|i| forced(&format!("t-{batch}-{i}"))).collect();
            answers.extend(books.instruct_batch(&requests).unwrap());
        }
        settled(&books);
        let payout_answer = books.payout(&payout("w-1", "6222020000000001")).unwrap();
        {
            let guard = books.books().unwrap();
            assert!(guard.references.recent_len() <= 3, "memory holds its bound");
            assert!(guard.references.run_count() >= 1, "older answers went to disk");
            assert!(guard.references.run_count() < 10, "runs of a full tier are merged");
        }
        let check = |books: &SandboxBooks| {
            for (n, answer) in answers.iter().enumerate() {
                let reference = format!("t-{}-{}", n / 5, n % 5);
                assert_eq!(books.query(&reference).unwrap().as_ref(), Some(answer), "{reference}");
            }
            assert_eq!(books.query("t-none").unwrap(), None);
            // Repeats get the original answers and book nothing.
            let lines = books.line_count();
            assert_eq!(
                books.instruct_batch(&[forced("t-0-0"), forced("t-9-4")]).unwrap(),
                [answers[0].clone(), answers[49].clone()]
            );
            assert_eq!(books.instruct(&forced("t-3-2")).unwrap(), answers[17]);
            assert_eq!(books.payout(&payout("w-1", "6222020000000001")).unwrap(), payout_answer);
            assert_eq!(books.line_count(), lines);
        };
        check(&books);
        assert_eq!(books.undelivered_credits().unwrap(), vec![credit.clone()]);
        drop(books);
        // After a restart: lines below the runs' watermark are not parsed
        // again, yet an old undelivered credit is still found.
        let books = SandboxBooks::open_with(config(0.0, 0.0), dir.path(), 3).unwrap();
        assert_eq!(books.line_count(), Some(52));
        check(&books);
        assert_eq!(books.undelivered_credits().unwrap(), vec![credit.clone()]);
        books.mark_delivered(&credit.reference).unwrap();
        drop(books);
        let books = SandboxBooks::open_with(config(0.0, 0.0), dir.path(), 3).unwrap();
        assert!(books.undelivered_credits().unwrap().is_empty());
        assert_eq!(books.line_count(), Some(53));
        // New references after all that: booked once, with the next serial.
        assert_eq!(books.instruct(&forced("t-new")).unwrap(), Ok("SB000000000054".into()));
    }

    #[test]
    fn the_reference_index_merges_tier_after_tier() {
        let dir = tempfile::tempdir().unwrap();
        // One answer in memory: every call writes a run of one.
        let books = SandboxBooks::open_with(config(0.0, 0.0), dir.path(), 1).unwrap();
        for n in 0..64 {
            books.instruct(&forced(&format!("t-{n}"))).unwrap().unwrap();
            // Each merge done before the next call: its output must still
            // merge once its tier fills, below the newer runs.
            settled(&books);
        }
        let sizes = books.books().unwrap().references.run_sizes();
        // 64 runs of one merge 4 at a time into runs of 4, 16, 64; a merge
        // waits for the next call, so a tier may hold 4 runs, never more.
        for size in [1, 4, 16] {
            let in_tier = sizes.iter().filter(|&&entries| entries == size).count();
            assert!(in_tier <= 4, "{in_tier} runs of {size} entries: {sizes:?}");
        }
        assert_eq!(sizes.iter().sum::<u64>(), 64);
        assert_eq!(books.query("t-0").unwrap(), Some(Ok("SB000000000001".into())));
        assert_eq!(books.instruct(&forced("t-17")).unwrap(), Ok("SB000000000018".into()), "booked once");
    }

    #[test]
    fn an_index_beyond_its_books_or_damaged_is_built_again() {
        let dir = tempfile::tempdir().unwrap();
        let books = SandboxBooks::open_with(config(0.0, 0.0), dir.path(), 2).unwrap();
        let requests: Vec<_> = (0..6).map(|i| forced(&format!("t-{i}"))).collect();
        let answers = books.instruct_batch(&requests).unwrap();
        let path = books.path().to_path_buf();
        drop(books);
        // Someone cuts the books back to their first two lines: the runs
        // point past the end, so they go, and the two lines are read again.
        let text = std::fs::read_to_string(&path).unwrap();
        let two: usize = text.split_inclusive('\n').take(2).map(str::len).sum();
        std::fs::write(&path, &text[..two]).unwrap();
        let books = SandboxBooks::open_with(config(0.0, 0.0), dir.path(), 2).unwrap();
        assert_eq!(books.line_count(), Some(2));
        assert_eq!(books.query("t-1").unwrap(), Some(answers[1].clone()));
        assert_eq!(books.query("t-2").unwrap(), None, "its line is gone");
        drop(books);
        // A damaged run: the index is built again from the books.
        let books = SandboxBooks::open_with(config(0.0, 0.0), dir.path(), 1).unwrap();
        assert_eq!(books.instruct(&forced("t-9")).unwrap(), Ok("SB000000000003".into()));
        drop(books);
        let runs = dir.path().join("sandbox/SIMBANK/references");
        let run = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap().path();
        std::fs::write(&run, b"not a run").unwrap();
        let books = SandboxBooks::open_with(config(0.0, 0.0), dir.path(), 1).unwrap();
        assert_eq!(books.line_count(), Some(3));
        assert_eq!(books.query("t-1").unwrap(), Some(answers[1].clone()));
        assert_eq!(books.query("t-9").unwrap(), Some(Ok("SB000000000003".into())));
        assert_eq!(books.instruct(&forced("t-9")).unwrap(), Ok("SB000000000003".into()), "booked once");
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
