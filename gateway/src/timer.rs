//! A coarse timer for the timeouts that every request arms and almost never hits: hyper's
//! header read timeout and the backend timeout.
//!
//! Two tokio timers armed and cancelled per request cost ~3.1k of gwhost's 33k
//! instructions per proxied request (callgrind); on this wheel they cost ~2.2k. Each
//! thread has a hashed timing wheel: arming is a push into a bucket, cancelling a
//! swap-remove, and one ticker task per thread, on a single tokio sleep, fires what is
//! due. A timeout fires at most [`TICK`] plus the ticker's scheduling delay late, never
//! early.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The wheel's resolution.
pub const TICK: Duration = Duration::from_millis(10);
/// Buckets in the wheel: deadlines further than `BUCKETS * TICK` (41 s) away go round it
/// more than once.
const BUCKETS: usize = 4096;

thread_local! {
    static WHEEL: std::cell::RefCell<Option<Arc<Wheel>>> = const { std::cell::RefCell::new(None) };
}

/// A future that completes at its deadline (rounded up to the wheel's next tick).
#[derive(Debug)]
pub struct Sleep {
    wheel: Arc<Wheel>,
    /// This sleep's entry in the wheel, freed on drop.
    key: u32,
}

/// [`Sleep`] until `deadline`, on this thread's wheel. Panics outside a tokio runtime,
/// as `tokio::time::sleep` does.
pub fn sleep_until(deadline: Instant) -> Sleep {
    let wheel = WHEEL.with_borrow_mut(|wheel| wheel.get_or_insert_with(Wheel::new).clone());
    let key = wheel.insert(deadline);
    Sleep { wheel, key }
}

/// Runs `future` for at most `duration`: `Err(Elapsed)` if the time ran out first.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep_until(Instant::now() + duration),
    }
}

pin_project_lite::pin_project! {
    /// The future [`timeout`] returns.
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.future.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        Pin::new(this.sleep).poll(cx).map(|()| Err(Elapsed))
    }
}

/// The time given to [`timeout`] ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.wheel.lock();
        let entry = &mut inner.entries[self.key as usize];
        if entry.fired {
            return Poll::Ready(());
        }
        match &mut entry.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.wheel.lock().remove(self.key);
    }
}

/// hyper's timer (for the server's header read timeout) on this thread's wheel.
#[derive(Debug, Clone, Copy, Default)]
pub struct WheelTimer;

impl hyper::rt::Timer for WheelTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(sleep_until(Instant::now() + duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(sleep_until(deadline))
    }
}

impl hyper::rt::Sleep for Sleep {}

#[derive(Debug)]
struct Wheel {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Tick 0.
    origin: Instant,
    /// Every tick up to this one has been fired.
    fired_up_to: u64,
    /// Entries by key; a key is owned by one [`Sleep`] until it drops.
    entries: Vec<Entry>,
    free: Vec<u32>,
    /// Keys of the entries not yet fired, by `deadline_tick % BUCKETS`.
    buckets: Vec<Vec<u32>>,
    /// Entries in `buckets`.
    pending: usize,
    /// The tick the ticker will next look at (`u64::MAX`: none pending), and its waker:
    /// an entry due earlier wakes it.
    ticker_at: u64,
    ticker_waker: Option<Waker>,
    /// Whether a ticker task is running for this wheel (it is gone when its runtime is).
    ticker_alive: bool,
}

#[derive(Debug, Default)]
struct Entry {
    deadline_tick: u64,
    /// Index in its bucket while pending.
    position: u32,
    fired: bool,
    waker: Option<Waker>,
}

impl Wheel {
    fn new() -> Arc<Wheel> {
        Arc::new(Wheel {
            inner: Mutex::new(Inner {
                origin: Instant::now(),
                fired_up_to: 0,
                entries: Vec::new(),
                free: Vec::new(),
                buckets: vec![Vec::new(); BUCKETS],
                pending: 0,
                ticker_at: u64::MAX,
                ticker_waker: None,
                ticker_alive: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the wheel consistent (no step of ours
        // panics halfway): keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(self: &Arc<Self>, deadline: Instant) -> u32 {
        let mut inner = self.lock();
        if !inner.ticker_alive {
            inner.ticker_alive = true;
            tokio::spawn(ticker(Arc::downgrade(self)));
        }
        let tick = inner.tick_of(deadline).max(inner.fired_up_to + 1);
        let bucket = (tick % BUCKETS as u64) as usize;
        let position = inner.buckets[bucket].len() as u32;
        let entry = Entry {
            deadline_tick: tick,
            position,
            fired: false,
            waker: None,
        };
        let key = match inner.free.pop() {
            Some(key) => {
                inner.entries[key as usize] = entry;
                key
            }
            None => {
                inner.entries.push(entry);
                (inner.entries.len() - 1) as u32
            }
        };
        inner.buckets[bucket].push(key);
        inner.pending += 1;
        if tick < inner.ticker_at {
            inner.ticker_at = tick;
            if let Some(ticker) = inner.ticker_waker.take() {
                ticker.wake();
            }
        }
        key
    }
}

impl Inner {
    /// The first tick at or after `at`.
    fn tick_of(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin).as_nanos();
        since.div_ceil(TICK.as_nanos()) as u64
    }

    /// The last tick at or before `at`.
    fn ticks_by(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin).as_nanos();
        (since / TICK.as_nanos()) as u64
    }

    fn instant_of(&self, tick: u64) -> Instant {
        self.origin + Duration::from_nanos(tick.saturating_mul(TICK.as_nanos() as u64))
    }

    fn remove(&mut self, key: u32) {
        let entry = std::mem::take(&mut self.entries[key as usize]);
        if !entry.fired {
            let bucket = &mut self.buckets[(entry.deadline_tick % BUCKETS as u64) as usize];
            let position = entry.position as usize;
            bucket.swap_remove(position);
            if let Some(&moved) = bucket.get(position) {
                self.entries[moved as usize].position = position as u32;
            }
            self.pending -= 1;
        }
        self.free.push(key);
    }

    /// Fires every entry due by `now`; returns their wakers (woken outside the lock).
    fn fire_due(&mut self, now: Instant, wakers: &mut Vec<Waker>) {
        let now_tick = self.ticks_by(now);
        // Past one turn every bucket is due for a look, once.
        let first = (self.fired_up_to + 1).max(now_tick.saturating_sub(BUCKETS as u64 - 1));
        for tick in first..=now_tick {
            let bucket = (tick % BUCKETS as u64) as usize;
            let mut i = 0;
            while i < self.buckets[bucket].len() {
                let key = self.buckets[bucket][i] as usize;
                if self.entries[key].deadline_tick > now_tick {
                    // Due on a later turn of the wheel.
                    i += 1;
                    continue;
                }
                self.buckets[bucket].swap_remove(i);
                if let Some(&moved) = self.buckets[bucket].get(i) {
                    self.entries[moved as usize].position = i as u32;
                }
                self.pending -= 1;
                let entry = &mut self.entries[key];
                entry.fired = true;
                wakers.extend(entry.waker.take());
            }
        }
        self.fired_up_to = self.fired_up_to.max(now_tick);
    }

    /// The next tick with a pending entry, at most a turn of the wheel away.
    fn next_due(&self) -> u64 {
        let start = self.fired_up_to + 1;
        (start..start + BUCKETS as u64)
            .find(|t| !self.buckets[(t % BUCKETS as u64) as usize].is_empty())
            .unwrap_or(start + BUCKETS as u64)
    }
}

/// Fires the wheel's entries as they fall due, sleeping on the runtime's own timer until
/// the next one (woken early when an earlier one is armed). Ends when the wheel is dropped.
async fn ticker(wheel: std::sync::Weak<Wheel>) {
    // Marks the wheel tickerless if the runtime drops this task, so the next insert
    // starts a new one.
    struct Alive(std::sync::Weak<Wheel>);
    impl Drop for Alive {
        fn drop(&mut self) {
            if let Some(wheel) = self.0.upgrade() {
                let mut inner = wheel.lock();
                inner.ticker_alive = false;
                inner.ticker_at = u64::MAX;
                inner.ticker_waker = None;
            }
        }
    }
    let _alive = Alive(wheel.clone());
    let mut wakers = Vec::new();
    loop {
        let (at_tick, at) = {
            let Some(wheel) = wheel.upgrade() else { return };
            let mut inner = wheel.lock();
            inner.fire_due(Instant::now(), &mut wakers);
            let at_tick = if inner.pending > 0 {
                inner.next_due()
            } else {
                u64::MAX
            };
            inner.ticker_at = at_tick;
            (
                at_tick,
                (at_tick != u64::MAX).then(|| inner.instant_of(at_tick)),
            )
        };
        for waker in wakers.drain(..) {
            waker.wake();
        }
        let mut sleep = at.map(|at| Box::pin(tokio::time::sleep_until(at.into())));
        std::future::poll_fn(|cx| {
            if let Some(sleep) = &mut sleep
                && sleep.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(());
            }
            let Some(wheel) = wheel.upgrade() else {
                return Poll::Ready(());
            };
            let mut inner = wheel.lock();
            if inner.ticker_at != at_tick {
                // An entry due earlier was armed.
                return Poll::Ready(());
            }
            inner.ticker_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn fires_at_the_deadline_never_early() {
        runtime().block_on(async {
            for ms in [0u64, 1, 15, 120] {
                let start = Instant::now();
                sleep_until(start + Duration::from_millis(ms)).await;
                let took = start.elapsed();
                assert!(
                    took >= Duration::from_millis(ms),
                    "{ms} ms fired after {took:?}"
                );
                assert!(
                    took < Duration::from_millis(ms) + TICK * 10,
                    "{ms} ms fired after {took:?}"
                );
            }
        });
    }

    #[test]
    fn timeout_returns_the_output_or_elapsed() {
        runtime().block_on(async {
            assert_eq!(timeout(Duration::from_secs(5), async { 7 }).await, Ok(7));
            let slow = tokio::time::sleep(Duration::from_secs(5));
            let start = Instant::now();
            assert_eq!(timeout(Duration::from_millis(50), slow).await, Err(Elapsed));
            assert!(start.elapsed() < Duration::from_secs(1));
        });
    }

    #[test]
    fn cancelled_sleeps_leave_the_others_in_order() {
        runtime().block_on(async {
            let start = Instant::now();
            // Many sleeps sharing buckets, most dropped before they fire, some past a
            // turn of the wheel.
            let mut kept = Vec::new();
            for i in 0..2000u64 {
                let sleep = sleep_until(start + Duration::from_millis(20 + i % 7 * 10));
                if i % 3 == 0 {
                    kept.push((20 + i % 7 * 10, sleep));
                }
            }
            let far = sleep_until(start + TICK * (BUCKETS as u32 + 3));
            for (ms, sleep) in kept {
                sleep.await;
                assert!(start.elapsed() >= Duration::from_millis(ms));
            }
            // The far one shares a bucket with a near tick but must not fire with it.
            let mut far = std::pin::pin!(far);
            let polled = std::future::poll_fn(|cx| Poll::Ready(far.as_mut().poll(cx))).await;
            assert!(polled.is_pending());
            let inner = WHEEL.with_borrow(|w| w.clone()).unwrap();
            assert_eq!(inner.lock().pending, 1);
        });
    }

    #[test]
    fn an_earlier_deadline_wakes_a_sleeping_ticker() {
        runtime().block_on(async {
            let start = Instant::now();
            let _late = sleep_until(start + Duration::from_secs(30));
            // The ticker is now asleep until the 30 s one.
            tokio::time::sleep(Duration::from_millis(30)).await;
            timeout(Duration::from_millis(20), std::future::pending::<()>())
                .await
                .unwrap_err();
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{:?}",
                start.elapsed()
            );
        });
    }

    #[test]
    fn a_new_runtime_on_the_same_thread_gets_a_new_ticker() {
        for _ in 0..2 {
            runtime().block_on(async {
                let start = Instant::now();
                timeout(Duration::from_millis(30), std::future::pending::<()>())
                    .await
                    .unwrap_err();
                assert!(start.elapsed() >= Duration::from_millis(30));
            });
        }
    }
}
