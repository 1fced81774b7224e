//! The library's typed errors. Each knows what the user should do about it
//! ([`Error::help`]) and its exit code; `crate::report_error` prints them cargo-style.

use std::path::{Path, PathBuf};

use crate::process::ProcessError;

/// Exit code: everything went well (and the plugin is compatible).
pub const EXIT_OK: u8 = 0;
/// Exit code: the plugin is incompatible with its host, or could not be made compatible.
pub const EXIT_INCOMPATIBLE: u8 = 1;
/// Exit code: bad usage or an environment problem (missing files, cargo failed, …).
pub const EXIT_USAGE: u8 = 2;

/// Everything `cargo gwplugin` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no host given for `{package}`")]
    NoHost { package: String },
    #[error("no host given")]
    NoHostForNew,
    #[error("host `{0}` does not exist")]
    HostMissing(PathBuf),
    #[error("`{path}` is not a gwplugin host: {reason}")]
    NotAHost { path: PathBuf, reason: String },
    #[error("could not read the ABI manifest of host `{path}`: {reason}")]
    HostManifest { path: PathBuf, reason: String },
    #[error("host `{path}` has several packages that could be the host: {candidates}")]
    AmbiguousHost { path: PathBuf, candidates: String },
    #[error("host `{host}` takes `{krate}` from {what}, which {} {kind} does not locate", if kind.starts_with(['a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U']) { "an" } else { "a" })]
    HostSourceUnknown {
        host: PathBuf,
        krate: String,
        what: String,
        kind: &'static str,
    },
    #[error("could not find `Cargo.toml` in `{0}` or any parent directory")]
    NoManifest(PathBuf),
    #[error("{}", manifest_missing(.0))]
    ManifestMissing(PathBuf),
    #[error("could not parse `{path}`: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{}", not_a_package(.0))]
    NotAPackage(PathBuf),
    #[error("the manifest-path must be a path to a Cargo.toml file: `{}`", .0.display())]
    NotCargoToml(PathBuf),
    #[error("`{path}`: {message}")]
    Io { path: PathBuf, message: String },
    #[error("`{0}` does not exist")]
    NoLock(PathBuf),
    #[error("`{lock}` is out of date with `{manifest}`")]
    LockOutdated { lock: PathBuf, manifest: PathBuf },
    #[error("`{package}` does not depend on `gwplugin`")]
    NoContract { package: String },
    #[error("could not compute the ABI manifest of `{path}`: {message}")]
    Compute { path: PathBuf, message: String },
    #[error("invalid package name `{name}`: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("destination `{0}` already exists and is not empty")]
    NotEmpty(PathBuf),
    #[error("could not align `{krate}` in `{lock}`: it is at {have}, the host has {want}")]
    Unsyncable {
        krate: String,
        have: String,
        want: String,
        lock: PathBuf,
    },
    #[error("no plugin built for the host's target: `{}` does not exist", .0.display())]
    NotBuilt(PathBuf),
    #[error("target `{0}` is not supported")]
    UnsupportedTarget(String),
    #[error(
        "feature `{0}` of a dependency, given on the command line, would be built into the plugin but not recorded in its ABI manifest"
    )]
    UnrecordedFeature(String),
    #[error(
        "`{0}` after `--` would build the plugin with features or beside packages its manifest does not record"
    )]
    SelectionAfterDashes(String),
    #[error("{}", unknown_feature(feature, package))]
    UnknownFeature { feature: String, package: String },
    #[error("the Rust standard library for `{target}` is not installed in toolchain `{toolchain}`")]
    MissingRustTarget { target: String, toolchain: String },
    #[error("linker `{linker}` for `{target}` is not installed")]
    MissingLinker {
        linker: String,
        package: String,
        target: String,
    },
    #[error("`{command}` failed ({status})")]
    BuildFailed {
        command: String,
        status: String,
        code: u8,
    },
    #[error("`{command}` produced no cdylib for `{package}`")]
    NoArtifact { command: String, package: String },
    /// Built, but no host would load it.
    #[error("`{}` would not load in any host: {reason}", path.display())]
    Unloadable {
        path: PathBuf,
        reason: String,
        help: &'static str,
    },
    #[error("`{}` is not a genuine {target} plugin: {reason}", path.display())]
    BadArtifact {
        path: PathBuf,
        target: String,
        reason: String,
    },
    #[error("`{package}` is incompatible with host {host}: {}", found(*.count))]
    Incompatible {
        package: String,
        host: String,
        count: usize,
    },
    #[error(
        "`{package}` is still incompatible with host {host} ({count} above): `sync` aligned what it aligns"
    )]
    StillIncompatible {
        package: String,
        host: String,
        count: usize,
    },
    #[error("cannot register `{plugin}` in `{}`: {message}", config.display())]
    RegisterConflict {
        plugin: String,
        config: PathBuf,
        message: String,
        help: String,
    },
    #[error("no gwhost to run `test-plugin` with")]
    NoGwhost,
    #[error("cannot run gwhost `{}`: {message}", path.display())]
    GwhostUnreadable { path: PathBuf, message: String },
    #[error("`{command}` crashed: {status}")]
    ChildCrashed { command: String, status: String },
    #[error(transparent)]
    Process(#[from] ProcessError),
}

impl Error {
    /// What the user should do next, if there is something to say.
    pub fn help(&self) -> Option<String> {
        Some(match self {
            Error::NoHost { .. } => {
                "pass `--host HOST` (a host binary, an ABI manifest JSON file, \
                 a host Cargo project or its `Cargo.lock`), or set it once in Cargo.toml:\n\
                 [package.metadata.gwplugin]\nhost = \"path/to/host\""
                    .to_owned()
            }
            Error::NoHostForNew => "pass `--host HOST`: a host binary, an ABI manifest JSON file, \
                 a host Cargo project or its `Cargo.lock`"
                .to_owned(),
            Error::HostMissing(_) => "check `--host` or `[package.metadata.gwplugin] host` in \
                 Cargo.toml (a relative path there is relative to the plugin's directory)"
                .to_owned(),
            Error::NotAHost { .. } => {
                "HOST must be a host binary built with `gwplugin_build::host()`, \
                 an ABI manifest JSON file (`gwhost plugin-abi > host-abi.json`), a host Cargo \
                 project (a directory or its Cargo.toml) or its `Cargo.lock`"
                    .to_owned()
            }
            Error::HostManifest { .. } => "rebuild the host, or upgrade cargo-gwplugin \
                 (`cargo install --locked --path cargo-gwplugin`) if the host is newer"
                .to_owned(),
            Error::AmbiguousHost { .. } => {
                "pass the host package's own Cargo.toml with `--host`".to_owned()
            }
            Error::HostSourceUnknown { .. } => {
                "pass the host's Cargo project (its directory or Cargo.toml) with `--host`"
                    .to_owned()
            }
            Error::NoManifest(_) => {
                "run this in a plugin crate, or pass `--manifest-path path/to/Cargo.toml`"
                    .to_owned()
            }
            Error::ManifestMissing(path) if path.is_dir() => format!(
                "pass the `Cargo.toml` in it: `--manifest-path {}`",
                path.join("Cargo.toml").display()
            ),
            Error::ManifestMissing(_) => "check `--manifest-path`".to_owned(),
            Error::Parse { .. } => "fix the file and run the command again".to_owned(),
            Error::NotAPackage(_) => "run the command in the plugin crate's folder, or pass \
                 its `Cargo.toml` with `--manifest-path`"
                .to_owned(),
            Error::NotCargoToml(_) => "pass the crate's `Cargo.toml`".to_owned(),
            Error::Io { .. } => {
                "check that the path exists and that you may read (and write) it".to_owned()
            }
            Error::NoLock(_) => {
                "run `cargo gwplugin sync` to create it with the host's versions".to_owned()
            }
            Error::LockOutdated { .. } => {
                "run `cargo gwplugin sync` to update it with the host's versions".to_owned()
            }
            Error::NoContract { .. } => "add the host's `gwplugin` to `[dependencies]` \
                 (`cargo gwplugin new` shows how a plugin crate looks)"
                .to_owned(),
            // The host's checkout moved the contract on (a `git pull`): the plugin still
            // asks for the old `=x.y.z`, which `sync` rewrites.
            Error::Compute { message, .. }
                if message.contains("failed to select a version for the requirement `gwplugin") =>
            {
                "the plugin asks for another version of the contract than its host's sources \
                 have: run `cargo gwplugin sync` to move it to the host's"
                    .to_owned()
            }
            Error::Compute { .. } => "fix what the message names (the crate, its \
                 dependencies, its lock, or a program the build runs, such as a compiler \
                 wrapper); the command it shows gives that program's whole output"
                .to_owned(),
            Error::InvalidName { .. } => "a package name is made of ASCII letters, digits, `-` \
                 and `_`, starts with a letter, and is not a Rust keyword; e.g. `my-plugin`"
                .to_owned(),
            Error::NotEmpty(_) => {
                "choose another directory (`new`: another name or `--path`; `quickstart`: \
                 `--dir`), or empty it first"
                    .to_owned()
            }
            Error::Unsyncable { .. } => "another dependency of the plugin holds it back: run \
                 `cargo tree -i CRATE` to see which, and align or drop it; nothing was changed"
                .to_owned(),
            Error::NotBuilt(_) => "run `cargo gwplugin build` first (it builds the plugin \
                 there, for the host's target), or name the plugin file (one built with \
                 `--out-dir` or for another `--target`)"
                .to_owned(),
            Error::UnrecordedFeature(feature) => format!(
                "give the plugin a feature of its own for it, in Cargo.toml: [features] \
                 my-feature = [\"{feature}\"], and pass `--features my-feature`"
            ),
            Error::SelectionAfterDashes(_) => "give features as `cargo gwplugin build` options \
                 (`-F`, `--all-features`, `--no-default-features`), which the manifest records; \
                 the plugin is built alone"
                .to_owned(),
            Error::UnknownFeature { .. } => "name a feature in the plugin's `[features]`, or \
                 `DEP/FEATURE` of one of its `[dependencies]`"
                .to_owned(),
            Error::UnsupportedTarget(_) => format!("pass one of: {}", crate::target::SUPPORTED.join(", ")),
            Error::MissingRustTarget { target, toolchain } => {
                format!("run `rustup target add {target} --toolchain {toolchain}`")
            }
            Error::MissingLinker { package, .. } => format!("run `apt-get install -y {package}`"),
            Error::BuildFailed { .. } => "fix the errors cargo printed above".to_owned(),
            Error::NoArtifact { .. } => {
                "the package needs `[lib] crate-type = [\"cdylib\"]` (`cargo gwplugin sync` adds it)".to_owned()
            }
            Error::Unloadable { help, .. } => (*help).to_owned(),
            Error::BadArtifact { .. } => "nothing was copied or registered; this is a bug in the target \
                 setup: please report it with the output of `cargo gwplugin build -v`"
                .to_owned(),
            Error::Incompatible { .. } => "fix the incompatibilities above (most are fixed by \
                 `cargo gwplugin sync`), or pass `--no-check` to build anyway"
                .to_owned(),
            Error::StillIncompatible { .. } => "what is left is not something `sync` can \
                 change: follow each `help:` line above"
                .to_owned(),
            Error::RegisterConflict { help, .. } => help.clone(),
            Error::GwhostUnreadable { .. } => "name a gwhost binary with `--gwhost PATH` (one \
                 `cargo build -p gwhost` or `cargo gwplugin host-build` made), or leave it out \
                 to use the plugin's host or the `gwhost` on PATH"
                .to_owned(),
            Error::NoGwhost => "pass `--gwhost PATH`, put `gwhost` on PATH, or set the plugin's \
                 host to a gwhost binary"
                .to_owned(),
            Error::ChildCrashed { .. } => "the plugin crashed gwhost's test process; \
                 cargo gwplugin itself is fine: run the command above to reproduce"
                .to_owned(),
            Error::Process(e) if e.what.starts_with("could not be started") => {
                "check that the program exists: `$CARGO` if set, else `cargo` on PATH".to_owned()
            }
            // `cargo gwplugin test`: gwhost printed why, just above.
            Error::Process(e) if e.what.starts_with("refused its arguments") => {
                "fix the argument gwhost's message above names".to_owned()
            }
            Error::Process(_) => {
                "run the command above to see the whole of its output"
                    .to_owned()
            }
        })
    }

    /// The exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Unsyncable { .. }
            | Error::Incompatible { .. }
            | Error::StillIncompatible { .. }
            | Error::ChildCrashed { .. }
            | Error::Unloadable { .. } => EXIT_INCOMPATIBLE,
            // cargo's 1 is its usage error (an argument passed on after `--`): here 1
            // says incompatible, so it is this command's usage error, 2.
            Error::BuildFailed { code, .. } if *code == EXIT_INCOMPATIBLE => EXIT_USAGE,
            Error::BuildFailed { code, .. } => *code,
            _ => EXIT_USAGE,
        }
    }
}

fn unknown_feature(feature: &str, package: &str) -> String {
    match feature.split_once('/') {
        Some((dep, _)) => {
            format!("feature `{feature}`: `{dep}` is not a dependency of package `{package}`")
        }
        None => format!("package `{package}` does not have feature `{feature}`"),
    }
}

/// A manifest without `[package]`: a workspace's (cargo's "virtual manifest"), or not
/// a crate's at all.
fn not_a_package(path: &Path) -> String {
    let virtual_manifest = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.parse::<toml_edit::DocumentMut>().ok())
        .is_some_and(|d| d.contains_key("workspace"));
    if virtual_manifest {
        format!(
            "`{}` is a virtual manifest (a workspace's, with no `[package]`), not a plugin crate's",
            path.display()
        )
    } else {
        format!(
            "`{}` has no `[package]` table: it is not a plugin crate's manifest",
            path.display()
        )
    }
}

fn manifest_missing(path: &Path) -> String {
    if path.is_dir() {
        format!(
            "manifest `{}` is a directory, not a `Cargo.toml`",
            path.display()
        )
    } else {
        format!("manifest `{}` does not exist", path.display())
    }
}

fn found(count: usize) -> String {
    match count {
        1 => "1 incompatibility found".to_owned(),
        n => format!("{n} incompatibilities found"),
    }
}

/// `Error::Io` for a path.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |e| Error::Io {
        path,
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incompatible_plugin_s_count_reads_right() {
        let error = |count| Error::Incompatible {
            package: "p".to_owned(),
            host: "`h`".to_owned(),
            count,
        };
        assert_eq!(
            error(1).to_string(),
            "`p` is incompatible with host `h`: 1 incompatibility found"
        );
        assert_eq!(
            error(3).to_string(),
            "`p` is incompatible with host `h`: 3 incompatibilities found"
        );
    }
}
