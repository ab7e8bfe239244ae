//! # On-disk format
//!
//! Every integer is little-endian. Every CRC is CRC-32 (IEEE polynomial, as
//! computed by `crc32fast::hash`). [`FORMAT_VERSION`] is 1.
//!
//! ## Frame: one record
//!
//! | offset | bytes    | field     | meaning                                                        |
//! |-------:|---------:|-----------|----------------------------------------------------------------|
//! | 0      | 4        | `crc`     | CRC-32 of bytes 4 .. 17 + `length`: everything after it         |
//! | 4      | 4        | `length`  | payload length in bytes (u32), at most [`RECORD_BYTES_MAX`]    |
//! | 8      | 1        | `version` | [`FORMAT_VERSION`]                                             |
//! | 9      | 8        | `lsn`     | log sequence number (u64); the first record of a log is 1      |
//! | 17     | `length` | `payload` | opaque bytes (the server's bincode-encoded record)             |
//!
//! Frames follow each other with no padding. The CRC covers the length, so
//! a flipped bit there is caught as a CRC mismatch (or a length over the
//! limit, or a frame running past the end of the file); recovery then looks
//! for any valid frame after it, so such a flip in the middle of the log is
//! reported as damage, never mistaken for a torn tail.
//!
//! ## Segment file
//!
//! Named `<first lsn, 20 digits>.wal`, so names sort in log order. A
//! [`SEGMENT_HEADER_BYTES`]-byte header, then frames whose lsns run on
//! from `first_lsn` without a gap.
//!
//! | offset | bytes | field       | meaning                                            |
//! |-------:|------:|-------------|----------------------------------------------------|
//! | 0      | 8     | `magic`     | `FLWALSEG`                                         |
//! | 8      | 1     | `version`   | [`FORMAT_VERSION`]                                 |
//! | 9      | 3     | `reserved`  | zero                                               |
//! | 12     | 8     | `first_lsn` | lsn of the first frame; equal to the file's name  |
//! | 20     | 4     | `crc`       | CRC-32 of bytes 0 .. 20                            |
//!
//! A segment is created, its header written and fsynced, and the directory
//! fsynced, before any record in it is acknowledged.
//!
//! ## Offset sidecar
//!
//! Named `<first lsn, 20 digits>.idx`, beside its segment. No header: entry
//! `i` (4 bytes at offset `4 * i`) is the byte offset (u32; segments never
//! pass [`crate::config::SEGMENT_BYTES_MAX`], 1 GiB) of the frame of lsn
//! `first_lsn + i` in the segment. Never fsynced, so it may be short, long
//! or garbage after a crash: readers check the frame an entry points at
//! (CRC, lsn, and that it ends where the next entry says the next frame
//! starts) and rebuild the sidecar from a scan when it does not match
//! ([`crate::sidecar`], [`crate::reader`]).
//!
//! | offset  | bytes | field      | meaning                                        |
//! |--------:|------:|------------|------------------------------------------------|
//! | 4 × `i` | 4     | `offset_i` | where the frame of lsn `first_lsn + i` starts  |
//!
//! ## Checkpoint file
//!
//! Named `checkpoint-<lsn, 20 digits>.ckpt`; written as `….ckpt.tmp`,
//! fsynced, renamed, directory fsynced.
//!
//! | offset | bytes    | field     | meaning                                   |
//! |-------:|---------:|-----------|-------------------------------------------|
//! | 0      | 4        | `crc`     | CRC-32 of bytes 4 .. end of file           |
//! | 4      | 8        | `magic`   | `FLWALCKP`                                |
//! | 12     | 1        | `version` | [`FORMAT_VERSION`]                        |
//! | 13     | 3        | `reserved`| zero                                      |
//! | 16     | 8        | `lsn`     | state covers every record up to this lsn  |
//! | 24     | 8        | `length`  | payload length (u64); file is 32 + length |
//! | 32     | `length` | `payload` | opaque snapshot bytes                     |

use crate::config::RECORD_BYTES_MAX;

pub const FORMAT_VERSION: u8 = 1;
pub const FRAME_HEADER_BYTES: usize = 17;
pub const SEGMENT_HEADER_BYTES: usize = 24;
pub const CHECKPOINT_HEADER_BYTES: usize = 32;
pub const SEGMENT_MAGIC: [u8; 8] = *b"FLWALSEG";
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"FLWALCKP";

const FRAME_CRC_AT: usize = 0;
const FRAME_LENGTH_AT: usize = 4;
const FRAME_VERSION_AT: usize = 8;
const FRAME_LSN_AT: usize = 9;

const SEGMENT_VERSION_AT: usize = 8;
const SEGMENT_RESERVED_AT: usize = 9;
const SEGMENT_FIRST_LSN_AT: usize = 12;
const SEGMENT_CRC_AT: usize = 20;

const CHECKPOINT_MAGIC_AT: usize = 4;
const CHECKPOINT_VERSION_AT: usize = 12;
const CHECKPOINT_RESERVED_AT: usize = 13;
const CHECKPOINT_LSN_AT: usize = 16;
const CHECKPOINT_LENGTH_AT: usize = 24;

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameFault {
    #[error("frame cut short: {needed_bytes} bytes needed, {available_bytes} left in the file")]
    Truncated { needed_bytes: u64, available_bytes: u64 },
    #[error("length field {length_bytes} exceeds the record limit {limit_bytes}")]
    Length { length_bytes: u32, limit_bytes: u32 },
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
    #[error("unknown format version {0}")]
    Version(u8),
    #[error("lsn {found} where {expected} was expected")]
    LsnOrder { expected: u64, found: u64 },
}

/// Why bytes are not a valid segment header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderFault {
    #[error("segment header cut short: {available_bytes} of {SEGMENT_HEADER_BYTES} bytes")]
    Truncated { available_bytes: u64 },
    #[error("segment header has the wrong magic (not a wal segment)")]
    Magic,
    #[error("segment header crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
    #[error("segment header has unknown format version {0}")]
    Version(u8),
    #[error("segment header reserved bytes are not zero")]
    Reserved,
    #[error("segment header says first lsn {found}, its file name says {expected}")]
    FirstLsn { expected: u64, found: u64 },
}

/// Why bytes are not a valid checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointFault {
    #[error("checkpoint cut short: {available_bytes} bytes")]
    Truncated { available_bytes: u64 },
    #[error("checkpoint crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
    #[error("checkpoint has the wrong magic")]
    Magic,
    #[error("checkpoint has unknown format version {0}")]
    Version(u8),
    #[error("checkpoint reserved bytes are not zero")]
    Reserved,
    #[error("checkpoint length field {length_bytes} does not match the {payload_bytes} payload bytes in the file")]
    Length { length_bytes: u64, payload_bytes: u64 },
}

/// A decoded frame, borrowing its payload from the buffer it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub lsn: u64,
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// Bytes the frame occupies in the file, header included.
    pub fn frame_bytes(&self) -> usize {
        FRAME_HEADER_BYTES + self.payload.len()
    }
}

pub(crate) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut field = [0u8; 4];
    field.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(field)
}

pub(crate) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut field = [0u8; 8];
    field.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(field)
}

/// Appends one complete, sealed frame to `out`.
pub fn encode_frame(lsn: u64, payload: &[u8], out: &mut Vec<u8>) {
    assert!(payload.len() <= RECORD_BYTES_MAX as usize, "payload over the format limit");
    let start = begin_frame(out);
    out.extend_from_slice(payload);
    finish_frame(&mut out[start..]);
    stamp_lsn(&mut out[start..], lsn);
    seal_frame(&mut out[start..]);
}

/// Reserves a zeroed header; the payload is appended after it, then
/// [`finish_frame`] fills in length and version. Returns the frame's start.
pub(crate) fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    start
}

/// Fills length and version of the frame that `frame` holds exactly; returns
/// the payload length. A payload over u32 is marked u32::MAX, which no
/// config admits, so `append` refuses it as too large.
pub(crate) fn finish_frame(frame: &mut [u8]) -> usize {
    assert!(frame.len() >= FRAME_HEADER_BYTES);
    let payload_bytes = frame.len() - FRAME_HEADER_BYTES;
    let length = u32::try_from(payload_bytes).unwrap_or(u32::MAX);
    frame[FRAME_LENGTH_AT..FRAME_LENGTH_AT + 4].copy_from_slice(&length.to_le_bytes());
    frame[FRAME_VERSION_AT] = FORMAT_VERSION;
    payload_bytes
}

pub(crate) fn stamp_lsn(frame: &mut [u8], lsn: u64) {
    frame[FRAME_LSN_AT..FRAME_LSN_AT + 8].copy_from_slice(&lsn.to_le_bytes());
}

/// Writes the CRC of a frame that `frame` holds exactly.
pub(crate) fn seal_frame(frame: &mut [u8]) {
    let crc = crc32fast::hash(&frame[FRAME_LENGTH_AT..]);
    frame[FRAME_CRC_AT..FRAME_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Length of the frame starting at `frames[0]`, from our own in-memory bytes
/// (never from a file: readers use [`decode_frame`]).
pub(crate) fn frame_bytes_in_memory(frames: &[u8]) -> usize {
    assert!(frames.len() >= FRAME_HEADER_BYTES, "frame header cut short in memory");
    let frame_bytes = FRAME_HEADER_BYTES + u32_at(frames, FRAME_LENGTH_AT) as usize;
    assert!(frame_bytes <= frames.len(), "frame runs past its buffer in memory");
    frame_bytes
}

pub(crate) fn lsn_in_memory(frames: &[u8]) -> u64 {
    u64_at(frames, FRAME_LSN_AT)
}

/// Writes lsns `first_lsn..` into `records` consecutive unsealed frames.
pub(crate) fn stamp_lsns(frames: &mut [u8], first_lsn: u64, records: usize) {
    let mut offset = 0;
    for index in 0..records {
        let frame_bytes = frame_bytes_in_memory(&frames[offset..]);
        stamp_lsn(&mut frames[offset..offset + frame_bytes], first_lsn + index as u64);
        offset += frame_bytes;
    }
    assert_eq!(offset, frames.len(), "batch holds exactly its records");
}

/// Checks every frame of a group before it is written (version, length
/// bound, lsns consecutive from `first_lsn`) and seals it. Returns the
/// number of records.
pub(crate) fn seal_frames(frames: &mut [u8], first_lsn: u64, record_bytes_max: u32) -> u64 {
    let mut offset = 0;
    let mut lsn = first_lsn;
    while offset < frames.len() {
        let frame_bytes = frame_bytes_in_memory(&frames[offset..]);
        let frame = &mut frames[offset..offset + frame_bytes];
        assert!(frame_bytes - FRAME_HEADER_BYTES <= record_bytes_max as usize);
        assert_eq!(frame[FRAME_VERSION_AT], FORMAT_VERSION);
        assert_eq!(u64_at(frame, FRAME_LSN_AT), lsn, "lsns of a group are consecutive");
        seal_frame(frame);
        offset += frame_bytes;
        lsn += 1;
    }
    lsn - first_lsn
}

/// Decodes the frame at the start of `bytes`. Checks the length against
/// `record_bytes_max` before looking at the bytes it claims.
pub fn decode_frame(bytes: &[u8], record_bytes_max: u32) -> Result<Frame<'_>, FrameFault> {
    let available_bytes = bytes.len() as u64;
    if bytes.len() < FRAME_HEADER_BYTES {
        return Err(FrameFault::Truncated { needed_bytes: FRAME_HEADER_BYTES as u64, available_bytes });
    }
    let length_bytes = u32_at(bytes, FRAME_LENGTH_AT);
    if length_bytes > record_bytes_max {
        return Err(FrameFault::Length { length_bytes, limit_bytes: record_bytes_max });
    }
    let frame_bytes = FRAME_HEADER_BYTES + length_bytes as usize;
    if bytes.len() < frame_bytes {
        return Err(FrameFault::Truncated { needed_bytes: frame_bytes as u64, available_bytes });
    }
    let stored = u32_at(bytes, FRAME_CRC_AT);
    let computed = crc32fast::hash(&bytes[FRAME_LENGTH_AT..frame_bytes]);
    if stored != computed {
        return Err(FrameFault::Crc { stored, computed });
    }
    if bytes[FRAME_VERSION_AT] != FORMAT_VERSION {
        return Err(FrameFault::Version(bytes[FRAME_VERSION_AT]));
    }
    let lsn = u64_at(bytes, FRAME_LSN_AT);
    Ok(Frame { lsn, payload: &bytes[FRAME_HEADER_BYTES..frame_bytes] })
}

/// The length of the frame whose header starts `bytes` (at least
/// [`FRAME_HEADER_BYTES`] of them), if a frame could start there: version
/// right and length within [`RECORD_BYTES_MAX`]. Unchecked otherwise (no
/// CRC): for a reader deciding how far to read, not whether a frame is good.
/// Never `Some` for zeros (the version byte is not 0).
pub(crate) fn frame_bytes_if_plausible(header: &[u8]) -> Option<usize> {
    if header.len() < FRAME_HEADER_BYTES || header[FRAME_VERSION_AT] != FORMAT_VERSION {
        return None;
    }
    let length_bytes = u32_at(header, FRAME_LENGTH_AT);
    (length_bytes <= RECORD_BYTES_MAX).then_some(FRAME_HEADER_BYTES + length_bytes as usize)
}

/// Cheap pre-filter for the torn-tail scan: could a frame start here with an
/// lsn in `lsn_window`? Only candidates that pass get a CRC check.
pub(crate) fn plausible_frame_bytes(bytes: &[u8], lsn_window: std::ops::RangeInclusive<u64>) -> Option<usize> {
    if bytes.len() < FRAME_HEADER_BYTES || bytes[FRAME_VERSION_AT] != FORMAT_VERSION {
        return None;
    }
    let length_bytes = u32_at(bytes, FRAME_LENGTH_AT);
    let frame_bytes = FRAME_HEADER_BYTES + length_bytes as usize;
    let fits = length_bytes <= RECORD_BYTES_MAX && frame_bytes <= bytes.len();
    (fits && lsn_window.contains(&u64_at(bytes, FRAME_LSN_AT))).then_some(frame_bytes)
}

pub fn encode_segment_header(first_lsn: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    header[..8].copy_from_slice(&SEGMENT_MAGIC);
    header[SEGMENT_VERSION_AT] = FORMAT_VERSION;
    header[SEGMENT_FIRST_LSN_AT..SEGMENT_FIRST_LSN_AT + 8].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32fast::hash(&header[..SEGMENT_CRC_AT]);
    header[SEGMENT_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Decodes the header at the start of a segment; returns its first lsn.
pub fn decode_segment_header(bytes: &[u8]) -> Result<u64, HeaderFault> {
    if bytes.len() < SEGMENT_HEADER_BYTES {
        return Err(HeaderFault::Truncated { available_bytes: bytes.len() as u64 });
    }
    if bytes[..8] != SEGMENT_MAGIC {
        return Err(HeaderFault::Magic);
    }
    let stored = u32_at(bytes, SEGMENT_CRC_AT);
    let computed = crc32fast::hash(&bytes[..SEGMENT_CRC_AT]);
    if stored != computed {
        return Err(HeaderFault::Crc { stored, computed });
    }
    if bytes[SEGMENT_VERSION_AT] != FORMAT_VERSION {
        return Err(HeaderFault::Version(bytes[SEGMENT_VERSION_AT]));
    }
    if bytes[SEGMENT_RESERVED_AT..SEGMENT_FIRST_LSN_AT] != [0, 0, 0] {
        return Err(HeaderFault::Reserved);
    }
    Ok(u64_at(bytes, SEGMENT_FIRST_LSN_AT))
}

/// A checkpoint file's header for `payload`: what precedes the payload in
/// the file (its CRC covers the payload too). Written apart from the
/// payload, so a state of hundreds of megabytes is never copied into a
/// frame buffer.
pub fn checkpoint_header(lsn: u64, payload: &[u8]) -> [u8; CHECKPOINT_HEADER_BYTES] {
    checkpoint_header_of_parts(lsn, &[payload])
}

/// [`checkpoint_header`] of the payload that is `parts` one after
/// another (a payload whose largest part the caller already holds, read
/// from the checkpoint before, is never copied to join the others).
pub fn checkpoint_header_of_parts(lsn: u64, parts: &[&[u8]]) -> [u8; CHECKPOINT_HEADER_BYTES] {
    let length: usize = parts.iter().map(|part| part.len()).sum();
    let mut header = [0u8; CHECKPOINT_HEADER_BYTES];
    header[CHECKPOINT_MAGIC_AT..CHECKPOINT_VERSION_AT].copy_from_slice(&CHECKPOINT_MAGIC);
    header[CHECKPOINT_VERSION_AT] = FORMAT_VERSION;
    header[CHECKPOINT_LSN_AT..CHECKPOINT_LENGTH_AT].copy_from_slice(&lsn.to_le_bytes());
    header[CHECKPOINT_LENGTH_AT..].copy_from_slice(&(length as u64).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[CHECKPOINT_MAGIC_AT..]);
    for part in parts {
        crc.update(part);
    }
    header[..CHECKPOINT_MAGIC_AT].copy_from_slice(&crc.finalize().to_le_bytes());
    header
}

/// A whole checkpoint file: [`checkpoint_header`], then the payload.
pub fn encode_checkpoint(lsn: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHECKPOINT_HEADER_BYTES + payload.len());
    out.extend_from_slice(&checkpoint_header(lsn, payload));
    out.extend_from_slice(payload);
    out
}

/// Decodes a whole checkpoint file; returns its lsn and payload.
pub fn decode_checkpoint(bytes: &[u8]) -> Result<(u64, &[u8]), CheckpointFault> {
    let (header, payload) = bytes.split_at(bytes.len().min(CHECKPOINT_HEADER_BYTES));
    check_checkpoint(header, payload).map(|lsn| (lsn, payload))
}

/// [`decode_checkpoint`] of a file read as its header (the first
/// [`CHECKPOINT_HEADER_BYTES`], fewer when the file is shorter) and the
/// rest, its payload, in two buffers (so that the payload, hundreds of
/// megabytes over many accounts, is never moved to drop the header):
/// the checkpoint's lsn.
pub fn check_checkpoint(header: &[u8], payload: &[u8]) -> Result<u64, CheckpointFault> {
    if header.len() < CHECKPOINT_HEADER_BYTES {
        return Err(CheckpointFault::Truncated { available_bytes: header.len() as u64 });
    }
    let stored = u32_at(header, 0);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[CHECKPOINT_MAGIC_AT..CHECKPOINT_HEADER_BYTES]);
    crc.update(payload);
    let computed = crc.finalize();
    if stored != computed {
        return Err(CheckpointFault::Crc { stored, computed });
    }
    if header[CHECKPOINT_MAGIC_AT..CHECKPOINT_VERSION_AT] != CHECKPOINT_MAGIC {
        return Err(CheckpointFault::Magic);
    }
    if header[CHECKPOINT_VERSION_AT] != FORMAT_VERSION {
        return Err(CheckpointFault::Version(header[CHECKPOINT_VERSION_AT]));
    }
    if header[CHECKPOINT_RESERVED_AT..CHECKPOINT_LSN_AT] != [0, 0, 0] {
        return Err(CheckpointFault::Reserved);
    }
    let length_bytes = u64_at(header, CHECKPOINT_LENGTH_AT);
    if length_bytes != payload.len() as u64 {
        return Err(CheckpointFault::Length { length_bytes, payload_bytes: payload.len() as u64 });
    }
    Ok(u64_at(header, CHECKPOINT_LSN_AT))
}
