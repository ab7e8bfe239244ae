//! Money: exact amounts in integer minor units (fen, 1/100 yuan).
//!
//! Owns the one parser and the one formatter for amounts on the wire
//! (API.md, Conventions: `^(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?$`, above
//! zero). Nothing else in the server turns text into money. Never `f64`.
//!
//! Why integers inside: a balance is an `i64` of fen, adding two is one
//! instruction and cannot round. The largest amount (15 integer digits) is
//! 10^17 fen, far below `i64::MAX` (9.2 * 10^18); balance arithmetic is still
//! checked, so an overflow is a refusal, never a wrap. `rust_decimal` is
//! used at the edges where sums over many accounts need more than `i64`
//! (trial balance, see [`Money::sum_to_decimal`]).

use std::fmt;

use bincode::{Decode, Encode};

/// An exact amount of money in fen. May be zero or negative when it is a
/// balance delta; amounts that come from requests are always positive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Money(pub i64);

/// Largest integer part an amount may have: 15 digits.
const INTEGER_DIGITS_MAX: usize = 15;

impl Money {
    pub const ZERO: Money = Money(0);

    pub fn fen(self) -> i64 {
        self.0
    }

    /// Parse a request amount: positive, at most 15 integer digits and 2
    /// fractional digits, no sign, no exponent, no spaces, no leading zero.
    pub fn parse_amount(text: &str) -> Option<Money> {
        let bytes = text.as_bytes();
        let (integer, fraction) = match bytes.iter().position(|&b| b == b'.') {
            Some(dot) => (&bytes[..dot], Some(&bytes[dot + 1..])),
            None => (bytes, None),
        };
        if integer.is_empty() || integer.len() > INTEGER_DIGITS_MAX {
            return None;
        }
        if integer.len() > 1 && integer[0] == b'0' {
            return None;
        }
        let mut fen: i64 = 0;
        for &digit in integer {
            if !digit.is_ascii_digit() {
                return None;
            }
            fen = fen * 10 + i64::from(digit - b'0');
        }
        fen *= 100;
        if let Some(fraction) = fraction {
            if fraction.is_empty() || fraction.len() > 2 {
                return None;
            }
            let mut scale = 10;
            for &digit in fraction {
                if !digit.is_ascii_digit() {
                    return None;
                }
                fen += i64::from(digit - b'0') * scale;
                scale /= 10;
            }
        }
        (fen > 0).then_some(Money(fen))
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// A sum of many balances as a decimal string with 2 fractional digits.
    /// Sums are `i128` so that a million accounts at the maximum cannot
    /// overflow.
    pub fn sum_to_decimal(sum_fen: i128) -> String {
        let value = rust_decimal::Decimal::from_i128_with_scale(sum_fen, 2);
        format!("{value:.2}")
    }
}

/// Always two fractional digits: `100.50`, `0.00`, `-3.07`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", magnitude / 100, magnitude % 100)
    }
}

impl serde::Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_documented_forms() {
        for (text, fen) in [
            ("100", 10000),
            ("100.5", 10050),
            ("0.01", 1),
            ("0.1", 10),
            ("999999999999999.99", 99_999_999_999_999_999),
            ("1.00", 100),
        ] {
            assert_eq!(Money::parse_amount(text), Some(Money(fen)), "{text}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for text in [
            "",
            "0",
            "0.0",
            "0.00",
            "01",
            "+1",
            "-1",
            ".5",
            "1.",
            "0.001",
            "1e3",
            " 1",
            "1 ",
            "1,000",
            "NaN",
            "inf",
            "1000000000000000",
            "1.234",
            "１",
            "1..2",
            "1.2.3",
            "0x10",
        ] {
            assert_eq!(Money::parse_amount(text), None, "{text:?}");
        }
    }

    #[test]
    fn formats_with_two_decimals() {
        assert_eq!(Money(10050).to_string(), "100.50");
        assert_eq!(Money(0).to_string(), "0.00");
        assert_eq!(Money(-307).to_string(), "-3.07");
        assert_eq!(Money(5).to_string(), "0.05");
        assert_eq!(Money::sum_to_decimal(12345), "123.45");
        assert_eq!(Money::sum_to_decimal(0), "0.00");
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(fen in 1i64..=99_999_999_999_999_999) {
            let text = Money(fen).to_string();
            prop_assert_eq!(Money::parse_amount(&text), Some(Money(fen)));
        }

        #[test]
        fn parse_never_panics_and_is_positive(text in "\\PC{0,24}") {
            if let Some(money) = Money::parse_amount(&text) {
                prop_assert!(money.0 > 0);
                prop_assert!(money.0 <= 99_999_999_999_999_999);
            }
        }
    }
}
