//! How long a large Bloom filter takes to build and to ask, per prefix:
//! the work of a merge's filter (every prefix inserted at random lines)
//! and of a new id's lookup (one random line per run). Prints nanoseconds
//! per insert and per lookup for filters of several sizes.
//!
//! usage: cargo run --release -p fundledger-index --example filter_bench [PREFIXES...]
//! (default: 1, 4 and 16 million prefixes at 10 bits each)

use std::time::Instant;

use fundledger_index::bloom::{Bloom, BloomBuilder};

fn main() {
    let counts: Vec<u64> = std::env::args().skip(1).filter_map(|arg| arg.parse().ok()).collect();
    let counts = if counts.is_empty() { vec![1_000_000, 4_000_000, 16_000_000] } else { counts };
    for prefixes in counts {
        let started = Instant::now();
        let mut builder = BloomBuilder::new(Bloom::sized_for(prefixes, 10));
        for n in 0..prefixes {
            builder.insert(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
        }
        let bloom = builder.finish();
        let built = started.elapsed();
        let started = Instant::now();
        let mut admitted = 0u64;
        for n in prefixes..2 * prefixes {
            admitted += u64::from(bloom.may_contain(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes()));
        }
        let asked = started.elapsed();
        println!(
            "{prefixes} prefixes, {} MB: {:.1} ns per insert, {:.1} ns per lookup of an absent prefix ({:.2}% admitted)",
            bloom.bytes().len() / 1_000_000,
            built.as_nanos() as f64 / prefixes as f64,
            asked.as_nanos() as f64 / prefixes as f64,
            100.0 * admitted as f64 / prefixes as f64,
        );
    }
}
