//! Starting and stopping the real `fundledger` binary on a data directory
//! the harness owns, with a config file the harness writes.

use crate::client::{Bearer, Conn, Endpoint};
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The sandbox bank every harness config declares.
pub const BANK: &str = "SIMBANK";
pub const NOTIFY_SECRET: &str = "dev-simbank-secret";

/// Development tokens (loopback only), one per role.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub platform: Bearer,
    pub finance: Bearer,
    pub risk: Bearer,
}

impl Tokens {
    pub fn dev() -> Result<Self> {
        Ok(Self {
            platform: Bearer::new("dev-platform-token")?,
            finance: Bearer::new("dev-finance-token")?,
            risk: Bearer::new("dev-risk-token")?,
        })
    }
}

/// The path of the release binary, next to this crate in the workspace.
pub fn default_server_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/fundledger")
}

pub fn check_server_bin(bin: &Path) -> Result<()> {
    if !bin.is_file() {
        bail!(
            "server binary {} not found: build it first with `cargo build --release` \
             (or pass --server-bin PATH)",
            bin.display()
        );
    }
    Ok(())
}

/// The config keys the harness sets; everything else keeps its default.
#[derive(Clone, Debug)]
pub struct ConfigOptions {
    pub checkpoint_every_records: u64,
    /// `history.memory_records` (None: the server's default).
    pub history_memory_records: Option<u64>,
}

pub fn config_toml(data_dir: &Path, options: &ConfigOptions) -> String {
    format!(
        r#"# written by fundledger-loadtest
listen = "127.0.0.1:0"
data_dir = {data_dir:?}

[wal]
checkpoint_every_records = {checkpoint}
{history}
[[tokens]]
token = "dev-platform-token"
roles = ["platform"]
operator = "loadtest"

[[tokens]]
token = "dev-finance-token"
roles = ["finance"]

[[tokens]]
token = "dev-risk-token"
roles = ["risk"]

[[tokens]]
token = "dev-admin-token"
roles = ["admin"]

[[banks]]
code = "{BANK}"
kind = "sandbox"
notify_secret = "{NOTIFY_SECRET}"
public_adjustment_account = "310940100000000"
sign_delay_ms = 0

[receipts]
key = "dev-receipt-key"
"#,
        data_dir = data_dir.display().to_string(),
        checkpoint = options.checkpoint_every_records,
        history = options
            .history_memory_records
            .map(|records| format!("\n[history]\nmemory_records = {records}\n"))
            .unwrap_or_default(),
    )
}

/// A work directory: `fundledger.toml`, `data/`, `server.log`. Removed on
/// drop unless kept.
pub struct WorkDir {
    /// Deletes the directory on drop; `None` when the user keeps it.
    _dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl WorkDir {
    pub fn create(parent: Option<&Path>, keep: bool, options: &ConfigOptions) -> Result<Self> {
        let builder = {
            let mut b = tempfile::Builder::new();
            b.prefix("fundledger-loadtest-");
            b
        };
        let dir = match parent {
            Some(p) => builder.tempdir_in(p),
            None => builder.tempdir(),
        }
        .context("create a temporary work directory")?;
        let (dir, path) = if keep {
            let path = dir.keep();
            eprintln!("keeping work directory {}", path.display());
            (None, path)
        } else {
            let path = dir.path().to_path_buf();
            (Some(dir), path)
        };
        std::fs::create_dir_all(path.join("data"))?;
        let work = Self { _dir: dir, path };
        std::fs::write(work.config_path(), config_toml(&work.data_dir(), options))?;
        Ok(work)
    }

    /// Keeps the directory after all (say, for a post-mortem of a failed drill).
    pub fn persist(&mut self) {
        if let Some(dir) = self._dir.take() {
            let path = dir.keep();
            eprintln!("kept work directory {}", path.display());
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn config_path(&self) -> PathBuf {
        self.path.join("fundledger.toml")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.path.join("data")
    }
    pub fn log_path(&self) -> PathBuf {
        self.path.join("server.log")
    }
}

/// A running server process.
pub struct Server {
    child: Child,
    pub pid: u32,
    pub endpoint: Endpoint,
    log_path: PathBuf,
    /// Time from spawn to the first `/readyz` 200.
    pub spawn_to_ready: Duration,
    /// `lsn` from the first `/readyz` 200.
    pub ready_lsn: u64,
    /// The server's `fundledger recovered: ...` stdout line, once printed.
    recovered_line: Arc<std::sync::Mutex<Option<String>>>,
}

/// What start-up said it recovered from.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct RecoveredFrom {
    /// The checkpoint loaded (0: none, the whole log was replayed).
    pub checkpoint_lsn: u64,
    /// Records replayed from the log after it.
    pub records_replayed: u64,
}

/// How the server was started.
#[derive(Clone, Debug)]
pub struct Launch {
    pub bin: PathBuf,
    pub rust_log: String,
    pub ready_timeout: Duration,
}

impl Server {
    /// Spawns `fundledger serve` on the work directory, learns the port from
    /// its one stdout line, and waits for `/readyz` 200.
    pub async fn start(launch: &Launch, work: &WorkDir) -> Result<Server> {
        check_server_bin(&launch.bin)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(work.log_path())
            .with_context(|| format!("open {}", work.log_path().display()))?;
        let spawned_at = Instant::now();
        let mut child = Command::new(&launch.bin)
            .arg("serve")
            .arg("--config")
            .arg(work.config_path())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(work.data_dir())
            .env("RUST_LOG", &launch.rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawn {}", launch.bin.display()))?;
        let pid = child.id().context("server exited at once")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let mut lines = BufReader::new(stdout).lines();
        let deadline = spawned_at + launch.ready_timeout;
        let first = tokio::time::timeout_at(deadline.into(), lines.next_line()).await;
        let line = match first {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) | Ok(Err(_)) => {
                let status = child.wait().await.ok();
                bail!(
                    "server exited before it printed its address ({status:?}); log {}:\n{}",
                    work.log_path().display(),
                    log_tail(&work.log_path())
                );
            }
            Err(_) => bail!(
                "server printed no `fundledger listening on ...` line within {:?}; log {}",
                launch.ready_timeout,
                work.log_path().display()
            ),
        };
        let addr: SocketAddr =
            line.trim().strip_prefix("fundledger listening on ").and_then(|a| a.parse().ok()).with_context(|| {
                format!("expected `fundledger listening on 127.0.0.1:PORT` on stdout, got {line:?}")
            })?;
        // Keep draining stdout so the server never blocks on a full pipe,
        // and keep the recovery line.
        let recovered_line = Arc::new(std::sync::Mutex::new(None));
        let keep = Arc::clone(&recovered_line);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("fundledger recovered: ") {
                    *keep.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(line);
                }
            }
        });
        let endpoint = Endpoint::new(addr)?;
        let mut server = Server {
            child,
            pid,
            endpoint,
            log_path: work.log_path(),
            spawn_to_ready: Duration::ZERO,
            ready_lsn: 0,
            recovered_line,
        };
        let lsn = server.wait_ready(deadline).await?;
        server.spawn_to_ready = spawned_at.elapsed();
        server.ready_lsn = lsn;
        Ok(server)
    }

    async fn wait_ready(&mut self, deadline: Instant) -> Result<u64> {
        let mut conn = Conn::new(self.endpoint.clone());
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "server exited while starting ({status}); log {}:\n{}",
                    self.log_path.display(),
                    log_tail(&self.log_path)
                );
            }
            if let Ok(answer) = conn.get("/readyz", None).await {
                if answer.status.as_u16() == 200 {
                    let lsn = answer.json().ok().and_then(|v| v.get("lsn").and_then(|l| l.as_u64())).unwrap_or(0);
                    return Ok(lsn);
                }
            }
            if Instant::now() >= deadline {
                bail!("server not ready (GET /readyz != 200) before the deadline");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Parses `fundledger recovered: checkpoint lsn C, R records replayed
    /// after it, lsn L` (printed before `/readyz` says 200; the stdout reader
    /// may lag a little behind).
    pub async fn recovered_from(&self) -> Option<RecoveredFrom> {
        for _ in 0..100 {
            let line = self.recovered_line.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
            if let Some(line) = line {
                let rest = line.strip_prefix("fundledger recovered: checkpoint lsn ")?;
                let (checkpoint, rest) = rest.split_once(", ")?;
                let (replayed, _) = rest.split_once(' ')?;
                return Some(RecoveredFrom {
                    checkpoint_lsn: checkpoint.parse().ok()?,
                    records_replayed: replayed.parse().ok()?,
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    pub fn rss_bytes(&self) -> Option<u64> {
        crate::util::rss_bytes(self.pid)
    }

    /// kill -9 and reap.
    pub async fn kill9(mut self) -> Result<()> {
        self.child.start_kill().context("kill -9 the server")?;
        self.child.wait().await?;
        Ok(())
    }

    /// SIGTERM, then wait for the exit (kill -9 after `timeout`).
    pub async fn terminate(mut self, timeout: Duration) -> Result<ExitStatus> {
        // SAFETY: plain kill(2) on the pid of a child we spawned and have not reaped.
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        if rc != 0 {
            bail!("kill -TERM {}: {}", self.pid, std::io::Error::last_os_error());
        }
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                self.child.start_kill()?;
                self.child.wait().await?;
                bail!("server did not exit within {timeout:?} of SIGTERM; killed it")
            }
        }
    }

    /// Whether the process is still running.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "server exited unexpectedly ({status}); log {}:\n{}",
                self.log_path.display(),
                log_tail(&self.log_path)
            );
        }
        Ok(())
    }
}

/// The last lines of the server log, for error messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(20);
    lines[start..].join("\n")
}
