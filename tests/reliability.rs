//! The server on its worst days, from outside: slow and hostile clients,
//! floods past capacity, per-token rate limits, a log that cannot be
//! written, a disk below its floor, SIGTERM under load.
//!
//! docs/RELIABILITY.md lists each fault with the test here that shows it.
//! The log faults use the debug build's test hook (`FUNDLEDGER_FAULT_*`,
//! see src/app.rs); a release binary ignores it, so run this suite against
//! a debug build (plain `cargo test`).

mod harness;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::*;
use serde_json::{json, Value};

/// `limits::HEADER_READ_TIMEOUT_S`.
const HEADER_READ_TIMEOUT_S: u64 = 10;
/// `limits::IN_FLIGHT_REQUESTS_MAX`.
const IN_FLIGHT_REQUESTS_MAX: usize = 4096;

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(3 * HEADER_READ_TIMEOUT_S))).unwrap();
    stream
}

/// Reads until the server closes the connection; returns what came and how
/// long it took.
fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buffer[..n]),
            Err(error)
                if error.kind() == std::io::ErrorKind::WouldBlock || error.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("the server kept the connection open for {:?}", started.elapsed())
            }
            Err(_) => break, // reset: closed too
        }
    }
    (out, started.elapsed())
}

fn healthz_ok(server: &Server) {
    let answer = server.get("/healthz", "");
    assert_eq!(answer.status, 200, "{answer:?}");
}

// ---------------------------------------------------------------------------
// slow and hostile clients

/// Slowloris: half a header, then silence. The server cuts the connection
/// after the header read timeout and serves others meanwhile.
#[test]
fn a_client_that_stalls_in_its_headers_is_cut_off() {
    let server = Server::start(Setup::default());
    let mut stream = connect(&server);
    stream.write_all(b"POST /v1/transfers HTTP/1.1\r\nHost: ledger\r\nAuthoriz").unwrap();
    let reader = std::thread::spawn(move || read_until_closed(&mut stream));
    for _ in 0..5 {
        healthz_ok(&server);
        std::thread::sleep(Duration::from_millis(200));
    }
    let (bytes, waited) = reader.join().unwrap();
    assert!(
        waited >= Duration::from_secs(HEADER_READ_TIMEOUT_S - 2)
            && waited <= Duration::from_secs(HEADER_READ_TIMEOUT_S + 5),
        "cut off after {waited:?}"
    );
    let text = String::from_utf8_lossy(&bytes);
    assert!(bytes.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");
    healthz_ok(&server);
}

/// A client that trickles its headers one byte a second is cut off too:
/// the timeout is for the whole header, not between bytes.
#[test]
fn a_client_that_trickles_its_headers_is_cut_off() {
    let server = Server::start(Setup::default());
    let mut stream = connect(&server);
    stream.set_nonblocking(false).unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: ledger\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let mut cut_off = false;
    for byte in request.iter() {
        if stream.write_all(&[*byte]).is_err() {
            cut_off = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        if started.elapsed() > Duration::from_secs(HEADER_READ_TIMEOUT_S + 5) {
            break;
        }
    }
    if !cut_off {
        // Writes may still land in the kernel's buffer after the server
        // closed; the read must see the close, not time out.
        stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buffer = [0u8; 256];
        match stream.read(&mut buffer) {
            Ok(0) => {}
            Ok(n) => {
                let text = String::from_utf8_lossy(&buffer[..n]);
                assert!(text.starts_with("HTTP/1.1 4"), "the trickled request was served: {text}");
            }
            Err(error) => assert!(
                !matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
                "the connection is still open after {:?}",
                started.elapsed()
            ),
        }
    }
    assert!(started.elapsed() <= Duration::from_secs(HEADER_READ_TIMEOUT_S + 6), "{:?}", started.elapsed());
    healthz_ok(&server);
}

/// An idle kept-alive connection is closed after the same timeout.
#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let server = Server::start(Setup::default());
    let mut stream = connect(&server);
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: ledger\r\n\r\n").unwrap();
    let mut first = [0u8; 1024];
    let n = stream.read(&mut first).unwrap();
    assert!(
        String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n])
    );
    let (rest, waited) = read_until_closed(&mut stream);
    assert!(rest.is_empty() || String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 4"));
    assert!(waited <= Duration::from_secs(HEADER_READ_TIMEOUT_S + 5), "idle for {waited:?}");
}

/// Headers past 64 KiB, or more than 100 fields: 431 (or a closed
/// connection), and the server keeps serving others.
#[test]
fn huge_headers_get_431_and_the_server_keeps_serving() {
    let server = Server::start(Setup::default());
    let big = "a".repeat(100 * 1024);
    let many: String = (0..150).map(|i| format!("X-Field-{i}: {i}\r\n")).collect();
    for request in [
        format!("GET /healthz HTTP/1.1\r\nHost: ledger\r\nX-Big: {big}\r\n\r\n"),
        format!("GET /healthz HTTP/1.1\r\nHost: ledger\r\n{many}\r\n"),
        format!("GET /v1/accounts/F000001 HTTP/1.1\r\nHost: ledger\r\nAuthorization: Bearer {big}\r\n\r\n"),
    ] {
        let mut stream = connect(&server);
        // The server may close before reading everything; a failed write is
        // a closed connection, which is allowed.
        let _ = stream.write_all(request.as_bytes());
        let (bytes, _) = read_until_closed(&mut stream);
        let text = String::from_utf8_lossy(&bytes);
        assert!(bytes.is_empty() || text.starts_with("HTTP/1.1 431"), "{}", &text[..text.len().min(300)]);
        healthz_ok(&server);
    }
    // Headers just under the limit are fine.
    let fine = "b".repeat(8 * 1024);
    let mut stream = connect(&server);
    stream
        .write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: ledger\r\nX-Fine: {fine}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let (bytes, _) = read_until_closed(&mut stream);
    assert!(String::from_utf8_lossy(&bytes).starts_with("HTTP/1.1 200"));
}

/// A body that stalls after its headers holds an in-flight permit only
/// until the body read timeout; meanwhile the server answers others.
#[test]
fn a_client_that_stalls_its_body_does_not_block_others() {
    let server = Server::start(Setup::default());
    let mut stream = connect(&server);
    stream
        .write_all(
            format!(
                "POST /v1/transfers HTTP/1.1\r\nHost: ledger\r\nAuthorization: Bearer {PLATFORM}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"id\""
            )
            .as_bytes(),
        )
        .unwrap();
    let answer = server.get("/v1/accounts/F000001", PLATFORM);
    assert_eq!(answer.status, 404, "{answer:?}");
    drop(stream);
}

/// `limits::BODY_READ_TIMEOUT_S`: after it, a stalled body gets 408 and
/// the connection closes (a minute: this is the suite's slowest test).
#[test]
fn a_stalled_body_gets_408_after_the_body_read_timeout() {
    const BODY_READ_TIMEOUT_S: u64 = 60;
    let server = Server::start(Setup::default());
    let mut stream = connect(&server);
    stream.set_read_timeout(Some(Duration::from_secs(BODY_READ_TIMEOUT_S + 20))).unwrap();
    let started = Instant::now();
    stream
        .write_all(
            format!(
                "POST /v1/transfers HTTP/1.1\r\nHost: ledger\r\nAuthorization: Bearer {PLATFORM}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"id\""
            )
            .as_bytes(),
        )
        .unwrap();
    let (bytes, _) = read_until_closed(&mut stream);
    let waited = started.elapsed();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("REQUEST_TIMEOUT"), "{text}");
    assert!(
        waited >= Duration::from_secs(BODY_READ_TIMEOUT_S - 2)
            && waited <= Duration::from_secs(BODY_READ_TIMEOUT_S + 10),
        "answered after {waited:?}"
    );
    healthz_ok(&server);
}

// ---------------------------------------------------------------------------
// load shedding

/// Past the in-flight bound the gateway answers 503 OVERLOADED with
/// Retry-After at once, and serves again once requests finish. The bound
/// is filled deterministically with requests whose bodies never come.
#[test]
fn past_the_in_flight_bound_requests_get_503_overloaded() {
    let server = Server::start(Setup::default());
    let header = format!(
        "POST /v1/transfers HTTP/1.1\r\nHost: ledger\r\nAuthorization: Bearer {PLATFORM}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );
    let mut stalled = Vec::with_capacity(IN_FLIGHT_REQUESTS_MAX + 64);
    for _ in 0..IN_FLIGHT_REQUESTS_MAX + 64 {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        stream.write_all(header.as_bytes()).unwrap();
        stalled.push(stream);
    }
    // Some of the extra 64 stalled requests were refused already; wait
    // until a probe is too (the server may still be reading headers).
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let answer = server.get("/v1/accounts/F000001", PLATFORM);
        if answer.status == 503 {
            break answer;
        }
        assert_eq!(answer.status, 404, "{answer:?}");
        assert!(Instant::now() < deadline, "never refused with {} requests in flight", stalled.len());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(refused.body["error"]["code"], "OVERLOADED", "{refused:?}");
    assert!(refused.retry_after.is_some(), "503 without Retry-After");
    // Probes are outside the bound: an overloaded server is alive and ready.
    healthz_ok(&server);
    assert_eq!(server.get("/readyz", "").status, 200);
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = server.get("/v1/accounts/F000001", PLATFORM);
        if answer.status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "still refused after the stalled clients left: {answer:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Flood: many threads hammer batches for a few seconds. Every request
/// gets an answer or a clean refusal (503/429 with Retry-After; never a
/// dropped connection, never a 500), memory stays bounded, and afterwards
/// every acknowledged transfer is there with its lsn.
#[test]
fn a_flood_of_batches_is_answered_and_nothing_acknowledged_is_lost() {
    const THREADS: usize = 48;
    const ACCOUNTS: usize = 16;
    const BATCH_ITEMS: usize = 100;
    const FLOOD: Duration = Duration::from_secs(4);
    const RSS_KIB_MAX: u64 = 512 * 1024;
    // Every sixth thread uses a rate-limited token, so refusals are part of
    // the flood too.
    let server = Server::start(Setup { limited_rate_per_s: 20, ..Setup::default() });
    let accounts: Vec<String> = (0..ACCOUNTS).map(|_| server.funded_account("1000000.00")).collect();
    let rss_before = server.rss_kib();

    let stop = Arc::new(AtomicBool::new(false));
    let rss_max = Arc::new(AtomicU64::new(rss_before));
    let sampler = {
        let (stop, rss_max, pid) = (Arc::clone(&stop), Arc::clone(&rss_max), server.pid());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(kib) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines().find_map(|l| {
                            l.strip_prefix("VmRSS:").map(|r| r.trim().trim_end_matches("kB").trim().to_string())
                        })
                    })
                    .and_then(|kib| kib.parse::<u64>().ok())
                {
                    rss_max.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let acknowledged: Arc<Mutex<Vec<(String, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let statuses: Arc<Mutex<HashMap<u16, u64>>> = Arc::new(Mutex::new(HashMap::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (accounts, acknowledged, statuses, base) =
                (accounts.clone(), Arc::clone(&acknowledged), Arc::clone(&statuses), server.base());
            std::thread::spawn(move || {
                let agent = agent();
                let mut seed = thread as u64 * 7919 + 1;
                let mut next = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                while started.elapsed() < FLOOD {
                    let items: Vec<Value> = (0..BATCH_ITEMS)
                        .map(|_| {
                            let payer = next() as usize % ACCOUNTS;
                            let payee = (payer + 1 + next() as usize % (ACCOUNTS - 1)) % ACCOUNTS;
                            transfer(&accounts[payer], &accounts[payee], 1 + (next() % 100) as i64)
                        })
                        .collect();
                    let token = if thread % 6 == 5 { LIMITED } else { PLATFORM };
                    let answer = request(
                        &agent,
                        &base,
                        "POST",
                        "/v1/transfers/batch",
                        token,
                        Some(&json!({"transfers": items})),
                    )
                    .unwrap_or_else(|error| panic!("a flood request got no answer: {error}"));
                    *statuses.lock().unwrap().entry(answer.status).or_default() += 1;
                    match answer.status {
                        200 => {
                            let results = answer.body["results"].as_array().expect("results");
                            assert_eq!(results.len(), BATCH_ITEMS);
                            let mut acknowledged = acknowledged.lock().unwrap();
                            for (item, result) in items.iter().zip(results) {
                                match result["status"].as_u64() {
                                    Some(201) => acknowledged.push((
                                        item["id"].as_str().unwrap().to_string(),
                                        result["body"]["lsn"].as_u64().expect("lsn"),
                                    )),
                                    Some(503) | Some(422) => {}
                                    other => panic!("item answered {other:?}: {result}"),
                                }
                            }
                        }
                        503 | 429 => assert!(answer.retry_after.is_some(), "{} without Retry-After", answer.status),
                        other => panic!("flood answer {other}: {}", answer.body),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a flood worker failed");
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let rss_max = rss_max.load(Ordering::Relaxed);
    let acknowledged = Arc::try_unwrap(acknowledged).unwrap().into_inner().unwrap();
    eprintln!(
        "flood: {:?}, {} transfers acknowledged, RSS {} MiB before, {} MiB at most",
        statuses.lock().unwrap(),
        acknowledged.len(),
        rss_before / 1024,
        rss_max / 1024
    );
    assert!(!acknowledged.is_empty(), "nothing was acknowledged");
    assert!(statuses.lock().unwrap().get(&429).is_some_and(|n| *n > 0), "the limited threads were never refused");
    assert!(rss_max < RSS_KIB_MAX, "RSS reached {} MiB", rss_max / 1024);

    // Every acknowledged transfer is there, with the lsn it was answered with.
    let acknowledged = Arc::new(acknowledged);
    let checkers: Vec<_> = (0..8)
        .map(|part| {
            let (acknowledged, base) = (Arc::clone(&acknowledged), server.base());
            std::thread::spawn(move || {
                let agent = agent();
                for (id, lsn) in acknowledged.iter().skip(part).step_by(8) {
                    let answer =
                        request(&agent, &base, "GET", &format!("/v1/transfers/{id}"), PLATFORM, None).expect("GET");
                    assert_eq!(answer.status, 200, "acknowledged transfer {id}: {answer:?}");
                    assert_eq!(answer.body["lsn"].as_u64(), Some(*lsn), "{id}");
                }
            })
        })
        .collect();
    for checker in checkers {
        checker.join().expect("an acknowledged transfer is missing");
    }
    // Money is conserved: transfers only move it.
    let total: i64 = accounts
        .iter()
        .map(|a| {
            let (available, frozen) = server.balance_cents(a);
            available + frozen
        })
        .sum();
    assert_eq!(total, ACCOUNTS as i64 * 100_000_000);
}

// ---------------------------------------------------------------------------
// per-token rate limits

/// `rate_limit_per_s = 5`: a burst of 5, then 429 RATE_LIMITED with
/// Retry-After; other tokens are not affected; a second later it passes.
#[test]
fn a_token_past_its_rate_limit_gets_429() {
    let server = Server::start(Setup { limited_rate_per_s: 5, ..Setup::default() });
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let answer = server.get("/v1/accounts/F000001", LIMITED);
        if answer.status == 429 {
            assert_eq!(answer.body["error"]["code"], "RATE_LIMITED", "{answer:?}");
            assert_eq!(answer.retry_after.as_deref(), Some("1"), "{answer:?}");
        }
        statuses.push(answer.status);
        // The unlimited token is served all along.
        assert_eq!(server.get("/v1/accounts/F000001", PLATFORM).status, 404);
    }
    let passed = statuses.iter().filter(|s| **s == 404).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(passed + limited, 20, "{statuses:?}");
    assert!((5..=8).contains(&passed), "{passed} passed: {statuses:?}");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(server.get("/v1/accounts/F000001", LIMITED).status, 404);
    // Authentication comes first: an unknown token is 401, not 429.
    assert_eq!(server.get("/v1/accounts/F000001", "no-such-token").status, 401);
}

/// Many threads on one limited token: the limit holds (no lock, but no
/// lost updates either).
#[test]
fn a_rate_limit_holds_under_concurrency() {
    let server = Server::start(Setup { limited_rate_per_s: 50, ..Setup::default() });
    let started = Instant::now();
    let passed = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (passed, base) = (Arc::clone(&passed), server.base());
            std::thread::spawn(move || {
                let agent = agent();
                while started.elapsed() < Duration::from_secs(2) {
                    let answer = request(&agent, &base, "GET", "/v1/accounts/F000001", LIMITED, None).expect("answer");
                    match answer.status {
                        404 => {
                            passed.fetch_add(1, Ordering::Relaxed);
                        }
                        429 => {}
                        other => panic!("{other}: {answer:?}"),
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let passed = passed.load(Ordering::Relaxed) as f64;
    // A burst of 50 plus 50 per second.
    assert!(passed <= 50.0 + 50.0 * elapsed + 5.0, "{passed} passed in {elapsed:.2} s");
    assert!(passed >= 50.0 * 2.0 * 0.8, "{passed} passed in {elapsed:.2} s");
}

// ---------------------------------------------------------------------------
// the log cannot be written

fn hook_env(name: &str, path: &std::path::Path) -> (String, String) {
    (name.to_string(), path.display().to_string())
}

fn wait_ready_status(server: &Server, want: &str) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = server.get("/readyz", "");
        if answer.body["status"] == want {
            return answer;
        }
        assert!(Instant::now() < deadline, "/readyz never said {want}: {answer:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Outcome of each transfer sent around the fault.
struct Sent {
    body: Value,
    /// The 201 body, if acknowledged.
    acknowledged: Option<Value>,
}

fn log_fault_leaves_only_whole_changes(hook: &str) {
    // A name in a folder of the test's own (removed with it), with no
    // file yet: the hook fires once the test writes one there.
    let scratch = tempfile::tempdir().unwrap();
    let trigger = scratch.path().join("trigger");
    let mut server = Server::start(Setup { env: vec![hook_env(hook, &trigger)], ..Setup::default() });
    assert_eq!(server.get("/readyz", "").status, 200, "the hook must not fire before the trigger file exists");
    let accounts: Vec<String> = (0..3).map(|_| server.funded_account("1000.00")).collect();
    let mut sent: Vec<Sent> = Vec::new();
    for i in 0..10 {
        let body = transfer(&accounts[i % 3], &accounts[(i + 1) % 3], 100 + i as i64);
        let answer = server.post("/v1/transfers", PLATFORM, &body);
        assert_eq!(answer.status, 201, "{answer:?}");
        sent.push(Sent { body, acknowledged: Some(answer.body) });
    }
    let balances_before: Vec<(i64, i64)> = accounts.iter().map(|a| server.balance_cents(a)).collect();

    std::fs::write(&trigger, b"on").unwrap();
    // Concurrent writers around the failure; each is acknowledged or not.
    let during: Vec<_> = (0..8)
        .map(|i| {
            let (base, payer, payee) = (server.base(), accounts[i % 3].clone(), accounts[(i + 2) % 3].clone());
            std::thread::spawn(move || {
                let agent = agent();
                (0..5)
                    .map(|j| {
                        let body = transfer(&payer, &payee, 1 + (i * 5 + j) as i64);
                        let answer = request(&agent, &base, "POST", "/v1/transfers", PLATFORM, Some(&body));
                        let acknowledged = match answer {
                            Ok(answer) if answer.status == 201 => Some(answer.body),
                            Ok(answer) => {
                                assert_eq!(answer.status, 503, "{answer:?}");
                                assert!(answer.retry_after.is_some());
                                assert!(
                                    ["LOG_UNAVAILABLE", "OVERLOADED"]
                                        .contains(&answer.body["error"]["code"].as_str().unwrap()),
                                    "{answer:?}"
                                );
                                None
                            }
                            Err(error) => panic!("no answer: {error}"),
                        };
                        Sent { body, acknowledged }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in during {
        sent.extend(thread.join().unwrap());
    }
    let unacknowledged = sent.iter().filter(|s| s.acknowledged.is_none()).count();
    assert!(unacknowledged > 0, "the fault never showed");

    // The log is failed for good: readiness, writes, and reads of changed state.
    let ready = wait_ready_status(&server, "log_unavailable");
    assert_eq!(ready.status, 503);
    let answer = server.post("/v1/transfers", PLATFORM, &transfer(&accounts[0], &accounts[1], 1));
    assert_eq!((answer.status, answer.body["error"]["code"].as_str()), (503, Some("LOG_UNAVAILABLE")), "{answer:?}");
    assert!(answer.retry_after.is_some());
    for (account, before) in accounts.iter().zip(&balances_before) {
        let answer = server.get(&format!("/v1/accounts/{account}"), PLATFORM);
        match answer.status {
            503 => assert_eq!(answer.body["error"]["code"], "LOG_UNAVAILABLE", "{answer:?}"),
            200 => {
                // Only durable state: the balance before the fault plus the
                // acknowledged changes since (none of them touched it unless
                // acknowledged).
                let after = (cents(&answer.body["balance"]["available"]), cents(&answer.body["balance"]["frozen"]));
                let acknowledged_delta: i64 = sent[10..]
                    .iter()
                    .filter(|s| s.acknowledged.is_some())
                    .map(|s| {
                        let cents = cents(&json!(s.body["amount"]));
                        (if s.body["payee"] == account.as_str() { cents } else { 0 })
                            - (if s.body["payer"] == account.as_str() { cents } else { 0 })
                    })
                    .sum();
                assert_eq!(after.0, before.0 + acknowledged_delta, "{account} shows an undurable change: {answer:?}");
            }
            other => panic!("GET account during a failed log: {other} {answer:?}"),
        }
    }
    for s in sent.iter().filter(|s| s.acknowledged.is_none()) {
        let id = s.body["id"].as_str().unwrap();
        let answer = server.get(&format!("/v1/transfers/{id}"), PLATFORM);
        assert!(
            answer.status == 404 || (answer.status == 503 && answer.body["error"]["code"] == "LOG_UNAVAILABLE"),
            "an unacknowledged transfer is visible before it is durable: {answer:?}"
        );
    }
    // SIGTERM cannot sync a failed log: the server says so and exits non-zero.
    let status = server.terminate();
    assert!(!status.success(), "a server whose log failed exited 0");

    // Restart without the fault: every acknowledged change is there with
    // its lsn; every other one wholly present or wholly absent.
    server.restart_with_env(Vec::new());
    assert_eq!(server.get("/readyz", "").status, 200);
    let mut expected: HashMap<&str, i64> = accounts.iter().map(|a| (a.as_str(), 100_000)).collect();
    for s in &sent {
        let id = s.body["id"].as_str().unwrap();
        let answer = server.get(&format!("/v1/transfers/{id}"), PLATFORM);
        if let Some(acknowledged) = &s.acknowledged {
            assert_eq!(answer.status, 200, "acknowledged {id} lost: {answer:?}");
            assert_eq!(answer.body["lsn"], acknowledged["lsn"], "{id}");
        } else {
            assert!([200, 404].contains(&answer.status), "{answer:?}");
        }
        if answer.status == 200 {
            let cents = cents(&json!(s.body["amount"]));
            *expected.get_mut(s.body["payer"].as_str().unwrap()).unwrap() -= cents;
            *expected.get_mut(s.body["payee"].as_str().unwrap()).unwrap() += cents;
        }
    }
    for account in &accounts {
        let (available, frozen) = server.balance_cents(account);
        assert_eq!((available, frozen), (expected[account.as_str()], 0), "{account}: half-applied change?");
        // The journal sums to the balance: every present transfer is whole.
        let journal = server.get(&format!("/v1/accounts/{account}/journal?limit=1000"), PLATFORM);
        assert_eq!(journal.status, 200, "{journal:?}");
        let sum: i64 = journal.body["items"].as_array().unwrap().iter().map(|e| cents(&e["available_delta"])).sum();
        assert_eq!(sum, available, "{account} journal");
    }
}

#[test]
fn after_an_fsync_error_writes_stop_and_restart_keeps_every_acknowledged_change() {
    log_fault_leaves_only_whole_changes("FUNDLEDGER_FAULT_FSYNC_WHEN");
}

#[test]
fn after_a_short_write_writes_stop_and_restart_keeps_every_acknowledged_change() {
    log_fault_leaves_only_whole_changes("FUNDLEDGER_FAULT_WRITE_WHEN");
}

/// `wal.min_free_bytes` above the disk's free space: the server recovers
/// and serves reads, but `/readyz` says disk_low and writes get 503.
#[test]
fn below_the_free_space_floor_writes_get_503_and_readyz_says_disk_low() {
    let server = Server::start(Setup { min_free_bytes: Some(i64::MAX as u64), ..Setup::default() });
    let ready = server.get("/readyz", "");
    assert_eq!((ready.status, ready.body["status"].as_str()), (503, Some("disk_low")), "{ready:?}");
    let answer = server.post(
        "/v1/applications",
        PLATFORM,
        &json!({"name": "甲", "credential_no": "91310000X", "bank": BANK,
                "settlement_account": {"bank_name": "b", "account_no": SETTLEMENT_ACCOUNT_NO, "account_name": "甲"}}),
    );
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.retry_after.is_some());
    assert_eq!(answer.body["error"]["code"], "LOG_UNAVAILABLE", "{answer:?}");
    assert_eq!(server.get("/v1/accounts/F000001", PLATFORM).status, 404, "reads still work");
    healthz_ok(&server);
}

/// Free space falls below the floor while running, then comes back: writes
/// are turned away and then let in again, nothing acknowledged is lost.
#[test]
fn writes_resume_when_disk_space_comes_back() {
    let scratch = tempfile::tempdir().unwrap();
    let free_file = scratch.path().join("free-bytes");
    let mut server = Server::start(Setup {
        min_free_bytes: Some(1 << 20),
        env: vec![hook_env("FUNDLEDGER_FAULT_FREE_BYTES_FILE", &free_file)],
        ..Setup::default()
    });
    let payer = server.funded_account("100.00");
    let payee = server.funded_account("100.00");
    let first = server.post("/v1/transfers", PLATFORM, &transfer(&payer, &payee, 100));
    assert_eq!(first.status, 201, "{first:?}");
    std::fs::write(&free_file, "1000").unwrap();
    wait_ready_status(&server, "disk_low");
    let refused = server.post("/v1/transfers", PLATFORM, &transfer(&payer, &payee, 100));
    assert_eq!((refused.status, refused.body["error"]["code"].as_str()), (503, Some("LOG_UNAVAILABLE")), "{refused:?}");
    std::fs::write(&free_file, (1u64 << 40).to_string()).unwrap();
    wait_ready_status(&server, "ready");
    let second = server.post("/v1/transfers", PLATFORM, &transfer(&payer, &payee, 100));
    assert_eq!(second.status, 201, "{second:?}");
    server.restart_with_env(Vec::new());
    assert_eq!(server.balance_cents(&payer), (9800, 0));
    assert_eq!(server.balance_cents(&payee), (10200, 0));
}

// ---------------------------------------------------------------------------
// graceful shutdown

/// SIGTERM under load: exit 0; after restart every acknowledged transfer is
/// there. Requests cut by the shutdown may go unanswered (the client sees
/// a closed connection or a refused connect), never half-applied.
#[test]
fn sigterm_under_load_answers_in_flight_and_keeps_every_acknowledged_change() {
    let mut server = Server::start(Setup::default());
    let accounts: Vec<String> = (0..4).map(|_| server.funded_account("100000.00")).collect();
    let acknowledged: Arc<Mutex<Vec<(String, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let (base, accounts, acknowledged, stop) =
                (server.base(), accounts.clone(), Arc::clone(&acknowledged), Arc::clone(&stop));
            std::thread::spawn(move || {
                let agent = agent();
                let mut unanswered = 0;
                while !stop.load(Ordering::Relaxed) && unanswered < 3 {
                    let body = transfer(&accounts[i % 4], &accounts[(i + 1) % 4], 1);
                    match request(&agent, &base, "POST", "/v1/transfers", PLATFORM, Some(&body)) {
                        Ok(answer) if answer.status == 201 => acknowledged
                            .lock()
                            .unwrap()
                            .push((body["id"].as_str().unwrap().to_string(), answer.body["lsn"].as_u64().unwrap())),
                        Ok(answer) => assert_eq!(answer.status, 503, "{answer:?}"),
                        Err(_) => unanswered += 1,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let status = server.terminate();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    assert!(status.success(), "SIGTERM exit status {status}\n{}", server.stderr_tail());
    server.restart_with_env(Vec::new());
    let acknowledged = acknowledged.lock().unwrap();
    assert!(!acknowledged.is_empty());
    for (id, lsn) in acknowledged.iter() {
        let answer = server.get(&format!("/v1/transfers/{id}"), PLATFORM);
        assert_eq!(answer.status, 200, "{id} lost: {answer:?}");
        assert_eq!(answer.body["lsn"].as_u64(), Some(*lsn));
    }
}
