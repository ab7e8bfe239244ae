//! The binary batch body (`application/vnd.fundledger.transfers+binary`,
//! docs/API-notes.md) against the real binary: the same items sent as JSON
//! and as binary get the same results, item by item; bad framing is refused
//! whole; other media types are still 415.
//!
//! The encoder here is written from the document, not shared with the
//! server, so a server that drifted from the document fails.

mod common;

use common::*;
use serde_json::{json, Value};

const BINARY: &str = "application/vnd.fundledger.transfers+binary";
const BATCH: &str = "/v1/transfers/batch";

/// The binary body of these JSON items (string fields only, as the
/// document maps them; `amount` "12.34" becomes 1234 fen, "0" 0).
fn to_binary(items: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"FLTB");
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for item in items {
        out.extend_from_slice(&binary_item(item));
    }
    out
}

fn binary_item(item: &Value) -> Vec<u8> {
    let types = ["transfer", "freeze", "unfreeze", "unfreeze_pay", "pay_freeze"];
    let kind = match item["type"].as_str() {
        None => 0,
        Some(name) => types.iter().position(|t| *t == name).map_or(200, |i| i as u8 + 1),
    };
    let text = |name: &str| item[name].as_str().map(|s| s.as_bytes().to_vec());
    let fields = [text("id"), text("payer"), text("payee"), text("hold_id")];
    let amount = item["amount"].as_str().map(fen);
    let order_id = text("order_id");
    let memo = text("memo");
    let mut flags = 0u8;
    for (bit, present) in [
        fields[0].is_some(),
        fields[1].is_some(),
        fields[2].is_some(),
        fields[3].is_some(),
        amount.is_some(),
        order_id.is_some(),
        memo.is_some(),
    ]
    .into_iter()
    .enumerate()
    {
        if present {
            flags |= 1 << bit;
        }
    }
    let mut out = vec![kind, flags];
    for bytes in fields.iter().flatten() {
        out.push(u8::try_from(bytes.len()).unwrap());
        out.extend_from_slice(bytes);
    }
    if let Some(fen) = amount {
        out.extend_from_slice(&fen.to_le_bytes());
    }
    if let Some(bytes) = &order_id {
        out.push(u8::try_from(bytes.len()).unwrap());
        out.extend_from_slice(bytes);
    }
    if let Some(bytes) = &memo {
        out.extend_from_slice(&u16::try_from(bytes.len()).unwrap().to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// "12.34" → 1234; "0" → 0; digits only, as the test items are written.
fn fen(text: &str) -> i64 {
    let (units, cents) = text.split_once('.').unwrap_or((text, "0"));
    let cents = format!("{cents:0<2}");
    units.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap()
}

fn post_binary(server: &Server, body: &[u8]) -> (u16, Value) {
    server.post_raw(BATCH, PLATFORM, body, Some(BINARY))
}

/// Three accounts, the first two funded: the same ids on every fresh server.
fn accounts(server: &Server) -> [String; 3] {
    let (a, a_sub) = server.open_account("甲公司");
    let (b, b_sub) = server.open_account("乙公司");
    let (c, _) = server.open_account("丙公司");
    server.deposit(&a_sub, "甲公司", "1000");
    server.deposit(&b_sub, "乙公司", "50");
    [a, b, c]
}

/// A batch that reaches every kind of answer: commits of all five types
/// (a hold opened and used inside the batch), per-item 400s of each code,
/// 404s, 409 and 422s.
fn mixed_items([a, b, c]: &[String; 3]) -> Vec<Value> {
    vec![
        json!({"id": "t-1", "type": "transfer", "payer": a, "payee": b, "amount": "12.34", "order_id": "O-1", "memo": "货款 1"}),
        json!({"id": "f-1", "type": "freeze", "payer": a, "amount": "100"}),
        json!({"id": "u-1", "type": "unfreeze", "hold_id": "f-1", "amount": "0.5"}),
        json!({"id": "up-1", "type": "unfreeze_pay", "hold_id": "f-1", "payee": c}),
        json!({"id": "pf-1", "type": "pay_freeze", "payer": b, "payee": c, "amount": "20", "order_id": "O-2"}),
        json!({"id": "bad-amount", "type": "transfer", "payer": a, "payee": b, "amount": "0"}),
        json!({"id": "big-amount", "type": "transfer", "payer": a, "payee": b, "amount": "1000000000000000"}),
        json!({"id": "bad-payer", "type": "transfer", "payer": "F12", "payee": b, "amount": "1"}),
        json!({"id": "bad id", "type": "transfer", "payer": a, "payee": b, "amount": "1"}),
        json!({"id": "bad-type", "type": "refund", "payer": a, "payee": b, "amount": "1"}),
        json!({"id": "no-type", "payer": a, "payee": b, "amount": "1"}),
        json!({"type": "transfer", "payer": a, "payee": b, "amount": "1"}),
        json!({"id": "no-payee", "type": "transfer", "payer": a, "amount": "1"}),
        json!({"id": "payee-on-freeze", "type": "freeze", "payer": a, "payee": b, "amount": "1"}),
        json!({"id": "long-memo", "type": "transfer", "payer": a, "payee": b, "amount": "1", "memo": "长".repeat(257)}),
        json!({"id": "no-account", "type": "transfer", "payer": a, "payee": "F999999", "amount": "1"}),
        json!({"id": "no-hold", "type": "unfreeze", "hold_id": "nope"}),
        json!({"id": "same", "type": "transfer", "payer": a, "payee": a, "amount": "1"}),
        json!({"id": "poor", "type": "transfer", "payer": c, "payee": a, "amount": "1000"}),
        json!({"id": "closed", "type": "unfreeze", "hold_id": "f-1"}),
        json!({"id": "t-1", "type": "transfer", "payer": a, "payee": b, "amount": "99"}),
        json!({"id": "t-1", "type": "transfer", "payer": a, "payee": b, "amount": "12.34", "order_id": "O-1", "memo": "货款 1"}),
        json!({"id": "t-2", "type": "transfer", "payer": b, "payee": a, "amount": "0.01", "memo": ""}),
    ]
}

/// A result without what differs between two servers (lsn, time, receipt).
fn comparable(result: &Value) -> Value {
    let mut result = result.clone();
    if let Some(body) = result["body"].as_object_mut() {
        for key in ["lsn", "committed_at", "receipt_no"] {
            body.remove(key);
        }
    }
    result
}

fn results(answer: &Value) -> &Vec<Value> {
    answer["results"].as_array().unwrap_or_else(|| panic!("no results: {}", short(answer)))
}

#[test]
fn the_same_batch_as_json_and_as_binary_gets_the_same_results() {
    let json_server = Server::start();
    let binary_server = Server::start();
    let ids = accounts(&json_server);
    assert_eq!(accounts(&binary_server), ids, "fresh servers number accounts alike");
    let items = mixed_items(&ids);

    let (s, by_json) = json_server.batch(&items);
    assert_eq!(s, 200, "{}", short(&by_json));
    let (s, by_binary) = post_binary(&binary_server, &to_binary(&items));
    assert_eq!(s, 200, "{}", short(&by_binary));
    let (by_json, by_binary) = (results(&by_json), results(&by_binary));
    assert_eq!(by_json.len(), items.len());
    assert_eq!(by_binary.len(), items.len());
    for (index, (json_result, binary_result)) in by_json.iter().zip(by_binary).enumerate() {
        let what = format!("item {index} {}", items[index]);
        assert_eq!(json_result["status"], binary_result["status"], "{what}: {json_result} / {binary_result}");
        if json_result["status"] == 201 {
            assert_eq!(comparable(json_result), comparable(binary_result), "{what}");
        } else {
            let (json_error, binary_error) = (&json_result["body"]["error"], &binary_result["body"]["error"]);
            assert_eq!(json_error["code"], binary_error["code"], "{what}: {json_result} / {binary_result}");
            if json_error["code"] != "INVALID_AMOUNT" {
                assert_eq!(json_error["message"], binary_error["message"], "{what}");
            }
        }
    }
    // Every kind of answer was reached.
    let statuses: Vec<u64> = by_json.iter().map(|r| r["status"].as_u64().unwrap()).collect();
    for status in [201, 400, 404, 409, 422] {
        assert!(statuses.contains(&status), "no {status} in {statuses:?}");
    }
    for account in &ids {
        assert_eq!(json_server.account(account)["balance"], binary_server.account(account)["balance"], "{account}");
        binary_server.assert_consistent(account);
    }

    // One id space: the JSON retry of the binary batch on the same server
    // gets the original answers (same lsn) for what committed.
    let (s, retried) = binary_server.batch(&items);
    assert_eq!(s, 200);
    for (index, (first, again)) in by_binary.iter().zip(results(&retried)).enumerate() {
        if first["status"] == 201 {
            assert_eq!(first, again, "item {index}: a JSON retry of a binary item");
        }
    }
    // And the binary retry too.
    let (s, retried) = post_binary(&binary_server, &to_binary(&items));
    assert_eq!(s, 200);
    for (index, (first, again)) in by_binary.iter().zip(results(&retried)).enumerate() {
        if first["status"] == 201 {
            assert_eq!(first, again, "item {index}: a binary retry");
        }
    }
}

#[test]
fn bad_framing_is_refused_whole_and_other_media_types_are_415() {
    let server = Server::start_with(Options { max_body_bytes: Some(65_536), ..Options::default() });
    let ids = accounts(&server);
    let [a, b, _] = &ids;
    let before: Vec<Value> = ids.iter().map(|id| server.account(id)).collect();
    let item = json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": b, "amount": "1"});
    let good = to_binary(std::slice::from_ref(&item));

    let mut cases: Vec<(&str, Vec<u8>)> =
        vec![("empty body", vec![]), ("JSON sent as binary", b"{\"transfers\":[]}".to_vec())];
    let mut version = good.clone();
    version[4] = 9;
    cases.push(("version 9", version));
    let mut empty = good[..10].to_vec();
    empty[6..10].copy_from_slice(&0u32.to_le_bytes());
    cases.push(("count 0", empty));
    let mut over = good.clone();
    over[6..10].copy_from_slice(&8191u32.to_le_bytes());
    cases.push(("count 8191", over));
    cases.push(("truncated", good[..good.len() - 3].to_vec()));
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"xx");
    cases.push(("trailing bytes", trailing));
    let mut flags = good.clone();
    flags[11] |= 0x80;
    cases.push(("an undefined field flag", flags));
    for (what, body) in &cases {
        let (s, answer) = post_binary(&server, body);
        assert_error(s, &answer, 400, "INVALID_BATCH", what);
    }

    // Media types: only JSON and the binary one.
    for content_type in [Some("application/octet-stream"), Some("text/plain"), None] {
        let (s, answer) = server.post_raw(BATCH, PLATFORM, &good, content_type);
        assert_error(s, &answer, 415, "UNSUPPORTED_MEDIA_TYPE", &format!("{content_type:?}"));
    }
    // Authentication and role come first, as for JSON.
    let (s, answer) = server.post_raw(BATCH, NO_TOKEN, &good, Some(BINARY));
    assert_error(s, &answer, 401, "UNAUTHENTICATED", "no token");
    let (s, answer) = server.post_raw(BATCH, FINANCE, &good, Some(BINARY));
    assert_error(s, &answer, 403, "FORBIDDEN", "finance");

    // The body limit holds: 3000 items of ~30 bytes is over 64 KiB.
    let many: Vec<Value> = (0..3000)
        .map(|i| json!({"id": format!("big-{i}"), "type": "transfer", "payer": a, "payee": b, "amount": "0.01"}))
        .collect();
    let (s, answer) =
        server.raw_post(BATCH, PLATFORM, BINARY, &to_binary(&many)).expect("an HTTP answer to a body over the limit");
    assert_error(s, &answer, 413, "BODY_TOO_LARGE", "binary batch over the limit");

    let after: Vec<Value> = ids.iter().map(|id| server.account(id)).collect();
    assert_eq!(before, after, "refused bodies moved no money");

    // The largest batch, 8190 invalid items (amount 0: 9 bytes an item plus
    // the id), is judged item by item.
    let zeros: Vec<Value> =
        (0..8190).map(|i| json!({"id": format!("z{i}"), "type": "freeze", "payer": a, "amount": "0"})).collect();
    let body = to_binary(&zeros);
    let server = Server::start();
    let (s, answer) = post_binary(&server, &body);
    assert_eq!(s, 200, "{}", short(&answer));
    assert!(results(&answer).iter().all(|r| r["status"] == 400 && r["body"]["error"]["code"] == "INVALID_AMOUNT"));

    // And the good body is taken.
    let (s, answer) =
        post_binary(&server, &to_binary(&[json!({"id": "x-1", "type": "freeze", "payer": "F000001", "amount": "1"})]));
    assert_eq!(s, 200);
    assert_eq!(results(&answer)[0]["status"], 404, "F000001 does not exist on this fresh server: {}", short(&answer));
}
