//! Computing a manifest from cargo's resolve and the compiler.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
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
    /// `unwind` or `abort`.
    pub panic: String,
    /// The cargo to run `cargo metadata` with (default: `$CARGO`, else `cargo`).
    pub cargo: Option<PathBuf>,
}

/// A manifest and the files it was computed from.
#[derive(Debug, Clone)]
pub struct Computed {
    pub manifest: AbiManifest,
    pub inputs: Vec<PathBuf>,
}

/// Runs `rustc -vV` and reads release and commit hash.
pub fn rustc_info(rustc: &Path) -> Result<RustcInfo, ComputeError> {
    let mut cmd = Command::new(rustc);
    cmd.arg("-vV");
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
fn cargo_offline_first(cargo: &Path, args: &[&str]) -> Result<String, ComputeError> {
    let offline = run(Command::new(cargo).args(args).arg("--offline"));
    match offline {
        Ok(out) => Ok(out),
        Err(_) => run(Command::new(cargo).args(args)),
    }
}

// The parts of `cargo metadata --format-version 1` this crate reads. (Not the
// `cargo_metadata` crate: it enables serde_json's `unbounded_depth`, and serde_json is a
// boundary crate — every host would then differ from every plugin in its features.)
#[derive(Debug, Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    resolve: Option<Resolve>,
    workspace_root: PathBuf,
}

#[derive(Debug, Deserialize)]
struct Package {
    id: String,
    name: String,
    version: String,
    source: Option<String>,
    manifest_path: PathBuf,
    targets: Vec<Target>,
}

#[derive(Debug, Deserialize)]
struct Target {
    kind: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
}

#[derive(Debug, Deserialize)]
struct Node {
    id: String,
    deps: Vec<NodeDep>,
}

#[derive(Debug, Deserialize)]
struct NodeDep {
    pkg: String,
    dep_kinds: Vec<DepKindInfo>,
}

#[derive(Debug, Deserialize)]
struct DepKindInfo {
    /// `null` for a normal dependency, else `dev` or `build`.
    kind: Option<String>,
}

/// Features of each package as cargo builds `manifest_path` alone (`cargo tree -e
/// normal`: no dev-dependencies, no other workspace members), keyed by name and version.
/// `cargo metadata` can't give this: it unifies features across the whole workspace.
fn package_features(
    cargo: &Path,
    manifest_path: &Path,
    target: &str,
) -> Result<BTreeMap<(String, String), Vec<String>>, ComputeError> {
    let manifest = manifest_path.to_string_lossy();
    let out = cargo_offline_first(
        cargo,
        &[
            "tree",
            "--manifest-path",
            &manifest,
            "--target",
            target,
            "-e",
            "normal",
            "--prefix",
            "none",
            "-f",
            "{p}|{f}",
        ],
    )?;
    let mut features = BTreeMap::new();
    for line in out.lines() {
        let Some((package, list)) = line.split_once('|') else {
            continue;
        };
        let mut words = package.split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            continue;
        };
        let list = list.trim_end_matches(" (*)").trim();
        let mut f: Vec<String> = list
            .split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect();
        f.sort();
        features.insert(
            (name.to_owned(), version.trim_start_matches('v').to_owned()),
            f,
        );
    }
    Ok(features)
}

/// Resolves the package with cargo and computes its manifest.
pub fn compute_for_manifest_path(req: &ManifestRequest) -> Result<Computed, ComputeError> {
    let cargo = req
        .cargo
        .clone()
        .or_else(|| std::env::var_os("CARGO").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("cargo"));
    let manifest = req.manifest_path.to_string_lossy();
    let json = cargo_offline_first(
        &cargo,
        &[
            "metadata",
            "--format-version",
            "1",
            "--manifest-path",
            &manifest,
            "--filter-platform",
            &req.target,
        ],
    )?;
    let metadata: Metadata =
        serde_json::from_str(&json).map_err(|e| ComputeError::Metadata(e.to_string()))?;
    let features = package_features(&cargo, &req.manifest_path, &req.target)?;
    let manifest_path = req
        .manifest_path
        .canonicalize()
        .unwrap_or_else(|_| req.manifest_path.clone());
    let root = metadata
        .packages
        .iter()
        .find(|p| p.manifest_path == manifest_path)
        .ok_or_else(|| ComputeError::NoPackage(req.manifest_path.display().to_string()))?;
    let rustc = rustc_info(&req.rustc)?;
    let manifest = compute(
        &metadata,
        &features,
        &root.id,
        req.role,
        rustc,
        &req.target,
        &req.panic,
    )?;

    let mut inputs = vec![
        req.manifest_path.clone(),
        metadata.workspace_root.join("Cargo.lock"),
        metadata.workspace_root.join("Cargo.toml"),
    ];
    if let Some(contract) = metadata
        .packages
        .iter()
        .find(|p| p.name == CONTRACT_CRATE && p.source.is_none())
        && let Some(dir) = contract.manifest_path.parent()
    {
        inputs.push(dir.to_owned());
    }
    Ok(Computed { manifest, inputs })
}

fn compute(
    metadata: &Metadata,
    features: &BTreeMap<(String, String), Vec<String>>,
    root: &str,
    role: Role,
    rustc: RustcInfo,
    target: &str,
    panic: &str,
) -> Result<AbiManifest, ComputeError> {
    let packages: HashMap<&str, &Package> = metadata
        .packages
        .iter()
        .map(|p| (p.id.as_str(), p))
        .collect();
    let resolve = metadata
        .resolve
        .as_ref()
        .ok_or_else(|| ComputeError::Metadata("no resolve".into()))?;
    let nodes: HashMap<&str, &Node> = resolve.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let root_pkg = packages
        .get(root)
        .ok_or_else(|| ComputeError::NoPackage(root.to_owned()))?;

    // The contract crate as `root` links it: reachable through normal dependencies.
    let reachable = normal_closure(&nodes, &packages, root);
    let contract = reachable
        .iter()
        .filter_map(|id| packages.get(id))
        .find(|p| p.name == CONTRACT_CRATE)
        .ok_or_else(|| ComputeError::NoContract(root_pkg.name.clone()))?;

    // The boundary: gwplugin's own normal dependencies. Each is a public dependency —
    // its types appear in the contract — so its version, source and features must match.
    // Their private dependencies (serde_core, itoa, …) don't cross and are not compared.
    let contract_node = nodes
        .get(contract.id.as_str())
        .ok_or_else(|| ComputeError::Metadata("no resolve node for gwplugin".into()))?;
    let mut boundary: Vec<BoundaryCrate> = contract_node
        .deps
        .iter()
        .filter(|dep| dep.dep_kinds.iter().any(|k| k.kind.is_none()))
        .filter_map(|dep| packages.get(dep.pkg.as_str()))
        .filter(|p| {
            !p.targets
                .iter()
                .any(|t| t.kind.iter().any(|k| k == "proc-macro"))
        })
        .map(|p| BoundaryCrate {
            name: p.name.clone(),
            version: p.version.clone(),
            source: source_of(p),
            features: features
                .get(&(p.name.clone(), p.version.clone()))
                .cloned()
                .unwrap_or_default(),
        })
        .collect();
    boundary.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));

    Ok(AbiManifest {
        format: FORMAT_VERSION,
        role,
        package: PackageName {
            name: root_pkg.name.clone(),
            version: root_pkg.version.clone(),
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

/// Packages reachable from `from` through normal (non-build, non-dev) dependencies,
/// leaving out proc-macro crates (their types never reach a binary).
fn normal_closure<'a>(
    nodes: &HashMap<&'a str, &'a Node>,
    packages: &HashMap<&'a str, &'a Package>,
    from: &'a str,
) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::from([from]);
    let mut queue = VecDeque::from([from]);
    while let Some(id) = queue.pop_front() {
        let Some(node) = nodes.get(id) else { continue };
        for dep in &node.deps {
            let normal = dep.dep_kinds.iter().any(|k| k.kind.is_none());
            let proc_macro = packages.get(dep.pkg.as_str()).is_some_and(|p| {
                p.targets
                    .iter()
                    .any(|t| t.kind.iter().any(|k| k == "proc-macro"))
            });
            if normal && !proc_macro && seen.insert(dep.pkg.as_str()) {
                queue.push_back(dep.pkg.as_str());
            }
        }
    }
    seen
}

/// A crate's source identity: the registry or git source as cargo reports it, or for a
/// path package a hash of its files (so the same code agrees wherever it is checked out).
fn source_of(package: &Package) -> String {
    match &package.source {
        Some(source) => source.clone(),
        None => {
            let dir = package
                .manifest_path
                .parent()
                .map(Path::to_owned)
                .unwrap_or_default();
            format!("path+sha256:{}", hash_path_source(&dir))
        }
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
