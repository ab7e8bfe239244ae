//! Hints that start loading memory before it is used.
//!
//! Over many accounts or ids, each step of a loop touches memory made or
//! last used long ago on another thread: a cache (and TLB) miss that the
//! loop waits for, one after another. Asking for the memory of an item a
//! few steps ahead lets those misses overlap (docs/PERFORMANCE.md).
//!
//! Must not: read anything the program sees. A prefetch is only a hint,
//! never faults whatever the address, and is a no-op off x86-64.

/// A hint to load the cache line at `at` (the index crate's, which its
/// filters use: one copy of the instruction).
pub use fundledger_index::prefetch::line;

/// The cache line size this assumes (x86-64's).
const LINE_BYTES: usize = 64;

/// A hint to load every cache line of the `T` at `value`, from the line it
/// starts in to the one it ends in.
#[inline(always)]
pub fn value<T>(value: *const T) {
    for_each_line(value, line);
}

/// Calls `visit` with the start of each cache line the `T` at `value`
/// touches, first to last (one line for a zero-sized `T`).
#[inline(always)]
fn for_each_line<T>(value: *const T, mut visit: impl FnMut(*const u8)) {
    let start = value.cast::<u8>();
    let end = std::mem::size_of::<T>().max(1) as isize;
    let mut offset = -((start.addr() % LINE_BYTES) as isize);
    while offset < end {
        visit(start.wrapping_offset(offset));
        offset += LINE_BYTES as isize;
    }
}

#[cfg(test)]
mod tests {
    use super::{for_each_line, LINE_BYTES};

    /// The lines (as offsets from a line-aligned base) that a `T` placed
    /// `at` bytes past the base touches.
    fn lines_of<T>(at: usize) -> Vec<usize> {
        #[repr(align(64))]
        struct Aligned([u8; 512]);
        let base = Aligned([0; 512]);
        let start = base.0.as_ptr();
        assert_eq!(start.addr() % LINE_BYTES, 0);
        let mut lines = Vec::new();
        for_each_line(start.wrapping_add(at).cast::<T>(), |line| lines.push(line.addr() - start.addr()));
        lines
    }

    #[test]
    fn every_line_a_value_touches_is_loaded_and_no_other() {
        assert_eq!(lines_of::<[u8; 64]>(0), [0]);
        assert_eq!(lines_of::<[u8; 65]>(0), [0, 64]);
        // Starting late in a line: its last bytes are in the next one.
        assert_eq!(lines_of::<[u8; 16]>(56), [0, 64]);
        assert_eq!(lines_of::<[u8; 8]>(56), [0]);
        assert_eq!(lines_of::<[u8; 130]>(60), [0, 64, 128]);
        assert_eq!(lines_of::<()>(70), [64]);
    }

    /// Hints are harmless on any address, a dangling or null one included.
    #[test]
    fn a_hint_at_any_address_reads_nothing() {
        let values = [7u64; 40];
        for value in &values {
            super::value(value);
        }
        super::value(&values);
        super::value(std::ptr::null::<[u8; 300]>());
        super::line(usize::MAX as *const u8);
        assert_eq!(values, [7u64; 40]);
    }
}
