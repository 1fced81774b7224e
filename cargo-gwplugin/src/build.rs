//! `cargo gwplugin build`: check, build a genuine cdylib for the target, verify it, copy
//! it where a gateway loads it from, and write the config that registers it.

use std::path::{Path, PathBuf};

use gwplugin_build::elf::{self, ExportedPlugin};
use gwplugin_build::{AbiManifest, PackageName};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::check::{self, MessageFormat};
use crate::error::{Error, io};
use crate::host::Host;
use crate::plugin::{PluginHostArgs, PluginManifest};
use crate::process::{self, Cargo};
use crate::register::{self, Json};
use crate::target::{self, Target};
use crate::txn::Transaction;
use crate::{Outcome, status};

/// Build the plugin for a target, verify the artifact and write its registration snippet
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Target triple [default: the host's target]; one of x86_64-unknown-linux-gnu,
    /// x86_64-unknown-linux-musl, aarch64-unknown-linux-gnu
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
    /// Build with the release profile
    #[arg(long, short = 'r', conflicts_with = "profile")]
    pub release: bool,
    /// Build with the given profile
    #[arg(long, value_name = "PROFILE-NAME")]
    pub profile: Option<String>,
    #[command(flatten)]
    pub plugin: PluginHostArgs,
    /// Where to put the plugin and its snippet [default: <target-dir>/gwplugin/<TRIPLE>].
    /// With `--register`, the config's `plugin.folder` must be this folder
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Also add the plugin to this gwhost config (atomically; other keys and their order
    /// kept) and, without `--out-dir`, copy it into the config's `plugin.folder` (`plugins`
    /// beside the config when it names none)
    #[arg(long, value_name = "CONFIG")]
    pub register: Option<PathBuf>,
    /// With `--register`: the endpoint(s) that get the plugin's modifiers and http-client,
    /// as `PATH`, or `'METHOD PATH'` when endpoints share a path [default: the config's
    /// only endpoint; without `--plugin`, none when the config already uses one of the
    /// file's plugins (a rebuild keeps its wiring)]
    #[arg(long, value_name = "[METHOD] PATH", requires = "register")]
    pub endpoint: Vec<String>,
    /// With `--register`: wire only this plugin of the file (repeatable), also when the
    /// config already uses the file: an http-server plugin in the service, a modifier or
    /// the http-client in the `--endpoint`s [default: every plugin the first time (one
    /// http-client); after, none, or with `--endpoint` every modifier and the http-client]
    #[arg(long = "plugin", value_name = "NAME", requires = "register")]
    pub plugins: Vec<String>,
    /// Build even if `check` finds incompatibilities
    #[arg(long)]
    pub no_check: bool,
    /// Output format: `json` prints one line describing what was built (or, when the
    /// build is refused, `check`'s report)
    #[arg(long, value_name = "FMT", value_enum, default_value_t = MessageFormat::Human)]
    pub message_format: MessageFormat,
    #[command(flatten)]
    pub features: check::FeatureArgs,
    /// Require Cargo.lock to be up to date (passed to cargo)
    #[arg(long)]
    pub locked: bool,
    /// Run without accessing the network (passed to cargo)
    #[arg(long)]
    pub offline: bool,
    /// `-v`/`-vv` and `-q` of the command line (global options, passed to cargo).
    #[arg(skip)]
    pub verbose: u8,
    #[arg(skip)]
    pub quiet: bool,
    /// More arguments for `cargo build`
    #[arg(last = true, value_name = "CARGO-ARGS")]
    pub cargo_args: Vec<String>,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Built {
    pub plugin: PathBuf,
    pub snippet: PathBuf,
    pub sha256: String,
    pub exports: Vec<ExportedPlugin>,
}

/// Runs `build`.
pub fn exec(args: &Args) -> Result<Outcome, Error> {
    build(args).map(|_| Outcome::Ok)
}

/// Does the work of `build` and says what it produced.
pub fn build(args: &Args) -> Result<Built, Error> {
    // The build script records the package's own features (`CARGO_FEATURE_*`): a
    // dependency's, given here, it cannot see.
    let cargo = Cargo::from_env();
    let plugin = args.plugin.plugin()?;
    // (`package/feature` of the plugin's own package is its own feature.)
    let own = format!("{}/", plugin.package_name());
    if let Some(feature) = args
        .features
        .features
        .iter()
        .flat_map(|f| f.split([' ', ',']))
        .find(|f| f.contains('/') && !f.starts_with(&own))
    {
        return Err(Error::UnrecordedFeature(feature.to_owned()));
    }
    // After `--`, what picks the features or the packages built: the build script would
    // record the plugin's own features, and another package built beside it adds its own
    // to the shared dependencies, unrecorded.
    if let Some(arg) = args.cargo_args.iter().find(|a| {
        let name = a.split('=').next().unwrap_or_default();
        matches!(
            name,
            "--features"
                | "--all-features"
                | "--no-default-features"
                | "--workspace"
                | "--all"
                | "--package"
                | "--exclude"
        ) || (a.starts_with('-')
            && !a.starts_with("--")
            // Short flags, alone or together (`-vp other`, `-qF feature`).
            && a[1..].chars().any(|c| c == 'p' || c == 'F'))
    }) {
        return Err(Error::SelectionAfterDashes(arg.clone()));
    }
    let host = match args.plugin.host_spec(&plugin) {
        // Without a check, the host is only needed to pick the default target.
        Ok(_) if args.no_check && args.target.is_some() => None,
        Ok((spec, base)) => Some(Host::resolve(&spec, &base, &cargo)?),
        Err(e) if args.no_check => {
            status("Warning", &format!("{e}: building without a check"));
            None
        }
        Err(e) => return Err(e),
    };
    let rustc = process::rustc_for(plugin.dir());
    let triple = match (&args.target, &host) {
        (Some(t), _) => t.clone(),
        (None, Some(h)) if h.knows_compiler => h.manifest.target.clone(),
        (None, _) => native_triple(&rustc)?,
    };
    let target = Target::parse(&triple)?;

    // Before building: the compiler and the target, which decide whether a build can
    // be of any use (cheap: `rustc -vV`). After building, the artifact's own manifest —
    // written by the build script from the real resolve — is judged in full.
    if let Some(host) = host.as_ref().filter(|h| h.knows_compiler && !args.no_check) {
        // Without a lock, cargo would resolve every boundary crate to its newest version,
        // build, and the artifact would be refused: refused now, as `check` refuses it.
        let ws_manifest = cargo.workspace_manifest(&plugin.path)?;
        let lock_path = ws_manifest.with_file_name("Cargo.lock");
        if !lock_path.is_file() {
            return Err(Error::NoLock(lock_path));
        }
        // The host's manifest with what is known before building: judged by the same
        // comparison as everything else.
        let predicted = AbiManifest {
            package: PackageName {
                name: plugin.package_name(),
                // As written (one a workspace gives is not known before the build).
                version: plugin
                    .doc
                    .get("package")
                    .and_then(|p| p.get("version"))
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned(),
            },
            rustc: process::plugin_rustc_version(&rustc, plugin.dir())?.info,
            target: triple.clone(),
            ..host.manifest.clone()
        };
        // With the crate: a missing `cdylib` is refused here too, before a build that
        // could make nothing to load, and the compiler's help knows who named it.
        let mut early = check::report(host, &predicted, None, Some(&plugin));
        // The profile this build takes, as cargo picks it.
        let profile = match (&args.profile, args.release) {
            (Some(profile), _) => profile.as_str(),
            (None, true) => "release",
            (None, false) => "dev",
        };
        for finding in check::panic_findings(&ws_manifest, &[profile])? {
            early.incompatibility(finding);
        }
        if !early.compatible {
            print_report(&early, args.message_format);
            return Err(Error::Incompatible {
                package: plugin.package_name(),
                host: host.describe(),
                count: early.incompatibilities.len(),
            });
        }
    }

    // Helper files for cross targets live in the target dir; a native build needs none,
    // and skips the extra `cargo metadata`.
    let env = if target::needs_setup(target) {
        let metadata = cargo.metadata(&plugin.path, &["--no-deps"])?;
        target::prepare(target, &rustc, &metadata.target_directory.join("gwplugin"))?
    } else {
        target::TargetEnv::default()
    };
    // A config the plugin cannot go into fails now, not after the build.
    if let Some(config) = &args.register {
        let file = register::ConfigFile::read(config, &plugin.package_name(), &args.endpoint)?;
        if let Some(out_dir) = &args.out_dir {
            let out_dir = std::env::current_dir().map_err(io("."))?.join(out_dir);
            file.check_out_dir(&plugin.package_name(), &out_dir)?;
        }
    }
    let artifact = cargo_build(&cargo, &plugin, args, target, &env)?;

    // Verify before anything is copied or registered.
    let bytes = std::fs::read(&artifact).map_err(io(&artifact))?;
    let bad = |reason: String| Error::BadArtifact {
        path: artifact.clone(),
        target: triple.clone(),
        reason,
    };
    let facts = target::verify_artifact(target, &bytes).map_err(bad)?;
    let unloadable = |reason: String, help: &'static str| Error::Unloadable {
        path: artifact.clone(),
        reason,
        help,
    };
    if let Some(needed) = facts.dynamic_std() {
        return Err(unloadable(
            format!(
                "it links the Rust standard library dynamically (NEEDED {needed}, \
                 `-C prefer-dynamic`), which no gateway has beside it"
            ),
            "build without `-C prefer-dynamic` (in `RUSTFLAGS`, `.cargo/config.toml` or a \
             profile's `rustflags`)",
        ));
    }
    let built_manifest =
        elf::plugin_manifest(&bytes, gwplugin_build::PLUGIN_SYMBOL).map_err(|e| match e {
            elf::ElfError::NoManifest(..) => unloadable(
                "it has no gwplugin ABI manifest: the crate does not call `gwplugin::export!`"
                    .to_owned(),
                "name the library's plugins in its lib.rs: `gwplugin::export! { modifier \
                 \"my-plugin\" => factory }` (as the templates of `cargo gwplugin new` do)",
            ),
            e => bad(e.to_string()),
        })?;
    if let Some(built_by) = facts.other_compiler(&built_manifest.rustc) {
        return Err(unloadable(
            format!(
                "its ABI manifest says rustc {}, but the file says rustc {built_by} built it: \
                 the manifest does not describe this file",
                built_manifest.rustc
            ),
            "build without a `RUSTC_WRAPPER` (or `build.rustc-wrapper`) that runs another \
             compiler than the `rustc` cargo names",
        ));
    }
    if built_manifest.target != triple {
        return Err(bad(format!(
            "its ABI manifest says target `{}`",
            built_manifest.target
        )));
    }
    if let Some(host) = &host {
        let report = check::report(host, &built_manifest, None, Some(&plugin));
        if !args.no_check && !report.compatible {
            print_report(&report, args.message_format);
            return Err(Error::Incompatible {
                package: plugin.package_name(),
                host: host.describe(),
                count: report.incompatibilities.len(),
            });
        }
        status(
            "Checked",
            &format!(
                "the artifact's ABI manifest against host {}: {}",
                host.describe(),
                report.summary()
            ),
        );
        if !report.compatible {
            // `--no-check` builds it anyway; what the host will refuse is said, not hidden
            // behind a count (and registered, it stops the gateway's start).
            status(
                "Warning",
                &format!(
                    "built with `--no-check`: host {} will refuse this plugin:\n{}",
                    host.describe(),
                    report.render_human().trim_end()
                ),
            );
        }
    }
    let exports = elf::plugin_exports(&bytes).map_err(|e| bad(e.to_string()))?;
    status(
        "Verified",
        &format!(
            "{} cdylib for {} (NEEDED {}), {} plugin(s): {}",
            facts.machine,
            triple,
            facts.needed.join(", "),
            exports.len(),
            exports
                .iter()
                .map(|e| format!("{} `{}`", e.kind, e.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );

    let name = plugin.package_name();
    // Read again: the config may have been edited during the build.
    let config = match &args.register {
        Some(path) => Some((
            path,
            register::ConfigFile::read(path, &name, &args.endpoint)?,
        )),
        None => None,
    };
    let cwd = std::env::current_dir().map_err(io("."))?;
    let out_dir = match &args.out_dir {
        Some(d) => cwd.join(d),
        // <target-dir>/<triple>/<profile>/lib<name>.so → <target-dir>/gwplugin/<triple>
        None => artifact
            .ancestors()
            .nth(3)
            .map(|target_dir| target_dir.join("gwplugin").join(&triple))
            .ok_or_else(|| bad(format!("unexpected artifact path `{}`", artifact.display())))?,
    };
    // Registered without `--out-dir`: a copy goes where the config loads its plugins
    // from, not the target dir, which `cargo clean` empties under a gateway's config.
    let install_dir = match (&args.out_dir, &config) {
        (None, Some((_, file))) => Some(cwd.join(file.plugin_folder())),
        _ => None,
    };
    // From here on all or nothing: a conflict leaves the plugin that the config loads
    // now, its checksum there, and the folders as they were.
    let mut files = Transaction::new();
    let mut made = |dir: PathBuf| -> Result<PathBuf, Error> {
        files.create_dir_all(&dir)?;
        dir.canonicalize().map_err(io(&dir))
    };
    let out_dir = made(out_dir)?;
    let install_dir = install_dir
        .map(&mut made)
        .transpose()?
        .filter(|dir| *dir != out_dir);
    let file_name = format!("{name}.so");
    let dest = out_dir.join(&file_name);
    let sha256 = sha256_hex(&bytes);

    let configs = default_configs(&plugin);
    // A default config under a name the library does not export (a plugin renamed in
    // `export!`, its table not) goes nowhere: the plugin is registered with `{}`.
    for name in configs.keys() {
        if !exports.iter().any(|e| &e.name == name) {
            status(
                "Warning",
                &format!(
                    "`[package.metadata.gwplugin.config.{name}]` names no plugin this library \
                     exports ({}): it is not used\nhelp: name the table after the plugin, as \
                     `export!` does",
                    exports
                        .iter()
                        .map(|e| format!("`{}`", e.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    let snippet_in = |dir: &Path| snippet(dir, &file_name, &sha256, &exports, &configs);
    let snippet_path = out_dir.join(format!("{name}.gwplugin.json"));
    let text = serde_json::to_string_pretty(&snippet_in(&out_dir)).expect("JSON") + "\n";
    let registered = match config {
        Some((path, file)) => {
            let into = install_dir.as_deref().unwrap_or(&out_dir);
            let wiring = register::Wiring {
                exports: &exports,
                defaults: &configs,
                endpoints: &args.endpoint,
                plugins: &args.plugins,
            };
            Some((path, file.merge(&snippet_in(into), &name, &wiring)?))
        }
        None => None,
    };
    files.write(&dest, &bytes)?;
    files.write(&snippet_path, text.as_bytes())?;
    let installed = install_dir.map(|dir| dir.join(&file_name));
    if let Some(copy) = &installed {
        files.write(copy, &bytes)?;
    }
    if let Some((config, merged)) = &registered
        && let Some(text) = &merged.text
    {
        files.write(config, text.as_bytes())?;
    }
    files.commit();
    status("Finished", &format!("`{}`", dest.display()));
    status(
        "Wrote",
        &format!("registration snippet `{}`", snippet_path.display()),
    );
    if let Some(copy) = &installed {
        status("Installed", &format!("`{}`", copy.display()));
    }
    if let Some((config, merged)) = &registered {
        status(
            "Registered",
            &format!(
                "`{name}` in `{}`: {}",
                config.display(),
                if merged.changes.is_empty() {
                    "already up to date".to_owned()
                } else {
                    merged.changes.join(", ")
                }
            ),
        );
        for note in &merged.notes {
            status("Note", note);
        }
    }
    if args.message_format == MessageFormat::Json {
        // One line, for scripts and CI: what was built, where it went, and what it holds.
        let line = json!({
            "reason": "gwplugin-artifact",
            "package": name,
            "target": triple,
            "plugin": dest.display().to_string(),
            "sha256": sha256,
            "snippet": snippet_path.display().to_string(),
            "installed": installed.as_ref().map(|p| p.display().to_string()),
            "exports": exports
                .iter()
                .map(|e| json!({"kind": e.kind, "name": e.name}))
                .collect::<Vec<_>>(),
            "registered": registered.as_ref().map(|(config, merged)| {
                json!({
                    // Absolute, as every other path here (it was as given).
                    "config": std::fs::canonicalize(config)
                        .unwrap_or_else(|_| cwd.join(config))
                        .display()
                        .to_string(),
                    "changes": merged.changes,
                    "notes": merged.notes,
                })
            }),
        });
        crate::print_stdout(&format!("{line}\n"));
    }
    Ok(Built {
        plugin: dest,
        snippet: snippet_path,
        sha256,
        exports,
    })
}

fn cargo_build(
    cargo: &Cargo,
    plugin: &PluginManifest,
    args: &Args,
    target: Target,
    env: &target::TargetEnv,
) -> Result<PathBuf, Error> {
    let mut cmd = target::build_command(cargo, &plugin.path, plugin.dir(), "--lib", target, env);
    if args.release {
        cmd.arg("--release");
    }
    if let Some(p) = &args.profile {
        cmd.args(["--profile", p]);
    }
    for f in &args.features.features {
        cmd.args(["--features", f]);
    }
    for (flag, on) in [
        ("--all-features", args.features.all_features),
        ("--no-default-features", args.features.no_default_features),
        ("--locked", args.locked),
        ("--offline", args.offline),
        ("--quiet", args.quiet),
    ] {
        if on {
            cmd.arg(flag);
        }
    }
    for _ in 0..args.verbose {
        cmd.arg("--verbose");
    }
    cmd.args(&args.cargo_args);
    if args.verbose > 0 {
        for (k, v) in &env.vars {
            status("Using", &format!("{k}={v}"));
        }
    }
    let command = process::command_line(&cmd);
    let package = plugin.package_name();
    let artifact = crate::target::cargo_build(cmd)?
        .into_iter()
        .rev()
        .find_map(|msg| {
            let is_cdylib = msg["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
            let so = msg["filenames"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .find(|f| f.ends_with(".so"));
            is_cdylib.then(|| so.map(PathBuf::from)).flatten()
        });
    artifact.ok_or(Error::NoArtifact { command, package })
}

/// `[package.metadata.gwplugin.config.NAME]` tables: each plugin's default config, as JSON.
/// The default configs in `[package.metadata.gwplugin.config]`, by plugin name.
/// The sha256 of a file's bytes, as a config's `plugin.sha256` lists it (lowercase hex).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn default_configs(plugin: &PluginManifest) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    let table = plugin
        .doc
        .get("package")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("gwplugin"))
        .and_then(|g| g.get("config"))
        .and_then(|c| c.as_table_like());
    if let Some(table) = table {
        for (name, item) in table.iter() {
            out.insert(name.to_owned(), toml_to_json(item));
        }
    }
    out
}

fn toml_to_json(item: &toml_edit::Item) -> Value {
    use toml_edit::Item;
    match item {
        Item::None => Value::Null,
        Item::Value(v) => toml_value_to_json(v),
        Item::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.to_owned(), toml_to_json(v)))
                .collect(),
        ),
        Item::ArrayOfTables(a) => Value::Array(
            a.iter()
                .map(|t| toml_to_json(&Item::Table(t.clone())))
                .collect(),
        ),
    }
}

fn toml_value_to_json(v: &toml_edit::Value) -> Value {
    use toml_edit::Value as T;
    match v {
        T::String(s) => json!(s.value()),
        T::Integer(i) => json!(i.value()),
        T::Float(f) => json!(f.value()),
        T::Boolean(b) => json!(b.value()),
        T::Datetime(d) => json!(d.value().to_string()),
        T::Array(a) => Value::Array(a.iter().map(toml_value_to_json).collect()),
        T::InlineTable(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.to_owned(), toml_value_to_json(v)))
                .collect(),
        ),
    }
}

/// The registration snippet: the `plugin` block, and the namespace blocks for each kind
/// with the plugin's names and default configs, ready to paste into a gwhost config.
pub fn snippet(
    out_dir: &Path,
    file_name: &str,
    sha256: &str,
    exports: &[ExportedPlugin],
    configs: &serde_json::Map<String, Value>,
) -> Json {
    let object = |pairs: Vec<(&str, Json)>| {
        Json::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    };
    let string = |s: &str| Json::String(s.to_owned());
    let mut top = vec![(
        "plugin",
        object(vec![
            ("folder", string(&out_dir.display().to_string())),
            ("pattern", string(".so")),
            ("sha256", object(vec![(file_name, string(sha256))])),
        ]),
    )];
    let block = |kind: &str, list: bool| -> Option<Json> {
        let names: Vec<&str> = exports
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.name.as_str())
            .collect();
        let first = *names.first()?;
        let name = if list {
            Json::Array(names.iter().map(|n| string(n)).collect())
        } else {
            string(first)
        };
        let mut pairs = vec![("name", name)];
        let chosen = if list { names.clone() } else { vec![first] };
        for n in chosen {
            pairs.push((
                n,
                configs
                    .get(n)
                    .map(Json::from)
                    .unwrap_or_else(|| object(vec![])),
            ));
        }
        Some(object(pairs))
    };
    if let Some(b) = block("http-server", true) {
        top.push(("extra_config", object(vec![("plugin/http-server", b)])));
    }
    if let Some(b) = block("modifier", true) {
        top.push((
            "endpoint_extra_config",
            object(vec![("plugin/req-resp-modifier", b)]),
        ));
    }
    if let Some(b) = block("http-client", false) {
        top.push((
            "backend_extra_config",
            object(vec![("plugin/http-client", b)]),
        ));
    }
    object(top)
}

/// A refusal's report, as `check` prints it in that format.
fn print_report(report: &gwplugin_build::report::Report, format: MessageFormat) {
    match format {
        MessageFormat::Human => crate::print_stdout(&report.render_human()),
        MessageFormat::Json => crate::print_stdout(&format!("{}\n", report.to_json())),
    }
}

fn native_triple(rustc: &Path) -> Result<String, Error> {
    Ok(process::rustc_version(rustc)?.host)
}
