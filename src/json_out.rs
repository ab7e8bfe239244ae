//! Pieces of JSON written straight into a byte buffer: strings, optional
//! strings, integers, zero-padded digits, amounts.
//!
//! Owns only these byte forms, each the bytes serde_json writes for the
//! same value (the callers' property tests compare whole documents with
//! serde's). Used where one document is written per transfer: the movement
//! answer ([`crate::http::movement_json`]) and the sandbox bank's book lines
//! ([`crate::actors::bank::book_json`]).
//!
//! Must not: know any document's fields.

use crate::domain::money::Money;

/// A JSON string: ids and account numbers are plain ASCII, copied as they
/// are; anything that needs escaping goes through serde_json's escaper.
pub fn string(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail, and a &str always serializes.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// [`string`], or `null`.
pub fn optional_string(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => string(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

pub fn unsigned(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// `value` in at least `width` digits, zero-padded (as `{:0width$}`).
pub fn padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value).as_bytes();
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(digits.len())));
    out.extend_from_slice(digits);
}

/// As [`Money`]'s `Display` (`-12.05`), without quotes.
pub fn money(out: &mut Vec<u8>, amount: Money) {
    if amount.0 < 0 {
        out.push(b'-');
    }
    let magnitude = amount.0.unsigned_abs();
    unsigned(out, magnitude / 100);
    out.push(b'.');
    padded(out, magnitude % 100, 2);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn each_piece_is_what_serde_or_display_writes(text in "\\PC{0,12}|[\"\\\\\u{0}-\u{1f}\u{7f}]{0,4}", n in any::<u64>(), cents in any::<i64>()) {
            let mut out = Vec::new();
            string(&mut out, &text);
            prop_assert_eq!(&out, &serde_json::to_vec(&text).expect("serializes"));
            out.clear();
            padded(&mut out, n, 12);
            prop_assert_eq!(String::from_utf8(out.clone()).expect("digits"), format!("{n:012}"));
            out.clear();
            money(&mut out, Money(cents));
            prop_assert_eq!(String::from_utf8(out).expect("digits"), Money(cents).to_string());
        }
    }
}
