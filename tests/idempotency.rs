//! Idempotency by client id: the same id and fields give the original
//! answer (status, body, lsn), before and after a restart (clean or
//! kill -9); other fields give 409 ID_REUSED; refused requests are not
//! remembered; repeated ids inside a batch; concurrent retries.

mod common;

use std::sync::Barrier;

use common::*;
use serde_json::{json, Value};

struct Sent {
    path: &'static str,
    body: Value,
    status: u16,
    answer: Value,
}

fn post_as_platform(server: &Server, path: &'static str, body: Value) -> Sent {
    let (status, answer) = server.post(path, PLATFORM, &body);
    assert!(status == 201 || status == 200, "POST {path} {body}: {status} {answer}");
    Sent { path, body, status, answer }
}

fn replay_all(server: &Server, sent: &[Sent], notes: &[(Value, Value)], phase: &str) {
    for s in sent {
        let (status, answer) = server.post(s.path, PLATFORM, &s.body);
        assert_eq!(
            (status, &answer),
            (s.status, &s.answer),
            "{phase}: retry of {} {} gave another answer",
            s.path,
            s.body
        );
    }
    for (note, first) in notes {
        let (status, answer) = server.notify(note);
        assert_eq!((status, &answer), (200, first), "{phase}: notification retried");
    }
}

#[test]
fn retries_get_the_original_answer_across_restarts() {
    let mut server = Server::start();
    let (a, a_sub) = server.open_account("甲公司");
    let (b, _) = server.open_account("乙公司");
    let note = notification(&a_sub, "甲公司", "1000");
    let (status, credited) = server.notify(&note);
    assert_eq!((status, &credited["result"]), (200, &json!("credited")), "{credited}");
    let notes = vec![(note, credited)];

    let hold = uid("f");
    let mut sent = vec![
        post_as_platform(
            &server,
            "/v1/transfers",
            json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": b, "amount": "10", "order_id": "O-1", "memo": "首付"}),
        ),
        post_as_platform(&server, "/v1/transfers", json!({"id": hold, "type": "freeze", "payer": a, "amount": "20"})),
        post_as_platform(
            &server,
            "/v1/transfers",
            json!({"id": uid("pf"), "type": "pay_freeze", "payer": a, "payee": b, "amount": "5"}),
        ),
        post_as_platform(
            &server,
            "/v1/transfers",
            json!({"id": uid("u"), "type": "unfreeze", "hold_id": hold, "amount": "5"}),
        ),
        // amount defaults to the remaining 15; retried after the hold is
        // closed, it must still get its original answer
        post_as_platform(
            &server,
            "/v1/transfers",
            json!({"id": uid("up"), "type": "unfreeze_pay", "hold_id": hold, "payee": b}),
        ),
    ];
    let batch = json!({"transfers": [
        {"id": uid("bt"), "type": "transfer", "payer": a, "payee": b, "amount": "1"},
        {"id": uid("bt"), "type": "freeze", "payer": a, "amount": "2"},
        {"id": uid("bt"), "type": "transfer", "payer": b, "payee": a, "amount": "100000"},
    ]});
    let batch_sent = post_as_platform(&server, "/v1/transfers/batch", batch);
    assert_eq!(batch_sent.answer["results"][2]["status"], 422, "{}", batch_sent.answer);
    sent.push(batch_sent);
    let ids_and_lsns: Vec<(String, Value)> =
        sent[..5].iter().map(|s| (s.body["id"].as_str().unwrap().to_string(), s.answer["lsn"].clone())).collect();

    let snapshot = |server: &Server| -> Value {
        Value::from(
            [&a, &b]
                .iter()
                .map(|x| json!({"account": server.account(x), "journal": server.journal(x)}))
                .collect::<Vec<_>>(),
        )
    };
    let before = snapshot(&server);

    replay_all(&server, &sent, &notes, "right away");
    assert_unchanged(&before, &snapshot(&server), "a retry moved money");

    server.stop();
    server.restart();
    assert_unchanged(&before, &snapshot(&server), "a clean restart changed accounts or journals");
    replay_all(&server, &sent, &notes, "after a clean restart");
    assert_unchanged(&before, &snapshot(&server), "a retry after restart moved money");

    server.kill9();
    server.restart();
    assert_unchanged(&before, &snapshot(&server), "kill -9 and restart changed accounts or journals");
    replay_all(&server, &sent, &notes, "after kill -9");
    assert_unchanged(&before, &snapshot(&server), "a retry after kill -9 moved money");

    // The records are still there with their lsns; other fields: 409.
    for (id, lsn) in &ids_and_lsns {
        let got = server.get_ok(&format!("/v1/transfers/{id}"), PLATFORM);
        assert_eq!(&got["lsn"], lsn, "{got}");
    }
    for s in &sent[..5] {
        let mut changed = s.body.clone();
        changed["memo"] = json!("changed");
        let (status, body) = server.transfer(&changed);
        assert_error(status, &body, 409, "ID_REUSED", "different fields after restarts");
    }
    // The refused batch item was not remembered: judged afresh.
    let refused = sent[5].body["transfers"][2].clone();
    let (status, answer) = server.batch(&[refused]);
    assert_eq!(status, 200, "{answer}");
    assert_error(422, &answer["results"][0]["body"], 422, "INSUFFICIENT_FUNDS", "refused item retried");
    assert_unchanged(&before, &snapshot(&server), "the refused item moved money");
    server.assert_consistent(&a);
    server.assert_consistent(&b);
}

#[test]
fn refused_requests_are_not_remembered() {
    let mut server = Server::start();
    let (a, a_sub) = server.open_account("甲公司");
    let (b, _) = server.open_account("乙公司");

    // 422, then the account is funded: the same id goes through.
    let t = json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": b, "amount": "100"});
    let (status, body) = server.transfer(&t);
    assert_error(status, &body, 422, "INSUFFICIENT_FUNDS", "unfunded");
    server.deposit(&a_sub, "甲公司", "150");
    let first = server.transfer_ok(&t);
    let (status, again) = server.transfer(&t);
    assert_eq!((status, &again), (201, &first), "retry after success");

    // 400 then valid, 404 then valid: the id is free again.
    let id = uid("t");
    let (status, body) = server.transfer(&json!({"id": id, "type": "transfer", "payer": a, "payee": b, "amount": "0"}));
    assert_error(status, &body, 400, "INVALID_AMOUNT", "invalid first");
    server.transfer_ok(&json!({"id": id, "type": "transfer", "payer": a, "payee": b, "amount": "1"}));
    let id = uid("t");
    let (status, body) =
        server.transfer(&json!({"id": id, "type": "transfer", "payer": a, "payee": "F999999", "amount": "1"}));
    assert_error(status, &body, 404, "ACCOUNT_NOT_FOUND", "unknown payee first");
    server.transfer_ok(&json!({"id": id, "type": "transfer", "payer": a, "payee": b, "amount": "1"}));

    // A 409 does not replace the original.
    let (status, body) =
        server.transfer(&json!({"id": t["id"], "type": "transfer", "payer": a, "payee": b, "amount": "1"}));
    assert_error(status, &body, 409, "ID_REUSED", "other fields");
    let (status, again) = server.transfer(&t);
    assert_eq!((status, &again), (201, &first), "the original after a 409");

    // Refused before a kill -9, judged afresh after it.
    let late = json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": b, "amount": "48.01"});
    let (status, body) = server.transfer(&late);
    assert_error(status, &body, 422, "INSUFFICIENT_FUNDS", "48.01 of 48");
    server.kill9();
    server.restart();
    let (status, body) = server.transfer(&late);
    assert_error(status, &body, 422, "INSUFFICIENT_FUNDS", "48.01 of 48 after restart");
    server.deposit(&a_sub, "甲公司", "0.01");
    let committed = server.transfer_ok(&late);
    assert_eq!(committed["amount"], "48.01");
    assert_eq!(server.account(&a)["balance"]["total"], "0.00");
    assert_eq!(server.account(&b)["balance"]["total"], "150.01");
    server.assert_consistent(&a);
    server.assert_consistent(&b);
}

#[test]
fn repeated_ids_inside_a_batch() {
    let server = Server::start();
    let (a, a_sub) = server.open_account("甲公司");
    let (b, _) = server.open_account("乙公司");
    server.deposit(&a_sub, "甲公司", "100");
    let t1 = json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": b, "amount": "10"});
    let t2 = json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": b, "amount": "10"});
    let mut t2_other = t2.clone();
    t2_other["amount"] = json!("11");
    let t3_id = uid("t");
    let t3_refused = json!({"id": t3_id, "type": "transfer", "payer": a, "payee": b, "amount": "1000"});
    let t3 = json!({"id": t3_id, "type": "transfer", "payer": a, "payee": b, "amount": "1"});
    let items = vec![t1.clone(), t1.clone(), t2.clone(), t2_other.clone(), t3_refused.clone(), t3.clone()];
    let (status, answer) = server.batch(&items);
    assert_eq!(status, 200, "{answer}");
    let r = answer["results"].as_array().expect("results").clone();
    assert_eq!(r.len(), 6);
    assert_eq!(r[0]["status"], 201, "{answer:#}");
    assert_eq!(r[1], r[0], "a repeated id gets the first item's result");
    assert_eq!(r[2]["status"], 201, "{answer:#}");
    assert_error(409, &r[3]["body"], 409, "ID_REUSED", "repeated id, other fields");
    assert_eq!(r[3]["status"], 409);
    assert_error(422, &r[4]["body"], 422, "INSUFFICIENT_FUNDS", "first t3");
    assert_eq!(r[5]["status"], 201, "a repeated id after a refusal is judged afresh: {answer:#}");
    assert_eq!(r[5]["body"]["amount"], "1.00");
    // 100 - 10 - 10 - 1
    assert_eq!(server.account(&a)["balance"]["total"], "79.00");
    assert_eq!(server.journal(&a).len(), 4, "deposit and three transfers");

    // The whole batch again: the committed ones answer as before; the
    // once-refused t3 now conflicts with the committed t3.
    let (status, again) = server.batch(&items);
    assert_eq!(status, 200, "{again}");
    let g = again["results"].as_array().expect("results");
    assert_eq!(g[0], r[0]);
    assert_eq!(g[1], r[0]);
    assert_eq!(g[2], r[2]);
    assert_error(409, &g[3]["body"], 409, "ID_REUSED", "t2 other fields, again");
    assert_error(409, &g[4]["body"], 409, "ID_REUSED", "t3 other fields after t3 committed");
    assert_eq!(g[5], r[5]);
    // Single requests see the batch's items.
    let (status, single) = server.transfer(&t1);
    assert_eq!((status, &single), (201, &r[0]["body"]));
    assert_eq!(server.account(&a)["balance"]["total"], "79.00");
    server.assert_consistent(&a);
    server.assert_consistent(&b);
}

#[test]
fn concurrent_retries_are_applied_once() {
    const THREADS: usize = 16;
    const ROUNDS: usize = 6;
    let server = Server::start();
    let (a, a_sub) = server.open_account("甲公司");
    let (b, _) = server.open_account("乙公司");
    server.deposit(&a_sub, "甲公司", "1000");
    let mut moved = 0;

    for round in 0..ROUNDS {
        let id = uid("c");
        // Every other round mixes two versions of the request.
        let mixed = round % 2 == 1;
        let barrier = Barrier::new(THREADS);
        let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|i| {
                    let client = server.client.clone();
                    let amount = if mixed && i % 2 == 1 { "2" } else { "1" };
                    let body = if round == 4 {
                        json!({"id": id, "type": "pay_freeze", "payer": a, "payee": b, "amount": amount})
                    } else {
                        json!({"id": id, "type": "transfer", "payer": a, "payee": b, "amount": amount})
                    };
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        client.try_post("/v1/transfers", PLATFORM, &body).expect("no HTTP answer")
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let committed: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 201).map(|(_, b)| b).collect();
        assert!(!committed.is_empty(), "round {round}: nobody got 201: {answers:?}");
        assert!(
            committed.iter().all(|b| *b == committed[0]),
            "round {round}: different 201 bodies for one id: {committed:#?}"
        );
        let winner_amount = cents(&committed[0]["amount"]);
        for (status, body) in &answers {
            if *status == 201 {
                continue;
            }
            assert!(mixed, "round {round}: same fields must all get 201, got {status} {body}");
            assert_error(*status, body, 409, "ID_REUSED", &format!("round {round}, other fields"));
        }
        if mixed {
            // Exactly the requests with the winner's fields got 201.
            let winners = answers.iter().filter(|(s, _)| *s == 201).count();
            assert_eq!(winners, THREADS / 2, "round {round}: {answers:?}");
        }
        moved += winner_amount;
        let got = server.get_ok(&format!("/v1/transfers/{id}"), PLATFORM);
        assert_eq!(got["lsn"], committed[0]["lsn"]);
    }
    let balance = server.balance(&a);
    assert_eq!(balance.total, 100_000 - moved, "each id moved money once");
    assert_eq!(server.journal(&a).len(), 1 + ROUNDS, "one journal entry per id");
    let b_balance = server.assert_consistent(&b);
    assert_eq!(b_balance.total, moved);
    server.assert_consistent(&a);
}
