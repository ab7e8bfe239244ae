//! Hints that start loading memory before it is used.
//!
//! Over many accounts or ids, each step of a loop touches memory made or
//! last used long ago on another thread: a cache (and TLB) miss that the
//! loop waits for, one after another. Asking for the memory of an item a
//! few steps ahead lets those misses overlap (docs/PERFORMANCE.md).
//!
//! Must not: read anything the program sees. A prefetch is only a hint,
//! never faults whatever the address, and is a no-op off x86-64.

/// A hint to load the cache line at `at`.
#[inline(always)]
pub fn line(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it reads nothing the program
    // sees and never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// A hint to load every cache line of the `T` at `value`.
#[inline(always)]
pub fn value<T>(value: *const T) {
    let start = value.cast::<u8>();
    let mut offset = 0;
    while offset < std::mem::size_of::<T>() {
        line(start.wrapping_add(offset));
        offset += 64;
    }
}
