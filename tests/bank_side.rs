//! The bank side, black-box: withdrawals (出金) paid out by the sandbox bank,
//! suspense entries with adjustment deposits (调帐入款) and returns (退票),
//! and the sandbox bank's own books (`DATA_DIR/sandbox/SIMBANK/books.jsonl`)
//! checked against the ledger, also across kill -9 and with the sandbox's
//! fault knobs turned up.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const WITHDRAWAL_FIELDS: &[&str] = &[
    "id",
    "account_id",
    "amount",
    "status",
    "settlement_account",
    "lsn",
    "created_at",
    "finished_at",
    "failure_reason",
    "bank_serial",
];

const SUSPENSE_FIELDS: &[&str] = &[
    "suspense_id",
    "bank",
    "bank_serial",
    "notification_id",
    "amount",
    "remaining",
    "payer_name",
    "payer_account_no",
    "reason",
    "status",
    "booked_at",
];

/// Opens an active account whose settlement account number is `account_no`.
fn open_account_paying_to(server: &Server, name: &str, account_no: &str) -> (String, String) {
    let (status, app) = server.post(
        "/v1/applications",
        PLATFORM,
        &json!({
            "name": name,
            "credential_no": credential_no(),
            "bank": BANK,
            "settlement_account": {"bank_name": "某银行上海分行", "account_no": account_no, "account_name": name},
        }),
    );
    assert_eq!(status, 201, "{app}");
    let app_id = app["application_id"].as_str().unwrap();
    let (status, approved) = server.post(&format!("/v1/applications/{app_id}/approve"), RISK, &json!({}));
    assert_eq!(status, 200, "{approved}");
    let account_id = approved["account_id"].as_str().unwrap().to_string();
    let account = server.wait_signed(&account_id);
    assert_eq!(account["status"], "active", "{account}");
    (account_id, account["sub_account_no"].as_str().unwrap().to_string())
}

fn withdraw(server: &Server, id: &str, account_id: &str, amount: &str) -> (u16, Value) {
    server.post("/v1/withdrawals", PLATFORM, &json!({"id": id, "account_id": account_id, "amount": amount}))
}

/// Polls the withdrawal until it leaves `processing`; returns its body.
fn wait_finished(server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown = server.get_ok(&format!("/v1/withdrawals/{id}"), PLATFORM);
        if shown["status"] != "processing" {
            return shown;
        }
        assert!(Instant::now() < deadline, "withdrawal {id} still processing after 60 s: {shown}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The sandbox bank's books, one JSON object per line.
fn sandbox_books(server: &Server) -> Vec<Value> {
    let path = server.data_dir.join("sandbox").join(BANK).join("books.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"))).collect()
}

/// Payout lines of the sandbox's books by reference; panics on a second
/// payout under one reference (the bank must never pay twice).
fn payouts(server: &Server) -> HashMap<String, Value> {
    let mut by_reference = HashMap::new();
    for line in sandbox_books(server).into_iter().filter(|line| line["kind"] == "payout") {
        let reference = line["reference"].as_str().unwrap().to_string();
        if let Some(first) = by_reference.insert(reference.clone(), line.clone()) {
            panic!("{reference} paid out twice: {first} and {line}");
        }
    }
    by_reference
}

/// The withdrawal's end as the ledger shows it agrees with the bank's books.
fn assert_matches_bank(shown: &Value, payout: &Value) {
    assert_eq!(shown["amount"], payout["amount"], "{shown} vs {payout}");
    assert_eq!(shown["settlement_account"]["account_no"], payout["counter_account_no"], "{shown} vs {payout}");
    match shown["status"].as_str() {
        Some("succeeded") => {
            assert_eq!(payout["result"], "succeeded", "{shown} vs {payout}");
            assert_eq!(shown["bank_serial"], payout["bank_serial"], "{shown} vs {payout}");
        }
        Some("failed") => {
            assert_eq!(payout["result"], "failed", "{shown} vs {payout}");
            assert_eq!(shown["failure_reason"], payout["failure_reason"], "{shown} vs {payout}");
        }
        other => panic!("unexpected status {other:?}: {shown}"),
    }
}

fn adjust(server: &Server, id: &str, suspense_id: &str, account: &str, amount: &str) -> (u16, Value) {
    server.post(
        "/v1/adjustments",
        FINANCE,
        &json!({"id": id, "suspense_id": suspense_id, "account_id": account, "amount": amount, "memo": "confirmed by phone"}),
    )
}

fn kinds(journal: &[Value]) -> Vec<String> {
    journal.iter().map(|entry| entry["kind"].as_str().unwrap().to_string()).collect()
}

/// Rewrites the harness's config with the sandbox's fault knobs, then
/// restarts the server on it.
fn set_bank_faults(server: &mut Server, fault_rate: f64, unknown_rate: f64) {
    let text = std::fs::read_to_string(&server.config_path).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("fault_rate") || line.starts_with("unknown_rate") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line.starts_with("public_adjustment_account") {
            out.push_str(&format!("fault_rate = {fault_rate}\nunknown_rate = {unknown_rate}\n"));
        }
    }
    std::fs::write(&server.config_path, out).unwrap();
    server.restart();
}

#[test]
fn a_withdrawal_is_paid_out_once_and_a_refused_payout_releases_the_money() {
    let mut server = Server::start();
    let (a, a_sub) = server.open_account("上海甲化工有限公司");
    let (b, b_sub) = open_account_paying_to(&server, "上海乙钢铁有限公司", "6222020000009999");
    server.deposit(&a_sub, "上海甲化工有限公司", "1000.00");
    server.deposit(&b_sub, "上海乙钢铁有限公司", "500.00");

    let w1 = uid("w");
    let (status, accepted) = withdraw(&server, &w1, &a, "300");
    assert_eq!(status, 202, "{accepted}");
    assert_keys(&accepted, WITHDRAWAL_FIELDS, "POST /v1/withdrawals");
    assert_eq!(accepted["status"], "processing");
    assert_eq!(accepted["amount"], "300.00");
    assert_eq!(accepted["account_id"], a.as_str());
    assert_eq!(accepted["settlement_account"]["account_no"], SETTLEMENT_ACCOUNT_NO);
    assert_eq!(accepted["settlement_account"]["account_name"], "上海甲化工有限公司");
    assert!(is_rfc3339_millis(&accepted["created_at"]), "{accepted}");
    assert!(accepted["finished_at"].is_null() && accepted["bank_serial"].is_null(), "{accepted}");

    let done = wait_finished(&server, &w1);
    assert_keys(&done, WITHDRAWAL_FIELDS, "GET /v1/withdrawals/{id}");
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["bank_serial"].is_string() && done["failure_reason"].is_null(), "{done}");
    assert!(is_rfc3339_millis(&done["finished_at"]), "{done}");
    assert_eq!(done["lsn"], accepted["lsn"], "the withdrawal keeps the lsn of its hold");
    let balance = server.assert_consistent(&a);
    assert_eq!((balance.total, balance.available, balance.frozen), (70_000, 70_000, 0));
    assert_eq!(kinds(&server.journal(&a)), ["deposit", "withdrawal_hold", "withdrawal_settled"]);
    let journal = server.journal(&a);
    assert_eq!(journal[1]["transfer_id"], w1.as_str());
    assert_eq!((cents(&journal[1]["available_delta"]), cents(&journal[1]["frozen_delta"])), (-30_000, 30_000));
    assert_eq!((cents(&journal[2]["available_delta"]), cents(&journal[2]["frozen_delta"])), (0, -30_000));

    // A retry answers the original 202, even though it has succeeded since.
    let (status, again) = withdraw(&server, &w1, &a, "300");
    assert_eq!((status, &again), (202, &accepted), "retry of {w1}");
    let (status, body) = withdraw(&server, &w1, &a, "301");
    assert_error(status, &body, 409, "ID_REUSED", "same id, other amount");
    // One id space with transfers.
    let (status, body) = server.transfer(&json!({"id": w1, "type": "freeze", "payer": a, "amount": "1"}));
    assert_error(status, &body, 409, "ID_REUSED", "a transfer with a withdrawal's id");
    let t = uid("t");
    server.transfer_ok(&json!({"id": t, "type": "freeze", "payer": a, "amount": "1"}));
    let (status, body) = withdraw(&server, &t, &a, "1");
    assert_error(status, &body, 409, "ID_REUSED", "a withdrawal with a transfer's id");
    let (status, body) = server.get(&format!("/v1/transfers/{w1}"), PLATFORM);
    assert_error(status, &body, 404, "TRANSFER_NOT_FOUND", "a withdrawal is not a transfer");
    let (status, body) = server.get(&format!("/v1/withdrawals/{t}"), PLATFORM);
    assert_error(status, &body, 404, "WITHDRAWAL_NOT_FOUND", "a transfer is not a withdrawal");

    // The bank refuses payouts to an account ending in 9999: money back.
    let w2 = uid("w");
    let (status, accepted2) = withdraw(&server, &w2, &b, "200.50");
    assert_eq!(status, 202, "{accepted2}");
    let failed = wait_finished(&server, &w2);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["failure_reason"], "PAYEE_ACCOUNT_CLOSED", "{failed}");
    assert!(failed["bank_serial"].is_null(), "{failed}");
    let balance = server.assert_consistent(&b);
    assert_eq!((balance.total, balance.available, balance.frozen), (50_000, 50_000, 0));
    assert_eq!(kinds(&server.journal(&b)), ["deposit", "withdrawal_hold", "withdrawal_released"]);

    // The bank's books: one payout per withdrawal, matching the ledger.
    let books = payouts(&server);
    assert_eq!(books.len(), 2, "{books:?}");
    assert_matches_bank(&done, &books[&w1]);
    assert_matches_bank(&failed, &books[&w2]);

    // Across a restart: same answers, no second payout.
    server.restart();
    assert_eq!(server.get_ok(&format!("/v1/withdrawals/{w1}"), FINANCE), done);
    assert_eq!(server.get_ok(&format!("/v1/withdrawals/{w2}"), PLATFORM), failed);
    let (status, again) = withdraw(&server, &w1, &a, "300");
    assert_eq!((status, &again), (202, &accepted), "retry of {w1} after a restart");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(payouts(&server).len(), 2);
    assert_eq!(server.assert_consistent(&a).total, 70_000);
}

#[test]
fn withdrawal_refusals() {
    let server = Server::start();
    let (a, a_sub) = server.open_account("上海丙贸易有限公司");
    server.deposit(&a_sub, "上海丙贸易有限公司", "100.00");
    let signing_failed = server.open_sign_failed_account("上海丁贸易有限公司");

    let (status, body) = withdraw(&server, &uid("w"), &a, "100.01");
    assert_error(status, &body, 422, "INSUFFICIENT_FUNDS", "more than available");
    let (status, body) = withdraw(&server, &uid("w"), "F999999", "1");
    assert_error(status, &body, 404, "ACCOUNT_NOT_FOUND", "unknown account");
    let (status, body) = withdraw(&server, &uid("w"), &signing_failed, "1");
    assert_error(status, &body, 422, "ACCOUNT_NOT_ACTIVE", "sign_failed account");
    let (status, body) = withdraw(&server, &uid("w"), &a, "0");
    assert_error(status, &body, 400, "INVALID_AMOUNT", "zero");
    let (status, body) = withdraw(&server, "bad id", &a, "1");
    assert_error(status, &body, 400, "INVALID_ID", "bad id");
    let (status, body) = server.post("/v1/withdrawals", PLATFORM, &json!({"account_id": a, "amount": "1"}));
    assert_error(status, &body, 400, "MISSING_FIELD", "no id");
    let (status, body) = server.post("/v1/withdrawals", PLATFORM, &json!({"id": uid("w"), "amount": "1"}));
    assert_error(status, &body, 400, "MISSING_FIELD", "no account_id");
    let (status, body) =
        server.post("/v1/withdrawals", PLATFORM, &json!({"id": uid("w"), "account_id": a, "amount": "1", "x": 1}));
    assert_error(status, &body, 400, "UNEXPECTED_FIELD", "unknown field");
    let (status, body) =
        server.post("/v1/withdrawals", FINANCE, &json!({"id": uid("w"), "account_id": a, "amount": "1"}));
    assert_error(status, &body, 403, "FORBIDDEN", "finance may not withdraw");
    let (status, body) = server.get("/v1/withdrawals/nope", PLATFORM);
    assert_error(status, &body, 404, "WITHDRAWAL_NOT_FOUND", "unknown withdrawal");
    // A refused request is not remembered: the same id is judged afresh.
    let w = uid("w");
    let (status, body) = withdraw(&server, &w, &a, "150");
    assert_error(status, &body, 422, "INSUFFICIENT_FUNDS", "first try");
    server.deposit(&a_sub, "上海丙贸易有限公司", "100.00");
    let (status, body) = withdraw(&server, &w, &a, "150");
    assert_eq!(status, 202, "{body}");
    assert_eq!(wait_finished(&server, &w)["status"], "succeeded");
    assert_eq!(server.assert_consistent(&a).total, 5_000);
}

#[test]
fn frozen_counts_holds_and_withdrawals_in_processing() {
    // Withdrawals to a slow bank would show this for longer; here the
    // sandbox is fast, so check the journal's after-balances instead.
    let server = Server::start();
    let (a, a_sub) = server.open_account("上海戊化工有限公司");
    server.deposit(&a_sub, "上海戊化工有限公司", "1000.00");
    server.transfer_ok(&json!({"id": uid("f"), "type": "freeze", "payer": a, "amount": "100"}));
    let w = uid("w");
    assert_eq!(withdraw(&server, &w, &a, "900").0, 202);
    wait_finished(&server, &w);
    let journal = server.journal(&a);
    let hold = journal.iter().find(|entry| entry["kind"] == "withdrawal_hold").unwrap();
    assert_eq!((cents(&hold["available_after"]), cents(&hold["frozen_after"])), (0, 100_000));
    let balance = server.assert_consistent(&a);
    assert_eq!((balance.total, balance.available, balance.frozen), (10_000, 0, 10_000));
}

#[test]
fn payouts_converge_with_bank_faults_and_kill_9_in_mid_payout() {
    let mut server = Server::start();
    let mut accounts = Vec::new();
    for index in 0..4 {
        let name = format!("上海{index}号化工有限公司");
        let settlement = if index == 3 { "6222020000009999".to_string() } else { SETTLEMENT_ACCOUNT_NO.to_string() };
        let (account, sub) = open_account_paying_to(&server, &name, &settlement);
        server.deposit(&sub, &name, "10000.00");
        accounts.push(account);
    }
    set_bank_faults(&mut server, 0.2, 0.2);
    let mut withdrawals: Vec<(String, String, String)> = Vec::new();
    for round in 0..4 {
        for (index, account) in accounts.iter().enumerate() {
            let id = uid("w");
            let amount = format!("{}.{:02}", 10 + round * 7 + index, round * 11 + index);
            let (status, body) = withdraw(&server, &id, account, &amount);
            assert_eq!(status, 202, "{body}");
            withdrawals.push((id, account.clone(), amount));
        }
        // Kill in mid-payout: some are being sent, some answered, some
        // answered by the bank but not yet in the ledger's log.
        std::thread::sleep(Duration::from_millis(round as u64 * 7));
        server.kill9();
        server.restart();
        for (id, account, amount) in &withdrawals {
            let (status, again) = withdraw(&server, id, account, amount);
            assert_eq!(status, 202, "retry of {id} after kill -9: {again}");
        }
    }
    let mut finished = Vec::new();
    for (id, _, _) in &withdrawals {
        finished.push(wait_finished(&server, id));
    }
    let books = payouts(&server);
    assert_eq!(books.len(), withdrawals.len(), "one payout per withdrawal");
    let mut paid: HashMap<String, i64> = HashMap::new();
    for shown in &finished {
        assert_matches_bank(shown, &books[shown["id"].as_str().unwrap()]);
        if shown["status"] == "succeeded" {
            *paid.entry(shown["account_id"].as_str().unwrap().to_string()).or_default() += cents(&shown["amount"]);
        }
    }
    for (index, account) in accounts.iter().enumerate() {
        let balance = server.assert_consistent(account);
        assert_eq!(balance.frozen, 0, "{account}: nothing left processing");
        let expected = 1_000_000 - paid.get(account).copied().unwrap_or(0);
        assert_eq!(balance.total, expected, "{account}: deposits less payouts that succeeded");
        if index == 3 {
            assert_eq!(balance.total, 1_000_000, "{account}: every payout to a closed account was released");
        }
    }
}

#[test]
fn suspense_adjustments_and_returns() {
    let mut server = Server::start();
    let (a, a_sub) = server.open_account("上海己化工有限公司");
    let failed = server.open_sign_failed_account("上海庚化工有限公司");
    server.deposit(&a_sub, "上海己化工有限公司", "10.00");

    // A remittance into the public adjustment account waits in suspense.
    let note = notification(PUBLIC_ADJUSTMENT_ACCOUNT, "上海己化工有限公司", "5000.00");
    let (status, body) = server.notify(&note);
    assert_eq!((status, &body["result"]), (200, &json!("suspense")), "{body}");
    let s1 = body["suspense_id"].as_str().unwrap().to_string();
    let open = server.list_all("/v1/suspense?status=open", FINANCE);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_keys(&open[0], SUSPENSE_FIELDS, "suspense entry");
    assert_eq!(open[0]["suspense_id"], s1.as_str());
    assert_eq!(open[0]["reason"], "adjustment_account");
    assert_eq!((open[0]["amount"].as_str(), open[0]["remaining"].as_str()), (Some("5000.00"), Some("5000.00")));
    assert_eq!(open[0]["bank_serial"], note["bank_serial"]);
    assert_eq!(open[0]["notification_id"], note["notification_id"]);
    let (status, body) = server.get("/v1/suspense", PLATFORM);
    assert_error(status, &body, 403, "FORBIDDEN", "platform may not list suspense");
    let (status, body) = server.get("/v1/suspense?status=closed", FINANCE);
    assert_error(status, &body, 400, "INVALID_FIELD", "bad status");

    let adj1 = uid("adj");
    let (status, first) = adjust(&server, &adj1, &s1, &a, "3000");
    assert_eq!(status, 201, "{first}");
    assert_keys(
        &first,
        &["id", "suspense_id", "account_id", "amount", "remaining", "balance", "lsn", "operator"],
        "adjustment",
    );
    assert_eq!(first["remaining"], "2000.00");
    assert_eq!(first["operator"], "li.si");
    assert_eq!(first["balance"], json!({"total": "3010.00", "available": "3010.00", "frozen": "0.00"}));
    let (status, again) = adjust(&server, &adj1, &s1, &a, "3000");
    assert_eq!((status, &again), (201, &first), "retry answers the original");
    let (status, body) = adjust(&server, &adj1, &s1, &a, "3001");
    assert_error(status, &body, 409, "ID_REUSED", "same id, other amount");
    let (status, body) = adjust(&server, &uid("adj"), &s1, &a, "2000.01");
    assert_error(status, &body, 422, "SUSPENSE_EXCEEDED", "more than remaining");
    let (status, body) = adjust(&server, &uid("adj"), &s1, &failed, "1");
    assert_error(status, &body, 422, "ACCOUNT_NOT_ACTIVE", "sign_failed account");
    let (status, body) = adjust(&server, &uid("adj"), "S000099", &a, "1");
    assert_error(status, &body, 404, "SUSPENSE_NOT_FOUND", "unknown entry");
    let (status, body) = adjust(&server, &uid("adj"), &s1, "F999999", "1");
    assert_error(status, &body, 404, "ACCOUNT_NOT_FOUND", "unknown account");
    let (status, body) = server.post(
        "/v1/adjustments",
        PLATFORM,
        &json!({"id": uid("adj"), "suspense_id": s1, "account_id": a, "amount": "1"}),
    );
    assert_error(status, &body, 403, "FORBIDDEN", "platform may not adjust");
    let (status, body) = server.transfer(&json!({"id": adj1, "type": "freeze", "payer": a, "amount": "1"}));
    assert_error(status, &body, 409, "ID_REUSED", "a transfer with an adjustment's id");

    let adj2 = uid("adj");
    let (status, second) = adjust(&server, &adj2, &s1, &a, "2000");
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["remaining"], "0.00");
    let assigned = server.list_all("/v1/suspense?status=assigned", FINANCE);
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0]["status"], "assigned");
    let (status, body) = adjust(&server, &uid("adj"), &s1, &a, "0.01");
    assert_error(status, &body, 422, "SUSPENSE_EXCEEDED", "nothing left");

    let journal = server.journal(&a);
    assert_eq!(kinds(&journal), ["deposit", "adjustment_deposit", "adjustment_deposit"]);
    assert_eq!(journal[1]["transfer_id"], adj1.as_str());
    assert_eq!(server.assert_consistent(&a).total, 501_000);

    // A name mismatch, returned to the payer.
    let (status, body) = server.notify(&notification(&a_sub, "别的公司", "70.00"));
    assert_eq!((status, &body["result"]), (200, &json!("suspense")), "{body}");
    let s2 = body["suspense_id"].as_str().unwrap().to_string();
    let r1 = uid("ret");
    let (status, returned) = server.post(&format!("/v1/suspense/{s2}/return"), FINANCE, &json!({"id": r1}));
    assert_eq!(status, 200, "{returned}");
    assert_eq!(returned["status"], "returned");
    assert_eq!(returned["remaining"], "0.00");
    assert_eq!(returned["reason"], "name_mismatch");
    assert!(returned["lsn"].is_u64(), "{returned}");
    let (status, again) = server.post(&format!("/v1/suspense/{s2}/return"), FINANCE, &json!({"id": r1}));
    assert_eq!((status, &again), (200, &returned), "retry of a return");
    let (status, body) = server.post(&format!("/v1/suspense/{s2}/return"), FINANCE, &json!({"id": uid("ret")}));
    assert_error(status, &body, 422, "SUSPENSE_CLOSED", "returned twice");
    let (status, body) = server.post(&format!("/v1/suspense/{s1}/return"), FINANCE, &json!({"id": uid("ret")}));
    assert_error(status, &body, 422, "SUSPENSE_CLOSED", "an assigned entry");
    let (status, body) = server.post("/v1/suspense/S000099/return", FINANCE, &json!({"id": uid("ret")}));
    assert_error(status, &body, 404, "SUSPENSE_NOT_FOUND", "unknown entry");
    let (status, body) = adjust(&server, &uid("adj"), &s2, &a, "1");
    assert_error(status, &body, 422, "SUSPENSE_CLOSED", "adjusting a returned entry");
    assert_eq!(server.account(&a)["balance"]["total"], "5010.00", "a return credits nobody");

    let all = server.list_all("/v1/suspense", FINANCE);
    let before: Vec<Value> = all.clone();
    assert_eq!(all.len(), 2);
    assert_eq!(server.list_all("/v1/suspense?status=returned", FINANCE).len(), 1);
    assert!(server.list_all("/v1/suspense?status=open", FINANCE).is_empty());
    let page = server.get_ok("/v1/suspense?limit=1", FINANCE);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["next_cursor"].is_string(), "{page}");

    server.restart();
    assert_unchanged(&json!(before), &json!(server.list_all("/v1/suspense", FINANCE)), "suspense after restart");
    let (status, again) = adjust(&server, &adj1, &s1, &a, "3000");
    assert_eq!((status, &again), (201, &first), "retry after a restart answers the original");
    let (status, again) = server.post(&format!("/v1/suspense/{s2}/return"), FINANCE, &json!({"id": r1}));
    assert_eq!((status, &again), (200, &returned), "return retried after a restart");
    assert_eq!(server.assert_consistent(&a).total, 501_000);
}

#[test]
fn sandbox_credits_arrive_as_signed_notifications() {
    let mut server = Server::start();
    let name = "上海辛化工有限公司";
    let (a, a_sub) = server.open_account(name);
    let credit = |to: &str, payer: &str, amount: &str| json!({"to_account_no": to, "amount": amount, "payer_name": payer, "payer_account_no": SETTLEMENT_ACCOUNT_NO});
    let (status, booked) = server.post(&format!("/v1/sandbox/{BANK}/credits"), ADMIN, &credit(&a_sub, name, "250"));
    assert_eq!(status, 202, "{booked}");
    assert_keys(&booked, &["notification_id", "bank_serial"], "sandbox credit");
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.balance(&a).total != 25_000 {
        assert!(Instant::now() < deadline, "the credit never arrived: {}", server.account(&a));
        std::thread::sleep(Duration::from_millis(20));
    }
    let journal = server.journal(&a);
    assert_eq!(kinds(&journal), ["deposit"]);
    assert_eq!(journal[0]["transfer_id"], booked["notification_id"]);

    // A payer of another name goes to suspense, found by its bank serial.
    let (status, other) = server.post(&format!("/v1/sandbox/{BANK}/credits"), ADMIN, &credit(&a_sub, "别人", "9.99"));
    assert_eq!(status, 202, "{other}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let entry = loop {
        let all = server.list_all("/v1/suspense", FINANCE);
        if let Some(entry) = all.into_iter().find(|entry| entry["bank_serial"] == other["bank_serial"]) {
            break entry;
        }
        assert!(Instant::now() < deadline, "the second credit never reached suspense");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!((entry["reason"].as_str(), entry["amount"].as_str()), (Some("name_mismatch"), Some("9.99")));
    assert_eq!(entry["notification_id"], other["notification_id"]);

    let (status, body) = server.post(&format!("/v1/sandbox/{BANK}/credits"), PLATFORM, &credit(&a_sub, name, "1"));
    assert_error(status, &body, 403, "FORBIDDEN", "platform may not book sandbox credits");
    let (status, body) = server.post("/v1/sandbox/NOBANK/credits", ADMIN, &credit(&a_sub, name, "1"));
    assert_error(status, &body, 404, "UNKNOWN_BANK", "unknown bank");
    let (status, body) = server.post(&format!("/v1/sandbox/{BANK}/credits"), ADMIN, &credit(&a_sub, name, "0"));
    assert_error(status, &body, 400, "INVALID_AMOUNT", "zero");

    // The sandbox's books hold both credits, delivered; nothing is
    // delivered twice after a restart.
    let books = sandbox_books(&server);
    assert_eq!(books.iter().filter(|line| line["kind"] == "credit").count(), 2, "{books:?}");
    server.restart();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.balance(&a).total, 25_000);
    assert_eq!(server.list_all("/v1/suspense", FINANCE).len(), 1);
}

/// Polls `GET /v1/transfers/{id}` until its bank_sync leaves `pending`.
fn wait_bank_sync(server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown = server.get_ok(&format!("/v1/transfers/{id}"), FINANCE);
        assert_keys(&shown["bank_sync"], &["status", "bank_serial", "failure_reason"], "bank_sync");
        if shown["bank_sync"]["status"] != "pending" {
            return shown;
        }
        assert!(Instant::now() < deadline, "transfer {id} still pending at the bank after 60 s: {shown}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Instruction lines of the sandbox's books by reference; panics on a
/// reference booked twice.
fn instructions(server: &Server) -> HashMap<String, Value> {
    let mut by_reference = HashMap::new();
    let kinds = ["forced_transfer", "adjustment", "return"];
    for line in sandbox_books(server).into_iter().filter(|line| kinds.contains(&line["kind"].as_str().unwrap_or(""))) {
        let reference = line["reference"].as_str().unwrap().to_string();
        if let Some(first) = by_reference.insert(reference.clone(), line.clone()) {
            panic!("{reference} instructed twice: {first} and {line}");
        }
    }
    by_reference
}

#[test]
fn every_movement_is_mirrored_at_the_bank_once_across_faults_and_kill_9() {
    let mut server = Server::start();
    let (a, a_sub) = server.open_account("上海壬化工有限公司");
    let (b, b_sub) = server.open_account("上海癸钢铁有限公司");
    server.deposit(&a_sub, "上海壬化工有限公司", "1000.00");
    let order = uid("O");
    let mut ids = Vec::new();
    let mut submit = |server: &Server, body: Value| {
        let committed = server.transfer_ok(&body);
        ids.push((committed["id"].as_str().unwrap().to_string(), committed["amount"].clone()));
        committed
    };
    // The five types, as an order goes: pay_freeze, partial unfreeze_pay,
    // refund of the rest, a freeze and its unfreeze, a plain transfer.
    let pf = uid("pf");
    submit(
        &server,
        json!({"id": pf, "type": "pay_freeze", "payer": a, "payee": b, "amount": "300", "order_id": order}),
    );
    submit(&server, json!({"id": uid("up"), "type": "unfreeze_pay", "hold_id": pf, "payee": a, "amount": "100"}));
    submit(&server, json!({"id": uid("uf"), "type": "unfreeze", "hold_id": pf}));
    let fz = uid("fz");
    submit(&server, json!({"id": fz, "type": "freeze", "payer": a, "amount": "50"}));
    submit(&server, json!({"id": uid("uf"), "type": "unfreeze", "hold_id": fz, "amount": "20"}));
    submit(&server, json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": b, "amount": "10.01"}));
    for (id, _) in &ids {
        let shown = wait_bank_sync(&server, id);
        assert_eq!(shown["bank_sync"]["status"], "confirmed", "{shown}");
        assert!(shown["bank_sync"]["bank_serial"].is_string(), "{shown}");
    }
    let booked = instructions(&server);
    for (id, amount) in &ids {
        let line = &booked[id];
        assert_eq!((&line["kind"], &line["amount"]), (&json!("forced_transfer"), amount), "{line}");
        let shown = server.get_ok(&format!("/v1/transfers/{id}"), PLATFORM);
        assert_eq!(shown["bank_sync"]["bank_serial"], line["bank_serial"], "{shown} vs {line}");
    }
    let first_pay = &booked[&ids[0].0];
    assert_eq!(
        (first_pay["account_no"].as_str(), first_pay["counter_account_no"].as_str()),
        (Some(&*a_sub), Some(&*b_sub))
    );

    // Adjustments and returns are instructions too.
    let (_, body) = server.notify(&notification(PUBLIC_ADJUSTMENT_ACCOUNT, "某公司", "80.00"));
    let s1 = body["suspense_id"].as_str().unwrap().to_string();
    let adj = uid("adj");
    assert_eq!(adjust(&server, &adj, &s1, &b, "30").0, 201);
    let ret = uid("ret");
    let (status, body) = server.post(&format!("/v1/suspense/{s1}/return"), FINANCE, &json!({"id": ret}));
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(instructions(&server).contains_key(&adj) && instructions(&server).contains_key(&ret)) {
        assert!(Instant::now() < deadline, "adjustment and return never reached the bank");
        std::thread::sleep(Duration::from_millis(20));
    }
    let booked = instructions(&server);
    assert_eq!((booked[&adj]["kind"].as_str(), booked[&adj]["amount"].as_str()), (Some("adjustment"), Some("30.00")));
    assert_eq!(booked[&adj]["account_no"], PUBLIC_ADJUSTMENT_ACCOUNT);
    assert_eq!(booked[&adj]["counter_account_no"], b_sub.as_str());
    assert_eq!((booked[&ret]["kind"].as_str(), booked[&ret]["amount"].as_str()), (Some("return"), Some("50.00")));

    let failures = server.get_ok("/v1/bank-sync/failures", FINANCE);
    assert_eq!(failures, json!({"items": [], "next_cursor": null}));
    let (status, body) = server.get("/v1/bank-sync/failures", PLATFORM);
    assert_error(status, &body, 403, "FORBIDDEN", "platform may not list bank-sync failures");

    // With a flaky bank and kill -9 in the middle, everything still
    // reaches the bank exactly once.
    set_bank_faults(&mut server, 0.2, 0.2);
    let mut more = Vec::new();
    for round in 0..3 {
        for _ in 0..20 {
            let id = uid("t");
            server.transfer_ok(&json!({"id": id, "type": "transfer", "payer": a, "payee": b, "amount": "0.01"}));
            more.push(id);
        }
        std::thread::sleep(Duration::from_millis(round * 5));
        server.kill9();
        server.restart();
    }
    for id in more.iter().chain(ids.iter().map(|(id, _)| id)) {
        assert_eq!(wait_bank_sync(&server, id)["bank_sync"]["status"], "confirmed");
    }
    let booked = instructions(&server);
    assert_eq!(booked.len(), ids.len() + more.len() + 2, "one instruction per movement, adjustment and return");
    let (status, metrics) = server.get("/metrics", NO_TOKEN);
    let text = metrics.as_str().unwrap_or_default();
    assert_eq!(status, 200);
    for name in ["fundledger_bank_work_enqueued_total", "fundledger_bank_work_answered_total"] {
        assert!(text.contains(name), "/metrics lacks {name}");
    }
    server.assert_consistent(&a);
    server.assert_consistent(&b);
}

/// The references of the sandbox's instruction lines, in booking order.
fn instruction_order(server: &Server) -> Vec<String> {
    let booked = instructions(server);
    let mut lines: Vec<_> = sandbox_books(server)
        .into_iter()
        .filter_map(|line| line["reference"].as_str().filter(|r| booked.contains_key(*r)).map(String::from))
        .collect();
    lines.dedup();
    lines
}

/// A metric's value on `/metrics` (0 when absent).
fn metric(server: &Server, name: &str) -> f64 {
    let (status, body) = server.get("/metrics", NO_TOKEN);
    assert_eq!(status, 200);
    let text = body.as_str().unwrap_or_default().to_string();
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `count` transfers of 0.01 from `a` to `b` in one batch; their ids and
/// lsns.
fn transfer_batch(server: &Server, a: &str, b: &str, count: usize) -> Vec<(String, u64)> {
    let ids: Vec<String> = (0..count).map(|_| uid("q")).collect();
    let items: Vec<Value> =
        ids.iter().map(|id| json!({"id": id, "type": "transfer", "payer": a, "payee": b, "amount": "0.01"})).collect();
    let (status, body) = server.batch(&items);
    assert_eq!(status, 200, "{}", short(&body));
    let results = body["results"].as_array().expect("results");
    ids.into_iter()
        .zip(results)
        .map(|(id, result)| {
            assert_eq!(result["status"], 201, "{result}");
            let lsn = result["body"]["lsn"].as_u64().unwrap_or_else(|| panic!("no lsn: {result}"));
            (id, lsn)
        })
        .collect()
}

/// With room for three instructions in memory, the rest of a batch's wait
/// in the log (as the lsns of their records) and reach the bank without a
/// restart, in log order, each once; across a checkpoint taken while they
/// wait and a kill -9, too.
#[test]
fn instructions_past_the_queue_wait_in_the_log_and_reach_the_bank_in_order_once() {
    let mut server = Server::start_with(Options {
        bank_queue_instructions: Some(3),
        checkpoint_every_records: 1000,
        ..Options::default()
    });
    let (a, a_sub) = server.open_account("上海子化工有限公司");
    let (b, _) = server.open_account("上海丑钢铁有限公司");
    server.deposit(&a_sub, "上海子化工有限公司", "1000.00");
    let mut ids: Vec<String> = transfer_batch(&server, &a, &b, 300).into_iter().map(|(id, _)| id).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while instructions(&server).len() < ids.len() {
        assert!(Instant::now() < deadline, "deferred instructions never reached the bank");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(metric(&server, "fundledger_bank_work_deferred_total") >= 250.0, "most of the batch was deferred");
    assert_eq!(instruction_order(&server), ids, "the bank got them in log order");
    for id in &ids {
        assert_eq!(wait_bank_sync(&server, id)["bank_sync"]["status"], "confirmed");
    }
    assert_eq!(metric(&server, "fundledger_bank_work_deferred"), 0.0, "none waits any more");

    // A bank that fails nine calls in ten: a checkpoint is written while
    // most of the next batch still waits, then kill -9.
    set_bank_faults(&mut server, 0.9, 0.0);
    let more = transfer_batch(&server, &a, &b, 1200);
    let (last, lsn) = more.last().cloned().expect("a batch");
    let more: Vec<String> = more.into_iter().map(|(id, _)| id).collect();
    server.wait_for_checkpoint(lsn.saturating_sub(200));
    assert_eq!(server.get_ok(&format!("/v1/transfers/{last}"), FINANCE)["bank_sync"]["status"], "pending");
    assert!(metric(&server, "fundledger_bank_work_deferred") > 0.0, "{}", server.stderr_tail());
    server.kill9();
    set_bank_faults(&mut server, 0.0, 0.0);
    ids.extend(more);
    for id in &ids {
        assert_eq!(wait_bank_sync(&server, id)["bank_sync"]["status"], "confirmed");
    }
    assert_eq!(instructions(&server).len(), ids.len(), "one instruction per transfer");
    assert_eq!(instruction_order(&server), ids, "the bank got them in log order");
    server.assert_consistent(&a);
    server.assert_consistent(&b);
    server.stop();
    let (ok, report) = server.wal_verify();
    assert!(ok, "{report}");
}

/// A state checkpoint of schema 2 (what builds before 2026-12-06 wrote:
/// the pending instructions in full, record schema 1) still starts the
/// server, and each instruction it lists reaches the bank once.
#[test]
fn a_server_starts_from_a_schema_2_checkpoint_and_sends_what_it_lists_as_pending() {
    use fundledger::codec::checkpoint::{decode_state, encode_state_2, InstructionImage, PartyImage};
    use fundledger::domain::{ids::AccountId, money::Money, record::InstructionKind};

    let mut server = Server::start_with(Options { checkpoint_every_records: 1000, ..Options::default() });
    let (a, a_sub) = server.open_account("上海寅化工有限公司");
    let (b, _) = server.open_account("上海卯钢铁有限公司");
    server.deposit(&a_sub, "上海寅化工有限公司", "100.00");
    // Every bank call fails: nothing is answered, everything stays pending.
    set_bank_faults(&mut server, 1.0, 0.0);
    let sent = transfer_batch(&server, &a, &b, 1100);
    let at = server.wait_for_checkpoint(1000);
    server.stop();
    let wal_dir = server.data_dir.join("wal");
    let (lsn, payload) = fundledger_wal::load_latest_checkpoint(&wal_dir, 1 << 30).expect("read").expect("one");
    assert_eq!(lsn, at);
    let image = decode_state(&payload).expect("a state checkpoint");
    let covered: Vec<&(String, u64)> = sent.iter().filter(|(_, lsn)| *lsn <= at).collect();
    assert!(covered.len() >= 900, "the checkpoint holds most of the batch");
    let pending: Vec<u64> = image.pending.lsns().iter().collect();
    assert_eq!(pending, covered.iter().map(|(_, lsn)| *lsn).collect::<Vec<_>>(), "each unanswered, by lsn");
    let number = |id: &str| AccountId(id.trim_start_matches('F').parse().expect("account number"));
    let listed: Vec<InstructionImage> = covered
        .iter()
        .map(|(id, lsn)| InstructionImage {
            lsn: *lsn,
            reference: id.as_str().into(),
            kind: InstructionKind::ForcedTransfer,
            bank: None,
            from: PartyImage::Account(number(&a)),
            to: PartyImage::Account(number(&b)),
            amount: Money(1),
        })
        .collect();
    let old = encode_state_2(&image, &listed).expect("encode schema 2");
    fundledger_wal::write_checkpoint(&wal_dir, at, &old).expect("write");
    set_bank_faults(&mut server, 0.0, 0.0);
    assert_eq!(server.loaded_checkpoint(), at, "the schema-2 checkpoint was used: {}", server.stdout());
    for (id, _) in &sent {
        assert_eq!(wait_bank_sync(&server, id)["bank_sync"]["status"], "confirmed");
    }
    let booked = instructions(&server);
    assert_eq!(booked.len(), sent.len(), "each instruction once");
    server.assert_consistent(&a);
    server.assert_consistent(&b);
}

/// Waits until the server process has died (its crash point fired).
fn wait_dead(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.client.try_get("/healthz", NO_TOKEN).is_ok() {
        assert!(Instant::now() < deadline, "the crash point never fired");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_crash_at_any_point_of_a_payout_never_pays_twice_nor_loses_the_money() {
    // The sandbox aborts the whole process (debug builds) at the armed
    // point: before it books the payout, after it booked it but before the
    // ledger heard the answer, after the ledger heard it but before the
    // answer is in the log.
    for (point, settlement) in [
        ("before_book", SETTLEMENT_ACCOUNT_NO),
        ("after_book", SETTLEMENT_ACCOUNT_NO),
        ("after_answer", SETTLEMENT_ACCOUNT_NO),
        ("after_book", "6222020000009999"),
        ("after_answer", "6222020000009999"),
    ] {
        let mut server = Server::start();
        let name = "上海子化工有限公司";
        let (a, a_sub) = open_account_paying_to(&server, name, settlement);
        server.deposit(&a_sub, name, "1000.00");
        let crash_file = server.data_dir.join("sandbox").join(BANK).join("crash-point");
        std::fs::write(&crash_file, point).unwrap();
        let w = uid("w");
        let body = json!({"id": w, "account_id": a, "amount": "400.00"});
        // The crash may come before or after the 202 goes out.
        let first = server.client.try_post("/v1/withdrawals", PLATFORM, &body);
        wait_dead(&server);
        assert!(!crash_file.exists(), "{point}: the crash point is disarmed once it fired");
        server.restart();
        let (status, accepted) = withdraw(&server, &w, &a, "400.00");
        assert_eq!(status, 202, "{point}: {accepted}");
        if let Ok((status, answered)) = first {
            assert_eq!((status, &answered), (202, &accepted), "{point}: the retry answers the original");
        }
        let done = wait_finished(&server, &w);
        let books = payouts(&server);
        assert_eq!(books.len(), 1, "{point}: exactly one payout: {books:?}");
        assert_matches_bank(&done, &books[&w]);
        let refused = settlement.ends_with("9999");
        assert_eq!(done["status"], if refused { "failed" } else { "succeeded" }, "{point}: {done}");
        let balance = server.assert_consistent(&a);
        let expected = if refused { 100_000 } else { 60_000 };
        assert_eq!((balance.total, balance.frozen), (expected, 0), "{point}");
        // And once more across a plain restart: nothing changes.
        server.restart();
        assert_eq!(server.get_ok(&format!("/v1/withdrawals/{w}"), PLATFORM), done, "{point}");
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(payouts(&server).len(), 1, "{point}");
    }
}

/// The full day of two customers; returns what must not depend on
/// how flaky the bank was: balances, journals (kinds and deltas) and the
/// withdrawals' ends. Checks the sandbox's books against the ledger one to
/// one on the way.
fn full_day(server: &Server) -> Value {
    let buyer = "上海丑化工有限公司";
    let seller = "江苏寅钢铁有限公司";
    let (a, a_sub) = server.open_account(buyer);
    let (b, _) = open_account_paying_to(server, seller, "6222020000009999");
    // Money in: the buyer by notification, the seller through the public
    // adjustment account and finance's adjustment.
    server.deposit(&a_sub, buyer, "5000.00");
    let (_, body) = server.notify(&notification(PUBLIC_ADJUSTMENT_ACCOUNT, seller, "800.00"));
    let suspense_id = body["suspense_id"].as_str().unwrap().to_string();
    let adj = uid("adj");
    assert_eq!(adjust(server, &adj, &suspense_id, &b, "800.00").0, 201);
    // The order: pay_freeze, a partial unfreeze to the seller, the rest
    // refunded to the buyer.
    let order = uid("O");
    let pf = uid("pf");
    let mut movements = vec![pf.clone(), uid("uf"), uid("refund")];
    server.transfer_ok(
        &json!({"id": pf, "type": "pay_freeze", "payer": a, "payee": b, "amount": "1000", "order_id": order}),
    );
    server.transfer_ok(
        &json!({"id": movements[1], "type": "unfreeze", "hold_id": pf, "amount": "600", "order_id": order}),
    );
    server.transfer_ok(
        &json!({"id": movements[2], "type": "unfreeze_pay", "hold_id": pf, "payee": a, "order_id": order}),
    );
    // Money out: the buyer's withdrawal succeeds, the seller's (settlement
    // account ending in 9999) fails.
    let wa = uid("w");
    let wb = uid("w");
    assert_eq!(withdraw(server, &wa, &a, "1200.00").0, 202);
    assert_eq!(withdraw(server, &wb, &b, "700.00").0, 202);
    let done_a = wait_finished(server, &wa);
    let done_b = wait_finished(server, &wb);
    assert_eq!((done_a["status"].as_str(), done_b["status"].as_str()), (Some("succeeded"), Some("failed")));
    for id in &movements {
        assert_eq!(wait_bank_sync(server, id)["bank_sync"]["status"], "confirmed");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !instructions(server).contains_key(&adj) {
        assert!(Instant::now() < deadline, "the adjustment never reached the bank");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The bank's books and the ledger, one to one.
    let books = instructions(server);
    let payouts = payouts(server);
    movements.push(adj.clone());
    let mut ledger_refs: Vec<&String> = movements.iter().collect();
    ledger_refs.sort();
    let mut bank_refs: Vec<&String> = books.keys().collect();
    bank_refs.sort();
    assert_eq!(bank_refs, ledger_refs, "instructions at the bank are the ledger's movements");
    let mut paid: Vec<&String> = payouts.keys().collect();
    paid.sort();
    let mut withdrawals = vec![&wa, &wb];
    withdrawals.sort();
    assert_eq!(paid, withdrawals, "payouts at the bank are the ledger's withdrawals");
    assert_matches_bank(&done_a, &payouts[&wa]);
    assert_matches_bank(&done_b, &payouts[&wb]);
    assert_eq!(books[&adj]["amount"], "800.00");
    let strip = |journal: Vec<Value>| -> Vec<Value> {
        journal.iter().map(|e| json!([e["kind"], e["available_delta"], e["frozen_delta"], e["total_after"]])).collect()
    };
    json!({
        "buyer": {"balance": server.account(&a)["balance"], "journal": strip(server.journal(&a))},
        "seller": {"balance": server.account(&b)["balance"], "journal": strip(server.journal(&b))},
        "withdrawals": [done_a["status"], done_b["status"], done_b["failure_reason"]],
        "suspense": server.list_all("/v1/suspense", FINANCE).iter().map(|e| json!([e["status"], e["remaining"]])).collect::<Vec<_>>(),
    })
}

#[test]
fn a_full_day_matches_the_banks_books_and_a_flaky_bank_converges_to_the_same_end() {
    let calm = Server::start();
    let calm_end = full_day(&calm);
    assert_eq!(calm_end["buyer"]["balance"], json!({"total": "3200.00", "available": "3200.00", "frozen": "0.00"}));
    assert_eq!(calm_end["seller"]["balance"], json!({"total": "1400.00", "available": "1400.00", "frozen": "0.00"}));
    let mut flaky = Server::start();
    set_bank_faults(&mut flaky, 0.2, 0.2);
    let flaky_end = full_day(&flaky);
    assert_unchanged(&calm_end, &flaky_end, "the same day with fault_rate and unknown_rate at 0.2");
}
