//! `cargo gwplugin test`: runs `gwhost test-plugin` on built plugins in a child process,
//! so that a plugin that crashes takes down that child, never this tool.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Command;

use gwplugin_build::elf;

use crate::error::{Error, io};
use crate::host::{Host, HostKind};
use crate::plugin::PluginManifest;
use crate::process::{self, Cargo};
use crate::{Outcome, status};

/// Load and exercise built plugins in gwhost (`gwhost test-plugin`), in a child process
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Plugin files [default: the one `cargo gwplugin build` made for the host's target]
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Test http-server plugins (with `-c`, `-m`: those kinds too) [default: every kind a
    /// file registers]
    #[arg(short, long)]
    pub server: bool,
    /// Test http-client plugins
    #[arg(short, long)]
    pub client: bool,
    /// Test req-resp-modifier plugins
    #[arg(short, long)]
    pub modifier: bool,
    /// The gwhost binary [default: the plugin's host when it is a binary, else `gwhost` on PATH]
    #[arg(long, value_name = "PATH")]
    pub gwhost: Option<PathBuf>,
    /// Path to the plugin's Cargo.toml
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Create each plugin with this config: a JSON object for every plugin, or
    /// `NAME=JSON` for plugin NAME (repeatable) [default: each plugin's own from the
    /// crate's `[package.metadata.gwplugin.config.NAME]`, unless a config for every
    /// plugin is given; a plugin without one is only registered, or, with `--request`,
    /// created with `{}`]
    #[arg(long, value_name = "[NAME=]JSON")]
    pub config: Vec<String>,
    /// Also send this sample request through each plugin (`[METHOD] URL`)
    #[arg(long, value_name = "REQUEST")]
    pub request: Option<String>,
    /// A header for the sample request, `name: value` (repeatable)
    #[arg(
        short = 'H',
        long = "header",
        value_name = "NAME: VALUE",
        requires = "request",
        value_parser = header_arg
    )]
    pub headers: Vec<String>,
    /// The sample request's body: TEXT, or `@FILE` for a file's contents (as curl's `-d`,
    /// and as with curl a POST unless `--request` names a method)
    #[arg(short = 'd', long, value_name = "TEXT|@FILE", requires = "request")]
    pub data: Option<String>,
    /// How long the sample request may take in each plugin: `500ms`, `10s` [default: 10s]
    #[arg(long, value_name = "DURATION", requires = "request", value_parser = timeout_arg)]
    pub timeout: Option<String>,
}

/// A `--timeout` value kept as given, for gwhost: checked here as gwhost checks it, so
/// that a typo is this tool's usage error, not gwhost's after it started.
fn timeout_arg(text: &str) -> Result<String, String> {
    crate::duration::sample_timeout(text).map(|_| text.to_owned())
}

/// A `--header` value kept as given, for gwhost: checked here, so that a typo is a usage
/// error (exit 2) of this tool rather than a failed test.
fn header_arg(text: &str) -> Result<String, String> {
    parse_header(text).map(|_| text.to_owned())
}

/// What a `test-plugin --config` value is for. Read here by `cargo gwplugin test`, which
/// passes values on, and by `gwhost test-plugin`, which parses their JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigArg<'a> {
    /// A JSON object, for every plugin (it starts with `{`, which no plugin name does).
    EveryPlugin(&'a str),
    /// `NAME=JSON`, for plugin NAME.
    Plugin { name: &'a str, json: &'a str },
    /// Neither.
    Neither,
}

/// Classifies a `--config` value (see [`ConfigArg`]).
pub fn config_arg(value: &str) -> ConfigArg<'_> {
    if value.trim_start().starts_with('{') {
        return ConfigArg::EveryPlugin(value);
    }
    match value.split_once('=') {
        Some((name, json)) => ConfigArg::Plugin {
            name: name.trim(),
            json,
        },
        None => ConfigArg::Neither,
    }
}

/// A `name: value` header, as curl's `-H` takes it (and `gwhost test-plugin -H`).
pub fn parse_header(text: &str) -> Result<(http::HeaderName, http::HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not a header: write it as `name: value`"))?;
    let name = http::HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("`{text}` does not start with a valid header name"))?;
    let value = http::HeaderValue::from_str(value.trim())
        .map_err(|_| format!("the value of `{name}` is not a valid header value"))?;
    Ok((name, value))
}

/// Runs `test`.
pub fn exec(args: &Args) -> Result<Outcome, Error> {
    let cargo = Cargo::from_env();
    // Without `--manifest-path`, files given on the command line need no plugin crate:
    // none found, or a workspace root's, is fine. A manifest named, or one found that is
    // broken, is an error as in every command (its crate may name the host to test with).
    let plugin = match PluginManifest::locate(args.manifest_path.as_deref()) {
        Ok(plugin) => Some(plugin),
        Err(Error::NoManifest(_) | Error::NotAPackage(_))
            if args.manifest_path.is_none() && !args.files.is_empty() =>
        {
            None
        }
        Err(e) => return Err(e),
    };
    // The host tells the default gwhost and the default file's target; with both given
    // it is not needed (and resolving a host project costs a resolve). A host the crate
    // names but that cannot be read is an error: falling back to a `gwhost` on PATH
    // would test against another host.
    let host = match &plugin {
        _ if args.gwhost.is_some() && !args.files.is_empty() => None,
        None => None,
        Some(plugin) => match plugin.host_spec(None) {
            Ok((spec, base)) => Some(Host::resolve(&spec, &base, &cargo)?),
            Err(_) => None,
        },
    };
    let gwhost = match (&args.gwhost, &host) {
        (Some(g), _) => std::env::current_dir().map_err(io("."))?.join(g),
        (None, Some(h)) if h.kind == HostKind::Binary => h.path.clone(),
        _ => {
            let found = crate::target::which("gwhost").ok_or(Error::NoGwhost)?;
            // Not the host `check` judged with, which is a project or a manifest: say
            // which binary gives the verdict.
            crate::status(
                "Using",
                &format!(
                    "`{}` (the `gwhost` on PATH; `--gwhost` picks another)",
                    found.display()
                ),
            );
            found
        }
    };
    let files = if args.files.is_empty() {
        let plugin = plugin
            .as_ref()
            .ok_or_else(|| Error::NoManifest(std::env::current_dir().unwrap_or_default()))?;
        let metadata = cargo.metadata(&plugin.path, &["--no-deps"])?;
        let triple = match &host {
            Some(h) if h.knows_compiler => h.manifest.target.clone(),
            _ => process::rustc_version(&process::rustc_for(plugin.dir()))?.host,
        };
        let built = metadata
            .target_directory
            .join("gwplugin")
            .join(triple)
            .join(format!("{}.so", plugin.package_name()));
        if !built.is_file() {
            return Err(Error::NotBuilt(built));
        }
        warn_if_older_than_sources(&built, plugin);
        vec![built]
    } else {
        // A file that is not there is a usage error, as for every command, not a `[KO]`.
        if let Some(missing) = args.files.iter().find(|f| !f.is_file()) {
            return Err(Error::Io {
                path: missing.clone(),
                message: "no such plugin file".to_owned(),
            });
        }
        args.files.clone()
    };

    // A gwhost for another machine runs under qemu's user-mode emulation.
    let gwhost_bytes = std::fs::read(&gwhost).map_err(|e| Error::GwhostUnreadable {
        path: gwhost.clone(),
        message: e.to_string(),
    })?;
    let machine = elf::facts(&gwhost_bytes)
        .map(|f| f.machine)
        .unwrap_or_default();
    let mut cmd = if machine == "aarch64" && std::env::consts::ARCH != "aarch64" {
        let mut c = Command::new("qemu-aarch64");
        c.args(["-L", "/usr/aarch64-linux-gnu"]).arg(&gwhost);
        c
    } else {
        Command::new(&gwhost)
    };
    cmd.arg("test-plugin");
    for (wanted, flag) in [
        (args.server, "--server"),
        (args.client, "--client"),
        (args.modifier, "--modifier"),
    ] {
        if wanted {
            cmd.arg(flag);
        }
    }
    // Each plugin's default config from the crate, as `build` puts it in the
    // registration snippet, given to that plugin only: to those the command line gives
    // no config of their own, when it gives none for every plugin.
    let for_every_plugin = |c: &String| matches!(config_arg(c), ConfigArg::EveryPlugin(_));
    let named: Vec<&str> = args
        .config
        .iter()
        .filter_map(|c| match config_arg(c) {
            ConfigArg::Plugin { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    // Only for plugins the files register: a default for another (the crate's, when the
    // files are other builds) is no config the user asked for.
    let exported: Vec<String> = files
        .iter()
        .filter_map(|file| std::fs::read(file).ok())
        .filter_map(|bytes| elf::plugin_exports(&bytes).ok())
        .flatten()
        .map(|export| export.name)
        .collect();
    let defaults: Vec<String> = match &plugin {
        Some(plugin) if !args.config.iter().any(for_every_plugin) => {
            crate::build::default_configs(plugin)
                .iter()
                .filter(|(name, config)| {
                    config.is_object() && exported.contains(name) && !named.contains(&name.as_str())
                })
                .map(|(name, config)| format!("{name}={config}"))
                .collect()
        }
        _ => Vec::new(),
    };
    for config in args.config.iter().chain(&defaults) {
        cmd.args(["--config", config]);
    }
    if let Some(request) = &args.request {
        cmd.args(["--request", request]);
    }
    for header in &args.headers {
        cmd.args(["--header", header]);
    }
    if let Some(data) = &args.data {
        cmd.args(["--data", data]);
    }
    if let Some(timeout) = &args.timeout {
        cmd.args(["--timeout", timeout]);
    }
    cmd.args(&files);
    let line = process::command_line(&cmd);
    status("Running", &format!("`{line}`"));
    let status = cmd.status().map_err(|e| {
        Error::Process(process::ProcessError {
            command: line.clone(),
            what: format!("could not be started: {e}"),
            stderr: String::new(),
        })
    })?;
    if let Some(signal) = status.signal() {
        return Err(Error::ChildCrashed {
            command: line,
            status: format!("killed by signal {signal}"),
        });
    }
    match status.code() {
        Some(0) => Ok(Outcome::Ok),
        // gwhost refused its arguments (a bad `--config` or `--request`) and said why.
        Some(2) => Err(Error::Process(process::ProcessError {
            command: line,
            what: "refused its arguments (exit status: 2)".to_owned(),
            stderr: String::new(),
        })),
        _ => Ok(Outcome::Incompatible),
    }
}

/// A built file older than the crate's `Cargo.toml` or `src/`: a build since refused, or
/// another crate of the same name built into the shared target dir, left it there.
fn warn_if_older_than_sources(built: &std::path::Path, plugin: &crate::plugin::PluginManifest) {
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(built_at) = modified(built) else {
        return;
    };
    let mut newest = modified(&plugin.path);
    let mut dirs = vec![plugin.dir().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                newest = newest.max(modified(&path));
            }
        }
    }
    if newest.is_some_and(|n| n > built_at) {
        crate::status(
            "Warning",
            &format!(
                "`{}` is older than the crate's sources: it is not a build of them as they \
                 are\nhelp: run `cargo gwplugin build` first",
                built.display()
            ),
        );
    }
}
