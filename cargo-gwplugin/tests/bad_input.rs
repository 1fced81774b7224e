//! Bad input: each is a clear cargo-style message, exit code 2, and no file changed.

mod common;

use std::path::Path;

use common::*;

/// A plugin crate written by hand (no `new`), with `extra` appended to its Cargo.toml.
fn plain_plugin(root: &Path, extra: &str) -> std::path::PathBuf {
    let dir = root.join("p");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"p\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\ngwplugin = {{ path = \"{}\" }}\n{extra}\n[workspace]\n",
            repo().join("api").display()
        ),
    )
    .unwrap();
    dir
}

/// Runs `args` in `dir`, asserting exit 2 and that nothing under `root` changed.
fn fails(root: &Path, dir: &Path, args: &[&str]) -> String {
    let before = snapshot(root);
    let r = run(gwplugin(dir, args), root);
    assert_eq!(r.code, 2, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(snapshot(root), before, "files changed");
    r.stderr
}

const HOST_HELP: &str = "help: pass `--host HOST` (a host binary, an ABI manifest JSON file, a host Cargo project or its `Cargo.lock`), or set it once in Cargo.toml:\n[package.metadata.gwplugin]\nhost = \"path/to/host\"\n";

#[test]
fn no_host() {
    let root = tempdir();
    let dir = plain_plugin(root.path(), "");
    for cmd in ["check", "sync"] {
        assert_eq!(
            fails(root.path(), &dir, &[cmd]),
            format!("error: no host given for `p`\n{HOST_HELP}")
        );
    }
    assert_eq!(
        fails(
            root.path(),
            root.path(),
            &["new", "x", "--kind", "modifier"]
        ),
        "error: no host given\nhelp: pass `--host HOST`: a host binary, an ABI manifest JSON file, a host Cargo project or its `Cargo.lock`\n"
    );
}

#[test]
fn wrong_host_path() {
    let root = tempdir();
    let dir = plain_plugin(
        root.path(),
        "\n[package.metadata.gwplugin]\nhost = \"../no-such-host\"\n",
    );
    let help = "help: check `--host` or `[package.metadata.gwplugin] host` in Cargo.toml (a relative path there is relative to the plugin's directory)\n";
    assert_eq!(
        fails(root.path(), &dir, &["check"]),
        format!("error: host `[ROOT]/p/../no-such-host` does not exist\n{help}")
    );
    assert_eq!(
        fails(root.path(), &dir, &["sync", "--host", "nope.json"]),
        format!("error: host `[ROOT]/p/nope.json` does not exist\n{help}")
    );
    std::fs::write(root.path().join("junk.txt"), "hello").unwrap();
    let err = fails(root.path(), &dir, &["check", "--host", "../junk.txt"]);
    assert!(
        err.starts_with("error: `[ROOT]/junk.txt` is not a gwplugin host: it is neither an ELF binary, a manifest JSON file, a Cargo project nor a Cargo.lock\nhelp: HOST must be"),
        "{err}"
    );
}

#[test]
fn a_manifest_path_that_is_not_a_crates_cargo_toml_says_so() {
    // They were read as manifests: "could not parse README.md … fix the file", or a
    // workspace's Cargo.toml "could not parse … fix the file", though it parsed.
    let root = tempdir();
    let dir = plain_plugin(root.path(), "");
    std::fs::write(dir.join("README.md"), "# p\n\nkey with no value\n").unwrap();
    let host = gateway();
    let host = host.to_str().unwrap();
    for cmd in ["check", "sync"] {
        let err = fails(
            root.path(),
            &dir,
            &[cmd, "--manifest-path", "README.md", "--host", host],
        );
        assert_eq!(
            err,
            "error: the manifest-path must be a path to a Cargo.toml file: `[ROOT]/p/README.md`\nhelp: pass the crate's `Cargo.toml`\n"
        );
    }
    std::fs::write(
        root.path().join("Cargo.toml"),
        "[workspace]\nmembers = [\"p\"]\n",
    )
    .unwrap();
    let err = fails(root.path(), root.path(), &["check", "--host", host]);
    assert_eq!(
        err,
        "error: `[ROOT]/Cargo.toml` is a virtual manifest (a workspace's, with no `[package]`), not a plugin crate's\nhelp: run the command in the plugin crate's folder, or pass its `Cargo.toml` with `--manifest-path`\n"
    );
}

#[test]
fn malformed_cargo_toml() {
    let root = tempdir();
    let dir = plain_plugin(root.path(), "");
    std::fs::write(dir.join("Cargo.toml"), "[package\nname = \"p\"\n").unwrap();
    for cmd in ["check", "sync"] {
        let err = fails(
            root.path(),
            &dir,
            &[cmd, "--host", gateway().to_str().unwrap()],
        );
        assert!(
            err.starts_with(
                "error: could not parse `[ROOT]/p/Cargo.toml`: TOML parse error at line 1, column 9"
            ),
            "{err}"
        );
        assert!(
            err.ends_with("help: fix the file and run the command again\n"),
            "{err}"
        );
    }
}

#[test]
fn no_manifest_at_all() {
    let root = tempdir();
    assert_eq!(
        fails(root.path(), root.path(), &["check"]),
        "error: could not find `Cargo.toml` in `[ROOT]` or any parent directory\nhelp: run this in a plugin crate, or pass `--manifest-path path/to/Cargo.toml`\n"
    );
    assert_eq!(
        fails(
            root.path(),
            root.path(),
            &["sync", "--manifest-path", "x/Cargo.toml"]
        ),
        "error: manifest `[ROOT]/x/Cargo.toml` does not exist\nhelp: check `--manifest-path`\n"
    );
    // A directory: cargo's `--manifest-path` takes the file.
    std::fs::create_dir(root.path().join("p1")).unwrap();
    assert_eq!(
        fails(
            root.path(),
            root.path(),
            &["check", "--manifest-path", "p1"]
        ),
        "error: manifest `[ROOT]/p1` is a directory, not a `Cargo.toml`\nhelp: pass the `Cargo.toml` in it: `--manifest-path [ROOT]/p1/Cargo.toml`\n"
    );
}

#[test]
fn new_inside_a_workspace_warns_that_it_must_exclude_the_plugin() {
    let root = tempdir();
    std::fs::write(
        root.path().join("Cargo.toml"),
        "[workspace]\nmembers = [\"p/*\"]\nresolver = \"2\"\n",
    )
    .unwrap();
    let host = repo().join("gateway");
    let new = |name: &str| {
        let path = format!("p/{name}");
        let args = [
            "new",
            name,
            "--kind",
            "modifier",
            "--host",
            host.to_str().unwrap(),
            "--path",
            &path,
        ];
        run(gwplugin(root.path(), &args), root.path())
    };
    let r = new("zz");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .replace(&root.path().display().to_string(), "[ROOT]")
            .contains(
                "warning: `[ROOT]/Cargo.toml` is a workspace above the plugin, which is a \
                 workspace of its own: cargo there stops with \"multiple workspace roots \
                 found\" until it lists `p/zz` in its `[workspace] exclude`"
            ),
        "{}",
        r.stderr
    );
    // Once excluded, no warning.
    std::fs::write(
        root.path().join("Cargo.toml"),
        "[workspace]\nmembers = [\"p/*\"]\nexclude = [\"p\"]\nresolver = \"2\"\n",
    )
    .unwrap();
    let r = new("yy");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("warning:"), "{}", r.stderr);
    // Nor when its members are elsewhere (as this repository's, for a plugin made in it):
    // cargo finds one root either way, and the warning was false.
    std::fs::write(
        root.path().join("Cargo.toml"),
        "[workspace]\nmembers = []\nresolver = \"2\"\n",
    )
    .unwrap();
    let r = new("xx");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("warning:"), "{}", r.stderr);
}

#[test]
fn a_config_with_an_empty_plugin_folder_is_refused_before_the_build() {
    let root = tempdir();
    let dir = scaffold(root.path(), "early", "modifier");
    std::fs::write(
        root.path().join("gateway.json"),
        r#"{"version": 3, "plugin": {"folder": "", "pattern": ".so"}, "endpoints": []}"#,
    )
    .unwrap();
    let stderr = fails(
        root.path(),
        &dir,
        &["build", "--register", "../gateway.json"],
    );
    assert_eq!(
        stderr,
        "error: cannot register `early` in `../gateway.json`: its `plugin.folder` is empty, which gwhost refuses\n\
         help: write `.` for the config file's own folder, or the folder the plugin is built into\n"
    );
}

#[test]
fn no_cargo_lock() {
    let root = tempdir();
    let dir = plain_plugin(
        root.path(),
        &format!(
            "\n[package.metadata.gwplugin]\nhost = \"{}\"\n",
            gateway().display()
        ),
    );
    // `build` too, before building (it let cargo resolve every boundary crate to its
    // newest version, built, and then refused the artifact).
    for cmd in ["check", "build"] {
        assert_eq!(
            fails(root.path(), &dir, &[cmd]),
            "error: `[ROOT]/p/Cargo.lock` does not exist\nhelp: run `cargo gwplugin sync` to create it with the host's versions\n",
            "{cmd}"
        );
    }
}

#[test]
fn host_manifest_of_a_newer_format() {
    let root = tempdir();
    let dir = plain_plugin(root.path(), "");
    std::fs::write(
        root.path().join("host.json"),
        r#"{"format": 2, "role": "host"}"#,
    )
    .unwrap();
    assert_eq!(
        fails(root.path(), &dir, &["check", "--host", "../host.json"]),
        "error: could not read the ABI manifest of host `[ROOT]/host.json`: manifest format 2 is newer than this tool understands (up to 1); upgrade gwplugin\nhelp: rebuild the host, or upgrade cargo-gwplugin (`cargo install --locked --path cargo-gwplugin`) if the host is newer\n"
    );
}

#[test]
fn unknown_kind() {
    let root = tempdir();
    let err = fails(
        root.path(),
        root.path(),
        &["new", "x", "--kind", "grpc", "--host", "h"],
    );
    assert!(
        err.starts_with("error: invalid value 'grpc' for '--kind <KIND>'\n  [possible values: http-server, http-client, modifier]\n"),
        "{err}"
    );
}

#[test]
fn invalid_package_names() {
    let root = tempdir();
    let host = gateway().display().to_string();
    let help = "help: a package name is made of ASCII letters, digits, `-` and `_`, starts with a letter, and is not a Rust keyword; e.g. `my-plugin`\n";
    for (name, why) in [
        ("my.plugin", "invalid character `.`"),
        ("1plugin", "the name cannot start with a digit"),
        ("fn", "it is a Rust keyword"),
    ] {
        assert_eq!(
            fails(
                root.path(),
                root.path(),
                &["new", name, "--kind", "modifier", "--host", &host]
            ),
            format!("error: invalid package name `{name}`: {why}\n{help}")
        );
    }
}

#[test]
fn non_empty_directory() {
    let root = tempdir();
    std::fs::create_dir(root.path().join("taken")).unwrap();
    std::fs::write(root.path().join("taken/notes.txt"), "mine").unwrap();
    assert_eq!(
        fails(
            root.path(),
            root.path(),
            &[
                "new",
                "x",
                "--kind",
                "modifier",
                "--host",
                gateway().to_str().unwrap(),
                "--path",
                "taken"
            ]
        ),
        "error: destination `[ROOT]/taken` already exists and is not empty\nhelp: choose another directory (`new`: another name or `--path`; `quickstart`: `--dir`), or empty it first\n"
    );
}

#[test]
fn a_failing_cargo_is_reported_with_its_command_line_and_nothing_changes() {
    let root = tempdir();
    let dir = scaffold(root.path(), "sync-fails", "modifier");
    // A dependency to pin: sync must rewrite Cargo.toml and re-resolve the lock.
    add_dependencies(&dir, "bytes = \"1\"");
    let fake = cargo_failing_on(root.path(), "update*", "no network today");
    let before = snapshot(root.path());
    let mut cmd = gwplugin(&dir, &["sync"]);
    cmd.env("CARGO", &fake);
    let r = run(cmd, root.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    // What it was doing, that it undid it, and why.
    assert_eq!(
        r.stderr,
        format!(
            "    Updating `bytes` in [dependencies]: \"1\" -> \"={}\"\n    Restored `[ROOT]/sync-fails/Cargo.toml` as it was\nerror: `[ROOT]/fake-cargo update --manifest-path [ROOT]/sync-fails/Cargo.toml --workspace` failed (exit status: 101)\n--- stderr\nerror: no network today\nhelp: run the command above to see the whole of its output\n",
            lock_version(&repo(), "bytes")[0]
        )
    );
    assert_eq!(snapshot(root.path()), before, "sync left files changed");
}

#[test]
fn test_arguments_gwhost_would_refuse_are_refused_here() {
    let root = tempdir();
    // A `--timeout` too: gwhost refused it once started, with two `error:` blocks.
    for (args, refusal) in [
        (
            ["-H", "oops"],
            "error: invalid value 'oops' for '--header <NAME: VALUE>': `oops` is not a header: write it as `name: value`",
        ),
        (
            ["--timeout", "bogus"],
            "error: invalid value 'bogus' for '--timeout <DURATION>': `bogus` is not a duration",
        ),
    ] {
        let all = [&["test", "--request", "/x"][..], &args, &["p.so"]].concat();
        let stderr = fails(root.path(), root.path(), &all);
        assert!(stderr.starts_with(refusal), "{stderr}");
    }
}

#[test]
fn a_config_the_plugin_cannot_go_into_fails_before_the_build() {
    let root = tempdir();
    let dir = plain_plugin(root.path(), "");
    let build = [
        "build",
        "--no-check",
        "--target",
        "x86_64-unknown-linux-gnu",
    ];
    let missing = root.path().join("missing.json");
    let stderr = fails(
        root.path(),
        &dir,
        &[&build[..], &["--register", missing.to_str().unwrap()]].concat(),
    );
    assert_eq!(
        stderr.replace(&root.path().display().to_string(), "[ROOT]"),
        "warning: no host given for `p`: building without a check\n\
         error: cannot register `p` in `[ROOT]/missing.json`: No such file or directory (os error 2)\n\
         help: pass an existing gwhost config to `--register` (`gwhost check -c FILE` validates one)\n"
    );
    let config = root.path().join("gateway.json");
    std::fs::write(
        &config,
        r#"{"version": 3, "endpoints": [{"endpoint": "/a", "backend": [{"host": ["http://h"], "url_pattern": "/"}]}]}"#,
    )
    .unwrap();
    let register = ["--register", config.to_str().unwrap(), "--endpoint", "/b"];
    let stderr = fails(root.path(), &dir, &[&build[..], &register[..]].concat());
    assert_eq!(
        stderr.replace(&root.path().display().to_string(), "[ROOT]"),
        "warning: no host given for `p`: building without a check\n\
         error: cannot register `p` in `[ROOT]/gateway.json`: it has no endpoint `/b`\n\
         help: pass one of: `/a`\n"
    );
}

#[test]
fn a_cargo_that_cannot_be_started_is_one_error() {
    let root = tempdir();
    let dir = plain_plugin(root.path(), "");
    let before = snapshot(root.path());
    let mut cmd = gwplugin(
        &dir,
        &[
            "build",
            "--no-check",
            "--target",
            "x86_64-unknown-linux-gnu",
        ],
    );
    cmd.env("CARGO", "/nonexistent/cargo");
    let r = run(cmd, root.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.stderr.matches("error:").count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("`/nonexistent/cargo build")
            && r.stderr.contains("could not be started")
            && r.stderr.ends_with(
                "help: check that the program exists: `$CARGO` if set, else `cargo` on PATH\n"
            ),
        "{}",
        r.stderr
    );
    assert_eq!(snapshot(root.path()), before);
}

#[test]
fn test_reports_a_missing_manifest_or_host_instead_of_guessing() {
    let root = tempdir();
    let missing = root.path().join("nope/Cargo.toml");
    let stderr = fails(
        root.path(),
        root.path(),
        &[
            "test",
            "--manifest-path",
            missing.to_str().unwrap(),
            "--gwhost",
            "/bin/true",
            "p.so",
        ],
    );
    assert_eq!(
        stderr.replace(&root.path().display().to_string(), "[ROOT]"),
        "error: manifest `[ROOT]/nope/Cargo.toml` does not exist\nhelp: check `--manifest-path`\n"
    );
    // A host the crate names but that is not there: not whichever `gwhost` is on PATH.
    let dir = plain_plugin(
        root.path(),
        "\n[package.metadata.gwplugin]\nhost = \"../gwhost-typo\"\n",
    );
    let stderr = fails(root.path(), &dir, &["test", "p.so"]);
    assert!(
        stderr
            .replace(&root.path().display().to_string(), "[ROOT]")
            .starts_with("error: host `[ROOT]/p/../gwhost-typo` does not exist\n"),
        "{stderr}"
    );
    // A plugin file named that is not there, or a gwhost that is not: usage errors that
    // say which (a `[KO]` line and exit 1; a help about reading and writing files).
    let stderr = fails(
        root.path(),
        root.path(),
        &["test", "--gwhost", "/bin/true", "nofile.so"],
    );
    assert_eq!(
        stderr,
        "error: `nofile.so`: no such plugin file\nhelp: check that the path exists and that you may read (and write) it\n"
    );
    std::fs::write(root.path().join("p.so"), "").unwrap();
    let stderr = fails(
        root.path(),
        root.path(),
        &["test", "--gwhost", "/nonexistent", "p.so"],
    );
    assert!(
        stderr.starts_with(
            "error: cannot run gwhost `/nonexistent`: No such file or directory (os error 2)\nhelp: name a gwhost binary with `--gwhost PATH`"
        ),
        "{stderr}"
    );
}

#[test]
fn test_before_a_build_says_to_build() {
    // It ran gwhost on a file that is not there: a `[KO]` line, exit 1, as if the plugin
    // had failed.
    let root = tempdir();
    let dir = scaffold(root.path(), "unbuilt", "modifier");
    let stderr = fails(root.path(), &dir, &["test", "--gwhost", "/bin/true"]);
    assert!(
        stderr.starts_with("error: no plugin built for the host's target: `")
            && stderr.contains("/gwplugin/")
            && stderr.ends_with("/unbuilt.so` does not exist\nhelp: run `cargo gwplugin build` first (it builds the plugin there, for the host's target), or name the plugin file (one built with `--out-dir` or for another `--target`)\n"),
        "{stderr}"
    );
}

#[test]
fn a_bad_argument_passed_on_to_cargo_is_a_usage_error_not_an_incompatibility() {
    // cargo exits 1 for its usage errors, which `build` forwarded: 1 says "incompatible".
    let root = tempdir();
    let dir = scaffold(root.path(), "badarg", "modifier");
    let r = run(
        gwplugin(&dir, &["build", "--", "--bogus-flag"]),
        root.path(),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("unexpected argument '--bogus-flag'"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_relative_target_dir_is_the_invoking_folders_as_cargo_reads_it() {
    // Cargo ran in the plugin's folder, which read `CARGO_TARGET_DIR=rel` as its own.
    let root = tempdir();
    scaffold(root.path(), "reltarget", "modifier");
    let mut cmd = gwplugin(
        root.path(),
        &[
            "test",
            "--gwhost",
            "/bin/true",
            "--manifest-path",
            "reltarget/Cargo.toml",
        ],
    );
    cmd.env("CARGO_TARGET_DIR", "rel");
    let r = run(cmd, root.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("error: no plugin built for the host's target: `[ROOT]/rel/gwplugin/"),
        "{}",
        r.stderr
    );
}

#[test]
fn quickstart_with_a_wrong_host_leaves_no_folder() {
    let root = tempdir();
    let stderr = fails(
        root.path(),
        root.path(),
        &["quickstart", "--dir", "qs", "--host", "no-such-gateway"],
    );
    assert!(
        stderr
            .replace(&root.path().display().to_string(), "[ROOT]")
            .starts_with("error: host `[ROOT]/no-such-gateway` does not exist\n"),
        "{stderr}"
    );
    assert!(!root.path().join("qs").exists());
}

#[test]
fn a_failed_new_removes_the_directories_it_created() {
    let root = tempdir();
    let fake = cargo_failing_on(root.path(), "update*", "no network today");
    let before = snapshot(root.path());
    let host = repo().join("gateway");
    let mut cmd = gwplugin(
        root.path(),
        &[
            "new",
            "deep-one",
            "--kind",
            "modifier",
            "--host",
            host.to_str().unwrap(),
            "--path",
            "deep/a/b/deep-one",
        ],
    );
    cmd.env("CARGO", &fake);
    let r = run(cmd, root.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("error: no network today"), "{}", r.stderr);
    assert_eq!(snapshot(root.path()), before, "`deep/` was left behind");
}

#[test]
fn test_with_files_ignores_a_workspace_root_but_not_a_broken_crate() {
    let root = tempdir();
    // A workspace root above: not the files' crate; the files are tested on their own.
    std::fs::write(root.path().join("Cargo.toml"), "[workspace]\n").unwrap();
    std::fs::write(root.path().join("p.so"), "").unwrap();
    let r = run(
        gwplugin(root.path(), &["test", "--gwhost", "/bin/true", "p.so"]),
        root.path(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A crate whose Cargo.toml is broken may name the host to test with: an error.
    let dir = plain_plugin(root.path(), "[package");
    let stderr = fails(
        root.path(),
        &dir,
        &["test", "--gwhost", "/bin/true", "p.so"],
    );
    assert!(
        stderr.starts_with("error: could not parse `") && stderr.contains("help: fix the file"),
        "{stderr}"
    );
}
