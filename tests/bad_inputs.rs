//! A table of bad inputs: malformed amounts, ids, texts, JSON, types,
//! content types, query parameters. Each must get its 4xx with the error
//! body `{"error": {"code", "message"}}`, never a 500 and never a dropped
//! connection; afterwards the server still serves and nothing moved.

mod common;

use common::*;
use serde_json::{json, Value};

/// What a case may answer: (status, code); an empty code accepts any code
/// (for the few inputs where API.md names the status but not the code).
type Expect = &'static [(u16, &'static str)];

struct Case {
    name: String,
    method: &'static str,
    path: String,
    token: &'static str,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
    /// Sign the body as the bank (X-Signature).
    signed: bool,
    expect: Expect,
}

const INVALID_AMOUNT: Expect = &[(400, "INVALID_AMOUNT")];
const INVALID_ID: Expect = &[(400, "INVALID_ID")];
const INVALID_FIELD: Expect = &[(400, "INVALID_FIELD")];
const INVALID_JSON: Expect = &[(400, "INVALID_JSON")];
const MISSING_FIELD: Expect = &[(400, "MISSING_FIELD")];
const UNEXPECTED_FIELD: Expect = &[(400, "UNEXPECTED_FIELD")];
const INVALID_TYPE: Expect = &[(400, "INVALID_TYPE")];
const UNSUPPORTED: Expect = &[(415, "UNSUPPORTED_MEDIA_TYPE")];
const ANY_400: Expect = &[(400, "")];
const NOT_AN_OBJECT: Expect = &[(400, "INVALID_JSON"), (400, "INVALID_FIELD"), (400, "MISSING_FIELD")];
const WRONG_TYPE_AMOUNT: Expect = &[(400, "INVALID_AMOUNT"), (400, "INVALID_FIELD")];
const HUGE_NUMBER: Expect = &[(400, "INVALID_AMOUNT"), (400, "INVALID_JSON"), (400, "INVALID_FIELD")];
const NESTED: Expect = &[(400, "INVALID_JSON"), (400, "INVALID_FIELD"), (400, "UNEXPECTED_FIELD")];
const DUPLICATE_KEY: Expect = &[(400, "INVALID_JSON"), (400, "INVALID_FIELD"), (400, "UNEXPECTED_FIELD")];
const BAD_HOLD_ID: Expect = &[(400, "INVALID_ID"), (400, "INVALID_FIELD")];
const BAD_PATH_TRANSFER: Expect = &[(400, "INVALID_ID"), (404, "TRANSFER_NOT_FOUND")];
const BAD_PATH_ACCOUNT: Expect = &[(400, "INVALID_FIELD"), (400, "INVALID_ID"), (404, "ACCOUNT_NOT_FOUND")];
const TYPE_NOT_STRING: Expect = &[(400, "INVALID_TYPE"), (400, "INVALID_FIELD")];
const EMPTY_TEXT: Expect = &[(400, "INVALID_FIELD"), (400, "MISSING_FIELD")];

struct Fixture {
    a: String,
    b: String,
    hold: String,
    application: String,
    a_sub: String,
}

fn transfer_with(f: &Fixture, key: &str, value: Value) -> Vec<u8> {
    let mut t = json!({"id": uid("bad"), "type": "transfer", "payer": f.a, "payee": f.b, "amount": "1.00"});
    if value.is_null() {
        t.as_object_mut().unwrap().remove(key);
    } else {
        t[key] = value;
    }
    serde_json::to_vec(&t).unwrap()
}

#[allow(clippy::too_many_arguments)]
fn case(
    name: impl Into<String>,
    method: &'static str,
    path: impl Into<String>,
    token: &'static str,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
    expect: Expect,
) -> Case {
    Case { name: name.into(), method, path: path.into(), token, content_type, body, signed: false, expect }
}

/// A POST /v1/transfers case as the platform.
fn post(name: impl Into<String>, body: Vec<u8>, expect: Expect) -> Case {
    case(name, "POST", "/v1/transfers", PLATFORM, Some(JSON), Some(body), expect)
}

fn cases(f: &Fixture) -> Vec<Case> {
    let mut cases = Vec::new();

    // Amounts: strings of the wrong form.
    for a in [
        "01",
        "+1",
        ".5",
        "1.",
        "0",
        "-1",
        "0.001",
        "1e3",
        " 1",
        "1 ",
        "1,000",
        "NaN",
        "",
        "0.00",
        "00.1",
        "1.000",
        "１",
        "Infinity",
        "1234567890123456",
        "1_000",
        "0x10",
        "1.2.3",
        "- 1",
        "1\u{0}",
    ] {
        cases.push(post(format!("amount {a:?}"), transfer_with(f, "amount", json!(a)), INVALID_AMOUNT));
    }
    // Amounts: JSON numbers and other types.
    cases.push(post("amount 1 (number)", transfer_with(f, "amount", json!(1)), INVALID_AMOUNT));
    cases.push(post("amount 1.5 (number)", transfer_with(f, "amount", json!(1.5)), INVALID_AMOUNT));
    cases.push(post("amount 16-digit number", transfer_with(f, "amount", json!(1234567890123456u64)), INVALID_AMOUNT));
    cases.push(post("amount true", transfer_with(f, "amount", json!(true)), WRONG_TYPE_AMOUNT));
    cases.push(post("amount {}", transfer_with(f, "amount", json!({})), WRONG_TYPE_AMOUNT));
    cases.push(post("amount [\"1\"]", transfer_with(f, "amount", json!(["1"])), WRONG_TYPE_AMOUNT));
    cases.push(post("amount null", transfer_with(f, "amount", Value::Null), MISSING_FIELD));
    let raw = |s: String| s.into_bytes();
    cases.push(post(
        "amount 1e400",
        raw(format!(
            r#"{{"id":"{}","type":"transfer","payer":"{}","payee":"{}","amount":1e400}}"#,
            uid("bad"),
            f.a,
            f.b
        )),
        HUGE_NUMBER,
    ));
    cases.push(post(
        "amount with 5000 digits",
        raw(format!(
            r#"{{"id":"{}","type":"transfer","payer":"{}","payee":"{}","amount":{}}}"#,
            uid("bad"),
            f.a,
            f.b,
            "9".repeat(5000)
        )),
        HUGE_NUMBER,
    ));
    cases.push(post(
        "amount as a string of 5000 digits",
        transfer_with(f, "amount", json!("9".repeat(5000))),
        INVALID_AMOUNT,
    ));
    cases.push(post(
        "unfreeze amount 0",
        serde_json::to_vec(&json!({"id": uid("bad"), "type": "unfreeze", "hold_id": f.hold, "amount": "0"})).unwrap(),
        INVALID_AMOUNT,
    ));

    // Client ids.
    for id in ["", "a b", "a/b", "订单1", "é", "tab\t", "a\u{0}b", "semi;colon", "x?y", "<script>"] {
        cases.push(post(format!("id {id:?}"), transfer_with(f, "id", json!(id)), INVALID_ID));
    }
    cases.push(post("id of 65 characters", transfer_with(f, "id", json!("x".repeat(65))), INVALID_ID));
    cases.push(post("id of 10000 characters", transfer_with(f, "id", json!("x".repeat(10_000))), INVALID_ID));
    cases.push(post("id 123 (number)", transfer_with(f, "id", json!(123)), INVALID_FIELD));
    cases.push(post("id true", transfer_with(f, "id", json!(true)), INVALID_FIELD));
    cases.push(post("id [\"x\"]", transfer_with(f, "id", json!(["x"])), INVALID_FIELD));
    cases.push(post("id missing", transfer_with(f, "id", Value::Null), MISSING_FIELD));
    // order_id follows the id rules.
    for o in ["", "O 1", "订单1", "O/1"] {
        cases.push(post(format!("order_id {o:?}"), transfer_with(f, "order_id", json!(o)), INVALID_ID));
    }
    cases.push(post("order_id of 65 characters", transfer_with(f, "order_id", json!("o".repeat(65))), INVALID_ID));
    cases.push(post("order_id 5 (number)", transfer_with(f, "order_id", json!(5)), INVALID_FIELD));
    // hold_id
    for h in [json!(""), json!("h h"), json!("h".repeat(65))] {
        cases.push(post(
            format!("hold_id {h}"),
            serde_json::to_vec(&json!({"id": uid("bad"), "type": "unfreeze", "hold_id": h})).unwrap(),
            BAD_HOLD_ID,
        ));
    }
    cases.push(post(
        "hold_id 5 (number)",
        serde_json::to_vec(&json!({"id": uid("bad"), "type": "unfreeze", "hold_id": 5})).unwrap(),
        INVALID_FIELD,
    ));
    // memo
    cases.push(post("memo of 257 ASCII characters", transfer_with(f, "memo", json!("m".repeat(257))), INVALID_FIELD));
    cases.push(post("memo of 257 CJK characters", transfer_with(f, "memo", json!("货".repeat(257))), INVALID_FIELD));
    cases.push(post("memo of 1 MB", transfer_with(f, "memo", json!("m".repeat(1 << 20))), INVALID_FIELD));
    cases.push(post("memo 5 (number)", transfer_with(f, "memo", json!(5)), INVALID_FIELD));
    cases.push(post("memo {}", transfer_with(f, "memo", json!({})), INVALID_FIELD));
    // Account fields.
    for p in [
        json!("F1"),
        json!("f000001"),
        json!(""),
        json!("F00000a"),
        json!(" F000001"),
        json!("F-000001"),
        json!("F０００００１"),
        json!("A000001"),
    ] {
        cases.push(post(format!("payer {p}"), transfer_with(f, "payer", p), INVALID_FIELD));
    }
    for p in [json!(1), json!(["F000001"]), json!({"id": "F000001"}), json!(true)] {
        cases.push(post(format!("payer {p}"), transfer_with(f, "payer", p), INVALID_FIELD));
    }
    cases.push(post("payee missing on transfer", transfer_with(f, "payee", Value::Null), MISSING_FIELD));
    // type
    for t in ["Transfer", "", "transfer ", "TRANSFER", "withdrawal", "deposit"] {
        cases.push(post(format!("type {t:?}"), transfer_with(f, "type", json!(t)), INVALID_TYPE));
    }
    cases.push(post("type 1 (number)", transfer_with(f, "type", json!(1)), TYPE_NOT_STRING));
    cases.push(post("type missing", transfer_with(f, "type", Value::Null), MISSING_FIELD));
    cases.push(post("unknown field", transfer_with(f, "surprise", json!(1)), UNEXPECTED_FIELD));
    cases.push(post("unknown field named like a header", transfer_with(f, "Amount", json!("1")), UNEXPECTED_FIELD));

    // Bodies that are not the object asked for.
    for (name, body) in
        [("body []", "[]"), ("body null", "null"), ("body \"x\"", "\"x\""), ("body 42", "42"), ("body true", "true")]
    {
        cases.push(post(name, body.as_bytes().to_vec(), NOT_AN_OBJECT));
    }
    cases.push(post("body {}", b"{}".to_vec(), MISSING_FIELD));
    // Not JSON at all.
    for (name, body) in [
        ("empty body", "".to_string()),
        ("whitespace body", "   \n".to_string()),
        ("truncated JSON", format!(r#"{{"id":"{}","type":"tra"#, uid("bad"))),
        ("lone brace", "{".to_string()),
        ("trailing comma", format!(r#"{{"id":"{}",}}"#, uid("bad"))),
        ("single quotes", "{'id':'x'}".to_string()),
        ("comment", "{/* c */}".to_string()),
        (
            "trailing garbage",
            format!(
                r#"{{"id":"{}","type":"transfer","payer":"{}","payee":"{}","amount":"1"}} x"#,
                uid("bad"),
                f.a,
                f.b
            ),
        ),
        ("two objects", format!(r#"{{"id":"{}"}}{{"id":"{}"}}"#, uid("bad"), uid("bad"))),
        ("unquoted key", "{id: 1}".to_string()),
        (
            "NaN literal",
            format!(r#"{{"id":"{}","type":"transfer","payer":"{}","payee":"{}","amount":NaN}}"#, uid("bad"), f.a, f.b),
        ),
    ] {
        cases.push(post(name, body.into_bytes(), INVALID_JSON));
    }
    let mut invalid_utf8 = format!(
        r#"{{"id":"{}","type":"transfer","payer":"{}","payee":"{}","amount":"1","memo":""#,
        uid("bad"),
        f.a,
        f.b
    )
    .into_bytes();
    invalid_utf8.extend_from_slice(b"\xff\xfe\xc3\x28");
    invalid_utf8.extend_from_slice(b"\"}");
    cases.push(post("invalid UTF-8 inside a string", invalid_utf8, INVALID_JSON));
    cases.push(post("invalid UTF-8 at the start", b"\xff{}".to_vec(), INVALID_JSON));
    cases.push(post("NUL byte outside strings", b"{\x00}".to_vec(), INVALID_JSON));
    cases.push(post(
        "lone surrogate escape in memo",
        raw(format!(
            r#"{{"id":"{}","type":"transfer","payer":"{}","payee":"{}","amount":"1","memo":"\ud800"}}"#,
            uid("bad"),
            f.a,
            f.b
        )),
        &[(400, "INVALID_JSON"), (400, "INVALID_FIELD")],
    ));
    // Duplicate keys must not silently pick one.
    cases.push(post(
        "duplicate amount key",
        raw(format!(
            r#"{{"id":"{}","type":"transfer","payer":"{}","payee":"{}","amount":"1","amount":"900"}}"#,
            uid("bad"),
            f.a,
            f.b
        )),
        DUPLICATE_KEY,
    ));
    cases.push(post(
        "duplicate payee key",
        raw(format!(
            r#"{{"id":"{}","type":"transfer","payer":"{}","payee":"{}","payee":"{}","amount":"1"}}"#,
            uid("bad"),
            f.a,
            f.b,
            f.a
        )),
        DUPLICATE_KEY,
    ));
    // Deep nesting must not overflow a stack.
    let depth = 100_000;
    cases.push(post(
        "memo nested 100000 arrays deep",
        raw(format!(
            r#"{{"id":"{}","type":"transfer","payer":"{}","payee":"{}","amount":"1","memo":{}{}}}"#,
            uid("bad"),
            f.a,
            f.b,
            "[".repeat(depth),
            "]".repeat(depth)
        )),
        NESTED,
    ));
    cases.push(post(
        "unknown field nested 100000 objects deep",
        raw(format!(
            r#"{{"id":"{}","type":"transfer","payer":"{}","payee":"{}","amount":"1","x":{}1{}}}"#,
            uid("bad"),
            f.a,
            f.b,
            r#"{"a":"#.repeat(depth),
            "}".repeat(depth)
        )),
        NESTED,
    ));
    cases.push(post(
        "body nested 100000 arrays deep",
        raw(format!("{}{}", "[".repeat(depth), "]".repeat(depth))),
        NOT_AN_OBJECT,
    ));

    // Content types.
    let good = transfer_with(f, "id", json!(uid("bad")));
    for ct in [
        Some("text/plain"),
        None,
        Some("application/xml"),
        Some("application/jsonx"),
        Some("json"),
        Some("multipart/form-data; boundary=x"),
        Some("application/x-www-form-urlencoded"),
    ] {
        cases.push(case(
            format!("content type {ct:?}"),
            "POST",
            "/v1/transfers",
            PLATFORM,
            ct,
            Some(good.clone()),
            UNSUPPORTED,
        ));
    }

    // Credentials (answered before the body is looked at).
    cases.push(case(
        "no Authorization",
        "POST",
        "/v1/transfers",
        NO_TOKEN,
        Some(JSON),
        Some(good.clone()),
        &[(401, "UNAUTHENTICATED")],
    ));
    cases.push(case(
        "unknown token",
        "POST",
        "/v1/transfers",
        "no-such-token",
        Some(JSON),
        Some(good.clone()),
        &[(401, "UNAUTHENTICATED")],
    ));
    cases.push(case(
        "finance token",
        "POST",
        "/v1/transfers",
        FINANCE,
        Some(JSON),
        Some(good.clone()),
        &[(403, "FORBIDDEN")],
    ));

    // The batch endpoint: bodies refused whole.
    for (name, body) in [
        ("batch transfers \"x\"", json!({"transfers": "x"})),
        ("batch transfers null", json!({"transfers": null})),
        ("batch transfers {}", json!({"transfers": {}})),
        ("batch []", json!([])),
        ("batch with an unknown top-level field", json!({"transfers": [], "x": 1})),
    ] {
        cases.push(case(
            name,
            "POST",
            "/v1/transfers/batch",
            PLATFORM,
            Some(JSON),
            Some(serde_json::to_vec(&body).unwrap()),
            ANY_400,
        ));
    }
    cases.push(case(
        "batch truncated",
        "POST",
        "/v1/transfers/batch",
        PLATFORM,
        Some(JSON),
        Some(b"{\"transfers\":[{".to_vec()),
        INVALID_JSON,
    ));
    cases.push(case(
        "batch text/plain",
        "POST",
        "/v1/transfers/batch",
        PLATFORM,
        Some("text/plain"),
        Some(b"{\"transfers\":[]}".to_vec()),
        UNSUPPORTED,
    ));

    // Applications.
    let app = |v: Value| Some(serde_json::to_vec(&v).unwrap());
    let settlement = json!({"bank_name": "某银行", "account_no": "6222020000000001", "account_name": "甲公司"});
    for (name, body, expect) in [
        ("application {}", json!({}), MISSING_FIELD),
        (
            "application name 5",
            json!({"name": 5, "credential_no": credential_no(), "bank": BANK, "settlement_account": settlement}),
            INVALID_FIELD,
        ),
        (
            "application name \"\"",
            json!({"name": "", "credential_no": credential_no(), "bank": BANK, "settlement_account": settlement}),
            EMPTY_TEXT,
        ),
        (
            "application credential_no \"\"",
            json!({"name": "甲公司", "credential_no": "", "bank": BANK, "settlement_account": settlement}),
            EMPTY_TEXT,
        ),
        (
            "application settlement_account \"x\"",
            json!({"name": "甲公司", "credential_no": credential_no(), "bank": BANK, "settlement_account": "x"}),
            INVALID_FIELD,
        ),
        (
            "application settlement_account {}",
            json!({"name": "甲公司", "credential_no": credential_no(), "bank": BANK, "settlement_account": {}}),
            MISSING_FIELD,
        ),
        (
            "application unknown field",
            json!({"name": "甲公司", "credential_no": credential_no(), "bank": BANK, "settlement_account": settlement, "vip": true}),
            UNEXPECTED_FIELD,
        ),
    ] {
        cases.push(case(name, "POST", "/v1/applications", PLATFORM, Some(JSON), app(body), expect));
    }
    let approve = format!("/v1/applications/{}/approve", f.application);
    let reject = format!("/v1/applications/{}/reject", f.application);
    cases.push(case(
        "approve note 5",
        "POST",
        approve.clone(),
        RISK,
        Some(JSON),
        app(json!({"note": 5})),
        INVALID_FIELD,
    ));
    cases.push(case(
        "approve unknown field",
        "POST",
        approve.clone(),
        RISK,
        Some(JSON),
        app(json!({"x": 1})),
        UNEXPECTED_FIELD,
    ));
    cases.push(case(
        "approve truncated",
        "POST",
        approve.clone(),
        RISK,
        Some(JSON),
        Some(b"{\"note\":".to_vec()),
        INVALID_JSON,
    ));
    cases.push(case(
        "approve text/plain",
        "POST",
        approve,
        RISK,
        Some("text/plain"),
        Some(b"{}".to_vec()),
        UNSUPPORTED,
    ));
    cases.push(case("reject without reason", "POST", reject.clone(), RISK, Some(JSON), app(json!({})), MISSING_FIELD));
    cases.push(case("reject reason []", "POST", reject, RISK, Some(JSON), app(json!({"reason": []})), INVALID_FIELD));

    // Query parameters and path ids.
    let journal = format!("/v1/accounts/{}/journal", f.a);
    for q in [
        "/v1/accounts?limit=0".to_string(),
        "/v1/accounts?limit=1001".to_string(),
        "/v1/accounts?limit=abc".to_string(),
        "/v1/accounts?limit=-1".to_string(),
        "/v1/accounts?limit=1.5".to_string(),
        "/v1/accounts?limit=99999999999999999999999".to_string(),
        "/v1/accounts?cursor=garbage!!".to_string(),
        "/v1/accounts?cursor=%00%ff".to_string(),
        "/v1/accounts?status=bogus".to_string(),
        format!("{journal}?limit=0"),
        format!("{journal}?limit=1001"),
        format!("{journal}?kind=bogus"),
        format!("{journal}?from=notadate"),
        format!("{journal}?to=2026-13-45"),
        format!("{journal}?from=2026-02-30"),
        format!("{journal}?after_lsn=abc"),
        format!("{journal}?after_lsn=-1"),
        format!("{journal}?cursor=not-a-cursor"),
        "/v1/orders/O-1/transfers?limit=1001".to_string(),
        "/v1/orders/O-1/transfers?cursor=zzz".to_string(),
    ] {
        let token = if q.starts_with("/v1/accounts?") { FINANCE } else { PLATFORM };
        cases.push(case(format!("GET {q}"), "GET", q, token, None, None, ANY_400));
    }
    cases.push(case("GET order with a space", "GET", "/v1/orders/O%201/transfers", PLATFORM, None, None, INVALID_ID));
    cases.push(case(
        "GET order id of 65",
        "GET",
        format!("/v1/orders/{}/transfers", "o".repeat(65)),
        PLATFORM,
        None,
        None,
        INVALID_ID,
    ));
    cases.push(case(
        "GET transfer id of 65",
        "GET",
        format!("/v1/transfers/{}", "t".repeat(65)),
        PLATFORM,
        None,
        None,
        BAD_PATH_TRANSFER,
    ));
    cases.push(case("GET transfer id with %20", "GET", "/v1/transfers/a%20b", PLATFORM, None, None, BAD_PATH_TRANSFER));
    cases.push(case("GET account XYZ", "GET", "/v1/accounts/XYZ", PLATFORM, None, None, BAD_PATH_ACCOUNT));
    cases.push(case("GET account %00", "GET", "/v1/accounts/%00", PLATFORM, None, None, BAD_PATH_ACCOUNT));

    // Bank notifications, correctly signed but malformed.
    let note = |changes: Value| -> Vec<u8> {
        let mut n = notification(&f.a_sub, "甲公司", "1");
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                n.as_object_mut().unwrap().remove(k);
            } else {
                n[k] = v.clone();
            }
        }
        serde_json::to_vec(&n).unwrap()
    };
    let path = format!("/v1/banks/{BANK}/notifications");
    for (name, body, expect) in [
        ("notification amount \"abc\"", note(json!({"amount": "abc"})), INVALID_AMOUNT),
        ("notification amount 5 (number)", note(json!({"amount": 5})), INVALID_AMOUNT),
        ("notification amount \"0\"", note(json!({"amount": "0"})), INVALID_AMOUNT),
        ("notification without bank_serial", note(json!({"bank_serial": null})), MISSING_FIELD),
        ("notification without to_account_no", note(json!({"to_account_no": null})), MISSING_FIELD),
        ("notification truncated", b"{\"notification_id\":".to_vec(), INVALID_JSON),
        ("notification []", b"[]".to_vec(), NOT_AN_OBJECT),
    ] {
        cases.push(Case {
            name: name.to_string(),
            method: "POST",
            path: path.clone(),
            token: NO_TOKEN,
            content_type: Some(JSON),
            body: Some(body),
            signed: true,
            expect,
        });
    }
    cases
}

fn run_case(server: &Server, case: &Case) -> Result<(), String> {
    let auth = format!("Bearer {}", case.token);
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if !case.token.is_empty() {
        headers.push(("Authorization", &auth));
    }
    if let Some(ct) = case.content_type {
        headers.push(("Content-Type", ct));
    }
    let signature = case.body.as_ref().map(|b| sign(BANK_SECRET, b)).unwrap_or_default();
    if case.signed {
        headers.push(("X-Signature", &signature));
    }
    // A fresh connection per case, the body sent a moment after the head,
    // and then a check that the connection still works.
    let r = server
        .raw_exchange(case.method, &case.path, &headers, case.body.as_deref(), 10)
        .map_err(|e| format!("no HTTP answer: {e}"))?;
    let code = r.body["error"]["code"].as_str().unwrap_or("");
    let matches = case.expect.iter().any(|(status, want)| *status == r.status && (want.is_empty() || *want == code));
    let shape_ok = r.body.as_object().map(|o| o.len()) == Some(1)
        && r.body["error"]["code"].is_string()
        && r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty());
    let text: String = r.text.chars().take(300).collect();
    if r.status >= 500 {
        return Err(format!("got {} (5xx is never an answer to bad input): {text}", r.status));
    }
    if !matches {
        return Err(format!("expected one of {:?}, got {} {code:?}: {text}", case.expect, r.status));
    }
    if !shape_ok {
        return Err(format!("error body is not {{\"error\":{{\"code\",\"message\"}}}}: {text}"));
    }
    r.reusable.map_err(|e| format!("answered {} {code}, but {e}", r.status))
}

fn setup(server: &Server) -> Fixture {
    let (a, a_sub) = server.open_account("甲公司");
    let (b, _) = server.open_account("乙公司");
    server.deposit(&a_sub, "甲公司", "1000");
    let hold = uid("h");
    server.transfer_ok(&json!({"id": hold, "type": "freeze", "payer": a, "amount": "100"}));
    let (status, app) = server.apply("丙公司", &credential_no());
    assert_eq!(status, 201, "{app}");
    let application = app["application_id"].as_str().unwrap().to_string();
    Fixture { a, b, hold, application, a_sub }
}

#[test]
fn bad_inputs_are_refused_cleanly() {
    let server = Server::start();
    let f = setup(&server);
    let accounts_before: Vec<Value> = [&f.a, &f.b].iter().map(|a| server.account(a)).collect();
    let journals_before: Vec<usize> = [&f.a, &f.b].iter().map(|a| server.journal(a).len()).collect();
    let hold_before = server.get_ok(&format!("/v1/holds/{}", f.hold), PLATFORM);

    let cases = cases(&f);
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(why) = run_case(&server, case) {
            failures.push(format!("  {} {} [{}]: {why}", case.method, case.path, case.name));
        }
    }

    eprintln!("{} bad inputs checked, {} not as API.md says", cases.len(), failures.len());
    // Still serving, nothing moved, the application still pending.
    let (status, health) = server.get("/healthz", NO_TOKEN);
    assert_eq!((status, &health), (200, &json!({"status": "ok"})), "after the bad inputs");
    let accounts_after: Vec<Value> = [&f.a, &f.b].iter().map(|a| server.account(a)).collect();
    let journals_after: Vec<usize> = [&f.a, &f.b].iter().map(|a| server.journal(a).len()).collect();
    let app = server.get_ok(&format!("/v1/applications/{}", f.application), RISK);
    let hold_after = server.get_ok(&format!("/v1/holds/{}", f.hold), PLATFORM);
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs were not refused as API.md says:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(accounts_after, accounts_before, "a bad input changed an account");
    assert_eq!(journals_after, journals_before, "a bad input wrote a journal entry");
    assert_eq!(hold_after, hold_before, "a bad input touched the hold");
    assert_eq!(app["status"], "pending_review", "a bad input decided the application: {app}");
    let accounts = server.list_all("/v1/accounts", FINANCE);
    assert_eq!(accounts.len(), 2, "a bad application opened an account: {accounts:#?}");
    server.assert_consistent(&f.a);
    server.assert_consistent(&f.b);
}

#[test]
fn boundary_inputs_are_accepted() {
    let server = Server::start();
    let f = setup(&server);
    // a: available 900, frozen 100.
    let ok = |body: Value| -> Value {
        let (status, answer) = server.transfer(&body);
        assert_eq!(status, 201, "{body} should be accepted: {answer}");
        answer
    };
    let t = |amount: &str| json!({"id": uid("ok"), "type": "transfer", "payer": f.a, "payee": f.b, "amount": amount});
    for (given, written) in
        [("0.01", "0.01"), ("100", "100.00"), ("100.5", "100.50"), ("1.10", "1.10"), ("0.1", "0.10")]
    {
        assert_eq!(ok(t(given))["amount"], written, "amount {given}");
    }
    // 15 integer digits are well-formed (and simply too much money).
    for big in ["999999999999999", "999999999999999.99", "100000000000000"] {
        let (status, body) = server.transfer(&t(big));
        assert_error(status, &body, 422, "INSUFFICIENT_FUNDS", &format!("amount {big}"));
    }
    // Ids: 64 characters of every allowed character class.
    let id64: String = "Az09_-.:".chars().cycle().take(64).collect();
    let mut body = t("1");
    body["id"] = json!(id64);
    body["order_id"] = json!(format!("O{}", &id64[1..]));
    let answer = ok(body);
    assert_eq!(answer["id"], id64.as_str());
    let got = server.get_ok(&format!("/v1/transfers/{id64}"), PLATFORM);
    assert_eq!(got["lsn"], answer["lsn"]);
    // Memo: 256 characters, counted as characters, not bytes.
    for memo in ["货".repeat(256), "m".repeat(256), "".to_string(), "引号\"与\\反斜杠\n换行".to_string()] {
        let mut body = t("1");
        body["memo"] = json!(memo);
        assert_eq!(ok(body)["memo"], memo.as_str(), "memo echoed exactly");
    }
    // A \u escape is the character it names.
    let id = uid("ok");
    let raw = format!(
        r#"{{"id":"{id}","type":"transfer","payer":"{}","payee":"{}","amount":"1","memo":"\u4e2d\u6587"}}"#,
        f.a, f.b
    );
    let (status, answer) = server.post_raw("/v1/transfers", PLATFORM, raw.as_bytes(), Some(JSON));
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["memo"], "中文");
    // A charset parameter on the content type is still JSON.
    let body = serde_json::to_vec(&t("1")).unwrap();
    let (status, answer) = server.post_raw("/v1/transfers", PLATFORM, &body, Some("application/json; charset=utf-8"));
    assert_eq!(status, 201, "application/json; charset=utf-8: {answer}");
    // An account id with more than 6 digits is well-formed (and unknown:
    // F0000002 is not another spelling of F000002).
    let mut body = t("1");
    body["payee"] = json!(format!("F0{}", &f.b[1..]));
    let (status, answer) = server.transfer(&body);
    assert_error(status, &answer, 404, "ACCOUNT_NOT_FOUND", "F + 7 digits");
    // Limits at the edges.
    for q in ["/v1/accounts?limit=1", "/v1/accounts?limit=1000", "/v1/accounts?status=active&limit=1"] {
        let page = server.get_ok(q, FINANCE);
        assert!(page["items"].is_array(), "{q}: {page}");
    }
    let page = server.get_ok("/v1/accounts?limit=1", FINANCE);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["next_cursor"].is_string(), "2 accounts, limit 1: {page}");
    server.assert_consistent(&f.a);
    server.assert_consistent(&f.b);
}

#[test]
fn invalid_batch_items_get_their_own_results() {
    let server = Server::start();
    let f = setup(&server);
    let before = server.account(&f.a);
    let items = vec![
        json!(1),
        json!("x"),
        json!(null),
        json!({}),
        json!({"id": uid("i"), "type": "transfer", "payer": f.a, "payee": f.b, "amount": "0"}),
        json!({"id": uid("i"), "type": "freeze", "payer": f.a, "payee": f.b, "amount": "1"}),
        json!({"id": uid("i"), "type": "nope", "payer": f.a, "amount": "1"}),
        json!({"id": "bad id", "type": "transfer", "payer": f.a, "payee": f.b, "amount": "1"}),
        json!({"id": uid("i"), "type": "transfer", "payer": "F1", "payee": f.b, "amount": "1"}),
    ];
    let (status, answer) = server.batch(&items);
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), items.len());
    let codes: Vec<(u64, &str)> = results
        .iter()
        .map(|r| (r["status"].as_u64().unwrap_or(0), r["body"]["error"]["code"].as_str().unwrap_or("")))
        .collect();
    for (i, (status, _)) in codes.iter().enumerate() {
        assert_eq!(*status, 400, "item {i} {}: {}", items[i], results[i]);
        assert_error_shape(&results[i]["body"], &format!("batch item {i}"));
    }
    assert_eq!(
        &codes[3..],
        &[
            (400, "MISSING_FIELD"),
            (400, "INVALID_AMOUNT"),
            (400, "UNEXPECTED_FIELD"),
            (400, "INVALID_TYPE"),
            (400, "INVALID_ID"),
            (400, "INVALID_FIELD")
        ],
        "{answer:#}"
    );
    assert_eq!(server.account(&f.a), before);
}
