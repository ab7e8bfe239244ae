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
