//! Receipts (电子回单), balances at a past lsn, and the journal CSV export,
//! against the real binary (API.md, Journal and receipts).

mod common;

use common::*;
use serde_json::{json, Value};

const RECEIPT_FIELDS: &[&str] = &[
    "receipt_no",
    "transfer_id",
    "type",
    "payer",
    "payee",
    "amount",
    "amount_in_words",
    "order_id",
    "committed_at",
    "verification_code",
];
const PARTY_FIELDS: &[&str] = &["account_id", "name", "sub_account_no"];

fn verify(server: &Server, receipt: &Value) -> bool {
    let (status, body) = server.post("/v1/receipts/verify", FINANCE, receipt);
    assert_eq!(status, 200, "verify {receipt}: {body}");
    assert_keys(&body, &["valid"], "verify answer");
    body["valid"].as_bool().unwrap_or_else(|| panic!("valid is not a boolean: {body}"))
}

/// Every leaf of the receipt but the code, changed one at a time, must
/// fail verification.
fn assert_every_change_fails(server: &Server, receipt: &Value) {
    assert!(verify(server, receipt), "the untouched receipt verifies: {receipt}");
    let mut paths: Vec<Vec<&str>> = Vec::new();
    for field in RECEIPT_FIELDS {
        match &receipt[*field] {
            Value::Object(_) => paths.extend(PARTY_FIELDS.iter().map(|sub| vec![*field, *sub])),
            // A null payee is given one below.
            Value::Null if *field == "payee" => {}
            _ => paths.push(vec![*field]),
        }
    }
    for path in paths {
        let mut changed = receipt.clone();
        let slot = path.iter().fold(&mut changed, |value, key| &mut value[*key]);
        *slot = match slot.take() {
            Value::String(text) if path == ["verification_code"] => {
                // Flip one hex digit.
                let mut chars: Vec<char> = text.chars().collect();
                chars[0] = if chars[0] == '0' { '1' } else { '0' };
                Value::String(chars.into_iter().collect())
            }
            Value::String(text) => Value::String(format!("{text}1")),
            Value::Null => Value::String("x".into()),
            other => panic!("unexpected leaf {other} at {path:?}"),
        };
        assert!(!verify(server, &changed), "a receipt with {path:?} changed still verifies: {changed}");
    }
    // A payee taken away, and a null made empty.
    if receipt["payee"].is_object() {
        let mut changed = receipt.clone();
        changed["payee"] = Value::Null;
        assert!(!verify(server, &changed), "payee removed still verifies");
    }
    if receipt["payee"].is_null() {
        let mut changed = receipt.clone();
        changed["payee"] = receipt["payer"].clone();
        assert!(!verify(server, &changed), "a payee added still verifies");
    }
    if receipt["order_id"].is_null() {
        let mut changed = receipt.clone();
        changed["order_id"] = json!("");
        assert!(!verify(server, &changed), "order_id null -> \"\" still verifies");
    }
}

fn assert_party(party: &Value, account_id: &str, name: &str, sub_account_no: &str) {
    assert_keys(party, PARTY_FIELDS, "party");
    assert_eq!(party["account_id"], account_id, "{party}");
    assert_eq!(party["name"], name, "{party}");
    assert_eq!(party["sub_account_no"], sub_account_no, "{party}");
}

#[test]
fn transfer_receipts_show_both_parties_and_verify() {
    let server = Server::start();
    let payer_name = "上海某化工有限公司";
    let payee_name = "<b>杭州&某\"贸易'</b>";
    let (payer, payer_sub) = server.open_account(payer_name);
    let (payee, payee_sub) = server.open_account(payee_name);
    server.deposit(&payer_sub, payer_name, "100000.00");

    let committed = server.transfer_ok(&json!({
        "id": "t-1", "type": "transfer", "payer": payer, "payee": payee,
        "amount": "10005.30", "order_id": "O-1", "memo": "货款"
    }));
    for token in [PLATFORM, FINANCE, ADMIN] {
        let receipt = server.get_ok("/v1/transfers/t-1/receipt", token);
        assert_keys(&receipt, RECEIPT_FIELDS, "receipt");
        assert_eq!(receipt["receipt_no"], committed["receipt_no"], "{receipt}");
        assert_eq!(receipt["transfer_id"], "t-1");
        assert_eq!(receipt["type"], "transfer");
        assert_eq!(receipt["amount"], "10005.30");
        assert_eq!(receipt["amount_in_words"], "人民币壹万零伍元叁角");
        assert_eq!(receipt["order_id"], "O-1");
        assert_eq!(receipt["committed_at"], committed["committed_at"]);
        assert_party(&receipt["payer"], &payer, payer_name, &payer_sub);
        assert_party(&receipt["payee"], &payee, payee_name, &payee_sub);
        let code = receipt["verification_code"].as_str().unwrap();
        assert!(code.len() == 64 && code.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{code}");
    }
    let receipt = server.get_ok("/v1/transfers/t-1/receipt", PLATFORM);
    assert_eq!(server.get_ok("/v1/transfers/t-1/receipt?format=json", FINANCE), receipt, "same receipt each time");
    assert_every_change_fails(&server, &receipt);

    // A freeze: no payee; its unfreeze names the hold's account as payer.
    server.transfer_ok(&json!({"id": "f-1", "type": "freeze", "payer": payer, "amount": "100"}));
    server.transfer_ok(&json!({"id": "u-1", "type": "unfreeze", "hold_id": "f-1", "amount": "0.05"}));
    let freeze = server.get_ok("/v1/transfers/f-1/receipt", PLATFORM);
    assert_eq!(freeze["type"], "freeze");
    assert_eq!(freeze["payee"], Value::Null, "{freeze}");
    assert_eq!(freeze["order_id"], Value::Null, "{freeze}");
    assert_eq!(freeze["amount_in_words"], "人民币壹佰元整");
    assert_every_change_fails(&server, &freeze);
    let unfreeze = server.get_ok("/v1/transfers/u-1/receipt", PLATFORM);
    assert_eq!(unfreeze["amount_in_words"], "人民币零元伍分");
    assert_party(&unfreeze["payer"], &payer, payer_name, &payer_sub);
    assert!(verify(&server, &unfreeze));

    // Receipts survive a restart unchanged (same key, same content).
    let mut server = server;
    server.restart();
    assert_eq!(server.get_ok("/v1/transfers/t-1/receipt", PLATFORM), receipt, "after restart");
    assert!(verify(&server, &receipt));
}

#[test]
fn the_printable_receipt_is_escaped_html() {
    let server = Server::start();
    let payee_name = "<script>alert('x')</script>&Co";
    let (payer, payer_sub) = server.open_account("付款公司");
    let (payee, _) = server.open_account(payee_name);
    server.deposit(&payer_sub, "付款公司", "500");
    server.transfer_ok(&json!({"id": "t-html", "type": "transfer", "payer": payer, "payee": payee, "amount": "100"}));
    let response = server.request(
        "GET",
        "/v1/transfers/t-html/receipt?format=html",
        &[("Authorization", &format!("Bearer {FINANCE}"))],
        None,
    );
    assert_eq!(response.status, 200, "{}", response.text);
    let content_type = response.header("content-type").unwrap_or("");
    assert!(content_type.starts_with("text/html") && content_type.contains("utf-8"), "{content_type}");
    let html = &response.text;
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("电子回单") && html.contains("Electronic Receipt"), "bilingual title");
    assert!(html.contains("人民币壹佰元整") && html.contains("100.00"), "amounts");
    assert!(!html.contains("<script>"), "the payee's name must be escaped: {html}");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;Co"), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains(" src="), "no external assets");
    let receipt = server.get_ok("/v1/transfers/t-html/receipt", FINANCE);
    assert!(html.contains(receipt["verification_code"].as_str().unwrap()), "the code is printed");
    assert_balanced_html(html);
    assert!(html.contains("@media print") && html.contains("@page"), "print styles");
    assert!(html.contains("<meta charset=\"utf-8\">"), "declares its encoding");

    let (status, body) = server.get("/v1/transfers/t-html/receipt?format=pdf", FINANCE);
    assert_error(status, &body, 400, "INVALID_FIELD", "format=pdf");
    let (status, body) = server.get("/v1/transfers/t-html/receipt?colour=red", FINANCE);
    assert_error(status, &body, 400, "INVALID_FIELD", "unknown query parameter");
}

#[test]
fn deposit_receipts_and_suspense() {
    let server = Server::start();
    let name = "深圳某科技有限公司";
    let (account, sub) = server.open_account(name);
    let credit = notification(&sub, name, "5000.00");
    let (status, answer) = server.notify(&credit);
    assert_eq!((status, answer["result"].as_str()), (200, Some("credited")), "{answer}");
    let notification_id = credit["notification_id"].as_str().unwrap();

    let receipt = server.get_ok(&format!("/v1/deposits/{notification_id}/receipt"), FINANCE);
    assert_keys(&receipt, RECEIPT_FIELDS, "deposit receipt");
    assert_eq!(receipt["type"], "deposit");
    assert_eq!(receipt["transfer_id"], notification_id);
    assert_eq!(receipt["amount"], "5000.00");
    assert_eq!(receipt["amount_in_words"], "人民币伍仟元整");
    assert_eq!(receipt["receipt_no"], format!("R{:012}", answer["lsn"].as_u64().unwrap()));
    assert_eq!(receipt["order_id"], Value::Null);
    assert_keys(&receipt["payer"], PARTY_FIELDS, "deposit payer");
    assert_eq!(receipt["payer"]["account_id"], Value::Null);
    assert_eq!(receipt["payer"]["name"], name);
    assert_eq!(receipt["payer"]["sub_account_no"], SETTLEMENT_ACCOUNT_NO);
    assert_party(&receipt["payee"], &account, name, &sub);
    assert!(is_rfc3339_millis(&receipt["committed_at"]), "{receipt}");
    assert_every_change_fails(&server, &receipt);

    // More deposits after the first lookup are found too.
    let second = notification(&sub, name, "0.01");
    server.notify(&second);
    let second_id = second["notification_id"].as_str().unwrap();
    let receipt = server.get_ok(&format!("/v1/deposits/{second_id}/receipt?format=json"), PLATFORM);
    assert_eq!(receipt["amount_in_words"], "人民币零元壹分");

    // A credit that went to suspense has no receipt; neither has an unknown id.
    let stray = notification(&sub, "别的公司", "10.00");
    let (status, answer) = server.notify(&stray);
    assert_eq!((status, answer["result"].as_str()), (200, Some("suspense")), "{answer}");
    let stray_id = stray["notification_id"].as_str().unwrap();
    let (status, body) = server.get(&format!("/v1/deposits/{stray_id}/receipt"), FINANCE);
    assert_error(status, &body, 404, "RECEIPT_NOT_FOUND", "suspense notification");
    let (status, body) = server.get("/v1/deposits/N-NONE/receipt", FINANCE);
    assert_error(status, &body, 404, "RECEIPT_NOT_FOUND", "unknown notification");

    let html = server.request(
        "GET",
        &format!("/v1/deposits/{notification_id}/receipt?format=html"),
        &[("Authorization", &format!("Bearer {PLATFORM}"))],
        None,
    );
    assert_eq!(html.status, 200);
    assert!(html.text.contains("人民币伍仟元整") && html.text.contains(name), "{}", html.text);
}

#[test]
fn receipt_refusals() {
    let server = Server::start();
    let (payer, sub) = server.open_account("甲公司");
    let (payee, _) = server.open_account("乙公司");
    server.deposit(&sub, "甲公司", "10");
    server.transfer_ok(&json!({"id": "t-r", "type": "transfer", "payer": payer, "payee": payee, "amount": "1"}));
    let receipt = server.get_ok("/v1/transfers/t-r/receipt", PLATFORM);

    for path in ["/v1/transfers/t-r/receipt", "/v1/deposits/N1/receipt"] {
        let (status, body) = server.get(path, NO_TOKEN);
        assert_error(status, &body, 401, "UNAUTHENTICATED", path);
        let (status, body) = server.get(path, RISK);
        assert_error(status, &body, 403, "FORBIDDEN", path);
    }
    let (status, body) = server.get("/v1/transfers/nope/receipt", PLATFORM);
    assert_error(status, &body, 404, "TRANSFER_NOT_FOUND", "unknown transfer");

    let (status, body) = server.post("/v1/receipts/verify", NO_TOKEN, &receipt);
    assert_error(status, &body, 401, "UNAUTHENTICATED", "verify without token");
    let (status, body) = server.post("/v1/receipts/verify", RISK, &receipt);
    assert_error(status, &body, 403, "FORBIDDEN", "verify as risk");
    assert!(verify(&server, &receipt));
    let (status, body) = server.post("/v1/receipts/verify", PLATFORM, &receipt);
    assert_eq!((status, &body), (200, &json!({"valid": true})));

    let mut extra = receipt.clone();
    extra["memo"] = json!("x");
    let (status, body) = server.post("/v1/receipts/verify", FINANCE, &extra);
    assert_error(status, &body, 400, "UNEXPECTED_FIELD", "extra field");
    let mut extra = receipt.clone();
    extra["payer"]["bank"] = json!("x");
    let (status, body) = server.post("/v1/receipts/verify", FINANCE, &extra);
    assert_error(status, &body, 400, "UNEXPECTED_FIELD", "extra party field");
    let mut missing = receipt.clone();
    missing.as_object_mut().unwrap().remove("verification_code");
    let (status, body) = server.post("/v1/receipts/verify", FINANCE, &missing);
    assert_error(status, &body, 400, "MISSING_FIELD", "no code");
    let mut wrong = receipt.clone();
    wrong["amount"] = json!(1.0);
    let (status, body) = server.post("/v1/receipts/verify", FINANCE, &wrong);
    assert_error(status, &body, 400, "INVALID_FIELD", "amount as a number");
    let (status, body) = server.post("/v1/receipts/verify", FINANCE, &json!([1]));
    assert_error(status, &body, 400, "INVALID_JSON", "an array");
    let (status, body) = server.post_raw("/v1/receipts/verify", FINANCE, b"{", Some(JSON));
    assert_error(status, &body, 400, "INVALID_JSON", "broken JSON");
    let bytes = serde_json::to_vec(&receipt).unwrap();
    let (status, body) = server.post_raw("/v1/receipts/verify", FINANCE, &bytes, Some("text/plain"));
    assert_error(status, &body, 415, "UNSUPPORTED_MEDIA_TYPE", "text/plain");
    let mut bad_code = receipt.clone();
    bad_code["verification_code"] = json!("not hex");
    assert!(!verify(&server, &bad_code));
}

#[test]
fn balance_at_any_past_lsn_follows_the_journal() {
    let server = Server::start();
    let (a, a_sub) = server.open_account("甲");
    let (b, _) = server.open_account("乙");
    server.deposit(&a_sub, "甲", "1000");
    server.transfer_ok(&json!({"id": "x1", "type": "transfer", "payer": a, "payee": b, "amount": "100"}));
    server.transfer_ok(&json!({"id": "x2", "type": "freeze", "payer": a, "amount": "300"}));
    server.transfer_ok(&json!({"id": "x3", "type": "unfreeze_pay", "hold_id": "x2", "payee": b, "amount": "50"}));
    server.deposit(&a_sub, "甲", "0.07");

    let journal = server.journal(&a);
    assert_eq!(journal.len(), 5, "{journal:?}");
    let current = server.balance(&a);
    for token in [PLATFORM, FINANCE] {
        let now = server.get_ok(&format!("/v1/accounts/{a}/balance"), token);
        assert_eq!(Balance::of(&now), current, "{now}");
        assert_eq!(now["account_id"], a.as_str());
        assert_eq!(now["last_lsn"], journal.last().unwrap()["lsn"]);
    }
    let zero = server.get_ok(&format!("/v1/accounts/{a}/balance?at_lsn=0"), FINANCE);
    assert_eq!(zero["balance"], json!({"total": "0.00", "available": "0.00", "frozen": "0.00"}), "{zero}");
    assert_eq!(zero["last_lsn"], Value::Null);
    for (index, entry) in journal.iter().enumerate() {
        let lsn = entry["lsn"].as_u64().unwrap();
        for at in [lsn, lsn + 1] {
            let next_lsn = journal.get(index + 1).map(|next| next["lsn"].as_u64().unwrap());
            if at != lsn && next_lsn == Some(at) {
                continue;
            }
            let (status, body) = server.get(&format!("/v1/accounts/{a}/balance?at_lsn={at}"), PLATFORM);
            if status == 400 {
                // Only an lsn past the ledger's latest is refused.
                assert_eq!(index, journal.len() - 1, "{body}");
                continue;
            }
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["at_lsn"], at);
            assert_eq!(body["last_lsn"], lsn, "{body}");
            assert_eq!(body["balance"]["available"], entry["available_after"], "at {at}: {body} vs {entry}");
            assert_eq!(body["balance"]["frozen"], entry["frozen_after"], "at {at}");
            assert_eq!(body["balance"]["total"], entry["total_after"], "at {at}");
        }
    }
    let (status, body) = server.get(&format!("/v1/accounts/{a}/balance?at_lsn=999999999"), PLATFORM);
    assert_error(status, &body, 400, "INVALID_FIELD", "future lsn");
    for bad in ["-1", "x", "", "1.5", "99999999999999999999999"] {
        let (status, body) = server.get(&format!("/v1/accounts/{a}/balance?at_lsn={}", qs(bad)), PLATFORM);
        assert_error(status, &body, 400, "INVALID_FIELD", bad);
    }
    let (status, body) = server.get("/v1/accounts/F999999/balance", PLATFORM);
    assert_error(status, &body, 404, "ACCOUNT_NOT_FOUND", "unknown account");
    let (status, body) = server.get(&format!("/v1/accounts/{a}/balance"), RISK);
    assert_error(status, &body, 403, "FORBIDDEN", "risk");
}

fn csv(server: &Server, path: &str) -> (Option<String>, Vec<Vec<String>>) {
    let response = server.request("GET", path, &[("Authorization", &format!("Bearer {FINANCE}"))], None);
    assert_eq!(response.status, 200, "GET {path}: {}", response.text);
    assert!(response.text.ends_with("\r\n"), "CRLF line ends");
    let rows = response
        .text
        .split("\r\n")
        .filter(|line| !line.is_empty())
        .map(|line| line.split(',').map(str::to_owned).collect())
        .collect();
    (response.header("content-type").map(str::to_owned), rows)
}

#[test]
fn the_journal_exports_as_csv() {
    let server = Server::start();
    let (a, a_sub) = server.open_account("甲");
    let (b, _) = server.open_account("乙");
    server.deposit(&a_sub, "甲", "1000");
    server.transfer_ok(
        &json!({"id": "-c1", "type": "transfer", "payer": a, "payee": b, "amount": "100", "order_id": "O-9"}),
    );
    server.transfer_ok(&json!({"id": "c2", "type": "freeze", "payer": a, "amount": "300"}));
    let journal = server.journal(&a);

    let (content_type, rows) = csv(&server, &format!("/v1/accounts/{a}/journal.csv"));
    assert!(content_type.unwrap_or_default().starts_with("text/csv"));
    let header = "lsn,at,kind,transfer_id,order_id,hold_id,counterparty,available_delta,frozen_delta,\
                  available_after,frozen_after,total_after";
    assert_eq!(rows[0].join(","), header);
    assert_eq!(rows.len(), journal.len() + 1, "{rows:?}");
    for (row, entry) in rows[1..].iter().zip(&journal) {
        let text = |key: &str| match &entry[key] {
            Value::Null => String::new(),
            Value::String(text) if text.starts_with('-') && !key.contains("delta") && !key.contains("after") => {
                format!("'{text}")
            }
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let want: Vec<String> = header.split(',').map(text).collect();
        assert_eq!(row, &want, "row for {entry}");
    }
    assert_eq!(rows[2][3], "'-c1", "an id that starts like a formula is guarded");

    let (_, rows) = csv(&server, &format!("/v1/accounts/{a}/journal.csv?kind=freeze"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1][2], "freeze");
    let first_lsn = journal[0]["lsn"].as_u64().unwrap();
    let (_, rows) = csv(&server, &format!("/v1/accounts/{a}/journal.csv?after_lsn={first_lsn}&from=2000-01-01"));
    assert_eq!(rows.len(), journal.len(), "{rows:?}");
    let (_, rows) = csv(&server, &format!("/v1/accounts/{a}/journal.csv?to=2000-01-01"));
    assert_eq!(rows.len(), 1, "header only: {rows:?}");

    for bad in ["kind=nope", "from=yesterday", "after_lsn=x", "limit=5"] {
        let (status, body) = server.get(&format!("/v1/accounts/{a}/journal.csv?{bad}"), FINANCE);
        assert_error(status, &body, 400, "INVALID_FIELD", bad);
    }
    let (status, body) = server.get("/v1/accounts/F999999/journal.csv", FINANCE);
    assert_error(status, &body, 404, "ACCOUNT_NOT_FOUND", "unknown account");
    let (status, body) = server.get(&format!("/v1/accounts/{a}/journal.csv"), NO_TOKEN);
    assert_error(status, &body, 401, "UNAUTHENTICATED", "no token");
}

fn wait_finished(server: &Server, id: &str) -> Value {
    for _ in 0..1500 {
        let withdrawal = server.get_ok(&format!("/v1/withdrawals/{id}"), FINANCE);
        if withdrawal["status"] != "processing" {
            return withdrawal;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("withdrawal {id} still processing after 30 s");
}

#[test]
fn withdrawal_and_adjustment_receipts() {
    let server = Server::start();
    let name = "广州某实业有限公司";
    let (account, sub) = server.open_account(name);
    server.deposit(&sub, name, "1000");

    let (status, body) =
        server.post("/v1/withdrawals", PLATFORM, &json!({"id": "w-ok", "account_id": account, "amount": "300.00"}));
    assert_eq!(status, 202, "{body}");
    let finished = wait_finished(&server, "w-ok");
    assert_eq!(finished["status"], "succeeded", "{finished}");
    let receipt = server.get_ok("/v1/withdrawals/w-ok/receipt", FINANCE);
    assert_keys(&receipt, RECEIPT_FIELDS, "withdrawal receipt");
    assert_eq!(receipt["type"], "withdrawal");
    assert_eq!(receipt["transfer_id"], "w-ok");
    assert_eq!(receipt["amount_in_words"], "人民币叁佰元整");
    assert_eq!(receipt["committed_at"], finished["finished_at"]);
    assert_eq!(receipt["receipt_no"], format!("R{:012}", finished["lsn"].as_u64().unwrap()));
    assert_party(&receipt["payer"], &account, name, &sub);
    assert_eq!(receipt["payee"], json!({"account_id": null, "name": name, "sub_account_no": SETTLEMENT_ACCOUNT_NO}));
    assert_every_change_fails(&server, &receipt);

    // A payout the bank refuses (settlement account ending 9999): no receipt.
    let closed_name = "已销户公司";
    let (status, application) = server.post(
        "/v1/applications",
        PLATFORM,
        &json!({"name": closed_name, "credential_no": credential_no(), "bank": BANK,
            "settlement_account": {"bank_name": "某银行", "account_no": "6222020000009999", "account_name": closed_name}}),
    );
    assert_eq!(status, 201, "{application}");
    let app_id = application["application_id"].as_str().unwrap();
    let (_, approved) = server.post(&format!("/v1/applications/{app_id}/approve"), RISK, &json!({}));
    let closed = approved["account_id"].as_str().unwrap().to_string();
    let closed_account = server.wait_signed(&closed);
    server.deposit(closed_account["sub_account_no"].as_str().unwrap(), closed_name, "10");
    let (status, body) =
        server.post("/v1/withdrawals", PLATFORM, &json!({"id": "w-fail", "account_id": closed, "amount": "5"}));
    assert_eq!(status, 202, "{body}");
    assert_eq!(wait_finished(&server, "w-fail")["status"], "failed");
    let (status, body) = server.get("/v1/withdrawals/w-fail/receipt", PLATFORM);
    assert_error(status, &body, 409, "RECEIPT_NOT_AVAILABLE", "failed withdrawal");
    let (status, body) = server.get("/v1/withdrawals/none/receipt", PLATFORM);
    assert_error(status, &body, 404, "WITHDRAWAL_NOT_FOUND", "unknown withdrawal");
    let (status, body) = server.get("/v1/withdrawals/w-ok/receipt", RISK);
    assert_error(status, &body, 403, "FORBIDDEN", "risk");

    // An adjustment deposit out of the public adjustment account's credit.
    let remittance = notification(PUBLIC_ADJUSTMENT_ACCOUNT, "某汇款人", "88.08");
    let (status, answer) = server.notify(&remittance);
    assert_eq!((status, answer["result"].as_str()), (200, Some("suspense")), "{answer}");
    let suspense_id = answer["suspense_id"].as_str().unwrap();
    let (status, adjusted) = server.post(
        "/v1/adjustments",
        FINANCE,
        &json!({"id": "ADJ-1", "suspense_id": suspense_id, "account_id": account, "amount": "88.08"}),
    );
    assert_eq!(status, 201, "{adjusted}");
    let receipt = server.get_ok("/v1/adjustments/ADJ-1/receipt", PLATFORM);
    assert_eq!(receipt["type"], "adjustment_deposit");
    assert_eq!(receipt["amount_in_words"], "人民币捌拾捌元零捌分");
    assert_eq!(receipt["receipt_no"], format!("R{:012}", adjusted["lsn"].as_u64().unwrap()));
    assert_eq!(
        receipt["payer"],
        json!({"account_id": null, "name": "某汇款人", "sub_account_no": SETTLEMENT_ACCOUNT_NO})
    );
    assert_party(&receipt["payee"], &account, name, &sub);
    assert_every_change_fails(&server, &receipt);
    let (status, body) = server.get("/v1/adjustments/none/receipt", PLATFORM);
    assert_error(status, &body, 404, "NOT_FOUND", "unknown adjustment");
    // A transfer id is not an adjustment, nor a withdrawal.
    let (status, _) = server.get("/v1/adjustments/w-ok/receipt", PLATFORM);
    assert_eq!(status, 404);
    let (status, _) = server.get("/v1/withdrawals/ADJ-1/receipt", PLATFORM);
    assert_eq!(status, 404);
}

/// Every element the page opens is closed, in order (void elements aside):
/// a browser then lays it out as written rather than guessing.
fn assert_balanced_html(html: &str) {
    const VOID: &[&str] = &["meta", "br", "hr", "img", "link", "input"];
    let mut open: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').map(|end| start + end).expect("an unclosed tag");
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if tag.starts_with('/') {
            let last = open.pop().unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(last, name, "</{name}> closes <{last}>");
        } else if !VOID.contains(&name.as_str()) {
            if name == "style" {
                // CSS holds no tags; skip to its end.
                let close = rest.find("</style>").expect("a closed style");
                rest = &rest[close + "</style>".len()..];
                continue;
            }
            open.push(name);
        }
    }
    assert!(open.is_empty(), "elements left open: {open:?}");
}
