//! The request body parsers on arbitrary bytes: the strict JSON object
//! reader and the transfer parser behind `POST /v1/transfers` and every
//! batch item. Every input is either a transfer or an error with an API
//! code (a 4xx), never a panic.
#![no_main]

use fundledger::http::extract::JsonObject;
use fundledger::http::transfers::parse_transfer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match JsonObject::parse_body(data) {
        Ok(object) => {
            if let Err(error) = parse_transfer(&object) {
                assert!(error.status().is_client_error(), "{error:?}");
            }
        }
        Err(error) => assert!(error.status().is_client_error(), "{error:?}"),
    }
});
