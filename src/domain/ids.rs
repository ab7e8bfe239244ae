//! Identifiers: the ledger's own (`F000001`, `A000001`, `S000001`,
//! `REC000001`, `D000001`) and the
//! clients' (`id`, `order_id`: 1 to 64 of `A-Z a-z 0-9 _ - . :`).
//!
//! The ledger's ids are sequential numbers with a letter and at least six
//! digits; inside they are plain `u64`s, so that the account directory can
//! be an array indexed by number. Only the canonical spelling parses:
//! `F0000001` names no account even though its number is 1.

use std::fmt;

use bincode::{Decode, Encode};

/// Longest client id (and `order_id`).
pub const CLIENT_ID_CHARS_MAX: usize = 64;

/// A client id is 1 to 64 characters of `A-Z a-z 0-9 _ - . :`.
pub fn is_valid_client_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= CLIENT_ID_CHARS_MAX
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

macro_rules! ledger_id {
    ($name:ident, $letter:literal) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
        pub struct $name(pub u64);

        impl $name {
            /// Parse the canonical spelling: the letter, then at least six
            /// digits, zero-padded to six, no other leading zeros.
            pub fn parse(text: &str) -> Option<Self> {
                let digits = text.strip_prefix($letter)?;
                if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let number: u64 = digits.parse().ok()?;
                // Canonical as `Display` writes it (`{:06}`): six digits,
                // or more without a leading zero.
                let canonical = digits.len() == 6 || !digits.starts_with('0');
                (number > 0 && canonical).then_some($name(number))
            }

            /// Whether `text` has the shape of this kind of id at all (a
            /// request field of another shape is malformed, not unknown).
            pub fn is_well_formed(text: &str) -> bool {
                text.strip_prefix($letter)
                    .is_some_and(|digits| digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit()))
            }

            /// A request field's id, in one pass: `None` when `text` is not
            /// [well formed](Self::is_well_formed); else what
            /// [`parse`](Self::parse) gives, or the id 0 (which names
            /// nothing: an unknown id, not a malformed one).
            pub fn from_field(text: &str) -> Option<Self> {
                let digits = text.strip_prefix($letter)?.as_bytes();
                if digits.len() < 6 {
                    return None;
                }
                let mut number: Option<u64> = Some(0);
                for &byte in digits {
                    if !byte.is_ascii_digit() {
                        return None;
                    }
                    number = number.and_then(|n| n.checked_mul(10)).and_then(|n| n.checked_add(u64::from(byte - b'0')));
                }
                let canonical = digits.len() == 6 || digits[0] != b'0';
                Some($name(number.filter(|_| canonical).unwrap_or(0)))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($letter, "{:06}"), self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
    };
}

ledger_id!(AccountId, "F");
ledger_id!(ApplicationId, "A");
ledger_id!(SuspenseId, "S");
ledger_id!(ReconciliationId, "REC");
ledger_id!(DiscrepancyId, "D");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_parse_only_canonically() {
        assert_eq!(AccountId::parse("F000001"), Some(AccountId(1)));
        assert_eq!(AccountId::parse("F1234567"), Some(AccountId(1_234_567)));
        assert_eq!(AccountId(42).to_string(), "F000042");
        for bad in ["F0000001", "F00001", "F000000", "G000001", "f000001", "F00000a", ""] {
            assert_eq!(AccountId::parse(bad), None, "{bad}");
        }
        assert!(AccountId::is_well_formed("F0000001"));
        assert!(!AccountId::is_well_formed("F12"));
    }

    proptest::proptest! {
        /// `from_field` is `is_well_formed`, then `parse` or the id 0.
        #[test]
        fn from_field_is_the_shape_check_then_parse(text in "F?[0-9a]{0,22}", digits in "[0-9]{0,22}") {
            for text in [text, format!("F{digits}")] {
                let expected = AccountId::is_well_formed(&text).then(|| AccountId::parse(&text).unwrap_or(AccountId(0)));
                proptest::prop_assert_eq!(AccountId::from_field(&text), expected, "{}", text);
            }
        }

        /// `parse` takes exactly what `Display` writes, for any digits.
        #[test]
        fn parse_accepts_exactly_the_displayed_form(digits in "[0-9]{6,21}") {
            let text = format!("F{digits}");
            let displayed = digits.parse::<u64>().ok().filter(|n| *n > 0).map(|n| AccountId(n).to_string());
            proptest::prop_assert_eq!(AccountId::parse(&text).is_some(), displayed.as_deref() == Some(&*text));
        }
    }

    #[test]
    fn client_ids() {
        assert!(is_valid_client_id("t-1.a:b_C"));
        assert!(is_valid_client_id(&"x".repeat(64)));
        for bad in ["", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(!is_valid_client_id(bad), "{bad}");
        }
    }
}
