//! Checkpoints and bounded recovery (issue #7): with
//! `wal.checkpoint_every_records = 1000`, thousands of transfers, kill -9,
//! restart from the newest checkpoint plus the log after it; a corrupt
//! newest checkpoint falls back to the previous one; no valid checkpoint
//! means a full replay; start-up never reads segments below the checkpoint
//! (damage there is reported by `wal verify`, and by a 503 naming the file
//! when a history read needs a record in it); a leftover `.tmp` is
//! removed; retention deletes only covered, old segments; a checkpoint the
//! history archive does not reach (the archive moved away) is not used, and
//! the whole log rebuilds the state and the archive.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const ACCOUNTS: usize = 4;
const BATCH: usize = 500;

fn open_funded_accounts(server: &Server) -> Vec<String> {
    (0..ACCOUNTS)
        .map(|i| {
            let name = format!("检查点测试公司{i}{}", uid("n"));
            let (account, sub) = server.open_account(&name);
            server.deposit(&sub, &name, "100000.00");
            account
        })
        .collect()
}

/// Commits `count` transfers (plus some freezes, so holds are in the
/// state); returns each request with its answer.
fn transfers(server: &Server, accounts: &[String], count: usize) -> Vec<(Value, Value)> {
    let mut done = Vec::new();
    while done.len() < count {
        let items: Vec<Value> = (0..BATCH.min(count - done.len()))
            .map(|i| {
                let payer = &accounts[i % accounts.len()];
                let payee = &accounts[(i + 1) % accounts.len()];
                if i % 50 == 0 {
                    json!({"id": uid("fz"), "type": "freeze", "payer": payer, "amount": "0.02", "order_id": uid("O")})
                } else {
                    json!({"id": uid("ck"), "type": "transfer", "payer": payer, "payee": payee, "amount": "0.01",
                           "order_id": uid("O"), "memo": "检查点"})
                }
            })
            .collect();
        let (status, answer) = server.batch(&items);
        assert_eq!(status, 200, "{answer}");
        for (item, result) in items.into_iter().zip(answer["results"].as_array().expect("results")) {
            assert_eq!(result["status"], 201, "{item} -> {result}");
            done.push((item, result["body"].clone()));
        }
    }
    done
}

/// Waits until no checkpoint is being written (the set stays the same for
/// a second), then returns the kept checkpoints' lsns, oldest first.
fn settled_checkpoints(server: &Server) -> Vec<u64> {
    let mut seen = server.checkpoints();
    loop {
        std::thread::sleep(Duration::from_millis(1000));
        let now = server.checkpoints();
        if now == seen {
            return now.into_iter().map(|(lsn, _)| lsn).collect();
        }
        seen = now;
    }
}

/// Everything a client can see that must survive a restart unchanged:
/// accounts, whole journals, and sampled transfers (bank_sync aside, which
/// moves on its own).
fn snapshot(server: &Server, accounts: &[String], done: &[(Value, Value)]) -> Value {
    let mut seen = serde_json::Map::new();
    for account in accounts {
        seen.insert(account.clone(), json!({"account": server.account(account), "journal": server.journal(account)}));
    }
    for (_, answer) in done.iter().step_by(97).chain(done.last()) {
        let id = answer["id"].as_str().expect("id");
        let mut transfer = server.get_ok(&format!("/v1/transfers/{id}"), PLATFORM);
        transfer.as_object_mut().expect("object").remove("bank_sync");
        seen.insert(format!("transfer {id}"), transfer);
    }
    Value::Object(seen)
}

/// What a client sees after retention removed old segments: accounts and
/// journals (entries of removed records left out), and each sampled
/// transfer's answer or its 404 (its history is gone).
fn snapshot_after_retention(server: &Server, accounts: &[String], done: &[(Value, Value)]) -> Value {
    let mut seen = serde_json::Map::new();
    for account in accounts {
        seen.insert(account.clone(), json!({"account": server.account(account), "journal": server.journal(account)}));
    }
    for (_, answer) in done.iter().step_by(97).chain(done.last()) {
        let id = answer["id"].as_str().expect("id");
        let (status, mut transfer) = server.get(&format!("/v1/transfers/{id}"), PLATFORM);
        match status {
            200 => {
                transfer.as_object_mut().expect("object").remove("bank_sync");
            }
            404 => assert_eq!(transfer["error"]["code"], "TRANSFER_NOT_FOUND", "{id}: {transfer}"),
            _ => panic!("GET /v1/transfers/{id} after retention: {status} {transfer}"),
        }
        seen.insert(format!("transfer {id}"), json!([status, transfer]));
    }
    Value::Object(seen)
}

/// Old ids retried with the same fields get their original answers.
fn assert_retries_answer_as_before(server: &Server, done: &[(Value, Value)]) {
    for (request, answer) in [&done[0], &done[done.len() / 2], &done[done.len() - 1]] {
        let (status, again) = server.transfer(request);
        assert_eq!(status, 201, "retry of {request}: {again}");
        assert_eq!(&again, answer, "a retry after restart answers as the first time");
    }
}

fn flip_byte_in_middle(path: &Path) {
    let mut bytes = std::fs::read(path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] = bytes[middle].wrapping_add(1);
    std::fs::write(path, bytes).expect("write");
}

fn with_checkpoints(segment_bytes: u64, retention_days: u64) -> Options {
    Options { checkpoint_every_records: 1000, segment_bytes, retention_days, ..Options::default() }
}

#[test]
fn kill_9_restarts_from_the_newest_checkpoint_and_falls_back_when_it_is_corrupt() {
    let mut server = Server::start_with(with_checkpoints(1_048_576, 0));
    let accounts = open_funded_accounts(&server);
    let mut done = transfers(&server, &accounts, 1500);
    let first = server.wait_for_checkpoint(1);
    done.extend(transfers(&server, &accounts, 1500));
    let second = server.wait_for_checkpoint(first + 1);
    done.extend(transfers(&server, &accounts, 400));
    let kept = settled_checkpoints(&server);
    let before = snapshot(&server, &accounts, &done);
    server.kill9();
    assert_eq!(kept.len(), 2, "the newest and the one it was built from are kept: {kept:?}");
    assert!(kept[1] >= second, "{kept:?}");
    let (first, second) = (kept[0], kept[1]);

    // A crash in mid-checkpoint leaves a temporary file: ignored, removed.
    let leftover = server.data_dir.join("wal").join(format!("checkpoint-{:020}.ckpt.tmp", second + 7));
    std::fs::write(&leftover, b"half a checkpoint").expect("leftover");
    server.restart();
    assert_eq!(server.loaded_checkpoint(), second, "{}", server.stdout());
    assert!(!leftover.exists(), "start-up removes a leftover temporary file");
    assert_unchanged(&before, &snapshot(&server, &accounts, &done), "restart from the newest checkpoint");
    assert_retries_answer_as_before(&server, &done);

    // The newest checkpoint corrupt: the previous one and a longer replay.
    server.kill9();
    let (ok, report) = server.wal_verify();
    assert!(ok, "intact log and checkpoints verify: {report}");
    assert_eq!(report.matches("loads cleanly").count(), 2, "wal verify decodes both checkpoints: {report}");
    assert_eq!(
        report.matches("equals the log folded to it").count(),
        2,
        "each state checkpoint equals the log folded to its lsn: {report}"
    );
    flip_byte_in_middle(&server.checkpoints()[1].1);
    let (ok, report) = server.wal_verify();
    assert!(!ok, "wal verify reports a corrupt checkpoint: {report}");
    assert!(report.contains(&format!("checkpoint-{second:020}.ckpt")), "{report}");
    server.restart();
    assert_eq!(server.loaded_checkpoint(), first, "{}", server.stdout());
    assert_unchanged(&before, &snapshot(&server, &accounts, &done), "restart from the previous checkpoint");
    assert_retries_answer_as_before(&server, &done);

    // Every checkpoint corrupt, every segment there: a full replay.
    server.kill9();
    for (_, path) in server.checkpoints() {
        flip_byte_in_middle(&path);
    }
    server.restart();
    assert_eq!(server.loaded_checkpoint(), 0, "{}", server.stdout());
    assert_unchanged(&before, &snapshot(&server, &accounts, &done), "full replay");
    assert_retries_answer_as_before(&server, &done);
}

#[test]
fn start_up_does_not_read_segments_below_the_checkpoint_and_history_reads_name_their_damage() {
    let mut server = Server::start_with(with_checkpoints(131_072, 0));
    let accounts = open_funded_accounts(&server);
    let mut done = transfers(&server, &accounts, 4000);
    server.wait_for_checkpoint(3001);
    done.extend(transfers(&server, &accounts, 300));
    let first = *settled_checkpoints(&server).last().expect("a checkpoint");
    let before = snapshot(&server, &accounts, &done);
    server.kill9();
    let segments = server.wal_segments();
    assert!(segments.len() >= 2, "small segments: {segments:?}");
    let second_first_lsn: u64 = segments[1][..20].parse().expect("segment name");
    assert!(second_first_lsn <= first, "the first segment lies wholly below checkpoint {first}");

    let damaged = server.data_dir.join("wal").join(&segments[0]);
    flip_byte_in_middle(&damaged);
    server.restart();
    assert_eq!(server.loaded_checkpoint(), first);
    // State and the ids in memory need no archived segment...
    for account in &accounts {
        assert_eq!(server.account(account), before[account.as_str()]["account"], "{account} after the restart");
    }
    assert_retries_answer_as_before(&server, &done);
    // ...but the segments are the history: a read that needs a record in
    // the damaged one is a clear 503 naming it, never a wrong answer.
    let mut paths: Vec<String> =
        accounts.iter().map(|account| format!("/v1/accounts/{account}/journal?limit=1000")).collect();
    paths.extend(done.iter().map(|(_, answer)| format!("/v1/transfers/{}", answer["id"].as_str().expect("id"))));
    let mut damaged_reads = 0;
    for path in &paths {
        let (status, body) = server.get(path, PLATFORM);
        if status != 200 {
            assert_error(status, &body, 503, "LOG_UNAVAILABLE", &format!("GET {path} meeting the damage"));
            assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains(&segments[0])), "{body}");
            damaged_reads += 1;
        }
    }
    assert!(damaged_reads > 0, "no read met the damaged record (journals and every transfer's bank answer)");
    server.kill9();
    let (ok, report) = server.wal_verify();
    assert!(!ok, "wal verify checks archived segments too: {report}");
    assert!(report.contains(&segments[0]), "{report}");
}

#[test]
fn retention_removes_only_old_segments_that_every_kept_checkpoint_covers() {
    let mut server = Server::start_with(with_checkpoints(131_072, 1));
    let accounts = open_funded_accounts(&server);
    let mut done = transfers(&server, &accounts, 1500);
    server.wait_for_checkpoint(1);
    let first = *settled_checkpoints(&server).last().expect("a checkpoint");
    server.kill9();
    let segments_before = server.wal_segments();
    // Age every segment written so far past the one-day retention.
    for name in &segments_before {
        let path = server.data_dir.join("wal").join(name);
        let status = Command::new("touch").args(["-d", "3 days ago"]).arg(&path).status().expect("touch");
        assert!(status.success());
    }
    server.restart();
    assert_eq!(server.loaded_checkpoint(), first);
    done.extend(transfers(&server, &accounts, 1500));
    server.wait_for_checkpoint(first + 1);
    let kept = settled_checkpoints(&server);
    assert_eq!(kept.len(), 2, "{kept:?}");
    // Bank confirmations are records too, so more than one checkpoint may
    // have been written since the restart: retention follows the older kept.
    let (covered, second) = (kept[0], kept[1]);
    let before = snapshot_after_retention(&server, &accounts, &done);
    server.kill9();
    let segments_after = server.wal_segments();
    let removed: Vec<_> = segments_before.iter().filter(|name| !segments_after.contains(name)).collect();
    assert!(!removed.is_empty(), "old covered segments are removed: {segments_before:?} -> {segments_after:?}");
    // What is left starts at or below the older kept checkpoint's next lsn.
    let oldest_kept: u64 = segments_after[0][..20].parse().expect("segment name");
    assert!(oldest_kept <= covered + 1, "segment {oldest_kept} kept for the fallback checkpoint {covered}");
    for name in &removed {
        let next = segments_before.iter().find(|other| other > name).expect("a later segment");
        let last_lsn = next[..20].parse::<u64>().expect("name") - 1;
        assert!(last_lsn <= covered, "segment {name} (up to lsn {last_lsn}) was not covered by checkpoint {covered}");
    }
    let (ok, report) = server.wal_verify();
    assert!(ok, "a log cut by retention verifies: {report}");

    server.restart();
    assert_eq!(server.loaded_checkpoint(), second);
    assert_unchanged(&before, &snapshot_after_retention(&server, &accounts, &done), "restart after retention");
    // A retry is answered as the first time while its record is kept; once
    // retention removed it, the id can only be refused, never applied again.
    let oldest_kept: u64 = server.wal_segments()[0][..20].parse().expect("segment name");
    for (request, answer) in [&done[0], &done[done.len() / 2], &done[done.len() - 1]] {
        let (status, again) = server.transfer(request);
        if answer["lsn"].as_u64().expect("lsn") >= oldest_kept {
            assert_eq!((status, &again), (201, answer), "retry of {request} after retention");
        } else {
            assert_error(status, &again, 409, "ID_REUSED", "a retry of an id whose record retention removed");
        }
    }
}

#[test]
fn a_checkpoint_past_the_history_archive_is_not_used_and_the_log_rebuilds_both() {
    let mut server = Server::start_with(with_checkpoints(1_048_576, 0));
    let accounts = open_funded_accounts(&server);
    let done = transfers(&server, &accounts, 1500);
    server.wait_for_checkpoint(1);
    settled_checkpoints(&server);
    let before = snapshot(&server, &accounts, &done);
    server.kill9();
    // The archive lost (an operator moved it away): a state checkpoint holds
    // no ids or journals, so it cannot be used without the archive...
    let history = server.data_dir.join("history");
    assert!(history.is_dir(), "the history archive lives in DATA_DIR/history");
    std::fs::rename(&history, server.dir().join("history.moved")).expect("move the archive away");
    server.restart();
    assert_eq!(server.loaded_checkpoint(), 0, "{}", server.stdout());
    let stderr = server.stderr_tail();
    assert!(stderr.contains("short of the checkpoint's lsn"), "the log says why the checkpoint was not used: {stderr}");
    // ...so the whole log is replayed and the archive indexed again: every
    // answer as before, ids and journals included.
    assert_unchanged(&before, &snapshot(&server, &accounts, &done), "full replay without the archive");
    assert_retries_answer_as_before(&server, &done);
}

/// A checkpoint of schema 3 (what builds before 2026-12-07, later, wrote:
/// the registry's records among the other entities, no banks' places)
/// still starts the server; the checkpointer builds the next one on it in
/// schema 4, and the one after that on the schema-4 one, keeping its
/// registry records as they were read, with an account opened in between;
/// each equals the log folded to it, and a restart from the last shows
/// the same ledger.
#[test]
fn a_server_starts_from_a_schema_3_checkpoint_and_builds_the_next_ones_on_it() {
    use fundledger::codec::checkpoint::{decode_state, encode_state_3, schema, STATE_SCHEMA};

    let mut server = Server::start_with(with_checkpoints(1_048_576, 0));
    let mut accounts = open_funded_accounts(&server);
    let mut done = transfers(&server, &accounts, 1500);
    server.wait_for_checkpoint(1);
    settled_checkpoints(&server);
    server.stop();
    let wal_dir = server.data_dir.join("wal");
    let newest = |dir: &Path| fundledger_wal::load_latest_checkpoint(dir, 1 << 30).expect("read").expect("one");
    let (old_lsn, payload) = newest(&wal_dir);
    let image = decode_state(&payload).expect("a state checkpoint");
    fundledger_wal::write_checkpoint(&wal_dir, old_lsn, &encode_state_3(&image).expect("schema 3")).expect("write");

    server.restart();
    assert_eq!(server.loaded_checkpoint(), old_lsn, "the schema-3 checkpoint was used: {}", server.stdout());
    done.extend(transfers(&server, &accounts, 1500));
    let next = server.wait_for_checkpoint(old_lsn + 1);
    // Registry records after a schema-4 base, appended to what it kept.
    let name = format!("检查点新客户{}", uid("n"));
    let (opened, sub) = server.open_account(&name);
    server.deposit(&sub, &name, "100000.00");
    accounts.push(opened);
    done.extend(transfers(&server, &accounts, 1500));
    let last = server.wait_for_checkpoint(next + 1);
    let kept = settled_checkpoints(&server);
    let before = snapshot(&server, &accounts, &done);
    server.kill9();

    let (newest_lsn, payload) = newest(&wal_dir);
    assert_eq!(schema(&payload), Some(STATE_SCHEMA), "written in schema 4");
    assert!(newest_lsn >= last && kept.len() == 2, "{kept:?}");
    let (ok, report) = server.wal_verify();
    assert!(ok, "{report}");
    assert_eq!(report.matches("loads cleanly").count(), 2, "{report}");
    assert_eq!(report.matches("equals the log folded to it").count(), 2, "{report}");
    server.restart();
    assert_eq!(server.loaded_checkpoint(), newest_lsn, "{}", server.stdout());
    assert_unchanged(&before, &snapshot(&server, &accounts, &done), "restart from a checkpoint built on schema 4");
    assert_retries_answer_as_before(&server, &done);

    // Banks' places that are not what its registry folds to (with a valid
    // frame): start-up refuses the checkpoint and uses the one before.
    server.kill9();
    let mut image = decode_state(&payload).expect("a state checkpoint");
    let places = image.places.as_mut().expect("schema 4 has places");
    assert_eq!(places.accounts.len(), accounts.len(), "one bank per account");
    places.accounts[0] = u32::MAX;
    let lying = fundledger::codec::checkpoint::encode_state(&image).expect("encode");
    fundledger_wal::write_checkpoint(&wal_dir, newest_lsn, &lying).expect("write");
    server.restart();
    assert_eq!(server.loaded_checkpoint(), kept[0], "{}", server.stdout());
    assert!(server.stderr_tail().contains("differ from what its registry folds to"), "{}", server.stderr_tail());
    assert_unchanged(&before, &snapshot(&server, &accounts, &done), "restart from the checkpoint before");
}
