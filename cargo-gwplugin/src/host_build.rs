//! `cargo gwplugin host-build`: builds a host (a Cargo project whose `build.rs` calls
//! `gwplugin_build::host()`, such as `gwhost`) for a target the same way `build` builds
//! plugins for it, so that the two load each other: musl hosts for musl plugins, aarch64
//! hosts for aarch64 plugins.

use std::path::PathBuf;

use gwplugin_build::elf;

use crate::error::{Error, io};
use crate::process::{self, Cargo};
use crate::target::{self, Target};
use crate::{Outcome, status};

/// Build a host binary for a target, with the settings plugins for that target use
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Target triple: x86_64-unknown-linux-gnu, x86_64-unknown-linux-musl or
    /// aarch64-unknown-linux-gnu
    #[arg(long, value_name = "TRIPLE")]
    pub target: String,
    /// Path to the host's Cargo.toml (e.g. gateway/Cargo.toml for gwhost)
    #[arg(long, value_name = "PATH")]
    pub manifest_path: PathBuf,
    /// Build with the release profile
    #[arg(long, short = 'r')]
    pub release: bool,
    /// Run without accessing the network (passed to cargo)
    #[arg(long)]
    pub offline: bool,
    /// `-v`/`-vv` and `-q` of the command line (global options, passed to cargo).
    #[arg(skip)]
    pub verbose: u8,
    #[arg(skip)]
    pub quiet: bool,
}

/// Runs `host-build`.
pub fn exec(args: &Args) -> Result<Outcome, Error> {
    let host = build_host(args)?;
    // The path alone on stdout, for scripts: `HOST=$(cargo gwplugin host-build …)`.
    crate::print_stdout(&format!("{}\n", host.display()));
    Ok(Outcome::Ok)
}

/// Builds the host and returns its verified binary.
pub fn build_host(args: &Args) -> Result<PathBuf, Error> {
    let cargo = Cargo::from_env();
    let cwd = std::env::current_dir().map_err(io("."))?;
    let manifest = cwd.join(&args.manifest_path);
    if !manifest.is_file() {
        return Err(Error::ManifestMissing(manifest));
    }
    if manifest.file_name().is_none_or(|n| n != "Cargo.toml") {
        return Err(Error::NotCargoToml(manifest));
    }
    let target = Target::parse(&args.target)?;
    let dir = manifest.parent().map(ToOwned::to_owned).unwrap_or_default();
    let rustc = process::rustc_for(&dir);
    let metadata = cargo.metadata(&manifest, &["--no-deps"])?;
    let env = target::prepare(target, &rustc, &metadata.target_directory.join("gwplugin"))?;

    let mut cmd = target::build_command(&cargo, &manifest, &dir, "--bins", target, &env);
    if args.release {
        cmd.arg("--release");
    }
    if args.offline {
        cmd.arg("--offline");
    }
    if args.quiet {
        cmd.arg("--quiet");
    }
    for _ in 0..args.verbose {
        cmd.arg("--verbose");
    }
    let command = process::command_line(&cmd);
    let binaries: Vec<PathBuf> = crate::target::cargo_build(cmd)?
        .iter()
        .filter_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .collect();
    let mut host = None;
    for exe in binaries {
        let bytes = std::fs::read(&exe).map_err(io(&exe))?;
        // The host binary is the one that embeds a host manifest.
        let Ok(manifest) = elf::host_manifest(&bytes, gwplugin_build::HOST_SECTION) else {
            continue;
        };
        let bad = |reason: String| Error::BadArtifact {
            path: exe.clone(),
            target: target.triple().to_owned(),
            reason,
        };
        let facts = target::verify_artifact(target, &bytes).map_err(bad)?;
        if manifest.target != target.triple() {
            return Err(bad(format!(
                "its ABI manifest says target `{}`",
                manifest.target
            )));
        }
        status(
            "Verified",
            &format!(
                "host `{}` for {} (interpreter {}, NEEDED {})",
                manifest.package.name,
                target.triple(),
                facts.interpreter.as_deref().unwrap_or("none"),
                facts.needed.join(", ")
            ),
        );
        host = Some(exe);
    }
    let host = host.ok_or_else(|| Error::NoArtifact {
        command,
        package: "a host binary (one embedding `gwplugin_host::host_manifest!()`)".into(),
    })?;
    status("Finished", &format!("`{}`", host.display()));
    Ok(host)
}
