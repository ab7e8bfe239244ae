//! Both checkpoint payload decoders on arbitrary bytes: no panic, no
//! allocation past libFuzzer's -malloc_limit_mb from a count or length
//! field, and what decodes encodes to a payload that decodes to the same
//! value (not always the same bytes: bincode's varints accept non-minimal
//! forms).
//! - schema 1 (records): `decode` / `encode`;
//! - schemas 2, 3 and 4 (the state image): `decode_state` / `encode_state`
//!   (an older schema has no banks' places: written again it is schema 4
//!   with empty ones), and `decode_state_keeping_registry`, whose state
//!   written again around the registry bytes it kept decodes to the same
//!   state as the whole payload.
//!
//! (Restoring a decoded image into the ledger is recovery's job and is not
//! fuzzed here: a payload that decodes but breaks an invariant is refused
//! by its CRC first in real files.)
#![no_main]

use fundledger::codec::checkpoint::{
    decode, decode_state, decode_state_keeping_registry, encode, encode_state, encode_state_parts, StateImage,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut records = Vec::new();
    let decoded = decode(data, |lsn, record, _| {
        records.push((lsn, record));
        Ok(())
    });
    if let Ok(meta) = decoded {
        assert_eq!(meta.records, records.len() as u64);
        let again = encode(meta.last_lsn, meta.records, records.iter().map(|(lsn, record)| (*lsn, record)))
            .expect("decoded records encode");
        let mut back = Vec::new();
        let meta_again = decode(&again, |lsn, record, _| {
            back.push((lsn, record));
            Ok(())
        })
        .expect("an encoded checkpoint decodes");
        assert_eq!(meta_again, meta);
        assert_eq!(back, records);
    }
    let whole = decode_state(data);
    if let Ok(image) = &whole {
        let image = StateImage { places: Some(image.places.clone().unwrap_or_default()), ..image.clone() };
        let again = encode_state(&image).expect("a decoded state encodes");
        assert_eq!(decode_state(&again).expect("an encoded state decodes"), image);
    }
    if let Ok((image, Some(kept))) = decode_state_keeping_registry(data.to_vec()) {
        let again = encode_state_parts(&image, Some(&kept)).expect("a decoded state encodes").joined();
        // The registry's bytes were not decoded: the whole payload may
        // still be refused for them, and then so is the one written again.
        match &whole {
            Ok(image) => assert_eq!(decode_state(&again).as_ref().ok(), Some(image)),
            Err(_) => assert!(decode_state(&again).is_err()),
        }
    }
});
