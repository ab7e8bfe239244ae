//! A hint that starts loading a cache line before it is used: the filters
//! load the lines of prefixes a few steps ahead (`bloom`), and the server
//! uses this same hint for its own tables (its `prefetch` module) instead
//! of a second copy of the instruction.
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
