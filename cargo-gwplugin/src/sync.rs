//! `cargo gwplugin sync`: bring a plugin to its host's versions.

use std::path::{Path, PathBuf};

use crate::edit;
use crate::error::{Error, io};
use crate::host::Host;
use crate::lockfile::Lockfile;
use crate::plugin::{PluginHostArgs, PluginManifest};
use crate::process::Cargo;
use crate::txn::{RolledBack, Transaction};
use crate::{Outcome, status};

/// Align the plugin's dependencies, compiler and Cargo.lock with its host.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub plugin: PluginHostArgs,
    /// Print what would change (a unified diff) and write nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `sync`.
pub fn exec(args: &Args) -> Result<Outcome, Error> {
    let cargo = Cargo::from_env();
    let (plugin, host) = args.plugin.resolve(&cargo)?;
    if args.dry_run {
        let would_write = sync(&cargo, &plugin, &host, true)?.unwrap_or(true);
        // What a real sync would turn on after its versions, as far as the plugin as it
        // is tells (its check changes no file; one that cannot run, a lock out of date,
        // leaves it to the real sync), and as the real edit would go.
        let report = crate::check::check(&cargo, &plugin, &host, None, None);
        let mut would_enable = false;
        for (name, missing) in report.iter().flat_map(missing_host_features) {
            let [version] = host.boundary_versions(name)[..] else {
                continue;
            };
            let mut doc = plugin.doc.clone();
            if let Some(change) = edit::enable_features(&mut doc, name, &missing, version) {
                would_enable = true;
                status(
                    "Would enable",
                    &format!(
                        "features of `{name}` in [dependencies], as the host has them: {} -> {}",
                        change.from, change.to
                    ),
                );
            }
        }
        if !would_write && !would_enable {
            // Nothing to write: the plugin as it is is what the real sync would check
            // after, so its verdict (and exit status) is the real sync's. Unless the lock
            // is out of date after all (told only by a resolve that may go online): the
            // real sync relocks it.
            let report = match report {
                Err(Error::LockOutdated { lock, .. }) => {
                    status(
                        "Would update",
                        &format!("`{}` to match Cargo.toml", lock.display()),
                    );
                    return Ok(Outcome::Ok);
                }
                other => other?,
            };
            if report.compatible {
                finished(&plugin, &host, false);
                return Ok(Outcome::Ok);
            }
            crate::print_stdout(&report.render_human());
            return Err(Error::StillIncompatible {
                package: plugin.package_name(),
                host: host.describe(),
                count: report.incompatibilities.len(),
            });
        }
        return Ok(Outcome::Ok);
    }
    // All or nothing across both steps: the versions `sync` writes, then the features it
    // turns on once it has checked; a failure in the second puts the first back too.
    let ws_manifest = cargo.workspace_manifest(&plugin.path)?;
    let ws_dir = ws_manifest.parent().unwrap_or(Path::new(".")).to_owned();
    let mut both = Transaction::new();
    for file in [
        plugin.path.clone(),
        ws_manifest.clone(),
        ws_manifest.with_file_name("Cargo.lock"),
        toolchain_file_read_for(plugin.dir(), &ws_dir),
    ] {
        both.guard(&file)?;
    }
    let checked = sync(&cargo, &plugin, &host, false).and_then(|changed| {
        checked_after_sync(&cargo, &plugin.path, &host, changed.unwrap_or_default())
    });
    match checked {
        Err(e) => {
            report_rolled_back(&both.roll_back());
            Err(e)
        }
        Ok(None) => {
            both.commit();
            Ok(Outcome::Ok)
        }
        Ok(Some(report)) => {
            both.commit();
            Err(Error::StillIncompatible {
                package: plugin.package_name(),
                host: host.describe(),
                count: report.incompatibilities.len(),
            })
        }
    }
}

/// After a sync: what `sync` does not change (a feature the plugin turns on, a source it
/// leaves alone) may still stand between the plugin and its host, judged as `check`
/// would. A feature of a boundary crate the host has and the plugin lacks is turned on
/// here, and the plugin checked again. `None` when it is compatible (and said so), else
/// the report, printed.
fn checked_after_sync(
    cargo: &Cargo,
    manifest_path: &Path,
    host: &Host,
    mut changed: bool,
) -> Result<Option<gwplugin_build::report::Report>, Error> {
    let mut plugin = PluginManifest::read(manifest_path.to_owned())?;
    let mut report = crate::check::check(cargo, &plugin, host, None, None)?;
    if !report.compatible && enable_host_features(cargo, &plugin, host, &report)? {
        changed = true;
        plugin = PluginManifest::read(manifest_path.to_owned())?;
        report = crate::check::check(cargo, &plugin, host, None, None)?;
    }
    if !report.compatible {
        crate::print_stdout(&report.render_human());
        return Ok(Some(report));
    }
    finished(&plugin, host, changed);
    Ok(None)
}

/// The boundary crates whose host copy has features the plugin's build lacks, with those
/// features, from a `check` report.
fn missing_host_features(report: &gwplugin_build::report::Report) -> Vec<(&str, Vec<String>)> {
    report
        .incompatibilities
        .iter()
        .filter_map(|finding| {
            let name = finding
                .field
                .strip_prefix("crate ")?
                .strip_suffix(" features")?;
            let (_, missing) = crate::check::feature_difference(&finding.have, &finding.want);
            (!missing.is_empty()).then_some((name, missing))
        })
        .collect()
}

/// Turns on, in the plugin's `[dependencies]`, each feature of a boundary crate that the
/// host's copy has and the plugin's build lacks (`report` lists them), and locks again;
/// all or nothing. Returns whether it changed the manifest.
fn enable_host_features(
    cargo: &Cargo,
    plugin: &PluginManifest,
    host: &Host,
    report: &gwplugin_build::report::Report,
) -> Result<bool, Error> {
    let mut doc = plugin.doc.clone();
    let mut changes = Vec::new();
    for (name, missing) in missing_host_features(report) {
        // One version of it in the host: the one a new entry asks for.
        let [version] = host.boundary_versions(name)[..] else {
            continue;
        };
        if let Some(change) = edit::enable_features(&mut doc, name, &missing, version) {
            changes.push(change);
        }
    }
    if changes.is_empty() {
        return Ok(false);
    }
    for c in &changes {
        status(
            "Enabling",
            &format!(
                "features of `{}` in [{}], as the host has them: {} -> {}",
                c.key, c.table, c.from, c.to
            ),
        );
    }
    let mut tx = Transaction::new();
    let lock_path = cargo
        .workspace_manifest(&plugin.path)?
        .with_file_name("Cargo.lock");
    let relocked = tx
        .write(&plugin.path, doc.to_string().as_bytes())
        .and_then(|()| tx.guard(&lock_path))
        .and_then(|()| {
            cargo
                .run_offline_first("update", &plugin.path, &["--workspace"])
                .map(drop)
                .map_err(Error::from)
        });
    match relocked {
        Ok(()) => {
            tx.commit();
            Ok(true)
        }
        Err(e) => {
            report_rolled_back(&tx.roll_back());
            Err(e)
        }
    }
}

/// Whether cargo would change the lock for the manifest as it is (`--locked` refuses).
fn lock_out_of_date(cargo: &Cargo, plugin: &PluginManifest) -> bool {
    match cargo.run(
        "tree",
        &plugin.path,
        &["--locked", "--offline", "--depth", "0", "--quiet"],
    ) {
        Ok(_) => false,
        Err(e) => e.stderr.contains("--locked"),
    }
}

fn finished(plugin: &PluginManifest, host: &Host, changed: bool) {
    status(
        "Finished",
        &format!(
            "`{}` is {}in sync with host {}",
            plugin.package_name(),
            if changed { "" } else { "already " },
            host.describe()
        ),
    );
}

/// One crate to move in Cargo.lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockMove {
    pub name: String,
    pub from: String,
    pub to: String,
}

/// Boundary crates of the plugin's lock that are not at the host's version.
pub fn lock_moves(lock: &Lockfile, host: &Host) -> Vec<LockMove> {
    let boundary = host.boundary_names();
    let mut moves: Vec<LockMove> = lock
        .deps_of("gwplugin")
        .into_iter()
        .filter(|p| p.name != "gwplugin" && boundary.contains(p.name.as_str()))
        .filter_map(|p| {
            let versions = host.boundary_versions(&p.name);
            if versions.contains(&p.version.as_str()) {
                return None;
            }
            let to = versions.last()?.to_string();
            Some(LockMove {
                name: p.name.clone(),
                from: p.version.clone(),
                to,
            })
        })
        .collect();
    moves.sort_by(|a, b| a.name.cmp(&b.name));
    moves.dedup();
    moves
}

/// Versions of the crates `gwplugin` depends on in a lock.
fn boundary_versions(lock: &Lockfile) -> Vec<(String, String)> {
    lock.deps_of("gwplugin")
        .into_iter()
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect()
}

/// The stable release the host was built with, if it is one `rust-toolchain.toml` can
/// name (a nightly's release does not say which nightly). With `warn`, says so when it is
/// not (a real `sync` leaves that to its check afterwards, whose `help:` says what to do).
fn host_channel(host: &Host, warn: bool) -> Option<String> {
    if !host.knows_compiler {
        return None;
    }
    let release = &host.manifest.rustc.release;
    if crate::check::is_stable_release(release) {
        Some(release.clone())
    } else {
        if warn {
            status(
                "Warning",
                &format!(
                    "the host's compiler {} is not a stable release, which `sync` cannot \
                     pin: {}",
                    host.manifest.rustc,
                    crate::check::unstable_compiler_help(&host.manifest.rustc)
                ),
            );
        }
        None
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

fn read_lock(path: &Path) -> Result<Option<Lockfile>, Error> {
    read_optional(path)?
        .map(|text| {
            Lockfile::parse(&text).map_err(|message| Error::Parse {
                path: path.to_owned(),
                message,
            })
        })
        .transpose()
}

/// A unified diff `git apply` and `patch -p1` take from the current directory: `a/` and
/// `b/` before a path relative to it; a path outside it stays absolute, without them.
fn diff(path: &Path, old: &str, new: &str) -> String {
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_owned));
    let (a, b) = match relative {
        Some(r) => (format!("a/{}", r.display()), format!("b/{}", r.display())),
        None => (path.display().to_string(), path.display().to_string()),
    };
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&a, &b)
        .to_string()
}

/// What `sync` writes, decided beforehand.
struct Written<'a> {
    /// The new Cargo.toml, if it changed.
    manifest: Option<&'a str>,
    /// The workspace root's Cargo.toml and its new text, if it changed.
    root: Option<(&'a Path, &'a str)>,
    /// The toolchain file and its new text, if it changed.
    toolchain: Option<(&'a Path, &'a str)>,
    lock_path: &'a Path,
    old_lock: Option<&'a Lockfile>,
}

/// Writes the files and moves the lock's boundary crates to the host's versions, within
/// `tx`.
fn write_and_lock(
    cargo: &Cargo,
    plugin: &PluginManifest,
    host: &Host,
    tx: &mut Transaction,
    written: &Written<'_>,
) -> Result<(), Error> {
    let lock_path = written.lock_path;
    if let Some(manifest) = written.manifest {
        tx.write(&plugin.path, manifest.as_bytes())?;
    }
    if let Some((path, text)) = written.toolchain {
        tx.write(path, text.as_bytes())?;
    }
    if let Some((path, text)) = written.root {
        tx.write(path, text.as_bytes())?;
    }
    tx.guard(lock_path)?;
    if written.old_lock.is_none()
        && let Some(text) = &host.lock_text
    {
        // Start from the host's lock: every crate the host has keeps its version.
        tx.write(lock_path, text.as_bytes())?;
    }
    // Always: a lock out of date with Cargo.toml (a dependency added since) is what
    // `check` sends the author here for. Crates already locked keep their versions.
    cargo.run_offline_first("update", &plugin.path, &["--workspace"])?;
    let lock = read_lock(lock_path)?.unwrap_or_default();
    let moves = lock_moves(&lock, host);
    for m in &moves {
        let spec = format!("{}@{}", m.name, m.from);
        cargo.run_offline_first("update", &plugin.path, &["-p", &spec, "--precise", &m.to])?;
    }
    let final_lock = read_lock(lock_path)?.unwrap_or_default();
    if !moves.is_empty()
        && let Some(m) = lock_moves(&final_lock, host).into_iter().next()
    {
        return Err(Error::Unsyncable {
            krate: m.name,
            have: m.from,
            want: m.to,
            lock: lock_path.to_owned(),
        });
    }
    if let Some(old) = written.old_lock {
        let before = boundary_versions(old);
        for (name, version) in boundary_versions(&final_lock) {
            if let Some(was) = before.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
                && *was != version
            {
                status("Locking", &format!("`{name}` {was} -> {version}"));
            }
        }
    }
    Ok(())
}

/// Says, before the error that follows, that the "Updating" lines above did not hold.
fn report_rolled_back(undone: &RolledBack) {
    if !undone.restored.is_empty() {
        let as_was = if undone.restored.len() == 1 {
            "as it was"
        } else {
            "as they were"
        };
        status(
            "Restored",
            &format!("{} {as_was}", backticked_list(&undone.restored)),
        );
    }
    if !undone.removed.is_empty() {
        status(
            "Removed",
            &format!("{}, created by this sync", backticked_list(&undone.removed)),
        );
    }
    for (path, why) in &undone.failed {
        status(
            "Warning",
            &format!(
                "could not put `{}` back as it was: {why}\nhelp: restore it from version control",
                path.display()
            ),
        );
    }
}

/// `` `a` ``, `` `a` and `b` ``, `` `a`, `b` and `c` ``.
fn backticked_list(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| format!("`{}`", p.display())).collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Brings `plugin` to `host`'s versions. Any failure leaves every file as it was, and
/// says which it put back. Returns whether it changed a file (for a dry run, whether it would).
pub fn sync(
    cargo: &Cargo,
    plugin: &PluginManifest,
    host: &Host,
    dry_run: bool,
) -> Result<Option<bool>, Error> {
    sync_reporting(cargo, plugin, host, dry_run, true)
}

/// [`sync`] of a plugin `new` has just written, which removes the whole plugin if this
/// fails: what was put back is not worth a word. Then checked as after `sync`: the
/// report of what still stands between the plugin and its host, printed, if anything does.
pub fn sync_new_plugin(
    cargo: &Cargo,
    plugin: &PluginManifest,
    host: &Host,
) -> Result<Option<gwplugin_build::report::Report>, Error> {
    let changed = sync_reporting(cargo, plugin, host, false, false)?;
    checked_after_sync(cargo, &plugin.path, host, changed.unwrap_or_default())
}

/// The toolchain file rustup reads for a build in `plugin_dir`: the nearest
/// `rust-toolchain` or `rust-toolchain.toml` (the legacy one first, as rustup reads it
/// first), from the plugin's folder up to its workspace's; none there, a new
/// `rust-toolchain.toml` in the workspace's folder. (A member's own file outranks the
/// workspace's: a pin in the workspace's would change nothing.)
fn toolchain_file_read_for(plugin_dir: &Path, ws_dir: &Path) -> PathBuf {
    for dir in plugin_dir.ancestors() {
        for name in ["rust-toolchain", "rust-toolchain.toml"] {
            let file = dir.join(name);
            if file.is_file() {
                return file;
            }
        }
        if dir == ws_dir {
            break;
        }
    }
    ws_dir.join("rust-toolchain.toml")
}

fn sync_reporting(
    cargo: &Cargo,
    plugin: &PluginManifest,
    host: &Host,
    dry_run: bool,
    report_rollback: bool,
) -> Result<Option<bool>, Error> {
    let ws_manifest = cargo.workspace_manifest(&plugin.path)?;
    let ws_dir = ws_manifest.parent().unwrap_or(plugin.dir()).to_owned();
    let lock_path = ws_dir.join("Cargo.lock");
    let toolchain_path = toolchain_file_read_for(plugin.dir(), &ws_dir);

    // Cargo.toml, in memory.
    let mut doc = plugin.doc.clone();
    let changes = edit::align_dependencies(&mut doc, plugin.dir(), |name, current| {
        host.want(name, current)
    });
    let cdylib_added = edit::ensure_cdylib(&mut doc);
    let new_manifest = doc.to_string();
    let manifest_changed = new_manifest != plugin.text;

    // What a member inherits from its workspace (`bytes.workspace = true`) is pinned
    // where it is written: in the root's `[workspace.dependencies]`.
    let inherited = edit::inherited_dependencies(&plugin.doc);
    let is_root =
        std::fs::canonicalize(&ws_manifest).ok() == std::fs::canonicalize(&plugin.path).ok();
    let root = if !is_root && !inherited.is_empty() {
        let root = PluginManifest::read_any(ws_manifest.clone())?;
        let mut root_doc = root.doc.clone();
        let root_changes = edit::align_workspace_dependencies(
            &mut root_doc,
            &ws_dir,
            &inherited,
            |name, current| host.want(name, current),
        );
        let new_text = root_doc.to_string();
        (new_text != root.text).then_some((root, new_text, root_changes))
    } else {
        None
    };

    // rust-toolchain.toml, in memory.
    let old_toolchain = read_optional(&toolchain_path)?;
    let new_toolchain = match host_channel(host, dry_run) {
        Some(channel) => {
            edit::toolchain_file(old_toolchain.as_deref(), &channel).map_err(|message| {
                Error::Parse {
                    path: toolchain_path.clone(),
                    message,
                }
            })?
        }
        None => None,
    };

    let lock = read_lock(&lock_path)?;
    for c in &changes {
        status(
            if dry_run { "Would update" } else { "Updating" },
            &format!("`{}` in [{}]: {} -> {}", c.key, c.table, c.from, c.to),
        );
    }
    if let Some((root, _, root_changes)) = &root {
        for c in root_changes {
            status(
                if dry_run { "Would update" } else { "Updating" },
                &format!(
                    "`{}` in [{}] of `{}`: {} -> {}",
                    c.key,
                    c.table,
                    root.path.display(),
                    c.from,
                    c.to
                ),
            );
        }
    }
    if cdylib_added {
        status(
            if dry_run { "Would add" } else { "Adding" },
            "`cdylib` to [lib] crate-type",
        );
    }
    if new_toolchain.is_some() {
        status(
            if dry_run { "Would pin" } else { "Pinning" },
            &format!(
                "rust toolchain {} in `{}`",
                host.manifest.rustc.release,
                toolchain_path.display()
            ),
        );
    }

    if dry_run {
        if manifest_changed {
            crate::print_stdout(&diff(&plugin.path, &plugin.text, &new_manifest));
        }
        if let Some((root, new_text, _)) = &root {
            crate::print_stdout(&diff(&root.path, &root.text, new_text));
        }
        if let Some(tc) = &new_toolchain {
            crate::print_stdout(&diff(
                &toolchain_path,
                old_toolchain.as_deref().unwrap_or(""),
                tc,
            ));
        }
        let mut lock_moved = false;
        match &lock {
            Some(lock) => {
                for m in lock_moves(lock, host) {
                    lock_moved = true;
                    status(
                        "Would lock",
                        &format!("`{}` {} -> {}", m.name, m.from, m.to),
                    );
                }
            }
            None => status("Would create", &format!("`{}`", lock_path.display())),
        }
        let lock_updated = if (manifest_changed || root.is_some()) && lock.is_some() {
            status(
                "Would update",
                &format!("`{}` to match", lock_path.display()),
            );
            true
        } else if lock.is_some() && lock_out_of_date(cargo, plugin) {
            status(
                "Would update",
                &format!("`{}` to match Cargo.toml", lock_path.display()),
            );
            true
        } else {
            false
        };
        // Whether the real sync would write anything.
        return Ok(Some(
            manifest_changed
                || root.is_some()
                || new_toolchain.is_some()
                || lock.is_none()
                || lock_moved
                || lock_updated,
        ));
    }
    let lock_before = read_optional(&lock_path)?;

    if lock.is_none() {
        status(
            "Creating",
            &format!(
                "`{}`{}",
                lock_path.display(),
                if host.lock_text.is_some() {
                    " from the host's lock"
                } else {
                    ""
                }
            ),
        );
    }
    let mut tx = Transaction::new();
    let written = Written {
        manifest: manifest_changed.then_some(new_manifest.as_str()),
        root: root
            .as_ref()
            .map(|(root, text, _)| (root.path.as_path(), text.as_str())),
        toolchain: new_toolchain
            .as_deref()
            .map(|tc| (toolchain_path.as_path(), tc)),
        lock_path: &lock_path,
        old_lock: lock.as_ref(),
    };
    match write_and_lock(cargo, plugin, host, &mut tx, &written) {
        Ok(()) => {}
        Err(e) => {
            let undone = tx.roll_back();
            if report_rollback {
                report_rolled_back(&undone);
            }
            return Err(e);
        }
    };
    tx.commit();
    if new_toolchain.is_some() {
        crate::process::toolchain_file_rewritten();
    }
    // rustup tells its children which toolchain it chose and why: one set in the
    // environment or by `rustup override` outranks the file just pinned.
    let chosen = std::env::var("RUSTUP_TOOLCHAIN").unwrap_or_default();
    let fix = match std::env::var("RUSTUP_TOOLCHAIN_SOURCE").as_deref() {
        Ok("env") => Some("unset RUSTUP_TOOLCHAIN"),
        Ok("cli") => Some("run cargo without the `+toolchain` argument"),
        Ok("path-override") => Some("run `rustup override unset` in the plugin's directory"),
        _ => None,
    };
    if let (Some(channel), Some(fix)) = (host_channel(host, false), fix)
        && !chosen.starts_with(&channel)
    {
        status(
            "Warning",
            &format!(
                "toolchain `{chosen}` outranks the pin in `{}`: builds here would not use \
                 the host's {channel}\nhelp: {fix}",
                toolchain_path.display()
            ),
        );
    }
    let lock_changed = read_optional(&lock_path)? != lock_before;
    if lock_changed && lock.is_some() && !manifest_changed && root.is_none() {
        // Nothing else said why it changed: it was out of date with Cargo.toml.
        status(
            "Updated",
            &format!("`{}` to match Cargo.toml", lock_path.display()),
        );
    }
    Ok(Some(
        manifest_changed || root.is_some() || new_toolchain.is_some() || lock_changed,
    ))
}
