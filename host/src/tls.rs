//! TLS to `https` backends: rustls with the system's trust store, HTTP/1.1 by ALPN.
//!
//! The roots are read once per process, on the first `https` connection: the system's
//! store, or the file `SSL_CERT_FILE` (and folder `SSL_CERT_DIR`) names, as OpenSSL
//! reads them, so a private CA is trusted the way operators already trust it.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The client configuration every `https` connection shares.
fn connector() -> &'static TlsConnector {
    static CONNECTOR: OnceLock<TlsConnector> = OnceLock::new();
    CONNECTOR.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            // With SSL_CERT_FILE or SSL_CERT_DIR set, they are read instead of the system's.
            tracing::warn!(
                "reading the CA certificates (SSL_CERT_FILE, SSL_CERT_DIR, else the system's): \
                 {error}"
            );
        }
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        if ignored > 0 {
            tracing::warn!("{ignored} of the CA certificates read could not be used");
        }
        if added == 0 {
            tracing::warn!(
                "no CA certificates found: every https backend will fail its TLS handshake \
                 (install the system's CA certificates, e.g. Debian's `ca-certificates`, or \
                 name a PEM file in SSL_CERT_FILE)"
            );
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsConnector::from(Arc::new(config))
    })
}

/// Runs the TLS handshake on `tcp` for `host` (a DNS name or an IP address), checking
/// the backend's certificate against the roots.
/// Its error says `TLS handshake: ` and why.
pub(crate) async fn handshake(tcp: TcpStream, host: &str) -> io::Result<TlsStream<UnderTls>> {
    let failed =
        |e: &dyn std::fmt::Display, kind| io::Error::new(kind, format!("TLS handshake: {e}"));
    // `[::1]` in an authority is `::1` in a certificate.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| failed(&e, io::ErrorKind::InvalidInput))?;
    connector()
        .connect(name, UnderTls(tcp))
        .await
        .map_err(|e| failed(&e, e.kind()))
}

/// A byte stream that is plain TCP, or TLS over it: a backend connection here, a client
/// connection in a gateway that serves HTTPS.
///
/// One type rather than a generic parameter of the code that reads and writes it: hyper's
/// server code instantiated for two stream types was no longer inlined into either, +300
/// instructions per plain request (callgrind); the match per read or write costs a few.
#[derive(Debug)]
pub enum TcpOrTls<T> {
    Tcp(TcpStream),
    // Boxed: the TLS state is kilobytes, which a plain connection need not carry.
    Tls(Box<T>),
}

/// A backend connection's stream.
pub(crate) type Stream = TcpOrTls<TlsStream<UnderTls>>;

/// Whether an idle TLS backend connection is still usable: TLS records that carry no
/// data (a TLS 1.3 session ticket) are read and leave it so; data, an alert or the end do
/// not. For TCP, see `Conn::is_reusable`.
///
/// Always a read, not the socket's readiness first as for TCP: rustls may already hold
/// what came after the response (tokio-rustls hands out one record per read, and a short
/// read clears the socket's readiness), such as a stray body or a `close_notify`. With
/// nothing there, the read costs no system call.
#[inline(never)]
pub(crate) fn tls_idle_is_usable(tls: &mut TlsStream<UnderTls>) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    Pin::new(tls).poll_read(&mut cx, &mut buf).is_pending()
}

impl<T: AsyncRead + Unpin> AsyncRead for TcpOrTls<T> {
    #[inline(always)]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TcpOrTls::Tcp(tcp) => Pin::new(tcp).poll_read(cx, buf),
            TcpOrTls::Tls(tls) => match Pin::new(&mut **tls).poll_read(cx, buf) {
                // The peer closed without a TLS close_notify: read as the end of the
                // stream, as over TCP, and as Go's and OpenSSL's clients commonly do. A
                // body with a length or chunks still fails when cut short (its framing
                // says so); one delimited by the close is as truncatable as over TCP.
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    Poll::Ready(Ok(()))
                }
                other => other,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TcpOrTls<T> {
    #[inline(always)]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TcpOrTls::Tcp(tcp) => Pin::new(tcp).poll_write(cx, buf),
            TcpOrTls::Tls(tls) => Pin::new(&mut **tls).poll_write(cx, buf),
        }
    }

    #[inline(always)]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TcpOrTls::Tcp(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            TcpOrTls::Tls(tls) => Pin::new(&mut **tls).poll_write_vectored(cx, bufs),
        }
    }

    #[inline(always)]
    fn is_write_vectored(&self) -> bool {
        match self {
            TcpOrTls::Tcp(tcp) => tcp.is_write_vectored(),
            TcpOrTls::Tls(tls) => tls.is_write_vectored(),
        }
    }

    #[inline(always)]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TcpOrTls::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
            TcpOrTls::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TcpOrTls::Tcp(tcp) => Pin::new(tcp).poll_shutdown(cx),
            TcpOrTls::Tls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
        }
    }
}

/// A TCP stream for TLS to run over (here, and in a gateway that serves HTTPS), without
/// vectored writes. rustls would use them, and a second caller of
/// `TcpStream::poll_write_vectored` (hyper's writes to clients are the other) kept the
/// compiler from inlining it there: +47 instructions per proxied request, TLS or not
/// (callgrind). TLS gets the records it writes one `write` at a time.
#[derive(Debug)]
pub struct UnderTls(pub TcpStream);

impl AsyncRead for UnderTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for UnderTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
