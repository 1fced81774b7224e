//! Computing a manifest from cargo's resolve and the compiler.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;

use cargo_metadata::{
    DependencyKind, Metadata, MetadataCommand, Node, Package, PackageId, TargetKind,
};
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
    let command = format!("{} -vV", rustc.display());
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
    parse_rustc_vv(&String::from_utf8_lossy(&out.stdout))
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

/// Resolves the package with `cargo metadata` and computes its manifest.
pub fn compute_for_manifest_path(req: &ManifestRequest) -> Result<Computed, ComputeError> {
    let mut cmd = MetadataCommand::new();
    if let Some(cargo) = &req.cargo {
        cmd.cargo_path(cargo);
    }
    cmd.manifest_path(&req.manifest_path);
    // Offline first (no network from a build script when everything is at hand); cargo
    // metadata reads the manifests of every package in the lock, so on a partial build
    // some may not be downloaded yet: then let cargo fetch them.
    let filter = vec!["--filter-platform".to_owned(), req.target.clone()];
    cmd.other_options([vec!["--offline".to_owned()], filter.clone()].concat());
    let metadata = match cmd.exec() {
        Ok(m) => m,
        Err(_) => {
            cmd.other_options(filter);
            cmd.exec()
                .map_err(|e| ComputeError::Metadata(e.to_string()))?
        }
    };
    let manifest_path = req
        .manifest_path
        .canonicalize()
        .unwrap_or_else(|_| req.manifest_path.clone());
    let root = metadata
        .packages
        .iter()
        .find(|p| p.manifest_path.as_std_path() == manifest_path)
        .ok_or_else(|| ComputeError::NoPackage(req.manifest_path.display().to_string()))?;
    let rustc = rustc_info(&req.rustc)?;
    let manifest = compute(
        &metadata,
        &root.id,
        req.role,
        rustc,
        &req.target,
        &req.panic,
    )?;

    let mut inputs = vec![
        req.manifest_path.clone(),
        metadata.workspace_root.as_std_path().join("Cargo.lock"),
    ];
    inputs.push(metadata.workspace_root.as_std_path().join("Cargo.toml"));
    if let Some(contract) = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == CONTRACT_CRATE && p.source.is_none())
        && let Some(dir) = contract.manifest_path.parent()
    {
        inputs.push(dir.as_std_path().to_owned());
    }
    Ok(Computed { manifest, inputs })
}

/// Computes the manifest of `root` from a resolved `cargo metadata`.
pub fn compute(
    metadata: &Metadata,
    root: &PackageId,
    role: Role,
    rustc: RustcInfo,
    target: &str,
    panic: &str,
) -> Result<AbiManifest, ComputeError> {
    let packages: HashMap<&PackageId, &Package> =
        metadata.packages.iter().map(|p| (&p.id, p)).collect();
    let resolve = metadata
        .resolve
        .as_ref()
        .ok_or_else(|| ComputeError::Metadata("no resolve".into()))?;
    let nodes: HashMap<&PackageId, &Node> = resolve.nodes.iter().map(|n| (&n.id, n)).collect();
    let root_pkg = packages
        .get(root)
        .ok_or_else(|| ComputeError::NoPackage(root.repr.clone()))?;

    // The contract crate as `root` links it: reachable through normal dependencies.
    let reachable = normal_closure(&nodes, &packages, root, true);
    let contract = reachable
        .iter()
        .filter_map(|id| packages.get(id))
        .find(|p| p.name.as_str() == CONTRACT_CRATE)
        .ok_or_else(|| ComputeError::NoContract(root_pkg.name.to_string()))?;

    let mut boundary: Vec<BoundaryCrate> = normal_closure(&nodes, &packages, &contract.id, false)
        .iter()
        .filter(|id| ***id != contract.id)
        .filter_map(|id| Some((packages.get(id)?, nodes.get(id)?)))
        .map(|(p, n)| BoundaryCrate {
            name: p.name.to_string(),
            version: p.version.to_string(),
            source: source_of(p),
            features: {
                let mut f: Vec<String> = n.features.iter().map(|f| f.to_string()).collect();
                f.sort();
                f
            },
        })
        .collect();
    boundary.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));

    Ok(AbiManifest {
        format: FORMAT_VERSION,
        role,
        package: PackageName {
            name: root_pkg.name.to_string(),
            version: root_pkg.version.to_string(),
        },
        rustc,
        target: target.to_owned(),
        panic: panic.to_owned(),
        allocator: ALLOCATOR_CONTRACT.to_owned(),
        gwplugin: CrateIdentity {
            name: contract.name.to_string(),
            version: contract.version.to_string(),
            source: source_of(contract),
        },
        boundary,
    })
}

/// Packages reachable from `from` through normal (non-build, non-dev) dependencies,
/// leaving out proc-macro crates (their types never reach a binary).
fn normal_closure<'a>(
    nodes: &HashMap<&'a PackageId, &'a Node>,
    packages: &HashMap<&'a PackageId, &'a Package>,
    from: &'a PackageId,
    include_start: bool,
) -> BTreeSet<&'a PackageId> {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([from]);
    if include_start {
        seen.insert(from);
    }
    while let Some(id) = queue.pop_front() {
        let Some(node) = nodes.get(id) else { continue };
        for dep in &node.deps {
            let normal = dep
                .dep_kinds
                .iter()
                .any(|k| k.kind == DependencyKind::Normal);
            let proc_macro = packages.get(&dep.pkg).is_some_and(|p| {
                p.targets
                    .iter()
                    .any(|t| t.kind.contains(&TargetKind::ProcMacro))
            });
            if normal && !proc_macro && seen.insert(&dep.pkg) {
                queue.push_back(&dep.pkg);
            }
        }
    }
    seen
}

/// A crate's source identity: the registry or git source as cargo reports it, or for a
/// path package a hash of its files (so the same code agrees wherever it is checked out).
fn source_of(package: &Package) -> String {
    match &package.source {
        Some(source) => source.repr.clone(),
        None => {
            let dir = package
                .manifest_path
                .parent()
                .map(|d| d.as_std_path().to_owned())
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
