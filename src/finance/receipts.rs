//! Electronic receipts (电子回单): what a committed movement or a credited
//! deposit proves, signed so that a printed or forwarded copy can be checked
//! (`POST /v1/receipts/verify`).
//!
//! Owns the receipt's content, its canonical form, its verification code and
//! its printable page. Reads only: receipts are built from the durable
//! records (the movement the client-id index holds, the deposit the
//! history journals hold) and the account directory (names, sub-accounts).
//!
//! # Verification code
//!
//! `verification_code` is the lowercase hex HMAC-SHA256, under the config's
//! `[receipts] key`, of the receipt's canonical form: the ASCII line
//! `fundledger-receipt-v1`, then one line per field in this fixed order,
//!
//! ```text
//! receipt_no, transfer_id, type,
//! payer.account_id, payer.name, payer.sub_account_no,
//! payee (only when null) | payee.account_id, payee.name, payee.sub_account_no,
//! amount, amount_in_words, order_id, committed_at
//! ```
//!
//! each line being `<name>!` for a null value and `<name>:<byte length>:<UTF-8
//! value>` otherwise, every line ending in `\n`. The length prefix makes the
//! form unambiguous whatever the values hold (newlines, colons), and null is
//! distinct from the empty string. Every field but the code itself is
//! covered, so changing any of them (even a payee's name, or the words) makes
//! the receipt fail verification. Values are compared as the text the
//! receipt shows: `"100.00"` and `"100.0"` are different receipts.
//!
//! # Deposits by notification id
//!
//! The history names each deposit by its `notification_id` in the archive
//! ([`crate::finance::archive::Tag::DepositNotificationId`]); the first
//! credit under an id wins (another bank reusing the id does not replace
//! it).

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::words::amount_in_words;
use crate::actors::directory::Directory;
use crate::domain::ids::AccountId;
use crate::domain::money::Money;
use crate::domain::record::{Adjustment, Deposit, Movement, Notification, TransferType, Withdrawal};

const CANONICAL_HEADER: &str = "fundledger-receipt-v1\n";

/// One side of a receipt. For a ledger account: its id, name and bank
/// sub-account. For a deposit's payer (a bank account outside the ledger):
/// no `account_id`, the remitter's name, and in `sub_account_no` the bank
/// account number the money came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Party {
    pub account_id: Option<String>,
    pub name: String,
    pub sub_account_no: Option<String>,
}

/// A receipt as the API shows it (API.md, Journal and receipts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub receipt_no: String,
    pub transfer_id: String,
    /// The movement's type (`transfer`, `freeze`, ...) or `deposit`.
    #[serde(rename = "type")]
    pub kind: String,
    pub payer: Party,
    /// Null for `freeze` and `unfreeze`: the money stays in the payer's
    /// account, moving between available and frozen.
    pub payee: Option<Party>,
    pub amount: String,
    pub amount_in_words: String,
    pub order_id: Option<String>,
    pub committed_at: String,
    pub verification_code: String,
}

/// The receipt number of the change committed at `lsn`: lsns are unique
/// ledger-wide, so receipt numbers are too.
pub fn receipt_no(lsn: u64) -> String {
    format!("R{lsn:012}")
}

/// The receipt signing key (`[receipts] key`).
pub struct ReceiptKey(Box<[u8]>);

impl ReceiptKey {
    pub fn new(key: &str) -> Self {
        Self(key.as_bytes().into())
    }

    fn mac(&self, receipt: &Receipt) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(&canonical(receipt));
        mac
    }

    /// Set `verification_code` from the other fields.
    pub fn sign(&self, receipt: &mut Receipt) {
        receipt.verification_code = hex::encode(self.mac(receipt).finalize().into_bytes());
    }

    /// Whether the code matches every other field (in constant time).
    pub fn verify(&self, receipt: &Receipt) -> bool {
        let code = receipt.verification_code.as_str();
        if code.len() != 64 || code.bytes().any(|b| b.is_ascii_uppercase()) {
            return false;
        }
        match hex::decode(code) {
            Ok(bytes) => self.mac(receipt).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }
}

/// The canonical form the code is computed over (see the module docs).
pub fn canonical(receipt: &Receipt) -> Vec<u8> {
    let mut out = String::with_capacity(512);
    out.push_str(CANONICAL_HEADER);
    let mut field = |name: &str, value: Option<&str>| match value {
        None => {
            let _ = writeln!(out, "{name}!");
        }
        Some(value) => {
            let _ = writeln!(out, "{name}:{}:{value}", value.len());
        }
    };
    field("receipt_no", Some(&receipt.receipt_no));
    field("transfer_id", Some(&receipt.transfer_id));
    field("type", Some(&receipt.kind));
    let mut party = |prefix: &str, party: Option<&Party>| match party {
        None => field(prefix, None),
        Some(party) => {
            field(&format!("{prefix}.account_id"), party.account_id.as_deref());
            field(&format!("{prefix}.name"), Some(&party.name));
            field(&format!("{prefix}.sub_account_no"), party.sub_account_no.as_deref());
        }
    };
    party("payer", Some(&receipt.payer));
    party("payee", receipt.payee.as_ref());
    field("amount", Some(&receipt.amount));
    field("amount_in_words", Some(&receipt.amount_in_words));
    field("order_id", receipt.order_id.as_deref());
    field("committed_at", Some(&receipt.committed_at));
    out.into_bytes()
}

fn account_party(directory: &Directory, account: AccountId) -> Party {
    let entry = directory.get(account);
    Party {
        account_id: Some(account.to_string()),
        // Accounts are never removed; a record naming one is only replayed
        // after its account was registered.
        name: entry.map(|entry| entry.info.name().to_string()).unwrap_or_default(),
        sub_account_no: entry.and_then(|entry| entry.sub_account_no()).map(str::to_owned),
    }
}

fn unsigned(
    lsn: u64,
    transfer_id: &str,
    kind: &str,
    (payer, payee): (Party, Option<Party>),
    amount: Money,
    order_id: Option<&str>,
    at_ms: i64,
) -> Receipt {
    Receipt {
        receipt_no: receipt_no(lsn),
        transfer_id: transfer_id.to_owned(),
        kind: kind.to_owned(),
        payer,
        payee,
        amount: amount.to_string(),
        amount_in_words: amount_in_words(amount),
        order_id: order_id.map(str::to_owned),
        committed_at: crate::clock::format_ms(at_ms),
        verification_code: String::new(),
    }
}

/// The signed receipt of a committed movement of any of the five types.
/// `payer` is the account money left (the hold's account for `unfreeze`
/// and `unfreeze_pay`).
pub fn movement_receipt(key: &ReceiptKey, directory: &Directory, lsn: u64, movement: &Movement) -> Receipt {
    let payer = account_party(directory, movement.payer);
    let payee = match movement.kind {
        TransferType::Transfer | TransferType::UnfreezePay | TransferType::PayFreeze => {
            movement.payee.map(|payee| account_party(directory, payee))
        }
        TransferType::Freeze | TransferType::Unfreeze => None,
    };
    let mut receipt = unsigned(
        lsn,
        &movement.id,
        movement.kind.as_str(),
        (payer, payee),
        movement.amount,
        movement.order_id.as_deref(),
        movement.committed_at_ms,
    );
    key.sign(&mut receipt);
    receipt
}

/// The signed receipt of a bank credit to a customer's available balance.
pub fn deposit_receipt(key: &ReceiptKey, directory: &Directory, lsn: u64, deposit: &Deposit) -> Receipt {
    let notification = &deposit.notification;
    let payer = Party {
        account_id: None,
        name: notification.payer_name.to_string(),
        sub_account_no: Some(notification.payer_account_no.to_string()),
    };
    let payee = account_party(directory, deposit.account_id);
    let mut receipt = unsigned(
        lsn,
        &notification.notification_id,
        "deposit",
        (payer, Some(payee)),
        notification.amount,
        None,
        deposit.at_ms,
    );
    key.sign(&mut receipt);
    receipt
}

/// The signed receipt of a withdrawal the bank paid out: from the account
/// to its settlement account (a bank account outside the ledger: no
/// `account_id`, `sub_account_no` is its account number). `receipt_no` is
/// the withdrawal's own lsn (when it was accepted and frozen);
/// `committed_at` is when the payout succeeded, when the money left.
pub fn withdrawal_receipt(
    key: &ReceiptKey,
    directory: &Directory,
    lsn: u64,
    withdrawal: &Withdrawal,
    paid_at_ms: i64,
) -> Receipt {
    let payer = account_party(directory, withdrawal.account_id);
    let settlement = &withdrawal.settlement_account;
    let payee = Party {
        account_id: None,
        name: settlement.account_name.to_string(),
        sub_account_no: Some(settlement.account_no.to_string()),
    };
    let mut receipt =
        unsigned(lsn, &withdrawal.id, "withdrawal", (payer, Some(payee)), withdrawal.amount, None, paid_at_ms);
    key.sign(&mut receipt);
    receipt
}

/// The signed receipt of an adjustment deposit (调帐入款): from the remitter
/// of the suspense entry it was credited out of, to the account.
pub fn adjustment_receipt(
    key: &ReceiptKey,
    directory: &Directory,
    lsn: u64,
    adjustment: &Adjustment,
    remitted: &Notification,
) -> Receipt {
    let payer = Party {
        account_id: None,
        name: remitted.payer_name.to_string(),
        sub_account_no: Some(remitted.payer_account_no.to_string()),
    };
    let payee = account_party(directory, adjustment.account_id);
    let mut receipt = unsigned(
        lsn,
        &adjustment.id,
        "adjustment_deposit",
        (payer, Some(payee)),
        adjustment.amount,
        None,
        adjustment.at_ms,
    );
    key.sign(&mut receipt);
    receipt
}

/// What the receipt handlers share: the key.
pub struct Receipts {
    pub key: ReceiptKey,
}

impl Receipts {
    pub fn new(key: &str) -> Self {
        Self { key: ReceiptKey::new(key) }
    }
}

/// A printable one-page receipt: HTML with inline styles only (no external
/// assets, so it prints offline), every value escaped.
pub fn render_html(receipt: &Receipt) -> String {
    let e = escape;
    let party_rows = |party: Option<&Party>| -> [String; 3] {
        match party {
            None => ["—".into(), "—".into(), "—".into()],
            Some(party) => [
                e(&party.name),
                e(party.account_id.as_deref().unwrap_or("—")),
                e(party.sub_account_no.as_deref().unwrap_or("—")),
            ],
        }
    };
    let [payer_name, payer_id, payer_sub] = party_rows(Some(&receipt.payer));
    let [payee_name, payee_id, payee_sub] = party_rows(receipt.payee.as_ref());
    format!(
        r#"<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<title>电子回单 Receipt {receipt_no}</title>
<style>
  @page {{ size: A4 portrait; margin: 18mm; }}
  body {{ font-family: "Songti SC", "SimSun", "Noto Serif CJK SC", serif; color: #000; margin: 0; }}
  .receipt {{ max-width: 180mm; margin: 12mm auto; border: 2px solid #000; padding: 8mm 10mm; }}
  h1 {{ text-align: center; font-size: 22pt; letter-spacing: 0.3em; margin: 0; }}
  .en {{ font-family: Helvetica, Arial, sans-serif; font-size: 8.5pt; color: #333; font-weight: normal; letter-spacing: 0; }}
  .subtitle {{ text-align: center; margin: 1mm 0 5mm; }}
  .meta {{ display: flex; justify-content: space-between; font-size: 10pt; margin-bottom: 3mm; }}
  table {{ width: 100%; border-collapse: collapse; font-size: 11pt; }}
  th, td {{ border: 1px solid #000; padding: 2.5mm 3mm; text-align: left; vertical-align: top; }}
  th {{ width: 24%; background: #f2f2f2; font-weight: bold; }}
  th.side {{ width: 8%; text-align: center; writing-mode: vertical-rl; letter-spacing: 0.4em; }}
  .amount {{ font-size: 13pt; font-weight: bold; }}
  .code {{ font-family: "Courier New", monospace; font-size: 9pt; word-break: break-all; }}
  .footer {{ margin-top: 5mm; font-size: 9pt; color: #333; }}
  @media print {{ .receipt {{ margin: 0 auto; }} th {{ -webkit-print-color-adjust: exact; print-color-adjust: exact; }} }}
</style>
</head>
<body>
<div class="receipt">
  <h1>电子回单</h1>
  <div class="subtitle en">Electronic Receipt</div>
  <div class="meta">
    <span>回单编号 <span class="en">Receipt No.</span>: <strong>{receipt_no}</strong></span>
    <span>交易时间 <span class="en">Committed at</span>: {committed_at}</span>
  </div>
  <table>
    <tr><th class="side" rowspan="3">付款方<br><span class="en">Payer</span></th>
        <th>户名 <span class="en">Name</span></th><td>{payer_name}</td></tr>
    <tr><th>资金账号 <span class="en">Account ID</span></th><td>{payer_id}</td></tr>
    <tr><th>账号 <span class="en">Account No.</span></th><td>{payer_sub}</td></tr>
    <tr><th class="side" rowspan="3">收款方<br><span class="en">Payee</span></th>
        <th>户名 <span class="en">Name</span></th><td>{payee_name}</td></tr>
    <tr><th>资金账号 <span class="en">Account ID</span></th><td>{payee_id}</td></tr>
    <tr><th>账号 <span class="en">Account No.</span></th><td>{payee_sub}</td></tr>
    <tr><th colspan="2">金额（小写） <span class="en">Amount</span></th><td class="amount">¥ {amount}</td></tr>
    <tr><th colspan="2">金额（大写） <span class="en">Amount in words</span></th><td class="amount">{amount_in_words}</td></tr>
    <tr><th colspan="2">业务类型 <span class="en">Type</span></th><td>{kind}</td></tr>
    <tr><th colspan="2">交易编号 <span class="en">Transaction ID</span></th><td>{transfer_id}</td></tr>
    <tr><th colspan="2">订单号 <span class="en">Order ID</span></th><td>{order_id}</td></tr>
    <tr><th colspan="2">验证码 <span class="en">Verification code</span></th><td class="code">{code}</td></tr>
  </table>
  <div class="footer">
    本回单由系统生成，可凭验证码核验真伪。
    <span class="en">Generated by the ledger; its verification code can be checked with POST /v1/receipts/verify.</span>
  </div>
</div>
</body>
</html>
"#,
        receipt_no = e(&receipt.receipt_no),
        committed_at = e(&receipt.committed_at),
        amount = e(&receipt.amount),
        amount_in_words = e(&receipt.amount_in_words),
        kind = e(&receipt.kind),
        transfer_id = e(&receipt.transfer_id),
        order_id = e(receipt.order_id.as_deref().unwrap_or("—")),
        code = e(&receipt.verification_code),
    )
}

/// HTML text and attribute escaping.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            ch => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Receipt {
        Receipt {
            receipt_no: receipt_no(42),
            transfer_id: "t-1".into(),
            kind: "transfer".into(),
            payer: Party {
                account_id: Some("F000001".into()),
                name: "上海某化工有限公司".into(),
                sub_account_no: Some("310940100000001".into()),
            },
            payee: Some(Party {
                account_id: Some("F000002".into()),
                name: "<script>alert(1)</script>".into(),
                sub_account_no: None,
            }),
            amount: "100.00".into(),
            amount_in_words: "人民币壹佰元整".into(),
            order_id: Some("O-1".into()),
            committed_at: "2026-11-24T08:39:01.123Z".into(),
            verification_code: String::new(),
        }
    }

    #[test]
    fn signs_and_verifies() {
        let key = ReceiptKey::new("k");
        let mut receipt = sample();
        key.sign(&mut receipt);
        assert_eq!(receipt.verification_code.len(), 64);
        assert!(key.verify(&receipt));
        assert!(!ReceiptKey::new("other").verify(&receipt));
    }

    type Change = Box<dyn Fn(&mut Receipt)>;

    #[test]
    fn any_changed_field_fails() {
        let key = ReceiptKey::new("k");
        let mut signed = sample();
        key.sign(&mut signed);
        let changes: Vec<Change> = vec![
            Box::new(|r| r.receipt_no.push('1')),
            Box::new(|r| r.transfer_id = "t-2".into()),
            Box::new(|r| r.kind = "freeze".into()),
            Box::new(|r| r.payer.account_id = None),
            Box::new(|r| r.payer.name.push(' ')),
            Box::new(|r| r.payer.sub_account_no = Some(String::new())),
            Box::new(|r| r.payee = None),
            Box::new(|r| r.payee.as_mut().unwrap().sub_account_no = Some("1".into())),
            Box::new(|r| r.amount = "100.0".into()),
            Box::new(|r| r.amount_in_words = "人民币壹仟元整".into()),
            Box::new(|r| r.order_id = None),
            Box::new(|r| r.committed_at = "2026-11-24T08:39:01.124Z".into()),
            Box::new(|r| r.verification_code = r.verification_code.to_uppercase()),
            Box::new(|r| r.verification_code.truncate(63)),
        ];
        for (index, change) in changes.iter().enumerate() {
            let mut changed = signed.clone();
            change(&mut changed);
            assert_ne!(changed, signed, "change {index} changes something");
            assert!(!key.verify(&changed), "change {index} still verifies");
        }
    }

    #[test]
    fn the_canonical_form_separates_null_empty_and_shifted_text() {
        let mut a = sample();
        a.payer.name = "ab".into();
        a.payer.sub_account_no = Some("c".into());
        let mut b = sample();
        b.payer.name = "a".into();
        b.payer.sub_account_no = Some("bc".into());
        assert_ne!(canonical(&a), canonical(&b));
        let mut c = sample();
        c.order_id = Some(String::new());
        let mut d = sample();
        d.order_id = None;
        assert_ne!(canonical(&c), canonical(&d));
        let text = String::from_utf8(canonical(&sample())).unwrap();
        assert!(text.starts_with("fundledger-receipt-v1\nreceipt_no:13:R000000000042\n"), "{text}");
        assert!(text.contains("payee.sub_account_no!\n"), "{text}");
    }

    #[test]
    fn html_escapes_every_value() {
        let mut receipt = sample();
        receipt.transfer_id = "a&b\"'".into();
        let html = render_html(&receipt);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("a&amp;b&quot;&#39;"));
        assert!(html.contains("人民币壹佰元整") && html.contains("电子回单") && html.contains("Electronic Receipt"));
        assert!(
            !html.contains("http://")
                && !html.contains("https://")
                && !html.contains("<link")
                && !html.contains("src=")
        );
    }
}
