//! Shared by the gwhost suites: the real `gwhost` binary as a child process, real fixture
//! plugins built with cargo, a real backend and a real HTTP client over loopback.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

pub fn gwhost() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gwhost"));
    cmd.env_remove("RUST_LOG").env_remove("RUST_BACKTRACE");
    cmd
}

/// Runs `gwhost ARGS` to completion.
pub fn run(args: &[&str]) -> Output {
    gwhost().args(args).output().expect("run gwhost")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fixture plugin, built once per test binary.
pub fn fixture(name: &'static str) -> PathBuf {
    static BUILT: OnceLock<Mutex<BTreeMap<&'static str, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    built
        .entry(name)
        .or_insert_with(|| gwplugin_e2e::build_fixture(name))
        .clone()
}

/// A temporary folder with a config and a `plugins/` folder holding `fixtures`.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new(fixtures: &[&'static str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("plugins")).expect("mkdir");
        for f in fixtures {
            let so = fixture(f);
            std::fs::copy(
                &so,
                dir.path().join("plugins").join(so.file_name().unwrap()),
            )
            .expect("copy plugin");
        }
        Site { dir }
    }

    pub fn write_config(&self, config: &Value) -> PathBuf {
        let path = self.dir.path().join("gateway.json");
        std::fs::write(&path, serde_json::to_string_pretty(config).unwrap()).expect("write");
        path
    }
}

/// A config listening on a free loopback port, loading `plugins/*.so` next to it.
pub fn config(server_plugins: Option<Value>, endpoints: Value) -> Value {
    let mut c = json!({
        "version": 3,
        "listen_ip": "127.0.0.1",
        "port": 0,
        "plugin": {"folder": "plugins", "pattern": ".so"},
        "endpoints": endpoints,
    });
    if let Some(s) = server_plugins {
        c["extra_config"] = json!({ "plugin/http-server": s });
    }
    c
}

/// A running `gwhost run` child; killed on drop.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub logs: Arc<Mutex<String>>,
    pub site: Site,
}

impl Gateway {
    pub fn start(site: Site, config: &Value) -> Self {
        Gateway::start_with_args(site, config, &[])
    }

    /// `gwhost run -c CONFIG ARGS...`.
    pub fn start_with_args(site: Site, config: &Value, args: &[&str]) -> Self {
        Gateway::start_with_env(site, config, args, &[])
    }

    /// `NAME=VALUE... gwhost run -c CONFIG ARGS...`.
    pub fn start_with_env(site: Site, config: &Value, args: &[&str], env: &[(&str, &str)]) -> Self {
        Gateway::start_with_command(site, config, |cmd| {
            cmd.envs(env.iter().copied()).args(args);
        })
    }

    /// `gwhost run -c CONFIG`, with whatever `setup` adds to the command.
    pub fn start_with_command(
        site: Site,
        config: &Value,
        setup: impl FnOnce(&mut Command),
    ) -> Self {
        let path = site.write_config(config);
        let mut cmd = gwhost();
        cmd.env("RUST_LOG", "info").args(["run", "-c"]).arg(&path);
        setup(&mut cmd);
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gwhost");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        // Drain stderr for good: a full pipe would block the gateway's logging.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = listen_address(&line) {
                    let _ = tx.send(addr);
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse().expect("listen address"),
            Err(_) => {
                let _ = child.kill();
                panic!("gwhost did not start:\n{}", logs.lock().unwrap());
            }
        };
        Gateway {
            child,
            addr,
            logs,
            site,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// The first log line containing `needle`, waiting for it a little: the gateway
    /// may log after it has answered.
    pub fn log_line(&self, needle: &str) -> Option<String> {
        let start = Instant::now();
        loop {
            if let Some(line) = self.logs().lines().find(|l| l.contains(needle)) {
                return Some(line.to_owned());
            }
            if start.elapsed() > Duration::from_secs(5) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// [`Gateway::log_line`], or a panic that shows the whole log.
    pub fn expect_log_line(&self, needle: &str) -> String {
        self.log_line(needle)
            .unwrap_or_else(|| panic!("no log line with `{needle}`:\n{}", self.logs()))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: plain kill(2) on our own child.
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0);
    }

    /// Waits for exit, up to `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in gwhost's `listening on http://ADDR` (or `https://`) log line.
pub fn listen_address(line: &str) -> Option<String> {
    let at = line.find("listening on http")?;
    let rest = &line[at + "listening on http".len()..];
    Some(
        rest.trim_start_matches('s')
            .trim_start_matches("://")
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_owned(),
    )
}

/// A test HTTP client.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A finished response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    req: http::Request<Full<Bytes>>,
) -> Reply {
    let resp = client.request(req).await.expect("gateway answers");
    reply(resp).await.expect("body")
}

/// A response read to its end.
async fn reply(resp: hyper::Response<Incoming>) -> Result<Reply, hyper::Error> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        headers,
        body: text(&body),
    })
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = http::Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(&client(), req.body(Full::new(Bytes::new())).unwrap()).await
}

/// A loopback backend: echoes the request as JSON; `x-status` picks the status and
/// `x-delay-ms` delays the answer; `x-replace-body` comes back as a response header;
/// `x-stall-body` answers a head and two bytes of body, then nothing more;
/// `x-reply-header-NAME: VALUE` puts `NAME: VALUE` on the response; `x-reply-bytes: N` answers N bytes instead, streamed
/// in chunks with pauses between them. Counts requests.
pub struct Backend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
}

impl Backend {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
    /// Waits (up to 10 s) until a request has reached this backend.
    pub async fn first_hit(&self) {
        let start = Instant::now();
        while self.hits() == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "request never arrived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub async fn start_backend() -> Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let (counter, accepted) = (hits.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_echo(stream, counter.clone()));
        }
    });
    Backend {
        addr,
        hits,
        connections,
    }
}

/// Serves [`echo`] on one connection, counting requests in `hits`.
async fn serve_echo<S>(stream: S, hits: Arc<AtomicUsize>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        hits.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, Infallible>(echo(req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// A certificate for `localhost` and `127.0.0.1`, signed by a CA of its own, as PEM files
/// `ca.pem`, `cert.pem` and `key.pem` in `dir`.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestPki {
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Each its own name: a client that trusts another test CA then finds no issuer.
        static CAS: AtomicUsize = AtomicUsize::new(0);
        let name = format!("gwhost test CA {}", CAS.fetch_add(1, Ordering::SeqCst));
        ca_params.distinguished_name.push(DnType::CommonName, name);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        TestPki { dir, cert, key }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn server_config(&self) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(self.key.serialize_der().into()),
            )
            .unwrap()
    }
}

/// `GET path` over HTTPS from `addr`, as `localhost`, trusting the CA in `ca_file` only.
pub async fn https_get(addr: SocketAddr, ca_file: &Path, path: &str) -> Result<Reply, String> {
    let tls = tls_connect(addr, ca_file).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", format!("localhost:{}", addr.port()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    reply(resp).await.map_err(|e| e.to_string())
}

/// A TLS connection to `addr`, as `localhost`, trusting the CA in `ca_file` only.
pub async fn tls_connect(
    addr: SocketAddr,
    ca_file: &Path,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())
}

/// A TLS backend driven by hand (rustls over a blocking socket), for what a server library
/// would not do: for each request head on a connection, `answer(head, tls, tcp)` writes
/// the answer, and returning false ends the connection. Its port, and a count of the
/// connections it accepted.
pub fn start_scripted_tls_backend<F>(pki: &TestPki, answer: F) -> (u16, Arc<AtomicUsize>)
where
    F: Fn(&[u8], &mut rustls::ServerConnection, &mut std::net::TcpStream) -> bool
        + Send
        + Sync
        + 'static,
{
    let server = Arc::new(pki.server_config());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let accepted = connections.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(mut tcp) = tcp else { return };
            accepted.fetch_add(1, Ordering::SeqCst);
            let (server, answer) = (server.clone(), answer.clone());
            std::thread::spawn(move || {
                let mut tls = rustls::ServerConnection::new(server).unwrap();
                while let Some(head) = read_tls_request_head(&mut tls, &mut tcp) {
                    if !answer(&head, &mut tls, &mut tcp) {
                        return;
                    }
                }
            });
        }
    });
    (port, connections)
}

/// One request head off a TLS connection, decrypted (a body after it is not waited for);
/// `None` once the connection ends.
fn read_tls_request_head(
    tls: &mut rustls::ServerConnection,
    tcp: &mut std::net::TcpStream,
) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        tls.complete_io(tcp).ok()?;
        match tls.reader().read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
    }
    Some(head)
}

/// A [`start_backend`] behind TLS, with a [`TestPki`] certificate.
pub struct TlsBackend {
    pub backend: Backend,
    pub ca_file: PathBuf,
    _pki: TestPki,
}

impl TlsBackend {
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.backend.addr.port())
    }
}

pub async fn start_tls_backend() -> TlsBackend {
    let pki = TestPki::new();
    let ca_file = pki.file("ca.pem");
    let config = pki.server_config();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let (counter, accepted) = (hits.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            accepted.fetch_add(1, Ordering::SeqCst);
            let (acceptor, counter) = (acceptor.clone(), counter.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to serve.
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve_echo(tls, counter).await;
                }
            });
        }
    });
    TlsBackend {
        backend: Backend {
            addr,
            hits,
            connections,
        },
        ca_file,
        _pki: pki,
    }
}

async fn echo(
    req: hyper::Request<Incoming>,
) -> hyper::Response<http_body_util::combinators::BoxBody<Bytes, Infallible>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let status = header("x-status").unwrap_or(200);
    let delay = header("x-delay-ms").unwrap_or(0);
    if req.headers().contains_key("x-stall-body") {
        return hyper::Response::new(StalledBody { sent: false }.boxed());
    }
    // `x-reply-header-NAME: VALUE` asks for `NAME: VALUE` on the response.
    let reply_headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_str().strip_prefix("x-reply-header-")?;
            Some((name.to_owned(), v.to_str().ok()?.to_owned()))
        })
        .collect();
    if let Some(len) = header("x-reply-bytes") {
        let mut resp = hyper::Response::new(
            SlowChunks {
                total: len as usize,
                left: len as usize,
                pause: None,
            }
            .boxed(),
        );
        for (name, value) in &reply_headers {
            resp.headers_mut().insert(
                hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        return resp;
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.to_string())
            .or_default()
            .push(v.to_str().unwrap_or("").to_owned());
    }
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let replace_body = req.headers().contains_key("x-replace-body");
    let body = req.into_body().collect().await.unwrap().to_bytes();
    tokio::time::sleep(Duration::from_millis(delay)).await;
    let json = json!({
        "method": method,
        "uri": uri,
        "headers": headers,
        "body_len": body.len(),
        "body_sha": body.iter().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b))),
    });
    let mut resp = hyper::Response::builder();
    for (name, value) in &reply_headers {
        resp = resp.header(name.as_str(), value.as_str());
    }
    if replace_body {
        // For the fixture's response modifier, which then replaces the body.
        resp = resp.header("x-replace-body", "1");
    }
    resp.status(status as u16)
        .header("content-type", "application/json")
        .header("connection", "x-backend-hop")
        .header("x-backend-hop", "must not reach the client")
        .body(Full::new(Bytes::from(json.to_string())).boxed())
        .unwrap()
}

/// `left` bytes of printable ASCII (a period of 89, prime, so a misplaced chunk shows),
/// in 64 KiB chunks 2 ms apart.
struct SlowChunks {
    total: usize,
    left: usize,
    pause: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

/// The byte at offset `i` of a [`SlowChunks`] body.
pub fn slow_chunks_byte(i: usize) -> u8 {
    b' ' + (i % 89) as u8
}

impl hyper::body::Body for SlowChunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        use std::task::Poll;
        if self.left == 0 {
            return Poll::Ready(None);
        }
        if let Some(pause) = &mut self.pause
            && pause.as_mut().poll(cx).is_pending()
        {
            return Poll::Pending;
        }
        self.pause = Some(Box::pin(tokio::time::sleep(Duration::from_millis(2))));
        let len = self.left.min(64 * 1024);
        let sent = self.total - self.left;
        let chunk: Vec<u8> = (sent..sent + len).map(slow_chunks_byte).collect();
        self.left -= len;
        Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(chunk)))))
    }
}

/// Two bytes, then a body that never ends.
struct StalledBody {
    sent: bool,
}

impl hyper::body::Body for StalledBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        if std::mem::replace(&mut self.sent, true) {
            return std::task::Poll::Pending;
        }
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from_static(
            b"ab",
        )))))
    }
}

/// Sends `head` (a raw HTTP/1.1 request head) on a new connection to `addr`; the
/// connection's reads give up after 10 s.
pub fn send_raw(addr: SocketAddr, head: &str) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::io::Write::write_all(&mut stream, head.as_bytes()).unwrap();
    stream
}

/// [`send_raw`], then everything the gateway sends until it closes the connection.
pub fn raw_until_closed(addr: SocketAddr, head: &str) -> String {
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut send_raw(addr, head), &mut answer)
        .expect("closed, not timed out");
    String::from_utf8_lossy(&answer).into_owned()
}

/// A backend on a raw socket: for each connection, reads one request's head, writes
/// `answer` as it is, then `after` (a thread per connection, so it may block).
pub fn start_raw_backend(answer: &'static [u8], after: fn(std::net::TcpStream)) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n")
                    && std::io::Read::read(&mut stream, &mut byte).unwrap_or(0) == 1
                {
                    head.push(byte[0]);
                }
                let _ = std::io::Write::write_all(&mut stream, answer);
                after(stream);
            });
        }
    });
    addr
}

/// What `stream` sends until it ends with `end`, or until it closes or fails (10 s for
/// a [`send_raw`] stream), as text.
/// What `stream` sends up to its first line end, `\r\n` included (less when it closes or
/// its read timeout passes first): a response's status line, without reading past it.
pub fn read_line(stream: &mut std::net::TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") && std::io::Read::read(stream, &mut byte).unwrap_or(0) == 1 {
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

pub fn read_until(stream: &mut std::net::TcpStream, end: &[u8]) -> String {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.ends_with(end) {
        match std::io::Read::read(stream, &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// A loopback address nothing listens on.
pub fn dead_address() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}
