use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use gwplugin::{BoxFuture, Error, HostServices, Request, Response};
use http::StatusCode;
use tokio::runtime::Handle;

use crate::scope;
use crate::upstream::SendError;

/// Host services on tokio: the host's timer, runtime, backend client ([`crate::upstream`])
/// and tracing subscriber, lent to plugins.
pub struct TokioHostServices {
    handle: Handle,
    max_level: gwplugin::log::LevelFilter,
}

impl std::fmt::Debug for TokioHostServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokioHostServices")
            .field("max_level", &self.max_level)
            .finish()
    }
}

impl TokioHostServices {
    /// Services on the current tokio runtime. Call from inside it.
    pub fn current() -> Arc<Self> {
        Self::new(Handle::current())
    }

    pub fn new(handle: Handle) -> Arc<Self> {
        let max_level = match tracing::level_filters::LevelFilter::current() {
            f if f >= tracing::level_filters::LevelFilter::TRACE => {
                gwplugin::log::LevelFilter::Trace
            }
            f if f >= tracing::level_filters::LevelFilter::DEBUG => {
                gwplugin::log::LevelFilter::Debug
            }
            f if f >= tracing::level_filters::LevelFilter::INFO => gwplugin::log::LevelFilter::Info,
            f if f >= tracing::level_filters::LevelFilter::WARN => gwplugin::log::LevelFilter::Warn,
            f if f >= tracing::level_filters::LevelFilter::ERROR => {
                gwplugin::log::LevelFilter::Error
            }
            _ => gwplugin::log::LevelFilter::Off,
        };
        Arc::new(TokioHostServices { handle, max_level })
    }
}

/// A task a plugin spawned during a request, counted in [`DROPPED_UNFINISHED`] when it is
/// dropped before it ends: a runtime that shuts down (a gateway's stop) drops the tasks
/// still running, and the operator should hear which plugins lost a request's work. (A
/// task a factory started, a ticker, runs until the stop by design: not counted. Nor is
/// a panic in a task: the plugin's side catches it and the task ends.)
struct SpawnedTask {
    task: BoxFuture<'static, ()>,
    plugin: Option<&'static str>,
    /// Spawned during a request: counted if dropped unfinished.
    counted: bool,
    finished: bool,
}

impl Future for SpawnedTask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let poll = self.task.as_mut().poll(cx);
        if poll.is_ready() {
            self.finished = true;
        }
        poll
    }
}

impl Drop for SpawnedTask {
    fn drop(&mut self) {
        if self.counted && !self.finished {
            let mut dropped = DROPPED_UNFINISHED
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *dropped.entry(self.plugin).or_default() += 1;
        }
    }
}

/// Tasks spawned during a request and dropped before they ended, by the name of the
/// plugin that spawned them (`None`: outside any plugin's scope).
static DROPPED_UNFINISHED: std::sync::Mutex<
    std::collections::BTreeMap<Option<&'static str>, usize>,
> = std::sync::Mutex::new(std::collections::BTreeMap::new());

/// How many of the tasks plugins spawned during requests were dropped before they ended,
/// by plugin name: after a runtime's shutdown, those it cut short.
pub fn dropped_unfinished_tasks() -> Vec<(Option<&'static str>, usize)> {
    let dropped = DROPPED_UNFINISHED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    dropped
        .iter()
        .map(|(name, count)| (*name, *count))
        .collect()
}

impl HostServices for TokioHostServices {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        // On the runtime given at creation, whose timer other threads drive: a plugin
        // that blocks its worker until a sleep ends (a `block_on` in a modifier, or in a
        // `Drop` while a worker stops) would wait for good on the worker's own timer.
        // Entering the handle makes this work from any thread, not just a worker.
        let _guard = self.handle.enter();
        Box::pin(tokio::time::sleep(duration))
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        let plugin = scope::plugin();
        let task = SpawnedTask {
            task,
            plugin,
            counted: scope::request_id() != 0,
            finished: false,
        };
        // The task's log lines name the plugin and the request that spawned it.
        let task = scope::RequestScope::new(scope::request_id(), task);
        // On the runtime of the thread asking (a gateway's worker: its backend pools,
        // which its reaper looks after; its watchdog), else the one given at creation.
        // Not always the latter: a task that blocks there stalled what else runs on it
        // (in gwhost, accepting connections, the signals and the watchdog), and the
        // connections a task's `send` opened went unreaped.
        let runtime = Handle::try_current().unwrap_or_else(|_| self.handle.clone());
        match plugin {
            Some(name) => runtime.spawn(scope::PluginScope::new(name, task)),
            None => runtime.spawn(task),
        };
    }

    fn send(&self, request: Request) -> BoxFuture<'static, Result<Response, Error>> {
        gwplugin::abi::pin_box_with(|| SendToBackend {
            sending: crate::upstream::send(request),
        })
    }

    /// Logs under the target `plugin` (`RUST_LOG=plugin=debug` selects plugins' lines; not
    /// `gwplugin`, which would also select `gwplugin_host`'s own),
    /// with the plugin's name (the library's, outside any plugin call), its library, the
    /// request id (when in a request) and the record's own target.
    fn log(&self, library: &str, level: gwplugin::log::Level, target: &str, message: &str) {
        use gwplugin::log::Level;
        let plugin = scope::plugin().unwrap_or(library);
        let request_id = Some(scope::request_id()).filter(|id| *id != 0);
        match level {
            Level::Error => {
                tracing::error!(target: "plugin", plugin, library, request_id, target, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "plugin", plugin, library, request_id, target, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "plugin", plugin, library, request_id, target, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "plugin", plugin, library, request_id, target, "{message}")
            }
            Level::Trace => {
                tracing::trace!(target: "plugin", plugin, library, request_id, target, "{message}")
            }
        }
    }

    fn max_log_level(&self) -> gwplugin::log::LevelFilter {
        self.max_level
    }
}

pin_project_lite::pin_project! {
    /// The HTTP client lent to plugins ([`crate::upstream::send`]), its failure a 502
    /// (a 500 when the request was at fault: the plugin's).
    /// Not an `async` block awaiting the call: that would hold the call's future twice
    /// (as captured, and as awaited), and this future is boxed, so copied whole, once
    /// per plugin call.
    struct SendToBackend<F> {
        #[pin]
        sending: F,
    }
}

impl<F: Future<Output = Result<Response, SendError>>> Future for SendToBackend<F> {
    type Output = Result<Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().sending.poll(cx).map_err(|e| {
            let status = if e.error.is_the_requests() {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::BAD_GATEWAY
            };
            Error::with_status(status, e.to_string())
        })
    }
}
