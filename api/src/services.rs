//! Host services: what a plugin must get from the host rather than from its own copy
//! of a crate (its tokio has no reactor; its `log` has no logger).

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::guard::GuardedFuture;
use crate::{BoxFuture, Error, Request, Response};

/// What a host provides to its plugins. Implemented by the host (`gwplugin-host` has a
/// tokio + hyper implementation); plugins use the free functions [`sleep`], [`spawn`],
/// [`send`] and the `log` crate.
pub trait HostServices: Send + Sync + 'static {
    /// A future that completes after `duration`, driven by the host's timer.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
    /// Runs `task` on the host's runtime.
    fn spawn(&self, task: BoxFuture<'static, ()>);
    /// Sends a request to a backend with the host's HTTP client.
    fn send(&self, request: Request) -> BoxFuture<'static, Result<Response, Error>>;
    /// Writes one log line to the host's log, from the plugin library `library` (its crate
    /// name); the host knows which of the library's plugins it is running.
    fn log(&self, library: &str, level: log::Level, target: &str, message: &str);
    /// The most verbose level the host logs for plugins.
    fn max_log_level(&self) -> log::LevelFilter;
}

// The plugin's own copy of this static: set once, by the loader, at registration.
static HOST: OnceLock<Arc<dyn HostServices>> = OnceLock::new();

/// Installs the host services for this copy of `gwplugin`. The loader does this for a
/// loaded plugin; a host that links a plugin statically, or a test, may call it itself.
/// Only the first call in a process takes effect: later ones return false and leave the
/// first services in place, so one fake host serves every test of a test binary.
pub fn install_host_services(services: Arc<dyn HostServices>) -> bool {
    HOST.set(services).is_ok()
}

fn host() -> &'static dyn HostServices {
    match HOST.get() {
        Some(h) => h.as_ref(),
        None => panic!(
            "gwplugin host services are not installed: this code is not running inside a \
             gwplugin host (in a test, call `gwplugin::abi::install_host_services` first)"
        ),
    }
}

/// Sleeps on the host's timer. (`tokio::time::sleep` panics in a plugin: its tokio has
/// no reactor.)
pub fn sleep(duration: Duration) -> impl Future<Output = ()> + Send + 'static {
    host().sleep(duration)
}

/// Spawns a task on the host's runtime. A panic in the task is caught and logged.
pub fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    let guarded = GuardedFuture::new(async move {
        task.await;
        Ok(())
    });
    host().spawn(Box::pin(async move {
        if let Err(e) = guarded.await {
            log::error!("spawned task failed: {e}");
        }
    }));
}

/// Sends a request to a backend with the host's HTTP client. Its URI is absolute,
/// `http://` or `https://` (gwhost: over TLS, checked against the system's CAs).
///
/// No timeout of its own: to a backend that hangs it waits until the backend answers or
/// closes. (A backend's `timeout` in gwhost's config bounds only an http-client plugin's
/// whole call.) To bound it, poll it together with a [`sleep`] and drop it when the sleep
/// ends first.
pub fn send(request: Request) -> impl Future<Output = Result<Response, Error>> + Send + 'static {
    host().send(request)
}

/// Forwards the plugin's `log` records to the host.
pub(crate) struct HostLogger {
    pub(crate) plugin: &'static str,
}

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let message = record.args().to_string();
            host().log(self.plugin, record.level(), record.target(), &message);
        }
    }

    fn flush(&self) {}
}
