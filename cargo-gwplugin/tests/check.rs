//! `cargo gwplugin check`: exit codes and exact reports for real scaffolded plugins.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// The version of `name` in the repository's lock (the gateway host's).
fn host_version(name: &str) -> String {
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).unwrap();
    let needle = format!("name = \"{name}\"\nversion = \"");
    let start = lock.find(&needle).unwrap() + needle.len();
    lock[start..].split('"').next().unwrap().to_owned()
}

fn check(dir: &Path, root: &Path, args: &[&str]) -> Run {
    run(gwplugin(dir, &[&["check"][..], args].concat()), root)
}

#[test]
fn the_hosts_compiler_is_its_own_whatever_toolchain_the_plugin_is_checked_with() {
    // Run as `cargo +nightly gwplugin check`, rustup's proxy hands the subcommand
    // `RUSTUP_TOOLCHAIN=nightly`: it chose the plugin's compiler, and the host project's
    // too, so the two always matched and a nightly plugin passed.
    let root = tempdir();
    let dir = scaffold(root.path(), "nightly", "modifier");
    let mut cmd = gwplugin(&dir, &["check"]);
    cmd.env("RUSTUP_TOOLCHAIN", "nightly")
        .env("RUSTUP_TOOLCHAIN_SOURCE", "cli");
    let r = run(cmd, root.path());
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("rustc\n    have: "), "{}", r.stdout);
    assert!(
        r.stdout.contains("-nightly (") && r.stdout.contains("\n    want: 1.95.0 ("),
        "{}",
        r.stdout
    );
    // The plugin's toolchain file pins the host's already: what outranks it is the fix
    // (the help sent the author to a `sync` that changed nothing).
    assert!(
        r.stdout.contains(
            "    help: build with the host's compiler: run cargo without the `+toolchain` argument"
        ),
        "{}",
        r.stdout
    );
}

#[test]
fn a_rustc_wrapper_that_runs_another_compiler_is_judged_by_that_compiler() {
    // `RUSTC_WRAPPER` runs what it likes: cargo asks `wrapper rustc -vV` which compiler it
    // builds with, but the manifest asked `rustc -vV`; a wrapper that ran nightly made a
    // plugin whose manifest said 1.95.0, passed `check`, `build` and gwhost's loader, and
    // crashed gwhost at start.
    let root = tempdir();
    let dir = scaffold(root.path(), "wrapped", "modifier");
    let nightly = std::process::Command::new("rustup")
        .args(["which", "rustc", "--toolchain", "nightly"])
        .output()
        .unwrap();
    let nightly = String::from_utf8(nightly.stdout).unwrap().trim().to_owned();
    let wrapper = root.path().join("to-nightly");
    gwplugin_e2e::write_executable(
        &wrapper,
        &format!("#!/bin/sh\nshift\nexec '{nightly}' \"$@\"\n"),
    );
    for args in [&["check"][..], &["build"]] {
        let mut cmd = gwplugin(&dir, args);
        cmd.env("RUSTC_WRAPPER", &wrapper);
        let r = run(cmd, root.path());
        assert_eq!(r.code, 1, "{args:?}: {}\n{}", r.stdout, r.stderr);
        // And the help names the wrapper (it said `sync`, which the wrapper outranks).
        assert!(
            r.stdout.starts_with("rustc\n    have: ")
                && r.stdout.contains("-nightly (")
                && r.stdout.contains(
                    "help: build with the host's compiler: remove the compiler wrapper set by \
                     `RUSTC_WRAPPER` (it runs rustc 1."
                ),
            "{args:?}: {}",
            r.stdout
        );
    }
    // One a cargo config sets is the same to cargo, so to `check`.
    std::fs::create_dir_all(dir.join(".cargo")).unwrap();
    std::fs::write(
        dir.join(".cargo/config.toml"),
        format!("[build]\nrustc-wrapper = \"{}\"\n", wrapper.display()),
    )
    .unwrap();
    let r = run(gwplugin(&dir, &["check"]), root.path());
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("-nightly (")
            && r.stdout.contains(
                "remove the compiler wrapper set by `build.rustc-wrapper` in \
                 `[ROOT]/wrapped/.cargo/config.toml`"
            ),
        "{}",
        r.stdout
    );

    // `build.rustc` in a cargo config names the compiler too: `check` judged rustup's,
    // said "no incompatibilities", and `build` then refused with a help to run `sync`.
    std::fs::create_dir_all(dir.join(".cargo")).unwrap();
    std::fs::write(
        dir.join(".cargo/config.toml"),
        format!("[build]\nrustc = \"{nightly}\"\n"),
    )
    .unwrap();
    for args in [&["check"][..], &["build"]] {
        let r = run(gwplugin(&dir, args), root.path());
        assert_eq!(r.code, 1, "{args:?}: {}\n{}", r.stdout, r.stderr);
        assert!(
            r.stdout.contains("-nightly (")
                && r.stdout.contains(
                    "help: build with the host's compiler: remove `build.rustc` from \
                     `[ROOT]/wrapped/.cargo/config.toml`"
                ),
            "{args:?}: {}",
            r.stdout
        );
    }
}

#[test]
fn a_toolchain_chosen_by_the_folder_run_in_gets_help_to_run_in_the_plugins() {
    // `cargo gwplugin check --manifest-path plugin/Cargo.toml` from a folder whose
    // `rust-toolchain.toml` pins nightly: rustup's proxy hands that choice down, as it
    // would to `cargo build`. The plugin's own file pins the host's compiler already, and
    // the help said to run `sync`, which changed nothing and sent the author back here.
    let root = tempdir();
    let dir = scaffold(root.path(), "elsewhere-run", "modifier");
    // And a `rustup override` of that folder: the help said to unset it in the plugin's
    // folder, where there is none (and where the plugin's own file wins).
    for source in ["toolchain-file", "path-override"] {
        let mut cmd = gwplugin(
            root.path(),
            &[
                "check",
                "--manifest-path",
                dir.join("Cargo.toml").to_str().unwrap(),
            ],
        );
        cmd.env("RUSTUP_TOOLCHAIN", "nightly")
            .env("RUSTUP_TOOLCHAIN_SOURCE", source);
        let r = run(cmd, root.path());
        assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
        assert!(
            r.stdout.contains(
                "    help: build with the host's compiler: rustup chose `nightly` by the folder \
                 this command ran in, not the plugin's, where it picks 1.95.0: run the command \
                 in `[ROOT]/elsewhere-run`, or as `cargo +1.95.0 gwplugin …`"
            ),
            "{source}: {}",
            r.stdout
        );
    }
}

#[test]
fn a_relative_compiler_path_is_the_invoking_folders_as_cargo_reads_it() {
    // `RUSTC=./rustc cargo gwplugin check --manifest-path p/Cargo.toml`: plain cargo
    // builds it; this command ran cargo and `rustc -vV` in the plugin's folder, where
    // `./rustc` named nothing (exit 2, "could not be started"), and the same for a wrapper.
    let root = tempdir();
    let dir = scaffold(root.path(), "rel-rustc", "modifier");
    let sysroot = std::process::Command::new("rustup")
        .args(["run", "1.95.0", "rustc", "--print", "sysroot"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let sysroot = String::from_utf8(sysroot.stdout).unwrap().trim().to_owned();
    std::os::unix::fs::symlink(format!("{sysroot}/bin/rustc"), root.path().join("rustc")).unwrap();
    let pass = root.path().join("pass");
    gwplugin_e2e::write_executable(
        &pass,
        "#!/bin/sh\nrustc=\"$1\"\nshift\nexec \"$rustc\" \"$@\"\n",
    );
    let manifest = dir.join("Cargo.toml");
    for (var, value) in [("RUSTC", "./rustc"), ("RUSTC_WRAPPER", "./pass")] {
        let mut cmd = gwplugin(
            root.path(),
            &["check", "--manifest-path", manifest.to_str().unwrap()],
        );
        cmd.env(var, value);
        let r = run(cmd, root.path());
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "no incompatibilities found\n"),
            "{var}: {}",
            r.stderr
        );
    }
}

#[test]
fn a_contract_source_sync_cannot_write_gets_help_that_can_be_followed() {
    // A host whose `gwplugin` came from other sources, known only by their hash: `check`
    // said to run `sync`, which changed nothing and said all was in sync.
    let root = tempdir();
    let dir = scaffold(root.path(), "elsewhere", "modifier");
    let mut host: serde_json::Value =
        serde_json::from_str(&gateway_manifest().to_json_pretty()).unwrap();
    host["gwplugin"]["source"] = "path+sha256:00000000000000000000000000000000".into();
    let mut piped = gwplugin(&dir, &["check", "--host", "/dev/stdin"]);
    piped.write_stdin(host.to_string());
    let r = run(piped, root.path());
    assert_eq!(r.code, 1, "{}", r.stderr);
    // Once: it was also a `gwplugin` line, its sources shortened.
    assert!(r.stdout.starts_with("gwplugin source\n"), "{}", r.stdout);
    assert!(
        r.stdout.ends_with("\n1 incompatibility found\n"),
        "{}",
        r.stdout
    );
    // A host's registry `gwplugin` against the plugin's path entry: `sync` leaves a path
    // entry alone then, so it is no help either.
    host["gwplugin"]["source"] = "registry+https://github.com/rust-lang/crates.io-index".into();
    let mut piped = gwplugin(&dir, &["check", "--host", "/dev/stdin"]);
    piped.write_stdin(host.to_string());
    let registry_host = run(piped, root.path());
    assert_eq!(registry_host.code, 1, "{}", registry_host.stderr);
    assert!(
        registry_host
            .stdout
            .contains("    help: take `gwplugin` and `gwplugin-build` from where the host does"),
        "{}",
        registry_host.stdout
    );
    // Both from a path: the host was built from other sources (the helper's gwhost, built
    // before an edit of `api/`), which no change to the plugin mends.
    assert!(
        r.stdout.contains(
            "    help: both take `gwplugin` from a path, but not the same files: the host was \
             built from other `gwplugin` sources than the plugin's"
        ),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("cargo gwplugin sync"), "{}", r.stdout);
}

#[test]
fn a_host_projects_lock_is_left_as_it_was() {
    // Resolving the host rewrote its `Cargo.lock` when out of date: another project's
    // file, changed without a word.
    let root = tempdir();
    let dir = scaffold(root.path(), "plug", "modifier");
    let host = root.path().join("tiny-host");
    std::fs::create_dir_all(host.join("src")).unwrap();
    std::fs::write(host.join("src/main.rs"), "fn main() {}\n").unwrap();
    let manifest = |extra: &str| {
        format!(
            "[package]\nname = \"tiny-host\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [dependencies]\ngwplugin = {{ path = {:?} }}\n{extra}\n[workspace]\n",
            repo().join("api")
        )
    };
    std::fs::write(host.join("Cargo.toml"), manifest("")).unwrap();
    cargo(&host, &["generate-lockfile", "--offline"]);
    // A dependency the lock does not have yet.
    std::fs::write(host.join("Cargo.toml"), manifest("itoa = \"1\"\n")).unwrap();
    let lock = std::fs::read(host.join("Cargo.lock")).unwrap();
    let host_arg = host.join("Cargo.toml").display().to_string();
    let r = check(&dir, root.path(), &["--host", &host_arg]);
    assert!(
        r.stderr
            .contains("warning: the host's `[ROOT]/tiny-host/Cargo.lock` is out of date"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(host.join("Cargo.lock")).unwrap(), lock);
}

#[test]
fn a_fresh_plugin_is_compatible_and_check_changes_nothing() {
    let root = tempdir();
    let dir = scaffold(root.path(), "fresh", "modifier");
    let before = snapshot(&dir);
    let r = check(&dir, root.path(), &[]);
    assert_eq!(r.stdout, "no incompatibilities found\n");
    assert_eq!(
        r.stderr,
        "    Checking `fresh` against host `gwhost` 0.1.0 (host Cargo project `[REPO]/gateway/Cargo.toml`)\n"
    );
    assert_eq!(r.code, 0);
    assert_eq!(snapshot(&dir), before);

    // A host manifest from a pipe, as `--host <(gwhost plugin-abi)` gives it.
    let mut piped = gwplugin(&dir, &["check", "--host", "/dev/stdin"]);
    piped.write_stdin(gateway_manifest().to_json_pretty());
    let r = run(piped, root.path());
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "no incompatibilities found\n"),
        "{}",
        r.stderr
    );
    // A target this tool cannot build for is a usage error, not a failed computation.
    let r = check(&dir, root.path(), &["--target", "foo-bar"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("foo-bar"), "{}", r.stderr);
    assert!(r.stderr.contains("\nhelp: "), "{}", r.stderr);

    // A reader that goes away early (`| head -1`) ends the output, not the command.
    let mut closed = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-gwplugin"));
    closed
        .args(["gwplugin", "check", "--message-format", "json"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("RUSTC")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = closed.spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let r = check(&dir, root.path(), &["--message-format", "json"]);
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stdout.lines().count(),
        1,
        "one JSON object per line: {}",
        r.stdout
    );
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(json["compatible"], true);
    assert_eq!(json["plugin"]["name"], "fresh");
    assert_eq!(json["host"]["name"], "gwhost");
    assert_eq!(json["incompatibilities"], serde_json::json!([]));
}

#[test]
fn another_compiler_is_an_incompatibility() {
    let root = tempdir();
    let dir = scaffold(root.path(), "other-rustc", "modifier");
    let real = std::process::Command::new("rustup")
        .args(["which", "rustc"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let real = String::from_utf8(real.stdout).unwrap();
    let wrapper = root.path().join("fake-rustc");
    gwplugin_e2e::write_executable(
        &wrapper,
        &format!(
            "#!/bin/sh\nif [ \"$1\" = \"-vV\" ]; then '{}' -vV | sed -e 's/^release: .*/release: 1.95.1/'; else exec '{}' \"$@\"; fi\n",
            real.trim(),
            real.trim()
        ),
    );
    let host = gateway_manifest();
    let short: String = host.rustc.commit_hash.chars().take(9).collect();
    let mut cmd = gwplugin(&dir, &["check"]);
    cmd.env("RUSTC", &wrapper);
    let r = run(cmd, root.path());
    assert_eq!(
        r.stdout,
        format!(
            "rustc\n    have: 1.95.1 ({short})\n    want: {} ({short})\n    help: build with the host's compiler: unset `RUSTC` (it names `[ROOT]/fake-rustc`, which outranks any rust-toolchain.toml)\n1 incompatibility found\n",
            host.rustc.release
        )
    );
    assert_eq!(r.code, 1);

    // `build` refuses before building, with the same report; as JSON when asked.
    let mut cmd = gwplugin(&dir, &["build", "--message-format", "json"]);
    cmd.env("RUSTC", &wrapper);
    let r = run(cmd, root.path());
    assert_eq!(r.code, 1, "{}", r.stderr);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(json["compatible"], false);
    assert_eq!(json["incompatibilities"][0]["field"], "rustc");
    // The plugin named as `check` names it (its version was empty).
    assert_eq!(
        json["plugin"],
        serde_json::json!({"name": "other-rustc", "version": "0.1.0"})
    );
}

#[test]
fn a_boundary_crate_at_another_version_is_an_incompatibility() {
    let root = tempdir();
    let dir = scaffold(root.path(), "old-bytes", "http-server");
    cargo(
        &dir,
        &["update", "--offline", "-p", "bytes", "--precise", "1.10.0"],
    );
    let r = check(&dir, root.path(), &[]);
    assert_eq!(
        r.stdout,
        format!(
            "crate bytes\n    have: 1.10.0\n    want: {}\n    help: run `cargo gwplugin sync` to move it to the host's version\n1 incompatibility found\n",
            host_version("bytes")
        )
    );
    assert_eq!(r.code, 1);
    let r = check(&dir, root.path(), &["--message-format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(json["incompatibilities"][0]["field"], "crate bytes");
    assert_eq!(json["incompatibilities"][0]["have"], "1.10.0");
    assert_eq!(r.code, 1);
}

#[test]
fn a_private_crate_at_another_version_is_a_note() {
    let root = tempdir();
    let dir = scaffold(root.path(), "private-itoa", "modifier");
    add_dependencies(&dir, "itoa = \"=1.0.18\"");
    cargo(&dir, &["update", "--workspace"]);
    let r = check(&dir, root.path(), &[]);
    assert_eq!(
        r.stdout,
        format!(
            "note: crate itoa (private to the plugin: it need not match the host)\n    have: 1.0.18\n    want: {}\nno incompatibilities found\n",
            host_version("itoa")
        )
    );
    assert_eq!(r.code, 0);
}

#[test]
fn a_missing_cdylib_is_reported_with_its_fix() {
    let root = tempdir();
    let dir = scaffold(root.path(), "no-cdylib", "modifier");
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("crate-type = [\"cdylib\"]\n", "");
    std::fs::write(&manifest, text).unwrap();
    let r = check(&dir, root.path(), &[]);
    assert_eq!(
        r.stdout,
        "crate-type\n    have: lib (no `crate-type`)\n    want: cdylib\n    help: add `crate-type = [\"cdylib\"]` under `[lib]` in Cargo.toml (or run `cargo gwplugin sync`)\n1 incompatibility found\n"
    );
    assert_eq!(r.code, 1);
}

#[test]
fn a_nightly_host_gets_help_that_sync_cannot_pin_it_not_run_sync() {
    // `check` said "run `cargo gwplugin sync`", and `sync` refused a nightly: a circle.
    let root = tempdir();
    let dir = scaffold(root.path(), "for-nightly", "modifier");
    let mut manifest = gateway_manifest();
    manifest.rustc.release = "1.97.0-nightly".to_owned();
    manifest.rustc.commit_hash = "e50aa6fba0000000000000000000000000000000".to_owned();
    let json = root.path().join("nightly-host.json");
    std::fs::write(&json, manifest.to_json_pretty()).unwrap();
    let r = check(&dir, root.path(), &["--host", json.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout.contains(
            "help: build with the host's compiler, 1.97.0-nightly: pin that toolchain in the \
             plugin's rust-toolchain.toml yourself (`channel = \"nightly-YYYY-MM-DD\"`, the one \
             whose `rustc -vV` says `commit-hash: e50aa6fba0000000000000000000000000000000`; \
             `sync` pins only stable releases)"
        ) && !r.stdout.contains("sync` to pin"),
        "{}",
        r.stdout
    );
    // `sync` changes no pin, says nothing twice, and leaves it to that help.
    let r = run(
        gwplugin(&dir, &["sync", "--host", json.to_str().unwrap()]),
        root.path(),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout.contains("`sync` pins only stable releases)"),
        "{}",
        r.stdout
    );
    assert!(!r.stderr.contains("warning:"), "{}", r.stderr);
    // Its dry run says it once.
    let r = run(
        gwplugin(
            &dir,
            &["sync", "--dry-run", "--host", json.to_str().unwrap()],
        ),
        root.path(),
    );
    assert_eq!(
        r.stderr.matches("is not a stable release").count(),
        1,
        "{}",
        r.stderr
    );
}

#[test]
fn a_boundary_crate_from_another_source_gets_help_about_its_source() {
    // "run `cargo gwplugin sync`" for a source `sync` never changes: a circle.
    let root = tempdir();
    let dir = scaffold(root.path(), "patched", "modifier");
    let mut manifest = gateway_manifest();
    let bytes = manifest
        .boundary
        .iter_mut()
        .find(|c| c.name == "bytes")
        .expect("bytes crosses the boundary");
    bytes.source = "git+https://example.com/bytes?rev=1#0123456789abcdef".to_owned();
    let json = root.path().join("patched-host.json");
    std::fs::write(&json, manifest.to_json_pretty()).unwrap();
    let r = check(&dir, root.path(), &["--host", json.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("crate bytes source\n    have: crates.io\n")
            && r.stdout.contains(
                "help: take `bytes` from where the host does (git+https://example.com/bytes"
            ),
        "{}",
        r.stdout
    );
}

#[test]
fn a_contract_the_hosts_checkout_moved_on_gets_help_to_sync() {
    // The host's sources went to another `gwplugin` version (a `git pull`): the plugin's
    // `=x.y.z` no longer resolves, and `check` showed cargo's error with no `help:`.
    let root = tempdir();
    let dir = scaffold(root.path(), "moved-on", "modifier");
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let old = text
        .replace(
            "/api\", version = \"=0.1.0\" }",
            "/api\", version = \"=0.0.9\" }",
        )
        .replace(
            "/build-support\", version = \"=0.1.0\" }",
            "/build-support\", version = \"=0.0.9\" }",
        );
    assert_ne!(old, text);
    std::fs::write(&manifest, old).unwrap();
    let r = check(&dir, root.path(), &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("failed to select a version for the requirement `gwplugin = \"=0.0.9\"`")
            && r.stderr.contains("help: the plugin asks for another version of the contract than its host's sources have: run `cargo gwplugin sync`"),
        "{}",
        r.stderr
    );
    let r = run(gwplugin(&dir, &["sync"]), root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(check(&dir, root.path(), &[]).code, 0);
    // Both back as the template pins them: exactly.
    assert_eq!(std::fs::read_to_string(&manifest).unwrap(), text);
}

#[test]
fn hosts_can_be_a_binary_a_manifest_file_or_a_lock() {
    let root = tempdir();
    let dir = scaffold(root.path(), "many-hosts", "http-client");
    let manifest = gateway_manifest();

    // A manifest JSON file.
    let json = root.path().join("host-abi.json");
    std::fs::write(&json, manifest.to_json_pretty()).unwrap();
    let r = check(&dir, root.path(), &["--host", json.to_str().unwrap()]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "no incompatibilities found\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("(ABI manifest file `[ROOT]/host-abi.json`)"),
        "{}",
        r.stderr
    );

    // An ELF binary with the manifest record in its `.gwplugin_abi` section.
    let record = root.path().join("record.bin");
    std::fs::write(&record, gwplugin_build::encode_record(&manifest)).unwrap();
    let binary = root.path().join("host-bin");
    let status = std::process::Command::new("objcopy")
        .arg("--add-section")
        .arg(format!(".gwplugin_abi={}", record.display()))
        .arg("/bin/true")
        .arg(&binary)
        .status()
        .expect("objcopy (binutils) runs");
    assert!(status.success());
    let r = check(&dir, root.path(), &["--host", binary.to_str().unwrap()]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "no incompatibilities found\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("(host binary `[ROOT]/host-bin`)"),
        "{}",
        r.stderr
    );

    // A binary without the section is not a host.
    let r = check(&dir, root.path(), &["--host", "/bin/true"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with("error: `/usr/bin/true` is not a gwplugin host: the binary has no `.gwplugin_abi` section\nhelp: ")
            || r.stderr.starts_with("error: `/bin/true` is not a gwplugin host: the binary has no `.gwplugin_abi` section\nhelp: "),
        "{}",
        r.stderr
    );

    // The host's Cargo.lock: crate versions only.
    let lock = repo().join("Cargo.lock");
    let r = check(&dir, root.path(), &["--host", lock.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with(
            "note: rustc, target, features and path sources (not compared: a Cargo.lock does not name them)\n"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.ends_with("no incompatibilities found\n"),
        "{}",
        r.stdout
    );
}

#[test]
fn every_command_takes_cargos_output_options() {
    // `-q`, `-v` and `--color` were `build`'s only (and `-vv` refused there).
    let root = tempdir();
    let dir = scaffold(root.path(), "quiet", "modifier");
    let r = check(&dir, root.path(), &["-q"]);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "no incompatibilities found\n", "")
    );
    let r = run(gwplugin(&dir, &["sync", "-q"]), root.path());
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    // And cargo's `CARGO_TERM_QUIET`, as cargo takes it (not over `-v`).
    let mut quiet = gwplugin(&dir, &["sync"]);
    quiet.env("CARGO_TERM_QUIET", "true");
    let r = run(quiet, root.path());
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let mut verbose = gwplugin(&dir, &["sync", "-v"]);
    verbose.env("CARGO_TERM_QUIET", "true");
    let r = run(verbose, root.path());
    assert!(r.stderr.contains("Finished `quiet`"), "{}", r.stderr);
    let r = check(&dir, root.path(), &["-vv"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.starts_with("    Checking `quiet`"), "{}", r.stderr);
    let r = check(
        &dir,
        root.path(),
        &["--color", "always", "--target", "nowhere"],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with("\x1b[1;31merror\x1b[0m: "),
        "{:?}",
        r.stderr
    );
    let mut cmd = gwplugin(&dir, &["check", "--target", "nowhere"]);
    cmd.env("CARGO_TERM_COLOR", "always");
    let r = run(cmd, root.path());
    assert!(
        r.stderr.starts_with("\x1b[1;31merror\x1b[0m: "),
        "{:?}",
        r.stderr
    );
    // Colours for the user, not in the `cargo tree` output `check` reads (its `(*)`
    // marks came coloured, and `http`'s features differed).
    let mut cmd = gwplugin(&dir, &["check"]);
    cmd.env("CARGO_TERM_COLOR", "always");
    let r = run(cmd, root.path());
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "no incompatibilities found\n"),
        "{}",
        r.stderr
    );
    let r = run(gwplugin(&dir, &["check", "-q", "-v"]), root.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn check_refuses_features_cargo_would_refuse() {
    // `check -F nonexistent` said "no incompatibilities found", and `build -F` then
    // failed; `-F dep/feature` of a crate that is no dependency was a raw cargo error.
    let root = tempdir();
    let dir = scaffold(root.path(), "featureless", "modifier");
    let r = check(&dir, root.path(), &["-F", "nonexistent"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            2,
            "error: package `featureless` does not have feature `nonexistent`\nhelp: name a feature in the plugin's `[features]`, or `DEP/FEATURE` of one of its `[dependencies]`\n"
        )
    );
    let r = check(&dir, root.path(), &["-F", "serde_json/preserve_order"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with(
            "error: feature `serde_json/preserve_order`: `serde_json` is not a dependency of package `featureless`\n"
        ),
        "{}",
        r.stderr
    );
    // cargo takes `-F` more than once; so do `check` and `build` (one `FeatureArgs`).
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            "[dependencies]",
            "[features]\na = []\nb = []\n\n[dependencies]",
        ),
    )
    .unwrap();
    let r = check(&dir, root.path(), &["-F", "a", "-F", "b"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn the_plugins_cargo_config_does_not_change_the_hosts_manifest() {
    // A `[patch]` in the plugin's `.cargo/config.toml` was applied to the host's resolve
    // too (cargo ran in the plugin's folder): `check` and `build` passed a plugin whose
    // `serde_json` came from a path, and gwhost refused it.
    let root = tempdir();
    let dir = scaffold(root.path(), "patched", "modifier");
    let version = host_version("serde_json");
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let source = std::fs::read_dir(cargo_home.join("registry/src"))
        .unwrap()
        .map(|index| index.unwrap().path().join(format!("serde_json-{version}")))
        .find(|p| p.is_dir())
        .expect("serde_json's sources in the registry cache");
    let copy = root.path().join("serde_json");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(&source)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::create_dir_all(dir.join(".cargo")).unwrap();
    std::fs::write(
        dir.join(".cargo/config.toml"),
        format!(
            "[patch.crates-io]\nserde_json = {{ path = \"{}\" }}\n",
            copy.display()
        ),
    )
    .unwrap();
    let host_lock = std::fs::read(repo().join("Cargo.lock")).unwrap();
    let r = run(gwplugin(&dir, &["sync", "-q"]), root.path());
    assert_eq!(r.code, 1, "{}", r.stderr);
    let r = check(&dir, root.path(), &[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("crate serde_json source\n"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stderr.contains("out of date"),
        "the host's lock was resolved with the plugin's patch: {}",
        r.stderr
    );
    assert_eq!(std::fs::read(repo().join("Cargo.lock")).unwrap(), host_lock);
}
