//! The finance console in a real browser: headless Chromium driven through
//! chromedriver (WebDriver, the `fantoccini` client) against the real
//! binary. Finance signs in, finds an account, opens its journal, assigns
//! a suspense entry, prints a receipt; risk approves an application; a
//! reconciliation with one discrepancy is resolved by two operators.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's
//! `chromium` and `chromium-driver`; `.ci/run` installs them). Without
//! them these tests print why and pass, unless `FUNDLEDGER_BROWSER_TESTS=1`
//! (set by `.ci/run`), where a missing browser fails them.
//!
//! Screenshots of every page go to `target/console-screenshots/`; with
//! `FUNDLEDGER_UPDATE_SCREENSHOTS=1` they are also copied to
//! `docs/console/`, the ones the README shows.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether the browser is there; when it is not, says so, and fails only
/// where browser tests are required.
fn browser_present(test: &str) -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER].into_iter().filter(|path| !Path::new(path).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{test}: {} missing (apt-get install chromium chromium-driver)", missing.join(" and "));
    assert!(
        std::env::var("FUNDLEDGER_BROWSER_TESTS").as_deref() != Ok("1"),
        "{why}; FUNDLEDGER_BROWSER_TESTS=1 requires the browser"
    );
    eprintln!("SKIPPED {why}");
    false
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let driver = Driver { child, url, _profile: tempfile::tempdir().unwrap() };
    let deadline = Instant::now() + Duration::from_secs(20);
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(2)).build();
    while agent.get(&format!("{}/status", driver.url)).call().is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not answer /status within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    driver
}

async fn open_browser(driver: &Driver) -> Client {
    let profile = driver._profile.path().display().to_string();
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--lang=zh-CN",
        &format!("--user-data-dir={profile}"),
    ];
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert("goog:chromeOptions".into(), json!({"binary": CHROMIUM, "args": args}));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector).capabilities(capabilities).connect(&driver.url).await.expect("a WebDriver session")
}

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Saves a screenshot of the current page (and, when asked, its copy for
/// the README).
async fn shot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(screenshots_dir().join(format!("{name}.png")), &png).unwrap();
    if std::env::var("FUNDLEDGER_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join("console");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
    }
}

async fn find(client: &Client, css: &str) -> Element {
    match client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await {
        Ok(element) => element,
        Err(error) => {
            let url = client.current_url().await.map(|url| url.to_string()).unwrap_or_default();
            let page = client.source().await.unwrap_or_default();
            panic!("no element `{css}` on {url}: {error}\n{page}")
        }
    }
}

async fn text_of(client: &Client, css: &str) -> String {
    find(client, css).await.text().await.unwrap()
}

async fn fill(client: &Client, css: &str, value: &str) {
    let input = find(client, css).await;
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

/// Clicks what leads to another page (a link, a submit button) and waits
/// until that page replaced this one: the old document's root goes stale.
async fn click(client: &Client, css: &str) {
    let old = client.find(Locator::Css("html")).await.unwrap();
    find(client, css).await.click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while old.tag_name().await.is_ok() {
        assert!(Instant::now() < deadline, "clicking `{css}` led to no new page within 10 s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn sign_in(client: &Client, server: &Server, token: &str) {
    client.goto(&server.url("/console/login")).await.unwrap();
    fill(client, "#token", token).await;
    click(client, "#sign-in").await;
    find(client, "#logout").await;
}

async fn sign_out(client: &Client) {
    click(client, "#logout").await;
    find(client, "#token").await;
}

#[test]
fn finance_and_risk_do_their_day_in_the_browser() {
    if !browser_present("finance_and_risk_do_their_day_in_the_browser") {
        return;
    }
    let server = Server::start();
    let buyer_name = "上海甲化工有限公司";
    let (buyer, buyer_sub) = server.open_account(buyer_name);
    let (seller, _) = server.open_account("江苏乙钢铁有限公司");
    server.deposit(&buyer_sub, buyer_name, "5000.00");
    let order = uid("O");
    let transfer = format!("pf-{order}");
    server.transfer_ok(&json!({"id": transfer, "type": "pay_freeze", "payer": buyer, "payee": seller,
        "amount": "1000.00", "order_id": order, "memo": "货款"}));
    let (status, answer) = server.notify(&notification(PUBLIC_ADJUSTMENT_ACCOUNT, "江苏乙钢铁有限公司", "800.00"));
    assert_eq!((status, answer["result"].as_str()), (200, Some("suspense")), "{answer}");
    let (_, application) = server.apply("浙江丁贸易有限公司", &credential_no());
    let application_id = application["application_id"].as_str().unwrap().to_string();

    let driver = start_driver();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let client = open_browser(&driver).await;

        // Finance: the dashboard, then an account by part of its name.
        sign_in(&client, &server, FINANCE).await;
        find(&client, "#metrics").await;
        shot(&client, "01-dashboard").await;
        client.goto(&server.url("/console/accounts")).await.unwrap();
        fill(&client, "#q", "甲化工").await;
        click(&client, "#search").await;
        let table = text_of(&client, "#accounts").await;
        assert!(table.contains(&buyer) && !table.contains(&seller), "search by name: {table}");
        shot(&client, "02-accounts").await;

        // Its journal, filtered, and the seller's open hold.
        click(&client, &format!("a[href='/console/accounts/{buyer}']")).await;
        assert_eq!(text_of(&client, "#available").await, "4000.00");
        let journal = text_of(&client, "#journal").await;
        assert!(journal.contains("deposit") && journal.contains("pay_freeze_out"), "{journal}");
        shot(&client, "03-account-journal").await;
        find(&client, "select[name=kind]").await.select_by_value("deposit").await.unwrap();
        click(&client, "#filter").await;
        let journal = text_of(&client, "#journal").await;
        assert!(journal.contains("deposit") && !journal.contains("pay_freeze_out"), "filtered: {journal}");
        client.goto(&server.url(&format!("/console/accounts/{seller}"))).await.unwrap();
        assert_eq!(text_of(&client, "#frozen").await, "1000.00");
        assert!(text_of(&client, "#holds").await.contains(&transfer));

        // The suspense entry: 调帐入款 of part of it, then the rest.
        client.goto(&server.url("/console/suspense")).await.unwrap();
        shot(&client, "04-suspense").await;
        fill(&client, "input[name=account_id]", &seller).await;
        fill(&client, "input[name=amount]", "300.00").await;
        fill(&client, "input[name=memo]", "电话确认 confirmed by phone").await;
        click(&client, "button.assign").await;
        let flash = text_of(&client, "#flash").await;
        assert!(flash.contains("调帐入款") && flash.contains("500.00 left"), "{flash}");
        assert_eq!(text_of(&client, ".remaining").await, "500.00");
        shot(&client, "05-suspense-assigned").await;
        fill(&client, "input[name=account_id]", &seller).await;
        click(&client, "button.assign").await;
        assert!(text_of(&client, "#flash").await.contains("0.00 left"));
        find(&client, "#no-suspense").await;
        assert_eq!(server.balance(&seller).available, 80_000, "the whole 800.00 assigned");

        // The transfer, its bank state, and its receipt, printed.
        client.goto(&server.url("/console/records")).await.unwrap();
        fill(&client, "#record-id", &transfer).await;
        click(&client, "#look-up").await;
        find(&client, "#bank-sync").await;
        shot(&client, "06-transfer").await;
        click(&client, "#receipt-link").await;
        let receipt = text_of(&client, "#receipt").await;
        assert!(receipt.contains("人民币壹仟元整") && receipt.contains(buyer_name), "{receipt}");
        assert!(find(&client, "#print").await.is_displayed().await.unwrap(), "the script shows the print button");
        shot(&client, "07-receipt").await;
        let pdf = client.print(fantoccini::wd::PrintConfiguration::default()).await.expect("print to PDF");
        assert!(pdf.starts_with(b"%PDF"), "a PDF");
        std::fs::write(screenshots_dir().join("07-receipt.pdf"), &pdf).unwrap();

        client.goto(&server.url("/console/bank")).await.unwrap();
        find(&client, "#no-failures").await;
        shot(&client, "08-bank").await;
        sign_out(&client).await;

        // Risk: the review queue, approve.
        sign_in(&client, &server, RISK).await;
        client.goto(&server.url("/console/applications")).await.unwrap();
        find(&client, &format!("#application-{application_id}")).await;
        let nav = text_of(&client, "nav.main").await;
        assert!(!nav.contains("Suspense"), "risk has no finance pages: {nav}");
        shot(&client, "09-applications").await;
        fill(&client, &format!("#application-{application_id} input[name=note]"), "证照齐全 documents checked").await;
        click(&client, &format!("#application-{application_id} button.approve")).await;
        let flash = text_of(&client, "#flash").await;
        assert!(flash.contains(&format!("{application_id} approved")), "{flash}");
        find(&client, "#no-applications").await;
        shot(&client, "10-application-approved").await;
        let shown = server.get_ok(&format!("/v1/applications/{application_id}"), RISK);
        assert_eq!(shown["status"], "approved", "{shown}");

        client.close().await.unwrap();
    });
}

#[test]
fn finance_reconciles_a_day_and_two_operators_resolve_its_discrepancy() {
    if !browser_present("finance_reconciles_a_day_and_two_operators_resolve_its_discrepancy") {
        return;
    }
    let server = Server::start();
    let (buyer, buyer_sub) = server.open_account("上海甲化工有限公司");
    let (seller, _) = server.open_account("江苏乙钢铁有限公司");
    server.deposit(&buyer_sub, "上海甲化工有限公司", "500.00");
    let transfer = uid("t");
    server
        .transfer_ok(&json!({"id": transfer, "type": "transfer", "payer": buyer, "payee": seller, "amount": "10.00"}));

    // The bank's statement as a file: the deposit only, so the transfer is
    // missing in the bank (one discrepancy).
    let day = today();
    let deposits = server.get_ok(&format!("/v1/accounts/{buyer}/journal?kind=deposit"), FINANCE);
    let notification_id = deposits["items"][0]["transfer_id"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("statement.csv");
    std::fs::write(
        &csv,
        format!(
            "bank_serial,reference,kind,account_no,counter_account_no,amount,booked_at\n\
             B-1,{notification_id},credit,{buyer_sub},{SETTLEMENT_ACCOUNT_NO},500.00,{day}T08:00:00.000Z\n"
        ),
    )
    .unwrap();

    let driver = start_driver();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let client = open_browser(&driver).await;
        sign_in(&client, &server, FINANCE).await;
        client.goto(&server.url("/console/reconciliations")).await.unwrap();
        find(&client, "#statement").await.send_keys(&csv.display().to_string()).await.unwrap();
        shot(&client, "11-reconciliation-form").await;
        click(&client, "#upload").await;
        assert_eq!(text_of(&client, "#missing-in-bank").await, "1");
        assert!(text_of(&client, "#discrepancies").await.contains(&transfer));
        shot(&client, "12-reconciliation").await;

        // li.si proposes and is offered no approve button (the API would
        // refuse it, tests/console.rs); zhao.liu approves.
        client.goto(&server.url("/console/discrepancies")).await.unwrap();
        fill(&client, ".discrepancy.open input[name=note]", "银行次日入账 bank booked it the next day").await;
        click(&client, ".discrepancy.open button.propose").await;
        assert!(text_of(&client, "#flash").await.contains("proposed"));
        assert!(text_of(&client, ".proposed-by").await.contains("li.si"));
        find(&client, "#no-open").await;
        shot(&client, "13-discrepancy-proposed").await;
        assert!(text_of(&client, ".discrepancy.proposed .waiting").await.contains("another operator"));
        let approve = client.find(Locator::Css(".discrepancy.proposed button.approve")).await;
        assert!(approve.is_err(), "the proposer is offered no approve button");
        sign_out(&client).await;
        sign_in(&client, &server, FINANCE_2).await;
        client.goto(&server.url("/console/discrepancies")).await.unwrap();
        fill(&client, ".discrepancy.proposed input[name=note]", "复核 checked").await;
        click(&client, ".discrepancy.proposed button.approve").await;
        let flash = text_of(&client, "#flash").await;
        assert!(flash.contains("approved by zhao.liu"), "{flash}");
        find(&client, "#no-proposed").await;
        shot(&client, "14-discrepancy-approved").await;
        let (status, resolved) = server.get("/v1/discrepancies?status=resolved", FINANCE);
        assert_eq!(status, 200);
        let item = &resolved["items"][0];
        assert_eq!(
            (item["proposed_by"].as_str(), item["approved_by"].as_str()),
            (Some("li.si"), Some("zhao.liu")),
            "{resolved}"
        );

        // A run on the bank's own statement for the day (fetched by the ledger).
        client.goto(&server.url("/console/reconciliations")).await.unwrap();
        click(&client, "#run").await;
        find(&client, "#summary").await;
        assert!(text_of(&client, "main").await.contains("fetched from the bank"));

        client.goto(&server.url("/console/")).await.unwrap();
        assert_eq!(text_of(&client, "#balanced").await, "平衡 BALANCED");
        shot(&client, "15-dashboard-trial-balance").await;
        client.close().await.unwrap();
    });
}
