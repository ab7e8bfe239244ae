//! Idle accounts lose their actor (passivation, `limits::ACCOUNT_IDLE_PASSIVATE_MS`:
//! an account idle for two periods has certainly been passivated) and get
//! a new one with their next message, or none for a transfer (applied in
//! place while idle). From outside nothing may change:
//! an account idle long enough still answers `GET` with its balance, its
//! holds still work, credits, deposits and transfers still land, and a
//! restart (accounts come back idle) shows the same state.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// Two idle periods of the server and a margin.
const IDLE: Duration = Duration::from_millis(2 * fundledger::limits::ACCOUNT_IDLE_PASSIVATE_MS + 200);

#[test]
fn accounts_idle_long_enough_to_be_passivated_behave_as_before() {
    let mut server = Server::start();
    let (buyer, buyer_sub) = server.open_account("上海闲置化工有限公司");
    let (seller, _) = server.open_account("江苏闲置钢铁有限公司");
    server.deposit(&buyer_sub, "上海闲置化工有限公司", "1000.00");
    server.transfer_ok(&json!({
        "id": "idle-pf", "type": "pay_freeze", "payer": buyer, "payee": seller, "amount": "300.00", "order_id": "O-idle"
    }));

    std::thread::sleep(IDLE);
    let b = server.assert_consistent(&buyer);
    let s = server.assert_consistent(&seller);
    assert_eq!((b.available, b.frozen), (70_000, 0), "buyer after idling");
    assert_eq!((s.available, s.frozen), (0, 30_000), "seller's hold survives passivation");

    std::thread::sleep(IDLE);
    // The hold lives in the idle seller's book: release part of it there.
    server.transfer_ok(&json!({ "id": "idle-uf", "type": "unfreeze", "hold_id": "idle-pf", "amount": "100.00" }));
    std::thread::sleep(IDLE);
    let first = server.transfer_ok(
        &json!({ "id": "idle-t", "type": "transfer", "payer": seller, "payee": buyer, "amount": "40.00" }),
    );
    std::thread::sleep(IDLE);
    server.deposit(&buyer_sub, "上海闲置化工有限公司", "5.00");
    // A retry after idling gets the original answer, not a second effect.
    let (status, again) = server.transfer(&json!({
        "id": "idle-t", "type": "transfer", "payer": seller, "payee": buyer, "amount": "40.00"
    }));
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["lsn"], first["lsn"], "the original answer: {again}");
    std::thread::sleep(IDLE);

    let expect = |server: &Server| {
        let b = server.assert_consistent(&buyer);
        let s = server.assert_consistent(&seller);
        assert_eq!((b.available, b.frozen), (70_000 + 4_000 + 500, 0), "buyer");
        assert_eq!((s.available, s.frozen), (10_000 - 4_000, 20_000), "seller");
    };
    expect(&server);
    server.restart();
    expect(&server);
    server.transfer_ok(&json!({ "id": "idle-up", "type": "unfreeze_pay", "hold_id": "idle-pf", "payee": buyer }));
    let s = server.assert_consistent(&seller);
    assert_eq!((s.available, s.frozen), (6_000, 0), "the rest of the hold went back to the buyer");
    assert_eq!(server.assert_consistent(&buyer).available, 74_500 + 20_000);
}
