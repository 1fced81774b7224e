//! `{{name}}`: a gwplugin http-client plugin (`plugin/http-client`).
//!
//! Replaces the gateway's call to one backend: sends the request to the configured
//! `backend` URL (same method, path, query and body) with the configured extra
//! `headers`, through the host's HTTP client, and tags the answer with
//! `x-{{name}}: <backend>`. Configure it in the backend's `extra_config`:
//!
//! ```json
//! "extra_config": {
//!   "plugin/http-client": {
//!     "name": "{{name}}",
//!     "{{name}}": { "backend": "http://127.0.0.1:8080", "headers": { "x-token": "t" } }
//!   }
//! }
//! ```

use gwplugin::http::{HeaderName, HeaderValue};
use gwplugin::{Config, Error, HttpClient, Request, Response};

/// The plugin, with its configuration read once at start-up.
#[derive(Debug, Clone)]
pub struct Forward {
    backend: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Forward {
    /// Reads the plugin's configuration: `backend` (an http URL) is required,
    /// `headers` (an object of strings) is optional.
    pub fn from_config(config: &Config) -> Result<Self, Error> {
        let backend = config
            .get("backend")
            .and_then(|b| b.as_str())
            .filter(|b| b.starts_with("http://") || b.starts_with("https://"))
            .ok_or_else(|| Error::new("{{name}}: config needs `backend` (an http URL)"))?;
        let mut headers = Vec::new();
        if let Some(map) = config.get("headers").and_then(|h| h.as_object()) {
            for (name, value) in map {
                let value = value.as_str().ok_or_else(|| {
                    Error::new(format!("{{name}}: header `{name}` must be a string"))
                })?;
                headers.push((HeaderName::try_from(name.as_str())?, HeaderValue::from_str(value)?));
            }
        }
        Ok(Forward {
            backend: backend.trim_end_matches('/').to_owned(),
            headers,
        })
    }

    /// The request to send to the backend for `req`.
    pub fn outgoing(&self, req: Request) -> Result<Request, Error> {
        let (parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let mut out = gwplugin::http::Request::builder()
            .method(parts.method)
            .uri(format!("{}{path}", self.backend))
            .body(body)?;
        *out.headers_mut() = parts.headers;
        for (name, value) in &self.headers {
            out.headers_mut().insert(name.clone(), value.clone());
        }
        Ok(out)
    }
}

impl HttpClient for Forward {
    async fn call(&self, req: Request) -> Result<Response, Error> {
        let out = self.outgoing(req)?;
        gwplugin::log::debug!("{{name}}: {} {}", out.method(), out.uri());
        let mut resp = gwplugin::send(out).await?;
        resp.headers_mut()
            .insert("x-{{name}}", HeaderValue::from_str(&self.backend)?);
        Ok(resp)
    }
}

gwplugin::export! {
    http_client "{{name}}" => Forward::from_config,
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    use gwplugin::serde_json::json;
    use gwplugin::{Body, BoxFuture, HostServices};

    use super::*;

    /// Host services for tests: `send` answers at once with the URI it was given.
    struct FakeHost;

    impl HostServices for FakeHost {
        fn sleep(&self, _duration: Duration) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }
        fn spawn(&self, _task: BoxFuture<'static, ()>) {}
        fn send(&self, request: Request) -> BoxFuture<'static, Result<Response, Error>> {
            let uri = request.uri().to_string();
            let token = request.headers().get("x-token").cloned();
            Box::pin(async move {
                let mut resp = Response::new(Body::from(uri));
                if let Some(token) = token {
                    resp.headers_mut().insert("x-token-seen", token);
                }
                Ok(resp)
            })
        }
        fn log(&self, _library: &str, _level: gwplugin::log::Level, _target: &str, _message: &str) {}
        fn max_log_level(&self) -> gwplugin::log::LevelFilter {
            gwplugin::log::LevelFilter::Off
        }
    }

    /// Polls a future that never waits (the fake host answers at once).
    fn run<F: Future>(fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("the future waited: this test has no runtime"),
        }
    }

    fn plugin() -> Forward {
        Forward::from_config(&json!({"backend": "http://backend:8080/", "headers": {"x-token": "t1"}}))
            .unwrap()
    }

    #[test]
    fn config_needs_an_http_backend() {
        assert!(Forward::from_config(&json!({})).is_err());
        assert!(Forward::from_config(&json!({"backend": "ftp://x"})).is_err());
        assert!(Forward::from_config(&json!({"backend": "http://x", "headers": {"a": 1}})).is_err());
    }

    #[test]
    fn builds_the_backend_request() {
        let req = gwplugin::http::Request::post("/items?page=2")
            .header("accept", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let out = plugin().outgoing(req).unwrap();
        assert_eq!(out.method(), "POST");
        assert_eq!(out.uri(), "http://backend:8080/items?page=2");
        assert_eq!(out.headers()["accept"], "application/json");
        assert_eq!(out.headers()["x-token"], "t1");
    }

    #[test]
    fn calls_the_backend_through_the_host() {
        gwplugin::abi::install_host_services(Arc::new(FakeHost));
        let req = gwplugin::http::Request::get("/a").body(Body::empty()).unwrap();
        let resp = run(plugin().call(req)).unwrap();
        assert_eq!(resp.headers()["x-{{name}}"], "http://backend:8080");
        assert_eq!(resp.headers()["x-token-seen"], "t1");
    }
}
