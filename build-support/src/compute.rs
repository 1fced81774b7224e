//! Computing a manifest from cargo's resolve and the compiler.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::manifest::{
    ALLOCATOR_CONTRACT, AbiManifest, BoundaryCrate, CrateIdentity, FORMAT_VERSION, PackageName,
    Role, RustcInfo, hex,
};

/// The name of the contract crate; its normal-dependency closure is the boundary.
const CONTRACT_CRATE: &str = "gwplugin";

/// Why a manifest could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    #[error("environment variable `{0}` is not set (is this running from build.rs?)")]
    Env(String),
    #[error("could not run `{command}`: {message}")]
    Command { command: String, message: String },
    #[error("`cargo metadata` failed: {0}")]
    Metadata(String),
    #[error("`{0}` is not a package of the resolved workspace")]
    NoPackage(String),
    #[error("`{0}` does not depend on `gwplugin`")]
    NoContract(String),
    #[error("could not parse `rustc -vV` output: missing `{0}`")]
    RustcOutput(&'static str),
    #[error("{path}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What to compute a manifest for.
#[derive(Debug, Clone)]
pub struct ManifestRequest {
    /// The package's `Cargo.toml`.
    pub manifest_path: PathBuf,
    pub role: Role,
    pub target: String,
    /// The compiler that builds (or would build) it.
    pub rustc: PathBuf,
    /// What cargo runs that compiler through (`RUSTC_WRAPPER`, then
    /// `RUSTC_WORKSPACE_WRAPPER`: [`rustc_wrappers_from_env`]); asked for `-vV` the same
    /// way, as cargo asks, since a wrapper may run another compiler.
    pub rustc_wrappers: Vec<PathBuf>,
    /// `unwind` or `abort`.
    pub panic: String,
    /// The cargo to run `cargo metadata` with (default: `$CARGO`, else `cargo`).
    pub cargo: Option<PathBuf>,
    /// The package's features that are on (`default` among them, when it is); `None`
    /// for its default ones. They decide which features its dependencies get.
    pub features: Option<Vec<String>>,
}

/// A manifest and the files it was computed from.
#[derive(Debug, Clone)]
pub struct Computed {
    pub manifest: AbiManifest,
    pub inputs: Vec<PathBuf>,
}

/// The compiler wrappers this environment sets, outermost first, as cargo runs them for
/// a workspace member: `RUSTC_WRAPPER`, then `RUSTC_WORKSPACE_WRAPPER` (empty ones are
/// none, as for cargo). A build script gets them from cargo.
pub fn rustc_wrappers_from_env() -> Vec<PathBuf> {
    ["RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER"]
        .into_iter()
        .filter_map(std::env::var_os)
        .filter(|w| !w.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// `rustc -vV` through `wrappers`, outermost first, as cargo asks it.
pub fn rustc_vv_command(rustc: &Path, wrappers: &[PathBuf]) -> Command {
    let mut cmd = match wrappers.split_first() {
        Some((outer, rest)) => {
            let mut cmd = Command::new(outer);
            cmd.args(rest).arg(rustc);
            cmd
        }
        None => Command::new(rustc),
    };
    cmd.arg("-vV");
    cmd
}

/// Runs `rustc -vV` (through `wrappers`, as cargo does) and reads release and commit hash.
pub fn rustc_info(rustc: &Path, wrappers: &[PathBuf]) -> Result<RustcInfo, ComputeError> {
    let mut cmd = rustc_vv_command(rustc, wrappers);
    let out = run(&mut cmd)?;
    parse_rustc_vv(&out)
}

fn parse_rustc_vv(text: &str) -> Result<RustcInfo, ComputeError> {
    let field = |key: &'static str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned()))
            .ok_or(ComputeError::RustcOutput(key))
    };
    Ok(RustcInfo {
        release: field("release:")?,
        commit_hash: field("commit-hash:")?,
    })
}

fn run(cmd: &mut Command) -> Result<String, ComputeError> {
    let command = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd.output().map_err(|e| ComputeError::Command {
        command: command.clone(),
        message: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(ComputeError::Command {
            command,
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    String::from_utf8(out.stdout).map_err(|e| ComputeError::Command {
        command,
        message: e.to_string(),
    })
}

/// Runs a cargo subcommand offline first (no network from a build script when
/// everything is at hand), then online: `cargo metadata` reads the manifest of every
/// package in the lock, and on a partial build some may not be downloaded yet.
///
/// In the folder of `manifest_path`, as a build of it runs: cargo reads its
/// `.cargo/config.toml` (a `[patch]`, vendored sources) from the folder it runs in, and a
/// host's manifest computed from a plugin's folder took the plugin's.
fn cargo_offline_first(
    cargo: &Path,
    manifest_path: &Path,
    args: &[&str],
) -> Result<String, ComputeError> {
    let command = || {
        let mut cmd = Command::new(cargo);
        // Output read by this code: no colour codes, whatever `CARGO_TERM_COLOR` says
        // (`cargo tree` colours even into a pipe with `always`, and its ` (*)` marks
        // were no longer found).
        cmd.args(args).args(["--color", "never"]);
        // (A relative path is the caller's folder's, which stays the folder then.)
        if manifest_path.is_absolute()
            && let Some(dir) = manifest_path.parent()
        {
            cmd.current_dir(dir);
        }
        cmd
    };
    match run(command().arg("--offline")) {
        Ok(out) => Ok(out),
        Err(_) => run(&mut command()),
    }
}

/// One line of `cargo tree --prefix depth -f '{p}|{f}'`: a package as cargo builds the
/// root alone (features unified only with what the root itself pulls in).
#[derive(Debug, Clone, PartialEq, Eq)]
struct TreeNode {
    depth: usize,
    name: String,
    version: String,
    /// `None` for crates.io; else what cargo shows in parentheses (a path, a git URL, …).
    source: Option<String>,
    proc_macro: bool,
    features: Vec<String>,
    /// A repeat whose dependencies cargo does not show again (`(*)`).
    repeat: bool,
}

fn parse_tree_line(line: &str) -> Option<TreeNode> {
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    let depth: usize = line[..digits].parse().ok()?;
    let (package, features) = line[digits..].rsplit_once('|')?;
    let repeat = features.ends_with(" (*)");
    let features = features.trim_end_matches(" (*)").trim();
    let mut words = package.splitn(3, ' ');
    let name = words.next()?.to_owned();
    let version = words.next()?.strip_prefix('v')?.to_owned();
    let mut source = None;
    let mut proc_macro = false;
    // The rest: zero or more `(...)` groups, e.g. `(/path)`, `(proc-macro)`.
    for group in words.next().unwrap_or("").split(") (") {
        match group.trim_start_matches('(').trim_end_matches(')') {
            "" => {}
            "proc-macro" => proc_macro = true,
            other => source = Some(other.to_owned()),
        }
    }
    let mut features: Vec<String> = features
        .split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    features.sort();
    Some(TreeNode {
        depth,
        name,
        version,
        source,
        proc_macro,
        features,
        repeat,
    })
}

/// The resolve of the package at `manifest_path`, as cargo would build it alone: no
/// dev-dependencies, no other workspace members (whose features `cargo metadata` would
/// unify in). One `cargo tree` run: the check's whole cost.
fn resolve(
    cargo: &Path,
    manifest_path: &Path,
    target: &str,
    features: Option<&[String]>,
) -> Result<Vec<TreeNode>, ComputeError> {
    let manifest = manifest_path.to_string_lossy();
    let mut args = vec![
        "tree",
        "--manifest-path",
        &manifest,
        "--target",
        target,
        "-e",
        "normal",
        "--prefix",
        "depth",
        "-f",
        "{p}|{f}",
    ];
    let features = features.map(|f| f.join(","));
    if let Some(features) = &features {
        args.extend(["--no-default-features", "--features", features]);
    }
    let out = cargo_offline_first(cargo, manifest_path, &args)?;
    let nodes: Vec<TreeNode> = out.lines().filter_map(parse_tree_line).collect();
    if nodes.first().is_none_or(|n| n.depth != 0) {
        return Err(ComputeError::Metadata(format!(
            "`cargo tree` printed no package for `{manifest}`"
        )));
    }
    Ok(nodes)
}

/// The variable cargo sets in a build script's environment for a feature that is on.
pub fn feature_env_var(feature: &str) -> String {
    format!("CARGO_FEATURE_{}", feature.to_uppercase().replace('-', "_"))
}

/// The features of the package at `manifest_path` for which `is_on` says yes, by name:
/// the names, with their case and dashes, are the package's, from `cargo metadata` (a
/// build script learns what is on only as [`feature_env_var`]s).
pub fn enabled_features(
    cargo: &Path,
    manifest_path: &Path,
    is_on: impl Fn(&str) -> bool,
) -> Result<Vec<String>, ComputeError> {
    let manifest = manifest_path.to_string_lossy();
    let out = cargo_offline_first(
        cargo,
        manifest_path,
        &[
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
            &manifest,
        ],
    )?;
    let metadata: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| ComputeError::Metadata(e.to_string()))?;
    let package = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["manifest_path"].as_str().is_some_and(|m| {
                Path::new(m) == manifest_path
                    || std::fs::canonicalize(m).ok() == std::fs::canonicalize(manifest_path).ok()
            })
        })
        .ok_or_else(|| ComputeError::NoPackage(manifest.clone().into_owned()))?;
    let mut on: Vec<String> = package["features"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, _)| name)
        .filter(|name| is_on(name))
        .cloned()
        .collect();
    on.sort();
    Ok(on)
}

/// Resolves the package with cargo and computes its manifest.
pub fn compute_for_manifest_path(req: &ManifestRequest) -> Result<Computed, ComputeError> {
    let cargo = req
        .cargo
        .clone()
        .or_else(|| std::env::var_os("CARGO").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("cargo"));
    let nodes = resolve(
        &cargo,
        &req.manifest_path,
        &req.target,
        req.features.as_deref(),
    )?;
    let rustc = rustc_info(&req.rustc, &req.rustc_wrappers)?;
    let manifest = compute(&nodes, req.role, rustc, &req.target, &req.panic)?;

    let mut inputs = vec![req.manifest_path.clone()];
    // The lock and manifest of the workspace the package is in (the nearest above it).
    if let Some(root) = req
        .manifest_path
        .ancestors()
        .skip(1)
        .find(|d| d.join("Cargo.lock").is_file())
    {
        inputs.push(root.join("Cargo.lock"));
        inputs.push(root.join("Cargo.toml"));
    }
    if let Some(dir) = nodes
        .iter()
        .find(|n| n.name == CONTRACT_CRATE)
        .and_then(|n| n.source.as_deref())
        .filter(|s| s.starts_with('/'))
    {
        inputs.push(PathBuf::from(dir));
    }
    Ok(Computed { manifest, inputs })
}

fn compute(
    nodes: &[TreeNode],
    role: Role,
    rustc: RustcInfo,
    target: &str,
    panic: &str,
) -> Result<AbiManifest, ComputeError> {
    let root = &nodes[0];
    // The contract crate's first, fully shown occurrence, and its direct dependencies.
    let at = nodes
        .iter()
        .position(|n| n.name == CONTRACT_CRATE && !n.repeat)
        .ok_or_else(|| ComputeError::NoContract(root.name.clone()))?;
    let contract = &nodes[at];
    // The boundary: gwplugin's own normal dependencies. Each is a public dependency —
    // its types appear in the contract — so its version, source and features must match.
    // Their private dependencies (serde_core, itoa, …) don't cross and are not compared.
    let mut boundary: Vec<BoundaryCrate> = nodes[at + 1..]
        .iter()
        .take_while(|n| n.depth > contract.depth)
        .filter(|n| n.depth == contract.depth + 1 && !n.proc_macro)
        .map(|n| BoundaryCrate {
            name: n.name.clone(),
            version: n.version.clone(),
            source: source_of(n),
            features: n.features.clone(),
        })
        .collect();
    boundary.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    boundary.dedup();

    Ok(AbiManifest {
        format: FORMAT_VERSION,
        role,
        package: PackageName {
            name: root.name.clone(),
            version: root.version.clone(),
        },
        rustc,
        target: target.to_owned(),
        panic: panic.to_owned(),
        allocator: ALLOCATOR_CONTRACT.to_owned(),
        gwplugin: CrateIdentity {
            name: contract.name.clone(),
            version: contract.version.clone(),
            source: source_of(contract),
        },
        boundary,
    })
}

/// A crate's source identity, as `Cargo.lock` writes it for registries and git, and for
/// a path package a hash of its files (so the same code agrees wherever it is checked
/// out).
fn source_of(node: &TreeNode) -> String {
    match node.source.as_deref() {
        None => "registry+https://github.com/rust-lang/crates.io-index".to_owned(),
        Some(path) if path.starts_with('/') => {
            format!("path+sha256:{}", hash_path_source(Path::new(path)))
        }
        Some(other) if other.starts_with("registry `") => format!(
            "registry+{}",
            other.trim_start_matches("registry `").trim_end_matches('`')
        ),
        Some(git) => format!("git+{git}"),
    }
}

/// Hash of a path package's files: relative names and contents, sorted, leaving out
/// `target/`, hidden entries and `Cargo.lock`.
pub fn hash_path_source(dir: &Path) -> String {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files);
    files.sort();
    let mut hasher = Sha256::new();
    for rel in files {
        let Ok(contents) = std::fs::read(dir.join(&rel)) else {
            continue;
        };
        hasher.update(rel.as_bytes());
        hasher.update([0]);
        hasher.update((contents.len() as u64).to_le_bytes());
        hasher.update(&contents);
    }
    hex(&hasher.finalize())
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" || name == "Cargo.lock" {
            continue;
        }
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_files(root, &path, out),
            Ok(t) if t.is_file() => {
                if let Ok(rel) = path.strip_prefix(root) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rustc_vv() {
        let text = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\ncommit-hash: 59807616e1fa2540724bfbac14d7976d7e4a3860\nrelease: 1.95.0\n";
        let info = parse_rustc_vv(text).unwrap();
        assert_eq!(info.release, "1.95.0");
        assert_eq!(info.to_string(), "1.95.0 (59807616e)");
        assert!(matches!(
            parse_rustc_vv("rustc 1.0"),
            Err(ComputeError::RustcOutput("release:"))
        ));
    }

    #[test]
    fn reads_cargo_tree_lines() {
        let n = parse_tree_line("0big-plugin v0.1.0 (/tmp/big)|default").unwrap();
        assert_eq!(
            (
                n.depth,
                n.name.as_str(),
                n.version.as_str(),
                n.source.as_deref()
            ),
            (0, "big-plugin", "0.1.0", Some("/tmp/big"))
        );
        let n = parse_tree_line("3serde_json v1.0.154|default,std (*)").unwrap();
        assert_eq!(
            (n.depth, n.source, n.features, n.repeat),
            (3, None, vec!["default".to_owned(), "std".to_owned()], true)
        );
        let n = parse_tree_line("2serde_derive v1.0.228 (proc-macro)|default").unwrap();
        assert!(n.proc_macro && n.source.is_none());
        let n = parse_tree_line(
            "1http v1.5.0 (https://github.com/hyperium/http?branch=master#0123abcd)|",
        )
        .unwrap();
        assert_eq!(
            source_of(&n),
            "git+https://github.com/hyperium/http?branch=master#0123abcd"
        );
        assert!(n.features.is_empty());
    }

    #[test]
    fn path_hash_ignores_location_and_target_dir() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            std::fs::create_dir_all(d.join("src")).unwrap();
            std::fs::write(d.join("src/lib.rs"), "pub fn f() {}").unwrap();
        }
        std::fs::create_dir_all(b.path().join("target")).unwrap();
        std::fs::write(b.path().join("target/junk"), "x").unwrap();
        assert_eq!(hash_path_source(a.path()), hash_path_source(b.path()));
        std::fs::write(b.path().join("src/lib.rs"), "pub fn g() {}").unwrap();
        assert_ne!(hash_path_source(a.path()), hash_path_source(b.path()));
    }
}
