//! Every refusal API.md gives for the core endpoints (applications,
//! accounts, bank notifications, transfers, batch, holds, orders), and the
//! order in which checks answer: 401, 403, 400/413/415, 404, 409, 422.
//! Every refused request must leave balances and journals untouched.

mod common;

use common::*;
use serde_json::{json, Value};

/// Two active accounts; `a` funded with 100.00. Returns (a, a_sub, b).
fn two_accounts(server: &Server) -> (String, String, String) {
    let (a, a_sub) = server.open_account("甲公司");
    let (b, _) = server.open_account("乙公司");
    server.deposit(&a_sub, "甲公司", "100");
    (a, a_sub, b)
}

fn expect_transfer(server: &Server, body: &Value, status: u16, code: &str) {
    let (got_status, got) = server.transfer(body);
    assert_error(got_status, &got, status, code, &format!("POST /v1/transfers {body}"));
}

fn snapshot(server: &Server, accounts: &[&str]) -> Vec<(Value, usize)> {
    accounts.iter().map(|a| (server.account(a), server.journal(a).len())).collect()
}

#[test]
fn authentication_and_roles() {
    let server = Server::start();
    let (a, _, b) = two_accounts(&server);
    let before = snapshot(&server, &[&a, &b]);
    let t = json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": b, "amount": "1"});
    let bytes = serde_json::to_vec(&t).unwrap();

    // 401: no token, unknown token, not a bearer token.
    let (s, body) = server.post_raw("/v1/transfers", NO_TOKEN, &bytes, Some(JSON));
    assert_error(s, &body, 401, "UNAUTHENTICATED", "no Authorization");
    let (s, body) = server.post("/v1/transfers", "not-a-token", &t);
    assert_error(s, &body, 401, "UNAUTHENTICATED", "unknown token");
    for header in ["Basic ZGV2LXBsYXRmb3JtLXRva2VuOg==", "Bearer", "dev-platform-token", "Bearer dev-platform-tokenx"] {
        let r =
            server.request("POST", "/v1/transfers", &[("Authorization", header), ("Content-Type", JSON)], Some(&bytes));
        assert_error(r.status, &r.body, 401, "UNAUTHENTICATED", &format!("Authorization: {header}"));
    }
    let (s, body) = server.get(&format!("/v1/accounts/{a}"), NO_TOKEN);
    assert_error(s, &body, 401, "UNAUTHENTICATED", "GET account without token");
    let (s, body) = server.get(&format!("/v1/accounts/{a}/journal"), "nope");
    assert_error(s, &body, 401, "UNAUTHENTICATED", "GET journal with unknown token");

    // 403: known token, wrong role.
    let (s, body) = server.post("/v1/transfers", FINANCE, &t);
    assert_error(s, &body, 403, "FORBIDDEN", "finance posting a transfer");
    let (s, body) = server.post("/v1/transfers", RISK, &t);
    assert_error(s, &body, 403, "FORBIDDEN", "risk posting a transfer");
    let (s, body) = server.post("/v1/transfers/batch", FINANCE, &json!({"transfers": [t]}));
    assert_error(s, &body, 403, "FORBIDDEN", "finance posting a batch");
    let (s, body) = server.get(&format!("/v1/accounts/{a}"), RISK);
    assert_error(s, &body, 403, "FORBIDDEN", "risk reading an account");
    let (s, body) = server.post(
        "/v1/applications",
        FINANCE,
        &json!({"name": "x", "credential_no": credential_no(), "bank": BANK,
                "settlement_account": {"bank_name": "b", "account_no": "1", "account_name": "x"}}),
    );
    assert_error(s, &body, 403, "FORBIDDEN", "finance filing an application");
    let (s, app) = server.apply("丙公司", &credential_no());
    assert_eq!(s, 201, "{app}");
    let app_id = app["application_id"].as_str().unwrap();
    let (s, body) = server.post(&format!("/v1/applications/{app_id}/approve"), PLATFORM, &json!({}));
    assert_error(s, &body, 403, "FORBIDDEN", "platform approving");
    let (s, body) = server.post(&format!("/v1/applications/{app_id}/reject"), FINANCE, &json!({"reason": "x"}));
    assert_error(s, &body, 403, "FORBIDDEN", "finance rejecting");
    let (s, body) = server.get(&format!("/v1/applications/{app_id}"), FINANCE);
    assert_error(s, &body, 403, "FORBIDDEN", "finance reading an application");
    let (s, body) = server.get(&format!("/v1/holds/{}", uid("h")), RISK);
    assert_error(s, &body, 403, "FORBIDDEN", "risk reading a hold");

    assert_eq!(snapshot(&server, &[&a, &b]), before, "a refused request moved money");

    // Finance may read; admin may do everything.
    server.get_ok(&format!("/v1/accounts/{a}"), FINANCE);
    server.get_ok(&format!("/v1/accounts/{a}"), ADMIN);
    server.get_ok("/v1/accounts", RISK);
    let (s, body) = server.post("/v1/transfers", ADMIN, &t);
    assert_eq!(s, 201, "admin posting a transfer: {body}");
    let (s, body) = server.post(&format!("/v1/applications/{app_id}/approve"), ADMIN, &json!({}));
    assert_eq!(s, 200, "admin approving: {body}");
}

#[test]
fn request_syntax_refusals() {
    let server = Server::start();
    let (a, _, b) = two_accounts(&server);
    let hold = uid("h");
    server.transfer_ok(&json!({"id": hold, "type": "freeze", "payer": a, "amount": "10"}));
    let before = snapshot(&server, &[&a, &b]);
    let good = json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": b, "amount": "1"});
    let good_bytes = serde_json::to_vec(&good).unwrap();

    // 415
    for ct in [Some("text/plain"), None, Some("application/x-www-form-urlencoded"), Some("application/xml")] {
        let (s, body) = server.post_raw("/v1/transfers", PLATFORM, &good_bytes, ct);
        assert_error(s, &body, 415, "UNSUPPORTED_MEDIA_TYPE", &format!("content type {ct:?}"));
    }
    // 400 INVALID_JSON
    let (s, body) = server.post_raw("/v1/transfers", PLATFORM, br#"{"id": "x", "type":"#, Some(JSON));
    assert_error(s, &body, 400, "INVALID_JSON", "truncated JSON");
    let (s, body) =
        server.post_raw("/v1/transfers", PLATFORM, b"{\"id\": \"x\xff\xfe\", \"type\": \"transfer\"}", Some(JSON));
    assert_error(s, &body, 400, "INVALID_JSON", "not UTF-8");

    let with = |changes: Value| -> Value {
        let mut v = good.clone();
        v["id"] = json!(uid("t"));
        for (k, x) in changes.as_object().unwrap() {
            if x.is_null() {
                v.as_object_mut().unwrap().remove(k);
            } else {
                v[k] = x.clone();
            }
        }
        v
    };
    // INVALID_FIELD
    expect_transfer(&server, &with(json!({"payer": "X1"})), 400, "INVALID_FIELD");
    expect_transfer(&server, &with(json!({"payee": 5})), 400, "INVALID_FIELD");
    expect_transfer(&server, &with(json!({"memo": "m".repeat(257)})), 400, "INVALID_FIELD");
    // MISSING_FIELD
    expect_transfer(&server, &with(json!({"id": null})), 400, "MISSING_FIELD");
    let mut id_null = with(json!({}));
    id_null["id"] = Value::Null;
    expect_transfer(&server, &id_null, 400, "MISSING_FIELD");
    expect_transfer(&server, &with(json!({"type": null})), 400, "MISSING_FIELD");
    expect_transfer(&server, &with(json!({"payee": null})), 400, "MISSING_FIELD");
    expect_transfer(&server, &with(json!({"amount": null})), 400, "MISSING_FIELD");
    let mut amount_null = with(json!({}));
    amount_null["amount"] = Value::Null;
    expect_transfer(&server, &amount_null, 400, "MISSING_FIELD");
    expect_transfer(&server, &json!({"id": uid("t"), "type": "freeze", "amount": "1"}), 400, "MISSING_FIELD");
    expect_transfer(&server, &json!({"id": uid("t"), "type": "unfreeze", "amount": "1"}), 400, "MISSING_FIELD");
    expect_transfer(&server, &json!({"id": uid("t"), "type": "unfreeze_pay", "hold_id": hold}), 400, "MISSING_FIELD");
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "pay_freeze", "payer": a, "amount": "1"}),
        400,
        "MISSING_FIELD",
    );
    // UNEXPECTED_FIELD
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "freeze", "payer": a, "payee": b, "amount": "1"}),
        400,
        "UNEXPECTED_FIELD",
    );
    expect_transfer(&server, &with(json!({"hold_id": hold})), 400, "UNEXPECTED_FIELD");
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "unfreeze", "hold_id": hold, "payer": a}),
        400,
        "UNEXPECTED_FIELD",
    );
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "unfreeze", "hold_id": hold, "payee": b}),
        400,
        "UNEXPECTED_FIELD",
    );
    expect_transfer(&server, &with(json!({"foo": 1})), 400, "UNEXPECTED_FIELD");
    // INVALID_TYPE
    expect_transfer(&server, &with(json!({"type": "steal"})), 400, "INVALID_TYPE");
    expect_transfer(&server, &with(json!({"type": "TRANSFER"})), 400, "INVALID_TYPE");
    // INVALID_AMOUNT
    expect_transfer(&server, &with(json!({"amount": "0"})), 400, "INVALID_AMOUNT");
    expect_transfer(&server, &with(json!({"amount": "-1"})), 400, "INVALID_AMOUNT");
    expect_transfer(&server, &with(json!({"amount": 100})), 400, "INVALID_AMOUNT");
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "unfreeze", "hold_id": hold, "amount": "0.001"}),
        400,
        "INVALID_AMOUNT",
    );
    // INVALID_ID
    expect_transfer(&server, &with(json!({"id": "a b"})), 400, "INVALID_ID");
    expect_transfer(&server, &with(json!({"id": "x".repeat(65)})), 400, "INVALID_ID");
    expect_transfer(&server, &with(json!({"order_id": "O/1"})), 400, "INVALID_ID");

    assert_eq!(snapshot(&server, &[&a, &b]), before, "a refused request moved money");
}

#[test]
fn batch_size_limits() {
    let server = Server::start();
    let (a, _, b) = two_accounts(&server);
    let before = snapshot(&server, &[&a, &b]);
    let (s, body) = server.batch(&[]);
    assert_error(s, &body, 400, "INVALID_BATCH", "empty batch");

    // Items that are all invalid are cheap: 8190 is the largest batch.
    let item = |i: usize| json!({"id": format!("big-{i}"), "type": "transfer", "payer": a, "payee": b, "amount": "0"});
    let items: Vec<Value> = (0..8191).map(item).collect();
    let (s, body) = server.batch(&items);
    assert_error(s, &body, 400, "INVALID_BATCH", "batch of 8191");
    let (s, body) = server.batch(&items[..8190]);
    assert_eq!(s, 200, "batch of 8190: {}", &body.to_string()[..body.to_string().len().min(300)]);
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 8190);
    assert!(
        results.iter().all(|r| r["status"] == 400 && r["body"]["error"]["code"] == "INVALID_AMOUNT"),
        "every item of the 8190 batch is INVALID_AMOUNT"
    );
    // Not a JSON object with a `transfers` array: refused whole.
    for bad in [json!([]), json!({}), json!({"transfers": {}}), json!({"transfers": "x"}), json!({"items": []})] {
        let (s, body) = server.post("/v1/transfers/batch", PLATFORM, &bad);
        assert_eq!(s, 400, "batch body {bad}: {body}");
        assert_error_shape(&body, "batch body");
    }
    assert_eq!(snapshot(&server, &[&a, &b]), before);
}

#[test]
fn body_too_large() {
    let server = Server::start_with(Options { max_body_bytes: Some(65_536), ..Options::default() });
    let (a, _, b) = two_accounts(&server);
    let before = snapshot(&server, &[&a, &b]);
    let mut big = json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": b, "amount": "1", "memo": ""});
    big["memo"] = json!("x".repeat(70_000));
    // The server may answer before it has read the whole body and stop
    // reading; a raw client still gets to read that answer.
    let (s, body) = server
        .raw_post("/v1/transfers", PLATFORM, JSON, &serde_json::to_vec(&big).unwrap())
        .expect("an HTTP answer to a 70 kB transfer");
    assert_error(s, &body, 413, "BODY_TOO_LARGE", "70 kB transfer");
    // 1000 items of ~86 bytes: over 64 KiB
    let items: Vec<Value> = (0..1000)
        .map(|i| json!({"id": format!("t-{i}"), "type": "transfer", "payer": a, "payee": b, "amount": "0.01"}))
        .collect();
    let (s, body) = server
        .raw_post("/v1/transfers/batch", PLATFORM, JSON, &serde_json::to_vec(&json!({"transfers": items})).unwrap())
        .expect("an HTTP answer to a batch over the limit");
    assert_error(s, &body, 413, "BODY_TOO_LARGE", "batch over the limit");
    // Also when the client streams the body chunked, with no Content-Length.
    let chunked = {
        let body = serde_json::to_vec(&big).unwrap();
        let mut req = format!(
            "POST /v1/transfers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PLATFORM}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        for chunk in body.chunks(4096) {
            req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            req.extend_from_slice(chunk);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        req
    };
    let (s, body) = server.raw_http(&chunked).expect("an HTTP answer to a chunked 70 kB body");
    assert_error(s, &body, 413, "BODY_TOO_LARGE", "chunked 70 kB transfer");
    // Just under the limit is judged normally (here: the memo is too long).
    big["memo"] = json!("x".repeat(60_000));
    let (s, body) = server.transfer(&big);
    assert_error(s, &body, 400, "INVALID_FIELD", "60 kB transfer");
    assert_eq!(snapshot(&server, &[&a, &b]), before);
    // The server still works.
    server.transfer_ok(&json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": b, "amount": "1"}));
}

#[test]
fn existence_refusals() {
    let server = Server::start();
    let (a, _, b) = two_accounts(&server);
    let before = snapshot(&server, &[&a, &b]);

    let (s, body) = server.get("/v1/accounts/F999999", PLATFORM);
    assert_error(s, &body, 404, "ACCOUNT_NOT_FOUND", "GET unknown account");
    let (s, body) = server.get("/v1/accounts/F999999/journal", PLATFORM);
    assert_error(s, &body, 404, "ACCOUNT_NOT_FOUND", "GET unknown account's journal");
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "transfer", "payer": "F999999", "payee": b, "amount": "1"}),
        404,
        "ACCOUNT_NOT_FOUND",
    );
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": "F999998", "amount": "1"}),
        404,
        "ACCOUNT_NOT_FOUND",
    );
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "pay_freeze", "payer": a, "payee": "F0000099", "amount": "1"}),
        404,
        "ACCOUNT_NOT_FOUND",
    );
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "freeze", "payer": "F1000000", "amount": "1"}),
        404,
        "ACCOUNT_NOT_FOUND",
    );
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "unfreeze", "hold_id": "no-such-hold"}),
        404,
        "HOLD_NOT_FOUND",
    );
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "unfreeze_pay", "hold_id": "no-such-hold", "payee": b, "amount": "1"}),
        404,
        "HOLD_NOT_FOUND",
    );
    // A transfer id is not a hold.
    let t = server.transfer_ok(&json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": b, "amount": "1"}));
    let t_id = t["id"].as_str().unwrap();
    expect_transfer(&server, &json!({"id": uid("t"), "type": "unfreeze", "hold_id": t_id}), 404, "HOLD_NOT_FOUND");
    // A hold on an existing account paid to an unknown one.
    let hold = uid("h");
    server.transfer_ok(&json!({"id": hold, "type": "freeze", "payer": a, "amount": "5"}));
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "unfreeze_pay", "hold_id": hold, "payee": "F999999"}),
        404,
        "ACCOUNT_NOT_FOUND",
    );

    let (s, body) = server.get("/v1/holds/no-such-hold", PLATFORM);
    assert_error(s, &body, 404, "HOLD_NOT_FOUND", "GET unknown hold");
    let (s, body) = server.get("/v1/transfers/no-such-transfer", FINANCE);
    assert_error(s, &body, 404, "TRANSFER_NOT_FOUND", "GET unknown transfer");
    let (s, body) = server.get("/v1/applications/A999999", RISK);
    assert_error(s, &body, 404, "APPLICATION_NOT_FOUND", "GET unknown application");
    let (s, body) = server.post("/v1/applications/A999999/approve", RISK, &json!({}));
    assert_error(s, &body, 404, "APPLICATION_NOT_FOUND", "approve unknown application");
    let (s, body) = server.post("/v1/applications/A999999/reject", RISK, &json!({"reason": "x"}));
    assert_error(s, &body, 404, "APPLICATION_NOT_FOUND", "reject unknown application");

    let note = serde_json::to_vec(&notification("310940100000001", "甲公司", "1")).unwrap();
    let sig = sign(BANK_SECRET, &note);
    let r = server.request(
        "POST",
        "/v1/banks/NOBANK/notifications",
        &[("Content-Type", JSON), ("X-Signature", &sig)],
        Some(&note),
    );
    assert_error(r.status, &r.body, 404, "UNKNOWN_BANK", "notification to an unknown bank");

    // Unfreezing 1 of the 5 still works after all that; then compare.
    let after_hold = snapshot(&server, &[&a, &b]);
    assert_eq!(cents(&after_hold[0].0["balance"]["frozen"]), 500);
    assert_eq!(cents(&before[0].0["balance"]["total"]) - 100, cents(&after_hold[0].0["balance"]["total"]));
    server.assert_consistent(&a);
    server.assert_consistent(&b);
}

#[test]
fn unknown_routes_and_methods() {
    let server = Server::start();
    let (a, _) = server.open_account("甲公司");
    for path in ["/v1/nothing", "/", "/v1", "/v2/transfers", "/v1/accounts/F000001/nothing"] {
        let (s, body) = server.get(path, PLATFORM);
        assert_error(s, &body, 404, "NOT_FOUND", &format!("GET {path}"));
    }
    let (s, body) = server.post("/v1/nothing", PLATFORM, &json!({}));
    assert_error(s, &body, 404, "NOT_FOUND", "POST /v1/nothing");
    let auth = format!("Bearer {PLATFORM}");
    let cases = [
        ("PUT", "/v1/transfers".to_string()),
        ("DELETE", format!("/v1/accounts/{a}")),
        ("POST", format!("/v1/accounts/{a}")),
        ("PATCH", "/v1/transfers/batch".to_string()),
        ("PUT", "/v1/applications".to_string()),
        ("GET", "/v1/adjustments".to_string()),
        ("DELETE", "/v1/transfers/t-1".to_string()),
    ];
    for (method, path) in cases {
        let r = server.request(method, &path, &[("Authorization", &auth), ("Content-Type", JSON)], Some(b"{}"));
        assert_error(r.status, &r.body, 405, "METHOD_NOT_ALLOWED", &format!("{method} {path}"));
    }
}

#[test]
fn conflicts_id_reused() {
    let server = Server::start();
    let (a, _, b) = two_accounts(&server);
    let t_id = uid("t");
    let first = server.transfer_ok(
        &json!({"id": t_id, "type": "transfer", "payer": a, "payee": b, "amount": "10", "order_id": "O-1"}),
    );
    let before = snapshot(&server, &[&a, &b]);
    for changed in [
        json!({"id": t_id, "type": "transfer", "payer": a, "payee": b, "amount": "11", "order_id": "O-1"}),
        json!({"id": t_id, "type": "transfer", "payer": a, "payee": b, "amount": "10", "order_id": "O-2"}),
        json!({"id": t_id, "type": "transfer", "payer": a, "payee": b, "amount": "10", "order_id": "O-1", "memo": "x"}),
        json!({"id": t_id, "type": "transfer", "payer": b, "payee": a, "amount": "10", "order_id": "O-1"}),
        json!({"id": t_id, "type": "freeze", "payer": a, "amount": "10", "order_id": "O-1"}),
        json!({"id": t_id, "type": "pay_freeze", "payer": a, "payee": b, "amount": "10", "order_id": "O-1"}),
    ] {
        expect_transfer(&server, &changed, 409, "ID_REUSED");
    }
    // A hold's id is its transfer's id: a freeze id reused as a transfer.
    let hold = uid("h");
    server.transfer_ok(&json!({"id": hold, "type": "freeze", "payer": a, "amount": "5"}));
    expect_transfer(&server, &json!({"id": hold, "type": "unfreeze", "hold_id": hold}), 409, "ID_REUSED");
    // Batch items share the id space.
    let (s, answer) = server.batch(&[json!({"id": t_id, "type": "transfer", "payer": a, "payee": b, "amount": "12"})]);
    assert_eq!(s, 200, "{answer}");
    assert_eq!(answer["results"][0]["status"], 409, "{answer}");
    assert_error(409, &answer["results"][0]["body"], 409, "ID_REUSED", "batch item reusing an id");
    // The original is unchanged.
    let got = server.get_ok(&format!("/v1/transfers/{t_id}"), PLATFORM);
    assert_eq!(got["lsn"], first["lsn"]);
    assert_eq!(got["amount"], "10.00");
    let after = snapshot(&server, &[&a, &b]);
    assert_eq!(cents(&after[0].0["balance"]["available"]), cents(&before[0].0["balance"]["available"]) - 500);
    assert_eq!(after[1], before[1]);
}

#[test]
fn application_refusals() {
    let server = Server::start();
    let name = "上海某化工有限公司";
    let settlement = |account_name: &str| json!({"bank_name": "某银行上海分行", "account_no": SETTLEMENT_ACCOUNT_NO, "account_name": account_name});

    let (s, body) = server.post(
        "/v1/applications",
        PLATFORM,
        &json!({"name": name, "credential_no": credential_no(), "bank": BANK, "settlement_account": settlement("上海某化工公司")}),
    );
    assert_error(s, &body, 422, "NAME_MISMATCH", "settlement account of another name");
    let (s, body) = server.post(
        "/v1/applications",
        PLATFORM,
        &json!({"name": name, "credential_no": credential_no(), "bank": "NOBANK", "settlement_account": settlement(name)}),
    );
    assert_error(s, &body, 422, "UNKNOWN_BANK", "application to an unknown bank");
    let (s, body) = server.post(
        "/v1/applications",
        PLATFORM,
        &json!({"credential_no": credential_no(), "bank": BANK, "settlement_account": settlement(name)}),
    );
    assert_error(s, &body, 400, "MISSING_FIELD", "application without name");
    let (s, body) = server.post(
        "/v1/applications",
        PLATFORM,
        &json!({"name": name, "credential_no": credential_no(), "bank": BANK, "settlement_account": settlement(name), "extra": 1}),
    );
    assert_error(s, &body, 400, "UNEXPECTED_FIELD", "application with an unknown field");

    // DUPLICATE_CUSTOMER: pending, then signing/active.
    let credential = credential_no();
    let (s, first) = server.apply(name, &credential);
    assert_eq!(s, 201, "{first}");
    let app_id = first["application_id"].as_str().unwrap().to_string();
    let (s, body) = server.apply(name, &credential);
    assert_error(s, &body, 409, "DUPLICATE_CUSTOMER", "second application while one is pending");
    let (s, approved) = server.post(&format!("/v1/applications/{app_id}/approve"), RISK, &json!({}));
    assert_eq!(s, 200, "{approved}");
    let account_id = approved["account_id"].as_str().unwrap().to_string();
    let (s, body) = server.apply(name, &credential);
    assert_error(s, &body, 409, "DUPLICATE_CUSTOMER", "application while the account is signing/active");
    assert_eq!(server.wait_signed(&account_id)["status"], "active");
    let (s, body) = server.apply(name, &credential);
    assert_error(s, &body, 409, "DUPLICATE_CUSTOMER", "application while the account is active");

    // INVALID_STATE: approve twice, reject after approve.
    let (s, body) = server.post(&format!("/v1/applications/{app_id}/approve"), RISK, &json!({}));
    assert_error(s, &body, 409, "INVALID_STATE", "approve twice");
    let (s, body) = server.post(&format!("/v1/applications/{app_id}/reject"), RISK, &json!({"reason": "late"}));
    assert_error(s, &body, 409, "INVALID_STATE", "reject after approve");
    // The retried approve did not open a second account.
    let app = server.get_ok(&format!("/v1/applications/{app_id}"), RISK);
    assert_eq!(app["account_id"], account_id.as_str(), "{app}");
    let accounts = server.list_all("/v1/accounts", RISK);
    assert_eq!(accounts.len(), 1, "{accounts:#?}");

    // Reject, then approve: INVALID_STATE; a rejected customer may apply again.
    let other = credential_no();
    let (s, app2) = server.apply("乙公司", &other);
    assert_eq!(s, 201, "{app2}");
    let app2_id = app2["application_id"].as_str().unwrap().to_string();
    let (s, rejected) =
        server.post(&format!("/v1/applications/{app2_id}/reject"), RISK, &json!({"reason": "资料不全"}));
    assert_eq!(s, 200, "{rejected}");
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    let read = server.get_ok(&format!("/v1/applications/{app2_id}"), PLATFORM);
    assert_eq!(read["status"], "rejected", "{read}");
    assert_eq!(read["reason"], "资料不全", "{read}");
    assert!(read["account_id"].is_null(), "{read}");
    let (s, body) = server.post(&format!("/v1/applications/{app2_id}/approve"), RISK, &json!({}));
    assert_error(s, &body, 409, "INVALID_STATE", "approve after reject");
    let (s, body) = server.post(&format!("/v1/applications/{app2_id}/reject"), RISK, &json!({"reason": "again"}));
    assert_error(s, &body, 409, "INVALID_STATE", "reject twice");
    let (s, body) = server.apply("乙公司", &other);
    assert_eq!(s, 201, "a rejected customer may apply again: {body}");

    // A sign_failed customer may apply again.
    let failing = format!("{}FAIL", credential_no());
    let failed_account = server.apply_and_approve("丙公司", &failing);
    assert_eq!(server.wait_signed(&failed_account)["status"], "sign_failed");
    let (s, body) = server.apply("丙公司", &failing);
    assert_eq!(s, 201, "a sign_failed customer may apply again: {body}");
}

#[test]
fn business_rule_refusals() {
    let server = Server::start();
    let (a, _, b) = two_accounts(&server);
    let failed = server.open_sign_failed_account("丁公司");
    let failed_account = server.account(&failed);
    assert!(failed_account["sub_account_no"].is_null(), "{failed_account}");

    let hold = uid("h");
    server.transfer_ok(&json!({"id": hold, "type": "freeze", "payer": a, "amount": "60"}));
    // a: available 40, frozen 60
    let before = snapshot(&server, &[&a, &b, &failed]);

    // ACCOUNT_NOT_ACTIVE: sign_failed as payer or payee.
    for body in [
        json!({"id": uid("t"), "type": "transfer", "payer": failed, "payee": b, "amount": "1"}),
        json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": failed, "amount": "1"}),
        json!({"id": uid("t"), "type": "freeze", "payer": failed, "amount": "1"}),
        json!({"id": uid("t"), "type": "pay_freeze", "payer": a, "payee": failed, "amount": "1"}),
        json!({"id": uid("t"), "type": "pay_freeze", "payer": failed, "payee": a, "amount": "1"}),
        json!({"id": uid("t"), "type": "unfreeze_pay", "hold_id": hold, "payee": failed, "amount": "1"}),
    ] {
        expect_transfer(&server, &body, 422, "ACCOUNT_NOT_ACTIVE");
    }
    // SAME_ACCOUNT
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": a, "amount": "1"}),
        422,
        "SAME_ACCOUNT",
    );
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "pay_freeze", "payer": a, "payee": a, "amount": "1"}),
        422,
        "SAME_ACCOUNT",
    );
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "unfreeze_pay", "hold_id": hold, "payee": a}),
        422,
        "SAME_ACCOUNT",
    );
    // INSUFFICIENT_FUNDS: available (40), not total (100), is what counts.
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": b, "amount": "40.01"}),
        422,
        "INSUFFICIENT_FUNDS",
    );
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "freeze", "payer": a, "amount": "50"}),
        422,
        "INSUFFICIENT_FUNDS",
    );
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "pay_freeze", "payer": a, "payee": b, "amount": "99"}),
        422,
        "INSUFFICIENT_FUNDS",
    );
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "transfer", "payer": b, "payee": a, "amount": "0.01"}),
        422,
        "INSUFFICIENT_FUNDS",
    );
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": b, "amount": "999999999999999.99"}),
        422,
        "INSUFFICIENT_FUNDS",
    );
    // HOLD_EXCEEDED
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "unfreeze", "hold_id": hold, "amount": "60.01"}),
        422,
        "HOLD_EXCEEDED",
    );
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "unfreeze_pay", "hold_id": hold, "payee": b, "amount": "61"}),
        422,
        "HOLD_EXCEEDED",
    );
    assert_eq!(snapshot(&server, &[&a, &b, &failed]), before, "a refused request moved money");

    // HOLD_CLOSED, after the hold is used up.
    server
        .transfer_ok(&json!({"id": uid("t"), "type": "unfreeze_pay", "hold_id": hold, "payee": b, "amount": "59.99"}));
    let last = server.transfer_ok(&json!({"id": uid("t"), "type": "unfreeze", "hold_id": hold}));
    assert_eq!(last["amount"], "0.01");
    assert_eq!(last["hold"]["status"], "closed");
    let closed = snapshot(&server, &[&a, &b]);
    expect_transfer(&server, &json!({"id": uid("t"), "type": "unfreeze", "hold_id": hold}), 422, "HOLD_CLOSED");
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "unfreeze", "hold_id": hold, "amount": "0.01"}),
        422,
        "HOLD_CLOSED",
    );
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "unfreeze_pay", "hold_id": hold, "payee": b}),
        422,
        "HOLD_CLOSED",
    );
    assert_eq!(snapshot(&server, &[&a, &b]), closed);
    assert_eq!(server.account(&a)["balance"], json!({"total": "40.01", "available": "40.01", "frozen": "0.00"}));
    assert_eq!(server.account(&b)["balance"], json!({"total": "59.99", "available": "59.99", "frozen": "0.00"}));
    for acct in [&a, &b, &failed] {
        server.assert_consistent(acct);
    }
}

#[test]
fn signing_account_is_not_active() {
    let server = Server::start_with(Options { sign_delay_ms: 3000, ..Options::default() });
    let (a, a_sub) = server.open_account("甲公司");
    server.deposit(&a_sub, "甲公司", "10");
    let signing = server.apply_and_approve("乙公司", &credential_no());
    let account = server.account(&signing);
    assert_eq!(account["status"], "signing", "sign_delay_ms is 3000: {account}");
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": signing, "amount": "1"}),
        422,
        "ACCOUNT_NOT_ACTIVE",
    );
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "pay_freeze", "payer": a, "payee": signing, "amount": "1"}),
        422,
        "ACCOUNT_NOT_ACTIVE",
    );
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "freeze", "payer": signing, "amount": "1"}),
        422,
        "ACCOUNT_NOT_ACTIVE",
    );
    assert_eq!(server.account(&a)["balance"]["available"], "10.00");
    // Refused while signing; once active, the same id is judged afresh.
    let t = json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": signing, "amount": "1"});
    expect_transfer(&server, &t, 422, "ACCOUNT_NOT_ACTIVE");
    assert_eq!(server.wait_signed(&signing)["status"], "active");
    server.transfer_ok(&t);
    assert_eq!(server.account(&signing)["balance"]["available"], "1.00");
}

#[test]
fn bank_notifications() {
    let server = Server::start();
    let (a, a_sub) = server.open_account("甲公司");
    let path = format!("/v1/banks/{BANK}/notifications");
    let note = notification(&a_sub, "甲公司", "100");
    let bytes = serde_json::to_vec(&note).unwrap();

    // Missing, wrong, or other-body signature: 401, nothing credited.
    let wrong_key = sign("not-the-secret", &bytes);
    let other_body = sign(BANK_SECRET, b"{}");
    let upper = sign(BANK_SECRET, &bytes).to_uppercase();
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("Content-Type", JSON)],
        vec![("Content-Type", JSON), ("X-Signature", "")],
        vec![("Content-Type", JSON), ("X-Signature", &wrong_key)],
        vec![("Content-Type", JSON), ("X-Signature", &other_body)],
        vec![("Content-Type", JSON), ("X-Signature", "zz")],
        vec![("Content-Type", JSON), ("X-Signature", &upper[..10])],
    ];
    for headers in &cases {
        let r = server.request("POST", &path, headers, Some(&bytes));
        assert_error(r.status, &r.body, 401, "UNAUTHENTICATED", &format!("notification with {headers:?}"));
    }
    // A bearer token is no substitute for the signature.
    let auth = format!("Bearer {ADMIN}");
    let r = server.request("POST", &path, &[("Content-Type", JSON), ("Authorization", &auth)], Some(&bytes));
    assert_error(r.status, &r.body, 401, "UNAUTHENTICATED", "notification with a bearer token only");
    assert_eq!(server.account(&a)["balance"]["total"], "0.00");

    // Credited, and the same bank_serial again gives the original answer.
    let (s, first) = server.notify(&note);
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["result"], "credited", "{first}");
    let (s, again) = server.notify(&note);
    assert_eq!((s, &again), (200, &first), "the same notification again");
    let mut renamed = note.clone();
    renamed["notification_id"] = json!(uid("N"));
    let (s, again) = server.notify(&renamed);
    assert_eq!((s, &again), (200, &first), "the same bank_serial with another notification_id");
    assert_eq!(server.account(&a)["balance"]["total"], "100.00", "credited once");
    let deposits = server.journal(&a);
    assert_eq!(deposits.len(), 1, "{deposits:#?}");
    assert_eq!(deposits[0]["kind"], "deposit");
    assert_eq!(deposits[0]["transfer_id"], note["notification_id"]);

    // Suspense: payer name differs, unknown sub-account, public adjustment account.
    let mut suspense_ids = Vec::new();
    for (to, payer) in
        [(a_sub.as_str(), "另一家公司"), ("310940199999999", "甲公司"), (PUBLIC_ADJUSTMENT_ACCOUNT, "甲公司")]
    {
        let n = notification(to, payer, "55.5");
        let (s, body) = server.notify(&n);
        assert_eq!(s, 200, "notification to {to} from {payer}: {body}");
        assert_eq!(body["result"], "suspense", "notification to {to} from {payer}: {body}");
        let sid = body["suspense_id"].as_str().unwrap_or_else(|| panic!("suspense_id: {body}"));
        suspense_ids.push(sid.to_string());
        let (s, again) = server.notify(&n);
        assert_eq!((s, &again), (200, &body), "suspense notification again");
    }
    suspense_ids.sort();
    suspense_ids.dedup();
    assert_eq!(suspense_ids.len(), 3, "three suspense entries");
    assert_eq!(server.account(&a)["balance"]["total"], "100.00", "suspense credits nobody");
    server.assert_consistent(&a);
}

#[test]
fn check_order() {
    let server = Server::start();
    let (a, _, b) = two_accounts(&server);
    let before = snapshot(&server, &[&a, &b]);
    let garbage = b"{\"id\":";

    // 401 before 403 / 400 / 415.
    let (s, body) = server.post_raw("/v1/transfers", NO_TOKEN, garbage, Some(JSON));
    assert_error(s, &body, 401, "UNAUTHENTICATED", "no token and invalid JSON");
    let (s, body) = server.post_raw("/v1/transfers", "bogus", garbage, Some("text/plain"));
    assert_error(s, &body, 401, "UNAUTHENTICATED", "unknown token and text/plain");
    // 403 before 400 / 415 / 404.
    let (s, body) = server.post_raw("/v1/transfers", FINANCE, garbage, Some(JSON));
    assert_error(s, &body, 403, "FORBIDDEN", "finance and invalid JSON");
    let (s, body) = server.post_raw("/v1/transfers", RISK, garbage, Some("text/plain"));
    assert_error(s, &body, 403, "FORBIDDEN", "risk and text/plain");
    let (s, body) = server.get("/v1/accounts/F999999", RISK);
    assert_error(s, &body, 403, "FORBIDDEN", "risk and an unknown account");
    let (s, body) = server.post("/v1/applications/A999999/approve", PLATFORM, &json!({}));
    assert_error(s, &body, 403, "FORBIDDEN", "platform approving an unknown application");
    // 400/415 before 404.
    let unknown = json!({"id": uid("t"), "type": "transfer", "payer": "F999999", "payee": b, "amount": "1"});
    let (s, body) =
        server.post_raw("/v1/transfers", PLATFORM, &serde_json::to_vec(&unknown).unwrap(), Some("text/plain"));
    assert_error(s, &body, 415, "UNSUPPORTED_MEDIA_TYPE", "text/plain and an unknown payer");
    let mut bad = unknown.clone();
    bad["amount"] = json!("0");
    expect_transfer(&server, &bad, 400, "INVALID_AMOUNT");
    let mut bad = unknown.clone();
    bad["memo"] = json!(1);
    expect_transfer(&server, &bad, 400, "INVALID_FIELD");
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "unfreeze", "hold_id": "nohold", "amount": "-1"}),
        400,
        "INVALID_AMOUNT",
    );
    let (s, body) = server.post("/v1/applications/A999999/approve", RISK, &json!({"note": 5}));
    assert_error(s, &body, 400, "INVALID_FIELD", "approve with a bad note, unknown application");
    // 404 before 409 before 422.
    let t_id = uid("t");
    server.transfer_ok(&json!({"id": t_id, "type": "transfer", "payer": a, "payee": b, "amount": "1"}));
    expect_transfer(
        &server,
        &json!({"id": t_id, "type": "transfer", "payer": a, "payee": "F999999", "amount": "1"}),
        404,
        "ACCOUNT_NOT_FOUND",
    );
    expect_transfer(
        &server,
        &json!({"id": t_id, "type": "transfer", "payer": a, "payee": b, "amount": "1000"}),
        409,
        "ID_REUSED",
    );
    expect_transfer(
        &server,
        &json!({"id": t_id, "type": "transfer", "payer": a, "payee": a, "amount": "1"}),
        409,
        "ID_REUSED",
    );
    // 404 before 422.
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": "F999999", "amount": "1000"}),
        404,
        "ACCOUNT_NOT_FOUND",
    );
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "pay_freeze", "payer": "F999999", "payee": "F999999", "amount": "1"}),
        404,
        "ACCOUNT_NOT_FOUND",
    );
    // 400 before 422.
    expect_transfer(
        &server,
        &json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": a, "amount": "1.001"}),
        400,
        "INVALID_AMOUNT",
    );
    // 409 before 422 for applications: a pending duplicate with a name mismatch.
    let credential = credential_no();
    let (s, body) = server.apply("戊公司", &credential);
    assert_eq!(s, 201, "{body}");
    let (s, body) = server.post(
        "/v1/applications",
        PLATFORM,
        &json!({"name": "戊公司", "credential_no": credential, "bank": BANK,
                "settlement_account": {"bank_name": "b", "account_no": "1", "account_name": "别的公司"}}),
    );
    assert_error(s, &body, 409, "DUPLICATE_CUSTOMER", "duplicate customer with a name mismatch");

    let after = snapshot(&server, &[&a, &b]);
    assert_eq!(cents(&after[0].0["balance"]["total"]), cents(&before[0].0["balance"]["total"]) - 100);
    assert_eq!(cents(&after[1].0["balance"]["total"]), cents(&before[1].0["balance"]["total"]) + 100);
}
