//! The checkpoint payload (inside the wal crate's checkpoint frame, which
//! carries the lsn and a CRC over all of it). Two schemas, told apart by the
//! first byte:
//!
//! **Schema 2, the state** (what the checkpointer writes since 2026-12-04):
//! the ledger folded up to `last_lsn`, so that start-up reads the state and
//! replays only the records after it, however long the log is. Schema 3
//! ([`STATE_SCHEMA`], written since 2026-12-06) differs from schema 2
//! ([`STATE_SCHEMA_2`], still read) in one part: the instructions without
//! the bank's answer are the lsns of their records ([`PendingInstructions`])
//! instead of the instructions themselves.
//!
//! | bytes | what |
//! |---|---|
//! | 1 | [`STATE_SCHEMA`] |
//! | 1 | [`RECORD_SCHEMA_VERSION`] of the records inside |
//! | part `META` | tag, `last_lsn` |
//! | part `BANKS` | tag, count, bank codes in the order the finance state met them |
//! | part `ENTITIES` | tag, count, (`lsn`, [`Record`]) of every application, account signing, suspense and reconciliation record, in lsn order |
//! | part `BOOKS` | tag, count, one [`BookImage`] per account, by account id |
//! | part `WITHDRAWALS` | tag, count, (`lsn`, [`Withdrawal`]) still processing, in lsn order |
//! | part `PENDING` (schema 3) | tag, byte length, the lsns' portable roaring bitmap; count, (`lsn`, reference) of the schema-1 ones, in lsn order |
//! | part `INSTRUCTIONS` (schema 2) | tag, count, [`InstructionImage`]s without the bank's answer, in lsn order |
//! | part `TOTALS` | tag, the trial balance's books, then count × (day, [`DayFigures`]), then count × (`lsn`, [`BankSync`]) refusals |
//! | part `PLACES` (schema 4) | tag, [`BankPlaces`]: count, each account's bank; count, (application, bank) of the undecided applications |
//! | part `REGISTRY` (schema 4, last) | tag, count, (`lsn`, [`Record`]) of every application and account signing record, in lsn order, to the end |
//!
//! **Schema 4** ([`STATE_SCHEMA`], written since 2026-12-07) takes the
//! registry's records (applications, approvals, signings: three per
//! account, most of a state's bytes) out of the entities part into a part
//! of their own at the end, and adds the banks they give each account
//! and undecided application ([`BankPlaces`]), which is all a fold of the
//! records after the checkpoint needs of them. So the checkpointer reads
//! its base without decoding the registry ([`decode_state_keeping_registry`])
//! and writes the next one with those bytes as they are
//! ([`encode_state_parts`]): a run costs what the books and the new
//! records cost, not what every account's application costs. Start-up
//! decodes the registry, folds it, and refuses a checkpoint whose places
//! differ from what its registry folds to.
//!
//! What grows with the number of transfers is not in it: journals, ids and
//! answers are in the history archive (`DATA_DIR/history`), which must
//! index at least up to `last_lsn` for the checkpoint to be used. The
//! entity records are few (they grow with accounts, unmatched deposits and
//! reconciliation days) and are folded again on load by the same sub-folds
//! the log uses, so the applications, suspense entries and reconciliation
//! runs are never encoded twice. [`crate::recovery::Recovered::image`] and
//! `restore` own the mapping between the state and this image.
//!
//! **Schema 1, the records** (written before 2026-12-04, still read so an
//! upgraded server starts): `last_lsn`, then every record `1 ..= last_lsn`,
//! folded again on load.
//!
//! Each part is one tag byte and is read by one function here; a new part
//! is a new tag and a schema version bump. Decoding never panics and never
//! allocates from a length field: each value is bounded by
//! [`limits::RECORD_BYTES_MAX`], and a count is refused when the bytes left
//! could not hold that many items.

use std::sync::Arc;

use bincode::{Decode, Encode};

use super::{CodecError, CONFIG};
use crate::domain::ids::{AccountId, ApplicationId};
use crate::domain::money::Money;
use crate::domain::pending::PendingInstructions;
use crate::domain::record::{BankSync, InstructionKind, Record, RecordSchema, Withdrawal, RECORD_SCHEMA_VERSION};
use crate::finance::day::DayFigures;

/// Schema 1: every record up to the checkpoint's lsn.
pub const RECORDS_SCHEMA: u8 = 1;
/// Schema 2: the folded state, with pending instructions in full.
pub const STATE_SCHEMA_2: u8 = 2;
/// Schema 3: the folded state, the registry's records among the entities.
pub const STATE_SCHEMA_3: u8 = 3;
/// Schema 4: the folded state at the checkpoint's lsn.
pub const STATE_SCHEMA: u8 = 4;

const PART_META: u8 = 1;
const PART_RECORDS: u8 = 2;
const PART_BANKS: u8 = 3;
const PART_ENTITIES: u8 = 4;
const PART_BOOKS: u8 = 5;
const PART_WITHDRAWALS: u8 = 6;
const PART_INSTRUCTIONS: u8 = 7;
const PART_TOTALS: u8 = 8;
const PART_PENDING: u8 = 9;
const PART_PLACES: u8 = 10;
const PART_REGISTRY: u8 = 11;

/// How much memory a part's list may take before its items are read, per
/// byte of the checkpoint left: enough for every real part (a book is 72
/// bytes in memory and about 10 encoded), small enough that a count that
/// lies cannot allocate more than a few times the file's size.
const PRESIZE_BYTES_PER_BYTE_LEFT: usize = 8;

/// Smallest encoding of one item of any part (an lsn or length and one
/// more byte): what a count is checked against before anything is
/// allocated for it.
const ITEM_BYTES_MIN: usize = 2;

/// What a records checkpoint (schema 1) says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointMeta {
    pub last_lsn: u64,
    pub records: u64,
}

/// The schema of a checkpoint payload (its first byte), if it has one.
pub fn schema(payload: &[u8]) -> Option<u8> {
    payload.first().copied()
}

/// Whether a state checkpoint (schema 4) keeps `record` in its registry
/// part: the entity records of applications and the accounts they open.
pub fn is_registry(record: &Record) -> bool {
    matches!(
        record,
        Record::ApplicationCreated(_)
            | Record::ApplicationApproved(_)
            | Record::ApplicationRejected(_)
            | Record::AccountSigned { .. }
            | Record::AccountSignFailed { .. }
    )
}

/// What a fold of the records after a checkpoint needs of its registry
/// (the finance side's bank of each account, and of each application an
/// approval may still open an account for), as indexes into the banks
/// part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BankPlaces {
    /// Each account's bank, by account number from 1 (`u32::MAX`: none).
    pub accounts: Vec<u32>,
    /// The undecided applications' banks, by application id.
    pub applications: Vec<(ApplicationId, u32)>,
}

/// The registry part of a schema-4 checkpoint as it was read, not
/// decoded: the checkpoint's payload and where the part's items start
/// (they run to its end).
#[derive(Debug)]
pub struct EncodedRegistry {
    pub payload: Vec<u8>,
    pub start: usize,
    pub count: u64,
}

impl EncodedRegistry {
    fn items(&self) -> &[u8] {
        self.payload.get(self.start..).unwrap_or_default()
    }
}

/// A state checkpoint's payload as `head`, `kept` and `tail`, one after
/// another ([`encode_state_parts`]).
#[derive(Debug)]
pub struct StateParts<'a> {
    pub head: Vec<u8>,
    pub kept: &'a [u8],
    pub tail: Vec<u8>,
}

impl StateParts<'_> {
    pub fn parts(&self) -> [&[u8]; 3] {
        [&self.head, self.kept, &self.tail]
    }

    pub fn len(&self) -> usize {
        self.head.len() + self.kept.len() + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload in one buffer ([`encode_state`], tests).
    pub fn joined(&self) -> Vec<u8> {
        self.parts().concat()
    }
}

/// The ledger's state at `last_lsn` (schema 4), as plain data.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateImage {
    pub last_lsn: u64,
    pub banks: Vec<Box<str>>,
    pub entities: Vec<(u64, Record)>,
    pub books: Vec<BookImage>,
    pub withdrawals: Vec<(u64, Arc<Withdrawal>)>,
    /// Instructions without the bank's answer, by the lsns of their
    /// records. From a schema-2 checkpoint their references are kept too,
    /// as schema-1 ones (an old build wrote them).
    pub pending: PendingInstructions,
    pub totals: TotalsImage,
    pub days: Vec<(i64, DayFigures)>,
    pub bank_sync_failures: Vec<(u64, Arc<BankSync>)>,
    /// The registry's banks (schema 4; `None` when read from an older
    /// schema, which did not have them).
    pub places: Option<BankPlaces>,
}

/// One account's book: its balance, open holds and withdrawals processing
/// (each sorted by id, so that one state has one encoding).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct BookImage {
    pub available: Money,
    pub frozen: Money,
    /// (hold id, amount, remaining).
    pub holds: Vec<(Box<str>, Money, Money)>,
    /// (withdrawal id, amount).
    pub withdrawals: Vec<(Box<str>, Money)>,
    pub last_lsn: u64,
}

/// A bank instruction the bank has not answered yet (schema 2: read, no
/// longer written).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct InstructionImage {
    pub lsn: u64,
    pub reference: Box<str>,
    pub kind: InstructionKind,
    pub bank: Option<Box<str>>,
    pub from: PartyImage,
    pub to: PartyImage,
    pub amount: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum PartyImage {
    Account(AccountId),
    PublicAdjustment,
    AccountNo(Box<str>),
}

/// The trial balance's books and how many records it posted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct TotalsImage {
    pub balances: [i128; 5],
    pub records_posted: u64,
}

fn put<T: Encode>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    bincode::encode_into_std_write(value, out, CONFIG)
        .map(|_| ())
        .map_err(|error| CodecError::Encode(error.to_string()))
}

fn put_part<T: Encode>(tag: u8, items: &[T], out: &mut Vec<u8>) -> Result<(), CodecError> {
    out.push(tag);
    put_counted(items, out)
}

/// A count, then the items: what [`Reader::counted`] reads.
fn put_counted<T: Encode>(items: &[T], out: &mut Vec<u8>) -> Result<(), CodecError> {
    put(&(items.len() as u64), out)?;
    items.iter().try_for_each(|item| put(item, out))
}

/// Encodes a state checkpoint (schema 4) in one buffer.
pub fn encode_state(image: &StateImage) -> Result<Vec<u8>, CodecError> {
    Ok(encode_state_parts(image, None)?.joined())
}

/// Encodes a state checkpoint (schema 4) whose registry part holds
/// `kept`'s records as they were read (the checkpoint this one is built
/// on), then the registry records among `image.entities`, which must all
/// come after them; the other entity records go in the entities part.
pub fn encode_state_parts<'a>(
    image: &StateImage,
    kept: Option<&'a EncodedRegistry>,
) -> Result<StateParts<'a>, CodecError> {
    let places = image
        .places
        .as_ref()
        .ok_or_else(|| CodecError::Encode("a state without its registry's places (read from schema 3)".into()))?;
    let (registry, others): (Vec<_>, Vec<_>) = image.entities.iter().partition(|(_, record)| is_registry(record));
    let mut out = encode_state_to_totals(STATE_SCHEMA, image, &others)?;
    out.push(PART_PLACES);
    put_counted(&places.accounts, &mut out)?;
    put_counted(&places.applications, &mut out)?;
    out.push(PART_REGISTRY);
    put(&(kept.map_or(0, |kept| kept.count) + registry.len() as u64), &mut out)?;
    let mut tail = Vec::new();
    registry.iter().try_for_each(|item| put(item, &mut tail))?;
    Ok(StateParts { head: out, kept: kept.map_or(&[], EncodedRegistry::items), tail })
}

/// Decodes a state checkpoint (schema 4, 3 or 2). Checks the layout, the
/// lsn order of the parts that have one, and that nothing is past
/// `last_lsn`; the state's own rules are checked by restoring it. The
/// registry's records are among `entities`, in lsn order.
pub fn decode_state(payload: &[u8]) -> Result<StateImage, CodecError> {
    decode_state_with(payload, true).map(|(image, _)| image)
}

/// [`decode_state`] without decoding a schema-4 registry part: `entities`
/// holds the other entity records only, and the registry's records stay
/// in `payload`, returned with where they start. An older schema has no
/// such part: its registry's records are decoded among `entities`, and
/// `None` is returned.
pub fn decode_state_keeping_registry(payload: Vec<u8>) -> Result<(StateImage, Option<EncodedRegistry>), CodecError> {
    let (image, registry) = decode_state_with(&payload, false)?;
    Ok((image, registry.map(|(start, count)| EncodedRegistry { payload, start, count })))
}

/// The state, and for schema 4 without `registry` decoded, where the
/// registry's items start and how many there are.
fn decode_state_with(payload: &[u8], registry: bool) -> Result<(StateImage, Option<(usize, u64)>), CodecError> {
    let mut reader = Reader { bytes: payload, schema: RecordSchema(RECORD_SCHEMA_VERSION) };
    let state_schema = match schema(payload) {
        Some(known @ (STATE_SCHEMA_2 | STATE_SCHEMA_3)) => known,
        _ => STATE_SCHEMA,
    };
    reader.versions(state_schema)?;
    reader.part(PART_META, "meta")?;
    let last_lsn: u64 = reader.value("last lsn")?;
    let banks = reader.items(PART_BANKS, "bank")?;
    reader.part(PART_ENTITIES, "entity record")?;
    // The checkpointer appends the entity records folded after these:
    // room for an eighth more, so that the list is not copied whole.
    let mut entities: Vec<(u64, Record)> = reader.counted_with_room("entity record", 1)?;
    let books = reader.items(PART_BOOKS, "book")?;
    let withdrawals: Vec<(u64, Arc<Withdrawal>)> = reader.items(PART_WITHDRAWALS, "withdrawal")?;
    let pending = if state_schema == STATE_SCHEMA_2 {
        let instructions: Vec<InstructionImage> = reader.items(PART_INSTRUCTIONS, "instruction")?;
        ascending(instructions.iter().map(|instruction| instruction.lsn), last_lsn, "instruction")?;
        let lsns = instructions.iter().map(|instruction| instruction.lsn);
        let lsns = roaring::RoaringTreemap::from_sorted_iter(lsns)
            .map_err(|error| CodecError::Decode(format!("checkpoint instructions: {error}")))?;
        PendingInstructions::new(
            lsns,
            instructions.into_iter().map(|instruction| (instruction.lsn, instruction.reference)),
        )
    } else {
        reader.part(PART_PENDING, "pending instructions")?;
        let lsns = reader.roaring("pending instruction lsns")?;
        if lsns.max().is_some_and(|lsn| lsn > last_lsn) || lsns.contains(0) {
            return Err(CodecError::Decode(format!("checkpoint pending instruction past lsn {last_lsn} or at 0")));
        }
        let legacy: Vec<(u64, Box<str>)> = reader.counted("schema-1 instruction")?;
        ascending(legacy.iter().map(|(lsn, _)| *lsn), last_lsn, "schema-1 instruction")?;
        let pending = PendingInstructions::new(lsns, legacy);
        if let Some(violation) = pending.invariant_violation() {
            return Err(CodecError::Decode(format!("checkpoint: {violation}")));
        }
        pending
    };
    reader.part(PART_TOTALS, "totals")?;
    let totals = reader.value("trial balance")?;
    let days = reader.counted("day")?;
    let bank_sync_failures: Vec<(u64, Arc<BankSync>)> = reader.counted("bank refusal")?;
    let (mut places, mut kept) = (None, None);
    if state_schema == STATE_SCHEMA {
        reader.part(PART_PLACES, "bank places")?;
        let accounts = reader.counted("account bank")?;
        let applications: Vec<(ApplicationId, u32)> = reader.counted("application bank")?;
        if applications.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
            return Err(CodecError::Decode("checkpoint application banks out of order".into()));
        }
        places = Some(BankPlaces { accounts, applications });
        if entities.iter().any(|(_, record)| is_registry(record)) {
            return Err(CodecError::Decode("checkpoint registry record among the other entities".into()));
        }
        reader.part(PART_REGISTRY, "registry record")?;
        if registry {
            let records: Vec<(u64, Record)> = reader.counted("registry record")?;
            ascending(records.iter().map(|(lsn, _)| *lsn), last_lsn, "registry record")?;
            entities = merge_by_lsn(records, entities);
        } else {
            let count = reader.count("registry record")?;
            kept = Some((payload.len() - reader.bytes.len(), count));
            reader.bytes = &[];
        }
    }
    if !reader.bytes.is_empty() {
        return Err(CodecError::Trailing(reader.bytes.len()));
    }
    for (_, record) in &mut entities {
        super::share_names(record);
    }
    ascending(entities.iter().map(|(lsn, _)| *lsn), last_lsn, "entity record")?;
    ascending(withdrawals.iter().map(|(lsn, _)| *lsn), last_lsn, "withdrawal")?;
    ascending(bank_sync_failures.iter().map(|(lsn, _)| *lsn), last_lsn, "bank refusal")?;
    let image =
        StateImage { last_lsn, banks, entities, books, withdrawals, pending, totals, days, bank_sync_failures, places };
    Ok((image, kept))
}

/// Two lists in lsn order as one (an lsn in both stays twice, for the
/// order check to refuse). Exactly sized: a schema-4 state is decoded
/// whole only where nothing is appended to it (start-up, `wal verify`;
/// the checkpointer keeps its registry encoded).
fn merge_by_lsn(first: Vec<(u64, Record)>, second: Vec<(u64, Record)>) -> Vec<(u64, Record)> {
    let mut merged = Vec::with_capacity(first.len() + second.len());
    let (mut first, mut second) = (first.into_iter().peekable(), second.into_iter().peekable());
    loop {
        let take_first = match (first.peek(), second.peek()) {
            (Some((a, _)), Some((b, _))) => a <= b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return merged,
        };
        merged.extend(if take_first { first.next() } else { second.next() });
    }
}

/// Encodes `image` as a build before 2026-12-07, later, wrote it: state
/// schema 3, every entity record in the entities part, no places. The
/// server no longer writes these; tests do, to check that an upgraded
/// server still starts from one and that its checkpointer moves on.
pub fn encode_state_3(image: &StateImage) -> Result<Vec<u8>, CodecError> {
    encode_state_to_totals(STATE_SCHEMA_3, image, &image.entities)
}

/// The parts schemas 3 and 4 share, from the header through the totals,
/// with `entities` in the entities part.
fn encode_state_to_totals<T: Encode>(schema: u8, image: &StateImage, entities: &[T]) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![schema, RECORD_SCHEMA_VERSION, PART_META];
    put(&image.last_lsn, &mut out)?;
    put_part(PART_BANKS, &image.banks, &mut out)?;
    put_part(PART_ENTITIES, entities, &mut out)?;
    put_part(PART_BOOKS, &image.books, &mut out)?;
    put_part(PART_WITHDRAWALS, &image.withdrawals, &mut out)?;
    out.push(PART_PENDING);
    let lsns = image.pending.lsns();
    put(&(lsns.serialized_size() as u64), &mut out)?;
    lsns.serialize_into(&mut out).map_err(|error| CodecError::Encode(error.to_string()))?;
    put_counted(&image.pending.legacy(), &mut out)?;
    out.push(PART_TOTALS);
    put(&image.totals, &mut out)?;
    put_counted(&image.days, &mut out)?;
    put_counted(&image.bank_sync_failures, &mut out)?;
    Ok(out)
}

/// Encodes `image` as a build before 2026-12-06 wrote it: state schema 2,
/// record schema 1, with `instructions` in full in place of
/// `image.pending`. The server no longer writes these; tests do, to check
/// that an upgraded server still starts from one.
pub fn encode_state_2(image: &StateImage, instructions: &[InstructionImage]) -> Result<Vec<u8>, CodecError> {
    let schema_1 = |record: &Record| !matches!(record, Record::BankSynced(_));
    if !image.entities.iter().all(|(_, record)| schema_1(record)) {
        return Err(CodecError::Encode("an entity record that schema 1 wrote differently".into()));
    }
    let mut out = vec![STATE_SCHEMA_2, 1, PART_META];
    put(&image.last_lsn, &mut out)?;
    put_part(PART_BANKS, &image.banks, &mut out)?;
    put_part(PART_ENTITIES, &image.entities, &mut out)?;
    put_part(PART_BOOKS, &image.books, &mut out)?;
    put_part(PART_WITHDRAWALS, &image.withdrawals, &mut out)?;
    put_part(PART_INSTRUCTIONS, instructions, &mut out)?;
    out.push(PART_TOTALS);
    put(&image.totals, &mut out)?;
    put_counted(&image.days, &mut out)?;
    // A schema-1 answer: the same fields without the lsn.
    put(&(image.bank_sync_failures.len() as u64), &mut out)?;
    for (lsn, sync) in &image.bank_sync_failures {
        put(lsn, &mut out)?;
        put(&(&sync.reference, &sync.bank, &sync.kind, &sync.outcome, &sync.at_ms), &mut out)?;
    }
    Ok(out)
}

/// Lsns strictly ascending, from 1, none past `last_lsn`.
fn ascending(lsns: impl Iterator<Item = u64>, last_lsn: u64, what: &str) -> Result<(), CodecError> {
    let mut previous = 0;
    for lsn in lsns {
        if lsn <= previous || lsn > last_lsn {
            return Err(CodecError::Decode(format!(
                "checkpoint {what} at lsn {lsn} after lsn {previous} in a checkpoint at lsn {last_lsn}"
            )));
        }
        previous = lsn;
    }
    Ok(())
}

/// Encodes a records checkpoint (schema 1) of the records `1 ..= last_lsn`,
/// which `records` yields in lsn order (`count` of them). The checkpointer
/// no longer writes these; tests and the fuzz target do, to check that old
/// ones are still read.
pub fn encode<'a>(
    last_lsn: u64,
    count: u64,
    records: impl Iterator<Item = (u64, &'a Record)>,
) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![RECORDS_SCHEMA, RECORD_SCHEMA_VERSION, PART_META];
    put(&last_lsn, &mut out)?;
    put(&count, &mut out)?;
    out.push(PART_RECORDS);
    put(&count, &mut out)?;
    let mut written = 0u64;
    for (lsn, record) in records {
        put(&lsn, &mut out)?;
        put(record, &mut out)?;
        written += 1;
    }
    if written != count {
        return Err(CodecError::Encode(format!("checkpoint promised {count} records, got {written}")));
    }
    Ok(out)
}

/// Reads values off the front of a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
    /// The records' schema, from the header ([`Reader::versions`]).
    schema: RecordSchema,
}

impl Reader<'_> {
    fn value<T: Decode<RecordSchema>>(&mut self, what: &str) -> Result<T, CodecError> {
        let (value, used) = bincode::decode_from_slice_with_context::<_, T, _>(self.bytes, CONFIG, self.schema)
            .map_err(|error| CodecError::Decode(format!("checkpoint {what}: {error}")))?;
        self.bytes = &self.bytes[used..];
        Ok(value)
    }

    /// A byte length, then a portable roaring bitmap of exactly that many
    /// bytes (bounded by the bytes left, not by the codec's record limit).
    fn roaring(&mut self, what: &str) -> Result<roaring::RoaringTreemap, CodecError> {
        let length: u64 = self.value(what)?;
        let length = usize::try_from(length)
            .ok()
            .filter(|&length| length <= self.bytes.len())
            .ok_or_else(|| CodecError::Decode(format!("checkpoint {what}: {length} bytes do not fit")))?;
        let (mut bitmap, rest) = self.bytes.split_at(length);
        let lsns = roaring::RoaringTreemap::deserialize_from(&mut bitmap)
            .map_err(|error| CodecError::Decode(format!("checkpoint {what}: {error}")))?;
        if !bitmap.is_empty() {
            return Err(CodecError::Decode(format!("checkpoint {what}: {} bytes left over", bitmap.len())));
        }
        self.bytes = rest;
        Ok(lsns)
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

    /// The checkpoint and record schema bytes (every record schema this
    /// build reads).
    fn versions(&mut self, checkpoint_schema: u8) -> Result<(), CodecError> {
        let version = self.byte("schema version")?;
        if version != checkpoint_schema {
            return Err(CodecError::Decode(format!(
                "checkpoint schema version {version} where {checkpoint_schema} was expected \
                 (this build knows {RECORDS_SCHEMA} to {STATE_SCHEMA})"
            )));
        }
        self.schema = super::known_schema(self.byte("record schema version")?)?;
        Ok(())
    }

    /// A count of items: refused when the bytes left cannot hold them.
    fn count(&mut self, what: &str) -> Result<u64, CodecError> {
        let count: u64 = self.value(what)?;
        if count > (self.bytes.len() / ITEM_BYTES_MIN) as u64 {
            return Err(CodecError::Decode(format!(
                "checkpoint {what} count {count} does not fit the {} bytes left",
                self.bytes.len()
            )));
        }
        Ok(count)
    }

    /// A count, then that many items, each decoded on its own (so each is
    /// bounded by the codec's limit and the count by the bytes left). The
    /// list is allocated once for the count (a state's parts hold millions
    /// of items: grown by doubling, each doubling copied all before it),
    /// but never larger than [`PRESIZE_BYTES_PER_BYTE_LEFT`] times the
    /// bytes left: a count that lies grows the list as it is read.
    fn counted<T: Decode<RecordSchema>>(&mut self, what: &str) -> Result<Vec<T>, CodecError> {
        self.counted_with_room(what, 0)
    }

    /// [`Self::counted`], with room for `room_eighths` eighths of the count
    /// more (within the same bound): for a list the caller goes on
    /// appending to.
    fn counted_with_room<T: Decode<RecordSchema>>(
        &mut self,
        what: &str,
        room_eighths: usize,
    ) -> Result<Vec<T>, CodecError> {
        let count = usize::try_from(self.count(what)?).unwrap_or(usize::MAX);
        let bound = self.bytes.len().saturating_mul(PRESIZE_BYTES_PER_BYTE_LEFT) / std::mem::size_of::<T>().max(1);
        let room = (count / 8).saturating_mul(room_eighths);
        let mut items = Vec::with_capacity(count.saturating_add(room).min(bound));
        for _ in 0..count {
            items.push(self.value(what)?);
        }
        Ok(items)
    }

    /// A part: its tag, then [`Self::counted`] items.
    fn items<T: Decode<RecordSchema>>(&mut self, tag: u8, what: &str) -> Result<Vec<T>, CodecError> {
        self.part(tag, what)?;
        self.counted(what)
    }
}

/// Decodes a records checkpoint (schema 1), handing each record and its
/// schema to `visit` in lsn order (so the caller folds as it goes and the
/// records are never all in memory twice). `visit`'s error stops decoding
/// and is returned as a decode error.
pub fn decode(
    payload: &[u8],
    mut visit: impl FnMut(u64, Record, RecordSchema) -> Result<(), String>,
) -> Result<CheckpointMeta, CodecError> {
    let mut reader = Reader { bytes: payload, schema: RecordSchema(RECORD_SCHEMA_VERSION) };
    reader.versions(RECORDS_SCHEMA)?;
    reader.part(PART_META, "meta")?;
    let last_lsn = reader.value("last lsn")?;
    let records = reader.value("record count")?;
    let meta = CheckpointMeta { last_lsn, records };
    reader.part(PART_RECORDS, "records")?;
    let count = reader.count("record")?;
    if count != meta.records || count != meta.last_lsn {
        return Err(CodecError::Decode(format!(
            "checkpoint holds {count} records, its meta says {} up to lsn {}",
            meta.records, meta.last_lsn
        )));
    }
    for expected in 1..=count {
        let lsn: u64 = reader.value("record lsn")?;
        if lsn != expected {
            return Err(CodecError::Decode(format!("checkpoint record lsn {lsn} where {expected} belongs")));
        }
        let mut record: Record = reader.value("record")?;
        super::share_names(&mut record);
        visit(lsn, record, reader.schema)
            .map_err(|error| CodecError::Decode(format!("checkpoint lsn {lsn}: {error}")))?;
    }
    if !reader.bytes.is_empty() {
        return Err(CodecError::Trailing(reader.bytes.len()));
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::domain::record::{Movement, SettlementAccount, TransferType};

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
                        lsn: lsn - 1,
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
        let meta = decode(payload, |lsn, record, _| {
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
        let mut bytes = vec![RECORDS_SCHEMA, RECORD_SCHEMA_VERSION, PART_META];
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

    /// A state image with something in every part (not a state any log
    /// folds to: the codec does not judge, restoring does).
    fn image(last_lsn: u64) -> StateImage {
        let records = records(last_lsn);
        let withdrawal = Arc::new(Withdrawal {
            id: "w-1".into(),
            account_id: AccountId(2),
            amount: Money(500),
            memo: None,
            bank: "SIMBANK".into(),
            settlement_account: SettlementAccount {
                bank_name: "工商银行".into(),
                account_no: "6222".into(),
                account_name: "甲".into(),
            },
            created_at_ms: 1_764_000_000_000,
            operator: "platform".into(),
        });
        StateImage {
            last_lsn,
            banks: vec!["SIMBANK".into(), "OTHER".into()],
            entities: records
                .iter()
                .filter(|(lsn, _)| lsn % 5 == 0)
                .map(|(lsn, record)| entity(*lsn, record))
                .collect(),
            books: vec![
                BookImage::default(),
                BookImage {
                    available: Money(10),
                    frozen: Money(505),
                    holds: vec![("h-1".into(), Money(9), Money(5))],
                    withdrawals: vec![("w-1".into(), Money(500))],
                    last_lsn: 4,
                },
            ],
            withdrawals: vec![(4, withdrawal)],
            pending: PendingInstructions::new(
                (1..=last_lsn).filter(|lsn| lsn % 3 != 0).collect(),
                [(2, "t-2".into()), (last_lsn, "t-9".into())],
            ),
            totals: TotalsImage { balances: [1, -2, 3, i128::MAX, i128::MIN], records_posted: 40 },
            days: vec![(20_000, DayFigures { money_in_fen: 5, money_in_count: 1, ..DayFigures::default() })],
            bank_sync_failures: records
                .iter()
                .filter_map(|(lsn, record)| match record {
                    Record::BankSynced(sync) => Some((*lsn, Arc::clone(sync))),
                    _ => None,
                })
                .collect(),
            places: Some(BankPlaces {
                accounts: vec![0, 1, u32::MAX],
                applications: vec![(ApplicationId(3), 1), (ApplicationId(9), 0)],
            }),
        }
    }

    /// Every other entity of [`image`] a registry record (an account
    /// signed), the rest as they are.
    fn entity(lsn: u64, record: &Record) -> (u64, Record) {
        let record = match lsn % 10 {
            0 => Record::AccountSigned {
                account_id: AccountId(lsn),
                sub_account_no: format!("SA-{lsn}").into(),
                at_ms: lsn as i64,
            },
            _ => record.clone(),
        };
        (lsn, record)
    }

    /// [`image`] at `last_lsn`, its parts past `base` (its entity records
    /// after `base`, the rest whole) on `based` (an image decoded keeping
    /// its registry): what the checkpointer folds from `based`.
    fn moved_on(based: &StateImage, base: u64, last_lsn: u64) -> StateImage {
        let whole = image(last_lsn);
        let mut entities = based.entities.clone();
        entities.extend(whole.entities.iter().filter(|(lsn, _)| *lsn > base).cloned());
        StateImage { entities, ..whole }
    }

    #[test]
    fn a_state_built_on_a_kept_registry_is_the_state_encoded_whole() {
        let base = encode_state(&image(40)).expect("encode");
        let (based, kept) = decode_state_keeping_registry(base.clone()).expect("decode");
        let kept = kept.expect("schema 4 has a registry part");
        assert_eq!(kept.count, 4, "the signings at 10, 20, 30, 40");
        assert!(based.entities.iter().all(|(_, record)| !is_registry(record)), "the registry stays encoded");
        assert_eq!(based.entities.len(), 4, "the other entities at 5, 15, 25, 35");
        assert_eq!(
            StateImage { entities: decode_state(&base).expect("decode").entities, ..based.clone() },
            image(40),
            "all but the registry as decode_state reads it"
        );
        let next = encode_state_parts(&moved_on(&based, 40, 70), Some(&kept)).expect("encode");
        assert!(!next.kept.is_empty());
        assert_eq!(next.joined(), encode_state(&image(70)).expect("encode"), "byte for byte");
        assert_eq!(next.len(), next.joined().len());
        let nothing_new = encode_state_parts(&moved_on(&based, 40, 40), Some(&kept)).expect("encode");
        assert_eq!(nothing_new.joined(), base);
    }

    #[test]
    fn a_schema_3_state_has_no_registry_part_to_keep_and_no_places() {
        let old = encode_state_3(&image(40)).expect("encode");
        assert_eq!(schema(&old), Some(STATE_SCHEMA_3));
        let expected = StateImage { places: None, ..image(40) };
        assert_eq!(decode_state(&old).expect("decode"), expected);
        let (kept_image, kept) = decode_state_keeping_registry(old).expect("decode");
        assert!(kept.is_none());
        assert_eq!(kept_image, expected, "its registry records decoded among the entities");
        assert!(encode_state(&expected).is_err(), "written again only once its places are known");
    }

    #[test]
    fn registry_records_among_the_other_entities_are_refused() {
        let image = image(40);
        let without = encode_state(&StateImage { entities: Vec::new(), ..image.clone() }).expect("encode");
        // The same state with the signing at lsn 10 in the entities part.
        let mut mixed = vec![STATE_SCHEMA, RECORD_SCHEMA_VERSION, PART_META];
        put(&image.last_lsn, &mut mixed).expect("lsn");
        put_part(PART_BANKS, &image.banks, &mut mixed).expect("banks");
        assert_eq!(without[mixed.len()..mixed.len() + 2], [PART_ENTITIES, 0], "an empty entities part");
        let rest = without[mixed.len() + 2..].to_vec();
        assert!(is_registry(&image.entities[1].1));
        put_part(PART_ENTITIES, &image.entities[..2], &mut mixed).expect("entities");
        mixed.extend_from_slice(&rest);
        let error = decode_state(&mixed).expect_err("refused");
        assert!(error.to_string().contains("among the other entities"), "{error}");
        assert!(decode_state_keeping_registry(mixed).is_err());
    }

    #[test]
    fn a_state_checkpoint_round_trips_and_every_cut_is_refused() {
        let image = image(40);
        let bytes = encode_state(&image).expect("encode");
        assert_eq!(schema(&bytes), Some(STATE_SCHEMA));
        assert_eq!(decode_state(&bytes).expect("decode"), image);
        let empty = StateImage { places: Some(BankPlaces::default()), ..StateImage::default() };
        assert_eq!(decode_state(&encode_state(&empty).expect("encode")).expect("decode"), empty);
        for cut in 0..bytes.len() {
            assert!(decode_state(&bytes[..cut]).is_err(), "cut at {cut} of {}", bytes.len());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode_state(&longer), Err(CodecError::Trailing(1))));
        assert!(decode_state(&encoded(3)).is_err(), "a records checkpoint is not a state");
        assert!(decoded(&bytes).is_err(), "a state is not a records checkpoint");
    }

    #[test]
    fn a_schema_2_state_reads_its_instructions_as_pending_schema_1_references() {
        let mut old = image(40);
        // Not entities in any real state; schema 1 wrote them differently.
        old.entities.retain(|(_, record)| !matches!(record, Record::BankSynced(_)));
        let instruction = |lsn: u64| InstructionImage {
            lsn,
            reference: format!("t-{lsn}").into(),
            kind: InstructionKind::ForcedTransfer,
            bank: None,
            from: PartyImage::Account(AccountId(1)),
            to: PartyImage::AccountNo("6222".into()),
            amount: Money(7),
        };
        let instructions = [instruction(7), instruction(40)];
        let decoded = decode_state(&encode_state_2(&old, &instructions).expect("encode")).expect("decode");
        let expected =
            PendingInstructions::new([7, 40].into_iter().collect(), [(7, "t-7".into()), (40, "t-40".into())]);
        // Schema 1 answers name no lsn: they read back as lsn 0.
        let failures = old
            .bank_sync_failures
            .iter()
            .map(|(lsn, sync)| (*lsn, Arc::new(BankSync { lsn: 0, ..(**sync).clone() })))
            .collect();
        assert!(old.bank_sync_failures.iter().all(|(_, sync)| sync.lsn != 0), "the test has answers with lsns");
        let read = StateImage { pending: expected.clone(), bank_sync_failures: failures, places: None, ..old.clone() };
        assert_eq!(decoded, read);
        // Written again (with its places, once restored), it is schema 4
        // and the same state.
        let again = encode_state(&StateImage { places: Some(BankPlaces::default()), ..decoded }).expect("encode");
        assert_eq!(schema(&again), Some(STATE_SCHEMA));
        assert_eq!(decode_state(&again).expect("decode").pending, expected);
        let out_of_order = encode_state_2(&old, &[instruction(40), instruction(7)]).expect("encode");
        assert!(decode_state(&out_of_order).is_err());
    }

    #[test]
    fn a_state_with_lsns_out_of_order_or_past_its_own_is_refused() {
        let mut past = image(40);
        past.last_lsn = 39;
        assert!(decode_state(&encode_state(&past).expect("encode")).is_err(), "an instruction at lsn 40");
        let mut disordered = image(40);
        disordered.entities.reverse();
        assert!(decode_state(&encode_state(&disordered).expect("encode")).is_err());
        let mut huge = vec![STATE_SCHEMA, RECORD_SCHEMA_VERSION, PART_META];
        put(&7u64, &mut huge).expect("lsn");
        huge.push(PART_BANKS);
        put(&u64::MAX, &mut huge).expect("count");
        let error = decode_state(&huge).expect_err("refused");
        assert!(error.to_string().contains("does not fit"), "{error}");
    }

    #[test]
    fn the_callers_refusal_stops_decoding() {
        let error =
            decode(&encoded(5), |lsn, _, _| if lsn == 4 { Err("no".into()) } else { Ok(()) }).expect_err("stop");
        assert!(error.to_string().contains("lsn 4"), "{error}");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decoded(&bytes);
            let _ = decode_state(&bytes);
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_header_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut bytes = vec![RECORDS_SCHEMA, RECORD_SCHEMA_VERSION, PART_META];
            bytes.extend(tail.iter().copied());
            let _ = decoded(&bytes);
            bytes[0] = STATE_SCHEMA;
            let _ = decode_state(&bytes);
        }

        #[test]
        fn mutated_checkpoints_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut bytes = encoded(40);
            let mut state = encode_state(&image(40)).expect("encode");
            for (at, value) in flips {
                let at = at % bytes.len();
                bytes[at] = value;
                let at = at % state.len();
                state[at] = value;
            }
            let _ = decoded(&bytes);
            let _ = decode_state(&state);
            let _ = decode_state_keeping_registry(state);
        }
    }
}
