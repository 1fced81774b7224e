use std::path::PathBuf;

use gwplugin::abi::{Kind, LayoutDifference};
use gwplugin_build::Difference;

/// Why one plugin file was not loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin `{}`: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin `{}`: checksum mismatch: configured sha256 {expected}, file has {actual}", path.display())]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("plugin `{}`: not an ELF shared object{}", path.display(), detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    NotElf {
        path: PathBuf,
        detail: Option<String>,
    },
    #[error("plugin `{}`: built for {found}, this host is {want}", path.display())]
    WrongMachine {
        path: PathBuf,
        found: String,
        want: String,
    },
    #[error("plugin `{}`: links {found} (NEEDED {needed}), this host uses {want}", path.display())]
    WrongLibc {
        path: PathBuf,
        found: String,
        needed: String,
        want: String,
    },
    #[error("plugin `{}`: links the Rust standard library dynamically (NEEDED {needed}, `-C prefer-dynamic`), which no gateway has beside it", path.display())]
    DynamicStd { path: PathBuf, needed: String },
    #[error("plugin `{}`: its ABI manifest says rustc {manifest}, but the file says rustc {built_by} built it: the manifest does not describe this file, refused before loading", path.display())]
    OtherCompiler {
        path: PathBuf,
        manifest: String,
        built_by: String,
    },
    #[error("plugin `{}`: no gwplugin ABI manifest (symbol `{symbol}` missing): not built with `gwplugin::export!` and `gwplugin_build::plugin()`", path.display())]
    NoManifest { path: PathBuf, symbol: &'static str },
    #[error("plugin `{}`: unreadable ABI manifest: {message}", path.display())]
    BadManifest { path: PathBuf, message: String },
    #[error("plugin `{}`: incompatible with this host, refused before loading:\n{}", path.display(), format_diffs(diffs))]
    Incompatible {
        path: PathBuf,
        diffs: Vec<Difference>,
    },
    #[error("plugin `{}`: the contract's types are laid out differently than in this host \
             (features of a boundary crate its manifest does not record), refused before loading:\n{}",
            path.display(), format_layout(diffs))]
    Layout {
        path: PathBuf,
        diffs: Vec<LayoutDifference>,
    },
    #[error("plugin `{}`: dlopen failed: {message}", path.display())]
    Dlopen { path: PathBuf, message: String },
    #[error("plugin `{}`: registration failed: {message}", path.display())]
    Registration { path: PathBuf, message: String },
    #[error("plugin name `{name}` is registered twice: by `{}` and by `{}`", first.display(), second.display())]
    DuplicateName {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("plugin folder `{}`: cannot read: {source}", path.display())]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`plugin.sha256` names `{file}`, but {why} `{}`", folder.display())]
    ChecksumForMissingFile {
        file: String,
        folder: PathBuf,
        why: NotACandidate,
    },
}

/// Why a name in `plugin.sha256` is no plugin file of the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotACandidate {
    Missing,
    Hidden,
    /// Its name does not contain the pattern (given).
    OutsidePattern(String),
}

impl std::fmt::Display for NotACandidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotACandidate::Missing => f.write_str("there is no such file in"),
            NotACandidate::Hidden => {
                f.write_str("a hidden file (its name starts with `.`) is never loaded from")
            }
            NotACandidate::OutsidePattern(pattern) => write!(
                f,
                "its name does not contain `plugin.pattern` (`{pattern}`): it is not loaded from"
            ),
        }
    }
}

fn format_diffs(diffs: &[Difference]) -> String {
    diffs
        .iter()
        .map(|d| format!("  {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn format_layout(diffs: &[LayoutDifference]) -> String {
    diffs
        .iter()
        .map(|d| {
            let (have, want) = layout_pair(d);
            format!("  {}  have: {have}  want: {want}", d.type_name)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A layout difference as the plugin's and this host's `size …, align …`.
pub fn layout_pair(d: &LayoutDifference) -> (String, String) {
    let show = |(size, align): (u32, u32)| format!("{size} bytes, align {align}");
    (show(d.plugin), show(d.here))
}

impl LoadError {
    /// The plugin file this error is about, if it is about one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            LoadError::Io { path, .. }
            | LoadError::Checksum { path, .. }
            | LoadError::NotElf { path, .. }
            | LoadError::WrongMachine { path, .. }
            | LoadError::WrongLibc { path, .. }
            | LoadError::NoManifest { path, .. }
            | LoadError::DynamicStd { path, .. }
            | LoadError::OtherCompiler { path, .. }
            | LoadError::BadManifest { path, .. }
            | LoadError::Incompatible { path, .. }
            | LoadError::Layout { path, .. }
            | LoadError::Dlopen { path, .. }
            | LoadError::Registration { path, .. } => Some(path),
            LoadError::DuplicateName { second, .. } => Some(second),
            LoadError::Folder { .. } | LoadError::ChecksumForMissingFile { .. } => None,
        }
    }
}

/// Why a configured plugin name can't be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    #[error(
        "unknown plugin `{name}` for `{namespace}`{}",
        available_hint(available)
    )]
    Unknown {
        name: String,
        namespace: &'static str,
        available: Vec<String>,
    },
    #[error("plugin `{name}` (from `{}`) is a {found} plugin, but `{namespace}` needs a {wanted} plugin", file.display())]
    WrongKind {
        name: String,
        file: PathBuf,
        found: Kind,
        wanted: Kind,
        namespace: &'static str,
    },
}

fn available_hint(names: &[String]) -> String {
    if names.is_empty() {
        ": no plugin of that kind is loaded".to_owned()
    } else {
        format!(
            ": loaded ones are {}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}
