//! The gateway config: KrakenD's shape and names, read strictly.
//!
//! KrakenD ignores what it does not understand; a typo there silently disables a plugin.
//! Here every unknown key, wrong type, unknown namespace, duplicate endpoint or bad URL
//! is an error that names its JSON path (`endpoints[2].backend[0].host[0]`) and says
//! what was expected. The file is parsed into a `serde_json::Value` first and walked by
//! hand, because serde's derive errors cannot name the path.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use gwplugin::abi::Kind;
use gwplugin_host::{FailurePolicy, LoaderConfig};
use http::Method;
use http::uri::{Authority, Scheme};
use serde_json::{Map, Value};

use crate::route::{PathPattern, UrlPattern};

/// The config format version this gateway reads (KrakenD's current one).
pub const VERSION: u64 = 3;
/// The timeout when none is configured (KrakenD's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one write of a response may wait for the client to read: nginx's
/// `send_timeout` default.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest timeout a config may set.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// The port when none is configured (KrakenD's default).
pub const DEFAULT_PORT: u16 = 8080;

/// A validated gateway config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    pub listen: SocketAddr,
    /// Serve HTTPS with these files; `None` for plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Which plugin files to load; `None` when the config has no `plugin` block.
    pub plugin: Option<LoaderConfig>,
    /// Service-level `plugin/http-server` names, in list order (the last is outermost).
    pub server_plugins: Vec<PluginUse>,
    pub endpoints: Vec<Endpoint>,
    /// How long one write of a response may wait for the client to read (`send_timeout`).
    pub send_timeout: Duration,
}

/// The top-level `tls` block (KrakenD's keys): the gateway serves HTTPS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// JSON path of the block (`tls`), for errors about its files.
    pub at: String,
    /// PEM certificate chain, the gateway's own certificate first.
    pub public_key: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
}

/// The TLS versions gwhost speaks, as KrakenD names them in `min_version`/`max_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// One use of a plugin by name, with its config and where the name was written.
#[derive(Debug, Clone)]
pub struct PluginUse {
    pub name: String,
    /// The object under the plugin's name in the namespace block (`{}` when absent).
    pub config: Value,
    /// The JSON path of the name, for errors about it (`...name[1]`).
    pub at: String,
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    /// JSON path of this endpoint (`endpoints[0]`).
    pub at: String,
    pub method: Method,
    pub pattern: PathPattern,
    /// Endpoint-level `plugin/req-resp-modifier`, in list order.
    pub modifiers: Vec<PluginUse>,
    pub backend: Backend,
}

#[derive(Debug, Clone)]
pub struct Backend {
    pub at: String,
    /// `scheme://authority` of each host, used in turn.
    pub hosts: Vec<(Scheme, Authority)>,
    pub url_pattern: UrlPattern,
    /// The method to call the backend with; `None` keeps the request's.
    pub method: Option<Method>,
    pub timeout: Duration,
    /// Backend-level `plugin/req-resp-modifier`, in list order.
    pub modifiers: Vec<PluginUse>,
    /// Backend-level `plugin/http-client`: replaces the call to this backend.
    pub client: Option<PluginUse>,
}

/// Why a config can't be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config `{}`: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("config `{}` is not valid JSON: {message}", file.display())]
    Syntax { file: PathBuf, message: String },
    /// Valid JSON, deeper than serde_json reads.
    #[error("config `{}` nests objects and lists more than 128 deep, deeper than gwhost reads (line {line}, column {column})", file.display())]
    TooDeep {
        file: PathBuf,
        line: usize,
        column: usize,
    },
    #[error("{at}: {message}")]
    Invalid {
        file: PathBuf,
        at: String,
        message: String,
        help: Option<String>,
    },
}

impl ConfigError {
    /// What the user can do about it.
    pub fn help(&self) -> Option<String> {
        match self {
            ConfigError::Read { .. } => {
                Some("pass the path of a gateway config with `-c FILE`".to_owned())
            }
            ConfigError::Syntax { .. } => {
                Some("fix the JSON syntax at the line and column shown".to_owned())
            }
            ConfigError::TooDeep { .. } => {
                Some("flatten what is nested there (a plugin's config, most likely)".to_owned())
            }
            ConfigError::Invalid { help, .. } => help.clone(),
        }
    }

    /// The config file it is about.
    pub fn file(&self) -> &Path {
        match self {
            ConfigError::Read { file, .. }
            | ConfigError::Syntax { file, .. }
            | ConfigError::TooDeep { file, .. }
            | ConfigError::Invalid { file, .. } => file,
        }
    }
}

/// Reads and validates the config at `file`.
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_owned(),
        source,
    })?;
    parse(&text, file)
}

/// Validates config `text`, read from `file` (relative plugin folders are resolved
/// against the file's directory).
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        if e.to_string().starts_with("recursion limit exceeded") {
            return ConfigError::TooDeep {
                file: file.to_owned(),
                line: e.line(),
                column: e.column(),
            };
        }
        ConfigError::Syntax {
            file: file.to_owned(),
            // "expected value at line 1 column 1" says nothing of the bytes one cannot see.
            message: if text.starts_with('\u{feff}') {
                "it starts with a byte-order mark (BOM), which JSON does not allow: save it as \
             UTF-8 without one"
                    .to_owned()
            } else {
                e.to_string()
            },
        }
    })?;
    if let Some((at, key)) = first_duplicate_key(text) {
        return Err(ConfigError::Invalid {
            file: file.to_owned(),
            at: join_key(&at, &key),
            message: format!("`{key}` appears twice in one object; JSON keeps only the last"),
            help: Some(format!(
                "keep one `{key}`: merge the two, or delete the one you don't want"
            )),
        });
    }
    Parser { file }.config(&value)
}

/// The first key written twice in one object, as the object's JSON path and the key:
/// `serde_json` (like KrakenD) keeps the last one silently, so a second `endpoints` list
/// would drop the first without a word.
fn first_duplicate_key(text: &str) -> Option<(String, String)> {
    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::cell::RefCell;

    /// Walks one JSON value at `at`, recording the first duplicate in `found`.
    struct Walk<'a> {
        at: String,
        found: &'a RefCell<Option<(String, String)>>,
    }
    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut index = 0;
            while seq
                .next_element_seed(Walk {
                    at: join_index(&self.at, index),
                    found: self.found,
                })?
                .is_some()
            {
                index += 1;
            }
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let at = join_key(&self.at, &key);
                if !seen.insert(key.clone()) {
                    *self.found.borrow_mut() = Some((self.at, key));
                    return Err(de::Error::custom("duplicate key"));
                }
                map.next_value_seed(Walk {
                    at,
                    found: self.found,
                })?;
            }
            Ok(())
        }
    }

    let found = RefCell::new(None);
    let walk = Walk {
        at: String::new(),
        found: &found,
    };
    let _ = walk.deserialize(&mut serde_json::Deserializer::from_str(text));
    found.into_inner()
}

const PATTERN_HELP: &str = "a path starts with `/`; a parameter is a whole endpoint segment like \
                            `/users/{id}`, and `url_pattern` may use the endpoint's parameters";

/// The help for a pattern error: what its message is about.
fn pattern_help(e: &crate::route::PatternError) -> String {
    use crate::route::PatternError;
    match e {
        PatternError::InvalidUrl(_) => {
            "percent-encode what a URL cannot hold: `%20` for a space, `%22` for `\"`, \
             `%7C` for `|`, `%25` for a `%` itself, and UTF-8 bytes for other characters \
             (`%C3%A9` for `é`)"
                .to_owned()
        }
        PatternError::InvalidPath(_) => {
            "write it as browsers send it: `%20` for a space, `%22` for `\"`, UTF-8 bytes \
             for other characters (`%C3%A9` for `é`); a `\\` they send as `/`"
                .to_owned()
        }
        PatternError::MalformedUrlParam(_) => {
            "`url_pattern` may use the endpoint's parameters, anywhere in the URL: \
             `/users/{id}.json`, `/search?q={term}`"
                .to_owned()
        }
        _ => PATTERN_HELP.to_owned(),
    }
}

/// The JSON type names used in messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn join_key(at: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'$');
    // Quoted as a JSON string, so that a `"` or `.` in it cannot read as path syntax.
    let quoted = || serde_json::Value::from(key).to_string();
    match (at.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (true, false) => quoted(),
        (false, true) => format!("{at}.{key}"),
        (false, false) => format!("{at}.{}", quoted()),
    }
}

fn join_index(at: &str, index: usize) -> String {
    format!("{at}[{index}]")
}

fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

struct Parser<'f> {
    file: &'f Path,
}

/// An object being read, with the keys it allows.
struct Obj<'v> {
    map: &'v Map<String, Value>,
    at: String,
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

impl Parser<'_> {
    fn error(&self, at: &str, message: impl Into<String>, help: Option<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            at: if at.is_empty() {
                "<root>".to_owned()
            } else {
                at.to_owned()
            },
            message: message.into(),
            help,
        }
    }

    fn expected(&self, at: &str, what: &str, found: &Value) -> ConfigError {
        self.error(
            at,
            format!("expected {what}, found {}", type_name(found)),
            Some(format!(
                "write {what} here (`gateway/config.schema.json` describes every key)"
            )),
        )
    }

    fn object<'v>(&self, v: &'v Value, at: &str, allowed: &[&str]) -> Result<Obj<'v>> {
        let map = v
            .as_object()
            .ok_or_else(|| self.expected(at, "an object", v))?;
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(self.error(
                    &join_key(at, key),
                    format!("unknown key `{key}`"),
                    Some(format!("the keys allowed here are {}", list(allowed))),
                ));
            }
        }
        Ok(Obj {
            map,
            at: at.to_owned(),
        })
    }

    fn string<'v>(&self, v: &'v Value, at: &str) -> Result<&'v str> {
        v.as_str().ok_or_else(|| self.expected(at, "a string", v))
    }

    fn required<'v>(&self, obj: &Obj<'v>, key: &str) -> Result<(&'v Value, String)> {
        match obj.map.get(key) {
            Some(v) => Ok((v, join_key(&obj.at, key))),
            None => Err(self.error(
                if obj.at.is_empty() { "<root>" } else { &obj.at },
                format!("missing key `{key}`"),
                Some(format!("add `{key}` to this object")),
            )),
        }
    }

    fn optional<'v>(&self, obj: &Obj<'v>, key: &str) -> Option<(&'v Value, String)> {
        obj.map.get(key).map(|v| (v, join_key(&obj.at, key)))
    }

    /// `obj`'s `timeout`, at most [`MAX_TIMEOUT`] (beyond, a deadline would not fit a
    /// clock reading, and no call waits that long on purpose); `enclosing` when it has
    /// none, or 0, as in KrakenD.
    fn timeout(&self, obj: &Obj<'_>, enclosing: Duration) -> Result<Duration> {
        self.duration(obj, "timeout", enclosing)
    }

    /// `obj`'s duration `key`, as [`Self::timeout`] reads `timeout`.
    fn duration(&self, obj: &Obj<'_>, key: &str, enclosing: Duration) -> Result<Duration> {
        let Some((v, at)) = self.optional(obj, key) else {
            return Ok(enclosing);
        };
        let at = at.as_str();
        // A bare number has no unit to read it in (KrakenD's are strings too).
        let text = v.as_str().ok_or_else(|| {
            self.error(
                at,
                format!(
                    "expected a duration like `2s` or `500ms`, found {}",
                    type_name(v)
                ),
                Some(match v.as_u64() {
                    Some(n) => {
                        format!("write it as a string with its unit: `\"{n}ms\"` or `\"{n}s\"`")
                    }
                    None => "write it as a string with its unit, as `\"2s\"`".to_owned(),
                }),
            )
        })?;
        let duration = parse_duration(text).ok_or_else(|| {
            self.error(
                at,
                format!("expected a duration like `2s` or `500ms`, found `{text}`"),
                Some(
                    "units are `ns`, `us`, `ms`, `s`, `m` and `h`, and several add up: `1m30s`"
                        .to_owned(),
                ),
            )
        })?;
        if duration > MAX_TIMEOUT {
            return Err(self.error(
                at,
                format!("expected a timeout of at most `24h`, found `{text}`"),
                Some("set the longest wait you mean, up to `24h`".to_owned()),
            ));
        }
        Ok(if duration.is_zero() {
            enclosing
        } else {
            duration
        })
    }

    fn config(&self, root: &Value) -> Result<Config> {
        let obj = self.object(
            root,
            "",
            &[
                "$schema",
                "version",
                "name",
                "listen_ip",
                "port",
                "tls",
                "timeout",
                "send_timeout",
                "plugin",
                "extra_config",
                "endpoints",
            ],
        )?;
        let (version, at) = self.required(&obj, "version")?;
        if whole_number(version) != Some(VERSION) {
            return Err(self.error(
                &at,
                format!("expected {VERSION}, found {version}"),
                Some(format!(
                    "gwhost reads KrakenD's config format version {VERSION}"
                )),
            ));
        }
        for key in ["$schema", "name"] {
            if let Some((value, at)) = self.optional(&obj, key) {
                self.string(value, &at)?;
            }
        }
        let ip = match self.optional(&obj, "listen_ip") {
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Some((v, at)) => {
                let text = self.string(v, &at)?;
                text.parse().map_err(|_| {
                    self.error(
                        &at,
                        format!("expected an IP address, found `{text}`"),
                        Some("use e.g. `0.0.0.0` or `127.0.0.1`".to_owned()),
                    )
                })?
            }
        };
        let port = match self.optional(&obj, "port") {
            None => DEFAULT_PORT,
            Some((v, at)) => whole_number(v)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| match v {
                    Value::Number(n) => self.error(
                        &at,
                        format!("expected a port number from 0 to 65535, found {n}"),
                        Some("use 0 to let the system pick a free port".to_owned()),
                    ),
                    other => self.expected(&at, "a port number", other),
                })?,
        };
        let tls = match self.optional(&obj, "tls") {
            None => None,
            Some((v, at)) => self.tls_block(v, &at)?,
        };
        let timeout = self.timeout(&obj, DEFAULT_TIMEOUT)?;
        let send_timeout = self.duration(&obj, "send_timeout", DEFAULT_SEND_TIMEOUT)?;
        let plugin = match self.optional(&obj, "plugin") {
            None => None,
            Some((v, at)) => Some(self.plugin_block(v, &at)?),
        };
        let mut server_plugins = Vec::new();
        if let Some((v, at)) = self.optional(&obj, "extra_config") {
            let extra = self.object(v, &at, &[Kind::HttpServer.namespace()])?;
            if let Some((block, at)) = self.optional(&extra, Kind::HttpServer.namespace()) {
                server_plugins = self.plugin_names(block, &at, NameShape::StringOrList)?;
            }
        }
        let mut endpoints = Vec::new();
        if let Some((v, at)) = self.optional(&obj, "endpoints") {
            let items = v
                .as_array()
                .ok_or_else(|| self.expected(&at, "a list", v))?;
            for (i, item) in items.iter().enumerate() {
                endpoints.push(self.endpoint(item, &join_index(&at, i), timeout)?);
            }
        }
        self.check_duplicates(&endpoints)?;
        Ok(Config {
            file: self.file.to_owned(),
            listen: SocketAddr::new(ip, port),
            tls,
            plugin,
            server_plugins,
            endpoints,
            send_timeout,
        })
    }

    /// A path in the config, relative to the config file's folder: a config and the files
    /// it names can move together.
    fn path(&self, v: &Value, at: &str) -> Result<PathBuf> {
        let text = self.string(v, at)?;
        if text.is_empty() {
            // Not the config's own folder, as joining it would make it: an unfinished edit.
            return Err(self.error(
                at,
                "expected a path, found an empty string",
                Some("write `.` for the config file's own folder".to_owned()),
            ));
        }
        let path = Path::new(text);
        Ok(match self.file.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        })
    }

    fn tls_block(&self, v: &Value, at: &str) -> Result<Option<TlsFiles>> {
        let obj = self.object(
            v,
            at,
            &[
                "public_key",
                "private_key",
                "disabled",
                "min_version",
                "max_version",
            ],
        )?;
        let disabled = match self.optional(&obj, "disabled") {
            None => false,
            Some((disabled, at)) => disabled
                .as_bool()
                .ok_or_else(|| self.expected(&at, "true or false", disabled))?,
        };
        let version = |key: &str, default: TlsVersion| -> Result<(TlsVersion, String)> {
            let Some((v, at)) = self.optional(&obj, key) else {
                return Ok((default, join_key(at, key)));
            };
            match self.string(v, &at)? {
                "TLS12" => Ok((TlsVersion::Tls12, at)),
                "TLS13" => Ok((TlsVersion::Tls13, at)),
                other => Err(self.error(
                    &at,
                    format!("expected `TLS12` or `TLS13`, found `{other}`"),
                    Some("gwhost speaks TLS 1.2 and 1.3 only".to_owned()),
                )),
            }
        };
        // TLS 1.3 only unless asked, as KrakenD.
        let min_given = self.optional(&obj, "min_version").is_some();
        let (min_version, _) = version("min_version", TlsVersion::Tls13)?;
        let (max_version, max_at) = version("max_version", TlsVersion::Tls13)?;
        if max_version < min_version {
            return Err(if min_given {
                self.error(
                    &max_at,
                    "`max_version` is below `min_version`",
                    Some("allow at least one version".to_owned()),
                )
            } else {
                self.error(
                    &max_at,
                    "`max_version` `TLS12` is below `min_version`, `TLS13` when not given",
                    Some("add `\"min_version\": \"TLS12\"` to serve TLS 1.2".to_owned()),
                )
            });
        }
        // Checked all the same: what `disabled` turns off is to be turned on again as it is.
        if disabled {
            for key in ["public_key", "private_key"] {
                if let Some((v, at)) = self.optional(&obj, key) {
                    self.path(v, &at)?;
                }
            }
            return Ok(None);
        }
        let (public_key, public_at) = self.required(&obj, "public_key")?;
        let (private_key, private_at) = self.required(&obj, "private_key")?;
        Ok(Some(TlsFiles {
            at: at.to_owned(),
            public_key: self.path(public_key, &public_at)?,
            private_key: self.path(private_key, &private_at)?,
            min_version,
            max_version,
        }))
    }

    fn plugin_block(&self, v: &Value, at: &str) -> Result<LoaderConfig> {
        let obj = self.object(v, at, &["folder", "pattern", "sha256", "on_failure"])?;
        let (folder, folder_at) = self.required(&obj, "folder")?;
        let folder = self.path(folder, &folder_at)?;
        let (pattern, pattern_at) = self.required(&obj, "pattern")?;
        let pattern = self.string(pattern, &pattern_at)?.to_owned();
        let mut sha256 = BTreeMap::new();
        if let Some((v, at)) = self.optional(&obj, "sha256") {
            let map = v
                .as_object()
                .ok_or_else(|| self.expected(&at, "an object of file name to sha256", v))?;
            for (file, hash) in map {
                let at = join_key(&at, file);
                let hash = self.string(hash, &at)?;
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(self.error(
                        &at,
                        format!("expected a sha256 of 64 hex digits, found `{hash}`"),
                        Some(format!("compute it with `sha256sum {file}`")),
                    ));
                }
                sha256.insert(file.clone(), hash.to_owned());
            }
        }
        let on_failure = match self.optional(&obj, "on_failure") {
            None => FailurePolicy::default(),
            Some((v, at)) => {
                match self.string(v, &at)? {
                    "fail" => FailurePolicy::Fail,
                    "skip" => FailurePolicy::Skip,
                    other => {
                        return Err(self.error(
                        &at,
                        format!("expected `fail` or `skip`, found `{other}`"),
                        Some("`fail` stops start-up on a bad plugin file; `skip` logs and goes on".to_owned()),
                    ));
                    }
                }
            }
        };
        Ok(LoaderConfig {
            folder,
            pattern,
            sha256,
            on_failure,
        })
    }

    /// A namespace block: `name` plus per-plugin config under each plugin's name.
    fn plugin_names(&self, v: &Value, at: &str, shape: NameShape) -> Result<Vec<PluginUse>> {
        let obj = v
            .as_object()
            .ok_or_else(|| self.expected(at, "an object", v))?;
        let name_at = join_key(at, "name");
        let name = obj.get("name").ok_or_else(|| {
            self.error(
                at,
                "missing key `name`",
                Some(format!(
                    "name the plugin(s) to use: `\"name\": {}`",
                    shape.example()
                )),
            )
        })?;
        let names: Vec<(&str, String)> = match (name, shape) {
            (Value::String(s), NameShape::String | NameShape::StringOrList) => {
                vec![(s.as_str(), name_at.clone())]
            }
            (Value::Array(items), NameShape::List | NameShape::StringOrList)
                if items.is_empty() =>
            {
                return Err(self.error(
                    &name_at,
                    "expected at least one plugin name, found an empty list",
                    Some(format!(
                        "name the plugin(s) to use, `\"name\": {}`, or remove this namespace",
                        shape.example()
                    )),
                ));
            }
            (Value::Array(items), NameShape::List | NameShape::StringOrList) => {
                let mut names = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let item_at = join_index(&name_at, i);
                    names.push((self.string(item, &item_at)?, item_at));
                }
                names
            }
            (other, shape) => {
                return Err(self.error(
                    &name_at,
                    format!("expected {}, found {}", shape.expected(), type_name(other)),
                    Some(match shape {
                        NameShape::String => format!(
                            "a backend has one http-client plugin: write `\"name\": {}`",
                            shape.example()
                        ),
                        _ => format!("write `\"name\": {}`", shape.example()),
                    }),
                ));
            }
        };
        for (i, (name, name_at)) in names.iter().enumerate() {
            if name.is_empty() {
                return Err(self.error(
                    name_at,
                    "expected a plugin name, found an empty string",
                    Some(
                        "write the name the plugin registers (`gwhost test-plugin FILE` lists \
                         a file's)"
                            .to_owned(),
                    ),
                ));
            }
            if names[..i].iter().any(|(n, _)| n == name) {
                return Err(self.error(
                    name_at,
                    format!("plugin `{name}` is listed twice"),
                    Some("list each plugin once".to_owned()),
                ));
            }
        }
        for (key, value) in obj {
            if key == "name" {
                continue;
            }
            let key_at = join_key(at, key);
            if !names.iter().any(|(n, _)| n == key) {
                return Err(self.error(
                    &key_at,
                    format!("`{key}` is not a plugin named in `name`"),
                    Some(
                        "per-plugin config goes under the plugin's name: add it to `name` or \
                         remove this key"
                            .to_owned(),
                    ),
                ));
            }
            if !value.is_object() {
                return Err(self.expected(&key_at, "an object (the plugin's config)", value));
            }
        }
        Ok(names
            .into_iter()
            .map(|(name, at)| PluginUse {
                name: name.to_owned(),
                config: obj
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Map::new())),
                at,
            })
            .collect())
    }

    /// KrakenD's `output_encoding` (endpoint) and `encoding` (backend): gwhost proxies
    /// as KrakenD's `no-op` does, so a KrakenD config that says so reads as it is, and
    /// one that asks for another encoding is refused rather than proxied differently.
    fn no_op_encoding(&self, obj: &Obj<'_>, key: &str) -> Result<()> {
        let Some((v, at)) = self.optional(obj, key) else {
            return Ok(());
        };
        match self.string(v, &at)? {
            "no-op" => Ok(()),
            other => Err(self.error(
                &at,
                format!("expected `no-op`, found `{other}`"),
                Some(
                    "gwhost proxies requests and responses as they are (KrakenD's `no-op`); \
                     it does not decode or merge bodies: write `\"no-op\"`, or leave the key out"
                        .to_owned(),
                ),
            )),
        }
    }

    fn method(&self, v: &Value, at: &str) -> Result<Method> {
        const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
        let text = self.string(v, at)?;
        if !METHODS.contains(&text) {
            return Err(self.error(
                at,
                format!("expected an HTTP method, found `{text}`"),
                Some(format!("use one of {}", list(&METHODS))),
            ));
        }
        Ok(text.parse().expect("a standard method"))
    }

    fn endpoint(&self, v: &Value, at: &str, default_timeout: Duration) -> Result<Endpoint> {
        let obj = self.object(
            v,
            at,
            &[
                "endpoint",
                "method",
                "timeout",
                "output_encoding",
                "extra_config",
                "backend",
            ],
        )?;
        self.no_op_encoding(&obj, "output_encoding")?;
        let (path, path_at) = self.required(&obj, "endpoint")?;
        let path = self.string(path, &path_at)?;
        let pattern = PathPattern::parse(path)
            .map_err(|e| self.error(&path_at, e.to_string(), Some(pattern_help(&e))))?;
        let method = match self.optional(&obj, "method") {
            None => Method::GET,
            Some((v, at)) => self.method(v, &at)?,
        };
        let timeout = self.timeout(&obj, default_timeout)?;
        let mut modifiers = Vec::new();
        if let Some((v, at)) = self.optional(&obj, "extra_config") {
            let extra = self.object(v, &at, &[Kind::Modifier.namespace()])?;
            if let Some((block, at)) = self.optional(&extra, Kind::Modifier.namespace()) {
                modifiers = self.plugin_names(block, &at, NameShape::List)?;
            }
        }
        let (backends, backends_at) = self.required(&obj, "backend")?;
        let list = backends
            .as_array()
            .ok_or_else(|| self.expected(&backends_at, "a list", backends))?;
        if list.len() != 1 {
            return Err(self.error(
                &backends_at,
                format!("expected exactly one backend, found {}", list.len()),
                Some(
                    "gwhost proxies an endpoint to one backend (KrakenD's `no-op` encoding); \
                     merging several backends' responses is not supported"
                        .to_owned(),
                ),
            ));
        }
        let backend = self.backend(&list[0], &join_index(&backends_at, 0), &pattern, timeout)?;
        Ok(Endpoint {
            at: at.to_owned(),
            method,
            pattern,
            modifiers,
            backend,
        })
    }

    fn backend(
        &self,
        v: &Value,
        at: &str,
        endpoint: &PathPattern,
        default_timeout: Duration,
    ) -> Result<Backend> {
        let obj = self.object(
            v,
            at,
            &[
                "host",
                "url_pattern",
                "method",
                "timeout",
                "encoding",
                "extra_config",
            ],
        )?;
        self.no_op_encoding(&obj, "encoding")?;
        let (hosts_value, hosts_at) = self.required(&obj, "host")?;
        let items = hosts_value
            .as_array()
            .ok_or_else(|| self.expected(&hosts_at, "a list of URLs", hosts_value))?;
        if items.is_empty() {
            return Err(self.error(
                &hosts_at,
                "expected at least one host, found none",
                Some("list the backend's URLs, e.g. `[\"http://10.0.0.1:8000\"]`".to_owned()),
            ));
        }
        let mut hosts = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_at = join_index(&hosts_at, i);
            let text = self.string(item, &item_at)?;
            hosts.push(parse_host(text).map_err(|why| {
                self.error(
                    &item_at,
                    format!("expected a URL like `http://10.0.0.1:8000`, found `{text}`: {why}"),
                    Some(
                        "write the scheme and the authority only; the path goes in `url_pattern`"
                            .to_owned(),
                    ),
                )
            })?);
        }
        let (url, url_at) = self.required(&obj, "url_pattern")?;
        let url_pattern = UrlPattern::parse(self.string(url, &url_at)?, endpoint)
            .map_err(|e| self.error(&url_at, e.to_string(), Some(pattern_help(&e))))?;
        let method = match self.optional(&obj, "method") {
            None => None,
            Some((v, at)) => Some(self.method(v, &at)?),
        };
        let timeout = self.timeout(&obj, default_timeout)?;
        let mut modifiers = Vec::new();
        let mut client = None;
        if let Some((v, at)) = self.optional(&obj, "extra_config") {
            let extra = self.object(
                v,
                &at,
                &[Kind::Modifier.namespace(), Kind::HttpClient.namespace()],
            )?;
            if let Some((block, at)) = self.optional(&extra, Kind::Modifier.namespace()) {
                modifiers = self.plugin_names(block, &at, NameShape::List)?;
            }
            if let Some((block, at)) = self.optional(&extra, Kind::HttpClient.namespace()) {
                client = self
                    .plugin_names(block, &at, NameShape::String)?
                    .into_iter()
                    .next();
            }
        }
        Ok(Backend {
            at: at.to_owned(),
            hosts,
            url_pattern,
            method,
            timeout,
            modifiers,
            client,
        })
    }

    fn check_duplicates(&self, endpoints: &[Endpoint]) -> Result<()> {
        let mut seen: BTreeMap<(String, String), &str> = BTreeMap::new();
        for e in endpoints {
            let key = (e.method.to_string(), e.pattern.shape());
            if let Some(first) = seen.insert(key, &e.at) {
                return Err(self.error(
                    &e.at,
                    format!(
                        "duplicate endpoint `{} {}`: `{first}` already routes it",
                        e.method,
                        e.pattern.as_str()
                    ),
                    Some("remove one of them, or change its method or path".to_owned()),
                ));
            }
        }
        Ok(())
    }
}

/// How a namespace block's `name` may be written.
#[derive(Debug, Clone, Copy)]
enum NameShape {
    String,
    List,
    StringOrList,
}

impl NameShape {
    fn expected(self) -> &'static str {
        match self {
            NameShape::String => "a string",
            NameShape::List => "a list of strings",
            NameShape::StringOrList => "a string or a list of strings",
        }
    }

    fn example(self) -> &'static str {
        match self {
            NameShape::String => "\"my-plugin\"",
            NameShape::List | NameShape::StringOrList => "[\"my-plugin\"]",
        }
    }
}

fn parse_host(text: &str) -> std::result::Result<(Scheme, Authority), &'static str> {
    // `http` drops a fragment without a word.
    if text.contains('#') {
        return Err("it has a fragment (`#…`)");
    }
    let uri: http::Uri = text.parse().map_err(|_| "not a URL")?;
    let scheme = uri.scheme().ok_or("no scheme")?;
    if *scheme != Scheme::HTTP && *scheme != Scheme::HTTPS {
        return Err("only `http` and `https` are supported");
    }
    let authority = uri.authority().ok_or("no host")?;
    if authority.host().is_empty() {
        return Err("no host");
    }
    if uri.query().is_some() || text.ends_with('?') {
        return Err("it has a query (`?…`)");
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err("it has a path");
    }
    // `http` parses these, and the client would then connect to port 80, or send the
    // credentials in every `Host` header.
    if authority.as_str().contains('@') {
        return Err("it has credentials (`user:password@`)");
    }
    // The port as written (`http` reads `:99999` or `:` as no port at all).
    let port = match authority.as_str().rsplit_once(':') {
        Some((_, port)) if !port.contains(']') => Some(port),
        _ => None,
    };
    // Digits only: `parse` also takes `+19200`, which would go out in every `Host` header.
    if port.is_some_and(|p| {
        !p.bytes().all(|b| b.is_ascii_digit()) || !p.parse::<u16>().is_ok_and(|p| p > 0)
    }) {
        return Err("its port is not a number from 1 to 65535");
    }
    // `http` takes any text in brackets; the client would fail every request on it.
    if let Some(literal) = authority.host().strip_prefix('[')
        && literal
            .strip_suffix(']')
            .is_none_or(|ip| ip.parse::<std::net::Ipv6Addr>().is_err())
    {
        return Err("its IPv6 address in brackets is not one");
    }
    // What no resolver answers, so every request would fail with a 502: a dotted number
    // that is no IPv4 address (`999.1.1.1`, `1.2.3.4.5`), an empty label (`a..b`), one
    // that starts or ends with `-`, or characters no host name has.
    let host = authority.host();
    if !host.starts_with('[') {
        if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            ipv4_as_resolvers_read(host)?;
        } else if host
            .strip_suffix('.')
            .unwrap_or(host)
            .split('.')
            .any(|label| {
                label.is_empty()
                    || label.starts_with('-')
                    || label.ends_with('-')
                    || !label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        {
            return Err("its host is not a host name");
        }
    }
    Ok((scheme.clone(), authority.clone()))
}

/// Checks a host of digits and dots as `inet_aton` (which `getaddrinfo` uses) reads it:
/// one to four numbers, the last filling the bytes left (`127.1`, `0`, `2130706433` are
/// addresses). A leading zero reads as octal there (`010.0.0.1` is 8.0.0.1): refused.
fn ipv4_as_resolvers_read(host: &str) -> std::result::Result<(), &'static str> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() > 4 || parts.iter().any(|p| p.is_empty()) {
        return Err("its IPv4 address is not one");
    }
    if parts.iter().any(|p| p.len() > 1 && p.starts_with('0')) {
        return Err(
            "its IPv4 address has a number with a leading zero, which resolvers read as octal (`010` is 8)",
        );
    }
    let last_bits = 8 * (5 - parts.len() as u32);
    let fits = parts.iter().enumerate().all(|(i, p)| {
        let limit = if i + 1 == parts.len() {
            (1u64 << last_bits) - 1
        } else {
            255
        };
        p.parse::<u64>().is_ok_and(|n| n <= limit)
    });
    if fits {
        Ok(())
    } else {
        Err("its IPv4 address is not one")
    }
}

pub use cargo_gwplugin::duration::parse_duration;

/// A JSON number that is a whole one, as JSON Schema's `integer` has it: `8080.0` too.
fn whole_number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        let f = v.as_f64()?;
        // Below 2^53, where every whole f64 is exact.
        (f.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&f)).then_some(f as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("2"), None);
        // Past what a `Duration` holds: still a duration, which the config's limit refuses.
        assert_eq!(
            parse_duration("99999999999999999999999h"),
            Some(Duration::MAX)
        );
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("3 weeks"), None);
        // Go's composite form, as KrakenD configs may use it.
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("2h45m0.5s"),
            Some(Duration::from_millis((2 * 3600 + 45 * 60) * 1000 + 500))
        );
        assert_eq!(parse_duration("1s500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "1m30", "1x", "-1s", "1.s2", ".s", "1 s", "1s "] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_zero_timeout_takes_the_enclosing_one_as_in_krakend() {
        let config = parse(
            r#"{"version": 3, "timeout": "300ms", "endpoints": [
                {"endpoint": "/a", "timeout": "0s",
                 "backend": [{"host": ["http://b"], "url_pattern": "/", "timeout": "0ms"}]},
                {"endpoint": "/b", "timeout": "1s",
                 "backend": [{"host": ["http://b"], "url_pattern": "/", "timeout": "0s"}]}]}"#,
            Path::new("gateway.json"),
        )
        .unwrap();
        let timeouts: Vec<_> = config.endpoints.iter().map(|e| e.backend.timeout).collect();
        assert_eq!(
            timeouts,
            [Duration::from_millis(300), Duration::from_secs(1)]
        );
    }

    #[test]
    fn hosts() {
        assert!(parse_host("http://127.0.0.1:8000").is_ok());
        for bad in [
            "http://127.0.0.1:99999",
            "http://127.0.0.1:",
            "http://127.0.0.1:0",
            "http://127.0.0.1:x",
            "http://admin:s3cret@127.0.0.1:8000",
        ] {
            assert!(parse_host(bad).is_err(), "{bad}");
        }
        for good in [
            "http://backend",
            "http://api.example.com.",
            "https://my_svc-1.internal:8443",
            "http://10.0.0.1",
            // As `inet_aton` reads them, which resolvers answer.
            "http://0",
            "http://127.1",
            "http://2130706433",
            "http://1.16777215",
            "http://0x7f.1",
        ] {
            assert!(parse_host(good).is_ok(), "{good}");
        }
        assert!(parse_host("http://[::1]:8000").is_ok());
        assert_eq!(
            parse_host("ftp://x").unwrap_err(),
            "only `http` and `https` are supported"
        );
        assert_eq!(parse_host("127.0.0.1:80").unwrap_err(), "no scheme");
        assert_eq!(parse_host("http://x/api").unwrap_err(), "it has a path");
        assert_eq!(parse_host("not a url").unwrap_err(), "not a URL");
        assert_eq!(join_key("a", "b\"c.d"), "a.\"b\\\"c.d\"");
        assert_eq!(join_key("", "plugin/http-server"), "\"plugin/http-server\"");
        // Seen in a probe: each passed `check`, then failed or misbehaved per request.
        for (bad, why) in [
            ("http://127.0.0.1:19200?x=1", "it has a query (`?…`)"),
            ("http://h?", "it has a query (`?…`)"),
            (
                "http://127.0.0.1:+19200",
                "its port is not a number from 1 to 65535",
            ),
            (
                "http://[zz]:19200",
                "its IPv6 address in brackets is not one",
            ),
            ("http://999.1.1.1", "its IPv4 address is not one"),
            ("http://.", "its IPv4 address is not one"),
            ("http://1.16777216", "its IPv4 address is not one"),
            (
                "http://010.0.0.1",
                "its IPv4 address has a number with a leading zero, which resolvers read as octal (`010` is 8)",
            ),
            ("http://1.2.3.4.5:80", "its IPv4 address is not one"),
            ("http://-h", "its host is not a host name"),
            ("http://a..b", "its host is not a host name"),
            ("http://a!b", "its host is not a host name"),
        ] {
            assert_eq!(parse_host(bad).unwrap_err(), why, "{bad}");
        }
        assert!(parse_host("http://[fe80::1]").is_ok());
    }
}
