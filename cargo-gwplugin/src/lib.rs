//! # cargo-gwplugin
//!
//! The plugin author's cargo subcommand: `cargo gwplugin new`, `check`, `sync`, `build`,
//! `host-build`, `test` and `quickstart`.
//! The library holds everything; `main.rs` only calls [`main`]. Errors are typed
//! ([`Error`]) and printed in one place, cargo-style ([`report_error`]).

pub mod build;
pub mod check;
pub mod duration;
pub mod edit;
pub mod error;
pub mod host;
pub mod host_build;
pub mod lockfile;
pub mod new;
pub mod plugin;
pub mod process;
pub mod quickstart;
pub mod register;
pub mod sync;
pub mod target;
pub mod test_cmd;
pub mod txn;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::builder::styling::{AnsiColor, Effects, Styles};
use clap::{Parser, Subcommand};

pub use error::{EXIT_INCOMPATIBLE, EXIT_OK, EXIT_USAGE, Error};

/// How a command ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// `check` found incompatibilities.
    Incompatible,
}

/// The exit codes, as every command's help ends.
macro_rules! exit_codes {
    () => {
        "Exit status:
  0  success (for `check`: no incompatibilities found; for `test`: every line `[OK]`)
  1  the plugin is incompatible with its host, `sync` could not make it compatible, or
     `test` printed a `[KO]` line (or its gwhost crashed)
  2  usage or environment error (bad arguments, also those passed on to cargo; missing
     or malformed files; a cargo command other than the build failed)
  101  the build failed (`build`, `host-build`, `quickstart`: cargo's own status)"
    };
}

const MAIN_HELP: &str = concat!(
    "Examples:\n  cargo gwplugin quickstart                              # the whole path, in one command\n  cargo gwplugin new my-plugin --kind modifier --host ../gateway\n  cargo gwplugin check                                   # would it load in its host?\n  cargo gwplugin build --release --register gateway.json",
    "\n\n",
    exit_codes!()
);
const NEW_HELP: &str = concat!(
    "Examples:\n  cargo gwplugin new my-plugin --kind modifier --host ../gateway\n  cargo gwplugin new auth --kind http-server --host ../gateway/Cargo.toml --path plugins/auth",
    "\n\n",
    exit_codes!()
);
const CHECK_HELP: &str = concat!(
    "Examples:\n  cargo gwplugin check\n  cargo gwplugin check --host /usr/local/bin/gwhost --message-format json",
    "\n\n",
    exit_codes!()
);
const SYNC_HELP: &str = concat!(
    "Examples:\n  cargo gwplugin sync --dry-run\n  cargo gwplugin sync --host ../gateway",
    "\n\n",
    exit_codes!()
);
const BUILD_HELP: &str = concat!(
    "Examples:\n  cargo gwplugin build --release\n  cargo gwplugin build --target x86_64-unknown-linux-musl --host ./gwhost-musl --register gateway.json",
    "\n\n",
    exit_codes!()
);
const HOST_BUILD_HELP: &str = concat!(
    "Examples:\n  cargo gwplugin host-build --target x86_64-unknown-linux-musl --manifest-path gateway/Cargo.toml --release",
    "\n\n",
    exit_codes!()
);
const TEST_HELP: &str = concat!(
    "Examples:\n  cargo gwplugin test\n  cargo gwplugin test --gwhost ./gwhost --request 'GET http://localhost/users/1' -H 'authorization: Bearer t' target/gwplugin/x86_64-unknown-linux-gnu/my-plugin.so",
    "\n\n",
    exit_codes!()
);
const QUICKSTART_HELP: &str = concat!(
    "Examples:\n  cargo run -p cargo-gwplugin -- gwplugin quickstart\n  cargo gwplugin quickstart --dir /tmp/first-plugin",
    "\n\n",
    exit_codes!()
);

/// cargo's help colours.
fn styles() -> Styles {
    Styles::styled()
        .header(AnsiColor::Green.on_default() | Effects::BOLD)
        .usage(AnsiColor::Green.on_default() | Effects::BOLD)
        .literal(AnsiColor::Cyan.on_default() | Effects::BOLD)
        .placeholder(AnsiColor::Cyan.on_default())
        .error(AnsiColor::Red.on_default() | Effects::BOLD)
        .valid(AnsiColor::Cyan.on_default() | Effects::BOLD)
        .invalid(AnsiColor::Yellow.on_default() | Effects::BOLD)
}

/// `cargo gwplugin …`: cargo runs `cargo-gwplugin gwplugin …`.
#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo", styles = styles())]
pub enum Cli {
    /// Scaffold, check, sync, build and test gwplugin plugins
    #[command(name = "gwplugin", version, after_help = MAIN_HELP, subcommand_required = true, arg_required_else_help = true)]
    Gwplugin(GwpluginCommand),
}

#[derive(Debug, clap::Args)]
pub struct GwpluginCommand {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// cargo's output options, taken by every subcommand.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct OutputArgs {
    /// Use verbose output (-vv very verbose; passed to cargo when it builds)
    #[arg(long, short = 'v', action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Do not print status messages (passed to cargo when it builds)
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Coloring [default: $CARGO_TERM_COLOR, else auto]
    #[arg(long, value_name = "WHEN", value_enum, global = true)]
    pub color: Option<ColorChoice>,
}

/// `--color`, as cargo's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// The output options of this run, set once by [`main`].
static OUTPUT: std::sync::OnceLock<OutputArgs> = std::sync::OnceLock::new();

fn output() -> OutputArgs {
    OUTPUT.get().copied().unwrap_or_default()
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a plugin crate of one kind, aligned with its host
    #[command(after_help = NEW_HELP)]
    New(new::Args),
    /// Check that the plugin would load in its host, without building it
    #[command(after_help = CHECK_HELP)]
    Check(check::Args),
    /// Align the plugin's dependencies, compiler and Cargo.lock with its host
    #[command(after_help = SYNC_HELP)]
    Sync(sync::Args),
    /// Build the plugin for a target, verify it, and write the config that registers it
    #[command(after_help = BUILD_HELP)]
    Build(build::Args),
    /// Build a host (such as gwhost) for a target the way plugins for it are built
    #[command(after_help = HOST_BUILD_HELP)]
    HostBuild(host_build::Args),
    /// Load and exercise built plugins with `gwhost test-plugin`, in a child process
    #[command(after_help = TEST_HELP)]
    Test(test_cmd::Args),
    /// Scaffold, build, register and run a plugin in gwhost, and show what it changes
    #[command(after_help = QUICKSTART_HELP)]
    Quickstart(quickstart::Args),
}

/// Runs a parsed command.
pub fn run(command: &Command) -> Result<Outcome, Error> {
    let OutputArgs { verbose, quiet, .. } = output();
    match command {
        Command::New(args) => new::exec(args),
        Command::Check(args) => check::exec(args),
        Command::Sync(args) => sync::exec(args),
        Command::Build(args) => build::exec(&build::Args {
            verbose,
            quiet,
            ..args.clone()
        }),
        Command::HostBuild(args) => host_build::exec(&host_build::Args {
            verbose,
            quiet,
            ..args.clone()
        }),
        Command::Test(args) => test_cmd::exec(args),
        Command::Quickstart(args) => quickstart::exec(args),
    }
}

/// The whole program: parse, run, print errors cargo-style, and pick the exit code.
pub fn main() -> ExitCode {
    process::absolute_tool_paths();
    let Cli::Gwplugin(cli) = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let mut output = cli.output;
    // cargo's `term.quiet` as its environment sets it, unless `-v` asks otherwise.
    output.quiet |= output.verbose == 0
        && std::env::var("CARGO_TERM_QUIET").is_ok_and(|q| q.eq_ignore_ascii_case("true"));
    let _ = OUTPUT.set(output);
    match run(&cli.command) {
        Ok(Outcome::Ok) => ExitCode::from(EXIT_OK),
        Ok(Outcome::Incompatible) => ExitCode::from(EXIT_INCOMPATIBLE),
        Err(e) => {
            report_error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

/// Writes `text` to stdout. A reader that has gone (`cargo gwplugin check | head -1`) is
/// not this command's failure: the rest of the output is dropped, and the command ends as
/// it would have (`print!` would panic, exit 101).
pub fn print_stdout(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        let _ = writeln!(std::io::stderr(), "warning: could not write to stdout: {e}");
    }
}

/// `--color`'s value as cargo takes it, when given.
pub(crate) fn color_choice() -> Option<&'static str> {
    output().color.map(|color| match color {
        ColorChoice::Auto => "auto",
        ColorChoice::Always => "always",
        ColorChoice::Never => "never",
    })
}

/// Whether stderr gets colours: `--color`, else `CARGO_TERM_COLOR`, else a terminal
/// without `NO_COLOR`.
fn colored() -> bool {
    let choice = output()
        .color
        .or_else(|| match std::env::var("CARGO_TERM_COLOR").as_deref() {
            Ok("always") => Some(ColorChoice::Always),
            Ok("never") => Some(ColorChoice::Never),
            _ => None,
        });
    match choice {
        Some(ColorChoice::Always) => true,
        Some(ColorChoice::Never) => false,
        _ => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

fn paint(text: &str, style: anstyle_like::Style) -> String {
    if colored() {
        format!("{}{text}\x1b[0m", style.0)
    } else {
        text.to_owned()
    }
}

mod anstyle_like {
    /// An ANSI escape prefix.
    #[derive(Clone, Copy)]
    pub struct Style(pub &'static str);
    pub const ERROR: Style = Style("\x1b[1;31m");
    pub const HELP: Style = Style("\x1b[1;36m");
    pub const STATUS: Style = Style("\x1b[1;32m");
    pub const WARNING: Style = Style("\x1b[1;33m");
}

/// Prints an error the way cargo does: `error: …`, the failed command's stderr if any,
/// then `help: …`.
pub fn report_error(e: &Error) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}: {e}", paint("error", anstyle_like::ERROR));
    if let Error::Process(p) = e
        && !p.stderr.is_empty()
    {
        let _ = writeln!(err, "--- stderr\n{}", p.stderr);
    }
    if let Some(help) = e.help() {
        let _ = writeln!(err, "{}: {help}", paint("help", anstyle_like::HELP));
    }
}

/// A cargo-style status line on stderr: `    Checking …`.
pub fn status(verb: &str, message: &str) {
    // `-q`: warnings still, as cargo's, and notes (what `--register` left undone).
    if output().quiet && verb != "Warning" && verb != "Note" {
        return;
    }
    let style = if verb == "Warning" {
        anstyle_like::WARNING
    } else {
        anstyle_like::STATUS
    };
    let verb = if verb == "Warning" {
        format!("{}:", paint("warning", style))
    } else if verb == "Note" {
        // As cargo's `note:` lines.
        format!("{}:", paint("note", anstyle_like::HELP))
    } else {
        paint(&format!("{verb:>12}"), style)
    };
    // Not `eprintln!`, which panics when stderr's reader is gone (`2>&1 | head`), in the
    // middle of a sync or a build.
    let _ = writeln!(std::io::stderr(), "{verb} {message}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
