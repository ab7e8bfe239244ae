//! The compact binary body of `POST /v1/transfers/batch`, sent as
//! `Content-Type: application/vnd.fundledger.transfers+binary` (API.md lets
//! the batch endpoint take one; the format is documented in
//! docs/API-notes.md, "Binary batch bodies").
//!
//! Why: reading a JSON batch is about a fifth of the batch path's
//! instructions (serde_json capturing each field raw, then each field read
//! again); here every field is a length-prefixed slice of the body, read
//! once, and nothing is allocated before a field has passed its check.
//!
//! Owns the wire format (decoder and a reference encoder) and nothing
//! else: a decoded item is checked by the same rules, in the same order and
//! with the same codes as a JSON item in `transfers::parse_transfer`, and
//! becomes the same [`TransferRequest`], so the gateway judges both alike
//! (a property test below compares the two parsers item by item).
//!
//! Little-endian throughout:
//!
//! ```text
//! header  magic "FLTB" (4 bytes), version u16 = 1, count u32 (1..=8190)
//! item    type u8 (0 absent, 1 transfer, 2 freeze, 3 unfreeze,
//!                  4 unfreeze_pay, 5 pay_freeze; others INVALID_TYPE)
//!         fields u8 (bit 0 id, 1 payer, 2 payee, 3 hold_id, 4 amount,
//!                    5 order_id, 6 memo; bit 7 must be 0)
//!         then each present field in that order:
//!           id, payer, payee, hold_id   u8 length + bytes
//!           amount                      i64 fen (1 = 0.01)
//!           order_id                    u8 length + bytes
//!           memo                        u16 length + UTF-8 bytes
//! ```
//!
//! A framing fault (magic, version, count, truncation, bit 7, bytes after
//! the last item) refuses the whole body with `400 INVALID_BATCH`; a field
//! that is framed correctly but invalid is that item's own 400 result.

use axum::http::{header, HeaderMap};

use super::error::{invalid_field, missing, ApiError, ApiResult, ErrorCode};
use crate::domain::account::TransferRequest;
use crate::domain::ids::{is_valid_client_id, AccountId};
use crate::domain::money::Money;
use crate::domain::record::TransferType;
use crate::limits;

/// The media type of a binary batch body.
pub const MEDIA_TYPE: &str = "application/vnd.fundledger.transfers+binary";

pub const MAGIC: [u8; 4] = *b"FLTB";
pub const VERSION: u16 = 1;
/// Magic, version and item count.
pub const HEADER_BYTES: usize = 10;
/// The smallest item: its type and field flags.
const ITEM_BYTES_MIN: usize = 2;

/// Largest amount, in fen: 15 integer digits and 2 fractional ones, the
/// largest amount a JSON body can write (`"999999999999999.99"`).
pub const AMOUNT_FEN_MAX: i64 = 99_999_999_999_999_999;

/// A memo of more bytes than this has more than `MEMO_CHARS_MAX`
/// characters whatever they are (UTF-8 has at most 4 bytes a character).
const MEMO_BYTES_MAX: usize = 4 * limits::MEMO_CHARS_MAX;

/// The bits of an item's field flags.
pub mod field {
    pub const ID: u8 = 1 << 0;
    pub const PAYER: u8 = 1 << 1;
    pub const PAYEE: u8 = 1 << 2;
    pub const HOLD_ID: u8 = 1 << 3;
    pub const AMOUNT: u8 = 1 << 4;
    pub const ORDER_ID: u8 = 1 << 5;
    pub const MEMO: u8 = 1 << 6;
    /// Every bit version 1 defines; any other is a framing fault (its
    /// field's length could not be known).
    pub const ALL: u8 = ID | PAYER | PAYEE | HOLD_ID | AMOUNT | ORDER_ID | MEMO;

    pub(super) fn name(bit: u8) -> &'static str {
        match bit {
            ID => "id",
            PAYER => "payer",
            PAYEE => "payee",
            HOLD_ID => "hold_id",
            AMOUNT => "amount",
            ORDER_ID => "order_id",
            _ => "memo",
        }
    }
}

/// Whether the request says it carries a binary batch (the media type,
/// case-insensitive, parameters ignored, as for `application/json`).
pub fn is_binary_batch(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let media_type = value.split(';').next().unwrap_or("").trim();
    media_type.eq_ignore_ascii_case(MEDIA_TYPE)
}

/// The wire code of a transfer type.
pub fn type_code(kind: TransferType) -> u8 {
    match kind {
        TransferType::Transfer => 1,
        TransferType::Freeze => 2,
        TransferType::Unfreeze => 3,
        TransferType::UnfreezePay => 4,
        TransferType::PayFreeze => 5,
    }
}

fn type_of(code: u8) -> Option<TransferType> {
    Some(match code {
        1 => TransferType::Transfer,
        2 => TransferType::Freeze,
        3 => TransferType::Unfreeze,
        4 => TransferType::UnfreezePay,
        5 => TransferType::PayFreeze,
        _ => return None,
    })
}

/// One item as framed on the wire, fields borrowed from the body, not yet
/// checked. `None` is an absent field (a JSON field absent or `null`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WireItem<'a> {
    /// The type's code; 0 is an absent `type`.
    pub kind: u8,
    pub id: Option<&'a [u8]>,
    pub payer: Option<&'a [u8]>,
    pub payee: Option<&'a [u8]>,
    pub hold_id: Option<&'a [u8]>,
    pub amount: Option<i64>,
    pub order_id: Option<&'a [u8]>,
    pub memo: Option<&'a [u8]>,
}

/// Decode a whole binary batch: `400 INVALID_BATCH` when its framing is
/// wrong (nothing of it is judged then), otherwise one checked request or
/// one item error per item, in order.
pub fn decode(bytes: &[u8]) -> ApiResult<Vec<ApiResult<TransferRequest>>> {
    let mut reader = Reader { bytes, at: 0 };
    let count = read_header(&mut reader)?;
    let mut requests = Vec::with_capacity(count);
    for index in 0..count {
        requests.push(read_item(&mut reader, index)?.to_request());
    }
    let trailing = reader.remaining();
    if trailing > 0 {
        return Err(framing(format!("has {trailing} bytes after its last item")));
    }
    Ok(requests)
}

fn framing(why: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidBatch, format!("the binary batch {why}"))
}

/// Checks the header; the item count it answers is 1 to `BATCH_ITEMS_MAX`
/// and no more than the rest of the body could hold.
fn read_header(reader: &mut Reader) -> ApiResult<usize> {
    let header = reader.take(HEADER_BYTES).ok_or_else(|| {
        framing(format!("is {} bytes, shorter than its {HEADER_BYTES}-byte header", reader.bytes.len()))
    })?;
    if header[..4] != MAGIC {
        return Err(framing(format!("does not start with the magic bytes \"FLTB\" ({MEDIA_TYPE})")));
    }
    let version = u16::from_le_bytes([header[4], header[5]]);
    if version != VERSION {
        return Err(framing(format!("is version {version}; this server reads version {VERSION}")));
    }
    let count = u32::from_le_bytes([header[6], header[7], header[8], header[9]]);
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count == 0 || count > limits::BATCH_ITEMS_MAX {
        return Err(ApiError::new(
            ErrorCode::InvalidBatch,
            format!("`transfers` must hold 1 to {} transfers, not {count}", limits::BATCH_ITEMS_MAX),
        ));
    }
    if reader.remaining() / ITEM_BYTES_MIN < count {
        return Err(framing(format!("is truncated: {count} items cannot fit in {} bytes", reader.remaining())));
    }
    Ok(count)
}

fn read_item<'a>(reader: &mut Reader<'a>, index: usize) -> ApiResult<WireItem<'a>> {
    let (Some(kind), Some(flags)) = (reader.u8(), reader.u8()) else {
        return Err(truncated(index, "type and field flags"));
    };
    if flags & !field::ALL != 0 {
        return Err(framing(format!("item {index} has field flags {flags:#04x}; version 1 defines bits 0 to 6")));
    }
    let amount = |bytes: &[u8]| i64::from_le_bytes(bytes.try_into().expect("8 bytes"));
    Ok(WireItem {
        kind,
        id: read_field(reader, flags, field::ID, index)?,
        payer: read_field(reader, flags, field::PAYER, index)?,
        payee: read_field(reader, flags, field::PAYEE, index)?,
        hold_id: read_field(reader, flags, field::HOLD_ID, index)?,
        amount: read_field(reader, flags, field::AMOUNT, index)?.map(amount),
        order_id: read_field(reader, flags, field::ORDER_ID, index)?,
        memo: read_field(reader, flags, field::MEMO, index)?,
    })
}

/// The bytes of the field `bit` when `flags` has it: the amount's 8, a
/// memo's u16 length and that many, any other field's u8 length and that
/// many; all inside the body, or the body is truncated.
fn read_field<'a>(reader: &mut Reader<'a>, flags: u8, bit: u8, index: usize) -> ApiResult<Option<&'a [u8]>> {
    if flags & bit == 0 {
        return Ok(None);
    }
    let length = match bit {
        field::AMOUNT => Some(8),
        field::MEMO => reader.u16().map(usize::from),
        _ => reader.u8().map(usize::from),
    };
    length.and_then(|length| reader.take(length)).map(Some).ok_or_else(|| truncated(index, field::name(bit)))
}

fn truncated(index: usize, what: &str) -> ApiError {
    framing(format!("is truncated in item {index} ({what})"))
}

impl WireItem<'_> {
    fn has(&self, name: &str) -> bool {
        match name {
            "payer" => self.payer.is_some(),
            "payee" => self.payee.is_some(),
            "hold_id" => self.hold_id.is_some(),
            "amount" => self.amount.is_some(),
            _ => false,
        }
    }

    /// The checks of `transfers::parse_transfer`, in its order, with its
    /// codes and messages (the amount's message names fen instead).
    pub fn to_request(&self) -> ApiResult<TransferRequest> {
        if self.kind == 0 {
            return Err(missing("type"));
        }
        let kind = type_of(self.kind).ok_or_else(super::transfers::invalid_type)?;
        let required = super::transfers::type_fields(kind, |field| self.has(field))?;
        let id = client_id(self.id, "id")?.ok_or_else(|| missing("id"))?;
        for field in required {
            if !self.has(field) {
                return Err(missing(field));
            }
        }
        Ok(TransferRequest {
            id,
            kind,
            payer: account(self.payer, "payer")?,
            payee: account(self.payee, "payee")?,
            hold_id: client_id(self.hold_id, "hold_id")?,
            amount: amount(self.amount)?,
            order_id: client_id(self.order_id, "order_id")?,
            memo: memo(self.memo)?,
        })
    }
}

/// A client id: INVALID_ID unless 1 to 64 of `A-Z a-z 0-9 _ - . :`.
fn client_id(bytes: Option<&[u8]>, name: &str) -> ApiResult<Option<Box<str>>> {
    let Some(bytes) = bytes else { return Ok(None) };
    match std::str::from_utf8(bytes) {
        Ok(text) if is_valid_client_id(text) => Ok(Some(text.into())),
        _ => Err(ApiError::new(
            ErrorCode::InvalidId,
            format!("field `{name}` must be 1 to 64 characters of A-Z a-z 0-9 _ - . :"),
        )),
    }
}

/// As `transfers::account_field`: malformed is 400; well-formed but not
/// canonical names account 0, which never exists (404 later).
fn account(bytes: Option<&[u8]>, name: &str) -> ApiResult<Option<AccountId>> {
    let Some(bytes) = bytes else { return Ok(None) };
    match std::str::from_utf8(bytes).ok().and_then(AccountId::from_field) {
        Some(id) => Ok(Some(id)),
        None => Err(invalid_field(name, "must be an account id like F000001")),
    }
}

fn amount(fen: Option<i64>) -> ApiResult<Option<Money>> {
    match fen {
        None => Ok(None),
        Some(fen) if (1..=AMOUNT_FEN_MAX).contains(&fen) => Ok(Some(Money(fen))),
        Some(_) => Err(ApiError::new(
            ErrorCode::InvalidAmount,
            format!("field `amount` must be 1 to {AMOUNT_FEN_MAX} fen (0.01 to 999999999999999.99)"),
        )),
    }
}

fn memo(bytes: Option<&[u8]>) -> ApiResult<Option<Box<str>>> {
    let Some(bytes) = bytes else { return Ok(None) };
    let too_long = || invalid_field("memo", &format!("is longer than {} characters", limits::MEMO_CHARS_MAX));
    if bytes.len() > MEMO_BYTES_MAX {
        return Err(too_long());
    }
    let text = std::str::from_utf8(bytes).map_err(|_| invalid_field("memo", "must be UTF-8"))?;
    if text.chars().count() > limits::MEMO_CHARS_MAX {
        return Err(too_long());
    }
    Ok(Some(text.into()))
}

/// A cursor over the body; every read is bounds-checked and answers `None`
/// past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.bytes.len())?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Some(slice)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
}

/// Why [`encode_item`] could not write an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLong(pub &'static str);

/// Writes the header of a batch of `count` items.
pub fn encode_header(out: &mut Vec<u8>, count: u32) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
}

/// Appends one item; a field longer than its length prefix can say is
/// refused (naming it) and nothing is written.
pub fn encode_item(out: &mut Vec<u8>, item: &WireItem) -> Result<(), TooLong> {
    let shorts = [
        (item.id, "id"),
        (item.payer, "payer"),
        (item.payee, "payee"),
        (item.hold_id, "hold_id"),
        (item.order_id, "order_id"),
    ];
    for (bytes, name) in shorts {
        if bytes.is_some_and(|bytes| bytes.len() > usize::from(u8::MAX)) {
            return Err(TooLong(name));
        }
    }
    if item.memo.is_some_and(|bytes| bytes.len() > usize::from(u16::MAX)) {
        return Err(TooLong("memo"));
    }
    let bit = |present: bool, bit: u8| if present { bit } else { 0 };
    let flags = bit(item.id.is_some(), field::ID)
        | bit(item.payer.is_some(), field::PAYER)
        | bit(item.payee.is_some(), field::PAYEE)
        | bit(item.hold_id.is_some(), field::HOLD_ID)
        | bit(item.amount.is_some(), field::AMOUNT)
        | bit(item.order_id.is_some(), field::ORDER_ID)
        | bit(item.memo.is_some(), field::MEMO);
    out.push(item.kind);
    out.push(flags);
    let short = |out: &mut Vec<u8>, bytes: Option<&[u8]>| {
        if let Some(bytes) = bytes {
            out.push(bytes.len() as u8);
            out.extend_from_slice(bytes);
        }
    };
    short(out, item.id);
    short(out, item.payer);
    short(out, item.payee);
    short(out, item.hold_id);
    if let Some(fen) = item.amount {
        out.extend_from_slice(&fen.to_le_bytes());
    }
    short(out, item.order_id);
    if let Some(memo) = item.memo {
        out.extend_from_slice(&(memo.len() as u16).to_le_bytes());
        out.extend_from_slice(memo);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::extract::JsonObject;
    use crate::http::transfers::parse_transfer;
    use proptest::prelude::*;

    fn batch(items: &[WireItem]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_header(&mut out, items.len() as u32);
        for item in items {
            encode_item(&mut out, item).unwrap();
        }
        out
    }

    fn transfer<'a>(id: &'a str, payer: &'a str, payee: &'a str, fen: i64) -> WireItem<'a> {
        WireItem {
            kind: 1,
            id: Some(id.as_bytes()),
            payer: Some(payer.as_bytes()),
            payee: Some(payee.as_bytes()),
            amount: Some(fen),
            ..WireItem::default()
        }
    }

    fn code(
        result: ApiResult<Vec<ApiResult<TransferRequest>>>,
    ) -> Result<Vec<Result<TransferRequest, ErrorCode>>, ErrorCode> {
        result
            .map(|items| items.into_iter().map(|item| item.map_err(|error| error.code)).collect())
            .map_err(|error| error.code)
    }

    #[test]
    fn the_largest_amount_is_the_largest_json_amount() {
        assert_eq!(Money::parse_amount("999999999999999.99"), Some(Money(AMOUNT_FEN_MAX)));
        assert_eq!(Money::parse_amount("1000000000000000"), None);
    }

    #[test]
    fn a_batch_decodes_to_the_requests_it_names() {
        let body = batch(&[
            transfer("t-1", "F000001", "F000002", 1250),
            WireItem {
                kind: 4,
                id: Some(b"u-1"),
                hold_id: Some(b"h-1"),
                payee: Some(b"F000003"),
                order_id: Some(b"O-1"),
                memo: Some("货款".as_bytes()),
                ..WireItem::default()
            },
        ]);
        let items = code(decode(&body)).unwrap();
        assert_eq!(
            items[0],
            Ok(TransferRequest {
                id: "t-1".into(),
                kind: TransferType::Transfer,
                payer: Some(AccountId(1)),
                payee: Some(AccountId(2)),
                hold_id: None,
                amount: Some(Money(1250)),
                order_id: None,
                memo: None,
            })
        );
        assert_eq!(
            items[1],
            Ok(TransferRequest {
                id: "u-1".into(),
                kind: TransferType::UnfreezePay,
                payer: None,
                payee: Some(AccountId(3)),
                hold_id: Some("h-1".into()),
                amount: None,
                order_id: Some("O-1".into()),
                memo: Some("货款".into()),
            })
        );
    }

    #[test]
    fn an_invalid_item_is_its_own_error() {
        let long_memo = "x".repeat(257);
        let body = batch(&[
            transfer("t-1", "F000001", "F000002", 0),
            transfer("t-2", "F000001", "F000002", AMOUNT_FEN_MAX + 1),
            transfer("t-3", "F1", "F000002", 1),
            transfer("t 4", "F000001", "F000002", 1),
            WireItem { kind: 9, ..transfer("t-5", "F000001", "F000002", 1) },
            WireItem { kind: 0, ..transfer("t-6", "F000001", "F000002", 1) },
            WireItem { id: None, ..transfer("t-7", "F000001", "F000002", 1) },
            WireItem { kind: 2, ..transfer("t-8", "F000001", "F000002", 1) },
            WireItem { memo: Some(long_memo.as_bytes()), ..transfer("t-9", "F000001", "F000002", 1) },
            WireItem { memo: Some(b"\xff"), ..transfer("t-10", "F000001", "F000002", 1) },
            transfer("t-11", "F000001", "F000002", 1),
        ]);
        let codes: Vec<_> = code(decode(&body)).unwrap().into_iter().map(|item| item.err()).collect();
        use ErrorCode::*;
        assert_eq!(
            codes,
            [
                Some(InvalidAmount),
                Some(InvalidAmount),
                Some(InvalidField),
                Some(InvalidId),
                Some(InvalidType),
                Some(MissingField),
                Some(MissingField),
                Some(UnexpectedField),
                Some(InvalidField),
                Some(InvalidField),
                None,
            ]
        );
    }

    #[test]
    fn bad_framing_refuses_the_whole_body() {
        let good = batch(&[transfer("t-1", "F000001", "F000002", 1)]);
        let mut cases: Vec<(&str, Vec<u8>)> =
            vec![("empty", vec![]), ("header only, count 1", good[..HEADER_BYTES].to_vec())];
        let mut magic = good.clone();
        magic[0] = b'{';
        cases.push(("magic", magic));
        let mut version = good.clone();
        version[4] = 2;
        cases.push(("version", version));
        let mut zero = good.clone();
        zero[6..10].copy_from_slice(&0u32.to_le_bytes());
        cases.push(("count 0", zero));
        let mut over = good.clone();
        over[6..10].copy_from_slice(&(limits::BATCH_ITEMS_MAX as u32 + 1).to_le_bytes());
        cases.push(("count 8191", over));
        let mut huge = good.clone();
        huge[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
        cases.push(("count u32::MAX", huge));
        let mut flags = good.clone();
        flags[HEADER_BYTES + 1] |= 0x80;
        cases.push(("flag bit 7", flags));
        let mut trailing = good.clone();
        trailing.push(0);
        cases.push(("a trailing byte", trailing));
        for cut in HEADER_BYTES + 1..good.len() {
            cases.push(("truncated", good[..cut].to_vec()));
        }
        let mut two = good.clone();
        two[6..10].copy_from_slice(&2u32.to_le_bytes());
        cases.push(("count above the items", two));
        for (what, body) in cases {
            assert_eq!(code(decode(&body)).err(), Some(ErrorCode::InvalidBatch), "{what}");
        }
        assert!(decode(&good).is_ok());
    }

    #[test]
    fn the_media_type_is_matched_like_json() {
        let headers = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            headers
        };
        assert!(is_binary_batch(&headers("application/vnd.fundledger.transfers+binary")));
        assert!(is_binary_batch(&headers("Application/Vnd.Fundledger.Transfers+Binary; v=1")));
        assert!(!is_binary_batch(&headers("application/json")));
        assert!(!is_binary_batch(&headers("application/octet-stream")));
        assert!(!is_binary_batch(&HeaderMap::new()));
    }

    #[test]
    fn encoding_refuses_what_its_prefixes_cannot_say() {
        let long = [b'x'; 256];
        let item = WireItem { id: Some(&long), ..WireItem::default() };
        assert_eq!(encode_item(&mut Vec::new(), &item), Err(TooLong("id")));
        let memo = vec![b'x'; 65_536];
        let item = WireItem { memo: Some(&memo), ..WireItem::default() };
        assert_eq!(encode_item(&mut Vec::new(), &item), Err(TooLong("memo")));
    }

    // --- properties

    fn client_id_text() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.:-]{1,64}"
    }

    fn account_text() -> impl Strategy<Value = String> {
        (1u64..100_000_000).prop_map(|n| AccountId(n).to_string())
    }

    prop_compose! {
        /// A valid request of any type, with the fields its type takes.
        fn valid_request()(
            kind in 1u8..=5,
            id in client_id_text(),
            payer in account_text(),
            payee in account_text(),
            hold_id in client_id_text(),
            amount in proptest::option::of(1..=AMOUNT_FEN_MAX),
            fallback_amount in 1..=AMOUNT_FEN_MAX,
            order_id in proptest::option::of(client_id_text()),
            memo in proptest::option::of("\\PC{0,256}"),
        ) -> TransferRequest {
            let kind = type_of(kind).unwrap();
            let account = |text: &str| AccountId::parse(text);
            let (payer, payee, hold_id, amount) = match kind {
                TransferType::Transfer | TransferType::PayFreeze => {
                    (account(&payer), account(&payee), None, Some(amount.unwrap_or(fallback_amount)))
                }
                TransferType::Freeze => (account(&payer), None, None, Some(amount.unwrap_or(fallback_amount))),
                TransferType::Unfreeze => (None, None, Some(hold_id), amount),
                TransferType::UnfreezePay => (None, account(&payee), Some(hold_id), amount),
            };
            TransferRequest {
                id: id.into(),
                kind,
                payer,
                payee,
                hold_id: hold_id.map(Into::into),
                amount: amount.map(Money),
                order_id: order_id.map(Into::into),
                memo: memo.map(Into::into),
            }
        }
    }

    /// What a field's text may be: valid, or one of the ways it is not.
    fn any_text() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            client_id_text().prop_map(String::into_bytes),
            account_text().prop_map(String::into_bytes),
            Just(b"F0000001".to_vec()),
            Just(b"F000000".to_vec()),
            Just(b"F12".to_vec()),
            Just(Vec::new()),
            "[ -~]{0,70}".prop_map(String::into_bytes),
            "\\PC{0,3}".prop_map(String::into_bytes),
            Just("x".repeat(65).into_bytes()),
        ]
    }

    prop_compose! {
        fn any_item()(
            kind in 0u8..=7,
            id in proptest::option::of(any_text()),
            payer in proptest::option::of(any_text()),
            payee in proptest::option::of(any_text()),
            hold_id in proptest::option::of(any_text()),
            amount in proptest::option::of(prop_oneof![Just(0i64), Just(-1), Just(AMOUNT_FEN_MAX), Just(AMOUNT_FEN_MAX + 1), any::<i64>(), 1i64..100_000]),
            order_id in proptest::option::of(any_text()),
            memo in proptest::option::of(prop_oneof!["\\PC{0,300}".prop_map(String::into_bytes), Just("é".repeat(256).into_bytes()), Just("é".repeat(257).into_bytes())]),
        ) -> (u8, [Option<Vec<u8>>; 6], Option<i64>) {
            (kind, [id, payer, payee, hold_id, order_id, memo], amount)
        }
    }

    /// The JSON body of the same item, for the JSON parser.
    fn as_json(item: &WireItem) -> String {
        let mut object = serde_json::Map::new();
        let kinds = ["", "transfer", "freeze", "unfreeze", "unfreeze_pay", "pay_freeze", "bogus", "Transfer"];
        if item.kind != 0 {
            object.insert("type".into(), kinds[usize::from(item.kind)].into());
        }
        let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).expect("UTF-8 in this test");
        for (name, value) in [
            ("id", item.id),
            ("payer", item.payer),
            ("payee", item.payee),
            ("hold_id", item.hold_id),
            ("order_id", item.order_id),
            ("memo", item.memo),
        ] {
            if let Some(bytes) = value {
                object.insert(name.into(), text(bytes).into());
            }
        }
        if let Some(fen) = item.amount {
            let text = if fen > 0 { format!("{}.{:02}", fen / 100, fen % 100) } else { fen.to_string() };
            object.insert("amount".into(), text.into());
        }
        serde_json::Value::Object(object).to_string()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Encoding valid requests and decoding them gives them back.
        #[test]
        fn valid_requests_round_trip(requests in proptest::collection::vec(valid_request(), 1..20)) {
            let accounts: Vec<[Option<String>; 2]> = requests
                .iter()
                .map(|r| [r.payer.map(|a| a.to_string()), r.payee.map(|a| a.to_string())])
                .collect();
            let items: Vec<WireItem> = requests
                .iter()
                .zip(&accounts)
                .map(|(r, [payer, payee])| WireItem {
                    kind: type_code(r.kind),
                    id: Some(r.id.as_bytes()),
                    payer: payer.as_deref().map(str::as_bytes),
                    payee: payee.as_deref().map(str::as_bytes),
                    hold_id: r.hold_id.as_deref().map(str::as_bytes),
                    amount: r.amount.map(Money::fen),
                    order_id: r.order_id.as_deref().map(str::as_bytes),
                    memo: r.memo.as_deref().map(str::as_bytes),
                })
                .collect();
            let decoded = code(decode(&batch(&items))).unwrap();
            let expected: Vec<_> = requests.into_iter().map(Ok).collect();
            prop_assert_eq!(decoded, expected);
        }

        /// Any item, valid or not, gets from the binary decoder what the
        /// same item gets from the JSON parser: the same request, or the
        /// same code (and message, but for the amount's wording).
        #[test]
        fn the_binary_and_json_parsers_agree((kind, texts, amount) in any_item()) {
            let [id, payer, payee, hold_id, order_id, memo] = &texts;
            let utf8 = texts.iter().flatten().all(|bytes| std::str::from_utf8(bytes).is_ok());
            let item = WireItem {
                kind,
                id: id.as_deref(),
                payer: payer.as_deref(),
                payee: payee.as_deref(),
                hold_id: hold_id.as_deref(),
                amount,
                order_id: order_id.as_deref(),
                memo: memo.as_deref(),
            };
            // JSON cannot carry other bytes (its body would be refused whole).
            prop_assume!(utf8);
            let binary = decode(&batch(std::slice::from_ref(&item))).unwrap().pop().unwrap();
            let json = as_json(&item);
            let from_json = parse_transfer(&JsonObject::parse_body(json.as_bytes()).unwrap());
            match (binary, from_json) {
                (Ok(binary), Ok(from_json)) => prop_assert_eq!(binary, from_json),
                (Err(binary), Err(from_json)) => {
                    prop_assert_eq!(binary.code, from_json.code, "{} / {}", binary.message, from_json.message);
                    if binary.code != ErrorCode::InvalidAmount {
                        prop_assert_eq!(binary.message, from_json.message);
                    }
                }
                (binary, from_json) => prop_assert!(false, "binary {:?}, JSON {:?} for {}", binary, from_json, json),
            }
        }

        /// Arbitrary bytes are decoded or refused, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&bytes);
        }

        /// The same behind a valid header, so the items' framing is reached.
        #[test]
        fn arbitrary_items_never_panic(count in 0u32..20, bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut body = Vec::new();
            encode_header(&mut body, count);
            body.extend_from_slice(&bytes);
            if let Ok(items) = decode(&body) {
                prop_assert_eq!(items.len(), count as usize);
            }
        }
    }
}
