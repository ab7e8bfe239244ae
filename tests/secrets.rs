//! Security (issue 7), from outside: a token the config names only by its
//! SHA-256 (`token_sha256`); replay protection of bank notifications
//! (`X-Timestamp` signed with the body, refused past the bank's
//! `notify_max_age_s`, also on the sandbox bank's own deliveries); and no
//! token, bank secret or receipt key in anything the server writes, also
//! at debug level.

mod harness;

use std::time::{SystemTime, UNIX_EPOCH};

use harness::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

fn now_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// HMAC-SHA256 under the bank's secret of `<timestamp>.<body>` (API.md).
fn sign_with_timestamp(timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(BANK_SECRET.as_bytes()).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Posts a notification with exactly these headers.
fn notify_with(server: &Server, body: &[u8], signature: &str, timestamp: Option<&str>) -> Answer {
    let mut request = agent()
        .post(&format!("{}/v1/banks/{BANK}/notifications", server.base()))
        .set("Content-Type", "application/json")
        .set("X-Signature", signature);
    if let Some(timestamp) = timestamp {
        request = request.set("X-Timestamp", timestamp);
    }
    let response = request.send_bytes(body);
    let (status, text) = match response {
        Ok(response) | Err(ureq::Error::Status(_, response)) => {
            (response.status(), response.into_string().unwrap_or_default())
        }
        Err(error) => panic!("notify: {error}"),
    };
    Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)), retry_after: None }
}

fn assert_unauthenticated(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 401, "{what}: {answer:?}");
    assert_eq!(answer.body["error"]["code"], "UNAUTHENTICATED", "{what}: {answer:?}");
}

#[test]
fn a_token_named_by_its_sha256_authenticates_and_its_digest_does_not() {
    let server = Server::start(Setup::default());
    let answer = server.get("/v1/ledger/trial-balance", HASHED);
    assert_eq!(answer.status, 200, "the hashed finance token reads finance data: {answer:?}");
    let answer = server.get("/v1/accounts?limit=1", HASHED);
    assert_eq!(answer.status, 200, "{answer:?}");
    // The config's digest is not a credential, nor is a near miss.
    let digest = sha256_hex(HASHED);
    for wrong in [digest.as_str(), "hashed-finance-token-7f3b", &HASHED[..HASHED.len() - 1]] {
        assert_unauthenticated(&server.get("/v1/ledger/trial-balance", wrong), &format!("token {wrong:?}"));
    }
    // Its role is the config's: finance, not platform.
    let answer = server.post("/v1/transfers", HASHED, &transfer("F000001", "F000002", 1));
    assert_eq!(answer.status, 403, "{answer:?}");
}

#[test]
fn with_notify_max_age_s_a_notification_needs_a_fresh_timestamp_signed_with_its_body() {
    let server = Server::start(Setup { notify_max_age_s: 300, ..Setup::default() });
    let (account, name) = server.active_account();
    let credit = credit_to(&account, &name, "100.00");
    let body = serde_json::to_vec(&credit).expect("json");
    let now = now_s().to_string();

    assert_unauthenticated(&notify_with(&server, &body, &sign(BANK_SECRET, &body), None), "no X-Timestamp");
    assert_unauthenticated(
        &notify_with(&server, &body, &sign(BANK_SECRET, &body), Some(&now)),
        "a timestamp not covered by the signature",
    );
    for (timestamp, what) in [
        ((now_s() - 301).to_string(), "older than notify_max_age_s"),
        ((now_s() + 301).to_string(), "in the future past notify_max_age_s"),
        ("yesterday".to_string(), "not unix seconds"),
    ] {
        let signature = sign_with_timestamp(&timestamp, &body);
        assert_unauthenticated(&notify_with(&server, &body, &signature, Some(&timestamp)), what);
    }
    let other = serde_json::to_vec(&credit_to(&account, &name, "999.00")).expect("json");
    assert_unauthenticated(
        &notify_with(&server, &other, &sign_with_timestamp(&now, &body), Some(&now)),
        "a signature of another body",
    );
    assert_eq!(server.balance_cents(&account), (0, 0), "nothing refused was credited");

    // Signed as sent: a timestamp with a leading zero is still unix seconds.
    let padded = format!("0{now}");
    let padded_credit = serde_json::to_vec(&credit_to(&account, &name, "0.01")).expect("json");
    let answer = notify_with(&server, &padded_credit, &sign_with_timestamp(&padded, &padded_credit), Some(&padded));
    assert_eq!((answer.status, &answer.body["result"]), (200, &json!("credited")), "{answer:?}");

    let signature = sign_with_timestamp(&now, &body);
    let answer = notify_with(&server, &body, &signature, Some(&now));
    assert_eq!((answer.status, &answer.body["result"]), (200, &json!("credited")), "{answer:?}");
    // The same request again (a replay inside the window) is the same
    // notification: answered as before, credited once.
    let again = notify_with(&server, &body, &signature, Some(&now));
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["lsn"], answer.body["lsn"], "the original answer: {again:?}");
    assert_eq!(server.balance_cents(&account), (10_001, 0), "credited once");

    // The sandbox bank signs the notifications of its credits the same way.
    let number: u64 = account[1..].parse().expect("account number");
    let credit = json!({"to_account_no": format!("3109401{number:08}"), "amount": "5.00",
                        "payer_name": name, "payer_account_no": SETTLEMENT_ACCOUNT_NO});
    let answer = server.post(&format!("/v1/sandbox/{BANK}/credits"), ADMIN, &credit);
    assert_eq!(answer.status, 202, "{answer:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.balance_cents(&account) != (10_501, 0) {
        assert!(std::time::Instant::now() < deadline, "the sandbox's signed credit never arrived");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn no_token_or_secret_reaches_the_logs() {
    let mut server = Server::start(Setup { env: vec![("RUST_LOG".into(), "debug".into())], ..Setup::default() });
    let account = server.funded_account("50.00");
    // Good and bad credentials of every kind, good and bad signatures.
    let wrong_token = "wrong-secret-token-5e1d";
    let _ = server.get("/v1/ledger/trial-balance", wrong_token);
    let _ = server.get("/v1/ledger/trial-balance", HASHED);
    let _ = server.get(&format!("/v1/accounts/{account}"), PLATFORM);
    let body = serde_json::to_vec(&credit_to(&account, "someone else", "1.00")).expect("json");
    let _ = notify_with(&server, &body, &sign("wrong-bank-secret-9c2a", &body), None);
    let answer = server.post(
        "/v1/transfers",
        PLATFORM,
        &json!({"id": uid("t"), "type": "freeze", "payer": account, "amount": "1.00"}),
    );
    assert_eq!(answer.status, 201, "{answer:?}");
    server.terminate();
    let logs = server.logs();
    assert!(logs.contains("ready"), "the logs were captured at debug level: {logs}");
    for secret in
        [PLATFORM, FINANCE, RISK, HASHED, wrong_token, BANK_SECRET, "wrong-bank-secret-9c2a", "dev-receipt-key"]
    {
        assert!(!logs.contains(secret), "{secret:?} appears in the server's output");
    }
}
