//! The bench report: printed like TigerBeetle's benchmark summary, and the
//! same fields as JSON with `--json FILE`.

use crate::metrics::WalReport;
use crate::util::thousands;
use crate::workload::Scenario;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize)]
pub struct Percentiles {
    pub p1: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p100: f64,
}

impl Percentiles {
    /// From a histogram in microseconds, as milliseconds.
    pub fn from_histogram_us(hist: &Histogram<u64>) -> Self {
        let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        Self {
            p1: ms(0.01),
            p10: ms(0.10),
            p50: ms(0.50),
            p90: ms(0.90),
            p99: ms(0.99),
            p999: ms(0.999),
            p100: hist.max() as f64 / 1000.0,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SetupReport {
    pub accounts: u64,
    pub seconds: f64,
    pub accounts_per_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ServerReport {
    pub pid: u32,
    /// VmRSS once `/readyz` answered 200, before any account existed.
    pub rss_bytes_ready: Option<u64>,
    pub rss_bytes_after_setup: Option<u64>,
    pub rss_bytes_end: Option<u64>,
    /// (RSS after setup - RSS at ready) / accounts.
    pub bytes_per_account: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CpuReport {
    /// CPU seconds the harness process used during the measured run (the
    /// generator shares the machine with the server).
    pub generator_s: f64,
    pub server_s: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub target: String,
    pub scenario: Scenario,
    pub loop_mode: &'static str,
    pub rate_per_s: Option<f64>,
    pub connections: usize,
    pub transfers_per_request: u64,
    pub accounts: u64,
    pub seconds: f64,
    pub requests: u64,
    pub requests_per_s: f64,
    /// Transfers answered 201 (approvals for `onboarding`).
    pub accepted: u64,
    pub accepted_per_s: f64,
    /// "request" or "batch".
    pub latency_of: &'static str,
    pub latency_ms: Percentiles,
    /// `"<status> <error.code>"` (or `"item ..."` inside a batch, or
    /// `"transport ..."`) -> count.
    pub errors: BTreeMap<String, u64>,
    /// Open-loop requests never sent because the run hit its hard deadline.
    pub not_sent: u64,
    pub setup: Option<SetupReport>,
    pub server: Option<ServerReport>,
    pub wal: Option<WalReport>,
    pub cpu: CpuReport,
    pub cpu_model: String,
    pub cores: usize,
    /// 1-minute load average just before the run: other work on the
    /// machine skews every number.
    pub load_average_before: Option<f64>,
    pub generator_threads: usize,
    pub command: String,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl BenchReport {
    pub fn print(&self) {
        let mode = match self.rate_per_s {
            Some(rate) => format!("open loop at {rate} requests/s"),
            None => "closed loop".to_string(),
        };
        let unit = if self.scenario == Scenario::Onboarding { "accounts" } else { "transfers" };
        println!();
        println!("== {} ==", self.target);
        println!(
            "scenario {:?}, {} {unit} per request, {mode}, {} connections, {} accounts",
            self.scenario,
            self.transfers_per_request,
            self.connections,
            thousands(self.accounts)
        );
        println!(
            "{} CPUs ({}), generator on {} thread(s) of the same machine; load average before the run {}",
            self.cores,
            self.cpu_model,
            self.generator_threads,
            self.load_average_before.map(|l| format!("{l:.2}")).unwrap_or_else(|| "n/a".to_string())
        );
        if let Some(setup) = &self.setup {
            println!(
                "setup: {} accounts onboarded and funded in {:.1}s ({:.0}/s)",
                thousands(setup.accounts),
                setup.seconds,
                setup.accounts_per_s
            );
        }
        println!(
            "load accepted = {} {unit}/s ({} in {:.2}s; {} requests, {:.0} requests/s)",
            thousands(self.accepted_per_s.round() as u64),
            thousands(self.accepted),
            self.seconds,
            thousands(self.requests),
            self.requests_per_s
        );
        let l = &self.latency_ms;
        for (name, value) in [
            ("p1", l.p1),
            ("p10", l.p10),
            ("p50", l.p50),
            ("p90", l.p90),
            ("p99", l.p99),
            ("p999", l.p999),
            ("p100", l.p100),
        ] {
            println!("{} latency {name:>4} = {value:.3} ms", self.latency_of);
        }
        if self.errors.is_empty() {
            println!("errors: none");
        } else {
            println!("errors:");
            for (key, count) in &self.errors {
                println!("  {key}: {}", thousands(*count));
            }
        }
        if self.not_sent > 0 {
            println!("not sent (hard deadline reached): {}", thousands(self.not_sent));
        }
        if let Some(server) = &self.server {
            let show = |b: Option<u64>| b.map(mib).unwrap_or_else(|| "n/a".to_string());
            println!(
                "server rss = {} at ready, {} after setup, {} at end",
                show(server.rss_bytes_ready),
                show(server.rss_bytes_after_setup),
                show(server.rss_bytes_end)
            );
            if let Some(per) = server.bytes_per_account {
                println!("server memory per account = {per:.0} bytes");
            }
        }
        match &self.wal {
            Some(wal) => match (wal.fsyncs_per_s, wal.mean_group_size) {
                (Some(rate), Some(group)) => {
                    println!("wal: {rate:.0} fsyncs/s, mean group size {group:.1} records per fsync")
                }
                (Some(rate), None) => println!("wal: {rate:.0} fsyncs/s (no records counter)"),
                _ => println!("wal: counters not exported by the server"),
            },
            None => println!("wal: n/a"),
        }
        if let Some(slow) = self.wal.as_ref().and_then(|wal| wal.slow_fsyncs) {
            println!("wal: {slow} fdatasyncs took 2,048 µs or more");
        }
        if let Some(slow) = self.wal.as_ref().and_then(|wal| wal.slow_server_requests) {
            println!("server: {slow} requests took it more than 2 ms (its own clock)");
        }
        if let Some(reads) = self.wal.as_ref().and_then(|wal| wal.index_block_reads) {
            println!("history: {reads} index blocks read by lookups");
        }
        if let Some(deferred) = self.wal.as_ref().and_then(|wal| wal.bank_deferred_at_end).filter(|&n| n > 0) {
            println!("bank: {deferred} instructions still waiting in the log at the end (the bank is behind)");
        }
        println!(
            "cpu during run: {} {:.1}s{}",
            if self.target == "echo" { "harness process (generator + echo server)" } else { "generator" },
            self.cpu.generator_s,
            self.cpu.server_s.map(|s| format!(", server {s:.1}s")).unwrap_or_default()
        );
    }
}
