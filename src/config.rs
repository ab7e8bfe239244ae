//! The configuration file (TOML), its defaults and its checks.
//!
//! Owns the contract's keys (API.md, Running it). Every key is optional
//! unless marked; an unknown key stops start-up naming it (serde's
//! `deny_unknown_fields`). Flags beat environment variables beat the file.
//! A config that still holds a development secret refuses a non-loopback
//! listen address: the dev tokens are printed in the README.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The development secrets shipped in `config/default.toml`.
const DEVELOPMENT_SECRETS: [&str; 7] = [
    "dev-platform-token",
    "dev-finance-token",
    "dev-finance-2-token",
    "dev-risk-token",
    "dev-admin-token",
    "dev-simbank-secret",
    "dev-receipt-key",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub wal: WalSection,
    #[serde(default)]
    pub history: HistorySection,
    pub tokens: Vec<TokenConfig>,
    pub banks: Vec<BankConfig>,
    pub receipts: ReceiptsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_body_bytes: usize,
    pub max_statement_bytes: u64,
    /// Bank instructions waiting in memory for their bank; past it they
    /// wait in the log (`actors::outbox`).
    pub bank_queue_instructions: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_statement_bytes: 512 * 1024 * 1024,
            bank_queue_instructions: 65_536,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalSection {
    pub segment_bytes: u64,
    pub checkpoint_every_records: u64,
    pub checkpoint_every_s: u64,
    pub retention_days: u64,
    pub min_free_bytes: u64,
}

impl Default for WalSection {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
            checkpoint_every_records: 1_000_000,
            checkpoint_every_s: 0,
            retention_days: 0,
            min_free_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// `[history]`: how much history stays in memory before the archive
/// (`<data_dir>/history`) takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistorySection {
    /// Records whose index entries (journal entries, ids) stay in memory
    /// before they are written to the archive as one run.
    pub memory_records: u64,
}

impl Default for HistorySection {
    fn default() -> Self {
        Self { memory_records: crate::limits::HISTORY_RECENT_RECORDS_DEFAULT }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Platform,
    Finance,
    Risk,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::Finance => "finance",
            Self::Risk => "risk",
            Self::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub token: Option<String>,
    pub token_sha256: Option<String>,
    pub roles: Vec<Role>,
    pub operator: Option<String>,
    #[serde(default)]
    pub rate_limit_per_s: u64,
}

impl TokenConfig {
    /// The SHA-256 of the token, from whichever form the config gave.
    pub fn digest(&self) -> Result<[u8; 32], String> {
        match (&self.token, &self.token_sha256) {
            (Some(token), None) => Ok(Sha256::digest(token.as_bytes()).into()),
            (None, Some(hex_digest)) => {
                let bytes = hex::decode(hex_digest).map_err(|_| "token_sha256 is not hex".to_string())?;
                bytes.try_into().map_err(|_| "token_sha256 must be 32 bytes (64 hex digits)".to_string())
            }
            _ => Err("a [[tokens]] entry needs exactly one of token or token_sha256".to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BankKind {
    Sandbox,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankConfig {
    pub code: String,
    pub kind: BankKind,
    pub notify_secret: String,
    pub public_adjustment_account: String,
    #[serde(default = "default_sign_delay_ms")]
    pub sign_delay_ms: u64,
    /// Probabilities are parts per unit, parsed from the TOML float and
    /// kept only as a rate for the sandbox's dice (never money).
    #[serde(default)]
    pub fault_rate: f64,
    #[serde(default)]
    pub unknown_rate: f64,
    #[serde(default)]
    pub notify_max_age_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptsConfig {
    pub key: String,
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_string()
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

fn default_sign_delay_ms() -> u64 {
    200
}

/// What the command line and the environment say, winning over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
}

impl Config {
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, String> {
        let text =
            std::fs::read_to_string(path).map_err(|error| format!("cannot read config {}: {error}", path.display()))?;
        let mut config = Self::parse(&text).map_err(|error| format!("config {}: {error}", path.display()))?;
        if let Some(listen) = &overrides.listen {
            config.listen = listen.clone();
        }
        if let Some(data_dir) = &overrides.data_dir {
            config.data_dir = data_dir.clone();
        }
        config.validate()?;
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|error| error.to_string())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen.parse().map_err(|_| format!("listen = {:?} is not an address like 127.0.0.1:8080", self.listen))
    }

    /// Checks the TOML types cannot express.
    /// The log's settings: the `[wal]` keys and the limits of `crate::limits`.
    pub fn wal_config(&self) -> fundledger_wal::WalConfig {
        fundledger_wal::WalConfig {
            dir: self.wal_dir(),
            segment_bytes: self.wal.segment_bytes,
            max_record_bytes: crate::limits::RECORD_BYTES_MAX as u32,
            max_pending_bytes: crate::limits::WAL_PENDING_BYTES_MAX,
            min_free_bytes: self.wal.min_free_bytes,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let addr = self.listen_addr()?;
        if self.tokens.is_empty() {
            return Err("the config needs at least one [[tokens]] entry".into());
        }
        for token in &self.tokens {
            token.digest()?;
            if token.roles.is_empty() {
                return Err("every [[tokens]] entry needs at least one role".into());
            }
        }
        if self.banks.is_empty() {
            return Err("the config needs at least one [[banks]] entry".into());
        }
        for bank in &self.banks {
            if bank.code.is_empty() || !bank.code.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("bank code {:?} must be ASCII letters and digits", bank.code));
            }
            if !(0.0..=1.0).contains(&bank.fault_rate) || !(0.0..=1.0).contains(&bank.unknown_rate) {
                return Err(format!("bank {}: fault_rate and unknown_rate are between 0 and 1", bank.code));
            }
        }
        if !(1..=crate::limits::HISTORY_RECENT_RECORDS_MAX).contains(&self.history.memory_records) {
            return Err(format!(
                "history.memory_records must be between 1 and {}",
                crate::limits::HISTORY_RECENT_RECORDS_MAX
            ));
        }
        if self.wal.checkpoint_every_records < 1000 {
            return Err("wal.checkpoint_every_records must be at least 1000".into());
        }
        // The WAL's own rule (a segment header plus the largest frame must
        // fit), checked here so that a config the log would refuse is
        // refused before anything starts.
        self.wal_config().validate().map_err(|error| format!("wal: {error}"))?;
        if self.limits.bank_queue_instructions == 0 {
            return Err("limits.bank_queue_instructions must be at least 1".into());
        }
        if self.limits.max_body_bytes < 1024 {
            return Err("limits.max_body_bytes must be at least 1024".into());
        }
        if !addr.ip().is_loopback() {
            if let Some(secret) = self.development_secret_in_use() {
                return Err(format!(
                    "refusing to listen on {addr}: the config still holds the development secret {secret:?}, \
                     which is published in the README; set your own tokens, bank secrets and receipt key, \
                     or listen on a loopback address"
                ));
            }
        }
        Ok(())
    }

    fn development_secret_in_use(&self) -> Option<&'static str> {
        let mut in_use: Vec<&str> = Vec::new();
        in_use.extend(self.tokens.iter().filter_map(|token| token.token.as_deref()));
        in_use.extend(self.banks.iter().map(|bank| bank.notify_secret.as_str()));
        in_use.push(&self.receipts.key);
        let dev_digests: Vec<String> =
            DEVELOPMENT_SECRETS.iter().map(|s| hex::encode(Sha256::digest(s.as_bytes()))).collect();
        for token in &self.tokens {
            if let Some(digest) = &token.token_sha256 {
                if let Some(index) = dev_digests.iter().position(|dev| dev.eq_ignore_ascii_case(digest)) {
                    return Some(DEVELOPMENT_SECRETS[index]);
                }
            }
        }
        DEVELOPMENT_SECRETS.into_iter().find(|secret| in_use.contains(secret))
    }

    pub fn wal_dir(&self) -> PathBuf {
        self.data_dir.join("wal")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = include_str!("../config/default.toml");

    #[test]
    fn the_default_config_parses_and_validates() {
        let config = Config::parse(DEFAULT).unwrap();
        config.validate().unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080");
        // One token per role, and a second finance operator for maker-checker.
        assert_eq!(config.tokens.len(), 5);
        let finance_operators: Vec<_> = config
            .tokens
            .iter()
            .filter(|token| token.roles.contains(&Role::Finance))
            .filter_map(|token| token.operator.as_deref())
            .collect();
        assert_eq!(finance_operators, ["li.si", "zhao.liu"]);
    }

    #[test]
    fn a_segment_the_log_would_refuse_is_refused_by_the_config() {
        let mut config = Config::parse(DEFAULT).unwrap();
        // 64 KiB cannot hold a segment header plus the largest record's frame.
        config.wal.segment_bytes = 64 * 1024;
        let error = config.validate().unwrap_err();
        assert!(error.contains("segment_bytes"), "{error}");
        config.wal.segment_bytes = 1024 * 1024;
        config.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_named() {
        let error = Config::parse(&format!("{DEFAULT}\n[wal2]\nx = 1\n")).unwrap_err();
        assert!(error.contains("wal2"), "{error}");
        let error = Config::parse(&DEFAULT.replace("[wal]", "[wal]\nsegment_byts = 5")).unwrap_err();
        assert!(error.contains("segment_byts"), "{error}");
    }

    #[test]
    fn development_secrets_stay_on_loopback() {
        let mut config = Config::parse(DEFAULT).unwrap();
        config.listen = "0.0.0.0:8080".into();
        let error = config.validate().unwrap_err();
        assert!(error.contains("development secret"), "{error}");
        config.listen = "[::1]:8080".into();
        config.validate().unwrap();
    }
}
