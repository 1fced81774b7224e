//! `cargo gwplugin check`: would this plugin load in its host? Computed without building.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use gwplugin_build::report::{Finding, Report};
use gwplugin_build::{AbiManifest, ManifestRequest, Role};

use crate::error::{Error, io};
use crate::host::Host;
use crate::lockfile::Lockfile;
use crate::plugin::{PluginHostArgs, PluginManifest};
use crate::process::{self, Cargo};
use crate::{Outcome, status};

/// Output format of `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MessageFormat {
    Human,
    Json,
}

/// Compare the plugin's would-be ABI manifest with its host's, without building.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub plugin: PluginHostArgs,
    /// Target triple to check for [default: the host's target]
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
    #[command(flatten)]
    pub features: FeatureArgs,
    /// Output format
    #[arg(long, value_name = "FMT", value_enum, default_value_t = MessageFormat::Human)]
    pub message_format: MessageFormat,
}

/// The features to check the plugin with, as cargo takes them: a plugin's feature may turn
/// on a boundary crate's, which the host must then have too.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FeatureArgs {
    /// Space or comma separated list of features to activate
    #[arg(long, short = 'F', value_name = "FEATURES")]
    pub features: Vec<String>,
    /// Activate all available features
    #[arg(long)]
    pub all_features: bool,
    /// Do not activate the `default` feature
    #[arg(long)]
    pub no_default_features: bool,
}

impl FeatureArgs {
    /// Whether any of them was given.
    pub fn is_given(&self) -> bool {
        !self.features.is_empty() || self.all_features || self.no_default_features
    }

    /// The package's features these turn on (`default` among them unless turned off),
    /// and the dependency features (`dep/feature`) named; `None` for its defaults.
    pub fn resolve(
        &self,
        cargo: &Cargo,
        plugin: &PluginManifest,
    ) -> Result<Option<Vec<String>>, Error> {
        if !self.is_given() {
            return Ok(None);
        }
        let named: Vec<&str> = self
            .features
            .iter()
            .flat_map(|f| f.split([' ', ',']))
            .filter(|f| !f.is_empty())
            .collect();
        // Named as cargo sets them for a build script: `-F Ordered` is `ordered`.
        use gwplugin_build::feature_env_var;
        let known = std::cell::RefCell::new(Vec::new());
        let mut on =
            gwplugin_build::enabled_features(Path::new(cargo.program()), &plugin.path, |feature| {
                let var = feature_env_var(feature);
                known.borrow_mut().push(var.clone());
                self.all_features
                    || (var == "CARGO_FEATURE_DEFAULT" && !self.no_default_features)
                    || named.iter().any(|f| feature_env_var(f) == var)
            })
            .map_err(|e| Error::Compute {
                path: plugin.path.clone(),
                message: e.to_string(),
            })?;
        // As cargo refuses them: judged without, the answer would be about another build.
        let known = known.into_inner();
        let dependencies = crate::edit::dependency_names(&plugin.doc);
        for feature in &named {
            let unknown = match feature.split_once('/') {
                Some((dep, _)) => {
                    dep != plugin.package_name() && !dependencies.iter().any(|d| d == dep)
                }
                None => !known.contains(&feature_env_var(feature)),
            };
            if unknown {
                return Err(Error::UnknownFeature {
                    feature: (*feature).to_owned(),
                    package: plugin.package_name(),
                });
            }
        }
        on.extend(
            named
                .iter()
                .filter(|f| f.contains('/'))
                .map(|f| (*f).to_owned()),
        );
        Ok(Some(on))
    }
}

/// Runs `check`.
pub fn exec(args: &Args) -> Result<Outcome, Error> {
    let cargo = Cargo::from_env();
    let (plugin, host) = args.plugin.resolve(&cargo)?;
    let features = args.features.resolve(&cargo, &plugin)?;
    let report = check(&cargo, &plugin, &host, args.target.as_deref(), features)?;
    match args.message_format {
        MessageFormat::Human => {
            status(
                "Checking",
                &format!(
                    "`{}` against host {}",
                    plugin.package_name(),
                    host.describe()
                ),
            );
            crate::print_stdout(&report.render_human());
        }
        MessageFormat::Json => crate::print_stdout(&format!("{}\n", report.to_json())),
    }
    Ok(if report.compatible {
        Outcome::Ok
    } else {
        Outcome::Incompatible
    })
}

/// The plugin's manifest as it would be built now, and its lock.
pub fn plugin_manifest(
    cargo: &Cargo,
    plugin: &PluginManifest,
    host: &Host,
    target: Option<&str>,
    features: Option<Vec<String>>,
) -> Result<(AbiManifest, Lockfile), Error> {
    let ws_manifest = cargo.workspace_manifest(&plugin.path)?;
    plugin_manifest_in(cargo, plugin, &ws_manifest, host, target, features)
}

/// [`plugin_manifest`] of a plugin whose workspace root's `Cargo.toml` is `ws_manifest`.
fn plugin_manifest_in(
    cargo: &Cargo,
    plugin: &PluginManifest,
    ws_manifest: &Path,
    host: &Host,
    target: Option<&str>,
    features: Option<Vec<String>>,
) -> Result<(AbiManifest, Lockfile), Error> {
    let lock_path = ws_manifest.with_file_name("Cargo.lock");
    let Ok(lock_before) = std::fs::read(&lock_path) else {
        return Err(Error::NoLock(lock_path));
    };
    let rustc = process::rustc_for(plugin.dir());
    let version = process::rustc_version(&rustc)?;
    let target = match target {
        Some(t) => crate::target::Target::parse(t)?.triple().to_owned(),
        None if host.knows_compiler => host.manifest.target.clone(),
        None => version.host.clone(),
    };
    let request = ManifestRequest {
        manifest_path: plugin.path.clone(),
        role: Role::Plugin,
        target,
        rustc,
        // As cargo will run the compiler for the plugin's build.
        rustc_wrappers: process::plugin_wrappers(plugin.dir())
            .into_iter()
            .map(|(wrapper, _)| wrapper)
            .collect(),
        panic: "unwind".to_owned(),
        cargo: Some(PathBuf::from(cargo.program())),
        features,
    };
    let computed = gwplugin_build::compute_for_manifest_path(&request);
    // Computing resolves with cargo, which rewrites a lock that is out of date: `check`
    // changes no file, so put it back and say so.
    let lock_after = std::fs::read(&lock_path).map_err(io(&lock_path))?;
    if lock_after != lock_before {
        crate::txn::write_atomic(&lock_path, &lock_before)?;
        return Err(Error::LockOutdated {
            lock: lock_path,
            manifest: plugin.path.clone(),
        });
    }
    let manifest = computed
        .map_err(|e| match e {
            gwplugin_build::ComputeError::NoContract(package) => Error::NoContract { package },
            e => Error::Compute {
                path: plugin.path.clone(),
                message: e.to_string(),
            },
        })?
        .manifest;
    let lock =
        Lockfile::parse(&String::from_utf8_lossy(&lock_after)).map_err(|message| Error::Parse {
            path: lock_path.clone(),
            message,
        })?;
    Ok((manifest, lock))
}

/// The full report for `plugin` against `host`.
pub fn check(
    cargo: &Cargo,
    plugin: &PluginManifest,
    host: &Host,
    target: Option<&str>,
    features: Option<Vec<String>>,
) -> Result<Report, Error> {
    let ws_manifest = cargo.workspace_manifest(&plugin.path)?;
    let (manifest, lock) = plugin_manifest_in(cargo, plugin, &ws_manifest, host, target, features)?;
    let mut report = report(host, &manifest, Some(&lock), Some(plugin));
    // The two profiles a build takes (`build`, `build --release`).
    for finding in panic_findings(&ws_manifest, &["dev", "release"])? {
        report.incompatibility(finding);
    }
    Ok(report)
}

/// A profile among `profiles` that builds with `panic = "abort"`, read from the
/// workspace root's `Cargo.toml` (`root_path`) as cargo reads profiles. The build script sees
/// `CARGO_CFG_PANIC=unwind` whatever a profile says: the manifest cannot tell, and the
/// build fails on `gwplugin`'s own `compile_error!`.
pub fn panic_findings(root_path: &Path, profiles: &[&str]) -> Result<Vec<Finding>, Error> {
    let root = PluginManifest::read_any(root_path.to_owned())?;
    let mut sources: Vec<String> = Vec::new();
    for profile in profiles {
        // `CARGO_PROFILE_<NAME>_PANIC` outranks the manifest, as cargo reads it.
        let var = format!(
            "CARGO_PROFILE_{}_PANIC",
            profile.to_uppercase().replace('-', "_")
        );
        let source = match std::env::var(&var).ok() {
            Some(value) => (value == "abort").then(|| format!("`{var}`")),
            None => crate::edit::panic_abort_source(&root.doc, profile)
                .map(|p| format!("`[profile.{p}]` of `{}`", root_path.display())),
        };
        sources.extend(source);
    }
    // The same flags in the rustflags cargo passes to every crate.
    let rustflags = std::env::var("CARGO_ENCODED_RUSTFLAGS")
        .map(|f| f.replace('\x1f', " "))
        .or_else(|_| std::env::var("RUSTFLAGS"))
        .unwrap_or_default();
    let flag_set = |flag: &str| {
        rustflags.contains(&format!("-C{flag}")) || rustflags.contains(&format!("-C {flag}"))
    };
    if flag_set("panic=abort") {
        sources.push("`-C panic=abort` in the rustflags".to_owned());
    }
    sources.dedup();
    let mut findings: Vec<Finding> = sources
        .into_iter()
        .map(|source| Finding {
            field: "panic".into(),
            have: format!("abort ({source})"),
            want: "unwind".into(),
            help: Some(format!(
                "remove it from {source}: a panic in a plugin would end the whole gateway \
                 instead of failing one request, so `gwplugin` does not compile with it"
            )),
        })
        .collect();
    if flag_set("prefer-dynamic") {
        findings.push(Finding {
            field: "std".into(),
            have: "linked dynamically (`-C prefer-dynamic` in the rustflags)".into(),
            want: "linked in".into(),
            help: Some(
                "build without `-C prefer-dynamic`: no gateway has the `libstd-….so` it \
                 would need beside it"
                    .into(),
            ),
        });
    }
    Ok(findings)
}

/// The report for a plugin's ABI `manifest` against `host`, however the manifest was
/// obtained (computed from the project by [`plugin_manifest`], read from a built `.so`,
/// or taken from a `Cargo.lock`): the shared comparison with what to do about each
/// incompatibility, plus what the plugin's `lock` (private crates at other versions) and
/// its `Cargo.toml` (a missing `cdylib`) tell. `cargo gwplugin check` and a host's
/// `check-plugin` both print this.
pub fn report(
    host: &Host,
    manifest: &AbiManifest,
    lock: Option<&Lockfile>,
    plugin: Option<&PluginManifest>,
) -> Report {
    let host_manifest = host.comparable(manifest);
    let mut report = Report::new(manifest, &host_manifest);
    for f in &mut report.incompatibilities {
        f.help = if f.field == "gwplugin source"
            && f.have.starts_with("path+")
            && f.want.starts_with("path+")
        {
            // Both from a path, with other files: nothing in the plugin to change, and no
            // command gets it the host's old sources back.
            Some(
                "both take `gwplugin` from a path, but not the same files: the host was built \
                 from other `gwplugin` sources than the plugin's (an edit or a `git pull` \
                 since). Rebuild the host from the plugin's sources (`cargo build --release \
                 -p gwhost`, or `cargo gwplugin host-build`), or build the plugin from the \
                 sources the host was built from"
                    .to_owned(),
            )
        } else if f.field.starts_with("crate ") && f.field.ends_with(" features") {
            Some(features_help(&f.have, &f.want))
        } else if let Some(name) = f
            .field
            .strip_prefix("crate ")
            .and_then(|rest| rest.strip_suffix(" source"))
        {
            // `sync` moves versions, not sources: "run sync" went round in a circle.
            Some(source_help(name, &f.want))
        } else {
            help_for(&f.field, host, plugin)
        };
    }
    if let Some(plugin) = plugin
        && !crate::edit::has_cdylib(&plugin.doc)
    {
        report.incompatibility(Finding {
            field: "crate-type".into(),
            have: crate::edit::crate_types(&plugin.doc),
            want: "cdylib".into(),
            help: Some(
                "add `crate-type = [\"cdylib\"]` under `[lib]` in Cargo.toml (or run `cargo gwplugin sync`)"
                    .into(),
            ),
        });
    }
    if !host.knows_compiler {
        report.note(Finding {
            field: "rustc, target, features and path sources".into(),
            have: manifest.rustc.to_string(),
            want: crate::host::UNKNOWN.into(),
            help: Some(format!(
                "not compared: a {} does not name them",
                host.kind.describe()
            )),
        });
    }
    if let Some(lock) = lock {
        private_notes(&mut report, manifest, lock, host);
    }
    report
}

/// Whether a compiler's `release` (`rustc -vV`) is a stable one (`1.95.0`), which
/// `rust-toolchain.toml` can name; a nightly's (`1.97.0-nightly`) does not say which.
pub fn is_stable_release(release: &str) -> bool {
    release.split('.').count() == 3
        && release
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// What to do when the host's compiler is a nightly or a beta, which `sync` cannot pin.
pub fn unstable_compiler_help(rustc: &gwplugin_build::RustcInfo) -> String {
    let channel = if rustc.release.contains("-beta") {
        "beta"
    } else {
        "nightly"
    };
    format!(
        "build with the host's compiler, {}: pin that toolchain in the plugin's \
         rust-toolchain.toml yourself (`channel = \"{channel}-YYYY-MM-DD\"`, the one whose \
         `rustc -vV` says `commit-hash: {}`; `sync` pins only stable releases)",
        rustc.release, rustc.commit_hash
    )
}

/// Whether rustup's choice came from the folder this command ran in (its toolchain file,
/// or rustup's default there), outside the plugin's folder, where rustup picks the host's
/// compiler: then running in the plugin's folder is the fix, and `sync` changes nothing.
fn chosen_elsewhere_than_the_folder(plugin: &PluginManifest, host: &Host) -> bool {
    // A `rustup override` is a folder's too: of the one this ran in, when outside the
    // plugin's (where the plugin's own file outranks it).
    let by_folder = matches!(
        std::env::var("RUSTUP_TOOLCHAIN_SOURCE").as_deref(),
        Ok("toolchain-file" | "default" | "path-override")
    );
    let outside = std::env::current_dir()
        .ok()
        .and_then(|cwd| std::fs::canonicalize(cwd).ok())
        .zip(std::fs::canonicalize(plugin.dir()).ok())
        .is_some_and(|(cwd, dir)| !cwd.starts_with(dir));
    by_folder
        && outside
        && crate::process::rustc_version(&crate::process::toolchain_rustc(plugin.dir()))
            .is_ok_and(|v| v.info == host.manifest.rustc)
}

/// What to undo when a setting outside rustup names the plugin's compiler: `RUSTC`,
/// `CARGO_BUILD_RUSTC`, or `build.rustc` in a cargo config file.
fn compiler_setting_fix(dir: &Path) -> Option<String> {
    let (rustc, source) = crate::process::rustc_source(dir);
    // A wrapper that runs another compiler outranks even the settings that name one.
    if let Some(change) = crate::process::wrappers_changing_compiler(&rustc, dir) {
        return Some(format!(
            "remove the compiler wrapper set by {} (it runs rustc {} where cargo names \
             {}), or make it run the compiler it is given",
            change.from, change.through, change.plain
        ));
    }
    match (rustc, source) {
        (rustc, process::CompilerSource::Env(var)) => Some(format!(
            "unset `{var}` (it names `{}`, which outranks any rust-toolchain.toml)",
            rustc.display()
        )),
        (rustc, process::CompilerSource::CargoConfig(file)) => Some(format!(
            "remove `build.rustc` from `{}` (it names `{}`, which outranks any \
             rust-toolchain.toml)",
            file.display(),
            rustc.display()
        )),
        (_, process::CompilerSource::Rustup) => None,
    }
}

fn help_for(field: &str, host: &Host, plugin: Option<&PluginManifest>) -> Option<String> {
    let sync = "run `cargo gwplugin sync`";
    // rustup says when a toolchain outranks the one the plugin's folder pins.
    let outranked = match std::env::var("RUSTUP_TOOLCHAIN_SOURCE").as_deref() {
        Ok("cli") => Some("run cargo without the `+toolchain` argument"),
        Ok("env") => Some("unset RUSTUP_TOOLCHAIN"),
        Ok("path-override") => Some("run `rustup override unset` in the plugin's folder"),
        _ => None,
    };
    Some(
        if field.starts_with("rustc")
            && let Some(fix) = plugin.and_then(|p| compiler_setting_fix(p.dir()))
        {
            // Named outside rustup: no toolchain pin changes it.
            format!("build with the host's compiler: {fix}")
        } else if field.starts_with("rustc") && !is_stable_release(&host.manifest.rustc.release) {
            // `sync` pins only a stable release: a nightly's does not say which nightly.
            unstable_compiler_help(&host.manifest.rustc)
        } else if field.starts_with("rustc") {
            let elsewhere = plugin.is_some_and(|p| chosen_elsewhere_than_the_folder(p, host));
            match outranked.filter(|_| !elsewhere) {
                Some(fix) => format!(
                    "build with the host's compiler: {fix} (it outranks the plugin's \
                 rust-toolchain.toml), and {sync} if that file does not pin it yet"
                ),
                None if elsewhere => {
                    let chosen = std::env::var("RUSTUP_TOOLCHAIN")
                        .map_or_else(|_| "another toolchain".to_owned(), |t| format!("`{t}`"));
                    format!(
                        "build with the host's compiler: rustup chose {chosen} by the folder \
                         this command ran in, not the plugin's, where it picks {}: run the \
                         command in `{}`, or as `cargo +{} gwplugin …` (`cargo gwplugin sync` \
                         pins it for the plugin's folder if nothing does yet)",
                        host.manifest.rustc.release,
                        plugin.map_or(Path::new("."), PluginManifest::dir).display(),
                        host.manifest.rustc.release
                    )
                }
                None => {
                    format!(
                        "build with the host's compiler: {sync} to pin it in rust-toolchain.toml"
                    )
                }
            }
        } else if field == "target" {
            format!(
                "build with `--target {}`, or use a host built for the plugin's target \
             (`cargo gwplugin host-build --target TRIPLE`)",
                host.manifest.target
            )
        } else if field.starts_with("gwplugin") && !sync_sets_contract_source(host, plugin) {
            // `sync` writes a path or a version; a git source on either side, or a host's
            // path it does not name, is the author's to copy.
            "take `gwplugin` and `gwplugin-build` from where the host does (the same git \
         revision, path or registry version as `want:` says)"
                .to_owned()
        } else if field.starts_with("crate ") || field.starts_with("gwplugin") {
            format!("{sync} to move it to the host's version")
        } else {
            return None;
        },
    )
}

/// What to do about a boundary crate whose source differs from the host's (`want`, as
/// the report shows it: `crates.io`, `path, sources …`, a git URL).
fn source_help(name: &str, want: &str) -> String {
    if want == "crates.io" {
        format!(
            "take `{name}` from crates.io, as the host does: remove what gives the plugin \
             another copy (a `[patch]` or `[replace]` entry, or a path or git dependency on \
             it), then run `cargo gwplugin sync` for the host's version"
        )
    } else {
        format!(
            "take `{name}` from where the host does ({want}): the same `[patch]` entry or \
             dependency, with the same sources"
        )
    }
}

/// A boundary crate's features as the report lists them (`have` the plugin's, `want` the
/// host's, `[default, std]`): those the plugin turns on and the host does not, and those
/// the host turns on and the plugin does not.
pub fn feature_difference(have: &str, want: &str) -> (Vec<String>, Vec<String>) {
    // Every copy's features together (`[a, b], [c]` for a crate the build has twice).
    let list = |s: &str| -> BTreeSet<String> {
        s.split(',')
            .map(|f| f.trim().trim_matches(['[', ']']).trim().to_owned())
            .filter(|f| !f.is_empty())
            .collect()
    };
    let (have, want) = (list(have), list(want));
    (
        have.difference(&want).cloned().collect(),
        want.difference(&have).cloned().collect(),
    )
}

/// What to do about a boundary crate's features, `have` and `want` as the report lists
/// them (`[default, std]`): features only add up, so one the plugin has more is one of its
/// dependencies turning it on, and one it lacks is the plugin's to turn on.
fn features_help(have: &str, want: &str) -> String {
    let (extra, missing) = feature_difference(have, want);
    let mut help = Vec::new();
    if !extra.is_empty() {
        help.push(format!(
            "the plugin turns on {} (one of its dependencies, or a feature of its own), which \
             the host's copy lacks: drop what turns it on, or rebuild the host with it",
            extra.join(", ")
        ));
    }
    if !missing.is_empty() {
        help.push(format!(
            "turn on {} of this crate in [dependencies], as the host has it (`cargo gwplugin \
             sync` does, unless the plugin's entry for it is optional or of another series)",
            missing.join(", ")
        ));
    }
    if help.is_empty() {
        // The same features, laid out over another number of copies.
        help.push(
            "build the plugin with the host's copies of this crate, and their features".to_owned(),
        );
    }
    help.join("; ")
}

/// Whether `sync` can point the plugin's `gwplugin` at the host's: a path it knows, or a
/// registry version, for a plugin entry it rewrites (`sync` leaves a `git` entry alone,
/// and a `path` one when the host's comes from a registry). Without the plugin's
/// manifest (a built file), what the host's side allows.
pub fn sync_sets_contract_source(host: &Host, plugin: Option<&PluginManifest>) -> bool {
    use crate::host::DepSource;
    let host_source = match host.contract_crates.get("gwplugin") {
        Some(c) => &c.source,
        // Known only from its manifest: a registry version is one `sync` can write.
        None if host.manifest.gwplugin.source.starts_with("registry+") => {
            return plugin
                .is_none_or(|p| !contract_entry_has(p, "git") && !contract_entry_has(p, "path"));
        }
        None => return false,
    };
    match host_source {
        DepSource::Path(_) => plugin.is_none_or(|p| !contract_entry_has(p, "git")),
        DepSource::Registry(_) => {
            plugin.is_none_or(|p| !contract_entry_has(p, "git") && !contract_entry_has(p, "path"))
        }
        _ => false,
    }
}

/// Whether the plugin's `gwplugin` dependency entry has `key` (`git`, `path`), in any
/// dependency table; for an entry inherited from its workspace (`workspace = true`), the
/// root's entry, which `sync` edits then.
fn contract_entry_has(plugin: &PluginManifest, key: &str) -> bool {
    let is_contract = |name: &str, entry: &toml_edit::Item| {
        entry
            .as_table_like()
            .and_then(|e| e.get("package"))
            .and_then(toml_edit::Item::as_str)
            .unwrap_or(name)
            == "gwplugin"
    };
    let has = |entry: &toml_edit::Item| entry.as_table_like().is_some_and(|e| e.contains_key(key));
    let tables =
        crate::edit::dependency_tables(&plugin.doc, &["dependencies", "build-dependencies"]);
    tables.iter().flat_map(|t| t.iter()).any(|(name, entry)| {
        if !is_contract(name, entry) {
            return false;
        }
        let inherited = entry
            .as_table_like()
            .and_then(|e| e.get("workspace"))
            .and_then(toml_edit::Item::as_bool)
            == Some(true);
        match inherited {
            false => has(entry),
            // The root's entry: under the nearest folder above whose Cargo.toml has a
            // `[workspace]`; unknown, none promised.
            true => workspace_entry(plugin, name).is_none_or(|root_entry| has(&root_entry)),
        }
    })
}

/// The `[workspace.dependencies]` entry `key` of the plugin's workspace root, if found.
fn workspace_entry(plugin: &PluginManifest, key: &str) -> Option<toml_edit::Item> {
    plugin.dir().ancestors().skip(1).find_map(|dir| {
        let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
        let doc: toml_edit::DocumentMut = text.parse().ok()?;
        Some(doc.get("workspace")?.get("dependencies")?.get(key)?.clone())
    })
}

/// Crates the plugin uses privately at another version than the host's: fine, but worth
/// knowing.
fn private_notes(report: &mut Report, manifest: &AbiManifest, lock: &Lockfile, host: &Host) {
    let Some(host_lock) = &host.lock else {
        return;
    };
    let boundary: BTreeSet<&str> = manifest
        .boundary
        .iter()
        .map(|c| c.name.as_str())
        .chain(host.boundary_names())
        .collect();
    let mut seen = BTreeSet::new();
    for p in &lock.packages {
        if p.name == manifest.package.name || boundary.contains(p.name.as_str()) {
            continue;
        }
        let versions: Vec<&str> = host_lock
            .named(&p.name)
            .map(|l| l.version.as_str())
            .collect();
        if versions.is_empty() || versions.contains(&p.version.as_str()) {
            continue;
        }
        if seen.insert((p.name.clone(), p.version.clone())) {
            report.note(Finding {
                field: format!("crate {}", p.name),
                have: p.version.clone(),
                want: versions.join(", "),
                help: Some("private to the plugin: it need not match the host".into()),
            });
        }
    }
    report.notes.sort_by(|a, b| a.field.cmp(&b.field));
}
