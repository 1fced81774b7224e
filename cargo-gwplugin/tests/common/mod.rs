//! Shared by the suites: run `cargo gwplugin`, scaffold plugins, snapshot directories.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cargo-gwplugin/ has a parent")
        .to_owned()
}

/// The reference host project.
pub fn gateway() -> PathBuf {
    repo().join("gateway/Cargo.toml")
}

/// The one target directory every build in the tests shares.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

/// `cargo-gwplugin gwplugin ARGS…` in `dir`, as cargo runs it.
pub fn gwplugin(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("cargo-gwplugin").expect("binary built");
    cmd.arg("gwplugin")
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("RUSTC")
        // What else names the compiler a plugin builds with: a CI's own (an sccache)
        // would change what the tests see.
        .env_remove("CARGO_BUILD_RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_BUILD_RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER")
        .env("NO_COLOR", "1");
    cmd
}

/// What a run printed, with `root` replaced by `[ROOT]`.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(mut cmd: Command, root: &Path) -> Run {
    let out = cmd.output().expect("runs");
    let clean = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .replace(&root.display().to_string(), "[ROOT]")
            .replace(&repo().display().to_string(), "[REPO]")
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: clean(&out.stdout),
        stderr: clean(&out.stderr),
    }
}

/// A fresh temporary directory (outside the repository).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cargo-gwplugin-test-")
        .tempdir()
        .expect("tempdir")
}

/// `cargo gwplugin new NAME --kind KIND --host <the gateway project>` in `root`.
pub fn new_plugin(root: &Path, name: &str, kind: &str) -> Run {
    let host = gateway().display().to_string();
    run(
        gwplugin(root, &["new", name, "--kind", kind, "--host", &host]),
        root,
    )
}

/// Scaffolds a plugin with `new` against the gateway project; returns its directory.
pub fn scaffold(root: &Path, name: &str, kind: &str) -> PathBuf {
    let r = new_plugin(root, name, kind);
    assert_eq!(r.code, 0, "new failed:\n{}", r.stderr);
    root.join(name)
}

/// Writes `lines` at the end of the `[dependencies]` of the scaffolded plugin in `dir`
/// (before its `[build-dependencies]`); returns the manifest's new text.
pub fn add_dependencies(dir: &Path, lines: &str) -> String {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("[build-dependencies]"), "{text}");
    let text = text.replace(
        "[build-dependencies]",
        &format!("{lines}\n\n[build-dependencies]"),
    );
    std::fs::write(&manifest, &text).unwrap();
    text
}

/// Every file under `dir` (but `target/`) with its contents, and every directory.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            if p.is_dir() {
                // Directories count too: an empty one left behind is a change.
                out.insert(p.strip_prefix(root).unwrap().join(""), Vec::new());
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_owned(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// Runs cargo in `dir` with the shared target dir; panics with stderr on failure.
pub fn cargo(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "cargo {args:?} in {} failed:\n{stderr}",
        dir.display()
    );
    stderr
}

/// The versions of crate `name` in `dir/Cargo.lock`.
pub fn lock_version(dir: &Path, name: &str) -> Vec<String> {
    let lock = std::fs::read_to_string(dir.join("Cargo.lock")).unwrap();
    let needle = format!("name = \"{name}\"\nversion = \"");
    lock.match_indices(&needle)
        .map(|(i, _)| {
            lock[i + needle.len()..]
                .split('"')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// A host manifest computed from the gateway project, as `gwhost` embeds it.
pub fn gateway_manifest() -> gwplugin_build::AbiManifest {
    let rustc = std::process::Command::new("rustup")
        .args(["which", "rustc"])
        .current_dir(repo().join("gateway"))
        .output()
        .unwrap();
    let rustc = PathBuf::from(String::from_utf8(rustc.stdout).unwrap().trim());
    let target = String::from_utf8(
        std::process::Command::new(&rustc)
            .args(["--print", "host-tuple"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    gwplugin_build::compute_for_manifest_path(&gwplugin_build::ManifestRequest {
        manifest_path: gateway(),
        role: gwplugin_build::Role::Host,
        target: target.trim().to_owned(),
        rustc,
        rustc_wrappers: Vec::new(),
        panic: "unwind".into(),
        cargo: None,
        features: None,
    })
    .unwrap()
    .manifest
}

/// `DIR/fake-cargo`: the real cargo, but a command whose arguments (joined by spaces)
/// match the shell glob `args` fails (exit 101), saying `error: MESSAGE`.
#[allow(dead_code, reason = "not every suite fakes a cargo")]
pub fn cargo_failing_on(dir: &Path, args: &str, message: &str) -> PathBuf {
    let out = std::process::Command::new("rustup")
        .args(["which", "cargo"])
        .output()
        .unwrap();
    let real = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let fake = dir.join("fake-cargo");
    gwplugin_e2e::write_executable(
        &fake,
        &format!(
            "#!/bin/sh\ncase \"$*\" in {args}) echo 'error: {message}' >&2; exit 101;; esac\nexec '{real}' \"$@\"\n"
        ),
    );
    fake
}
