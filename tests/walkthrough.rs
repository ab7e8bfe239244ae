//! The README's walk-through as a test: open a buyer and a seller, fund the
//! buyer by a signed bank notification, pay-freeze an order, unfreeze part
//! of it on delivery, refund the rest, and read everything back. Plus the
//! exact response shape of each of the five transfer types, and the batch.

mod common;

use common::*;
use serde_json::{json, Value};

const BUYER: &str = "上海某化工有限公司";
const SELLER: &str = "江苏某钢铁有限公司";

fn check_transfer_shape(body: &Value) {
    assert_keys(body, TRANSFER_FIELDS, "transfer 201 body");
    assert_eq!(body["status"], "committed", "{body}");
    assert!(body["lsn"].as_u64().is_some(), "lsn: {body}");
    assert!(is_rfc3339_millis(&body["committed_at"]), "committed_at: {body}");
    assert!(body["receipt_no"].as_str().is_some_and(|r| !r.is_empty()), "receipt_no: {body}");
    if !body["hold"].is_null() {
        assert_keys(&body["hold"], HOLD_FIELDS, "hold object");
    }
}

fn check_entry(
    entry: &Value,
    kind: &str,
    transfer_id: &str,
    lsn: u64,
    deltas: (&str, &str),
    after: (&str, &str, &str),
) {
    let what = format!("journal entry {kind} {transfer_id}: {entry}");
    assert_eq!(entry["kind"], kind, "{what}");
    assert_eq!(entry["transfer_id"], transfer_id, "{what}");
    assert_eq!(entry["lsn"].as_u64(), Some(lsn), "{what}");
    assert!(is_rfc3339_millis(&entry["at"]), "{what}");
    assert_eq!(
        (entry["available_delta"].as_str(), entry["frozen_delta"].as_str()),
        (Some(deltas.0), Some(deltas.1)),
        "{what}"
    );
    assert_eq!(
        (entry["available_after"].as_str(), entry["frozen_after"].as_str(), entry["total_after"].as_str()),
        (Some(after.0), Some(after.1), Some(after.2)),
        "{what}"
    );
}

#[test]
fn readme_walkthrough() {
    let server = Server::start();

    // Opening: application, review, bank signing.
    let credential = credential_no();
    let (status, app) = server.apply(BUYER, &credential);
    assert_eq!(status, 201, "{app}");
    assert_eq!(app["status"], "pending_review", "{app}");
    assert_eq!(app["name"], BUYER, "{app}");
    assert_eq!(app["credential_no"], credential.as_str(), "{app}");
    assert_eq!(app["bank"], BANK, "{app}");
    assert_eq!(app["settlement_account"]["account_no"], SETTLEMENT_ACCOUNT_NO, "{app}");
    let app_id = app["application_id"].as_str().unwrap().to_string();
    assert!(
        app_id.len() >= 7 && app_id.starts_with('A') && app_id[1..].bytes().all(|b| b.is_ascii_digit()),
        "application id {app_id}"
    );
    let (status, approved) =
        server.post(&format!("/v1/applications/{app_id}/approve"), RISK, &json!({"note": "资料齐全"}));
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["application_id"], app_id.as_str(), "{approved}");
    assert_eq!(approved["status"], "approved", "{approved}");
    let buyer = approved["account_id"].as_str().unwrap().to_string();
    let account = server.wait_signed(&buyer);
    assert_eq!(account["status"], "active", "{account}");
    let buyer_sub = account["sub_account_no"].as_str().unwrap().to_string();
    assert_eq!(buyer_sub, sandbox_sub_account(&buyer));
    assert_eq!(account["account_id"], buyer.as_str());
    assert_eq!(account["name"], BUYER);
    assert_eq!(account["bank"], BANK);
    assert_eq!(account["balance"], json!({"total": "0.00", "available": "0.00", "frozen": "0.00"}));
    assert!(is_rfc3339_millis(&account["created_at"]), "{account}");

    for token in [PLATFORM, RISK] {
        let app = server.get_ok(&format!("/v1/applications/{app_id}"), token);
        assert_eq!(app["status"], "approved", "{app}");
        assert_eq!(app["account_id"], buyer.as_str(), "{app}");
        assert_eq!(app["note"], "资料齐全", "{app}");
        assert!(is_rfc3339_millis(&app["created_at"]), "{app}");
        assert!(is_rfc3339_millis(&app["decided_at"]), "{app}");
    }

    let (seller, _seller_sub) = server.open_account(SELLER);
    assert_ne!(buyer, seller);

    // Money in: the bank notifies a credit to the buyer's sub-account.
    let note = notification(&buyer_sub, BUYER, "5000");
    let notification_id = note["notification_id"].as_str().unwrap().to_string();
    let (status, credited) = server.notify(&note);
    assert_eq!(status, 200, "{credited}");
    assert_eq!(credited["result"], "credited", "{credited}");
    assert_eq!(credited["account_id"], buyer.as_str(), "{credited}");
    let deposit_lsn = credited["lsn"].as_u64().expect("deposit lsn");
    assert_eq!(
        server.account(&buyer)["balance"],
        json!({"total": "5000.00", "available": "5000.00", "frozen": "0.00"})
    );

    // The order: pay-freeze 3000 from buyer to seller (the seller's money
    // stays frozen until delivery).
    let order = uid("O");
    let pf_id = uid("pf");
    let pf = server.transfer_ok(&json!({
        "id": pf_id, "type": "pay_freeze", "payer": buyer, "payee": seller,
        "amount": "3000", "order_id": order, "memo": "货款 第一批"
    }));
    check_transfer_shape(&pf);
    assert_eq!(pf["id"], pf_id.as_str());
    assert_eq!(pf["type"], "pay_freeze");
    assert_eq!(pf["payer"], buyer.as_str());
    assert_eq!(pf["payee"], seller.as_str());
    assert_eq!(pf["amount"], "3000.00");
    assert_eq!(pf["order_id"], order.as_str());
    assert_eq!(pf["memo"], "货款 第一批");
    assert_eq!(
        pf["hold"],
        json!({"hold_id": pf_id, "account_id": seller, "amount": "3000.00", "remaining": "3000.00", "status": "open"})
    );
    let pf_lsn = pf["lsn"].as_u64().unwrap();
    assert!(pf_lsn > deposit_lsn);
    assert_eq!(
        server.account(&buyer)["balance"],
        json!({"total": "2000.00", "available": "2000.00", "frozen": "0.00"})
    );
    assert_eq!(
        server.account(&seller)["balance"],
        json!({"total": "3000.00", "available": "0.00", "frozen": "3000.00"})
    );

    // Partial delivery: release 1800.50 of the hold to the seller.
    let uf_id = uid("uf");
    let uf = server.transfer_ok(&json!({
        "id": uf_id, "type": "unfreeze", "hold_id": pf_id, "amount": "1800.5", "order_id": order
    }));
    check_transfer_shape(&uf);
    assert_eq!(uf["type"], "unfreeze");
    assert_eq!(uf["payer"], seller.as_str(), "unfreeze payer is the hold's account");
    assert!(uf["payee"].is_null(), "{uf}");
    assert_eq!(uf["amount"], "1800.50");
    assert!(uf["memo"].is_null(), "{uf}");
    assert_eq!(
        uf["hold"],
        json!({"hold_id": pf_id, "account_id": seller, "amount": "3000.00", "remaining": "1199.50", "status": "open"})
    );
    let uf_lsn = uf["lsn"].as_u64().unwrap();
    assert!(uf_lsn > pf_lsn);
    assert_eq!(
        server.account(&seller)["balance"],
        json!({"total": "3000.00", "available": "1800.50", "frozen": "1199.50"})
    );

    // The rest failed delivery: refund to the buyer (amount defaults to
    // the hold's remaining).
    let refund_id = uid("refund");
    let refund = server.transfer_ok(&json!({
        "id": refund_id, "type": "unfreeze_pay", "hold_id": pf_id, "payee": buyer, "order_id": order
    }));
    check_transfer_shape(&refund);
    assert_eq!(refund["type"], "unfreeze_pay");
    assert_eq!(refund["payer"], seller.as_str());
    assert_eq!(refund["payee"], buyer.as_str());
    assert_eq!(refund["amount"], "1199.50");
    assert_eq!(
        refund["hold"],
        json!({"hold_id": pf_id, "account_id": seller, "amount": "3000.00", "remaining": "0.00", "status": "closed"})
    );
    let refund_lsn = refund["lsn"].as_u64().unwrap();
    assert!(refund_lsn > uf_lsn);

    // Balances.
    let buyer_account = server.account(&buyer);
    assert_eq!(buyer_account["balance"], json!({"total": "3199.50", "available": "3199.50", "frozen": "0.00"}));
    assert_eq!(buyer_account["last_lsn"].as_u64(), Some(refund_lsn));
    let seller_account = server.account(&seller);
    assert_eq!(seller_account["balance"], json!({"total": "1800.50", "available": "1800.50", "frozen": "0.00"}));
    assert_eq!(seller_account["last_lsn"].as_u64(), Some(refund_lsn));

    // Journals: kinds in order, deltas, after-balances.
    let bj = server.journal(&buyer);
    assert_eq!(bj.len(), 3, "buyer journal: {bj:#?}");
    check_entry(&bj[0], "deposit", &notification_id, deposit_lsn, ("5000.00", "0.00"), ("5000.00", "0.00", "5000.00"));
    check_entry(&bj[1], "pay_freeze_out", &pf_id, pf_lsn, ("-3000.00", "0.00"), ("2000.00", "0.00", "2000.00"));
    check_entry(&bj[2], "unfreeze_pay_in", &refund_id, refund_lsn, ("1199.50", "0.00"), ("3199.50", "0.00", "3199.50"));
    assert!(bj[0]["counterparty"].is_null(), "{}", bj[0]);
    assert!(bj[0]["order_id"].is_null(), "{}", bj[0]);
    assert_eq!(bj[1]["counterparty"], seller.as_str());
    assert_eq!(bj[1]["order_id"], order.as_str());
    assert_eq!(bj[2]["counterparty"], seller.as_str());
    check_journal(&buyer, &buyer_account, &bj);

    let sj = server.journal(&seller);
    assert_eq!(sj.len(), 3, "seller journal: {sj:#?}");
    check_entry(&sj[0], "pay_freeze_in", &pf_id, pf_lsn, ("0.00", "3000.00"), ("0.00", "3000.00", "3000.00"));
    check_entry(&sj[1], "unfreeze", &uf_id, uf_lsn, ("1800.50", "-1800.50"), ("1800.50", "1199.50", "3000.00"));
    check_entry(
        &sj[2],
        "unfreeze_pay_out",
        &refund_id,
        refund_lsn,
        ("0.00", "-1199.50"),
        ("1800.50", "0.00", "1800.50"),
    );
    assert_eq!(sj[0]["counterparty"], buyer.as_str());
    assert!(sj[1]["counterparty"].is_null(), "unfreeze has no counterparty: {}", sj[1]);
    assert_eq!(sj[1]["hold_id"], pf_id.as_str(), "{}", sj[1]);
    assert_eq!(sj[2]["counterparty"], buyer.as_str());
    assert_eq!(sj[2]["hold_id"], pf_id.as_str(), "{}", sj[2]);
    check_journal(&seller, &seller_account, &sj);

    // Filters on the journal.
    let only_pf = server.get_ok(&format!("/v1/accounts/{buyer}/journal?kind=pay_freeze_out"), FINANCE);
    assert_eq!(only_pf["items"].as_array().map(|a| a.len()), Some(1), "{only_pf}");
    assert_eq!(only_pf["items"][0]["transfer_id"], pf_id.as_str());
    let after = server.get_ok(&format!("/v1/accounts/{buyer}/journal?after_lsn={pf_lsn}"), PLATFORM);
    assert_eq!(after["items"].as_array().map(|a| a.len()), Some(1), "{after}");
    assert_eq!(after["items"][0]["lsn"].as_u64(), Some(refund_lsn));
    let from_today = server.get_ok(&format!("/v1/accounts/{buyer}/journal?from={}", today()), PLATFORM);
    assert_eq!(from_today["items"].as_array().map(|a| a.len()), Some(3), "{from_today}");
    let before_today = server.get_ok(&format!("/v1/accounts/{buyer}/journal?to={}", today()), PLATFORM);
    assert_eq!(before_today["items"], json!([]), "`to` is exclusive: {before_today}");

    // GET /v1/transfers/{id}: the committed record plus bank_sync.
    for (token, posted) in [(PLATFORM, &pf), (FINANCE, &uf), (PLATFORM, &refund)] {
        let id = posted["id"].as_str().unwrap();
        let got = server.get_ok(&format!("/v1/transfers/{id}"), token);
        for &field in TRANSFER_FIELDS {
            assert_eq!(got[field], posted[field], "GET /v1/transfers/{id} field {field}: {got}");
        }
        let sync = &got["bank_sync"];
        assert_keys(sync, &["status", "bank_serial", "failure_reason"], "bank_sync");
        assert!(
            sync["status"] == "pending" || sync["status"] == "confirmed",
            "bank_sync of a sandbox transfer: {sync}"
        );
    }

    // GET /v1/holds/{id}: the hold plus its movements, oldest first.
    let hold = server.get_ok(&format!("/v1/holds/{pf_id}"), FINANCE);
    assert_eq!(hold["hold_id"], pf_id.as_str(), "{hold}");
    assert_eq!(hold["account_id"], seller.as_str(), "{hold}");
    assert_eq!(hold["amount"], "3000.00", "{hold}");
    assert_eq!(hold["remaining"], "0.00", "{hold}");
    assert_eq!(hold["status"], "closed", "{hold}");
    assert_eq!(hold_movement_ids(&hold), vec![pf_id.clone(), uf_id.clone(), refund_id.clone()]);

    // GET /v1/orders/{order_id}/transfers: every movement of the order.
    let items = server.list_all(&format!("/v1/orders/{order}/transfers"), PLATFORM);
    let ids: Vec<&str> = items.iter().map(|t| t["id"].as_str().unwrap_or("?")).collect();
    assert_eq!(ids, vec![pf_id.as_str(), uf_id.as_str(), refund_id.as_str()], "{items:#?}");
    let types: Vec<&str> = items.iter().map(|t| t["type"].as_str().unwrap_or("?")).collect();
    assert_eq!(types, vec!["pay_freeze", "unfreeze", "unfreeze_pay"]);
    let page = server.get_ok(&format!("/v1/orders/{order}/transfers?limit=2"), FINANCE);
    assert_eq!(page["items"].as_array().map(|a| a.len()), Some(2), "{page}");
    let cursor = page["next_cursor"].as_str().expect("a next_cursor after 2 of 3");
    let rest = server.get_ok(&format!("/v1/orders/{order}/transfers?limit=2&cursor={}", qs(cursor)), FINANCE);
    assert_eq!(rest["items"].as_array().map(|a| a.len()), Some(1), "{rest}");
    assert_eq!(rest["items"][0]["id"], refund_id.as_str());
    assert!(rest["next_cursor"].is_null(), "{rest}");
    let none = server.get_ok("/v1/orders/NO-SUCH-ORDER/transfers", PLATFORM);
    assert_eq!(none, json!({"items": [], "next_cursor": null}));

    // The account list, in id order.
    let active = server.list_all("/v1/accounts?status=active", FINANCE);
    let ids: Vec<&str> = active.iter().map(|a| a["account_id"].as_str().unwrap_or("?")).collect();
    assert_eq!(ids, vec![buyer.as_str(), seller.as_str()]);
}

#[test]
fn last_lsn_is_null_before_the_first_journal_entry() {
    let server = Server::start();
    let (a, _) = server.open_account("甲公司");
    let failed = server.open_sign_failed_account("乙公司");
    for id in [&a, &failed] {
        let account = server.account(id);
        assert!(server.journal(id).is_empty(), "{id} has no movement yet");
        assert!(
            account["last_lsn"].is_null(),
            "API.md: last_lsn is the lsn of the latest journal entry, null before the first: {account}"
        );
    }
}

#[test]
fn five_types_response_shape() {
    let server = Server::start();
    let (a, a_sub) = server.open_account("甲公司");
    let (b, _) = server.open_account("乙公司");
    server.deposit(&a_sub, "甲公司", "1000.00");

    let order = uid("O");
    let t_id = uid("t");
    let t = server.transfer_ok(
        &json!({"id": t_id, "type": "transfer", "payer": a, "payee": b, "amount": "100", "order_id": order}),
    );
    check_transfer_shape(&t);
    assert_eq!(
        (&t["id"], &t["type"], &t["payer"], &t["payee"], &t["amount"], &t["order_id"], &t["memo"], &t["hold"]),
        (
            &json!(t_id),
            &json!("transfer"),
            &json!(a),
            &json!(b),
            &json!("100.00"),
            &json!(order),
            &Value::Null,
            &Value::Null
        ),
        "{t}"
    );

    let f_id = uid("f");
    let f = server.transfer_ok(&json!({"id": f_id, "type": "freeze", "payer": a, "amount": "50.5", "memo": "保证金"}));
    check_transfer_shape(&f);
    assert_eq!(f["type"], "freeze");
    assert_eq!(f["payer"], a.as_str());
    assert!(f["payee"].is_null(), "freeze has no payee: {f}");
    assert!(f["order_id"].is_null(), "{f}");
    assert_eq!(f["memo"], "保证金");
    assert_eq!(f["amount"], "50.50");
    assert_eq!(
        f["hold"],
        json!({"hold_id": f_id, "account_id": a, "amount": "50.50", "remaining": "50.50", "status": "open"})
    );

    let u = server.transfer_ok(&json!({"id": uid("u"), "type": "unfreeze", "hold_id": f_id, "amount": "20.25"}));
    check_transfer_shape(&u);
    assert_eq!(u["type"], "unfreeze");
    assert_eq!(u["payer"], a.as_str());
    assert!(u["payee"].is_null(), "unfreeze has no payee: {u}");
    assert_eq!(u["amount"], "20.25");
    assert_eq!(
        u["hold"],
        json!({"hold_id": f_id, "account_id": a, "amount": "50.50", "remaining": "30.25", "status": "open"})
    );

    let up = server.transfer_ok(&json!({"id": uid("up"), "type": "unfreeze_pay", "hold_id": f_id, "payee": b}));
    check_transfer_shape(&up);
    assert_eq!(up["type"], "unfreeze_pay");
    assert_eq!(up["payer"], a.as_str());
    assert_eq!(up["payee"], b.as_str());
    assert_eq!(up["amount"], "30.25", "amount defaults to the hold's remaining");
    assert_eq!(
        up["hold"],
        json!({"hold_id": f_id, "account_id": a, "amount": "50.50", "remaining": "0.00", "status": "closed"})
    );

    let pf_id = uid("pf");
    let pf = server.transfer_ok(&json!({"id": pf_id, "type": "pay_freeze", "payer": a, "payee": b, "amount": "0.01"}));
    check_transfer_shape(&pf);
    assert_eq!(pf["payer"], a.as_str());
    assert_eq!(pf["payee"], b.as_str());
    assert_eq!(pf["amount"], "0.01");
    assert_eq!(
        pf["hold"],
        json!({"hold_id": pf_id, "account_id": b, "amount": "0.01", "remaining": "0.01", "status": "open"})
    );

    // lsns increase in commit order; receipt numbers are distinct.
    let all = [&t, &f, &u, &up, &pf];
    for pair in all.windows(2) {
        assert!(pair[1]["lsn"].as_u64() > pair[0]["lsn"].as_u64(), "lsn order: {} then {}", pair[0], pair[1]);
    }
    let mut receipts: Vec<&str> = all.iter().map(|x| x["receipt_no"].as_str().unwrap()).collect();
    receipts.sort_unstable();
    receipts.dedup();
    assert_eq!(receipts.len(), 5, "receipt numbers must differ");

    // A: 1000 - 100 (transfer) - 30.25 (paid out of the hold) - 0.01
    assert_eq!(server.account(&a)["balance"], json!({"total": "869.74", "available": "869.74", "frozen": "0.00"}));
    // B: 100 + 30.25 available, 0.01 frozen
    assert_eq!(server.account(&b)["balance"], json!({"total": "130.26", "available": "130.25", "frozen": "0.01"}));
    server.assert_consistent(&a);
    server.assert_consistent(&b);
    let kinds: Vec<String> = server.journal(&a).iter().map(|e| e["kind"].as_str().unwrap_or("?").to_string()).collect();
    assert_eq!(kinds, ["deposit", "transfer_out", "freeze", "unfreeze", "unfreeze_pay_out", "pay_freeze_out"]);
    let kinds: Vec<String> = server.journal(&b).iter().map(|e| e["kind"].as_str().unwrap_or("?").to_string()).collect();
    assert_eq!(kinds, ["transfer_in", "unfreeze_pay_in", "pay_freeze_in"]);
}

#[test]
fn batch_items_are_judged_one_by_one_in_order() {
    let server = Server::start();
    let (a, a_sub) = server.open_account("丙公司");
    let (b, _) = server.open_account("丁公司");
    server.deposit(&a_sub, "丙公司", "100");

    let hold_id = uid("h");
    let items = vec![
        json!({"id": uid("b"), "type": "transfer", "payer": a, "payee": b, "amount": "10"}),
        json!({"id": hold_id, "type": "freeze", "payer": a, "amount": "30"}),
        // uses the hold the previous item opened
        json!({"id": uid("b"), "type": "unfreeze_pay", "hold_id": hold_id, "payee": b, "amount": "5"}),
        // invalid item: its own 400, the others go on
        json!({"id": uid("b"), "type": "transfer", "payer": a, "payee": b, "amount": "0"}),
        // business refusal: 60 available, 61 asked
        json!({"id": uid("b"), "type": "transfer", "payer": a, "payee": b, "amount": "61"}),
        json!({"id": uid("b"), "type": "unfreeze", "hold_id": hold_id}),
        json!({"id": uid("b"), "type": "transfer", "payer": a, "payee": b, "amount": "85.01"}),
        json!({"id": uid("b"), "type": "pay_freeze", "payer": a, "payee": b, "amount": "1.5"}),
        json!({"id": uid("b"), "type": "transfer", "payer": "F999999", "payee": b, "amount": "1"}),
    ];
    let (status, answer) = server.batch(&items);
    assert_eq!(status, 200, "{answer}");
    assert_keys(&answer, &["results"], "batch answer");
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), items.len(), "{answer}");
    for r in results {
        assert_keys(r, &["status", "body"], "batch result");
    }
    let statuses: Vec<u64> = results.iter().map(|r| r["status"].as_u64().unwrap_or(0)).collect();
    assert_eq!(statuses, vec![201, 201, 201, 400, 422, 201, 422, 201, 404], "{answer:#}");
    assert_error(400, &results[3]["body"], 400, "INVALID_AMOUNT", "batch item 3");
    assert_error(422, &results[4]["body"], 422, "INSUFFICIENT_FUNDS", "batch item 4");
    assert_error(422, &results[6]["body"], 422, "INSUFFICIENT_FUNDS", "batch item 6");
    assert_error(404, &results[8]["body"], 404, "ACCOUNT_NOT_FOUND", "batch item 8");
    for i in [0, 1, 2, 5, 7] {
        let body = &results[i]["body"];
        check_transfer_shape(body);
        assert_matches_request(&items[i], body);
    }
    assert_eq!(results[2]["body"]["hold"]["remaining"], "25.00");
    assert_eq!(results[5]["body"]["amount"], "25.00");
    assert_eq!(results[5]["body"]["hold"]["status"], "closed");
    // every committed item has its own lsn, increasing along the array
    // for items of the same payer
    let lsns: Vec<u64> = [0, 1, 2, 5, 7].iter().map(|&i| results[i]["body"]["lsn"].as_u64().unwrap()).collect();
    for pair in lsns.windows(2) {
        assert!(pair[1] > pair[0], "lsns {lsns:?}");
    }
    // a: 100 - 10 - 30 + 25 - 1.5 = 83.50 ; b: 10 + 5 = 15 available, 1.5 frozen
    assert_eq!(server.account(&a)["balance"], json!({"total": "83.50", "available": "83.50", "frozen": "0.00"}));
    assert_eq!(server.account(&b)["balance"], json!({"total": "16.50", "available": "15.00", "frozen": "1.50"}));
    server.assert_consistent(&a);
    server.assert_consistent(&b);

    // Every committed item is readable like a single transfer.
    for i in [0, 1, 2, 5, 7] {
        let id = items[i]["id"].as_str().unwrap();
        let got = server.get_ok(&format!("/v1/transfers/{id}"), PLATFORM);
        assert_eq!(got["lsn"], results[i]["body"]["lsn"], "{got}");
    }
    // The refused ones were not recorded.
    for i in [3, 4, 6, 8] {
        let id = items[i]["id"].as_str().unwrap();
        let (status, body) = server.get(&format!("/v1/transfers/{id}"), PLATFORM);
        assert_error(status, &body, 404, "TRANSFER_NOT_FOUND", "refused batch item");
    }
}

#[test]
fn service_endpoints() {
    let server = Server::start();
    let (status, body) = server.get("/healthz", NO_TOKEN);
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, body) = server.get("/readyz", NO_TOKEN);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready", "{body}");
    assert!(body["lsn"].is_u64(), "{body}");
    let metrics = server.request("GET", "/metrics", &[], None);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.text.lines().any(|l| l.starts_with("# TYPE") || l.starts_with("# HELP")),
        "Prometheus text expected: {}",
        &metrics.text[..metrics.text.len().min(500)]
    );
}
