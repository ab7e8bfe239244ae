//! The Bloom filter over key prefixes (layout and probe rule in
//! [`crate::format`]). Owns the bit array only; it never reads a file.

use crate::format::{fmix64, prefix_hash};
use crate::limits::{BLOOM_BITS_PER_PREFIX, BLOOM_BYTES_MAX, BLOOM_BYTES_MIN, BLOOM_HASHES, BLOOM_LINE_BYTES};

#[derive(Debug, Clone)]
pub struct Bloom {
    bits: Vec<u8>,
    hashes: u32,
}

impl Bloom {
    /// A filter for about `prefixes_expected` distinct prefixes, clamped to
    /// [`BLOOM_BYTES_MIN`] ..= [`BLOOM_BYTES_MAX`].
    pub fn sized_for(prefixes_expected: u64) -> Self {
        let bytes = prefixes_expected.saturating_mul(BLOOM_BITS_PER_PREFIX).div_ceil(8);
        let bytes = bytes.div_ceil(BLOOM_LINE_BYTES).saturating_mul(BLOOM_LINE_BYTES);
        let bytes = bytes.clamp(BLOOM_BYTES_MIN, BLOOM_BYTES_MAX);
        Bloom { bits: vec![0; bytes as usize], hashes: BLOOM_HASHES }
    }

    /// No filter: every lookup answers "maybe".
    pub fn empty() -> Self {
        Bloom { bits: Vec::new(), hashes: BLOOM_HASHES }
    }

    pub fn from_bytes(bits: Vec<u8>, hashes: u32) -> Self {
        Bloom { bits, hashes }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bits
    }

    pub fn hashes(&self) -> u32 {
        self.hashes
    }

    pub fn insert(&mut self, prefix: &[u8]) {
        if self.bits.is_empty() {
            return;
        }
        for bit in probes_of(prefix_hash(prefix), self.hashes, self.bits.len() as u64) {
            self.bits[(bit / 8) as usize] |= 1 << (bit % 8);
        }
    }

    /// False only when no key with this prefix was inserted.
    pub fn may_contain(&self, prefix: &[u8]) -> bool {
        self.may_contain_hash(prefix_hash(prefix))
    }

    /// [`Bloom::may_contain`] for a prefix whose [`prefix_hash`] is `hash`
    /// (hashed once for every filter it is checked against).
    pub fn may_contain_hash(&self, hash: u64) -> bool {
        if self.bits.is_empty() {
            return true;
        }
        probes_of(hash, self.hashes, self.bits.len() as u64)
            .all(|bit| self.bits[(bit / 8) as usize] & (1 << (bit % 8)) != 0)
    }
}

/// Bit positions for the prefix whose [`prefix_hash`] is `first`, all in
/// one 512-bit line: the line from the first hash (multiply-shift onto the
/// line count, no division), each probe's bit in it from the next 9 bits
/// of the second hash.
fn probes_of(first: u64, hashes: u32, bloom_bytes: u64) -> impl Iterator<Item = u64> {
    let second = fmix64(first ^ 0x9e37_79b9_7f4a_7c15);
    let line_bits = BLOOM_LINE_BYTES * 8;
    let line = ((u128::from(first) * u128::from(bloom_bytes / BLOOM_LINE_BYTES)) >> 64) as u64;
    (0..u64::from(hashes)).map(move |probe| line * line_bits + ((second >> (9 * probe)) & (line_bits - 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_prefixes_are_found_and_absent_ones_mostly_not() {
        let mut bloom = Bloom::sized_for(10_000);
        for id in 0u64..10_000 {
            bloom.insert(&id.to_be_bytes());
        }
        assert!((0u64..10_000).all(|id| bloom.may_contain(&id.to_be_bytes())));
        let false_positives = (10_000u64..110_000).filter(|id| bloom.may_contain(&id.to_be_bytes())).count();
        // 10 bits and 7 probes per prefix: about 0.8% expected; 2% would mean a broken hash.
        assert!(false_positives < 2_000, "{false_positives} false positives in 100,000");
    }

    #[test]
    fn a_prefix_hashed_once_gets_the_same_answer() {
        let mut bloom = Bloom::sized_for(1_000);
        for id in (0u64..2_000).step_by(2) {
            bloom.insert(&id.to_be_bytes());
        }
        for id in 0u64..2_000 {
            let prefix = id.to_be_bytes();
            assert_eq!(bloom.may_contain_hash(prefix_hash(&prefix)), bloom.may_contain(&prefix), "{id}");
        }
    }

    #[test]
    fn an_empty_filter_says_maybe() {
        assert!(Bloom::empty().may_contain(b"anything"));
    }
}
