//! An amount in Chinese financial capitals (大写金额), as receipts and
//! bank forms print it: `人民币壹万零伍元叁角`.
//!
//! Rules (中国人民银行《支付结算办法》附件一, 正确填写票据和结算凭证的基本规定),
//! and the choice made where the rules allow two forms:
//!
//! - Digits 零壹贰叁肆伍陆柒捌玖, units 拾佰仟 within a group of four, groups
//!   万 and 亿 (`壹万亿` for 10^12: the 亿 group is itself written with 万).
//!   A ten is always `壹拾` (`壹拾万元整`), never a bare `拾`.
//! - One 零 stands for any run of zeros between two nonzero digits, also
//!   across a 万 or 亿 boundary (`壹亿零壹元`, `壹佰万零柒佰元`). A run of
//!   zeros that ends a group is not written, so where a group starts with
//!   its 仟 digit no 零 is written after the group unit (`壹拾万柒仟元`,
//!   the form without the optional 零).
//! - `整` after 元 when there are no 角 and 分; none after 角 (`叁角`).
//! - 角 zero but 分 not: 零 after 元 (`叁佰贰拾伍元零肆分`). 元 digit zero
//!   but 角 not: no 零 (`壹仟陆佰捌拾元叁角贰分`, the optional 零 left out).
//! - Below one yuan the yuan part is `零元` (`人民币零元伍分`,
//!   `人民币零元伍角`).
//! - A negative amount (never on a receipt) gets `负` after `人民币`, so that
//!   the function is total.
//!
//! Pure and total: every `i64` of fen has a form, nothing panics.

use crate::domain::money::Money;

const DIGITS: [&str; 10] = ["零", "壹", "贰", "叁", "肆", "伍", "陆", "柒", "捌", "玖"];
const UNITS_IN_GROUP: [&str; 4] = ["", "拾", "佰", "仟"];

const GROUP: u64 = 10_000;
const YI: u64 = 100_000_000;

/// `人民币壹佰元整` for 100.00.
pub fn amount_in_words(amount: Money) -> String {
    let mut out = String::from("人民币");
    if amount.is_negative() {
        out.push('负');
    }
    let fen = amount.0.unsigned_abs();
    let yuan = fen / 100;
    let jiao = (fen / 10 % 10) as usize;
    let fen_digit = (fen % 10) as usize;
    if yuan == 0 {
        out.push_str("零元");
    } else {
        write_integer(&mut out, yuan);
        out.push('元');
    }
    match (jiao, fen_digit) {
        (0, 0) => out.push('整'),
        (0, fen_digit) => {
            if yuan > 0 {
                out.push('零');
            }
            out.push_str(DIGITS[fen_digit]);
            out.push('分');
        }
        (jiao, 0) => {
            out.push_str(DIGITS[jiao]);
            out.push('角');
        }
        (jiao, fen_digit) => {
            out.push_str(DIGITS[jiao]);
            out.push('角');
            out.push_str(DIGITS[fen_digit]);
            out.push('分');
        }
    }
    out
}

/// A positive integer: the part above 亿 recursively (so 10^16 is 壹亿亿),
/// then 亿, then the part below.
fn write_integer(out: &mut String, n: u64) {
    debug_assert!(n > 0);
    if n >= YI {
        write_integer(out, n / YI);
        out.push('亿');
        let low = n % YI;
        if low > 0 {
            if low < YI / 10 {
                out.push('零');
            }
            write_below_yi(out, low);
        }
    } else {
        write_below_yi(out, n);
    }
}

/// 1 to 9999,9999.
fn write_below_yi(out: &mut String, n: u64) {
    let high = n / GROUP;
    let low = n % GROUP;
    if high > 0 {
        write_group(out, high);
        out.push('万');
        if low > 0 {
            if low < GROUP / 10 {
                out.push('零');
            }
            write_group(out, low);
        }
    } else {
        write_group(out, low);
    }
}

/// 1 to 9999, leading zeros not written, inner zero runs as one 零.
fn write_group(out: &mut String, n: u64) {
    debug_assert!((1..GROUP).contains(&n));
    let digits = [(n / 1000) as usize, (n / 100 % 10) as usize, (n / 10 % 10) as usize, (n % 10) as usize];
    let mut started = false;
    let mut zero_pending = false;
    for (position, &digit) in digits.iter().enumerate() {
        if digit == 0 {
            zero_pending = started;
            continue;
        }
        if zero_pending {
            out.push('零');
            zero_pending = false;
        }
        out.push_str(DIGITS[digit]);
        out.push_str(UNITS_IN_GROUP[3 - position]);
        started = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (fen, words). The zero cases are the point of this table.
    const TABLE: &[(i64, &str)] = &[
        (10_000, "人民币壹佰元整"),
        (1_000_530, "人民币壹万零伍元叁角"),
        (5, "人民币零元伍分"),
        (0, "人民币零元整"),
        (1, "人民币零元壹分"),
        (10, "人民币零元壹角"),
        (50, "人民币零元伍角"),
        (99, "人民币零元玖角玖分"),
        (100, "人民币壹元整"),
        (101, "人民币壹元零壹分"),
        (110, "人民币壹元壹角"),
        (1_000, "人民币壹拾元整"),
        (1_100, "人民币壹拾壹元整"),
        (1_200, "人民币壹拾贰元整"),
        (2_000, "人民币贰拾元整"),
        (10_100, "人民币壹佰零壹元整"),
        (11_000, "人民币壹佰壹拾元整"),
        (32_504, "人民币叁佰贰拾伍元零肆分"),
        (140_950, "人民币壹仟肆佰零玖元伍角"),
        (600_714, "人民币陆仟零柒元壹角肆分"),
        (168_032, "人民币壹仟陆佰捌拾元叁角贰分"),
        (1_640_902, "人民币壹万陆仟肆佰零玖元零贰分"),
        (10_700_053, "人民币壹拾万柒仟元伍角叁分"),
        (100_000, "人民币壹仟元整"),
        (100_100, "人民币壹仟零壹元整"),
        (101_000, "人民币壹仟零壹拾元整"),
        (1_000_000, "人民币壹万元整"),
        (1_000_100, "人民币壹万零壹元整"),
        (1_001_000, "人民币壹万零壹拾元整"),
        (1_010_000, "人民币壹万零壹佰元整"),
        (1_100_000, "人民币壹万壹仟元整"),
        (10_000_000, "人民币壹拾万元整"),
        (10_000_100, "人民币壹拾万零壹元整"),
        (100_070_000, "人民币壹佰万零柒佰元整"),
        (100_000_000, "人民币壹佰万元整"),
        (1_000_000_000, "人民币壹仟万元整"),
        (1_000_000_100, "人民币壹仟万零壹元整"),
        (1_001_000_000, "人民币壹仟零壹万元整"),
        (10_000_000_000, "人民币壹亿元整"),
        (10_000_000_100, "人民币壹亿零壹元整"),
        (10_001_000_000, "人民币壹亿零壹万元整"),
        (10_100_000_000, "人民币壹亿零壹佰万元整"),
        (10_010_000_000, "人民币壹亿零壹拾万元整"),
        (11_000_000_000_000, "人民币壹仟壹佰亿元整"),
        (11_000_000_000, "人民币壹亿壹仟万元整"),
        (10_000_010_000, "人民币壹亿零壹佰元整"),
        (100_000_000_000, "人民币壹拾亿元整"),
        (100_000_000_000_000, "人民币壹万亿元整"),
        (100_010_000_000_000, "人民币壹万零壹亿元整"),
        (100_000_000_000_001, "人民币壹万亿元零壹分"),
        (100_000_100_000_000, "人民币壹万亿零壹佰万元整"),
        (100_000_001_000_000, "人民币壹万亿零壹万元整"),
        (123_456_789_012_345, "人民币壹万贰仟叁佰肆拾伍亿陆仟柒佰捌拾玖万零壹佰贰拾叁元肆角伍分"),
        (99_999_999_999_999_999, "人民币玖佰玖拾玖万玖仟玖佰玖拾玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖元玖角玖分"),
        (10_000_000_000_000_000, "人民币壹佰万亿元整"),
        (-10_000, "人民币负壹佰元整"),
    ];

    #[test]
    fn the_table_including_the_tricky_zeros() {
        let failures: Vec<String> = TABLE
            .iter()
            .filter_map(|&(fen, want)| {
                let got = amount_in_words(Money(fen));
                (got != want).then(|| format!("{}: got {got}, want {want}", Money(fen)))
            })
            .collect();
        assert!(failures.is_empty(), "{} of {} wrong:\n{}", failures.len(), TABLE.len(), failures.join("\n"));
        assert!(TABLE.len() >= 30);
    }

    #[test]
    fn extremes_of_i64_do_not_panic() {
        for fen in [i64::MAX, i64::MIN, i64::MIN + 1] {
            assert!(amount_in_words(Money(fen)).starts_with("人民币"));
        }
    }

    /// Reads the words back into fen: a second, independent parser that
    /// checks the writer's zeros did not lose or invent a digit.
    fn parse_words(text: &str) -> Option<i64> {
        let body = text.strip_prefix("人民币")?;
        let (yuan_text, rest) = body.split_once('元')?;
        let mut yuan: i64 = 0;
        let mut section: i64 = 0; // below 万
        let mut group: i64 = 0; // below 亿
        let mut digit: i64 = 0;
        for ch in yuan_text.chars() {
            if let Some(value) = DIGITS.iter().position(|d| d.starts_with(ch)) {
                digit = value as i64;
                continue;
            }
            match ch {
                '拾' => section += digit * 10,
                '佰' => section += digit * 100,
                '仟' => section += digit * 1000,
                '万' => {
                    group = (group + section + digit) * 10_000;
                    section = 0;
                }
                '亿' => {
                    yuan = (yuan + group + section + digit) * 100_000_000;
                    group = 0;
                    section = 0;
                }
                _ => return None,
            }
            digit = 0;
        }
        yuan += group + section + digit;
        let mut fen = yuan * 100;
        let mut digit = 0;
        for ch in rest.chars() {
            if let Some(value) = DIGITS.iter().position(|d| d.starts_with(ch)) {
                digit = value as i64;
                continue;
            }
            match ch {
                '角' => fen += digit * 10,
                '分' => fen += digit,
                '整' => {}
                _ => return None,
            }
            digit = 0;
        }
        Some(fen)
    }

    proptest! {
        #[test]
        fn never_panics_up_to_15_integer_digits(fen in 0i64..=99_999_999_999_999_999) {
            let words = amount_in_words(Money(fen));
            prop_assert!(words.starts_with("人民币"));
            prop_assert!(!words.contains("零零"), "{}", words);
            prop_assert!(!words.contains("零万") && !words.contains("零亿") && !words.contains("零元零"), "{}", words);
            prop_assert_eq!(words.ends_with('整'), fen % 100 == 0, "{}", &words);
        }

        #[test]
        fn reads_back_to_the_same_amount(fen in 0i64..=99_999_999_999_999_999) {
            let words = amount_in_words(Money(fen));
            prop_assert_eq!(parse_words(&words), Some(fen), "{}", words);
        }

        #[test]
        fn reads_back_for_sparse_digits(digits in proptest::collection::vec(prop_oneof![4 => Just(0i64), 1 => 1i64..10], 17)) {
            // Mostly zeros: the runs of zeros across 万 and 亿 are where mistakes hide.
            let fen = digits.iter().fold(0i64, |acc, d| acc * 10 + d);
            let words = amount_in_words(Money(fen));
            prop_assert!(!words.contains("零零"), "{}", words);
            prop_assert_eq!(parse_words(&words), Some(fen), "{}", words);
        }
    }
}
