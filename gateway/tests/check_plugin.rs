//! `gwhost check-plugin` against `cargo gwplugin check`: the same fixture cases through
//! both front ends, with the same verdicts and reports; then gwhost's exact output,
//! `--fix`, `--lock`, `--rustc`, built `.so` files and errors.

#[path = "../../cargo-gwplugin/tests/common/mod.rs"]
mod cgw;

use std::path::{Path, PathBuf};
use std::sync::Once;

use cgw::{Run, cargo, gateway, repo, run, scaffold, target_dir, tempdir};

/// The real `cargo-gwplugin` binary, built once per test run (`assert_cmd` finds it in
/// the target directory).
fn cargo_gwplugin(dir: &Path, args: &[&str]) -> assert_cmd::Command {
    static BUILT: Once = Once::new();
    BUILT.call_once(|| {
        gwplugin_e2e::cargo_in(
            &repo(),
            &["build", "-p", "cargo-gwplugin", "--bin", "cargo-gwplugin"],
        );
    });
    cgw::gwplugin(dir, args)
}

/// `gwhost check-plugin ARGS…` in `dir`.
fn gwhost(dir: &Path, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_gwhost"));
    cmd.arg("check-plugin")
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    cmd
}

/// The manifest gwhost embeds (what it judges plugins against).
fn host_manifest() -> gwplugin_build::AbiManifest {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_gwhost")).unwrap();
    gwplugin_build::elf::host_manifest(&binary, gwplugin_build::HOST_SECTION).unwrap()
}

fn host_version(name: &str) -> String {
    host_manifest()
        .boundary
        .iter()
        .find(|c| c.name == name)
        .unwrap()
        .version
        .clone()
}

/// What `rustup which rustc` answers in `dir`: the compiler that would build a plugin.
fn toolchain_rustc(dir: &Path) -> String {
    let out = std::process::Command::new("rustup")
        .args(["which", "rustc"])
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A `rustc` that says it is 1.95.1 and otherwise is the real one.
fn fake_rustc(root: &Path, dir: &Path) -> PathBuf {
    let real = toolchain_rustc(dir);
    let wrapper = root.join("fake-rustc");
    gwplugin_e2e::write_executable(
        &wrapper,
        &format!(
            "#!/bin/sh\nif [ \"$1\" = \"-vV\" ]; then '{real}' -vV | sed -e 's/^release: .*/release: 1.95.1/'; else exec '{real}' \"$@\"; fi\n"
        ),
    );
    wrapper
}

/// Both front ends on one case: `cargo gwplugin check` (against the host project, the
/// plugin's `[package.metadata.gwplugin] host`) and `gwhost check-plugin` (against its
/// own manifest) print the same report and exit the same, in human and JSON form.
/// Returns gwhost's human run.
fn both(dir: &Path, root: &Path, env: &[(&str, &Path)]) -> Run {
    let mut runs = Vec::new();
    for json in [false, true] {
        let format: &[&str] = if json {
            &["--message-format", "json"]
        } else {
            &[]
        };
        let mut cargo_cmd = cargo_gwplugin(dir, &[&["check"][..], format].concat());
        let mut gw_cmd = gwhost(dir, format);
        for (k, v) in env {
            cargo_cmd.env(k, v);
            gw_cmd.env(k, v);
        }
        let (c, g) = (run(cargo_cmd, root), run(gw_cmd, root));
        assert_eq!(
            (g.code, &g.stdout),
            (c.code, &c.stdout),
            "gwhost check-plugin vs cargo gwplugin check in {}\n--- gwhost stderr\n{}\n--- cargo stderr\n{}",
            dir.display(),
            g.stderr,
            c.stderr
        );
        if json {
            let v: serde_json::Value = serde_json::from_str(&g.stdout).unwrap();
            assert_eq!(v["compatible"], g.code == 0, "{}", g.stdout);
        }
        runs.push(g);
    }
    runs.swap_remove(0)
}

#[test]
fn both_front_ends_give_the_same_verdicts() {
    let root = tempdir();
    let root = root.path();
    let mut verdicts = Vec::new();

    // Compatible.
    let fresh = scaffold(root, "fresh", "modifier");
    let r = both(&fresh, root, &[]);
    assert_eq!(r.stdout, "no incompatibilities found\n");
    verdicts.push(("fresh", r.code));

    // Another compiler, through $RUSTC.
    let other = scaffold(root, "other-rustc", "modifier");
    let wrapper = fake_rustc(root, &other);
    let r = both(&other, root, &[("RUSTC", &wrapper)]);
    assert!(
        r.stdout.starts_with("rustc\n    have: 1.95.1 ("),
        "{}",
        r.stdout
    );
    verdicts.push(("other-rustc", r.code));

    // A boundary crate at another version.
    let old = scaffold(root, "old-bytes", "http-server");
    cargo(
        &old,
        &["update", "--offline", "-p", "bytes", "--precise", "1.10.0"],
    );
    let r = both(&old, root, &[]);
    assert!(r.stdout.starts_with("crate bytes\n    have: 1.10.0\n"));
    verdicts.push(("old-bytes", r.code));

    // A private crate at another version: a note, not an incompatibility.
    let private = scaffold(root, "private-itoa", "modifier");
    let manifest = private.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "[build-dependencies]",
        "itoa = \"=1.0.18\"\n\n[build-dependencies]",
    );
    std::fs::write(&manifest, text).unwrap();
    cargo(&private, &["update", "--workspace"]);
    let r = both(&private, root, &[]);
    assert!(
        r.stdout
            .starts_with("note: crate itoa (private to the plugin: it need not match the host)\n    have: 1.0.18\n"),
        "{}",
        r.stdout
    );
    verdicts.push(("private-itoa", r.code));

    // Built files: the fixture, compatible; a copy of it against bytes 1.10.0, not. A
    // `.so` is judged as its sources are, by either front end.
    let so = gwplugin_e2e::build_fixture("all-kinds");
    let host_bin = env!("CARGO_BIN_EXE_gwhost");
    let from_sources = run(
        cargo_gwplugin(
            root,
            &[
                "check",
                "--manifest-path",
                repo()
                    .join("fixtures/plugins/all-kinds/Cargo.toml")
                    .to_str()
                    .unwrap(),
                "--host",
                host_bin,
            ],
        ),
        root,
    );
    let from_file = run(gwhost(root, &[so.to_str().unwrap()]), root);
    assert_eq!(
        (from_file.code, &from_file.stdout),
        (from_sources.code, &from_sources.stdout),
        "{}\n{}",
        from_file.stderr,
        from_sources.stderr
    );
    verdicts.push(("all-kinds.so", from_file.code));

    let variant =
        gwplugin_e2e::copy_fixture("all-kinds", "check-plugin-old-bytes", &repo().join("api"));
    gwplugin_e2e::cargo_in(
        variant.path(),
        &["update", "--offline", "-p", "bytes", "--precise", "1.10.0"],
    );
    let variant_manifest = variant.path().join("Cargo.toml");
    let so = gwplugin_e2e::build_plugin(&variant_manifest, &Default::default()).unwrap();
    let manifest_arg = variant_manifest.to_str().unwrap();
    let from_sources = run(
        cargo_gwplugin(
            root,
            &["check", "--manifest-path", manifest_arg, "--host", host_bin],
        ),
        root,
    );
    let gw_sources = run(gwhost(root, &["--manifest-path", manifest_arg]), root);
    let from_file = run(gwhost(root, &[so.to_str().unwrap()]), root);
    assert_eq!(
        from_file.stdout, from_sources.stdout,
        "{}",
        from_file.stderr
    );
    assert_eq!(from_file.stdout, gw_sources.stdout, "{}", gw_sources.stderr);
    assert_eq!(
        [from_file.code, gw_sources.code, from_sources.code],
        [1, 1, 1]
    );
    let host = host_manifest();
    assert!(
        from_file.stderr.ends_with(&format!(
            "       Using rustc {} recorded in the plugin file\n",
            host.rustc
        )),
        "{}",
        from_file.stderr
    );
    verdicts.push(("old-bytes.so", from_file.code));

    assert_eq!(
        verdicts,
        [
            ("fresh", 0),
            ("other-rustc", 1),
            ("old-bytes", 1),
            ("private-itoa", 0),
            ("all-kinds.so", 0),
            ("old-bytes.so", 1),
        ]
    );
}

#[test]
fn gwhost_says_which_compiler_and_prints_the_fix_that_works() {
    let root = tempdir();
    let root = root.path();
    let host = host_manifest();
    let short: String = host.rustc.commit_hash.chars().take(9).collect();
    // As the outputs show it, wherever the target dir is.
    let gwhost_bin = &env!("CARGO_BIN_EXE_gwhost").replace(&repo().display().to_string(), "[REPO]");

    // A boundary crate at another version: the exact report, the fix, and the fix works.
    let dir = scaffold(root, "old-bytes", "http-server");
    cargo(
        &dir,
        &["update", "--offline", "-p", "bytes", "--precise", "1.10.0"],
    );
    let r = run(gwhost(&dir, &["--fix"]), root);
    let sync = format!(
        "cargo gwplugin sync --manifest-path [ROOT]/old-bytes/Cargo.toml --host {gwhost_bin}"
    );
    assert_eq!(
        r.stdout,
        format!(
            "crate bytes\n    have: 1.10.0\n    want: {}\n    help: run `cargo gwplugin sync` to move it to the host's version\n\
             1 incompatibility found\nto fix, run:\n    {sync}\n",
            host_version("bytes")
        )
    );
    assert_eq!(
        r.stderr,
        format!(
            "    Checking `old-bytes` against host `gwhost` 0.1.0 (host binary `{gwhost_bin}`)\n       Using rustc {} ({short}) that would build the plugin (`{}`)\n",
            host.rustc.release,
            toolchain_rustc(&dir)
        )
    );
    assert_eq!(r.code, 1);

    // The same from the lock alone, with the note that features were not compared.
    let r = run(gwhost(&dir, &["--lock", "Cargo.lock"]), root);
    assert_eq!(
        r.stdout,
        format!(
            "crate bytes\n    have: 1.10.0\n    want: {}\n    help: run `cargo gwplugin sync` to move it to the host's version\n\
             note: crate features (not compared: a Cargo.lock does not name them; `--manifest-path` resolves them)\n    have: (unknown)\n    want: this host's\n\
             1 incompatibility found\n",
            host_version("bytes")
        )
    );
    assert_eq!(r.code, 1);

    // Run the printed fix: then the plugin is compatible.
    let words: Vec<String> = sync
        .replace("[ROOT]", &root.display().to_string())
        .replace("[REPO]", &repo().display().to_string())
        .split(' ')
        .skip(2)
        .map(str::to_owned)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let fixed = run(cargo_gwplugin(&dir, &words), root);
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
    let r = run(gwhost(&dir, &["--fix"]), root);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "no incompatibilities found\n"),
        "{}",
        r.stderr
    );

    // Another compiler through $RUSTC: said so, and the fix pins, installs and unsets.
    let dir = scaffold(root, "other-rustc", "modifier");
    let wrapper = fake_rustc(root, &dir);
    let mut cmd = gwhost(&dir, &["--fix"]);
    cmd.env("RUSTC", &wrapper);
    let r = run(cmd, root);
    assert_eq!(
        r.stdout,
        format!(
            "rustc\n    have: 1.95.1 ({short})\n    want: {} ({short})\n    help: build with the host's compiler: unset `RUSTC` (it names `[ROOT]/fake-rustc`, which outranks any rust-toolchain.toml)\n\
             1 incompatibility found\nto fix, run:\n    cargo gwplugin sync --manifest-path [ROOT]/other-rustc/Cargo.toml --host {gwhost_bin}\n    rustup toolchain install {}\n    unset RUSTC\n",
            host.rustc.release, host.rustc.release
        )
    );
    assert!(
        r.stderr.ends_with(&format!(
            "       Using rustc 1.95.1 ({short}) from $RUSTC (`[ROOT]/fake-rustc`)\n"
        )),
        "{}",
        r.stderr
    );
    assert_eq!(r.code, 1);

    // `--rustc` overrides the compiler found: the host's release is compatible, another
    // is not (and is not known by its commit).
    let mut cmd = gwhost(&dir, &["--rustc", &host.rustc.release]);
    cmd.env("RUSTC", &wrapper);
    let r = run(cmd, root);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "no incompatibilities found\n")
    );
    assert!(
        r.stderr.ends_with(&format!(
            "       Using rustc {} ({short}) given with `--rustc`\n",
            host.rustc.release
        )),
        "{}",
        r.stderr
    );
    let r = run(
        gwhost(&dir, &["--rustc", "1.94.0", "--message-format", "json"]),
        root,
    );
    assert_eq!(r.code, 1);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        json["incompatibilities"][0],
        serde_json::json!({
            "field": "rustc",
            "have": "1.94.0 (unknown)",
            "want": format!("{} ({short})", host.rustc.release),
            "help": "build with the host's compiler: run `cargo gwplugin sync` to pin it in rust-toolchain.toml",
        })
    );
    assert_eq!(json.get("fix"), None);

    // The `want:` text copied as it is: the host's compiler, not "(unknown)" beside it.
    let shown = format!("{} ({short})", host.rustc.release);
    let r = run(gwhost(&dir, &["--rustc", &shown]), root);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "no incompatibilities found\n"),
        "{}",
        r.stderr
    );
    // A compiler wrapper that runs another compiler: named, and not among what `sync`
    // and `rustup` fix (no pin outranks it).
    let wrap = root.join("wrap");
    gwplugin_e2e::write_executable(
        &wrap,
        &format!("#!/bin/sh\nshift\nexec '{}' \"$@\"\n", wrapper.display()),
    );
    let mut cmd = gwhost(&dir, &["--fix"]);
    cmd.env("RUSTC_WRAPPER", &wrap);
    let r = run(cmd, root);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout.contains(
            "help: build with the host's compiler: remove the compiler wrapper set by \
             `RUSTC_WRAPPER` (it runs rustc 1.95.1"
        ) && !r.stdout.contains("rustup toolchain install"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("run through the wrapper set by `RUSTC_WRAPPER`"),
        "{}",
        r.stderr
    );

    let r = run(gwhost(&dir, &["--rustc", "banana"]), root);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("`banana` is not a rustc release: write one like `1.95.0`"),
        "{}",
        r.stderr
    );
}

/// Its manifest agrees with the host's, but the file was compiled with a feature cargo
/// unified in from another member: the layout record, which only a built file has, tells.
#[test]
fn a_built_file_is_also_judged_by_how_its_types_are_laid_out() {
    let root = tempdir();
    let root = root.path();
    let variant = gwplugin_e2e::copy_fixture_beside_preserve_order("check-plugin-unified");
    let build = gwplugin_e2e::Build {
        args: vec!["--workspace".into()],
        ..Default::default()
    };
    let so = gwplugin_e2e::build_plugin(&variant.path().join("Cargo.toml"), &build).unwrap();
    let r = run(gwhost(root, &[so.to_str().unwrap()]), root);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout.contains("layout of `serde_json::Map`\n    have: ")
            && r.stdout.contains(
                "    help: build the plugin with `cargo gwplugin build` in its crate: it builds \
                 the plugin alone"
            ),
        "{}",
        r.stdout
    );
}

#[test]
fn a_built_file_is_judged_from_its_manifest_and_bad_input_exits_2() {
    let root = tempdir();
    let root = root.path();
    let so = gwplugin_e2e::build_fixture("all-kinds");
    let r = run(gwhost(root, &["--fix", so.to_str().unwrap()]), root);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "no incompatibilities found\n")
    );
    assert!(
        r.stderr.starts_with(&format!(
            "    Checking `fixture-all-kinds` against host `gwhost` 0.1.0 (host binary `{}`)\n",
            env!("CARGO_BIN_EXE_gwhost").replace(&repo().display().to_string(), "[REPO]")
        )),
        "{}",
        r.stderr
    );

    // A file without a manifest, a missing file, a file that is no lock: errors (2),
    // not verdicts.
    let r = run(gwhost(root, &["/bin/true"]), root);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with("error: plugin `/bin/true`: no gwplugin ABI manifest (symbol `GWPLUGIN_ABI_MANIFEST` missing)"),
        "{}",
        r.stderr
    );
    let r = run(gwhost(root, &["missing.so"]), root);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "error: `missing.so`: No such file or directory (os error 2)\n\
         help: check that the path exists and that you may read (and write) it\n"
    );
    let r = run(gwhost(root, &["--lock", gateway().to_str().unwrap()]), root);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            2,
            "error: `[REPO]/gateway/Cargo.toml` is not a plugin's Cargo.lock: its name does not end in `.lock`\n\
             help: pass the `Cargo.lock` of a plugin crate that depends on `gwplugin`\n"
        )
    );
    let r = run(gwhost(root, &["--rustc", "1.95.0", "x.so"]), root);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("error: the argument '--rustc <VERSION>' cannot be used with '[FILE.so]'"),
        "{}",
        r.stderr
    );
    // Not in a plugin crate: the same error and help as `cargo gwplugin check`.
    let r = run(gwhost(root, &[]), root);
    let c = run(cargo_gwplugin(root, &["check"]), root);
    assert_eq!((r.code, &r.stderr), (c.code, &c.stderr));
    assert_eq!(r.code, 2);
}
