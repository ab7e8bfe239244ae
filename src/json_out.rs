//! Pieces of JSON written straight into a byte buffer: strings, optional
//! strings, integers, zero-padded digits, amounts; and the test, 8 bytes
//! at a time, of which bytes a JSON string cannot hold as they are (the
//! request body scanner, `crate::http::json_scan`, uses it too).
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
    if is_plain(text.as_bytes()) {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail, and a &str always serializes.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// Whether every byte is printable ASCII other than `"` and `\\` (copied
/// into a JSON string as it is). Eight bytes at a time: a byte-by-byte
/// check was 3% of a batch's instructions (docs/PERFORMANCE.md).
fn is_plain(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let x = word(chunk);
        // Also any byte with its high bit set (not ASCII), or DEL after
        // the +1. The carries between bytes can only flag a word that
        // holds such a byte anyway, and a flagged word takes the
        // byte-by-byte check below.
        let high_or_del = (x.wrapping_add(ONES) | x) & HIGHS;
        if string_specials(x) | high_or_del != 0 && !chunk.iter().all(|&b| is_plain_byte(b)) {
            return false;
        }
    }
    words.remainder().iter().all(|&b| is_plain_byte(b))
}

const ONES: u64 = u64::MAX / 255;
const HIGHS: u64 = ONES * 0x80;

/// The bytes of `x` (eight bytes of text, [`word`]) that a JSON string
/// cannot hold as they are: `"`, `\\` and control characters, each flagged
/// by its high bit. The lowest flag is exact (a borrow only runs upward
/// from a flagged byte); flags above it may be false. Also finds where a
/// string without escapes ends (`crate::http::json_scan`).
pub fn string_specials(x: u64) -> u64 {
    let zero_byte = |y: u64| y.wrapping_sub(ONES) & !y & HIGHS;
    zero_byte(x ^ (ONES * u64::from(b'"')))
        | zero_byte(x ^ (ONES * u64::from(b'\\')))
        | (x.wrapping_sub(ONES * 0x20) & !x & HIGHS)
}

/// Eight bytes as one word, the first byte lowest.
pub fn word(chunk: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(chunk);
    u64::from_le_bytes(bytes)
}

fn is_plain_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
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
        fn padded_digits_are_the_standard_formats(value in prop_oneof![0u64..1000, any::<u64>()], width in 0usize..24) {
            let mut out = b"x".to_vec();
            padded(&mut out, value, width);
            prop_assert_eq!(out, format!("x{value:0width$}").into_bytes());
        }

        #[test]
        fn the_word_check_agrees_with_the_byte_check(bytes in proptest::collection::vec(any::<u8>(), 0..40), plain in "[ !#-\\[\\]-~]{0,40}") {
            prop_assert_eq!(is_plain(&bytes), bytes.iter().all(|&b| is_plain_byte(b)));
            prop_assert!(is_plain(plain.as_bytes()));
            // One bad byte anywhere in a plain text.
            for bad in [0u8, 0x1f, b'"', b'\\', 0x7f, 0x80, 0xff] {
                for at in 0..plain.len() {
                    let mut bytes = plain.clone().into_bytes();
                    bytes[at] = bad;
                    prop_assert!(!is_plain(&bytes));
                }
            }
        }

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
