//! The allocator's settings: the binary's global allocator is mimalloc
//! (`src/main.rs`); this sets its options once, at start, before any
//! other thread runs (mimalloc's option calls are not thread-safe). Owns
//! nothing else, and must not be called once the server has started.

use std::os::raw::{c_int, c_long};

use crate::limits::ALLOCATOR_PURGE_DELAY_MS;

/// `mi_option_purge_delay` in the mimalloc this build links
/// (libmimalloc-sys 0.1.49, mimalloc v3, pinned by Cargo.lock): the
/// crate does not name it. A test checks that the option at this index
/// has purge_delay's default, so an upgrade that renumbers the options
/// fails there, not silently.
const PURGE_DELAY_OPTION: c_int = 15;

/// The environment variable through which mimalloc takes the option; set,
/// it wins over [`ALLOCATOR_PURGE_DELAY_MS`] (to measure against the
/// default, say).
pub const PURGE_DELAY_ENV: &str = "MIMALLOC_PURGE_DELAY";

/// Sets the purge delay to [`ALLOCATOR_PURGE_DELAY_MS`] unless the
/// environment sets it. Call first thing in `main`.
pub fn configure() {
    if std::env::var_os(PURGE_DELAY_ENV).is_none() {
        // SAFETY: an option write, made before any other thread exists
        // (mimalloc's option calls are not thread-safe); the index is
        // mimalloc's purge_delay (see PURGE_DELAY_OPTION).
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY_OPTION, ALLOCATOR_PURGE_DELAY_MS as c_long) };
    }
}

/// The purge delay in effect, in milliseconds.
pub fn purge_delay_ms() -> c_long {
    // SAFETY: a read of an option (the index as in `configure`).
    unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY_OPTION) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index names purge_delay in the linked mimalloc: its documented
    /// default, 1,000 ms in v3 (unless this test's environment sets it).
    #[test]
    fn the_option_index_is_purge_delay() {
        if std::env::var_os(PURGE_DELAY_ENV).is_none() {
            assert_eq!(purge_delay_ms(), 1_000);
        }
    }
}
