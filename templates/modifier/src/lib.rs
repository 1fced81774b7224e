//! `{{name}}`: a gwplugin modifier (`plugin/req-resp-modifier`).
//!
//! Sets a header on every request on its way to the backends, and marks every response
//! on its way back. A request that lacks the header named `require` is refused with
//! 403. Configure it in the gateway's config, under its name:
//!
//! ```json
//! "extra_config": {
//!   "plugin/req-resp-modifier": {
//!     "name": ["{{name}}"],
//!     "{{name}}": { "header": "x-tenant", "value": "acme", "require": "authorization" }
//!   }
//! }
//! ```

use gwplugin::http::{HeaderName, HeaderValue, StatusCode};
use gwplugin::{Config, Error, Modifier, Request, Response};

/// The plugin, with its configuration read once at start-up.
#[derive(Debug, Clone)]
pub struct SetHeader {
    header: HeaderName,
    value: HeaderValue,
    require: Option<HeaderName>,
}

impl SetHeader {
    /// Reads the plugin's configuration: `value` is required; `header` defaults to
    /// `x-{{name}}`; `require` is optional.
    pub fn from_config(config: &Config) -> Result<Self, Error> {
        let text = |key: &str| config.get(key).and_then(|v| v.as_str());
        let value = text("value").ok_or_else(|| Error::new("{{name}}: config needs `value` (a string)"))?;
        Ok(SetHeader {
            header: HeaderName::try_from(text("header").unwrap_or("x-{{name}}"))?,
            value: HeaderValue::from_str(value)?,
            require: text("require").map(HeaderName::try_from).transpose()?,
        })
    }
}

impl Modifier for SetHeader {
    fn modify_request(&self, req: &mut Request) -> Result<(), Error> {
        if let Some(required) = &self.require
            && !req.headers().contains_key(required)
        {
            return Err(Error::with_status(
                StatusCode::FORBIDDEN,
                format!("missing header `{required}`"),
            ));
        }
        req.headers_mut().insert(self.header.clone(), self.value.clone());
        Ok(())
    }

    fn modify_response(&self, resp: &mut Response) -> Result<(), Error> {
        resp.headers_mut()
            .insert("x-modified-by", HeaderValue::from_static("{{name}}"));
        Ok(())
    }
}

gwplugin::export! {
    modifier "{{name}}" => SetHeader::from_config,
}

#[cfg(test)]
mod tests {
    use super::*;
    use gwplugin::Body;
    use gwplugin::serde_json::json;

    fn request() -> Request {
        gwplugin::http::Request::get("/items").body(Body::empty()).unwrap()
    }

    #[test]
    fn config_needs_a_value_and_valid_names() {
        assert!(SetHeader::from_config(&json!({})).is_err());
        assert!(SetHeader::from_config(&json!({"value": "v", "header": "bad header"})).is_err());
        assert!(SetHeader::from_config(&json!({"value": "v"})).is_ok());
    }

    #[test]
    fn sets_the_header_and_marks_the_response() {
        let plugin = SetHeader::from_config(&json!({"header": "x-tenant", "value": "acme"})).unwrap();
        let mut req = request();
        plugin.modify_request(&mut req).unwrap();
        assert_eq!(req.headers()["x-tenant"], "acme");

        let mut resp = Response::new(Body::empty());
        plugin.modify_response(&mut resp).unwrap();
        assert_eq!(resp.headers()["x-modified-by"], "{{name}}");
    }

    #[test]
    fn refuses_a_request_without_the_required_header() {
        let plugin = SetHeader::from_config(&json!({"value": "v", "require": "authorization"})).unwrap();
        let err = plugin.modify_request(&mut request()).unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::FORBIDDEN));

        let mut req = request();
        req.headers_mut().insert("authorization", HeaderValue::from_static("t"));
        plugin.modify_request(&mut req).unwrap();
        assert_eq!(req.headers()["x-{{name}}"], "v");
    }
}
