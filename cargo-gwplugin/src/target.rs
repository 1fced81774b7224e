//! Building for a target: what the machine needs, the cargo settings that make a
//! genuine cdylib (or host binary) for it, and the checks that the artifact is one.
//!
//! Shared by `build` (plugins) and `host-build` (a host built the same way).

use std::path::{Path, PathBuf};
use std::process::Command;

use gwplugin_build::elf::{self, ElfFacts};

use crate::error::{Error, io};

/// A target gwplugin knows how to build for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    X86_64Gnu,
    X86_64Musl,
    Aarch64Gnu,
}

/// The targets `--target` accepts.
pub const SUPPORTED: &[&str] = &[
    "x86_64-unknown-linux-gnu",
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-gnu",
];

impl Target {
    pub fn parse(triple: &str) -> Result<Self, Error> {
        match triple {
            "x86_64-unknown-linux-gnu" => Ok(Target::X86_64Gnu),
            "x86_64-unknown-linux-musl" => Ok(Target::X86_64Musl),
            "aarch64-unknown-linux-gnu" => Ok(Target::Aarch64Gnu),
            other => Err(Error::UnsupportedTarget(other.to_owned())),
        }
    }

    pub fn triple(self) -> &'static str {
        match self {
            Target::X86_64Gnu => "x86_64-unknown-linux-gnu",
            Target::X86_64Musl => "x86_64-unknown-linux-musl",
            Target::Aarch64Gnu => "aarch64-unknown-linux-gnu",
        }
    }

    /// The C linker cargo must use, and the Debian package that has it, when the default
    /// `cc` would produce the wrong thing. (For musl, `cc` silently links glibc.)
    fn linker(self, host_triple: &str) -> Option<(&'static str, &'static str)> {
        match self {
            Target::X86_64Gnu if host_triple == self.triple() => None,
            Target::X86_64Gnu => Some(("x86_64-linux-gnu-gcc", "gcc-x86-64-linux-gnu")),
            Target::X86_64Musl => Some(("musl-gcc", "musl-tools")),
            Target::Aarch64Gnu => Some(("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")),
        }
    }

    /// `CARGO_TARGET_<TRIPLE>_…`
    fn env_prefix(self) -> String {
        format!(
            "CARGO_TARGET_{}",
            self.triple().to_uppercase().replace('-', "_")
        )
    }
}

/// Whether building for `target` on this machine needs anything beyond plain cargo: a
/// cross linker, the musl setup. (A native glibc build does not.)
pub fn needs_setup(target: Target) -> bool {
    !(target == Target::X86_64Gnu && std::env::consts::ARCH == "x86_64")
}

/// Environment for cargo that builds for a target.
#[derive(Debug, Clone, Default)]
pub struct TargetEnv {
    pub vars: Vec<(String, String)>,
}

/// Checks the machine has what `target` needs and returns the cargo environment for it.
/// `work_dir` holds generated helper files (the musl `libgcc_s` linker script).
pub fn prepare(target: Target, rustc: &Path, work_dir: &Path) -> Result<TargetEnv, Error> {
    let (sysroot, host_triple) = sysroot_and_host(rustc)?;
    let std_dir = sysroot
        .join("lib/rustlib")
        .join(target.triple())
        .join("lib");
    if !std_dir.is_dir() {
        return Err(Error::MissingRustTarget {
            target: target.triple().to_owned(),
            toolchain: toolchain_name(&sysroot),
        });
    }
    let mut env = TargetEnv::default();
    if let Some((linker, package)) = target.linker(&host_triple) {
        if which(linker).is_none() {
            return Err(Error::MissingLinker {
                linker: linker.to_owned(),
                package: package.to_owned(),
                target: target.triple().to_owned(),
            });
        }
        env.vars
            .push((format!("{}_LINKER", target.env_prefix()), linker.to_owned()));
    }
    if target == Target::X86_64Musl {
        // Debian has no musl libgcc_s: point `-lgcc_s` at the toolchain's own unwinder,
        // linked in statically (DESIGN.md). `-crt-static` is what allows a cdylib.
        let unwind = std_dir.join("self-contained/libunwind.a");
        if !unwind.is_file() {
            return Err(Error::MissingRustTarget {
                target: target.triple().to_owned(),
                toolchain: toolchain_name(&sysroot),
            });
        }
        let dir = work_dir.join("musl-libgcc");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let script = dir.join("libgcc_s.so");
        let text = format!("INPUT({})\n", unwind.display());
        if std::fs::read_to_string(&script).ok().as_deref() != Some(&text) {
            crate::txn::write_atomic(&script, text.as_bytes())?;
        }
        let flags = format!("-C target-feature=-crt-static -L native={}", dir.display());
        // RUSTFLAGS, when set, wins over the per-target setting: add ours to it then.
        match std::env::var("RUSTFLAGS") {
            Ok(existing) if !existing.trim().is_empty() => env
                .vars
                .push(("RUSTFLAGS".into(), format!("{existing} {flags}"))),
            _ => env
                .vars
                .push((format!("{}_RUSTFLAGS", target.env_prefix()), flags)),
        }
    }
    Ok(env)
}

fn sysroot_and_host(rustc: &Path) -> Result<(PathBuf, String), Error> {
    let mut cmd = Command::new(rustc);
    cmd.args(["--print", "sysroot"]);
    let out = crate::process::run(cmd)?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let host = crate::process::rustc_version(rustc)?.host;
    Ok((sysroot, host))
}

fn toolchain_name(sysroot: &Path) -> String {
    sysroot
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Why an artifact is not what was asked for.
pub fn verify_artifact(target: Target, bytes: &[u8]) -> Result<ElfFacts, String> {
    let facts = elf::facts(bytes).map_err(|e| e.to_string())?;
    let want_machine = elf::target_machine(target.triple());
    if facts.machine != want_machine {
        return Err(format!(
            "it is built for {}, not {want_machine}",
            facts.machine
        ));
    }
    let libc_needed = facts
        .needed
        .iter()
        .filter(|n| n.starts_with("libc."))
        .cloned()
        .collect::<Vec<_>>();
    match target {
        Target::X86_64Musl => {
            if facts.needed.iter().any(|n| n == "libc.so.6") {
                return Err("it links glibc (NEEDED libc.so.6): a fake musl artifact".to_owned());
            }
            if !facts.needed.iter().any(|n| n == "libc.so") {
                return Err(format!(
                    "it does not link musl's libc.so (NEEDED {libc_needed:?})"
                ));
            }
            if let Some(interp) = &facts.interpreter
                && !interp.contains("ld-musl")
            {
                return Err(format!("its interpreter is `{interp}`, not musl's"));
            }
        }
        Target::X86_64Gnu | Target::Aarch64Gnu => {
            if !facts.needed.iter().any(|n| n == "libc.so.6") {
                return Err(format!(
                    "it does not link glibc's libc.so.6 (NEEDED {libc_needed:?})"
                ));
            }
        }
    }
    Ok(facts)
}

/// `cargo build --manifest-path MANIFEST SELECTION --target T --message-format
/// json-render-diagnostics`, run in `dir` with `env`: the start of every build this tool
/// makes for a target (`build` selects `--lib`, `host-build` `--bins`); the caller adds
/// its own flags, then hands it to [`cargo_build`].
pub fn build_command(
    cargo: &crate::process::Cargo,
    manifest: &Path,
    dir: &Path,
    selection: &str,
    target: Target,
    env: &TargetEnv,
) -> Command {
    let mut cmd = Command::new(cargo.program());
    cmd.arg("build").arg("--manifest-path").arg(manifest);
    cmd.args([
        selection,
        "--target",
        target.triple(),
        "--message-format",
        "json-render-diagnostics",
    ]);
    // cargo's own progress and diagnostics reach the user's terminal: `--color` holds for
    // them too. Through the environment, so that a `--color` passed on to cargo after
    // `--` still wins (a second argument would be a usage error).
    if let Some(color) = crate::color_choice() {
        cmd.env("CARGO_TERM_COLOR", color);
    }
    cmd.current_dir(dir);
    crate::process::keep_target_dir(&mut cmd);
    for (k, v) in &env.vars {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `cmd`, a `cargo build … --message-format json-render-diagnostics`: cargo's
/// progress and diagnostics reach the user as they happen; returns cargo's
/// `compiler-artifact` messages. A failed build carries cargo's exit code, to forward.
pub fn cargo_build(cmd: Command) -> Result<Vec<serde_json::Value>, Error> {
    let stdout = crate::process::run_passing_stderr(cmd).map_err(|failed| match failed {
        Ok((command, status)) => Error::BuildFailed {
            command,
            code: status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(101),
            status: status.to_string(),
        },
        Err(not_started) => Error::Process(not_started),
    })?;
    Ok(String::from_utf8_lossy(&stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact")
        .collect())
}
