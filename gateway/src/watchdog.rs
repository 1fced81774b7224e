//! Noticing a worker thread that something blocks. A worker runs its connections'
//! requests start to finish on one thread: a plugin that blocks that thread (a blocking
//! call, `std::thread::sleep`, a long computation) holds every request on it, and nothing
//! else would say so. Each worker's event loop beats every 100 ms; the watchdog, on the
//! accept loop's runtime, warns once a beat is a second late and says when the worker
//! runs again, and the accept loop hands new connections to the workers that beat.
//! Nothing of it is on the request path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BEAT: Duration = Duration::from_millis(100);
/// How late a beat may be before the watchdog speaks.
const LATE_MS: u64 = 1000;
/// How late a beat may be before new connections go to other workers: long enough that
/// a busy worker, or one the kernel has not run for a while, keeps its turn.
const RUNNING_MS: u64 = 500;
/// A worker that has not beaten yet, or has stopped.
const NOT_RUNNING: u64 = u64::MAX;

/// When each worker's event loop last ran its heartbeat, in milliseconds since `epoch`.
#[derive(Debug)]
pub(crate) struct Heartbeats {
    epoch: Instant,
    last: Vec<AtomicU64>,
}

impl Heartbeats {
    pub(crate) fn new(workers: usize) -> Arc<Self> {
        Arc::new(Heartbeats {
            epoch: Instant::now(),
            last: (0..workers).map(|_| AtomicU64::new(NOT_RUNNING)).collect(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// Worker `index`'s heartbeat, for as long as its runtime runs: spawn it there.
    pub(crate) async fn beat(self: Arc<Self>, index: usize) {
        loop {
            self.last[index].store(self.now_ms(), Ordering::Relaxed);
            tokio::time::sleep(BEAT).await;
        }
    }

    /// Whether worker `index`'s event loop has run lately: one that something blocks, or
    /// that has stopped, would leave a new connection waiting.
    pub(crate) fn is_running(&self, index: usize) -> bool {
        let last = self.last[index].load(Ordering::Relaxed);
        last != NOT_RUNNING && self.now_ms().saturating_sub(last) < RUNNING_MS
    }

    /// Worker `index` has stopped (after its runtime, and so its heartbeat, ended).
    pub(crate) fn stopped(&self, index: usize) {
        self.last[index].store(NOT_RUNNING, Ordering::Relaxed);
    }

    /// Watches the beats, for as long as it is polled: spawn it on another runtime than
    /// the workers'.
    pub(crate) async fn watch(self: Arc<Self>) {
        // The last beat before each stall being reported.
        let mut stalled: Vec<Option<u64>> = vec![None; self.last.len()];
        let others = if self.last.len() > 1 {
            "; new connections go to the other workers meanwhile"
        } else {
            ""
        };
        let mut tick = tokio::time::interval(BEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let now = self.now_ms();
            for (index, last) in self.last.iter().enumerate() {
                let last = last.load(Ordering::Relaxed);
                if last == NOT_RUNNING {
                    stalled[index] = None;
                    continue;
                }
                match stalled[index] {
                    None if now.saturating_sub(last) >= LATE_MS => {
                        tracing::warn!(
                            worker = index,
                            "worker thread {index} has not got back to its event loop for {} ms: \
                             something blocks it (a plugin's blocking call or sleep, a long \
                             computation; or the whole process was paused), and the requests \
                             it serves wait{others}",
                            now.saturating_sub(last)
                        );
                        stalled[index] = Some(last);
                    }
                    Some(before) if last != before => {
                        tracing::warn!(
                            worker = index,
                            "worker thread {index} runs again, after about {} ms",
                            last.saturating_sub(before)
                        );
                        stalled[index] = None;
                    }
                    _ => {}
                }
            }
        }
    }
}
