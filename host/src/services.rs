use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use gwplugin::{Body, BoxFuture, Error, HostServices, Request, Response};
use http::uri::{Authority, Scheme};
use http::{HeaderValue, StatusCode, Uri, header};
use hyper::body::Body as _;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::runtime::Handle;

/// Host services on tokio and hyper: the host's timer, runtime, HTTP client and
/// tracing subscriber, lent to plugins.
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

impl HostServices for TokioHostServices {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        // Entering the handle makes this work from any thread, not just a worker.
        let _guard = self.handle.enter();
        Box::pin(tokio::time::sleep(duration))
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        self.handle.spawn(task);
    }

    fn send(&self, request: Request) -> BoxFuture<'static, Result<Response, Error>> {
        Box::pin(send(request))
    }

    fn log(&self, plugin: &str, level: gwplugin::log::Level, target: &str, message: &str) {
        use gwplugin::log::Level;
        match level {
            Level::Error => tracing::error!(plugin, target = target, "{message}"),
            Level::Warn => tracing::warn!(plugin, target = target, "{message}"),
            Level::Info => tracing::info!(plugin, target = target, "{message}"),
            Level::Debug => tracing::debug!(plugin, target = target, "{message}"),
            Level::Trace => tracing::trace!(plugin, target = target, "{message}"),
        }
    }

    fn max_log_level(&self) -> gwplugin::log::LevelFilter {
        self.max_level
    }
}

// ---- the HTTP client lent to plugins ------------------------------------------------
//
// HTTP/1.1 over plain TCP, keep-alive connections pooled per thread and per backend
// `scheme://authority`. Per thread because a connection's task runs on the thread (the
// runtime) that opened it: sharing it across threads, as hyper-util's pool does, costs
// two cross-thread wake-ups per request. No lock, no hashing, no task per request to
// put a connection back: the response body does that when it ends.

/// How long an idle connection is kept (hyper-util's default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per backend and thread.
const MAX_IDLE: usize = 512;
/// Backends remembered per thread; past this the least recently added is forgotten.
const MAX_BACKENDS: usize = 128;

type Sender = http1::SendRequest<Body>;

struct Pool {
    scheme: Scheme,
    authority: Authority,
    /// The `host` header for this backend (no port when it is 80).
    host: Option<HeaderValue>,
    idle: Vec<(Sender, Instant)>,
}

impl Pool {
    /// Exact spelling: a differently cased authority just gets its own pool.
    fn is_for(&self, scheme: &Scheme, authority: &Authority) -> bool {
        self.authority.as_str() == authority.as_str() && self.scheme == *scheme
    }
}

fn host_header(authority: &Authority) -> Option<HeaderValue> {
    match authority.port_u16() {
        Some(80) | None => HeaderValue::from_str(authority.host()).ok(),
        Some(_) => HeaderValue::from_str(authority.as_str()).ok(),
    }
}

thread_local! {
    static POOLS: RefCell<Vec<Pool>> = const { RefCell::new(Vec::new()) };
}

/// This thread's pool for the backend (created if need be): an idle connection that can
/// take a request now, if any, and the `host` header.
fn checkout(scheme: &Scheme, authority: &Authority) -> (Option<Sender>, Option<HeaderValue>) {
    POOLS.with_borrow_mut(|pools| {
        let i = match pools.iter().position(|p| p.is_for(scheme, authority)) {
            Some(i) => i,
            None => {
                if pools.len() >= MAX_BACKENDS {
                    pools.remove(0);
                }
                pools.push(Pool {
                    scheme: scheme.clone(),
                    authority: authority.clone(),
                    host: host_header(authority),
                    idle: Vec::new(),
                });
                pools.len() - 1
            }
        };
        let pool = &mut pools[i];
        while let Some((sender, since)) = pool.idle.pop() {
            if sender.is_ready() && since.elapsed() < IDLE_TIMEOUT {
                return (Some(sender), pool.host.clone());
            }
        }
        (None, pool.host.clone())
    })
}

fn checkin(scheme: &Scheme, authority: &Authority, sender: Sender) {
    if sender.is_closed() {
        return;
    }
    let _ = POOLS.try_with(|pools| {
        let Ok(mut pools) = pools.try_borrow_mut() else {
            return;
        };
        // Forgotten meanwhile (too many backends): the connection just closes.
        if let Some(pool) = pools.iter_mut().find(|p| p.is_for(scheme, authority))
            && pool.idle.len() < MAX_IDLE
        {
            pool.idle.push((sender, Instant::now()));
        }
    });
}

async fn connect(authority: &Authority) -> Result<Sender, String> {
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((authority.host(), port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("backend connection ended: {e}");
        }
    });
    Ok(sender)
}

async fn send(request: Request) -> Result<Response, Error> {
    let fail = |uri: &dyn std::fmt::Display, e: &dyn std::fmt::Display| {
        Error::with_status(StatusCode::BAD_GATEWAY, format!("backend `{uri}`: {e}"))
    };
    let (scheme, authority) = match (request.uri().scheme(), request.uri().authority()) {
        (Some(s), Some(a)) if *s == Scheme::HTTP => (s.clone(), a.clone()),
        (Some(_), Some(_)) => return Err(fail(request.uri(), &"invalid URL, scheme is not http")),
        _ => return Err(fail(request.uri(), &"client requires absolute-form URIs")),
    };
    // For error messages, without cloning the URI on the hot path.
    let full_uri = |request: &Request| format!("{scheme}://{authority}{}", request.uri());
    let (mut parts, body) = request.into_parts();
    // Origin form on the wire, `host` from the URI unless the plugin set one.
    let mut target = std::mem::take(&mut parts.uri).into_parts();
    target.scheme = None;
    target.authority = None;
    parts.uri = Uri::from_parts(target).unwrap_or_else(|_| Uri::from_static("/"));
    let (mut pooled, host) = checkout(&scheme, &authority);
    if let Some(host) = host
        && !parts.headers.contains_key(header::HOST)
    {
        parts.headers.insert(header::HOST, host);
    }
    let mut request = Request::from_parts(parts, body);
    let (response, sender) = loop {
        let pooled = match pooled.take() {
            Some(sender) => Some(sender),
            None => checkout(&scheme, &authority).0,
        };
        let (mut sender, reused) = match pooled {
            Some(sender) => (sender, true),
            None => match connect(&authority).await {
                Ok(sender) => (sender, false),
                Err(e) => return Err(fail(&full_uri(&request), &e)),
            },
        };
        match sender.try_send_request(request).await {
            Ok(response) => break (response, sender),
            Err(mut e) => match e.take_message() {
                // Never written: a pooled connection the backend had just closed.
                Some(unsent) if reused => request = unsent,
                Some(unsent) => return Err(fail(&full_uri(&unsent), &e.into_error())),
                // Sent: only the backend is known any more.
                None => {
                    return Err(fail(
                        &format_args!("{scheme}://{authority}"),
                        &e.into_error(),
                    ));
                }
            },
        }
    };
    let (parts, body) = response.into_parts();
    let body = if hyper::body::Body::is_end_stream(&body) {
        checkin(&scheme, &authority, sender);
        Body::empty()
    } else {
        Body::from_stream(PooledBody {
            inner: body,
            conn: Some((scheme, authority, sender)),
        })
    };
    Ok(Response::from_parts(parts, body))
}

/// A response body that puts its connection back in the pool once read to the end.
struct PooledBody {
    inner: Incoming,
    conn: Option<(Scheme, Authority, Sender)>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((scheme, authority, sender)) = self.conn.take() {
            checkin(&scheme, &authority, sender);
        }
    }
}

impl hyper::body::Body for PooledBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Err(_))) => self.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}
