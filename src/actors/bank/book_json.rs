//! The sandbox books' lines ([`BookLine`]), written straight into a byte
//! buffer.
//!
//! Why by hand: the sandbox books one line per instruction, one instruction
//! per committed movement. Through serde every line went through the
//! generic serializer field by field, and an instruction's line was first
//! built as nine `String`s; callgrind put that at about 2,300 instructions
//! per transfer (docs/PERFORMANCE.md). This writes the same bytes.
//!
//! Owns only the byte layout. The field set and order are those of
//! [`BookLine`]'s `Serialize` (which `read_lines` and the statement read
//! back with serde); property tests check both give identical bytes, for
//! any line and for an instruction's line written without a `BookLine`.
//!
//! Must not: decide anything about what is booked (it renders what it
//! gets).

use super::sandbox::BookLine;
use super::InstructionRequest;
use crate::json_out::{money, optional_string, string};

/// Writes `line` as the JSON object `serde_json` writes for it (no newline).
pub fn write_line(out: &mut Vec<u8>, line: &BookLine) {
    out.extend_from_slice(b"{\"kind\":");
    string(out, &line.kind);
    out.extend_from_slice(b",\"reference\":");
    string(out, &line.reference);
    out.extend_from_slice(b",\"account_no\":");
    string(out, &line.account_no);
    out.extend_from_slice(b",\"counter_account_no\":");
    string(out, &line.counter_account_no);
    out.extend_from_slice(b",\"amount\":");
    string(out, &line.amount);
    out.extend_from_slice(b",\"result\":");
    string(out, &line.result);
    out.extend_from_slice(b",\"bank_serial\":");
    optional_string(out, line.bank_serial.as_deref());
    out.extend_from_slice(b",\"failure_reason\":");
    optional_string(out, line.failure_reason.as_deref());
    out.extend_from_slice(b",\"booked_at\":");
    string(out, &line.booked_at);
    if let Some(payer_name) = &line.payer_name {
        out.extend_from_slice(b",\"payer_name\":");
        string(out, payer_name);
    }
    out.push(b'}');
}

/// Writes the line that confirms `request` with bank serial `serial` at
/// `booked_at` (a batch's lines share one time, quoted once): the bytes of
/// [`super::sandbox::instruction_line`] through [`write_line`], without
/// building it.
pub fn write_instruction_line(out: &mut Vec<u8>, request: &InstructionRequest, serial: &str, booked_at: &Quoted) {
    out.extend_from_slice(b"{\"kind\":\"");
    out.extend_from_slice(request.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"reference\":");
    string(out, &request.reference);
    out.extend_from_slice(b",\"account_no\":");
    string(out, &request.from_account_no);
    out.extend_from_slice(b",\"counter_account_no\":");
    string(out, &request.to_account_no);
    out.extend_from_slice(b",\"amount\":\"");
    money(out, request.amount);
    out.extend_from_slice(b"\",\"result\":\"succeeded\",\"bank_serial\":");
    string(out, serial);
    out.extend_from_slice(b",\"failure_reason\":null,\"booked_at\":");
    out.extend_from_slice(&booked_at.0);
    out.push(b'}');
}

/// A text as a JSON string (quoted and escaped), for a value that every
/// line of a batch repeats.
pub struct Quoted(Vec<u8>);

impl Quoted {
    pub fn new(text: &str) -> Self {
        let mut bytes = Vec::with_capacity(text.len() + 2);
        string(&mut bytes, text);
        Self(bytes)
    }
}

/// Bank serial number `number`: `SB` and at least twelve digits (as
/// `format!("SB{number:012}")`).
pub fn serial(number: u64) -> String {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(number);
    let mut text = String::with_capacity(2 + digits.len().max(12));
    text.push_str("SB");
    text.extend(std::iter::repeat_n('0', 12usize.saturating_sub(digits.len())));
    text.push_str(digits);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Money;
    use crate::domain::record::InstructionKind;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9_-]{0,40}",
            // Quotes, backslashes, control characters and CJK: the escaper.
            "[\"\\\\\u{0}-\u{1f}a-z上海化工\u{7f}]{0,16}",
        ]
    }

    fn line() -> impl Strategy<Value = BookLine> {
        (
            (text(), text(), text(), text()),
            (text(), text(), proptest::option::of(text()), proptest::option::of(text())),
            (text(), proptest::option::of(text())),
        )
            .prop_map(
                |(
                    (kind, reference, account_no, counter_account_no),
                    (amount, result, bank_serial, failure_reason),
                    (booked_at, payer_name),
                )| BookLine {
                    kind,
                    reference,
                    account_no,
                    counter_account_no,
                    amount,
                    result,
                    bank_serial,
                    failure_reason,
                    booked_at,
                    payer_name,
                },
            )
    }

    fn request() -> impl Strategy<Value = InstructionRequest> {
        let kinds = prop_oneof![
            Just(InstructionKind::ForcedTransfer),
            Just(InstructionKind::Adjustment),
            Just(InstructionKind::Return),
        ];
        (text(), kinds, text(), text(), any::<i64>()).prop_map(|(reference, kind, from, to, amount)| {
            InstructionRequest {
                reference: reference.into(),
                kind,
                from_account_no: from.into(),
                to_account_no: to.into(),
                amount: Money(amount),
            }
        })
    }

    proptest! {
        #[test]
        fn a_line_is_written_as_serde_writes_it(line in line()) {
            let mut fast = Vec::new();
            write_line(&mut fast, &line);
            let serde = serde_json::to_vec(&line).expect("serializes");
            prop_assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&serde));
        }

        #[test]
        fn an_instruction_line_is_written_as_serde_writes_it(
            request in request(),
            serial_number in prop_oneof![0u64..2_000_000, any::<u64>()],
            booked_at in text(),
        ) {
            let expected = format!("SB{serial_number:012}");
            prop_assert_eq!(&serial(serial_number), &expected);
            let mut fast = Vec::new();
            write_instruction_line(&mut fast, &request, &expected, &Quoted::new(&booked_at));
            let line = super::super::sandbox::instruction_line(&request, expected, &booked_at);
            let serde = serde_json::to_vec(&line).expect("serializes");
            prop_assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&serde));
        }
    }
}
