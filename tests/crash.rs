//! kill -9 while clients are sending transfers and batches, then restart:
//! every answered (2xx) change is there with its lsn, requests whose
//! answer was lost are either wholly there or wholly absent, money is
//! conserved and every journal sums to its balance. Repeated several times
//! on one data dir, after the log has crossed segment boundaries. And a
//! restart (kill -9 or clean) preserves every account exactly.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const ITERATIONS: u64 = 5;
const THREADS: u64 = 8;
const ACCOUNTS: usize = 6;

/// Writes big batches (long memos make big records) until the log has at
/// least two segments; returns the committed records.
fn fill_past_a_segment(server: &Server, accounts: &[String]) -> Vec<Value> {
    let mut committed = Vec::new();
    let memo = "跨段".repeat(100);
    for round in 0..10 {
        if server.wal_segments().len() >= 2 {
            return committed;
        }
        let items: Vec<Value> = (0..1000)
            .map(|i| {
                let payer = &accounts[i % accounts.len()];
                let payee = &accounts[(i + 1 + round) % accounts.len()];
                let payee = if payee == payer { &accounts[(i + 2) % accounts.len()] } else { payee };
                json!({"id": uid("seg"), "type": "transfer", "payer": payer, "payee": payee,
                       "amount": "0.01", "order_id": uid("O"), "memo": memo})
            })
            .collect();
        let (status, answer) = server.batch(&items);
        assert_eq!(status, 200, "{}", &answer.to_string()[..answer.to_string().len().min(300)]);
        for (item, result) in items.iter().zip(answer["results"].as_array().expect("results")) {
            assert_eq!(result["status"], 201, "{item} -> {result}");
            assert_matches_request(item, &result["body"]);
            committed.push(result["body"].clone());
        }
    }
    let segments = server.wal_segments();
    assert!(
        segments.len() >= 2,
        "10 batches of 1000 transfers with 200-character memos did not fill a 1 MiB segment: {segments:?}"
    );
    committed
}

#[test]
fn kill_9_under_load_keeps_every_answered_change() {
    let mut server = Server::start();
    let mut model = Model::default();
    let mut accounts = Vec::new();
    for i in 0..ACCOUNTS {
        let name = format!("崩溃测试{i}公司");
        let (id, sub) = server.open_account(&name);
        server.deposit(&sub, &name, "5000");
        model.deposit(&id, 500_000);
        accounts.push(id);
    }
    for record in fill_past_a_segment(&server, &accounts) {
        model.apply(&record);
    }
    // The small segment size makes recovery replay across segments.
    server.kill9();
    server.restart();
    assert_model(&server, &model);

    // id -> committed body, over all iterations.
    let mut acked: BTreeMap<String, Value> = BTreeMap::new();
    let holds: Holds = Holds::default();
    let mut rng = Rng::new(99);

    for iteration in 0..ITERATIONS {
        let mut load = Load::new(server.client.clone(), accounts.clone());
        load.holds = holds.clone();
        let killed_after = std::thread::scope(|scope| {
            for t in 0..THREADS {
                let load = load.clone();
                scope.spawn(move || load.run(iteration * 100 + t, usize::MAX, 3, 40));
            }
            // Let some answers come back, then kill at a random moment.
            let start = Instant::now();
            while load.committed_count() < 30 && start.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(rng.below(300)));
            server.kill9();
            load.stop.store(true, Ordering::Relaxed);
            load.committed_count()
        });
        assert!(killed_after >= 30, "iteration {iteration}: only {killed_after} transfers answered in 20 s");
        let unexpected = load.unexpected.lock().unwrap().clone();
        assert!(unexpected.is_empty(), "iteration {iteration}: unexpected answers:\n{}", unexpected.join("\n"));

        server.restart();

        // Every answered change is there, with the same lsn.
        let committed = load.committed.lock().unwrap().clone();
        for (_, body) in &committed {
            let id = body["id"].as_str().unwrap().to_string();
            assert!(acked.insert(id.clone(), body.clone()).is_none(), "{id} answered twice");
            model.apply(body);
        }
        let mut missing = Vec::new();
        for (id, body) in &acked {
            let (status, got) = server.get(&format!("/v1/transfers/{id}"), PLATFORM);
            if status != 200 {
                missing.push(format!("{id}: {status} {got}"));
                continue;
            }
            for field in ["lsn", "type", "payer", "payee", "amount", "order_id", "memo", "committed_at", "receipt_no"] {
                assert_eq!(got[field], body[field], "iteration {iteration}: {id} field {field} after restart");
            }
        }
        assert!(
            missing.is_empty(),
            "iteration {iteration}: {} answered transfers lost by kill -9:\n{}",
            missing.len(),
            missing.join("\n")
        );

        // Retrying answered requests (single or batch items, sent alone)
        // gets the original answer.
        for (request, body) in committed.iter().step_by((committed.len() / 50).max(1)) {
            let (status, again) = server.transfer(request);
            assert_eq!((status, &again), (201, body), "iteration {iteration}: retry of {request} after kill -9");
        }

        // Requests whose answer was lost: there or not, never half.
        let unknown = load.unknown.lock().unwrap().clone();
        let mut found = 0;
        for (request, _) in &unknown {
            let id = request["id"].as_str().unwrap();
            let (status, got) = server.get(&format!("/v1/transfers/{id}"), PLATFORM);
            match status {
                200 => {
                    assert_matches_request(request, &got);
                    // A retry now gets the committed answer, not a new one.
                    let (status, retry) = server.transfer(request);
                    assert_eq!(status, 201, "retry of {request}: {retry}");
                    assert_eq!(retry["lsn"], got["lsn"], "retry of a committed {id} made a new movement");
                    model.apply(&got);
                    acked.insert(id.to_string(), got);
                    found += 1;
                }
                404 => assert_error(status, &got, 404, "TRANSFER_NOT_FOUND", "lost request"),
                _ => panic!("GET /v1/transfers/{id} after restart: {status} {got}"),
            }
        }
        eprintln!(
            "iteration {iteration}: {} answered, {} in flight at the kill ({found} of them committed)",
            committed.len(),
            unknown.len()
        );
        assert_model(&server, &model);
    }
    // Still writable after all that.
    let after = server.transfer_ok(
        &json!({"id": uid("after"), "type": "transfer", "payer": accounts[0], "payee": accounts[1], "amount": "0.01"}),
    );
    let max_lsn = acked.values().filter_map(|b| b["lsn"].as_u64()).max().unwrap();
    assert!(after["lsn"].as_u64().unwrap() > max_lsn, "lsns go on increasing after restarts: {after}");
}

#[test]
fn restart_preserves_accounts_exactly() {
    let mut server = Server::start();
    let (a, a_sub) = server.open_account("甲公司");
    let (b, b_sub) = server.open_account("乙公司");
    let failed = server.open_sign_failed_account("丙公司");
    server.deposit(&a_sub, "甲公司", "1234.56");
    server.deposit(&b_sub, "乙公司", "0.01");
    let (status, pending) = server.apply("丁公司", &credential_no());
    assert_eq!(status, 201, "{pending}");
    let pending_id = pending["application_id"].as_str().unwrap().to_string();
    let hold = uid("h");
    let mut transfers = vec![
        server.transfer_ok(&json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": b, "amount": "34.56", "order_id": "O-9", "memo": "备注"})),
        server.transfer_ok(&json!({"id": hold, "type": "pay_freeze", "payer": a, "payee": b, "amount": "200"})),
        server.transfer_ok(&json!({"id": uid("t"), "type": "unfreeze", "hold_id": hold, "amount": "50"})),
        server.transfer_ok(&json!({"id": uid("f"), "type": "freeze", "payer": a, "amount": "100"})),
    ];
    let (status, batch) = server.batch(&[
        json!({"id": uid("bt"), "type": "transfer", "payer": b, "payee": a, "amount": "1"}),
        json!({"id": uid("bt"), "type": "unfreeze_pay", "hold_id": hold, "payee": a, "amount": "25"}),
    ]);
    assert_eq!(status, 200, "{batch}");
    for r in batch["results"].as_array().unwrap() {
        assert_eq!(r["status"], 201, "{r}");
        transfers.push(r["body"].clone());
    }

    let snapshot = |server: &Server| -> Value {
        let accounts: Vec<Value> = [&a, &b, &failed].iter().map(|x| server.account(x)).collect();
        let journals: Vec<Value> = [&a, &b, &failed].iter().map(|x| Value::from(server.journal(x))).collect();
        let records: Vec<Value> = transfers
            .iter()
            .map(|t| {
                let mut got = server.get_ok(&format!("/v1/transfers/{}", t["id"].as_str().unwrap()), PLATFORM);
                // the bank side may confirm in the meantime
                got.as_object_mut().unwrap().remove("bank_sync");
                got
            })
            .collect();
        json!({
            "accounts": accounts,
            "journals": journals,
            "list": server.list_all("/v1/accounts", FINANCE),
            "records": records,
            "hold": server.get_ok(&format!("/v1/holds/{hold}"), PLATFORM),
            "pending": server.get_ok(&format!("/v1/applications/{pending_id}"), RISK),
            "order": server.list_all("/v1/orders/O-9/transfers", PLATFORM),
        })
    };
    let before = snapshot(&server);
    assert_eq!(
        before["accounts"][0]["balance"],
        json!({"total": "1026.00", "available": "926.00", "frozen": "100.00"})
    );
    assert_eq!(before["accounts"][1]["balance"], json!({"total": "208.57", "available": "83.57", "frozen": "125.00"}));

    // Both restarts are checked before failing, so one difference does
    // not hide another.
    let mut problems = Vec::new();
    server.kill9();
    server.restart();
    let after_kill = snapshot(&server);
    problems.extend(json_diff(&before, &after_kill).into_iter().map(|d| format!("after kill -9: {d}")));
    server.stop();
    server.restart();
    problems.extend(json_diff(&after_kill, &snapshot(&server)).into_iter().map(|d| format!("after SIGTERM: {d}")));
    for x in [&a, &b, &failed] {
        server.assert_consistent(x);
    }

    // Ids and lsns go on from where they were.
    let last_lsn = transfers.iter().filter_map(|t| t["lsn"].as_u64()).max().unwrap();
    let (status, ready) = server.get("/readyz", NO_TOKEN);
    assert_eq!(status, 200, "{ready}");
    assert!(ready["lsn"].as_u64().is_some_and(|l| l >= last_lsn), "readyz lsn {ready} below {last_lsn}");
    let (c, _) = server.open_account("戊公司");
    let n = |id: &str| id[1..].parse::<u64>().unwrap();
    assert_eq!(n(&c), n(&failed) + 1, "account ids are sequential across restarts: {c} after {failed}");
    let t = server.transfer_ok(&json!({"id": uid("t"), "type": "transfer", "payer": a, "payee": c, "amount": "1"}));
    assert!(t["lsn"].as_u64().unwrap() > last_lsn);
    let (status, app) = server.apply("己公司", &credential_no());
    assert_eq!(status, 201, "{app}");
    assert!(
        n(app["application_id"].as_str().unwrap()) > n(&pending_id),
        "application ids go on: {app} after {pending_id}"
    );
    assert!(problems.is_empty(), "a restart changed what the ledger shows:\n  {}", problems.join("\n  "));
}
