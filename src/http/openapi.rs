//! `GET /v1/openapi.json` (no token): the server's own OpenAPI 3.1
//! description of every `/v1` route it serves, their bodies, roles and
//! error codes.
//!
//! Hand-maintained next to the code rather than derived by macros, so that
//! it can say what the handlers' hand-written parsers accept (amount and id
//! forms, which fields a type takes) and which codes each route answers.
//! What can come from the code does: error codes and their statuses from
//! [`ErrorCode`], journal kinds from [`JournalKind::ALL`], transfer types
//! from [`TransferType`]. `tests/openapi.rs` keeps the rest true: every
//! route in `src/http/` is described and served, every error code is
//! listed, examples and real answers validate against these schemas.
//!
//! Schemas are JSON Schema 2020-12 (OpenAPI 3.1); objects the server
//! writes list every property and refuse others, so the test catches a
//! field added to a response but not here.

use std::sync::OnceLock;

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use super::error::ErrorCode;
use super::transfers::json_response;
use super::AppState;
use crate::domain::record::{StatementKind, TransferType};
use crate::finance::history::JournalKind;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/openapi.json", get(serve))
}

async fn serve() -> Response {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    json_response(StatusCode::OK, DOCUMENT.get_or_init(document))
}

const TRANSFER_TYPES: [TransferType; 5] = [
    TransferType::Transfer,
    TransferType::Freeze,
    TransferType::Unfreeze,
    TransferType::UnfreezePay,
    TransferType::PayFreeze,
];

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn nullable(schema: Value) -> Value {
    json!({"oneOf": [schema, {"type": "null"}]})
}

fn nullable_string() -> Value {
    json!({"type": ["string", "null"]})
}

/// A closed object: every listed property required unless in `optional`.
fn object(properties: Value, optional: &[&str]) -> Value {
    let required: Vec<&String> = properties
        .as_object()
        .expect("properties is an object")
        .keys()
        .filter(|key| !optional.contains(&key.as_str()))
        .collect();
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

fn page(item: &str) -> Value {
    object(json!({"items": {"type": "array", "items": schema_ref(item)}, "next_cursor": nullable_string()}), &[])
}

fn schemas() -> Value {
    let mut codes: Vec<&str> = Vec::with_capacity(ErrorCode::ALL.len());
    for code in ErrorCode::ALL {
        if !codes.contains(&code.as_str()) {
            codes.push(code.as_str());
        }
    }
    let journal_kinds: Vec<&str> = JournalKind::ALL.iter().map(|kind| kind.as_str()).collect();
    let transfer_types: Vec<&str> = TRANSFER_TYPES.iter().map(|kind| kind.as_str()).collect();
    let movement = json!({
        "id": schema_ref("ClientId"),
        "type": {"type": "string", "enum": transfer_types},
        "status": {"const": "committed"},
        "lsn": schema_ref("Lsn"),
        "committed_at": schema_ref("Timestamp"),
        "payer": schema_ref("AccountId"),
        "payee": nullable(schema_ref("AccountId")),
        "amount": schema_ref("Money"),
        "order_id": nullable(schema_ref("ClientId")),
        "memo": nullable_string(),
        "hold": nullable(schema_ref("Hold")),
        "receipt_no": schema_ref("ReceiptNo"),
    });
    let mut transfer_record = movement.clone();
    transfer_record["bank_sync"] = schema_ref("BankSync");
    let suspense_entry = json!({
        "suspense_id": schema_ref("SuspenseId"),
        "bank": {"type": "string"},
        "bank_serial": {"type": "string"},
        "notification_id": {"type": "string"},
        "amount": schema_ref("Money"),
        "remaining": schema_ref("Money"),
        "payer_name": {"type": "string"},
        "payer_account_no": {"type": "string"},
        "reason": {"type": "string", "enum": ["adjustment_account", "name_mismatch", "unknown_account"]},
        "status": {"type": "string", "enum": ["open", "assigned", "returned"]},
        "booked_at": {"type": "string"},
    });
    let mut suspense_returned = suspense_entry.clone();
    suspense_returned["lsn"] = schema_ref("Lsn");
    let party = json!({"account_id": nullable(schema_ref("AccountId")), "name": {"type": "string"}, "sub_account_no": nullable_string()});
    let parts = [
        json!({
            "ErrorCode": {"type": "string", "enum": codes,
                "description": "Every error code the server answers; each route lists the ones it can answer under each status."},
            "Error": object(json!({"error": object(json!({"code": schema_ref("ErrorCode"), "message": {"type": "string"}}), &[])}), &[]),
            "Amount": {"type": "string", "pattern": "^(0|[1-9][0-9]{0,14})(\\.[0-9]{1,2})?$",
                "description": "A positive amount in yuan, at most 15 integer and 2 fractional digits, as a string (never a JSON number). Above zero.",
                "examples": ["100", "100.5", "0.01"]},
            "Money": {"type": "string", "pattern": "^-?(0|[1-9][0-9]*)\\.[0-9]{2}$",
                "description": "An amount or balance as the server writes it: always 2 fractional digits; deltas may be negative.",
                "examples": ["100.50", "0.00", "-3.07"]},
            "ClientId": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$",
                "description": "A client id (`id`, `order_id`, `hold_id`): 1 to 64 of A-Z a-z 0-9 _ - . :"},
            "AccountId": {"type": "string", "pattern": "^F[0-9]{6,}$", "examples": ["F000001"]},
            "ApplicationId": {"type": "string", "pattern": "^A[0-9]{6,}$", "examples": ["A000001"]},
            "Lsn": {"type": "integer", "minimum": 1,
                "description": "Log sequence number: unique ledger-wide, increasing in commit order."},
            "Timestamp": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
                "description": "RFC 3339 UTC with milliseconds."},
            "ReceiptNo": {"type": "string", "pattern": "^R[0-9]{12,}$",
                "description": "`R` and the lsn of the change, zero-padded to 12 digits."},
        }),
        json!({
            "Balance": object(json!({"total": schema_ref("Money"), "available": schema_ref("Money"), "frozen": schema_ref("Money")}), &[]),
            "SettlementAccount": object(json!({"bank_name": {"type": "string", "minLength": 1, "maxLength": 256},
                "account_no": {"type": "string", "minLength": 1, "maxLength": 256},
                "account_name": {"type": "string", "minLength": 1, "maxLength": 256}}), &[]),
            "ApplicationRequest": object(json!({
                "name": {"type": "string", "minLength": 1, "maxLength": 256},
                "credential_no": {"type": "string", "minLength": 1, "maxLength": 256},
                "bank": {"type": "string", "minLength": 1, "description": "A bank code from the config."},
                "settlement_account": schema_ref("SettlementAccount"),
            }), &[]),
            "ApproveRequest": object(json!({"note": {"type": ["string", "null"], "maxLength": 256}}), &["note"]),
            "RejectRequest": object(json!({"reason": {"type": "string", "minLength": 1, "maxLength": 256}}), &[]),
            "Application": object(json!({
                "application_id": schema_ref("ApplicationId"),
                "status": {"type": "string", "enum": ["pending_review", "approved", "rejected"]},
                "name": {"type": "string"},
                "credential_no": {"type": "string"},
                "bank": {"type": "string"},
                "settlement_account": schema_ref("SettlementAccount"),
                "account_id": nullable(schema_ref("AccountId")),
                "note": nullable_string(),
                "reason": nullable_string(),
                "created_at": schema_ref("Timestamp"),
                "decided_at": nullable(schema_ref("Timestamp")),
            }), &[]),
            "Account": object(json!({
                "account_id": schema_ref("AccountId"),
                "name": {"type": "string"},
                "status": {"type": "string", "enum": ["signing", "active", "sign_failed"]},
                "bank": {"type": "string"},
                "sub_account_no": nullable_string(),
                "balance": schema_ref("Balance"),
                "created_at": schema_ref("Timestamp"),
                "last_lsn": nullable(schema_ref("Lsn")),
            }), &[]),
            "AccountPage": page("Account"),
            "ApplicationPage": page("Application"),
            "BalanceAt": object(json!({
                "account_id": schema_ref("AccountId"),
                "at_lsn": {"type": "integer", "minimum": 0},
                "balance": schema_ref("Balance"),
                "last_lsn": nullable(schema_ref("Lsn")),
            }), &[]),
        }),
        json!({
            "JournalEntry": object(json!({
                "lsn": schema_ref("Lsn"),
                "at": schema_ref("Timestamp"),
                "kind": {"type": "string", "enum": journal_kinds},
                "transfer_id": {"type": "string", "minLength": 1},
                "order_id": nullable(schema_ref("ClientId")),
                "hold_id": nullable(schema_ref("ClientId")),
                "counterparty": nullable(schema_ref("AccountId")),
                "available_delta": schema_ref("Money"),
                "frozen_delta": schema_ref("Money"),
                "available_after": schema_ref("Money"),
                "frozen_after": schema_ref("Money"),
                "total_after": schema_ref("Money"),
            }), &[]),
            "JournalPage": page("JournalEntry"),
            "TransferRequest": {
                "type": "object",
                "description": "One shape, five types. `transfer` and `pay_freeze` take payer, payee, amount; `freeze` payer, amount; `unfreeze` hold_id and an optional amount (default: the hold's remaining); `unfreeze_pay` hold_id, payee and an optional amount. A field the type does not take is 400 UNEXPECTED_FIELD, one it needs and lacks 400 MISSING_FIELD.",
                "properties": {
                    "id": schema_ref("ClientId"),
                    "type": {"type": "string", "enum": transfer_types},
                    "payer": schema_ref("AccountId"),
                    "payee": schema_ref("AccountId"),
                    "hold_id": schema_ref("ClientId"),
                    "amount": schema_ref("Amount"),
                    "order_id": schema_ref("ClientId"),
                    "memo": {"type": "string", "maxLength": 256},
                },
                "required": ["id", "type"],
                "additionalProperties": false,
            },
            "Hold": object(json!({
                "hold_id": schema_ref("ClientId"),
                "account_id": schema_ref("AccountId"),
                "amount": schema_ref("Money"),
                "remaining": schema_ref("Money"),
                "status": {"type": "string", "enum": ["open", "closed"]},
            }), &[]),
            "HoldRecord": object(json!({
                "hold_id": schema_ref("ClientId"),
                "account_id": schema_ref("AccountId"),
                "amount": schema_ref("Money"),
                "remaining": schema_ref("Money"),
                "status": {"type": "string", "enum": ["open", "closed"]},
                "movements": {"type": "array", "items": schema_ref("ClientId")},
            }), &[]),
        }),
        json!({
            "Transfer": object(movement, &[]),
            "TransferPage": page("Transfer"),
            "BankSync": object(json!({
                "status": {"type": "string", "enum": ["pending", "confirmed", "failed"]},
                "bank_serial": nullable_string(),
                "failure_reason": nullable_string(),
            }), &[]),
            "TransferRecord": object(transfer_record, &[]),
            "BatchRequest": object(json!({"transfers": {"type": "array", "minItems": 1, "maxItems": crate::limits::BATCH_ITEMS_MAX,
                "items": {"type": "object", "description": "A TransferRequest; an invalid item gets its own 400 result."}}}), &[]),
            "BatchResult": object(json!({"results": {"type": "array", "items": {"oneOf": [
                object(json!({"status": {"const": 201}, "body": schema_ref("Transfer")}), &[]),
                object(json!({"status": {"type": "integer", "minimum": 400, "maximum": 599}, "body": schema_ref("Error")}), &[]),
            ]}}}), &[]),
            "Notification": object(json!({
                "notification_id": schema_ref("ClientId"),
                "kind": {"const": "credit"},
                "bank_serial": schema_ref("ClientId"),
                "to_account_no": {"type": "string", "minLength": 1, "maxLength": 256},
                "amount": schema_ref("Amount"),
                "payer_name": {"type": "string", "minLength": 1, "maxLength": 256},
                "payer_account_no": {"type": "string", "minLength": 1, "maxLength": 256},
                "booked_at": {"type": "string", "description": "RFC 3339"},
            }), &[]),
            "NotificationResult": {"oneOf": [
                object(json!({"result": {"const": "credited"}, "account_id": schema_ref("AccountId"), "lsn": schema_ref("Lsn")}), &[]),
                object(json!({"result": {"const": "suspense"}, "suspense_id": {"type": "string", "pattern": "^S[0-9]{6,}$"},
                    "reason": {"type": "string", "enum": ["adjustment_account", "name_mismatch", "unknown_account"]},
                    "lsn": schema_ref("Lsn")}), &[]),
            ]},
            "Party": object(party, &[]),
        }),
        json!({
                "Receipt": {
                    "description": "An electronic receipt (电子回单). `verification_code` is the lowercase hex HMAC-SHA256 under the `[receipts] key` of the canonical form of every other field: the line `fundledger-receipt-v1`, then for receipt_no, transfer_id, type, payer.account_id, payer.name, payer.sub_account_no, payee (when null) or payee.account_id, payee.name, payee.sub_account_no, amount, amount_in_words, order_id, committed_at, in this order, a line `<name>!` for null or `<name>:<UTF-8 byte length>:<value>`, each line ending in \\n. For a deposit the payer is the remitting bank account: account_id null, sub_account_no its account number. `payee` is null for freeze and unfreeze.",
                    "type": "object",
                    "properties": {
                        "receipt_no": schema_ref("ReceiptNo"),
                        "transfer_id": {"type": "string", "minLength": 1},
                        "type": {"type": "string", "enum": transfer_types.iter().copied().chain(["deposit", "withdrawal", "adjustment_deposit"]).collect::<Vec<_>>()},
                        "payer": schema_ref("Party"),
                        "payee": nullable(schema_ref("Party")),
                        "amount": schema_ref("Money"),
                        "amount_in_words": {"type": "string", "pattern": "^人民币"},
                        "order_id": nullable(schema_ref("ClientId")),
                        "committed_at": schema_ref("Timestamp"),
                        "verification_code": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    },
                    "required": ["receipt_no", "transfer_id", "type", "payer", "payee", "amount", "amount_in_words", "order_id", "committed_at", "verification_code"],
                    "additionalProperties": false,
                },
                "ReceiptToVerify": {
                    "description": "A receipt as GET .../receipt gave it. Syntax is checked (400: unknown fields, missing fields, wrong JSON types); any changed value answers valid: false.",
                    "type": "object",
                    "properties": {
                        "receipt_no": {"type": "string"}, "transfer_id": {"type": "string"}, "type": {"type": "string"},
                        "payer": schema_ref("PartyToVerify"), "payee": nullable(schema_ref("PartyToVerify")),
                        "amount": {"type": "string"}, "amount_in_words": {"type": "string"}, "order_id": nullable_string(),
                        "committed_at": {"type": "string"}, "verification_code": {"type": "string"},
                    },
                    "required": ["receipt_no", "transfer_id", "type", "payer", "amount", "amount_in_words", "committed_at", "verification_code"],
                    "additionalProperties": false,
                },
                "PartyToVerify": object(json!({"account_id": nullable_string(), "name": {"type": "string"}, "sub_account_no": nullable_string()}), &["account_id", "sub_account_no"]),
                "VerifyResult": object(json!({"valid": {"type": "boolean"}}), &[]),
        }),
        json!({
        "WithdrawalRequest": object(json!({"id": schema_ref("ClientId"), "account_id": schema_ref("AccountId"),
            "amount": schema_ref("Amount"), "memo": {"type": "string", "maxLength": 256}}), &["memo"]),
        "Withdrawal": object(json!({
            "id": schema_ref("ClientId"),
            "account_id": schema_ref("AccountId"),
            "amount": schema_ref("Money"),
            "status": {"type": "string", "enum": ["processing", "succeeded", "failed"]},
            "settlement_account": schema_ref("SettlementAccount"),
            "lsn": schema_ref("Lsn"),
            "created_at": schema_ref("Timestamp"),
            "finished_at": nullable(schema_ref("Timestamp")),
            "failure_reason": nullable_string(),
            "bank_serial": nullable_string(),
        }), &[]),
        "SuspenseId": {"type": "string", "pattern": "^S[0-9]{6,}$", "examples": ["S000001"]},
        "SuspenseEntry": object(suspense_entry.clone(), &[]),
        "SuspensePage": page("SuspenseEntry"),
        "DayFigures": object(json!({
            "date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
            "lsn": {"type": "integer", "minimum": 0},
            "money_in": schema_ref("Money"),
            "money_in_count": {"type": "integer", "minimum": 0},
            "money_out": schema_ref("Money"),
            "money_out_count": {"type": "integer", "minimum": 0},
            "transfers": schema_ref("Money"),
            "transfers_count": {"type": "integer", "minimum": 0},
        }), &[]),
        "WithdrawalPage": page("Withdrawal"),
        "SuspenseReturned": object(suspense_returned, &[]),
        "SuspenseReturnRequest": object(json!({"id": schema_ref("ClientId"), "memo": {"type": "string", "maxLength": 256}}), &["memo"]),
        "AdjustmentRequest": object(json!({"id": schema_ref("ClientId"), "suspense_id": schema_ref("SuspenseId"),
            "account_id": schema_ref("AccountId"), "amount": schema_ref("Amount"), "memo": {"type": "string", "maxLength": 256}}), &["memo"]),
        "Adjustment": object(json!({
            "id": schema_ref("ClientId"),
            "suspense_id": schema_ref("SuspenseId"),
            "account_id": schema_ref("AccountId"),
            "amount": schema_ref("Money"),
            "remaining": schema_ref("Money"),
            "balance": schema_ref("Balance"),
            "lsn": schema_ref("Lsn"),
            "operator": {"type": "string"},
        }), &[]),
        "SandboxCreditRequest": object(json!({
            "to_account_no": {"type": "string", "minLength": 1, "maxLength": 256},
            "amount": schema_ref("Amount"),
            "payer_name": {"type": "string", "minLength": 1, "maxLength": 256},
            "payer_account_no": {"type": "string", "minLength": 1, "maxLength": 256},
        }), &[]),
        "BankSyncFailure": object(json!({
            "reference": {"type": "string"},
            "kind": {"type": "string", "enum": ["forced_transfer", "adjustment", "return"]},
            "bank": {"type": "string"},
            "status": {"const": "failed"},
            "failure_reason": nullable_string(),
            "lsn": schema_ref("Lsn"),
            "at": schema_ref("Timestamp"),
        }), &[]),
        "BankSyncFailurePage": page("BankSyncFailure"),
        "SandboxCreditAccepted": object(json!({"notification_id": {"type": "string"}, "bank_serial": {"type": "string"}}), &[]),
        }),
        finance_schemas(),
    ];
    let mut all = Map::new();
    for part in parts {
        let Value::Object(part) = part else { unreachable!("json! objects") };
        all.extend(part);
    }
    Value::Object(all)
}

/// Reconciliation, discrepancies and the trial balance.
fn finance_schemas() -> Value {
    let statement_kinds: Vec<&str> = StatementKind::ALL.iter().map(|kind| kind.as_str()).collect();
    let discrepancy_kinds = ["missing_in_ledger", "missing_in_bank", "amount_mismatch"];
    let statuses = ["open", "proposed", "resolved"];
    let text = json!({"type": "string", "maxLength": 256});
    json!({
        "ReconciliationId": {"type": "string", "pattern": "^REC[0-9]{6,}$", "examples": ["REC000001"]},
        "DiscrepancyId": {"type": "string", "pattern": "^D[0-9]{6,}$", "examples": ["D000001"]},
        "Date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "description": "A UTC day, YYYY-MM-DD.", "examples": ["2026-11-24"]},
        "StatementLine": object(json!({
            "bank_serial": text.clone(),
            "reference": schema_ref("ClientId"),
            "kind": {"type": "string", "enum": statement_kinds},
            "account_no": text.clone(),
            "counter_account_no": text.clone(),
            "amount": schema_ref("Amount"),
            "booked_at": text.clone(),
        }), &["bank_serial", "account_no", "counter_account_no", "booked_at"]),
        "ReconciliationRequest": {
            "description": "Without `statement` (or with null) the bank's adaptor fetches the day's statement. With it, the uploaded lines are the bank's lines for that date whatever their booked_at. The body is parsed as a stream (up to limits.max_statement_bytes, a pause over 30 s between chunks is 408) and each line is matched as it arrives, so `bank` and `date` must come before `statement` (else 400 INVALID_FIELD naming statement). A bad line is 400 naming `statement[i].field`.",
            "type": "object",
            "properties": {
                "bank": {"type": "string", "minLength": 1},
                "date": schema_ref("Date"),
                "statement": {"type": ["array", "null"], "items": schema_ref("StatementLine")},
            },
            "required": ["bank", "date"],
            "additionalProperties": false,
        },
        "ReconciliationSummary": object(json!({
            "bank_lines": {"type": "integer", "minimum": 0},
            "ledger_lines": {"type": "integer", "minimum": 0},
            "matched": {"type": "integer", "minimum": 0},
            "missing_in_ledger": {"type": "integer", "minimum": 0},
            "missing_in_bank": {"type": "integer", "minimum": 0},
            "amount_mismatch": {"type": "integer", "minimum": 0},
        }), &[]),
        "ReconciliationDiscrepancy": object(json!({
            "discrepancy_id": schema_ref("DiscrepancyId"),
            "kind": {"type": "string", "enum": discrepancy_kinds},
            "reference": {"type": "string"},
            "ledger_amount": nullable(schema_ref("Money")),
            "bank_amount": nullable(schema_ref("Money")),
            "status": {"type": "string", "enum": statuses},
        }), &[]),
        "Reconciliation": {
            "description": "Lines are matched by reference (a ledger line of the same kind first). `summary` counts every line; `discrepancies` lists the first 500 (missing_in_ledger and amount_mismatch in statement order, then missing_in_bank in commit order), `discrepancies_truncated` says whether there were more. Each discrepancy is a record finance resolves (GET /v1/discrepancies); `status` is its current status.",
            "type": "object",
            "properties": {
                "reconciliation_id": schema_ref("ReconciliationId"),
                "bank": {"type": "string"},
                "date": schema_ref("Date"),
                "source": {"type": "string", "enum": ["uploaded", "bank"]},
                "summary": schema_ref("ReconciliationSummary"),
                "discrepancies": {"type": "array", "maxItems": crate::limits::RECONCILIATION_DISCREPANCIES_MAX, "items": schema_ref("ReconciliationDiscrepancy")},
                "discrepancies_truncated": {"type": "boolean"},
                "created_at": schema_ref("Timestamp"),
                "operator": {"type": "string"},
                "lsn": schema_ref("Lsn"),
            },
            "required": ["reconciliation_id", "bank", "date", "source", "summary", "discrepancies", "discrepancies_truncated", "created_at", "operator", "lsn"],
            "additionalProperties": false,
        },
        "Discrepancy": object(json!({
            "discrepancy_id": schema_ref("DiscrepancyId"),
            "reconciliation_id": schema_ref("ReconciliationId"),
            "bank": {"type": "string"},
            "date": schema_ref("Date"),
            "kind": {"type": "string", "enum": discrepancy_kinds},
            "reference": {"type": "string"},
            "ledger_amount": nullable(schema_ref("Money")),
            "bank_amount": nullable(schema_ref("Money")),
            "status": {"type": "string", "enum": statuses},
            "note": nullable_string(),
            "adjustment_id": nullable(schema_ref("ClientId")),
            "proposed_by": nullable_string(),
            "proposed_at": nullable(schema_ref("Timestamp")),
            "approved_by": nullable_string(),
            "approval_note": nullable_string(),
            "resolved_at": nullable(schema_ref("Timestamp")),
        }), &[]),
        "DiscrepancyPage": page("Discrepancy"),
        "ResolveRequest": {
            "description": "A note, or the id of an adjustment deposit that put the difference right (with an optional note); at least one (else 400 MISSING_FIELD naming note).",
            "type": "object",
            "properties": {"note": text.clone(), "adjustment_id": schema_ref("ClientId")},
            "additionalProperties": false,
        },
        "ApproveDiscrepancyRequest": object(json!({"note": text}), &["note"]),
        "TrialBalance": object(json!({
            "lsn": {"type": "integer", "minimum": 0},
            "customer_available": schema_ref("Money"),
            "customer_frozen": schema_ref("Money"),
            "customer_total": schema_ref("Money"),
            "suspense_open": schema_ref("Money"),
            "bank_custody": schema_ref("Money"),
            "withdrawals_in_flight": schema_ref("Money"),
            "balanced": {"type": "boolean"},
        }), &[]),
    })
}

/// Who may call an operation.
#[derive(Clone, Copy)]
enum Access {
    Roles(&'static [&'static str]),
    BankSignature,
    Open,
}

struct Operation {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    access: Access,
    params: Vec<Value>,
    request: Option<(&'static str, Value)>,
    /// Success status, description, media type and schema name.
    success: (u16, &'static str, &'static str, Option<&'static str>),
    errors: &'static [ErrorCode],
}

fn path_param(name: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}

fn query_param(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

fn pagination() -> Vec<Value> {
    vec![
        query_param("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}), "page size"),
        query_param("cursor", json!({"type": "string"}), "the `next_cursor` of the previous page"),
    ]
}

fn journal_filters() -> Vec<Value> {
    let kinds: Vec<&str> = JournalKind::ALL.iter().map(|kind| kind.as_str()).collect();
    vec![
        query_param("from", json!({"type": "string"}), "RFC 3339 instant or date, inclusive"),
        query_param("to", json!({"type": "string"}), "RFC 3339 instant or date, exclusive"),
        query_param("kind", json!({"type": "string", "enum": kinds}), "one journal kind"),
        query_param("after_lsn", json!({"type": "integer", "minimum": 0}), "entries after this lsn"),
    ]
}

fn receipt_format() -> Value {
    query_param(
        "format",
        json!({"type": "string", "enum": ["json", "html"], "default": "json"}),
        "`html`: a printable one-page receipt",
    )
}

const PLATFORM: &[&str] = &["platform"];
const READERS: &[&str] = &["platform", "finance"];
const RISK: &[&str] = &["risk"];
const FINANCE: &[&str] = &["finance"];
const ADMIN: &[&str] = &["admin"];

fn operations() -> Vec<Operation> {
    use ErrorCode::*;
    let id = |name: &str, schema: &str| path_param(name, schema_ref(schema));
    let text_id = |name: &str| path_param(name, json!({"type": "string"}));
    vec![
        Operation {
            method: "post",
            path: "/v1/applications",
            summary: "Open an account application",
            access: Access::Roles(PLATFORM),
            params: vec![],
            request: Some((
                "ApplicationRequest",
                json!({"name": "上海某化工有限公司", "credential_no": "91310000MA1FL0XXXX", "bank": "SIMBANK",
                    "settlement_account": {"bank_name": "某银行上海分行", "account_no": "6222020000000001", "account_name": "上海某化工有限公司"}}),
            )),
            success: (201, "the application, pending review", "application/json", Some("Application")),
            errors: &[DuplicateCustomer, NameMismatch, UnknownBankRule],
        },
        Operation {
            method: "get",
            path: "/v1/applications",
            summary: "Applications in id order (the review queue with status=pending_review)",
            access: Access::Roles(&["platform", "risk"]),
            params: [
                vec![query_param(
                    "status",
                    json!({"type": "string", "enum": ["pending_review", "approved", "rejected"]}),
                    "only applications in this status",
                )],
                pagination(),
            ]
            .concat(),
            request: None,
            success: (200, "a page of applications", "application/json", Some("ApplicationPage")),
            errors: &[],
        },
        Operation {
            method: "get",
            path: "/v1/applications/{id}",
            summary: "An application",
            access: Access::Roles(&["platform", "risk"]),
            params: vec![id("id", "ApplicationId")],
            request: None,
            success: (200, "the application", "application/json", Some("Application")),
            errors: &[ApplicationNotFound],
        },
        Operation {
            method: "post",
            path: "/v1/applications/{id}/approve",
            summary: "Approve an application: opens the account (status signing) and starts bank signing",
            access: Access::Roles(RISK),
            params: vec![id("id", "ApplicationId")],
            request: Some(("ApproveRequest", json!({"note": "documents checked"}))),
            success: (200, "the application, approved, with its account_id", "application/json", Some("Application")),
            errors: &[ApplicationNotFound, InvalidState, TooManyAccounts],
        },
        Operation {
            method: "post",
            path: "/v1/applications/{id}/reject",
            summary: "Reject an application",
            access: Access::Roles(RISK),
            params: vec![id("id", "ApplicationId")],
            request: Some(("RejectRequest", json!({"reason": "credential does not match"}))),
            success: (200, "the application, rejected", "application/json", Some("Application")),
            errors: &[ApplicationNotFound, InvalidState],
        },
        Operation {
            method: "get",
            path: "/v1/accounts",
            summary: "Accounts in id order",
            access: Access::Roles(&["platform", "finance", "risk"]),
            params: [
                vec![query_param(
                    "status",
                    json!({"type": "string", "enum": ["signing", "active", "sign_failed"]}),
                    "only accounts in this status",
                )],
                pagination(),
            ]
            .concat(),
            request: None,
            success: (200, "a page of accounts", "application/json", Some("AccountPage")),
            errors: &[],
        },
        Operation {
            method: "get",
            path: "/v1/accounts/{id}",
            summary: "An account and its balance",
            access: Access::Roles(READERS),
            params: vec![id("id", "AccountId")],
            request: None,
            success: (200, "the account", "application/json", Some("Account")),
            errors: &[AccountNotFound],
        },
        Operation {
            method: "get",
            path: "/v1/accounts/{id}/journal",
            summary: "The account's journal (流水), oldest first",
            access: Access::Roles(READERS),
            params: [vec![id("id", "AccountId")], journal_filters(), pagination()].concat(),
            request: None,
            success: (200, "a page of journal entries", "application/json", Some("JournalPage")),
            errors: &[AccountNotFound],
        },
        Operation {
            method: "get",
            path: "/v1/accounts/{id}/journal.csv",
            summary: "The whole journal as CSV (RFC 4180, header row, CRLF), with the journal's filters",
            access: Access::Roles(READERS),
            params: [vec![id("id", "AccountId")], journal_filters()].concat(),
            request: None,
            success: (
                200,
                "columns lsn,at,kind,transfer_id,order_id,hold_id,counterparty,available_delta,frozen_delta,available_after,frozen_after,total_after; a text cell starting with = + - @ is prefixed with '",
                "text/csv",
                None,
            ),
            errors: &[AccountNotFound],
        },
        Operation {
            method: "get",
            path: "/v1/accounts/{id}/balance",
            summary: "The account's balance as of a past lsn, from its journal",
            access: Access::Roles(READERS),
            params: vec![
                id("id", "AccountId"),
                query_param(
                    "at_lsn",
                    json!({"type": "integer", "minimum": 0}),
                    "as of this lsn (default: the latest durable); beyond the latest is 400",
                ),
            ],
            request: None,
            success: (200, "the balance after every journal entry up to at_lsn", "application/json", Some("BalanceAt")),
            errors: &[AccountNotFound],
        },
        Operation {
            method: "post",
            path: "/v1/banks/{bank}/notifications",
            summary: "A bank's credit notification (signed with X-Signature, no token)",
            access: Access::BankSignature,
            params: vec![text_id("bank")],
            request: Some((
                "Notification",
                json!({"notification_id": "N20261124000001", "kind": "credit", "bank_serial": "B20261124000001",
                    "to_account_no": "310940100000001", "amount": "5000.00", "payer_name": "上海某化工有限公司",
                    "payer_account_no": "6222020000000001", "booked_at": "2026-11-24T08:39:01.123Z"}),
            )),
            success: (200, "credited, or put in suspense; the same bank_serial again gives the original answer", "application/json", Some("NotificationResult")),
            errors: &[UnknownBank, InvalidAmount, InvalidId],
        },
        Operation {
            method: "post",
            path: "/v1/transfers",
            summary: "One order transfer of any of the five types",
            access: Access::Roles(PLATFORM),
            params: vec![],
            request: Some((
                "TransferRequest",
                json!({"id": "t-1", "type": "transfer", "payer": "F000001", "payee": "F000002", "amount": "100", "order_id": "O-1"}),
            )),
            success: (201, "committed (a retry with the same id and fields gets the same answer)", "application/json", Some("Transfer")),
            errors: &[
                InvalidAmount,
                InvalidId,
                InvalidType,
                AccountNotFound,
                HoldNotFound,
                IdReused,
                AccountNotActive,
                SameAccount,
                InsufficientFunds,
                HoldClosed,
                HoldExceeded,
                BalanceOverflow,
            ],
        },
        Operation {
            method: "post",
            path: "/v1/transfers/batch",
            summary: "Up to 8190 transfers, judged one by one, answered after one fsync",
            access: Access::Roles(PLATFORM),
            params: vec![],
            request: Some((
                "BatchRequest",
                json!({"transfers": [{"id": "b-1", "type": "freeze", "payer": "F000001", "amount": "10"},
                    {"id": "b-2", "type": "unfreeze_pay", "hold_id": "b-1", "payee": "F000002"}]}),
            )),
            success: (200, "one result per item, in order", "application/json", Some("BatchResult")),
            errors: &[InvalidBatch],
        },
        Operation {
            method: "get",
            path: "/v1/transfers/{id}",
            summary: "A committed transfer and its bank sync",
            access: Access::Roles(READERS),
            params: vec![text_id("id")],
            request: None,
            success: (200, "the committed record", "application/json", Some("TransferRecord")),
            errors: &[TransferNotFound],
        },
        Operation {
            method: "get",
            path: "/v1/transfers/{id}/receipt",
            summary: "The transfer's electronic receipt (电子回单)",
            access: Access::Roles(READERS),
            params: vec![text_id("id"), receipt_format()],
            request: None,
            success: (200, "the receipt (JSON), or with format=html a printable page (text/html)", "application/json", Some("Receipt")),
            errors: &[TransferNotFound],
        },
        Operation {
            method: "get",
            path: "/v1/deposits/{notification_id}/receipt",
            summary: "The receipt of a credited bank notification (none for one put in suspense)",
            access: Access::Roles(READERS),
            params: vec![text_id("notification_id"), receipt_format()],
            request: None,
            success: (200, "the receipt (JSON), or with format=html a printable page (text/html)", "application/json", Some("Receipt")),
            errors: &[ReceiptNotFound],
        },
        Operation {
            method: "get",
            path: "/v1/withdrawals/{id}/receipt",
            summary: "The receipt of a withdrawal the bank paid out (to the settlement account)",
            access: Access::Roles(READERS),
            params: vec![text_id("id"), receipt_format()],
            request: None,
            success: (200, "the receipt (JSON), or with format=html a printable page (text/html)", "application/json", Some("Receipt")),
            errors: &[WithdrawalNotFound, ReceiptNotAvailable],
        },
        Operation {
            method: "get",
            path: "/v1/adjustments/{id}/receipt",
            summary: "The receipt of an adjustment deposit (from the suspense entry's remitter to the account)",
            access: Access::Roles(READERS),
            params: vec![text_id("id"), receipt_format()],
            request: None,
            success: (200, "the receipt (JSON), or with format=html a printable page (text/html)", "application/json", Some("Receipt")),
            errors: &[NotFound],
        },
        Operation {
            method: "post",
            path: "/v1/receipts/verify",
            summary: "Check a receipt's verification code against every other field",
            access: Access::Roles(READERS),
            params: vec![],
            request: Some((
                "ReceiptToVerify",
                json!({"receipt_no": "R000000000042", "transfer_id": "t-1", "type": "transfer",
                    "payer": {"account_id": "F000001", "name": "上海某化工有限公司", "sub_account_no": "310940100000001"},
                    "payee": {"account_id": "F000002", "name": "杭州某贸易有限公司", "sub_account_no": "310940100000002"},
                    "amount": "100.00", "amount_in_words": "人民币壹佰元整", "order_id": "O-1",
                    "committed_at": "2026-11-24T08:39:01.123Z",
                    "verification_code": "0000000000000000000000000000000000000000000000000000000000000000"}),
            )),
            success: (200, "whether the receipt is genuine and unchanged", "application/json", Some("VerifyResult")),
            errors: &[],
        },
        Operation {
            method: "get",
            path: "/v1/holds/{hold_id}",
            summary: "A hold and the movements that touched it",
            access: Access::Roles(READERS),
            params: vec![text_id("hold_id")],
            request: None,
            success: (200, "the hold", "application/json", Some("HoldRecord")),
            errors: &[HoldNotFound],
        },
        Operation {
            method: "get",
            path: "/v1/orders/{order_id}/transfers",
            summary: "Every movement of one order, oldest first",
            access: Access::Roles(READERS),
            params: [vec![path_param("order_id", schema_ref("ClientId"))], pagination()].concat(),
            request: None,
            success: (200, "a page of movements (empty for an order with none)", "application/json", Some("TransferPage")),
            errors: &[InvalidId],
        },
        Operation {
            method: "post",
            path: "/v1/withdrawals",
            summary: "A withdrawal (出金) to the account's same-name settlement account: frozen at once, paid out by the bank adaptor",
            access: Access::Roles(PLATFORM),
            params: vec![],
            request: Some(("WithdrawalRequest", json!({"id": "w-1", "account_id": "F000001", "amount": "300.00"}))),
            success: (202, "accepted, processing (a retry gets this original answer)", "application/json", Some("Withdrawal")),
            errors: &[InvalidAmount, InvalidId, AccountNotFound, IdReused, AccountNotActive, InsufficientFunds, BalanceOverflow],
        },
        Operation {
            method: "get",
            path: "/v1/withdrawals",
            summary: "Withdrawals in flight (status=processing, required), oldest first",
            access: Access::Roles(FINANCE),
            params: [
                vec![query_param(
                    "status",
                    json!({"type": "string", "enum": ["processing"]}),
                    "required: only withdrawals waiting for the bank",
                )],
                pagination(),
            ]
            .concat(),
            request: None,
            success: (200, "a page of withdrawals", "application/json", Some("WithdrawalPage")),
            errors: &[],
        },
        Operation {
            method: "get",
            path: "/v1/withdrawals/{id}",
            summary: "A withdrawal's current state",
            access: Access::Roles(READERS),
            params: vec![text_id("id")],
            request: None,
            success: (200, "the withdrawal", "application/json", Some("Withdrawal")),
            errors: &[WithdrawalNotFound],
        },
        Operation {
            method: "get",
            path: "/v1/suspense",
            summary: "Suspense entries, oldest first",
            access: Access::Roles(FINANCE),
            params: [
                vec![query_param(
                    "status",
                    json!({"type": "string", "enum": ["open", "assigned", "returned"]}),
                    "only entries in this status",
                )],
                pagination(),
            ]
            .concat(),
            request: None,
            success: (200, "a page of suspense entries", "application/json", Some("SuspensePage")),
            errors: &[],
        },
        Operation {
            method: "post",
            path: "/v1/suspense/{id}/return",
            summary: "Send a suspense entry's remaining back to the payer (退票)",
            access: Access::Roles(FINANCE),
            params: vec![path_param("id", schema_ref("SuspenseId"))],
            request: Some(("SuspenseReturnRequest", json!({"id": "ret-1", "memo": "payer unknown"}))),
            success: (200, "the entry, returned, with the return's lsn", "application/json", Some("SuspenseReturned")),
            errors: &[InvalidId, SuspenseNotFound, IdReused, SuspenseClosed],
        },
        Operation {
            method: "post",
            path: "/v1/adjustments",
            summary: "Credit a customer out of a suspense entry (调帐入款)",
            access: Access::Roles(FINANCE),
            params: vec![],
            request: Some((
                "AdjustmentRequest",
                json!({"id": "ADJ-1", "suspense_id": "S000001", "account_id": "F000001", "amount": "5000.00", "memo": "confirmed by phone"}),
            )),
            success: (201, "the adjustment and the account's balance after it", "application/json", Some("Adjustment")),
            errors: &[
                InvalidAmount,
                InvalidId,
                SuspenseNotFound,
                AccountNotFound,
                IdReused,
                SuspenseExceeded,
                SuspenseClosed,
                AccountNotActive,
                BalanceOverflow,
            ],
        },
        Operation {
            method: "get",
            path: "/v1/bank-sync/failures",
            summary: "Bank instructions (forced transfers, adjustments, returns) the bank refused for good, oldest first",
            access: Access::Roles(FINANCE),
            params: pagination(),
            request: None,
            success: (200, "a page of failed instructions", "application/json", Some("BankSyncFailurePage")),
            errors: &[],
        },
        Operation {
            method: "get",
            path: "/v1/ledger/day",
            summary: "One UTC day's money in (bank credits), money out (payouts that succeeded) and customer-to-customer transfers, sums and counts",
            access: Access::Roles(FINANCE),
            params: vec![query_param("date", json!({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}), "the UTC day, like 2026-11-24 (default: today)")],
            request: None,
            success: (200, "the day's figures", "application/json", Some("DayFigures")),
            errors: &[],
        },
        Operation {
            method: "post",
            path: "/v1/sandbox/{bank}/credits",
            summary: "Have a sandbox bank book an incoming remittance and deliver its signed notification",
            access: Access::Roles(ADMIN),
            params: vec![text_id("bank")],
            request: Some((
                "SandboxCreditRequest",
                json!({"to_account_no": "310940100000001", "amount": "5000.00", "payer_name": "上海某化工有限公司", "payer_account_no": "6222020000000001"}),
            )),
            success: (202, "booked; the notification is delivered right after", "application/json", Some("SandboxCreditAccepted")),
            errors: &[InvalidAmount, UnknownBank],
        },
        Operation {
            method: "post",
            path: "/v1/reconciliations",
            summary: "Reconcile one bank's UTC day (对账) against an uploaded statement, or without one against the bank's own",
            access: Access::Roles(FINANCE),
            params: vec![],
            request: Some((
                "ReconciliationRequest",
                json!({"bank": "SIMBANK", "date": "2026-11-24", "statement": [
                    {"bank_serial": "SB000000000001", "reference": "t-1", "kind": "forced_transfer", "account_no": "310940100000001",
                        "counter_account_no": "310940100000002", "amount": "100.00", "booked_at": "2026-11-24T08:39:01.123Z"}]}),
            )),
            success: (201, "the run: summary counts and discrepancies", "application/json", Some("Reconciliation")),
            errors: &[InvalidAmount, InvalidId, UnknownBankRule, BankUnavailable],
        },
        Operation {
            method: "get",
            path: "/v1/reconciliations/{id}",
            summary: "A reconciliation run, its discrepancies in their current status",
            access: Access::Roles(FINANCE),
            params: vec![id("id", "ReconciliationId")],
            request: None,
            success: (200, "the run", "application/json", Some("Reconciliation")),
            errors: &[ReconciliationNotFound],
        },
        Operation {
            method: "get",
            path: "/v1/discrepancies",
            summary: "Discrepancies reconciliation found, oldest first",
            access: Access::Roles(FINANCE),
            params: [
                vec![
                    query_param("status", json!({"type": "string", "enum": ["open", "proposed", "resolved"]}), "only discrepancies in this status"),
                    query_param("reconciliation_id", schema_ref("ReconciliationId"), "only those of one run"),
                ],
                pagination(),
            ]
            .concat(),
            request: None,
            success: (200, "a page of discrepancies", "application/json", Some("DiscrepancyPage")),
            errors: &[],
        },
        Operation {
            method: "get",
            path: "/v1/discrepancies/{id}",
            summary: "One discrepancy",
            access: Access::Roles(FINANCE),
            params: vec![id("id", "DiscrepancyId")],
            request: None,
            success: (200, "the discrepancy", "application/json", Some("Discrepancy")),
            errors: &[DiscrepancyNotFound],
        },
        Operation {
            method: "post",
            path: "/v1/discrepancies/{id}/resolve",
            summary: "Propose a resolution (maker): open → proposed. Needs a token with an operator name (403 FORBIDDEN without); the same operator proposing the same again gets the current state",
            access: Access::Roles(FINANCE),
            params: vec![id("id", "DiscrepancyId")],
            request: Some(("ResolveRequest", json!({"note": "bank fee booked twice; bank confirmed by phone"}))),
            success: (200, "the discrepancy, proposed", "application/json", Some("Discrepancy")),
            errors: &[InvalidId, DiscrepancyNotFound, AdjustmentNotFound, InvalidState],
        },
        Operation {
            method: "post",
            path: "/v1/discrepancies/{id}/approve",
            summary: "Approve a proposed resolution (checker): proposed → resolved, by another operator than the proposer (422 SAME_OPERATOR); needs a token with an operator name",
            access: Access::Roles(FINANCE),
            params: vec![id("id", "DiscrepancyId")],
            request: Some(("ApproveDiscrepancyRequest", json!({"note": "checked against the bank's advice"}))),
            success: (200, "the discrepancy, resolved", "application/json", Some("Discrepancy")),
            errors: &[DiscrepancyNotFound, InvalidState, SameOperator],
        },
        Operation {
            method: "get",
            path: "/v1/ledger/trial-balance",
            summary: "The double-entry check over the whole ledger at one lsn",
            access: Access::Roles(FINANCE),
            params: vec![],
            request: None,
            success: (200, "the books and whether they balance", "application/json", Some("TrialBalance")),
            errors: &[InvalidField],
        },
        Operation {
            method: "get",
            path: "/v1/openapi.json",
            summary: "This document",
            access: Access::Open,
            params: vec![],
            request: None,
            success: (200, "OpenAPI 3.1", "application/json", None),
            errors: &[],
        },
    ]
}

/// Codes every operation of a kind may answer, besides its own.
fn common_errors(operation: &Operation) -> Vec<ErrorCode> {
    use ErrorCode::*;
    let mut codes = Vec::new();
    match operation.access {
        Access::Roles(_) => codes.extend([Unauthenticated, Forbidden, RateLimited]),
        Access::BankSignature => codes.push(Unauthenticated),
        Access::Open => {}
    }
    if operation.request.is_some() {
        codes.extend([InvalidJson, InvalidField, MissingField, UnexpectedField, BodyTooLarge, UnsupportedMediaType]);
    } else if !operation.params.iter().all(|param| param["in"] == "path") {
        codes.push(InvalidField);
    }
    if !matches!(operation.access, Access::Open) {
        codes.extend([Overloaded, LogUnavailable, Internal]);
    }
    codes
}

fn responses(operation: &Operation) -> Value {
    let mut responses = Map::new();
    let (status, description, media, schema) = operation.success;
    let content = match schema {
        Some(name) => json!({media: {"schema": schema_ref(name)}}),
        None => json!({media: {"schema": {"type": if media == "application/json" { "object" } else { "string" }}}}),
    };
    let mut success = json!({"description": description, "content": content});
    if operation.path.ends_with("/receipt") {
        success["content"]["text/html"] = json!({"schema": {"type": "string"}});
    }
    responses.insert(status.to_string(), success);
    let mut codes = common_errors(operation);
    codes.extend(operation.errors.iter().copied());
    let mut by_status: std::collections::BTreeMap<u16, Vec<&'static str>> = Default::default();
    for code in codes {
        let list = by_status.entry(code.status().as_u16()).or_default();
        if !list.contains(&code.as_str()) {
            list.push(code.as_str());
        }
    }
    for (status, codes) in by_status {
        let schema =
            json!({"allOf": [schema_ref("Error")], "properties": {"error": {"properties": {"code": {"enum": codes}}}}});
        responses.insert(
            status.to_string(),
            json!({"description": codes.join(", "), "x-error-codes": codes, "content": {"application/json": {"schema": schema}}}),
        );
    }
    Value::Object(responses)
}

/// The batch endpoint's second body format (docs/API-notes.md has the
/// layout; `http::batch_binary` is the decoder).
const BINARY_BATCH_DESCRIPTION: &str = "A JSON BatchRequest, or the same items in the compact binary body \
`application/vnd.fundledger.transfers+binary` (little-endian): header `FLTB`, version u16 = 1, item count u32 \
(1 to 8190); per item: type u8 (0 absent, 1 transfer, 2 freeze, 3 unfreeze, 4 unfreeze_pay, 5 pay_freeze), field \
flags u8 (bit 0 id, 1 payer, 2 payee, 3 hold_id, 4 amount, 5 order_id, 6 memo; bit 7 is 0), then each present field \
in that order: id, payer, payee, hold_id as u8 length + bytes, amount as i64 fen, order_id as u8 length + bytes, \
memo as u16 length + UTF-8. Items are checked and judged exactly as JSON items (an invalid one gets its own 400 \
result); a body whose framing is wrong (magic, version, count, truncated, trailing bytes, an undefined flag) is \
400 INVALID_BATCH. Answers are JSON either way.";

fn document() -> Value {
    let mut paths = Map::new();
    for operation in operations() {
        let mut entry = json!({
            "summary": operation.summary,
            "operationId": format!("{} {}", operation.method, operation.path),
            "responses": responses(&operation),
        });
        match operation.access {
            Access::Roles(roles) => {
                entry["security"] = json!([{"bearer": []}]);
                entry["x-roles"] = json!(roles);
                entry["description"] = json!(format!("Roles: {} (admin may call everything).", roles.join(", ")));
            }
            Access::BankSignature => {
                entry["security"] = json!([{"bankSignature": []}]);
            }
            Access::Open => {
                entry["security"] = json!([]);
            }
        }
        if !operation.params.is_empty() {
            entry["parameters"] = Value::Array(operation.params);
        }
        if let Some((schema, example)) = operation.request {
            entry["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema_ref(schema), "example": example}}});
        }
        if operation.path == "/v1/transfers/batch" {
            entry["requestBody"]["description"] = json!(BINARY_BATCH_DESCRIPTION);
            entry["requestBody"]["content"][super::batch_binary::MEDIA_TYPE] =
                json!({"schema": {"type": "string", "contentMediaType": super::batch_binary::MEDIA_TYPE}});
        }
        let item = paths.entry(operation.path.to_owned()).or_insert_with(|| json!({}));
        item[operation.method] = entry;
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "fundledger",
            "version": "1",
            "description": "The ledger's HTTP API, version 1. Errors are {\"error\": {\"code\", \"message\"}}; each response lists the codes it can carry under each status. Any route answers 405 METHOD_NOT_ALLOWED to a method it does not take, and an unknown path 404 NOT_FOUND.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A configured token; its roles decide what it may call."},
                "bankSignature": {"type": "apiKey", "in": "header", "name": "X-Signature",
                    "description": "Lowercase hex HMAC-SHA256 of the raw body under the bank's notify_secret (of `<X-Timestamp>.<body>` when notify_max_age_s is set)."},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_is_listed_once_and_the_document_builds() {
        let doc = document();
        let codes = doc["components"]["schemas"]["ErrorCode"]["enum"].as_array().unwrap();
        let mut names: Vec<&str> = codes.iter().map(|code| code.as_str().unwrap()).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "no code twice");
        assert!(doc["paths"]["/v1/transfers"]["post"]["responses"]["422"].is_object());
        let batch = &doc["paths"]["/v1/transfers/batch"]["post"]["requestBody"]["content"];
        assert!(batch["application/json"].is_object() && batch[super::super::batch_binary::MEDIA_TYPE].is_object());
    }
}
