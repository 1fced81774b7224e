//! The plugin crate a command works on: its `Cargo.toml` and its HOST setting.

use std::path::{Path, PathBuf};

use toml_edit::DocumentMut;

use crate::error::{Error, io};
use crate::host::Host;
use crate::process::Cargo;

/// `--host` and `--manifest-path`: the plugin a command works on and the host it targets
/// (`check`, `sync` and `build` take both).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PluginHostArgs {
    /// The host: a host binary, an ABI manifest JSON file, a host Cargo project (its
    /// directory or Cargo.toml) or a Cargo.lock [default: `[package.metadata.gwplugin]
    /// host` of the plugin]
    #[arg(long, value_name = "HOST")]
    pub host: Option<PathBuf>,
    /// Path to the plugin's Cargo.toml
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
}

impl PluginHostArgs {
    /// The plugin's manifest.
    pub fn plugin(&self) -> Result<PluginManifest, Error> {
        PluginManifest::locate(self.manifest_path.as_deref())
    }

    /// Where the plugin's host is (`--host`, else its manifest's setting), and the
    /// directory a relative one is taken from.
    pub fn host_spec(&self, plugin: &PluginManifest) -> Result<(PathBuf, PathBuf), Error> {
        plugin.host_spec(self.host.as_deref())
    }

    /// The plugin, and its host resolved.
    pub fn resolve(&self, cargo: &Cargo) -> Result<(PluginManifest, Host), Error> {
        let plugin = self.plugin()?;
        let (spec, base) = self.host_spec(&plugin)?;
        let host = Host::resolve(&spec, &base, cargo)?;
        Ok((plugin, host))
    }
}

/// A plugin's manifest, read and parsed.
#[derive(Debug, Clone)]
pub struct PluginManifest {
    /// Absolute path of its `Cargo.toml`.
    pub path: PathBuf,
    pub text: String,
    pub doc: DocumentMut,
}

impl PluginManifest {
    /// `--manifest-path`, or the `Cargo.toml` of the current directory or a parent.
    pub fn locate(manifest_path: Option<&Path>) -> Result<Self, Error> {
        let cwd = std::env::current_dir().map_err(io("."))?;
        let path = match manifest_path {
            Some(p) => {
                let p = cwd.join(p);
                if !p.is_file() {
                    return Err(Error::ManifestMissing(p));
                }
                // As cargo: another name is not read as a manifest, whatever it holds.
                if p.file_name().is_none_or(|n| n != "Cargo.toml") {
                    return Err(Error::NotCargoToml(p));
                }
                p
            }
            None => cwd
                .ancestors()
                .map(|d| d.join("Cargo.toml"))
                .find(|p| p.is_file())
                .ok_or_else(|| Error::NoManifest(cwd.clone()))?,
        };
        Self::read(normalize(&path))
    }

    /// Reads and parses any `Cargo.toml`, a virtual workspace's too.
    pub fn read_any(path: PathBuf) -> Result<Self, Error> {
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let doc: DocumentMut = text
            .parse()
            .map_err(|e: toml_edit::TomlError| Error::Parse {
                path: path.clone(),
                message: e.to_string().trim_end().to_owned(),
            })?;
        Ok(PluginManifest { path, text, doc })
    }

    /// Reads and parses a package's `Cargo.toml`.
    pub fn read(path: PathBuf) -> Result<Self, Error> {
        let manifest = Self::read_any(path)?;
        if !manifest
            .doc
            .get("package")
            .is_some_and(|p| p.is_table_like())
        {
            return Err(Error::NotAPackage(manifest.path));
        }
        Ok(manifest)
    }

    pub fn dir(&self) -> &Path {
        self.path.parent().expect("a file has a parent")
    }

    pub fn package_name(&self) -> String {
        self.doc
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or("?")
            .to_owned()
    }

    /// `[package.metadata.gwplugin] host`.
    pub fn host_setting(&self) -> Option<String> {
        self.doc
            .get("package")?
            .get("metadata")?
            .get("gwplugin")?
            .get("host")?
            .as_str()
            .map(str::to_owned)
    }

    /// HOST from the command line (relative to the current directory) or from the
    /// manifest (relative to the plugin's directory), as (spec, base).
    pub fn host_spec(&self, cli: Option<&Path>) -> Result<(PathBuf, PathBuf), Error> {
        if let Some(h) = cli {
            let cwd = std::env::current_dir().map_err(io("."))?;
            return Ok((h.to_owned(), cwd));
        }
        match self.host_setting() {
            Some(h) => Ok((PathBuf::from(h), self.dir().to_owned())),
            None => Err(Error::NoHost {
                package: self.package_name(),
            }),
        }
    }
}

/// `path` without `.` and `..` parts, as cargo reads a manifest path: lexically, not
/// resolving symlinks. A symlinked `Cargo.toml`'s relative paths start from the link's
/// folder, as cargo's do, not from its target's.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            part => out.push(part),
        }
    }
    out
}
