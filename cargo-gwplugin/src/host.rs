//! HOST: a host binary, an ABI manifest JSON file, a host Cargo project, or a `Cargo.lock`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gwplugin_build::{
    ALLOCATOR_CONTRACT, AbiManifest, BoundaryCrate, CrateIdentity, FORMAT_VERSION, PackageName,
    Role, RustcInfo,
};

use crate::error::{Error, io};
use crate::lockfile::Lockfile;
use crate::process::{self, Cargo, MetaPackage, Metadata};

const CONTRACT: &str = "gwplugin";
const BUILD_SUPPORT: &str = "gwplugin-build";
const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";
/// Shown where a `Cargo.lock` host cannot tell.
pub const UNKNOWN: &str = "(unknown)";

/// What kind of thing HOST named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    Binary,
    ManifestJson,
    Project,
    Lock,
}

impl HostKind {
    pub fn describe(self) -> &'static str {
        match self {
            HostKind::Binary => "host binary",
            HostKind::ManifestJson => "ABI manifest file",
            HostKind::Project => "host Cargo project",
            HostKind::Lock => "Cargo.lock",
        }
    }
}

/// Where the host takes a crate from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepSource {
    /// A path dependency in this directory.
    Path(PathBuf),
    /// crates.io (None) or another registry index.
    Registry(Option<String>),
    Git {
        url: String,
        rev: String,
    },
    /// A path dependency whose directory this kind of HOST does not tell.
    UnknownPath,
}

/// A crate as the host uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCrate {
    pub name: String,
    pub version: String,
    pub source: DepSource,
}

/// What sync wants a dependency of the plugin to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub version: String,
    /// Boundary crates are pinned exactly (`=x.y.z`).
    pub exact: bool,
    /// For a path crate of a host project: its directory.
    pub path: Option<PathBuf>,
}

/// A resolved host.
#[derive(Debug, Clone)]
pub struct Host {
    /// HOST as resolved (absolute when it exists).
    pub path: PathBuf,
    pub kind: HostKind,
    pub manifest: AbiManifest,
    /// False for a `Cargo.lock` host: it names no compiler, target or features.
    pub knows_compiler: bool,
    /// The host's whole lock (project and lock hosts).
    pub lock: Option<Lockfile>,
    pub lock_text: Option<String>,
    /// `gwplugin` and `gwplugin-build` as the host uses them, when it tells.
    pub contract_crates: BTreeMap<String, HostCrate>,
}

impl Host {
    /// Resolves HOST; a relative `spec` is taken relative to `base`.
    pub fn resolve(spec: &Path, base: &Path, cargo: &Cargo) -> Result<Host, Error> {
        let path = if spec.is_absolute() {
            spec.to_owned()
        } else {
            base.join(spec)
        };
        if !path.exists() {
            return Err(Error::HostMissing(path));
        }
        // A pipe (`--host <(gwhost plugin-abi)`, `/dev/stdin`) canonicalizes to a name
        // that can't be opened: it is kept as given.
        let path = match path.canonicalize() {
            Ok(resolved) if resolved.exists() => resolved,
            Ok(_) => path,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => path,
            Err(e) => return Err(io(&path)(e)),
        };
        if path.is_dir() {
            let manifest = path.join("Cargo.toml");
            if !manifest.is_file() {
                return Err(Error::NotAHost {
                    path,
                    reason: "it is a directory without a Cargo.toml".into(),
                });
            }
            return from_project(&manifest, cargo);
        }
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if file_name == "Cargo.toml" {
            return from_project(&path, cargo);
        }
        if file_name.ends_with(".lock") {
            return from_lock(&path);
        }
        let file = std::fs::File::open(&path).map_err(io(&path))?;
        // A host binary is megabytes of which the manifest section is a few hundred
        // bytes: map it rather than read it. A pipe (`--host <(gwhost plugin-abi)`) or
        // other file that cannot be mapped is read.
        let is_regular = file.metadata().map_err(io(&path))?.is_file();
        let bytes: Box<dyn std::ops::Deref<Target = [u8]>> = if is_regular {
            // SAFETY: read-only mapping; a binary changed under us at worst fails to parse.
            Box::new(unsafe { memmap2::Mmap::map(&file) }.map_err(io(&path))?)
        } else {
            let mut read = Vec::new();
            std::io::Read::read_to_end(&mut &file, &mut read).map_err(io(&path))?;
            Box::new(read)
        };
        if bytes.starts_with(b"\x7fELF") {
            return from_binary(path, &bytes);
        }
        if bytes.trim_ascii_start().starts_with(b"{") {
            let text = String::from_utf8_lossy(&bytes);
            let manifest = AbiManifest::from_json(&text).map_err(|e| Error::HostManifest {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            return Ok(from_manifest(path, HostKind::ManifestJson, manifest));
        }
        Err(Error::NotAHost {
            path,
            reason: "it is neither an ELF binary, a manifest JSON file, a Cargo project nor a \
                     Cargo.lock"
                .into(),
        })
    }

    /// A host known by its ABI manifest alone, e.g. a host binary judging plugins against
    /// the manifest it embeds (`gwhost check-plugin`). `path` and `kind` say where the
    /// manifest comes from; set [`Host::lock`] too when the host's `Cargo.lock` is known.
    pub fn from_manifest(path: PathBuf, kind: HostKind, manifest: AbiManifest) -> Host {
        from_manifest(path, kind, manifest)
    }

    /// One line naming the host, e.g. `gwhost 0.1.0 (host Cargo project `…/Cargo.toml`)`.
    pub fn describe(&self) -> String {
        format!(
            "`{}`{} ({} `{}`)",
            self.manifest.package.name,
            if self.manifest.package.version.is_empty() {
                String::new()
            } else {
                format!(" {}", self.manifest.package.version)
            },
            self.kind.describe(),
            self.path.display()
        )
    }

    /// Names of the boundary crates, `gwplugin` included.
    pub fn boundary_names(&self) -> BTreeSet<&str> {
        self.manifest
            .boundary
            .iter()
            .map(|c| c.name.as_str())
            .chain([CONTRACT])
            .collect()
    }

    /// The host's version(s) of a boundary crate.
    pub fn boundary_versions(&self, name: &str) -> Vec<&str> {
        if name == CONTRACT {
            return vec![self.manifest.gwplugin.version.as_str()];
        }
        self.manifest
            .boundary
            .iter()
            .filter(|c| c.name == name)
            .map(|c| c.version.as_str())
            .collect()
    }

    /// What a plugin's dependency on `name` should be, when the host has that crate (in
    /// the semver series the plugin asks for, for a crate that crosses the boundary).
    /// `current` is the plugin's version requirement, kept when it already fits.
    pub fn want(&self, name: &str, current: Option<&str>) -> Option<Want> {
        let path = self
            .contract_crates
            .get(name)
            .and_then(|c| match &c.source {
                DepSource::Path(p) => Some(p.clone()),
                _ => None,
            });
        if self.boundary_names().contains(name) {
            let versions = self.boundary_versions(name);
            // A requirement of another semver series is another crate to cargo (`http`
            // 0.2 beside the contract's 1.x): private to the plugin, and left alone. Not
            // for the contract itself, of which there is one: it follows the host's.
            let series = current
                .filter(|_| name != CONTRACT)
                .and_then(|c| semver::VersionReq::parse(c).ok())
                .and_then(|req| req.comparators.first().map(series_of_comparator));
            let version = versions
                .iter()
                .rev()
                .find(|v| {
                    series.is_none_or(|s| {
                        semver::Version::parse(v).is_ok_and(|v| series_of_version(&v) == s)
                    })
                })?
                .to_string();
            return Some(Want {
                version,
                exact: true,
                path,
            });
        }
        let lock = self.lock.as_ref()?;
        let mut versions: Vec<semver::Version> = lock
            .named(name)
            .filter_map(|p| semver::Version::parse(&p.version).ok())
            .collect();
        versions.sort();
        let current_req = current.and_then(|c| semver::VersionReq::parse(c).ok());
        let version = match &current_req {
            Some(req) => versions
                .iter()
                .rev()
                .find(|v| req.matches(v))
                .or(versions.last()),
            None => versions.last(),
        }?;
        Some(Want {
            version: version.to_string(),
            exact: false,
            path,
        })
    }

    /// The host manifest with what this kind of HOST cannot tell (a `Cargo.lock`: the
    /// compiler, target, features, path sources) taken from `plugin`, so that only what
    /// is known gets compared.
    pub fn comparable(&self, plugin: &AbiManifest) -> AbiManifest {
        let mut host = self.manifest.clone();
        if !self.knows_compiler {
            host.rustc = plugin.rustc.clone();
            host.target = plugin.target.clone();
            host.panic = plugin.panic.clone();
            host.allocator = plugin.allocator.clone();
            for c in &mut host.boundary {
                if let Some(p) = plugin
                    .boundary
                    .iter()
                    .find(|p| p.name == c.name && p.version == c.version)
                {
                    c.features = p.features.clone();
                    if c.source == UNKNOWN {
                        c.source = p.source.clone();
                    }
                }
            }
            if host.gwplugin.source == UNKNOWN && host.gwplugin.version == plugin.gwplugin.version {
                host.gwplugin.source = plugin.gwplugin.source.clone();
            }
        }
        host
    }
}

fn from_manifest(path: PathBuf, kind: HostKind, manifest: AbiManifest) -> Host {
    let mut contract_crates = BTreeMap::new();
    let source = if manifest.gwplugin.source.starts_with("path+") {
        DepSource::UnknownPath
    } else {
        source_of_repr(&manifest.gwplugin.source)
    };
    for name in [CONTRACT, BUILD_SUPPORT] {
        // gwplugin-build is released with gwplugin: same version, same place.
        contract_crates.insert(
            name.to_owned(),
            HostCrate {
                name: name.to_owned(),
                version: manifest.gwplugin.version.clone(),
                source: source.clone(),
            },
        );
    }
    Host {
        path,
        kind,
        manifest,
        knows_compiler: true,
        lock: None,
        lock_text: None,
        contract_crates,
    }
}

fn from_binary(path: PathBuf, bytes: &[u8]) -> Result<Host, Error> {
    use gwplugin_build::elf::ElfError;
    match gwplugin_build::elf::host_manifest(bytes, gwplugin_build::HOST_SECTION) {
        Ok(m) => Ok(from_manifest(path, HostKind::Binary, m)),
        Err(ElfError::NoManifest(..)) => Err(Error::NotAHost {
            path,
            reason: format!(
                "the binary has no `{}` section",
                gwplugin_build::HOST_SECTION
            ),
        }),
        Err(e) => Err(Error::HostManifest {
            path,
            reason: e.to_string(),
        }),
    }
}

fn source_of_repr(repr: &str) -> DepSource {
    if repr == CRATES_IO || repr == "sparse+https://index.crates.io/" {
        DepSource::Registry(None)
    } else if let Some(rest) = repr.strip_prefix("git+") {
        let (url, rev) = rest.split_once('#').unwrap_or((rest, ""));
        let url = url.split('?').next().unwrap_or(url);
        DepSource::Git {
            url: url.to_owned(),
            rev: rev.to_owned(),
        }
    } else if let Some(index) = repr
        .strip_prefix("registry+")
        .or_else(|| repr.strip_prefix("sparse+").map(|_| repr))
    {
        DepSource::Registry(Some(index.to_owned()))
    } else {
        DepSource::UnknownPath
    }
}

fn from_lock(path: &Path) -> Result<Host, Error> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let lock = Lockfile::parse(&text).map_err(|message| Error::Parse {
        path: path.to_owned(),
        message,
    })?;
    let contract: Vec<_> = lock.named(CONTRACT).collect();
    let [contract] = contract[..] else {
        return Err(Error::NotAHost {
            path: path.to_owned(),
            reason: format!(
                "it locks {} versions of `gwplugin`, not one",
                contract.len()
            ),
        });
    };
    let source = |s: &Option<String>| s.clone().unwrap_or_else(|| UNKNOWN.to_owned());
    let mut boundary: Vec<BoundaryCrate> = lock
        .deps_of(CONTRACT)
        .into_iter()
        .map(|p| BoundaryCrate {
            name: p.name.clone(),
            version: p.version.clone(),
            source: source(&p.source),
            features: Vec::new(),
        })
        .collect();
    boundary.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    let dir_name = path
        .parent()
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let manifest = AbiManifest {
        format: FORMAT_VERSION,
        role: Role::Host,
        package: PackageName {
            name: dir_name,
            version: String::new(),
        },
        rustc: RustcInfo {
            release: UNKNOWN.to_owned(),
            commit_hash: UNKNOWN.to_owned(),
        },
        target: UNKNOWN.to_owned(),
        panic: UNKNOWN.to_owned(),
        allocator: ALLOCATOR_CONTRACT.to_owned(),
        gwplugin: CrateIdentity {
            name: CONTRACT.to_owned(),
            version: contract.version.clone(),
            source: source(&contract.source),
        },
        boundary,
    };
    let mut contract_crates = BTreeMap::new();
    for name in [CONTRACT, BUILD_SUPPORT] {
        if let Some(p) = lock.named(name).next() {
            let source = match &p.source {
                Some(s) => source_of_repr(s),
                None => DepSource::UnknownPath,
            };
            contract_crates.insert(
                name.to_owned(),
                HostCrate {
                    name: name.to_owned(),
                    version: p.version.clone(),
                    source,
                },
            );
        }
    }
    Ok(Host {
        path: path.to_owned(),
        kind: HostKind::Lock,
        manifest,
        knows_compiler: false,
        lock: Some(lock),
        lock_text: Some(text),
        contract_crates,
    })
}

fn compute_error(path: &Path, e: gwplugin_build::ComputeError) -> Error {
    match e {
        gwplugin_build::ComputeError::NoContract(p) => Error::NotAHost {
            path: path.to_owned(),
            reason: format!("`{p}` does not depend on `gwplugin`"),
        },
        e => Error::Compute {
            path: path.to_owned(),
            message: e.to_string(),
        },
    }
}

fn from_project(manifest_path: &Path, cargo: &Cargo) -> Result<Host, Error> {
    let text = std::fs::read_to_string(manifest_path).map_err(io(manifest_path))?;
    let doc: toml_edit::DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| Error::Parse {
                path: manifest_path.to_owned(),
                message: e.to_string().trim_end().to_owned(),
            })?;
    // Resolving rewrites a lock that is out of date (or makes one): the host's files are
    // not this tool's to change. Kept here, put back below.
    let lock_path = cargo
        .workspace_manifest(manifest_path)?
        .with_file_name("Cargo.lock");
    let lock_before = std::fs::read(&lock_path).ok();
    let resolved = resolve_project(manifest_path, &doc, cargo);
    let lock_after = std::fs::read(&lock_path).ok();
    if lock_after != lock_before {
        let what = match &lock_before {
            Some(bytes) => {
                crate::txn::write_atomic(&lock_path, bytes)?;
                "is out of date: compared with what cargo would lock for it now, and left \
                 as it was\nhelp: run `cargo update --workspace` in the host's project, and \
                 rebuild the host"
            }
            None => {
                std::fs::remove_file(&lock_path).map_err(io(&lock_path))?;
                "does not exist: compared with what cargo would lock for the host now, and \
                 not written\nhelp: build the host once (it makes its lock), and keep the lock \
                 with its sources"
            }
        };
        crate::status(
            "Warning",
            &format!("the host's `{}` {what}", lock_path.display()),
        );
    }
    let (metadata, host_manifest, manifest) = resolved?;
    let lock_text = match lock_after {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => return Err(Error::NoLock(lock_path)),
    };
    from_resolve(
        manifest_path,
        metadata,
        host_manifest,
        manifest,
        &lock_path,
        &lock_text,
    )
}

/// The host project's resolve, its package's manifest path and its ABI manifest.
fn resolve_project(
    manifest_path: &Path,
    doc: &toml_edit::DocumentMut,
    cargo: &Cargo,
) -> Result<(Metadata, PathBuf, gwplugin_build::AbiManifest), Error> {
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    // The whole resolve: where the host takes `gwplugin` and `gwplugin-build` from, and
    // in a virtual workspace which member is the host.
    let metadata = cargo.metadata(manifest_path, &[])?;
    let host_manifest = if doc.contains_key("package") {
        manifest_path.to_owned()
    } else {
        host_package(&metadata, manifest_path)?
            .manifest_path
            .clone()
    };
    let rustc = process::toolchain_rustc(dir);
    let version = process::rustc_version(&rustc)?;
    let request = gwplugin_build::ManifestRequest {
        manifest_path: host_manifest.clone(),
        role: Role::Host,
        target: version.host.clone(),
        rustc,
        // The host's compiler is its project's own, as `toolchain_rustc` finds it: not
        // the wrappers set for the plugin's build (which would then always agree).
        rustc_wrappers: Vec::new(),
        panic: "unwind".to_owned(),
        cargo: Some(PathBuf::from(cargo.program())),
        features: None,
    };
    let manifest = gwplugin_build::compute_for_manifest_path(&request)
        .map_err(|e| compute_error(&host_manifest, e))?
        .manifest;
    Ok((metadata, host_manifest, manifest))
}

fn from_resolve(
    manifest_path: &Path,
    metadata: Metadata,
    host_manifest: PathBuf,
    manifest: gwplugin_build::AbiManifest,
    lock_path: &Path,
    lock_text: &str,
) -> Result<Host, Error> {
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let lock = Lockfile::parse(lock_text).map_err(|message| Error::Parse {
        path: lock_path.to_owned(),
        message,
    })?;
    let mut contract_crates = BTreeMap::new();
    for name in [CONTRACT, BUILD_SUPPORT] {
        let Some(locked) = lock.named(name).next() else {
            continue;
        };
        let Some(p) = metadata
            .packages
            .iter()
            .find(|p| p.name == name && p.version == locked.version && p.source == locked.source)
        else {
            continue;
        };
        let source = match &p.source {
            None => DepSource::Path(p.manifest_path.parent().unwrap_or(dir).to_owned()),
            Some(s) => source_of_repr(s),
        };
        contract_crates.insert(
            name.to_owned(),
            HostCrate {
                name: name.to_owned(),
                version: p.version.clone(),
                source,
            },
        );
    }
    Ok(Host {
        path: host_manifest,
        kind: HostKind::Project,
        manifest,
        knows_compiler: true,
        lock: Some(lock),
        lock_text: Some(lock_text.to_owned()),
        contract_crates,
    })
}

/// In a virtual workspace, the one member that is a host: a binary that depends on
/// `gwplugin` or `gwplugin-host` and calls `gwplugin-build` from its build script.
fn host_package<'a>(
    metadata: &'a Metadata,
    manifest_path: &Path,
) -> Result<&'a MetaPackage, Error> {
    let members: BTreeSet<&str> = metadata
        .workspace_members
        .iter()
        .map(String::as_str)
        .collect();
    let hosts: Vec<&MetaPackage> = metadata
        .packages
        .iter()
        .filter(|p| members.contains(p.id.as_str()))
        .filter(|p| {
            let dep = |name: &str, kind: Option<&str>| {
                p.dependencies
                    .iter()
                    .any(|d| d.name == name && d.kind.as_deref() == kind)
            };
            (dep(CONTRACT, None) || dep("gwplugin-host", None))
                && dep(BUILD_SUPPORT, Some("build"))
                && p.targets.iter().any(|t| t.kind.iter().any(|k| k == "bin"))
        })
        .collect();
    match hosts[..] {
        [one] => Ok(one),
        [] => Err(Error::NotAHost {
            path: manifest_path.to_owned(),
            reason: "no package of this workspace is a gwplugin host binary".into(),
        }),
        _ => Err(Error::AmbiguousHost {
            path: manifest_path.to_owned(),
            candidates: hosts
                .iter()
                .map(|p| format!("`{}`", p.name))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// A semver series, which cargo unifies into one crate: `1.x`, `0.2.x`, `0.0.3`.
type Series = (u64, Option<u64>, Option<u64>);

fn series_of_version(v: &semver::Version) -> Series {
    match (v.major, v.minor) {
        (0, 0) => (0, Some(0), Some(v.patch)),
        (0, minor) => (0, Some(minor), None),
        (major, _) => (major, None, None),
    }
}

fn series_of_comparator(c: &semver::Comparator) -> Series {
    match (c.major, c.minor, c.patch) {
        (0, Some(0), Some(patch)) => (0, Some(0), Some(patch)),
        (0, Some(minor), _) => (0, Some(minor), None),
        (0, None, _) => (0, None, None),
        (major, _, _) => (major, None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_classified() {
        assert_eq!(source_of_repr(CRATES_IO), DepSource::Registry(None));
        assert_eq!(
            source_of_repr("git+https://example.invalid/gw?branch=main#abc123"),
            DepSource::Git {
                url: "https://example.invalid/gw".into(),
                rev: "abc123".into()
            }
        );
        assert_eq!(source_of_repr("path+sha256:00"), DepSource::UnknownPath);
    }
}
