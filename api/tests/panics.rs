//! A plugin that panics before its future exists: the adapter turns the panic into the
//! call's error, and frees the box it had allocated for that future.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::task::{Context, Poll, Waker};

use gwplugin::abi::{ErasedHandler, Factory, Handler};
use gwplugin::{Body, BoxFuture, Config, Error, HttpServer, Next, Request, Response};

/// The system allocator, counting the bytes live in this test binary.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only the count is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Panics in `handle` itself, before any future exists.
struct PanicsBeforeItsFuture;

impl HttpServer for PanicsBeforeItsFuture {
    #[allow(
        unreachable_code,
        reason = "the future's type is what the signature needs"
    )]
    fn handle(
        &self,
        _req: Request,
        _next: Next<'_>,
    ) -> impl Future<Output = Result<Response, Error>> + Send {
        panic!("no future today");
        std::future::ready(Ok(Response::new(Body::empty())))
    }
}

/// The handler the plugin wraps; never reached.
struct Unreached;

impl ErasedHandler for Unreached {
    fn call(&self, _req: Request) -> BoxFuture<'_, Result<Response, Error>> {
        Box::pin(std::future::ready(Ok(Response::new(Body::empty()))))
    }
}

/// One call through the adapter, polled once: the error it returns.
fn call_once(handler: &Handler) -> Error {
    let future = pin!(handler.call(Request::new(Body::empty())));
    match future.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Err(e)) => e,
        Poll::Ready(Ok(_)) => panic!("a panicking plugin answered"),
        Poll::Pending => panic!("a panicking plugin is still pending"),
    }
}

#[test]
fn a_panic_before_the_future_is_the_call_s_error_and_leaks_nothing() {
    // The panics are expected; the default hook would print each one.
    std::panic::set_hook(Box::new(|_| {}));
    let entry = gwplugin::abi::http_server("sync-panic", |_: &Config| Ok(PanicsBeforeItsFuture));
    let Factory::HttpServer(factory) = entry.factory else {
        panic!("an http-server entry has an http-server factory");
    };
    let handler = factory
        .create(&Config::Null, Arc::new(Unreached))
        .expect("the factory creates the plugin");

    let err = call_once(&handler);
    // Warmed up (the panic machinery allocates once), the calls must not hold memory.
    let before = LIVE.load(Ordering::Relaxed);
    for _ in 0..1000 {
        drop(call_once(&handler));
    }
    let grown = LIVE.load(Ordering::Relaxed) - before;
    // The default hook again, so that a failed assertion below is printed.
    drop(std::panic::take_hook());

    assert!(err.to_string().contains("no future today"), "{err}");
    assert!(
        grown < 16 * 1024,
        "1000 panicking calls left {grown} bytes allocated"
    );
}
