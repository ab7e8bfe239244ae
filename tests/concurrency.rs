//! Many clients at once: 16 threads sending random transfers of all five
//! types (and batches) among 6 accounts, while deposits arrive. Afterwards
//! every balance is exactly what the committed movements say, money is
//! conserved, every journal sums to its balance, every hold's remaining
//! is what its movements left, and frozen = the open holds' remaining.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::*;
use serde_json::Value;

const THREADS: u64 = 16;
const OPS_PER_THREAD: usize = 100;
const ACCOUNTS: usize = 6;

#[test]
fn random_transfers_keep_the_books_exact() {
    let server = Server::start();
    let mut model = Model::default();
    let mut accounts = Vec::new();
    let mut subs = Vec::new();
    for i in 0..ACCOUNTS {
        let name = format!("客户{i}有限公司");
        let (id, sub) = server.open_account(&name);
        server.deposit(&sub, &name, "300");
        model.deposit(&id, 30_000);
        accounts.push(id);
        subs.push((sub, name));
    }
    let load = Load::new(server.client.clone(), accounts.clone());

    // Deposits arrive while the transfers run.
    let deposits: Vec<(String, i64, u64)> = std::thread::scope(|scope| {
        for seed in 0..THREADS {
            let load = load.clone();
            scope.spawn(move || load.run(1000 + seed, OPS_PER_THREAD, 6, 12));
        }
        let depositor = scope.spawn(|| {
            let mut rng = Rng::new(7);
            let mut done = Vec::new();
            for _ in 0..20 {
                let (sub, name) = rng.pick(&subs).clone();
                let c = 1 + rng.below(20_000) as i64;
                let (status, body) = server
                    .client
                    .try_notify(&notification(&sub, &name, &amount(c)))
                    .expect("notification: no HTTP answer");
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["result"], "credited", "{body}");
                done.push((body["account_id"].as_str().unwrap().to_string(), c, body["lsn"].as_u64().unwrap()));
            }
            done
        });
        depositor.join().unwrap()
    });

    let unexpected = load.unexpected.lock().unwrap().clone();
    assert!(unexpected.is_empty(), "answers no well-formed transfer should get:\n{}", unexpected.join("\n"));
    let unknown = load.unknown.lock().unwrap().clone();
    let transport: Vec<&(Value, String)> = unknown.iter().filter(|(_, why)| why.contains("transport")).collect();
    assert!(transport.is_empty(), "connections dropped under load: {transport:#?}");

    let mut committed: Vec<Value> = load.committed.lock().unwrap().iter().map(|(_, b)| b.clone()).collect();
    // Shed requests (503/429), if any, are resolved by reading them back.
    for (request, _) in &unknown {
        let id = request["id"].as_str().unwrap();
        let (status, body) = server.get(&format!("/v1/transfers/{id}"), PLATFORM);
        match status {
            200 => committed.push(body),
            404 => {}
            _ => panic!("GET /v1/transfers/{id}: {status} {body}"),
        }
    }
    assert!(committed.len() > 200, "too few transfers committed to mean anything: {}", committed.len());
    let refused = load.refused.load(std::sync::atomic::Ordering::Relaxed);
    assert!(refused > 0, "the load is meant to hit business refusals too");

    for (account, c, _) in &deposits {
        model.deposit(account, *c);
    }
    for record in &committed {
        model.apply(record);
    }
    assert_model(&server, &model);

    // lsns: one per movement, unique ledger-wide.
    let mut lsns = HashSet::new();
    for record in &committed {
        assert!(lsns.insert(record["lsn"].as_u64().unwrap()), "lsn used twice: {record}");
    }
    for (_, _, lsn) in &deposits {
        assert!(lsns.insert(*lsn), "deposit lsn {lsn} used twice");
    }

    // Journals hold exactly the committed movements of each account.
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in &committed {
        let id = record["id"].as_str().unwrap().to_string();
        expected.entry(record["payer"].as_str().unwrap().to_string()).or_default().push(id.clone());
        if let Some(payee) = record["payee"].as_str() {
            expected.entry(payee.to_string()).or_default().push(id);
        }
    }
    for account in &accounts {
        let journal = server.journal(account);
        let mut got: Vec<String> = journal
            .iter()
            .filter(|e| e["kind"] != "deposit")
            .map(|e| e["transfer_id"].as_str().unwrap_or("?").to_string())
            .collect();
        let mut want = expected.remove(account).unwrap_or_default();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{account}: journal transfer ids differ from the committed movements");
        let deposit_entries = journal.iter().filter(|e| e["kind"] == "deposit").count();
        let want_deposits = 1 + deposits.iter().filter(|(a, _, _)| a == account).count();
        assert_eq!(deposit_entries, want_deposits, "{account}: deposit entries");
    }

    // Holds: remaining = amount - what unfreezes took; frozen = open remaining.
    let mut remaining: BTreeMap<String, (String, i64)> = BTreeMap::new();
    let mut movements: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut ordered = committed.clone();
    ordered.sort_by_key(|r| r["lsn"].as_u64());
    for record in &ordered {
        match record["type"].as_str().unwrap() {
            "freeze" | "pay_freeze" => {
                let hold = &record["hold"];
                movements.insert(
                    hold["hold_id"].as_str().unwrap().to_string(),
                    vec![record["id"].as_str().unwrap().to_string()],
                );
                remaining.insert(
                    hold["hold_id"].as_str().unwrap().to_string(),
                    (hold["account_id"].as_str().unwrap().to_string(), cents(&hold["amount"])),
                );
            }
            "unfreeze" | "unfreeze_pay" => {
                let hold = &record["hold"];
                movements
                    .get_mut(hold["hold_id"].as_str().unwrap())
                    .expect("hold opened before use")
                    .push(record["id"].as_str().unwrap().to_string());
                let entry = remaining.get_mut(hold["hold_id"].as_str().unwrap()).expect("hold opened before use");
                entry.1 -= cents(&record["amount"]);
                assert_eq!(entry.1, cents(&hold["remaining"]), "hold remaining after {record}");
                assert!(entry.1 >= 0, "hold overdrawn: {record}");
            }
            _ => {}
        }
    }
    let mut frozen_by_account: BTreeMap<String, i64> = BTreeMap::new();
    for (hold_id, (account, left)) in &remaining {
        let hold = server.get_ok(&format!("/v1/holds/{hold_id}"), FINANCE);
        assert_eq!(cents(&hold["remaining"]), *left, "{hold}");
        assert_eq!(hold["account_id"], account.as_str(), "{hold}");
        let want_status = if *left > 0 { "open" } else { "closed" };
        assert_eq!(hold["status"], want_status, "{hold}");
        assert_eq!(hold_movement_ids(&hold), movements[hold_id], "movements of {hold_id}, oldest first");
        *frozen_by_account.entry(account.clone()).or_default() += left;
    }
    for account in &accounts {
        let balance = server.balance(account);
        assert_eq!(
            balance.frozen,
            frozen_by_account.get(account).copied().unwrap_or(0),
            "{account}: frozen differs from its open holds' remaining"
        );
    }
    let (status, health) = server.get("/healthz", NO_TOKEN);
    assert_eq!(status, 200, "{health}");
}
