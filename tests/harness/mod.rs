//! The reliability and security suites' own harness: like
//! `tests/common`, it starts the real binary on a temporary data dir, but it
//! writes configs with the keys these suites need (`rate_limit_per_s`,
//! `wal.min_free_bytes`, `token_sha256`, `notify_max_age_s`), passes environment variables (the debug build's
//! fault hooks), does not insist on `/readyz` 200, and speaks raw TCP.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub const PLATFORM: &str = "dev-platform-token";
pub const FINANCE: &str = "dev-finance-token";
pub const RISK: &str = "dev-risk-token";
pub const ADMIN: &str = "dev-admin-token";
/// A second platform token, with the rate limit a test asks for.
pub const LIMITED: &str = "limited-platform-token";
/// A finance token the config names only by its SHA-256 (`token_sha256`).
pub const HASHED: &str = "hashed-finance-token-7f3a";
pub const BANK: &str = "SIMBANK";
pub const BANK_SECRET: &str = "dev-simbank-secret";
pub const SETTLEMENT_ACCOUNT_NO: &str = "6222020000000001";

static COUNTER: AtomicU64 = AtomicU64::new(1);

pub fn uid(prefix: &str) -> String {
    format!("{prefix}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// `rate_limit_per_s` of the `LIMITED` token (0 = off).
    pub limited_rate_per_s: u64,
    pub min_free_bytes: Option<u64>,
    /// Environment for the server process (fault hooks).
    pub env: Vec<(String, String)>,
    /// The bank's `notify_max_age_s` (0: no X-Timestamp check).
    pub notify_max_age_s: u64,
}

/// Lowercase hex SHA-256 of `text` (what `token_sha256` holds).
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn config_toml(data_dir: &Path, setup: &Setup) -> String {
    let min_free = setup.min_free_bytes.map(|bytes| format!("min_free_bytes = {bytes}\n")).unwrap_or_default();
    format!(
        r#"listen = "127.0.0.1:0"
data_dir = "{data_dir}"

[wal]
segment_bytes = 4194304
{min_free}
[[tokens]]
token = "dev-platform-token"
roles = ["platform"]

[[tokens]]
token = "{LIMITED}"
roles = ["platform"]
rate_limit_per_s = {rate}

[[tokens]]
token = "dev-finance-token"
roles = ["finance"]

[[tokens]]
token = "dev-risk-token"
roles = ["risk"]

[[tokens]]
token_sha256 = "{hashed}"
roles = ["finance"]

[[tokens]]
token = "dev-admin-token"
roles = ["admin"]

[[banks]]
code = "SIMBANK"
kind = "sandbox"
notify_secret = "dev-simbank-secret"
public_adjustment_account = "310940100000000"
sign_delay_ms = 10
notify_max_age_s = {max_age}

[receipts]
key = "dev-receipt-key"
"#,
        data_dir = data_dir.display(),
        rate = setup.limited_rate_per_s,
        hashed = sha256_hex(HASHED),
        max_age = setup.notify_max_age_s,
    )
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
}

pub struct Server {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    config_path: PathBuf,
    pub setup: Setup,
    starts: u32,
    stderr_path: PathBuf,
    agent: ureq::Agent,
}

impl Server {
    pub fn start(setup: Setup) -> Server {
        let dir = tempfile::Builder::new().prefix("fundledger-rel-").tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        fs::create_dir_all(&data_dir).unwrap();
        let config_path = dir.path().join("fundledger.toml");
        fs::write(&config_path, config_toml(&data_dir, &setup)).unwrap();
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .max_idle_connections_per_host(64)
            .build();
        let mut server = Server {
            child: None,
            port: 0,
            dir,
            data_dir,
            config_path,
            setup,
            starts: 0,
            stderr_path: PathBuf::new(),
            agent,
        };
        server.spawn();
        server
    }

    /// A path in the server's temporary folder (trigger files).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none());
        self.starts += 1;
        let stdout_path = self.dir.path().join(format!("stdout.{}.log", self.starts));
        self.stderr_path = self.dir.path().join(format!("stderr.{}.log", self.starts));
        let binary =
            std::env::var("FUNDLEDGER_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_fundledger").to_string());
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .env_remove("FUNDLEDGER_LISTEN")
            .env_remove("FUNDLEDGER_DATA_DIR")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout_path).unwrap())
            .stderr(fs::File::create(&self.stderr_path).unwrap());
        for (name, value) in &self.setup.env {
            command.env(name, value);
        }
        self.child = Some(command.spawn().expect("spawn fundledger"));
        let deadline = Instant::now() + Duration::from_secs(60);
        self.port = loop {
            let out = fs::read_to_string(&stdout_path).unwrap_or_default();
            if let Some(port) = out
                .lines()
                .find_map(|line| line.split("fundledger listening on ").nth(1))
                .and_then(|addr| addr.trim().rsplit_once(':'))
                .and_then(|(_, port)| port.parse().ok())
            {
                break port;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("fundledger exited ({status}) before listening\n{}", self.stderr_tail());
            }
            assert!(Instant::now() < deadline, "no listen line\n{}", self.stderr_tail());
            std::thread::sleep(Duration::from_millis(20));
        };
        // Recovered: /readyz says anything but `recovering`.
        loop {
            if let Ok(answer) = self.try_get("/readyz", "") {
                if answer.body["status"] != "recovering" {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("fundledger exited ({status}) while recovering\n{}", self.stderr_tail());
            }
            assert!(Instant::now() < deadline, "still recovering after 60 s\n{}", self.stderr_tail());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the server wrote to stdout and stderr, every start.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for start in 1..=self.starts {
            for stream in ["stdout", "stderr"] {
                let path = self.dir.path().join(format!("{stream}.{start}.log"));
                text.push_str(&fs::read_to_string(path).unwrap_or_default());
            }
        }
        text
    }

    pub fn stderr_tail(&self) -> String {
        let text = fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        text[start..].to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| child.try_wait().unwrap().is_none())
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait (30 s at most) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no exit within 45 s of SIGTERM\n{}", self.stderr_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restarts on the same data dir with another environment.
    pub fn restart_with_env(&mut self, env: Vec<(String, String)>) {
        self.kill9();
        self.setup.env = env;
        self.spawn();
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// VmRSS of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("read /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS line")
    }

    // -- HTTP -----------------------------------------------------------------

    pub fn try_request(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> Result<Answer, String> {
        request(&self.agent, &self.base(), method, path, token, body)
    }

    pub fn try_get(&self, path: &str, token: &str) -> Result<Answer, String> {
        self.try_request("GET", path, token, None)
    }

    pub fn get(&self, path: &str, token: &str) -> Answer {
        self.try_get(path, token).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.stderr_tail()))
    }

    pub fn post(&self, path: &str, token: &str, body: &Value) -> Answer {
        self.try_request("POST", path, token, Some(body))
            .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", self.stderr_tail()))
    }

    pub fn notify(&self, notification: &Value) -> Answer {
        let body = serde_json::to_vec(notification).unwrap();
        let signature = sign(BANK_SECRET, &body);
        let response = self
            .agent
            .post(&format!("{}/v1/banks/{BANK}/notifications", self.base()))
            .set("Content-Type", "application/json")
            .set("X-Signature", &signature)
            .send_bytes(&body);
        into_answer(response).unwrap_or_else(|e| panic!("notify: {e}"))
    }

    /// Opens an active account and credits it `amount`; returns its id.
    pub fn funded_account(&self, amount: &str) -> String {
        let (account, name) = self.active_account();
        let answer = self.notify(&credit_to(&account, &name, amount));
        assert_eq!(answer.body["result"], "credited", "deposit: {answer:?}");
        account
    }

    /// Opens an active account; returns its id and its holder's name.
    pub fn active_account(&self) -> (String, String) {
        let name = uid("公司");
        let answer = self.post(
            "/v1/applications",
            PLATFORM,
            &json!({"name": name, "credential_no": uid("9131"), "bank": BANK,
                    "settlement_account": {"bank_name": "某银行", "account_no": SETTLEMENT_ACCOUNT_NO, "account_name": name}}),
        );
        assert_eq!(answer.status, 201, "apply: {answer:?}");
        let application = answer.body["application_id"].as_str().unwrap().to_string();
        let answer = self.post(&format!("/v1/applications/{application}/approve"), RISK, &json!({}));
        assert_eq!(answer.status, 200, "approve: {answer:?}");
        let account = answer.body["account_id"].as_str().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = self.get(&format!("/v1/accounts/{account}"), PLATFORM);
            if answer.body["status"] == "active" {
                break;
            }
            assert!(Instant::now() < deadline, "not active: {answer:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        (account, name)
    }

    /// (available, frozen) of an account in cents.
    pub fn balance_cents(&self, account: &str) -> (i64, i64) {
        let answer = self.get(&format!("/v1/accounts/{account}"), PLATFORM);
        assert_eq!(answer.status, 200, "{answer:?}");
        (cents(&answer.body["balance"]["available"]), cents(&answer.body["balance"]["frozen"]))
    }

    /// Sends raw bytes on a new connection and reads what comes back until
    /// the server closes it or `read_for` passes.
    pub fn raw(&self, bytes: &[u8], read_for: Duration) -> Result<Vec<u8>, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(read_for)).unwrap();
        stream.write_all(bytes).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        Ok(out)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!("--- fundledger stderr tail ---\n{}", self.stderr_tail());
        }
        self.kill9();
    }
}

/// A keep-alive client for one thread.
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(10)).timeout(Duration::from_secs(60)).build()
}

pub fn request(
    agent: &ureq::Agent,
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<Answer, String> {
    let mut request = agent.request(method, &format!("{base}{path}"));
    if !token.is_empty() {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let response = match body {
        Some(body) => request.set("Content-Type", "application/json").send_bytes(&serde_json::to_vec(body).unwrap()),
        None => request.call(),
    };
    into_answer(response)
}

fn into_answer(response: Result<ureq::Response, ureq::Error>) -> Result<Answer, String> {
    let response = match response {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(error)) => return Err(format!("transport error: {error}")),
    };
    let status = response.status();
    let retry_after = response.header("Retry-After").map(str::to_string);
    let mut bytes = Vec::new();
    response.into_reader().take(256 << 20).read_to_end(&mut bytes).map_err(|e| format!("reading a {status}: {e}"))?;
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Ok(Answer { status, body, retry_after })
}

/// A bank notification crediting `amount` to `account`'s sub-account from
/// its holder's own account.
pub fn credit_to(account: &str, name: &str, amount: &str) -> Value {
    let number: u64 = account[1..].parse().unwrap_or_else(|_| panic!("account id {account}"));
    json!({
        "notification_id": uid("N"), "kind": "credit", "bank_serial": uid("B"),
        "to_account_no": format!("3109401{number:08}"), "amount": amount,
        "payer_name": name, "payer_account_no": SETTLEMENT_ACCOUNT_NO, "booked_at": now_rfc3339(),
    })
}

pub fn sign(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub fn cents(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("not an amount: {value}"));
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or_else(|| panic!("not an amount: {text}"));
    sign * (int.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap())
}

pub fn amount(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

pub fn now_rfc3339() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let secs = now.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// A transfer of `cents` from `payer` to `payee` with a fresh id.
pub fn transfer(payer: &str, payee: &str, cents: i64) -> Value {
    json!({"id": uid("t"), "type": "transfer", "payer": payer, "payee": payee, "amount": amount(cents)})
}
