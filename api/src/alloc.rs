//! The allocator contract (`host-forwarding-v1`).
//!
//! A host whose `#[global_allocator]` is, say, mimalloc crashes when it frees memory a
//! plugin got from the system allocator, and plugins hand the host owned data all the
//! time (responses, errors, boxed futures). So [`export!`](crate::export) makes
//! [`HostAllocator`] the plugin's global allocator, and the loader, right after `dlopen`
//! and before any other plugin code runs, installs the host's [`AllocVTable`]: from then
//! on every allocation on either side comes from the host's allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// The host's allocation functions, as plain C function pointers.
#[repr(C)]
#[derive(Debug)]
pub struct AllocVTable {
    pub alloc: unsafe extern "C" fn(size: usize, align: usize) -> *mut u8,
    pub alloc_zeroed: unsafe extern "C" fn(size: usize, align: usize) -> *mut u8,
    pub dealloc: unsafe extern "C" fn(ptr: *mut u8, size: usize, align: usize),
    pub realloc:
        unsafe extern "C" fn(ptr: *mut u8, size: usize, align: usize, new_size: usize) -> *mut u8,
}

unsafe extern "C" fn host_alloc(size: usize, align: usize) -> *mut u8 {
    // SAFETY: the plugin passes a layout it got from a valid `Layout`.
    unsafe { std::alloc::alloc(Layout::from_size_align_unchecked(size, align)) }
}
unsafe extern "C" fn host_alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    // SAFETY: as above.
    unsafe { std::alloc::alloc_zeroed(Layout::from_size_align_unchecked(size, align)) }
}
unsafe extern "C" fn host_dealloc(ptr: *mut u8, size: usize, align: usize) {
    // SAFETY: as above; `ptr` came from `host_alloc*` with this layout.
    unsafe { std::alloc::dealloc(ptr, Layout::from_size_align_unchecked(size, align)) }
}
unsafe extern "C" fn host_realloc(
    ptr: *mut u8,
    size: usize,
    align: usize,
    new_size: usize,
) -> *mut u8 {
    // SAFETY: as above.
    unsafe {
        std::alloc::realloc(
            ptr,
            Layout::from_size_align_unchecked(size, align),
            new_size,
        )
    }
}

static HOST_VTABLE: AllocVTable = AllocVTable {
    alloc: host_alloc,
    alloc_zeroed: host_alloc_zeroed,
    dealloc: host_dealloc,
    realloc: host_realloc,
};

/// The vtable a host hands its plugins: it forwards to the *calling binary's* global
/// allocator, whatever that is. Call it from the host.
pub fn host_vtable() -> &'static AllocVTable {
    &HOST_VTABLE
}

static INSTALLED: AtomicPtr<AllocVTable> = AtomicPtr::new(ptr::null_mut());

/// Installs the host's vtable in this plugin. Returns false if another one was already
/// installed (a plugin serves exactly one host).
///
/// # Safety
/// `vtable` must point to a vtable that lives for the rest of the process.
#[doc(hidden)]
pub unsafe fn install(vtable: *const AllocVTable) -> bool {
    match INSTALLED.compare_exchange(
        ptr::null_mut(),
        vtable.cast_mut(),
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => true,
        Err(existing) => ptr::eq(existing, vtable),
    }
}

/// The plugin's global allocator: the host's once installed, the system's before that
/// (and in a plugin's own unit tests, where there is no host).
#[derive(Debug, Default)]
pub struct HostAllocator;

#[inline]
fn installed() -> Option<&'static AllocVTable> {
    // SAFETY: only ever set from a `&'static AllocVTable`-like pointer by `install`.
    unsafe { INSTALLED.load(Ordering::Acquire).as_ref() }
}

// SAFETY: forwards each call, with its layout, to one allocator consistently: the
// vtable is installed before the plugin's first allocation (see module docs).
unsafe impl GlobalAlloc for HostAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match installed() {
            // SAFETY: forwarding the caller's contract.
            Some(v) => unsafe { (v.alloc)(layout.size(), layout.align()) },
            None => unsafe { System.alloc(layout) },
        }
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match installed() {
            // SAFETY: forwarding the caller's contract.
            Some(v) => unsafe { (v.alloc_zeroed)(layout.size(), layout.align()) },
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match installed() {
            // SAFETY: forwarding the caller's contract.
            Some(v) => unsafe { (v.dealloc)(ptr, layout.size(), layout.align()) },
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match installed() {
            // SAFETY: forwarding the caller's contract.
            Some(v) => unsafe { (v.realloc)(ptr, layout.size(), layout.align(), new_size) },
            None => unsafe { System.realloc(ptr, layout, new_size) },
        }
    }
}
