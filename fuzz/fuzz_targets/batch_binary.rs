//! The binary batch body (`application/vnd.fundledger.transfers+binary`,
//! `src/http/batch_binary.rs`) on arbitrary bytes: the whole body is
//! either refused with a 4xx or decoded into one result per item, each a
//! transfer or a 4xx error; never a panic, and no allocation past
//! libFuzzer's -malloc_limit_mb from the header's count.
#![no_main]

use fundledger::http::batch_binary::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(items) => {
            assert!(!items.is_empty(), "a decoded batch has at least one item");
            for item in items {
                if let Err(error) = item {
                    assert!(error.status().is_client_error(), "{error:?}");
                }
            }
        }
        Err(error) => assert!(error.status().is_client_error(), "{error:?}"),
    }
});
