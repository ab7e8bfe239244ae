//! Finance, from outside: reconciliation (对账) of a bank's day with an
//! uploaded statement and with the sandbox bank's own, the discrepancies
//! it finds worked through by two finance operators (maker-checker), both
//! surviving `kill -9`, and the trial balance staying balanced through a
//! random mix of every movement type, and every finance read unchanged by a
//! restart from a state checkpoint taken after that mix.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const SUMMARY_KEYS: [&str; 6] =
    ["bank_lines", "ledger_lines", "matched", "missing_in_ledger", "missing_in_bank", "amount_mismatch"];

fn summary(answer: &Value) -> [u64; 6] {
    SUMMARY_KEYS.map(|key| answer["summary"][key].as_u64().unwrap_or_else(|| panic!("summary.{key}: {answer}")))
}

fn line(reference: &str, kind: &str, amount: &str) -> Value {
    json!({"bank_serial": uid("SB"), "reference": reference, "kind": kind, "account_no": "310940100000001",
        "counter_account_no": "310940100000002", "amount": amount, "booked_at": now_rfc3339()})
}

fn reconcile(server: &Server, body: &Value) -> Value {
    let (status, answer) = server.post("/v1/reconciliations", FINANCE, body);
    assert_eq!(status, 201, "POST /v1/reconciliations {}: {answer}", short(body));
    answer
}

/// Two active accounts, A funded with 1000.00 by a bank notification.
/// Returns (a, b, a's name, the notification id).
fn funded_pair(server: &Server) -> (String, String, String) {
    let name = "上海甲化工有限公司".to_string();
    let (a, sub_a) = server.open_account(&name);
    let (b, _) = server.open_account("江苏乙钢铁有限公司");
    let credit = notification(&sub_a, &name, "1000.00");
    let (status, answer) = server.notify(&credit);
    assert_eq!((status, answer["result"].as_str()), (200, Some("credited")), "{answer}");
    (a, b, credit["notification_id"].as_str().unwrap().to_string())
}

#[test]
fn an_uploaded_statement_finds_one_missing_at_the_bank_one_extra_and_one_mismatch() {
    let server = Server::start();
    let (a, b, notification_id) = funded_pair(&server);
    let t1 = server.transfer_ok(&json!({"id": "t-1", "type": "transfer", "payer": a, "payee": b, "amount": "10.00"}));
    server.transfer_ok(&json!({"id": "t-2", "type": "freeze", "payer": a, "amount": "20.00"}));
    server.transfer_ok(&json!({"id": "t-3", "type": "pay_freeze", "payer": a, "payee": b, "amount": "30.00"}));
    server.transfer_ok(&json!({"id": "t-4", "type": "unfreeze", "hold_id": "t-2"}));
    assert_eq!(t1["status"], "committed");
    // The bank's lines: t-3 missing, t-4 at another amount, one line the
    // ledger never made.
    let statement = vec![
        line(&notification_id, "credit", "1000.00"),
        line("t-1", "forced_transfer", "10.00"),
        line("t-2", "forced_transfer", "20.00"),
        line("t-4", "forced_transfer", "20.01"),
        line("x-extra", "forced_transfer", "5.00"),
    ];
    let body = json!({"bank": BANK, "date": today(), "statement": statement});
    let answer = reconcile(&server, &body);
    assert_eq!(summary(&answer), [5, 5, 3, 1, 1, 1], "{answer}");
    assert!(answer["reconciliation_id"].as_str().is_some_and(|id| id.starts_with("REC")), "{answer}");
    assert_eq!((answer["bank"].as_str(), answer["date"].as_str()), (Some(BANK), Some(today().as_str())));
    let discrepancies: Vec<(String, String, Value, Value)> = answer["discrepancies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["reference"].as_str().unwrap().to_string(),
                d["ledger_amount"].clone(),
                d["bank_amount"].clone(),
            )
        })
        .collect();
    // In statement order, then what the bank lacks in commit order.
    assert_eq!(
        discrepancies,
        vec![
            ("amount_mismatch".into(), "t-4".into(), json!("20.00"), json!("20.01")),
            ("missing_in_ledger".into(), "x-extra".into(), Value::Null, json!("5.00")),
            ("missing_in_bank".into(), "t-3".into(), json!("30.00"), Value::Null),
        ],
        "{answer}"
    );
    assert_eq!(answer["discrepancies_truncated"], false);
    // Reconciling reads; it never moves money.
    assert_eq!(server.balance(&a).total, 100_000 - 1000 - 3000);
    // The same day again, this time matching: every line matched.
    let statement = vec![
        line(&notification_id, "credit", "1000.00"),
        line("t-1", "forced_transfer", "10.00"),
        line("t-2", "forced_transfer", "20.00"),
        line("t-3", "forced_transfer", "30.00"),
        line("t-4", "forced_transfer", "20.00"),
    ];
    let again = reconcile(&server, &json!({"bank": BANK, "date": today(), "statement": statement}));
    assert_eq!(summary(&again), [5, 5, 5, 0, 0, 0], "{again}");
    assert_ne!(again["reconciliation_id"], answer["reconciliation_id"]);
    // A day with nothing in the ledger: every bank line is missing in it.
    let other_day = reconcile(
        &server,
        &json!({"bank": BANK, "date": "2001-01-01", "statement": [line("t-1", "forced_transfer", "10.00")]}),
    );
    assert_eq!(summary(&other_day), [1, 0, 0, 1, 0, 0], "{other_day}");
}

#[test]
fn reconciliations_are_read_back_by_id_and_bad_requests_get_exact_codes() {
    let server = Server::start();
    let created = reconcile(&server, &json!({"bank": BANK, "date": today(), "statement": []}));
    let id = created["reconciliation_id"].as_str().unwrap();
    let read = server.get_ok(&format!("/v1/reconciliations/{id}"), FINANCE);
    assert_eq!(read, created);
    for missing in ["REC999999", "X1", "REC1"] {
        let (status, body) = server.get(&format!("/v1/reconciliations/{missing}"), FINANCE);
        assert_error(status, &body, 404, "RECONCILIATION_NOT_FOUND", missing);
    }
    let (status, body) = server.get(&format!("/v1/reconciliations/{id}"), PLATFORM);
    assert_error(status, &body, 403, "FORBIDDEN", "platform reads a reconciliation");
    let (status, body) = server.get(&format!("/v1/reconciliations/{id}"), NO_TOKEN);
    assert_error(status, &body, 401, "UNAUTHENTICATED", "no token");
    let (status, body) = server.post("/v1/reconciliations", RISK, &json!({"bank": BANK, "date": today()}));
    assert_error(status, &body, 403, "FORBIDDEN", "risk reconciles");
    let ok_line = line("t-1", "forced_transfer", "1.00");
    let cases = [
        (json!({"date": today()}), 400, "MISSING_FIELD"),
        (json!({"bank": BANK}), 400, "MISSING_FIELD"),
        (json!({"bank": BANK, "date": "2026-13-01"}), 400, "INVALID_FIELD"),
        (json!({"bank": BANK, "date": 20261124}), 400, "INVALID_FIELD"),
        (json!({"bank": BANK, "date": today(), "extra": 1}), 400, "UNEXPECTED_FIELD"),
        (json!({"bank": BANK, "date": today(), "statement": "lines"}), 400, "INVALID_FIELD"),
        (json!({"bank": BANK, "date": today(), "statement": [1]}), 400, "INVALID_FIELD"),
        (
            json!({"bank": BANK, "date": today(), "statement": [{"reference": "a", "kind": "gift", "amount": "1"}]}),
            400,
            "INVALID_FIELD",
        ),
        (
            json!({"bank": BANK, "date": today(), "statement": [{"reference": "a", "kind": "credit", "amount": 1}]}),
            400,
            "INVALID_AMOUNT",
        ),
        (
            json!({"bank": BANK, "date": today(), "statement": [{"reference": "a/b", "kind": "credit", "amount": "1"}]}),
            400,
            "INVALID_ID",
        ),
        (
            json!({"bank": BANK, "date": today(), "statement": [{"kind": "credit", "amount": "1"}]}),
            400,
            "MISSING_FIELD",
        ),
        (
            json!({"bank": BANK, "date": today(), "statement": [ok_line.clone(), {"reference": "a", "kind": "credit", "amount": "1", "memo": "x"}]}),
            400,
            "UNEXPECTED_FIELD",
        ),
        (json!({"bank": "NOBANK", "date": today(), "statement": [ok_line]}), 422, "UNKNOWN_BANK"),
        (json!({"bank": "NOBANK", "date": today()}), 422, "UNKNOWN_BANK"),
    ];
    for (body, want_status, want_code) in cases {
        let (status, answer) = server.post("/v1/reconciliations", FINANCE, &body);
        assert_error(status, &answer, want_status, want_code, &short(&body));
    }
    for (raw, want) in
        [(&b"{\"bank\":"[..], "INVALID_JSON"), (&b"[]"[..], "INVALID_JSON"), (&b"\xff"[..], "INVALID_JSON")]
    {
        let (status, answer) = server.post_raw("/v1/reconciliations", FINANCE, raw, Some(JSON));
        assert_error(status, &answer, 400, want, &String::from_utf8_lossy(raw));
    }
    let (status, answer) = server.post_raw("/v1/reconciliations", FINANCE, b"{}", Some("text/plain"));
    assert_error(status, &answer, 415, "UNSUPPORTED_MEDIA_TYPE", "text/plain");
    // Nothing refused was recorded: the next id follows the first.
    let next = reconcile(&server, &json!({"bank": BANK, "date": today()}));
    assert_eq!(next["reconciliation_id"], "REC000002", "{next}");
}

#[test]
fn a_statement_larger_than_the_default_body_limit_streams_through() {
    // 20,000 lines (~2.6 MB) against a 64 KiB body limit: the statement is
    // read as a stream, bounded by max_statement_bytes, not max_body_bytes.
    let server = Server::start_with(Options { max_body_bytes: Some(65_536), ..Options::default() });
    let lines: Vec<Value> = (0..20_000).map(|n| line(&format!("x-{n}"), "credit", "1.00")).collect();
    let answer = reconcile(&server, &json!({"bank": BANK, "date": today(), "statement": lines}));
    assert_eq!(summary(&answer), [20_000, 0, 0, 20_000, 0, 0]);
    assert_eq!(answer["discrepancies"].as_array().unwrap().len(), 500, "the recorded discrepancies are capped");
    assert_eq!(answer["discrepancies_truncated"], true);
}

#[test]
fn a_statement_over_max_statement_bytes_is_413_and_nothing_is_recorded() {
    let server = Server::start_with(Options { max_statement_bytes: Some(100_000), ..Options::default() });
    let lines: Vec<Value> = (0..2_000).map(|n| line(&format!("x-{n}"), "credit", "1.00")).collect();
    let body = serde_json::to_vec(&json!({"bank": BANK, "date": today(), "statement": lines})).unwrap();
    assert!(body.len() > 100_000);
    // Declared too large up front, and (chunked, no length) found too large
    // while streaming.
    // The server answers before it has read the body and stops reading; a
    // raw client still gets to read that answer.
    let (status, answer) =
        server.raw_post("/v1/reconciliations", FINANCE, JSON, &body).expect("an answer to a statement over the limit");
    assert_error(status, &answer, 413, "BODY_TOO_LARGE", "a statement over the limit");
    let mut raw = format!(
        "POST /v1/reconciliations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {FINANCE}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(8192) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let (status, answer) = server.raw_http(&raw).expect("an answer to a chunked upload");
    assert_error(status, &answer, 413, "BODY_TOO_LARGE", "a chunked statement over the limit");
    // Below the limit it goes through; the refused ones left no run.
    let small = reconcile(&server, &json!({"bank": BANK, "date": today(), "statement": [line("x", "credit", "1.00")]}));
    assert_eq!(small["reconciliation_id"], "REC000001", "{small}");
}

/// Waits until `done()` or panics after 30 s.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn without_a_statement_a_day_of_movements_matches_the_sandbox_bank() {
    let server = Server::start();
    let name = "上海甲化工有限公司";
    let (a, sub_a) = server.open_account(name);
    let (b, _) = server.open_account("江苏乙钢铁有限公司");
    let credit = |to: &str, amount: &str, payer: &str| {
        let body = json!({"to_account_no": to, "amount": amount, "payer_name": payer, "payer_account_no": SETTLEMENT_ACCOUNT_NO});
        let (status, answer) = server.post(&format!("/v1/sandbox/{BANK}/credits"), ADMIN, &body);
        assert_eq!(status, 202, "{answer}");
    };
    credit(&sub_a, "500.00", name);
    credit(PUBLIC_ADJUSTMENT_ACCOUNT, "80.00", "江苏乙钢铁有限公司");
    credit(PUBLIC_ADJUSTMENT_ACCOUNT, "7.00", "不明汇款人");
    wait_until("the credit", || server.balance(&a).available == 50_000);
    wait_until("two suspense entries", || server.list_all("/v1/suspense?status=open", FINANCE).len() == 2);
    let open = server.list_all("/v1/suspense?status=open", FINANCE);
    let by_amount = |cents: &str| open.iter().find(|entry| entry["amount"] == cents).unwrap()["suspense_id"].clone();
    let (status, adjusted) = server.post(
        "/v1/adjustments",
        FINANCE,
        &json!({"id": "ADJ-1", "suspense_id": by_amount("80.00"), "account_id": b, "amount": "80.00"}),
    );
    assert_eq!(status, 201, "{adjusted}");
    let suspense_id = by_amount("7.00");
    let (status, returned) = server.post(
        &format!("/v1/suspense/{}/return", suspense_id.as_str().unwrap()),
        FINANCE,
        &json!({"id": "RET-1"}),
    );
    assert_eq!(status, 200, "{returned}");
    for transfer in [
        json!({"id": "s-1", "type": "transfer", "payer": a, "payee": b, "amount": "10.00"}),
        json!({"id": "s-2", "type": "freeze", "payer": a, "amount": "20.00"}),
        json!({"id": "s-3", "type": "unfreeze", "hold_id": "s-2", "amount": "5.00"}),
        json!({"id": "s-4", "type": "unfreeze_pay", "hold_id": "s-2", "payee": b}),
        json!({"id": "s-5", "type": "pay_freeze", "payer": a, "payee": b, "amount": "30.00"}),
    ] {
        server.transfer_ok(&transfer);
    }
    let (status, withdrawal) =
        server.post("/v1/withdrawals", PLATFORM, &json!({"id": "w-1", "account_id": b, "amount": "40.00"}));
    assert_eq!(status, 202, "{withdrawal}");
    wait_until("the payout", || server.get_ok("/v1/withdrawals/w-1", PLATFORM)["status"] == "succeeded");
    for id in ["s-1", "s-2", "s-3", "s-4", "s-5"] {
        wait_until(id, || {
            server.get_ok(&format!("/v1/transfers/{id}"), PLATFORM)["bank_sync"]["status"] == "confirmed"
        });
    }
    // 3 credits, 1 adjustment, 1 return, 5 transfers, 1 payout. The
    // adjustment and the return reach the bank asynchronously: retry
    // until the bank has booked them.
    let mut last = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        last = reconcile(&server, &json!({"bank": BANK, "date": today()}));
        if summary(&last) == [11, 11, 11, 0, 0, 0] {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(summary(&last), [11, 11, 11, 0, 0, 0], "{last}");
    assert_eq!(last["discrepancies"], json!([]));
    assert_eq!(last["source"], "bank");
    let stored =
        server.get_ok(&format!("/v1/reconciliations/{}", last["reconciliation_id"].as_str().unwrap()), FINANCE);
    assert_eq!(stored, last);
}

/// A reconciliation with three discrepancies; returns their ids in the
/// order of the answer.
fn three_discrepancies(server: &Server) -> (Value, Vec<String>) {
    let statement = vec![
        line("ghost-1", "forced_transfer", "1.00"),
        line("ghost-2", "credit", "2.00"),
        line("ghost-3", "payout", "3.00"),
    ];
    let answer = reconcile(server, &json!({"bank": BANK, "date": today(), "statement": statement}));
    let ids = answer["discrepancies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["status"], "open", "{d}");
            d["discrepancy_id"].as_str().unwrap().to_string()
        })
        .collect::<Vec<_>>();
    assert_eq!(ids.len(), 3, "{answer}");
    (answer, ids)
}

fn propose(server: &Server, token: &str, id: &str, body: &Value) -> (u16, Value) {
    server.post(&format!("/v1/discrepancies/{id}/resolve"), token, body)
}

fn approve(server: &Server, token: &str, id: &str) -> (u16, Value) {
    server.post(&format!("/v1/discrepancies/{id}/approve"), token, &json!({}))
}

#[test]
fn discrepancies_are_resolved_by_one_operator_proposing_and_another_approving() {
    let server = Server::start();
    let (_, ids) = three_discrepancies(&server);
    let open = server.list_all("/v1/discrepancies?status=open", FINANCE);
    assert_eq!(open.iter().map(|d| d["discrepancy_id"].as_str().unwrap()).collect::<Vec<_>>(), ids);
    assert_eq!(open[0]["reference"], "ghost-1");
    assert_eq!(open[0]["kind"], "missing_in_ledger");
    let d1 = &ids[0];

    // Maker.
    let note = json!({"note": "bank booked a test line; confirmed by phone"});
    let (status, proposed) = propose(&server, FINANCE, d1, &note);
    assert_eq!(status, 200, "{proposed}");
    assert_eq!((proposed["status"].as_str(), proposed["proposed_by"].as_str()), (Some("proposed"), Some("li.si")));
    assert_eq!(proposed["note"], note["note"]);
    let (status, again) = propose(&server, FINANCE, d1, &note);
    assert_eq!((status, &again), (200, &proposed), "the same proposal again answers the current state");
    let (status, body) = propose(&server, FINANCE_2, d1, &json!({"note": "another idea"}));
    assert_error(status, &body, 409, "INVALID_STATE", "a second proposal");

    // Checker: not the maker, not without a name, not another role.
    let (status, body) = approve(&server, FINANCE, d1);
    assert_error(status, &body, 422, "SAME_OPERATOR", "the proposer approves");
    let (status, body) = approve(&server, FINANCE_NO_OPERATOR, d1);
    assert_error(status, &body, 403, "FORBIDDEN", "a token without an operator name approves");
    let (status, body) = approve(&server, PLATFORM, d1);
    assert_error(status, &body, 403, "FORBIDDEN", "platform approves");
    let (status, body) = propose(&server, FINANCE_NO_OPERATOR, &ids[1], &note);
    assert_error(status, &body, 403, "FORBIDDEN", "a token without an operator name proposes");
    let (status, resolved) = approve(&server, FINANCE_2, d1);
    assert_eq!(status, 200, "{resolved}");
    assert_eq!((resolved["status"].as_str(), resolved["approved_by"].as_str()), (Some("resolved"), Some("zhao.liu")));
    assert!(is_rfc3339_millis(&resolved["resolved_at"]), "{resolved}");
    let (status, again) = approve(&server, FINANCE_2, d1);
    assert_eq!((status, &again), (200, &resolved), "a repeated approval answers the current state");
    let (status, body) = propose(&server, FINANCE, d1, &note);
    assert_error(status, &body, 409, "INVALID_STATE", "proposing a resolved one");
    let (status, body) = approve(&server, FINANCE_2, &ids[1]);
    assert_error(status, &body, 409, "INVALID_STATE", "approving an open one");

    // Resolved by an adjustment deposit linked to it.
    let (a, _) = server.open_account("上海甲化工有限公司");
    let (_, suspense) = server.notify(&notification(PUBLIC_ADJUSTMENT_ACCOUNT, "某人", "2.00"));
    let adjustment = json!({"id": "ADJ-D2", "suspense_id": suspense["suspense_id"], "account_id": a, "amount": "2.00"});
    let (status, body) = server.post("/v1/adjustments", FINANCE, &adjustment);
    assert_eq!(status, 201, "{body}");
    let (status, body) = propose(&server, FINANCE_2, &ids[1], &json!({"adjustment_id": "ADJ-NONE"}));
    assert_error(status, &body, 404, "ADJUSTMENT_NOT_FOUND", "an unknown adjustment");
    let (status, proposed) = propose(&server, FINANCE_2, &ids[1], &json!({"adjustment_id": "ADJ-D2"}));
    assert_eq!((status, proposed["adjustment_id"].as_str()), (200, Some("ADJ-D2")), "{proposed}");
    let (status, resolved) = approve(&server, FINANCE, &ids[1]);
    assert_eq!((status, resolved["status"].as_str()), (200, Some("resolved")), "{resolved}");

    // Lists by status, and the reconciliation shows the current states.
    let resolved_ids: Vec<String> = server
        .list_all("/v1/discrepancies?status=resolved", FINANCE)
        .iter()
        .map(|d| d["discrepancy_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(resolved_ids, ids[..2].to_vec());
    assert_eq!(server.list_all("/v1/discrepancies?status=open", FINANCE).len(), 1);
    let one = server.get_ok(&format!("/v1/discrepancies/{}", ids[2]), FINANCE);
    assert_eq!(one["status"], "open");
    let rec = server.get_ok(&format!("/v1/reconciliations/{}", one["reconciliation_id"].as_str().unwrap()), FINANCE);
    let states: Vec<&str> =
        rec["discrepancies"].as_array().unwrap().iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!(states, ["resolved", "resolved", "open"]);

    // Bad input.
    for (body, code) in [
        (json!({}), "MISSING_FIELD"),
        (json!({"note": 5}), "INVALID_FIELD"),
        (json!({"note": "x".repeat(257)}), "INVALID_FIELD"),
        (json!({"adjustment_id": "a b"}), "INVALID_ID"),
        (json!({"note": "x", "colour": "red"}), "UNEXPECTED_FIELD"),
    ] {
        let (status, answer) = propose(&server, FINANCE, &ids[2], &body);
        assert_error(status, &answer, 400, code, &short(&body));
    }
    for missing in ["D999999", "nope"] {
        let (status, body) = propose(&server, FINANCE, missing, &note);
        assert_error(status, &body, 404, "DISCREPANCY_NOT_FOUND", missing);
        let (status, body) = server.get(&format!("/v1/discrepancies/{missing}"), FINANCE);
        assert_error(status, &body, 404, "DISCREPANCY_NOT_FOUND", missing);
    }
    for query in ["status=closed", "limit=0", "reconciliation_id=R1", "colour=red"] {
        let (status, body) = server.get(&format!("/v1/discrepancies?{query}"), FINANCE);
        assert_error(status, &body, 400, "INVALID_FIELD", query);
    }
    let (status, body) = server.get("/v1/discrepancies", PLATFORM);
    assert_error(status, &body, 403, "FORBIDDEN", "platform lists discrepancies");
}

#[test]
fn reconciliations_and_discrepancy_states_survive_kill_9() {
    let mut server = Server::start();
    let (first, ids) = three_discrepancies(&server);
    let (status, _) = propose(&server, FINANCE, &ids[0], &json!({"note": "n0"}));
    assert_eq!(status, 200);
    assert_eq!(approve(&server, FINANCE_2, &ids[0]).0, 200);
    assert_eq!(propose(&server, FINANCE, &ids[1], &json!({"note": "n1"})).0, 200);
    let rec_path = format!("/v1/reconciliations/{}", first["reconciliation_id"].as_str().unwrap());
    let before = server.get_ok(&rec_path, FINANCE);
    let all_before = server.list_all("/v1/discrepancies", FINANCE);
    server.kill9();
    server.restart();
    assert_eq!(server.get_ok(&rec_path, FINANCE), before);
    assert_eq!(server.list_all("/v1/discrepancies", FINANCE), all_before);
    // The recovered state goes on: same operator still refused, another
    // approves, new ids follow the old ones.
    assert_eq!(approve(&server, FINANCE, &ids[1]).0, 422);
    let (status, resolved) = approve(&server, FINANCE_2, &ids[1]);
    assert_eq!((status, resolved["status"].as_str()), (200, Some("resolved")), "{resolved}");
    let (second, new_ids) = three_discrepancies(&server);
    assert_eq!(second["reconciliation_id"], "REC000002");
    assert_eq!(new_ids[0], "D000004");
}

// ---------------------------------------------------------------------------
// trial balance

fn trial_balance(server: &Server) -> Value {
    let answer = server.get_ok("/v1/ledger/trial-balance", FINANCE);
    assert_keys(
        &answer,
        &[
            "lsn",
            "customer_available",
            "customer_frozen",
            "customer_total",
            "suspense_open",
            "bank_custody",
            "withdrawals_in_flight",
            "balanced",
        ],
        "trial balance",
    );
    assert_eq!(answer["balanced"], true, "{answer}");
    answer
}

/// Opens an account whose settlement account ends in 9999: the sandbox
/// refuses its payouts.
fn open_closed_payee_account(server: &Server, name: &str) -> (String, String) {
    let body = json!({"name": name, "credential_no": credential_no(), "bank": BANK,
        "settlement_account": {"bank_name": "某银行", "account_no": "6222020000009999", "account_name": name}});
    let (status, application) = server.post("/v1/applications", PLATFORM, &body);
    assert_eq!(status, 201, "{application}");
    let app_id = application["application_id"].as_str().unwrap();
    let (status, approved) = server.post(&format!("/v1/applications/{app_id}/approve"), RISK, &json!({}));
    assert_eq!(status, 200, "{approved}");
    let account_id = approved["account_id"].as_str().unwrap().to_string();
    let account = server.wait_signed(&account_id);
    (account_id, account["sub_account_no"].as_str().unwrap().to_string())
}

/// Everything finance and the platform can read that a checkpoint must
/// carry: the trial balance (with its lsn), every account with its whole
/// journal, the suspense entries, every withdrawal, a reconciliation and
/// the discrepancies.
fn finance_view(server: &Server, accounts: &[String], withdrawals: &[(String, i64)], rec: &str) -> Value {
    let mut seen = serde_json::Map::new();
    seen.insert("trial balance".into(), trial_balance(server));
    seen.insert("accounts".into(), json!(server.list_all("/v1/accounts", FINANCE)));
    for account in accounts {
        seen.insert(format!("journal {account}"), json!(server.journal(account)));
    }
    seen.insert("suspense".into(), json!(server.list_all("/v1/suspense", FINANCE)));
    for (id, _) in withdrawals {
        seen.insert(format!("withdrawal {id}"), server.get_ok(&format!("/v1/withdrawals/{id}"), PLATFORM));
    }
    seen.insert("reconciliation".into(), server.get_ok(&format!("/v1/reconciliations/{rec}"), FINANCE));
    seen.insert("discrepancies".into(), json!(server.list_all("/v1/discrepancies", FINANCE)));
    Value::Object(seen)
}

/// Waits until the log stops growing (bank confirmations come in on their
/// own) for a second; returns its last lsn.
fn quiet_lsn(server: &Server) -> u64 {
    let mut last = trial_balance(server)["lsn"].as_u64().expect("lsn");
    loop {
        std::thread::sleep(Duration::from_millis(1000));
        let now = trial_balance(server)["lsn"].as_u64().expect("lsn");
        if now == last {
            return now;
        }
        last = now;
    }
}

/// After a mix of every movement, a reconciliation and the bank's answers,
/// the state is checkpointed (schema 2, the folded state); kill -9 and a
/// restart from that checkpoint with nothing after it to replay must show
/// every read unchanged, and `wal verify` must find the checkpoint equal to
/// the log folded to its lsn.
fn restart_from_a_state_checkpoint(server: &mut Server, accounts: &[String], withdrawals: &[(String, i64)]) {
    let rec = reconcile(server, &json!({"bank": BANK, "date": today()}));
    let rec = rec["reconciliation_id"].as_str().expect("reconciliation_id").to_string();
    let lsn = quiet_lsn(server);
    assert_eq!(server.wait_for_checkpoint(lsn), lsn, "the log is quiet at lsn {lsn}");
    let before = finance_view(server, accounts, withdrawals, &rec);
    server.kill9();
    server.restart();
    assert_eq!(server.loaded_checkpoint(), lsn, "restart from the checkpoint, nothing to replay: {}", server.stdout());
    let after = finance_view(server, accounts, withdrawals, &rec);
    for (key, value) in before.as_object().expect("object") {
        assert_eq!(&after[key], value, "{key} after a restart from checkpoint {lsn}");
    }
    server.kill9();
    let (ok, report) = server.wal_verify();
    assert!(ok, "{report}");
    assert!(report.contains(&format!("lsn {lsn}: equals the log folded to it")), "{report}");
}

#[test]
fn the_trial_balance_stays_balanced_through_a_random_mix_of_every_movement() {
    // A checkpoint each second once records came in: the end of the test
    // restarts from one. A checkpoint reaches only as far as the history
    // archive has indexed, which trails the log by up to
    // `history.memory_records`: 1 here, so that it reaches the last record.
    let options = Options { checkpoint_every_s: 1, history_memory_records: 1, ..Options::default() };
    let mut server = Server::start_with(options);
    let names = ["上海甲化工有限公司", "江苏乙钢铁有限公司", "浙江丙贸易有限公司"];
    let mut accounts = Vec::new();
    let mut subs = Vec::new();
    for name in &names[..2] {
        let (id, sub) = server.open_account(name);
        accounts.push(id);
        subs.push(sub);
    }
    let (id, sub) = open_closed_payee_account(&server, names[2]);
    accounts.push(id);
    subs.push(sub);
    let empty = trial_balance(&server);
    assert_eq!(empty["bank_custody"], "0.00");

    let holds: Holds = Default::default();
    let mut rng = Rng::new(0x7_2026_1124);
    // The test's own count of what the bank holds: money in, less returns
    // and payouts that succeeded.
    let mut custody: i64 = 0;
    let mut withdrawals = Vec::new();
    for step in 0..160 {
        let who = rng.below(3) as usize;
        match rng.below(10) {
            0 | 1 => {
                let cents = 1 + rng.below(100_000) as i64;
                let (status, body) = server.notify(&notification(&subs[who], names[who], &amount(cents)));
                assert_eq!((status, body["result"].as_str()), (200, Some("credited")), "{body}");
                custody += cents;
            }
            2 => {
                let cents = 1 + rng.below(10_000) as i64;
                let (status, body) = server.notify(&notification(&subs[who], "别人", &amount(cents)));
                assert_eq!((status, body["result"].as_str()), (200, Some("suspense")), "{body}");
                custody += cents;
            }
            3 => {
                let open = server.list_all("/v1/suspense?status=open", FINANCE);
                let Some(entry) = open.first() else { continue };
                let remaining = cents(&entry["remaining"]);
                if rng.below(3) == 0 {
                    let path = format!("/v1/suspense/{}/return", entry["suspense_id"].as_str().unwrap());
                    let (status, body) = server.post(&path, FINANCE, &json!({"id": uid("ret")}));
                    assert_eq!(status, 200, "{body}");
                    custody -= remaining;
                } else {
                    let part = 1 + rng.below(remaining as u64) as i64;
                    let body = json!({"id": uid("adj"), "suspense_id": entry["suspense_id"], "account_id": accounts[who], "amount": amount(part)});
                    let (status, answer) = server.post("/v1/adjustments", FINANCE, &body);
                    assert_eq!(status, 201, "{answer}");
                }
            }
            4 => {
                let available = server.balance(&accounts[who]).available;
                if available == 0 {
                    continue;
                }
                let cents = 1 + rng.below(available.min(50_000) as u64) as i64;
                let id = uid("w");
                let body = json!({"id": id, "account_id": accounts[who], "amount": amount(cents)});
                let (status, answer) = server.post("/v1/withdrawals", PLATFORM, &body);
                assert_eq!(status, 202, "{answer}");
                withdrawals.push((id, cents));
            }
            _ => {
                let transfer = random_transfer(&mut rng, &accounts, &holds, "m");
                let (status, body) = server.transfer(&transfer);
                if status == 201 {
                    note_hold(&holds, &body);
                } else {
                    assert!(is_expected_refusal(status, &body), "{transfer}: {status} {body}");
                }
            }
        }
        if step % 10 == 0 {
            trial_balance(&server);
        }
    }
    for (id, cents) in &withdrawals {
        let path = format!("/v1/withdrawals/{id}");
        wait_until(id, || server.get_ok(&path, PLATFORM)["status"] != "processing");
        if server.get_ok(&path, PLATFORM)["status"] == "succeeded" {
            custody -= cents;
        }
    }
    let last = trial_balance(&server);
    let mut sums = Balance::default();
    for account in &accounts {
        let balance = server.assert_consistent(account);
        sums.total += balance.total;
        sums.available += balance.available;
        sums.frozen += balance.frozen;
    }
    let suspense: i64 =
        server.list_all("/v1/suspense?status=open", FINANCE).iter().map(|entry| cents(&entry["remaining"])).sum();
    assert_eq!(cents(&last["customer_available"]), sums.available, "{last}");
    assert_eq!(cents(&last["customer_frozen"]), sums.frozen, "{last}");
    assert_eq!(cents(&last["customer_total"]), sums.total, "{last}");
    assert_eq!(cents(&last["suspense_open"]), suspense, "{last}");
    assert_eq!(cents(&last["withdrawals_in_flight"]), 0, "every payout answered: {last}");
    assert_eq!(cents(&last["bank_custody"]), custody, "{last}");
    assert_eq!(custody, sums.total + suspense);
    assert!(withdrawals.len() >= 3, "the mix made withdrawals");
    let (status, body) = server.get("/v1/ledger/trial-balance", PLATFORM);
    assert_error(status, &body, 403, "FORBIDDEN", "platform reads the trial balance");
    let (status, body) = server.get("/v1/ledger/trial-balance?at=1", FINANCE);
    assert_error(status, &body, 400, "INVALID_FIELD", "an unknown parameter");
    restart_from_a_state_checkpoint(&mut server, &accounts, &withdrawals);
}
