//! `cargo gwplugin sync`: fixture manifests (`fixtures/sync/<case>/in`, expected `out`,
//! expected `stderr`) through `--dry-run`, whose diff must turn `in` into exactly `out`;
//! then real syncs of scaffolded plugins: Cargo.toml, Cargo.lock and rust-toolchain.toml.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sync")
}

fn dry_run_case(case: &str) {
    let root = tempdir();
    let dir = root.path().join("p");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
    let input = std::fs::read_to_string(fixtures().join(case).join("in/Cargo.toml")).unwrap();
    let expected = std::fs::read_to_string(fixtures().join(case).join("out/Cargo.toml")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), &input).unwrap();
    let before = snapshot(root.path());
    let host = fixtures().join("host/Cargo.lock");
    let r = run(
        gwplugin(
            &dir,
            &["sync", "--dry-run", "--host", host.to_str().unwrap()],
        ),
        root.path(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(snapshot(root.path()), before, "--dry-run wrote something");

    // The printed diff is exactly the change from `in` to `out`: every other byte kept;
    // its paths relative to where it ran, as `git apply` takes them.
    let want_diff = if input == expected {
        String::new()
    } else {
        similar::TextDiff::from_lines(&input, &expected)
            .unified_diff()
            .context_radius(3)
            .header("a/Cargo.toml", "b/Cargo.toml")
            .to_string()
    };
    assert_eq!(r.stdout, want_diff, "case {case}");
    if !want_diff.is_empty() {
        let patch = root.path().join("sync.patch");
        std::fs::write(&patch, &r.stdout).unwrap();
        let applied = std::process::Command::new("git")
            .args(["apply", "--check"])
            .arg(&patch)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            applied.status.success(),
            "{}",
            String::from_utf8_lossy(&applied.stderr)
        );
        std::fs::remove_file(&patch).unwrap();
    }
    let stderr: String = r
        .stderr
        .lines()
        .map(|l| format!("{}\n", l.trim_start()))
        .collect();
    let want_stderr = std::fs::read_to_string(fixtures().join(case).join("stderr")).unwrap();
    assert_eq!(stderr, want_stderr, "case {case}");
}

#[test]
fn realistic_manifest() {
    dry_run_case("realistic");
}

#[test]
fn workspace_inherited_dependencies() {
    dry_run_case("workspace-inherited");
}

#[test]
fn another_series_of_a_boundary_crate_is_left_alone() {
    dry_run_case("other-series");
}

#[test]
fn the_contract_follows_the_hosts_series_too() {
    dry_run_case("contract-series");
}

#[test]
fn crate_type_gets_cdylib() {
    dry_run_case("crate-type");
}

#[test]
fn already_in_sync_manifest() {
    dry_run_case("in-sync");
}

#[test]
fn sync_pins_moves_the_lock_and_pins_the_compiler() {
    let root = tempdir();
    let dir = scaffold(root.path(), "drifted", "modifier");
    let host_bytes = lock_version(&repo(), "bytes");
    // Drift: a direct dependency on a boundary crate, an older bytes in the lock, and no
    // toolchain file.
    let manifest = dir.join("Cargo.toml");
    let drifted = add_dependencies(&dir, "bytes = \"1\" # direct");
    std::fs::remove_file(dir.join("rust-toolchain.toml")).unwrap();
    cargo(
        &dir,
        &["update", "--offline", "-p", "bytes", "--precise", "1.10.0"],
    );
    assert_eq!(lock_version(&dir, "bytes"), ["1.10.0"]);
    let r = run(gwplugin(&dir, &["check"]), root.path());
    assert_eq!(r.code, 1, "{}", r.stdout);

    let r = run(gwplugin(&dir, &["sync"]), root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "    Updating `bytes` in [dependencies]: \"1\" -> \"={v}\"\n     Pinning rust toolchain 1.95.0 in `[ROOT]/drifted/rust-toolchain.toml`\n     Locking `bytes` 1.10.0 -> {v}\n    Finished `drifted` is in sync with host `gwhost` 0.1.0 (host Cargo project `[REPO]/gateway/Cargo.toml`)\n",
            v = host_bytes[0]
        )
    );
    // Only the one value changed in Cargo.toml.
    assert_eq!(
        std::fs::read_to_string(&manifest).unwrap(),
        drifted.replace(
            "bytes = \"1\" # direct",
            &format!("bytes = \"={}\" # direct", host_bytes[0])
        )
    );
    assert_eq!(lock_version(&dir, "bytes"), host_bytes);
    assert_eq!(
        std::fs::read_to_string(dir.join("rust-toolchain.toml")).unwrap(),
        "# The compiler of the host this plugin is built for (written by `cargo gwplugin sync`).\n[toolchain]\nchannel = \"1.95.0\"\n"
    );
    let r = run(gwplugin(&dir, &["check"]), root.path());
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "no incompatibilities found\n")
    );

    // A second sync has nothing to do and touches nothing.
    let before = snapshot(&dir);
    let r = run(gwplugin(&dir, &["sync"]), root.path());
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stderr,
        "    Finished `drifted` is already in sync with host `gwhost` 0.1.0 (host Cargo project `[REPO]/gateway/Cargo.toml`)\n"
    );
    // Its dry run says so too (it said nothing).
    let dry = run(gwplugin(&dir, &["sync", "--dry-run"]), root.path());
    assert_eq!((dry.code, dry.stderr), (0, r.stderr));
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn a_lock_out_of_date_is_brought_up_to_date_and_what_sync_cannot_change_exits_1() {
    // `check` sends the author to `sync` for a lock out of date with Cargo.toml; `sync`
    // rewrote it only when it changed Cargo.toml itself, and the two sent them round.
    let root = tempdir();
    let dir = scaffold(root.path(), "added", "modifier");
    let manifest = dir.join("Cargo.toml");
    let with_itoa = add_dependencies(&dir, "itoa = \"1\"");
    let r = run(gwplugin(&dir, &["check"]), root.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("help: run `cargo gwplugin sync`"),
        "{}",
        r.stderr
    );
    // Said by a dry run too, which printed nothing.
    let r = run(gwplugin(&dir, &["sync", "--dry-run"]), root.path());
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            0,
            "Would update `[ROOT]/added/Cargo.lock` to match Cargo.toml\n"
        )
    );
    let r = run(gwplugin(&dir, &["sync"]), root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        "     Updated `[ROOT]/added/Cargo.lock` to match Cargo.toml\n    Finished `added` is in sync with host `gwhost` 0.1.0 (host Cargo project `[REPO]/gateway/Cargo.toml`)\n"
    );
    assert_eq!(std::fs::read_to_string(&manifest).unwrap(), with_itoa);
    let r = run(gwplugin(&dir, &["check"]), root.path());
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "no incompatibilities found\n"),
        "{}",
        r.stderr
    );

    // A feature the plugin turns on in a boundary crate: not `sync`'s to change, and
    // no longer "in sync" with exit 0.
    let ordered = with_itoa.replace(
        "itoa = \"1\"",
        "serde_json = { version = \"1\", features = [\"preserve_order\"] }",
    );
    std::fs::write(&manifest, &ordered).unwrap();
    let r = run(gwplugin(&dir, &["sync"]), root.path());
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.ends_with(
            "error: `added` is still incompatible with host `gwhost` 0.1.0 (host Cargo project `[REPO]/gateway/Cargo.toml`) (1 above): `sync` aligned what it aligns\nhelp: what is left is not something `sync` can change: follow each `help:` line above\n"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.starts_with("crate serde_json features\n"),
        "{}",
        r.stdout
    );
    // With nothing to write, its dry run says the same (it said nothing, and exit 0).
    let still = r;
    let r = run(gwplugin(&dir, &["sync", "--dry-run"]), root.path());
    assert_eq!((r.code, &r.stdout), (1, &still.stdout), "{}", r.stderr);
    assert!(
        r.stderr.starts_with("error: `added` is still incompatible")
            && still.stderr.ends_with(&r.stderr),
        "{}",
        r.stderr
    );
    // A plugin cargo cannot read: the dry run fails as the sync would.
    std::fs::write(
        &manifest,
        with_itoa.replace("itoa = \"1\"", "nope = { path = \"../nope\" }"),
    )
    .unwrap();
    for args in [&["sync", "--dry-run"][..], &["sync"]] {
        let r = run(gwplugin(&dir, args), root.path());
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr
                .contains("failed to load manifest for dependency `nope`")
                // What to do, also when the manifest could not be computed (it said none).
                && r.stderr.contains("\nhelp: "),
            "{args:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn dry_run_of_a_lock_only_a_resolve_finds_out_of_date_says_it_would_update_it() {
    // `cargo tree --offline` failing for a crate not in the offline index (not with a
    // `--locked` message): nothing to write was seen, and the check's resolve then found
    // the lock out of date, an error whose help said to run `sync`, from `sync` itself.
    let root = tempdir();
    let dir = scaffold(root.path(), "not-cached", "modifier");
    add_dependencies(&dir, "itoa = \"1\"");
    let fake = cargo_failing_on(
        root.path(),
        "tree*--locked*",
        "no matching package named `itoa` found",
    );
    let before = snapshot(root.path());
    let mut cmd = gwplugin(&dir, &["sync", "--dry-run"]);
    cmd.env("CARGO", &fake);
    let r = run(cmd, root.path());
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            0,
            "Would update `[ROOT]/not-cached/Cargo.lock` to match Cargo.toml\n"
        )
    );
    assert_eq!(snapshot(root.path()), before);
}

#[test]
fn dry_run_lists_lock_moves_and_writes_nothing() {
    let root = tempdir();
    let dir = scaffold(root.path(), "dry", "http-client");
    cargo(
        &dir,
        &["update", "--offline", "-p", "bytes", "--precise", "1.10.0"],
    );
    let before = snapshot(&dir);
    let r = run(gwplugin(&dir, &["sync", "--dry-run"]), root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        format!(
            "  Would lock `bytes` 1.10.0 -> {}\n",
            lock_version(&repo(), "bytes")[0]
        )
    );
    assert_eq!(snapshot(&dir), before);

    // The real thing: `cargo update --precise` moves it; only Cargo.lock changes.
    let r = run(gwplugin(&dir, &["sync"]), root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.starts_with(&format!(
            "     Locking `bytes` 1.10.0 -> {}\n",
            lock_version(&repo(), "bytes")[0]
        )),
        "{}",
        r.stderr
    );
    assert_eq!(lock_version(&dir, "bytes"), lock_version(&repo(), "bytes"));
    let after = snapshot(&dir);
    let changed: Vec<_> = after
        .keys()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| k.display().to_string())
        .collect();
    assert_eq!(changed, ["Cargo.lock"]);
}

#[test]
fn the_pin_goes_in_a_legacy_rust_toolchain_file_which_rustup_reads_first() {
    let root = tempdir();
    let dir = scaffold(root.path(), "legacy", "modifier");
    std::fs::remove_file(dir.join("rust-toolchain.toml")).unwrap();
    std::fs::write(dir.join("rust-toolchain"), "nightly\n").unwrap();
    let r = run(gwplugin(&dir, &["sync"]), root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Pinning rust toolchain 1.95.0 in `[ROOT]/legacy/rust-toolchain`\n"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("rust-toolchain")).unwrap(),
        "# The compiler of the host this plugin is built for (written by `cargo gwplugin sync`).\n[toolchain]\nchannel = \"1.95.0\"\n"
    );
    assert!(!dir.join("rust-toolchain.toml").exists());
    // And it is in sync now.
    let r = run(gwplugin(&dir, &["sync"]), root.path());
    assert!(r.stderr.contains("is already in sync"), "{}", r.stderr);
}

#[test]
fn sync_checks_with_the_compiler_it_pinned_not_the_one_rustup_named_at_the_start() {
    // In the plugin's folder, rustup's proxy hands `cargo gwplugin sync` the toolchain the
    // folder's file pinned (`RUSTUP_TOOLCHAIN`, from `toolchain-file`). The check after
    // the re-pin used it: `sync` fixed the pin, then failed (exit 1) naming the old one.
    let root = tempdir();
    let dir = scaffold(root.path(), "repin", "modifier");
    std::fs::write(
        dir.join("rust-toolchain.toml"),
        "[toolchain]\nchannel = \"nightly\"\n",
    )
    .unwrap();
    let mut cmd = gwplugin(&dir, &["sync"]);
    cmd.env("RUSTUP_TOOLCHAIN", "nightly")
        .env("RUSTUP_TOOLCHAIN_SOURCE", "toolchain-file");
    let r = run(cmd, root.path());
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("Pinning rust toolchain 1.95.0")
            && r.stderr.contains("is in sync with host"),
        "{}",
        r.stderr
    );
}

/// The gateway's ABI manifest with `serde_json/raw_value` turned on, written in `dir`: a
/// host whose boundary crate has a feature a scaffolded plugin lacks.
fn host_with_raw_value(dir: &Path) -> PathBuf {
    let mut manifest = gateway_manifest();
    let serde_json = manifest
        .boundary
        .iter_mut()
        .find(|c| c.name == "serde_json")
        .expect("serde_json crosses the boundary");
    serde_json.features.push("raw_value".to_owned());
    serde_json.features.sort();
    let json = dir.join("raw-value-host.json");
    std::fs::write(&json, manifest.to_json_pretty()).unwrap();
    json
}

#[test]
fn a_feature_the_hosts_copy_has_is_turned_on_in_the_plugin() {
    // `sync` moved versions only: a boundary crate's feature the host turned on left the
    // plugin incompatible, and `sync` failed (exit 1) telling the author to add it.
    let root = tempdir();
    let dir = scaffold(root.path(), "featured", "modifier");
    let json = host_with_raw_value(root.path());
    let host = json.to_str().unwrap();
    // Its dry run says so, and writes nothing.
    let before = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let r = run(
        gwplugin(&dir, &["sync", "--dry-run", "--host", host]),
        root.path(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "Would enable features of `serde_json` in [dependencies], as the host has them: features = [] -> features = [\"raw_value\"]"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("Cargo.toml")).unwrap(),
        before
    );
    let r = run(gwplugin(&dir, &["sync", "--host", host]), root.path());
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("Enabling features of `serde_json` in [dependencies], as the host has them:")
            && r.stderr.contains("is in sync with host"),
        "{}",
        r.stderr
    );
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(text.contains("\"raw_value\""), "{text}");
    let r = run(gwplugin(&dir, &["check", "--host", host]), root.path());
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "no incompatibilities found\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_failure_turning_features_on_puts_back_the_versions_written_before_it_too() {
    // The pins were one transaction, the features another: a failed relock for the
    // features said "Restored Cargo.toml as it was" and left the pins.
    let root = tempdir();
    let dir = scaffold(root.path(), "atomic", "modifier");
    add_dependencies(&dir, "serde_json = \"1\" # json");
    let json = host_with_raw_value(root.path());
    // A cargo whose `update` fails once the manifest asks for `raw_value`.
    let wrapper = root.path().join("cargo-failing-update");
    gwplugin_e2e::write_executable(
        &wrapper,
        "#!/bin/sh\nif [ \"$1\" = update ] && grep -q raw_value \"$3\"; then echo 'error: simulated' >&2; exit 101; fi\nexec \"$REAL_CARGO\" \"$@\"\n",
    );
    let before = snapshot(root.path());
    let mut cmd = gwplugin(&dir, &["sync", "--host", json.to_str().unwrap()]);
    cmd.env(
        "REAL_CARGO",
        std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
    )
    .env("CARGO", &wrapper);
    let r = run(cmd, root.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("Enabling features of `serde_json`"),
        "{}",
        r.stderr
    );
    assert_eq!(snapshot(root.path()), before, "{}", r.stderr);
}

/// A scaffolded plugin made the member `plug` of a workspace `ws` under `root`, whose
/// root `Cargo.toml` gets `root_extra`; the lock and toolchain file move to the root.
fn workspace_member(root: &Path, root_extra: &str) -> (PathBuf, PathBuf) {
    let ws = root.join("ws");
    std::fs::create_dir(&ws).unwrap();
    let dir = scaffold(&ws, "plug", "modifier");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let member = manifest.replace("\n[workspace]\n", "\n");
    assert_ne!(member, manifest);
    std::fs::write(dir.join("Cargo.toml"), member).unwrap();
    std::fs::write(
        ws.join("Cargo.toml"),
        format!("[workspace]\nmembers = [\"plug\"]\nresolver = \"3\"\n{root_extra}"),
    )
    .unwrap();
    std::fs::rename(dir.join("Cargo.lock"), ws.join("Cargo.lock")).unwrap();
    std::fs::rename(
        dir.join("rust-toolchain.toml"),
        ws.join("rust-toolchain.toml"),
    )
    .unwrap();
    (ws, dir)
}

#[test]
fn a_boundary_crate_a_member_inherits_is_pinned_in_the_workspaces_root() {
    // Only the member's own file was edited: the root's `=1.10.0` stayed, and `sync`
    // failed with cargo's "failed to select a version".
    let root = tempdir();
    let (ws, dir) = workspace_member(
        root.path(),
        "\n[workspace.dependencies]\nbytes = \"=1.10.0\" # shared\n",
    );
    let manifest = dir.join("Cargo.toml");
    let text = add_dependencies(&dir, "bytes.workspace = true");
    cargo(
        &ws,
        &["update", "--offline", "-p", "bytes", "--precise", "1.10.0"],
    );
    let host_bytes = lock_version(&repo(), "bytes");
    let r = run(gwplugin(&dir, &["sync"]), root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "Updating `bytes` in [workspace.dependencies] of `[ROOT]/ws/Cargo.toml`: \"=1.10.0\" -> \"={}\"",
            host_bytes[0]
        )),
        "{}",
        r.stderr
    );
    assert!(
        std::fs::read_to_string(ws.join("Cargo.toml"))
            .unwrap()
            .contains(&format!("bytes = \"={}\" # shared\n", host_bytes[0]))
    );
    assert_eq!(std::fs::read_to_string(&manifest).unwrap(), text);
    assert_eq!(lock_version(&ws, "bytes"), host_bytes);
}

#[test]
fn in_a_workspace_the_pin_goes_in_the_toolchain_file_nearest_the_plugin() {
    // A member's own toolchain file outranks the workspace's: the pin went in the
    // workspace's, changing nothing, and `sync` said all was in sync while `check`
    // still found the compiler wrong.
    let root = tempdir();
    let (ws, dir) = workspace_member(root.path(), "");
    let ws_pin = std::fs::read_to_string(ws.join("rust-toolchain.toml")).unwrap();
    std::fs::write(
        dir.join("rust-toolchain.toml"),
        "[toolchain]\nchannel = \"nightly\"\n",
    )
    .unwrap();
    // As a user's shell runs it: the toolchain is the files' to choose.
    let plain = |args: &[&str]| {
        let mut cmd = gwplugin(&dir, args);
        cmd.env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTUP_TOOLCHAIN_SOURCE");
        run(cmd, root.path())
    };
    assert_eq!(plain(&["check"]).code, 1);
    let r = plain(&["sync"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Pinning rust toolchain 1.95.0 in `[ROOT]/ws/plug/rust-toolchain.toml`\n"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("rust-toolchain.toml")).unwrap(),
        ws_pin
    );
    let r = plain(&["check"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "no incompatibilities found\n"),
        "{}",
        r.stderr
    );
}

/// A plugin scaffolded as `name` under `root`: its folder, and the text of its manifest
/// with the repository's paths written relative to that folder (not yet written).
fn scaffold_with_relative_paths(root: &Path, name: &str) -> (PathBuf, String) {
    let dir = scaffold(root, name, "modifier");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let up = "../".repeat(dir.components().count() - 1);
    let relative = manifest.replace(
        &repo().display().to_string(),
        &format!(
            "{up}{}",
            repo().display().to_string().trim_start_matches('/')
        ),
    );
    assert!(relative.contains("path = \"../"), "{relative}");
    (dir, relative)
}

#[test]
fn relative_paths_to_the_hosts_crates_are_kept_as_written() {
    // They were rewritten to the same folder's absolute path, breaking the committed
    // file for a checkout anywhere else.
    let root = tempdir();
    let (dir, relative) = scaffold_with_relative_paths(root.path(), "relative");
    let manifest = dir.join("Cargo.toml");
    std::fs::write(&manifest, &relative).unwrap();
    let r = run(gwplugin(&dir, &["sync"]), root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("is already in sync"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&manifest).unwrap(), relative);
}

#[cfg(unix)]
#[test]
fn a_symlinked_manifest_reads_its_paths_from_the_links_folder() {
    // As cargo does; they were read from the link target's folder.
    let root = tempdir();
    let (dir, relative) = scaffold_with_relative_paths(root.path(), "linked");
    let manifest = dir.join("Cargo.toml");
    let stored = root.path().join("store/deep/Cargo.toml");
    std::fs::create_dir_all(stored.parent().unwrap()).unwrap();
    std::fs::write(&stored, &relative).unwrap();
    std::fs::remove_file(&manifest).unwrap();
    std::os::unix::fs::symlink(&stored, &manifest).unwrap();
    let r = run(gwplugin(&dir, &["check"]), root.path());
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "no incompatibilities found\n"),
        "{}",
        r.stderr
    );
    let r = run(gwplugin(&dir, &["sync"]), root.path());
    assert!(r.stderr.contains("is already in sync"), "{}", r.stderr);
}

#[test]
fn a_missing_lock_is_created_from_the_hosts_and_sync_says_so() {
    let root = tempdir();
    let dir = scaffold(root.path(), "unlocked", "modifier");
    std::fs::remove_file(dir.join("Cargo.lock")).unwrap();
    let r = run(gwplugin(&dir, &["sync"]), root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        "    Creating `[ROOT]/unlocked/Cargo.lock` from the host's lock\n    Finished `unlocked` is in sync with host `gwhost` 0.1.0 (host Cargo project `[REPO]/gateway/Cargo.toml`)\n"
    );
    assert_eq!(lock_version(&dir, "bytes"), lock_version(&repo(), "bytes"));
}

#[test]
fn with_its_output_reader_gone_sync_still_finishes() {
    // `cargo gwplugin sync 2>&1 | head -1`, or a CI log reader that died: the status
    // lines' writes fail. They must not panic in the middle of the sync.
    let root = tempdir();
    let dir = scaffold(root.path(), "piped", "modifier");
    let manifest = dir.join("Cargo.toml");
    add_dependencies(&dir, "bytes = \"1\"");
    let out = std::process::Command::new("bash")
        .args([
            "-c",
            "set -o pipefail; \"$0\" gwplugin sync 2>&1 | true",
            assert_cmd::cargo::cargo_bin("cargo-gwplugin")
                .to_str()
                .unwrap(),
        ])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("RUSTC")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        std::fs::read_to_string(&manifest)
            .unwrap()
            .contains(&format!(
                "bytes = \"={}\"",
                lock_version(&repo(), "bytes")[0]
            )),
        "synced"
    );
}
