//! `gwhost check-plugin`: the operator's side of the compatibility check, as
//! `krakend check-plugin` is KrakenD's. It judges a plugin project, its `Cargo.lock` or a
//! built `.so` against the manifest this binary embeds — with the very code `cargo
//! gwplugin check` runs ([`cargo_gwplugin::check`]): one comparison, two front ends.

use std::path::{Path, PathBuf};

use cargo_gwplugin::check::{self, MessageFormat};
use cargo_gwplugin::host::{Host, HostKind, UNKNOWN};
use cargo_gwplugin::lockfile::Lockfile;
use cargo_gwplugin::plugin::PluginManifest;
use cargo_gwplugin::process::{self, Cargo};
use gwplugin_build::report::{Finding, Report};
use gwplugin_build::{AbiManifest, PackageName, Role, RustcInfo};
use gwplugin_host::LoadError;

use crate::error::GwError;

/// What `check-plugin` judges and how it answers.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Judge only the plugin's Cargo.lock: crate versions, not features
    #[arg(long, value_name = "PATH", conflicts_with_all = ["manifest_path", "file"])]
    pub lock: Option<PathBuf>,
    /// The plugin's Cargo.toml, resolved with cargo [default: the Cargo.toml of the
    /// current directory or a parent]
    #[arg(long, value_name = "PATH", conflicts_with = "file")]
    pub manifest_path: Option<PathBuf>,
    /// The rustc release the plugin will be built with [default: the compiler that would
    /// build it: $RUSTC, $CARGO_BUILD_RUSTC or `build.rustc`, else its
    /// rust-toolchain.toml, else the active toolchain; through the compiler wrappers cargo
    /// would use]
    #[arg(long, value_name = "VERSION", conflicts_with = "file", value_parser = rustc_arg)]
    pub rustc: Option<String>,
    /// Target triple the plugin will be built for [default: this host's]
    #[arg(long, value_name = "TRIPLE", conflicts_with = "file")]
    pub target: Option<String>,
    // Not with a FILE or `--lock`, which say nothing of features (refused in `cli`).
    #[command(flatten)]
    pub features: check::FeatureArgs,
    /// Output format
    #[arg(long, value_name = "FMT", value_enum, default_value_t = MessageFormat::Human)]
    pub message_format: MessageFormat,
    /// Also print the commands that would make the plugin compatible
    #[arg(long)]
    pub fix: bool,
    /// A built plugin: its manifest is read from the file, which is not loaded
    #[arg(value_name = "FILE.so")]
    pub file: Option<PathBuf>,
}

/// Where the compiler a plugin is judged with comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compiler {
    /// `--rustc VERSION`.
    Given,
    /// A compiler binary named by `$RUSTC` or `$CARGO_BUILD_RUSTC` (the variable).
    Env(&'static str, PathBuf),
    /// A compiler binary named by `build.rustc` in this cargo config file.
    Config(PathBuf, PathBuf),
    /// This compiler, run through the wrappers (said by what set them) that make it
    /// another.
    Wrapped(PathBuf, String),
    /// What rustup picks in the plugin's directory (its rust-toolchain.toml, else the
    /// active toolchain).
    Toolchain(PathBuf),
    /// Recorded in a built plugin file.
    Recorded,
}

impl Compiler {
    /// The compiler that would build a crate in `dir`: [`process::rustc_for`], whose
    /// answer `cargo gwplugin check` computes with.
    fn for_dir(dir: &Path) -> Compiler {
        let (rustc, source) = process::rustc_source(dir);
        if let Some(change) = process::wrappers_changing_compiler(&rustc, dir) {
            return Compiler::Wrapped(rustc, change.from);
        }
        match source {
            process::CompilerSource::Env(var) => Compiler::Env(var, rustc),
            process::CompilerSource::CargoConfig(file) => Compiler::Config(file, rustc),
            process::CompilerSource::Rustup => Compiler::Toolchain(rustc),
        }
    }

    fn path(&self) -> Option<&Path> {
        match self {
            Compiler::Env(_, path)
            | Compiler::Config(_, path)
            | Compiler::Toolchain(path)
            | Compiler::Wrapped(path, _) => Some(path),
            Compiler::Given | Compiler::Recorded => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Compiler::Given => "given with `--rustc`".to_owned(),
            Compiler::Env(var, path) => format!("from ${var} (`{}`)", path.display()),
            Compiler::Wrapped(path, from) => format!(
                "`{}` run through the wrapper set by {from}, which runs another",
                path.display()
            ),
            Compiler::Config(file, path) => format!(
                "from `build.rustc` in `{}` (`{}`)",
                file.display(),
                path.display()
            ),
            Compiler::Toolchain(path) => {
                format!("that would build the plugin (`{}`)", path.display())
            }
            Compiler::Recorded => "recorded in the plugin file".to_owned(),
        }
    }
}

/// What was judged and the verdict.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The plugin's package name.
    pub plugin: String,
    pub host: Host,
    /// The compiler the plugin was judged with, and where it comes from.
    pub rustc: RustcInfo,
    pub compiler: Compiler,
    pub report: Report,
    /// The plugin's Cargo.toml, when known.
    pub project: Option<PathBuf>,
}

/// This binary as a host: the manifest it embeds, and the `Cargo.lock` it was built from
/// (so that private crates at other versions are noted, as against the host project).
pub fn this_host() -> Result<Host, GwError> {
    let manifest = gwplugin_build::decode_record(crate::host_manifest_record())?;
    let path = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .unwrap_or_else(|_| PathBuf::from("gwhost"));
    let mut host = Host::from_manifest(path, HostKind::Binary, manifest);
    let lock = crate::host_lock();
    if let Ok(parsed) = Lockfile::parse(lock)
        && !parsed.packages.is_empty()
    {
        host.lock = Some(parsed);
        host.lock_text = Some(lock.to_owned());
    }
    Ok(host)
}

/// Judges what `args` name against `host`.
pub fn check_plugin(args: &Args, host: Host) -> Result<Checked, GwError> {
    if let Some(file) = &args.file {
        return check_file(file, host);
    }
    if let Some(lock) = &args.lock {
        return check_lock(args, lock, host);
    }
    let cargo = Cargo::from_env();
    let plugin = PluginManifest::locate(args.manifest_path.as_deref())?;
    let features = args.features.resolve(&cargo, &plugin)?;
    let (mut manifest, lock) =
        check::plugin_manifest(&cargo, &plugin, &host, args.target.as_deref(), features)?;
    let compiler = match &args.rustc {
        Some(release) => {
            manifest.rustc = given_rustc(release, &host);
            Compiler::Given
        }
        None => Compiler::for_dir(plugin.dir()),
    };
    let report = check::report(&host, &manifest, Some(&lock), Some(&plugin));
    Ok(Checked {
        plugin: plugin.package_name(),
        rustc: manifest.rustc,
        compiler,
        report,
        project: Some(plugin.path.clone()),
        host,
    })
}

/// `--rustc`: a release (`1.95.0`, `1.97.0-nightly`), or a release and its commit as
/// `check` shows them (`1.95.0 (59807616e)`, `rustc -V`'s `(59807616e 2026-03-21)` too).
fn rustc_arg(text: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "`{text}` is not a rustc release: write one like `1.95.0` (or `1.95.0 (59807616e)`, \
             as `check` shows it)"
        )
    };
    let (release, commit) = split_rustc(text);
    let numbers = release.split('-').next().unwrap_or_default();
    let is_release = numbers.split('.').count() == 3
        && numbers
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let is_commit = commit.is_none_or(|c| c.len() >= 7 && c.bytes().all(|b| b.is_ascii_hexdigit()));
    match is_release && is_commit {
        true => Ok(text.trim().to_owned()),
        false => Err(bad()),
    }
}

/// `1.95.0 (59807616e 2026-03-21)` → (`1.95.0`, `Some("59807616e")`).
fn split_rustc(text: &str) -> (&str, Option<&str>) {
    let text = text.trim();
    match text.split_once(' ') {
        Some((release, rest)) => (
            release,
            rest.trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split_whitespace()
                .next(),
        ),
        None => (text, None),
    }
}

/// `--rustc VERSION`: a stable release names exactly one compiler, so at the host's
/// release it is the host's commit; with a commit given, that one (the host's, when it is
/// a prefix of it); anything else is not known by its commit.
fn given_rustc(text: &str, host: &Host) -> RustcInfo {
    let (release, commit) = split_rustc(text);
    let host_rustc = &host.manifest.rustc;
    let commit_hash = match commit {
        Some(c) if host_rustc.commit_hash.starts_with(c) => host_rustc.commit_hash.clone(),
        Some(c) => c.to_owned(),
        None if is_stable(release) && release == host_rustc.release => {
            host_rustc.commit_hash.clone()
        }
        None => "unknown".to_owned(),
    };
    RustcInfo {
        release: release.to_owned(),
        commit_hash,
    }
}

/// `1.95.0`, as opposed to `1.97.0-nightly` (which does not say which nightly).
fn is_stable(release: &str) -> bool {
    release.split('.').count() == 3
        && release
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A built `.so`: the loader's own pre-`dlopen` checks of the file, then the manifest it
/// carries compared like any other.
fn check_file(file: &Path, host: Host) -> Result<Checked, GwError> {
    let bytes = std::fs::read(file).map_err(|e| cargo_gwplugin::Error::Io {
        path: file.to_owned(),
        message: e.to_string(),
    })?;
    let mut file_findings = Vec::new();
    // Only once the manifests agree is the layout record this gwplugin's to compare.
    let mut manifests_agree = false;
    match gwplugin_host::verify_against(&host.manifest, file, &bytes) {
        Ok(_) => manifests_agree = true,
        Err(LoadError::Incompatible { .. }) => {}
        Err(LoadError::WrongMachine { found, want, .. }) => file_findings.push(Finding {
            field: "machine".into(),
            have: found,
            want,
            help: Some(format!("build with `--target {}`", host.manifest.target)),
        }),
        Err(LoadError::WrongLibc {
            found,
            needed,
            want,
            ..
        }) => file_findings.push(Finding {
            field: "libc".into(),
            have: format!("{found} (NEEDED {needed})"),
            want,
            help: Some(format!(
                "build for this host's target `{}`",
                host.manifest.target
            )),
        }),
        Err(e) => return Err(GwError::PluginFile(e)),
    }
    let manifest = gwplugin_build::elf::plugin_manifest(&bytes, gwplugin_build::PLUGIN_SYMBOL)
        .map_err(|e| {
            GwError::PluginFile(LoadError::BadManifest {
                path: file.to_owned(),
                message: e.to_string(),
            })
        })?;
    if manifests_agree {
        match gwplugin_host::verify_layout(file, &bytes) {
            Ok(()) => {}
            Err(LoadError::Layout { diffs, .. }) => file_findings.extend(diffs.iter().map(|d| {
                let (have, want) = gwplugin_host::layout_pair(d);
                Finding {
                    field: format!("layout of `{}`", d.type_name),
                    have,
                    want,
                    help: Some(crate::error::LAYOUT_HELP.to_owned()),
                }
            })),
            Err(e) => return Err(GwError::PluginFile(e)),
        }
    }
    let mut report = check::report(&host, &manifest, None, None);
    for f in file_findings {
        report.incompatibility(f);
    }
    Ok(Checked {
        plugin: manifest.package.name.clone(),
        rustc: manifest.rustc.clone(),
        compiler: Compiler::Recorded,
        report,
        project: None,
        host,
    })
}

/// A plugin's `Cargo.lock` alone: its boundary crates' versions, judged with the
/// compiler that would build it; features are not known.
fn check_lock(args: &Args, lock_path: &Path, host: Host) -> Result<Checked, GwError> {
    let cwd = std::env::current_dir().map_err(|e| cargo_gwplugin::Error::Io {
        path: ".".into(),
        message: e.to_string(),
    })?;
    let lock_path = cwd.join(lock_path);
    let not_a_plugin_lock = |reason: String| GwError::NotAPluginLock {
        path: lock_path.clone(),
        reason,
    };
    if !lock_path.to_string_lossy().ends_with(".lock") {
        return Err(not_a_plugin_lock("its name does not end in `.lock`".into()));
    }
    let text = std::fs::read_to_string(&lock_path).map_err(|e| cargo_gwplugin::Error::Io {
        path: lock_path.clone(),
        message: e.to_string(),
    })?;
    let lock = Lockfile::parse(&text).map_err(|message| cargo_gwplugin::Error::Parse {
        path: lock_path.clone(),
        message,
    })?;
    let contracts = lock.named("gwplugin").count();
    if contracts != 1 {
        return Err(not_a_plugin_lock(format!(
            "it locks {contracts} versions of `gwplugin`, not one"
        )));
    }
    // The lock as a manifest (what `cargo gwplugin check` does with a lock host), with
    // what a lock cannot tell taken from this host, so that only versions are compared.
    let locked = Host::resolve(&lock_path, &cwd, &Cargo::from_env())?;
    let mut manifest: AbiManifest = locked.comparable(&host.manifest);
    manifest.role = Role::Plugin;
    manifest.package = root_package(&lock).unwrap_or(manifest.package);
    let dir = lock_path.parent().unwrap_or(&cwd);
    let compiler = match &args.rustc {
        Some(release) => {
            manifest.rustc = given_rustc(release, &host);
            Compiler::Given
        }
        None => {
            let compiler = Compiler::for_dir(dir);
            let rustc = compiler.path().expect("a found compiler has a path");
            manifest.rustc = process::plugin_rustc_version(rustc, dir)
                .map_err(cargo_gwplugin::Error::from)?
                .info;
            compiler
        }
    };
    if let Some(target) = &args.target {
        manifest.target = target.clone();
    }
    let mut report = check::report(&host, &manifest, Some(&lock), None);
    report.note(Finding {
        field: "crate features".into(),
        have: UNKNOWN.into(),
        want: "this host's".into(),
        help: Some(
            "not compared: a Cargo.lock does not name them; `--manifest-path` resolves them".into(),
        ),
    });
    report.notes.sort_by(|a, b| a.field.cmp(&b.field));
    let project = dir.join("Cargo.toml");
    Ok(Checked {
        plugin: manifest.package.name.clone(),
        rustc: manifest.rustc,
        compiler,
        report,
        project: project.is_file().then_some(project),
        host,
    })
}

/// The package of a lock that depends on `gwplugin` and that nothing depends on: the
/// plugin itself.
fn root_package(lock: &Lockfile) -> Option<PackageName> {
    let depended: std::collections::BTreeSet<&str> = lock
        .packages
        .iter()
        .flat_map(|p| p.dependencies.iter())
        .filter_map(|d| d.split(' ').next())
        .collect();
    let mut roots = lock.packages.iter().filter(|p| {
        p.source.is_none()
            && !depended.contains(p.name.as_str())
            && p.dependencies
                .iter()
                .any(|d| d.split(' ').next() == Some("gwplugin"))
    });
    match (roots.next(), roots.next()) {
        (Some(p), None) => Some(PackageName {
            name: p.name.clone(),
            version: p.version.clone(),
        }),
        _ => None,
    }
}

/// What `--fix` prints: the commands that would resolve the incompatibilities.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Fix {
    /// Run these, in this order.
    pub commands: Vec<String>,
    /// Where: None for the current directory, else a description of the plugin project
    /// to run them in (a built file does not say where its sources are).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_in: Option<String>,
    /// Incompatibilities these commands do not resolve (their `help` says what to do).
    pub not_fixed: Vec<String>,
}

/// Whether `cargo gwplugin sync` resolves an incompatibility: it pins the host's
/// compiler in rust-toolchain.toml (a stable one: a nightly's release does not say which
/// nightly), and moves `gwplugin` and boundary crates to the host's versions, and adds a
/// missing `cdylib`. (`gwplugin source` alone: when the host names a source it can
/// write, [`check::sync_sets_contract_source`].)
fn sync_fixes(field: &str, host_release: &str) -> bool {
    match field.strip_prefix("crate ") {
        // `crate NAME` is its version; `crate NAME source` / `… features` are not synced.
        Some(rest) => !rest.contains(' '),
        None if field.starts_with("rustc") => is_stable(host_release),
        None => field == "gwplugin" || field == "crate-type",
    }
}

/// The commands that would make `checked` compatible with its host.
pub fn fix(checked: &Checked) -> Fix {
    let mut fix = Fix::default();
    let report = &checked.report;
    if report.compatible {
        return fix;
    }
    let fields: Vec<&str> = report
        .incompatibilities
        .iter()
        .map(|f| f.field.as_str())
        .collect();
    let host_release = &checked.host.manifest.rustc.release;
    let plugin = checked
        .project
        .as_ref()
        .and_then(|path| PluginManifest::read(path.clone()).ok());
    let source_synced = check::sync_sets_contract_source(&checked.host, plugin.as_ref());
    // `gwplugin`'s version and source alike, where `sync` can write them.
    let sync_fixes = |field: &str| {
        if field.starts_with("gwplugin") {
            source_synced
        } else {
            sync_fixes(field, host_release)
        }
    };
    let compiler_differs = fields.iter().any(|f| f.starts_with("rustc"));
    // A compiler named outside rustup, or a wrapper that runs another: no pin `sync`
    // writes changes it, so the compiler is not among what the commands fix.
    let compiler_pinned_elsewhere = matches!(
        checked.compiler,
        Compiler::Config(..) | Compiler::Wrapped(..)
    );
    let sync_fixes = |field: &str| {
        !(field.starts_with("rustc") && compiler_pinned_elsewhere) && sync_fixes(field)
    };
    if fields.iter().any(|f| sync_fixes(f)) {
        let mut cmd = std::process::Command::new("cargo");
        cmd.args(["gwplugin", "sync"]);
        if let Some(project) = &checked.project {
            cmd.arg("--manifest-path").arg(project);
        } else {
            fix.run_in = Some(format!("the project of `{}`", checked.plugin));
        }
        cmd.arg("--host").arg(&checked.host.path);
        fix.commands.push(process::command_line(&cmd));
    }
    if compiler_differs && is_stable(host_release) && !compiler_pinned_elsewhere {
        fix.commands
            .push(format!("rustup toolchain install {host_release}"));
    }
    if compiler_differs && let Compiler::Env(var, _) = &checked.compiler {
        fix.commands.push(format!("unset {var}"));
    }
    fix.not_fixed = fields
        .iter()
        .filter(|f| !sync_fixes(f))
        .map(|f| f.to_string())
        .collect();
    fix
}

impl Fix {
    /// For people: the commands, indented, after a line saying where to run them.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        if !self.commands.is_empty() {
            match &self.run_in {
                None => out.push_str("to fix, run:\n"),
                Some(place) => out.push_str(&format!("to fix, run in {place}, then rebuild it:\n")),
            }
            for c in &self.commands {
                out.push_str(&format!("    {c}\n"));
            }
        }
        if !self.not_fixed.is_empty() {
            out.push_str(&format!(
                "not fixed by a command: {} (see `help` above)\n",
                self.not_fixed.join(", ")
            ));
        }
        out
    }
}

/// Runs `check-plugin` and prints its answer; true when the plugin is compatible.
pub fn exec(args: &Args) -> Result<bool, GwError> {
    let host = this_host()?;
    let checked = check_plugin(args, host)?;
    let fix = args.fix.then(|| fix(&checked));
    match args.message_format {
        MessageFormat::Human => {
            cargo_gwplugin::status(
                "Checking",
                &format!(
                    "`{}` against host {}",
                    checked.plugin,
                    checked.host.describe()
                ),
            );
            cargo_gwplugin::status(
                "Using",
                &format!("rustc {} {}", checked.rustc, checked.compiler.describe()),
            );
            cargo_gwplugin::print_stdout(&checked.report.render_human());
            if let Some(fix) = &fix {
                cargo_gwplugin::print_stdout(&fix.render_human());
            }
        }
        MessageFormat::Json => match &fix {
            None => cargo_gwplugin::print_stdout(&format!("{}\n", checked.report.to_json())),
            Some(fix) => {
                /// The shared report's JSON, then `fix`.
                #[derive(serde::Serialize)]
                struct WithFix<'a> {
                    #[serde(flatten)]
                    report: &'a Report,
                    fix: &'a Fix,
                }
                let json = WithFix {
                    report: &checked.report,
                    fix,
                };
                cargo_gwplugin::print_stdout(&format!(
                    "{}\n",
                    serde_json::to_string(&json).expect("report serialises")
                ));
            }
        },
    }
    Ok(checked.report.compatible)
}
