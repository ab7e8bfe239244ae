//! Hostile request bodies: fuzz-style property tests of the body parsers
//! (proptest with arbitrary bytes and with JSON built to look almost
//! right). Whatever comes in, the parsers answer `Ok` or one of the API's
//! 400 errors; they never panic (a panic in a handler would be a 500, and
//! in release, where `panic = "abort"`, the end of the process).

use fundledger::http::error::ErrorCode;
use fundledger::http::extract::JsonObject;
use fundledger::http::transfers::parse_transfer;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Every accessor a handler may call, on every field name it may ask for.
fn exercise(object: &JsonObject) {
    const NAMES: &[&str] = &[
        "id",
        "type",
        "payer",
        "payee",
        "amount",
        "hold_id",
        "order_id",
        "memo",
        "name",
        "transfers",
        "settlement_account",
        "",
        "\u{0}",
    ];
    let _ = object.only(&["id", "type"]);
    for name in NAMES {
        let _ = object.has(name);
        let _ = object.raw(name);
        let _ = object.string(name);
        let _ = object.required_string(name);
        let _ = object.text(name, 256);
        let _ = object.required_text(name, 256);
        let _ = object.amount(name);
        let _ = object.client_id(name);
        if let Ok(Some(inner)) = object.object(name) {
            let _ = inner.string("account_no");
            let _ = inner.only(&["bank_name"]);
        }
    }
}

/// A body through the same steps as `POST /v1/transfers`.
fn parse_as_transfer(bytes: &[u8]) {
    match JsonObject::parse_body(bytes) {
        Ok(object) => {
            exercise(&object);
            if let Err(error) = parse_transfer(&object) {
                assert_eq!(error.status().as_u16() / 100, 4, "{:?}", error);
            }
        }
        Err(error) => assert_eq!(error.code, ErrorCode::InvalidJson),
    }
}

/// JSON values a careless or hostile client might send in a field.
fn odd_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        Just(json!(1e308)),
        Just(json!(u64::MAX)),
        ".*".prop_map(Value::String),
        "[0-9]{0,20}(\\.[0-9]{0,4})?".prop_map(Value::String),
        "-?[0-9]{1,3}(\\.[0-9]{1,3})?(e[0-9])?".prop_map(Value::String),
        "F[0-9]{0,12}".prop_map(Value::String),
        "[A-Za-z0-9_.:\\-]{0,70}".prop_map(Value::String),
        prop_oneof![
            Just("transfer"),
            Just("freeze"),
            Just("unfreeze"),
            Just("unfreeze_pay"),
            Just("pay_freeze"),
            Just("TRANSFER"),
        ]
        .prop_map(|s| Value::String(s.into())),
        "\\PC{0,300}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,10}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop_oneof![
            Just("id"),
            Just("type"),
            Just("payer"),
            Just("payee"),
            Just("amount"),
            Just("hold_id"),
            Just("order_id"),
            Just("memo"),
        ]
        .prop_map(String::from),
        "[a-z_]{0,12}",
        "\\PC{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        parse_as_transfer(&bytes);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,256}") {
        parse_as_transfer(text.as_bytes());
    }

    #[test]
    fn almost_right_transfers_never_panic(
        fields in prop::collection::vec((field_name(), odd_value()), 0..10),
    ) {
        // Built by hand so duplicate keys survive (they must be refused).
        let body: Vec<String> = fields
            .iter()
            .map(|(name, value)| format!("{}:{}", Value::String(name.clone()), value))
            .collect();
        parse_as_transfer(format!("{{{}}}", body.join(",")).as_bytes());
    }

    #[test]
    fn mangled_valid_transfers_never_panic(
        cut in 0usize..200,
        flip_at in 0usize..200,
        flip in any::<u8>(),
    ) {
        let mut bytes = serde_json::to_vec(&json!({
            "id": "t-1", "type": "pay_freeze", "payer": "F000001", "payee": "F000002",
            "amount": "100.50", "order_id": "O-1", "memo": "货款\\n\"quoted\""
        })).unwrap();
        if flip_at < bytes.len() {
            bytes[flip_at] ^= flip;
        }
        bytes.truncate(cut.min(bytes.len()));
        parse_as_transfer(&bytes);
    }
}

/// Deep nesting must not overflow the stack (serde_json's recursion limit
/// turns it into INVALID_JSON).
#[test]
fn deeply_nested_bodies_are_refused_not_a_stack_overflow() {
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        let depth = 100_000;
        let body = format!("{{\"id\":{}1{}}}", open.repeat(depth), close.repeat(depth));
        parse_as_transfer(body.as_bytes());
        let unclosed = format!("{{\"memo\":{}", open.repeat(depth));
        parse_as_transfer(unclosed.as_bytes());
    }
}

/// The exact answers for a few known-hostile bodies.
#[test]
fn hostile_bodies_get_the_api_codes() {
    let code = |body: &[u8]| -> Option<ErrorCode> {
        let object = match JsonObject::parse_body(body) {
            Ok(object) => object,
            Err(error) => return Some(error.code),
        };
        parse_transfer(&object).err().map(|error| error.code)
    };
    assert_eq!(code(b""), Some(ErrorCode::InvalidJson));
    assert_eq!(code(b"\xff\xfe{}"), Some(ErrorCode::InvalidJson));
    assert_eq!(code(b"[]"), Some(ErrorCode::InvalidJson));
    assert_eq!(code(b"{\"id\":\"a\",\"id\":\"b\"}"), Some(ErrorCode::InvalidJson), "duplicate keys");
    assert_eq!(code(b"{} {}"), Some(ErrorCode::InvalidJson), "trailing data");
    let lone_surrogate = code(b"{\"id\":\"\\ud800\"}");
    assert!(
        matches!(lone_surrogate, Some(ErrorCode::InvalidJson | ErrorCode::InvalidField | ErrorCode::MissingField)),
        "{lone_surrogate:?}"
    );
    let huge_amount = format!(
        "{{\"id\":\"t\",\"type\":\"transfer\",\"payer\":\"F000001\",\"payee\":\"F000002\",\"amount\":\"{}\"}}",
        "9".repeat(10_000)
    );
    assert_eq!(code(huge_amount.as_bytes()), Some(ErrorCode::InvalidAmount));
}
