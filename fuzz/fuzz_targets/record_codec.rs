//! The log record codec on arbitrary payloads: decoding never panics and
//! never allocates past the codec's limit (libFuzzer's -rss_limit_mb and
//! -malloc_limit_mb catch a length field that asks for gigabytes), and a
//! record that decodes encodes back to a payload that decodes to itself.
#![no_main]

use fundledger::codec::{decode, encode_into};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = decode(data) {
        let mut bytes = Vec::new();
        encode_into(&record, &mut bytes).expect("a decoded record encodes");
        let again = decode(&bytes).expect("an encoded record decodes");
        assert_eq!(again, record);
    }
});
