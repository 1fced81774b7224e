//! Panic containment. All of this code is monomorphised into the plugin, so the
//! `catch_unwind` runs in the plugin's own copy of std, where the unwind started.

use std::cell::RefCell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::{BoxFuture, Error};

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
pub(crate) struct GuardedFuture<T: 'static> {
    inner: Option<BoxFuture<'static, Result<T, Error>>>,
}

impl<T: 'static> GuardedFuture<T> {
    pub(crate) fn new(fut: impl Future<Output = Result<T, Error>> + Send + 'static) -> Self {
        // Boxing happens in plugin code too, so it is covered by the caller's guard.
        GuardedFuture {
            inner: Some(Box::pin(fut)),
        }
    }
}

impl<T: 'static> Future for GuardedFuture<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(fut) = self.inner.as_mut() else {
            return Poll::Ready(Err(Error::new("plugin future polled after completion")));
        };
        match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => {
                if let Some(done) = self.inner.take() {
                    drop_guarded(done);
                }
                Poll::Ready(out)
            }
            Err(payload) => {
                let err = Error::from_panic(payload, take_location());
                if let Some(broken) = self.inner.take() {
                    drop_guarded(broken);
                }
                Poll::Ready(Err(err))
            }
        }
    }
}

impl<T: 'static> Drop for GuardedFuture<T> {
    fn drop(&mut self) {
        if let Some(fut) = self.inner.take() {
            drop_guarded(fut);
        }
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
