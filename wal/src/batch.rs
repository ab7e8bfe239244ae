//! `FrameBatch`: records encoded outside any lock, already laid out as
//! frames (lsn and crc left blank), so `Wal::append` is one memcpy plus
//! stamping lsns.

use std::convert::Infallible;

use crate::format::{self, FRAME_HEADER_BYTES};

/// Reusable buffer of payloads to append together.
#[derive(Debug, Default, Clone)]
pub struct FrameBatch {
    frames: Vec<u8>,
    records: usize,
    payload_bytes_max: usize,
}

impl FrameBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the allocation for the next batch.
    pub fn clear(&mut self) {
        self.frames.clear();
        self.records = 0;
        self.payload_bytes_max = 0;
    }

    pub fn len(&self) -> usize {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Bytes the batch takes in the log, frame headers included.
    pub fn frame_bytes(&self) -> usize {
        self.frames.len()
    }

    /// Appends one record whose payload `encode` appends to the given Vec.
    /// `encode` must only append; on its error the batch is left unchanged.
    pub fn push_with<E>(&mut self, encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<(), E> {
        let start = format::begin_frame(&mut self.frames);
        if let Err(error) = encode(&mut self.frames) {
            self.frames.truncate(start);
            return Err(error);
        }
        let header_end = start + FRAME_HEADER_BYTES;
        assert!(self.frames.len() >= header_end, "encode must only append to the Vec");
        assert!(self.frames[start..header_end].iter().all(|&b| b == 0), "encode must only append to the Vec");
        let payload_bytes = format::finish_frame(&mut self.frames[start..]);
        self.records += 1;
        self.payload_bytes_max = self.payload_bytes_max.max(payload_bytes);
        Ok(())
    }

    pub fn push(&mut self, payload: &[u8]) {
        let pushed: Result<(), Infallible> = self.push_with(|out| {
            out.extend_from_slice(payload);
            Ok(())
        });
        match pushed {
            Ok(()) => {}
            Err(never) => match never {},
        }
    }

    pub(crate) fn frames(&self) -> &[u8] {
        &self.frames
    }

    pub(crate) fn payload_bytes_max(&self) -> usize {
        self.payload_bytes_max
    }
}
