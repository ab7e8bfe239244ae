//! The finance console over plain HTTP (no browser): sign-in and its
//! cookie, CSRF and origin checks, roles (no button a role cannot use, and
//! its forged action refused by the API), escaping, and the API reads the
//! console added (`GET /v1/applications`, `GET /v1/withdrawals`,
//! `GET /v1/ledger/day`).

mod common;
mod console_support;

use common::*;
use console_support::*;
use serde_json::json;

#[test]
fn sign_in_sets_a_strict_http_only_cookie_that_is_secure_over_https() {
    let server = Server::start();
    let resp = server.request("GET", "/console/", &[], None);
    assert_eq!((resp.status, resp.header("location")), (303, Some("/console/login")), "signed out: to sign-in");

    let browser = Browser::sign_in(&server, FINANCE);
    let cookie = &browser.session_set_cookie;
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(part), "the session cookie lacks {part}: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: no Secure flag: {cookie}");
    assert!(!cookie.contains(FINANCE), "the token must never be in the cookie: {cookie}");
    let dashboard = browser.page("/console/");
    assert!(dashboard.contains("li.si"), "the operator's name is shown");

    let https = sign_in_raw(&server, RISK, &[("X-Forwarded-Proto", "https")]);
    assert_eq!(https.status, 303, "{}", https.text);
    let (_, text) = set_cookie(&https, SESSION_COOKIE).expect("a session cookie");
    assert!(text.contains("; Secure") && text.contains("HttpOnly") && text.contains("SameSite=Strict"), "{text}");

    let wrong = sign_in_raw(&server, "not-a-token", &[]);
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    assert!(set_cookie(&wrong, SESSION_COOKIE).is_none(), "no session for a wrong token");
    assert!(wrong.text.contains("UNAUTHENTICATED"), "{}", wrong.text);
    let platform = sign_in_raw(&server, PLATFORM, &[]);
    assert_eq!(platform.status, 403, "the platform's machine token has no console: {}", platform.text);

    // Signing out ends the session on the server, whatever the browser keeps.
    let after = browser.submit("/console/", "/console/logout", &[]);
    assert!(after.contains("name=\"token\""), "back on the sign-in page");
    let resp = browser.get("/console/");
    assert_eq!((resp.status, resp.header("location")), (303, Some("/console/login")));
}

#[test]
fn posts_without_the_csrf_token_or_from_another_origin_are_refused() {
    let server = Server::start();
    let (_, application) = server.apply("上海丙化工有限公司", &credential_no());
    let application_id = application["application_id"].as_str().unwrap().to_string();
    let risk = Browser::sign_in(&server, RISK);
    let path = format!("/console/applications/{application_id}/approve");
    let origin = server.url("");

    let resp = risk.post_with(&path, &[("note", "no token")], &[("Origin", &origin)]);
    assert_eq!(resp.status, 403, "without csrf: {}", resp.text);
    let resp = risk.post_with(&path, &[("csrf", &"0".repeat(64))], &[("Origin", &origin)]);
    assert_eq!(resp.status, 403, "wrong csrf: {}", resp.text);
    let csrf = csrf_field(&risk.page("/console/applications"));
    let resp = risk.post_with(&path, &[("csrf", &csrf)], &[("Origin", "http://evil.example")]);
    assert_eq!(resp.status, 403, "another origin: {}", resp.text);
    let csrf_other = csrf_field(&Browser::sign_in(&server, RISK).page("/console/"));
    let resp = risk.post_with(&path, &[("csrf", &csrf_other)], &[("Origin", &origin)]);
    assert_eq!(resp.status, 403, "another session's token: {}", resp.text);
    let resp = server.request(
        "POST",
        "/console/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(form(&[("token", RISK)]).as_bytes()),
    );
    assert_eq!(resp.status, 403, "sign-in without its form token: {}", resp.text);
    assert!(set_cookie(&resp, SESSION_COOKIE).is_none());
    let shown = server.get_ok(&format!("/v1/applications/{application_id}"), RISK);
    assert_eq!(shown["status"], "pending_review", "no refused POST changed anything: {shown}");

    let page = risk.submit("/console/applications", &path, &[("note", "documents checked")]);
    assert!(page.contains(&format!("{application_id} approved")), "{page}");
    let shown = server.get_ok(&format!("/v1/applications/{application_id}"), RISK);
    assert_eq!((shown["status"].as_str(), shown["note"].as_str()), (Some("approved"), Some("documents checked")));
}

#[test]
fn a_role_sees_no_button_it_cannot_use_and_its_forged_post_is_refused() {
    let server = Server::start();
    let (_, application) = server.apply("浙江丁贸易有限公司", &credential_no());
    let application_id = application["application_id"].as_str().unwrap().to_string();
    let (account_id, _) = server.open_account("江苏戊钢铁有限公司");
    let (status, _) = server.notify(&notification(PUBLIC_ADJUSTMENT_ACCOUNT, "江苏戊钢铁有限公司", "80.00"));
    assert_eq!(status, 200);

    let risk = Browser::sign_in(&server, RISK);
    let page = risk.page("/console/applications");
    assert!(page.contains("class=\"approve\"") && page.contains(&application_id), "risk sees approve: {page}");
    assert!(!page.contains("/console/suspense"), "risk has no finance pages in the nav");
    let suspense = risk.page("/console/suspense");
    assert!(!suspense.contains("class=\"assign\""), "risk sees no assign button: {suspense}");
    assert!(suspense.contains("403 FORBIDDEN"), "the API's refusal is shown: {suspense}");

    let finance = Browser::sign_in(&server, FINANCE);
    let page = finance.page("/console/applications");
    assert!(!page.contains("class=\"approve\"") && !page.contains("class=\"danger reject\""), "{page}");
    assert!(page.contains("403 FORBIDDEN"), "finance cannot read the review queue: {page}");
    assert!(!finance.page("/console/").contains("/console/applications\""), "no review link for finance");
    // A forged approve with finance's own valid session and token: the API refuses it.
    let after = finance.submit(
        "/console/suspense",
        &format!("/console/applications/{application_id}/approve"),
        &[("note", "forged")],
    );
    assert!(after.contains("403 FORBIDDEN"), "the refusal is shown: {after}");
    let shown = server.get_ok(&format!("/v1/applications/{application_id}"), RISK);
    assert_eq!(shown["status"], "pending_review", "{shown}");
    // And risk forging an adjustment deposit is refused the same way.
    let entries = server.get_ok("/v1/suspense?status=open", FINANCE);
    let suspense_id = entries["items"][0]["suspense_id"].as_str().unwrap().to_string();
    let after = risk.submit(
        "/console/applications",
        &format!("/console/suspense/{suspense_id}/assign"),
        &[("id", "ADJ-forged"), ("account_id", &account_id), ("amount", "80.00")],
    );
    assert!(after.contains("403 FORBIDDEN"), "{after}");
    assert_eq!(server.balance(&account_id).total, 0, "nothing was credited");
}

/// Whether `page` holds `text` (written with `&lt;` / `&gt;`) escaped,
/// by name or by number (`&#60;`).
fn escaped(page: &str, text: &str) -> bool {
    let named = format!("&lt;{text}");
    let numbered = named.replace("&lt;", "&#60;").replace("&gt;", "&#62;");
    page.contains(&named) || page.contains(&numbered)
}

#[test]
fn every_output_is_escaped() {
    let server = Server::start();
    let name = "<script>alert(1)</script>&\"'";
    let (status, application) = server.apply(name, &credential_no());
    assert_eq!(status, 201, "{application}");
    let risk = Browser::sign_in(&server, RISK);
    let page = risk.page("/console/applications");
    assert!(!page.contains("<script>alert(1)"), "a name is escaped in HTML: {page}");
    assert!(escaped(&page, "script&gt;alert(1)&lt;/script"), "{page}");

    let (account_id, _) = server.open_account(name);
    let finance = Browser::sign_in(&server, FINANCE);
    for path in [format!("/console/accounts/{account_id}"), "/console/accounts?q=script".to_string()] {
        let page = finance.page(&path);
        assert!(escaped(&page, "script&gt;alert(1)") && !page.contains("<script>alert"), "{path}: {page}");
    }
    let page = finance.page("/console/records?kind=transfer&id=%3Cscript%3Ex");
    assert!(!page.contains("<script>x") && escaped(&page, "script&gt;x"), "{page}");
    let resp = finance.get("/console/");
    let policy = resp.header("content-security-policy").unwrap_or("");
    assert!(policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'"), "{policy}");
}

#[test]
fn finance_pages_show_accounts_journals_csv_suspense_and_records() {
    let server = Server::start();
    let (payer, payer_sub) = server.open_account("上海甲化工有限公司");
    let (payee, _) = server.open_account("江苏乙钢铁有限公司");
    server.deposit(&payer_sub, "上海甲化工有限公司", "5000.00");
    let transfer = uid("t");
    server.transfer_ok(
        &json!({"id": transfer, "type": "pay_freeze", "payer": payer, "payee": payee, "amount": "1000.00"}),
    );
    let finance = Browser::sign_in(&server, FINANCE);

    let found = finance.page("/console/accounts?q=%E4%B9%99%E9%92%A2");
    assert!(found.contains(&payee) && !found.contains(&payer), "search by part of the name: {found}");
    let by_sub = finance.page(&format!("/console/accounts?q={payer_sub}"));
    assert!(by_sub.contains(&payer) && !by_sub.contains(&payee), "by sub-account number: {by_sub}");

    let page = finance.page(&format!("/console/accounts/{payee}"));
    assert!(page.contains("id=\"frozen\">1000.00<"), "balance with frozen: {page}");
    assert!(page.contains(&format!(">{transfer}<")) && page.contains("pay_freeze_in"), "open hold and journal: {page}");
    let filtered = finance.page(&format!("/console/accounts/{payer}?kind=deposit"));
    assert!(filtered.contains("<td>deposit</td>") && !filtered.contains("<td>pay_freeze_out</td>"), "{filtered}");
    let bad = finance.page(&format!("/console/accounts/{payer}?from=yesterday"));
    assert!(bad.contains("400 INVALID_FIELD"), "a bad filter shows the API's refusal: {bad}");

    let csv = finance.get(&format!("/console/accounts/{payer}/journal.csv"));
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap_or("").starts_with("text/csv"), "{:?}", csv.headers);
    assert!(csv.text.starts_with("lsn,at,kind") && csv.text.contains("pay_freeze_out"), "{}", csv.text);

    let record = finance.page(&format!("/console/records?kind=transfer&id={transfer}"));
    assert!(record.contains("id=\"bank-sync\"") && record.contains("receipt-link"), "{record}");
    let receipt = finance.page(&format!("/console/receipts/transfers/{transfer}"));
    assert!(receipt.contains("id=\"receipt-no\"") && receipt.contains("壹仟"), "{receipt}");
    let missing = finance.page("/console/records?kind=withdrawal&id=nope");
    assert!(missing.contains("404 WITHDRAWAL_NOT_FOUND"), "{missing}");

    let to_suspense = notification(PUBLIC_ADJUSTMENT_ACCOUNT, "江苏乙钢铁有限公司", "800.00");
    let (status, _) = server.notify(&to_suspense);
    assert_eq!(status, 200);
    let notification_id = to_suspense["notification_id"].as_str().unwrap();
    let record = finance.page(&format!("/console/records?kind=deposit&id={notification_id}"));
    assert!(record.contains("id=\"deposit-suspense\"") && !record.contains("receipt-link"), "{record}");
    let page = finance.page("/console/suspense");
    let suspense_id =
        regex_lite::Regex::new(r#"action="/console/suspense/(S\d+)/assign""#).unwrap().captures(&page).unwrap()[1]
            .to_string();
    let adjustment_id =
        regex_lite::Regex::new(r#"name="id" value="(ADJ-[0-9a-f]+)""#).unwrap().captures(&page).unwrap()[1].to_string();
    let path = format!("/console/suspense/{suspense_id}/assign");
    let fields = [("id", adjustment_id.as_str()), ("account_id", payee.as_str()), ("amount", "300.00")];
    let after = finance.submit("/console/suspense", &path, &fields);
    assert!(after.contains("调帐入款") && after.contains("500.00 left"), "a partial assignment: {after}");
    // The same form sent twice (a double click): the API's idempotency applies it once.
    finance.submit("/console/suspense", &path, &fields);
    assert_eq!(server.balance(&payee).total, 130_000, "1000.00 frozen + 300.00 once");
    let after =
        finance.submit("/console/suspense", &path, &[("id", "ADJ-x2"), ("account_id", &payee), ("amount", "600.00")]);
    assert!(after.contains("422 SUSPENSE_EXCEEDED"), "{after}");

    for path in ["/console/", "/console/bank", "/console/reconciliations", "/console/discrepancies"] {
        finance.page(path);
    }
    let dashboard = finance.page("/console/");
    assert!(dashboard.contains("id=\"today\"") && dashboard.contains("WAL durable lsn"), "{dashboard}");
}

#[test]
fn the_api_reads_the_console_added() {
    let server = Server::start();
    let (_, first) = server.apply("上海甲化工有限公司", &credential_no());
    let (_, second) = server.apply("江苏乙钢铁有限公司", &credential_no());
    let second_id = second["application_id"].as_str().unwrap();
    let (status, _) = server.post(&format!("/v1/applications/{second_id}/approve"), RISK, &json!({}));
    assert_eq!(status, 200);
    let page = server.get_ok("/v1/applications?status=pending_review", RISK);
    let ids: Vec<&str> =
        page["items"].as_array().unwrap().iter().filter_map(|a| a["application_id"].as_str()).collect();
    assert_eq!(ids, vec![first["application_id"].as_str().unwrap()], "{page}");
    let page = server.get_ok("/v1/applications?limit=1", PLATFORM);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let next = page["next_cursor"].as_str().expect("a second page");
    let page = server.get_ok(&format!("/v1/applications?limit=1&cursor={next}"), PLATFORM);
    assert_eq!(page["items"][0]["application_id"], second["application_id"]);
    assert!(page["next_cursor"].is_null());
    let (status, body) = server.get("/v1/applications?status=maybe", RISK);
    assert_error(status, &body, 400, "INVALID_FIELD", "bad status");
    let (status, body) = server.get("/v1/applications", FINANCE);
    assert_error(status, &body, 403, "FORBIDDEN", "finance");

    let (account_id, sub) = server.open_account("浙江丁贸易有限公司");
    server.deposit(&sub, "浙江丁贸易有限公司", "100.00");
    let in_flight = server.get_ok("/v1/withdrawals?status=processing", FINANCE);
    assert!(in_flight["items"].as_array().unwrap().is_empty(), "{in_flight}");
    let (status, body) = server.get("/v1/withdrawals", FINANCE);
    assert_error(status, &body, 400, "INVALID_FIELD", "status is required");
    let (status, body) = server.get("/v1/withdrawals?status=processing", PLATFORM);
    assert_error(status, &body, 403, "FORBIDDEN", "platform");

    let (other, _) = server.open_account("江苏乙钢铁有限公司");
    server.transfer_ok(
        &json!({"id": uid("t"), "type": "transfer", "payer": account_id, "payee": other, "amount": "10.00"}),
    );
    let (status, _) = server.notify(&notification(PUBLIC_ADJUSTMENT_ACCOUNT, "某人", "7.00"));
    assert_eq!(status, 200);
    let withdrawal = uid("w");
    let (status, body) = server.post(
        "/v1/withdrawals",
        PLATFORM,
        &json!({"id": withdrawal, "account_id": account_id, "amount": "5.00"}),
    );
    assert_eq!(status, 202, "{body}");
    for _ in 0..500 {
        if server.get_ok(&format!("/v1/withdrawals/{withdrawal}"), FINANCE)["status"] != "processing" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let day = server.get_ok(&format!("/v1/ledger/day?date={}", today()), FINANCE);
    assert_eq!((day["money_in"].as_str(), day["money_in_count"].as_u64()), (Some("107.00"), Some(2)), "{day}");
    assert_eq!((day["money_out"].as_str(), day["money_out_count"].as_u64()), (Some("5.00"), Some(1)), "{day}");
    assert_eq!((day["transfers"].as_str(), day["transfers_count"].as_u64()), (Some("10.00"), Some(1)), "{day}");
    let other = server.get_ok("/v1/ledger/day?date=2001-01-01", FINANCE);
    assert_eq!(other["money_in"], "0.00", "{other}");
    let (status, body) = server.get("/v1/ledger/day?date=2026-11-24T01:00:00Z", FINANCE);
    assert_error(status, &body, 400, "INVALID_FIELD", "a date, not an instant");
}

#[test]
fn a_statement_file_is_checked_and_sent_as_the_api_statement_lines() {
    let server = Server::start();
    let (buyer, sub) = server.open_account("上海甲化工有限公司");
    let (seller, _) = server.open_account("江苏乙钢铁有限公司");
    let notification = notification(&sub, "上海甲化工有限公司", "500.00");
    let (status, _) = server.notify(&notification);
    assert_eq!(status, 200);
    let transfer = uid("t");
    server
        .transfer_ok(&json!({"id": transfer, "type": "transfer", "payer": buyer, "payee": seller, "amount": "10.00"}));
    let finance = Browser::sign_in(&server, FINANCE);
    let csrf = csrf_field(&finance.page("/console/reconciliations"));
    let day = today();
    let upload = "/console/reconciliations/upload";

    let header = "reference,bank_serial,kind,account_no,counter_account_no,amount,booked_at";
    let csv = format!(
        "{header}\r\n{},B-1,credit,{sub},{SETTLEMENT_ACCOUNT_NO},500.00,{day}T08:00:00.000Z\r\n",
        notification["notification_id"].as_str().unwrap()
    );
    let fields = [("csrf", csrf.as_str()), ("bank", BANK), ("date", day.as_str())];
    let resp = finance.post_multipart(upload, &fields[1..], ("statement", "s.csv", csv.as_bytes()));
    assert_eq!(resp.status, 403, "no csrf in the multipart form: {}", resp.text);

    let resp = finance.post_multipart(upload, &fields, ("statement", "s.csv", b"bank_serial,reference\n"));
    assert_eq!(resp.status, 303);
    let page = finance.page("/console/reconciliations");
    assert!(page.contains("400 INVALID_STATEMENT") && page.contains("lacks the column `kind`"), "{page}");

    let resp = finance.post_multipart(upload, &fields, ("statement", "s.csv", csv.as_bytes()));
    assert_eq!(resp.status, 303, "{}", resp.text);
    let location = resp.header("location").unwrap().to_string();
    assert!(location.starts_with("/console/reconciliations/REC"), "{location}");
    let page = finance.page(&location);
    assert!(page.contains("uploaded file"), "{page}");
    assert!(page.contains("id=\"missing-in-bank\">1<") && page.contains(&transfer), "the transfer only: {page}");
    let id = location.rsplit('/').next().unwrap();
    let run = server.get_ok(&format!("/v1/reconciliations/{id}"), FINANCE);
    assert_eq!(run["summary"]["matched"], 1, "the CSV line became the API's statement line: {run}");
}

#[test]
fn the_proposer_of_a_resolution_is_offered_no_approval_and_a_forged_one_is_refused() {
    let server = Server::start();
    let (buyer, sub) = server.open_account("上海甲化工有限公司");
    let (seller, _) = server.open_account("江苏乙钢铁有限公司");
    server.deposit(&sub, "上海甲化工有限公司", "50.00");
    server.transfer_ok(&json!({"id": uid("t"), "type": "transfer", "payer": buyer, "payee": seller, "amount": "1.00"}));
    let statement = json!({"bank": BANK, "date": today(), "statement": []});
    let (status, run) = server.post("/v1/reconciliations", FINANCE, &statement);
    assert_eq!(status, 201, "{run}");
    let discrepancy = run["discrepancies"][0]["discrepancy_id"].as_str().unwrap().to_string();

    let maker = Browser::sign_in(&server, FINANCE);
    let resolve = format!("/console/discrepancies/{discrepancy}/resolve");
    let page = maker.submit("/console/discrepancies", &resolve, &[("note", "booked late")]);
    assert!(page.contains("resolution proposed by li.si"), "{page}");
    assert!(page.contains("class=\"muted waiting\"") && !page.contains("class=\"approve\""), "{page}");
    let approve = format!("/console/discrepancies/{discrepancy}/approve");
    let page = maker.submit("/console/discrepancies", &approve, &[]);
    assert!(page.contains("422 SAME_OPERATOR"), "a forged approval by the proposer: {page}");

    let checker = Browser::sign_in(&server, FINANCE_2);
    let page = checker.page("/console/discrepancies");
    assert!(page.contains("class=\"approve\"") && page.contains("booked late"), "{page}");
    let page = checker.submit("/console/discrepancies", &approve, &[("note", "ok")]);
    assert!(page.contains("approved by zhao.liu") && page.contains("id=\"no-proposed\""), "{page}");
    let shown = server.get_ok(&format!("/v1/discrepancies/{discrepancy}"), FINANCE);
    assert_eq!((shown["status"].as_str(), shown["approval_note"].as_str()), (Some("resolved"), Some("ok")), "{shown}");
}

#[test]
fn withdrawals_show_their_bank_state_and_a_receipt_only_once_paid_out() {
    let server = Server::start();
    let (paid, paid_sub) = server.open_account("上海甲化工有限公司");
    let closed_name = "江苏乙钢铁有限公司";
    let (status, application) = server.post(
        "/v1/applications",
        PLATFORM,
        &json!({"name": closed_name, "credential_no": credential_no(), "bank": BANK,
            "settlement_account": {"bank_name": "某银行南京分行", "account_no": "6222020000009999", "account_name": closed_name}}),
    );
    assert_eq!(status, 201, "{application}");
    let application_id = application["application_id"].as_str().unwrap();
    let risk = Browser::sign_in(&server, RISK);
    let path = format!("/console/applications/{application_id}/reject");
    let page = risk.submit("/console/applications", &path, &[("reason", "")]);
    assert!(page.contains("400 MISSING_FIELD"), "a reject needs a reason: {page}");
    let page = risk.submit("/console/applications", &format!("/console/applications/{application_id}/approve"), &[]);
    let closed = regex_lite::Regex::new(r"account (F\d+) opened").unwrap().captures(&page).unwrap()[1].to_string();
    let closed_sub = server.wait_signed(&closed)["sub_account_no"].as_str().unwrap().to_string();
    server.deposit(&paid_sub, "上海甲化工有限公司", "100.00");
    server.deposit(&closed_sub, closed_name, "100.00");
    for (account, id) in [(&paid, "w-paid"), (&closed, "w-closed")] {
        let (status, body) =
            server.post("/v1/withdrawals", PLATFORM, &json!({"id": id, "account_id": account, "amount": "30.00"}));
        assert_eq!(status, 202, "{body}");
    }
    for id in ["w-paid", "w-closed"] {
        for _ in 0..500 {
            if server.get_ok(&format!("/v1/withdrawals/{id}"), FINANCE)["status"] != "processing" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let finance = Browser::sign_in(&server, FINANCE);
    let page = finance.page("/console/records?kind=withdrawal&id=w-paid");
    assert!(page.contains(">succeeded<") && page.contains("receipt-link"), "{page}");
    let serial = server.get_ok("/v1/withdrawals/w-paid", FINANCE)["bank_serial"].as_str().unwrap().to_string();
    assert!(page.contains(&serial), "the bank serial: {page}");
    let receipt = finance.page("/console/receipts/withdrawals/w-paid");
    assert!(receipt.contains("叁拾"), "{receipt}");
    let page = finance.page("/console/records?kind=withdrawal&id=w-closed");
    assert!(page.contains(">failed<") && page.contains("PAYEE_ACCOUNT_CLOSED"), "{page}");
    assert!(!page.contains("receipt-link"), "no receipt for a failed payout: {page}");
    let bank = finance.page("/console/bank");
    assert!(bank.contains("id=\"no-withdrawals\""), "none in flight any more: {bank}");
}

/// `fundledger_http_requests_total` of the series with these labels (0 when
/// absent).
fn requests_counted(server: &Server, labels: &[(&str, &str)]) -> f64 {
    let text = server.request("GET", "/metrics", &[], None).text;
    text.lines()
        .filter_map(|line| line.strip_prefix("fundledger_http_requests_total{"))
        .filter_map(|line| line.split_once("} "))
        .filter(|(series, _)| {
            labels.iter().all(|(name, value)| series.split(',').any(|l| l == format!("{name}=\"{value}\"")))
        })
        .map(|(_, value)| value.trim().parse::<f64>().expect("a counter's value"))
        .sum()
}

/// Every request is counted once, by route, method and status: the API's,
/// a path no route matches, the probes', the console's pages; the calls a
/// page makes to the API in-process are part of the page's request, not
/// the API's.
#[test]
fn requests_are_counted_once_by_route_method_and_status() {
    let server = Server::start();
    let (account, _) = server.open_account("上海丁化工有限公司");
    let api = [("route", "/v1/accounts/{id}"), ("method", "GET"), ("status", "200")];
    let before = requests_counted(&server, &api);
    for _ in 0..3 {
        server.get_ok(&format!("/v1/accounts/{account}"), PLATFORM);
    }
    assert_eq!(requests_counted(&server, &api), before + 3.0, "three reads of the account");

    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status", "404")];
    let before = requests_counted(&server, &unmatched);
    assert_eq!(server.get("/v1/no-such-thing", PLATFORM).0, 404);
    assert_eq!(requests_counted(&server, &unmatched), before + 1.0, "a path no route matches");

    let probe = [("route", "/healthz"), ("method", "GET"), ("status", "200")];
    let before = requests_counted(&server, &probe);
    assert_eq!(server.get("/healthz", "").0, 200);
    assert_eq!(requests_counted(&server, &probe), before + 1.0, "the liveness probe");

    let browser = Browser::sign_in(&server, FINANCE);
    let page = [("route", "/console/accounts/{id}"), ("method", "GET"), ("status", "200")];
    let (pages_before, api_before) = (requests_counted(&server, &page), requests_counted(&server, &api));
    assert!(browser.page(&format!("/console/accounts/{account}")).contains(&account));
    assert_eq!(requests_counted(&server, &page), pages_before + 1.0, "the console's page");
    assert_eq!(requests_counted(&server, &api), api_before, "the page's own read of the account is not the API's");
}
