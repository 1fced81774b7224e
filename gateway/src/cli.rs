//! The command line.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gwplugin::abi::Kind;

use crate::check_plugin;
use crate::commands::{self, TestPlugin};
use crate::error::{GwError, render};

/// gwhost: the reference gwplugin gateway (KrakenD-style config, native Rust plugins).
#[derive(Debug, Parser)]
#[command(name = "gwhost", version, about, after_help = MAIN_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serves the gateway until SIGTERM or SIGINT, then finishes in-flight requests.
    /// A second signal closes their connections at once.
    #[command(after_help = RUN_HELP)]
    Run {
        /// The gateway config (JSON).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// After the signal, how long in-flight requests may take before their
        /// connections are closed: `500ms`, `30s`, `2m` (default: no limit; a long
        /// download, or a backend that keeps sending, holds the stop until it ends).
        #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
        drain_timeout: Option<std::time::Duration>,
    },
    /// Validates the config, verifies and loads every plugin and creates every plugin
    /// instance it names, without serving.
    #[command(after_help = "Example:\n  gwhost check -c gateway.json && systemctl restart gwhost")]
    Check {
        /// The gateway config (JSON).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Prints this host's ABI manifest as JSON (what plugins must be built with).
    #[command(
        after_help = "Example:\n  gwhost plugin-abi > host-abi.json   # then: cargo gwplugin check --host host-abi.json"
    )]
    PluginAbi,
    /// Verifies and loads plugin files, one `[OK]`/`[KO]` line per plugin and kind.
    #[command(
        after_help = "Examples:\n  gwhost test-plugin plugins/*.so\n  gwhost test-plugin -m --config '{\"value\": \"acme\"}' --request 'GET http://localhost/users/1' -H 'authorization: Bearer t' plugins/tenant.so\n  gwhost test-plugin --config 'tenant={\"value\": \"acme\"}' --config 'audit={\"level\": 2}' plugins/*.so\n\nExit status:\n  0  every line is [OK]\n  1  a line is [KO]\n  2  usage error (bad arguments, a --config, --request or --data that cannot be read)"
    )]
    TestPlugin {
        /// Test http-server plugins (default: every kind a file registers).
        #[arg(short, long)]
        server: bool,
        /// Test http-client plugins.
        #[arg(short, long)]
        client: bool,
        /// Test req-resp-modifier plugins.
        #[arg(short, long)]
        modifier: bool,
        /// Also create each plugin with this config (a JSON object); `NAME=JSON` gives
        /// plugin NAME its own (repeatable).
        #[arg(long, value_name = "[NAME=]JSON")]
        config: Vec<String>,
        /// Also send this sample request through each plugin.
        #[arg(long, value_name = "[METHOD] URL")]
        request: Option<String>,
        /// A header for the sample request (repeatable).
        #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", requires = "request", value_parser = cargo_gwplugin::test_cmd::parse_header)]
        headers: Vec<(http::HeaderName, http::HeaderValue)>,
        /// The sample request's body: TEXT, or `@FILE` for a file's contents (as curl's
        /// `-d`, and as with curl a POST unless `--request` names a method); its
        /// `content-length` is set unless `-H` gives one. Plugins get it streamed, as
        /// gwhost streams a client's.
        #[arg(short = 'd', long, value_name = "TEXT|@FILE", requires = "request")]
        data: Option<String>,
        /// How long the sample request may take in each plugin: `500ms`, `10s`.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = timeout_arg, requires = "request")]
        timeout: std::time::Duration,
        /// Plugin files (`.so`), each loaded and tested on its own.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Judges a plugin project, its Cargo.lock, or a built plugin file against this
    /// host's ABI manifest, without building or loading it, as `cargo gwplugin check`
    /// does.
    #[command(after_help = CHECK_PLUGIN_EXIT)]
    CheckPlugin(check_plugin::Args),
}

const MAIN_HELP: &str = "\
Examples:
  gwhost run -c gateway.json
  gwhost check-plugin --manifest-path ../my-plugin/Cargo.toml --fix";

const RUN_HELP: &str = "\
Example:
  gwhost run -c gateway.json --drain-timeout 30s

Health check:
  GET /__health answers 200 {\"status\":\"ok\"}, as KrakenD's does, unless an endpoint's path
  in the config takes it (then that endpoint, or 404 for its other methods)

Environment:
  TOKIO_WORKER_THREADS  threads serving connections (default, also for 0 or a value that
                        is not a number, with a warning: one per core). With fewer threads than cores,
                        each gives its CPU, at most every 500 µs, to the clients and
                        backends on this host that its writes woke: with wrk and the
                        backend on the same 2 cores, p99 at 1 thread about halved
  RUST_LOG              log filter, e.g. `warn`, or `info,plugin=debug` (plugins' own
                        lines have the target `plugin`; a filter without a bare level
                        such as `info` turns every other target off) (default: info)
  SSL_CERT_FILE, SSL_CERT_DIR
                        the CAs an https backend's certificate must chain to, instead
                        of the system's: a PEM file; folders, `:`-separated

Exit status:
  0  stopped on SIGTERM or SIGINT, also when the drain was cut short (a warning then says
     how many connections were closed)
  1  could not start: the config, a plugin, or the listen address
  2  usage error";

const CHECK_PLUGIN_EXIT: &str = "\
Examples:
  gwhost check-plugin                       # the plugin crate in this directory
  gwhost check-plugin target/gwplugin/x86_64-unknown-linux-gnu/my-plugin.so
  gwhost check-plugin --lock ../my-plugin/Cargo.lock --message-format json

Exit status:
  0  no incompatibilities found
  1  the plugin is incompatible with this host
  2  usage or environment error (bad arguments, missing or malformed files, cargo failed)";

fn init_logging(command: &Command) {
    // A server logs what it does; one-shot commands print their result and only warn.
    let default = match command {
        Command::Run { .. } => "info",
        _ => "warn",
    };
    // An empty `RUST_LOG` is no setting (as an empty filter it turned every line off,
    // ERROR too); one that does not parse is said, below, rather than replaced silently.
    let setting = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let (filter, unparsed) = match setting {
        None => (tracing_subscriber::EnvFilter::new(default), None),
        Some(text) => match tracing_subscriber::EnvFilter::try_new(&text) {
            Ok(filter) => (filter, None),
            Err(e) => (tracing_subscriber::EnvFilter::new(default), Some((text, e))),
        },
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| OneLinePerEvent(std::io::stderr()))
        .with_ansi(std::io::stderr().is_terminal())
        // A log write that fails (its reader gone, `2>&1 | head`; a full disk) is dropped:
        // reported, it goes to the same stderr with `eprint!`, which panics, taking down
        // whatever was logging (a request's answer, the stop signals' task).
        .log_internal_errors(false)
        .init();
    if let Some((text, e)) = unparsed {
        tracing::warn!("RUST_LOG={text:?} is not a log filter ({e}): logging at `{default}`");
    }
}

/// Writes each log event as one line. A line break inside one (a plugin's error or log
/// message, a backend's error) is written as `\n` or `\r`: what a plugin or a peer puts
/// in a message cannot pass for a log line of its own. (tracing's formatter writes an
/// event, its final newline included, with one `write_all`.)
struct OneLinePerEvent<W>(W);

impl<W: Write> Write for OneLinePerEvent<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let (text, end) = match buf.strip_suffix(b"\n") {
            Some(text) => (text, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        if !text.iter().any(|b| matches!(b, b'\n' | b'\r')) {
            return self.0.write_all(buf);
        }
        let mut line = Vec::with_capacity(buf.len() + 16);
        for &b in text {
            match b {
                b'\n' => line.extend_from_slice(br"\n"),
                b'\r' => line.extend_from_slice(br"\r"),
                b => line.push(b),
            }
        }
        line.extend_from_slice(end);
        self.0.write_all(&line)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Runs the command line; the process exit code.
pub fn main() -> ExitCode {
    // `check-plugin` runs cargo in the plugin's folder, as `cargo gwplugin` does.
    cargo_gwplugin::process::absolute_tool_paths();
    let cli = Cli::parse();
    init_logging(&cli.command);
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Done::Incompatible) => ExitCode::FAILURE,
        Err(Done::Failed(e)) => {
            // Not `eprint!`, which panics when stderr is gone: the exit code still tells.
            let _ = std::io::stderr().write_all(render(&e).as_bytes());
            ExitCode::from(e.exit_code())
        }
    }
}

/// How a command ended when not with success.
enum Done {
    /// `check-plugin` found incompatibilities (already printed).
    Incompatible,
    Failed(GwError),
}

impl From<GwError> for Done {
    fn from(e: GwError) -> Self {
        Done::Failed(e)
    }
}

fn execute(command: Command) -> Result<(), Done> {
    match command {
        Command::CheckPlugin(args)
            if args.features.is_given() && (args.file.is_some() || args.lock.is_some()) =>
        {
            // A usage error, as clap's own: a built file or a lock says nothing of features.
            use clap::CommandFactory;
            Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "the feature flags judge a plugin project: they cannot be used with a FILE or `--lock`",
                )
                .exit()
        }
        Command::CheckPlugin(args) => match check_plugin::exec(&args)? {
            true => Ok(()),
            false => Err(Done::Incompatible),
        },
        Command::Run {
            config,
            drain_timeout,
        } => Ok(commands::run(&config, drain_timeout)?),
        Command::Check { config } => {
            let report = commands::check(&config)?;
            cargo_gwplugin::print_stdout(&format!(
                "`{}` is valid: {} endpoint(s), {} plugin file(s) loaded, {} plugin instance(s) created\n",
                config.display(),
                report.endpoints,
                report.plugin_files,
                report.plugin_instances
            ));
            Ok(())
        }
        Command::PluginAbi => {
            let json = commands::plugin_abi()?;
            // `gwhost plugin-abi | head` must not panic when the reader goes away.
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{json}") {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.map_err(GwError::Stdout)?,
            }
            Ok(())
        }
        Command::TestPlugin {
            server,
            client,
            modifier,
            config,
            request,
            headers,
            data,
            timeout,
            files,
        } => {
            let kinds = [
                (server, Kind::HttpServer),
                (client, Kind::HttpClient),
                (modifier, Kind::Modifier),
            ]
            .into_iter()
            .filter_map(|(on, kind)| on.then_some(kind))
            .collect();
            let args = TestPlugin {
                kinds,
                config,
                request,
                headers,
                data,
                timeout,
                files,
            };
            Ok(commands::test_plugin(&args, &mut std::io::stdout().lock())?)
        }
    }
}

/// A `--timeout` value: a duration above 0 (at 0, every plugin would be given up at once).
fn timeout_arg(text: &str) -> Result<std::time::Duration, String> {
    cargo_gwplugin::duration::sample_timeout(text)
}

/// A `--drain-timeout` value, in the config's duration syntax.
fn duration_arg(text: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(text).ok_or_else(|| {
        format!("`{text}` is not a duration: write a number and a unit (`ms`, `s`, `m`, `h`), e.g. `30s`")
    })
}
