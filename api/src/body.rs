use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};

use crate::error::{BoxError, Error};
use crate::guard;

type DynBody = Pin<Box<dyn http_body::Body<Data = Bytes, Error = BoxError> + Send + 'static>>;

/// A request or response body: empty, a buffer, or a stream.
///
/// Streams made by a plugin ([`Body::from_stream`]) are polled under a panic guard.
pub struct Body {
    inner: Inner,
}

enum Inner {
    Empty,
    Full(Bytes),
    Stream(DynBody),
}

impl Body {
    /// An empty body.
    pub const fn empty() -> Self {
        Body {
            inner: Inner::Empty,
        }
    }

    /// A body made of one buffer.
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        if data.is_empty() {
            Body::empty()
        } else {
            Body {
                inner: Inner::Full(data),
            }
        }
    }

    /// A streaming body. Its frames are polled under a panic guard.
    ///
    /// In gwhost, an exact `size_hint` becomes the response's `Content-Length`, and the
    /// stream is held to it: one that ends short of it, or yields a chunk past it, fails
    /// as the plugin's (chunks after the promised length are not asked for).
    pub fn from_stream<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Body {
            inner: Inner::Stream(Box::pin(GuardedBody {
                inner: std::mem::ManuallyDrop::new(body),
                panicked: std::sync::Mutex::new(None),
            })),
        }
    }

    /// The buffered bytes, when the body is not a stream; `None` for a stream.
    ///
    /// Not a way to read a body: in gwhost a request body that is not empty is a stream
    /// (hyper's), as is a backend's body that did not come whole with its head, while a
    /// body made with `Body::from(…)`, as in a unit test, is not. Use [`Body::collect`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.inner {
            Inner::Empty => Some(&[]),
            Inner::Full(b) => Some(b),
            Inner::Stream(_) => None,
        }
    }

    /// Reads the whole body into memory, a stream to its end.
    pub async fn collect(self) -> Result<Bytes, Error> {
        match self.inner {
            Inner::Empty => Ok(Bytes::new()),
            Inner::Full(b) => Ok(b),
            Inner::Stream(mut stream) => {
                let mut buf = BytesMut::new();
                while let Some(frame) =
                    std::future::poll_fn(|cx| stream.as_mut().poll_frame(cx)).await
                {
                    if let Ok(data) = frame.map_err(Error::from)?.into_data() {
                        buf.extend_from_slice(&data);
                    }
                }
                Ok(buf.freeze())
            }
        }
    }
}

/// What [`Body::map_whole`] applies to a body.
type WholeMap = Box<dyn FnOnce(Bytes) -> Result<Bytes, Error> + Send>;

impl Body {
    /// The body with `f` applied to the whole of it: how a modifier, which cannot wait for
    /// a stream, rewrites a body (a JSON response given a field, say). A buffered body is
    /// changed at once; a stream is read to its end when it is first polled (in gwhost,
    /// once the response goes out), at most `limit` bytes of it, and `f` runs then.
    /// Trailers are dropped. Past `limit`, or when `f` fails, the body fails with that
    /// error (in gwhost: a 500 when the whole body was there before the response's head
    /// went out, else the connection closes before the body's end).
    ///
    /// ```
    /// # use gwplugin::{Body, Error, Response};
    /// fn tag(resp: &mut Response) -> Result<(), Error> {
    ///     let body = std::mem::take(resp.body_mut());
    ///     *resp.body_mut() = body.map_whole(1 << 20, |json| {
    ///         let mut value: gwplugin::serde_json::Value = gwplugin::serde_json::from_slice(&json)?;
    ///         // Only an object gets the field: `value["tagged"] = …` panics on a list.
    ///         let Some(object) = value.as_object_mut() else {
    ///             return Ok(json);
    ///         };
    ///         object.insert("tagged".into(), true.into());
    ///         Ok(gwplugin::serde_json::to_vec(&value)?.into())
    ///     });
    ///     // The length changed: gwhost frames the new body itself.
    ///     resp.headers_mut().remove(gwplugin::http::header::CONTENT_LENGTH);
    ///     Ok(())
    /// }
    /// ```
    pub fn map_whole<F>(self, limit: usize, f: F) -> Body
    where
        F: FnOnce(Bytes) -> Result<Bytes, Error> + Send + 'static,
    {
        let whole = match self.inner {
            Inner::Empty => Bytes::new(),
            Inner::Full(data) => data,
            Inner::Stream(_) => {
                return Body::from_stream(MapWhole {
                    inner: self,
                    read: BytesMut::new(),
                    limit,
                    map: Some(Box::new(f)),
                });
            }
        };
        let mapped = if whole.len() > limit {
            Err(too_large(limit))
        } else {
            f(whole)
        };
        match mapped {
            Ok(data) => Body::full(data),
            Err(e) => Body::from_stream(MapWhole {
                inner: Body::empty(),
                read: BytesMut::new(),
                limit,
                map: Some(Box::new(move |_| Err(e))),
            }),
        }
    }
}

fn too_large(limit: usize) -> Error {
    Error::new(format!(
        "the body is larger than the {limit} bytes `map_whole` reads"
    ))
}

/// A stream read whole, then mapped ([`Body::map_whole`]). `map` is `None` once done.
struct MapWhole {
    inner: Body,
    read: BytesMut,
    limit: usize,
    map: Option<WholeMap>,
}

impl http_body::Body for MapWhole {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.map.is_none() {
                return Poll::Ready(None);
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(frame) => frame,
            };
            match frame {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers
                    };
                    if this.read.len() + data.len() > this.limit {
                        this.map = None;
                        return Poll::Ready(Some(Err(Box::new(too_large(this.limit)))));
                    }
                    this.read.extend_from_slice(&data);
                }
                Some(Err(e)) => {
                    this.map = None;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    let map = this.map.take().expect("checked above");
                    let whole = std::mem::take(&mut this.read).freeze();
                    return Poll::Ready(Some(
                        map(whole)
                            .map(Frame::data)
                            .map_err(|e| Box::new(e) as BoxError),
                    ));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.map.is_none()
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Empty => f.write_str("Body(empty)"),
            Inner::Full(b) => write!(f, "Body({} bytes)", b.len()),
            Inner::Stream(_) => f.write_str("Body(stream)"),
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body::full(b)
    }
}
impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Self {
        Body::full(b)
    }
}
impl From<String> for Body {
    fn from(s: String) -> Self {
        Body::full(s)
    }
}
impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Body::full(Bytes::from_static(s.as_bytes()))
    }
}
impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Self {
        Body::full(Bytes::from_static(s))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.inner {
            Inner::Empty => Poll::Ready(None),
            Inner::Full(_) => {
                let Inner::Full(data) = std::mem::replace(&mut self.inner, Inner::Empty) else {
                    unreachable!()
                };
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Inner::Stream(s) => s.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty => true,
            Inner::Full(_) => false,
            Inner::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Full(b) => SizeHint::with_exact(b.len() as u64),
            Inner::Stream(s) => s.size_hint(),
        }
    }
}

/// `inner` is structurally pinned (stored inline: one allocation per stream), and dropped
/// in place under a guard: the host drops the body, and a plugin's panicking destructor
/// must not unwind into it. `size_hint` and `is_end_stream` are guarded too: a panic there
/// is kept and returned by the next poll.
struct GuardedBody<B> {
    inner: std::mem::ManuallyDrop<B>,
    panicked: std::sync::Mutex<Option<Error>>,
}

impl<B> GuardedBody<B> {
    /// Runs `f` on the stream; a panic is kept for the next poll, and `fallback` returned.
    fn guarded<T>(&self, fallback: T, f: impl FnOnce(&B) -> T) -> T {
        match guard::guard(|| Ok(f(&self.inner))) {
            Ok(value) => value,
            Err(panic) => {
                if let Ok(mut slot) = self.panicked.lock() {
                    slot.get_or_insert(panic);
                }
                fallback
            }
        }
    }
}

impl<B> Drop for GuardedBody<B> {
    fn drop(&mut self) {
        let inner = &mut self.inner;
        // SAFETY: `inner` is dropped once, here, in place (it is pinned), and not used after.
        let _ = guard::guard(move || {
            unsafe { std::mem::ManuallyDrop::drop(inner) };
            Ok(())
        });
    }
}

impl<B> http_body::Body for GuardedBody<B>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(panic) = self.panicked.lock().ok().and_then(|mut slot| slot.take()) {
            return Poll::Ready(Some(Err(Box::new(panic))));
        }
        // SAFETY: `inner` is never moved out of a pinned `GuardedBody` (no `Unpin`
        // impl; its `Drop` drops it in place).
        let inner = unsafe { self.map_unchecked_mut(|s| &mut *s.inner) };
        let polled = guard::guard(|| Ok(inner.poll_frame(cx)));
        match polled {
            Ok(Poll::Ready(Some(Err(e)))) => Poll::Ready(Some(Err(e.into()))),
            Ok(Poll::Ready(Some(Ok(frame)))) => Poll::Ready(Some(Ok(frame))),
            Ok(Poll::Ready(None)) => Poll::Ready(None),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Some(Err(Box::new(panic)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        // Not the end when it panicked: the next poll says so.
        self.guarded(false, |b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.guarded(SizeHint::default(), |b| b.size_hint())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::future::Future;
    use std::task::Waker;

    use super::*;

    /// A stream of the given chunks, one per poll.
    struct Chunks(VecDeque<&'static str>);

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(|c| Ok(Frame::data(Bytes::from(c)))))
        }
    }

    fn stream(chunks: &[&'static str]) -> Body {
        Body::from_stream(Chunks(chunks.iter().copied().collect()))
    }

    /// Reads a body whose streams never wait.
    fn read(body: Body) -> Result<Bytes, Error> {
        let mut fut = std::pin::pin!(body.collect());
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("waited"),
        }
    }

    fn shout(bytes: Bytes) -> Result<Bytes, Error> {
        Ok(bytes.to_ascii_uppercase().into())
    }

    #[test]
    fn map_whole_changes_a_buffered_body_at_once_and_a_stream_once_read() {
        let mapped = Body::from("hello").map_whole(100, shout);
        assert_eq!(mapped.as_bytes(), Some(&b"HELLO"[..]));
        let mapped = stream(&["hel", "lo ", "world"]).map_whole(100, shout);
        assert_eq!(mapped.as_bytes(), None);
        assert_eq!(read(mapped).unwrap(), "HELLO WORLD");
        let mapped = Body::empty().map_whole(0, |_| Ok(Bytes::from("was empty")));
        assert_eq!(read(mapped).unwrap(), "was empty");
    }

    #[test]
    fn map_whole_fails_past_its_limit_or_with_the_maps_error() {
        let err = read(stream(&["12345", "678"]).map_whole(7, shout)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the body is larger than the 7 bytes `map_whole` reads"
        );
        let err = read(Body::from("12345678").map_whole(7, shout)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the body is larger than the 7 bytes `map_whole` reads"
        );
        let failing = |_| Err(Error::new("not JSON"));
        assert_eq!(
            read(stream(&["x"]).map_whole(9, failing))
                .unwrap_err()
                .to_string(),
            "not JSON"
        );
        assert_eq!(
            read(Body::from("x").map_whole(9, failing))
                .unwrap_err()
                .to_string(),
            "not JSON"
        );
    }
}
