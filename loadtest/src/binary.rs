//! The binary batch body (`application/vnd.fundledger.transfers+binary`),
//! written from its description in docs/API-notes.md ("Binary batch
//! bodies"). The harness does not link the server, as for the JSON bodies
//! and the bank's signature: a server that drifted from the document is
//! caught by the answers it gives.

/// The media type the body is sent as.
pub const MEDIA_TYPE: &str = "application/vnd.fundledger.transfers+binary";

/// Magic, version and item count.
pub const HEADER_BYTES: usize = 10;

/// Transfer type codes.
pub const TRANSFER: u8 = 1;
pub const FREEZE: u8 = 2;
pub const UNFREEZE: u8 = 3;
pub const UNFREEZE_PAY: u8 = 4;
pub const PAY_FREEZE: u8 = 5;

/// One item's fields (`None`: absent).
#[derive(Default)]
pub struct Item<'a> {
    pub kind: u8,
    pub id: &'a str,
    pub payer: Option<&'a str>,
    pub payee: Option<&'a str>,
    pub hold_id: Option<&'a str>,
    /// Fen (0.01).
    pub amount: Option<i64>,
    pub order_id: Option<&'a str>,
}

/// The header: magic, version 1, item count.
pub fn header(out: &mut Vec<u8>, count: usize) {
    out.extend_from_slice(b"FLTB");
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(count as u32).to_le_bytes());
}

/// Appends one item. Every text here is an id or account id (at most 64
/// bytes), so each fits its u8 length.
pub fn item(out: &mut Vec<u8>, item: &Item) {
    let mut flags = 1; // id
    for (bit, present) in [
        (1, item.payer.is_some()),
        (2, item.payee.is_some()),
        (3, item.hold_id.is_some()),
        (4, item.amount.is_some()),
        (5, item.order_id.is_some()),
    ] {
        if present {
            flags |= 1 << bit;
        }
    }
    out.push(item.kind);
    out.push(flags);
    let text = |out: &mut Vec<u8>, text: &str| {
        debug_assert!(text.len() <= usize::from(u8::MAX));
        out.push(text.len() as u8);
        out.extend_from_slice(text.as_bytes());
    };
    text(out, item.id);
    for field in [item.payer, item.payee, item.hold_id].into_iter().flatten() {
        text(out, field);
    }
    if let Some(fen) = item.amount {
        out.extend_from_slice(&fen.to_le_bytes());
    }
    if let Some(order_id) = item.order_id {
        text(out, order_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_documented_bytes() {
        let mut out = Vec::new();
        header(&mut out, 1);
        item(
            &mut out,
            &Item {
                kind: TRANSFER,
                id: "t",
                payer: Some("F000001"),
                payee: Some("F000002"),
                amount: Some(1),
                ..Item::default()
            },
        );
        let mut want = b"FLTB\x01\x00\x01\x00\x00\x00".to_vec();
        want.extend_from_slice(b"\x01\x17\x01t\x07F000001\x07F000002\x01\x00\x00\x00\x00\x00\x00\x00");
        assert_eq!(out, want);
    }
}
