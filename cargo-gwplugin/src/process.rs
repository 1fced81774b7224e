//! The one place that runs other programs: cargo (honouring `$CARGO`), rustup and rustc.
//!
//! A failed child is reported with its full command line and its stderr.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;

/// A child process that could not be run or did not succeed.
#[derive(Debug, thiserror::Error)]
#[error("`{command}` {what}")]
pub struct ProcessError {
    /// The full command line, as a shell would take it.
    pub command: String,
    /// `failed (exit status: 101)` or `could not be started: …`.
    pub what: String,
    /// What the child wrote to stderr.
    pub stderr: String,
}

/// The parts of `cargo metadata --format-version 1` this crate reads. (Not the
/// `cargo_metadata` crate: it enables serde_json's `unbounded_depth`, and serde_json is a
/// boundary crate.)
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub packages: Vec<MetaPackage>,
    pub workspace_members: Vec<String>,
    pub workspace_root: PathBuf,
    pub target_directory: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MetaPackage {
    pub id: String,
    pub name: String,
    pub version: String,
    pub source: Option<String>,
    pub manifest_path: PathBuf,
    pub dependencies: Vec<MetaDependency>,
    pub targets: Vec<MetaTarget>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MetaDependency {
    pub name: String,
    /// None for a normal dependency, else `dev` or `build`.
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MetaTarget {
    pub kind: Vec<String>,
}

/// Runs cargo: `$CARGO` when set (as it is under `cargo gwplugin`), else `cargo` from `PATH`.
#[derive(Debug, Clone)]
pub struct Cargo {
    program: OsString,
}

impl Default for Cargo {
    fn default() -> Self {
        Self::from_env()
    }
}

impl Cargo {
    pub fn from_env() -> Self {
        Cargo {
            program: std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
        }
    }

    /// The cargo binary, for APIs that spawn it themselves.
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// `cargo SUBCOMMAND --manifest-path MANIFEST ARGS…`, run in the manifest's directory.
    pub fn run(
        &self,
        subcommand: &str,
        manifest: &Path,
        args: &[&str],
    ) -> Result<Output, ProcessError> {
        let mut cmd = Command::new(&self.program);
        cmd.arg(subcommand).arg("--manifest-path").arg(manifest);
        cmd.args(args);
        if let Some(dir) = manifest.parent().filter(|d| !d.as_os_str().is_empty()) {
            cmd.current_dir(dir);
            keep_target_dir(&mut cmd);
        }
        run(cmd)
    }

    /// Like [`Cargo::run`], first with `--offline` (everything at hand, no network), then,
    /// if that fails, once more with network access.
    pub fn run_offline_first(
        &self,
        subcommand: &str,
        manifest: &Path,
        args: &[&str],
    ) -> Result<Output, ProcessError> {
        let offline: Vec<&str> = [&["--offline"][..], args].concat();
        match self.run(subcommand, manifest, &offline) {
            Ok(out) => Ok(out),
            Err(first) if first.stderr.contains("--locked") => Err(first),
            Err(_) => self.run(subcommand, manifest, args),
        }
    }

    /// `cargo metadata --format-version 1` with `args`, offline first.
    pub fn metadata(&self, manifest: &Path, args: &[&str]) -> Result<Metadata, ProcessError> {
        let all: Vec<&str> = [&["--format-version", "1"][..], args].concat();
        let out = self.run_offline_first("metadata", manifest, &all)?;
        serde_json::from_slice(&out.stdout).map_err(|e| ProcessError {
            command: format!(
                "{} metadata --manifest-path {}",
                self.program.to_string_lossy(),
                manifest.display()
            ),
            what: format!("printed output that is not cargo metadata: {e}"),
            stderr: String::new(),
        })
    }

    /// The workspace root manifest of the package at `manifest` (`cargo locate-project`).
    pub fn workspace_manifest(&self, manifest: &Path) -> Result<PathBuf, ProcessError> {
        let out = self.run(
            "locate-project",
            manifest,
            &["--workspace", "--message-format", "plain"],
        )?;
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    }
}

/// Who chose the compiler a build in a folder gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompilerSource {
    /// An environment variable: `RUSTC` or `CARGO_BUILD_RUSTC`.
    Env(&'static str),
    /// `build.rustc` in this cargo config file.
    CargoConfig(PathBuf),
    /// rustup (a toolchain file, an override, `+toolchain`, its default), or `rustc` on
    /// `PATH`.
    Rustup,
}

/// The compiler that would build a crate in `dir`, as cargo run there would: see
/// [`rustc_source`].
pub fn rustc_for(dir: &Path) -> PathBuf {
    rustc_source(dir).0
}

/// The compiler that would build a crate in `dir`, and who chose it, as cargo run there
/// would: `$RUSTC`, `$CARGO_BUILD_RUSTC`, `build.rustc` of the nearest cargo config that
/// sets it (a bare `rustc` there is rustup's proxy), else what `rustup which rustc`
/// answers in `dir` (so `rust-toolchain.toml` and `cargo +toolchain` count), else `rustc`.
pub fn rustc_source(dir: &Path) -> (PathBuf, CompilerSource) {
    for var in ["RUSTC", "CARGO_BUILD_RUSTC"] {
        // A bare `rustc` is rustup's proxy, which follows the toolchain file.
        if let Some(rustc) = std::env::var(var)
            .ok()
            .filter(|r| !r.is_empty() && r != "rustc")
        {
            // Relative to where cargo runs, which for a plugin's build is its folder.
            return (program_path(&rustc, dir), CompilerSource::Env(var));
        }
    }
    if let Some(setting) = cargo_config(dir, "rustc").filter(|s| s.value != "rustc") {
        return (setting.program(), CompilerSource::CargoConfig(setting.file));
    }
    (rustup_rustc_for(dir), CompilerSource::Rustup)
}

/// The wrappers cargo would run the compiler through for a plugin in `dir`, outermost
/// first, each with what set it: `RUSTC_WRAPPER` (or `CARGO_BUILD_RUSTC_WRAPPER`, or
/// `build.rustc-wrapper`), then `RUSTC_WORKSPACE_WRAPPER` (and its two likewise). An
/// empty value is none, as for cargo.
pub fn plugin_wrappers(dir: &Path) -> Vec<(PathBuf, String)> {
    [
        (
            "RUSTC_WRAPPER",
            "CARGO_BUILD_RUSTC_WRAPPER",
            "rustc-wrapper",
        ),
        (
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
            "rustc-workspace-wrapper",
        ),
    ]
    .into_iter()
    .filter_map(|(var, build_var, key)| {
        for name in [var, build_var] {
            if let Ok(value) = std::env::var(name) {
                return (!value.is_empty())
                    .then(|| (program_path(&value, dir), format!("`{name}`")));
            }
        }
        cargo_config(dir, key)
            .filter(|s| !s.value.is_empty())
            .map(|s| {
                let from = format!("`build.{key}` in `{}`", s.file.display());
                (s.program(), from)
            })
    })
    .collect()
}

/// Wrappers that make the compiler another: see [`wrappers_changing_compiler`].
pub struct WrapperChange {
    /// What set them: `` `RUSTC_WRAPPER` ``, `` `build.rustc-wrapper` in `FILE` ``.
    pub from: String,
    /// The compiler cargo names, asked without them.
    pub plain: gwplugin_build::RustcInfo,
    /// The compiler the build gets, through all of them.
    pub through: gwplugin_build::RustcInfo,
}

/// The wrappers of [`plugin_wrappers`] that, each on its own, make `rustc` report
/// another compiler (an sccache passes `-vV` through and is not named), said by what set
/// them; `None` when none does.
pub fn wrappers_changing_compiler(rustc: &Path, dir: &Path) -> Option<WrapperChange> {
    let wrappers = plugin_wrappers(dir);
    if wrappers.is_empty() {
        return None;
    }
    let plain = rustc_version(rustc).ok()?.info;
    let culprits: Vec<&str> = wrappers
        .iter()
        .filter(|(wrapper, _)| {
            rustc_version_through(rustc, std::slice::from_ref(wrapper))
                .is_ok_and(|v| v.info != plain)
        })
        .map(|(_, from)| from.as_str())
        .collect();
    if culprits.is_empty() {
        return None;
    }
    let all: Vec<PathBuf> = wrappers.iter().map(|(w, _)| w.clone()).collect();
    let through = rustc_version_through(rustc, &all).ok()?.info;
    Some(WrapperChange {
        from: culprits.join(" and "),
        plain,
        through,
    })
}

/// A program path as cargo reads one: with a `/`, relative to `base`; else a name
/// looked up on `PATH`.
fn program_path(value: &str, base: &Path) -> PathBuf {
    if value.contains('/') {
        base.join(value)
    } else {
        PathBuf::from(value)
    }
}

/// One `build.KEY` string from a cargo config file.
struct ConfigSetting {
    value: String,
    /// The folder holding `.cargo`: what a relative path in it is relative to.
    base: PathBuf,
    file: PathBuf,
}

impl ConfigSetting {
    fn program(&self) -> PathBuf {
        program_path(&self.value, &self.base)
    }
}

/// `build.KEY` from the cargo config files cargo reads for a command run in `dir`: those
/// in `.cargo/` of `dir` (as the file system has it, symlinks resolved, as cargo's
/// working directory is) and of each folder above, nearest first, then
/// `$CARGO_HOME/config.toml`. In each `.cargo/`, `config` before `config.toml`, as cargo
/// reads them.
fn cargo_config(dir: &Path, key: &str) -> Option<ConfigSetting> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    cargo_config_with_home(dir, key, home)
}

fn cargo_config_with_home(dir: &Path, key: &str, home: Option<PathBuf>) -> Option<ConfigSetting> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let cargo_dirs = dir.ancestors().map(|d| d.join(".cargo")).chain(home);
    for cargo_dir in cargo_dirs {
        let Some((file, text)) = ["config", "config.toml"].iter().find_map(|name| {
            let file = cargo_dir.join(name);
            std::fs::read_to_string(&file).ok().map(|text| (file, text))
        }) else {
            continue;
        };
        let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
            continue;
        };
        if let Some(value) = doc
            .get("build")
            .and_then(|b| b.get(key))
            .and_then(|v| v.as_str())
        {
            return Some(ConfigSetting {
                value: value.to_owned(),
                base: cargo_dir.parent().unwrap_or(&dir).to_owned(),
                file,
            });
        }
    }
    None
}

fn rustup_rustc_for(dir: &Path) -> PathBuf {
    let mut cmd = Command::new("rustup");
    // rustup's proxy named the toolchain a file chose when this command started; once
    // `sync` has rewritten the file, the folder's new pin is the one a build will get.
    if TOOLCHAIN_FILE_REWRITTEN.load(std::sync::atomic::Ordering::Relaxed)
        && std::env::var("RUSTUP_TOOLCHAIN_SOURCE").as_deref() == Ok("toolchain-file")
    {
        cmd.env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTUP_TOOLCHAIN_SOURCE");
    }
    rustup_which_rustc(cmd, dir)
}

/// Set once `sync` has written a new toolchain pin: see [`rustc_for`].
static TOOLCHAIN_FILE_REWRITTEN: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Says that this run rewrote a `rust-toolchain.toml`: the compiler a build gets is then
/// the file's, not the one rustup's proxy named when the run began.
pub fn toolchain_file_rewritten() {
    TOOLCHAIN_FILE_REWRITTEN.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The compiler rustup picks for another project in `dir` (a host), else `rustc`. What
/// says how the plugin is built is ignored: `RUSTC`, and the `RUSTUP_TOOLCHAIN` that
/// rustup's proxy hands a cargo subcommand (`cargo +nightly gwplugin …`, or the plugin's
/// own `rust-toolchain.toml`), which would outrank the project's own pin.
pub fn toolchain_rustc(dir: &Path) -> PathBuf {
    let mut cmd = Command::new("rustup");
    cmd.env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTUP_TOOLCHAIN_SOURCE");
    rustup_which_rustc(cmd, dir)
}

fn rustup_which_rustc(mut cmd: Command, dir: &Path) -> PathBuf {
    cmd.args(["which", "rustc"]).current_dir(dir);
    match run(cmd) {
        Ok(out) => {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if path.is_empty() {
                PathBuf::from("rustc")
            } else {
                PathBuf::from(path)
            }
        }
        Err(_) => PathBuf::from("rustc"),
    }
}

/// What `rustc -vV` says.
#[derive(Debug, Clone)]
pub struct RustcVersion {
    pub info: gwplugin_build::RustcInfo,
    /// `host:`, the triple it builds for by default.
    pub host: String,
}

/// Runs `RUSTC -vV`.
pub fn rustc_version(rustc: &Path) -> Result<RustcVersion, ProcessError> {
    rustc_version_through(rustc, &[])
}

/// The compiler a plugin's build in `dir` gets: `rustc -vV` through the wrappers cargo
/// would use there ([`plugin_wrappers`]), as cargo asks it, since a wrapper may run
/// another compiler.
pub fn plugin_rustc_version(rustc: &Path, dir: &Path) -> Result<RustcVersion, ProcessError> {
    let wrappers: Vec<PathBuf> = plugin_wrappers(dir).into_iter().map(|(w, _)| w).collect();
    rustc_version_through(rustc, &wrappers)
}

fn rustc_version_through(rustc: &Path, wrappers: &[PathBuf]) -> Result<RustcVersion, ProcessError> {
    let cmd = gwplugin_build::rustc_vv_command(rustc, wrappers);
    let line = command_line(&cmd);
    let out = run(cmd)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned()))
            .ok_or_else(|| ProcessError {
                command: line.clone(),
                what: format!("printed no `{key}` line"),
                stderr: text.to_string(),
            })
    };
    Ok(RustcVersion {
        info: gwplugin_build::RustcInfo {
            release: field("release:")?,
            commit_hash: field("commit-hash:")?,
        },
        host: field("host:")?,
    })
}

/// Runs `cmd` with its stderr passed through to ours (cargo's progress and diagnostics
/// reach the user as they happen) and its stdout captured. On failure: the command line
/// and its status (whose exit code the caller forwards), or why it could not be started.
pub fn run_passing_stderr(
    mut cmd: Command,
) -> Result<Vec<u8>, Result<(String, std::process::ExitStatus), ProcessError>> {
    let command = command_line(&cmd);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    match cmd.output() {
        Ok(out) if out.status.success() => Ok(out.stdout),
        Ok(out) => Err(Ok((command, out.status))),
        Err(e) => Err(Err(ProcessError {
            command,
            what: format!("could not be started: {e}"),
            stderr: String::new(),
        })),
    }
}

/// Runs `cmd` to completion, capturing its output; any failure names the command line.
pub fn run(mut cmd: Command) -> Result<Output, ProcessError> {
    let command = command_line(&cmd);
    let out = cmd.output().map_err(|e| ProcessError {
        command: command.clone(),
        what: format!("could not be started: {e}"),
        stderr: String::new(),
    })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(ProcessError {
            command,
            what: format!("failed ({})", out.status),
            stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_owned(),
        })
    }
}

/// The command line as one could paste it into a shell.
pub fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@+,%".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The variables that name a program cargo runs to compile.
const TOOL_VARS: [&str; 6] = [
    "RUSTC",
    "CARGO_BUILD_RUSTC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
];

/// Makes the compiler and wrapper paths the environment gives relative (`RUSTC=./rustc`)
/// absolute, from the folder this command runs in, as cargo reads them: this command
/// runs cargo (and `rustc -vV`) in the plugin's folder, where they would name nothing.
/// Called first thing in `main`, before any thread exists.
pub fn absolute_tool_paths() {
    let Ok(cwd) = std::env::current_dir() else {
        return;
    };
    for var in TOOL_VARS {
        if let Some(value) = std::env::var_os(var)
            && value.to_string_lossy().contains('/')
            && Path::new(&value).is_relative()
        {
            // SAFETY: single-threaded here (see above): nothing reads the environment
            // concurrently.
            unsafe { std::env::set_var(var, cwd.join(&value)) };
        }
    }
}

/// A relative `CARGO_TARGET_DIR` is the invoking folder's, as cargo reads it: made
/// absolute for a cargo run in another folder (the plugin's), which would read it as its
/// own.
pub fn keep_target_dir(cmd: &mut Command) {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from)
        && dir.is_relative()
        && let Ok(cwd) = std::env::current_dir()
    {
        cmd.env("CARGO_TARGET_DIR", cwd.join(dir));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_config_settings_are_read_as_cargo_reads_them() {
        let root = tempfile::tempdir().unwrap();
        let plugin = root.path().join("ws/plugin");
        std::fs::create_dir_all(plugin.join("src")).unwrap();
        std::fs::create_dir_all(root.path().join("ws/.cargo")).unwrap();
        // In one `.cargo/`, `config` is read before `config.toml` (cargo warns of both).
        std::fs::write(
            root.path().join("ws/.cargo/config"),
            "[build]\nrustc = \"tools/rustc\"\nrustc-wrapper = \"sccache\"\n",
        )
        .unwrap();
        std::fs::write(
            root.path().join("ws/.cargo/config.toml"),
            "build.rustc = \"/elsewhere/rustc\"\n",
        )
        .unwrap();
        let rustc = cargo_config_with_home(&plugin.join("src"), "rustc", None).unwrap();
        // Relative to the folder that holds `.cargo`; a bare name stays a name.
        let ws = std::fs::canonicalize(root.path().join("ws")).unwrap();
        assert_eq!(rustc.program(), ws.join("tools/rustc"));
        assert_eq!(rustc.file, ws.join(".cargo/config"));
        let wrapper = cargo_config_with_home(&plugin, "rustc-wrapper", None).unwrap();
        assert_eq!(wrapper.program(), PathBuf::from("sccache"));
        // The nearest folder's setting wins.
        std::fs::create_dir_all(plugin.join(".cargo")).unwrap();
        std::fs::write(
            plugin.join(".cargo/config.toml"),
            "[build]\nrustc = \"/near/rustc\"\n",
        )
        .unwrap();
        assert_eq!(
            cargo_config_with_home(&plugin, "rustc", None)
                .unwrap()
                .program(),
            PathBuf::from("/near/rustc")
        );
        assert!(cargo_config_with_home(&plugin, "rustc-workspace-wrapper", None).is_none());
    }

    #[test]
    fn command_lines_are_shell_quoted() {
        let mut cmd = Command::new("cargo");
        cmd.args(["update", "-p", "bytes@1.10.0", "a b", "it's"]);
        assert_eq!(
            command_line(&cmd),
            r"cargo update -p bytes@1.10.0 'a b' 'it'\''s'"
        );
    }

    #[test]
    fn a_failed_child_reports_command_and_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo oops >&2; exit 3"]);
        let err = run(cmd).unwrap_err();
        assert_eq!(err.command, "sh -c 'echo oops >&2; exit 3'");
        assert_eq!(err.what, "failed (exit status: 3)");
        assert_eq!(err.stderr, "oops");
    }
}
