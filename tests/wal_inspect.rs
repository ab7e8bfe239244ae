//! `fundledger wal inspect` on a real server's log: after kill -9, over
//! several segments, `--from-lsn N` prints exactly the records from N on
//! (the same lines as a full listing from there), `--lsn N` exactly one,
//! and neither changes when every offset sidecar is garbage, truncated or
//! gone (they are hints the reader checks and rebuilds).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::json;

const ACCOUNTS: usize = 3;
/// Small segments, so a few hundred transfers span several.
const SEGMENT_BYTES: u64 = 131_072;

/// Runs `fundledger wal inspect` with `args`: exit success, stdout, stderr.
fn inspect(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let binary = std::env::var("FUNDLEDGER_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_fundledger").to_string());
    let output = Command::new(binary)
        .args(["wal", "inspect", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .output()
        .expect("run wal inspect");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.success(), stdout, String::from_utf8_lossy(&output.stderr).into_owned())
}

fn lsn_of(line: &str) -> u64 {
    line.split('\t').next().and_then(|lsn| lsn.parse().ok()).unwrap_or_else(|| panic!("no lsn in {line:?}"))
}

/// Commits batches of transfers until the log has at least three segments.
fn fill_three_segments(server: &Server) {
    let accounts: Vec<String> = (0..ACCOUNTS)
        .map(|i| {
            let name = format!("日志检查公司{i}{}", uid("n"));
            let (account, sub) = server.open_account(&name);
            server.deposit(&sub, &name, "100000.00");
            account
        })
        .collect();
    let memo = "查看".repeat(40);
    for _ in 0..20 {
        if server.wal_segments().len() >= 3 {
            return;
        }
        let items: Vec<_> = (0..300)
            .map(|i| {
                json!({"id": uid("wi"), "type": "transfer", "payer": accounts[i % ACCOUNTS],
                       "payee": accounts[(i + 1) % ACCOUNTS], "amount": "0.01", "order_id": uid("O"), "memo": memo})
            })
            .collect();
        let (status, answer) = server.batch(&items);
        assert_eq!(status, 200, "{answer}");
    }
    panic!("6000 transfers did not fill three {SEGMENT_BYTES}-byte segments: {:?}", server.wal_segments());
}

#[test]
fn inspect_from_lsn_starts_at_that_lsn_whatever_the_sidecars_hold() {
    let mut server = Server::start_with(Options { segment_bytes: SEGMENT_BYTES, ..Options::default() });
    fill_three_segments(&server);
    server.kill9();
    let wal_dir = server.data_dir.join("wal");
    let segments = server.wal_segments();
    for segment in &segments {
        let sidecar = wal_dir.join(segment.replace(".wal", ".idx"));
        assert!(sidecar.exists(), "{segment} has its offset sidecar");
    }

    let (ok, full, stderr) = inspect(&server.data_dir, &[]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = full.lines().collect();
    let lsns: Vec<u64> = lines.iter().map(|line| lsn_of(line)).collect();
    assert_eq!(lsns, (1..=lines.len() as u64).collect::<Vec<_>>(), "a full listing is every lsn in order");
    let last = lines.len() as u64;
    let second_first: u64 = segments[1][..20].parse().expect("segment name");
    let third_first: u64 = segments[2][..20].parse().expect("segment name");
    let starts = [2, second_first - 1, second_first, second_first + 7, third_first, last];

    let data_dir = server.data_dir.clone();
    let check = |what: &str| {
        let (ok, full_now, stderr) = inspect(&data_dir, &[]);
        assert!(ok, "{what}: {stderr}");
        let lines_now: Vec<&str> = full_now.lines().collect();
        assert!(lines_now.starts_with(&lines), "{what}: the records are unchanged");
        let (lines, last) = (&lines_now, lines_now.len() as u64);
        for from in starts {
            let (ok, out, stderr) = inspect(&data_dir, &["--from-lsn", &from.to_string()]);
            assert!(ok, "{what}: --from-lsn {from}: {stderr}");
            assert!(out.starts_with(&format!("{from}\t")), "{what}: --from-lsn {from} starts at {from}");
            assert_eq!(out.lines().collect::<Vec<_>>(), lines[from as usize - 1..], "{what}: --from-lsn {from}");
            let (ok, one, stderr) = inspect(&data_dir, &["--lsn", &from.to_string()]);
            assert!(ok, "{what}: --lsn {from}: {stderr}");
            assert_eq!(one, format!("{}\n", lines[from as usize - 1]), "{what}: --lsn {from}");
        }
        let (ok, out, _) = inspect(&data_dir, &["--from-lsn", &(last + 1).to_string()]);
        assert!(ok && out.is_empty(), "{what}: past the end prints nothing: {out}");
        let (ok, _, stderr) = inspect(&data_dir, &["--lsn", &(last + 1).to_string()]);
        assert!(!ok && stderr.contains(&format!("no record with lsn {}", last + 1)), "{what}: {stderr}");
    };
    check("intact sidecars");

    for (round, segment) in segments.iter().enumerate() {
        let sidecar = wal_dir.join(segment.replace(".wal", ".idx"));
        let bytes = std::fs::read(&sidecar).expect("sidecar");
        match round % 3 {
            0 => std::fs::write(&sidecar, bytes.iter().map(|b| b.wrapping_mul(31).wrapping_add(7)).collect::<Vec<_>>()),
            1 => std::fs::write(&sidecar, &bytes[..bytes.len() / 2]),
            _ => std::fs::remove_file(&sidecar),
        }
        .expect("damage the sidecar");
    }
    check("damaged sidecars");

    server.restart();
    server.kill9();
    check("after a restart");
}
