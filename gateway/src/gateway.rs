//! The request pipeline, built once at start-up from a validated config and the loaded
//! plugins:
//!
//! ```text
//! http-server plugins (last name outermost)
//!   └─ router: match method + path
//!        endpoint modifiers, request side (list order)
//!        backend modifiers, request side (list order)
//!        backend call: the http-client plugin, or the proxy (with the timeout)
//!        backend modifiers, response side (list order)
//!        endpoint modifiers, response side (list order)
//! ```
//!
//! A failing or panicking plugin answers that one request with its status (500 when it
//! set none) and an ERROR line naming the plugin and the request id; nothing else is
//! affected. Plugin instances are created here, once; the hot path only borrows them.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use gwplugin::abi::{ErasedHandler, ErasedModifier, Handler, Kind, pin_box_with};
use gwplugin::{Body, BoxFuture, Request, Response};
use gwplugin_host::scope::{self, PluginScope, RequestScope};
use gwplugin_host::upstream::{BackendError, Upstream};
use gwplugin_host::{CreateError, LookupError, PluginRegistry};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, StatusCode, Uri, Version};
use hyper::body::Body as _;
use hyper::body::Incoming;

use crate::config::{Config, PluginUse};
use crate::route::{RouteTable, UrlPattern};
use crate::timer;

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// A new request id: unique in the process, taken from a per-thread block so that
/// worker threads don't contend on one counter for every request.
fn next_request_id() -> u64 {
    const BLOCK: u64 = 1024;
    thread_local! {
        static IDS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
    }
    IDS.with(|ids| {
        let (mut next, mut end) = ids.get();
        if next == end {
            next = NEXT_REQUEST_ID.fetch_add(BLOCK, Ordering::Relaxed);
            end = next + BLOCK;
        }
        ids.set((next + 1, end));
        next
    })
}

/// The id of the request this task is handling (0 outside a request): set around each
/// poll by [`RequestScope`], so also inside an http-server plugin's `next`, and read by
/// the log service plugins' lines go through.
pub fn request_id() -> u64 {
    scope::request_id()
}

/// Why the pipeline could not be built from a config.
#[derive(Debug, thiserror::Error)]
#[error("{at}: {source}")]
pub struct BuildError {
    /// The JSON path of the plugin name that failed.
    pub at: String,
    pub source: CreateError,
    /// The config has no `plugin` block: no plugin file was looked for.
    pub without_plugin_block: bool,
}

impl BuildError {
    pub fn help(&self) -> String {
        match &self.source {
            CreateError::Lookup(LookupError::Unknown { .. }) if self.without_plugin_block => {
                "the config has no `plugin` block, so no plugin file is loaded: add one, as \
                 `\"plugin\": {\"folder\": \"plugins\", \"pattern\": \".so\"}`"
                    .to_owned()
            }
            CreateError::Lookup(LookupError::Unknown { .. }) => {
                "check the name, or put the plugin's file in `plugin.folder` (its file name \
                 must contain `plugin.pattern`); `gwhost test-plugin FILE` lists what a file \
                 registers"
                    .to_owned()
            }
            CreateError::Lookup(LookupError::WrongKind { found, .. }) => {
                format!("use it under `{}`", found.namespace())
            }
            CreateError::Plugin(name, _) => {
                format!("fix the plugin's config, the object under `{name}` in this block")
            }
        }
    }
}

/// The gateway's request handler.
pub struct Gateway {
    router: &'static Router,
    /// The outermost http-server plugin (wrapping the others and the router) and its
    /// name; `None` without any.
    chain: Option<(Handler, &'static str)>,
    /// Whether any plugin sees responses (and may replace a body).
    plugins_see_responses: bool,
    /// How long one write to a client may wait for it to read.
    pub send_timeout: std::time::Duration,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("endpoints", &self.router.routes.len())
            .field("server_plugins", &self.chain.is_some())
            .finish()
    }
}

impl Gateway {
    /// Creates every plugin instance the config names and wires the pipeline.
    ///
    /// The router is leaked: like the plugins it runs (never unloaded), it lives as long
    /// as the process, and the innermost plugin's `next` then calls it without a
    /// reference count to touch per request.
    pub fn build(config: &Config, registry: &PluginRegistry) -> Result<Self, BuildError> {
        let mut table = RouteTable::default();
        let mut routes = Vec::with_capacity(config.endpoints.len());
        // One upstream, so one pool of connections, per backend host, however many
        // endpoints use it (as nginx's `upstream` blocks and Go's transports pool): the
        // same scheme, host (any case) and port (`http://b` and `http://b:80` alike). The
        // first endpoint's spelling is the one sent.
        let mut upstreams: HashMap<(Scheme, String, u16), Upstream> = HashMap::new();
        for (index, endpoint) in config.endpoints.iter().enumerate() {
            let backend = &endpoint.backend;
            let client_plugin = match &backend.client {
                Some(u) => Some(NamedHandler {
                    name: plugin_name(u),
                    handler: scope::in_plugin(plugin_name(u), || {
                        registry.create_client(&u.name, &u.config)
                    })
                    .map_err(|source| build_error(u, source))?,
                }),
                None => None,
            };
            routes.push(Route {
                modifiers: modifiers(&endpoint.modifiers, registry)?,
                backend: BackendRoute {
                    hosts: backend
                        .hosts
                        .iter()
                        .map(|(scheme, authority)| {
                            upstreams
                                .entry(pool_key(scheme, authority))
                                .or_insert_with(|| Upstream::configured(scheme, authority))
                                .clone()
                        })
                        .collect(),
                    next_host: AtomicUsize::new(0),
                    url: backend.url_pattern.clone(),
                    method: backend.method.clone(),
                    timeout: backend.timeout,
                    modifiers: modifiers(&backend.modifiers, registry)?,
                    client: client_plugin,
                },
            });
            table.insert(endpoint.method.clone(), endpoint.pattern.clone(), index);
        }
        // An endpoint whose path takes the health check's, by any method, replaces it
        // whole: a `HEAD` probe must not get gwhost's "ok" for a `GET` it proxies.
        let answers_health = !config
            .endpoints
            .iter()
            .any(|e| e.pattern.matches(HEALTH_PATH));
        let plugins_see_responses = !config.server_plugins.is_empty()
            || routes.iter().any(|r| {
                !r.modifiers.is_empty()
                    || !r.backend.modifiers.is_empty()
                    || r.backend.client.is_some()
            });
        let router: &'static Router = Box::leak(Box::new(Router {
            table,
            routes,
            answers_health,
            hyper_polls_backend_bodies: !plugins_see_responses,
        }));
        // KrakenD's rule: each plugin wraps what the previous names built, so the last
        // name is the outermost and sees the request first. Inner plugins are wrapped
        // in a `ServerLayer` (their errors become responses there); the outermost is
        // called directly and `handle` does that, saving a boxed future per request.
        let mut chain: Option<(Handler, &'static str)> = None;
        let mut next: Handler = Arc::new(RouterHandler(router));
        for (i, u) in config.server_plugins.iter().enumerate() {
            let name = plugin_name(u);
            let created = scope::in_plugin(name, || {
                registry.create_server(&u.name, &u.config, next.clone())
            })
            .map_err(|source| build_error(u, source))?;
            if i + 1 == config.server_plugins.len() {
                chain = Some((created, name));
            } else {
                next = Arc::new(ServerLayer {
                    name,
                    inner: created,
                });
            }
        }
        drop(next);
        Ok(Gateway {
            router,
            chain,
            plugins_see_responses,
            send_timeout: config.send_timeout,
        })
    }

    /// Answers one request. Never fails: every failure becomes a status.
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its request twice in its state: parameter and local"
    )]
    pub fn handle(&self, mut req: Request) -> impl Future<Output = Response> + Send + '_ {
        RequestScope::new(next_request_id(), async move {
            if let Some(refused) = refuse_malformed(&req) {
                return refused;
            }
            // gwhost's own health check, before the http-server plugins: a load balancer
            // probes it without the credentials they may ask for, and a plugin that let
            // the path through by name would also let through an endpoint that takes it.
            // (Such an endpoint goes through them as any.)
            if self.chain.is_some() && self.router.answers_health && is_health_check(&req) {
                return health_response();
            }
            // The client's hop-by-hop headers, before any plugin runs: the headers its
            // `Connection` names are the client's own, never those a plugin adds (RFC
            // 9110 §7.6.1), which a client could otherwise have dropped.
            strip_hop_by_hop(req.headers_mut());
            let lent = self
                .plugins_see_responses
                .then(|| lend_body(&mut req))
                .flatten();
            // Not for a response to HEAD, whose `Content-Length` describes a body not sent.
            let match_length = self.plugins_see_responses && req.method() != Method::HEAD;
            let mut resp = match &self.chain {
                None => self.router.handle(req).await,
                Some((chain, name)) => match PluginScope::new(name, chain.call(req)).await {
                    Ok(resp) => resp,
                    // Inner layers turn their plugin's errors into responses already.
                    Err(e) => plugin_failure(name, Kind::HttpServer, &e),
                },
            };
            if let Some((_, name)) = &self.chain {
                refuse_interim_status(&mut resp, name, Kind::HttpServer);
                attribute_streamed_body(&mut resp, name, Kind::HttpServer);
            }
            if self.plugins_see_responses {
                if match_length {
                    content_length_of_body(&mut resp);
                } else {
                    // HEAD: a body a plugin set is not sent. Dropped here, it cannot
                    // stream for nothing, nor contradict the `Content-Length` kept (hyper
                    // checks the two in debug builds and drops the connection).
                    *resp.body_mut() = Body::empty();
                }
                report_plugin_body_failures(&mut resp).await;
            }
            if let Some(lent) = lent {
                end_loan_with(&mut resp, lent);
            }
            if resp.status().canonical_reason().is_none() {
                keep_reason_phrase(&mut resp);
            }
            resp
        })
    }
}

/// Whether a backend call failed for want of file descriptors (the process's or the
/// system's): then every request fails alike until some are free.
fn out_of_descriptors(e: &BackendError) -> bool {
    matches!(e, BackendError::Connect(io) if matches!(io.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)))
}

/// Failures logged at most once a second, with how many were not.
struct RateLimitedLog {
    /// Seconds since `EPOCH` of the last line, plus one (0: none yet).
    last: AtomicU64,
    skipped: AtomicU64,
}

static DESCRIPTOR_FAILURES: RateLimitedLog = RateLimitedLog {
    last: AtomicU64::new(0),
    skipped: AtomicU64::new(0),
};

static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

impl RateLimitedLog {
    /// `Some(skipped since the last line)` when a line is due now, else counts this one.
    fn due(&self) -> Option<u64> {
        let now = EPOCH.get_or_init(Instant::now).elapsed().as_secs() + 1;
        let last = self.last.load(Ordering::Relaxed);
        // `>`: a worker that read the clock a moment before another must not set it back.
        if now > last
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.skipped.swap(0, Ordering::Relaxed));
        }
        self.skipped.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Which configured hosts share a pool: the same scheme, host (any case) and port.
fn pool_key(scheme: &Scheme, authority: &http::uri::Authority) -> (Scheme, String, u16) {
    let default_port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
    (
        scheme.clone(),
        authority.host().to_ascii_lowercase(),
        authority.port_u16().unwrap_or(default_port),
    )
}

/// For a status without a standard reason phrase, the backend's (when it gave one and
/// gwhost forwards its response), else none: hyper would write `<none>`.
fn keep_reason_phrase(response: &mut Response) {
    let status = response.status();
    let reason = response
        .extensions_mut()
        .remove::<gwplugin_host::upstream::BackendReason>()
        .filter(|backend| backend.status == status)
        .and_then(|backend| hyper::ext::ReasonPhrase::try_from(backend.reason).ok())
        .unwrap_or(hyper::ext::ReasonPhrase::from_static(b""));
    response.extensions_mut().insert(reason);
}

/// A plugin's name as its log lines and errors carry it. Leaked, as the pipeline that
/// holds it lives as long as the process: polls then set it without a reference count.
fn plugin_name(u: &PluginUse) -> &'static str {
    Box::leak(u.name.as_str().into())
}

fn build_error(u: &PluginUse, source: CreateError) -> BuildError {
    BuildError {
        at: u.at.clone(),
        source,
        without_plugin_block: false,
    }
}

fn modifiers(uses: &[PluginUse], registry: &PluginRegistry) -> Result<Vec<Modifier>, BuildError> {
    uses.iter()
        .map(|u| {
            let name = plugin_name(u);
            Ok(Modifier {
                name,
                instance: scope::in_plugin(name, || registry.create_modifier(&u.name, &u.config))
                    .map_err(|source| build_error(u, source))?,
            })
        })
        .collect()
}

struct Modifier {
    name: &'static str,
    instance: Arc<dyn ErasedModifier>,
}

struct NamedHandler {
    name: &'static str,
    handler: Handler,
}

struct Route {
    modifiers: Vec<Modifier>,
    backend: BackendRoute,
}

struct BackendRoute {
    hosts: Vec<Upstream>,
    next_host: AtomicUsize,
    url: UrlPattern,
    method: Option<Method>,
    timeout: Duration,
    modifiers: Vec<Modifier>,
    client: Option<NamedHandler>,
}

impl BackendRoute {
    /// Round robin over the configured hosts.
    fn pick_host(&self) -> &Upstream {
        if self.hosts.len() == 1 {
            return &self.hosts[0];
        }
        let i = self.next_host.fetch_add(1, Ordering::Relaxed);
        &self.hosts[i % self.hosts.len()]
    }
}

struct Router {
    table: RouteTable,
    routes: Vec<Route>,
    /// Whether [`HEALTH_PATH`] is gwhost's own (no endpoint's path takes it).
    answers_health: bool,
    /// Whether a backend's streamed body goes to hyper as [`BackendBody`] made it (no
    /// plugins), which then holds its failure back itself ([`hold_back`]); otherwise
    /// [`ReportedBody`] does, where one held back here too would hide a failure at the
    /// first poll from [`report_plugin_body_failures`].
    hyper_polls_backend_bodies: bool,
}

impl Router {
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its request twice in its state: parameter and local"
    )]
    fn handle(&self, mut req: Request) -> impl Future<Output = Response> + Send + '_ {
        async move {
            let Some(index) = self.table.lookup(req.method(), req.uri().path()) else {
                return unrouted(&req, self.answers_health);
            };
            let route = &self.routes[index];
            let backend = &route.backend;
            // Parameters come from the path as routed, before modifiers may rewrite the URI.
            let mut target = String::new();
            backend.url.render_into(req.uri().path(), None, &mut target);

            for m in &route.modifiers {
                if let Err(e) = scope::in_plugin(m.name, || m.instance.modify_request(&mut req)) {
                    return plugin_failure(m.name, Kind::Modifier, &e);
                }
            }
            if let Some(query) = req.uri().query() {
                backend.url.push_query(query, &mut target);
            }
            let upstream = backend.pick_host();
            let Ok(path_and_query) = PathAndQuery::try_from(target) else {
                return status_response(StatusCode::BAD_REQUEST);
            };
            // The request is changed in place: a `Request` is a few hundred bytes to move.
            // Backend modifiers and an http-client plugin see the backend's absolute URI;
            // without them the proxy's own client takes the origin form as it is.
            let direct = backend.modifiers.is_empty() && backend.client.is_none();
            *req.uri_mut() = if direct {
                Uri::from(path_and_query)
            } else {
                let mut uri = http::uri::Parts::default();
                uri.scheme = Some(upstream.scheme().clone());
                uri.authority = Some(upstream.authority().clone());
                uri.path_and_query = Some(path_and_query);
                match Uri::from_parts(uri) {
                    Ok(u) => u,
                    Err(_) => return status_response(StatusCode::BAD_REQUEST),
                }
            };
            if let Some(method) = &backend.method {
                *req.method_mut() = method.clone();
            }
            *req.version_mut() = Version::HTTP_11;
            // The backend's host, not the gateway's. With backend modifiers or an http-client
            // plugin, whoever finally sends the request sets it from the URI they leave.
            if direct {
                req.headers_mut()
                    .insert(header::HOST, upstream.host_header().clone());
            } else {
                req.headers_mut().remove(header::HOST);
            }

            for m in &backend.modifiers {
                if let Err(e) = scope::in_plugin(m.name, || m.instance.modify_request(&mut req)) {
                    return plugin_failure(m.name, Kind::Modifier, &e);
                }
            }
            let mut resp = match self.call_backend(backend, upstream, &mut req).await {
                Ok(resp) => resp,
                Err(failure) => return failure,
            };
            // Whoever answered (the proxy's client, another client, an http-client plugin),
            // hop-by-hop headers are never forwarded, nor is the backend's HTTP version:
            // hyper answers a response marked HTTP/1.0 as 1.0, and closes the client's
            // keep-alive connection after it.
            strip_hop_by_hop(resp.headers_mut());
            *resp.version_mut() = Version::HTTP_11;
            for m in backend.modifiers.iter().chain(&route.modifiers) {
                if let Err(e) = scope::in_plugin(m.name, || m.instance.modify_response(&mut resp)) {
                    return plugin_failure(m.name, Kind::Modifier, &e);
                }
                refuse_interim_status(&mut resp, m.name, Kind::Modifier);
                // It may have set a stream of its own. (One it passes on fails as whose
                // it is: a failure already attributed, or a backend's, goes through.)
                attribute_streamed_body(&mut resp, m.name, Kind::Modifier);
            }
            resp
        }
    }

    async fn call_backend(
        &self,
        backend: &BackendRoute,
        upstream: &Upstream,
        req: &mut Request,
    ) -> Result<Response, Response> {
        let timed_out = |target: &dyn std::fmt::Display| {
            tracing::warn!(
                request_id = request_id(),
                backend = %target,
                "backend did not answer within {:?} (sending the request body counts)",
                backend.timeout
            );
            // With its id, as a plugin's failures: an http-client plugin's timeout is one.
            failure_response(StatusCode::GATEWAY_TIMEOUT, request_id())
        };
        let unreachable = |target: &dyn std::fmt::Display, e: BackendError| {
            // The client's own body broke off or was malformed (hyper's error, from
            // `incoming_body`): its request is at fault, not the backend.
            if let BackendError::RequestBody(body_error) = &e
                && body_error.downcast_ref::<hyper::Error>().is_some()
            {
                tracing::info!(
                    request_id = request_id(),
                    "the client's request body failed: {body_error}"
                );
                return status_response(StatusCode::BAD_REQUEST);
            }
            if e.is_the_requests() {
                // The client's request was checked before any plugin ran: a plugin's doing.
                tracing::error!(
                    request_id = request_id(),
                    backend = %target,
                    "the request the plugins passed on cannot be sent: {e}"
                );
                return failure_response(StatusCode::INTERNAL_SERVER_ERROR, request_id());
            }
            if out_of_descriptors(&e) {
                // Every request fails so while they last: one line a second, as accepts.
                match DESCRIPTOR_FAILURES.due() {
                    Some(0) => {
                        tracing::warn!(request_id = request_id(), backend = %target, "backend unreachable: {e}");
                    }
                    Some(since) => tracing::warn!(
                        request_id = request_id(),
                        backend = %target,
                        "backend unreachable: {e} (and {since} more requests since the last line)"
                    ),
                    None => {}
                }
                return failure_response(StatusCode::BAD_GATEWAY, request_id());
            }
            tracing::warn!(request_id = request_id(), backend = %target, "backend unreachable: {e}");
            // With its id, as a 504: the client can point at the log line that says why.
            failure_response(StatusCode::BAD_GATEWAY, request_id())
        };
        if let Some(client) = &backend.client {
            let calling = PluginScope::new(client.name, client.handler.call(std::mem::take(req)));
            return match timer::timeout(backend.timeout, calling).await {
                Err(_) => Err(timed_out(&format_args!(
                    "http-client plugin `{}`",
                    client.name
                ))),
                Ok(Ok(mut resp)) => {
                    refuse_interim_status(&mut resp, client.name, Kind::HttpClient);
                    attribute_streamed_body(&mut resp, client.name, Kind::HttpClient);
                    watch_backend_body(&mut resp, backend.timeout, self.hyper_polls_backend_bodies);
                    Ok(resp)
                }
                Ok(Err(e)) => Err(plugin_failure(client.name, Kind::HttpClient, &e)),
            };
        }
        // A backend modifier may have pointed the request at another host: the same client
        // takes it, on that host's own per-thread pool. Boxed: this path is rare, and its
        // state inline (~900 bytes) would grow every request's future by a third, past
        // the size mimalloc allocates on its fast path when a plugin boxes it.
        if req.uri().authority().is_some() && !upstream.is_target_of(req.uri()) {
            // For the log (not the query, which may hold a token): the request is the
            // sender's from here.
            let target = (req.uri().scheme().cloned(), req.uri().authority().cloned());
            let sending = Box::pin(gwplugin_host::upstream::send(std::mem::take(req)));
            return match timer::timeout(backend.timeout, sending).await {
                Err(_) => Err(timed_out(&format_args!(
                    "{}://{}",
                    target.0.unwrap_or(http::uri::Scheme::HTTP),
                    target
                        .1
                        .as_ref()
                        .map_or("", gwplugin_host::upstream::without_userinfo)
                ))),
                Ok(Ok(mut resp)) => {
                    watch_backend_body(&mut resp, backend.timeout, self.hyper_polls_backend_bodies);
                    Ok(resp)
                }
                Ok(Err(e)) => Err(unreachable(&e.target, e.error)),
            };
        }
        match timer::timeout(backend.timeout, upstream.send(req)).await {
            Err(_) => Err(timed_out(&format_args!(
                "{}://{}",
                upstream.scheme(),
                upstream.authority()
            ))),
            Ok(Ok(mut resp)) => {
                watch_backend_body(&mut resp, backend.timeout, self.hyper_polls_backend_bodies);
                Ok(resp)
            }
            Ok(Err(e)) => Err(unreachable(
                &format_args!("{}://{}", upstream.scheme(), upstream.authority()),
                e,
            )),
        }
    }
}

/// A backend's body still streaming in after its head: watched for a backend that goes
/// quiet (no frame for the backend's timeout, while the client is waiting for one) and
/// for its failures, which are logged here with the request id. A body that came whole
/// with the head (most) needs neither. In place: a `Response` is ~150 bytes to move.
#[inline]
fn watch_backend_body(resp: &mut Response, timeout: Duration, hyper_polls_it: bool) {
    wrap_streamed_body(resp, |body| BackendBody {
        body,
        idle: None,
        timeout,
        request_id: request_id(),
        hold_back: hyper_polls_it,
        held: None,
    });
}

/// Replaces a response's body by `wrap(body)` when it is a stream; a body in memory can
/// neither stall nor fail. In place: a `Response` is ~150 bytes to move.
#[inline]
fn wrap_streamed_body<B>(resp: &mut Response, wrap: impl FnOnce(Body) -> B)
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<gwplugin::BoxError>,
{
    if resp.body().as_bytes().is_none() {
        let body = std::mem::take(resp.body_mut());
        *resp.body_mut() = Body::from_stream(wrap(body));
    }
}

/// Logs a response body's failure after its head went out, with the request id and, when
/// a plugin's body failed, the plugin: at ERROR for a plugin's panic (its message says
/// where), at WARN otherwise.
fn log_body_failure(request_id: u64, e: &(dyn std::error::Error + 'static)) {
    let (plugin, kind) =
        failed_plugin(e).map_or((None, None), |p| (Some(p.name), Some(p.kind.as_str())));
    if is_panic(e) {
        tracing::error!(plugin, kind, request_id, "response body failed: {e}");
    } else {
        tracing::warn!(plugin, kind, request_id, "response cut short: {e}");
    }
}

/// Whether a body's failure is a plugin's panic.
fn is_panic(e: &(dyn std::error::Error + 'static)) -> bool {
    // By its text too: a plugin's error is its own copy of the type, which a downcast
    // here need not recognise (and a panic may come wrapped in another error).
    causes(e).any(|c| {
        c.downcast_ref::<gwplugin::Error>()
            .is_some_and(gwplugin::Error::is_panic)
            || c.to_string().contains("plugin panicked")
    })
}

/// `e` and its sources, outermost first: at most 32, as a plugin's error may be its own
/// source, or one of a loop.
fn causes<'e>(
    e: &'e (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |c| c.source()).take(32)
}

/// Turns a plugin's answer with an interim status (1xx) into a 500: it is no final
/// answer, and hyper would send a 101 as it is (a protocol switch to nothing) or answer
/// another 1xx with its own 500, without the request id or a log line.
#[inline]
fn refuse_interim_status(resp: &mut Response, name: &'static str, kind: Kind) {
    if resp.status().is_informational() {
        interim_status_failure(resp, name, kind);
    }
}

#[cold]
fn interim_status_failure(resp: &mut Response, name: &'static str, kind: Kind) {
    let why = format!(
        "it answered with the interim status {}, not a final one",
        resp.status().as_u16()
    );
    *resp = plugin_failure(name, kind, &gwplugin::Error::new(why));
}

/// The plugin whose body stream failed, if a plugin's did.
fn failed_plugin<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e PluginBodyFailed> {
    causes(e).find_map(|c| c.downcast_ref::<PluginBodyFailed>())
}

/// A plugin's body stream failed: which plugin, and why.
#[derive(Debug)]
struct PluginBodyFailed {
    name: &'static str,
    kind: Kind,
    source: gwplugin::BoxError,
}

impl std::fmt::Display for PluginBodyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for PluginBodyFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Polls a plugin's streamed response body as that plugin, as its calls are: what it logs
/// while hyper streams it carries its name, and its failure says whose it was. Each
/// plugin that answers wraps what it answers, so a failure is the innermost plugin's
/// whose stream it came from (a backend's stays a backend's).
#[inline]
fn attribute_streamed_body(resp: &mut Response, name: &'static str, kind: Kind) {
    // Most bodies are in memory: the check inline, the wrapping not.
    if resp.body().as_bytes().is_none() {
        attribute_stream(resp, name, kind);
    }
}

#[inline(never)]
fn attribute_stream(resp: &mut Response, name: &'static str, kind: Kind) {
    wrap_streamed_body(resp, |body| PluginBody {
        name,
        kind,
        promised: body
            .size_hint()
            .exact()
            .map(|length| Promised { length, sent: 0 }),
        body,
    });
}

struct PluginBody {
    name: &'static str,
    kind: Kind,
    body: Body,
    /// The length the stream's exact size hint gave, which becomes the response's
    /// `Content-Length`: a chunk going past it was cut there (silently, by hyper), a
    /// stream ending short left the client waiting for the rest or with no answer at all.
    /// Either is the plugin's failure, and the response's. (Chunks after the promised
    /// length is reached hyper does not ask for.)
    promised: Option<Promised>,
}

#[derive(Clone, Copy)]
struct Promised {
    length: u64,
    sent: u64,
}

impl Promised {
    /// Counts a frame's bytes; the broken promise, if they break it.
    fn count(&mut self, frame: &hyper::body::Frame<bytes::Bytes>) -> Result<(), String> {
        let len = frame.data_ref().map_or(0, |d| d.len() as u64);
        self.sent = self.sent.saturating_add(len);
        if self.sent > self.length {
            return Err(format!(
                "its body stream yielded more than the {} bytes its exact size hint promised",
                self.length
            ));
        }
        Ok(())
    }

    /// The broken promise, if the stream ended short of it.
    fn check_end(&self) -> Result<(), String> {
        if self.sent < self.length {
            return Err(format!(
                "its body stream ended after {} of the {} bytes its exact size hint promised",
                self.sent, self.length
            ));
        }
        Ok(())
    }
}

impl hyper::body::Body for PluginBody {
    type Data = bytes::Bytes;
    type Error = gwplugin::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = scope::in_plugin(this.name, || Pin::new(&mut this.body).poll_frame(cx));
        let broken = match (&polled, &mut this.promised) {
            (Poll::Ready(Some(Ok(frame))), Some(promised)) => promised.count(frame).err(),
            (Poll::Ready(None), Some(promised)) => promised.check_end().err(),
            _ => None,
        };
        // The plugin's failure: its promise broken, or its own error (one already
        // attributed, or a backend's, goes through as it is).
        let source: gwplugin::BoxError = match (broken, polled) {
            (Some(broken), _) => broken.into(),
            (None, Poll::Ready(Some(Err(e))))
                if failed_plugin(e.as_ref()).is_none() && !is_backend_failure(&e) =>
            {
                e
            }
            (None, polled) => return polled,
        };
        Poll::Ready(Some(Err(Box::new(PluginBodyFailed {
            name: this.name,
            kind: this.kind,
            source,
        }))))
    }

    fn is_end_stream(&self) -> bool {
        // Not before what it promised came: its end is then polled, and fails.
        self.body.is_end_stream() && self.promised.is_none_or(|p| p.sent >= p.length)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        // What is left of the promise, which the stream's own hint may no longer say.
        match self.promised {
            Some(p) => hyper::body::SizeHint::with_exact(p.length.saturating_sub(p.sent)),
            None => self.body.size_hint(),
        }
    }
}

/// Keeps a body's failure in `slot` for the next poll and has it come at once. A failure
/// in the pass that wrote the head and the chunks before it would have hyper drop them
/// unsent with the connection: the client would get nothing, as if never answered. Held
/// back one poll, they are flushed first, and the client sees the status and what came
/// before the connection closes (as from nginx).
fn hold_back<T>(
    slot: &mut Option<gwplugin::BoxError>,
    failure: gwplugin::BoxError,
    cx: &mut Context<'_>,
) -> Poll<T> {
    *slot = Some(failure);
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// Why a backend's body ended early (already logged, by [`BackendBody`]).
#[derive(Debug)]
struct BackendBodyFailed(gwplugin::BoxError);

impl std::fmt::Display for BackendBodyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BackendBodyFailed {
    // Kept: an http-client plugin's body that failed is the plugin's (its status, 500).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

struct BackendBody {
    body: Body,
    /// Armed when a poll finds no frame, for `timeout` from then; disarmed by a frame.
    /// Time the client takes to read what came (hyper polls only when it can write) is
    /// not the backend's.
    idle: Option<timer::Sleep>,
    timeout: Duration,
    request_id: u64,
    /// Whether its failure is held back for one poll ([`hold_back`]), and that failure.
    hold_back: bool,
    held: Option<gwplugin::BoxError>,
}

impl BackendBody {
    /// Logs `error` (an http-client plugin's body may have panicked: that is the
    /// plugin's fault, an ERROR) and marks it logged.
    fn failed(&self, error: gwplugin::BoxError) -> gwplugin::BoxError {
        log_body_failure(self.request_id, error.as_ref());
        Box::new(BackendBodyFailed(error))
    }

    /// Ends the body with `failure`, held back one poll if hyper polls this body.
    fn fail(
        &mut self,
        failure: gwplugin::BoxError,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, gwplugin::BoxError>>> {
        if self.hold_back {
            hold_back(&mut self.held, failure, cx)
        } else {
            Poll::Ready(Some(Err(failure)))
        }
    }
}

impl hyper::body::Body for BackendBody {
    type Data = bytes::Bytes;
    type Error = gwplugin::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(e) = this.held.take() {
            return Poll::Ready(Some(Err(e)));
        }
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.idle = None;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let failed = this.failed(e);
                this.fail(failed, cx)
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let timeout = this.timeout;
                let idle = this
                    .idle
                    .get_or_insert_with(|| timer::sleep_until(Instant::now() + timeout));
                if Pin::new(idle).poll(cx).is_ready() {
                    let why = format!("the backend sent nothing for {timeout:?}");
                    let failed = this.failed(why.into());
                    return this.fail(failed, cx);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// A streamed response body whose failure, once its head is out, is logged with the
/// request id: at ERROR for a plugin's panic (its message says where), at WARN for a
/// plugin's error. (A backend's failures are logged where they happen.) Only in a
/// pipeline with plugins.
///
/// The body is polled once first, without waiting: one that fails at once (a plugin's
/// that panics before its first chunk) becomes a 500 the client can read (a 502 for a
/// backend's), where hyper would close the connection before any head went out.
async fn report_plugin_body_failures(resp: &mut Response) {
    if resp.body().as_bytes().is_some() {
        return;
    }
    let mut body = std::mem::take(resp.body_mut());
    let first =
        match std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
            Poll::Ready(Some(Err(e))) => {
                let failed = failed_plugin(e.as_ref());
                if !is_logged(&e) {
                    if failed.is_some() || is_panic(e.as_ref()) {
                        tracing::error!(
                            plugin = failed.map(|p| p.name),
                            kind = failed.map(|p| p.kind.as_str()),
                            request_id = request_id(),
                            "response body failed before its first chunk: {e}"
                        );
                    } else {
                        tracing::warn!(
                            request_id = request_id(),
                            "the backend's response body failed before its first chunk: {e}"
                        );
                    }
                }
                let status = if failed.is_some() {
                    // The status a plugin's error carries, as for its other failures.
                    causes(e.as_ref())
                        .find_map(|c| c.downcast_ref::<gwplugin::Error>())
                        .map_or(StatusCode::INTERNAL_SERVER_ERROR, failure_status)
                } else if is_backend_failure(&e) {
                    StatusCode::BAD_GATEWAY
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                *resp = failure_response(status, request_id());
                return;
            }
            Poll::Ready(Some(Ok(frame))) => Some(frame),
            Poll::Ready(None) => {
                *resp.body_mut() = Body::empty();
                return;
            }
            Poll::Pending => None,
        };
    *resp.body_mut() = Body::from_stream(ReportedBody {
        first,
        body,
        request_id: request_id(),
        held: None,
        empty_frames: 0,
    });
}

/// Whether a body's failure is a backend's (logged already, by [`BackendBody`]), also when
/// a plugin wrapped it.
fn is_backend_failure(e: &gwplugin::BoxError) -> bool {
    // A plugin's `send` gives it the backend's body as the host's client made it.
    causes(e.as_ref()).any(|c| c.is::<BackendBodyFailed>() || c.is::<BackendError>())
}

/// Whether a body's failure was logged where it happened (by [`BackendBody`]).
fn is_logged(e: &gwplugin::BoxError) -> bool {
    causes(e.as_ref()).any(|c| c.is::<BackendBodyFailed>())
}

struct ReportedBody {
    /// A frame polled before the head went out, sent first.
    first: Option<hyper::body::Frame<bytes::Bytes>>,
    body: Body,
    request_id: u64,
    /// The body's failure, held back for one poll ([`hold_back`]).
    held: Option<gwplugin::BoxError>,
    /// Empty data frames in a row, since the last yield.
    empty_frames: u32,
}

impl hyper::body::Body for ReportedBody {
    type Data = bytes::Bytes;
    type Error = gwplugin::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(frame) = this.first.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(e) = this.held.take() {
            return Poll::Ready(Some(Err(e)));
        }
        // Hyper polls the body outside the request's future: what plugin code logs while
        // it streams still carries the request id.
        match scope::in_request(this.request_id, || Pin::new(&mut this.body).poll_frame(cx)) {
            Poll::Ready(Some(Err(e))) => {
                if !is_logged(&e) {
                    log_body_failure(this.request_id, e.as_ref());
                }
                hold_back(&mut this.held, e, cx)
            }
            // hyper skips an empty data frame and polls again at once: a stream of them,
            // always ready, would hold the worker's thread for good (no other connection
            // served, not even this one's client leaving noticed). Every 64th in a row
            // yields instead.
            Poll::Ready(Some(Ok(frame))) if frame.data_ref().is_some_and(|d| d.is_empty()) => {
                this.empty_frames += 1;
                if this.empty_frames.is_multiple_of(64) {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            polled => {
                this.empty_frames = 0;
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.held.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        let mut hint = self.body.size_hint();
        let first = self
            .first
            .as_ref()
            .and_then(|f| f.data_ref())
            .map_or(0, |d| d.len() as u64);
        if first > 0 {
            // Upper first: a lower bound above the upper one panics.
            if let Some(upper) = hint.upper() {
                hint.set_upper(upper.saturating_add(first));
            }
            hint.set_lower(hint.lower().saturating_add(first));
        }
        hint
    }
}

/// The router as the `next` of the innermost http-server plugin.
struct RouterHandler(&'static Router);

impl ErasedHandler for RouterHandler {
    fn call(&self, req: Request) -> BoxFuture<'_, Result<Response, gwplugin::Error>> {
        // The router's future boxed as it is, in place, not inside an `async` block that
        // awaits it: each would copy the (large) future once more.
        pin_box_with(|| AlwaysOk {
            inner: self.0.handle(req),
        })
    }
}

pin_project_lite::pin_project! {
    /// A future's output as `Ok`.
    struct AlwaysOk<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future<Output = Response>> Future for AlwaysOk<F> {
    type Output = Result<Response, gwplugin::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map(Ok)
    }
}

/// An http-server plugin instance whose errors become that request's response here,
/// where its name is known, so outer plugins see a response, not an error.
struct ServerLayer {
    name: &'static str,
    inner: Handler,
}

impl ErasedHandler for ServerLayer {
    fn call(&self, req: Request) -> BoxFuture<'_, Result<Response, gwplugin::Error>> {
        let fut = PluginScope::new(self.name, self.inner.call(req));
        Box::pin(async move {
            Ok(match fut.await {
                Ok(mut resp) => {
                    refuse_interim_status(&mut resp, self.name, Kind::HttpServer);
                    attribute_streamed_body(&mut resp, self.name, Kind::HttpServer);
                    resp
                }
                Err(e) => plugin_failure(self.name, Kind::HttpServer, &e),
            })
        })
    }
}

/// Makes a response's `Content-Length` say what its body is: a plugin that replaced the
/// body may have left the backend's, and hyper would then send a length that disagrees
/// with the bytes that follow (the client reads the rest as the next response). The
/// length is the body's when the body knows it; otherwise it goes, and hyper chunks the
/// body. Not for a status without a body, where the header describes a body not sent.
fn content_length_of_body(resp: &mut Response) {
    let status = resp.status();
    if status == StatusCode::NO_CONTENT {
        // A 204 has no body, and no `Content-Length` either (RFC 9110 §8.6).
        resp.headers_mut().remove(header::CONTENT_LENGTH);
        return;
    }
    if status.is_informational() || status == StatusCode::NOT_MODIFIED {
        return;
    }
    let Some(declared) = resp.headers().get(header::CONTENT_LENGTH) else {
        return;
    };
    // Digits only, as RFC 9110 has it (and no UTF-8 check: the bytes are ASCII or wrong).
    let digits = declared.as_bytes();
    let declared = digits.iter().try_fold(0u64, |n, b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    });
    let declared = declared.filter(|_| !digits.is_empty());
    // A plugin's `transfer-encoding` beside it: hyper would frame the body neither way and
    // close the connection unanswered. The body's framing is hyper's to choose.
    // A scan, not a lookup: a response has few headers, and hashing the name costs more.
    if resp
        .headers()
        .keys()
        .any(|k| k == header::TRANSFER_ENCODING)
    {
        resp.headers_mut().remove(header::TRANSFER_ENCODING);
    }
    match resp.body().size_hint().exact() {
        Some(len) if declared == Some(len) => {}
        Some(len) => {
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        None => {
            resp.headers_mut().remove(header::CONTENT_LENGTH);
        }
    }
}

/// A client's request body as plugins get it: lent for the time of its request. A plugin
/// may keep it longer (in a task it spawned), and hyper, while the body is wanted, keeps
/// its connection open and reads no next request: a connection held per request as
/// long as the task lives, and a stop waiting for it. The loan ends with the response
/// ([`end_loan_with`]); the body is then dropped, and what still holds it gets an error.
type Loan = Arc<Mutex<Option<Body>>>;

/// Lends `req`'s body, when it is a stream; the loan, to end with the response.
fn lend_body(req: &mut Request) -> Option<Loan> {
    if req.body().as_bytes().is_some() {
        return None;
    }
    let loan: Loan = Arc::new(Mutex::new(Some(std::mem::take(req.body_mut()))));
    *req.body_mut() = Body::from_stream(LentBody(loan.clone()));
    Some(loan)
}

fn lock(loan: &Loan) -> std::sync::MutexGuard<'_, Option<Body>> {
    loan.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct LentBody(Loan);

/// A lent body polled after its request ended.
#[derive(Debug, thiserror::Error)]
#[error("the client's request body is gone: its request has ended")]
struct LoanEnded;

impl hyper::body::Body for LentBody {
    type Data = bytes::Bytes;
    type Error = gwplugin::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        match lock(&self.0).as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(Some(Err(Box::new(LoanEnded)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        // Ended loans are not: their next poll says why.
        lock(&self.0).as_ref().is_some_and(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        lock(&self.0)
            .as_ref()
            .map_or_else(Default::default, |b| b.size_hint())
    }
}

/// Ends `loan` when `resp` has been sent (or dropped unsent): its body is wrapped in one
/// that drops the lent body with itself. A plugin's response may stream the request's
/// body back, so not before.
fn end_loan_with(resp: &mut Response, loan: Loan) {
    let body = std::mem::take(resp.body_mut());
    *resp.body_mut() = Body::from_stream(EndsLoan { body, loan });
}

struct EndsLoan {
    body: Body,
    loan: Loan,
}

impl Drop for EndsLoan {
    fn drop(&mut self) {
        // Taken out under the lock, dropped after it.
        let lent = lock(&self.loan).take();
        drop(lent);
    }
}

impl hyper::body::Body for EndsLoan {
    type Data = bytes::Bytes;
    type Error = gwplugin::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Turns a request or response body from hyper into the contract's body.
pub fn incoming_body(body: Incoming) -> Body {
    // Most requests have no body: don't box a stream for nothing.
    if body.is_end_stream() {
        Body::empty()
    } else {
        Body::from_stream(ClientBody(body))
    }
}

thread_local! {
    /// The last request on this thread whose client's body broke off or was malformed.
    static CLIENT_BODY_FAILED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A client's request body, which notes its request when it fails: a plugin that read it
/// (an http-client plugin sending it on) fails then, and the failure is the client's.
struct ClientBody(Incoming);

impl gwplugin::http_body::Body for ClientBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    #[inline]
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<gwplugin::http_body::Frame<bytes::Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.0).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            CLIENT_BODY_FAILED.set(request_id());
        }
        polled
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> gwplugin::http_body::SizeHint {
        self.0.size_hint()
    }
}

/// Whether this request's client body failed (noted by [`ClientBody`]).
fn client_body_failed() -> bool {
    let id = request_id();
    id != 0 && CLIENT_BODY_FAILED.get() == id
}

/// The answer to a request a plugin failed, logged at ERROR.
fn plugin_failure(name: &str, kind: Kind, err: &gwplugin::Error) -> Response {
    let id = request_id();
    if client_body_failed() {
        // The plugin failed on the client's broken body: as on the path without plugins.
        tracing::info!(
            plugin = name,
            request_id = id,
            "the client's request body failed: {err}"
        );
        return status_response(StatusCode::BAD_REQUEST);
    }
    let status = failure_status(err);
    tracing::error!(
        plugin = name,
        kind = kind.as_str(),
        request_id = id,
        status = status.as_u16(),
        "{}{err}",
        // A panic's message already says "plugin panicked at FILE:LINE".
        if err.is_panic() {
            ""
        } else {
            "plugin failed: "
        }
    );
    failure_response(status, id)
}

/// A failure's answer: its status, and the request's id, which its log lines carry.
fn failure_response(status: StatusCode, request_id: u64) -> Response {
    let mut resp = status_response(status);
    resp.headers_mut()
        .insert("x-request-id", HeaderValue::from(request_id));
    resp
}

/// The status a plugin's error answers with: the one it carries, if that is an error
/// status (4xx, 5xx), else 500. A 1xx would be no final answer at all (hyper sends a 500
/// of its own, or a `101` that switches to nothing), and a 2xx or 3xx would pass a
/// failure off as a success.
fn failure_status(err: &gwplugin::Error) -> StatusCode {
    err.status()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The path of gwhost's own health check, as KrakenD's: load balancers and orchestrators
/// probe it. An endpoint whose path takes it, by whatever method, replaces it.
pub const HEALTH_PATH: &str = "/__health";

/// The answer to a request RFC 9112 has a server refuse, before any plugin or backend
/// sees it; `None` for the others (hyper checks the rest of the framing).
#[inline]
fn refuse_malformed(req: &Request) -> Option<Response> {
    // §3.2: HTTP/1.1 needs a `Host`, and no request may have two (which one would a
    // plugin, and a backend behind another proxy, go by?).
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let first = hosts.next();
    if (first.is_none() && req.version() == Version::HTTP_11) || hosts.next().is_some() {
        return Some(refuse(
            StatusCode::BAD_REQUEST,
            &"a request needs exactly one `Host` header",
        ));
    }
    if req.body().is_end_stream() {
        return None;
    }
    unsupported_coding(req)
}

/// §6.1: a transfer coding the gateway does not decode (hyper takes `gzip, chunked`, and
/// undoes only the `chunked`) would reach the backend as if it were the content.
#[inline(never)]
fn unsupported_coding(req: &Request) -> Option<Response> {
    // A scan, not a lookup: a further caller of `get`/`get_all` changes how the compiler
    // inlines the hot ones, on every request; this is only for requests with a body.
    let (_, coding) = req
        .headers()
        .iter()
        .find(|(name, _)| *name == header::TRANSFER_ENCODING)?;
    if coding
        .as_bytes()
        .trim_ascii()
        .eq_ignore_ascii_case(b"chunked")
    {
        return None;
    }
    Some(refuse(
        StatusCode::NOT_IMPLEMENTED,
        &format_args!("transfer coding {coding:?} is not supported, only `chunked`"),
    ))
}

#[cold]
#[inline(never)]
fn refuse(status: StatusCode, why: &dyn std::fmt::Display) -> Response {
    tracing::debug!(
        request_id = request_id(),
        "refused ({}): {why}",
        status.as_u16()
    );
    status_response(status)
}

/// The answer to a request no endpoint takes: the health check, or 404. Out of line:
/// routed requests don't carry its code.
#[cold]
#[inline(never)]
fn unrouted(req: &Request, answers_health: bool) -> Response {
    if answers_health && is_health_check(req) {
        return health_response();
    }
    status_response(StatusCode::NOT_FOUND)
}

/// `GET` or `HEAD` of gwhost's health check path.
fn is_health_check(req: &Request) -> bool {
    req.uri().path() == HEALTH_PATH && matches!(*req.method(), Method::GET | Method::HEAD)
}

fn health_response() -> Response {
    let mut resp = Response::new(Body::from(r#"{"status":"ok"}"#));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A response made by the gateway itself: the status and its reason as the body.
pub fn status_response(status: StatusCode) -> Response {
    let mut resp = Response::new(Body::from(status.canonical_reason().unwrap_or("error")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The headers never forwarded, in [`hop_by_hop_index`]'s order.
static NEVER_FORWARDED: [HeaderName; 12] = [
    // Those that describe one connection, not the message (RFC 9110 §7.6.1).
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    // The framing headers spelt with underscores: a backend that reads `_` as `-` (CGI
    // and WSGI servers do) would take them for a second framing of a body gwhost frames
    // by its own: the shape of request smuggling (nginx drops every name with an
    // underscore).
    HeaderName::from_static("content_length"),
    HeaderName::from_static("transfer_encoding"),
    // Answered by gwhost (hyper sends the `100 Continue`); an HTTP/1.0 client's must be
    // ignored (RFC 9110 §10.1.1), and the backend gets an HTTP/1.1 request. As nginx.
    header::EXPECT,
];

pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the headers, then a removal per name present (usually only
    // `connection`), instead of a hashed lookup per hop-by-hop name.
    let mut present = 0u16;
    // Headers the peer declared hop-by-hop in `Connection` go too.
    let mut declared: Vec<HeaderName> = Vec::new();
    for (name, value) in headers.iter() {
        let Some(i) = hop_by_hop_index(name) else {
            continue;
        };
        present |= 1 << i;
        if i == 0 {
            declared_in_connection(value, &mut declared);
        }
    }
    for name in declared {
        headers.remove(name);
    }
    while present != 0 {
        let i = present.trailing_zeros() as usize;
        present &= present - 1;
        headers.remove(&NEVER_FORWARDED[i]);
    }
}

/// The header names a `Connection` value lists, other than `keep-alive` and `close`.
fn declared_in_connection(value: &HeaderValue, declared: &mut Vec<HeaderName>) {
    let value = value.as_bytes();
    // The usual values, without splitting.
    if value.eq_ignore_ascii_case(b"keep-alive") || value.eq_ignore_ascii_case(b"close") {
        return;
    }
    for token in value.split(|b| *b == b',') {
        let token = token.trim_ascii();
        if token.is_empty()
            || token.eq_ignore_ascii_case(b"keep-alive")
            || token.eq_ignore_ascii_case(b"close")
        {
            continue;
        }
        // Not `host` nor `content-length`: gwhost has checked and read them, and a
        // plugin goes by them.
        if let Ok(name) = HeaderName::from_bytes(token)
            && name != header::HOST
            && name != header::CONTENT_LENGTH
        {
            declared.push(name);
        }
    }
}

/// The index of `name` in [`NEVER_FORWARDED`].
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    // A string match (length first) rather than up to 12 `HeaderName` comparisons.
    Some(match name.as_str() {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-connection" => 2,
        "proxy-authenticate" => 3,
        "proxy-authorization" => 4,
        "te" => 5,
        "trailer" => 6,
        "transfer-encoding" => 7,
        "upgrade" => 8,
        "content_length" => 9,
        "transfer_encoding" => 10,
        "expect" => 11,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_that_name_one_host_share_a_pool_key() {
        let key = |url: &str| {
            let uri: Uri = url.parse().unwrap();
            pool_key(uri.scheme().unwrap(), uri.authority().unwrap())
        };
        assert_eq!(key("http://Backend"), key("http://backend:80"));
        assert_eq!(key("https://backend"), key("https://BACKEND:443"));
        assert_ne!(key("http://backend"), key("https://backend"));
        assert_ne!(key("http://backend:8080"), key("http://backend"));
    }
}
