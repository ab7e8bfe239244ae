//! The committed-movement answer (`201` of `POST /v1/transfers` and each
//! `results[i].body` of a batch), written straight into a byte buffer.
//!
//! Why by hand: it is the one body written per transfer. Through serde every
//! id, amount and timestamp went through `fmt::Display` and `collect_str`,
//! about 9,000 instructions per answer (callgrind, docs/PERFORMANCE.md);
//! this writes the same bytes with integer-to-digit writes.
//!
//! Owns only the byte layout. The field set and order are those of
//! [`super::transfers::MovementView`] (which the OpenAPI schema and the
//! other readers use); a property test checks both give identical bytes.
//!
//! Must not: decide anything about the movement (it renders what it gets).

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::domain::ids::AccountId;
use crate::domain::money::Money;
use crate::domain::record::Movement;
use crate::json_out::{self, optional_string, padded, string, unsigned};

/// Writes `movement` (committed at `lsn`) as the JSON object
/// `MovementView` serializes to.
pub fn write_movement(out: &mut Vec<u8>, lsn: u64, movement: &Movement) {
    out.extend_from_slice(b"{\"id\":");
    string(out, &movement.id);
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(movement.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"status\":\"committed\",\"lsn\":");
    unsigned(out, lsn);
    out.extend_from_slice(b",\"committed_at\":\"");
    timestamp(out, movement.committed_at_ms);
    out.extend_from_slice(b"\",\"payer\":");
    account(out, movement.payer);
    out.extend_from_slice(b",\"payee\":");
    match movement.payee.filter(|_| movement.kind.has_payee()) {
        Some(payee) => account(out, payee),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"amount\":");
    money(out, movement.amount);
    out.extend_from_slice(b",\"order_id\":");
    optional_string(out, movement.order_id.as_deref());
    out.extend_from_slice(b",\"memo\":");
    optional_string(out, movement.memo.as_deref());
    out.extend_from_slice(b",\"hold\":");
    match (&movement.hold_id, movement.hold_account) {
        (Some(hold_id), Some(account_id)) => {
            out.extend_from_slice(b"{\"hold_id\":");
            string(out, hold_id);
            out.extend_from_slice(b",\"account_id\":");
            account(out, account_id);
            out.extend_from_slice(b",\"amount\":");
            money(out, movement.hold_amount);
            out.extend_from_slice(b",\"remaining\":");
            money(out, movement.hold_remaining);
            let status: &[u8] = if movement.hold_remaining.0 > 0 { b"open" } else { b"closed" };
            out.extend_from_slice(b",\"status\":\"");
            out.extend_from_slice(status);
            out.extend_from_slice(b"\"}");
        }
        _ => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"receipt_no\":\"R");
    padded(out, lsn, 12);
    out.extend_from_slice(b"\"}");
}

/// As [`AccountId`]'s `Display`: `F` and at least six digits, in quotes.
fn account(out: &mut Vec<u8>, id: AccountId) {
    match u32::try_from(id.0) {
        // Six digits, written as one piece (two per step).
        Ok(number) if number < 1_000_000 => {
            let [a, b] = two_digits(number / 10_000);
            let [c, d] = two_digits(number / 100 % 100);
            let [e, f] = two_digits(number % 100);
            out.extend_from_slice(&[b'"', b'F', a, b, c, d, e, f, b'"']);
        }
        _ => {
            out.extend_from_slice(b"\"F");
            padded(out, id.0, 6);
            out.push(b'"');
        }
    }
}

/// `value` (below 100) as two digits.
fn two_digits(value: u32) -> [u8; 2] {
    debug_assert!(value < 100);
    [b'0' + (value / 10) as u8, b'0' + (value % 10) as u8]
}

/// As [`Money`]'s `Display` (`-12.05`), in quotes.
fn money(out: &mut Vec<u8>, amount: Money) {
    out.push(b'"');
    json_out::money(out, amount);
    out.push(b'"');
}

/// As [`crate::clock::Rfc3339`]'s `Display`, without the quotes.
///
/// A year of four digits (every time the ledger writes) is written as one
/// 24-byte piece, two digits per step: through `padded` (an `itoa` buffer
/// and a zero fill per field) the seven fields cost more than the rest of
/// the movement.
fn timestamp(out: &mut Vec<u8>, ms: i64) {
    let time = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    if let Ok(year @ 0..=9999) = u32::try_from(time.year()) {
        let [y1, y2] = two_digits(year / 100);
        let [y3, y4] = two_digits(year % 100);
        let [mo1, mo2] = two_digits(time.month());
        let [d1, d2] = two_digits(time.day());
        let [h1, h2] = two_digits(time.hour());
        let [mi1, mi2] = two_digits(time.minute());
        let [s1, s2] = two_digits(time.second());
        let millis = ms.rem_euclid(1000) as u32;
        let [ms2, ms3] = two_digits(millis % 100);
        let ms1 = b'0' + (millis / 100) as u8;
        out.extend_from_slice(&[
            y1, y2, y3, y4, b'-', mo1, mo2, b'-', d1, d2, b'T', h1, h2, b':', mi1, mi2, b':', s1, s2, b'.', ms1, ms2,
            ms3, b'Z',
        ]);
        return;
    }
    match u64::try_from(time.year()) {
        Ok(year) => padded(out, year, 4),
        // Before year 0: no committed movement has such a time; render as
        // `Display` does.
        Err(_) => out.extend_from_slice(format!("{:04}", time.year()).as_bytes()),
    }
    for (separator, value) in
        [(b'-', time.month()), (b'-', time.day()), (b'T', time.hour()), (b':', time.minute()), (b':', time.second())]
    {
        out.push(separator);
        padded(out, u64::from(value), 2);
    }
    out.push(b'.');
    padded(out, ms.rem_euclid(1000).unsigned_abs(), 3);
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::record::TransferType;
    use crate::http::transfers::movement_view;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9_-]{1,64}",
            // Quotes, backslashes, control characters and CJK: the escaper.
            "[\"\\\\\u{0}-\u{1f}a-z上海化工\u{7f}]{0,16}",
        ]
    }

    fn movement() -> impl Strategy<Value = Movement> {
        let kinds = prop_oneof![
            Just(TransferType::Transfer),
            Just(TransferType::Freeze),
            Just(TransferType::Unfreeze),
            Just(TransferType::UnfreezePay),
            Just(TransferType::PayFreeze),
        ];
        (
            (text(), kinds, 0u64..10_000_000_000, proptest::option::of(0u64..10_000_000)),
            (any::<i64>(), proptest::option::of(text()), proptest::option::of(0u64..2_000_000)),
            (any::<i64>(), proptest::option::of(text()), proptest::option::of(text())),
            (-62_000_000_000_000i64..=253_402_300_799_999, 0i64..1_000_000),
        )
            .prop_map(
                |(
                    (id, kind, payer, payee),
                    (amount, hold_id, hold_account),
                    (remaining, order_id, memo),
                    (at, hold_amount),
                )| {
                    Movement {
                        id: id.into(),
                        kind,
                        payer: AccountId(payer),
                        payee: payee.map(AccountId),
                        amount: Money(amount),
                        requested_amount: None,
                        hold_id: hold_id.map(Into::into),
                        hold_account: hold_account.map(AccountId),
                        hold_amount: Money(hold_amount),
                        hold_remaining: Money(remaining),
                        order_id: order_id.map(Into::into),
                        memo: memo.map(Into::into),
                        committed_at_ms: at,
                        operator: "platform".into(),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn writes_the_bytes_serde_writes(movement in movement(), lsn in any::<u64>()) {
            let mut fast = Vec::new();
            write_movement(&mut fast, lsn, &movement);
            let serde = serde_json::to_vec(&movement_view(lsn, &movement)).expect("serializes");
            prop_assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&serde));
        }
    }

    #[test]
    fn a_typical_answer() {
        let movement = Movement {
            id: "t-1".into(),
            kind: TransferType::PayFreeze,
            payer: AccountId(1),
            payee: Some(AccountId(1_234_567)),
            amount: Money(-5),
            requested_amount: None,
            hold_id: Some("t-1".into()),
            hold_account: Some(AccountId(1_234_567)),
            hold_amount: Money(30_000),
            hold_remaining: Money(0),
            order_id: None,
            memo: Some("备注 \"x\"".into()),
            committed_at_ms: 1_795_509_541_123,
            operator: "platform".into(),
        };
        let mut out = Vec::new();
        write_movement(&mut out, 42, &movement);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            concat!(
                r#"{"id":"t-1","type":"pay_freeze","status":"committed","lsn":42,"#,
                r#""committed_at":"2026-11-24T08:39:01.123Z","payer":"F000001","payee":"F1234567","amount":"-0.05","#,
                r#""order_id":null,"memo":"备注 \"x\"","hold":{"hold_id":"t-1","account_id":"F1234567","#,
                r#""amount":"300.00","remaining":"0.00","status":"closed"},"receipt_no":"R000000000042"}"#
            )
        );
    }
}
