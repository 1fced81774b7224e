//! What a thread is running now: the request (its id) and the plugin (its name), for log
//! lines written deep inside plugin calls (a plugin's `log` records reach the host through
//! [`HostServices::log`](gwplugin::HostServices::log)) without threading either through
//! the plugin ABI. A host sets them around each poll ([`RequestScope`], [`PluginScope`])
//! and each synchronous call ([`in_plugin`]).
//!
//! The thread-locals live in the host's executable, where reading one is a plain load
//! (a plugin's own would go through `__tls_get_addr` on every poll).

use std::cell::Cell;
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    static REQUEST_ID: Cell<u64> = const { Cell::new(0) };
    static PLUGIN: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// The id of the request being run on this thread (0 outside a request).
pub fn request_id() -> u64 {
    REQUEST_ID.with(Cell::get)
}

/// The name of the plugin being run on this thread, if any.
pub fn plugin() -> Option<&'static str> {
    PLUGIN.with(Cell::get)
}

/// Sets a thread-local for the life of the guard, and puts the previous value back
/// (also when the call unwinds).
struct Restore<T: Copy + 'static> {
    key: &'static std::thread::LocalKey<Cell<T>>,
    previous: T,
}

impl<T: Copy + 'static> Restore<T> {
    fn set(key: &'static std::thread::LocalKey<Cell<T>>, value: T) -> Self {
        Restore {
            key,
            previous: key.with(|cell| cell.replace(value)),
        }
    }
}

impl<T: Copy + 'static> Drop for Restore<T> {
    fn drop(&mut self) {
        let previous = self.previous;
        self.key.with(|cell| cell.set(previous));
    }
}

/// Runs `f` as part of request `id` (for code that runs outside the request's future,
/// such as a response body hyper polls after the head is out).
pub fn in_request<R>(id: u64, f: impl FnOnce() -> R) -> R {
    let _restore = Restore::set(&REQUEST_ID, id);
    f()
}

/// Runs `f` as plugin `name` (a modifier call, a factory).
pub fn in_plugin<R>(name: &'static str, f: impl FnOnce() -> R) -> R {
    let _restore = Restore::set(&PLUGIN, Some(name));
    f()
}

pin_project_lite::pin_project! {
    /// `inner`, each poll run as request `id`.
    ///
    /// What `tokio::task_local!`'s `scope` does, without its cost: that future passes the
    /// output back through three `Option`/`Result` layers, a copy at each (~170
    /// instructions per request, callgrind).
    pub struct RequestScope<F> {
        id: u64,
        #[pin]
        inner: F,
    }
}

impl<F> RequestScope<F> {
    pub fn new(id: u64, inner: F) -> Self {
        RequestScope { id, inner }
    }
}

impl<F: Future> Future for RequestScope<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _restore = Restore::set(&REQUEST_ID, *this.id);
        this.inner.poll(cx)
    }
}

pin_project_lite::pin_project! {
    /// `inner` (a plugin's future), each poll run as plugin `name`.
    pub struct PluginScope<F> {
        name: &'static str,
        #[pin]
        inner: F,
    }
}

impl<F> PluginScope<F> {
    pub fn new(name: &'static str, inner: F) -> Self {
        PluginScope { name, inner }
    }
}

impl<F: Future> Future for PluginScope<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _restore = Restore::set(&PLUGIN, Some(*this.name));
        this.inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_and_restore() {
        assert_eq!((request_id(), plugin()), (0, None));
        let seen = in_plugin("outer", || {
            let inner = in_plugin("inner", plugin);
            (inner, plugin())
        });
        assert_eq!(seen, (Some("inner"), Some("outer")));
        assert_eq!(plugin(), None);
        let unwound = std::panic::catch_unwind(|| in_plugin("panics", || panic!("on purpose")));
        assert!(unwound.is_err());
        assert_eq!(plugin(), None, "restored on unwind");
    }
}
