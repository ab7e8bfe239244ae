//! Dense tables in 2 MiB pages.
//!
//! Over a million accounts, every step of a batch touches a table slot
//! (the directory's cell of an account) on a page no recent step touched:
//! with 4 KiB pages that is a TLB miss, whose page walk the slot's
//! prefetch pays like a load (docs/PERFORMANCE.md, 2026-12-07, night).
//! A table that is dense (every slot used sooner or later) loses
//! nothing in 2 MiB pages, so [`HugeSlice`] asks the kernel for them
//! (`madvise(MADV_HUGEPAGE)`: this machine's transparent huge pages are
//! `madvise` only). Sparse memory (the heap at large) stays in 4 KiB pages:
//! huge pages there cost RSS per account (target 5's 1 KiB).
//!
//! Must not: hold sparse or short-lived memory (a huge page is touched
//! whole when it is made, and kept whole). The kernel may refuse huge
//! pages (fragmented memory), which changes nothing but speed.

use std::alloc::Layout;
use std::ops::Deref;
use std::ptr::NonNull;

/// The huge page size asked for (x86-64's 2 MiB).
pub const HUGE_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// `len` values made by `make`, in memory aligned to (and advised as) huge
/// pages. Never grows or shrinks.
pub struct HugeSlice<T> {
    start: NonNull<T>,
    len: usize,
    layout: Layout,
}

// SAFETY: it owns its values like a `Box<[T]>` does.
unsafe impl<T: Send> Send for HugeSlice<T> {}
// SAFETY: shared access hands out `&T` only, like a `Box<[T]>`.
unsafe impl<T: Sync> Sync for HugeSlice<T> {}

impl<T> HugeSlice<T> {
    /// # Panics
    /// On a size that overflows, or when memory runs out (as `Box` does).
    /// Should `make` panic, the values made so far and the memory leak.
    pub fn new(len: usize, mut make: impl FnMut(usize) -> T) -> Self {
        assert!(std::mem::size_of::<T>() > 0 && len > 0, "a huge slice holds values");
        let bytes = std::mem::size_of::<T>().checked_mul(len).expect("a huge slice's size fits");
        let align = HUGE_PAGE_BYTES.max(std::mem::align_of::<T>());
        let layout = Layout::from_size_align(bytes.next_multiple_of(align), align).expect("a valid layout");
        // SAFETY: the layout's size is non-zero.
        let raw = unsafe { std::alloc::alloc(layout) };
        let Some(start) = NonNull::new(raw.cast::<T>()) else {
            std::alloc::handle_alloc_error(layout);
        };
        advise_huge(raw, layout.size());
        for index in 0..len {
            // SAFETY: `index < len` slots of `T` fit the allocation; each
            // is written once before anything reads it.
            unsafe { start.as_ptr().add(index).write(make(index)) };
        }
        Self { start, len, layout }
    }
}

impl<T> Deref for HugeSlice<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialised values from `start`, owned by `self`.
        unsafe { std::slice::from_raw_parts(self.start.as_ptr(), self.len) }
    }
}

impl<T> Drop for HugeSlice<T> {
    fn drop(&mut self) {
        // SAFETY: the values were initialised in `new` and are dropped
        // once, then the memory is freed with the layout it was taken with.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(self.start.as_ptr(), self.len));
            std::alloc::dealloc(self.start.as_ptr().cast(), self.layout);
        }
    }
}

/// Ask for huge pages behind `bytes` at `start` (a hint: on failure, or
/// off Linux, nothing changes).
fn advise_huge(start: *mut u8, bytes: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: the range is memory this process allocated; MADV_HUGEPAGE
    // changes how it is backed, never its contents.
    unsafe {
        libc::madvise(start.cast(), bytes, libc::MADV_HUGEPAGE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, bytes);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[test]
    fn values_are_made_in_order_aligned_and_dropped_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        struct Counted(usize, Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.1.fetch_add(1, Ordering::SeqCst);
            }
        }
        let slice = HugeSlice::new(1000, |index| Counted(index * 3, Arc::clone(&drops)));
        assert_eq!(slice.len(), 1000);
        assert_eq!(slice.as_ptr().addr() % HUGE_PAGE_BYTES, 0, "starts on a huge page");
        assert!(slice.iter().enumerate().all(|(index, value)| value.0 == index * 3));
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(slice);
        assert_eq!(drops.load(Ordering::SeqCst), 1000, "each value dropped once");
    }
}
