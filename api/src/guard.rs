//! Panic containment. All of this code is monomorphised into the plugin, so the
//! `catch_unwind` runs in the plugin's own copy of std, where the unwind started.

use std::cell::RefCell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::Error;

thread_local! {
    // Where the last panic on this thread happened, recorded by the plugin's panic hook.
    static LAST_PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the plugin's panic hook (only in a dlopen'ed plugin: its std is its own)
/// so that a caught panic is reported once, by the host, with its location, instead of
/// being printed to stderr by the plugin.
pub(crate) fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        LAST_PANIC_LOCATION.with(|slot| *slot.borrow_mut() = at);
    }));
}

fn take_location() -> Option<String> {
    LAST_PANIC_LOCATION.with(|slot| slot.borrow_mut().take())
}

/// Runs `f`, turning a panic into an [`Error`].
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(Error::from_panic(payload, take_location())),
    }
}

/// Drops `value`, swallowing a panic from its destructor.
pub(crate) fn drop_guarded<T>(value: T) {
    let _ = guard(move || {
        drop(value);
        Ok(())
    });
}

/// A future whose every poll, and its drop, is guarded.
///
/// The future is stored inline (callers box the whole `GuardedFuture` once), pinned in
/// place and dropped in place, under a guard, as soon as it completes.
pub(crate) struct GuardedFuture<F> {
    inner: ManuallyDrop<F>,
    /// Whether `inner` was dropped (or its drop was attempted and panicked).
    dropped: bool,
}

impl<F> GuardedFuture<F> {
    pub(crate) fn new(fut: F) -> Self {
        GuardedFuture {
            inner: ManuallyDrop::new(fut),
            dropped: false,
        }
    }

    /// Drops the future in place, once, swallowing a panic from its destructor.
    fn drop_inner(self: Pin<&mut Self>) {
        // SAFETY: `inner` is dropped in place and never touched again (`dropped`), so
        // it is neither moved nor used after its drop.
        let this = unsafe { self.get_unchecked_mut() };
        if !this.dropped {
            this.dropped = true;
            let inner = &mut this.inner;
            let _ = guard(move || {
                // SAFETY: see above; `dropped` was set first, so a panicking destructor
                // is not run twice.
                unsafe { ManuallyDrop::drop(inner) };
                Ok(())
            });
        }
    }
}

impl<T, F> Future for GuardedFuture<F>
where
    F: Future<Output = Result<T, Error>>,
{
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.dropped {
            return Poll::Ready(Err(Error::new("plugin future polled after completion")));
        }
        // SAFETY: `inner` is structurally pinned: it is never moved, only dropped in
        // place by `drop_inner`.
        let fut = unsafe { self.as_mut().map_unchecked_mut(|s| &mut *s.inner) };
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => {
                self.drop_inner();
                Poll::Ready(out)
            }
            Err(payload) => {
                let err = Error::from_panic(payload, take_location());
                self.drop_inner();
                Poll::Ready(Err(err))
            }
        }
    }
}

impl<F> Drop for GuardedFuture<F> {
    fn drop(&mut self) {
        // SAFETY: `self` is being dropped, so it is not moved again: pinning it here
        // (it may have been pinned before) is sound.
        unsafe { Pin::new_unchecked(self) }.drop_inner();
    }
}

/// Owns a plugin object and drops it under a guard: the host drops plugin objects, and
/// a panicking destructor must not unwind into it.
pub(crate) struct Contained<T>(ManuallyDrop<T>);

impl<T> Contained<T> {
    pub(crate) fn new(value: T) -> Self {
        Contained(ManuallyDrop::new(value))
    }
}

impl<T> Deref for Contained<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Drop for Contained<T> {
    fn drop(&mut self) {
        // SAFETY: the value is dropped exactly once, here, and never used again.
        let value = unsafe { ManuallyDrop::take(&mut self.0) };
        drop_guarded(value);
    }
}
