//! The `gwhost` binary end to end: real plugins, a real backend, real HTTP on loopback.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use serde_json::json;

/// An endpoint `path` whose backend is the root of the raw-socket server at `addr`.
fn raw_endpoint(path: &str, addr: std::net::SocketAddr) -> serde_json::Value {
    json!({"endpoint": path, "backend": [{"host": [format!("http://{addr}")], "url_pattern": "/"}]})
}

fn endpoint(path: &str, backend: &Backend, url_pattern: &str) -> serde_json::Value {
    json!({
        "endpoint": path,
        "backend": [{"host": [backend.url()], "url_pattern": url_pattern}],
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn proxies_method_headers_query_body_and_status() {
    let backend = start_backend().await;
    let cfg = config(
        None,
        json!([
            {
                "endpoint": "/users/{id}/posts/{post}",
                "method": "POST",
                "backend": [{"host": [backend.url()], "url_pattern": "/v1/{post}/by/{id}"}],
            },
            endpoint("/plain", &backend, "/plain"),
            endpoint("/search", &backend, "/s?format=json"),
            endpoint("/files/{name}", &backend, "/f/{name}"),
        ]),
    );
    let gw = Gateway::start(Site::new(&[]), &cfg);

    // A query of the pattern's own, then the request's.
    let reply = get(&gw.url("/search?q=1"), &[]).await;
    assert_eq!(reply.json()["uri"], "/s?format=json&q=1");
    // A parameter is one path segment, never one that leads elsewhere on the backend.
    assert_eq!(
        get(&gw.url("/files/a.txt"), &[]).await.json()["uri"],
        "/f/a.txt"
    );
    let hits = backend.hits();
    for escape in [
        "/files/..",
        "/files/%2e%2e",
        "/files/..%2Fadmin",
        "/files/..%3b",
        "/files/.%3Bx",
        "/files/a%00.txt",
    ] {
        assert_eq!(get(&gw.url(escape), &[]).await.status, 404, "{escape}");
    }
    assert_eq!(backend.hits(), hits, "none reached the backend");

    let body = vec![b'x'; 300_000];
    let req = http::Request::post(gw.url("/users/7/posts/9?q=1&r=two"))
        .header("x-custom", "kept")
        .header("connection", "x-hop")
        .header("x-hop", "dropped")
        .header("x-status", "201")
        // Framing headers spelt for a CGI-style backend that reads `_` as `-`: a second
        // framing of the body, the shape of request smuggling (nginx drops them).
        .header("transfer_encoding", "chunked")
        .header("content_length", "99")
        .header("x_other", "kept")
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
    let reply = send(&client(), req).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let seen = reply.json();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["uri"], "/v1/9/by/7?q=1&r=two");
    assert_eq!(seen["headers"]["x-custom"], json!(["kept"]));
    assert_eq!(seen["headers"]["x_other"], json!(["kept"]));
    for dropped in ["x-hop", "transfer_encoding", "content_length"] {
        assert!(seen["headers"].get(dropped).is_none(), "{dropped}: {seen}");
    }
    assert_eq!(seen["headers"]["host"], json!([backend.addr.to_string()]));
    assert_eq!(seen["body_len"], 300_000);
    // The backend's hop-by-hop headers stay with its connection too.
    assert_eq!(reply.header("x-backend-hop"), "");
    assert_eq!(reply.header("content-type"), "application/json");

    let reply = get(&gw.url("/plain"), &[("x-status", "418")]).await;
    assert_eq!(reply.status, 418);
    assert_eq!(get(&gw.url("/nowhere"), &[]).await.status, 404);
    // The method is part of the route.
    let post = http::Request::post(gw.url("/plain"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&client(), post).await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_check_answers_unless_an_endpoint_takes_its_path() {
    let backend = start_backend().await;
    let plain = config(None, json!([endpoint("/plain", &backend, "/plain")]));
    let gw = Gateway::start(Site::new(&[]), &plain);
    let reply = get(&gw.url("/__health"), &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), "application/json");
    assert_eq!(reply.json(), json!({"status": "ok"}));
    let post = http::Request::post(gw.url("/__health"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&client(), post).await.status, 404);
    assert_eq!(backend.hits(), 0, "answered by gwhost itself");

    // An endpoint with that path is proxied like any other, and its other methods are
    // not gwhost's "ok": a `HEAD` probe gets no answer the `GET` would not give.
    let own = config(
        None,
        json!([endpoint("/__health", &backend, "/deep-health")]),
    );
    let gw = Gateway::start(Site::new(&[]), &own);
    assert_eq!(
        get(&gw.url("/__health"), &[]).await.json()["uri"],
        "/deep-health"
    );
    let head = http::Request::head(gw.url("/__health"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&client(), head).await.status, 404);

    // gwhost's own answer comes before the http-server plugins (a load balancer's probe
    // has none of the credentials they may ask for); an endpoint's goes through them.
    let server = Some(json!({"name": "stamp-server"}));
    let plugged = config(
        server.clone(),
        json!([endpoint("/plain", &backend, "/plain")]),
    );
    let gw = Gateway::start(Site::new(&["all-kinds"]), &plugged);
    let reply = get(&gw.url("/__health"), &[]).await;
    assert_eq!((reply.status, reply.json()), (200, json!({"status": "ok"})));
    assert!(
        reply.headers.get("x-server-plugin").is_none(),
        "{:?}",
        reply.headers
    );
    assert_eq!(
        get(&gw.url("/plain"), &[]).await.header("x-server-plugin"),
        "stamp-server"
    );
    let own = config(
        server,
        json!([endpoint("/__health", &backend, "/deep-health")]),
    );
    let gw = Gateway::start(Site::new(&["all-kinds"]), &own);
    let reply = get(&gw.url("/__health"), &[]).await;
    assert_eq!(reply.json()["uri"], "/deep-health");
    assert_eq!(reply.header("x-server-plugin"), "stamp-server");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_s_connection_header_drops_its_own_headers_not_those_plugins_add() {
    let backend = start_backend().await;
    let cfg = config(
        None,
        json!([{
            "endpoint": "/x",
            "extra_config": {"plugin/req-resp-modifier": {"name": ["stamp-modifier"]}},
            "backend": [{"host": [backend.url()], "url_pattern": "/x"}],
        }]),
    );
    let gw = Gateway::start(Site::new(&["all-kinds"]), &cfg);
    let reply = get(
        &gw.url("/x"),
        &[
            ("connection", "x-modified, x-own"),
            ("x-own", "hop"),
            ("expect", "100-continue"),
        ],
    )
    .await;
    let headers = &reply.json()["headers"];
    // The modifier's header reaches the backend; the client's own hop-by-hop one does not,
    // nor its `Expect`, which gwhost answered.
    assert_eq!(headers["x-modified"][0], "yes", "{headers}");
    assert!(headers.get("x-own").is_none(), "{headers}");
    assert!(headers.get("expect").is_none(), "{headers}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_a_plugin_blocks_is_reported_and_so_is_its_return() {
    let backend = start_backend().await;
    let cfg = config(
        None,
        json!([{
            "endpoint": "/x",
            "extra_config": {"plugin/req-resp-modifier": {"name": ["stamp-modifier"]}},
            "backend": [{"host": [backend.url()], "url_pattern": "/x"}],
        }]),
    );
    let site = Site::new(&["all-kinds"]);
    let gw = Gateway::start_with_env(site, &cfg, &[], &[("TOKIO_WORKER_THREADS", "1")]);
    assert_eq!(get(&gw.url("/x"), &[]).await.status, 200);
    assert!(
        gw.logs().lines().all(|l| !l.contains("event loop")),
        "{}",
        gw.logs()
    );
    // The modifier sleeps on the worker's thread, as a plugin must not.
    let reply = get(&gw.url("/x"), &[("x-block-ms", "1600")]).await;
    assert_eq!(reply.status, 200);
    let stalled = gw.expect_log_line("worker thread 0 has not got back to its event loop for");
    assert!(stalled.contains("WARN"), "{stalled}");
    let again = gw.expect_log_line("worker thread 0 runs again, after about");
    let ms: u64 = again
        .split("after about ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{again}"));
    assert!((1500..3000).contains(&ms), "{again}");
}

/// Four requests, each on a connection of its own, each answered within a second: a
/// blocked worker is gone past (in turn, two would have gone to it and waited).
async fn new_connections_answer_at_once(url: &str) {
    for _ in 0..4 {
        let started = Instant::now();
        assert_eq!(get(url, &[]).await.status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "a new connection waited {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_a_plugin_spawns_that_block_hold_their_worker_not_the_gateway() {
    // Spawned tasks ran on the runtime that accepts connections, handles signals and
    // watches the workers: two that blocked (2 cores) froze the gateway, unlogged.
    let backend = start_backend().await;
    let cfg = config(
        Some(json!({"name": ["stamp-server"]})),
        json!([{"endpoint": "/x", "backend": [{"host": [backend.url()], "url_pattern": "/x"}]}]),
    );
    let site = Site::new(&["all-kinds"]);
    let gw = Gateway::start_with_env(site, &cfg, &[], &[("TOKIO_WORKER_THREADS", "2")]);
    let url = gw.url("/x");
    // Its own request shares its worker with the tasks, and may time out: its thread is
    // blocked, as with a plugin that blocks in the request.
    let spawning = tokio::spawn({
        let url = url.clone();
        async move { get(&url, &[("x-spawn-block-ms", "2500")]).await }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    new_connections_answer_at_once(&url).await;
    assert!(matches!(spawning.await.unwrap().status, 200 | 504));
    // Said, as a plugin blocking a request is.
    gw.expect_log_line("has not got back to its event loop");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_that_blocks_until_a_host_sleep_ends_waits_only_that_long() {
    // A sleep on the blocked worker's own timer never ended: the worker hung for good.
    let backend = start_backend().await;
    let cfg = config(
        None,
        json!([{
            "endpoint": "/x",
            "extra_config": {"plugin/req-resp-modifier": {"name": ["stamp-modifier"]}},
            "backend": [{"host": [backend.url()], "url_pattern": "/x"}],
        }]),
    );
    let gw = Gateway::start(Site::new(&["all-kinds"]), &cfg);
    let started = Instant::now();
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        get(&gw.url("/x"), &[("x-block-on-sleep-ms", "300")]),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer in 5 s: {}", gw.logs()));
    assert_eq!(reply.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn new_connections_go_past_a_worker_that_a_plugin_blocks() {
    let backend = start_backend().await;
    let cfg = config(
        None,
        json!([{
            "endpoint": "/x",
            "extra_config": {"plugin/req-resp-modifier": {"name": ["stamp-modifier"]}},
            "backend": [{"host": [backend.url()], "url_pattern": "/x"}],
        }]),
    );
    let site = Site::new(&["all-kinds"]);
    let gw = Gateway::start_with_env(site, &cfg, &[], &[("TOKIO_WORKER_THREADS", "2")]);
    let url = gw.url("/x");
    // The modifier sleeps on one worker's thread for 3 s, as a plugin must not.
    let blocked = tokio::spawn({
        let url = url.clone();
        async move { get(&url, &[("x-block-ms", "3000")]).await }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    new_connections_answer_at_once(&url).await;
    assert_eq!(blocked.await.unwrap().status, 200);
    let stalled = gw.expect_log_line("has not got back to its event loop");
    assert!(
        stalled.contains("new connections go to the other workers meanwhile"),
        "{stalled}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_backend_is_reached_over_tls_on_a_kept_connection() {
    let tls = start_tls_backend().await;
    let cfg = config(
        None,
        json!([{"endpoint": "/s", "backend": [{"host": [tls.url()], "url_pattern": "/secure"}]}]),
    );
    let ca = tls.ca_file.to_str().unwrap();
    let env = [("SSL_CERT_FILE", ca), ("TOKIO_WORKER_THREADS", "1")];
    let gw = Gateway::start_with_env(Site::new(&[]), &cfg, &[], &env);
    let client = client();
    for _ in 0..3 {
        let req = http::Request::get(gw.url("/s"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let reply = send(&client, req).await;
        assert_eq!(reply.status, 200, "{}", gw.logs());
        let echo = reply.json();
        assert_eq!(echo["uri"], "/secure");
        let host = format!("localhost:{}", tls.backend.addr.port());
        assert_eq!(echo["headers"]["host"], json!([host]));
    }
    assert_eq!(tls.backend.hits(), 3);
    assert_eq!(tls.backend.connections(), 1, "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_backend_connection_closed_or_with_bytes_after_its_response_is_not_reused() {
    use std::io::Write;
    // A backend whose answers come with what must stop the connection's reuse, in the
    // same TCP write as the response, so that the client's TLS reads them with it: after
    // a HEAD's head, a body it must not send; after a GET's response, a TLS close_notify
    // (without `connection: close`). It answers anything else with `ok`.
    let pki = TestPki::new();
    let (port, connections) = start_scripted_tls_backend(&pki, |request, tls, tcp| {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        if request.starts_with(b"HEAD") {
            let head = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n";
            let _ = tls.writer().write_all(head);
            let _ = tls.writer().write_all(b"stray");
        } else if request.starts_with(b"GET") {
            let _ = tls.writer().write_all(ok);
            tls.send_close_notify();
        } else if tls.writer().write_all(ok).is_err() {
            return false;
        }
        let mut records = Vec::new();
        while tls.wants_write() {
            tls.write_tls(&mut records).unwrap();
        }
        // Kept open after a close_notify: only TLS says the connection is done.
        tcp.write_all(&records).is_ok()
    });
    let cfg = config(
        None,
        json!([
            {"endpoint": "/x", "method": "HEAD",
             "backend": [{"host": [format!("https://localhost:{port}")], "url_pattern": "/x"}]},
            {"endpoint": "/x",
             "backend": [{"host": [format!("https://localhost:{port}")], "url_pattern": "/x"}]},
            {"endpoint": "/x", "method": "POST",
             "backend": [{"host": [format!("https://localhost:{port}")], "url_pattern": "/x"}]},
        ]),
    );
    let ca = pki.file("ca.pem");
    let env = [
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ("TOKIO_WORKER_THREADS", "1"),
    ];
    let gw = Gateway::start_with_env(Site::new(&[]), &cfg, &[], &env);
    let client = client();
    let head = http::Request::head(gw.url("/x"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&client, head).await.status, 200, "{}", gw.logs());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let get = http::Request::get(gw.url("/x"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = send(&client, get).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "ok"),
        "{}",
        gw.logs()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Not repeatable: on a closed connection it would be a 502, not retried.
    let post = http::Request::post(gw.url("/x"))
        .body(Full::new(Bytes::from_static(b"data")))
        .unwrap();
    let reply = send(&client, post).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "ok"),
        "{}",
        gw.logs()
    );
    assert_eq!(connections.load(Ordering::SeqCst), 3, "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_backend_that_ends_its_body_by_closing_without_close_notify_is_read_to_the_end() {
    use std::io::{Read, Write};
    // An HTTP/1.0-style answer, its body delimited by the close, and the close without a
    // TLS close_notify, as Python's `ssl` and many servers do.
    let pki = TestPki::new();
    let (port, _) = start_scripted_tls_backend(&pki, |_, tls, tcp| {
        let body = "x".repeat(100_000);
        let answer = format!("HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\n{body}");
        // In pieces: rustls buffers at most 64 KiB of what is written to it.
        for piece in answer.as_bytes().chunks(16 * 1024) {
            let _ = tls.writer().write_all(piece);
            while tls.wants_write() {
                if tls.write_tls(tcp).is_err() {
                    break;
                }
            }
        }
        // The TCP connection closes, with no close_notify (and after the client, so that
        // nothing it sent is left unread, which would make the close a reset).
        let _ = tcp.shutdown(std::net::Shutdown::Write);
        let _ = tcp.read_to_end(&mut Vec::new());
        false
    });
    let cfg = config(
        None,
        json!([{"endpoint": "/x",
                "backend": [{"host": [format!("https://localhost:{port}")], "url_pattern": "/x"}]}]),
    );
    let ca = pki.file("ca.pem");
    let env = [("SSL_CERT_FILE", ca.to_str().unwrap())];
    let gw = Gateway::start_with_env(Site::new(&[]), &cfg, &[], &env);
    for _ in 0..2 {
        let reply = get(&gw.url("/x"), &[]).await;
        assert_eq!(reply.status, 200, "{}", gw.logs());
        assert_eq!(reply.body.len(), 100_000, "{}", gw.logs());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_stop_a_client_still_in_its_tls_handshake_is_closed_at_once() {
    let backend = start_backend().await;
    let pki = TestPki::new();
    let mut cfg = config(
        None,
        json!([{"endpoint": "/x", "backend": [{"host": [backend.url()], "url_pattern": "/y"}]}]),
    );
    cfg["tls"] = json!({"public_key": pki.file("cert.pem"), "private_key": pki.file("key.pem")});
    let mut gw = Gateway::start(Site::new(&[]), &cfg);
    // Connected, and silent: its handshake has not begun.
    let _silent = std::net::TcpStream::connect(gw.addr).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    gw.terminate();
    let status = tokio::task::spawn_blocking(move || {
        let status = gw.wait(Duration::from_secs(8));
        (status, gw.logs())
    })
    .await
    .unwrap();
    assert_eq!(status.0.map(|s| s.code()), Some(Some(0)), "{}", status.1);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_backend_with_an_untrusted_certificate_is_a_502_that_says_why() {
    let tls = start_tls_backend().await;
    // Trusting another CA only.
    let other = start_tls_backend().await;
    let cfg = config(
        None,
        json!([{"endpoint": "/s", "backend": [{"host": [tls.url()], "url_pattern": "/secure"}]}]),
    );
    let env = [("SSL_CERT_FILE", other.ca_file.to_str().unwrap())];
    let gw = Gateway::start_with_env(Site::new(&[]), &cfg, &[], &env);
    assert_eq!(get(&gw.url("/s"), &[]).await.status, 502);
    assert_eq!(tls.backend.hits(), 0);
    let line = gw.expect_log_line("backend unreachable");
    assert!(
        line.contains("connect: TLS handshake: invalid peer certificate: UnknownIssuer"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_sends_to_an_https_url_with_the_host_s_client() {
    let tls = start_tls_backend().await;
    let cfg = config(
        None,
        json!([{"endpoint": "/s", "backend": [{
            "host": [tls.url()],
            "url_pattern": "/secure",
            "extra_config": {"plugin/http-client": {
                "name": "services-client",
                "services-client": {"backend": tls.url()},
            }},
        }]}]),
    );
    let env = [("SSL_CERT_FILE", tls.ca_file.to_str().unwrap())];
    let gw = Gateway::start_with_env(Site::new(&["all-kinds"]), &cfg, &[], &env);
    let reply = get(&gw.url("/s"), &[]).await;
    assert_eq!(reply.status, 200, "{}", gw.logs());
    assert_eq!(reply.json()["uri"], "/secure");
    // The plugin's spawned call to `/spawned`, over TLS too.
    let start = Instant::now();
    while tls.backend.hits() < 2 {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_tls_block_the_gateway_serves_https_and_only_https() {
    use std::io::{Read, Write};
    let backend = start_backend().await;
    let pki = TestPki::new();
    let mut cfg = config(
        None,
        json!([{"endpoint": "/x", "backend": [{"host": [backend.url()], "url_pattern": "/y"}]}]),
    );
    cfg["tls"] = json!({
        "public_key": pki.file("cert.pem"),
        "private_key": pki.file("key.pem"),
    });
    let gw = Gateway::start(Site::new(&[]), &cfg);
    assert!(
        gw.log_line("listening on https://").is_some(),
        "{}",
        gw.logs()
    );
    for _ in 0..2 {
        let reply = https_get(gw.addr, &pki.file("ca.pem"), "/x").await.unwrap();
        assert_eq!(reply.status, 200, "{}", gw.logs());
        assert_eq!(reply.json()["uri"], "/y");
    }
    // Plain HTTP on the same port gets a 400 that says why.
    let addr = gw.addr;
    let answer = tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.write_all(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        let _ = conn.read_to_end(&mut buf);
        buf
    })
    .await
    .unwrap();
    let answer = text(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        answer.ends_with("Client sent an HTTP request to an HTTPS server.\n"),
        "{answer}"
    );
    assert_eq!(backend.hits(), 2);
}

#[test]
fn check_refuses_tls_files_that_do_not_make_an_identity_and_names_the_key() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let site = Site::new(&[]);
    // What `openssl pkey -aes256` writes (the content does not matter here).
    let encrypted = pki.file("encrypted.pem");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAECAwQFBgcICQoLDA0ODw==\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let cases = [
        (
            json!({"public_key": pki.file("cert.pem"), "private_key": pki.file("missing.pem")}),
            "error: tls.private_key: cannot read a private key from `",
        ),
        (
            json!({"public_key": pki.file("key.pem"), "private_key": pki.file("key.pem")}),
            "error: tls.public_key: no certificate in `",
        ),
        (
            json!({"public_key": pki.file("cert.pem"), "private_key": other.file("key.pem")}),
            "error: tls.private_key: the certificate in `",
        ),
        (
            json!({"public_key": "cert.pem", "private_key": "key.pem", "min_version": "TLS11"}),
            "error: tls.min_version: expected `TLS12` or `TLS13`, found `TLS11`",
        ),
        (
            json!({"public_key": pki.file("cert.pem"), "private_key": encrypted}),
            "is encrypted (it has a passphrase), which gwhost cannot use",
        ),
    ];
    for (tls, expected) in cases {
        let mut cfg = config(None, json!([]));
        cfg["tls"] = tls;
        let path = site.write_config(&cfg);
        let out = run(&["check", "-c", path.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(stderr.contains("help: "), "{stderr}");
    }
    // `disabled` turns it off, files unread.
    let mut cfg = config(None, json!([]));
    cfg["tls"] = json!({"public_key": "nowhere", "private_key": "nowhere", "disabled": true});
    let out = run(&["check", "-c", site.write_config(&cfg).to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_body_that_breaks_off_or_is_malformed_is_a_400_not_the_backend_s_fault() {
    use std::io::{Read, Write};
    let backend = start_backend().await;
    // Also through an http-client plugin that sends the body on: its failure on the
    // client's body was a 502 and an ERROR naming the plugin.
    let cfg = config(
        None,
        json!([
            {"endpoint": "/up", "method": "POST", "backend": [{"host": [backend.url()], "url_pattern": "/up"}]},
            {"endpoint": "/up-client", "method": "POST", "backend": [{"host": [backend.url()], "url_pattern": "/up",
                "extra_config": {"plugin/http-client": {"name": "pass-client"}}}]},
        ]),
    );
    let gw = Gateway::start(Site::new(&["passthrough"]), &cfg);
    let addr = gw.addr;
    let exchange = |request: &'static [u8]| {
        tokio::task::spawn_blocking(move || {
            let mut conn = std::net::TcpStream::connect(addr).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            conn.write_all(request).unwrap();
            // No more is coming.
            conn.shutdown(std::net::Shutdown::Write).unwrap();
            let mut answer = Vec::new();
            let _ = conn.read_to_end(&mut answer);
            text(&answer)
        })
    };
    let short = exchange(b"POST /up HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n0123456789");
    let bad_chunks = exchange(
        b"POST /up HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n5\r\nabc\r\nXYZ\r\n",
    );
    let short_via_plugin =
        exchange(b"POST /up-client HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n0123456789");
    let bad_chunks_via_plugin = exchange(
        b"POST /up-client HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n5\r\nabc\r\nXYZ\r\n",
    );
    for answer in [
        short.await.unwrap(),
        bad_chunks.await.unwrap(),
        short_via_plugin.await.unwrap(),
        bad_chunks_via_plugin.await.unwrap(),
    ] {
        assert!(
            answer.starts_with("HTTP/1.1 400 "),
            "{answer}\n{}",
            gw.logs()
        );
    }
    assert!(
        gw.log_line("the client's request body failed").is_some(),
        "{}",
        gw.logs()
    );
    assert!(
        gw.logs()
            .lines()
            .all(|l| !l.contains("backend unreachable") && !l.contains("ERROR")),
        "{}",
        gw.logs()
    );
    assert!(
        gw.log_line("plugin=\"pass-client\"")
            .is_some_and(|l| l.contains(" INFO ") && l.contains("the client's request body failed")),
        "{}",
        gw.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_without_one_host_or_with_a_coding_beyond_chunked_is_refused_before_the_backend()
{
    let backend = start_backend().await;
    let cfg = config(
        None,
        json!([
            {"endpoint": "/x", "backend": [{"host": [backend.url()], "url_pattern": "/x"}]},
            {"endpoint": "/up", "method": "POST", "backend": [{"host": [backend.url()], "url_pattern": "/up"}]},
        ]),
    );
    let gw = Gateway::start(Site::new(&[]), &cfg);
    let addr = gw.addr;
    let status = |request: &'static str| {
        tokio::task::spawn_blocking(move || {
            let answer = raw_until_closed(addr, request);
            // The status, after the version (hyper answers HTTP/1.0 in kind).
            let line = answer.lines().next().unwrap_or_default();
            line.split_once(' ')
                .map_or("", |(_, status)| status)
                .to_owned()
        })
    };
    let chunked = "5\r\nhello\r\n0\r\n\r\n";
    for (request, expected) in [
        (
            "GET /x HTTP/1.1\r\nconnection: close\r\n\r\n",
            "400 Bad Request",
        ),
        (
            "GET /x HTTP/1.1\r\nhost: a\r\nhost: b\r\nconnection: close\r\n\r\n",
            "400 Bad Request",
        ),
        (
            "GET /x HTTP/1.0\r\nhost: a\r\nhost: a\r\n\r\n",
            "400 Bad Request",
        ),
        (
            Box::leak(
                format!(
                    "POST /up HTTP/1.1\r\nhost: a\r\ntransfer-encoding: gzip, chunked\r\n\
                     connection: close\r\n\r\n{chunked}"
                )
                .into_boxed_str(),
            ),
            "501 Not Implemented",
        ),
        // A head still unfinished past 64 KiB: hyper's ~400 KiB let 300 such connections
        // hold 150 MB.
        (
            Box::leak(
                format!(
                    "GET /x HTTP/1.1\r\nhost: a\r\nx-big: {}",
                    "a".repeat(100_000)
                )
                .into_boxed_str(),
            ),
            "431 Request Header Fields Too Large",
        ),
    ] {
        let shown = &request[..request.len().min(200)];
        assert_eq!(status(request).await.unwrap(), expected, "{shown:?}");
    }
    assert_eq!(backend.hits(), 0, "none reached the backend");
    // A long one within it goes through.
    let long = Box::leak(
        format!(
            "GET /x HTTP/1.1\r\nhost: a\r\nx-big: {}\r\nconnection: close\r\n\r\n",
            "a".repeat(30_000)
        )
        .into_boxed_str(),
    );
    assert_eq!(status(long).await.unwrap(), "200 OK");
    // HTTP/1.0 may leave `Host` out; plain chunked is forwarded.
    assert_eq!(status("GET /x HTTP/1.0\r\n\r\n").await.unwrap(), "200 OK");
    let post = Box::leak(
        format!(
            "POST /up HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\
             connection: close\r\n\r\n{chunked}"
        )
        .into_boxed_str(),
    );
    assert_eq!(status(post).await.unwrap(), "200 OK");
    assert_eq!(backend.hits(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_head_response_whose_body_a_plugin_replaced_keeps_its_headers_and_sends_no_body() {
    let backend = start_backend().await;
    let cfg = config(
        None,
        json!([{
            "endpoint": "/x",
            "method": "HEAD",
            "extra_config": {"plugin/req-resp-modifier": {"name": ["stamp-modifier"]}},
            "backend": [{"host": [backend.url()], "url_pattern": "/x"}],
        }]),
    );
    let gw = Gateway::start(Site::new(&["all-kinds"]), &cfg);
    let client = client();
    for _ in 0..2 {
        let req = http::Request::head(gw.url("/x"))
            .header("x-replace-body", "1")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let reply = send(&client, req).await;
        assert_eq!(reply.status, 200, "{}", gw.logs());
        assert_eq!(reply.headers["x-response-modified"], "1");
    }
    // On the wire: the next response follows the HEAD's head at once, no body between.
    let addr = gw.addr;
    let wire = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        conn.write_all(
            b"HEAD /x HTTP/1.1\r\nhost: t\r\nx-replace-body: 1\r\n\r\n\
              GET /nothing HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
        )
        .unwrap();
        let mut wire = Vec::new();
        let _ = conn.read_to_end(&mut wire);
        text(&wire)
    })
    .await
    .unwrap();
    let (_, after_head) = wire.split_once("\r\n\r\n").expect("a head");
    assert!(after_head.starts_with("HTTP/1.1 404 "), "{wire}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_1_0_backend_does_not_make_the_client_connection_http_1_0() {
    // A backend that answers in HTTP/1.0 and closes (as `python3 -m http.server` does).
    let old_addr = start_raw_backend(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", drop);
    let cfg = config(None, json!([raw_endpoint("/old", old_addr)]));
    let gw = Gateway::start(Site::new(&[]), &cfg);
    // Two requests on one connection: each answered in HTTP/1.1, the connection kept.
    let mut client = send_raw(gw.addr, "GET /old HTTP/1.1\r\nhost: x\r\n\r\n");
    for round in 0..2 {
        if round == 1 {
            std::io::Write::write_all(&mut client, b"GET /old HTTP/1.1\r\nhost: x\r\n\r\n")
                .unwrap();
        }
        let mut answer = Vec::new();
        let mut chunk = [0u8; 1024];
        while !answer.ends_with(b"\r\n\r\nok") {
            let n = std::io::Read::read(&mut client, &mut chunk).expect("an answer");
            assert!(
                n > 0,
                "closed after {round} answers: {}",
                String::from_utf8_lossy(&answer)
            );
            answer.extend_from_slice(&chunk[..n]);
        }
        let answer = String::from_utf8_lossy(&answer).to_lowercase();
        assert!(answer.starts_with("http/1.1 200 ok\r\n"), "{answer}");
        assert!(!answer.contains("connection: close"), "{answer}");
    }
}

/// The status line gwhost answers `GET path` with.
fn status_line(addr: std::net::SocketAddr, path: &str, headers: &str) -> String {
    let mut stream = send_raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nhost: x\r\n{headers}\r\n"),
    );
    read_line(&mut stream)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_status_without_a_standard_reason_keeps_the_backend_s_not_hyper_s_none() {
    let named = start_raw_backend(
        b"HTTP/1.1 599 Network Connect Timeout Error\r\ncontent-length: 2\r\n\r\nok",
        drop,
    );
    let bare = start_raw_backend(b"HTTP/1.1 599\r\ncontent-length: 2\r\n\r\nok", drop);
    // A modifier turns the 599 into a 598: the phrase was the 599's.
    let changed = start_raw_backend(
        b"HTTP/1.1 599 Network Connect Timeout Error\r\nx-set-status: 598\r\ncontent-length: 2\r\n\r\nok",
        drop,
    );
    let mut changed = raw_endpoint("/changed", changed);
    changed["extra_config"] = json!({"plugin/req-resp-modifier": {"name": ["stamp-modifier"]}});
    let backend = start_backend().await;
    let cfg = config(
        Some(json!({"name": "stamp-server"})),
        json!([
            raw_endpoint("/named", named),
            raw_endpoint("/bare", bare),
            endpoint("/plugin", &backend, "/"),
            changed,
        ]),
    );
    let gw = Gateway::start(Site::new(&["all-kinds"]), &cfg);
    let addr = gw.addr;
    let lines = tokio::task::spawn_blocking(move || {
        [
            status_line(addr, "/named", ""),
            status_line(addr, "/bare", ""),
            status_line(addr, "/plugin", "x-answer-status: 999\r\n"),
            status_line(addr, "/plugin", "x-answer-status: 418\r\n"),
            status_line(addr, "/changed", ""),
        ]
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.logs()));
    assert_eq!(
        lines,
        [
            "HTTP/1.1 599 Network Connect Timeout Error\r\n",
            "HTTP/1.1 599 \r\n",
            "HTTP/1.1 999 \r\n",
            "HTTP/1.1 418 I'm a teapot\r\n",
            "HTTP/1.1 598 \r\n",
        ]
    );
}

/// A backend that reads a request's head only and answers `413` at once (after a `100
/// Continue`). Then, with `close`, it closes the connection, the body unread (its writes
/// fail on the gateway's side); without, it keeps the connection (its answer says
/// keep-alive) but stops reading, for 5 s.
fn start_early_answer_backend(close: bool) -> std::net::SocketAddr {
    if close {
        start_raw_backend(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 413 Payload Too Large\r\n\
              content-length: 9\r\nconnection: close\r\n\r\ntoo large",
            drop,
        )
    } else {
        start_raw_backend(
            b"HTTP/1.1 100 Continue\n\nHTTP/1.1 413 Payload Too Large\r\ncontent-length: 9\r\n\r\ntoo large",
            |_| std::thread::sleep(Duration::from_secs(5)),
        )
    }
}

/// POSTs a body of `length` bytes to `addr`, sending only `send` of them (then holding
/// the connection open); returns what comes back, and when, up to the closing or 10 s.
fn post_raw(
    addr: std::net::SocketAddr,
    path: &str,
    length: usize,
    send: usize,
) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = send_raw(
        addr,
        &format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {length}\r\n\r\n"),
    );
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        // Fails once the gateway has answered and closed: what the client sees then is
        // the question, not its upload.
        let _ = std::io::Write::write_all(&mut writer, &vec![b'u'; send]);
        std::thread::sleep(Duration::from_secs(10));
    });
    (read_until(&mut stream, b"too large"), started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_that_answers_before_the_upload_ends_has_its_answer_passed_on() {
    let closing = start_early_answer_backend(true);
    let holding = start_early_answer_backend(false);
    // The same over TLS, where rustls takes what the socket does not, until its flush.
    let pki = TestPki::new();
    let (tls_port, _) = start_scripted_tls_backend(&pki, |_, tls, tcp| {
        let _ = std::io::Write::write_all(
            &mut tls.writer(),
            b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 9\r\n\r\ntoo large",
        );
        while tls.wants_write() {
            if tls.write_tls(tcp).is_err() {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(5));
        false
    });
    let backend = |host: String| json!([{"host": [host], "url_pattern": "/", "timeout": "8s"}]);
    let cfg = config(
        None,
        json!([
            {"endpoint": "/closing", "method": "POST", "backend": backend(format!("http://{closing}"))},
            {"endpoint": "/holding", "method": "POST", "backend": backend(format!("http://{holding}"))},
            {"endpoint": "/tls", "method": "POST", "backend": backend(format!("https://localhost:{tls_port}"))},
        ]),
    );
    let ca = pki.file("ca.pem");
    // One worker: one pool of backend connections, for the second request to `/holding`
    // to be offered the first one's connection.
    let env = [
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ("TOKIO_WORKER_THREADS", "1"),
    ];
    let gw = Gateway::start_with_env(Site::new(&[]), &cfg, &[], &env);
    let big = 32 << 20;
    for (path, length, send, case) in [
        // The backend closes while the upload goes on: the gateway's writes fail, or
        // block first and see the answer (which of the two, timing decides).
        ("/closing", big, big, "closed on"),
        // The backend stops reading, the upload fills every buffer on the way.
        ("/holding", big, big, "not read"),
        // The client sends a little, then waits: the gateway waits for the body. Its
        // backend connection is not the one above, kept alive but out of step.
        ("/holding", 1_000_000, 10, "slow client"),
        ("/tls", big, big, "not read, over TLS"),
        ("/tls", 1_000_000, 10, "slow client, over TLS"),
    ] {
        let (answer, took) = post_raw(gw.addr, path, length, send);
        assert!(
            answer.starts_with("HTTP/1.1 413 ") && answer.ends_with("\r\n\r\ntoo large"),
            "{case}: {answer:?}"
        );
        assert!(
            took < Duration::from_secs(3),
            "{case}: answered after {took:?}"
        );
    }
    assert!(!gw.logs().contains("backend unreachable"), "{}", gw.logs());
}

/// Body bytes read by [`start_streaming_backend`]'s connections.
static STREAMING_BACKEND_READ: AtomicUsize = AtomicUsize::new(0);

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_that_answers_200_early_and_reads_on_gets_the_whole_body() {
    // It answers once it has the head (as a server that streams its reply does), then
    // reads the body to its end.
    let streaming = start_raw_backend(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
        |mut stream| {
            let mut chunk = [0u8; 64 * 1024];
            while let Ok(n @ 1..) = std::io::Read::read(&mut stream, &mut chunk) {
                STREAMING_BACKEND_READ.fetch_add(n, Ordering::SeqCst);
            }
        },
    );
    let cfg = config(
        None,
        json!([{"endpoint": "/stream", "method": "POST",
                "backend": [{"host": [format!("http://{streaming}")], "url_pattern": "/"}]}]),
    );
    let gw = Gateway::start(Site::new(&[]), &cfg);
    let half = 100_000;
    let mut client = send_raw(
        gw.addr,
        &format!(
            "POST /stream HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            2 * half
        ),
    );
    // Half the body, a pause (the backend's answer comes in meanwhile), the other half.
    std::io::Write::write_all(&mut client, &vec![b'a'; half]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::io::Write::write_all(&mut client, &vec![b'b'; half]).unwrap();
    let answer = read_until(&mut client, b"\r\n\r\nok");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while STREAMING_BACKEND_READ.load(Ordering::SeqCst) < 2 * half && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(STREAMING_BACKEND_READ.load(Ordering::SeqCst), 2 * half);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clients_expect_is_answered_by_gwhost_and_not_passed_on() {
    // gwhost (hyper) sends the client its `100 Continue`; the backend gets no `Expect`,
    // and so no reason to send one of its own mid-upload (a backend's 1xx read past is
    // `a_backend_that_answers_before_the_upload_ends_has_its_answer_passed_on`'s).
    let backend = start_backend().await;
    let cfg = config(
        None,
        json!([{"endpoint": "/up", "method": "POST", "backend": [{"host": [backend.url()],
            "url_pattern": "/", "timeout": "20s"}]}]),
    );
    let gw = Gateway::start(Site::new(&[]), &cfg);
    let body = vec![b'u'; 32 << 20];
    let req = http::Request::post(gw.url("/up"))
        .header("expect", "100-continue")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let reply = send(&client(), req).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["body_len"], 32 << 20);
    assert_eq!(reply.json()["headers"].get("expect"), None);

    // A backend that sends a `100 Continue` all the same, then reads the whole upload and
    // answers: the 100 is not taken for its answer, and the upload goes on.
    fn read_upload_then_answer(mut stream: std::net::TcpStream) {
        use std::io::{Read, Write};
        let mut left = 1usize << 20;
        let mut buf = vec![0u8; 1 << 16];
        while left > 0 {
            match stream.read(&mut buf[..left.min(1 << 16)]) {
                Ok(0) | Err(_) => return,
                Ok(n) => left -= n,
            }
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\ngot");
    }
    let continuing = start_raw_backend(b"HTTP/1.1 100 Continue\r\n\r\n", read_upload_then_answer);
    let cfg = config(
        None,
        json!([{"endpoint": "/up", "method": "POST", "backend": [{"host": [format!("http://{continuing}")],
            "url_pattern": "/", "timeout": "20s"}]}]),
    );
    let gw = Gateway::start(Site::new(&[]), &cfg);
    let req = http::Request::post(gw.url("/up"))
        .body(Full::new(Bytes::from(vec![b'u'; 1 << 20])))
        .unwrap();
    let reply = send(&client(), req).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "got"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_s_content_length_list_reaches_the_client_as_one_length() {
    // `5, 5` is gwhost's to mend; the field twice, hyper's server already sends once.
    let list = start_raw_backend(
        b"HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\nhello",
        drop,
    );
    let twice = start_raw_backend(
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello",
        drop,
    );
    let cfg = config(
        None,
        json!([raw_endpoint("/list", list), raw_endpoint("/twice", twice)]),
    );
    let gw = Gateway::start(Site::new(&[]), &cfg);
    for path in ["/list", "/twice"] {
        let answer = raw_until_closed(
            gw.addr,
            &format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
        )
        .to_lowercase();
        assert!(answer.starts_with("http/1.1 200 ok\r\n"), "{answer}");
        assert_eq!(answer.matches("content-length").count(), 1, "{answer}");
        assert!(answer.contains("\r\ncontent-length: 5\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nhello"), "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_response_in_a_transfer_coding_beyond_chunked_is_a_502() {
    let gzip_chunked = start_raw_backend(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        drop,
    );
    let gzip = start_raw_backend(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nhello",
        drop,
    );
    let empty = start_raw_backend(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: ,\r\n\r\nhello",
        drop,
    );
    let chunked = start_raw_backend(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        drop,
    );
    let cfg = config(
        None,
        json!([
            raw_endpoint("/gzip-chunked", gzip_chunked),
            raw_endpoint("/gzip", gzip),
            raw_endpoint("/empty", empty),
            raw_endpoint("/chunked", chunked),
        ]),
    );
    let gw = Gateway::start(Site::new(&[]), &cfg);
    for path in ["/gzip-chunked", "/gzip", "/empty"] {
        assert_eq!(get(&gw.url(path), &[]).await.status, 502, "{path}");
    }
    assert!(
        gw.log_line("the response's transfer coding is not `chunked`")
            .is_some(),
        "{}",
        gw.logs()
    );
    let reply = get(&gw.url("/chunked"), &[]).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "hello"));
}

/// Connections accepted by the backend of the test below.
static CHUNKED_1_0_CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

#[tokio::test(flavor = "multi_thread")]
async fn chunked_responses_with_many_trailers_pass_and_chunked_http_1_0_is_not_reused() {
    // Chunked, with 40 trailer fields (the head's limits apply, not tighter ones); in
    // HTTP/1.0, which has no chunked, so its connection must close after it (RFC 9112
    // §6.1), though it says keep-alive and keeps serving.
    const ANSWER: &[u8] = b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\n\
        transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\
        t0: v\r\nt1: v\r\nt2: v\r\nt3: v\r\nt4: v\r\nt5: v\r\nt6: v\r\nt7: v\r\nt8: v\r\nt9: v\r\n\
        u0: v\r\nu1: v\r\nu2: v\r\nu3: v\r\nu4: v\r\nu5: v\r\nu6: v\r\nu7: v\r\nu8: v\r\nu9: v\r\n\
        v0: v\r\nv1: v\r\nv2: v\r\nv3: v\r\nv4: v\r\nv5: v\r\nv6: v\r\nv7: v\r\nv8: v\r\nv9: v\r\n\
        w0: v\r\nw1: v\r\nw2: v\r\nw3: v\r\nw4: v\r\nw5: v\r\nw6: v\r\nw7: v\r\nw8: v\r\nw9: v\r\n\r\n";
    let addr = start_raw_backend(ANSWER, |mut stream| {
        CHUNKED_1_0_CONNECTIONS.fetch_add(1, Ordering::SeqCst);
        // Serves on, as a keep-alive connection would.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while std::io::Read::read(&mut stream, &mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
            if head.ends_with(b"\r\n\r\n") {
                head.clear();
                let _ = std::io::Write::write_all(&mut stream, ANSWER);
            }
        }
    });
    let cfg = config(None, json!([raw_endpoint("/t", addr)]));
    let env = [("TOKIO_WORKER_THREADS", "1")];
    let gw = Gateway::start_with_env(Site::new(&[]), &cfg, &[], &env);
    for _ in 0..2 {
        let reply = get(&gw.url("/t"), &[]).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "hello"),
            "{}",
            gw.logs()
        );
    }
    assert_eq!(CHUNKED_1_0_CONNECTIONS.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_that_closes_mid_body_leaves_the_client_its_head_and_what_came() {
    // The backend's head and its first bytes arrive together, then the connection
    // closes, 93 bytes short: as nginx does, the client gets the head and those bytes,
    // then the connection closes before the body's end (not a close with nothing, as
    // if the gateway had never answered). Without plugins, then with one in the pipeline.
    let addr = start_raw_backend(
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial",
        drop,
    );
    let mut with_modifier = raw_endpoint("/cut", addr);
    with_modifier["extra_config"] =
        json!({"plugin/req-resp-modifier": {"name": ["stamp-modifier"]}});
    // An http-client plugin that forwards with the host's client, as most do.
    let mut with_client = raw_endpoint("/cut", addr);
    with_client["backend"][0]["extra_config"] = json!({"plugin/http-client": {
        "name": "services-client",
        "services-client": {"backend": format!("http://{addr}")}}});
    for (cfg, site) in [
        (
            config(None, json!([raw_endpoint("/cut", addr)])),
            Site::new(&[]),
        ),
        (
            config(None, json!([with_modifier])),
            Site::new(&["all-kinds"]),
        ),
        (
            config(None, json!([with_client])),
            Site::new(&["all-kinds"]),
        ),
    ] {
        let gw = Gateway::start(site, &cfg);
        let answer = raw_until_closed(gw.addr, "GET /cut HTTP/1.1\r\nhost: x\r\n\r\n");
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n")
                && answer.contains("content-length: 100\r\n")
                && answer.ends_with("\r\n\r\npartial"),
            "{answer:?}\n{}",
            gw.logs()
        );
        // The backend's failure, logged as such: no plugin is blamed.
        let line = gw.expect_log_line("response cut short");
        assert!(line.contains("WARN") && !line.contains("plugin="), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_response_streams_through_then_its_connection_is_reused() {
    let backend = start_backend().await;
    // Also with a plugin in the pipeline, where the body's first chunk is polled before
    // its head goes out, and held.
    let mut with_plugin = endpoint("/big-m", &backend, "/big");
    with_plugin["extra_config"] = json!({"plugin/req-resp-modifier": {"name": ["stamp-modifier"]}});
    let cfg = config(
        None,
        json!([endpoint("/big", &backend, "/big"), with_plugin]),
    );
    let gw = Gateway::start(Site::new(&["all-kinds"]), &cfg);
    for path in ["/big", "/big-m"] {
        for len in [1_000_000usize, 17, 0, 300_000] {
            let reply = get(&gw.url(path), &[("x-reply-bytes", &len.to_string())]).await;
            assert_eq!(reply.status, 200, "{path}");
            let bytes = reply.body.as_bytes();
            assert_eq!(bytes.len(), len, "{path}");
            let wrong = (0..len).find(|&i| bytes[i] != slow_chunks_byte(i));
            assert_eq!(
                wrong, None,
                "{path}: the body differs from what the backend sent"
            );
        }
    }
    // The pooled backend connections still answer, one request after another.
    for _ in 0..20 {
        let reply = get(&gw.url("/big"), &[]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["uri"], "/big");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_modifier_rewrites_a_streamed_backend_body_whole_with_map_whole() {
    let backend = start_backend().await;
    let mut shouting = endpoint("/shout", &backend, "/big");
    shouting["extra_config"] = json!({"plugin/req-resp-modifier": {"name": ["stamp-modifier"]}});
    let cfg = config(None, json!([shouting]));
    let gw = Gateway::start(Site::new(&["all-kinds"]), &cfg);
    // 300 kB streamed in pieces, upper-cased whole, within the limit.
    let len = 300_000usize;
    let reply = get(
        &gw.url("/shout"),
        &[
            ("x-reply-bytes", &len.to_string()),
            ("x-reply-header-x-shout-limit", "1000000"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", gw.logs());
    let bytes = reply.body.as_bytes();
    assert_eq!(bytes.len(), len);
    let wrong = (0..len).find(|&i| bytes[i] != slow_chunks_byte(i).to_ascii_uppercase());
    assert_eq!(wrong, None, "the body is not the backend's, upper-cased");
    // Past the limit: the body fails as the plugin's, and the client never gets a whole
    // 200 body.
    let addr = gw.addr;
    let answer = tokio::task::spawn_blocking(move || {
        raw_until_closed(
            addr,
            &format!(
                "GET /shout HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-reply-bytes: {len}\r\n\
                 x-reply-header-x-shout-limit: 1000\r\n\r\n"
            ),
        )
    })
    .await
    .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 500 ") && answer.len() < 1000,
        "{}",
        &answer[..answer.len().min(300)]
    );
    let line = gw.expect_log_line("larger than the 1000 bytes `map_whole` reads");
    assert!(line.contains("plugin=\"stamp-modifier\""), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_is_504_and_unreachable_is_502() {
    let backend = start_backend().await;
    let dead = dead_address();
    let cfg = config(
        None,
        json!([
            {
                "endpoint": "/slow",
                "backend": [{"host": [backend.url()], "url_pattern": "/", "timeout": "300ms"}],
            },
            {
                "endpoint": "/dead",
                "backend": [{"host": [format!("http://{dead}")], "url_pattern": "/"}],
            },
        ]),
    );
    let gw = Gateway::start(Site::new(&[]), &cfg);
    // A backend that sends its head and then stalls in the body: the response is cut
    // short at the same deadline (its head already sent, the connection is closed).
    let started = Instant::now();
    let answer = raw_until_closed(
        gw.addr,
        "GET /slow HTTP/1.1\r\nhost: x\r\nx-stall-body: 1\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.contains("\r\n\r\n2\r\nab\r\n"),
        "the first bytes came: {answer}"
    );
    assert!(
        !answer.ends_with("0\r\n\r\n"),
        "not a complete body: {answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        gw.log_line("the backend sent nothing for 300ms").is_some(),
        "{}",
        gw.logs()
    );

    // A client that stops reading for longer than the backend's timeout does not use up
    // the backend's time: 20 MB (more than the sockets between hold, and paced by the
    // backend over more than 300 ms), with a 1 s pause after the head, all arrive.
    let mut stream = send_raw(
        gw.addr,
        "GET /slow HTTP/1.1\r\nhost: x\r\nx-reply-bytes: 20000000\r\n\r\n",
    );
    let mut answer = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    let mut paused = false;
    while !answer.ends_with(b"\r\n0\r\n\r\n") {
        let n = std::io::Read::read(&mut stream, &mut chunk).expect("the body keeps coming");
        assert!(n > 0, "closed after {} bytes", answer.len());
        answer.extend_from_slice(&chunk[..n]);
        if !std::mem::replace(&mut paused, true) {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    assert!(answer.len() > 20_000_000);

    let started = Instant::now();
    let reply = get(&gw.url("/slow"), &[("x-delay-ms", "3000")]).await;
    assert_eq!(reply.status, 504);
    assert!(!reply.header("x-request-id").is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The operator is told which backend.
    let line = gw.expect_log_line("backend did not answer within 300ms");
    assert!(
        line.contains(&format!("backend={}", backend.url())),
        "{}",
        gw.logs()
    );
    // Under the timeout it is answered.
    assert_eq!(
        get(&gw.url("/slow"), &[("x-delay-ms", "50")]).await.status,
        200
    );
    // With the request id its log line carries, as the 504.
    let reply = get(&gw.url("/dead"), &[]).await;
    assert_eq!(reply.status, 502);
    let id = format!("request_id={} ", reply.header("x-request-id"));
    let line = gw.expect_log_line("backend unreachable");
    assert!(line.contains(&id), "{id}: {}", gw.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn timeouts_are_inherited_and_bound_http_client_plugins_too() {
    let backend = start_backend().await;
    let mut cfg = config(
        None,
        json!([
            // The service's timeout.
            endpoint("/service", &backend, "/"),
            // The endpoint's, over the service's.
            {
                "endpoint": "/endpoint", "timeout": "2s",
                "backend": [{"host": [backend.url()], "url_pattern": "/"}],
            },
            // An http-client plugin that takes longer than the backend's timeout.
            {
                "endpoint": "/client",
                "backend": [{"host": [backend.url()], "url_pattern": "/", "timeout": "300ms",
                    "extra_config": {"plugin/http-client": {
                        "name": "services-client",
                        "services-client": {"backend": backend.url(), "sleep_ms": 3000}}}}],
            },
        ]),
    );
    cfg["timeout"] = json!("300ms");
    let gw = Gateway::start(Site::new(&["all-kinds"]), &cfg);
    for (path, delay, status) in [
        ("/service", "3000", 504),
        ("/service", "50", 200),
        ("/endpoint", "600", 200),
        ("/endpoint", "5000", 504),
        ("/client", "0", 504),
    ] {
        let started = Instant::now();
        let reply = get(&gw.url(path), &[("x-delay-ms", delay)]).await;
        assert_eq!(
            reply.status, status,
            "{path} with the backend {delay} ms late"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{path}: {:?}",
            started.elapsed()
        );
    }
    assert!(
        gw.log_line("backend=http-client plugin `services-client`")
            .is_some(),
        "{}",
        gw.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_checksums_and_the_failure_policy_apply_at_start_up() {
    let so = fixture("all-kinds");
    let file = so.file_name().unwrap().to_str().unwrap().to_owned();
    let site = Site::new(&["all-kinds"]);
    let mut cfg = config(None, json!([]));
    cfg["plugin"]["sha256"] = json!({ file.clone(): "00".repeat(32) });
    // A file that does not match its checksum: start-up fails, naming it.
    let config_path = site.write_config(&cfg);
    let out = run(&["check", "-c", config_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&file) && text(&out.stderr).contains("sha256"),
        "{}",
        text(&out.stderr)
    );
    // And the config whose `plugin.sha256` says so.
    assert!(
        text(&out.stderr).contains(&format!("\n  --> {}\n", config_path.display())),
        "{}",
        text(&out.stderr)
    );
    // With `on_failure: skip`, it is skipped with a warning, and the gateway starts.
    cfg["plugin"]["on_failure"] = json!("skip");
    let config_path = site.write_config(&cfg);
    let out = run(&["check", "-c", config_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("WARN") && text(&out.stderr).contains(&file),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("0 plugin file(s) loaded"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_kind_alone() {
    let backend = start_backend().await;

    // A modifier alone, and a client alone.
    let cfg = config(
        None,
        json!([
            {
                "endpoint": "/mod",
                "extra_config": {"plugin/req-resp-modifier": {
                    "name": ["stamp-modifier"], "stamp-modifier": {"value": "m1"}}},
                "backend": [{"host": [backend.url()], "url_pattern": "/m"}],
            },
            {
                "endpoint": "/client",
                "backend": [{"host": ["http://127.0.0.1:9"], "url_pattern": "/c",
                    "extra_config": {"plugin/http-client": {
                        "name": "services-client",
                        "services-client": {"backend": backend.url(), "sleep_ms": 5}}}}],
            },
            {
                "endpoint": "/client-ftp",
                "backend": [{"host": ["http://127.0.0.1:9"], "url_pattern": "/c",
                    "extra_config": {"plugin/http-client": {
                        "name": "services-client",
                        "services-client": {"backend": "ftp://example.com"}}}}],
            },
        ]),
    );
    let gw = Gateway::start(Site::new(&["all-kinds"]), &cfg);
    // A request the host's client cannot send as the plugin gave it is the plugin's
    // failure (500), not an unreachable backend's (502).
    let reply = get(&gw.url("/client-ftp"), &[]).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    let line = gw.expect_log_line("invalid URL, scheme is not http or https");
    assert!(line.contains("plugin=\"services-client\""), "{line}");
    let reply = get(&gw.url("/mod"), &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["headers"]["x-modified"], json!(["m1"]));
    assert_eq!(reply.header("x-response-modified"), "1");
    assert_eq!(reply.header("x-server-plugin"), "");
    // A response modifier that replaces the body: the length sent is the new body's, and
    // the keep-alive connection is still in step for the next response.
    let one_connection = client();
    for _ in 0..3 {
        let req = http::Request::get(gw.url("/mod"))
            .header("x-replace-body", "1")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let reply = send(&one_connection, req).await;
        assert_eq!(reply.status, 200);
        assert!(
            reply.body.starts_with("replaced by plugin: xxx"),
            "{}",
            reply.body
        );
        assert_eq!(reply.body.len(), 1020);
        assert_eq!(reply.header("content-length"), "1020");
    }

    let reply = get(&gw.url("/client?z=1"), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The plugin called the real backend itself (not host :9), with the backend path.
    assert_eq!(reply.json()["uri"], "/c?z=1");
    assert_eq!(reply.header("x-slept-ms"), "5");
    // The plugin's own log line names the plugin (not only its library) and the request.
    let line = gw.expect_log_line("calling backend");
    for field in [
        " plugin:",
        "plugin=\"services-client\"",
        "library=\"fixture-all-kinds\"",
        "request_id=",
    ] {
        assert!(line.contains(field), "`{field}` missing from: {line}");
    }
    drop(gw);

    // An http-server plugin alone.
    let cfg = config(
        Some(json!({"name": "stamp-server", "stamp-server": {"tag": "s1"}})),
        json!([endpoint("/plain", &backend, "/p")]),
    );
    let gw = Gateway::start(Site::new(&["all-kinds"]), &cfg);
    let reply = get(&gw.url("/plain"), &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-server-plugin"), "s1");
    assert_eq!(reply.json()["uri"], "/p");
    // The server plugin wraps the whole router, 404s included.
    let reply = get(&gw.url("/nowhere"), &[]).await;
    assert_eq!((reply.status, reply.header("x-server-plugin")), (404, "s1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_modifier_can_send_the_request_to_another_host() {
    let (configured, other) = (start_backend().await, start_backend().await);
    let cfg = config(
        None,
        json!([{
            "endpoint": "/r",
            "backend": [{"host": [configured.url()], "url_pattern": "/configured",
                "extra_config": {"plugin/req-resp-modifier": {
                    "name": ["stamp-modifier"], "stamp-modifier": {"value": "m1"}}}}],
        }]),
    );
    let gw = Gateway::start(Site::new(&["all-kinds"]), &cfg);
    for _ in 0..3 {
        let to = format!("{}/other?q=1", other.url());
        let reply = get(&gw.url("/r"), &[("x-redirect-to", &to)]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let seen = reply.json();
        assert_eq!(seen["uri"], "/other?q=1");
        // The `Host` the backend gets is its own, from the URI the modifier left.
        assert_eq!(seen["headers"]["host"], json!([other.addr.to_string()]));
        assert_eq!(seen["headers"]["x-modified"], json!(["m1"]));
        assert_eq!(
            reply.header("x-backend-hop"),
            "",
            "hop-by-hop headers stay out"
        );
    }
    let reply = get(&gw.url("/r"), &[]).await;
    assert_eq!(reply.json()["uri"], "/configured");
    assert_eq!((configured.hits(), other.hits()), (1, 3));

    // An unreachable redirect target is the backend's failure: 502.
    let dead = format!("http://{}/", dead_address());
    let reply = get(&gw.url("/r"), &[("x-redirect-to", &dead)]).await;
    assert_eq!(reply.status, 502);

    // Two `Host` headers a modifier set went out as they were, for the backend to pick
    // one or refuse: the request is not sent, and it is the plugins' failure (500).
    let to = format!("{}/other", other.url());
    for asked in [
        vec![("x-two-hosts", "1")],
        vec![("x-two-hosts", "1"), ("x-redirect-to", &to)],
    ] {
        let reply = get(&gw.url("/r"), &asked).await;
        assert_eq!(reply.status, 500, "{asked:?}: {}", reply.body);
        assert!(
            reply.headers.contains_key("x-request-id"),
            "{:?}",
            reply.headers
        );
    }
    let line = gw.expect_log_line("invalid request: it has more than one `Host` header");
    assert!(
        line.contains("ERROR") && line.contains("the request the plugins passed on cannot be sent"),
        "{line}"
    );
    assert_eq!((configured.hits(), other.hits()), (1, 3));
}

#[tokio::test(flavor = "multi_thread")]
async fn all_kinds_together_follow_krakend_order() {
    let backend = start_backend().await;
    let cfg = config(
        Some(
            json!({"name": ["server-a", "server-b", "stamp-server"], "stamp-server": {"tag": "outer"}}),
        ),
        json!([
            {
                "endpoint": "/ordered/{id}",
                "extra_config": {"plugin/req-resp-modifier": {"name": ["mod-a", "mod-b"]}},
                "backend": [{"host": [backend.url()], "url_pattern": "/b/{id}",
                    "extra_config": {"plugin/req-resp-modifier": {"name": ["mod-c", "stamp-modifier"]}}}],
            },
            {
                "endpoint": "/replaced",
                "extra_config": {"plugin/req-resp-modifier": {"name": ["mod-a"]}},
                "backend": [{"host": [backend.url()], "url_pattern": "/never",
                    "extra_config": {
                        "plugin/req-resp-modifier": {"name": ["mod-b"]},
                        "plugin/http-client": {"name": "order-client"}}}],
            },
        ]),
    );
    let gw = Gateway::start(Site::new(&["all-kinds", "order"]), &cfg);

    let reply = get(&gw.url("/ordered/5"), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let seen = reply.json();
    // Request side: the last server name is outermost, then endpoint modifiers, then
    // backend modifiers, each in list order.
    assert_eq!(
        seen["headers"]["x-order"],
        json!(["server-b,server-a,mod-a,mod-b,mod-c"])
    );
    assert_eq!(seen["headers"]["x-modified"], json!(["yes"]));
    assert_eq!(seen["uri"], "/b/5");
    // Response side: backend modifiers, endpoint modifiers, then servers inside out.
    assert_eq!(
        reply.header("x-order"),
        "mod-c,mod-a,mod-b,server-a,server-b"
    );
    assert_eq!(reply.header("x-server-plugin"), "outer");
    assert_eq!(reply.header("x-response-modified"), "1");

    // The http-client plugin replaces the backend call: the backend sees nothing.
    let hits = backend.hits();
    let reply = get(&gw.url("/replaced?x=1"), &[]).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let expected_uri = format!("{}/never?x=1", backend.url());
    assert_eq!(
        reply.body,
        format!("order-client answered GET {expected_uri} x-order=server-b,server-a,mod-a,mod-b")
    );
    assert_eq!(
        reply.header("x-order"),
        "order-client,mod-b,mod-a,server-a,server-b"
    );
    assert_eq!(backend.hits(), hits);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugins_odd_values_stay_with_its_request() {
    // Found by a helper writing odd plugins: each of these aborted gwhost ("Rust cannot
    // catch foreign exceptions") or spun a worker forever.
    let backend = start_backend().await;
    let cfg = config(
        Some(json!({"name": "stamp-server"})),
        json!([{"endpoint": "/m", "backend": [{"host": [backend.url()], "url_pattern": "/"}]}]),
    );
    let gw = Gateway::start(Site::new(&["all-kinds"]), &cfg);
    let cases = [
        // A panic whose payload's destructor panics too.
        (("x-panic", "payload-drop"), 500, "non-string panic payload"),
        // A body failing with an error that is its own source.
        (
            ("x-panic", "error-cycle"),
            500,
            "an error that is its own source",
        ),
        // An interim status for an answer.
        (("x-answer-status", "103"), 500, "interim status 103"),
        (("x-answer-status", "101"), 500, "interim status 101"),
    ];
    for (header, status, logged) in cases {
        let reply = tokio::time::timeout(Duration::from_secs(10), get(&gw.url("/m"), &[header]))
            .await
            .unwrap_or_else(|_| panic!("{header:?}: no answer\n{}", gw.logs()));
        assert_eq!(reply.status, status, "{header:?}: {}", reply.body);
        let id = format!("request_id={}", reply.header("x-request-id"));
        let line = gw
            .log_line(logged)
            .unwrap_or_else(|| panic!("{header:?}\n{}", gw.logs()));
        assert!(
            line.contains("ERROR")
                && line.contains("plugin=\"stamp-server\"")
                && line.contains(&id),
            "{header:?}: {line}"
        );
        assert_eq!(get(&gw.url("/m"), &[]).await.status, 200, "{header:?}");
    }
    // A body stream whose destructor panics, dropped by the gateway once sent: the
    // response is whole, and the gateway serves on.
    let reply = get(&gw.url("/m"), &[("x-panic", "body-drop")]).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "odd"));
    assert_eq!(get(&gw.url("/m"), &[]).await.status, 200);
    // A body stream whose size hint panics: the host asks for it as the plugin hands the
    // stream over, and its next poll, the first, fails with the panic: before the head
    // went out, so the answer is a 500.
    let reply = get(&gw.url("/m"), &[("x-panic", "size-hint")]).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    let line = gw.expect_log_line("size hint panicked on demand");
    assert!(
        line.contains("ERROR") && line.contains("plugin=\"stamp-server\""),
        "{line}"
    );
    assert_eq!(get(&gw.url("/m"), &[]).await.status, 200);
    // A `transfer-encoding` a plugin set beside its `content-length`: hyper closed the
    // connection unanswered; the framing is now the body's.
    let reply = get(
        &gw.url("/m"),
        &[("x-answer-status", "200"), ("x-answer-te", "chunked")],
    )
    .await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "from a plugin"));
    // A 204 a plugin gave a `Content-Length` goes out without one (RFC 9110 §8.6).
    let reply = get(&gw.url("/m"), &[("x-answer-status", "204")]).await;
    assert_eq!(reply.status, 204);
    assert!(
        reply.headers.get("content-length").is_none(),
        "{:?}",
        reply.headers
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_body_a_plugin_task_keeps_does_not_keep_the_connection() {
    // hyper keeps a connection whose request body is still wanted, reading none of it:
    // a client that sent only part of its body and went away left the connection in
    // CLOSE-WAIT for as long as the task lived (and a stop waited for it).
    let backend = start_backend().await;
    let cfg = config(
        Some(json!({"name": "stamp-server"})),
        json!([{"endpoint": "/m", "method": "POST",
            "backend": [{"host": [backend.url()], "url_pattern": "/"}]}]),
    );
    let mut gw = Gateway::start(Site::new(&["all-kinds"]), &cfg);
    let addr = gw.addr;
    let (answer, end) = tokio::task::spawn_blocking(move || {
        // 5 bytes of the 10 announced.
        let mut stream = send_raw(
            addr,
            "POST /m HTTP/1.1\r\nhost: x\r\nx-keep-body: 1\r\ncontent-length: 10\r\n\r\nhello",
        );
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let mut answer = Vec::new();
        let end = match std::io::Read::read_to_end(&mut stream, &mut answer) {
            Ok(_) => "closed",
            Err(_) => "held",
        };
        (String::from_utf8_lossy(&answer).into_owned(), end)
    })
    .await
    .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("kept"),
        "{answer:?}"
    );
    assert_eq!(end, "closed", "{answer:?}");
    // The gateway still serves, bodies too.
    let req = http::Request::post(gw.url("/m"))
        .body(Full::new(Bytes::from_static(b"x")))
        .unwrap();
    assert_eq!(send(&client(), req).await.status, 200);
    // The stop does not wait for the tasks (an hour each): they are dropped, and said so.
    gw.terminate();
    let status = tokio::task::block_in_place(|| gw.wait(Duration::from_secs(10)));
    assert_eq!(status.map(|s| s.code()), Some(Some(0)), "{}", gw.logs());
    let dropped = gw.expect_log_line("were still running at the stop: dropped");
    assert!(
        dropped.contains("WARN")
            && dropped.contains("plugin=\"stamp-server\"")
            && dropped.contains("tasks=1"),
        "{dropped}"
    );
    // A task the factory started runs until the stop by design: not reported.
    let cfg = config(
        Some(json!({"name": "stamp-server", "stamp-server": {"ticker": true}})),
        json!([{"endpoint": "/m", "backend": [{"host": [backend.url()], "url_pattern": "/"}]}]),
    );
    let mut gw = Gateway::start(Site::new(&["all-kinds"]), &cfg);
    assert_eq!(get(&gw.url("/m"), &[]).await.status, 200);
    gw.terminate();
    let status = tokio::task::block_in_place(|| gw.wait(Duration::from_secs(10)));
    assert_eq!(status.map(|s| s.code()), Some(Some(0)), "{}", gw.logs());
    assert!(gw.log_line("gwhost stopped").is_some(), "{}", gw.logs());
    assert!(
        gw.log_line("still running at the stop").is_none(),
        "{}",
        gw.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_line_break_in_a_plugins_message_cannot_forge_a_log_line() {
    let backend = start_backend().await;
    let cfg = config(
        None,
        json!([{"endpoint": "/m",
            "extra_config": {"plugin/req-resp-modifier": {"name": ["stamp-modifier"]}},
            "backend": [{"host": [backend.url()], "url_pattern": "/"}]}]),
    );
    let gw = Gateway::start(Site::new(&["all-kinds"]), &cfg);
    let reply = get(&gw.url("/m"), &[("x-panic", "multiline")]).await;
    assert_eq!(reply.status, 500);
    // One line, its breaks written out: the panic's text went to the log as it was.
    let line = gw
        .expect_log_line(r"line one\n1970-01-01T00:00:00.000000Z  INFO forged: line two\r\nthree");
    assert!(
        line.contains("ERROR") && line.contains("plugin=\"stamp-modifier\""),
        "{line}"
    );
    let logs = gw.logs();
    assert!(
        !logs.lines().any(|l| l.starts_with("1970-01-01")),
        "a forged line:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_stream_that_breaks_its_exact_size_hint_fails_as_the_plugins() {
    // Its exact hint is the response's `Content-Length`. A stream that sent less got no
    // answer at all; one that sent more was cut at the hint, and the client took the cut
    // body for the whole one.
    let backend = start_backend().await;
    let cfg = config(
        Some(json!({"name": "stamp-server"})),
        json!([{"endpoint": "/m", "backend": [{"host": [backend.url()], "url_pattern": "/"}]}]),
    );
    let gw = Gateway::start(Site::new(&["all-kinds"]), &cfg);
    // 3 bytes of the 10 promised: the head and the 3 go out, then the connection closes,
    // so the client sees a body short of its length.
    let answer = raw_until_closed(
        gw.addr,
        "GET /m HTTP/1.1\r\nhost: x\r\nx-panic: hint-long\r\n\r\n",
    );
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n")
            && answer.contains("\r\ncontent-length: 10\r\n")
            && answer.ends_with("\r\n\r\nodd"),
        "{answer:?}"
    );
    let line = gw.expect_log_line("ended after 3 of the 10 bytes its exact size hint promised");
    assert!(
        line.contains("plugin=\"stamp-server\"") && line.contains("kind=\"http-server\""),
        "{line}"
    );
    // 3 bytes where 2 were promised, in the first chunk, before the head went out: the
    // plugin's failure, a 500.
    let reply = get(&gw.url("/m"), &[("x-panic", "hint-short")]).await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.headers.contains_key("x-request-id"),
        "{:?}",
        reply.headers
    );
    let line = gw.expect_log_line("yielded more than the 2 bytes its exact size hint promised");
    assert!(
        line.contains("ERROR") && line.contains("plugin=\"stamp-server\""),
        "{line}"
    );
    assert_eq!(get(&gw.url("/m"), &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_body_of_empty_chunks_forever_does_not_hold_its_worker() {
    // Always ready, never ending, never a byte: hyper polled it in a loop that never let
    // the worker's thread go. With one worker, no other request was answered.
    let backend = start_backend().await;
    let cfg = config(
        Some(json!({"name": "stamp-server"})),
        json!([{"endpoint": "/m", "backend": [{"host": [backend.url()], "url_pattern": "/"}]}]),
    );
    let env = [("TOKIO_WORKER_THREADS", "1")];
    let gw = Gateway::start_with_env(Site::new(&["all-kinds"]), &cfg, &[], &env);
    let mut endless = send_raw(
        gw.addr,
        "GET /m HTTP/1.1\r\nhost: x\r\nx-panic: empty-forever\r\n\r\n",
    );
    let head = read_until(&mut endless, b"\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
    let reply = tokio::time::timeout(Duration::from_secs(5), get(&gw.url("/m"), &[]))
        .await
        .unwrap_or_else(|_| panic!("the one worker is held\n{}", gw.logs()));
    assert_eq!(reply.status, 200);
    drop(endless);
    assert_eq!(get(&gw.url("/m"), &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_request_body_always_ready_and_endless_meets_the_backend_timeout() {
    // A modifier's request body of empty chunks, or of one byte each, always ready and
    // never ending: sending it held the worker's thread (and grew its buffer) for good,
    // so the backend's timeout never fired. Now it does: 504.
    let backend = start_backend().await;
    let cfg = config(
        None,
        json!([{"endpoint": "/m", "method": "POST",
            "extra_config": {"plugin/req-resp-modifier": {"name": ["stamp-modifier"]}},
            "backend": [{"host": [backend.url()], "url_pattern": "/", "timeout": "500ms"}]}]),
    );
    let env = [("TOKIO_WORKER_THREADS", "1")];
    let gw = Gateway::start_with_env(Site::new(&["all-kinds"]), &cfg, &[], &env);
    for mode in ["request-empty-forever", "request-bytes-forever"] {
        let request = hyper::Request::post(gw.url("/m"))
            .header("x-panic", mode)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(10), client().request(request))
            .await
            .unwrap_or_else(|_| panic!("{mode}: no answer\n{}", gw.logs()))
            .unwrap();
        assert_eq!(reply.status(), 504, "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_faults_stay_with_their_request() {
    let backend = start_backend().await;
    let cfg = config(
        Some(json!({"name": "stamp-server"})),
        json!([
            {
                "endpoint": "/m",
                "extra_config": {"plugin/req-resp-modifier": {"name": ["stamp-modifier"]}},
                "backend": [{"host": [backend.url()], "url_pattern": "/"}],
            },
            {
                "endpoint": "/c",
                "backend": [{"host": [backend.url()], "url_pattern": "/",
                    "extra_config": {"plugin/http-client": {
                        "name": "services-client", "services-client": {"backend": backend.url()}}}}],
            },
        ]),
    );
    let gw = Gateway::start(Site::new(&["all-kinds"]), &cfg);

    let cases = [
        ("/m", ("x-panic", "modifier"), 500, "stamp-modifier"),
        // The response side: the backend's answer carries `x-panic: response`.
        (
            "/m",
            ("x-reply-header-x-panic", "response"),
            500,
            "stamp-modifier",
        ),
        ("/m", ("x-reject", "429"), 429, "stamp-modifier"),
        // Not an error status: no final answer (1xx), or a failure passed off as a
        // success (2xx).
        ("/m", ("x-reject", "101"), 500, "stamp-modifier"),
        ("/m", ("x-reject", "200"), 500, "stamp-modifier"),
        ("/m", ("x-panic", "server"), 500, "stamp-server"),
        ("/c", ("x-panic", "client"), 500, "services-client"),
    ];
    for (path, header, status, plugin) in cases {
        let reply = get(&gw.url(path), &[header]).await;
        assert_eq!(reply.status, status, "{path} {header:?}: {}", reply.body);
        let id = reply.header("x-request-id").to_owned();
        assert!(!id.is_empty(), "{path} {header:?}");
        let line = gw
            .log_line(&format!("request_id={id} "))
            .unwrap_or_else(|| panic!("no log line for request {id}:\n{}", gw.logs()));
        assert!(line.contains("ERROR"), "{line}");
        assert!(line.contains(&format!("plugin=\"{plugin}\"")), "{line}");
        // The gateway keeps serving.
        assert_eq!(get(&gw.url(path), &[]).await.status, 200);
    }
    // A panic's log line says where the plugin panicked.
    assert!(
        gw.log_line("plugin panicked at ").is_some(),
        "{}",
        gw.logs()
    );

    // A panic in a plugin's body stream right after its first chunk, once the head is
    // ready: the client gets the head and that chunk, then the connection closes before
    // the body's end; the panic is logged at ERROR with the request id, and the gateway
    // serves on.
    let answer = raw_until_closed(
        gw.addr,
        "GET /m HTTP/1.1\r\nhost: x\r\nx-panic: body\r\n\r\n",
    );
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\n7\r\npartial\r\n"),
        "the head and the first chunk, not a complete response: {answer:?}"
    );
    let line = gw.expect_log_line("body stream panicked on demand");
    assert!(
        line.contains("ERROR")
            && line.contains("request_id=")
            && line.contains("plugin=\"stamp-server\" kind=\"http-server\""),
        "{line}"
    );
    // What the body stream logged before, polled by hyper outside the request's future,
    // carries the same request id, and its plugin's and library's names.
    let id = |line: &str| {
        line.split("request_id=")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .map(str::to_owned)
    };
    let streamed = gw.expect_log_line("body stream sends its first chunk");
    assert!(
        streamed.contains("plugin=\"stamp-server\" library=\"fixture-all-kinds\""),
        "{streamed}"
    );
    assert!(
        id(&streamed).is_some() && id(&streamed) == id(&line),
        "{streamed}\n{line}"
    );
    assert_eq!(get(&gw.url("/m"), &[]).await.status, 200);

    // A body stream that panics at its first poll, before anything went out: a 500 with
    // its request id, not a connection closed without an answer.
    let reply = get(&gw.url("/m"), &[("x-panic", "first-chunk")]).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    let id = format!("request_id={}", reply.header("x-request-id"));
    assert!(
        gw.logs().lines().any(|l| l.contains("ERROR")
            && l.contains("body stream panicked on demand")
            && l.contains("plugin=\"stamp-server\"")
            && l.ends_with(&id)),
        "{id}: {}",
        gw.logs()
    );
    // A body stream the modifier set, or the http-client plugin answered with, passed on
    // by the server plugin: that plugin's failure (a 500, as for its other panics), not
    // the server plugin's that passed it on, nor the backend's; logged once.
    for (path, header, plugin) in [
        (
            "/m",
            ("x-reply-header-x-panic", "modifier-body"),
            "plugin=\"stamp-modifier\" kind=\"modifier\"",
        ),
        (
            "/c",
            ("x-panic", "client-body"),
            "plugin=\"services-client\" kind=\"http-client\"",
        ),
    ] {
        let reply = get(&gw.url(path), &[header]).await;
        assert_eq!(reply.status, 500, "{path}: {}", reply.body);
        let id = format!("request_id={}", reply.header("x-request-id"));
        // The line may reach the log reader a moment after the response: wait for it,
        // then for a second one that should not come.
        let start = Instant::now();
        while !gw.logs().lines().any(|l| l.ends_with(&id))
            && start.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let logs = gw.logs();
        let logged: Vec<&str> = logs.lines().filter(|l| l.ends_with(&id)).collect();
        assert!(
            logged.len() == 1
                && logged[0].contains("ERROR")
                && logged[0].contains("body stream panicked on demand")
                && logged[0].contains(plugin),
            "{path}: once, naming the plugin: {logged:#?}\n{logs}"
        );
    }
    assert_eq!(get(&gw.url("/m"), &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_worker_serves_many_connections_each_its_own_responses() {
    // One worker on a machine with more cores: the path where the worker yields its CPU
    // before waiting for events, and where requests in flight together are answered in
    // batches. Each connection must still get its own responses, every one.
    let backend = start_backend().await;
    let cfg = config(None, json!([endpoint("/echo", &backend, "/e")]));
    let gw = Gateway::start_with_env(Site::new(&[]), &cfg, &[], &[("TOKIO_WORKER_THREADS", "1")]);
    let started = gw
        .log_line("starting worker threads")
        .expect("worker threads logged");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(started.contains("workers=1"), "{started}");
    // Whether it yields is shown; with more than one core it does.
    assert!(
        started.contains(&format!("yield_when_parking={}", cores > 1)),
        "{started}"
    );
    let (connections, requests) = (64, 20);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let url = gw.url("/echo");
        tasks.push(tokio::spawn(async move {
            // A client per task: its requests share one keep-alive connection.
            let client = client();
            for r in 0..requests {
                let req = http::Request::get(format!("{url}?c={c}&r={r}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let reply = send(&client, req).await;
                assert_eq!(reply.status, 200, "{}", reply.body);
                assert_eq!(reply.json()["uri"], format!("/e?c={c}&r={r}"));
            }
        }));
    }
    let all = async {
        for task in tasks {
            task.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .expect("every request answered within 30 s");
    assert_eq!(backend.hits(), connections * requests);
}

/// Starts gwhost with its open files limit set to `soft` and `hard`, as a shell's
/// `ulimit -Sn`/`-Hn` or a service manager would.
fn start_with_open_files_limit(cfg: &serde_json::Value, soft: u64, hard: u64) -> Gateway {
    use std::os::unix::process::CommandExt as _;
    Gateway::start_with_command(Site::new(&[]), cfg, |cmd| {
        let limit = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: `setrlimit` is async-signal-safe and only reads `limit`, a copy.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    })
}

/// Opens `count` connections to `addr`, sends a request on each and keeps them all open,
/// then returns each one's status line.
fn status_lines_of_held_connections(addr: std::net::SocketAddr, count: usize) -> Vec<String> {
    let mut held: Vec<_> = (0..count)
        .map(|_| send_raw(addr, "GET /echo HTTP/1.1\r\nhost: gw\r\n\r\n"))
        .collect();
    // 20 s for them all: connections left in the listen queue never answer.
    let deadline = Instant::now() + Duration::from_secs(20);
    held.iter_mut()
        .map(|stream| {
            let left = deadline.saturating_duration_since(Instant::now());
            stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let line = read_line(stream);
            if line.is_empty() {
                "<no answer>".to_owned()
            } else {
                line
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_low_soft_open_files_limit_is_raised_to_the_hard_one() {
    // Debian's usual soft limit is 1024 under a hard one far higher: gwhost raises it (as
    // Go programs, KrakenD among them, do), or it would refuse clients at ~500 (two
    // descriptors each: the client's and its backend's).
    let backend = start_backend().await;
    let cfg = config(None, json!([endpoint("/echo", &backend, "/e")]));
    // A hard limit this process may set (not above its own): 4096, or its own if lower.
    let mut own = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes the one struct given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut own) }, 0);
    let hard = own.rlim_max.min(4096);
    assert!(
        hard >= 512,
        "this machine's hard open files limit is {hard}"
    );
    let gw = start_with_open_files_limit(&cfg, 64, hard);
    let addr = gw.addr;
    let statuses = tokio::task::spawn_blocking(move || status_lines_of_held_connections(addr, 200))
        .await
        .unwrap();
    let answered = statuses
        .iter()
        .filter(|s| s.starts_with("HTTP/1.1 200"))
        .count();
    assert_eq!(answered, 200, "{statuses:?}\n{}", gw.logs());
    assert!(gw.log_line("accept failed").is_none(), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_connects_failing_for_want_of_descriptors_are_logged_once_a_second() {
    // Each request whose backend connect failed so logged its own WARN line: tens of
    // thousands a second under load, while nothing could be done about any of them.
    let backend = start_backend().await;
    let cfg = config(None, json!([endpoint("/echo", &backend, "/e")]));
    let gw = start_with_open_files_limit(&cfg, 40, 40);
    let addr = gw.addr;
    // First idle connections, which gwhost accepts until no descriptor is left; then
    // requests on the oldest (accepted) ones, whose backend connects must fail. (Sent
    // with the connections, the requests raced the accepts for the last descriptors,
    // and on some machines every connect won.)
    let mut held: Vec<_> = (0..60)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for stream in held.iter_mut().take(10) {
        std::io::Write::write_all(stream, b"GET /echo HTTP/1.1\r\nhost: gw\r\n\r\n").unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let logs = gw.logs();
    let failures: Vec<_> = logs
        .lines()
        .filter(|l| l.contains("backend unreachable: connect: Too many open files"))
        .collect();
    assert!((1..=3).contains(&failures.len()), "{logs}");
    drop(held);
}

#[tokio::test(flavor = "multi_thread")]
async fn while_accept_fails_for_want_of_descriptors_it_is_logged_once_a_second() {
    let backend = start_backend().await;
    let cfg = config(None, json!([endpoint("/echo", &backend, "/e")]));
    let gw = start_with_open_files_limit(&cfg, 48, 48);
    let addr = gw.addr;
    let held: Vec<_> = (0..100)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    // Accept is retried every 10 ms: 250 failures in these 2.5 s.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let logs = gw.logs();
    let failures: Vec<_> = logs
        .lines()
        .filter(|l| l.contains("accept failed"))
        .collect();
    assert!(
        (1..=4).contains(&failures.len()),
        "{} accept failure lines:\n{logs}",
        failures.len()
    );
    assert!(
        failures[0].contains("Too many open files"),
        "{}",
        failures[0]
    );
    assert!(
        failures
            .iter()
            .skip(1)
            .all(|l| l.contains("more times since the last line")),
        "{failures:?}"
    );
    // Closing one connection every 100 ms frees one descriptor each time: accepts and
    // failures alternate, and the log still gets a line a second, not two per close.
    let mut held = held;
    let lines_before = gw.logs().lines().count();
    for _ in 0..20 {
        // The oldest: gwhost accepted it (the newest wait in the listen queue).
        held.remove(0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines = gw.logs().lines().count() - lines_before;
    assert!(lines <= 4, "{lines} lines in 2 s:\n{}", gw.logs());
    // Once descriptors are free again, it serves.
    drop(held);
    let reply = tokio::time::timeout(Duration::from_secs(10), get(&gw.url("/echo"), &[]))
        .await
        .expect("answered once descriptors are free");
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The failures not yet told are told once it accepts again, a second after the last
    // line (not at every accept while accepts and failures alternate).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let lines_before = gw.logs().lines().count();
    assert_eq!(get(&gw.url("/echo"), &[]).await.status, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = gw.logs();
    let again: Vec<_> = logs
        .lines()
        .skip(lines_before)
        .filter(|l| l.contains("accepting connections again, after"))
        .collect();
    assert_eq!(again.len(), 1, "{logs}");
    assert!(again[0].contains("WARN"), "{}", again[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_to_one_backend_host_share_its_connections() {
    // Three endpoints, two methods, one backend: one pool, as nginx's `upstream` (each
    // endpoint had a pool of its own, on each worker: a connect per endpoint, and idle
    // connections times the endpoints).
    let backend = start_backend().await;
    let cfg = config(
        None,
        json!([
            endpoint("/a", &backend, "/a"),
            endpoint("/b/{id}", &backend, "/b/{id}"),
            {"endpoint": "/a", "method": "POST",
             "backend": [{"host": [backend.url()], "url_pattern": "/post"}]},
        ]),
    );
    let gw = Gateway::start_with_env(Site::new(&[]), &cfg, &[], &[("TOKIO_WORKER_THREADS", "1")]);
    let client = client();
    for (method, path) in [
        ("GET", "/a"),
        ("GET", "/b/7"),
        ("POST", "/a"),
        ("GET", "/a"),
    ] {
        let req = http::Request::builder()
            .method(method)
            .uri(gw.url(path))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let reply = send(&client, req).await;
        assert_eq!(reply.status, 200, "{method} {path}: {}", reply.body);
    }
    assert_eq!(backend.hits(), 4);
    assert_eq!(backend.connections(), 1, "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn panic_storm_all_500_process_up_rss_flat() {
    let backend = start_backend().await;
    let cfg = config(
        None,
        json!([{
            "endpoint": "/boom",
            "extra_config": {"plugin/req-resp-modifier": {"name": ["always-panics"]}},
            "backend": [{"host": [backend.url()], "url_pattern": "/"}],
        }]),
    );
    let mut gw = Gateway::start(Site::new(&["order"]), &cfg);
    let url: http::Uri = gw.url("/boom").parse().unwrap();
    let storm = |n: usize| {
        let url = url.clone();
        async move {
            let client = client();
            let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut workers = Vec::new();
            for _ in 0..64 {
                let (client, url, next) = (client.clone(), url.clone(), next.clone());
                workers.push(tokio::spawn(async move {
                    let mut not_500 = 0;
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                        let req = http::Request::get(url.clone())
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                        if send(&client, req).await.status != 500 {
                            not_500 += 1;
                        }
                    }
                    not_500
                }));
            }
            let mut not_500 = 0;
            for w in workers {
                not_500 += w.await.unwrap();
            }
            not_500
        }
    };
    // Warm up: pools, thread-local buffers and the log writer reach their steady size
    // (under a loaded machine, one round may leave a worker's heap still to grow: until
    // a round grows it by less than 2%, at most five).
    let mut before = 0;
    for _ in 0..5 {
        assert_eq!(storm(2_000).await, 0);
        let now = gw.rss_kib();
        let settled = (now as f64) < before as f64 * 1.02;
        before = now;
        if settled {
            break;
        }
    }
    assert_eq!(
        storm(10_000).await,
        0,
        "every request of the storm is a 500"
    );
    let after = gw.rss_kib();
    eprintln!("panic storm: RSS {before} KiB before, {after} KiB after 10,000 panics");
    assert!(
        (after as f64) < before as f64 * 1.10,
        "RSS grew from {before} KiB to {after} KiB"
    );
    assert_eq!(backend.hits(), 0);
    assert!(gw.log_line("always-panics panicked").is_some());
    // Still running (not exited, not a zombie), and still answering.
    assert_eq!(gw.child.try_wait().unwrap(), None, "gwhost exited");
    assert!(
        !std::fs::read_to_string(format!("/proc/{}/stat", gw.pid()))
            .unwrap()
            .contains(") Z "),
        "gwhost is a zombie"
    );
    let reply = get(&gw.url("/boom"), &[]).await;
    assert_eq!(reply.status, 500);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let backend = start_backend().await;
    let cfg = config(
        None,
        json!([{
            "endpoint": "/slow",
            "backend": [{"host": [backend.url()], "url_pattern": "/", "timeout": "10s"}],
        }]),
    );
    let mut gw = Gateway::start(Site::new(&[]), &cfg);
    let url = gw.url("/slow");
    let in_flight = tokio::spawn(async move { get(&url, &[("x-delay-ms", "1500")]).await });
    // Let the request reach the backend before the signal.
    backend.first_hit().await;
    gw.terminate();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // No new connections once the signal is handled.
    assert!(
        tokio::net::TcpStream::connect(gw.addr).await.is_err(),
        "still accepting after SIGTERM"
    );
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["uri"], "/");
    let status = tokio::task::block_in_place(|| gw.wait(Duration::from_secs(10)));
    assert_eq!(status.map(|s| s.code()), Some(Some(0)), "{}", gw.logs());
    assert!(gw.log_line("gwhost stopped").is_some(), "{}", gw.logs());
    // The stop's log line counts the connection whose request is in flight.
    let stopping = gw.expect_log_line("stopped accepting; finishing in-flight requests");
    assert!(stopping.contains("connections=1"), "{stopping}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_is_closed_after_send_timeout_and_holds_no_stop() {
    // It held its connection, the backend's and the stop for as long as it stalled.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = start_backend().await;
    let mut cfg = config(None, json!([endpoint("/big", &backend, "/big")]));
    cfg["send_timeout"] = json!("1s");
    let mut gw = Gateway::start(Site::new(&[]), &cfg);
    let mut client = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let size = 50_000_000usize;
    client
        .write_all(
            format!("GET /big HTTP/1.1\r\nhost: a\r\nx-reply-bytes: {size}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    // Reads nothing; the stop comes while its download stalls.
    backend.first_hit().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.terminate();
    let status = tokio::task::block_in_place(|| gw.wait(Duration::from_secs(10)));
    assert_eq!(status.map(|s| s.code()), Some(Some(0)), "{}", gw.logs());
    // With the client's address: the line is all an operator gets of it.
    let line = gw.expect_log_line("took none of the response for 1s (`send_timeout`)");
    assert!(line.contains("the client 127.0.0.1:"), "{line}");
    // What was sent before the close arrives, then the end: not the whole body.
    let mut received = 0;
    let mut buf = vec![0u8; 1 << 16];
    while let Ok(n @ 1..) = client.read(&mut buf).await {
        received += n;
    }
    assert!(received < size, "{received}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_send_timeout_is_counted_on_the_socket_over_tls_too() {
    // Over TLS a write went through into rustls's buffer while the socket was full, and
    // restarted the clock: the connection closed at twice `send_timeout`.
    use tokio::io::AsyncWriteExt;
    let backend = start_backend().await;
    let pki = TestPki::new();
    let limit = Duration::from_secs(2);
    for tls in [false, true] {
        let mut cfg = config(None, json!([endpoint("/big", &backend, "/big")]));
        cfg["send_timeout"] = json!("2s");
        if tls {
            cfg["tls"] = json!({
                "public_key": pki.file("cert.pem"),
                "private_key": pki.file("key.pem"),
            });
        }
        let gw = Gateway::start(Site::new(&[]), &cfg);
        let request = b"GET /big HTTP/1.1\r\nhost: localhost\r\nx-reply-bytes: 50000000\r\n\r\n";
        // Kept open, and read from never.
        let _client: Box<dyn std::any::Any> = if tls {
            let mut stream = tls_connect(gw.addr, &pki.file("ca.pem")).await.unwrap();
            stream.write_all(request).await.unwrap();
            Box::new(stream)
        } else {
            let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
            stream.write_all(request).await.unwrap();
            Box::new(stream)
        };
        let start = std::time::Instant::now();
        while gw.log_line("(`send_timeout`)").is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "tls {tls}: {}",
                gw.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = start.elapsed();
        assert!(
            took >= limit - Duration::from_millis(100) && took < limit * 7 / 4,
            "tls {tls}: closed after {took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_connection_that_sends_no_request_head_for_30_s_is_closed() {
    use std::io::{Read, Write};
    let backend = start_backend().await;
    let cfg = config(
        None,
        json!([{"endpoint": "/idle", "backend": [{"host": [backend.url()], "url_pattern": "/"}]}]),
    );
    let gw = Gateway::start(Site::new(&[]), &cfg);
    let addr = gw.addr;
    // Seconds until the gateway closes a connection that has sent `sent` (after its answer).
    let closed_after = move |sent: &'static [u8]| {
        tokio::task::spawn_blocking(move || {
            let mut conn = std::net::TcpStream::connect(addr).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            conn.write_all(sent).unwrap();
            let started = Instant::now();
            let mut buf = [0u8; 4096];
            while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
            started.elapsed().as_secs_f64()
        })
    };
    let idle = closed_after(b"GET /idle HTTP/1.1\r\nhost: t\r\n\r\n");
    let silent = closed_after(b"");
    let half = closed_after(b"GET /idle HTTP/1.1\r\nhost:");
    for (what, secs) in [
        ("idle after a request", idle.await.unwrap()),
        ("silent", silent.await.unwrap()),
        ("half a head", half.await.unwrap()),
    ] {
        assert!(
            (29.0..40.0).contains(&secs),
            "{what}: closed after {secs} s"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_its_log_reader_gone_it_still_answers_failures_and_stops_on_sigterm() {
    // `gwhost run … 2>&1 | head`: once the reader exits, every write to stderr fails.
    // A failed log write must not take down what was logging: the request's 502, or
    // the signal task's stop (it used to panic in the log call: no answer, and SIGTERM
    // ignored for good).
    let dead = "127.0.0.1:1".parse().unwrap();
    let site = Site::new(&[]);
    let path = site.write_config(&config(None, json!([raw_endpoint("/dead", dead)])));
    let mut child = gwhost()
        .env("RUST_LOG", "info")
        .args(["run", "-c"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gwhost");
    let addr = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find_map(|line| listen_address(&line))
        .expect("gwhost started");
    // The reader, and with it the pipe's only read end, is gone here.
    for _ in 0..3 {
        let reply = get(&format!("http://{addr}/dead"), &[]).await;
        assert_eq!(reply.status, 502, "{}", reply.body);
    }
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("SIGTERM ignored");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_idle_keep_alive_connections_at_once() {
    use std::io::{Read, Write};
    let backend = start_backend().await;
    let cfg = config(
        None,
        json!([{"endpoint": "/idle", "backend": [{"host": [backend.url()], "url_pattern": "/"}]}]),
    );
    let mut gw = Gateway::start(Site::new(&[]), &cfg);
    let addr = gw.addr;
    let status = tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.write_all(b"GET /idle HTTP/1.1\r\nhost: t\r\n\r\n")
            .unwrap();
        let mut head = [0u8; 12];
        conn.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        // The rest of the response, then nothing until the gateway closes it.
        let mut rest = [0u8; 4096];
        let mut closed = false;
        let mut signalled = false;
        while let Ok(n) = conn.read(&mut rest) {
            if n == 0 {
                closed = true;
                break;
            }
            // One signal only: a second would close the connection anyway.
            if !signalled {
                gw.terminate();
                signalled = true;
            }
        }
        assert!(closed, "the idle connection stayed open: {}", gw.logs());
        gw.wait(Duration::from_secs(5))
    })
    .await
    .unwrap();
    assert_eq!(status.map(|s| s.code()), Some(Some(0)));
}

/// A gateway with one request in flight to a backend that answers after 30 s, the
/// backend's timeout longer still: only the drain's end can stop it. The task ends with
/// the request's outcome.
async fn gateway_with_a_hung_request(
    args: &[&str],
) -> (Gateway, tokio::task::JoinHandle<Result<u16, String>>) {
    let backend = start_backend().await;
    let cfg = config(
        None,
        json!([{
            "endpoint": "/hung",
            "backend": [{"host": [backend.url()], "url_pattern": "/", "timeout": "60s"}],
        }]),
    );
    let gw = Gateway::start_with_args(Site::new(&[]), &cfg, args);
    let req = http::Request::get(gw.url("/hung"))
        .header("x-delay-ms", "30000")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let in_flight = tokio::spawn(async move {
        match client().request(req).await {
            Ok(resp) => Ok(resp.status().as_u16()),
            Err(e) => Err(e.to_string()),
        }
    });
    backend.first_hit().await;
    // The backend's tasks live on with the test's runtime: the request stays in flight.
    (gw, in_flight)
}

/// The in-flight request's outcome, once its connection was closed under it.
async fn outcome(in_flight: tokio::task::JoinHandle<Result<u16, String>>) -> Result<u16, String> {
    tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("the request was still in flight after the gateway exited")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_timeout_ends_a_drain_that_a_request_holds_up() {
    // Longer than the watchdog waits for a worker: the worker with no connections ends
    // at once, and a worker that has ended is not one that something blocks.
    let (mut gw, in_flight) = gateway_with_a_hung_request(&["--drain-timeout", "1500ms"]).await;
    let signalled = Instant::now();
    gw.terminate();
    let status = tokio::task::block_in_place(|| gw.wait(Duration::from_secs(10)));
    assert_eq!(status.map(|s| s.code()), Some(Some(0)), "{}", gw.logs());
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "exited after {took:?}"
    );
    assert!(!gw.logs().contains("event loop"), "{}", gw.logs());
    let warning =
        gw.expect_log_line("drain timeout (1.5s) passed: closing the connections still open");
    assert!(
        warning.contains("WARN") && warning.contains("connections=1"),
        "{warning}"
    );
    // Closed by the gateway, not answered; its worker then ended.
    let outcome = outcome(in_flight).await;
    assert!(outcome.is_err(), "{outcome:?}");
    assert!(!gw.logs().contains("still busy"), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_ends_the_drain_at_once() {
    let (mut gw, in_flight) = gateway_with_a_hung_request(&[]).await;
    gw.terminate();
    assert!(
        gw.log_line("stopped accepting; finishing in-flight requests")
            .is_some(),
        "{}",
        gw.logs()
    );
    // Without a drain timeout the first signal waits for the hung request.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(gw.child.try_wait().unwrap(), None, "{}", gw.logs());
    let signalled = Instant::now();
    gw.terminate();
    let status = tokio::task::block_in_place(|| gw.wait(Duration::from_secs(10)));
    assert_eq!(status.map(|s| s.code()), Some(Some(0)), "{}", gw.logs());
    assert!(signalled.elapsed() < Duration::from_secs(5));
    assert!(
        gw.log_line("second stop signal: closing the connections still open")
            .is_some(),
        "{}",
        gw.logs()
    );
    let outcome = outcome(in_flight).await;
    assert!(outcome.is_err(), "{outcome:?}");
    assert!(!gw.logs().contains("still busy"), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_drain_timeout_is_refused_before_start() {
    let out = common::gwhost()
        .args(["run", "-c", "gateway.json", "--drain-timeout", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "`soon` is not a duration: write a number and a unit (`ms`, `s`, `m`, `h`), e.g. `30s`"
        ),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn benchmark_plugins_pass_requests_through() {
    // The plugins `scripts/bench-gateway.sh` measures: the client forwards with the
    // host's HTTP client, so the backend does answer.
    let backend = start_backend().await;
    let cfg = config(
        Some(json!({"name": ["pass-server"]})),
        json!([{
            "endpoint": "/bench",
            "extra_config": {"plugin/req-resp-modifier": {"name": ["pass-modifier"]}},
            "backend": [{"host": [backend.url()], "url_pattern": "/b",
                "extra_config": {"plugin/http-client": {"name": "pass-client"}}}],
        }]),
    );
    let gw = Gateway::start(Site::new(&["passthrough"]), &cfg);
    let reply = get(&gw.url("/bench?n=1"), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-pass-server"), "1");
    let seen = reply.json();
    assert_eq!(seen["uri"], "/b?n=1");
    assert_eq!(seen["headers"]["x-pass-modifier"], json!(["1"]));
    assert_eq!(backend.hits(), 1);
}
