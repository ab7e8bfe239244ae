//! What each scenario sends. A job number maps deterministically to its
//! request bodies (accounts are picked by hashing the job number), so workers
//! share nothing but an atomic job counter, and building a body is a few
//! `write!`s into a reused buffer.

use crate::binary;
use crate::util::{mix64, parse_cents};
use bytes::Bytes;
use clap::ValueEnum;
use serde::Serialize;
use std::fmt::Write;
use std::sync::Arc;

/// The largest batch the API takes.
pub const BATCH_SIZE_MAX: usize = 8190;
/// Items in one `mixed` chain: freeze, unfreeze, unfreeze_pay,
/// pay_freeze, unfreeze_pay (refund), transfer.
pub const CHAIN_ITEMS: usize = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// One transfer per POST /v1/transfers.
    Single,
    /// POST /v1/transfers/batch with --batch-size transfers between random accounts.
    Batch,
    /// Batches where every transfer has the same payer (one hot account).
    Hot,
    /// All five types, holds opened and released; batches of 6-item chains,
    /// or one request per item with --batch-size below 6.
    Mixed,
    /// Applications and approvals (POST /v1/applications + approve).
    Onboarding,
}

/// How batches are sent (`--body`): single transfers are always JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// `application/json`.
    #[default]
    Json,
    /// `application/vnd.fundledger.transfers+binary` (docs/API-notes.md).
    Binary,
}

/// One HTTP request of a job.
pub struct Request {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: Bytes,
    /// Transfers it carries (1 for a single transfer).
    pub transfers: u32,
    pub batch: bool,
}

pub struct Workload {
    pub scenario: Scenario,
    accounts: Arc<[Box<str>]>,
    run: String,
    batch_size: usize,
    amount: String,
    /// `amount` in fen, for binary bodies.
    amount_fen: i64,
    body: BodyFormat,
    seed: u64,
}

impl Workload {
    pub fn new(scenario: Scenario, accounts: Arc<[Box<str>]>, run: &str, batch_size: usize, amount: &str) -> Self {
        Self {
            scenario,
            accounts,
            run: run.to_string(),
            batch_size: batch_size.clamp(1, BATCH_SIZE_MAX),
            amount: amount.to_string(),
            amount_fen: parse_cents(amount).unwrap_or(1),
            body: BodyFormat::Json,
            seed: mix64(run.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))),
        }
    }

    /// Sends batches as `body` (single requests stay JSON).
    pub fn with_body(mut self, body: BodyFormat) -> Self {
        self.body = body;
        self
    }

    /// Transfers one job carries (customers for `onboarding`).
    pub fn transfers_per_job(&self) -> u64 {
        match self.scenario {
            Scenario::Single | Scenario::Onboarding => 1,
            Scenario::Batch | Scenario::Hot => self.batch_size as u64,
            Scenario::Mixed => (self.chains_per_batch() * CHAIN_ITEMS) as u64,
        }
    }

    /// Whether a job is one batch request (latency is per batch).
    pub fn is_batched(&self) -> bool {
        match self.scenario {
            Scenario::Single | Scenario::Onboarding => false,
            Scenario::Batch | Scenario::Hot => true,
            Scenario::Mixed => self.batch_size >= CHAIN_ITEMS,
        }
    }

    fn chains_per_batch(&self) -> usize {
        (self.batch_size / CHAIN_ITEMS).max(1)
    }

    fn pick(&self, transfer_no: u64) -> (&str, &str) {
        let n = self.accounts.len() as u64;
        let r = mix64(self.seed ^ transfer_no);
        let payer = if self.scenario == Scenario::Hot { 0 } else { r % n };
        let payee = if self.scenario == Scenario::Hot {
            1 + (r >> 20) % (n - 1)
        } else {
            (payer + 1 + (r >> 20) % (n - 1)) % n
        };
        (&self.accounts[payer as usize], &self.accounts[payee as usize])
    }

    /// Appends job `job`'s requests to `out`.
    pub fn build(&self, job: u64, out: &mut Vec<Request>, buffer: &mut String) {
        match self.scenario {
            Scenario::Onboarding => {}
            Scenario::Single => {
                buffer.clear();
                self.write_transfer(buffer, job);
                out.push(single(buffer));
            }
            Scenario::Batch | Scenario::Hot if self.body == BodyFormat::Binary => {
                let mut bytes = Vec::with_capacity(binary::HEADER_BYTES + self.batch_size * 40);
                binary::header(&mut bytes, self.batch_size);
                let first = job * self.batch_size as u64;
                for k in 0..self.batch_size as u64 {
                    self.write_binary_transfer(&mut bytes, buffer, first + k);
                }
                out.push(binary_batch(bytes, self.batch_size));
            }
            Scenario::Mixed if self.is_batched() && self.body == BodyFormat::Binary => {
                let chains = self.chains_per_batch() as u64;
                let mut bytes = Vec::with_capacity(binary::HEADER_BYTES + chains as usize * CHAIN_ITEMS * 40);
                binary::header(&mut bytes, chains as usize * CHAIN_ITEMS);
                for c in job * chains..(job + 1) * chains {
                    for item in 0..CHAIN_ITEMS {
                        self.write_binary_chain_item(&mut bytes, buffer, c, item);
                    }
                }
                out.push(binary_batch(bytes, chains as usize * CHAIN_ITEMS));
            }
            Scenario::Batch | Scenario::Hot => {
                buffer.clear();
                buffer.push_str("{\"transfers\":[");
                let first = job * self.batch_size as u64;
                for k in 0..self.batch_size as u64 {
                    if k > 0 {
                        buffer.push(',');
                    }
                    self.write_transfer(buffer, first + k);
                }
                buffer.push_str("]}");
                out.push(batch(buffer, self.batch_size));
            }
            Scenario::Mixed if self.is_batched() => {
                let chains = self.chains_per_batch() as u64;
                buffer.clear();
                buffer.push_str("{\"transfers\":[");
                for c in job * chains..(job + 1) * chains {
                    for item in 0..CHAIN_ITEMS {
                        if c > job * chains || item > 0 {
                            buffer.push(',');
                        }
                        self.write_chain_item(buffer, c, item);
                    }
                }
                buffer.push_str("]}");
                out.push(batch(buffer, chains as usize * CHAIN_ITEMS));
            }
            Scenario::Mixed => {
                for item in 0..CHAIN_ITEMS {
                    buffer.clear();
                    self.write_chain_item(buffer, job, item);
                    out.push(single(buffer));
                }
            }
        }
    }

    /// The JSON body of transfer `transfer_no` as `POST /v1/transfers`
    /// takes it: the same item a `single`, `batch` or `hot` job sends for
    /// that number (to retry it, or to look it up).
    pub fn transfer_body(&self, transfer_no: u64) -> String {
        let mut body = String::new();
        self.write_transfer(&mut body, transfer_no);
        body
    }

    fn write_transfer(&self, out: &mut String, transfer_no: u64) {
        let (payer, payee) = self.pick(transfer_no);
        let _ = write!(
            out,
            r#"{{"id":"lt-{}-{transfer_no}","type":"transfer","payer":"{payer}","payee":"{payee}","amount":"{}"}}"#,
            self.run, self.amount
        );
    }

    /// The binary item of `write_transfer`; `ids` is scratch for the id.
    fn write_binary_transfer(&self, out: &mut Vec<u8>, ids: &mut String, transfer_no: u64) {
        let (payer, payee) = self.pick(transfer_no);
        ids.clear();
        let _ = write!(ids, "lt-{}-{transfer_no}", self.run);
        let item = binary::Item {
            kind: binary::TRANSFER,
            id: ids,
            payer: Some(payer),
            payee: Some(payee),
            amount: Some(self.amount_fen),
            ..binary::Item::default()
        };
        binary::item(out, &item);
    }

    /// The binary item of `write_chain_item`; `ids` is scratch for its
    /// id, the hold it names and the order id, written one after another.
    fn write_binary_chain_item(&self, out: &mut Vec<u8>, ids: &mut String, chain: u64, item: usize) {
        let (a, b) = self.pick(chain);
        let run = &self.run;
        let hold = if item == 4 { "z" } else { "f" };
        ids.clear();
        let _ = write!(ids, "lt-{run}-{chain}-{}", ["f", "u", "p", "z", "r", "t"][item]);
        let id_end = ids.len();
        let _ = write!(ids, "lt-{run}-{chain}-{hold}");
        let hold_end = ids.len();
        let _ = write!(ids, "o-{run}-{chain}");
        let (id, hold_id, order_id) = (&ids[..id_end], &ids[id_end..hold_end], &ids[hold_end..]);
        let (kind, payer, payee, hold_id, amount, order_id) = match item {
            0 => (binary::FREEZE, Some(a), None, None, Some(3), None),
            1 => (binary::UNFREEZE, None, None, Some(hold_id), Some(1), None),
            2 => (binary::UNFREEZE_PAY, None, Some(b), Some(hold_id), None, None),
            3 => (binary::PAY_FREEZE, Some(a), Some(b), None, Some(2), None),
            4 => (binary::UNFREEZE_PAY, None, Some(a), Some(hold_id), None, None),
            _ => (binary::TRANSFER, Some(a), Some(b), None, Some(1), Some(order_id)),
        };
        binary::item(out, &binary::Item { kind, id, payer, payee, hold_id, amount, order_id });
    }

    /// Item `item` of chain `chain`: payer A, payee B, two holds.
    fn write_chain_item(&self, out: &mut String, chain: u64, item: usize) {
        let (a, b) = self.pick(chain);
        let run = &self.run;
        let _ = match item {
            0 => write!(out, r#"{{"id":"lt-{run}-{chain}-f","type":"freeze","payer":"{a}","amount":"0.03"}}"#),
            1 => write!(
                out,
                r#"{{"id":"lt-{run}-{chain}-u","type":"unfreeze","hold_id":"lt-{run}-{chain}-f","amount":"0.01"}}"#
            ),
            2 => write!(
                out,
                r#"{{"id":"lt-{run}-{chain}-p","type":"unfreeze_pay","hold_id":"lt-{run}-{chain}-f","payee":"{b}"}}"#
            ),
            3 => write!(
                out,
                r#"{{"id":"lt-{run}-{chain}-z","type":"pay_freeze","payer":"{a}","payee":"{b}","amount":"0.02"}}"#
            ),
            4 => write!(
                out,
                r#"{{"id":"lt-{run}-{chain}-r","type":"unfreeze_pay","hold_id":"lt-{run}-{chain}-z","payee":"{a}"}}"#
            ),
            _ => write!(
                out,
                r#"{{"id":"lt-{run}-{chain}-t","type":"transfer","payer":"{a}","payee":"{b}","amount":"0.01","order_id":"o-{run}-{chain}"}}"#
            ),
        };
    }
}

const JSON: &str = "application/json";

fn single(body: &str) -> Request {
    Request {
        path: "/v1/transfers",
        content_type: JSON,
        body: Bytes::copy_from_slice(body.as_bytes()),
        transfers: 1,
        batch: false,
    }
}

fn binary_batch(body: Vec<u8>, transfers: usize) -> Request {
    Request {
        path: "/v1/transfers/batch",
        content_type: binary::MEDIA_TYPE,
        body: Bytes::from(body),
        transfers: transfers as u32,
        batch: true,
    }
}

fn batch(body: &str, transfers: usize) -> Request {
    Request {
        path: "/v1/transfers/batch",
        content_type: JSON,
        body: Bytes::copy_from_slice(body.as_bytes()),
        transfers: transfers as u32,
        batch: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts(n: usize) -> Arc<[Box<str>]> {
        (1..=n).map(|i| format!("F{i:06}").into_boxed_str()).collect()
    }

    #[test]
    fn bodies_are_valid_json_with_distinct_accounts() {
        for scenario in [Scenario::Single, Scenario::Batch, Scenario::Hot, Scenario::Mixed] {
            let w = Workload::new(scenario, accounts(3), "abc", 12, "0.01");
            let (mut out, mut buf) = (Vec::new(), String::new());
            w.build(7, &mut out, &mut buf);
            assert!(!out.is_empty());
            for req in &out {
                let v: serde_json::Value = serde_json::from_slice(&req.body).expect("json");
                let items = match v.get("transfers") {
                    Some(t) => t.as_array().expect("array").clone(),
                    None => vec![v.clone()],
                };
                assert_eq!(items.len() as u32, req.transfers);
                for item in items {
                    if let (Some(p), Some(q)) = (item.get("payer"), item.get("payee")) {
                        assert_ne!(p, q, "{scenario:?}");
                    }
                    if scenario == Scenario::Hot {
                        assert_eq!(item["payer"], "F000001");
                    }
                }
            }
        }
        let w = Workload::new(Scenario::Mixed, accounts(2), "abc", 1, "0.01");
        let (mut out, mut buf) = (Vec::new(), String::new());
        w.build(0, &mut out, &mut buf);
        assert_eq!(out.len(), CHAIN_ITEMS);
        assert_eq!(w.transfers_per_job(), CHAIN_ITEMS as u64);
    }

    #[test]
    fn transfer_body_is_the_batch_item() {
        let w = Workload::new(Scenario::Batch, accounts(7), "abc", 4, "0.01");
        let (mut out, mut buf) = (Vec::new(), String::new());
        w.build(2, &mut out, &mut buf);
        let v: serde_json::Value = serde_json::from_slice(&out[0].body).unwrap();
        let item: serde_json::Value = serde_json::from_str(&w.transfer_body(9)).unwrap();
        assert_eq!(v["transfers"][1], item);
        assert_eq!(item["id"], "lt-abc-9");
    }

    /// The binary body's items, read back as JSON items (the document's
    /// layout, enough for these bodies: no memo).
    fn binary_items(body: &[u8]) -> Vec<serde_json::Value> {
        assert_eq!(&body[..6], b"FLTB\x01\x00");
        let count = u32::from_le_bytes(body[6..10].try_into().unwrap()) as usize;
        let mut at = binary::HEADER_BYTES;
        let mut items = Vec::new();
        let types = ["", "transfer", "freeze", "unfreeze", "unfreeze_pay", "pay_freeze"];
        for _ in 0..count {
            let (kind, flags) = (body[at], body[at + 1]);
            at += 2;
            let mut item = serde_json::json!({"type": types[usize::from(kind)]});
            for (bit, name) in [(0, "id"), (1, "payer"), (2, "payee"), (3, "hold_id"), (4, "amount"), (5, "order_id")] {
                if flags & (1 << bit) == 0 {
                    continue;
                }
                if name == "amount" {
                    let fen = i64::from_le_bytes(body[at..at + 8].try_into().unwrap());
                    item[name] = format!("{}.{:02}", fen / 100, fen % 100).into();
                    at += 8;
                } else {
                    let len = usize::from(body[at]);
                    item[name] = std::str::from_utf8(&body[at + 1..at + 1 + len]).unwrap().into();
                    at += 1 + len;
                }
            }
            assert_eq!(flags & 0xc0, 0);
            items.push(item);
        }
        assert_eq!(at, body.len(), "no bytes after the last item");
        items
    }

    #[test]
    fn binary_batches_carry_the_json_batches_items() {
        for scenario in [Scenario::Batch, Scenario::Hot, Scenario::Mixed] {
            let json = Workload::new(scenario, accounts(5), "abc", 12, "0.01");
            let binary = Workload::new(scenario, accounts(5), "abc", 12, "0.01").with_body(BodyFormat::Binary);
            let (mut a, mut b, mut buf) = (Vec::new(), Vec::new(), String::new());
            json.build(3, &mut a, &mut buf);
            binary.build(3, &mut b, &mut buf);
            assert_eq!((a.len(), b.len()), (1, 1));
            assert_eq!(b[0].content_type, binary::MEDIA_TYPE);
            assert_eq!(a[0].transfers, b[0].transfers);
            let v: serde_json::Value = serde_json::from_slice(&a[0].body).unwrap();
            let want: Vec<serde_json::Value> = v["transfers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| {
                    let mut item = item.clone();
                    // "0.01" and "0.010" alike: compare amounts as written by the decoder.
                    if let Some(amount) = item["amount"].as_str() {
                        let fen = parse_cents(amount).unwrap();
                        item["amount"] = format!("{}.{:02}", fen / 100, fen % 100).into();
                    }
                    item
                })
                .collect();
            assert_eq!(binary_items(&b[0].body), want, "{scenario:?}");
        }
    }
}
