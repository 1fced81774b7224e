//! The newcomer's path. The README's main-job command (`quickstart`) does the whole job
//! and cleans up; every help has examples; and `docs/writing-plugins.md` is checked: every
//! `sh` block runs, in order, as one script in a fresh directory (with `cargo gwplugin` and
//! `gwhost` on PATH); every `rust` block builds as a plugin; every error text its
//! troubleshooting table is keyed by is one the tools really print.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cargo, gateway, repo, target_dir, tempdir};

fn guide() -> String {
    std::fs::read_to_string(repo().join("docs/writing-plugins.md")).unwrap()
}

fn blocks(text: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None if line.trim_end() == format!("```{lang}") => current = Some(String::new()),
            Some(block) if line.trim_end() == "```" => {
                out.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    out
}

/// A directory with `cargo-gwplugin` and `gwhost` in it, for PATH.
fn bin_dir(root: &Path) -> PathBuf {
    cargo(&repo(), &["build", "-p", "gwhost", "-p", "cargo-gwplugin"]);
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["gwhost", "cargo-gwplugin"] {
        std::os::unix::fs::symlink(target_dir().join("debug").join(name), bin.join(name)).unwrap();
    }
    bin
}

/// `bash -c SCRIPT` in `dir`, as a reader's shell would run it: `bin` (cargo-gwplugin,
/// gwhost) first on PATH, the shared target dir, no colours.
fn bash(script: &str, dir: &Path, bin: &Path) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .current_dir(dir)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("RUSTC")
        .env("NO_COLOR", "1");
    cmd
}

#[test]
fn every_command_in_the_guide_runs() {
    let root = tempdir();
    let bin = bin_dir(root.path());
    let script = format!(
        "set -euo pipefail\nset -x\n{}",
        blocks(&guide(), "sh").join("\n")
    );
    let work = root.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let out = bash(&script, &work, &bin)
        .env("GWPLUGIN_REPO", repo())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the guide's commands failed:\n{stderr}\n{stdout}"
    );
    // What the guide says they print.
    assert!(stdout.contains("no incompatibilities found"), "{stdout}");
    assert!(
        stderr.contains("Registered `my-modifier` in `../gateway.json`"),
        "{stderr}"
    );
    // The host is a project: `test` says which gwhost binary gives its verdict.
    assert!(
        stderr.contains(&format!(
            "Using `{}` (the `gwhost` on PATH; `--gwhost` picks another)",
            bin.join("gwhost").display()
        )),
        "{stderr}"
    );
    // Created with the default config in its Cargo.toml, too.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("[OK] my-modifier (modifier)")
                && l.ends_with(": registered, created")),
        "{stdout}"
    );
    let registered = std::fs::read_to_string(work.join("gateway.json")).unwrap();
    assert!(
        registered.contains("\"x-tenant\""),
        "the default config went in: {registered}"
    );
    let _ = gateway();
}

#[test]
fn every_rust_example_in_the_guide_builds_as_a_plugin() {
    let root = tempdir();
    let examples = blocks(&guide(), "rust");
    assert_eq!(examples.len(), 3, "one complete example per kind");
    let plugin = common::scaffold(root.path(), "guide-example", "modifier");
    for (i, example) in examples.iter().enumerate() {
        std::fs::write(plugin.join("src/lib.rs"), example).unwrap();
        let out = Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()))
            .args(["clippy", "--quiet", "--", "-D", "warnings"])
            .current_dir(&plugin)
            .env("CARGO_TARGET_DIR", target_dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "example {i} does not build cleanly:\n{example}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_troubleshooting_table_is_keyed_by_real_messages() {
    // Texts that come from elsewhere: the compiler, tokio.
    let external = [
        "cannot define multiple global allocators",
        "there is no reactor running",
    ];
    let text = guide();
    let table = text.split("## Troubleshooting").nth(1).unwrap();
    let mut sources = String::new();
    for dir in [
        "api/src",
        "host/src",
        "build-support/src",
        "gateway/src",
        "cargo-gwplugin/src",
    ] {
        collect(&repo().join(dir), &mut sources);
    }
    let keys: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.trim_start_matches("| `").split('`').next().unwrap())
        .collect();
    assert!(keys.len() >= 12, "{keys:?}");
    for key in keys {
        if external.contains(&key) {
            continue;
        }
        // `…` stands for a part the message fills in.
        for part in key.split('…') {
            assert!(sources.contains(part), "no tool prints `{key}` (`{part}`)");
        }
    }
}

fn collect(dir: &Path, out: &mut String) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
}

#[test]
fn the_readme_gives_the_two_commands_ci_and_newcomers_run() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let first_screen: String = readme.lines().take(12).collect::<Vec<_>>().join("\n");
    assert!(
        first_screen.contains("cargo run -p cargo-gwplugin -- gwplugin quickstart"),
        "{first_screen}"
    );
    assert!(
        first_screen.contains("bash scripts/test.sh"),
        "{first_screen}"
    );
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == "bash scripts/test.sh"),
        ".ci/run runs the README's test command: {ci}"
    );
}

#[test]
fn quickstart_scaffolds_builds_loads_and_shows_the_plugin_at_work() {
    let root = tempdir();
    let dir = root.path().join("qs");
    // Twice: the second run replaces what the first left.
    for _ in 0..2 {
        let out = common::gwplugin(
            root.path(),
            &["quickstart", "--dir", &dir.display().to_string()],
        )
        .output()
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}\n{stdout}");
        for n in 1..=7 {
            assert!(
                stderr.contains(&format!("[{n}/7]")),
                "progress step {n}:\n{stderr}"
            );
        }
        let (before, after) = stdout.split_once("--- after:").expect("before and after");
        assert!(
            !before.contains("x-tenant") && !before.contains("x-modified-by"),
            "{before}"
        );
        assert!(
            after.contains("\"x-tenant\": \"acme\""),
            "the backend saw the changed request:\n{after}"
        );
        assert!(after.contains("x-modified-by: hello-plugin"), "{after}");
        assert!(
            stdout.contains(&format!("Files, in `{}`", dir.display())),
            "{stdout}"
        );
        // `new`'s next steps are the ones it takes itself (they named `cargo gwplugin`,
        // not installed yet, in the middle of its output).
        assert!(!stdout.contains("Next:"), "{stdout}");
    }
    for file in [
        "hello-plugin/Cargo.toml",
        "plugins/hello-plugin.so",
        "plugins/hello-plugin.gwplugin.json",
        "gateway.json",
        "gwhost.log",
    ] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    // Everything it started is stopped: the gateway's port is closed.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("gateway.json")).unwrap()).unwrap();
    let port = config["port"].as_u64().unwrap() as u16;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "gwhost still listening on {port}"
    );
    // Anything else in the way is left alone.
    let other = root.path().join("mine");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "keep").unwrap();
    let r = common::run(
        common::gwplugin(root.path(), &["quickstart", "--dir", "mine"]),
        root.path(),
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with(
            "error: destination `[ROOT]/mine` already exists and is not empty\nhelp: "
        ),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(other.join("notes.txt")).unwrap(),
        "keep"
    );
}

#[test]
fn every_help_shows_examples_and_exit_codes() {
    let root = tempdir();
    for sub in [
        vec!["--help"],
        vec!["new", "--help"],
        vec!["check", "--help"],
        vec!["sync", "--help"],
        vec!["build", "--help"],
        vec!["host-build", "--help"],
        vec!["test", "--help"],
        vec!["quickstart", "--help"],
    ] {
        let r = common::run(common::gwplugin(root.path(), &sub), root.path());
        assert_eq!(r.code, 0, "{sub:?}");
        assert!(
            r.stdout.contains("Examples:\n  cargo gwplugin ")
                || r.stdout
                    .contains("Examples:\n  cargo run -p cargo-gwplugin"),
            "{sub:?}:\n{}",
            r.stdout
        );
        assert!(r.stdout.contains("Exit status:"), "{sub:?}");
    }
}

#[test]
fn the_readme_plugin_path_runs() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = blocks(&readme, "sh")
        .into_iter()
        .find(|b| b.contains("cargo gwplugin new"))
        .expect("the README's plugin path");
    // Run from the repository root, as the README says; what it creates is removed after.
    let root = tempdir();
    let bin = bin_dir(root.path());
    let work = repo();
    let made = [
        work.join("my-plugin"),
        work.join("my-gateway.json"),
        work.join("plugins"),
    ];
    for path in &made {
        assert!(
            !path.exists(),
            "`{}` exists already: move it away to run this test",
            path.display()
        );
    }
    struct Cleanup<'a>(&'a [PathBuf]);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            for p in self.0 {
                let _ = std::fs::remove_dir_all(p).or_else(|_| std::fs::remove_file(p));
            }
        }
    }
    let _cleanup = Cleanup(&made);
    // `cargo install` is taken as done: the binaries are on PATH already.
    let script = format!(
        "set -euo pipefail\ncargo() {{ if [ \"$1\" = install ]; then echo \"(installed)\"; else command cargo \"$@\"; fi; }}\n{block}"
    );
    let out = bash(&script, &work, &bin).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the README's plugin path failed:\n{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let config = std::fs::read_to_string(work.join("my-gateway.json")).unwrap();
    assert!(config.contains("\"my-plugin\""), "registered: {config}");
    assert!(
        work.join("plugins/my-plugin.so").is_file(),
        "installed beside the config"
    );
}
