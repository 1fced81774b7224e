//! The process's allocator: mimalloc, asked for an alignment only when a layout needs
//! more than every mimalloc block has.
//!
//! The `mimalloc` crate's allocator calls `mi_malloc_aligned` for every allocation, and
//! mimalloc serves an aligned request above 1 KiB (a boxed request future, a read buffer)
//! on its generic, over-allocating path: ~300 instructions instead of ~60 (callgrind;
//! four such allocations per request with the three benchmark plugins, one without).
//! Like std's `System` allocator with `malloc`, this one calls plain `mi_malloc` when the
//! alignment mimalloc guarantees is enough.

use std::alloc::{GlobalAlloc, Layout};

use libmimalloc_sys as mi;

/// The alignment of every mimalloc block of at least this many bytes
/// (`MI_MAX_ALIGN_SIZE`: on 64-bit targets blocks come in multiples of 16 bytes).
const MIN_ALIGN: usize = 16;

/// mimalloc as a `#[global_allocator]`.
#[derive(Debug, Default, Clone, Copy)]
pub struct MiMalloc;

/// Whether a block from plain `mi_malloc(size)` is aligned enough.
#[inline]
fn plain(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

// SAFETY: every function returns a block of at least the size asked for, aligned as the
// layout says (by `plain`'s rule, or by asking mimalloc for that alignment), or null;
// mimalloc frees and reallocates blocks from either kind of call.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc takes any size and any power-of-two alignment.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { mi::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator; a block moved by `mi_realloc` is one
        // `mi_malloc(new_size)` would return, so `plain`'s rule holds for it.
        unsafe {
            if plain(layout.align(), new_size) {
                mi::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_as_their_layouts_ask() {
        let alloc = MiMalloc;
        for size in [1usize, 7, 8, 16, 24, 40, 1000, 1025, 4096, 70_000] {
            for align in [1usize, 8, 16, 32, 64, 4096] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; each block is freed with its own layout.
                unsafe {
                    let p = alloc.alloc(layout);
                    assert!(
                        !p.is_null() && (p as usize).is_multiple_of(align),
                        "{size} {align}"
                    );
                    p.write_bytes(0xa5, size);
                    let z = alloc.alloc_zeroed(layout);
                    assert!((z as usize).is_multiple_of(align), "{size} {align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    let bigger = alloc.realloc(p, layout, size * 3);
                    assert!(
                        (bigger as usize).is_multiple_of(align),
                        "{size} {align} realloc"
                    );
                    assert!(
                        std::slice::from_raw_parts(bigger, size)
                            .iter()
                            .all(|&b| b == 0xa5)
                    );
                    alloc.dealloc(bigger, Layout::from_size_align(size * 3, align).unwrap());
                    alloc.dealloc(z, layout);
                }
            }
        }
    }
}
