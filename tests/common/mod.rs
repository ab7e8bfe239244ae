//! Shared harness of the black-box suite: start the real `fundledger`
//! binary on a temporary data directory, talk HTTP to it, kill it.
//!
//! Every test starts its own server (its own temp dir, port 0), so tests
//! can run in parallel and ids only need to be unique within one test.
//! Amounts are handled as integer cents (`cents("12.34") == 1234`), never
//! as floats.
//!
//! `FUNDLEDGER_TEST_BIN=/path/to/fundledger cargo test` runs the suite
//! against another build of the server than the one cargo just built.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub const PLATFORM: &str = "dev-platform-token";
pub const FINANCE: &str = "dev-finance-token";
/// A second finance operator (`zhao.liu`): maker-checker needs two.
pub const FINANCE_2: &str = "dev-finance-2-token";
/// A finance token without an operator name.
pub const FINANCE_NO_OPERATOR: &str = "dev-finance-anon-token";
pub const RISK: &str = "dev-risk-token";
pub const ADMIN: &str = "dev-admin-token";
/// No `Authorization` header at all.
pub const NO_TOKEN: &str = "";

pub const BANK: &str = "SIMBANK";
pub const BANK_SECRET: &str = "dev-simbank-secret";
pub const PUBLIC_ADJUSTMENT_ACCOUNT: &str = "310940100000000";
pub const SETTLEMENT_ACCOUNT_NO: &str = "6222020000000001";

pub const JSON: &str = "application/json";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Journal kinds API.md defines.
pub const JOURNAL_KINDS: &[&str] = &[
    "deposit",
    "adjustment_deposit",
    "transfer_out",
    "transfer_in",
    "freeze",
    "unfreeze",
    "unfreeze_pay_out",
    "unfreeze_pay_in",
    "pay_freeze_out",
    "pay_freeze_in",
    "withdrawal_hold",
    "withdrawal_settled",
    "withdrawal_released",
];

/// The fields of every `POST /v1/transfers` 201 body, per API.md.
pub const TRANSFER_FIELDS: &[&str] = &[
    "id",
    "type",
    "status",
    "lsn",
    "committed_at",
    "payer",
    "payee",
    "amount",
    "order_id",
    "memo",
    "hold",
    "receipt_no",
];

pub const HOLD_FIELDS: &[&str] = &["hold_id", "account_id", "amount", "remaining", "status"];

// ---------------------------------------------------------------------------
// ids, money, time

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A fresh client id, unique in this test process: `prefix-N`.
pub fn uid(prefix: &str) -> String {
    format!("{prefix}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A fresh credential number (never ends in FAIL).
pub fn credential_no() -> String {
    format!("9131{:014}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Parses a response amount, which must have exactly 2 fractional digits,
/// into cents. Panics (naming the value) on anything else.
pub fn cents(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("amount is not a string: {v}"));
    parse_cents(s).unwrap_or_else(|| panic!("amount {s:?} is not of the form -?D+.DD"))
}

pub fn parse_cents(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = digits.split_once('.')?;
    if int.is_empty()
        || frac.len() != 2
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (int.len() > 1 && int.starts_with('0'))
    {
        return None;
    }
    let value = int.parse::<i64>().ok()? * 100 + frac.parse::<i64>().ok()?;
    Some(if negative { -value } else { value })
}

/// Cents as a request amount string ("12.34", "12.30", "12.00").
pub fn amount(cents: i64) -> String {
    assert!(cents >= 0);
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Now as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let secs = now.as_secs() as i64;
    let millis = now.subsec_millis();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Today's UTC date, `YYYY-MM-DD`.
pub fn today() -> String {
    now_rfc3339()[..10].to_string()
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2026-11-24T08:39:01.123Z`: RFC 3339 UTC with milliseconds.
pub fn is_rfc3339_millis(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    if b.len() != 24 {
        return false;
    }
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
    digits.iter().all(|&i| b[i].is_ascii_digit())
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
}

/// Lowercase hex HMAC-SHA256 of `body` under `key`.
pub fn sign(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Percent-encodes a query value (cursors are opaque).
pub fn qs(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Asserts that `v` is an object with exactly these keys.
pub fn assert_keys(v: &Value, keys: &[&str], what: &str) {
    let obj = v.as_object().unwrap_or_else(|| panic!("{what}: not an object: {v}"));
    let mut got: Vec<&str> = obj.keys().map(|k| k.as_str()).collect();
    got.sort_unstable();
    let mut want = keys.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "{what}: keys differ; body: {v}");
}

/// Asserts the error shape `{"error": {"code", "message"}}` with this code.
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str, what: &str) {
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (want_status, Some(want_code)),
        "{what}: expected {want_status} {want_code}, got {status} {}",
        short(body)
    );
    assert_error_shape(body, what);
}

/// A value's JSON, cut to 1000 characters for messages.
pub fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= 1000 {
        text
    } else {
        format!("{}... ({} bytes)", text.chars().take(1000).collect::<String>(), text.len())
    }
}

pub fn assert_error_shape(body: &Value, what: &str) {
    assert!(
        body.as_object().map(|o| o.len()) == Some(1)
            && body["error"]["code"].is_string()
            && body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: error body is not {{\"error\":{{\"code\",\"message\"}}}}: {body}"
    );
}

// ---------------------------------------------------------------------------
// config

/// What a test may change in the config the harness writes.
#[derive(Clone, Debug)]
pub struct Options {
    pub max_body_bytes: Option<u64>,
    /// `limits.max_statement_bytes` (uploaded reconciliation statements).
    pub max_statement_bytes: Option<u64>,
    /// `limits.bank_queue_instructions` (instructions waiting in memory).
    pub bank_queue_instructions: Option<u64>,
    pub sign_delay_ms: u64,
    pub segment_bytes: u64,
    /// `wal.checkpoint_every_records` (API.md's default unless a test lowers it).
    pub checkpoint_every_records: u64,
    /// `wal.checkpoint_every_s` (0: by records only).
    pub checkpoint_every_s: u64,
    /// `wal.retention_days` (0: keep every segment).
    pub retention_days: u64,
    /// `history.memory_records`: small, so that every test reads most of
    /// its history from the archive on disk, as a long-running server does.
    pub history_memory_records: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_body_bytes: None,
            max_statement_bytes: None,
            bank_queue_instructions: None,
            sign_delay_ms: 20,
            segment_bytes: 1_048_576,
            checkpoint_every_records: 1_000_000,
            checkpoint_every_s: 0,
            retention_days: 0,
            history_memory_records: 64,
        }
    }
}

fn config_toml(data_dir: &Path, options: &Options) -> String {
    let mut limits = String::new();
    let limited = [options.max_body_bytes, options.max_statement_bytes, options.bank_queue_instructions];
    if limited.iter().any(Option::is_some) {
        limits.push_str("\n[limits]\n");
    }
    if let Some(max) = options.bank_queue_instructions {
        limits.push_str(&format!("bank_queue_instructions = {max}\n"));
    }
    if let Some(max) = options.max_body_bytes {
        limits.push_str(&format!("max_body_bytes = {max}\n"));
    }
    if let Some(max) = options.max_statement_bytes {
        limits.push_str(&format!("max_statement_bytes = {max}\n"));
    }
    format!(
        r#"listen = "127.0.0.1:0"
data_dir = "{data_dir}"
{limits}
[wal]
segment_bytes = {segment_bytes}
checkpoint_every_records = {checkpoint_every_records}
checkpoint_every_s = {checkpoint_every_s}
retention_days = {retention_days}

[history]
memory_records = {history_memory_records}

[[tokens]]
token = "dev-platform-token"
roles = ["platform"]

[[tokens]]
token = "dev-finance-token"
roles = ["finance"]
operator = "li.si"

[[tokens]]
token = "dev-finance-2-token"
roles = ["finance"]
operator = "zhao.liu"

[[tokens]]
token = "dev-finance-anon-token"
roles = ["finance"]

[[tokens]]
token = "dev-risk-token"
roles = ["risk"]
operator = "wang.wu"

[[tokens]]
token = "dev-admin-token"
roles = ["admin"]

[[banks]]
code = "SIMBANK"
kind = "sandbox"
notify_secret = "dev-simbank-secret"
public_adjustment_account = "310940100000000"
sign_delay_ms = {sign_delay_ms}

[receipts]
key = "dev-receipt-key"
"#,
        data_dir = data_dir.display(),
        segment_bytes = options.segment_bytes,
        checkpoint_every_records = options.checkpoint_every_records,
        checkpoint_every_s = options.checkpoint_every_s,
        retention_days = options.retention_days,
        history_memory_records = options.history_memory_records,
        sign_delay_ms = options.sign_delay_ms,
    )
}

// ---------------------------------------------------------------------------
// responses

/// One HTTP answer. `body` is the parsed JSON, or `Value::String(text)`
/// when the body is not JSON.
#[derive(Clone, Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub headers: Vec<(String, String)>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn into_resp(response: ureq::Response) -> Result<Resp, String> {
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_string())))
        .collect();
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(64 << 20)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading the body of a {status} answer: {e}"))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(text.clone()));
    Ok(Resp { status, body, text, headers })
}

/// An HTTP client bound to one server address. Cheap to clone; share one
/// per thread.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    agent: ureq::Agent,
    /// No connection reuse: for requests whose body the server may refuse
    /// unread (401/403/413/415), after which it may drop the connection.
    fresh: ureq::Agent,
}

impl Client {
    pub fn new(base: String) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT)
            .max_idle_connections(64)
            .max_idle_connections_per_host(64)
            .redirects(0)
            .build();
        let fresh = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT)
            .max_idle_connections(0)
            .redirects(0)
            .build();
        Client { base, agent, fresh }
    }

    /// Sends one request; `Err` only when no HTTP answer came back
    /// (connection refused, reset, timed out).
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Resp, String> {
        self.send(&self.agent, method, path, headers, body)
    }

    /// Like `try_request`, on a new connection that is closed afterwards.
    pub fn try_request_fresh(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Resp, String> {
        self.send(&self.fresh, method, path, headers, body)
    }

    fn send(
        &self,
        agent: &ureq::Agent,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Resp, String> {
        let mut request = agent.request(method, &format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let result = match body {
            Some(bytes) => request.send_bytes(bytes),
            None => request.call(),
        };
        match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => into_resp(response),
            Err(ureq::Error::Transport(t)) => Err(format!("{method} {path}: transport error: {t}")),
        }
    }

    pub fn try_post(&self, path: &str, token: &str, body: &Value) -> Result<(u16, Value), String> {
        let bytes = serde_json::to_vec(body).unwrap();
        let mut headers = vec![("Content-Type", JSON)];
        let auth = format!("Bearer {token}");
        if !token.is_empty() {
            headers.push(("Authorization", &auth));
        }
        self.try_request("POST", path, &headers, Some(&bytes)).map(|r| (r.status, r.body))
    }

    /// Sends a bank notification signed with the right secret.
    pub fn try_notify(&self, notification: &Value) -> Result<(u16, Value), String> {
        let body = serde_json::to_vec(notification).unwrap();
        let signature = sign(BANK_SECRET, &body);
        self.try_request(
            "POST",
            &format!("/v1/banks/{BANK}/notifications"),
            &[("Content-Type", JSON), ("X-Signature", &signature)],
            Some(&body),
        )
        .map(|r| (r.status, r.body))
    }

    pub fn try_get(&self, path: &str, token: &str) -> Result<(u16, Value), String> {
        let auth = format!("Bearer {token}");
        let headers: Vec<(&str, &str)> = if token.is_empty() { vec![] } else { vec![("Authorization", &auth)] };
        self.try_request("GET", path, &headers, None).map(|r| (r.status, r.body))
    }
}

// ---------------------------------------------------------------------------
// the server

pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub client: Client,
    /// Holds the config, the data dir and the server's output files.
    dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
    options: Options,
    starts: u32,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Server {
        let dir = tempfile::Builder::new().prefix("fundledger-test-").tempdir().expect("create temp dir");
        let data_dir = dir.path().join("data");
        fs::create_dir_all(&data_dir).unwrap();
        let config_path = dir.path().join("fundledger.toml");
        fs::write(&config_path, config_toml(&data_dir, &options)).unwrap();
        let mut server = Server {
            child: None,
            port: 0,
            client: Client::new(String::new()),
            stdout_path: PathBuf::new(),
            stderr_path: PathBuf::new(),
            dir,
            config_path,
            data_dir,
            options,
            starts: 0,
        };
        server.spawn();
        server
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "spawn while a server is running");
        self.starts += 1;
        self.stdout_path = self.dir.path().join(format!("stdout.{}.log", self.starts));
        self.stderr_path = self.dir.path().join(format!("stderr.{}.log", self.starts));
        let stdout = fs::File::create(&self.stdout_path).unwrap();
        let stderr = fs::File::create(&self.stderr_path).unwrap();
        // FUNDLEDGER_TEST_BIN runs the suite against another build.
        let binary =
            std::env::var("FUNDLEDGER_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_fundledger").to_string());
        let child = Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env_remove("FUNDLEDGER_LISTEN")
            .env_remove("FUNDLEDGER_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn the fundledger binary");
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        self.port = self.wait_for_listen_line(deadline);
        self.client = Client::new(format!("http://127.0.0.1:{}", self.port));
        self.wait_ready(deadline);
    }

    fn wait_for_listen_line(&mut self, deadline: Instant) -> u16 {
        loop {
            let out = fs::read_to_string(&self.stdout_path).unwrap_or_default();
            for line in out.lines() {
                if let Some(rest) = line.split("fundledger listening on ").nth(1) {
                    let addr = rest.trim();
                    if let Some(port) = addr.rsplit_once(':').and_then(|(_, p)| p.trim().parse::<u16>().ok()) {
                        return port;
                    }
                    self.fail_start(&format!("cannot parse the listen line {line:?}"));
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                self.fail_start(&format!("the server exited ({status}) before printing `fundledger listening on ...`"));
            }
            if Instant::now() > deadline {
                self.fail_start("no `fundledger listening on 127.0.0.1:PORT` line on stdout");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_ready(&mut self, deadline: Instant) {
        loop {
            let last = match self.client.try_get("/readyz", NO_TOKEN) {
                Ok((200, _)) => {
                    // Ready means recovery is done: the ledger answers now.
                    match self.client.try_get("/v1/accounts?limit=1", FINANCE) {
                        Ok((200, _)) => return,
                        Ok((status, body)) => self.fail_start(&format!(
                            "GET /readyz said 200 (recovery done), but GET /v1/accounts right after got {status} {body}"
                        )),
                        Err(e) => self.fail_start(&format!("GET /readyz said 200, then GET /v1/accounts: {e}")),
                    }
                }
                Ok((status, body)) => format!("{status} {body}"),
                Err(e) => e,
            };
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                self.fail_start(&format!("the server exited ({status}) before /readyz said 200"));
            }
            if Instant::now() > deadline {
                self.fail_start(&format!("GET /readyz not 200 within 30 s; last: {last}"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn fail_start(&mut self, why: &str) -> ! {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "fundledger did not start: {why}\n--- stdout tail ---\n{}\n--- stderr tail ---\n{}",
            tail(&self.stdout_path, 3000),
            tail(&self.stderr_path, 6000)
        );
    }

    /// What the server printed on stdout since its latest start.
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// The last bytes of the current run's stderr (its log).
    pub fn stderr_tail(&self) -> String {
        tail(&self.stderr_path, 4000)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("server not running").id() as i32
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe {
                libc::kill(child.id() as i32, libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }

    /// SIGTERM; asserts a clean exit 0 within 30 s.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("server not running");
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "after SIGTERM the server exited with {status}, not 0\n--- stderr tail ---\n{}",
                    self.stderr_tail()
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server did not exit within 30 s of SIGTERM\n--- stderr tail ---\n{}", self.stderr_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same config and data dir (new port).
    /// Kills a still-running server first.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    // -- HTTP ----------------------------------------------------------------

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.client.base)
    }

    /// Any request; panics only when no HTTP answer came back. Requests
    /// with a body go on a fresh connection: the server may refuse a body
    /// unread and drop the connection (bad_inputs.rs checks that case on
    /// its own), which must not make an unrelated later request fail.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Resp {
        let result = match body {
            Some(_) => self.client.try_request_fresh(method, path, headers, body),
            None => self.client.try_request(method, path, headers, body),
        };
        result.unwrap_or_else(|e| panic!("{e} (no HTTP answer)\n--- server stderr tail ---\n{}", self.stderr_tail()))
    }

    pub fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let auth = format!("Bearer {token}");
        let headers: Vec<(&str, &str)> = if token.is_empty() { vec![] } else { vec![("Authorization", &auth)] };
        let r = self.request("GET", path, &headers, None);
        (r.status, r.body)
    }

    pub fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, token, &serde_json::to_vec(body).unwrap(), Some(JSON))
    }

    /// POST raw bytes with the given content type (`None`: no header).
    pub fn post_raw(&self, path: &str, token: &str, body: &[u8], content_type: Option<&str>) -> (u16, Value) {
        let auth = format!("Bearer {token}");
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if !token.is_empty() {
            headers.push(("Authorization", &auth));
        }
        if let Some(ct) = content_type {
            headers.push(("Content-Type", ct));
        }
        let r = self.request("POST", path, &headers, Some(body));
        (r.status, r.body)
    }

    /// Sends raw bytes on a fresh TCP connection, ignoring write errors
    /// (a server may answer early and stop reading), and reads the answer
    /// until the server closes or `Connection: close`-style EOF. Returns
    /// (status, JSON body) or an error when no HTTP answer could be read.
    pub fn raw_http(&self, request: &[u8]) -> Result<(u16, Value), String> {
        use std::io::Write;
        use std::net::TcpStream;
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = stream.write_all(request);
        let _ = stream.flush();
        let mut answer = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if let Some(parsed) = parse_http_answer(&answer) {
                        return Ok(parsed);
                    }
                }
                Err(e) => {
                    if answer.is_empty() {
                        return Err(format!("reading the answer: {e}"));
                    }
                    break;
                }
            }
        }
        parse_http_answer(&answer)
            .ok_or_else(|| format!("incomplete HTTP answer: {:?}", String::from_utf8_lossy(&answer)))
    }

    /// One request on a fresh raw connection, the head and the body in two
    /// writes `gap_ms` apart (as many clients send them), then a check that
    /// the connection is still usable: unless the answer said
    /// `Connection: close`, a `GET /healthz` on it must answer 200.
    pub fn raw_exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        gap_ms: u64,
    ) -> Result<Exchange, String> {
        use std::io::Write;
        use std::net::TcpStream;
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", self.port);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).map_err(|e| format!("writing the head: {e}"))?;
        if let Some(body) = body {
            std::thread::sleep(Duration::from_millis(gap_ms));
            // The server may have answered already and stopped reading.
            let _ = stream.write_all(body);
        }
        let (status, answer_head, body_bytes) = read_http_answer(&mut stream)?;
        let text = String::from_utf8_lossy(&body_bytes).into_owned();
        let json = serde_json::from_slice(&body_bytes).unwrap_or_else(|_| Value::String(text.clone()));
        let closes =
            answer_head.to_ascii_lowercase().lines().any(|l| l.starts_with("connection:") && l.contains("close"));
        let reusable = if closes {
            Ok(())
        } else {
            let probe = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", self.port);
            match stream
                .write_all(probe.as_bytes())
                .map_err(|e| e.to_string())
                .and_then(|_| read_http_answer(&mut stream))
            {
                Ok((200, _, _)) => Ok(()),
                Ok((other, _, b)) => {
                    Err(format!("the next request on the connection got {other}: {}", String::from_utf8_lossy(&b)))
                }
                Err(e) => Err(format!(
                    "the server closed the keep-alive connection after answering, without `Connection: close` ({e})"
                )),
            }
        };
        Ok(Exchange { status, head: answer_head, body: json, text, reusable })
    }

    /// A POST with a Content-Length body, sent by `raw_http`.
    pub fn raw_post(&self, path: &str, token: &str, content_type: &str, body: &[u8]) -> Result<(u16, Value), String> {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        if !token.is_empty() {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        self.raw_http(&bytes)
    }

    /// GET that must answer 200.
    pub fn get_ok(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.get(path, token);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    // -- domain helpers --------------------------------------------------------

    /// Files an application for `name` (settlement account of the same name).
    pub fn apply(&self, name: &str, credential_no: &str) -> (u16, Value) {
        self.post(
            "/v1/applications",
            PLATFORM,
            &json!({
                "name": name,
                "credential_no": credential_no,
                "bank": BANK,
                "settlement_account": {
                    "bank_name": "某银行上海分行",
                    "account_no": SETTLEMENT_ACCOUNT_NO,
                    "account_name": name,
                }
            }),
        )
    }

    /// Applies and approves; returns the new account id (still `signing`).
    pub fn apply_and_approve(&self, name: &str, credential_no: &str) -> String {
        let (status, app) = self.apply(name, credential_no);
        assert_eq!(status, 201, "POST /v1/applications: {app}");
        let app_id = app["application_id"].as_str().expect("application_id").to_string();
        let (status, approved) = self.post(&format!("/v1/applications/{app_id}/approve"), RISK, &json!({}));
        assert_eq!(status, 200, "approve {app_id}: {approved}");
        assert_eq!(approved["status"], "approved", "{approved}");
        approved["account_id"].as_str().expect("account_id").to_string()
    }

    /// Polls the account until it leaves `signing`; returns its body.
    pub fn wait_signed(&self, account_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let account = self.get_ok(&format!("/v1/accounts/{account_id}"), PLATFORM);
            if account["status"] != "signing" {
                return account;
            }
            assert!(Instant::now() < deadline, "{account_id} still signing after 30 s: {account}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Opens an active account; returns (account_id, sub_account_no).
    pub fn open_account(&self, name: &str) -> (String, String) {
        let account_id = self.apply_and_approve(name, &credential_no());
        let account = self.wait_signed(&account_id);
        assert_eq!(account["status"], "active", "{account}");
        let sub =
            account["sub_account_no"].as_str().unwrap_or_else(|| panic!("no sub_account_no: {account}")).to_string();
        assert_eq!(sub, sandbox_sub_account(&account_id), "{account}");
        (account_id, sub)
    }

    /// Opens an account whose bank signing fails (`sign_failed`).
    pub fn open_sign_failed_account(&self, name: &str) -> String {
        let credential = format!("{}FAIL", credential_no());
        let account_id = self.apply_and_approve(name, &credential);
        let account = self.wait_signed(&account_id);
        assert_eq!(account["status"], "sign_failed", "{account}");
        account_id
    }

    /// Sends a bank notification signed with the right secret.
    pub fn notify(&self, notification: &Value) -> (u16, Value) {
        let body = serde_json::to_vec(notification).unwrap();
        let signature = sign(BANK_SECRET, &body);
        let r = self.request(
            "POST",
            &format!("/v1/banks/{BANK}/notifications"),
            &[("Content-Type", JSON), ("X-Signature", &signature)],
            Some(&body),
        );
        (r.status, r.body)
    }

    /// Credits `amount` to the customer's sub-account by a signed bank
    /// notification; asserts `credited`; returns its lsn.
    pub fn deposit(&self, sub_account_no: &str, name: &str, amount: &str) -> u64 {
        let (status, body) = self.notify(&notification(sub_account_no, name, amount));
        assert_eq!(status, 200, "notification: {body}");
        assert_eq!(body["result"], "credited", "notification: {body}");
        body["lsn"].as_u64().unwrap_or_else(|| panic!("no lsn: {body}"))
    }

    pub fn transfer(&self, body: &Value) -> (u16, Value) {
        self.post("/v1/transfers", PLATFORM, body)
    }

    /// A transfer that must answer 201; returns its body.
    pub fn transfer_ok(&self, body: &Value) -> Value {
        let (status, answer) = self.transfer(body);
        assert_eq!(status, 201, "POST /v1/transfers {body}: {answer}");
        answer
    }

    pub fn batch(&self, items: &[Value]) -> (u16, Value) {
        self.post("/v1/transfers/batch", PLATFORM, &json!({ "transfers": items }))
    }

    pub fn account(&self, account_id: &str) -> Value {
        self.get_ok(&format!("/v1/accounts/{account_id}"), PLATFORM)
    }

    pub fn balance(&self, account_id: &str) -> Balance {
        Balance::of(&self.account(account_id))
    }

    /// Every item of a paginated list, following `next_cursor`.
    /// `path` may already hold a query string.
    pub fn list_all(&self, path: &str, token: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let page_path = match &cursor {
                None => format!("{path}{sep}limit=1000"),
                Some(c) => format!("{path}{sep}limit=1000&cursor={}", qs(c)),
            };
            let page = self.get_ok(&page_path, token);
            let page_items =
                page["items"].as_array().unwrap_or_else(|| panic!("GET {page_path}: no items array: {page}"));
            items.extend(page_items.iter().cloned());
            match &page["next_cursor"] {
                Value::Null => return items,
                Value::String(c) => {
                    assert!(!page_items.is_empty(), "GET {page_path}: an empty page with a next_cursor");
                    cursor = Some(c.clone())
                }
                other => panic!("GET {page_path}: next_cursor is {other}"),
            }
        }
        panic!("GET {path}: more than 10000 pages");
    }

    pub fn journal(&self, account_id: &str) -> Vec<Value> {
        self.list_all(&format!("/v1/accounts/{account_id}/journal"), PLATFORM)
    }

    /// Checks one account against its journal and returns its balance:
    /// total = available + frozen, nothing negative, every entry's
    /// after-balances are the running sums of the deltas, the sums equal
    /// the balance, lsns strictly increase, `last_lsn` is the last entry's.
    pub fn assert_consistent(&self, account_id: &str) -> Balance {
        let account = self.account(account_id);
        let balance = Balance::of(&account);
        let journal = self.journal(account_id);
        check_journal(account_id, &account, &journal);
        balance
    }

    /// Checkpoint files (`checkpoint-<lsn>.ckpt`) in `DATA_DIR/wal/`, oldest
    /// first: their lsns and paths.
    pub fn checkpoints(&self) -> Vec<(u64, PathBuf)> {
        let mut found: Vec<(u64, PathBuf)> = fs::read_dir(self.data_dir.join("wal"))
            .map(|entries| {
                entries
                    .filter_map(|entry| entry.ok())
                    .filter_map(|entry| {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        let lsn = name.strip_prefix("checkpoint-")?.strip_suffix(".ckpt")?.parse().ok()?;
                        Some((lsn, entry.path()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }

    /// Waits (up to a minute) until a checkpoint at an lsn of at least
    /// `at_least` exists; returns its lsn.
    pub fn wait_for_checkpoint(&self, at_least: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((lsn, _)) = self.checkpoints().into_iter().rev().find(|(lsn, _)| *lsn >= at_least) {
                return lsn;
            }
            assert!(Instant::now() < deadline, "no checkpoint at lsn {at_least} or later: {:?}", self.wal_segments());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The checkpoint lsn the latest start-up says it loaded (0: none).
    pub fn loaded_checkpoint(&self) -> u64 {
        let stdout = self.stdout();
        let line = stdout
            .lines()
            .find_map(|line| line.strip_prefix("fundledger recovered: checkpoint lsn "))
            .unwrap_or_else(|| panic!("no recovery line on stdout: {stdout}"));
        line.split(',').next().and_then(|lsn| lsn.parse().ok()).unwrap_or_else(|| panic!("bad recovery line {line}"))
    }

    /// Runs `fundledger wal verify` on the data dir (the server stopped):
    /// exit success and the whole report.
    pub fn wal_verify(&self) -> (bool, String) {
        let binary =
            std::env::var("FUNDLEDGER_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_fundledger").to_string());
        let output = Command::new(binary)
            .args(["wal", "verify", "--data-dir"])
            .arg(&self.data_dir)
            .output()
            .expect("run wal verify");
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    }

    /// Segment files (`*.wal`) in `DATA_DIR/wal/`: not checkpoints, temp
    /// files or offset sidecars (`*.idx`).
    pub fn wal_segments(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.data_dir.join("wal"))
            .map(|dir| {
                dir.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".wal"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!("--- fundledger stderr tail ({}) ---\n{}", self.stderr_path.display(), self.stderr_tail());
        }
        self.kill9();
    }
}

/// What `raw_exchange` saw.
#[derive(Debug)]
pub struct Exchange {
    pub status: u16,
    pub head: String,
    pub body: Value,
    pub text: String,
    /// Whether the connection still served a request afterwards.
    pub reusable: Result<(), String>,
}

/// Reads exactly one HTTP/1.1 answer (Content-Length or chunked body)
/// from the stream; returns (status, head, body).
pub fn read_http_answer(stream: &mut std::net::TcpStream) -> Result<(u16, String, Vec<u8>), String> {
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    // The head, byte by byte (no read-ahead into a following answer).
    while !answer.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) => return Err(format!("EOF after {} bytes of the answer head", answer.len())),
            Ok(_) => answer.push(byte[0]),
            Err(e) => return Err(format!("reading the answer head: {e}")),
        }
        if answer.len() > 64 * 1024 {
            return Err("answer head over 64 KiB".into());
        }
    }
    let head = String::from_utf8_lossy(&answer).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {head:?}"))?;
    let lower = head.to_ascii_lowercase();
    let mut body = Vec::new();
    if let Some(len) =
        lower.lines().find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()))
    {
        body.resize(len, 0);
        stream.read_exact(&mut body).map_err(|e| format!("reading a {len}-byte body: {e}"))?;
    } else if lower.contains("transfer-encoding: chunked") {
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                stream.read_exact(&mut byte).map_err(|e| format!("reading a chunk size: {e}"))?;
                line.push(byte[0]);
            }
            let size = usize::from_str_radix(String::from_utf8_lossy(&line).trim(), 16)
                .map_err(|e| format!("bad chunk size {line:?}: {e}"))?;
            let mut chunk = vec![0u8; size + 2];
            stream.read_exact(&mut chunk).map_err(|e| format!("reading a chunk: {e}"))?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if status != 204 && status != 304 {
        stream.read_to_end(&mut body).map_err(|e| format!("reading a body to EOF: {e}"))?;
    }
    Ok((status, head, body))
}

/// Parses a complete HTTP/1.1 answer with a Content-Length (or chunked)
/// body; None while incomplete.
pub fn parse_http_answer(bytes: &[u8]) -> Option<(u16, Value)> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let body_start = head_end + 4;
    let lower = head.to_ascii_lowercase();
    let body: Vec<u8> = if let Some(len) =
        lower.lines().find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().ok()))
    {
        let len = len?;
        if bytes.len() < body_start + len {
            return None;
        }
        bytes[body_start..body_start + len].to_vec()
    } else if lower.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut at = body_start;
        loop {
            let line_end = at + bytes[at..].windows(2).position(|w| w == b"\r\n")?;
            let size = usize::from_str_radix(String::from_utf8_lossy(&bytes[at..line_end]).trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                break;
            }
            if bytes.len() < at + size + 2 {
                return None;
            }
            out.extend_from_slice(&bytes[at..at + size]);
            at += size + 2;
        }
        out
    } else {
        bytes[body_start..].to_vec()
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    Some((status, serde_json::from_slice(&body).unwrap_or(Value::String(text))))
}

fn tail(path: &Path, max: usize) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// The sandbox sub-account of a fund account: `3109401` + 8 digits.
pub fn sandbox_sub_account(account_id: &str) -> String {
    let number: u64 = account_id[1..].parse().expect("account id digits");
    format!("3109401{number:08}")
}

/// A credit notification body with fresh notification id and bank serial.
pub fn notification(to_account_no: &str, payer_name: &str, amount: &str) -> Value {
    json!({
        "notification_id": uid("N"),
        "kind": "credit",
        "bank_serial": uid("B"),
        "to_account_no": to_account_no,
        "amount": amount,
        "payer_name": payer_name,
        "payer_account_no": SETTLEMENT_ACCOUNT_NO,
        "booked_at": now_rfc3339(),
    })
}

// ---------------------------------------------------------------------------
// balances and journals

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Balance {
    pub total: i64,
    pub available: i64,
    pub frozen: i64,
}

impl Balance {
    /// From an account body; asserts the balance identity and signs.
    pub fn of(account: &Value) -> Balance {
        let b = &account["balance"];
        let balance =
            Balance { total: cents(&b["total"]), available: cents(&b["available"]), frozen: cents(&b["frozen"]) };
        assert_eq!(balance.total, balance.available + balance.frozen, "total != available + frozen: {account}");
        assert!(balance.available >= 0 && balance.frozen >= 0, "negative balance: {account}");
        balance
    }
}

pub fn check_journal(account_id: &str, account: &Value, journal: &[Value]) {
    let balance = Balance::of(account);
    let mut available = 0i64;
    let mut frozen = 0i64;
    let mut last_lsn: Option<u64> = None;
    for entry in journal {
        let lsn = entry["lsn"].as_u64().unwrap_or_else(|| panic!("{account_id}: journal entry without lsn: {entry}"));
        if let Some(prev) = last_lsn {
            assert!(lsn > prev, "{account_id}: journal lsns not increasing at {entry}");
        }
        last_lsn = Some(lsn);
        let kind = entry["kind"].as_str().unwrap_or("");
        assert!(JOURNAL_KINDS.contains(&kind), "{account_id}: unknown journal kind: {entry}");
        available += cents(&entry["available_delta"]);
        frozen += cents(&entry["frozen_delta"]);
        assert_eq!(
            (cents(&entry["available_after"]), cents(&entry["frozen_after"]), cents(&entry["total_after"])),
            (available, frozen, available + frozen),
            "{account_id}: after-balances are not the running sums of the deltas at {entry}"
        );
        assert!(available >= 0 && frozen >= 0, "{account_id}: a journal entry leaves a negative balance: {entry}");
    }
    assert_eq!(
        (available, frozen),
        (balance.available, balance.frozen),
        "{account_id}: journal sums differ from the balance {account}"
    );
    // (null before the first entry: checked once, in walkthrough.rs)
    if let Some(lsn) = last_lsn {
        assert_eq!(
            account["last_lsn"].as_u64(),
            Some(lsn),
            "{account_id}: last_lsn is not the last journal entry's lsn: {account}"
        );
    }
}

// ---------------------------------------------------------------------------
// a model of committed transfers, for the load and crash tests

/// Expected (available, frozen) per account, built from deposits and from
/// committed transfer records (201 bodies or `GET /v1/transfers/{id}`).
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub balances: BTreeMap<String, (i64, i64)>,
    pub deposits: i64,
}

impl Model {
    pub fn deposit(&mut self, account: &str, cents: i64) {
        self.balances.entry(account.to_string()).or_default().0 += cents;
        self.deposits += cents;
    }

    /// Applies the effect of one committed transfer record.
    pub fn apply(&mut self, record: &Value) {
        let a = cents(&record["amount"]);
        let payer = record["payer"].as_str().expect("payer").to_string();
        let payee = record["payee"].as_str().map(|s| s.to_string());
        let ty = record["type"].as_str().expect("type");
        let mut change = |account: &str, available: i64, frozen: i64| {
            let entry = self.balances.entry(account.to_string()).or_default();
            entry.0 += available;
            entry.1 += frozen;
        };
        match ty {
            "transfer" => {
                change(&payer, -a, 0);
                change(payee.as_deref().expect("payee"), a, 0);
            }
            "freeze" => change(&payer, -a, a),
            "unfreeze" => change(&payer, a, -a),
            "unfreeze_pay" => {
                change(&payer, 0, -a);
                change(payee.as_deref().expect("payee"), a, 0);
            }
            "pay_freeze" => {
                change(&payer, -a, 0);
                change(payee.as_deref().expect("payee"), 0, a);
            }
            other => panic!("unknown transfer type {other}: {record}"),
        }
    }
}

/// Deterministic xorshift generator (no floats, no external state).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Holds opened by committed transfers: (hold_id, account_id).
pub type Holds = Arc<Mutex<Vec<(String, String)>>>;

/// A random transfer body of any of the five types among `accounts`.
/// Hold-using types pick a known hold (it may be closed by now: a 422).
pub fn random_transfer(rng: &mut Rng, accounts: &[String], holds: &Holds, prefix: &str) -> Value {
    let id = uid(prefix);
    let payer = rng.pick(accounts).clone();
    let mut payee = rng.pick(accounts).clone();
    if payee == payer {
        payee = accounts[(accounts.iter().position(|a| *a == payer).unwrap() + 1) % accounts.len()].clone();
    }
    // Mostly small amounts; now and then one too large for anyone.
    let amount_cents =
        if rng.below(20) == 0 { 10_000_000 + rng.below(1000) as i64 } else { 1 + rng.below(5000) as i64 };
    let amt = amount(amount_cents);
    let hold = {
        let holds = holds.lock().unwrap();
        if holds.is_empty() {
            None
        } else {
            Some(holds[rng.below(holds.len() as u64) as usize].clone())
        }
    };
    let mut choice = rng.below(5);
    if hold.is_none() && (choice == 2 || choice == 3) {
        choice = 0;
    }
    match choice {
        0 => json!({"id": id, "type": "transfer", "payer": payer, "payee": payee, "amount": amt}),
        1 => json!({"id": id, "type": "freeze", "payer": payer, "amount": amt, "order_id": uid("O")}),
        2 => {
            let (hold_id, _) = hold.unwrap();
            if rng.below(2) == 0 {
                json!({"id": id, "type": "unfreeze", "hold_id": hold_id})
            } else {
                json!({"id": id, "type": "unfreeze", "hold_id": hold_id, "amount": amount(1 + rng.below(1500) as i64)})
            }
        }
        3 => {
            let (hold_id, hold_account) = hold.unwrap();
            let mut to = rng.pick(accounts).clone();
            if to == hold_account {
                to = accounts[(accounts.iter().position(|a| *a == to).unwrap() + 1) % accounts.len()].clone();
            }
            if rng.below(2) == 0 {
                json!({"id": id, "type": "unfreeze_pay", "hold_id": hold_id, "payee": to})
            } else {
                json!({"id": id, "type": "unfreeze_pay", "hold_id": hold_id, "payee": to, "amount": amount(1 + rng.below(1500) as i64)})
            }
        }
        _ => json!({"id": id, "type": "pay_freeze", "payer": payer, "payee": payee, "amount": amt, "memo": "货款"}),
    }
}

/// Remembers the hold a committed freeze / pay_freeze opened.
pub fn note_hold(holds: &Holds, committed: &Value) {
    let ty = committed["type"].as_str().unwrap_or("");
    if ty == "freeze" || ty == "pay_freeze" {
        let hold = &committed["hold"];
        if let (Some(id), Some(account)) = (hold["hold_id"].as_str(), hold["account_id"].as_str()) {
            holds.lock().unwrap().push((id.to_string(), account.to_string()));
        }
    }
}

/// The business refusals a well-formed random transfer may get.
pub fn is_expected_refusal(status: u16, body: &Value) -> bool {
    status == 422
        && matches!(
            body["error"]["code"].as_str(),
            Some("INSUFFICIENT_FUNDS" | "HOLD_CLOSED" | "HOLD_EXCEEDED" | "SAME_ACCOUNT")
        )
}

/// Checks a committed record against the request that made it.
pub fn assert_matches_request(request: &Value, committed: &Value) {
    assert_eq!(committed["id"], request["id"], "{committed}");
    assert_eq!(committed["type"], request["type"], "{committed}");
    assert_eq!(committed["status"], "committed", "{committed}");
    for field in ["payer", "payee"] {
        if let Some(v) = request.get(field) {
            assert_eq!(&committed[field], v, "{field}: {committed}");
        }
    }
    if let Some(a) = request.get("amount") {
        assert_eq!(cents(&committed["amount"]), parse_request_amount(a.as_str().unwrap()), "{committed}");
    }
}

/// Parses a (valid) request amount like "12", "12.3", "12.34" into cents.
pub fn parse_request_amount(s: &str) -> i64 {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac = format!("{frac:0<2}");
    int.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap()
}

/// Fetches every account and checks the model's expected balances, the
/// journals, and that money is conserved (sum of totals = deposits).
pub fn assert_model(server: &Server, model: &Model) {
    let mut sum = 0;
    let mut mismatches = Vec::new();
    for (account_id, (available, frozen)) in &model.balances {
        let balance = server.assert_consistent(account_id);
        sum += balance.total;
        if (balance.available, balance.frozen) != (*available, *frozen) {
            mismatches.push(format!(
                "{account_id}: expected available {} frozen {}, got {balance:?}",
                amount_signed(*available),
                amount_signed(*frozen)
            ));
        }
    }
    assert!(mismatches.is_empty(), "balances differ from the committed movements:\n{}", mismatches.join("\n"));
    assert_eq!(sum, model.deposits, "money not conserved: totals {sum} != deposits {}", model.deposits);
}

pub fn amount_signed(c: i64) -> String {
    if c < 0 {
        format!("-{}", amount(-c))
    } else {
        amount(c)
    }
}

/// A map id -> value that many threads fill.
pub type Shared<T> = Arc<Mutex<HashMap<String, T>>>;

/// What load threads share: where they send, what they saw.
#[derive(Clone)]
pub struct Load {
    pub client: Client,
    pub accounts: Arc<Vec<String>>,
    pub holds: Holds,
    /// (request, 201 body) of every committed transfer or batch item.
    pub committed: Arc<Mutex<Vec<(Value, Value)>>>,
    /// Requests whose outcome is unknown: (request, why).
    pub unknown: Arc<Mutex<Vec<(Value, String)>>>,
    /// Answers no well-formed request should get.
    pub unexpected: Arc<Mutex<Vec<String>>>,
    pub refused: Arc<AtomicU64>,
    pub stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Load {
    pub fn new(client: Client, accounts: Vec<String>) -> Load {
        Load {
            client,
            accounts: Arc::new(accounts),
            holds: Arc::default(),
            committed: Arc::default(),
            unknown: Arc::default(),
            unexpected: Arc::default(),
            refused: Arc::default(),
            stop: Arc::default(),
        }
    }

    pub fn committed_count(&self) -> usize {
        self.committed.lock().unwrap().len()
    }

    fn judge(&self, request: &Value, status: u16, body: &Value) {
        if status == 201 {
            assert_matches_request(request, body);
            note_hold(&self.holds, body);
            self.committed.lock().unwrap().push((request.clone(), body.clone()));
        } else if is_expected_refusal(status, body) {
            self.refused.fetch_add(1, Ordering::Relaxed);
        } else if status == 503 || status == 429 {
            self.unknown.lock().unwrap().push((request.clone(), format!("{status} {body}")));
        } else {
            self.unexpected.lock().unwrap().push(format!("{request} -> {status} {body}"));
        }
    }

    /// Sends up to `max_ops` random requests (one in `batch_one_in` a batch
    /// of 2 to `batch_max` items) until `stop` is set or the connection
    /// fails (then every request in flight is recorded as unknown).
    pub fn run(&self, seed: u64, max_ops: usize, batch_one_in: u64, batch_max: u64) {
        let mut rng = Rng::new(seed);
        for _ in 0..max_ops {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            if rng.below(batch_one_in) == 0 {
                let n = 2 + rng.below(batch_max - 1);
                let items: Vec<Value> =
                    (0..n).map(|_| random_transfer(&mut rng, &self.accounts, &self.holds, "lb")).collect();
                match self.client.try_post("/v1/transfers/batch", PLATFORM, &json!({ "transfers": items })) {
                    Ok((200, answer)) => {
                        let results = answer["results"].as_array().cloned().unwrap_or_default();
                        if results.len() != items.len() {
                            self.unexpected.lock().unwrap().push(format!("batch of {} got {answer}", items.len()));
                            continue;
                        }
                        for (item, result) in items.iter().zip(&results) {
                            let status = result["status"].as_u64().unwrap_or(0) as u16;
                            self.judge(item, status, &result["body"]);
                        }
                    }
                    Ok((status, body)) if status == 503 || status == 429 => {
                        let mut unknown = self.unknown.lock().unwrap();
                        for item in items {
                            unknown.push((item, format!("batch {status} {body}")));
                        }
                    }
                    Ok((status, body)) => self.unexpected.lock().unwrap().push(format!("batch -> {status} {body}")),
                    Err(e) => {
                        let mut unknown = self.unknown.lock().unwrap();
                        for item in items {
                            unknown.push((item, e.clone()));
                        }
                        return;
                    }
                }
            } else {
                let request = random_transfer(&mut rng, &self.accounts, &self.holds, "ls");
                match self.client.try_post("/v1/transfers", PLATFORM, &request) {
                    Ok((status, body)) => self.judge(&request, status, &body),
                    Err(e) => {
                        self.unknown.lock().unwrap().push((request, e));
                        return;
                    }
                }
            }
        }
    }
}

/// The JSON paths where `a` and `b` differ (at most 20), for readable
/// "this changed" messages.
pub fn json_diff(a: &Value, b: &Value) -> Vec<String> {
    fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
        if out.len() >= 20 || a == b {
            return;
        }
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    walk(
                        &format!("{path}.{k}"),
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                        out,
                    );
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    walk(&format!("{path}[{i}]"), p, q, out);
                }
            }
            _ => out.push(format!("{path}: {} -> {}", short(a), short(b))),
        }
    }
    let mut out = Vec::new();
    walk("$", a, b, &mut out);
    out
}

/// Asserts `after == before`, naming the differing paths.
pub fn assert_unchanged(before: &Value, after: &Value, what: &str) {
    let diff = json_diff(before, after);
    assert!(diff.is_empty(), "{what}:\n  {}", diff.join("\n  "));
}

/// The ids in a hold's `movements` (strings; objects with an `id` are
/// accepted too).
pub fn hold_movement_ids(hold: &Value) -> Vec<String> {
    hold["movements"]
        .as_array()
        .unwrap_or_else(|| panic!("hold without movements: {hold}"))
        .iter()
        .map(|m| match m {
            Value::String(s) => s.clone(),
            other => other["id"]
                .as_str()
                .or(other["transfer_id"].as_str())
                .unwrap_or_else(|| panic!("movement without id: {other}"))
                .to_string(),
        })
        .collect()
}
