//! `{{name}}`: a gwplugin http-server plugin (`plugin/http-server`).
//!
//! Wraps the gateway's router: a request must carry one of the configured API keys in
//! the configured header, or it is answered 401 without reaching the router. (gwhost
//! answers its own health check, `/__health`, before http-server plugins: a load
//! balancer's probe needs no key.) Answers that pass get `x-{{name}}: ok`. Configure it
//! in the service's `extra_config`:
//!
//! ```json
//! "extra_config": {
//!   "plugin/http-server": {
//!     "name": ["{{name}}"],
//!     "{{name}}": { "header": "x-api-key", "keys": ["secret-1", "secret-2"] }
//!   }
//! }
//! ```

use gwplugin::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use gwplugin::{Body, Config, Error, HttpServer, Next, Request, Response};

/// The plugin, with its configuration read once at start-up.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    header: HeaderName,
    keys: Vec<String>,
}

impl ApiKeys {
    /// Reads the plugin's configuration: `keys` (a non-empty list of strings) is
    /// required; `header` defaults to `x-api-key`.
    pub fn from_config(config: &Config) -> Result<Self, Error> {
        let header = config
            .get("header")
            .and_then(|h| h.as_str())
            .unwrap_or("x-api-key");
        let keys: Vec<String> = config
            .get("keys")
            .and_then(|k| k.as_array())
            .map(|a| a.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        if keys.is_empty() {
            return Err(Error::new(
                "{{name}}: config needs `keys` (a list of API keys)",
            ));
        }
        Ok(ApiKeys {
            header: HeaderName::try_from(header)?,
            keys,
        })
    }

    /// Whether a request with these headers may pass.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        headers
            .get(&self.header)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|key| self.keys.iter().any(|k| k == key))
    }
}

impl HttpServer for ApiKeys {
    async fn handle(&self, req: Request, next: Next<'_>) -> Result<Response, Error> {
        if !self.allows(req.headers()) {
            gwplugin::log::info!("refused {} {}: no valid API key", req.method(), req.uri());
            let mut resp = Response::new(Body::from("missing or invalid API key\n"));
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            return Ok(resp);
        }
        let mut resp = next.run(req).await?;
        resp.headers_mut()
            .insert("x-{{name}}", HeaderValue::from_static("ok"));
        Ok(resp)
    }
}

gwplugin::export! {
    http_server "{{name}}" => ApiKeys::from_config,
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    use gwplugin::BoxFuture;
    use gwplugin::abi::ErasedHandler;
    use gwplugin::serde_json::json;

    use super::*;

    /// Stands in for the gateway's router: answers 200 "from the router".
    struct Router;

    impl ErasedHandler for Router {
        fn call(&self, _req: Request) -> BoxFuture<'_, Result<Response, Error>> {
            Box::pin(async { Ok(Response::new(Body::from("from the router"))) })
        }
    }

    /// Polls a future that never waits (nothing here uses host timers or I/O).
    fn run<F: Future>(fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("the future waited: this test has no runtime"),
        }
    }

    fn request(key: Option<&str>) -> Request {
        let mut req = gwplugin::http::Request::get("/items");
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        req.body(Body::empty()).unwrap()
    }

    fn plugin() -> ApiKeys {
        ApiKeys::from_config(&json!({"keys": ["k1", "k2"]})).unwrap()
    }

    #[test]
    fn config_needs_keys() {
        assert!(ApiKeys::from_config(&json!({})).is_err());
        assert!(ApiKeys::from_config(&json!({"keys": []})).is_err());
        assert!(ApiKeys::from_config(&json!({"keys": ["k"], "header": "bad header"})).is_err());
    }

    #[test]
    fn allows_only_configured_keys() {
        let p = plugin();
        assert!(p.allows(request(Some("k2")).headers()));
        assert!(!p.allows(request(Some("nope")).headers()));
        assert!(!p.allows(request(None).headers()));
    }

    #[test]
    fn passes_good_requests_to_the_router_and_refuses_others() {
        let p = plugin();
        let resp = run(p.handle(request(Some("k1")), Next::from_handler(&Router))).unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["x-{{name}}"], "ok");

        let resp = run(p.handle(request(None), Next::from_handler(&Router))).unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(!resp.headers().contains_key("x-{{name}}"));
    }
}
