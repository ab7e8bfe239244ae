//! The checkpoint payload (inside the wal crate's checkpoint frame, which
//! carries the lsn and a CRC over all of it).
//!
//! Layout, in order; every integer is bincode's varint, every value is
//! decoded on its own with the codec's size limit:
//!
//! | bytes | what |
//! |---|---|
//! | 1 | [`CHECKPOINT_SCHEMA_VERSION`] |
//! | 1 | [`RECORD_SCHEMA_VERSION`] of the records inside |
//! | part `META` | tag, then `last_lsn`, `records` (the count in part `RECORDS`) |
//! | part `RECORDS` | tag, count, then `count` × (`lsn`, [`Record`]) in lsn order, lsn 1 ..= `last_lsn` |
//!
//! Each part is one tag byte and one pair of functions here
//! (`write_*`/`read_*`); a new part is a new tag, a new pair and a new
//! line in [`encode`] and [`decode`], and a schema version bump.
//!
//! Why records and not the folded state: every part of the state at start-up
//! (applications, accounts and their books, suspense, pending bank work,
//! the id and notification indexes, the history read model) is re-derived
//! by the same fold recovery uses, so the `Arc` sharing between them is
//! rebuilt for free and no second encoding of each structure has to be kept
//! true. The history and the id index hold per-transfer data anyway, so
//! folded parts would be as large (see docs/RELIABILITY.md).
//!
//! Decoding never panics and never allocates from a length field: each
//! value is bounded by [`limits::RECORD_BYTES_MAX`], and a count is refused
//! when the bytes left could not hold that many items.

use bincode::{Decode, Encode};

use super::{CodecError, CONFIG};
use crate::domain::record::{Record, RECORD_SCHEMA_VERSION};

pub const CHECKPOINT_SCHEMA_VERSION: u8 = 1;

const PART_META: u8 = 1;
const PART_RECORDS: u8 = 2;

/// Smallest encoding of one record item (an lsn and a record tag): what a
/// count is checked against before anything is allocated for it.
const RECORD_ITEM_BYTES_MIN: usize = 2;

/// What a checkpoint says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointMeta {
    pub last_lsn: u64,
    pub records: u64,
}

fn put<T: Encode>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    bincode::encode_into_std_write(value, out, CONFIG)
        .map(|_| ())
        .map_err(|error| CodecError::Encode(error.to_string()))
}

/// Encodes a checkpoint of the records `1 ..= last_lsn`, which `records`
/// yields in lsn order (`count` of them).
pub fn encode<'a>(
    last_lsn: u64,
    count: u64,
    records: impl Iterator<Item = (u64, &'a Record)>,
) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![CHECKPOINT_SCHEMA_VERSION, RECORD_SCHEMA_VERSION];
    write_meta(&CheckpointMeta { last_lsn, records: count }, &mut out)?;
    write_records(count, records, &mut out)?;
    Ok(out)
}

/// Builds the next checkpoint from the checkpoint before it (or from the
/// first lsn) and the log payloads of the records after it, without decoding the
/// base's records again: its record items are copied as they are (the wal
/// crate's frame CRC vouched for them when the base was read), and each
/// payload becomes an item (its lsn, then the record's encoding after the
/// payload's schema byte), decoded once as a check. [`Self::finish`] gives
/// exactly the bytes [`encode`] writes for the same records.
pub struct Extender {
    next_lsn: u64,
    items: Vec<u8>,
}

impl Extender {
    pub fn new(base: Option<&[u8]>) -> Result<Self, CodecError> {
        let (base_lsn, base_items) = match base {
            Some(base) => base_items(base)?,
            None => (0, &[][..]),
        };
        Ok(Self { next_lsn: base_lsn + 1, items: base_items.to_vec() })
    }

    /// The next record's log payload; lsns must follow on.
    pub fn push(&mut self, lsn: u64, payload: &[u8]) -> Result<(), CodecError> {
        if lsn != self.next_lsn {
            return Err(CodecError::Encode(format!("checkpoint record lsn {lsn} where {} belongs", self.next_lsn)));
        }
        super::decode(payload)?;
        put(&lsn, &mut self.items)?;
        // `decode` checked the schema byte in front.
        self.items.extend_from_slice(&payload[1..]);
        self.next_lsn += 1;
        Ok(())
    }

    /// The checkpoint at `last_lsn`, which must be the last lsn pushed.
    pub fn finish(self, last_lsn: u64) -> Result<Vec<u8>, CodecError> {
        if self.next_lsn != last_lsn + 1 {
            return Err(CodecError::Encode(format!(
                "checkpoint {last_lsn} got records up to lsn {}",
                self.next_lsn - 1
            )));
        }
        let mut out = Vec::with_capacity(self.items.len() + 32);
        out.extend_from_slice(&[CHECKPOINT_SCHEMA_VERSION, RECORD_SCHEMA_VERSION]);
        write_meta(&CheckpointMeta { last_lsn, records: last_lsn }, &mut out)?;
        out.push(PART_RECORDS);
        put(&last_lsn, &mut out)?;
        out.extend_from_slice(&self.items);
        Ok(out)
    }
}

/// The last lsn of a checkpoint and the bytes of its record items, after
/// its header is checked (versions, parts, counts).
fn base_items(payload: &[u8]) -> Result<(u64, &[u8]), CodecError> {
    let mut reader = Reader { bytes: payload };
    let meta = read_header(&mut reader)?;
    read_record_count(&mut reader, &meta)?;
    Ok((meta.last_lsn, reader.bytes))
}

fn write_meta(meta: &CheckpointMeta, out: &mut Vec<u8>) -> Result<(), CodecError> {
    out.push(PART_META);
    put(&meta.last_lsn, out)?;
    put(&meta.records, out)
}

fn write_records<'a>(
    count: u64,
    records: impl Iterator<Item = (u64, &'a Record)>,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    out.push(PART_RECORDS);
    put(&count, out)?;
    let mut written = 0u64;
    for (lsn, record) in records {
        put(&lsn, out)?;
        put(record, out)?;
        written += 1;
    }
    if written != count {
        return Err(CodecError::Encode(format!("checkpoint promised {count} records, got {written}")));
    }
    Ok(())
}

/// Reads values off the front of a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn value<T: Decode<()>>(&mut self, what: &str) -> Result<T, CodecError> {
        let (value, used) = bincode::decode_from_slice::<T, _>(self.bytes, CONFIG)
            .map_err(|error| CodecError::Decode(format!("checkpoint {what}: {error}")))?;
        self.bytes = &self.bytes[used..];
        Ok(value)
    }

    fn byte(&mut self, what: &str) -> Result<u8, CodecError> {
        let (&byte, rest) =
            self.bytes.split_first().ok_or_else(|| CodecError::Decode(format!("checkpoint ends before its {what}")))?;
        self.bytes = rest;
        Ok(byte)
    }

    fn part(&mut self, tag: u8, what: &str) -> Result<(), CodecError> {
        let found = self.byte(what)?;
        if found != tag {
            return Err(CodecError::Decode(format!("checkpoint part {found} where part {tag} ({what}) belongs")));
        }
        Ok(())
    }

    /// A count of items of at least `item_bytes_min` bytes each: refused
    /// when the bytes left cannot hold them.
    fn count(&mut self, item_bytes_min: usize, what: &str) -> Result<u64, CodecError> {
        let count: u64 = self.value(what)?;
        if count > (self.bytes.len() / item_bytes_min) as u64 {
            return Err(CodecError::Decode(format!(
                "checkpoint {what} count {count} does not fit the {} bytes left",
                self.bytes.len()
            )));
        }
        Ok(count)
    }
}

/// Decodes a checkpoint, handing each record to `visit` in lsn order (so the
/// caller folds as it goes and the records are never all in memory twice).
/// `visit`'s error stops decoding and is returned as a decode error.
pub fn decode(
    payload: &[u8],
    mut visit: impl FnMut(u64, Record) -> Result<(), String>,
) -> Result<CheckpointMeta, CodecError> {
    let mut reader = Reader { bytes: payload };
    let meta = read_header(&mut reader)?;
    read_records(&mut reader, &meta, &mut visit)?;
    if !reader.bytes.is_empty() {
        return Err(CodecError::Trailing(reader.bytes.len()));
    }
    Ok(meta)
}

/// The schema versions and the meta part.
fn read_header(reader: &mut Reader) -> Result<CheckpointMeta, CodecError> {
    let version = reader.byte("schema version")?;
    if version != CHECKPOINT_SCHEMA_VERSION {
        return Err(CodecError::Decode(format!(
            "checkpoint schema version {version} is not known to this build (knows {CHECKPOINT_SCHEMA_VERSION})"
        )));
    }
    let record_version = reader.byte("record schema version")?;
    if record_version != RECORD_SCHEMA_VERSION {
        return Err(CodecError::UnknownSchema(record_version));
    }
    read_meta(reader)
}

fn read_meta(reader: &mut Reader) -> Result<CheckpointMeta, CodecError> {
    reader.part(PART_META, "meta")?;
    let last_lsn = reader.value("last lsn")?;
    let records = reader.value("record count")?;
    Ok(CheckpointMeta { last_lsn, records })
}

/// The records part's tag and count, which must agree with the meta.
fn read_record_count(reader: &mut Reader, meta: &CheckpointMeta) -> Result<u64, CodecError> {
    reader.part(PART_RECORDS, "records")?;
    let count = reader.count(RECORD_ITEM_BYTES_MIN, "record")?;
    if count != meta.records || count != meta.last_lsn {
        return Err(CodecError::Decode(format!(
            "checkpoint holds {count} records, its meta says {} up to lsn {}",
            meta.records, meta.last_lsn
        )));
    }
    Ok(count)
}

fn read_records(
    reader: &mut Reader,
    meta: &CheckpointMeta,
    visit: &mut impl FnMut(u64, Record) -> Result<(), String>,
) -> Result<(), CodecError> {
    let count = read_record_count(reader, meta)?;
    for expected in 1..=count {
        let lsn: u64 = reader.value("record lsn")?;
        if lsn != expected {
            return Err(CodecError::Decode(format!("checkpoint record lsn {lsn} where {expected} belongs")));
        }
        let record: Record = reader.value("record")?;
        visit(lsn, record).map_err(|error| CodecError::Decode(format!("checkpoint lsn {lsn}: {error}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::domain::ids::AccountId;
    use crate::domain::money::Money;
    use crate::domain::record::{BankSync, InstructionKind, Movement, TransferType};

    fn records(count: u64) -> Vec<(u64, Record)> {
        (1..=count)
            .map(|lsn| {
                let record = if lsn % 3 == 0 {
                    Record::BankSynced(Arc::new(BankSync {
                        reference: format!("t-{}", lsn - 1).into(),
                        bank: "SIMBANK".into(),
                        kind: InstructionKind::ForcedTransfer,
                        outcome: Ok("SB1".into()),
                        at_ms: lsn as i64,
                    }))
                } else {
                    Record::Movement(Arc::new(Movement {
                        id: format!("t-{lsn}").into(),
                        kind: TransferType::Transfer,
                        payer: AccountId(1),
                        payee: Some(AccountId(2)),
                        amount: Money(lsn as i64),
                        requested_amount: Some(Money(lsn as i64)),
                        hold_id: None,
                        hold_account: None,
                        hold_amount: Money::ZERO,
                        hold_remaining: Money::ZERO,
                        order_id: Some("O-1".into()),
                        memo: Some("备注".into()),
                        committed_at_ms: 1_764_000_000_000,
                        operator: "platform".into(),
                    }))
                };
                (lsn, record)
            })
            .collect()
    }

    fn encoded(count: u64) -> Vec<u8> {
        let records = records(count);
        encode(count, count, records.iter().map(|(lsn, record)| (*lsn, record))).expect("encode")
    }

    fn decoded(payload: &[u8]) -> Result<(CheckpointMeta, Vec<(u64, Record)>), CodecError> {
        let mut seen = Vec::new();
        let meta = decode(payload, |lsn, record| {
            seen.push((lsn, record));
            Ok(())
        })?;
        Ok((meta, seen))
    }

    #[test]
    fn a_checkpoint_round_trips() {
        for count in [0, 1, 7, 300] {
            let (meta, seen) = decoded(&encoded(count)).expect("decode");
            assert_eq!(meta, CheckpointMeta { last_lsn: count, records: count });
            assert_eq!(seen, records(count));
        }
    }

    #[test]
    fn every_truncation_and_a_trailing_byte_are_refused() {
        let bytes = encoded(20);
        for cut in 0..bytes.len() {
            assert!(decoded(&bytes[..cut]).is_err(), "cut at {cut} of {}", bytes.len());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decoded(&longer), Err(CodecError::Trailing(1))));
    }

    #[test]
    fn a_huge_count_is_refused_before_anything_is_allocated() {
        let mut bytes = vec![CHECKPOINT_SCHEMA_VERSION, RECORD_SCHEMA_VERSION, PART_META];
        put(&u64::MAX, &mut bytes).expect("lsn");
        put(&u64::MAX, &mut bytes).expect("count");
        bytes.push(PART_RECORDS);
        put(&u64::MAX, &mut bytes).expect("count");
        let error = decoded(&bytes).expect_err("refused");
        assert!(error.to_string().contains("does not fit"), "{error}");
    }

    #[test]
    fn unknown_versions_and_a_gap_are_refused() {
        let mut bytes = encoded(3);
        bytes[0] = 9;
        assert!(decoded(&bytes).is_err());
        let mut bytes = encoded(3);
        bytes[1] = 9;
        assert!(matches!(decoded(&bytes), Err(CodecError::UnknownSchema(9))));
        // Records 1 and 3 only, with a meta that claims 2 records up to 2.
        let records = records(3);
        let gap = encode(2, 2, [(1, &records[0].1), (3, &records[2].1)].into_iter()).expect("encode");
        assert!(decoded(&gap).is_err());
    }

    fn payloads(records: &[(u64, Record)]) -> Vec<(u64, Vec<u8>)> {
        records
            .iter()
            .map(|(lsn, record)| {
                let mut payload = Vec::new();
                crate::codec::encode_into(record, &mut payload).expect("encode");
                (*lsn, payload)
            })
            .collect()
    }

    fn extend<'p>(
        base: Option<&[u8]>,
        last: u64,
        payloads: impl IntoIterator<Item = (u64, &'p [u8])>,
    ) -> Result<Vec<u8>, CodecError> {
        let mut extender = Extender::new(base)?;
        for (lsn, payload) in payloads {
            extender.push(lsn, payload)?;
        }
        extender.finish(last)
    }

    #[test]
    fn extending_a_checkpoint_writes_the_bytes_a_full_encode_writes() {
        for (base, last) in [(0, 0), (0, 5), (5, 5), (7, 30), (30, 31)] {
            let all = records(last);
            let new = payloads(&all[base as usize..]);
            let base_bytes = (base > 0).then(|| encoded(base));
            let extended = extend(base_bytes.as_deref(), last, new.iter().map(|(lsn, payload)| (*lsn, &payload[..])))
                .expect("extend");
            assert_eq!(extended, encoded(last), "base {base}, last {last}");
        }
    }

    #[test]
    fn extending_refuses_gaps_short_logs_bad_payloads_and_bad_bases() {
        let all = payloads(&records(10));
        let slice = |range: std::ops::Range<usize>| all[range].iter().map(|(lsn, payload)| (*lsn, &payload[..]));
        let base = encoded(4);
        assert!(extend(Some(&base), 10, slice(5..10)).is_err(), "lsn 5 missing");
        assert!(extend(Some(&base), 10, slice(4..9)).is_err(), "ends at 9");
        assert!(extend(None, 3, slice(0..3)).is_ok());
        let mut bad = all[4].1.clone();
        bad[0] = 99;
        assert!(extend(Some(&base), 5, [(5, &bad[..])]).is_err(), "unknown schema byte");
        assert!(extend(Some(&[9, 9, 9]), 10, slice(4..10)).is_err(), "not a checkpoint");
        let mut wrong_count = encoded(4);
        wrong_count[4] = 3; // the meta's record count
        assert!(extend(Some(&wrong_count), 10, slice(4..10)).is_err(), "meta and count disagree");
    }

    #[test]
    fn the_callers_refusal_stops_decoding() {
        let error = decode(&encoded(5), |lsn, _| if lsn == 4 { Err("no".into()) } else { Ok(()) }).expect_err("stop");
        assert!(error.to_string().contains("lsn 4"), "{error}");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decoded(&bytes);
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_header_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut bytes = vec![CHECKPOINT_SCHEMA_VERSION, RECORD_SCHEMA_VERSION, PART_META];
            bytes.extend(tail);
            let _ = decoded(&bytes);
        }

        #[test]
        fn mutated_checkpoints_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut bytes = encoded(40);
            for (at, value) in flips {
                let at = at % bytes.len();
                bytes[at] = value;
            }
            let _ = decoded(&bytes);
        }
    }
}
