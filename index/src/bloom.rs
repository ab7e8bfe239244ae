//! The Bloom filter over key prefixes (layout and probe rule in
//! [`crate::format`]). Owns the bit array only; it never reads a file.
//!
//! # Folding
//!
//! A prefix's line is `(hash × lines) >> 64`, and its bits within the line
//! come from a second hash that does not depend on `lines`. So for a
//! factor `f` that divides `lines`, the filter of `lines / f` lines built
//! from the same prefixes is exactly the OR of every `f` neighbouring
//! lines: `floor(floor(x) / f) = floor(x / f)` maps line `l` to `l / f`
//! ([`Bloom::fold`]). Folding never loses a prefix; it only raises the
//! false-positive rate, as a filter built that small would have.
//!
//! Two uses: a writer sizes its filter for the prefixes it expects (a merge
//! expects the sum of its inputs'), then folds it down to what it found
//! ([`Bloom::fold_to_fit`]: a prefix in two inputs is counted once); and
//! an open run with a large filter keeps only its fold by 2 or 4 in
//! memory, checking a "maybe" against the lines on disk ([`crate::run`]).

use crate::format::{fmix64, prefix_hash};
use crate::limits::{
    BLOOM_BYTES_MAX, BLOOM_BYTES_MIN, BLOOM_FOLD_GRAIN_LINES, BLOOM_FOLD_MAX, BLOOM_HASHES, BLOOM_LINE_BYTES,
};

#[derive(Debug, Clone)]
pub struct Bloom {
    bits: Vec<u8>,
    hashes: u32,
}

impl Bloom {
    /// A filter for about `prefixes_expected` distinct prefixes at
    /// `bits_per_prefix` bits each ([`crate::RunSpec::bits_per_prefix`]),
    /// clamped to [`BLOOM_BYTES_MIN`] ..= [`BLOOM_BYTES_MAX`]. A large one
    /// gets a line count that is a multiple of [`BLOOM_FOLD_GRAIN_LINES`],
    /// so that it can be folded by every factor up to [`BLOOM_FOLD_MAX`] and
    /// still by 4 after that (at most 6% more lines than asked for); a
    /// smaller one a multiple of [`BLOOM_FOLD_MAX`] lines (folds by 2, 4
    /// and 8).
    pub fn sized_for(prefixes_expected: u64, bits_per_prefix: u64) -> Self {
        let lines = prefixes_expected.saturating_mul(bits_per_prefix).div_ceil(LINE_BITS);
        let grain = if lines >= 16 * BLOOM_FOLD_GRAIN_LINES { BLOOM_FOLD_GRAIN_LINES } else { BLOOM_FOLD_MAX };
        let lines = lines.div_ceil(grain).saturating_mul(grain);
        let bytes = lines.saturating_mul(BLOOM_LINE_BYTES).clamp(BLOOM_BYTES_MIN, BLOOM_BYTES_MAX);
        Bloom { bits: vec![0; bytes as usize], hashes: BLOOM_HASHES }
    }

    /// Lines of 512 bits.
    pub fn lines(&self) -> u64 {
        self.bits.len() as u64 / BLOOM_LINE_BYTES
    }

    /// The same prefixes in `lines / factor` lines (module doc, Folding).
    /// `factor` must divide the line count.
    pub fn fold(&self, factor: u64) -> Bloom {
        assert!(factor >= 1 && self.lines() % factor == 0, "fold of {} lines by {factor}", self.lines());
        let line_bytes = BLOOM_LINE_BYTES as usize;
        let mut bits = vec![0u8; self.bits.len() / factor as usize];
        for (folded, group) in
            bits.chunks_exact_mut(line_bytes).zip(self.bits.chunks_exact(line_bytes * factor as usize))
        {
            for line in group.chunks_exact(line_bytes) {
                for (to, from) in folded.iter_mut().zip(line) {
                    *to |= from;
                }
            }
        }
        Bloom { bits, hashes: self.hashes }
    }

    /// Folds by the largest factor up to [`BLOOM_FOLD_MAX`] that divides
    /// the line count and leaves at least `bits_per_prefix` bits per prefix
    /// for `prefixes` distinct prefixes (and at least one line).
    pub fn fold_to_fit(&mut self, prefixes: u64, bits_per_prefix: u64) {
        let lines = self.lines();
        let needed = prefixes.saturating_mul(bits_per_prefix).div_ceil(LINE_BITS).max(1);
        let factor = (2..=BLOOM_FOLD_MAX).rev().find(|&factor| lines % factor == 0 && lines / factor >= needed);
        if let Some(factor) = factor {
            *self = self.fold(factor);
        }
    }

    /// A filter of exactly `lines` lines (tests of folding).
    #[cfg(test)]
    fn with_lines(lines: u64) -> Self {
        Bloom { bits: vec![0; (lines * BLOOM_LINE_BYTES) as usize], hashes: BLOOM_HASHES }
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
        self.insert_hash(prefix_hash(prefix));
    }

    /// [`Bloom::insert`] of the prefix whose [`prefix_hash`] is `hash`.
    pub fn insert_hash(&mut self, hash: u64) {
        if self.bits.is_empty() {
            return;
        }
        let at = (line_of(hash, self.lines()) * BLOOM_LINE_BYTES) as usize;
        let line = &mut self.bits[at..][..BLOOM_LINE_BYTES as usize];
        for bit in line_bits(hash, self.hashes) {
            line[bit / 8] |= 1 << (bit % 8);
        }
    }

    /// Start loading the line of the prefix whose [`prefix_hash`] is
    /// `hash` (a hint: nothing is read or changed).
    pub fn prefetch_hash(&self, hash: u64) {
        if let Some(byte) = self.bits.get((line_of(hash, self.lines()) * BLOOM_LINE_BYTES) as usize) {
            crate::prefetch::line(byte);
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
        line_admits(self.line(line_of(hash, self.lines())), hash, self.hashes)
    }

    /// Loads the line of `hash` without looking at it, so that a lookup
    /// over many filters sends their cache misses out together and the
    /// checks that follow find the lines in cache
    /// ([`crate::RunSet::get_prefix`]).
    pub fn touch(&self, hash: u64) {
        if !self.bits.is_empty() {
            let at = (line_of(hash, self.lines()) * BLOOM_LINE_BYTES) as usize;
            std::hint::black_box(self.bits[at]);
        }
    }

    /// The bytes of line `line`.
    pub fn line(&self, line: u64) -> &[u8] {
        &self.bits[(line * BLOOM_LINE_BYTES) as usize..][..BLOOM_LINE_BYTES as usize]
    }
}

/// A filter being built from many prefixes, each inserted
/// [`BLOOM_INSERT_AHEAD`] prefixes after its line was asked for: a large
/// filter's lines are cache misses, which a writer waited for one after
/// another (a third of a merge's time, docs/PERFORMANCE.md).
#[derive(Debug, Clone)]
pub struct BloomBuilder {
    bloom: Bloom,
    /// Hashes of the prefixes not inserted yet, oldest first.
    pending: std::collections::VecDeque<u64>,
}

/// How many prefixes a [`BloomBuilder`] holds before it inserts the oldest.
pub const BLOOM_INSERT_AHEAD: usize = 8;

impl BloomBuilder {
    pub fn new(bloom: Bloom) -> Self {
        Self { bloom, pending: std::collections::VecDeque::with_capacity(BLOOM_INSERT_AHEAD + 1) }
    }

    pub fn insert(&mut self, prefix: &[u8]) {
        let hash = prefix_hash(prefix);
        self.bloom.prefetch_hash(hash);
        self.pending.push_back(hash);
        if self.pending.len() > BLOOM_INSERT_AHEAD {
            if let Some(oldest) = self.pending.pop_front() {
                self.bloom.insert_hash(oldest);
            }
        }
    }

    /// The filter with every prefix inserted.
    pub fn finish(mut self) -> Bloom {
        for hash in self.pending.drain(..) {
            self.bloom.insert_hash(hash);
        }
        self.bloom
    }
}

const LINE_BITS: u64 = BLOOM_LINE_BYTES * 8;

/// The line (of `lines`) that holds the bits of the prefix whose
/// [`prefix_hash`] is `hash`: multiply-shift, no division.
pub fn line_of(hash: u64, lines: u64) -> u64 {
    ((u128::from(hash) * u128::from(lines)) >> 64) as u64
}

/// Whether `line` (the 64 bytes of the prefix's line) has every bit of the
/// prefix whose [`prefix_hash`] is `hash`.
pub fn line_admits(line: &[u8], hash: u64, hashes: u32) -> bool {
    debug_assert_eq!(line.len() as u64, BLOOM_LINE_BYTES);
    line_bits(hash, hashes).all(|bit| line[bit / 8] & (1 << (bit % 8)) != 0)
}

/// The bits within its line of the prefix whose [`prefix_hash`] is
/// `hash`: probe `i` takes the next 9 bits of a second hash.
fn line_bits(hash: u64, hashes: u32) -> impl Iterator<Item = usize> {
    let second = fmix64(hash ^ 0x9e37_79b9_7f4a_7c15);
    (0..u64::from(hashes)).map(move |probe| ((second >> (9 * probe)) & (LINE_BITS - 1)) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserting through the builder, ahead or not, makes the same filter
    /// as inserting each prefix at once, whether it holds fewer prefixes
    /// than it looks ahead or many more.
    #[test]
    fn a_builder_makes_the_filter_direct_inserts_make() {
        for count in [0u64, 1, BLOOM_INSERT_AHEAD as u64, BLOOM_INSERT_AHEAD as u64 + 1, 5_000] {
            let mut direct = Bloom::sized_for(count.max(1), 10);
            let mut builder = BloomBuilder::new(Bloom::sized_for(count.max(1), 10));
            for id in 0..count {
                direct.insert(&id.to_be_bytes());
                builder.insert(&id.to_be_bytes());
            }
            let built = builder.finish();
            assert_eq!(built.bytes(), direct.bytes(), "{count} prefixes");
            assert!((0..count).all(|id| built.may_contain(&id.to_be_bytes())), "{count} prefixes");
        }
    }

    #[test]
    fn inserted_prefixes_are_found_and_absent_ones_mostly_not() {
        let mut bloom = Bloom::sized_for(10_000, 10);
        for id in 0u64..10_000 {
            bloom.insert(&id.to_be_bytes());
        }
        assert!((0u64..10_000).all(|id| bloom.may_contain(&id.to_be_bytes())));
        let false_positives = (10_000u64..110_000).filter(|id| bloom.may_contain(&id.to_be_bytes())).count();
        // 10 bits and 7 probes per prefix: about 0.8% expected; 2% would mean a broken hash.
        assert!(false_positives < 2_000, "{false_positives} false positives in 100,000");
    }

    #[test]
    fn sixteen_bits_a_prefix_make_a_tenth_of_the_false_positives_of_ten() {
        let false_positives = |bits| {
            let mut bloom = Bloom::sized_for(10_000, bits);
            for id in 0u64..10_000 {
                bloom.insert(&id.to_be_bytes());
            }
            assert!((0u64..10_000).all(|id| bloom.may_contain(&id.to_be_bytes())));
            (10_000u64..1_010_000).filter(|id| bloom.may_contain(&id.to_be_bytes())).count()
        };
        let (ten, sixteen) = (false_positives(10), false_positives(16));
        // 0.96% and 0.10% expected (lines of 512 bits, 7 probes).
        assert!((6_000..14_000).contains(&ten), "{ten} false positives in 1,000,000 at 10 bits");
        assert!(sixteen < 2_000, "{sixteen} false positives in 1,000,000 at 16 bits");
    }

    #[test]
    fn a_prefix_hashed_once_gets_the_same_answer() {
        let mut bloom = Bloom::sized_for(1_000, 10);
        for id in (0u64..2_000).step_by(2) {
            bloom.insert(&id.to_be_bytes());
        }
        for id in 0u64..2_000 {
            let prefix = id.to_be_bytes();
            assert_eq!(bloom.may_contain_hash(prefix_hash(&prefix)), bloom.may_contain(&prefix), "{id}");
        }
    }

    #[test]
    fn a_large_filter_has_a_line_count_every_fold_divides() {
        for prefixes in [3_000_000u64, 3_150_401, 9_999_999] {
            let lines = Bloom::sized_for(prefixes, 10).lines();
            assert!(lines * 512 >= prefixes * 10 && lines * 512 < prefixes * 10 * 107 / 100);
            assert!((1..=8).all(|factor| lines % factor == 0 && (lines / factor) % 4 == 0), "{lines}");
        }
    }

    #[test]
    fn a_filter_sized_for_twice_its_prefixes_folds_by_two_and_keeps_them() {
        let mut bloom = Bloom::sized_for(2 * 300_000, 10);
        for id in 0u64..300_000 {
            bloom.insert(&id.to_be_bytes());
        }
        let lines = bloom.lines();
        bloom.fold_to_fit(300_000, 10);
        assert_eq!(bloom.lines(), lines / 2);
        assert!((0u64..300_000).all(|id| bloom.may_contain(&id.to_be_bytes())));
        // Folding further would leave fewer than 10 bits per prefix.
        let before = bloom.lines();
        bloom.fold_to_fit(300_000, 10);
        assert_eq!(bloom.lines(), before);
    }

    proptest::proptest! {
        /// Folding is exact: the fold of a filter is the filter the same
        /// prefixes make at the smaller size.
        #[test]
        fn a_fold_is_the_filter_built_small(
            prefixes in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..400),
            small_lines in 1u64..40,
            factor in 1u64..=8,
        ) {
            let mut large = Bloom::with_lines(small_lines * factor);
            let mut small = Bloom::with_lines(small_lines);
            for prefix in &prefixes {
                large.insert(&prefix.to_be_bytes());
                small.insert(&prefix.to_be_bytes());
            }
            let folded = large.fold(factor);
            proptest::prop_assert_eq!(folded.bytes(), small.bytes());
        }
    }

    #[test]
    fn an_empty_filter_says_maybe() {
        assert!(Bloom::empty().may_contain(b"anything"));
    }
}
