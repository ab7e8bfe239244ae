//! `GET /v1/openapi.json` is kept true: every `/v1` route the server's
//! source registers is described, every described route is served, every
//! error code of `src/http/error.rs` is listed, the examples validate, and
//! real requests and the server's real answers (successes and errors)
//! validate against the described schemas.
//!
//! The schema checker below covers the JSON Schema keywords the document
//! uses (type, enum, const, pattern, lengths, minimum/maximum, properties,
//! required, additionalProperties, items, min/maxItems, oneOf, allOf,
//! $ref); an unknown keyword fails the test rather than being ignored.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use serde_json::{json, Value};

const KNOWN_KEYWORDS: &[&str] = &[
    "type",
    "enum",
    "const",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "oneOf",
    "allOf",
    "$ref",
    "description",
    "examples",
    "default",
];

fn resolve<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    let name =
        reference.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unsupported $ref {reference}"));
    let schema = &doc["components"]["schemas"][name];
    assert!(!schema.is_null(), "$ref to a missing schema {reference}");
    schema
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        other => panic!("unknown type {other}"),
    }
}

/// Errors of `value` against `schema`, each naming where.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(keywords) = schema.as_object() else { panic!("schema at {at} is not an object: {schema}") };
    for key in keywords.keys() {
        assert!(KNOWN_KEYWORDS.contains(&key.as_str()), "schema keyword {key} (at {at}) is not checked by this test");
    }
    if let Some(reference) = schema["$ref"].as_str() {
        check(doc, resolve(doc, reference), value, at, errors);
    }
    match &schema["type"] {
        Value::Null => {}
        Value::String(name) => {
            if !type_matches(name, value) {
                errors.push(format!("{at}: {value} is not of type {name}"));
                return;
            }
        }
        Value::Array(names) => {
            if !names.iter().any(|name| type_matches(name.as_str().unwrap(), value)) {
                errors.push(format!("{at}: {value} is none of the types {schema}"));
                return;
            }
        }
        other => panic!("type {other} at {at}"),
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(value) {
            errors.push(format!("{at}: {value} is not one of {}", schema["enum"]));
        }
    }
    if let Some(constant) = schema.get("const") {
        if constant != value {
            errors.push(format!("{at}: {value} is not {constant}"));
        }
    }
    if let Value::String(text) = value {
        if let Some(pattern) = schema["pattern"].as_str() {
            let regex = regex_lite::Regex::new(pattern).unwrap_or_else(|e| panic!("pattern {pattern}: {e}"));
            if !regex.is_match(text) {
                errors.push(format!("{at}: {value} does not match {pattern}"));
            }
        }
        let chars = text.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|min| chars < min) {
            errors.push(format!("{at}: {value} is shorter than {}", schema["minLength"]));
        }
        if schema["maxLength"].as_u64().is_some_and(|max| chars > max) {
            errors.push(format!("{at}: {value} is longer than {}", schema["maxLength"]));
        }
    }
    if let Some(number) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|min| number < min) {
            errors.push(format!("{at}: {value} is below {}", schema["minimum"]));
        }
        if schema["maximum"].as_f64().is_some_and(|max| number > max) {
            errors.push(format!("{at}: {value} is above {}", schema["maximum"]));
        }
    }
    if let Value::Object(fields) = value {
        let properties = schema["properties"].as_object();
        for required in schema["required"].as_array().into_iter().flatten() {
            if !fields.contains_key(required.as_str().unwrap()) {
                errors.push(format!("{at}: missing required {required}"));
            }
        }
        for (key, field) in fields {
            match properties.and_then(|properties| properties.get(key)) {
                Some(property) => check(doc, property, field, &format!("{at}.{key}"), errors),
                None if schema["additionalProperties"] == json!(false) => {
                    errors.push(format!("{at}: field {key} is not described"))
                }
                None => {}
            }
        }
    }
    if let Value::Array(items) = value {
        if let Some(item_schema) = schema.get("items") {
            for (index, item) in items.iter().enumerate() {
                check(doc, item_schema, item, &format!("{at}[{index}]"), errors);
            }
        }
        if schema["minItems"].as_u64().is_some_and(|min| (items.len() as u64) < min) {
            errors.push(format!("{at}: fewer than {} items", schema["minItems"]));
        }
        if schema["maxItems"].as_u64().is_some_and(|max| (items.len() as u64) > max) {
            errors.push(format!("{at}: more than {} items", schema["maxItems"]));
        }
    }
    if let Some(all) = schema["allOf"].as_array() {
        for part in all {
            check(doc, part, value, at, errors);
        }
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let matching = options
            .iter()
            .filter(|option| {
                let mut option_errors = Vec::new();
                check(doc, option, value, at, &mut option_errors);
                option_errors.is_empty()
            })
            .count();
        if matching != 1 {
            errors.push(format!("{at}: {value} matches {matching} of the oneOf options, not exactly 1"));
        }
    }
}

fn assert_valid(doc: &Value, schema: &Value, value: &Value, what: &str) {
    let mut errors = Vec::new();
    check(doc, schema, value, "$", &mut errors);
    assert!(errors.is_empty(), "{what}: {value}\ndoes not validate:\n{}", errors.join("\n"));
}

fn assert_invalid(doc: &Value, schema: &Value, value: &Value, what: &str) {
    let mut errors = Vec::new();
    check(doc, schema, value, "$", &mut errors);
    assert!(!errors.is_empty(), "{what}: {value} should not validate against {schema}");
}

fn fetch_document(server: &Server) -> Value {
    let response = server.request("GET", "/v1/openapi.json", &[], None);
    assert_eq!(response.status, 200, "GET /v1/openapi.json without a token: {}", response.text);
    assert!(response.header("content-type").unwrap_or("").starts_with("application/json"));
    assert_eq!(response.body["openapi"], "3.1.0", "an OpenAPI 3.1 document");
    response.body
}

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// (method, path) of every `.route("/v1/...", method(handler).method(...))`
/// in `src/http/*.rs`: the routes the server serves, read from its source.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut routes = BTreeSet::new();
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        for (start, _) in source.match_indices(".route(\"") {
            let rest = &source[start + ".route(\"".len()..];
            let route_path = &rest[..rest.find('"').unwrap()];
            if !route_path.starts_with("/v1/") {
                continue;
            }
            // The call's arguments, up to its closing parenthesis.
            let mut depth = 1;
            let mut end = 0;
            for (index, ch) in source[start + ".route(".len()..].char_indices() {
                match ch {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = index;
                    break;
                }
            }
            let arguments = &source[start + ".route(".len()..][..end];
            let mut found = false;
            for method in METHODS {
                let needle = format!("{method}(");
                let mut offset = 0;
                while let Some(position) = arguments[offset..].find(&needle) {
                    let index = offset + position;
                    let before = arguments[..index].chars().last().unwrap_or(' ');
                    if !before.is_alphanumeric() && before != '_' && before != '!' {
                        routes.insert((method.to_string(), route_path.to_string()));
                        found = true;
                    }
                    offset = index + needle.len();
                }
            }
            assert!(found, "{}: no method found for route {route_path}", path.display());
        }
    }
    assert!(routes.len() >= 10, "the source scan found only {routes:?}");
    routes
}

fn described_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{path}: {method} is not an HTTP method");
            routes.insert((method.clone(), path.clone()));
        }
    }
    routes
}

#[test]
fn every_route_is_described_and_every_described_route_is_served() {
    let server = Server::start();
    let doc = fetch_document(&server);
    let served = routes_in_source();
    let described = described_routes(&doc);
    let undescribed: Vec<_> = served.difference(&described).collect();
    assert!(undescribed.is_empty(), "routes served but not in /v1/openapi.json: {undescribed:?}");
    for (method, path) in &described {
        assert!(path.starts_with("/v1/"), "{path}");
        // Fill path parameters; answers other than the router's own 404
        // NOT_FOUND and 405 prove the route exists (401, 404 of a specific
        // kind, 200 ...).
        let concrete = path
            .split('/')
            .map(|part| {
                if part.starts_with('{') {
                    if path.starts_with("/v1/banks") {
                        BANK
                    } else {
                        "X1"
                    }
                } else {
                    part
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let response = match method.as_str() {
            "get" => server.request("GET", &concrete, &[], None),
            other => server.request(&other.to_uppercase(), &concrete, &[("Content-Type", JSON)], Some(b"{}")),
        };
        let code = response.body["error"]["code"].as_str().unwrap_or("");
        assert!(
            !(response.status == 404 && code == "NOT_FOUND") && response.status != 405,
            "{method} {path} is described but not served: {} {}",
            response.status,
            response.text
        );
    }
}

#[test]
fn every_error_code_is_described_with_its_status() {
    let server = Server::start();
    let doc = fetch_document(&server);
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/error.rs")).unwrap();
    let listed: BTreeSet<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode enum")
        .iter()
        .map(|code| code.as_str().unwrap())
        .collect();
    // `Variant => "CODE"` lines of ErrorCode::as_str.
    let mut in_source = BTreeSet::new();
    for line in source.lines() {
        if let Some((_, rest)) = line.split_once("=> \"") {
            let code = &rest[..rest.find('"').unwrap()];
            if code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                in_source.insert(code.to_string());
            }
        }
    }
    assert!(in_source.len() >= 30, "{in_source:?}");
    for code in &in_source {
        assert!(listed.contains(code.as_str()), "error code {code} is not in the OpenAPI ErrorCode enum");
    }
    // Every error response of every operation names its codes.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                let codes = response["x-error-codes"].as_array().unwrap_or_else(|| panic!("{method} {path} {status}"));
                for code in codes {
                    let code = code.as_str().unwrap();
                    assert!(listed.contains(code), "{method} {path}: {code} not in ErrorCode");
                }
            }
        }
    }
}

#[test]
fn examples_validate_and_the_schemas_refuse_what_the_server_refuses() {
    let server = Server::start();
    let doc = fetch_document(&server);
    let mut examples = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let content = &operation["requestBody"]["content"]["application/json"];
            if content.is_null() {
                continue;
            }
            let example = &content["example"];
            assert!(!example.is_null(), "{method} {path}: a request body without an example");
            assert_valid(&doc, &content["schema"], example, &format!("{method} {path} example"));
            examples += 1;
        }
    }
    assert!(examples >= 7, "{examples} examples");
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        for example in schema["examples"].as_array().into_iter().flatten() {
            assert_valid(&doc, schema, example, &format!("schema {name} example"));
        }
    }
    let amount = json!({"$ref": "#/components/schemas/Amount"});
    for bad in ["01", "+1", ".5", "1.", "0.001", "1e3", " 1", "1,000", "NaN", "1000000000000000"] {
        assert_invalid(&doc, &amount, &json!(bad), "amount");
    }
    assert_invalid(&doc, &amount, &json!(100), "a JSON number amount");
    let transfer = json!({"$ref": "#/components/schemas/TransferRequest"});
    assert_invalid(&doc, &transfer, &json!({"id": "t", "type": "transfer", "colour": "red"}), "unknown field");
    assert_invalid(&doc, &transfer, &json!({"id": "t/1", "type": "transfer"}), "bad id");
    assert_invalid(&doc, &transfer, &json!({"id": "t", "type": "gift"}), "bad type");
}

/// Sends requests that the document must describe: validates the request
/// body against the operation's request schema, and the answer against
/// the response schema of the status the server gave.
struct Api<'a> {
    server: &'a Server,
    doc: Value,
    seen: BTreeSet<(String, String, u16)>,
}

impl Api<'_> {
    fn operation(&self, method: &str, template: &str) -> &Value {
        let operation = &self.doc["paths"][template][method];
        assert!(operation.is_object(), "{method} {template} is not described");
        operation
    }

    fn call(&mut self, method: &str, template: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
        let operation = self.operation(method, template).clone();
        let (status, answer) = match body {
            Some(body) => {
                let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
                assert!(!schema.is_null(), "{method} {template} takes no described body");
                assert_valid(&self.doc, schema, body, &format!("{method} {template} request"));
                self.server.post(path, token, body)
            }
            None if method == "get" => self.server.get(path, token),
            None => self.server.post_raw(path, token, b"", None),
        };
        let response = &operation["responses"][status.to_string()];
        assert!(response.is_object(), "{method} {template} answered {status}, which is not described: {answer}");
        let schema = &response["content"]["application/json"]["schema"];
        assert_valid(&self.doc, schema, &answer, &format!("{method} {template} {status} answer"));
        self.seen.insert((method.to_string(), template.to_string(), status));
        (status, answer)
    }

    fn ok(&mut self, method: &str, template: &str, path: &str, token: &str, body: Option<&Value>) -> Value {
        let (status, answer) = self.call(method, template, path, token, body);
        assert!((200..300).contains(&status), "{method} {path}: {status} {answer}");
        answer
    }
}

#[test]
fn real_requests_and_answers_validate_against_the_document() {
    let server = Server::start();
    let doc = fetch_document(&server);
    let mut api = Api { server: &server, doc, seen: BTreeSet::new() };
    let name = "上海某化工有限公司";
    let application = json!({"name": name, "credential_no": credential_no(), "bank": BANK,
        "settlement_account": {"bank_name": "某银行上海分行", "account_no": SETTLEMENT_ACCOUNT_NO, "account_name": name}});
    let created = api.ok("post", "/v1/applications", "/v1/applications", PLATFORM, Some(&application));
    let app_id = created["application_id"].as_str().unwrap().to_string();
    api.ok("get", "/v1/applications/{id}", &format!("/v1/applications/{app_id}"), RISK, None);
    let approved = api.ok(
        "post",
        "/v1/applications/{id}/approve",
        &format!("/v1/applications/{app_id}/approve"),
        RISK,
        Some(&json!({"note": "ok"})),
    );
    let a = approved["account_id"].as_str().unwrap().to_string();
    server.wait_signed(&a);
    let (b, _) = server.open_account("杭州某贸易有限公司");
    let rejected_app = server.apply("某公司", &credential_no()).1;
    let rejected_id = rejected_app["application_id"].as_str().unwrap();
    api.ok(
        "post",
        "/v1/applications/{id}/reject",
        &format!("/v1/applications/{rejected_id}/reject"),
        RISK,
        Some(&json!({"reason": "no"})),
    );
    api.call(
        "post",
        "/v1/applications/{id}/reject",
        &format!("/v1/applications/{rejected_id}/reject"),
        RISK,
        Some(&json!({"reason": "again"})),
    );

    let sub = sandbox_sub_account(&a);
    let credit = notification(&sub, name, "1000.00");
    assert_valid(
        &api.doc,
        &api.operation("post", "/v1/banks/{bank}/notifications")["requestBody"]["content"]["application/json"]
            ["schema"],
        &credit,
        "notification",
    );
    let (status, answer) = server.notify(&credit);
    assert_eq!(status, 200);
    let result_schema = &api.operation("post", "/v1/banks/{bank}/notifications")["responses"]["200"]["content"]
        ["application/json"]["schema"];
    assert_valid(&api.doc, result_schema, &answer, "credited");
    let (_, suspense) = server.notify(&notification(&sub, "别人", "1.00"));
    assert_valid(&api.doc, result_schema, &suspense, "suspense");

    let transfers = [
        json!({"id": "o-1", "type": "transfer", "payer": a, "payee": b, "amount": "100", "order_id": "O-1", "memo": "货款"}),
        json!({"id": "o-2", "type": "freeze", "payer": a, "amount": "50.5"}),
        json!({"id": "o-3", "type": "unfreeze", "hold_id": "o-2", "amount": "0.5"}),
        json!({"id": "o-4", "type": "unfreeze_pay", "hold_id": "o-2", "payee": b, "order_id": "O-1"}),
        json!({"id": "o-5", "type": "pay_freeze", "payer": a, "payee": b, "amount": "10"}),
    ];
    for transfer in &transfers {
        api.ok("post", "/v1/transfers", "/v1/transfers", PLATFORM, Some(transfer));
    }
    let refusals = [
        (json!({"id": "o-6", "type": "transfer", "payer": a, "payee": b, "amount": "999999"}), 422),
        (json!({"id": "o-1", "type": "transfer", "payer": a, "payee": b, "amount": "1"}), 409),
        (json!({"id": "o-7", "type": "unfreeze", "hold_id": "none"}), 404),
        (json!({"id": "o-8", "type": "freeze", "payer": "F999999", "amount": "1"}), 404),
    ];
    for (transfer, want) in &refusals {
        let (status, _) = api.call("post", "/v1/transfers", "/v1/transfers", PLATFORM, Some(transfer));
        assert_eq!(status, *want, "{transfer}");
    }
    // Refusals whose bodies the request schema refuses too.
    for (bad, want) in [(json!({"id": "o-9", "type": "transfer", "amount": 1}), 400), (json!({"type": "x"}), 400)] {
        let (status, answer) = server.transfer(&bad);
        assert_eq!(status, want, "{answer}");
        let schema =
            &api.operation("post", "/v1/transfers")["responses"]["400"]["content"]["application/json"]["schema"];
        assert_valid(&api.doc, schema, &answer, "400 answer");
        let request_schema =
            &api.operation("post", "/v1/transfers")["requestBody"]["content"]["application/json"]["schema"];
        assert_invalid(&api.doc, request_schema, &bad, "a body the server refuses with 400");
    }
    let batch = json!({"transfers": [
        {"id": "o-10", "type": "freeze", "payer": a, "amount": "1"},
        {"id": "o-11", "type": "unfreeze_pay", "hold_id": "o-10", "payee": b},
        {"id": "o-12", "type": "transfer", "payer": a, "payee": a, "amount": "1"},
    ]});
    api.ok("post", "/v1/transfers/batch", "/v1/transfers/batch", PLATFORM, Some(&batch));
    let (status, _) = api.call("post", "/v1/transfers/batch", "/v1/transfers/batch", PLATFORM, None);
    assert_eq!(status, 415, "an empty POST without content type");

    for token in [PLATFORM, FINANCE] {
        api.ok("get", "/v1/transfers/{id}", "/v1/transfers/o-1", token, None);
        api.ok("get", "/v1/transfers/{id}", "/v1/transfers/o-4", token, None);
    }
    api.call("get", "/v1/transfers/{id}", "/v1/transfers/nope", PLATFORM, None);
    api.call("get", "/v1/transfers/{id}", "/v1/transfers/o-1", NO_TOKEN, None);
    api.call("get", "/v1/transfers/{id}", "/v1/transfers/o-1", RISK, None);
    api.ok("get", "/v1/holds/{hold_id}", "/v1/holds/o-2", PLATFORM, None);
    api.call("get", "/v1/holds/{hold_id}", "/v1/holds/nope", PLATFORM, None);
    api.ok("get", "/v1/orders/{order_id}/transfers", "/v1/orders/O-1/transfers?limit=1", FINANCE, None);
    api.ok("get", "/v1/accounts", "/v1/accounts?status=active&limit=1", RISK, None);
    api.call("get", "/v1/accounts", "/v1/accounts?limit=0", RISK, None);
    api.ok("get", "/v1/accounts/{id}", &format!("/v1/accounts/{a}"), PLATFORM, None);
    api.call("get", "/v1/accounts/{id}", "/v1/accounts/F999999", PLATFORM, None);
    api.ok("get", "/v1/accounts/{id}/journal", &format!("/v1/accounts/{a}/journal?limit=2"), FINANCE, None);
    api.ok("get", "/v1/accounts/{id}/journal", &format!("/v1/accounts/{b}/journal?kind=pay_freeze_in"), FINANCE, None);
    api.ok("get", "/v1/accounts/{id}/balance", &format!("/v1/accounts/{a}/balance?at_lsn=3"), FINANCE, None);
    api.call("get", "/v1/accounts/{id}/balance", &format!("/v1/accounts/{a}/balance?at_lsn=x"), FINANCE, None);
    let receipt = api.ok("get", "/v1/transfers/{id}/receipt", "/v1/transfers/o-4/receipt", FINANCE, None);
    api.ok("get", "/v1/transfers/{id}/receipt", "/v1/transfers/o-2/receipt", FINANCE, None);
    let notification_id = credit["notification_id"].as_str().unwrap();
    let deposit = api.ok(
        "get",
        "/v1/deposits/{notification_id}/receipt",
        &format!("/v1/deposits/{notification_id}/receipt"),
        PLATFORM,
        None,
    );
    api.call("get", "/v1/deposits/{notification_id}/receipt", "/v1/deposits/N0/receipt", PLATFORM, None);
    for receipt in [&receipt, &deposit] {
        let answer = api.ok("post", "/v1/receipts/verify", "/v1/receipts/verify", FINANCE, Some(receipt));
        assert_eq!(answer["valid"], true);
    }
    let mut forged = receipt.clone();
    forged["amount"] = json!("1000000.00");
    let answer = api.ok("post", "/v1/receipts/verify", "/v1/receipts/verify", FINANCE, Some(&forged));
    assert_eq!(answer["valid"], false);

    // The bank side: withdrawals, suspense, adjustments, returns, sandbox credits.
    let withdrawal = json!({"id": "w-1", "account_id": a, "amount": "1.00", "memo": "出金"});
    api.ok("post", "/v1/withdrawals", "/v1/withdrawals", PLATFORM, Some(&withdrawal));
    api.ok("get", "/v1/withdrawals/{id}", "/v1/withdrawals/w-1", FINANCE, None);
    api.call("get", "/v1/withdrawals/{id}", "/v1/withdrawals/none", FINANCE, None);
    let too_much = json!({"id": "w-2", "account_id": a, "amount": "99999999"});
    api.call("post", "/v1/withdrawals", "/v1/withdrawals", PLATFORM, Some(&too_much));
    let suspense_id = suspense["suspense_id"].as_str().unwrap().to_string();
    api.ok("get", "/v1/suspense", "/v1/suspense?status=open", FINANCE, None);
    let adjustment =
        json!({"id": "adj-1", "suspense_id": suspense_id, "account_id": a, "amount": "0.50", "memo": "确认"});
    api.ok("post", "/v1/adjustments", "/v1/adjustments", FINANCE, Some(&adjustment));
    let over = json!({"id": "adj-2", "suspense_id": suspense_id, "account_id": a, "amount": "5.00"});
    api.call("post", "/v1/adjustments", "/v1/adjustments", FINANCE, Some(&over));
    api.ok("get", "/v1/adjustments/{id}/receipt", "/v1/adjustments/adj-1/receipt", FINANCE, None);
    api.call("get", "/v1/adjustments/{id}/receipt", "/v1/adjustments/none/receipt", FINANCE, None);
    for _ in 0..500 {
        if server.get_ok("/v1/withdrawals/w-1", FINANCE)["status"] != "processing" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    api.ok("get", "/v1/withdrawals/{id}/receipt", "/v1/withdrawals/w-1/receipt", FINANCE, None);
    api.call("get", "/v1/withdrawals/{id}/receipt", "/v1/withdrawals/none/receipt", FINANCE, None);
    let give_back = json!({"id": "ret-1", "memo": "退回"});
    let path = format!("/v1/suspense/{suspense_id}/return");
    api.ok("post", "/v1/suspense/{id}/return", &path, FINANCE, Some(&give_back));
    api.call("post", "/v1/suspense/{id}/return", &path, FINANCE, Some(&json!({"id": "ret-2"})));
    api.call("post", "/v1/suspense/{id}/return", "/v1/suspense/S999999/return", FINANCE, Some(&json!({"id": "ret-3"})));
    api.ok("get", "/v1/suspense", "/v1/suspense", FINANCE, None);
    let credit =
        json!({"to_account_no": sub, "amount": "2.00", "payer_name": name, "payer_account_no": SETTLEMENT_ACCOUNT_NO});
    api.ok("post", "/v1/sandbox/{bank}/credits", &format!("/v1/sandbox/{BANK}/credits"), ADMIN, Some(&credit));
    api.call("post", "/v1/sandbox/{bank}/credits", "/v1/sandbox/NOBANK/credits", ADMIN, Some(&credit));

    api.ok("get", "/v1/bank-sync/failures", "/v1/bank-sync/failures?limit=10", FINANCE, None);
    api.call("get", "/v1/bank-sync/failures", "/v1/bank-sync/failures?limit=x", FINANCE, None);

    // The reads the console added.
    api.ok("get", "/v1/applications", "/v1/applications?status=pending_review", RISK, None);
    api.ok("get", "/v1/applications", "/v1/applications?limit=1", PLATFORM, None);
    api.call("get", "/v1/applications", "/v1/applications?status=x", RISK, None);
    api.ok("get", "/v1/withdrawals", "/v1/withdrawals?status=processing", FINANCE, None);
    api.call("get", "/v1/withdrawals", "/v1/withdrawals", FINANCE, None);
    api.ok("get", "/v1/ledger/day", "/v1/ledger/day", FINANCE, None);
    api.ok("get", "/v1/ledger/day", &format!("/v1/ledger/day?date={}", today()), FINANCE, None);
    api.call("get", "/v1/ledger/day", "/v1/ledger/day?date=yesterday", FINANCE, None);

    // Finance: reconciliation, discrepancies (maker-checker), trial balance.
    let statement = json!({"bank": BANK, "date": today(), "statement": [
        {"bank_serial": "SB1", "reference": "o-1", "kind": "forced_transfer", "account_no": "1", "counter_account_no": "2",
            "amount": "100.00", "booked_at": now_rfc3339()},
        {"reference": "ghost", "kind": "credit", "amount": "1"}]});
    let run = api.ok("post", "/v1/reconciliations", "/v1/reconciliations", FINANCE, Some(&statement));
    let fetched = api.ok(
        "post",
        "/v1/reconciliations",
        "/v1/reconciliations",
        FINANCE,
        Some(&json!({"bank": BANK, "date": today()})),
    );
    assert_eq!(fetched["source"], "bank");
    api.call(
        "post",
        "/v1/reconciliations",
        "/v1/reconciliations",
        FINANCE,
        Some(&json!({"bank": "NOBANK", "date": today()})),
    );
    let run_id = run["reconciliation_id"].as_str().unwrap();
    api.ok("get", "/v1/reconciliations/{id}", &format!("/v1/reconciliations/{run_id}"), FINANCE, None);
    api.call("get", "/v1/reconciliations/{id}", "/v1/reconciliations/REC999999", FINANCE, None);
    let discrepancy = run["discrepancies"][0]["discrepancy_id"].as_str().unwrap().to_string();
    api.ok("get", "/v1/discrepancies", "/v1/discrepancies?status=open&limit=2", FINANCE, None);
    api.call("get", "/v1/discrepancies", "/v1/discrepancies?status=closed", FINANCE, None);
    api.ok("get", "/v1/discrepancies/{id}", &format!("/v1/discrepancies/{discrepancy}"), FINANCE, None);
    api.call("get", "/v1/discrepancies/{id}", "/v1/discrepancies/D999999", FINANCE, None);
    let resolve = format!("/v1/discrepancies/{discrepancy}/resolve");
    api.ok("post", "/v1/discrepancies/{id}/resolve", &resolve, FINANCE, Some(&json!({"note": "checked"})));
    api.call("post", "/v1/discrepancies/{id}/resolve", &resolve, FINANCE, Some(&json!({"note": "again"})));
    let approve = format!("/v1/discrepancies/{discrepancy}/approve");
    api.call("post", "/v1/discrepancies/{id}/approve", &approve, FINANCE, Some(&json!({})));
    api.ok("post", "/v1/discrepancies/{id}/approve", &approve, FINANCE_2, Some(&json!({"note": "ok"})));
    let balance = api.ok("get", "/v1/ledger/trial-balance", "/v1/ledger/trial-balance", FINANCE, None);
    assert_eq!(balance["balanced"], true, "{balance}");
    api.call("get", "/v1/ledger/trial-balance", "/v1/ledger/trial-balance?lsn=1", FINANCE, None);

    // Everything described was exercised with a success.
    let successes: BTreeSet<(String, String)> = api
        .seen
        .iter()
        .filter(|(_, _, status)| (200..300).contains(status))
        .map(|(method, path, _)| (method.clone(), path.clone()))
        .collect();
    let mut untested: Vec<_> = described_routes(&api.doc).difference(&successes).cloned().collect();
    untested.retain(|(_, path)| {
        // Checked in their own way above, or outside this walk.
        !["/v1/banks/{bank}/notifications", "/v1/openapi.json", "/v1/accounts/{id}/journal.csv"]
            .contains(&path.as_str())
    });
    assert!(untested.is_empty(), "described routes this walk never saw succeed: {untested:?}");
}
