//! HTTP/1.1 on one backend connection, driven by the task that sends the request.
//!
//! hyper's client connection runs as a task of its own: a request reaches it through a
//! channel, the response head comes back through a oneshot and the body through another
//! channel. On gwhost's hot path that task was ~12k of the ~28k instructions per proxied
//! request, with five task wake-ups (callgrind, NOTES.md); polled from the caller's task
//! instead, its connection still takes requests and returns responses through those
//! channels (tried: more instructions, not fewer). Here the requesting task writes the
//! request and reads the response itself, with no second task or channel in between.
//! Parsing is httparse's (hyper's own parser) and the types are `http`'s; this module
//! frames messages as RFC 9112 says.

use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, Bytes, BytesMut};
use gwplugin::Request;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::tls::{Stream, TcpOrTls, tls_idle_is_usable};
use crate::upstream::BackendError;

/// How much is read from the socket at a time (hyper's initial read buffer).
const READ_SIZE: usize = 8 * 1024;
/// A response head larger than this is refused: it bounds what a broken backend can make
/// the gateway buffer.
const MAX_HEAD: usize = 64 * 1024;
/// Header fields per response head (hyper's default limit).
const MAX_HEADERS: usize = 100;
/// Request body data at least this large is written from its own buffer, not copied.
const COPY_LIMIT: usize = 16 * 1024;
/// A chunk-size line longer than this is refused.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Why a response whose `Transfer-Encoding` is anything but one `chunked` is refused.
const NOT_CHUNKED: &str =
    "the response's transfer coding is not `chunked`, the only one gwhost undoes";

/// One connection to a backend, with what has been read from it and not yet used.
#[derive(Debug)]
pub(crate) struct Conn {
    io: Stream,
    read: BytesMut,
    /// The request being written; kept between requests for its capacity.
    write: Vec<u8>,
    /// Unset once the connection must not carry another exchange.
    reusable: bool,
}

/// A response head, and how its body is delimited.
#[derive(Debug)]
pub(crate) struct Head {
    pub parts: http::response::Parts,
    pub framing: Framing,
}

/// How a response body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
    /// At the end of the connection.
    Close,
}

/// Why an exchange failed, and whether the backend can have seen the request.
#[derive(Debug)]
pub(crate) struct Failure {
    pub error: BackendError,
    /// The connection failed or closed before a byte of response arrived. On a pooled
    /// connection this is usually the backend having closed it while idle; a request
    /// that is safe to repeat can then go again on a new connection.
    pub unanswered: bool,
}

impl Failure {
    fn answered(error: BackendError) -> Self {
        Failure {
            error,
            unanswered: false,
        }
    }
}

impl Conn {
    pub(crate) fn new(io: Stream) -> Self {
        Conn {
            io,
            read: BytesMut::new(),
            write: Vec::new(),
            reusable: true,
        }
    }

    /// Whether its last exchange ended cleanly, leaving the connection ready for another:
    /// what it takes to go back to the pool.
    pub(crate) fn ended_cleanly(&self) -> bool {
        self.reusable && self.read.is_empty()
    }

    /// Whether this connection may take another request: its last exchange ended cleanly
    /// and, while idle, the backend neither closed it nor sent anything.
    #[inline(always)]
    pub(crate) fn is_reusable(&mut self) -> bool {
        if !self.ended_cleanly() {
            return false;
        }
        // Readiness comes from the reactor's last poll: no system call unless the socket
        // became readable, which for an idle connection means closed (or misbehaving).
        let tcp = match &mut self.io {
            TcpOrTls::Tcp(tcp) => tcp,
            TcpOrTls::Tls(tls) => return tls_idle_is_usable(tls),
        };
        let mut cx = Context::from_waker(Waker::noop());
        match tcp.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => matches!(
                tcp.try_read(&mut [0u8; 1]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            ),
        }
    }

    /// Writes `req`, reading its body to the end, then reads the response head.
    ///
    /// A backend may answer before it has the whole body (a 413, a 401) and then stop
    /// reading it or close the connection: its answer is the response then, not a failure
    /// to send, and the rest of the body is not sent.
    pub(crate) async fn exchange(&mut self, req: &mut Request) -> Result<Head, Failure> {
        let written = match self.write_request(req).await {
            Ok(written) => written,
            // What the backend sent before it closed is still there to read (a closed
            // connection answers reads at once). Kept as a kind: an error held over the
            // read would grow every exchange's state.
            Err(BackendError::Io(e)) if closed_on_us(&e) => Written::CutShort(e.kind()),
            Err(error) => {
                self.reusable = false;
                let unanswered = matches!(error, BackendError::Io(_)) && self.read.is_empty();
                return Err(Failure { error, unanswered });
            }
        };
        let head = self.read_head(req.method()).await;
        // After an early answer the rest of the body was never sent: the backend would
        // read the next request from the middle of it.
        if head.is_err() || written != Written::Whole {
            self.reusable = false;
            if let (Err(_), Written::CutShort(kind)) = (&head, written) {
                return Err(Failure {
                    error: BackendError::Io(kind.into()),
                    unanswered: self.read.is_empty(),
                });
            }
        }
        head
    }

    /// The whole body, when it has already been read with the head (the usual case for a
    /// small response): then the connection is free again before the body is even used.
    pub(crate) fn take_whole_body(&mut self, framing: Framing) -> Option<Bytes> {
        match framing {
            Framing::Length(n) if self.read.len() as u64 >= n => {
                let body = self.read.split_to(n as usize).freeze();
                // Bytes after the response that nobody asked for: the stream is out of step.
                self.reusable &= self.read.is_empty();
                Some(body)
            }
            _ => None,
        }
    }

    async fn write_request(&mut self, req: &mut Request) -> Result<Written, BackendError> {
        let body = req.body();
        let length = if body.is_end_stream() {
            // RFC 9110 §8.6: a length for methods whose content means something.
            matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH).then_some(0)
        } else {
            body.size_hint().exact()
        };
        let chunked = length.is_none() && !body.is_end_stream();

        let w = &mut self.write;
        w.clear();
        w.extend_from_slice(req.method().as_str().as_bytes());
        w.push(b' ');
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        // `http://host?q`: an empty path goes as `/` (RFC 9112 §3.2.1), not `?q`.
        if target.starts_with('?') {
            w.push(b'/');
        }
        w.extend_from_slice(target.as_bytes());
        w.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in req.headers() {
            // The framing is the body's, whatever the headers claim.
            if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
                continue;
            }
            w.extend_from_slice(name.as_str().as_bytes());
            w.extend_from_slice(b": ");
            w.extend_from_slice(value.as_bytes());
            w.extend_from_slice(b"\r\n");
        }
        if let Some(n) = length {
            // Formatted into the buffer: writing to a `Vec` cannot fail.
            let _ = write!(w, "content-length: {n}\r\n");
        } else if chunked {
            w.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        w.extend_from_slice(b"\r\n");

        if req.body().is_end_stream() {
            self.flush().await?;
            return Ok(Written::Whole);
        }
        // Boxed: its state inline would grow every request's future, bodies or not.
        Box::pin(self.write_body(req.body_mut(), length)).await
    }

    /// Sends the head in `write` and then `body`, framed by `length` or else chunked.
    async fn write_body(
        &mut self,
        body: &mut gwplugin::Body,
        length: Option<u64>,
    ) -> Result<Written, BackendError> {
        let chunked = length.is_none();
        let mut watch = AnswerWatch::default();
        let mut sent = 0u64;
        // Frames that were ready at once, since the body last made us wait.
        let mut ready_in_a_row = 0u32;
        while !body.is_end_stream() {
            // A body always ready (a plugin's stream of small or empty chunks, never
            // ending) would hold the thread and grow the buffer for good: what is
            // buffered goes out past 64 KiB, and every 64th frame in a row yields, which
            // also lets the timeout around this call fire.
            if self.write.len() >= 64 * 1024
                && self.flush_watching(&mut watch).await? == Written::AnsweredEarly
            {
                return Ok(Written::AnsweredEarly);
            }
            if ready_in_a_row >= 64 {
                ready_in_a_row = 0;
                tokio::task::yield_now().await;
            }
            // Whatever is buffered goes out before waiting for more of the body.
            let frame =
                match std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx)))
                    .await
                {
                    Poll::Ready(frame) => {
                        ready_in_a_row += 1;
                        frame
                    }
                    Poll::Pending => {
                        ready_in_a_row = 0;
                        if self.flush_watching(&mut watch).await? == Written::AnsweredEarly {
                            return Ok(Written::AnsweredEarly);
                        }
                        let (io, read) = (&mut self.io, &mut self.read);
                        let next = std::future::poll_fn(|cx| {
                            if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(cx) {
                                return Poll::Ready(Ok(Some(frame)));
                            }
                            ready!(watch.poll_answer(io, read, cx))?;
                            Poll::Ready(Ok(None))
                        })
                        .await
                        .map_err(BackendError::Io)?;
                        match next {
                            Some(frame) => frame,
                            None => return Ok(Written::AnsweredEarly),
                        }
                    }
                };
            let data = match frame {
                None => break,
                Some(Err(e)) => return Err(BackendError::RequestBody(e)),
                // Trailers are not forwarded.
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => data,
                    _ => continue,
                },
            };
            sent += data.len() as u64;
            if length.is_some_and(|n| sent > n) {
                return Err(BackendError::Protocol(
                    "the request body is longer than its length",
                ));
            }
            if chunked {
                let _ = write!(self.write, "{:x}\r\n", data.len());
            }
            if data.len() >= COPY_LIMIT {
                if self.flush_watching(&mut watch).await? == Written::AnsweredEarly
                    || watch.write_all(&mut self.io, &mut self.read, &data).await?
                        == Written::AnsweredEarly
                {
                    return Ok(Written::AnsweredEarly);
                }
            } else {
                self.write.extend_from_slice(&data);
            }
            if chunked {
                self.write.extend_from_slice(b"\r\n");
            }
        }
        if length.is_some_and(|n| sent != n) {
            return Err(BackendError::Protocol(
                "the request body is shorter than its length",
            ));
        }
        if chunked {
            self.write.extend_from_slice(b"0\r\n\r\n");
        }
        self.flush_watching(&mut watch).await
    }

    /// [`Conn::flush`], unless the backend answers while it does not take the bytes.
    async fn flush_watching(&mut self, watch: &mut AnswerWatch) -> Result<Written, BackendError> {
        if watch
            .write_all(&mut self.io, &mut self.read, &self.write)
            .await?
            == Written::AnsweredEarly
        {
            return Ok(Written::AnsweredEarly);
        }
        self.clear_write();
        // What is left is TLS's to send, if anything (rustls takes bytes the socket does
        // not yet: its flush is where the backend's not reading shows).
        watch.flush(&mut self.io, &mut self.read).await
    }

    /// Empties `write` once it went out, keeping a usual request's capacity.
    #[inline]
    fn clear_write(&mut self) {
        self.write.clear();
        if self.write.capacity() > 4 * COPY_LIMIT {
            self.write.shrink_to(COPY_LIMIT);
        }
    }

    async fn flush(&mut self) -> Result<(), BackendError> {
        if !self.write.is_empty() {
            self.io
                .write_all(&self.write)
                .await
                .map_err(BackendError::Io)?;
            self.clear_write();
        }
        // TLS may hold records back that its writes could not send yet; TCP holds none.
        if let TcpOrTls::Tls(_) = self.io {
            self.io.flush().await.map_err(BackendError::Io)?;
        }
        Ok(())
    }

    async fn read_head(&mut self, method: &Method) -> Result<Head, Failure> {
        let mut answered = false;
        loop {
            if !self.read.is_empty() {
                answered = true;
                if let Some(head) = self.parse_head(method).map_err(Failure::answered)? {
                    return Ok(head);
                }
                if self.read.len() > MAX_HEAD {
                    return Err(Failure::answered(BackendError::Protocol(
                        "the response head is too large",
                    )));
                }
            }
            let error = match std::future::poll_fn(|cx| self.poll_read_more(cx)).await {
                Ok(0) => BackendError::Protocol(if answered {
                    "the connection closed in the middle of the response head"
                } else {
                    "the connection closed before a response"
                }),
                Ok(_) => continue,
                Err(e) => BackendError::Io(e),
            };
            return Err(Failure {
                error,
                unanswered: !answered,
            });
        }
    }

    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.read.reserve(READ_SIZE);
        // A fresh `read_buf` future per poll: it holds nothing between polls.
        let read = std::pin::pin!(self.io.read_buf(&mut self.read));
        read.poll(cx)
    }

    /// Parses the response head at the front of `read`, skipping informational (1xx)
    /// ones: `None` while it is incomplete.
    fn parse_head(&mut self, method: &Method) -> Result<Option<Head>, BackendError> {
        loop {
            match self.parse_one_head(method)? {
                Parsed::Partial => return Ok(None),
                Parsed::Informational => {}
                Parsed::Final(head) => return Ok(Some(head)),
            }
        }
    }

    fn parse_one_head(&mut self, method: &Method) -> Result<Parsed, BackendError> {
        // `HTTP/1.2` and later 1.x: read as 1.1, the highest this client speaks (RFC 9110
        // §2.5; nginx does so too). httparse takes only 1.0 and 1.1. (Checked before
        // parsing, not on httparse's error and parsing again: that made this function
        // recursive, no longer inlined, +130 instructions per request.)
        if matches!(self.read.get(7), Some(b'2'..=b'9')) && self.read.starts_with(b"HTTP/1.") {
            self.read[7] = b'1';
        }
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            &self.read,
            &mut fields,
        );
        let len = match parsed {
            // The limit whether the head came in one read or many (one read may bring
            // up to twice as much).
            Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => {
                return Err(BackendError::Protocol("the response head is too large"));
            }
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
            Err(e) => return Err(BackendError::Parse(e)),
        };
        let code = resp.code.unwrap_or_default();
        if (100..200).contains(&code) {
            if code == 101 {
                return Err(BackendError::Protocol(
                    "the backend switched protocols, which a gateway backend cannot do",
                ));
            }
            self.read.advance(len);
            return Ok(Parsed::Informational);
        }
        let status = StatusCode::from_u16(code)
            .map_err(|_| BackendError::Protocol("invalid response status code"))?;
        let version = if resp.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };

        // Names now, values once the head is split off as `Bytes` they can share.
        let base = self.read.as_ptr() as usize;
        // Only a status without a standard phrase keeps the backend's (see `BackendReason`).
        let reason = resp
            .reason
            // An empty one may not point into the head (httparse's `""`).
            .filter(|r| !r.is_empty() && status.canonical_reason().is_none())
            .map(|r| r.as_ptr() as usize - base..r.as_ptr() as usize - base + r.len());
        let mut found = Vec::with_capacity(resp.headers.len());
        let mut framing = FramingHeaders::default();
        for field in resp.headers.iter() {
            let name = HeaderName::from_bytes(field.name.as_bytes())
                .map_err(|_| BackendError::Protocol("invalid header name in the response"))?;
            framing.see(&name, field.value)?;
            let start = field.value.as_ptr() as usize - base;
            found.push((name, start, start + field.value.len()));
        }
        let head = self.read.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(found.len());
        let length_to_fix = framing.transfer_encoding || framing.length_listed;
        for (name, start, end) in found {
            let value = if length_to_fix && name == header::CONTENT_LENGTH {
                // With both, the body is delimited by the transfer coding, and a proxy that
                // passed the length on would cut it or leave the client waiting: RFC 9112
                // §6.3 has an intermediary drop it. A list of equal lengths (`5, 5`, or
                // the field twice) goes on as the one length it means, once: not every
                // client reads a list.
                match framing.content_length {
                    Some(n)
                        if !framing.transfer_encoding
                            && !headers.contains_key(header::CONTENT_LENGTH) =>
                    {
                        HeaderValue::from(n)
                    }
                    _ => continue,
                }
            } else {
                // SAFETY: httparse accepted the value: tab, space, visible ASCII and bytes
                // 0x80 and up, which are exactly the bytes a `HeaderValue` may hold.
                unsafe { HeaderValue::from_maybe_shared_unchecked(head.slice(start..end)) }
            };
            headers.append(name, value);
        }

        let framing_kind = if *method == Method::HEAD || code == 204 || code == 304 {
            Framing::Length(0)
        } else if framing.transfer_encoding {
            // Present but empty (`Transfer-Encoding:` or `,`): no coding gwhost undoes.
            if !framing.chunked {
                return Err(BackendError::Protocol(NOT_CHUNKED));
            }
            Framing::Chunked
        } else if let Some(n) = framing.content_length {
            Framing::Length(n)
        } else {
            Framing::Close
        };
        self.reusable = !framing.close
            && (version == Version::HTTP_11 || framing.keep_alive)
            && framing_kind != Framing::Close
            // Both framings at once may be a smuggling attempt: close afterwards (§6.3);
            // and chunked from HTTP/1.0, which has no such thing, likewise (§6.1).
            && !(framing.transfer_encoding
                && (framing.content_length.is_some() || version == Version::HTTP_10));

        let mut parts = http::Response::new(()).into_parts().0;
        parts.status = status;
        parts.version = version;
        parts.headers = headers;
        if let Some(reason) = reason {
            parts.extensions.insert(crate::upstream::BackendReason {
                status,
                reason: head.slice(reason),
            });
        }
        Ok(Parsed::Final(Head {
            parts,
            framing: framing_kind,
        }))
    }
}

/// How much of a request went to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    Whole,
    /// The backend started its answer first: what it read of the request was enough.
    AnsweredEarly,
    /// The backend closed the connection before it had the whole request.
    CutShort(io::ErrorKind),
}

/// While a request body is sent, whether the backend has refused it already: answered
/// with an error status (a 413, a 401) before it had it all. Other answers (a 2xx from a
/// backend that streams its reply while it reads) leave the body to be sent whole, as the
/// backend may still be reading it.
#[derive(Default)]
struct AnswerWatch {
    /// Nothing more to watch: the backend's side of the connection ended, or it started
    /// an answer that is no refusal (read with the rest of the head once the body is sent).
    done: bool,
}

impl AnswerWatch {
    /// Ready when the answer's first bytes are in `read`; pending (with a wake-up when
    /// some arrive) otherwise.
    fn poll_answer(
        &mut self,
        io: &mut Stream,
        read: &mut BytesMut,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if self.done {
            return Poll::Pending;
        }
        loop {
            // Into a buffer of its own: this path is rare, and sharing the hot read's code
            // would change how the compiler inlines that.
            let mut buf = [MaybeUninit::uninit(); 1024];
            let mut buf = tokio::io::ReadBuf::uninit(&mut buf);
            let got = ready!(Pin::new(&mut *io).poll_read(cx, &mut buf)).map(|()| {
                read.extend_from_slice(buf.filled());
                buf.filled().len()
            });
            match got {
                Ok(0) => {
                    self.done = true;
                    return Poll::Pending;
                }
                // A `100 Continue` (the client's `Expect` goes to the backend too) or
                // another interim response is no answer: the body is still wanted.
                Ok(_) if !skip_interim_responses(read) => {}
                Ok(_) if is_refusal(read) => return Poll::Ready(Ok(())),
                Ok(_) => {
                    self.done = true;
                    return Poll::Pending;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Writes `bytes` whole, or until the backend answers while it does not take them.
    async fn write_all(
        &mut self,
        io: &mut Stream,
        read: &mut BytesMut,
        bytes: &[u8],
    ) -> Result<Written, BackendError> {
        let mut written = 0;
        std::future::poll_fn(|cx| {
            while written < bytes.len() {
                match Pin::new(&mut *io).poll_write(cx, &bytes[written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        ready!(self.poll_answer(io, read, cx))?;
                        return Poll::Ready(Ok(Written::AnsweredEarly));
                    }
                }
            }
            Poll::Ready(Ok(Written::Whole))
        })
        .await
        .map_err(BackendError::Io)
    }

    /// Flushes `io`, or until the backend refuses the request while it does not take it.
    async fn flush(
        &mut self,
        io: &mut Stream,
        read: &mut BytesMut,
    ) -> Result<Written, BackendError> {
        std::future::poll_fn(|cx| match Pin::new(&mut *io).poll_flush(cx) {
            Poll::Ready(result) => Poll::Ready(result.map(|()| Written::Whole)),
            Poll::Pending => {
                ready!(self.poll_answer(io, read, cx))?;
                Poll::Ready(Ok(Written::AnsweredEarly))
            }
        })
        .await
        .map_err(BackendError::Io)
    }
}

/// Whether the answer starting in `read` refuses the request: an error status, or
/// something that is no HTTP/1 response (for `read_head` to report).
fn is_refusal(read: &[u8]) -> bool {
    !read.starts_with(b"HTTP/1.") || read.get(9).is_none_or(|&digit| digit >= b'4')
}

/// Drops the complete interim (1xx) response heads at the front of `read`; whether what
/// is left starts a final answer (or something that is no response at all, or too long to
/// be a head), rather than nothing or a part of an interim head.
fn skip_interim_responses(read: &mut BytesMut) -> bool {
    // By hand, not with httparse: a second caller of its parser would change how the
    // compiler inlines it on every response's path. `read_head` parses the answer whole.
    loop {
        let Some(code) = read.get(..12) else {
            return false;
        };
        let interim = code.starts_with(b"HTTP/1.") && code[9] == b'1' && &code[9..12] != b"101";
        if !interim {
            return true;
        }
        match head_end(read) {
            Some(end) => read.advance(end),
            // `read_head` refuses a head this long.
            None => return read.len() > MAX_HEAD,
        }
    }
}

/// Where the head at the start of `bytes` ends, after its empty line (CRLF or, as
/// httparse also takes, a bare LF).
fn head_end(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = bytes[from..].iter().position(|&b| b == b'\n') {
        let after = from + i + 1;
        match &bytes[after..] {
            [b'\n', ..] => return Some(after + 1),
            [b'\r', b'\n', ..] => return Some(after + 2),
            _ => from = after,
        }
    }
    None
}

/// Whether a write failed because the backend closed the connection (maybe after
/// answering), rather than for another reason.
fn closed_on_us(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

enum Parsed {
    Partial,
    Informational,
    Final(Head),
}

/// What a response head's headers say about its framing and its connection.
#[derive(Default)]
struct FramingHeaders {
    content_length: Option<u64>,
    /// `Content-Length` was a list, or came more than once.
    length_listed: bool,
    transfer_encoding: bool,
    /// `Transfer-Encoding` named `chunked` (and, by `see`, nothing else).
    chunked: bool,
    close: bool,
    keep_alive: bool,
}

impl FramingHeaders {
    fn see(&mut self, name: &HeaderName, value: &[u8]) -> Result<(), BackendError> {
        if name == header::CONTENT_LENGTH {
            // A list of equal values is one length (RFC 9110 §8.6); anything else is invalid.
            for item in value.split(|&b| b == b',') {
                let n = parse_decimal(item.trim_ascii()).ok_or(BackendError::Protocol(
                    "invalid content-length in the response",
                ))?;
                if let Some(seen) = self.content_length {
                    if seen != n {
                        return Err(BackendError::Protocol(
                            "conflicting content-length values in the response",
                        ));
                    }
                    self.length_listed = true;
                }
                self.content_length = Some(n);
            }
        } else if name == header::TRANSFER_ENCODING {
            self.transfer_encoding = true;
            // Only `chunked`, once: the gateway undoes no other coding, and one it passed
            // on undone (`gzip, chunked`) would reach the client as if it were the content,
            // with nothing left to say it is not. nginx answers 502 too.
            for coding in value.split(|&b| b == b',') {
                let coding = coding.trim_ascii();
                if coding.is_empty() {
                    continue;
                }
                if self.chunked || !coding.eq_ignore_ascii_case(b"chunked") {
                    return Err(BackendError::Protocol(NOT_CHUNKED));
                }
                self.chunked = true;
            }
        } else if name == header::CONNECTION {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        Ok(())
    }
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// Reads a response body from its connection, frame by frame.
#[derive(Debug)]
pub(crate) struct BodyReader {
    state: BodyState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    /// Bytes still to come.
    Length(u64),
    /// Until the connection closes.
    Close,
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Bytes of the current chunk still to come.
    ChunkData(u64),
    /// Expecting the CRLF after a chunk's data.
    ChunkEnd,
    /// Expecting the trailer section after the last chunk.
    Trailers,
    Done,
}

impl BodyReader {
    pub(crate) fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Length(0) => BodyState::Done,
            Framing::Length(n) => BodyState::Length(n),
            Framing::Chunked => BodyState::ChunkSize,
            Framing::Close => BodyState::Close,
        };
        BodyReader { state }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state == BodyState::Done
    }

    /// Bytes still to come, when known.
    pub(crate) fn remaining(&self) -> Option<u64> {
        match self.state {
            BodyState::Length(n) => Some(n),
            BodyState::Done => Some(0),
            _ => None,
        }
    }

    /// The next piece of the body: `None` at its end, after which `conn` is ready for the
    /// next exchange if [`Conn::is_reusable`] says so.
    pub(crate) fn poll_data(
        &mut self,
        conn: &mut Conn,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BackendError>>> {
        let polled = self.poll_data_inner(conn, cx);
        if let Poll::Ready(Some(Err(_))) = polled {
            conn.reusable = false;
            self.state = BodyState::Done;
        }
        polled
    }

    fn poll_data_inner(
        &mut self,
        conn: &mut Conn,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BackendError>>> {
        loop {
            match self.state {
                BodyState::Done => return Poll::Ready(None),
                BodyState::Length(left) | BodyState::ChunkData(left) => {
                    if conn.read.is_empty() && ready!(poll_fill(conn, cx))? == 0 {
                        return Poll::Ready(Some(Err(cut_short())));
                    }
                    let take = left.min(conn.read.len() as u64);
                    let left = left - take;
                    self.state = match self.state {
                        BodyState::Length(_) if left == 0 => BodyState::Done,
                        BodyState::Length(_) => BodyState::Length(left),
                        _ if left == 0 => BodyState::ChunkEnd,
                        _ => BodyState::ChunkData(left),
                    };
                    let data = conn.read.split_to(take as usize).freeze();
                    if self.state == BodyState::ChunkEnd {
                        // Step over what follows the last chunk if it is already here,
                        // so that the body reports its end with its last data. Framing
                        // that is wrong there fails the next poll (the state stays where
                        // it went wrong): this data came whole, and goes first.
                        let _ = self.advance_buffered(conn);
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
                BodyState::Close => {
                    if conn.read.is_empty() && ready!(poll_fill(conn, cx))? == 0 {
                        conn.reusable = false;
                        self.state = BodyState::Done;
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(conn.read.split().freeze())));
                }
                BodyState::ChunkSize | BodyState::ChunkEnd | BodyState::Trailers => {
                    if !self.advance_buffered(conn)? && ready!(poll_fill(conn, cx))? == 0 {
                        return Poll::Ready(Some(Err(cut_short())));
                    }
                }
            }
        }
    }

    /// Steps through chunk framing already in the buffer: `false` when more must be read.
    fn advance_buffered(&mut self, conn: &mut Conn) -> Result<bool, BackendError> {
        let mut advanced = false;
        loop {
            let read = &mut conn.read;
            match self.state {
                BodyState::ChunkSize => match parse_chunk_size(&read[..]) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        read.advance(used);
                        self.state = if size == 0 {
                            BodyState::Trailers
                        } else {
                            BodyState::ChunkData(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if read.len() <= MAX_CHUNK_LINE => {
                        return Ok(advanced);
                    }
                    _ => return Err(BackendError::Protocol("invalid chunk size in the response")),
                },
                BodyState::ChunkEnd => {
                    if read.len() < 2 {
                        return Ok(advanced);
                    }
                    if &read[..2] != b"\r\n" {
                        return Err(BackendError::Protocol("invalid chunk end in the response"));
                    }
                    read.advance(2);
                    self.state = BodyState::ChunkSize;
                }
                BodyState::Trailers => {
                    // The limits of a head: trailers are fields too (hyper's are as wide).
                    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    match httparse::parse_headers(&read[..], &mut fields) {
                        // Trailers are not forwarded.
                        Ok(httparse::Status::Complete((used, _))) => {
                            read.advance(used);
                            self.state = BodyState::Done;
                            return Ok(true);
                        }
                        Ok(httparse::Status::Partial) if read.len() <= MAX_HEAD => {
                            return Ok(advanced);
                        }
                        _ => {
                            return Err(BackendError::Protocol("invalid trailers in the response"));
                        }
                    }
                }
                _ => return Ok(true),
            }
            advanced = true;
        }
    }
}

/// A chunk-size line, as RFC 9112 §7.1 has it: `httparse::parse_chunk_size`, but with at
/// least one hex digit (httparse reads a line of none, `\r\n` or `;ext`, as a size of
/// 0: a body cut short passed for a whole one, and the rest left for the next response
/// on the connection), and any number of leading zeros (httparse refuses a 17th digit,
/// however small the number).
fn parse_chunk_size(line: &[u8]) -> Result<httparse::Status<(usize, u64)>, ()> {
    let Some(first) = line.first() else {
        return Ok(httparse::Status::Partial);
    };
    if !first.is_ascii_hexdigit() {
        return Err(());
    }
    // Zeros before the last digit, stepped over.
    let zeros = line.iter().take_while(|b| **b == b'0').count();
    let skip = if line.get(zeros).is_some_and(u8::is_ascii_hexdigit) {
        zeros
    } else {
        zeros - 1
    };
    match httparse::parse_chunk_size(&line[skip..]) {
        // httparse takes any byte but CR in an extension, a bare LF too: a line end to
        // another parser (hyper refuses it; so does nginx), so a framing to disagree on.
        Ok(httparse::Status::Complete((used, _)))
            if line[skip..skip + used - 1].contains(&b'\n') =>
        {
            Err(())
        }
        Ok(httparse::Status::Complete((used, size))) => {
            Ok(httparse::Status::Complete((skip + used, size)))
        }
        Ok(httparse::Status::Partial) => Ok(httparse::Status::Partial),
        Err(_) => Err(()),
    }
}

fn poll_fill(conn: &mut Conn, cx: &mut Context<'_>) -> Poll<Result<usize, BackendError>> {
    conn.poll_read_more(cx).map_err(BackendError::Io)
}

fn cut_short() -> BackendError {
    BackendError::Protocol("the connection closed before the end of the response body")
}
