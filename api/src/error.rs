use std::any::Any;
use std::fmt;

use http::StatusCode;

/// A boxed error, as used by streaming bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An error returned by plugin code (or made from a plugin panic).
///
/// It may carry the HTTP status the gateway answers with; without one the gateway
/// answers 500. The message goes to the log, not to the client: gwhost answers with the
/// status's reason as the body. For a body of your own, an http-server plugin answers
/// with `Ok(response)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: Option<StatusCode>,
    message: String,
    panic: bool,
}

impl Error {
    /// An error with a message; the gateway answers 500.
    pub fn new(message: impl fmt::Display) -> Self {
        Error {
            status: None,
            message: message.to_string(),
            panic: false,
        }
    }

    /// An error that makes the gateway answer `status`.
    pub fn with_status(status: StatusCode, message: impl fmt::Display) -> Self {
        Error {
            status: Some(status),
            message: message.to_string(),
            panic: false,
        }
    }

    /// The status the gateway should answer with, if the plugin chose one.
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when this error was made from a panic caught at the plugin boundary.
    pub fn is_panic(&self) -> bool {
        self.panic
    }

    pub(crate) fn from_panic(payload: Box<dyn Any + Send>, location: Option<String>) -> Self {
        let text = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-string panic payload".to_owned()
        };
        // The payload may own plugin-allocated memory: dropping it here, inside the
        // plugin's catch, is fine because allocation is shared with the host. Its drop
        // may panic too (`panic_any` of a value whose `Drop` panics): caught here, that
        // second payload is leaked rather than dropped, which could panic again.
        if let Err(again) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(payload)))
        {
            std::mem::forget(again);
        }
        let message = match location {
            Some(at) => format!("plugin panicked at {at}: {text}"),
            None => format!("plugin panicked: {text}"),
        };
        Error {
            status: None,
            message,
            panic: true,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// `?` on what building or reading a request or response fails with: each becomes the
/// error's message, as `Error::new` makes it.
macro_rules! from_error {
    ($($error:ty),* $(,)?) => {
        $(impl From<$error> for Error {
            fn from(e: $error) -> Self {
                Error::new(e)
            }
        })*
    };
}

from_error!(
    http::Error,
    http::header::InvalidHeaderValue,
    http::header::InvalidHeaderName,
    http::header::ToStrError,
    http::uri::InvalidUri,
    http::uri::InvalidUriParts,
    http::status::InvalidStatusCode,
    http::method::InvalidMethod,
    BoxError,
);

/// A JSON error as it is: `?` on one in a factory is a config the plugin rejects (the host
/// says so), in `handle` or `call` a body or a backend's answer that did not parse.
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::new(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_mark_takes_the_http_crate_s_parse_errors() {
        // What a plugin parses on its way: `?` works on each, and says what was wrong.
        let uri = || -> Result<http::Uri, Error> { Ok("a b".parse()?) };
        let parts = || -> Result<http::Uri, Error> {
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(http::uri::Scheme::HTTP);
            Ok(http::Uri::from_parts(parts)?)
        };
        let status =
            || -> Result<http::StatusCode, Error> { Ok(http::StatusCode::from_bytes(b"2000")?) };
        let method = || -> Result<http::Method, Error> { Ok(http::Method::from_bytes(b"G T")?) };
        let text = || -> Result<String, Error> {
            Ok(http::HeaderValue::from_bytes(b"\xff")?.to_str()?.to_owned())
        };
        assert_eq!(uri().unwrap_err().to_string(), "invalid uri character");
        assert!(parts().is_err());
        assert_eq!(status().unwrap_err().to_string(), "invalid status code");
        assert_eq!(method().unwrap_err().to_string(), "invalid HTTP method");
        assert_eq!(
            text().unwrap_err().to_string(),
            "failed to convert header to a str"
        );
    }
}
