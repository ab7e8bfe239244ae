//! `reconcile`: upload one large statement to `POST /v1/reconciliations`
//! and report how long the reconciliation took and how much memory the
//! server held meanwhile (issue 6: a 1,000,000-line day in seconds, with
//! memory bounded by the ledger's day, not by the statement).
//!
//! The statement's lines name references the ledger never made, so every
//! line is parsed, validated and matched (all `missing_in_ledger`); the
//! server's RSS is sampled every 20 ms while the request runs.

use crate::bench::ServerArgs;
use crate::client::{Bearer, Conn};
use crate::server::{Server, BANK};
use crate::util::{cores, cpu_model, load_average, rfc3339_now, thousands};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use serde::Serialize;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Clone, Debug)]
pub struct ReconcileArgs {
    /// Statement lines to upload.
    #[arg(long, default_value_t = 1_000_000)]
    pub lines: u64,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Serialize)]
struct ReconcileReport {
    lines: u64,
    body_bytes: u64,
    seconds: f64,
    lines_per_s: f64,
    status: u16,
    summary: Value,
    rss_bytes_before: Option<u64>,
    rss_bytes_max_during: u64,
    rss_bytes_after: Option<u64>,
    cpu_model: String,
    cores: usize,
    load_average_before: Option<f64>,
    command: String,
}

/// `{"bank","date","statement":[...]}` with `lines` lines, ~130 bytes each.
fn statement_body(lines: u64) -> Result<Vec<u8>> {
    let date = &rfc3339_now()[..10];
    let booked_at = rfc3339_now();
    let mut body = Vec::with_capacity((lines as usize).saturating_mul(140) + 64);
    write!(body, r#"{{"bank":"{BANK}","date":"{date}","statement":["#)?;
    for n in 0..lines {
        if n > 0 {
            body.push(b',');
        }
        write!(
            body,
            r#"{{"bank_serial":"SB{n:012}","reference":"lt-{n}","kind":"forced_transfer","amount":"{}.{:02}","booked_at":"{booked_at}"}}"#,
            1 + n % 1000,
            n % 100
        )?;
    }
    body.extend_from_slice(b"]}");
    Ok(body)
}

pub async fn reconcile(args: ReconcileArgs) -> Result<()> {
    if args.lines == 0 {
        bail!("need --lines >= 1");
    }
    let launch = args.server.launch();
    let work = args.server.work_dir(1_000_000_000)?;
    let server = Server::start(&launch, &work).await?;
    eprintln!("fundledger pid {} on {}", server.pid, server.endpoint.addr);
    let body = statement_body(args.lines)?;
    let body_bytes = body.len() as u64;
    eprintln!("statement: {} lines, {} bytes", thousands(args.lines), thousands(body_bytes));
    let rss_before = server.rss_bytes();
    let load_average_before = load_average();
    let max_rss = Arc::new(AtomicU64::new(rss_before.unwrap_or(0)));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (max_rss, done, pid) = (Arc::clone(&max_rss), Arc::clone(&done), server.pid);
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Some(rss) = crate::util::rss_bytes(pid) {
                    max_rss.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let finance = Bearer::new("dev-finance-token")?;
    let mut conn = Conn::new(server.endpoint.clone());
    let started = Instant::now();
    let answer = conn.post("/v1/reconciliations", Some(&finance), Bytes::from(body)).await;
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let answer = answer.context("POST /v1/reconciliations")?;
    let status = answer.status.as_u16();
    let value: Value = answer.json().unwrap_or(Value::Null);
    if status != 201 {
        bail!("POST /v1/reconciliations answered {status}: {}", answer.body_text());
    }
    let report = ReconcileReport {
        lines: args.lines,
        body_bytes,
        seconds,
        lines_per_s: args.lines as f64 / seconds.max(1e-9),
        status,
        summary: value.get("summary").cloned().unwrap_or(Value::Null),
        rss_bytes_before: rss_before,
        rss_bytes_max_during: max_rss.load(Ordering::Relaxed),
        rss_bytes_after: server.rss_bytes(),
        cpu_model: cpu_model(),
        cores: cores(),
        load_average_before,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(path) = &args.json {
        std::fs::write(path, &text).with_context(|| format!("write {}", path.display()))?;
    }
    server.terminate(Duration::from_secs(30)).await?;
    Ok(())
}
