//! The one codec between log records and bytes: bincode 2 with one fixed
//! configuration, behind this module so that nothing else names bincode.
//!
//! Payload layout: one byte [`RECORD_SCHEMA_VERSION`], then the bincode
//! encoding of [`Record`] (little endian, variable-length integers). Every
//! version from [`RECORD_SCHEMA_OLDEST`] on is read (the version is the
//! decoder's context, [`RecordSchema`]); a newer one is refused. Decoding
//! is bounded by [`limits::RECORD_BYTES_MAX`], so a corrupt length inside a
//! payload can never make the decoder allocate more than that.
//! [`checkpoint`] lays out checkpoints with the same configuration.

pub mod checkpoint;

use std::sync::Arc;

use bincode::config::{Configuration, Limit, LittleEndian, Varint};

use crate::domain::record::{Record, RecordSchema, RECORD_SCHEMA_OLDEST, RECORD_SCHEMA_VERSION};
use crate::limits;

type Config = Configuration<LittleEndian, Varint, Limit<{ limits::RECORD_BYTES_MAX }>>;

const CONFIG: Config = bincode::config::standard()
    .with_little_endian()
    .with_variable_int_encoding()
    .with_limit::<{ limits::RECORD_BYTES_MAX }>();

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty record payload")]
    Empty,
    #[error("record schema version {0} is not known to this build (knows {RECORD_SCHEMA_OLDEST} to {RECORD_SCHEMA_VERSION})")]
    UnknownSchema(u8),
    #[error("record does not decode: {0}")]
    Decode(String),
    #[error("record has {0} trailing bytes")]
    Trailing(usize),
    #[error("record does not encode: {0}")]
    Encode(String),
}

/// Append the payload of `record` to `out`.
pub fn encode_into(record: &Record, out: &mut Vec<u8>) -> Result<(), CodecError> {
    out.push(RECORD_SCHEMA_VERSION);
    bincode::encode_into_std_write(record, out, CONFIG)
        .map(|_| ())
        .map_err(|error| CodecError::Encode(error.to_string()))
}

pub fn decode(payload: &[u8]) -> Result<Record, CodecError> {
    decode_with_schema(payload).map(|(record, _)| record)
}

/// [`decode`], and the schema version the payload was written in (the
/// recovery fold treats answers of schema 1, which name no lsn, apart).
pub fn decode_with_schema(payload: &[u8]) -> Result<(Record, RecordSchema), CodecError> {
    let (&version, body) = payload.split_first().ok_or(CodecError::Empty)?;
    let schema = known_schema(version)?;
    let (mut record, used) = bincode::decode_from_slice_with_context::<_, Record, _>(body, CONFIG, schema)
        .map_err(|error| CodecError::Decode(error.to_string()))?;
    if used != body.len() {
        return Err(CodecError::Trailing(body.len() - used));
    }
    share_names(&mut record);
    Ok((record, schema))
}

/// `version` as a decoding context, if this build reads it.
pub fn known_schema(version: u8) -> Result<RecordSchema, CodecError> {
    if !(RECORD_SCHEMA_OLDEST..=RECORD_SCHEMA_VERSION).contains(&version) {
        return Err(CodecError::UnknownSchema(version));
    }
    Ok(RecordSchema(version))
}

/// String fields decoded straight from a record's bytes, for the records
/// read back most ([`crate::domain::record::Movement`], `BankSync`): the
/// checkpointer, the history's refill and a restart decode every one.
/// bincode's own decode of a string zero-fills a buffer, reads the bytes
/// into it and checks them, and an `Arc<str>` is then copied once more;
/// these borrow the bytes from the slice being decoded (one allocation, one
/// copy), and fall back to reading for a reader that cannot lend them.
/// Same encoding, same errors.
pub(crate) mod fields {
    use std::cell::RefCell;
    use std::sync::Arc;

    use bincode::de::read::Reader;
    use bincode::de::Decoder;
    use bincode::error::{AllowedEnumVariants, DecodeError};
    use bincode::Decode;

    /// A length-prefixed UTF-8 string, handed to `make` as a `&str`.
    fn decode_str_with<D: Decoder, T>(decoder: &mut D, make: impl FnOnce(&str) -> T) -> Result<T, DecodeError> {
        let len = u64::decode(decoder)?;
        let len = usize::try_from(len).map_err(|_| DecodeError::OutsideUsizeRange(len))?;
        decoder.claim_container_read::<u8>(len)?;
        if let Some(bytes) = decoder.reader().peek_read(len) {
            let made = make(std::str::from_utf8(bytes).map_err(|inner| DecodeError::Utf8 { inner })?);
            decoder.reader().consume(len);
            return Ok(made);
        }
        let mut bytes = vec![0u8; len];
        decoder.reader().read(&mut bytes)?;
        Ok(make(std::str::from_utf8(&bytes).map_err(|inner| DecodeError::Utf8 { inner })?))
    }

    pub fn boxed_str<D: Decoder>(decoder: &mut D) -> Result<Box<str>, DecodeError> {
        decode_str_with(decoder, |text| Box::from(text))
    }

    /// An `Option<Box<str>>` (a variant byte, 0 or 1, then the string).
    pub fn optional_boxed_str<D: Decoder>(decoder: &mut D) -> Result<Option<Box<str>>, DecodeError> {
        match u8::decode(decoder)? {
            0 => Ok(None),
            1 => boxed_str(decoder).map(Some),
            found => Err(DecodeError::UnexpectedVariant {
                type_name: std::any::type_name::<Option<Box<str>>>(),
                allowed: &AllowedEnumVariants::Range { min: 0, max: 1 },
                found: u32::from(found),
            }),
        }
    }

    /// A `Result<Box<str>, Box<str>>` (a variant index, 0 or 1, then the
    /// string).
    pub fn boxed_str_result<D: Decoder>(decoder: &mut D) -> Result<Result<Box<str>, Box<str>>, DecodeError> {
        match u32::decode(decoder)? {
            0 => boxed_str(decoder).map(Ok),
            1 => boxed_str(decoder).map(Err),
            found => Err(DecodeError::UnexpectedVariant {
                type_name: std::any::type_name::<Result<Box<str>, Box<str>>>(),
                allowed: &AllowedEnumVariants::Range { min: 0, max: 1 },
                found,
            }),
        }
    }

    thread_local! {
        /// The last shared string this thread decoded.
        static LAST_SHARED: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
    }

    /// An `Arc<str>` that nearly every record repeats (a movement's
    /// operator): the same allocation as the one this thread decoded last
    /// when the text is the same, as the live server shares one per caller.
    pub fn shared_str<D: Decoder>(decoder: &mut D) -> Result<Arc<str>, DecodeError> {
        decode_str_with(decoder, |text| {
            LAST_SHARED.with(|last| {
                let mut last = last.borrow_mut();
                match &*last {
                    Some(shared) if **shared == *text => Arc::clone(shared),
                    _ => {
                        let shared: Arc<str> = Arc::from(text);
                        *last = Some(Arc::clone(&shared));
                        shared
                    }
                }
            })
        })
    }
}

/// A decoded application's settlement account shares its name's
/// allocation, as one created through the API does (the encoding writes
/// both): a recovered million accounts keep a million strings less.
fn share_names(record: &mut Record) {
    if let Record::ApplicationCreated(application) = record {
        if let Some(application) = Arc::get_mut(application) {
            if application.settlement_account.account_name == application.name {
                application.settlement_account.account_name = Arc::clone(&application.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::domain::ids::AccountId;
    use crate::domain::money::Money;
    use crate::domain::record::{Movement, TransferType};

    fn movement_strategy() -> impl Strategy<Value = Movement> {
        (
            "[a-zA-Z0-9:._-]{1,64}",
            0usize..5,
            1u64..10_000_000,
            proptest::option::of(1u64..10_000_000),
            1i64..1_000_000_000_000,
            proptest::option::of("\\PC{0,256}"),
            any::<i64>(),
        )
            .prop_map(|(id, kind, payer, payee, fen, memo, at)| Movement {
                id: id.clone().into(),
                kind: [
                    TransferType::Transfer,
                    TransferType::Freeze,
                    TransferType::Unfreeze,
                    TransferType::UnfreezePay,
                    TransferType::PayFreeze,
                ][kind],
                payer: AccountId(payer),
                payee: payee.map(AccountId),
                amount: Money(fen),
                requested_amount: Some(Money(fen)),
                hold_id: Some(id.into()),
                hold_account: Some(AccountId(payer)),
                hold_amount: Money(fen),
                hold_remaining: Money(0),
                order_id: None,
                memo: memo.map(Into::into),
                committed_at_ms: at,
                operator: "platform".into(),
            })
    }

    proptest! {
        #[test]
        fn movement_round_trips(movement in movement_strategy()) {
            let record = Record::Movement(Arc::new(movement));
            let mut bytes = Vec::new();
            encode_into(&record, &mut bytes).unwrap();
            prop_assert_eq!(decode(&bytes).unwrap(), record);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn every_truncation_is_refused(movement in movement_strategy(), cut in 0usize..1000) {
            let mut bytes = Vec::new();
            encode_into(&Record::Movement(Arc::new(movement)), &mut bytes).unwrap();
            let cut = cut % bytes.len();
            prop_assert!(decode(&bytes[..cut]).is_err());
        }
    }

    /// What the derived decode read before `Movement` and `BankSync`
    /// decoded their strings by hand ([`fields`]): the same fields in the
    /// same order, with bincode's own string decode. The oracle for the
    /// hand-written decodes below.
    #[derive(Debug, bincode::Decode)]
    struct DerivedMovement {
        id: Box<str>,
        kind: TransferType,
        payer: AccountId,
        payee: Option<AccountId>,
        amount: Money,
        requested_amount: Option<Money>,
        hold_id: Option<Box<str>>,
        hold_account: Option<AccountId>,
        hold_amount: Money,
        hold_remaining: Money,
        order_id: Option<Box<str>>,
        memo: Option<Box<str>>,
        committed_at_ms: i64,
        operator: Arc<str>,
    }

    #[derive(Debug, bincode::Decode)]
    struct DerivedBankSync {
        reference: Box<str>,
        bank: Box<str>,
        kind: crate::domain::record::InstructionKind,
        outcome: Result<Box<str>, Box<str>>,
        at_ms: i64,
        lsn: u64,
    }

    impl From<DerivedMovement> for Movement {
        fn from(derived: DerivedMovement) -> Self {
            Movement {
                id: derived.id,
                kind: derived.kind,
                payer: derived.payer,
                payee: derived.payee,
                amount: derived.amount,
                requested_amount: derived.requested_amount,
                hold_id: derived.hold_id,
                hold_account: derived.hold_account,
                hold_amount: derived.hold_amount,
                hold_remaining: derived.hold_remaining,
                order_id: derived.order_id,
                memo: derived.memo,
                committed_at_ms: derived.committed_at_ms,
                operator: derived.operator,
            }
        }
    }

    /// Both decodes took the bytes, read the same value from as many of
    /// them, or both refused them with the same error.
    fn decoded_alike<T: std::fmt::Debug + PartialEq>(
        hand: Result<(T, usize), bincode::error::DecodeError>,
        derived: Result<(T, usize), bincode::error::DecodeError>,
    ) -> Result<(), TestCaseError> {
        match (hand, derived) {
            (Ok(hand), Ok(derived)) => prop_assert_eq!(hand, derived),
            (Err(hand), Err(derived)) => prop_assert_eq!(hand.to_string(), derived.to_string()),
            (hand, derived) => prop_assert!(false, "hand {hand:?} against derived {derived:?}"),
        }
        Ok(())
    }

    /// Bytes that look like a movement or an answer often enough to reach
    /// the string fields: an encoded one with some bytes changed and cut.
    fn mangled(mut bytes: Vec<u8>, changes: Vec<(usize, u8)>, cut: usize) -> Vec<u8> {
        for (at, byte) in changes {
            let len = bytes.len();
            bytes[at % len] = byte;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        bytes
    }

    fn bank_sync_strategy() -> impl Strategy<Value = crate::domain::record::BankSync> {
        ("[a-z0-9-]{0,40}", "[A-Z]{0,10}", any::<bool>(), "\\PC{0,40}", any::<i64>(), any::<u64>()).prop_map(
            |(reference, bank, ok, text, at_ms, lsn)| crate::domain::record::BankSync {
                reference: reference.into(),
                bank: bank.into(),
                kind: crate::domain::record::InstructionKind::ForcedTransfer,
                outcome: if ok { Ok(text.into()) } else { Err(text.into()) },
                at_ms,
                lsn,
            },
        )
    }

    proptest! {
        /// The hand-written movement decode takes exactly what the derived
        /// one took, and reads the same fields, whatever the bytes.
        #[test]
        fn a_movement_decodes_as_the_derived_decode_did(
            movement in movement_strategy(),
            changes in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
        ) {
            let bytes = bincode::encode_to_vec(&movement, CONFIG).unwrap();
            let bytes = mangled(bytes, changes, cut);
            let hand = bincode::decode_from_slice::<Movement, _>(&bytes, CONFIG);
            let derived = bincode::decode_from_slice::<DerivedMovement, _>(&bytes, CONFIG);
            decoded_alike(hand, derived.map(|(derived, used)| (Movement::from(derived), used)))?;
        }

        /// The same for a bank's answer (schema 2 on: with its lsn).
        #[test]
        fn a_bank_answer_decodes_as_the_derived_decode_did(
            answer in bank_sync_strategy(),
            changes in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
        ) {
            let bytes = bincode::encode_to_vec(&answer, CONFIG).unwrap();
            let bytes = mangled(bytes, changes, cut);
            let hand = bincode::decode_from_slice_with_context::<_, crate::domain::record::BankSync, _>(
                &bytes,
                CONFIG,
                RecordSchema(RECORD_SCHEMA_VERSION),
            );
            let derived = bincode::decode_from_slice::<DerivedBankSync, _>(&bytes, CONFIG);
            let hand = hand.map(|(hand, used)| ((hand.reference, hand.bank, hand.kind, hand.outcome, hand.at_ms, hand.lsn), used));
            let derived = derived.map(|(derived, used)| {
                ((derived.reference, derived.bank, derived.kind, derived.outcome, derived.at_ms, derived.lsn), used)
            });
            decoded_alike(hand, derived)?;
        }
    }

    /// Movements decoded one after another with the same operator share
    /// one allocation of its name (as the live server's do); another
    /// operator gets its own.
    #[test]
    fn decoded_movements_share_their_operators_name() {
        let decoded = |id: &str, operator: &str| {
            let mut movement = crate::domain::record::fixtures::transfer(id, 1, 2, 100, 0);
            movement.operator = operator.into();
            let mut bytes = Vec::new();
            encode_into(&Record::Movement(Arc::new(movement)), &mut bytes).expect("encode");
            match decode(&bytes).expect("decode") {
                Record::Movement(movement) => movement,
                other => panic!("decoded {other:?}"),
            }
        };
        let (first, second) = (decoded("a", "platform"), decoded("b", "platform"));
        assert!(Arc::ptr_eq(&first.operator, &second.operator), "one name for both");
        let other = decoded("c", "finance");
        assert_eq!(&*other.operator, "finance");
        assert!(!Arc::ptr_eq(&first.operator, &other.operator));
        assert_eq!(&*decoded("d", "platform").operator, "platform");
    }

    #[test]
    fn unknown_schema_is_refused() {
        assert!(matches!(decode(&[9, 0]), Err(CodecError::UnknownSchema(9))));
        assert!(matches!(decode(&[0, 0]), Err(CodecError::UnknownSchema(0))));
        assert!(matches!(decode(&[RECORD_SCHEMA_VERSION + 1, 0]), Err(CodecError::UnknownSchema(_))));
    }

    fn answer(lsn: u64) -> Record {
        use crate::domain::record::{BankSync, InstructionKind};
        Record::BankSynced(Arc::new(BankSync {
            reference: "t-1".into(),
            bank: "SIMBANK".into(),
            kind: InstructionKind::ForcedTransfer,
            outcome: Ok("SB1".into()),
            at_ms: 1_764_000_000_000,
            lsn,
        }))
    }

    #[test]
    fn a_bank_answer_keeps_its_lsn_and_one_of_schema_1_reads_as_lsn_0() {
        let record = answer(300);
        let mut bytes = Vec::new();
        encode_into(&record, &mut bytes).expect("encode");
        assert_eq!(decode_with_schema(&bytes).expect("decode"), (record, RecordSchema(2)));
        // Schema 1 wrote the same fields without the lsn (300 is a
        // three-byte varint: 251, then two bytes little endian).
        let mut old = bytes[..bytes.len() - 3].to_vec();
        old[0] = 1;
        assert_eq!(decode_with_schema(&old).expect("decode schema 1"), (answer(0), RecordSchema(1)));
        // A schema-2 answer cut before its lsn is refused, not read as 0.
        assert!(decode(&bytes[..bytes.len() - 3]).is_err());
    }

    #[test]
    fn a_record_unchanged_since_schema_1_reads_the_same_under_both() {
        let record = application("甲公司", "甲公司");
        let mut bytes = Vec::new();
        encode_into(&record, &mut bytes).expect("encode");
        bytes[0] = 1;
        assert_eq!(decode_with_schema(&bytes).expect("decode"), (record, RecordSchema(1)));
    }

    fn application(name: &str, holder: &str) -> Record {
        use crate::domain::ids::ApplicationId;
        use crate::domain::record::{Application, SettlementAccount};
        Record::ApplicationCreated(Arc::new(Application {
            application_id: ApplicationId(1),
            name: name.into(),
            credential_no: "91310000X".into(),
            bank: "SIMBANK".into(),
            settlement_account: SettlementAccount {
                bank_name: "工商银行".into(),
                account_no: "6222".into(),
                account_name: holder.into(),
            },
            created_at_ms: 1_764_000_000_000,
            operator: "platform".into(),
        }))
    }

    fn decoded_application(record: &Record) -> Arc<crate::domain::record::Application> {
        let mut bytes = Vec::new();
        encode_into(record, &mut bytes).expect("encode");
        let decoded = decode(&bytes).expect("decode");
        assert_eq!(&decoded, record, "the same record back");
        match decoded {
            Record::ApplicationCreated(application) => application,
            other => panic!("decoded {other:?}"),
        }
    }

    #[test]
    fn a_decoded_application_shares_its_name_with_its_settlement_account() {
        let same = decoded_application(&application("甲公司", "甲公司"));
        assert!(Arc::ptr_eq(&same.name, &same.settlement_account.account_name));
        // Not the API's rule to judge here: a differing holder stays as written.
        let other = decoded_application(&application("甲公司", "乙"));
        assert_eq!(&*other.settlement_account.account_name, "乙");
    }
}
