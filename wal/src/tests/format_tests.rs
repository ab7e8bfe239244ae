use proptest::prelude::*;

use crate::config::RECORD_BYTES_MAX;
use crate::format::*;
use crate::FrameBatch;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn frame_round_trips(lsn in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut bytes = Vec::new();
        encode_frame(lsn, &payload, &mut bytes);
        prop_assert_eq!(bytes.len(), FRAME_HEADER_BYTES + payload.len());
        let frame = decode_frame(&bytes, RECORD_BYTES_MAX).expect("valid");
        prop_assert_eq!(frame.lsn, lsn);
        prop_assert_eq!(frame.payload, &payload[..]);
        prop_assert_eq!(frame.frame_bytes(), bytes.len());
    }

    /// Every single-bit flip, at every byte of a frame, is detected, also
    /// when more bytes follow it in the buffer (as in a segment).
    #[test]
    fn every_bit_flip_is_detected(
        lsn in 1..u64::MAX,
        payload in proptest::collection::vec(any::<u8>(), 0..80),
        next_payload in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let mut bytes = Vec::new();
        encode_frame(lsn, &payload, &mut bytes);
        let frame_bytes = bytes.len();
        encode_frame(lsn + 1, &next_payload, &mut bytes);
        for position in 0..frame_bytes {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[position] ^= 1 << bit;
                let decoded = decode_frame(&flipped, RECORD_BYTES_MAX);
                prop_assert!(decoded.is_err(), "flip at byte {} bit {} decoded as {:?}", position, bit, decoded);
            }
        }
    }

    #[test]
    fn segment_header_round_trips_and_detects_flips(first_lsn in any::<u64>(), position in 0..SEGMENT_HEADER_BYTES, bit in 0..8u8) {
        let header = encode_segment_header(first_lsn);
        prop_assert_eq!(decode_segment_header(&header), Ok(first_lsn));
        let mut flipped = header;
        flipped[position] ^= 1 << bit;
        prop_assert!(decode_segment_header(&flipped).is_err());
    }

    #[test]
    fn checkpoint_round_trips_and_detects_flips(
        lsn in any::<u64>(),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        position_seed in any::<usize>(),
        bit in 0..8u8,
    ) {
        let bytes = encode_checkpoint(lsn, &payload);
        prop_assert_eq!(decode_checkpoint(&bytes), Ok((lsn, &payload[..])));
        let mut flipped = bytes.clone();
        let position = position_seed % flipped.len();
        flipped[position] ^= 1 << bit;
        prop_assert!(decode_checkpoint(&flipped).is_err());
        prop_assert!(decode_checkpoint(&bytes[..bytes.len() - 1]).is_err());
    }

    /// A batch lays out exactly the frames `encode_frame` would.
    #[test]
    fn batch_frames_match_encode_frame(first_lsn in 1..u64::MAX / 2, payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 0..10)) {
        let mut batch = FrameBatch::new();
        for payload in &payloads {
            batch.push(payload);
        }
        let mut frames = batch.frames().to_vec();
        stamp_lsns(&mut frames, first_lsn, batch.len());
        let records = seal_frames(&mut frames, first_lsn, RECORD_BYTES_MAX);
        prop_assert_eq!(records, payloads.len() as u64);
        let mut expected = Vec::new();
        for (index, payload) in payloads.iter().enumerate() {
            encode_frame(first_lsn + index as u64, payload, &mut expected);
        }
        prop_assert_eq!(frames, expected);
    }
}

#[test]
fn length_over_the_limit_is_refused_before_reading() {
    let mut bytes = Vec::new();
    encode_frame(1, b"abc", &mut bytes);
    bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(decode_frame(&bytes, RECORD_BYTES_MAX), Err(FrameFault::Length { .. })));
}

#[test]
fn push_with_error_leaves_the_batch_unchanged() {
    let mut batch = FrameBatch::new();
    batch.push(b"one");
    let before = batch.frames().to_vec();
    let failed: Result<(), &str> = batch.push_with(|out| {
        out.extend_from_slice(b"partial");
        Err("no")
    });
    assert_eq!(failed, Err("no"));
    assert_eq!(batch.len(), 1);
    assert_eq!(batch.frames(), &before[..]);
    batch.clear();
    assert!(batch.is_empty());
    assert_eq!(batch.frame_bytes(), 0);
}

#[test]
#[should_panic(expected = "encode must only append")]
fn push_with_that_rewrites_the_buffer_is_caught() {
    let mut batch = FrameBatch::new();
    let _ = batch.push_with(|out| {
        out.clear();
        Ok::<(), ()>(())
    });
}
