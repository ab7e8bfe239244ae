//! What the drill checks after each restart.

use crate::util::query_escape;
use std::collections::HashSet;

use super::*;

#[derive(Default)]
pub(super) struct VerifyStats {
    pub(super) acked: usize,
    pub(super) present: usize,
    pub(super) absent: usize,
    pub(super) refused: usize,
    journal_entries: usize,
    customer_total_cents: i64,
    seconds: f64,
}

impl VerifyStats {
    pub(super) fn print(&self, after_iteration: u32) {
        eprintln!(
            "iteration {after_iteration} verified in {:.2}s: {} acknowledged all present, {} unanswered present, {} absent, {} refused absent; {} new journal entries; total {} conserved",
            self.seconds,
            thousands(self.acked as u64),
            thousands(self.present as u64),
            thousands(self.absent as u64),
            thousands(self.refused as u64),
            thousands(self.journal_entries as u64),
            format_cents(self.customer_total_cents)
        );
    }
}

/// What the drill has read of the ledger so far, kept across restarts: the
/// journals are append-only and everything read was durable (it is read
/// only after a restart), so each verification reads only the entries
/// after the last one seen (the journal's `after_lsn` filter) and keeps the
/// running sums. Older entries stay checked through the balances, re-read
/// every time, which must equal the sums of every entry ever read, and
/// through the sample of GETs of older transfers. So a verification costs
/// what the last iteration wrote, not the whole history.
#[derive(Default)]
pub(super) struct LedgerView {
    accounts: Vec<AccountView>,
    /// Every journal entry read so far, by movement id.
    journal: HashMap<String, Vec<JournalEntry>>,
}

#[derive(Clone, Copy, Default)]
struct AccountView {
    sum_available: i64,
    sum_frozen: i64,
    last_lsn: u64,
}

struct JournalEntry {
    account: usize,
    kind: String,
    available_delta: i64,
    frozen_delta: i64,
    lsn: u64,
}

fn cents_field(value: &Value, name: &str) -> Result<i64> {
    let text =
        value.get(name).and_then(Value::as_str).with_context(|| format!("no string field {name:?} in {value}"))?;
    parse_cents(text)
}

/// Checks everything after a restart; turns unanswered movements into
/// present or absent. Fails with every violation found.
pub(super) async fn verify(
    endpoint: &Endpoint,
    tokens: &Tokens,
    accounts: &[Account],
    ops: &mut [Op],
    view: &mut LedgerView,
    connections: usize,
    rng: &mut StdRng,
) -> Result<VerifyStats> {
    let started = Instant::now();
    let mut conn = Conn::new(endpoint.clone());
    let mut violations: Vec<String> = Vec::new();
    let mut stats = VerifyStats::default();

    // 1. Balances and journals.
    let ready = conn.get("/readyz", None).await?.json()?;
    let ready_lsn = ready.get("lsn").and_then(Value::as_u64).unwrap_or(0);
    let (mut new_ids, customer_total) =
        read_ledger(&mut conn, tokens, accounts, view, &mut violations, &mut stats).await?;

    // 2. The transfer records, fetched concurrently.
    let records = fetch_transfers(endpoint, tokens, ops, connections, rng).await?;

    // 3. Every movement against what the ledger shows.
    let (deposits_in, max_acked_lsn) =
        check_movements(ops, &view.journal, &mut new_ids, &records, accounts, &mut violations, &mut stats);
    for id in &new_ids {
        let entries = view.journal.get(id).map_or(&[][..], Vec::as_slice);
        violations
            .push(format!("journal entries for {id:?} that the drill never sent: {}", describe(entries, accounts)));
    }
    if ready_lsn < max_acked_lsn {
        violations.push(format!("/readyz lsn {ready_lsn} is below the highest acknowledged lsn {max_acked_lsn}"));
    }

    // 4. Conservation.
    if customer_total != deposits_in {
        violations.push(format!(
            "money not conserved: accounts hold {} in total, deposits acknowledged or present add up to {}",
            format_cents(customer_total),
            format_cents(deposits_in)
        ));
    }
    stats.customer_total_cents = customer_total;
    trial_balance(&mut conn, tokens, customer_total, &mut violations).await;

    // 5. Idempotency across the restart.
    retry_acknowledged(&mut conn, tokens, ops, rng, &mut violations).await;

    if !violations.is_empty() {
        let shown: Vec<&String> = violations.iter().take(VIOLATIONS_SHOWN).collect();
        let more = violations.len().saturating_sub(VIOLATIONS_SHOWN);
        bail!(
            "{} violation(s):\n  {}{}",
            violations.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  "),
            if more > 0 { format!("\n  ... and {more} more") } else { String::new() }
        );
    }
    for op in ops.iter_mut() {
        op.checked = true;
        op.request = None;
        if let Outcome::Acked { body, .. } = &mut op.outcome {
            *body = Value::Null;
        }
    }
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Every account's balance and whole journal, checked entry by entry;
/// returns the journal entries by movement id and the sum of the totals.
async fn read_ledger(
    conn: &mut Conn,
    tokens: &Tokens,
    accounts: &[Account],
    view: &mut LedgerView,
    violations: &mut Vec<String>,
    stats: &mut VerifyStats,
) -> Result<(HashSet<String>, i64)> {
    let mut new_ids: HashSet<String> = HashSet::new();
    let mut customer_total = 0i64;
    view.accounts.resize(accounts.len(), AccountView::default());
    for (index, account) in accounts.iter().enumerate() {
        let path = format!("/v1/accounts/{}", account.id);
        let value = read_json(conn, &path, tokens).await?;
        let balance = value.get("balance").cloned().unwrap_or(Value::Null);
        let (total, available, frozen) =
            (cents_field(&balance, "total")?, cents_field(&balance, "available")?, cents_field(&balance, "frozen")?);
        customer_total += total;
        if total != available + frozen || available < 0 || frozen < 0 {
            violations.push(format!("{}: balance {balance} breaks total = available + frozen >= 0", account.id));
        }
        let seen = view.accounts[index];
        let (mut sum_available, mut sum_frozen, mut last_lsn) = (seen.sum_available, seen.sum_frozen, seen.last_lsn);
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            pages += 1;
            if pages > 100_000 {
                bail!("journal of {} does not end after 100,000 pages", account.id);
            }
            let mut path = format!("/v1/accounts/{}/journal?limit=1000&after_lsn={}", account.id, seen.last_lsn);
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={}", query_escape(c)));
            }
            let page = read_json(conn, &path, tokens).await?;
            let items = page.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            for entry in &items {
                let lsn = entry.get("lsn").and_then(Value::as_u64).unwrap_or(0);
                let available_delta = cents_field(entry, "available_delta")?;
                let frozen_delta = cents_field(entry, "frozen_delta")?;
                sum_available += available_delta;
                sum_frozen += frozen_delta;
                if lsn <= last_lsn {
                    violations.push(format!("{}: journal lsn {lsn} after {last_lsn}: not increasing", account.id));
                }
                last_lsn = lsn;
                let after = (
                    cents_field(entry, "available_after")?,
                    cents_field(entry, "frozen_after")?,
                    cents_field(entry, "total_after")?,
                );
                if after != (sum_available, sum_frozen, sum_available + sum_frozen) {
                    violations.push(format!(
                        "{}: journal entry at lsn {lsn} says after = {after:?}, the deltas so far sum to ({sum_available}, {sum_frozen})",
                        account.id
                    ));
                }
                let transfer_id = entry.get("transfer_id").and_then(Value::as_str).unwrap_or("").to_string();
                new_ids.insert(transfer_id.clone());
                view.journal.entry(transfer_id).or_default().push(JournalEntry {
                    account: index,
                    kind: entry.get("kind").and_then(Value::as_str).unwrap_or("").to_string(),
                    available_delta,
                    frozen_delta,
                    lsn,
                });
                stats.journal_entries += 1;
            }
            cursor = page.get("next_cursor").and_then(Value::as_str).map(str::to_string);
            if cursor.is_none() {
                break;
            }
            if items.is_empty() {
                bail!("journal of {}: an empty page with a next_cursor", account.id);
            }
        }
        view.accounts[index] = AccountView { sum_available, sum_frozen, last_lsn };
        if (sum_available, sum_frozen) != (available, frozen) {
            violations.push(format!(
                "{}: journal sums to available {} frozen {}, balance says {} / {}",
                account.id,
                format_cents(sum_available),
                format_cents(sum_frozen),
                format_cents(available),
                format_cents(frozen)
            ));
        }
    }
    Ok((new_ids, customer_total))
}

/// Every recorded movement against the journals and the transfer records:
/// returns the deposits that count and the highest acknowledged lsn.
/// `new_ids`: the movement ids with journal entries read in this
/// verification; each one the drill sent is taken out, so what is left was
/// never sent.
fn check_movements(
    ops: &mut [Op],
    journal: &HashMap<String, Vec<JournalEntry>>,
    new_ids: &mut HashSet<String>,
    records: &HashMap<usize, Option<Value>>,
    accounts: &[Account],
    violations: &mut Vec<String>,
    stats: &mut VerifyStats,
) -> (i64, u64) {
    let mut deposits_in = 0i64;
    let mut max_acked_lsn = 0u64;
    for (i, op) in ops.iter_mut().enumerate() {
        new_ids.remove(&op.id);
        let found: &[JournalEntry] = journal.get(&op.id).map_or(&[], Vec::as_slice);
        let record = records.get(&i);
        let expected = op.movement.entries();
        let matches_whole = |entries: &[JournalEntry], lsn: Option<u64>| -> bool {
            let mut want: Vec<(usize, &str, i64, i64)> = expected.clone();
            let mut got: Vec<(usize, &str, i64, i64)> =
                entries.iter().map(|e| (e.account, e.kind.as_str(), e.available_delta, e.frozen_delta)).collect();
            want.sort();
            got.sort();
            want == got && entries.iter().all(|e| Some(e.lsn) == lsn.or(Some(entries[0].lsn)))
        };
        let is_transfer = op.movement.kind != Kind::Deposit;
        match op.outcome.clone() {
            Outcome::Acked { lsn, .. } | Outcome::Present { lsn } => {
                max_acked_lsn = max_acked_lsn.max(lsn);
                if !matches_whole(found, Some(lsn)) {
                    violations.push(format!(
                        "LOST or altered: acknowledged {} {:?} (lsn {lsn}): journal shows {}",
                        op.id,
                        op.movement,
                        describe(found, accounts)
                    ));
                }
                if is_transfer {
                    match record {
                        Some(Some(record)) => {
                            if record.get("lsn").and_then(Value::as_u64) != Some(lsn) {
                                violations.push(format!("{}: acknowledged with lsn {lsn}, GET shows {record}", op.id));
                            }
                            if let Some(ack) = body_of(&op.outcome) {
                                for field in
                                    ["id", "type", "payer", "payee", "amount", "order_id", "receipt_no", "committed_at"]
                                {
                                    if ack.get(field) != record.get(field) {
                                        violations.push(format!(
                                            "{}: field {field} was {} in the acknowledgement, GET shows {}",
                                            op.id,
                                            ack.get(field).unwrap_or(&Value::Null),
                                            record.get(field).unwrap_or(&Value::Null)
                                        ));
                                    }
                                }
                            }
                        }
                        Some(None) => {
                            violations.push(format!("LOST: acknowledged {} (lsn {lsn}) is 404 after restart", op.id))
                        }
                        None => {}
                    }
                }
                if op.movement.kind == Kind::Deposit {
                    deposits_in += op.movement.cents;
                }
                match op.outcome {
                    Outcome::Acked { .. } => stats.acked += 1,
                    _ => stats.present += 1,
                }
            }
            Outcome::Unanswered(reason) => {
                let record_present = matches!(record, Some(Some(_)));
                if found.is_empty() && !record_present {
                    op.outcome = Outcome::Absent;
                    stats.absent += 1;
                } else if matches_whole(found, None) && (record_present || !is_transfer) {
                    let lsn = found[0].lsn;
                    if let Some(Some(record)) = record {
                        if record.get("lsn").and_then(Value::as_u64) != Some(lsn) {
                            violations.push(format!("{}: journal lsn {lsn}, GET shows {record}", op.id));
                        }
                    }
                    op.outcome = Outcome::Present { lsn };
                    if op.movement.kind == Kind::Deposit {
                        deposits_in += op.movement.cents;
                    }
                    stats.present += 1;
                } else {
                    violations.push(format!(
                        "PARTIAL: unanswered ({reason}) {} {:?}: journal shows {}, GET record present: {record_present}",
                        op.id,
                        op.movement,
                        describe(found, accounts)
                    ));
                }
            }
            Outcome::InFlight => violations.push(format!("{} still in flight at verification (harness bug)", op.id)),
            Outcome::Absent | Outcome::Refused(_) => {
                if !found.is_empty() || matches!(record, Some(Some(_))) {
                    violations.push(format!(
                        "APPLIED but {}: {} {:?}: journal shows {}",
                        match &op.outcome {
                            Outcome::Refused(key) => format!("refused with {key}"),
                            _ => "found absent after an earlier restart".to_string(),
                        },
                        op.id,
                        op.movement,
                        describe(found, accounts)
                    ));
                }
                match op.outcome {
                    Outcome::Refused(_) => stats.refused += 1,
                    _ => stats.absent += 1,
                }
            }
        }
    }
    (deposits_in, max_acked_lsn)
}

/// GET that must answer 200 (after 429/503 with their Retry-After: a
/// server may still be opening its ledger right after /readyz).
async fn read_json(conn: &mut Conn, path: &str, tokens: &Tokens) -> Result<Value> {
    let answer = send_retrying(conn, hyper::Method::GET, path, Some(&tokens.platform), None, None, true).await?;
    if answer.status.as_u16() != 200 {
        bail!("GET {path}: {} {}", answer.status, answer.body_text());
    }
    answer.json()
}

fn body_of(outcome: &Outcome) -> Option<&Value> {
    match outcome {
        Outcome::Acked { body, .. } if !body.is_null() => Some(body),
        _ => None,
    }
}

fn describe(entries: &[JournalEntry], accounts: &[Account]) -> String {
    if entries.is_empty() {
        return "no entries".to_string();
    }
    entries
        .iter()
        .map(|e| {
            format!(
                "{} {} {}/{} at lsn {}",
                accounts.get(e.account).map(|a| &*a.id).unwrap_or("?"),
                e.kind,
                format_cents(e.available_delta),
                format_cents(e.frozen_delta),
                e.lsn
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// GET /v1/transfers/{id} for every transfer-kind movement not checked
/// before and a sample of those that were, over several connections:
/// index -> Some(record) or None for 404.
async fn fetch_transfers(
    endpoint: &Endpoint,
    tokens: &Tokens,
    ops: &[Op],
    connections: usize,
    rng: &mut StdRng,
) -> Result<HashMap<usize, Option<Value>>> {
    let older = ops.iter().filter(|op| op.checked).count().max(1);
    let keep_older = (OLDER_SAMPLE as f64 / older as f64).min(1.0);
    let wanted: Vec<(usize, String)> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.movement.kind != Kind::Deposit)
        .filter(|(_, op)| !op.checked || rng.gen_bool(keep_older))
        .map(|(i, op)| (i, op.id.clone()))
        .collect();
    let wanted = Arc::new(wanted);
    let tasks = connections.clamp(1, 64);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (wanted, endpoint, auth) = (wanted.clone(), endpoint.clone(), tokens.platform.clone());
        handles.push(tokio::spawn(async move {
            let mut conn = Conn::new(endpoint);
            let mut out = Vec::new();
            for (i, id) in wanted.iter().skip(t).step_by(tasks) {
                let path = format!("/v1/transfers/{id}");
                let answer = send_retrying(&mut conn, hyper::Method::GET, &path, Some(&auth), None, None, true).await?;
                match answer.status.as_u16() {
                    200 => out.push((*i, Some(answer.json()?))),
                    404 => out.push((*i, None)),
                    _ => bail!("GET {path}: {} {}", answer.status, answer.body_text()),
                }
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut records = HashMap::new();
    for handle in handles {
        records.extend(handle.await??);
    }
    Ok(records)
}

/// The ledger's own double-entry check must agree (skipped if not served).
async fn trial_balance(conn: &mut Conn, tokens: &Tokens, customer_total: i64, violations: &mut Vec<String>) {
    let Ok(answer) = conn.get("/v1/ledger/trial-balance", Some(&tokens.finance)).await else {
        return;
    };
    if answer.status.as_u16() != 200 {
        return;
    }
    let Ok(value) = answer.json() else { return };
    if value.get("balanced") != Some(&Value::Bool(true)) {
        violations.push(format!("trial balance not balanced: {value}"));
    }
    if let Ok(total) = cents_field(&value, "customer_total") {
        if total != customer_total {
            violations.push(format!(
                "trial balance customer_total {} != sum of account totals {}",
                format_cents(total),
                format_cents(customer_total)
            ));
        }
    }
}

/// Re-sends some acknowledged requests: each must get its original answer.
async fn retry_acknowledged(
    conn: &mut Conn,
    tokens: &Tokens,
    ops: &[Op],
    rng: &mut StdRng,
    violations: &mut Vec<String>,
) {
    let candidates: Vec<&Op> = ops
        .iter()
        .filter(|op| !op.checked && op.request.is_some() && matches!(op.outcome, Outcome::Acked { .. }))
        .collect();
    if candidates.is_empty() {
        return;
    }
    for _ in 0..RETRIES_PER_CHECK.min(candidates.len()) {
        let op = candidates[rng.gen_range(0..candidates.len())];
        let (Some((path, body)), Some(original)) = (&op.request, body_of(&op.outcome)) else {
            continue;
        };
        let answer = match send_retrying(
            conn,
            hyper::Method::POST,
            path,
            Some(&tokens.platform),
            None,
            Some(body.clone()),
            true,
        )
        .await
        {
            Ok(answer) => answer,
            Err(err) => {
                violations.push(format!("retry of {}: {err:#}", op.id));
                continue;
            }
        };
        let (status, got) = if path.ends_with("/batch") {
            let value = answer.json().unwrap_or(Value::Null);
            let first = value.pointer("/results/0").cloned().unwrap_or(Value::Null);
            (
                first.get("status").and_then(Value::as_u64).unwrap_or(0),
                first.get("body").cloned().unwrap_or(Value::Null),
            )
        } else {
            (u64::from(answer.status.as_u16()), answer.json().unwrap_or(Value::Null))
        };
        if status != 201 || &got != original {
            violations.push(format!(
                "idempotency: retry of acknowledged {} after restart answered {status} {got}, originally {original}",
                op.id
            ));
        }
    }
}
