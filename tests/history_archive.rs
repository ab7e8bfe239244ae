//! History served from disk: with `history.memory_records` tiny, almost
//! every journal entry, committed transfer, hold, order, withdrawal and
//! bank answer has left memory for the archive (`DATA_DIR/history`), yet
//! every read answers as before, before and after kill -9; retries of old
//! ids get their original answers, an old id with other fields is still
//! 409, and a crash in the middle of an archive write loses nothing.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn options() -> Options {
    Options { history_memory_records: 2, ..Options::default() }
}

/// Run files the archive wrote for `table` (`journal` or `lookup`).
fn runs(server: &Server, table: &str) -> Vec<String> {
    let dir = server.data_dir.join("history").join(table);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".run"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Waits until the archive covers lsn `lsn` (a run name ends in the last
/// lsn it covers). The newest few records stay in memory until more come:
/// callers ask for a few lsns below their last.
fn wait_archived(server: &Server, lsn: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let covered = runs(server, "journal")
            .iter()
            .filter_map(|name| name.trim_end_matches(".run").split('-').nth(1)?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        if covered >= lsn {
            return;
        }
        assert!(Instant::now() < deadline, "the archive covers lsn {covered} after 30 s, not {lsn}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A journal read two entries a page, following `next_cursor`.
fn journal_in_pages_of_two(server: &Server, account: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut path = format!("/v1/accounts/{account}/journal?limit=2");
    loop {
        let page = server.get_ok(&path, PLATFORM);
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/accounts/{account}/journal?limit=2&cursor={cursor}"),
            None => return items,
        }
    }
}

struct Done {
    body: Value,
    answer: Value,
}

fn send(server: &Server, done: &mut Vec<Done>, body: Value) {
    let answer = server.transfer_ok(&body);
    done.push(Done { body, answer });
}

/// Everything a reader can ask of the history, as one value to compare
/// before and after a restart.
fn everything(server: &Server, accounts: &[&str], done: &[Done], hold: &str, order: &str, withdrawal: &str) -> Value {
    let journals: Vec<Value> = accounts.iter().map(|account| json!(server.journal(account))).collect();
    let transfers: Vec<Value> = done
        .iter()
        .map(|d| server.get_ok(&format!("/v1/transfers/{}", d.body["id"].as_str().unwrap()), PLATFORM))
        .collect();
    json!({
        "journals": journals,
        "transfers": transfers,
        "hold": server.get_ok(&format!("/v1/holds/{hold}"), PLATFORM),
        "order": server.list_all(&format!("/v1/orders/{order}/transfers"), PLATFORM),
        "withdrawal": server.get_ok(&format!("/v1/withdrawals/{withdrawal}"), PLATFORM),
    })
}

#[test]
fn old_history_is_read_from_the_archive_before_and_after_kill_9() {
    let mut server = Server::start_with(options());
    let (a, a_sub) = server.open_account("甲公司");
    let (b, _) = server.open_account("乙公司");
    let (c, _) = server.open_account("丙公司");
    server.deposit(&a_sub, "甲公司", "1000");
    let order = uid("O");
    let hold = uid("f");
    let mut done = Vec::new();
    send(&server, &mut done, json!({"id": hold, "type": "freeze", "payer": a, "amount": "100", "order_id": order}));
    for round in 0..12 {
        let payee = if round % 2 == 0 { &b } else { &c };
        send(
            &server,
            &mut done,
            json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": payee, "amount": "3.01", "order_id": order}),
        );
    }
    send(
        &server,
        &mut done,
        json!({"id": uid("u"), "type": "unfreeze_pay", "payee": b, "hold_id": hold, "amount": "40"}),
    );
    send(&server, &mut done, json!({"id": uid("u"), "type": "unfreeze", "hold_id": hold, "amount": "10"}));
    let withdrawal = uid("w");
    let (status, accepted) =
        server.post("/v1/withdrawals", PLATFORM, &json!({"id": withdrawal, "account_id": b, "amount": "5"}));
    assert_eq!(status, 202, "{accepted}");
    for _ in 0..6 {
        send(&server, &mut done, json!({"id": uid("t"), "type": "transfer", "payer": c, "payee": b, "amount": "0.5"}));
    }
    let last_lsn = done.last().unwrap().answer["lsn"].as_u64().unwrap();
    wait_archived(&server, last_lsn - 4);
    assert!(!runs(&server, "lookup").is_empty(), "the archive wrote no lookup run");
    let metrics = server.request("GET", "/metrics", &[], None).text;
    let archived: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("fundledger_history_archive_lsn "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no fundledger_history_archive_lsn in /metrics:\n{metrics}"));
    assert!(archived >= (last_lsn - 4) as f64, "/metrics says the archive reaches lsn {archived}");
    assert!(metrics.contains("fundledger_history_archive_write_errors_total 0"), "{metrics}");
    // Runs this small keep their filters whole: nothing read from disk, nothing mismatched.
    assert!(metrics.contains("fundledger_index_filter_disk_reads_total 0"), "{metrics}");
    assert!(metrics.contains("fundledger_index_filter_disk_mismatches_total 0"), "{metrics}");
    // The log's fdatasync latencies, cumulative: every fdatasync so far is
    // under +Inf, and no bucket holds fewer than the one below it.
    let value = |series: &str| {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{series} missing from /metrics:\n{metrics}"))
    };
    let fsyncs = value("fundledger_wal_fsyncs_total ");
    assert!(fsyncs >= 1.0, "{metrics}");
    assert_eq!(value("fundledger_wal_fsync_latency_seconds_bucket{le=\"+Inf\"} "), fsyncs);
    assert_eq!(value("fundledger_wal_fsync_latency_seconds_count "), fsyncs);
    // (bound, count), in the order of the bounds ("+Inf" parses as infinity).
    let mut buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter_map(|line| line.strip_prefix("fundledger_wal_fsync_latency_seconds_bucket{le=\""))
        .filter_map(|rest| {
            let (bound, count) = rest.split_once("\"} ")?;
            Some((bound.parse().ok()?, count.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(buckets.len(), 24, "{metrics}");
    assert!(buckets.windows(2).all(|pair| pair[0].1 <= pair[1].1), "{buckets:?}");

    // Each account's journal sums to its balance (entries from disk).
    for account in [&a, &b, &c] {
        server.assert_consistent(account);
    }
    let hold_view = server.get_ok(&format!("/v1/holds/{hold}"), PLATFORM);
    assert_eq!(
        (hold_view["remaining"].as_str(), hold_view["status"].as_str()),
        (Some("50.00"), Some("open")),
        "{hold_view}"
    );
    assert_eq!(hold_view["movements"].as_array().map(Vec::len), Some(3), "{hold_view}");
    let orders = server.list_all(&format!("/v1/orders/{order}/transfers"), PLATFORM);
    assert_eq!(orders.len(), 13, "freeze + 12 transfers under the order");
    // A page boundary inside the journal (limit 2, follow the cursor).
    let paged = journal_in_pages_of_two(&server, &a);
    assert_eq!(json!(paged), json!(server.journal(&a)));
    let first_transfer_lsn = done[1].answer["lsn"].as_u64().unwrap();
    let at = server.get_ok(&format!("/v1/accounts/{a}/balance?at_lsn={first_transfer_lsn}"), PLATFORM);
    assert_eq!(at["balance"]["available"], "896.99", "1000 - 100 frozen - 3.01: {at}");
    assert_eq!(at["last_lsn"].as_u64(), Some(first_transfer_lsn), "{at}");

    let before = everything(&server, &[&a, &b, &c], &done, &hold, &order, &withdrawal);
    // Retries of archived ids: the original answer; other fields: 409.
    let block_reads = || {
        let metrics = server.request("GET", "/metrics", &[], None).text;
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("fundledger_index_block_reads_total ")?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no fundledger_index_block_reads_total in /metrics:\n{metrics}"))
    };
    let reads_before = block_reads();
    for d in &done {
        assert_eq!(server.transfer(&d.body), (201, d.answer.clone()), "retry of {}", d.body);
    }
    // Each id the archive holds was found in a lookup run's block.
    let archived_ids = done.iter().filter(|d| d.answer["lsn"].as_f64().is_some_and(|lsn| lsn <= archived)).count();
    assert!(archived_ids >= done.len() - 4, "{archived_ids} of {} ids archived", done.len());
    let reads = block_reads() - reads_before;
    assert!(reads >= archived_ids as f64, "{reads} blocks read for {archived_ids} retries of archived ids");
    let mut changed = done[1].body.clone();
    changed["amount"] = json!("3.02");
    let (status, body) = server.transfer(&changed);
    assert_error(status, &body, 409, "ID_REUSED", "an archived id with another amount");

    server.kill9();
    server.restart();
    for d in &done {
        assert_eq!(server.transfer(&d.body), (201, d.answer.clone()), "retry of {} after kill -9", d.body);
    }
    let (status, body) = server.transfer(&changed);
    assert_error(status, &body, 409, "ID_REUSED", "an archived id with another amount, after kill -9");
    // The withdrawal may have finished meanwhile; everything else is equal.
    let mut after = everything(&server, &[&a, &b, &c], &done, &hold, &order, &withdrawal);
    let mut before = before;
    for view in [&mut before, &mut after] {
        view["withdrawal"] = json!(view["withdrawal"]["id"]);
        for journal in view["journals"].as_array_mut().unwrap() {
            journal
                .as_array_mut()
                .unwrap()
                .retain(|entry| !entry["kind"].as_str().unwrap().starts_with("withdrawal_s"));
            journal
                .as_array_mut()
                .unwrap()
                .retain(|entry| !entry["kind"].as_str().unwrap().starts_with("withdrawal_r"));
        }
        for transfer in view["transfers"].as_array_mut().unwrap() {
            transfer["bank_sync"] = json!(null);
        }
    }
    assert_eq!(after, before, "the history read back after kill -9 differs");

    // The hold goes on from its archived state; new history joins the old.
    send(&server, &mut done, json!({"id": uid("u"), "type": "unfreeze", "hold_id": hold, "amount": "50"}));
    let closed = server.get_ok(&format!("/v1/holds/{hold}"), PLATFORM);
    assert_eq!(closed["status"], "closed", "{closed}");
    let (status, body) = server.transfer(&json!({"id": uid("u"), "type": "unfreeze", "hold_id": hold, "amount": "1"}));
    assert_error(status, &body, 422, "HOLD_CLOSED", "a hold closed after its history went to disk");
    for account in [&a, &b, &c] {
        server.assert_consistent(account);
    }
    // Every transfer's bank mirror is found by the lsn it answers (archived answers).
    for d in &done {
        let id = d.body["id"].as_str().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let shown = server.get_ok(&format!("/v1/transfers/{id}"), PLATFORM);
            if shown["bank_sync"]["status"] == "confirmed" {
                break;
            }
            assert!(Instant::now() < deadline, "{id}: bank_sync still {} after 30 s", shown["bank_sync"]);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_withdrawal_and_a_deposit_keep_their_receipts_once_archived() {
    let server = Server::start_with(options());
    let (a, a_sub) = server.open_account("甲公司");
    let note = notification(&a_sub, "甲公司", "300");
    let (status, credited) = server.notify(&note);
    assert_eq!(status, 200, "{credited}");
    let withdrawal = uid("w");
    let (status, accepted) =
        server.post("/v1/withdrawals", PLATFORM, &json!({"id": withdrawal, "account_id": a, "amount": "7"}));
    assert_eq!(status, 202, "{accepted}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let finished = loop {
        let shown = server.get_ok(&format!("/v1/withdrawals/{withdrawal}"), PLATFORM);
        if shown["status"] != "processing" {
            break shown;
        }
        assert!(Instant::now() < deadline, "withdrawal still processing: {shown}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(finished["status"], "succeeded", "{finished}");
    // Push both far behind the memory bound.
    let (b, _) = server.open_account("乙公司");
    let mut last = 0;
    for _ in 0..8 {
        let answer =
            server.transfer_ok(&json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": b, "amount": "1"}));
        last = answer["lsn"].as_u64().unwrap();
    }
    wait_archived(&server, last - 4);
    let notification_id = note["notification_id"].as_str().unwrap();
    let deposit = server.get_ok(&format!("/v1/deposits/{notification_id}/receipt"), FINANCE);
    assert_eq!(deposit["amount"], "300.00", "{deposit}");
    let receipt = server.get_ok(&format!("/v1/withdrawals/{withdrawal}/receipt"), FINANCE);
    assert_eq!(receipt["amount"], "7.00", "{receipt}");
    assert_eq!(server.get_ok(&format!("/v1/withdrawals/{withdrawal}"), PLATFORM), finished);
    // The notification retried: its original answer, from the archive.
    assert_eq!(server.notify(&note), (200, credited));
}
