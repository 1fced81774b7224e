//! The backend client against scripted backends on loopback: each test's backend writes
//! exact bytes, so every framing case (RFC 9112 §6) is on the wire as written here.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use gwplugin::{Body, Request};
use gwplugin_host::upstream::{Upstream, send};
use http::Method;
use http::uri::{Authority, Scheme};
use http_body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Written between two parts of a reply: the backend flushes and pauses there, so the
/// client sees the reply in separate reads.
const PAUSE: &str = "<pause>";
/// As a reply: read the request, then close the connection without answering.
const HANG_UP: &str = "<hang-up>";

/// A backend whose `n`th connection answers its requests with `script[n]`'s replies in
/// turn, then closes. It records each request as received.
struct Backend {
    authority: Authority,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Backend {
    async fn start(script: &[&[&'static str]]) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Vec<Vec<&'static str>> = script.iter().map(|c| c.to_vec()).collect();
        let (count, log) = (accepted.clone(), requests.clone());
        tokio::spawn(async move {
            for replies in script {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, replies, log.clone()));
            }
        });
        Backend {
            authority,
            accepted,
            requests,
        }
    }

    fn upstream(&self) -> Upstream {
        Upstream::new(&Scheme::HTTP, &self.authority)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.authority)
    }

    fn request(&self, i: usize) -> String {
        self.requests.lock().unwrap()[i].clone()
    }
}

async fn serve(mut stream: TcpStream, replies: Vec<&'static str>, log: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    for reply in replies {
        let Some(request) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        log.lock().unwrap().push(request);
        if reply == HANG_UP {
            return;
        }
        for (i, part) in reply.split(PAUSE).enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            stream.write_all(part.as_bytes()).await.unwrap();
            stream.flush().await.unwrap();
        }
    }
}

/// One request off the connection: its head, and its body by content-length or chunked.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let complete = |buf: &[u8]| -> Option<usize> {
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
        if let Some(line) = head.lines().find(|l| l.starts_with("content-length:")) {
            let n: usize = line["content-length:".len()..].trim().parse().unwrap();
            (buf.len() >= head_end + n).then_some(head_end + n)
        } else if head.contains("transfer-encoding: chunked") {
            let end = buf[head_end..].windows(5).position(|w| w == b"0\r\n\r\n")?;
            Some(head_end + end + 5)
        } else {
            Some(head_end)
        }
    };
    loop {
        if let Some(len) = complete(buf) {
            let request = String::from_utf8_lossy(&buf[..len]).into_owned();
            buf.drain(..len);
            return Some(request);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A loopback port nothing listens on (bound, then let go).
async fn closed_port() -> u16 {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    closed.local_addr().unwrap().port()
}

fn get(path: &str) -> Request {
    http::Request::get(path).body(Body::empty()).unwrap()
}

async fn body_of(resp: gwplugin::Response) -> String {
    let bytes = resp.into_body().collect().await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn a_chunked_body_with_extensions_and_trailers_then_the_connection_is_reused() {
    let backend = Backend::start(&[&[
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-from: backend\r\n\r\n\
         5;name=value\r\nhello\r\n<pause>6\r\n world\r\n<pause>0\r\nx-trailer: t\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    ]])
    .await;
    let upstream = backend.upstream();
    let resp = upstream.send(&mut get("/one")).await.unwrap();
    assert_eq!(resp.headers()["x-from"], "backend");
    assert_eq!(body_of(resp).await, "hello world");
    let resp = upstream.send(&mut get("/two")).await.unwrap();
    assert_eq!(body_of(resp).await, "ok");
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 1);
    assert!(backend.request(0).starts_with("GET /one HTTP/1.1\r\n"));
    assert!(backend.request(1).starts_with("GET /two HTTP/1.1\r\n"));
}

#[tokio::test]
async fn a_response_with_a_length_and_chunked_is_read_chunked_and_loses_its_length() {
    let backend = Backend::start(&[&[
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n\
         a\r\n0123456789\r\n0\r\n\r\n",
    ]])
    .await;
    let resp = backend.upstream().send(&mut get("/")).await.unwrap();
    assert_eq!(resp.headers().get("content-length"), None);
    assert_eq!(body_of(resp).await, "0123456789");
}

#[tokio::test]
async fn a_body_with_a_length_streams_in_pieces_then_the_connection_is_reused() {
    let backend = Backend::start(&[&[
        "HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello<pause> wor<pause>ld",
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    ]])
    .await;
    let upstream = backend.upstream();
    let resp = upstream.send(&mut get("/")).await.unwrap();
    assert_eq!(body_of(resp).await, "hello world");
    let resp = upstream.send(&mut get("/")).await.unwrap();
    assert_eq!(body_of(resp).await, "ok");
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_without_length_lasts_until_the_connection_closes() {
    let backend = Backend::start(&[
        &["HTTP/1.1 200 OK\r\n\r\npart one, <pause>part two"],
        &["HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"],
    ])
    .await;
    let upstream = backend.upstream();
    let resp = upstream.send(&mut get("/")).await.unwrap();
    assert_eq!(body_of(resp).await, "part one, part two");
    // That connection is spent: the next request gets a new one.
    let resp = upstream.send(&mut get("/")).await.unwrap();
    assert_eq!(body_of(resp).await, "ok");
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn head_204_and_304_responses_have_no_body_whatever_their_headers_say() {
    let backend = Backend::start(&[&[
        "HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n",
        "HTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    ]])
    .await;
    let upstream = backend.upstream();
    let mut head = http::Request::head("/").body(Body::empty()).unwrap();
    let resp = upstream.send(&mut head).await.unwrap();
    assert_eq!(resp.headers()["content-length"], "1000");
    assert_eq!(body_of(resp).await, "");
    for status in [204, 304] {
        let resp = upstream.send(&mut get("/")).await.unwrap();
        assert_eq!(resp.status(), status);
        assert_eq!(body_of(resp).await, "");
    }
    let resp = upstream.send(&mut get("/")).await.unwrap();
    assert_eq!(body_of(resp).await, "ok");
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn informational_responses_are_skipped() {
    let backend = Backend::start(&[&[
        "HTTP/1.1 100 Continue\r\n\r\n<pause>HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n\
         HTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\ndone",
    ]])
    .await;
    let resp = backend.upstream().send(&mut get("/")).await.unwrap();
    assert_eq!(resp.status(), 201);
    assert!(resp.headers().get("link").is_none());
    assert_eq!(body_of(resp).await, "done");
}

#[tokio::test]
async fn connection_close_and_http_1_0_responses_end_their_connection() {
    let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let backend = Backend::start(&[
        &["HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"],
        &["HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"],
        &[ok, ok],
    ])
    .await;
    let upstream = backend.upstream();
    for _ in 0..4 {
        let resp = upstream.send(&mut get("/")).await.unwrap();
        assert_eq!(body_of(resp).await, "ok");
    }
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 3);
}

/// A request body that makes its reader wait before each chunk, length unknown.
struct Trickle {
    chunks: VecDeque<&'static str>,
    waited: bool,
}

impl http_body::Body for Trickle {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if !std::mem::replace(&mut self.waited, true) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.waited = false;
        Poll::Ready(
            self.chunks
                .pop_front()
                .map(|c| Ok(Frame::data(Bytes::from(c)))),
        )
    }
}

#[tokio::test]
async fn the_request_is_framed_by_its_body_not_by_its_headers() {
    let ok = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
    let backend = Backend::start(&[&[ok, ok, ok, ok]]).await;
    let upstream = backend.upstream();

    let mut stale = http::Request::post("/known")
        .header("content-length", "99")
        .header("transfer-encoding", "gzip")
        .body(Body::from("abc"))
        .unwrap();
    upstream.send(&mut stale).await.unwrap();
    let streamed = Body::from_stream(Trickle {
        chunks: ["ab", "cde"].into(),
        waited: false,
    });
    let mut streamed = http::Request::put("/streamed").body(streamed).unwrap();
    upstream.send(&mut streamed).await.unwrap();
    upstream
        .send(&mut http::Request::post("/empty").body(Body::empty()).unwrap())
        .await
        .unwrap();
    upstream.send(&mut get("/get")).await.unwrap();

    let host = format!("host: {}\r\n", backend.authority);
    assert_eq!(
        backend.request(0),
        format!("POST /known HTTP/1.1\r\n{host}content-length: 3\r\n\r\nabc")
    );
    assert_eq!(
        backend.request(1),
        format!(
            "PUT /streamed HTTP/1.1\r\n{host}transfer-encoding: chunked\r\n\r\n\
             2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
        )
    );
    assert_eq!(
        backend.request(2),
        format!("POST /empty HTTP/1.1\r\n{host}content-length: 0\r\n\r\n")
    );
    assert_eq!(
        backend.request(3),
        format!("GET /get HTTP/1.1\r\n{host}\r\n")
    );
}

#[tokio::test]
async fn a_pooled_connection_the_backend_closed_is_replaced() {
    let backend = Backend::start(&[
        // Closed while idle, after one exchange.
        &["HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\na"],
        // Closed on receiving the next request, unanswered (the race with an idle
        // timeout): a GET goes again on a new connection, a POST with a body cannot.
        &["HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nb", HANG_UP],
        &["HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nc", HANG_UP],
        &["HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nd"],
    ])
    .await;
    let upstream = backend.upstream();
    assert_eq!(
        body_of(upstream.send(&mut get("/")).await.unwrap()).await,
        "a"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        body_of(upstream.send(&mut get("/")).await.unwrap()).await,
        "b"
    );
    assert_eq!(
        body_of(upstream.send(&mut get("/")).await.unwrap()).await,
        "c"
    );
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 3);

    let mut post = http::Request::builder()
        .method(Method::POST)
        .uri("/")
        .body(Body::from("data"))
        .unwrap();
    let err = upstream.send(&mut post).await.unwrap_err();
    assert_eq!(err.to_string(), "the connection closed before a response");
    assert_eq!(
        body_of(upstream.send(&mut get("/")).await.unwrap()).await,
        "d"
    );
}

#[tokio::test]
async fn malformed_responses_are_errors_that_say_what_is_wrong() {
    let cases = [
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
            "conflicting content-length values in the response",
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "invalid content-length in the response",
        ),
        (
            "HTTP/1.1 2x0 OK\r\n\r\n",
            "invalid response head: invalid response status",
        ),
        (
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "the backend switched protocols",
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-le",
            "the connection closed in the middle of the response head",
        ),
    ];
    for (reply, message) in cases {
        let backend = Backend::start(&[&[reply]]).await;
        let err = backend.upstream().send(&mut get("/")).await.unwrap_err();
        assert!(err.to_string().starts_with(message), "{reply:?}: {err}");
    }

    // Body errors arrive with the body.
    let cases = [
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc",
            "the connection closed before the end of the response body",
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            "invalid chunk size in the response",
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
            "invalid chunk end in the response",
        ),
        // A chunk-size line without a digit: httparse read it as the last chunk, the body
        // cut short passed for whole, and the rest was the next response on the connection.
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n\r\n\r\n6\r\nworld!\r\n0\r\n\r\n",
            "invalid chunk size in the response",
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n;ext\r\nhello\r\n0\r\n\r\n",
            "invalid chunk size in the response",
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n \r\n\r\n",
            "invalid chunk size in the response",
        ),
        // A bare LF in an extension: a line end to others (hyper, nginx).
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n",
            "invalid chunk size in the response",
        ),
    ];
    for (reply, message) in cases {
        let backend = Backend::start(&[&[reply]]).await;
        let resp = backend.upstream().send(&mut get("/")).await.unwrap();
        let err = resp.into_body().collect().await.unwrap_err();
        assert!(err.to_string().contains(message), "{reply:?}: {err}");
    }

    // A head over the limit, in one read as in many (one read took up to twice the limit).
    let big: &'static str = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 2\r\n\r\nok",
            "a".repeat(100_000)
        )
        .into_boxed_str(),
    );
    let backend = Backend::start(&[&[big]]).await;
    let err = backend.upstream().send(&mut get("/")).await.unwrap_err();
    assert_eq!(err.to_string(), "the response head is too large");
}

#[tokio::test]
async fn chunk_sizes_take_leading_zeros_and_good_chunks_go_before_bad_framing() {
    // 17 digits: httparse refuses a 17th, whatever the number (nginx takes it).
    let reply = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n00000000000000005\r\nhello\r\n00000000000000000000\r\n\r\n";
    let backend = Backend::start(&[&[reply]]).await;
    assert_eq!(
        body_of(backend.upstream().send(&mut get("/")).await.unwrap()).await,
        "hello"
    );
    // The last good chunk, in the same read as the bad framing after it, was dropped
    // with the error.
    let reply = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\nzz\r\n\r\n";
    let backend = Backend::start(&[&[reply]]).await;
    let mut body = backend
        .upstream()
        .send(&mut get("/"))
        .await
        .unwrap()
        .into_body();
    let mut got = String::new();
    let err = loop {
        let frame = std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut body), cx));
        match frame.await {
            Some(Ok(frame)) => got.push_str(&String::from_utf8_lossy(&frame.into_data().unwrap())),
            Some(Err(e)) => break e,
            None => panic!("no error after {got:?}"),
        }
    };
    assert_eq!(got, "helloworld");
    assert!(
        err.to_string()
            .contains("invalid chunk size in the response"),
        "{err}"
    );
}

#[tokio::test]
async fn a_later_http_1_minor_version_is_read_as_http_1_1() {
    // RFC 9110 §2.5: processed as the highest 1.x the recipient speaks; kept alive as 1.1.
    let reply = "HTTP/1.2 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let backend = Backend::start(&[&[reply, reply]]).await;
    let upstream = backend.upstream();
    for _ in 0..2 {
        let resp = upstream.send(&mut get("/")).await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_11);
        assert_eq!(body_of(resp).await, "ok");
    }
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 1);
    // HTTP/2 in an HTTP/1 status line is still refused.
    let backend = Backend::start(&[&["HTTP/2.0 200 OK\r\ncontent-length: 2\r\n\r\nok"]]).await;
    let err = backend.upstream().send(&mut get("/")).await.unwrap_err();
    assert!(err.to_string().contains("invalid HTTP version"), "{err}");
}

#[tokio::test]
async fn an_empty_path_goes_as_slash_and_userinfo_stays_out_of_host() {
    let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let backend = Backend::start(&[&[ok], &[ok]]).await;
    let resp = send(get(&format!("http://{}?x=1", backend.authority)))
        .await
        .unwrap();
    assert_eq!(body_of(resp).await, "ok");
    assert!(
        backend.request(0).starts_with("GET /?x=1 HTTP/1.1\r\n"),
        "{}",
        backend.request(0)
    );
    let resp = send(get(&format!("http://user:secret@{}/u", backend.authority)))
        .await
        .unwrap();
    assert_eq!(body_of(resp).await, "ok");
    let request = backend.request(1);
    assert!(
        request.contains(&format!("\r\nhost: {}\r\n", backend.authority))
            && !request.contains("secret"),
        "{request}"
    );
    // Nor in a failure's message, which goes to the log.
    let port = closed_port().await;
    let err = send(get(&format!("http://user:secret@127.0.0.1:{port}/u")))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("backend `http://127.0.0.1:{port}`: connect: ")),
        "{err}"
    );
}

#[tokio::test]
async fn send_takes_absolute_http_urls_and_pools_per_host() {
    let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let backend = Backend::start(&[&[ok, ok]]).await;
    for _ in 0..2 {
        let resp = send(get(&backend.url("/abs?q=1"))).await.unwrap();
        assert_eq!(body_of(resp).await, "ok");
    }
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 1);
    assert!(backend.request(0).starts_with("GET /abs?q=1 HTTP/1.1\r\n"));

    let err = send(get("/relative")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "backend `/relative`: client requires absolute-form URIs"
    );
    let err = send(get("ftp://example.com/")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "backend `ftp://example.com/`: invalid URL, scheme is not http or https"
    );
    // A failure once sent names the host, not the whole URL.
    let port = closed_port().await;
    let err = send(get(&format!("http://127.0.0.1:{port}/a?b=c")))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("backend `http://127.0.0.1:{port}`: connect: ")),
        "{err}"
    );
}

#[tokio::test]
async fn a_forgotten_host_s_idle_connections_are_closed() {
    // One backend answering on every loopback address: 127.0.0.N are distinct hosts.
    let listener = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let open = Arc::new(AtomicUsize::new(0));
    let count = open.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let count = count.clone();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while read_request(&mut stream, &mut buf).await.is_some() {
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if stream.write_all(ok).await.is_err() {
                        break;
                    }
                }
                count.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    let hosts = gwplugin_host::upstream::MAX_AD_HOC + 10;
    for n in 1..=hosts {
        let resp = send(get(&format!("http://127.0.0.{n}:{port}/")))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // The ten oldest hosts were forgotten, and their connections closed.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        open.load(Ordering::SeqCst),
        gwplugin_host::upstream::MAX_AD_HOC
    );
}

#[tokio::test]
async fn idle_connections_their_backend_closed_are_reaped() {
    // A pool was looked at only from its newest end: connections below the one in use,
    // closed by their backend meanwhile, stayed in CLOSE-WAIT for good.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
    let closed = Arc::new(AtomicUsize::new(0));
    let (close_tx, close_rx) = tokio::sync::watch::channel(false);
    let counted = closed.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let (counted, mut close_rx) = (counted.clone(), close_rx.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let mut byte = [0u8; 1];
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await
                    .unwrap();
                // Closed by the backend once the test says so, while idle in the pool.
                let _ = close_rx.wait_for(|close| *close).await;
                stream.shutdown().await.unwrap();
                let mut rest = [0u8; 16];
                if stream.read(&mut rest).await.unwrap_or(0) == 0 {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    let upstream = Upstream::new(&Scheme::HTTP, &authority);
    let (mut a, mut b, mut c) = (get("/"), get("/"), get("/"));
    let (ra, rb, rc) = tokio::join!(
        upstream.send(&mut a),
        upstream.send(&mut b),
        upstream.send(&mut c)
    );
    for resp in [ra, rb, rc] {
        assert_eq!(body_of(resp.unwrap()).await, "ok");
    }
    close_tx.send(true).unwrap();
    // The reactor sees them readable (closed); nothing else touches the pool meanwhile.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        closed.load(Ordering::SeqCst),
        0,
        "closed before any reaping"
    );
    gwplugin_host::upstream::reap_idle();
    for _ in 0..100 {
        if closed.load(Ordering::SeqCst) == 3 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{} of 3 idle connections closed",
        closed.load(Ordering::SeqCst)
    );
}
