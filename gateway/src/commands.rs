//! The subcommands: `run`, `check`, `plugin-abi`, `test-plugin`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cargo_gwplugin::test_cmd::ConfigArg;
use gwplugin::abi::{ErasedHandler, Kind};
use gwplugin::{Body, BoxFuture, Request, Response};
use gwplugin_host::scope::PluginScope;
use gwplugin_host::{Loader, PluginRegistry, TokioHostServices};
use http::{Method, StatusCode, Uri};
use tokio::runtime::Runtime;

use crate::config::{self, Config};
use crate::error::GwError;
use crate::gateway::Gateway;
use crate::server;

fn runtime() -> Result<Runtime, GwError> {
    if let Some(value) = server::ignored_worker_count() {
        tracing::warn!(
            "TOKIO_WORKER_THREADS={value:?} is not a positive number: one worker thread per core"
        );
    }
    tokio::runtime::Builder::new_multi_thread()
        // Set here, so tokio does not read `TOKIO_WORKER_THREADS` itself: it panics on 0
        // or a value that is not a number, which `run --help` says mean the default.
        .worker_threads(server::worker_count(server::cores()))
        .enable_all()
        .build()
        .map_err(GwError::Runtime)
}

fn loader() -> Result<Loader, GwError> {
    Ok(Loader::new(
        crate::host_manifest_record(),
        TokioHostServices::current(),
    )?)
}

/// Loads the config's plugin folder (call inside the runtime: plugins get its services).
fn load_plugins(config: &Config) -> Result<(PluginRegistry, usize), GwError> {
    let mut loader = loader()?;
    let mut files = 0;
    if let Some(plugin) = &config.plugin {
        let report = loader
            .load_folder(plugin)
            .map_err(|source| GwError::ConfigPlugins {
                file: config.file.clone(),
                source: Box::new(source),
            })?;
        files = report.loaded.len();
        if files == 0 && report.skipped.is_empty() && report.unlisted.is_empty() {
            // Not an error (a config may name no plugin yet), but seldom meant.
            tracing::warn!(
                "no plugin loaded: no file in `{}` matches the pattern `{}`",
                plugin.folder.display(),
                plugin.pattern
            );
        }
    }
    Ok((loader.into_registry(), files))
}

fn build(config: &Config, registry: &PluginRegistry) -> Result<Gateway, GwError> {
    Gateway::build(config, registry).map_err(|mut source| {
        source.without_plugin_block = config.plugin.is_none();
        GwError::Build {
            file: config.file.clone(),
            source: Box::new(source),
        }
    })
}

/// `gwhost run -c FILE`: serves until SIGTERM or SIGINT, then drains (for at most
/// `drain_timeout`, or until a second signal) and returns.
pub fn run(config_file: &Path, drain_timeout: Option<std::time::Duration>) -> Result<(), GwError> {
    let config = config::load(config_file)?;
    server::raise_open_files_limit();
    let rt = runtime()?;
    rt.block_on(async {
        let (registry, files) = load_plugins(&config)?;
        // Like the plugins it runs, the gateway stays until the process exits.
        let gateway: &'static Gateway = Box::leak(Box::new(build(&config, &registry)?));
        let tls = match &config.tls {
            Some(files) => Some(&*Box::leak(Box::new(crate::tls::acceptor(
                &config.file,
                files,
            )?))),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| GwError::Listen {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().unwrap_or(config.listen);
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(
            endpoints = config.endpoints.len(),
            plugin_files = files,
            "gwhost listening on {scheme}://{addr}"
        );
        server::serve(
            listener,
            gateway,
            tls,
            server::stop_signals(),
            drain_timeout,
        )
        .await;
        tracing::info!("gwhost stopped");
        // Plugins are never unloaded; the registry simply goes with the process.
        drop(registry);
        Ok::<_, GwError>(())
    })?;
    // Tasks plugins spawned, idle pooled backend connections: don't wait for them.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    for (plugin, tasks) in gwplugin_host::dropped_unfinished_tasks() {
        let plugin = plugin.unwrap_or("<outside a plugin call>");
        tracing::warn!(
            plugin,
            tasks,
            "tasks the plugin spawned in requests were still running at the stop: dropped"
        );
    }
    Ok(())
}

/// What `check` verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub endpoints: usize,
    pub plugin_files: usize,
    pub plugin_instances: usize,
}

/// `gwhost check -c FILE`: validates the config, loads every plugin and creates every
/// instance it names, without serving.
pub fn check(config_file: &Path) -> Result<CheckReport, GwError> {
    let config = config::load(config_file)?;
    let rt = runtime()?;
    let report = rt.block_on(async {
        let (registry, plugin_files) = load_plugins(&config)?;
        build(&config, &registry)?;
        if let Some(files) = &config.tls {
            crate::tls::acceptor(&config.file, files)?;
        }
        let plugin_instances = config.server_plugins.len()
            + config
                .endpoints
                .iter()
                .map(|e| {
                    e.modifiers.len()
                        + e.backend.modifiers.len()
                        + usize::from(e.backend.client.is_some())
                })
                .sum::<usize>();
        Ok::<_, GwError>(CheckReport {
            endpoints: config.endpoints.len(),
            plugin_files,
            plugin_instances,
        })
    })?;
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(report)
}

/// `gwhost plugin-abi`: this host's ABI manifest as JSON.
pub fn plugin_abi() -> Result<String, GwError> {
    Ok(gwplugin_build::decode_record(crate::host_manifest_record())?.to_json_pretty())
}

/// What `test-plugin` should exercise.
#[derive(Debug, Clone)]
pub struct TestPlugin {
    /// The kinds to test; empty means every kind a file registers.
    pub kinds: Vec<Kind>,
    /// Create instances with these configs: a JSON object for every plugin, or
    /// `NAME=JSON` for plugin NAME (which then gets its own, not the common one).
    pub config: Vec<String>,
    /// Send this sample request (`[METHOD] URL`) through each instance.
    pub request: Option<String>,
    /// The sample request's headers.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// The sample request's body: the text, or `@FILE` for a file's contents (as curl's
    /// `-d`).
    pub data: Option<String>,
    /// How long the sample request may take in each plugin.
    pub timeout: std::time::Duration,
    pub files: Vec<PathBuf>,
}

/// `gwhost test-plugin`: one `[OK]`/`[KO]` line per file and plugin to `out`, then a
/// summary. Fails when any check failed.
pub fn test_plugin(args: &TestPlugin, out: &mut dyn Write) -> Result<(), GwError> {
    let configs = PluginConfigs::parse(&args.config)?;
    let request = args
        .request
        .as_deref()
        .map(|text| parse_request(text, &args.headers, args.data.as_deref()))
        .transpose()?
        .map(Arc::new);
    let rt = runtime()?;
    let (passed, failed, abandoned) = rt.block_on(async {
        let mut tally = Tally {
            out,
            passed: 0,
            failed: 0,
        };
        // Plugin names the files register, to spot a `--config NAME=` for none of them
        // (when every file loaded: one that did not may be the one with that name).
        let mut registered = std::collections::BTreeSet::new();
        let mut all_loaded = true;
        // A test that timed out still runs on its thread, maybe in a plugin's `await`.
        let mut abandoned = false;
        for file in &args.files {
            // A loader per file: each is tested on its own, so two builds of one plugin
            // (`v1/x.so v2/x.so`) don't clash on their names.
            let mut loader = loader()?;
            if let Err(e) = loader.load_file(file, None) {
                tally.line(false, &format!("{}: {e}", file.display()));
                all_loaded = false;
                continue;
            }
            // Leaked: plugins are never unloaded, and a plugin whose test timed out may
            // still be running on a worker thread.
            let registry: &'static PluginRegistry = Box::leak(Box::new(loader)).registry();
            registered.extend(registry.iter().map(|p| p.name.clone()));
            let kinds: &[Kind] = if args.kinds.is_empty() {
                &[Kind::HttpServer, Kind::HttpClient, Kind::Modifier]
            } else {
                &args.kinds
            };
            for &kind in kinds {
                let plugins: Vec<&str> = registry
                    .iter()
                    .filter(|p| p.file == *file && p.kind == kind)
                    .map(|p| p.name.as_str())
                    .collect();
                if plugins.is_empty() && !args.kinds.is_empty() {
                    tally.line(
                        false,
                        &format!("{}: registers no {kind} plugin", file.display()),
                    );
                }
                for name in plugins {
                    // On a thread of its own, waited for from this one: a plugin that
                    // blocks its thread (rather than awaiting) is caught by the timeout too,
                    // and cannot hold up the plugins tested after it.
                    let (done, outcome) = std::sync::mpsc::channel();
                    let (owned, config, sample) =
                        (name.to_owned(), configs.get(name).cloned(), request.clone());
                    let runtime = tokio::runtime::Handle::current();
                    let spawned = std::thread::Builder::new()
                        .name(format!("test-plugin {name}"))
                        .spawn(move || {
                            // Leaked, as a scope's name: a few per run of a one-shot command.
                            let name: &'static str = Box::leak(owned.into_boxed_str());
                            let exercised =
                                exercise(registry, name, kind, config.as_ref(), sample.as_deref());
                            // As in `run`: what the plugin logs carries its name.
                            let _ = done.send(runtime.block_on(PluginScope::new(name, exercised)));
                        });
                    let outcome = match spawned {
                        Err(e) => Err(format!("cannot start a thread to test it: {e}")),
                        Ok(_) => match outcome.recv_timeout(args.timeout) {
                            Ok(outcome) => outcome,
                            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                                abandoned = true;
                                Err(format!("no answer within {:?}", args.timeout))
                            }
                            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                                Err("the test ended without an answer (test-plugin panicked)"
                                    .to_owned())
                            }
                        },
                    };
                    let what = format!("{name} ({kind}) in {}", file.display());
                    match outcome {
                        Ok(done) => tally.line(true, &format!("{what}: {done}")),
                        Err(why) => tally.line(false, &format!("{what}: {why}")),
                    }
                }
            }
        }
        for name in configs.by_name.keys().filter(|_| all_loaded) {
            if !registered.contains(name) {
                let _ = writeln!(
                    std::io::stderr(),
                    "warning: no plugin `{name}` in the files tested: its `--config` was not used"
                );
            }
        }
        Ok::<_, GwError>((tally.passed, tally.failed, abandoned))
    })?;
    if abandoned {
        // Not shut down under it: the timer or reactor would go from under the plugin's
        // `await`, and the panic that makes, unwinding through the plugin's frames, aborts
        // the process. The process ends next, and the thread with it.
        std::mem::forget(rt);
    } else {
        rt.shutdown_timeout(std::time::Duration::from_millis(100));
    }
    let _ = writeln!(out, "test-plugin: {passed} passed, {failed} failed");
    if failed > 0 {
        return Err(GwError::TestPluginFailed {
            failed,
            total: passed + failed,
        });
    }
    Ok(())
}

/// `test-plugin`'s `--config` values: one for every plugin, and plugins' own.
#[derive(Debug, Default)]
struct PluginConfigs {
    common: Option<gwplugin::Config>,
    by_name: std::collections::BTreeMap<String, gwplugin::Config>,
}

impl PluginConfigs {
    /// Each value is a JSON object (for every plugin) or `NAME=JSON` (for plugin NAME),
    /// told apart as `cargo gwplugin test` tells them ([`ConfigArg`]).
    fn parse(values: &[String]) -> Result<Self, GwError> {
        let mut configs = PluginConfigs::default();
        for value in values {
            let bad = |why: String| GwError::PluginConfigArg(format!("`{value}`: {why}"));
            let object = |text: &str| match serde_json::from_str::<serde_json::Value>(text) {
                Ok(v) if v.is_object() => Ok(v),
                Ok(_) => Err(bad(format!("`{text}` is not a JSON object"))),
                Err(e) => Err(bad(format!("`{text}` is not JSON: {e}"))),
            };
            match cargo_gwplugin::test_cmd::config_arg(value) {
                ConfigArg::EveryPlugin(json) => {
                    if configs.common.replace(object(json)?).is_some() {
                        return Err(bad("a second config for every plugin".to_owned()));
                    }
                }
                ConfigArg::Plugin { name, json } => {
                    if configs
                        .by_name
                        .insert(name.to_owned(), object(json)?)
                        .is_some()
                    {
                        return Err(bad(format!("a second config for `{name}`")));
                    }
                }
                ConfigArg::Neither => {
                    return Err(bad("neither a JSON object nor `NAME=JSON`".to_owned()));
                }
            }
        }
        Ok(configs)
    }

    /// The config plugin `name` is created with, if any.
    fn get(&self, name: &str) -> Option<&gwplugin::Config> {
        self.by_name.get(name).or(self.common.as_ref())
    }
}

struct Tally<'o> {
    out: &'o mut dyn Write,
    passed: usize,
    failed: usize,
}

impl Tally<'_> {
    fn line(&mut self, ok: bool, text: &str) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        let _ = writeln!(self.out, "[{}] {text}", if ok { "OK" } else { "KO" });
    }
}

struct SampleRequest {
    method: Method,
    uri: Uri,
    headers: http::HeaderMap,
    body: bytes::Bytes,
}

fn parse_request(
    text: &str,
    headers: &[(http::HeaderName, http::HeaderValue)],
    data: Option<&str>,
) -> Result<SampleRequest, GwError> {
    let bad = || GwError::RequestArg(text.to_owned());
    let mut words = text.split_whitespace();
    let (method, url) = match (words.next(), words.next(), words.next()) {
        // With a body and no method, a POST: as curl's `-d` has it.
        (Some(url), None, None) if data.is_some() => (Method::POST, url),
        (Some(url), None, None) => (Method::GET, url),
        (Some(method), Some(url), None) => (
            Method::from_bytes(method.as_bytes()).map_err(|_| bad())?,
            url,
        ),
        _ => return Err(bad()),
    };
    let uri: Uri = url.parse().map_err(|_| bad())?;
    // A path, or an absolute URL: not a word such as a method given alone.
    if uri.scheme().is_none() && !url.starts_with('/') {
        return Err(bad());
    }
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.append(name.clone(), value.clone());
    }
    let body = match data {
        None => bytes::Bytes::new(),
        Some(data) => match data.strip_prefix('@') {
            Some(file) => std::fs::read(file)
                .map_err(|e| GwError::DataArg(format!("cannot read `{file}`: {e}")))?
                .into(),
            None => bytes::Bytes::copy_from_slice(data.as_bytes()),
        },
    };
    // As a client would send it, unless `-H` says otherwise.
    if data.is_some() && !map.contains_key(http::header::CONTENT_LENGTH) {
        map.insert(http::header::CONTENT_LENGTH, body.len().into());
    }
    Ok(SampleRequest {
        method,
        uri,
        headers: map,
        body,
    })
}

/// The `next` handler an http-server plugin gets under `test-plugin`.
struct SampleNext;

impl ErasedHandler for SampleNext {
    fn call(&self, _req: Request) -> BoxFuture<'_, Result<Response, gwplugin::Error>> {
        Box::pin(async { Ok(Response::new(Body::from("test-plugin: next handler"))) })
    }
}

/// Creates and calls one plugin as asked; describes what passed, or why not.
async fn exercise(
    registry: &PluginRegistry,
    name: &str,
    kind: Kind,
    config: Option<&gwplugin::Config>,
    request: Option<&SampleRequest>,
) -> Result<String, String> {
    if config.is_none() && request.is_none() {
        return Ok("registered".to_owned());
    }
    let empty = serde_json::Value::Object(Default::default());
    let config = config.unwrap_or(&empty);
    let sample = || {
        request.map(|r| {
            // A body streamed, as gwhost hands a client's to plugins: one that reads it
            // with `as_bytes` fails here as it would there.
            let body = match r.body.is_empty() {
                true => Body::empty(),
                false => Body::from_stream(http_body_util::Full::new(r.body.clone())),
            };
            let mut req = Request::new(body);
            *req.method_mut() = r.method.clone();
            *req.uri_mut() = r.uri.clone();
            *req.headers_mut() = r.headers.clone();
            req
        })
    };
    // `METHOD URI` of the sample request, as the result lines show it.
    let sent = request
        .map(|r| format!("{} {}", r.method, r.uri))
        .unwrap_or_default();
    let describe = |resp: &Response| format!("registered, created, {sent} -> {}", resp.status());
    let err = |e: &dyn std::fmt::Display| e.to_string();
    // A plugin's error may carry the status the gateway would answer with: show it.
    let failed = |e: &gwplugin::Error| match e.status() {
        Some(status) => format!("{sent} -> {status}: {e}"),
        None => e.to_string(),
    };
    // http-server and http-client instances are both handlers: created differently,
    // exercised alike.
    let handler = match kind {
        Kind::HttpServer => registry.create_server(name, config, Arc::new(SampleNext)),
        Kind::HttpClient => registry.create_client(name, config),
        Kind::Modifier => {
            let modifier = registry
                .create_modifier(name, config)
                .map_err(|e| err(&e))?;
            let Some(mut req) = sample() else {
                return Ok("registered, created".to_owned());
            };
            modifier.modify_request(&mut req).map_err(|e| failed(&e))?;
            let mut resp = Response::new(Body::from("test-plugin: sample response"));
            *resp.status_mut() = StatusCode::OK;
            modifier
                .modify_response(&mut resp)
                .map_err(|e| failed(&e))?;
            return read_body(resp, &sent).await.map(|resp| describe(&resp));
        }
    }
    .map_err(|e| err(&e))?;
    // gwhost hands an http-client the backend's absolute URL: a failure with a path
    // alone may be only that.
    let relative = request.is_some_and(|r| r.uri.scheme().is_none());
    let hint = match (kind, relative) {
        (Kind::HttpClient, true) => {
            " (gwhost hands an http-client plugin the backend's absolute URL: give \
             `--request` one, e.g. `GET http://127.0.0.1:8080/x`)"
        }
        _ => "",
    };
    match sample() {
        None => Ok("registered, created".to_owned()),
        Some(req) => {
            let resp = handler
                .call(req)
                .await
                .map_err(|e| format!("{}{hint}", failed(&e)))?;
            read_body(resp, &sent).await.map(|resp| describe(&resp))
        }
    }
}

/// Reads a plugin's response body to its end, as a client would: a body that fails or
/// panics part way is a failure, which the response's head alone would not show.
async fn read_body(resp: Response, sent: &str) -> Result<Response, String> {
    let (parts, body) = resp.into_parts();
    match body.collect().await {
        Ok(data) => Ok(Response::from_parts(parts, Body::from(data))),
        Err(e) => Err(format!(
            "{sent} -> {}, then its body failed: {e}",
            parts.status
        )),
    }
}
