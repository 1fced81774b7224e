//! The one place where failures become what the user reads, cargo style:
//!
//! ```text
//! error: endpoints[0].backend[0].host[0]: expected a URL like `http://10.0.0.1:8000`, found `x`: no scheme
//!   --> gateway.json
//! help: write the scheme and the authority only; the path goes in `url_pattern`
//! ```

use std::fmt::Write as _;
use std::net::SocketAddr;

use gwplugin_host::LoadError;

use crate::config::ConfigError;
use crate::gateway::BuildError;

/// Everything a gwhost command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum GwError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Loading the config's plugin folder failed: the config is named too (its
    /// `plugin` block, `sha256` included, is often what to change).
    #[error("{source}")]
    ConfigPlugins {
        file: std::path::PathBuf,
        source: Box<LoadError>,
    },
    #[error("{source}")]
    Build {
        file: std::path::PathBuf,
        source: Box<BuildError>,
    },
    #[error("cannot listen on `{addr}`: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
    #[error("this host's embedded ABI manifest is unreadable: {0}")]
    Manifest(#[from] gwplugin_build::RecordError),
    #[error("bad `--config` {0}")]
    PluginConfigArg(String),
    #[error("`--request` is not `[METHOD] URL`: `{0}`")]
    RequestArg(String),
    #[error("bad `--data`: {0}")]
    DataArg(String),
    #[error("{failed} of {total} plugin checks failed")]
    TestPluginFailed { failed: usize, total: usize },
    /// `check-plugin`: what `cargo gwplugin check` fails with (missing or malformed
    /// files, cargo or rustc failing), with its own help.
    #[error(transparent)]
    Plugin(#[from] cargo_gwplugin::Error),
    /// `check-plugin FILE`: the file is no plugin the loader could judge.
    #[error(transparent)]
    PluginFile(LoadError),
    #[error("`{}` is not a plugin's Cargo.lock: {reason}", path.display())]
    NotAPluginLock {
        path: std::path::PathBuf,
        reason: String,
    },
}

impl GwError {
    /// What to do about it.
    pub fn help(&self) -> Option<String> {
        match self {
            GwError::Config(e) => e.help(),
            GwError::Load(e) => Some(load_help(e).to_owned()),
            GwError::ConfigPlugins { source, .. } => Some(load_help(source).to_owned()),
            GwError::Build { source, .. } => Some(source.help()),
            GwError::Listen { .. } => Some(
                "free the port or change `listen_ip`/`port` in the config (port 0 picks a free one)"
                    .to_owned(),
            ),
            GwError::Runtime(_) | GwError::Stdout(_) => None,
            GwError::Manifest(_) => Some("rebuild gwhost: its build script embeds the manifest".to_owned()),
            GwError::PluginConfigArg(_) => {
                Some("pass a JSON object for every plugin, e.g. `--config '{\"tag\": \"x\"}'`, or one plugin's own as `--config 'NAME={\"tag\": \"x\"}'`, at most once each".to_owned())
            }
            GwError::DataArg(_) => Some(
                "pass the body as text, `--data 'a=1'`, or a file's path after `@`, `--data @body.json`"
                    .to_owned(),
            ),
            GwError::RequestArg(_) => {
                Some("write e.g. `--request 'GET http://127.0.0.1:8000/users/1'` or `--request /health`".to_owned())
            }
            GwError::TestPluginFailed { .. } => {
                Some("see the `[KO]` lines above for each failure".to_owned())
            }
            GwError::Plugin(e) => e.help(),
            GwError::PluginFile(_) => Some(
                "pass a plugin built as a `cdylib` with `gwplugin::export!` and \
                 `gwplugin_build::plugin()`"
                    .to_owned(),
            ),
            GwError::NotAPluginLock { .. } => Some(
                "pass the `Cargo.lock` of a plugin crate that depends on `gwplugin`".to_owned(),
            ),
        }
    }

    /// The exit code: 1 for a failed command; for `check-plugin`, whose 1 means
    /// "incompatible", 2 for a usage or environment error, as `cargo gwplugin check`.
    pub fn exit_code(&self) -> u8 {
        match self {
            GwError::Plugin(e) => e.exit_code(),
            GwError::PluginFile(_)
            | GwError::NotAPluginLock { .. }
            | GwError::PluginConfigArg(_)
            | GwError::RequestArg(_)
            | GwError::DataArg(_) => cargo_gwplugin::EXIT_USAGE,
            _ => 1,
        }
    }
}

/// What to do about a plugin whose types are laid out otherwise than the host's.
pub const LAYOUT_HELP: &str = "build the plugin with `cargo gwplugin build` in its crate: it builds the plugin \
     alone, with the features its manifest records (a `cargo build` of a whole workspace \
     also turns on the features its other members ask for); and without `RUSTFLAGS` that \
     change layouts (`--cfg feature=…`, `-Z randomize-layout`), which no manifest records";

fn load_help(e: &LoadError) -> &'static str {
    match e {
        LoadError::Incompatible { .. } => {
            "rebuild the plugin for this host: in its crate, `gwhost check-plugin --fix` prints \
             the commands that align it (`cargo gwplugin sync --host <this gwhost>`, …); then \
             `cargo gwplugin build --host <this gwhost>`"
        }
        LoadError::Layout { .. } => LAYOUT_HELP,
        LoadError::WrongMachine { .. } | LoadError::WrongLibc { .. } => {
            "build the plugin for this host's target: `cargo gwplugin build --host <this gwhost>` \
             (or run a gwhost built for the plugin's target: `cargo gwplugin host-build --target …`)"
        }
        LoadError::DynamicStd { .. } => {
            "rebuild the plugin without `-C prefer-dynamic` (in `RUSTFLAGS`, `.cargo/config.toml` \
             or a profile's `rustflags`)"
        }
        LoadError::OtherCompiler { .. } => {
            "rebuild the plugin with `cargo gwplugin build`, without a `RUSTC_WRAPPER` (or \
             `build.rustc-wrapper`) that runs another compiler than the `rustc` cargo names"
        }
        LoadError::Checksum { .. } => {
            "if the new file is trusted, update its entry in `plugin.sha256`"
        }
        LoadError::ChecksumForMissingFile { .. } => {
            "fix the file name in `plugin.sha256`, or put the file in `plugin.folder`"
        }
        LoadError::Folder { .. } => "create the folder, or fix `plugin.folder`",
        LoadError::DuplicateName { .. } => "remove one of the two files from `plugin.folder`",
        _ => {
            "remove the file from `plugin.folder`, narrow `plugin.pattern`, or set \
             `plugin.on_failure` to `skip`"
        }
    }
}

/// The full message for `err`, ready for stderr.
pub fn render(err: &GwError) -> String {
    let mut out = format!("error: {err}\n");
    match err {
        GwError::Config(ConfigError::Invalid { file, .. })
        | GwError::Build { file, .. }
        | GwError::ConfigPlugins { file, .. } => {
            let _ = writeln!(out, "  --> {}", file.display());
        }
        GwError::Plugin(cargo_gwplugin::Error::Process(p)) if !p.stderr.is_empty() => {
            let _ = writeln!(out, "--- stderr\n{}", p.stderr);
        }
        _ => {}
    }
    if let Some(help) = err.help() {
        let _ = writeln!(out, "help: {help}");
    }
    out
}
