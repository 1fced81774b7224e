//! Keep-alive HTTP/1.1 connections to backends, pooled per thread: the client a gateway
//! uses for its backends (`gwhost` holds one [`Upstream`] per configured host) and the
//! one plugins reach through the host services ([`send`]).
//!
//! Each exchange runs in the task that sends the request ([`crate::http1`]), and a
//! connection goes back to its pool when its response body ends. No per-request key
//! hashing, no lock shared between threads, no `Host` header formatting. Pools are per
//! thread because a connection is registered with the reactor of the thread that opened
//! it: used from another thread, each of its reads would wake that thread.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use gwplugin::{Body, Request, Response};
use http::Uri;
use http::header::{self, HeaderValue};
use http::uri::{Authority, Scheme};
use http_body::{Body as _, Frame, SizeHint};

use crate::http1::{BodyReader, Conn};
use crate::tls::TcpOrTls;

/// How long an idle keep-alive connection is kept (hyper-util's default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per backend host and thread; more are closed.
const MAX_IDLE: usize = 512;
/// Hosts [`send`] remembers per thread; past this the oldest is forgotten.
pub const MAX_AD_HOC: usize = 128;

/// Why a backend call failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Connecting failed, TLS handshake included (its errors say `TLS handshake: `).
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("{0}")]
    Io(std::io::Error),
    #[error("invalid response head: {0}")]
    Parse(httparse::Error),
    #[error("{0}")]
    Protocol(&'static str),
    #[error("request body: {0}")]
    RequestBody(gwplugin::BoxError),
    #[error("{0}")]
    Uri(&'static str),
    /// The request cannot go out as it is (a plugin changed it so): no backend was asked.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
}

impl BackendError {
    /// Whether the request was at fault, as it was handed over: a plugin's doing, when
    /// the client's request was checked before the plugins ran.
    pub fn is_the_requests(&self) -> bool {
        matches!(self, BackendError::Uri(_) | BackendError::InvalidRequest(_))
    }
}

/// The reason phrase of a backend's response whose status has no standard one (`599
/// Network Timeout`), in its extensions: a server that writes the response can pass it
/// on (hyper writes `<none>` for such a status otherwise). The bytes are httparse's
/// `reason-phrase`, which it gives only when it is UTF-8 (tab, space, visible ASCII; a
/// phrase with other bytes comes as none). With the status it
/// came with: a modifier that changes the status leaves a phrase that is not its own.
#[derive(Debug, Clone)]
pub struct BackendReason {
    pub status: http::StatusCode,
    pub reason: bytes::Bytes,
}

/// One backend host (scheme and authority) and its per-thread connection pools. A clone
/// shares the pools.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Where this host's idle connections wait, on each thread.
    pool: PoolKey,
    scheme: Scheme,
    authority: Authority,
    /// `host:port` to connect to.
    connect_to: String,
    /// The `Host` header: the authority without the scheme's default port.
    host: HeaderValue,
}

/// Which pool a host's connections go back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoolKey {
    /// A host made with [`Upstream::new`]: its pool is at this index in each thread's
    /// [`IDLE`], for the life of the process.
    Listed(usize),
    /// A host [`send`] was asked for: its pool lives beside it in one thread's
    /// [`AD_HOC`], and goes when the host is forgotten. Keys are never reused, so a
    /// connection coming back after that (or on another thread) finds no pool and closes.
    AdHoc(u64),
}

/// One host's idle connections on one thread.
#[derive(Default)]
struct Pool {
    idle: Vec<IdleConn>,
}

impl Pool {
    /// The newest idle connection that can take a request now.
    #[inline(always)]
    fn take(&mut self) -> Option<Conn> {
        while let Some(mut idle) = self.idle.pop() {
            if idle.is_usable() {
                return Some(idle.conn);
            }
            // Closed by the backend, or expired: dropping it closes it.
        }
        None
    }

    #[inline(always)]
    fn put(&mut self, conn: Conn) {
        if self.idle.len() < MAX_IDLE {
            self.idle.push(IdleConn {
                conn,
                since: Instant::now(),
            });
        }
    }
}

/// A host [`send`] was asked for on this thread, with its pool.
struct AdHocHost {
    upstream: Arc<Upstream>,
    pool: Pool,
}

struct IdleConn {
    conn: Conn,
    since: Instant,
}

impl IdleConn {
    /// Neither expired nor closed by its backend (nor sent anything) while idle.
    #[inline(always)]
    fn is_usable(&mut self) -> bool {
        self.since.elapsed() < IDLE_TIMEOUT && self.conn.is_reusable()
    }
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
static NEXT_AD_HOC: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's idle connections to listed hosts, by [`PoolKey::Listed`] index,
    /// newest last.
    static IDLE: RefCell<Vec<Pool>> = const { RefCell::new(Vec::new()) };
    /// The hosts [`send`] was asked for on this thread, oldest first, with their idle
    /// connections. At most [`MAX_AD_HOC`]: however many hosts a plugin calls over the
    /// life of the process, what this thread keeps for them stays bounded.
    static AD_HOC: RefCell<Vec<AdHocHost>> = const { RefCell::new(Vec::new()) };
}

/// This thread's pool for the listed host at `index`, made on first use.
fn listed_pool(pools: &mut Vec<Pool>, index: usize) -> &mut Pool {
    if pools.len() <= index {
        pools.resize_with(index + 1, Pool::default);
    }
    &mut pools[index]
}

/// This thread's pool for the ad-hoc host `key`, if this thread still has it.
fn ad_hoc_pool(hosts: &mut [AdHocHost], key: PoolKey) -> Option<&mut Pool> {
    let host = hosts.iter_mut().find(|h| h.upstream.pool == key)?;
    Some(&mut host.pool)
}

impl Upstream {
    /// An upstream for a host configured for the life of the process: its authority is
    /// leaked into a `&'static str`, so that copying it into each request's URI is a plain
    /// copy rather than a reference count that every worker thread contends on.
    pub fn configured(scheme: &Scheme, authority: &Authority) -> Self {
        let authority = Authority::from_static(Box::leak(authority.as_str().into()));
        let mut upstream = Upstream::new(scheme, &authority);
        // Likewise the `Host` header: a shared `HeaderValue` is an atomic count per clone.
        let host: &'static str = Box::leak(upstream.host.to_str().unwrap_or("").into());
        upstream.host = HeaderValue::from_static(host);
        upstream
    }

    /// An upstream for a host known up front. Its pool takes a slot in each thread's
    /// table for the life of the process: [`send`] keeps its own hosts apart.
    pub fn new(scheme: &Scheme, authority: &Authority) -> Self {
        Self::with_pool(
            scheme,
            authority,
            PoolKey::Listed(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
        )
    }

    fn with_pool(scheme: &Scheme, authority: &Authority, pool: PoolKey) -> Self {
        let default_port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
        let port = authority.port_u16().unwrap_or(default_port);
        let host = if port == default_port {
            authority.host()
        } else {
            // RFC 9110 §7.2's `Host` has no userinfo, and it would show the password to
            // the backend's logs.
            without_userinfo(authority)
        };
        Upstream {
            pool,
            scheme: scheme.clone(),
            authority: authority.clone(),
            connect_to: format!("{}:{port}", authority.host()),
            host: HeaderValue::from_str(host).expect("an authority is a valid header value"),
        }
    }

    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The `Host` header for this host.
    pub fn host_header(&self) -> &HeaderValue {
        &self.host
    }

    /// Whether `uri` names this host.
    pub fn is_target_of(&self, uri: &Uri) -> bool {
        uri.scheme() == Some(&self.scheme) && uri.authority() == Some(&self.authority)
    }

    /// A pooled connection that can take a request now.
    fn checkout(&self) -> Option<Conn> {
        match self.pool {
            PoolKey::Listed(index) => IDLE.with_borrow_mut(|pools| pools.get_mut(index)?.take()),
            key @ PoolKey::AdHoc(_) => {
                AD_HOC.with_borrow_mut(|hosts| ad_hoc_pool(hosts, key)?.take())
            }
        }
    }

    /// Returns a connection to its pool. Without one (during thread teardown, or for a
    /// forgotten host) the connection just closes.
    fn checkin(key: PoolKey, conn: Conn) {
        // Whether the backend has closed it since is seen at checkout.
        if !conn.ended_cleanly() {
            return;
        }
        let _ = match key {
            PoolKey::Listed(index) => IDLE.try_with(|pools| {
                if let Ok(mut pools) = pools.try_borrow_mut() {
                    listed_pool(&mut pools, index).put(conn);
                }
            }),
            PoolKey::AdHoc(_) => AD_HOC.try_with(|hosts| {
                if let Ok(mut hosts) = hosts.try_borrow_mut()
                    && let Some(pool) = ad_hoc_pool(&mut hosts, key)
                {
                    pool.put(conn);
                }
            }),
        };
    }

    async fn connect(&self) -> Result<Conn, BackendError> {
        let stream = tokio::net::TcpStream::connect(self.connect_to.as_str())
            .await
            .map_err(BackendError::Connect)?;
        let _ = stream.set_nodelay(true);
        if self.scheme == Scheme::HTTPS {
            let tls = crate::tls::handshake(stream, self.authority.host())
                .await
                .map_err(BackendError::Connect)?;
            return Ok(Conn::new(TcpOrTls::Tls(Box::new(tls))));
        }
        Ok(Conn::new(TcpOrTls::Tcp(stream)))
    }

    /// Sends `req` on a pooled or new connection. Its URI names this host, or is already
    /// in origin form (`/path?query`); origin form goes on the wire, and `host` is set
    /// unless the request has one. The response's headers are the backend's, hop-by-hop
    /// ones included: what to forward is the caller's call.
    ///
    /// The request is borrowed (its body is read to the end): the caller's future holds
    /// it once, rather than each layer's future holding its own moved copy.
    pub async fn send(&self, req: &mut Request) -> Result<Response, BackendError> {
        if req.uri().authority().is_some() {
            // Moved out, not cloned: a clone of a path built at run time allocates.
            let uri = std::mem::take(req.uri_mut()).into_parts();
            *req.uri_mut() = uri
                .path_and_query
                .map_or_else(|| Uri::from_static("/"), Uri::from);
        }
        match req.headers_mut().entry(header::HOST) {
            header::Entry::Vacant(host) => {
                host.insert(self.host.clone());
            }
            // The backend would refuse it (RFC 9112 §3.2), or take either.
            header::Entry::Occupied(host) if host.iter().nth(1).is_some() => {
                return Err(BackendError::InvalidRequest(
                    "it has more than one `Host` header",
                ));
            }
            header::Entry::Occupied(_) => {}
        }
        // Sent again whole if its first connection turns out to be closed.
        let repeatable = req.body().is_end_stream() && req.method().is_idempotent();
        let (head, mut conn) = loop {
            let (mut conn, reused) = match self.checkout() {
                Some(conn) => (conn, true),
                // Boxed: connecting is rare, and its state would grow this future.
                None => (Box::pin(self.connect()).await?, false),
            };
            match conn.exchange(req).await {
                Ok(head) => break (head, conn),
                // A pooled connection the backend had just closed: retry on a new one,
                // as hyper-util's client does.
                Err(failure) if reused && repeatable && failure.unanswered => {}
                Err(failure) => return Err(failure.error),
            }
        };
        let body = match conn.take_whole_body(head.framing) {
            // A small body has usually arrived with the head: the connection goes
            // back to the pool before the response is even returned.
            Some(data) => {
                Upstream::checkin(self.pool, conn);
                Body::from(data)
            }
            None => Body::from_stream(PooledBody {
                reader: BodyReader::new(head.framing),
                conn: Some(conn),
                pool: self.pool,
            }),
        };
        Ok(Response::from_parts(head.parts, body))
    }
}

/// Closes this thread's idle connections that their backend closed, or that expired.
/// A pool is otherwise looked at only from its newest end, where the connection in use
/// stays: those below it, closed by the backend meanwhile, kept their sockets (in
/// CLOSE-WAIT) for good. Readiness is the reactor's: no system call per connection
/// unless it became readable.
pub fn reap_idle() {
    let _ = IDLE.try_with(|pools| {
        if let Ok(mut pools) = pools.try_borrow_mut() {
            for pool in pools.iter_mut() {
                pool.idle.retain_mut(IdleConn::is_usable);
            }
        }
    });
    let _ = AD_HOC.try_with(|hosts| {
        if let Ok(mut hosts) = hosts.try_borrow_mut() {
            for host in hosts.iter_mut() {
                host.pool.idle.retain_mut(IdleConn::is_usable);
            }
        }
    });
}

/// [`reap_idle`] every `period`, on the thread that runs it: spawn it on each thread that
/// sends (on each worker's current-thread runtime, in gwhost).
pub async fn reap_idle_every(period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        reap_idle();
    }
}

/// A failed [`send`]: which backend it was for, and why.
#[derive(Debug, thiserror::Error)]
#[error("backend `{target}`: {error}")]
pub struct SendError {
    /// `scheme://authority`, or the URI as given when it names no `http` or `https` host.
    pub target: String,
    #[source]
    pub error: BackendError,
}

/// Sends a request with an absolute `http://` or `https://` URI, on this thread's pool for
/// its host.
///
/// A failure names the host, not the URI: the request, URI included, is gone by then,
/// and keeping a copy of the URI for a rare message costs every request.
#[allow(
    clippy::manual_async_fn,
    reason = "an `async fn` keeps its request twice in its state: parameter and local"
)]
pub fn send(mut req: Request) -> impl Future<Output = Result<Response, SendError>> + Send {
    async move {
        let upstream = match (req.uri().scheme(), req.uri().authority()) {
            (Some(s), Some(a)) if *s == Scheme::HTTP || *s == Scheme::HTTPS => ad_hoc(s, a),
            (scheme, authority) => {
                let error = BackendError::Uri(if scheme.is_some() && authority.is_some() {
                    "invalid URL, scheme is not http or https"
                } else {
                    "client requires absolute-form URIs"
                });
                let target = req.uri().to_string();
                return Err(SendError { target, error });
            }
        };
        upstream.send(&mut req).await.map_err(|error| SendError {
            target: format!(
                "{}://{}",
                upstream.scheme,
                without_userinfo(&upstream.authority)
            ),
            error,
        })
    }
}

/// An authority without the userinfo (`user:password@`) it may have: for a `Host` header
/// and for log lines, where a password has no business.
pub fn without_userinfo(authority: &Authority) -> &str {
    authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, host)| host)
}

/// This thread's [`Upstream`] for a host, made on first use.
fn ad_hoc(scheme: &Scheme, authority: &Authority) -> Arc<Upstream> {
    AD_HOC.with_borrow_mut(|hosts| {
        // Exact spelling: a differently cased authority just gets its own pool.
        if let Some(host) = hosts.iter().find(|h| {
            h.upstream.authority.as_str() == authority.as_str() && h.upstream.scheme == *scheme
        }) {
            return host.upstream.clone();
        }
        if hosts.len() >= MAX_AD_HOC {
            // Its idle connections close now (and any in use, when they come back).
            drop(hosts.remove(0));
        }
        let key = PoolKey::AdHoc(NEXT_AD_HOC.fetch_add(1, Ordering::Relaxed));
        let upstream = Arc::new(Upstream::with_pool(scheme, authority, key));
        hosts.push(AdHocHost {
            upstream: upstream.clone(),
            pool: Pool::default(),
        });
        upstream
    })
}

/// A response body read from its connection, which goes back to the pool once the body
/// has been read to the end (dropped early, the connection is closed instead).
struct PooledBody {
    reader: BodyReader,
    conn: Option<Conn>,
    /// The pool the connection returns to.
    pool: PoolKey,
}

impl PooledBody {
    fn release_if_done(&mut self) {
        if self.reader.is_done()
            && let Some(conn) = self.conn.take()
        {
            Upstream::checkin(self.pool, conn);
        }
    }
}

impl http_body::Body for PooledBody {
    type Data = bytes::Bytes;
    type Error = BackendError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, BackendError>>> {
        let this = &mut *self;
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = this.reader.poll_data(conn, cx);
        if !matches!(polled, Poll::Pending) {
            this.release_if_done();
        }
        polled.map(|data| data.map(|data| data.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.reader.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.reader
            .remaining()
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        self.release_if_done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However many hosts a plugin calls over a process's life, a thread keeps what it
    /// needs for the last [`MAX_AD_HOC`] of them and nothing for the others.
    #[tokio::test(flavor = "current_thread")]
    async fn forgotten_hosts_leave_nothing_behind() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let listed = IDLE.with_borrow(Vec::len);
        for n in 0..MAX_AD_HOC * 4 {
            // Distinct hosts, all refusing: 127.0.0.0/8 is loopback.
            let url = format!("http://127.0.{}.{}:{port}/", n / 250, n % 250 + 1);
            let req = http::Request::get(url).body(Body::empty()).unwrap();
            assert!(send(req).await.is_err());
        }
        assert_eq!(AD_HOC.with_borrow(Vec::len), MAX_AD_HOC);
        assert_eq!(IDLE.with_borrow(Vec::len), listed);
    }
}
