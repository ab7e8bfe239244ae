//! A fast reader for the JSON bodies almost every client sends: one object
//! of flat fields, or a batch `{"<field>": [ {..}, .. ]}` of such objects,
//! whose keys and strings hold no escapes and whose values are strings or
//! `null`, `true`, `false`.
//!
//! Owns only that shape, read in one pass over the bytes with no
//! allocation but the answers and one field list ([`batch`] hands
//! each item on as it is read). Anything else (an
//! escape, a number, a nested value, another key in the batch, a repeated
//! key in a lone object, bad syntax) answers `None`, and the caller reads
//! the body with serde_json ([`super::extract`]), which gives the same
//! fields for what this reads (a property test in this module holds both
//! to that) and the precise error for the rest. serde_json's reader was
//! two thirds of the batch path's parsing (docs/PERFORMANCE.md).
//!
//! Must not: accept a body serde_json refuses, or read a field differently.

use std::borrow::Cow;

use super::extract::{JsonObject, FIELDS_EXPECTED};
use crate::json_out;

/// A lone object: the whole text, surrounding whitespace allowed.
pub fn object(text: &str) -> Option<JsonObject<'_>> {
    let mut scan = Scan { text, at: 0 };
    scan.whitespace();
    let mut object = JsonObject { fields: Vec::with_capacity(FIELDS_EXPECTED) };
    let repeated = scan.object_into(&mut object.fields)?;
    scan.whitespace();
    // A repeated key is an error for a lone object: serde's message names it.
    (scan.at == text.len() && !repeated).then_some(object)
}

/// A batch body whose only key is `field`, holding an array of objects,
/// each handed to `read` as soon as it is scanned (`None` for an object
/// with a repeated key: the item's own error), in one field list used
/// again for the next: no allocation per item. When the body turns out
/// not to be of the usual shape the answers so far are dropped (`None`),
/// so `read` must only read.
pub fn batch<'a, T>(text: &'a str, field: &str, mut read: impl FnMut(Option<&JsonObject<'a>>) -> T) -> Option<Vec<T>> {
    let mut scan = Scan { text, at: 0 };
    scan.whitespace();
    scan.byte(b'{')?;
    scan.whitespace();
    if scan.string()? != field {
        return None;
    }
    scan.whitespace();
    scan.byte(b':')?;
    scan.whitespace();
    scan.byte(b'[')?;
    scan.whitespace();
    let mut items = Vec::new();
    let mut object = JsonObject { fields: Vec::with_capacity(FIELDS_EXPECTED) };
    if !scan.eat(b']') {
        loop {
            let start = scan.at;
            let repeated = scan.object_into(&mut object.fields)?;
            if items.is_empty() {
                // Room for as many items as the rest of the body holds if
                // they are the size of the first (a batch's items are
                // alike): the list (8190 items of about 120 bytes) does not
                // double its way up, copying as it goes.
                let first = (scan.at - start).max(1);
                items.reserve((text.len() / first).min(crate::limits::BATCH_ITEMS_MAX + 1));
            }
            items.push(read((!repeated).then_some(&object)));
            scan.whitespace();
            if scan.eat(b']') {
                break;
            }
            scan.byte(b',')?;
            scan.whitespace();
        }
    }
    scan.whitespace();
    scan.byte(b'}')?;
    scan.whitespace();
    (scan.at == text.len()).then_some(items)
}

struct Scan<'a> {
    text: &'a str,
    /// Always at a character boundary: it only ever steps over ASCII bytes
    /// or to the byte after a closing quote.
    at: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn byte(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// `{ "key": value, ... }` into `fields` (emptied first), and whether
    /// a key repeats.
    fn object_into(&mut self, fields: &mut Vec<(Cow<'a, str>, &'a str)>) -> Option<bool> {
        fields.clear();
        self.byte(b'{')?;
        self.whitespace();
        let mut repeated = false;
        if !self.eat(b'}') {
            loop {
                let key = self.string()?;
                self.whitespace();
                self.byte(b':')?;
                self.whitespace();
                let value = self.value()?;
                repeated |= fields.iter().any(|(seen, _)| *seen == key);
                fields.push((Cow::Borrowed(key), value));
                self.whitespace();
                if self.eat(b'}') {
                    break;
                }
                self.byte(b',')?;
                self.whitespace();
            }
        }
        Some(repeated)
    }

    /// A string without escapes or control characters: its contents.
    fn string(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        self.byte(b'"')?;
        let start = self.at;
        let end = start + string_end(&bytes[start..])?;
        if bytes[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        Some(&self.text[start..end])
    }

    /// A value's JSON text: a plain string (quotes included) or a literal.
    fn value(&mut self) -> Option<&'a str> {
        let start = self.at;
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'n' => self.literal("null")?,
            b't' => self.literal("true")?,
            b'f' => self.literal("false")?,
            _ => return None,
        }
        Some(&self.text[start..self.at])
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        if !self.text[self.at..].starts_with(word) {
            return None;
        }
        self.at += word.len();
        // `nullx` is not `null`: serde refuses it, so leave it to serde.
        match self.peek() {
            None | Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b'}' | b']') => Some(()),
            Some(_) => None,
        }
    }
}

/// Where a string's plain run ends: the first `"`, `\\` or control
/// character, 8 bytes at a time (the lowest flag of
/// [`json_out::string_specials`] is exact).
fn string_end(bytes: &[u8]) -> Option<usize> {
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut words {
        let flags = json_out::string_specials(json_out::word(chunk));
        if flags != 0 {
            return Some(at + flags.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    words.remainder().iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).map(|found| at + found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::extract::BatchBody;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    type Fields = Vec<(String, String)>;
    /// Each item's fields, `None` for an item that is not an object.
    type Items = Vec<Option<Fields>>;

    fn fields(object: &JsonObject) -> Fields {
        object.fields.iter().map(|(key, raw)| (key.to_string(), raw.to_string())).collect()
    }

    fn scanned_batch(text: &str) -> Option<Items> {
        batch(text, "transfers", |item| item.map(fields))
    }

    /// Whether a key other than `transfers` came, and the items.
    fn serde_batch(text: &str) -> Result<(bool, Option<Option<Items>>), String> {
        let body = BatchBody::parse_with_serde(text, "transfers").map_err(|error| error.to_string())?;
        let items =
            body.items.map(|items| items.map(|items| items.iter().map(|item| item.as_ref().map(fields)).collect()));
        Ok((body.unexpected.is_some(), items))
    }

    #[test]
    fn the_usual_bodies_take_the_fast_path() {
        let item = r#"{"id":"t-1","type":"transfer","payer":"F000001","payee":"F000002","amount":"10.00","memo":null}"#;
        let body = format!("{{\"transfers\":[{item},{item}]}}");
        let items = scanned_batch(&body).expect("fast path");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().unwrap()[0], ("id".to_owned(), "\"t-1\"".to_owned()));
        assert_eq!(items[0].as_ref().unwrap()[5], ("memo".to_owned(), "null".to_owned()));
        let spaced = " {\n \"transfers\" : [ { \"id\" : \"中文\" , \"ok\" : true } , { } ] } \n";
        assert_eq!(
            scanned_batch(spaced),
            Some(vec![Some(vec![("id".into(), "\"中文\"".into()), ("ok".into(), "true".into())]), Some(vec![])])
        );
        assert_eq!(scanned_batch(r#"{"transfers":[{"id":"a","id":"b"}]}"#), Some(vec![None]));
        assert_eq!(scanned_batch(r#"{"transfers":[]}"#), Some(vec![]));
        let lone = object(item).expect("fast path");
        assert_eq!(lone.fields.len(), 6);
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        for text in [
            r#"{"transfers":[{"id":"a\"b"}]}"#,
            r#"{"transfers":[{"amount":10}]}"#,
            r#"{"transfers":[{"x":{"y":"z"}}]}"#,
            r#"{"transfers":[{"x":["y"]}]}"#,
            r#"{"transfers":[7]}"#,
            r#"{"transfers":null}"#,
            r#"{"transfers":[],"more":"x"}"#,
            r#"{"transfers":[{"x":nullx}]}"#,
            r#"{"transfers":[{"x":"y"}]"#,
            r#"{"transfers":[{"x":"y"},]}"#,
            r#"{"transfers":[{"x":"y",}]}"#,
            r#"{"transfers":[{"x":"y"}]} x"#,
            "{\"transfers\":[{\"x\":\"a\tb\"}]}",
            r#"{"tr\u0061nsfers":[]}"#,
            "",
        ] {
            assert!(scanned_batch(text).is_none(), "{text}");
        }
        assert!(object(r#"{"id":"a","id":"b"}"#).is_none(), "serde names the repeated key");
        assert!(object(r#"{"id":"a"} {}"#).is_none());
    }

    /// JSON pieces, most of the usual shape and some not, to glue into
    /// bodies that are sometimes not JSON at all.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "\"[a-z_]{0,6}\"".prop_map(|s| s),
            2 => "\"[a-zA-Z0-9 上海\\\\\"\\t.-]{0,8}\"".prop_map(|s| s),
            1 => Just("null".to_owned()),
            1 => Just("true".to_owned()),
            1 => Just("false".to_owned()),
            1 => Just("nul".to_owned()),
            1 => "-?[0-9]{1,3}(\\.[0-9]{1,2})?".prop_map(|s| s),
            1 => Just("{\"a\":[1,{}]}".to_owned()),
            1 => Just("[]".to_owned()),
        ]
    }

    fn item() -> impl Strategy<Value = String> {
        let key = prop_oneof![Just("id"), Just("type"), Just("amount"), Just("memo"), Just("x")];
        let space = prop_oneof![8 => Just(""), 1 => Just(" "), 1 => Just("\n\t")];
        prop_oneof![
            8 => proptest::collection::vec((key, space.clone(), piece()), 0..5).prop_map(|pairs| {
                let inner: Vec<String> = pairs.iter().map(|(k, sp, v)| format!("{sp}\"{k}\"{sp}:{sp}{v}{sp}")).collect();
                format!("{{{}}}", inner.join(","))
            }),
            1 => piece(),
        ]
    }

    fn body() -> impl Strategy<Value = String> {
        (proptest::collection::vec(item(), 0..4), 0usize..3, any::<u8>(), any::<u16>()).prop_map(
            |(items, shape, noise, at)| {
                let mut text = format!("{{\"transfers\":[{}]}}", items.join(","));
                // A character boundary at or before `at`: the body is text.
                let boundary = |text: &str, mut at: usize| {
                    while !text.is_char_boundary(at) {
                        at -= 1;
                    }
                    at
                };
                match shape {
                    0 => {}
                    1 => {
                        // One character replaced by an ASCII one somewhere.
                        let at = boundary(&text, usize::from(at) % text.len());
                        let width = text[at..].chars().next().map_or(1, char::len_utf8);
                        text.replace_range(at..at + width, &char::from(noise % 128).to_string());
                    }
                    _ => {
                        let at = boundary(&text, usize::from(at) % (text.len() + 1));
                        text.truncate(at);
                    }
                }
                text
            },
        )
    }

    proptest! {
        #[test]
        fn a_string_ends_at_its_first_quote_backslash_or_control(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let expected = bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            prop_assert_eq!(string_end(&bytes), expected);
            // The same bytes with every special one moved out of the way.
            let plain: Vec<u8> = bytes.iter().map(|&b| if b == b'"' || b == b'\\' || b < 0x20 { b'a' } else { b }).collect();
            prop_assert_eq!(string_end(&plain), None);
            // One special byte at each place in a plain run, non-ASCII bytes around it.
            for special in [b'"', b'\\', 0x00, 0x1f] {
                for at in 0..plain.len() {
                    let mut bytes = plain.clone();
                    bytes[at] = special;
                    prop_assert_eq!(string_end(&bytes), Some(at));
                }
            }
        }
    }

    #[test]
    fn the_generated_bodies_reach_both_readers() {
        // So that the property below compares something: a good share of
        // the bodies it is given take the fast path, and many do not.
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = body();
        let fast = (0..1000)
            .filter(|_| {
                let text = strategy.new_tree(&mut runner).expect("a body").current();
                scanned_batch(&text).is_some()
            })
            .count();
        assert!((100..900).contains(&fast), "{fast} of 1000 bodies took the fast path");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn what_the_scanner_reads_serde_reads_the_same(text in body()) {
            if let Some(items) = scanned_batch(&text) {
                prop_assert_eq!(serde_batch(&text), Ok((false, Some(Some(items)))), "{}", text);
            }
        }

        #[test]
        fn a_lone_object_reads_as_serde_reads_it(text in item()) {
            if let Some(object) = object(&text) {
                let by_serde = JsonObject::parse_with_serde(&text).map(|object| fields(&object));
                prop_assert_eq!(by_serde, Ok(fields(&object)), "{}", text);
            }
        }
    }
}
