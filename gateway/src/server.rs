//! Accepting connections and the graceful stop: on the first stop request (SIGTERM or
//! SIGINT) the listener is closed, idle connections are closed and in-flight requests
//! finish; when the drain timeout passes, or on a second stop request, the connections
//! still open are closed; then `serve` returns.

use std::convert::Infallible;
use std::future::Future as _;
use std::sync::Arc;

use gwplugin_host::tls::TcpOrTls;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;

use crate::gateway::{Gateway, incoming_body};
use crate::timer::WheelTimer;
use crate::watchdog::Heartbeats;

/// Serves `gateway` on `listener` until the first stop request arrives on `stops`, then
/// drains: waits for the requests in flight, for at most `drain_timeout` (if set) and
/// only until a second stop request; the connections still open then are closed.
///
/// Connections are served by [`worker_count`] threads, each with its own single-threaded
/// tokio runtime: the accept loop (here, on the caller's runtime) hands each accepted
/// connection to the next worker in turn. A request then runs start to finish on one
/// thread, with that thread's backend connections: no work-stealing, no cross-thread
/// wake-ups on the hot path (on a multi-threaded runtime those cost more than hyper
/// itself).
///
/// The gateway is `'static` (it lives as long as the process, as its plugins do): each
/// request then uses it without touching a reference count that every worker shares.
pub async fn serve(
    listener: TcpListener,
    gateway: &'static Gateway,
    tls: Option<&'static TlsAcceptor>,
    mut stops: mpsc::UnboundedReceiver<()>,
    drain_timeout: Option<std::time::Duration>,
) {
    // Connections watch this; its receiver count is the number still open.
    let (stop_tx, stop_rx) = watch::channel(Phase::Serving);
    // Declared after `stop_tx`, so dropped before it: if this function unwinds, the
    // connections woken by the sender's drop do look at the watch.
    let _stopping_on_exit = StoppingOnDrop;
    let mut workers = Vec::new();
    let mut exited = Vec::new();
    let cores = cores();
    let count = worker_count(cores);
    let yield_when_parking = count < cores;
    tracing::info!(
        workers = count,
        cores,
        yield_when_parking,
        "starting worker threads"
    );
    let heartbeats = Heartbeats::new(count);
    for index in 0..count {
        let heartbeats = heartbeats.clone();
        match Worker::start(
            index,
            gateway,
            tls,
            stop_rx.clone(),
            yield_when_parking,
            heartbeats,
        ) {
            Ok((worker, done)) => {
                workers.push(worker);
                exited.push(done);
            }
            Err(e) => tracing::error!("cannot start worker thread {index}: {e}"),
        }
    }
    // Aborted when `serve` returns, however it does.
    let watchdog = tokio::spawn(heartbeats.clone().watch()).abort_handle();
    let _stop_watchdog = AbortOnDrop(watchdog);
    let mut next = 0usize;
    let mut accept_failures = AcceptFailures::default();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if accept_failures.last_logged.is_some() {
                        accept_failures.accepted();
                    }
                    stream
                }
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the others.
                    accept_failures.failed(&e);
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = next_stop(&mut stops) => break,
        };
        let _ = stream.set_nodelay(true);
        if workers.is_empty() {
            // No worker thread could be started: serve here.
            spawn_client(stream, gateway, tls, stop_rx.clone(), ());
            continue;
        }
        // Round robin, past workers whose event loop has not run lately (something blocks
        // it, see `watchdog`): a connection handed to one would wait as long. When none
        // has run lately, the turn's worker. The stream leaves this runtime's reactor for
        // the worker's.
        let count = workers.len();
        let turn = (0..count)
            .map(|k| (next + k) % count)
            .find(|&i| heartbeats.is_running(workers[i].index))
            .unwrap_or(next % count);
        match stream.into_std() {
            Ok(stream) => {
                let _ = workers[turn].streams.send(stream);
                next = turn.wrapping_add(1);
            }
            Err(e) => tracing::warn!("cannot hand a connection to a worker: {e}"),
        }
    }
    drop(listener);
    // Workers finish their connections, then their threads end.
    drop(workers);
    drop(stop_rx);
    tracing::info!(
        connections = OPEN_CONNECTIONS.load(std::sync::atomic::Ordering::Relaxed),
        "stopped accepting; finishing in-flight requests"
    );
    // Before the send: see `until_draining`.
    STOPPING.store(true, std::sync::atomic::Ordering::Release);
    let _ = stop_tx.send(Phase::Draining);
    let mut drained = std::pin::pin!(async {
        stop_tx.closed().await;
        for done in exited {
            let _ = done.await;
        }
    });
    let deadline = async {
        match drain_timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let why = tokio::select! {
        () = &mut drained => return,
        () = deadline => format!("drain timeout ({:?}) passed", drain_timeout.unwrap_or_default()),
        () = next_stop(&mut stops) => "second stop signal".to_owned(),
    };
    tracing::warn!(
        connections = OPEN_CONNECTIONS.load(std::sync::atomic::Ordering::Relaxed),
        "{why}: closing the connections still open"
    );
    let _ = stop_tx.send(Phase::Closing);
    // Closing a connection drops its request's future, plugin futures included; a plugin
    // destructor that blocks must not hold the stop for ever.
    if tokio::time::timeout(std::time::Duration::from_secs(1), &mut drained)
        .await
        .is_err()
    {
        tracing::warn!("worker threads still busy after closing their connections");
    }
}

/// Set once a [`serve`] in this process has begun to stop, before it tells its
/// connections: until then they need not look at their `stop` watch.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Completes once `stop` says [`Phase::Draining`] or later (or its sender is gone). Its
/// first poll registers the task's waker with the watch; later polls look at the watch
/// again only once [`STOPPING`] is set. A connection's task is polled a few times per
/// request, and polling the watch each time cost 270–435 instructions per request
/// (`scripts/bench-instructions.sh` at `-c1` and `-c8`, BENCHMARKS.md). This relies on
/// the future being polled by one task, whose waker does not change.
async fn until_draining(stop: &mut watch::Receiver<Phase>) {
    // Unconstrained: with the task's coop budget spent, a first poll would return
    // Pending without registering, and nothing would wake this task at the stop.
    let mut waiting = std::pin::pin!(tokio::task::unconstrained(
        stop.wait_for(|phase| *phase >= Phase::Draining)
    ));
    let mut registered = false;
    std::future::poll_fn(move |cx| {
        if registered && !STOPPING.load(std::sync::atomic::Ordering::Acquire) {
            return std::task::Poll::Pending;
        }
        registered = true;
        waiting.as_mut().poll(cx).map(|_| ())
    })
    .await
}

/// The accept loop's failures, logged at most once a second: while file descriptors run
/// out, accept fails every time it is retried (every 10 ms), and a line each time would
/// bury the rest of the log.
#[derive(Default)]
struct AcceptFailures {
    last_logged: Option<std::time::Instant>,
    since_logged: u64,
}

impl AcceptFailures {
    fn failed(&mut self, e: &std::io::Error) {
        let now = std::time::Instant::now();
        if self
            .last_logged
            .is_some_and(|at| now.duration_since(at) < std::time::Duration::from_secs(1))
        {
            self.since_logged += 1;
            return;
        }
        if self.since_logged > 0 {
            tracing::warn!(
                "accept failed: {e} (and {} more times since the last line)",
                self.since_logged
            );
        } else {
            tracing::warn!("accept failed: {e}");
        }
        self.last_logged = Some(now);
        self.since_logged = 0;
    }

    /// A connection was accepted. While descriptors are short, accepts and failures
    /// alternate (each closed connection frees one): the failures not yet told are told
    /// once a second has passed since the last line, not at every accept.
    fn accepted(&mut self) {
        let Some(at) = self.last_logged else {
            return;
        };
        if at.elapsed() < std::time::Duration::from_secs(1) {
            return;
        }
        if self.since_logged > 0 {
            tracing::warn!(
                "accepting connections again, after {} more failures since the last line",
                self.since_logged
            );
            // A line, as a failure's: the next failure waits its second too.
            self.last_logged = Some(std::time::Instant::now());
        } else {
            self.last_logged = None;
        }
        self.since_logged = 0;
    }
}

/// Raises the soft limit on open files to the hard one, as Go programs (KrakenD among
/// them) do at start: each proxied connection takes two descriptors (the client's and
/// its backend's), and the usual soft limit of 1024 would refuse connections at ~500
/// clients on a machine that allows far more.
pub fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit`/`setrlimit` read and write the one struct given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    let soft = limit.rlim_cur;
    if soft >= limit.rlim_max {
        tracing::debug!(open_files = soft, "open files limit");
        return;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0 {
        tracing::debug!(
            from = soft,
            to = limit.rlim_max,
            "raised the open files limit"
        );
    } else {
        let e = std::io::Error::last_os_error();
        tracing::warn!(
            open_files = soft,
            "cannot raise the open files limit to {}: {e}",
            limit.rlim_max
        );
    }
}

/// Connections being served now, for the stop's log lines. (The stop watch's receiver
/// count, used before, also counted the workers' own receivers, which they drop when
/// they please: the lines said 0 with a request in flight.) Counted per connection, not
/// per request.
static OPEN_CONNECTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One connection counted in [`OPEN_CONNECTIONS`] while it lives.
struct OpenConnection;

impl OpenConnection {
    fn enter() -> OpenConnection {
        OPEN_CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        OPEN_CONNECTIONS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sets [`STOPPING`] when dropped.
struct StoppingOnDrop;

impl Drop for StoppingOnDrop {
    fn drop(&mut self) {
        STOPPING.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Where the stop has got to, as the connections see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Serving,
    /// Finish the requests in flight, take no more.
    Draining,
    /// Close now.
    Closing,
}

/// The next stop request; never, if nobody can send one any more.
async fn next_stop(stops: &mut mpsc::UnboundedReceiver<()>) {
    if stops.recv().await.is_none() {
        std::future::pending().await
    }
}

/// The cores this process may run on.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How many worker threads serve connections: `TOKIO_WORKER_THREADS` if set (as for
/// tokio's own multi-threaded runtime), else one per available core. Unlike tokio, which
/// panics on them, 0 and a value that is not a number mean the default.
pub(crate) fn worker_count(cores: usize) -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| positive_count(&v))
        .unwrap_or(cores)
}

/// `TOKIO_WORKER_THREADS` when it is set to something [`worker_count`] passes over.
pub(crate) fn ignored_worker_count() -> Option<String> {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .filter(|v| positive_count(v).is_none())
}

fn positive_count(value: &str) -> Option<usize> {
    value.trim().parse::<usize>().ok().filter(|n| *n > 0)
}

/// A worker thread: a current-thread runtime serving the connections it is handed.
struct Worker {
    /// Its number, as in its thread's name and in [`Heartbeats`].
    index: usize,
    streams: mpsc::UnboundedSender<std::net::TcpStream>,
}

impl Worker {
    /// The worker, and a receiver that completes once its thread has finished. With
    /// `yield_when_parking` it calls [`yield_to_woken_peers`] each time it runs out of
    /// tasks: [`serve`] asks for it when the workers leave cores free.
    fn start(
        index: usize,
        gateway: &'static Gateway,
        tls: Option<&'static TlsAcceptor>,
        stop: watch::Receiver<Phase>,
        yield_when_parking: bool,
        heartbeats: Arc<Heartbeats>,
    ) -> std::io::Result<(Worker, oneshot::Receiver<()>)> {
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.enable_all();
        if yield_when_parking {
            builder.on_thread_park(yield_to_woken_peers);
        }
        let runtime = builder.build()?;
        let (streams, mut incoming) = mpsc::unbounded_channel::<std::net::TcpStream>();
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("gwhost-worker-{index}"))
            .spawn(move || {
                let beating = heartbeats.clone().beat(index);
                // Its beats end with the runtime, however the thread ends: a finished
                // worker is not a stalled one.
                struct Stopped(Arc<Heartbeats>, usize);
                impl Drop for Stopped {
                    fn drop(&mut self) {
                        self.0.stopped(self.1);
                    }
                }
                let stopped = Stopped(heartbeats, index);
                runtime.block_on(async move {
                    tokio::spawn(beating);
                    // Backend connections closed while idle in this worker's pools go
                    // once a second, off the request path.
                    tokio::spawn(gwplugin_host::upstream::reap_idle_every(
                        std::time::Duration::from_secs(1),
                    ));
                    // This worker's own connection count, like `stop` for all of them.
                    let (open_tx, open_rx) = watch::channel(());
                    while let Some(stream) = incoming.recv().await {
                        let stream = match TcpStream::from_std(stream) {
                            Ok(stream) => stream,
                            Err(e) => {
                                tracing::warn!("cannot register a connection: {e}");
                                continue;
                            }
                        };
                        spawn_client(stream, gateway, tls, stop.clone(), open_rx.clone());
                    }
                    drop((open_rx, stop));
                    open_tx.closed().await;
                });
                // Backend connections and other leftovers go with the runtime.
                runtime.shutdown_timeout(std::time::Duration::from_millis(100));
                drop(stopped);
                let _ = done_tx.send(());
            })?;
        Ok((Worker { index, streams }, done_rx))
    }
}

/// Spawns the task that serves one client connection, on the current runtime; `held` is
/// dropped when it ends. Two kinds of task: a plain connection's polls go through no TLS
/// layer.
fn spawn_client<T: Send + 'static>(
    stream: TcpStream,
    gateway: &'static Gateway,
    tls: Option<&'static TlsAcceptor>,
    stop: watch::Receiver<Phase>,
    held: T,
) {
    match tls {
        None => {
            let conn = serve_connection(TcpOrTls::Tcp(stream), gateway, stop);
            tokio::spawn(async move {
                conn.await;
                drop(held);
            });
        }
        Some(tls) => {
            let conn = serve_tls(stream, tls, gateway, stop);
            tokio::spawn(async move {
                conn.await;
                drop(held);
            });
        }
    }
}

/// A client connection: TCP, or TLS over it.
type ClientStream = TcpOrTls<tokio_rustls::server::TlsStream<TimedTcp>>;

/// Serves one client connection of a gateway that serves HTTPS, after its handshake.
async fn serve_tls(
    stream: TcpStream,
    acceptor: &'static TlsAcceptor,
    gateway: &'static Gateway,
    mut stop: watch::Receiver<Phase>,
) {
    let peer = stream.peer_addr().ok();
    let handshake = async {
        // A TLS handshake starts with a handshake record (22); anything else is most
        // likely plain HTTP sent to the HTTPS port: answered as Go's servers do, in
        // words, rather than with a TLS alert a browser shows as garbage.
        let mut first = [0u8; 1];
        if matches!(stream.peek(&mut first).await, Ok(1)) && first[0] != 22 {
            refuse_plain_http(stream).await;
            return Err(());
        }
        let under = TimedTcp {
            tcp: stream,
            clock: SendClock::new(gateway.send_timeout),
        };
        Ok(acceptor.accept(under).await)
    };
    let handshake = tokio::select! {
        done = tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, handshake) => match done {
            Ok(Err(())) => return,
            Ok(Ok(done)) => Ok(done),
            Err(elapsed) => Err(elapsed),
        },
        // No request yet: at the stop it closes at once, as an idle connection does.
        // (Not `until_draining`: a second caller kept it from being inlined into
        // `serve_connection`, +44 instructions per request.)
        _ = stop.wait_for(|phase| *phase >= Phase::Draining) => return,
    };
    match handshake {
        Ok(Ok(stream)) => {
            serve_connection(TcpOrTls::Tls(Box::new(stream)), gateway, stop).await;
        }
        Ok(Err(e)) => tracing::debug!(client = ?peer, "a client's TLS handshake failed: {e}"),
        Err(_) => tracing::debug!(
            client = ?peer,
            "a client's TLS handshake took over {:?}: closed",
            crate::tls::HANDSHAKE_TIMEOUT
        ),
    }
}

/// Answers a client that spoke plain HTTP to the HTTPS port, and closes.
async fn refuse_plain_http(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BODY: &str = "Client sent an HTTP request to an HTTPS server.\n";
    // What the client sent is read, not left unread: a close with unread data is a
    // reset, which can reach the client before the answer does.
    let mut sent = [0u8; 4096];
    let _ = stream.try_read(&mut sent);
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        while matches!(stream.read(&mut sent).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Serves one connection until it ends; once `stop` says [`Phase::Draining`], finishes
/// its request in flight and ends; at [`Phase::Closing`], closes it whatever it is doing.
async fn serve_connection(
    stream: ClientStream,
    gateway: &'static Gateway,
    mut stop: watch::Receiver<Phase>,
) {
    let _open = OpenConnection::enter();
    let service = service_fn(
        move |req: hyper::Request<hyper::body::Incoming>| async move {
            let in_flight = InFlight::enter();
            let response = gateway.handle(req.map(incoming_body)).await;
            if in_flight.others() {
                yield_to_ready_connections().await;
            }
            Ok::<_, Infallible>(response)
        },
    );
    let stream = SendTimeout {
        inner: stream,
        clock: SendClock::new(gateway.send_timeout),
    };
    let conn = http1::Builder::new()
        .timer(WheelTimer)
        .header_read_timeout(CLIENT_HEAD_TIMEOUT)
        .max_buf_size(CLIENT_BUFFER)
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        // The connection first: it is what wakes this task nearly every time.
        biased;
        result = conn.as_mut() => {
            if let Err(e) = result {
                log_connection_end(&e, "connection ended");
            }
        }
        () = until_draining(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        log_connection_end(&e, "connection ended while draining");
                    }
                }
                // Dropping the connection closes it, and drops its request's future.
                _ = async { stop.wait_for(|phase| *phase == Phase::Closing).await.map(|_| ()) } => {}
            }
        }
    }
    drop(stop);
}

/// A connection's end in error: the client's doing, at DEBUG; one the send timeout
/// closed, at INFO, as the operator's setting at work.
#[cold]
fn log_connection_end(e: &hyper::Error, what: &str) {
    match std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>()) {
        Some(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            tracing::info!("{what}: {e}: {io}");
        }
        _ => tracing::debug!("{what}: {e}"),
    }
}

/// How long a write to a client may wait for room (the client reading): nginx's
/// `send_timeout`. A client that stops reading a response otherwise holds its connection,
/// the backend's, and the stop, for good. The clock runs only while a write waits, and
/// starts again whenever bytes reach the socket; nothing is armed on a write that goes
/// through.
struct SendClock {
    limit: std::time::Duration,
    waiting: Option<crate::timer::Sleep>,
}

impl SendClock {
    fn new(limit: std::time::Duration) -> Self {
        SendClock {
            limit,
            waiting: None,
        }
    }

    /// A write that had to wait: `Pending` until there is room, or an error at `limit`.
    /// Out of line: the writes that go through, nearly all, stay as short as they were.
    #[cold]
    #[inline(never)]
    fn waited<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        socket: &TcpStream,
    ) -> std::task::Poll<std::io::Result<T>> {
        let limit = self.limit;
        let sleep = self
            .waiting
            .get_or_insert_with(|| crate::timer::sleep_until(std::time::Instant::now() + limit));
        match std::pin::Pin::new(sleep).poll(cx) {
            std::task::Poll::Ready(()) => {
                // The client's address: the log line is all an operator gets of it.
                let client = socket
                    .peer_addr()
                    .map_or_else(|_| "?".to_owned(), |a| a.to_string());
                std::task::Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the client {client} took none of the response for {limit:?} \
                         (`send_timeout`): it reads too slowly, or not at all"
                    ),
                )))
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }

    /// A socket write's result: bytes that went through stop the clock.
    #[inline(always)]
    fn written<T>(
        &mut self,
        done: std::task::Poll<std::io::Result<T>>,
        cx: &mut std::task::Context<'_>,
        socket: &TcpStream,
    ) -> std::task::Poll<std::io::Result<T>> {
        match done {
            std::task::Poll::Pending => self.waited(cx, socket),
            done => {
                self.waiting = None;
                done
            }
        }
    }
}

/// A client connection, its plain TCP writes under a [`SendClock`]. A TLS connection's
/// clock is on the socket under TLS ([`TimedTcp`]): a TLS write goes through into rustls's
/// buffer while the socket is full, and timing it there restarted the clock (twice the
/// limit, and a reader slow but steady cut off).
struct SendTimeout {
    inner: ClientStream,
    clock: SendClock,
}

impl tokio::io::AsyncRead for SendTimeout {
    #[inline(always)]
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for SendTimeout {
    #[inline(always)]
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match &mut this.inner {
            TcpOrTls::Tcp(tcp) => {
                let done = std::pin::Pin::new(&mut *tcp).poll_write(cx, buf);
                this.clock.written(done, cx, tcp)
            }
            tls => std::pin::Pin::new(tls).poll_write(cx, buf),
        }
    }

    #[inline(always)]
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match &mut this.inner {
            TcpOrTls::Tcp(tcp) => {
                let done = std::pin::Pin::new(&mut *tcp).poll_write_vectored(cx, bufs);
                this.clock.written(done, cx, tcp)
            }
            tls => std::pin::Pin::new(tls).poll_write_vectored(cx, bufs),
        }
    }

    #[inline(always)]
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    #[inline(always)]
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        // A TCP stream's flush does nothing (the writes went to the socket). Kept this
        // small, hyper's flush inlines it (+110 instructions per request when it did not).
        match &mut self.inner {
            TcpOrTls::Tcp(_) => std::task::Poll::Ready(Ok(())),
            tls => flush_out_of_line(tls, cx),
        }
    }

    #[inline(always)]
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[inline(never)]
fn flush_out_of_line(
    stream: &mut ClientStream,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<std::io::Result<()>> {
    tokio::io::AsyncWrite::poll_flush(std::pin::Pin::new(stream), cx)
}

/// The TCP stream under a client's TLS, its writes under a [`SendClock`]. (Also what keeps
/// TLS's writes off tokio's vectored TCP write, as the host's `UnderTls` does.)
struct TimedTcp {
    tcp: TcpStream,
    clock: SendClock,
}

impl tokio::io::AsyncRead for TimedTcp {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TimedTcp {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let done = std::pin::Pin::new(&mut this.tcp).poll_write(cx, buf);
        this.clock.written(done, cx, &this.tcp)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// The most a client connection buffers: a request head still unfinished past this is a
/// 431 (hyper checks only then: a larger head read whole in one go passes). Hyper's
/// default, ~400 KiB, let 300 connections with such heads unfinished hold 150 MB.
const CLIENT_BUFFER: usize = 64 * 1024;

/// How long a client connection may go without sending a complete request head, idle
/// between requests or never sending one, before it is closed (hyper's default, set here
/// because docs/gwhost.md promises it).
const CLIENT_HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

thread_local! {
    /// Requests this worker thread is handling now.
    static IN_FLIGHT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// One request counted in [`IN_FLIGHT`] while it lives.
struct InFlight;

impl InFlight {
    fn enter() -> InFlight {
        IN_FLIGHT.with(|n| n.set(n.get() + 1));
        InFlight
    }

    /// Whether this thread is handling other requests too.
    fn others(&self) -> bool {
        IN_FLIGHT.with(|n| n.get() > 1)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Saturating: on the fallback path (no worker thread could start, connections run
        // on the main multi-threaded runtime) a request may end on another thread than it
        // began on. Its counts are then only a hint, which is all they are used for.
        IN_FLIGHT.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// Lets the worker's other ready tasks run before this one goes on: one trip to the back
/// of the run queue, without the I/O poll that `tokio::task::yield_now` waits for.
///
/// Awaited between a response being ready and hyper writing it, when the worker has other
/// requests in flight, it groups a batch's response writes after the batch's reads. Each
/// write to a local peer (a client on the same host, as in the benchmarks) is a
/// synchronous wake-up that can preempt the worker mid-batch; grouped, they preempt it less
/// (`scripts/bench-ab.sh`: preemptions per request −32%, requests/s +11% at 1 worker and
/// +9% at 2; BENCHMARKS.md). It costs one more poll of the connection's task (~1.3k
/// instructions), so a lone request skips it.
async fn yield_to_ready_connections() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

/// The least time between two [`yield_to_woken_peers`] yields of a worker.
const YIELD_INTERVAL: std::time::Duration = std::time::Duration::from_micros(500);

thread_local! {
    /// When this worker thread last yielded in [`yield_to_woken_peers`].
    static LAST_YIELD: std::cell::Cell<Option<std::time::Instant>> =
        const { std::cell::Cell::new(None) };
}

/// Each time a worker runs out of tasks, before it waits for events: gives its CPU to the
/// threads its writes have woken, at most once per [`YIELD_INTERVAL`].
///
/// A write to a local peer (a client or backend on the same host: a sidecar, a
/// benchmark) wakes the peer on the writer's CPU, as if the writer were about to sleep.
/// A busy worker is not: its wait for events returns at once with more work, and the peer
/// waits for a CPU until the worker's time slice ends, up to a few milliseconds, even
/// with another core idle. That wait was gwhost's p99 at 1 worker on 2 cores; yielding
/// here halves it, at no throughput cost that 38 rounds could see
/// (`scripts/bench-ab.sh`, BENCHMARKS.md); a yield at every wait looked costlier (96.6%
/// of throughput, one run). When the workers fill every core, the yields only cost (2
/// workers on 2 cores: 95–96% of throughput, p99 not clearly better), so [`serve`] asks
/// for them only when the workers leave cores free. When nothing else waits for the CPU,
/// a yield costs one system call.
fn yield_to_woken_peers() {
    let now = std::time::Instant::now();
    LAST_YIELD.with(|last| {
        if last
            .get()
            .is_none_or(|t| now.duration_since(t) >= YIELD_INTERVAL)
        {
            last.set(Some(now));
            std::thread::yield_now();
        }
    });
}

/// Stop requests: one each time SIGTERM or SIGINT arrives, for [`serve`]. Listening
/// starts here, before serving, so that no signal is lost between the first and the
/// second (once a handler is installed, a signal's default action, exit, is gone).
pub fn stop_signals() -> mpsc::UnboundedReceiver<()> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let listen = |kind: SignalKind, name: &str| {
        signal(kind)
            .inspect_err(|e| tracing::error!("cannot listen for {name}: {e}"))
            .ok()
    };
    let mut term = listen(SignalKind::terminate(), "SIGTERM");
    let mut int = listen(SignalKind::interrupt(), "SIGINT");
    async fn next(signal: &mut Option<Signal>) -> Option<()> {
        match signal {
            Some(s) => s.recv().await,
            None => std::future::pending().await,
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                Some(()) = next(&mut term) => "SIGTERM",
                Some(()) = next(&mut int) => "SIGINT",
                else => return,
            };
            tracing::info!("{name} received");
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    rx
}
