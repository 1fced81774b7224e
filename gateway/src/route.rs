//! Endpoint paths with `{param}` segments, backend `url_pattern`s that reuse them, and
//! the lookup table that maps a request to its endpoint without allocating.

use std::collections::HashMap;

use http::Method;

/// One segment of an endpoint path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param(String),
}

/// An endpoint path such as `/users/{id}/posts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    source: String,
    segments: Vec<Segment>,
}

/// Why a path or URL pattern is malformed (the config layer adds the JSON path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("expected a path starting with `/`, found `{0}`")]
    NoLeadingSlash(String),
    #[error("malformed parameter in `{0}`: a parameter is a whole segment like `{{id}}`")]
    MalformedParam(String),
    /// In a `url_pattern`, where a parameter may stand inside a segment (`/{id}.json`).
    #[error(
        "malformed parameter in `{0}`: a parameter is a name in braces like `{{id}}` \
         (letters, digits, `_` and `-`)"
    )]
    MalformedUrlParam(String),
    #[error("parameter `{{{param}}}` appears twice in `{pattern}`")]
    DuplicateParam { pattern: String, param: String },
    #[error("`{{{param}}}` is not a parameter of endpoint `{endpoint}`")]
    UnknownParam { param: String, endpoint: String },
    #[error(
        "`{0}` is not a valid URL path: spaces, non-ASCII and characters such as `\"`, `|`, `^`, `\\` \
         must be percent-encoded (`%20`, `/caf%C3%A9`), and a `%` is followed by two hex digits"
    )]
    InvalidUrl(String),
    #[error("`{0}` has a fragment (`#…`), which never reaches a backend")]
    Fragment(String),
    #[error(
        "`{0}` is not written as requests send it: percent-encode it (`/caf%C3%A9`, not \
         `/café`), with no spaces, query (`?`) or fragment (`#`)"
    )]
    InvalidPath(String),
}

/// Whether `text` is made only of what RFC 3986 lets a path and query hold: unreserved
/// and sub-delim characters, `:`, `@`, `/`, `?`, and `%` with two hex digits; and `[`,
/// `]`, which queries carry unencoded by custom (`filter[id]=1`, PHP's and JSON:API's
/// arrays), as clients send them and `http` takes them.
fn is_uri_text(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                if !bytes
                    .get(i + 1..i + 3)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
                {
                    return false;
                }
                i += 2;
            }
            b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?[]".contains(&b) => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// Segment `i` of a request `path`, counted as [`PathPattern::matches`] counts them: one
/// leading `/` off, so that `//a/b` has an empty first segment.
fn segment(path: &str, i: usize) -> Option<&str> {
    path.strip_prefix('/').unwrap_or(path).split('/').nth(i)
}

/// Whether a request path segment may fill a parameter: not empty, and not a segment that
/// would take the backend's path somewhere else once the backend decodes and normalises
/// it: `.` or `..` (also percent-encoded, or before a `;` as servlet containers read it),
/// a `/` or `\` (encoded, or a raw `\`, which some servers take for a separator), an
/// encoded NUL. No
/// allocation: this runs for every parameterised request.
fn is_param_value(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    if bytes.is_empty() || bytes.contains(&b'\\') {
        return false;
    }
    let escaped = |i: usize, hex: &[u8; 2]| {
        bytes
            .get(i + 1..i + 3)
            .is_some_and(|h| h.eq_ignore_ascii_case(hex))
    };
    // An encoded `/` or `\`, anywhere (also after a `;`), or a NUL, which ends the path
    // early for a backend written in C.
    if (0..bytes.len())
        .any(|i| bytes[i] == b'%' && (escaped(i, b"2f") || escaped(i, b"5c") || escaped(i, b"00")))
    {
        return false;
    }
    // Dots before any `;` (or `%3b`, which a backend may decode first), counting `%2e`
    // as one.
    let mut dots = 0;
    let mut only_dots = true;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if escaped(i, b"2e") => {
                dots += 1;
                i += 3;
                continue;
            }
            b'%' if escaped(i, b"3b") => break,
            b'.' => dots += 1,
            b';' => break,
            _ => only_dots = false,
        }
        i += 1;
    }
    !(only_dots && (dots == 1 || dots == 2))
}

fn is_param_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl PathPattern {
    pub fn parse(source: &str) -> Result<Self, PatternError> {
        let rest = source
            .strip_prefix('/')
            .ok_or_else(|| PatternError::NoLeadingSlash(source.to_owned()))?;
        // Before the segments: `/users/{id}?x=1` is a query, not a malformed parameter.
        if rest.contains(['?', '#', ' ']) {
            return Err(PatternError::InvalidPath(source.to_owned()));
        }
        let mut segments = Vec::new();
        if !rest.is_empty() {
            for raw in rest.split('/') {
                let segment =
                    if let Some(inner) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                        if !is_param_name(inner) {
                            return Err(PatternError::MalformedParam(source.to_owned()));
                        }
                        if segments
                            .iter()
                            .any(|s| matches!(s, Segment::Param(p) if p == inner))
                        {
                            return Err(PatternError::DuplicateParam {
                                pattern: source.to_owned(),
                                param: inner.to_owned(),
                            });
                        }
                        Segment::Param(inner.to_owned())
                    } else if raw.contains(['{', '}']) {
                        return Err(PatternError::MalformedParam(source.to_owned()));
                    } else if raw.contains(['?', '#', '"', '\\'])
                        || !raw.is_ascii()
                        || http::uri::PathAndQuery::try_from(format!("/{raw}")).is_err()
                    {
                        // Routing compares the request's path as sent, and clients send
                        // it percent-encoded: such a segment would not match theirs.
                        return Err(PatternError::InvalidPath(source.to_owned()));
                    } else {
                        Segment::Literal(raw.to_owned())
                    };
                segments.push(segment);
            }
        }
        Ok(PathPattern {
            source: source.to_owned(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn has_params(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Param(_)))
    }

    /// The pattern with parameter names erased: `/users/{id}` and `/users/{name}` are the
    /// same route.
    pub fn shape(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param(_) => out.push_str("{}"),
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    fn param_index(&self, name: &str) -> Option<usize> {
        self.segments
            .iter()
            .position(|s| matches!(s, Segment::Param(p) if p == name))
    }

    /// Whether `path` matches. No allocation.
    pub fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        if self.segments.is_empty() {
            return rest.is_empty();
        }
        let mut parts = rest.split('/');
        for segment in &self.segments {
            match (segment, parts.next()) {
                (Segment::Literal(l), Some(p)) if l == p => {}
                (Segment::Param(_), Some(p)) if is_param_value(p) => {}
                _ => return false,
            }
        }
        parts.next().is_none()
    }
}

/// A piece of a backend `url_pattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UrlPiece {
    Literal(String),
    /// The index of the endpoint path segment holding the value.
    Param(usize),
    /// A parameter in the query: its value is percent-encoded where it would otherwise
    /// end the query parameter (`&`, `=`, `+`, `;`, `#`), so a request path
    /// `/users/7&role=admin` cannot add a parameter of its own.
    QueryParam(usize),
}

/// A backend `url_pattern` such as `/v1/users/{id}.json`, bound to its endpoint's
/// parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPattern {
    pieces: Vec<UrlPiece>,
    literal_len: usize,
    /// Whether the pattern has a query of its own: a request's query then follows `&`.
    has_query: bool,
}

impl UrlPattern {
    pub fn parse(source: &str, endpoint: &PathPattern) -> Result<Self, PatternError> {
        if !source.starts_with('/') {
            return Err(PatternError::NoLeadingSlash(source.to_owned()));
        }
        if source.contains('#') {
            return Err(PatternError::Fragment(source.to_owned()));
        }
        let mut pieces = Vec::new();
        let mut rest = source;
        let mut in_query = false;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .map(|c| open + c)
                .ok_or_else(|| PatternError::MalformedUrlParam(source.to_owned()))?;
            let name = &rest[open + 1..close];
            if !is_param_name(name) || rest[..open].contains('}') {
                return Err(PatternError::MalformedUrlParam(source.to_owned()));
            }
            if open > 0 {
                in_query |= rest[..open].contains('?');
                pieces.push(UrlPiece::Literal(rest[..open].to_owned()));
            }
            let index = endpoint
                .param_index(name)
                .ok_or_else(|| PatternError::UnknownParam {
                    param: name.to_owned(),
                    endpoint: endpoint.as_str().to_owned(),
                })?;
            pieces.push(if in_query {
                UrlPiece::QueryParam(index)
            } else {
                UrlPiece::Param(index)
            });
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err(PatternError::MalformedUrlParam(source.to_owned()));
        }
        if !rest.is_empty() {
            pieces.push(UrlPiece::Literal(rest.to_owned()));
        }
        let literal_len = pieces
            .iter()
            .map(|p| match p {
                UrlPiece::Literal(l) => l.len(),
                UrlPiece::Param(_) | UrlPiece::QueryParam(_) => 0,
            })
            .sum();
        // Checked once here, with a stand-in for each parameter, rather than failing every
        // request with a 400.
        let sample: String = pieces
            .iter()
            .map(|p| match p {
                UrlPiece::Literal(l) => l.as_str(),
                UrlPiece::Param(_) | UrlPiece::QueryParam(_) => "x",
            })
            .collect();
        // What `http` takes, and strictly RFC 3986's characters: the target goes on the
        // wire as written (`http` lets `"`, `|`, `^`, `\`, UTF-8 and a bad `%` through).
        if http::uri::PathAndQuery::try_from(sample.as_str()).is_err() || !is_uri_text(&sample) {
            return Err(PatternError::InvalidUrl(source.to_owned()));
        }
        let has_query = sample.contains('?');
        Ok(UrlPattern {
            pieces,
            literal_len,
            has_query,
        })
    }

    /// Appends the backend path for a request `path` that matched the endpoint, then
    /// `?query` if any, to `out`.
    pub fn render_into(&self, path: &str, query: Option<&str>, out: &mut String) {
        out.reserve(self.literal_len + path.len() + query.map_or(0, |q| q.len() + 1));
        for piece in &self.pieces {
            match piece {
                UrlPiece::Literal(l) => out.push_str(l),
                // The endpoint matched, so segment `i` exists.
                UrlPiece::Param(i) => {
                    if let Some(value) = segment(path, *i) {
                        out.push_str(value);
                    }
                }
                UrlPiece::QueryParam(i) => {
                    if let Some(value) = segment(path, *i) {
                        push_query_value(value, out);
                    }
                }
            }
        }
        if let Some(q) = query {
            self.push_query(q, out);
        }
    }

    /// Appends a request's `query` to a rendered backend path.
    pub fn push_query(&self, query: &str, out: &mut String) {
        if !self.has_query {
            out.push('?');
        } else if !out.ends_with(['?', '&']) {
            // A pattern's own query ending in `?` or `&` already has its separator.
            out.push('&');
        }
        out.push_str(query);
    }
}

/// Appends a path segment as a query parameter's value: percent-encoded where it would
/// end the parameter (`&`, `=`, `+`, `;`, `#`), where it is no escape (a `%` without two
/// hex digits) and where it is not ASCII (a client's raw UTF-8).
fn push_query_value(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let escape = match b {
            b'&' | b'=' | b'+' | b';' | b'#' | 0x80.. => true,
            b'%' => !bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
            _ => false,
        };
        if escape {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            out.push(char::from(b));
        }
    }
}

/// Maps a method and a path to an endpoint index: static paths through a hash map,
/// parameterised ones in config order after them.
#[derive(Debug, Default)]
pub struct RouteTable {
    by_method: Vec<MethodRoutes>,
}

#[derive(Debug)]
struct MethodRoutes {
    method: Method,
    exact: HashMap<Box<str>, usize>,
    patterns: Vec<(PathPattern, usize)>,
}

impl RouteTable {
    pub fn insert(&mut self, method: Method, pattern: PathPattern, index: usize) {
        let routes = match self.by_method.iter_mut().position(|r| r.method == method) {
            Some(i) => &mut self.by_method[i],
            None => {
                self.by_method.push(MethodRoutes {
                    method,
                    exact: HashMap::new(),
                    patterns: Vec::new(),
                });
                self.by_method.last_mut().expect("just pushed")
            }
        };
        if pattern.has_params() {
            routes.patterns.push((pattern, index));
        } else {
            routes.exact.insert(pattern.as_str().into(), index);
        }
    }

    pub fn lookup(&self, method: &Method, path: &str) -> Option<usize> {
        let routes = self.by_method.iter().find(|r| r.method == *method)?;
        // A few static paths: comparing them beats hashing the path.
        if routes.exact.len() <= 8 {
            if let Some((_, i)) = routes.exact.iter().find(|(p, _)| &***p == path) {
                return Some(*i);
            }
        } else if let Some(i) = routes.exact.get(path) {
            return Some(*i);
        }
        routes
            .patterns
            .iter()
            .find(|(p, _)| p.matches(path))
            .map(|(_, i)| *i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_match_whole_segments_and_substitute() {
        let endpoint = PathPattern::parse("/users/{id}/posts/{post}").unwrap();
        assert!(endpoint.matches("/users/7/posts/9"));
        assert!(!endpoint.matches("/users/7/posts"));
        assert!(!endpoint.matches("/users//posts/9"));
        assert!(!endpoint.matches("/users/7/posts/9/x"));
        let url = UrlPattern::parse("/v1/{post}/by/{id}.json", &endpoint).unwrap();
        let mut out = String::new();
        url.render_into("/users/7/posts/9", Some("a=1"), &mut out);
        assert_eq!(out, "/v1/9/by/7.json?a=1");
        assert_eq!(endpoint.shape(), "/users/{}/posts/{}");
        // A pattern with its own query: the request's follows with `&`.
        let url = UrlPattern::parse("/s/{id}?format=json", &endpoint).unwrap();
        let mut out = String::new();
        url.render_into("/users/7/posts/9", Some("q=1"), &mut out);
        assert_eq!(out, "/s/7?format=json&q=1");
    }

    #[test]
    fn a_parameter_in_the_query_cannot_add_query_parameters() {
        let endpoint = PathPattern::parse("/users/{id}").unwrap();
        let url = UrlPattern::parse("/api/{id}?id={id}&role=guest", &endpoint).unwrap();
        let mut out = String::new();
        url.render_into("/users/7&role=admin;x+y", Some("q=1"), &mut out);
        assert_eq!(
            out,
            "/api/7&role=admin;x+y?id=7%26role%3Dadmin%3Bx%2By&role=guest&q=1"
        );
        // An escape stays one; a stray `%` and raw UTF-8 are escaped.
        let mut out = String::new();
        url.render_into("/users/50%25%-caf\u{e9}", None, &mut out);
        assert_eq!(
            out,
            "/api/50%25%-caf\u{e9}?id=50%25%25-caf%C3%A9&role=guest"
        );
    }

    #[test]
    fn paths_no_request_can_have_are_refused() {
        // `"` and `\` too, which `http` lets through: browsers send `%22` and `/` for
        // them, so such an endpoint matched only clients that sent them raw. (`|` and `^`
        // browsers send raw, as some other clients do: kept.)
        for path in [
            "/a?x=1",
            "/a b",
            "/caf\u{e9}",
            "/a#b",
            "/{id}/x?q",
            "/b\"c",
            "/d\\e",
        ] {
            assert_eq!(
                PathPattern::parse(path),
                Err(PatternError::InvalidPath(path.to_owned())),
                "{path}"
            );
        }
        for path in [
            "/caf%C3%A9/{id}/a:b@c",
            "/f|g",
            "/a^b",
            "/a%zz",
            "/[x]!$'(*,;=~",
        ] {
            assert!(PathPattern::parse(path).is_ok(), "{path}");
        }
        let endpoint = PathPattern::parse("/users/{id}").unwrap();
        assert_eq!(
            UrlPattern::parse("/echo#f", &endpoint),
            Err(PatternError::Fragment("/echo#f".to_owned()))
        );
    }

    #[test]
    fn a_parameter_cannot_lead_the_backend_path_elsewhere() {
        let endpoint = PathPattern::parse("/users/{id}").unwrap();
        assert!(endpoint.matches("/users/7"));
        assert!(endpoint.matches("/users/a.b"));
        assert!(endpoint.matches("/users/a;b"));
        assert!(endpoint.matches("/users/..."));
        for escape in [
            "/users/..",
            "/users/.",
            "/users/%2e%2E",
            "/users/.%2e",
            "/users/a%2Fb",
            "/users/a%5cb",
            "/users/..\\admin",
            "/users/..;",
            "/users/..;x=1",
            "/users/..%3b",
            "/users/.%3Bx=1",
            "/users/a%00.txt",
            "/users/x;%2f..%2f..%2fadmin",
            "/users/x;%5c..%5cadmin",
        ] {
            assert!(!endpoint.matches(escape), "{escape}");
        }
    }

    #[test]
    fn malformed_patterns_are_refused() {
        let endpoint = PathPattern::parse("/users/{id}").unwrap();
        assert_eq!(
            UrlPattern::parse("/u/{name}", &endpoint)
                .unwrap_err()
                .to_string(),
            "`{name}` is not a parameter of endpoint `/users/{id}`"
        );
        assert!(PathPattern::parse("users").is_err());
        assert!(PathPattern::parse("/u/{id").is_err());
        assert!(PathPattern::parse("/u/x{id}").is_err());
        assert!(PathPattern::parse("/u/{id}/{id}").is_err());
        for with_query in ["/users/{id}?x=1", "/users/{id}#x", "/users/{id} "] {
            assert!(
                matches!(
                    PathPattern::parse(with_query),
                    Err(PatternError::InvalidPath(_))
                ),
                "{with_query}"
            );
        }
        assert_eq!(
            UrlPattern::parse("/x y/{id}", &endpoint)
                .unwrap_err()
                .to_string(),
            "`/x y/{id}` is not a valid URL path: spaces, non-ASCII and characters such as \
             `\"`, `|`, `^`, `\\` must be percent-encoded (`%20`, `/caf%C3%A9`), and a `%` is \
             followed by two hex digits"
        );
        // `http` takes these, and they went on the wire as written.
        for bad in [
            "/caf\u{e9}/{id}",
            "/a\"b",
            "/a|b",
            "/a^b",
            "/a\\b",
            "/a%zz",
            "/a%2",
        ] {
            assert!(
                matches!(
                    UrlPattern::parse(bad, &endpoint),
                    Err(PatternError::InvalidUrl(_))
                ),
                "{bad}"
            );
        }
        for good in [
            "/caf%C3%A9/{id}",
            "/a:b@c/{id}",
            "/a?x=1;y=(2)&z=*~'!$,",
            "/items?filter[id]={id}&page[size]=10",
        ] {
            assert!(UrlPattern::parse(good, &endpoint).is_ok(), "{good}");
        }
    }

    #[test]
    fn an_endpoint_whose_path_begins_with_two_slashes_substitutes_its_own_segments() {
        // The empty first segment counted in matching but not in substitution: each
        // parameter took the next segment's value.
        let endpoint = PathPattern::parse("//{a}/{b}").unwrap();
        assert!(endpoint.matches("//secret/7"));
        let url = UrlPattern::parse("/x/{a}/{b}?q={b}", &endpoint).unwrap();
        let mut out = String::new();
        url.render_into("//secret/7", None, &mut out);
        assert_eq!(out, "/x/secret/7?q=7");
    }

    #[test]
    fn a_pattern_query_ending_in_its_separator_takes_the_request_query_as_it_is() {
        let endpoint = PathPattern::parse("/api/{id}").unwrap();
        for (pattern, want) in [
            ("/api/{id}?", "/api/7?y=2"),
            ("/api/{id}?a=1&", "/api/7?a=1&y=2"),
            ("/api/{id}?a=1", "/api/7?a=1&y=2"),
        ] {
            let url = UrlPattern::parse(pattern, &endpoint).unwrap();
            let mut out = String::new();
            url.render_into("/api/7", Some("y=2"), &mut out);
            assert_eq!(out, want, "{pattern}");
        }
    }

    #[test]
    fn static_routes_win_over_params() {
        let mut table = RouteTable::default();
        table.insert(Method::GET, PathPattern::parse("/u/{id}").unwrap(), 0);
        table.insert(Method::GET, PathPattern::parse("/u/me").unwrap(), 1);
        table.insert(Method::GET, PathPattern::parse("/").unwrap(), 2);
        assert_eq!(table.lookup(&Method::GET, "/u/me"), Some(1));
        assert_eq!(table.lookup(&Method::GET, "/u/5"), Some(0));
        assert_eq!(table.lookup(&Method::GET, "/"), Some(2));
        assert_eq!(table.lookup(&Method::POST, "/u/5"), None);
    }
}
