//! Reading one record by its lsn: [`SegmentReader`], which `Wal::read` and
//! tools that do not own the log (`fundledger wal inspect`) share.
//!
//! It owns a list of the segments (one small struct each, so memory grows
//! with segments, never with records), at most [`OPEN_SEGMENTS_MAX`] open
//! segments (least recently used closed first), and the lookup: read entry
//! `lsn - first_lsn` of the segment's offset sidecar ([`crate::sidecar`])
//! and the frame it points at, and answer only if that frame passes the
//! CRC, carries the lsn asked for, and (when the sidecar holds the next
//! entry) ends exactly where the next frame starts. Two positioned reads.
//!
//! When the sidecar does not lead to the frame (missing, short, long,
//! garbage: it is never fsynced), the segment is scanned once and the
//! record answered from the scan; a sealed segment's sidecar is then
//! rebuilt from that scan, and is also rebuilt on its first use when its
//! length does not match the segment's record count. It never writes a
//! segment, nor the sidecar of the last segment: a live writer appends to
//! that one, and start-up rewrites it exactly (so reads of the tail of a
//! crashed log that has not been restarted yet scan that segment).
//!
//! A segment found gone (removed by retention) makes the reader list the
//! folder again. A segment removed while this reader holds it open is still
//! read through the open handle until it leaves the cache; `Wal` drops the
//! cache when it removes segments itself.
//!
//! Residual risk, accepted: a garbage sidecar entry pointing exactly at a
//! valid frame, with the asked lsn, embedded in some other record's
//! payload, whose next entry also points exactly past it.

use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{OPEN_SEGMENTS_MAX, READ_BUFFER_BYTES_KEPT, RECORD_BYTES_MAX, SEGMENT_BYTES_MAX};
use crate::error::ReadError;
use crate::format::{self, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use crate::fs::{RealFs, WalFs, WalReadFile};
use crate::segment::{list_segments, read_frames, read_segment, scan_segment_at, ScanEnd, SegmentFile};
use crate::sidecar::{self, SIDECAR_ENTRY_BYTES};

/// Bytes [`SegmentReader::read_run`] reads at once after the first record
/// of a run.
pub const RUN_READ_BYTES: usize = 1 << 20;

/// Reads records by lsn from the segments in one folder.
#[derive(Debug)]
pub struct SegmentReader {
    fs: Arc<dyn WalFs>,
    dir: PathBuf,
    /// In log order; listed lazily and again when a read needs it.
    segments: Vec<KnownSegment>,
    listed: bool,
    open: Vec<OpenSegmentFiles>,
    /// Clock for the least-recently-used choice.
    uses: u64,
    /// Reused frame buffer.
    frame: Vec<u8>,
}

#[derive(Debug)]
struct KnownSegment {
    file: SegmentFile,
    /// The sidecar's length was compared to the record count (sealed only).
    sidecar_checked: bool,
}

#[derive(Debug)]
struct OpenSegmentFiles {
    first_lsn: u64,
    segment: Box<dyn WalReadFile>,
    /// Length when last asked; the last segment may have grown since.
    segment_bytes: u64,
    sidecar: Option<Box<dyn WalReadFile>>,
    used: u64,
}

/// Where a record was found.
#[derive(Debug, Clone, Copy)]
struct Located {
    index: usize,
    offset: u64,
}

enum InSegment {
    Found(Located),
    /// The segment file is gone.
    Gone,
    /// The last segment ends before the lsn.
    NotHere {
        last_lsn: u64,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ReadError + '_ {
    move |source| ReadError::Io { path: path.to_path_buf(), source }
}

impl SegmentReader {
    /// A reader of the log in `dir` on the real file system. Lists nothing
    /// until the first read.
    pub fn open(dir: &Path) -> SegmentReader {
        SegmentReader::with_fs(Arc::new(RealFs), dir)
    }

    pub fn with_fs(fs: Arc<dyn WalFs>, dir: &Path) -> SegmentReader {
        SegmentReader {
            fs,
            dir: dir.to_path_buf(),
            segments: Vec::new(),
            listed: false,
            open: Vec::new(),
            uses: 0,
            frame: Vec::new(),
        }
    }

    /// The payload of the record `lsn`.
    pub fn read(&mut self, lsn: u64) -> Result<Vec<u8>, ReadError> {
        let mut payload = Vec::new();
        self.read_into(lsn, &mut payload)?;
        Ok(payload)
    }

    /// The payload of the record `lsn`, into `payload` (cleared first), so a
    /// caller reading many records reuses one buffer.
    pub fn read_into(&mut self, lsn: u64, payload: &mut Vec<u8>) -> Result<(), ReadError> {
        self.find(lsn, payload).map(|_| ())
    }

    /// Like [`crate::read_records`] (the same records, checks and errors
    /// from `from_lsn` on), but starts at the frame of `from_lsn`, found
    /// through the sidecar, instead of reading its segment from the start.
    pub fn read_records(
        &mut self,
        from_lsn: u64,
        visit: impl FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), ReadError> {
        self.relist()?;
        let start = match self.segments.first() {
            Some(first) if from_lsn > first.file.first_lsn => {
                let mut payload = Vec::new();
                match self.find(from_lsn, &mut payload) {
                    Ok(located) => Some((located.index, located.offset)),
                    Err(ReadError::PastEnd { .. }) => return Ok(()),
                    Err(error) => return Err(error),
                }
            }
            _ => None,
        };
        let segments: Vec<SegmentFile> = self.segments.iter().map(|known| known.file.clone()).collect();
        crate::verify::read_records_in(&*self.fs, &segments, from_lsn, start, visit)
    }

    /// The records `from_lsn ..= to_lsn`, in order, read in runs: the first
    /// of each run found as [`Self::read_into`] finds it, the rest read on
    /// from there in one positioned read of at most [`RUN_READ_BYTES`],
    /// frame by frame (each checked: CRC, the lsn expected), so that many
    /// neighbouring records cost a few reads, not two each. `visit` may stop
    /// early. Errors as [`Self::read_into`] for the first record it cannot
    /// find.
    pub fn read_run(
        &mut self,
        from_lsn: u64,
        to_lsn: u64,
        mut visit: impl FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), ReadError> {
        let mut next = from_lsn;
        let mut payload = Vec::new();
        let mut chunk = Vec::new();
        while next <= to_lsn {
            let located = self.find(next, &mut payload)?;
            if visit(next, &payload).is_break() {
                return Ok(());
            }
            next += 1;
            let Some(slot) = self.open_files(located.index)? else {
                continue;
            };
            let files = &mut self.open[slot];
            let start = located.offset + (FRAME_HEADER_BYTES + payload.len()) as u64;
            let available = files.segment_bytes.saturating_sub(start).min(RUN_READ_BYTES as u64);
            chunk.resize(available as usize, 0);
            let read =
                files.segment.read_at(start, &mut chunk).map_err(io_error(&self.segments[located.index].file.path))?;
            let mut at = 0;
            while next <= to_lsn {
                let Ok(frame) = format::decode_frame(&chunk[at..read], RECORD_BYTES_MAX) else {
                    break;
                };
                if frame.lsn != next {
                    break;
                }
                if visit(next, frame.payload).is_break() {
                    return Ok(());
                }
                at += frame.frame_bytes();
                next += 1;
            }
        }
        Ok(())
    }

    /// Forgets every segment and closes every file; the next read lists the
    /// folder again. For whoever removed segments.
    pub fn reset(&mut self) {
        self.segments.clear();
        self.open.clear();
        self.listed = false;
    }

    fn relist(&mut self) -> Result<(), ReadError> {
        let listed = list_segments(&*self.fs, &self.dir).map_err(io_error(&self.dir))?;
        let mut segments = Vec::with_capacity(listed.len());
        for file in listed {
            let was = self.segments.iter().find(|known| known.file.first_lsn == file.first_lsn);
            // A segment sealed since the last listing has its length check to do.
            let sidecar_checked = was.is_some_and(|known| known.sidecar_checked);
            segments.push(KnownSegment { file, sidecar_checked });
        }
        self.open.retain(|files| segments.iter().any(|known| known.file.first_lsn == files.first_lsn));
        self.segments = segments;
        self.listed = true;
        Ok(())
    }

    fn find(&mut self, lsn: u64, payload: &mut Vec<u8>) -> Result<Located, ReadError> {
        payload.clear();
        if !self.listed {
            self.relist()?;
        }
        let mut relisted = false;
        loop {
            let Some(index) = self.segments.iter().rposition(|known| known.file.first_lsn <= lsn) else {
                return Err(self.below(lsn));
            };
            let outcome = self.find_in(index, lsn, payload)?;
            let last_lsn = match outcome {
                InSegment::Found(located) => return Ok(located),
                InSegment::Gone => None,
                InSegment::NotHere { last_lsn } => Some(last_lsn),
            };
            if relisted {
                return Err(match last_lsn {
                    Some(last_lsn) => ReadError::PastEnd { lsn, last_lsn },
                    None => {
                        let path = self.segments[index].file.path.clone();
                        let source = io::Error::new(io::ErrorKind::NotFound, "segment removed while reading");
                        ReadError::Io { path, source }
                    }
                });
            }
            // Removed by retention, or a newer segment exists: look again.
            let last_first_lsn = self.segments[index].file.first_lsn;
            self.relist()?;
            relisted = true;
            let newer = self.segments.last().is_some_and(|last| last.file.first_lsn > last_first_lsn);
            if let (Some(last_lsn), false) = (last_lsn, newer) {
                return Err(ReadError::PastEnd { lsn, last_lsn });
            }
        }
    }

    fn below(&self, lsn: u64) -> ReadError {
        match self.segments.first() {
            Some(first) => ReadError::Removed { lsn, first_lsn_retained: first.file.first_lsn },
            None if lsn == 0 => ReadError::Removed { lsn, first_lsn_retained: 1 },
            None => ReadError::PastEnd { lsn, last_lsn: 0 },
        }
    }

    fn find_in(&mut self, index: usize, lsn: u64, payload: &mut Vec<u8>) -> Result<InSegment, ReadError> {
        let first_lsn = self.segments[index].file.first_lsn;
        let records_sealed = self.segments.get(index + 1).map(|next| next.file.first_lsn - first_lsn);
        let Some(slot) = self.open_files(index)? else {
            return Ok(InSegment::Gone);
        };
        if let Some(records) = records_sealed.filter(|_| !self.segments[index].sidecar_checked) {
            self.segments[index].sidecar_checked = true;
            if !self.sidecar_has_entries(slot, records) {
                return self.scan(index, lsn, payload);
            }
        }
        let mut frame = std::mem::take(&mut self.frame);
        let found = lookup(&mut self.open[slot], lsn - first_lsn, lsn, &mut frame);
        if let Ok(Some(_)) = found {
            payload.extend_from_slice(&frame[FRAME_HEADER_BYTES..]);
        }
        frame.clear();
        frame.shrink_to(READ_BUFFER_BYTES_KEPT);
        self.frame = frame;
        let path = &self.segments[index].file.path;
        if let Some(offset) = found.map_err(io_error(path))? {
            return Ok(InSegment::Found(Located { index, offset }));
        }
        if records_sealed.is_none() {
            // The last segment as last listed: if the writer has since
            // moved on to a segment that starts at or before `lsn`, the
            // record is there, and scanning this one whole would only say
            // so slowly. `find` lists the folder again and looks there.
            if let Some(next_first_lsn) = self.newer_segment_first_lsn(first_lsn)?.filter(|&next| next <= lsn) {
                return Ok(InSegment::NotHere { last_lsn: next_first_lsn - 1 });
            }
        }
        self.scan(index, lsn, payload)
    }

    /// The first lsn of the segment that now follows the one starting at
    /// `first_lsn` in the folder, if any (one listing, no file read).
    fn newer_segment_first_lsn(&self, first_lsn: u64) -> Result<Option<u64>, ReadError> {
        let listed = list_segments(&*self.fs, &self.dir).map_err(io_error(&self.dir))?;
        Ok(listed.into_iter().map(|segment| segment.first_lsn).find(|&next| next > first_lsn))
    }

    fn sidecar_has_entries(&self, slot: usize, records: u64) -> bool {
        let expected_bytes = records.saturating_mul(SIDECAR_ENTRY_BYTES as u64);
        let sidecar = self.open[slot].sidecar.as_ref();
        sidecar.is_some_and(|sidecar| sidecar.len_bytes().is_ok_and(|len_bytes| len_bytes == expected_bytes))
    }

    /// The slot of segment `index` in the open-file cache, opening it (and
    /// closing the least recently used) if needed; `None` if it is gone.
    fn open_files(&mut self, index: usize) -> Result<Option<usize>, ReadError> {
        self.uses += 1;
        let first_lsn = self.segments[index].file.first_lsn;
        if let Some(slot) = self.open.iter().position(|files| files.first_lsn == first_lsn) {
            self.open[slot].used = self.uses;
            return Ok(Some(slot));
        }
        if self.open.len() >= OPEN_SEGMENTS_MAX {
            // Close before opening, so the bound holds at every moment.
            let oldest = (0..self.open.len()).min_by_key(|&slot| self.open[slot].used).unwrap_or(0);
            self.open.swap_remove(oldest);
        }
        let path = &self.segments[index].file.path;
        let segment = match self.fs.open_read(path) {
            Ok(segment) => segment,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error(path)(error)),
        };
        let segment_bytes = segment.len_bytes().map_err(io_error(path))?;
        // A sidecar that cannot be opened is only a missing hint.
        let sidecar = self.fs.open_read(&sidecar::sidecar_path(&self.dir, first_lsn)).ok();
        let files = OpenSegmentFiles { first_lsn, segment, segment_bytes, sidecar, used: self.uses };
        self.open.push(files);
        Ok(Some(self.open.len() - 1))
    }

    /// The fallback: scan segment `index` whole, answer from the scan, and
    /// rebuild its sidecar if it is sealed and intact.
    fn scan(&mut self, index: usize, lsn: u64, payload: &mut Vec<u8>) -> Result<InSegment, ReadError> {
        let file = self.segments[index].file.clone();
        let records_sealed = self.segments.get(index + 1).map(|next| next.file.first_lsn - file.first_lsn);
        // The last segment (as listed) may be the preallocated live tail.
        let data = match records_sealed {
            Some(_) => read_segment(&*self.fs, &file.path),
            None => read_frames(&*self.fs, &file.path, 0),
        };
        let data = match data {
            Ok(data) => data,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(InSegment::Gone),
            Err(error) => return Err(io_error(&file.path)(error)),
        };
        let mut entries = Vec::new();
        let mut found = None;
        let outcome = scan_segment_at(&data, file.first_lsn, records_sealed.is_none(), |frame| {
            sidecar::encode_entries([frame.offset], &mut entries);
            if frame.lsn == lsn {
                payload.extend_from_slice(frame.payload);
                found = Some(frame.offset);
            }
            ControlFlow::Continue(())
        });
        let intact = outcome.end == ScanEnd::Clean && Some(outcome.records) == records_sealed;
        if intact {
            self.rebuild_sidecar(&file, &entries);
        }
        if let Some(offset) = found {
            return Ok(InSegment::Found(Located { index, offset }));
        }
        match (outcome.end, records_sealed) {
            (ScanEnd::Damaged { offset, lsn: bad_lsn, reason }, _) if bad_lsn <= lsn => {
                Err(ReadError::Corrupt { file: file.path, offset, lsn: bad_lsn, reason })
            }
            (_, Some(records)) => {
                let reason = format!(
                    "the segment holds {} records where the next segment's name says {records}",
                    outcome.records
                );
                Err(ReadError::Corrupt { file: file.path, offset: outcome.valid_bytes, lsn: outcome.next_lsn, reason })
            }
            (_, None) => Ok(InSegment::NotHere { last_lsn: outcome.next_lsn - 1 }),
        }
    }

    /// Best effort: a failure leaves the old sidecar, which reads check.
    fn rebuild_sidecar(&mut self, file: &SegmentFile, entries: &[u8]) {
        match sidecar::replace_sidecar(&*self.fs, &self.dir, file.first_lsn, entries) {
            Ok(_) => tracing::info!(segment = %file.path.display(), "wal offset sidecar rebuilt"),
            Err(error) => {
                tracing::warn!(segment = %file.path.display(), %error, "cannot rebuild the wal offset sidecar")
            }
        }
        // The cached handle may be the old file: reopen on next use.
        self.open.retain(|files| files.first_lsn != file.first_lsn);
    }
}

/// Entry `index` of the sidecar and the frame it points at, into `frame`.
/// `Some(offset)` only when that frame is the valid frame of `lsn`.
fn lookup(files: &mut OpenSegmentFiles, index: u64, lsn: u64, frame: &mut Vec<u8>) -> io::Result<Option<u64>> {
    let Some(sidecar) = files.sidecar.as_ref() else {
        return Ok(None);
    };
    let Some(at) = index.checked_mul(SIDECAR_ENTRY_BYTES as u64) else {
        return Ok(None);
    };
    let mut entries = [0u8; 2 * SIDECAR_ENTRY_BYTES];
    let read = sidecar.read_at(at, &mut entries)?;
    let Some(offset) = sidecar::entry(&entries[..read], 0) else {
        return Ok(None);
    };
    let next_offset = sidecar::entry(&entries[..read], 1);
    if offset < SEGMENT_HEADER_BYTES as u64 {
        return Ok(None);
    }
    let frame_bytes = match next_offset {
        Some(next_offset) => next_offset.saturating_sub(offset),
        None => {
            if !read_exactly(files, offset, FRAME_HEADER_BYTES as u64, frame)? {
                return Ok(None);
            }
            FRAME_HEADER_BYTES as u64 + u64::from(format::u32_at(frame, 4))
        }
    };
    let frame_bytes_max = (FRAME_HEADER_BYTES as u64) + u64::from(RECORD_BYTES_MAX);
    if !(FRAME_HEADER_BYTES as u64..=frame_bytes_max).contains(&frame_bytes) {
        return Ok(None);
    }
    if !read_exactly(files, offset, frame_bytes, frame)? {
        return Ok(None);
    }
    let valid = match format::decode_frame(frame, RECORD_BYTES_MAX) {
        Ok(decoded) => decoded.lsn == lsn && decoded.frame_bytes() as u64 == frame_bytes,
        Err(_) => false,
    };
    Ok(valid.then_some(offset))
}

/// Reads `bytes` bytes at `offset` into `buf`; false if the segment does
/// not hold them (never allocates past the segment's length).
fn read_exactly(files: &mut OpenSegmentFiles, offset: u64, bytes: u64, buf: &mut Vec<u8>) -> io::Result<bool> {
    let end = offset.saturating_add(bytes);
    if end > files.segment_bytes {
        // The last segment grows; a sealed one never holds this.
        files.segment_bytes = files.segment.len_bytes()?;
        if end > files.segment_bytes || end > SEGMENT_BYTES_MAX {
            return Ok(false);
        }
    }
    // Bounded by the segment's length, itself at most SEGMENT_BYTES_MAX.
    buf.resize(bytes as usize, 0);
    Ok(files.segment.read_at(offset, buf)? == buf.len())
}
