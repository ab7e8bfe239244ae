//! The WAL's on-disk decoders on arbitrary bytes: a frame, a segment header
//! and a checkpoint file. None may panic, and a frame's length field must
//! be checked against the limit before anything is read or allocated from
//! it (a decoded frame's payload always lies inside the input).
#![no_main]

use fundledger_wal::format::{decode_checkpoint, decode_frame, decode_segment_header, encode_frame};
use libfuzzer_sys::fuzz_target;

const RECORD_BYTES_MAX: u32 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_frame(data, RECORD_BYTES_MAX) {
        assert!(frame.frame_bytes() <= data.len(), "a frame longer than its input");
        assert!(frame.payload.len() <= RECORD_BYTES_MAX as usize);
        // What decodes re-encodes to the same bytes.
        let mut again = Vec::new();
        encode_frame(frame.lsn, frame.payload, &mut again);
        assert_eq!(&again[..], &data[..frame.frame_bytes()]);
    }
    let _ = decode_segment_header(data);
    if let Ok((_, payload)) = decode_checkpoint(data) {
        assert!(payload.len() <= data.len());
    }
});
