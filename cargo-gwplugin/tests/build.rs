//! `cargo gwplugin build` and `host-build` end to end: a plugin scaffolded by `new`, built
//! for musl and for aarch64, registered in a config, loaded by a gwhost built for the
//! same target and run on loopback (under the musl loader, under qemu-aarch64), with a
//! request that shows the plugin's effect. And the refusals: a glibc host given a musl
//! plugin, a missing linker or Rust target.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{add_dependencies, gateway, gwplugin, run, scaffold, tempdir};
use serde_json::{Value, json};

const MUSL: &str = "x86_64-unknown-linux-musl";
const AARCH64: &str = "aarch64-unknown-linux-gnu";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `host-build` for `target`; the verified host binary.
fn host_for(target: &str, root: &Path) -> PathBuf {
    let out = gwplugin(
        root,
        &[
            "host-build",
            "--target",
            target,
            "--manifest-path",
            &gateway().display().to_string(),
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "host-build failed:\n{stderr}");
    assert!(
        stderr.contains(&format!("Verified host `gwhost` for {target}")),
        "{stderr}"
    );
    PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap(),
    )
}

fn write_config(path: &Path, port: u16, backend: &str) {
    // No `plugin.folder`: `--register` gives it one beside the config.
    let config = json!({
        "version": 3,
        "port": port,
        "plugin": {"pattern": "tenant.so"},
        "endpoints": [{
            "endpoint": "/users/{id}",
            "method": "GET",
            "backend": [{"host": [backend], "url_pattern": "/api/users/{id}"}]
        }]
    });
    std::fs::write(path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

struct Gateway(Child);
impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(mut cmd: Command, port: u16) -> Gateway {
    let mut child = Gateway(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gwhost starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.0.try_wait() {
            let mut err = String::new();
            child
                .0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("gwhost exited ({status}):\n{err}");
        }
        assert!(Instant::now() < deadline, "gwhost did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

/// GET over a plain socket: status line, lower-cased headers, body.
fn get(port: u16, path: &str) -> (String, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let (status, headers) = head.split_once("\r\n").unwrap();
    (status.to_owned(), headers.to_lowercase(), body.to_owned())
}

/// Scaffold, build for `target` against `host`, register, run, request.
fn end_to_end(target: &str, host: &Path, launcher: &[&str]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend = rt.block_on(gwplugin_e2e::start_backend());
    let root = tempdir();
    let plugin = scaffold(root.path(), "tenant", "modifier");
    let config = root.path().join("gateway.json");
    let port = free_port();
    write_config(&config, port, &backend.url());

    let r = run(
        gwplugin(
            &plugin,
            &[
                "build",
                "--target",
                target,
                "--host",
                &host.display().to_string(),
                "--register",
                // Relative, as an author types it: the JSON line says where it is.
                "../gateway.json",
                "--message-format",
                "json",
            ],
        ),
        root.path(),
    );
    assert_eq!(r.code, 0, "build failed:\n{}", r.stderr);
    // For scripts: one JSON line that says what was built and where it went.
    let built: Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    assert_eq!(built["reason"], "gwplugin-artifact");
    assert_eq!(built["target"], target);
    assert_eq!(built["installed"], "[ROOT]/plugins/tenant.so");
    assert_eq!(
        built["exports"],
        json!([{"kind": "modifier", "name": "tenant"}])
    );
    assert_eq!(built["registered"]["config"], "[ROOT]/gateway.json");
    // What it left undone, for scripts as for people (none on a first registration).
    assert_eq!(built["registered"]["notes"], json!([]));
    let unplaceholder = |p: &str| {
        p.replace("[ROOT]", &root.path().display().to_string())
            .replace("[REPO]", &common::repo().display().to_string())
    };
    let artifact = std::fs::read(unplaceholder(built["plugin"].as_str().unwrap())).unwrap();
    let installed = std::fs::read(unplaceholder(built["installed"].as_str().unwrap())).unwrap();
    assert!(artifact == installed, "the installed copy is the artifact");
    assert!(
        r.stderr
            .contains("Registered `tenant` in `../gateway.json`"),
        "{}",
        r.stderr
    );
    let registered: Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(built["sha256"], registered["plugin"]["sha256"]["tenant.so"]);
    assert_eq!(
        registered["endpoints"][0]["extra_config"]["plugin/req-resp-modifier"]["name"],
        json!(["tenant"])
    );
    assert_eq!(
        registered["endpoints"][0]["extra_config"]["plugin/req-resp-modifier"]["tenant"],
        json!({"header": "x-tenant", "value": "acme"})
    );
    // A copy goes into a folder beside the config, named relatively: the config does
    // not load from the target dir. The snippet stays with the build's output.
    assert_eq!(registered["plugin"]["folder"], json!("plugins"));
    let folder = root.path().join("plugins");
    let so = folder.join("tenant.so");
    assert!(
        r.stderr.contains("Installed `[ROOT]/plugins/tenant.so`"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 1);
    let facts = gwplugin_build::elf::facts(&std::fs::read(&so).unwrap()).unwrap();
    assert_eq!(facts.machine, target.split('-').next().unwrap());

    // A config the plugin cannot go into (`--out-dir` elsewhere than its folder), found
    // before the build: the plugin that the registered config loads is left as it was,
    // and no snippet is written.
    let elsewhere = root.path().join("elsewhere.json");
    let mut other = registered.clone();
    other["plugin"] = json!({"folder": "other-plugins"});
    std::fs::write(&elsewhere, other.to_string()).unwrap();
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&so);
    let mut args = vec![
        "build",
        "--target",
        target,
        "--host",
        host.to_str().unwrap(),
    ];
    let out_dir = folder.to_str().unwrap();
    let mut conflicting = args.clone();
    conflicting.extend([
        "--out-dir",
        out_dir,
        "--register",
        elsewhere.to_str().unwrap(),
    ]);
    let r = run(gwplugin(&plugin, &conflicting), root.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("its `plugin.folder` is `other-plugins`")
            && !r.stderr.contains("Verified"),
        "{}",
        r.stderr
    );
    assert_eq!(inode(&so), before, "plugin replaced");
    assert!(!folder.join("tenant.gwplugin.json").exists());
    assert_eq!(
        std::fs::read_to_string(&elsewhere).unwrap(),
        other.to_string()
    );
    assert!(!root.path().join("other-plugins").exists());
    // An `--out-dir` not there yet: refused as well, and not made.
    let new_dir = root.path().join("not-made");
    let mut conflicting = args.clone();
    conflicting.extend([
        "--out-dir",
        new_dir.to_str().unwrap(),
        "--register",
        elsewhere.to_str().unwrap(),
    ]);
    let r = run(gwplugin(&plugin, &conflicting), root.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        !new_dir.exists(),
        "a refused --register made `{}`",
        new_dir.display()
    );

    // A config named relatively, whose folder `--out-dir` names and which is not made yet:
    // the same folder (it was compared as a relative path against an absolute one).
    std::fs::create_dir(root.path().join("rel")).unwrap();
    let mut relative = registered.clone();
    relative["plugin"] = json!({"folder": "rel-plugins", "pattern": ".so"});
    std::fs::write(root.path().join("rel/gateway.json"), relative.to_string()).unwrap();
    let rel_out = root.path().join("rel/rel-plugins");
    let mut same = args.clone();
    same.extend([
        "--out-dir",
        rel_out.to_str().unwrap(),
        "--register",
        "../rel/gateway.json",
    ]);
    let r = run(gwplugin(&plugin, &same), root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(rel_out.join("tenant.so").is_file());

    // Without `--out-dir` the plugin goes where the config's folder is, made if need be;
    // a conflict there removes the folder it made.
    std::fs::create_dir(root.path().join("fresh")).unwrap();
    let fresh = root.path().join("fresh/gateway.json");
    let mut unmatched = registered.clone();
    unmatched["plugin"] = json!({"pattern": ".dylib"});
    std::fs::write(&fresh, unmatched.to_string()).unwrap();
    args.extend(["--register", fresh.to_str().unwrap()]);
    let r = run(gwplugin(&plugin, &args), root.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("does not match its `plugin.pattern` `.dylib`"),
        "{}",
        r.stderr
    );
    assert!(!root.path().join("fresh/plugins").exists());
    assert_eq!(
        std::fs::read_to_string(&fresh).unwrap(),
        unmatched.to_string()
    );

    let mut cmd = Command::new(launcher.first().copied().unwrap_or(host.to_str().unwrap()));
    if !launcher.is_empty() {
        cmd.args(&launcher[1..]).arg(host);
    }
    cmd.args(["run", "-c"]).arg(&config);
    let _gw = start(cmd, port);
    let (status, headers, body) = get(port, "/users/7");
    assert!(status.ends_with("200 OK"), "{status}\n{headers}\n{body}");
    assert!(headers.contains("x-modified-by: tenant"), "{headers}");
    let echoed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["uri"], "/api/users/7");
    assert_eq!(
        echoed["headers"]["x-tenant"], "acme",
        "the backend saw the request the plugin changed"
    );
}

#[test]
fn musl_plugin_in_a_musl_gwhost_under_the_musl_loader() {
    let root = tempdir();
    let host = host_for(MUSL, root.path());
    let facts = gwplugin_build::elf::facts(&std::fs::read(&host).unwrap()).unwrap();
    assert_eq!(
        facts.interpreter.as_deref(),
        Some("/lib/ld-musl-x86_64.so.1")
    );
    assert_eq!(
        facts.needed,
        ["libc.so"],
        "a genuine musl binary: no glibc, no libgcc_s"
    );
    end_to_end(MUSL, &host, &["/lib/ld-musl-x86_64.so.1"]);

    // And the same musl plugin, given to a glibc gwhost, is refused before dlopen.
    refused_by_this_machines_gwhost(
        root.path(),
        MUSL,
        "links musl (NEEDED libc.so), this host uses glibc",
    );
}

#[test]
fn aarch64_plugin_in_an_aarch64_gwhost_under_qemu() {
    let root = tempdir();
    let host = host_for(AARCH64, root.path());
    end_to_end(
        AARCH64,
        &host,
        &["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"],
    );

    // The aarch64 plugin, given to this machine's x86_64 gwhost: refused before dlopen.
    refused_by_this_machines_gwhost(
        root.path(),
        AARCH64,
        "built for aarch64, this host is x86_64",
    );
}

#[test]
fn test_sends_the_sample_request_with_its_headers() {
    common::cargo(&common::repo(), &["build", "-p", "gwhost"]);
    let gwhost = common::target_dir().join("debug/gwhost");
    let so = gwplugin_e2e::build_fixture("all-kinds");
    let root = tempdir();
    // The fixture's modifier fails with the status `x-reject` names.
    // `cargo gwplugin test [KINDS] --request 'PUT /x' -H 'x-reject: 418'` on the fixture.
    let rejected = |kinds: &[&str]| {
        let (gwhost, so) = (gwhost.display().to_string(), so.display().to_string());
        let args = [
            &["test"][..],
            kinds,
            &[
                "--gwhost",
                &gwhost,
                "--request",
                "PUT /x",
                "-H",
                "x-reject: 418",
                &so,
            ],
        ]
        .concat();
        run(gwplugin(root.path(), &args), root.path())
    };
    let r = rejected(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    // With `-s`, only the http-server plugins: the modifier that refuses is not run.
    let servers = rejected(&["-s"]);
    assert_eq!(servers.code, 0, "{}\n{}", servers.stdout, servers.stderr);
    assert!(
        servers
            .stdout
            .lines()
            .filter(|l| l.starts_with("[OK]"))
            .count()
            > 0
            && servers
                .stdout
                .lines()
                .filter(|l| l.starts_with("["))
                .all(|l| l.contains("(http-server)")),
        "{}",
        servers.stdout
    );
    // gwhost refusing its arguments is a usage error here too.
    let refused = run(
        gwplugin(
            root.path(),
            &[
                "test",
                "--gwhost",
                &gwhost.display().to_string(),
                "--config",
                "not json",
                &so.display().to_string(),
            ],
        ),
        root.path(),
    );
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("error: bad `--config` `not json`")
            && refused
                .stderr
                .contains("help: fix the argument gwhost's message above names"),
        "{}",
        refused.stderr
    );
    assert!(
        r.stdout.lines().any(|l| l.starts_with("[KO] stamp-modifier (modifier) in ")
            && l.ends_with("libfixture_all_kinds.so: PUT /x -> 418 I'm a teapot: rejected by stamp-modifier")),
        "{}",
        r.stdout
    );
    // A body goes with it: the fixture's modifier wants one when asked to.
    let with_body = run(
        gwplugin(
            root.path(),
            &[
                "test",
                "--gwhost",
                &gwhost.display().to_string(),
                "--request",
                "POST /x",
                "-H",
                "x-require-body: 411",
                "-d",
                "a=1",
                // Passed on to gwhost's `test-plugin`.
                "--timeout",
                "5s",
                &so.display().to_string(),
            ],
        ),
        root.path(),
    );
    assert!(
        with_body
            .stdout
            .lines()
            .any(|l| l.starts_with("[OK] stamp-modifier (modifier) in ")
                && l.ends_with("libfixture_all_kinds.so: registered, created, POST /x -> 200 OK")),
        "{}",
        with_body.stdout
    );
}

#[test]
fn test_gives_each_plugin_of_a_crate_its_own_default_config() {
    common::cargo(&common::repo(), &["build", "-p", "gwhost"]);
    let gwhost = common::target_dir().join("debug/gwhost");
    let so = gwplugin_e2e::build_fixture("all-kinds");
    let manifest = common::repo().join("fixtures/plugins/all-kinds/Cargo.toml");
    let root = tempdir();
    // `cargo gwplugin test FILE` from the all-kinds crate.
    let test = |file: &Path| {
        let args = [
            "test",
            "--manifest-path",
            manifest.to_str().unwrap(),
            "--gwhost",
            gwhost.to_str().unwrap(),
            file.to_str().unwrap(),
        ];
        run(gwplugin(root.path(), &args), root.path())
    };
    let r = test(&so);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // `services-client` needs a `backend`: its default from Cargo.toml is its alone.
    let so = so
        .display()
        .to_string()
        .replace(&common::repo().display().to_string(), "[REPO]");
    assert_eq!(
        r.stdout,
        format!(
            "[OK] stamp-server (http-server) in {so}: registered\n\
             [OK] services-client (http-client) in {so}: registered, created\n\
             [OK] stamp-modifier (modifier) in {so}: registered\n\
             test-plugin: 3 passed, 0 failed\n"
        )
    );
    // Another crate's file, tested from this crate: no default goes to a plugin it lacks.
    let r = test(&gwplugin_e2e::build_fixture("order"));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("--config"), "{}", r.stderr);
}

/// `cargo gwplugin test` with this machine's (x86_64 glibc) gwhost on the `tenant`
/// plugin built for `target`: a `[KO]` line with `why`, exit 1.
#[test]
fn a_feature_the_build_turns_on_counts_in_the_plugins_manifest() {
    // Recorded as the package's default features whatever the build's: a plugin feature
    // that turned on `serde_json/preserve_order` (another layout of `serde_json::Map`,
    // the plugin's config type) was built in, not recorded, and the plugin loaded.
    let root = tempdir();
    let dir = scaffold(root.path(), "featured", "modifier");
    add_dependencies(
        &dir,
        "serde_json = \"1\"\n\n[features]\nordered = [\"serde_json/preserve_order\"]",
    );
    let r = run(gwplugin(&dir, &["sync"]), root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    // `check` takes cargo's feature flags, and says so before any build.
    let r = run(gwplugin(&dir, &["check"]), root.path());
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for flags in [&["--features", "ordered"][..], &["--all-features"]] {
        let r = run(
            gwplugin(&dir, &[&["check"][..], flags].concat()),
            root.path(),
        );
        assert_eq!(r.code, 1, "{flags:?}: {}\n{}", r.stdout, r.stderr);
        assert!(
            r.stdout.starts_with("crate serde_json features\n"),
            "{}",
            r.stdout
        );
        // The plugin has one the host lacks: not "enable the host's features".
        assert!(
            r.stdout.contains("    help: the plugin turns on alloc, indexmap, preserve_order (one of its dependencies, or a feature of its own), which the host's copy lacks"),
            "{}",
            r.stdout
        );
    }
    let r = run(
        gwplugin(&dir, &["build", "--features", "ordered"]),
        root.path(),
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let report = format!("{}{}", r.stdout, r.stderr);
    assert!(
        report.contains("crate serde_json features") && report.contains("preserve_order"),
        "{report}"
    );
    // `--no-check` builds it, and says what the host will refuse (it gave a count only).
    let r = run(
        gwplugin(&dir, &["build", "--no-check", "--features", "ordered"]),
        root.path(),
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("warning: built with `--no-check`: host ")
            && r.stderr
                .contains("will refuse this plugin:\ncrate serde_json features\n"),
        "{}",
        r.stderr
    );
    let r = run(gwplugin(&dir, &["build"]), root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A dependency's feature on the command line: built in, but no build script sees it.
    let r = run(
        gwplugin(&dir, &["build", "-F", "serde_json/preserve_order"]),
        root.path(),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.starts_with(
            "error: feature `serde_json/preserve_order` of a dependency, given on the command line"
        ),
        "{}",
        r.stderr
    );
    // Nor after `--`, where they went to cargo unseen (gwhost then refused the file).
    for after in [
        &["--features", "serde_json/preserve_order"][..],
        &["--features=ordered"],
        &["--workspace"],
        &["-pother"],
        &["-vp", "other"],
        &["-qFordered"],
    ] {
        let r = run(
            gwplugin(&dir, &[&["build", "--"][..], after].concat()),
            root.path(),
        );
        assert_eq!(r.code, 2, "{after:?}: {}", r.stderr);
        assert!(
            r.stderr.starts_with(&format!(
                "error: `{}` after `--` would build the plugin with features or beside packages its manifest does not record\nhelp: give features as `cargo gwplugin build` options",
                after[0]
            )),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn a_plugin_whose_profile_aborts_on_panic_does_not_build() {
    // A profile's `panic` is not what a build script sees (`CARGO_CFG_PANIC` stays
    // "unwind"): the manifest said "unwind", `build` and gwhost passed the plugin, and its
    // first panic ended the gateway.
    let root = tempdir();
    let dir = scaffold(root.path(), "aborts", "modifier");
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        format!("{text}\n[profile.dev]\npanic = \"abort\"\n"),
    )
    .unwrap();
    // `check` says so before any build (it said "no incompatibilities"), and `build`
    // refuses before building.
    for args in [&["check"][..], &["build"]] {
        let r = run(gwplugin(&dir, args), root.path());
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stdout.starts_with(
                "panic\n    have: abort (`[profile.dev]` of `[ROOT]/aborts/Cargo.toml`)\n    \
                 want: unwind\n    help: remove it from `[profile.dev]` of"
            ),
            "{args:?}: {}",
            r.stdout
        );
    }
    let r = run(gwplugin(&dir, &["build", "--no-check"]), root.path());
    assert_eq!(r.code, 101, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "error: gwplugin needs `panic = \"unwind\"`: with `panic = \"abort\"` a panic in a \
             plugin ends the whole gateway instead of failing one request."
        ),
        "{}",
        r.stderr
    );
    // A profile no build takes it from is none of `check`'s business (`bench` ignores it;
    // `build` of a custom profile that sets `unwind` over an inherited abort is fine).
    std::fs::write(
        &manifest,
        format!(
            "{text}\n[profile.bench]\npanic = \"abort\"\n[profile.release]\npanic = \"abort\"\n\
             [profile.ci]\ninherits = \"release\"\npanic = \"unwind\"\n"
        ),
    )
    .unwrap();
    let r = run(gwplugin(&dir, &["build", "--profile", "ci"]), root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(gwplugin(&dir, &["check"]), root.path());
    assert!(
        r.stdout
            .starts_with("panic\n    have: abort (`[profile.release]` of "),
        "{}",
        r.stdout
    );
    // What the environment says outranks the manifest, as for cargo; and rustflags that
    // make a file no gateway loads are told before the build too.
    let mut cmd = gwplugin(&dir, &["check"]);
    cmd.env("CARGO_PROFILE_RELEASE_PANIC", "unwind")
        .env("RUSTFLAGS", "-C prefer-dynamic");
    let r = run(cmd, root.path());
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout.starts_with(
            "std\n    have: linked dynamically (`-C prefer-dynamic` in the rustflags)\n"
        ),
        "{}",
        r.stdout
    );
    let mut cmd = gwplugin(&dir, &["check"]);
    cmd.env("CARGO_PROFILE_RELEASE_PANIC", "unwind")
        .env("CARGO_PROFILE_DEV_PANIC", "abort");
    let r = run(cmd, root.path());
    assert!(
        r.stdout
            .starts_with("panic\n    have: abort (`CARGO_PROFILE_DEV_PANIC`)\n"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_build_script_that_stops_writing_the_manifest_fails_the_build() {
    // `export!` embedded whatever `gwplugin-abi.bin` an earlier build script had left in
    // `OUT_DIR`: with `plugin()` dropped from build.rs and `bytes` moved, the plugin
    // carried its old manifest, passed `build --no-check` and gwhost's check, and its
    // first request aborted the gateway.
    let root = tempdir();
    let dir = scaffold(root.path(), "stale", "modifier");
    let r = run(gwplugin(&dir, &["build"]), root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::write(
        dir.join("build.rs"),
        "fn main() {\n    println!(\"cargo::rerun-if-changed=build.rs\");\n}\n",
    )
    .unwrap();
    let r = run(gwplugin(&dir, &["build", "--no-check"]), root.path());
    assert_eq!(r.code, 101, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "gwplugin: no ABI manifest for this build: the crate's build.rs must call \
             `gwplugin_build::plugin()`"
        ),
        "{}",
        r.stderr
    );

    // Nor with a path another crate's build handed down (`cargo run` and `cargo test`
    // pass a crate's `rustc-env` values to what they run).
    let elsewhere = root.path().join("elsewhere.bin");
    std::fs::write(&elsewhere, b"stale").unwrap();
    let mut inherited = gwplugin(&dir, &["build", "--no-check"]);
    inherited.env("GWPLUGIN_ABI_RECORD", &elsewhere);
    let r = run(inherited, root.path());
    assert_eq!(r.code, 101, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("gwplugin: the ABI manifest path was not set by this crate's build script"),
        "{}",
        r.stderr
    );

    // A library without `export!`: no host would load it; the help said "a bug in the
    // target setup: please report it".
    std::fs::write(
        dir.join("build.rs"),
        "fn main() {\n    gwplugin_build::plugin();\n}\n",
    )
    .unwrap();
    let lib = dir.join("src/lib.rs");
    let code = std::fs::read_to_string(&lib).unwrap();
    let without = code.replace(
        "gwplugin::export! {\n    modifier \"stale\" => SetHeader::from_config,\n}\n",
        "",
    );
    assert_ne!(without, code);
    std::fs::write(&lib, without).unwrap();
    let r = run(gwplugin(&dir, &["build"]), root.path());
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "/libstale.so` would not load in any host: it has no gwplugin ABI manifest: the crate \
             does not call `gwplugin::export!`\nhelp: name the library's plugins in its lib.rs"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn a_default_config_under_a_name_not_exported_is_warned_about() {
    // A plugin renamed in `export!`, its config table not: it was registered with `{}`,
    // which `test` passed and gwhost refused, and nothing said why.
    let root = tempdir();
    let dir = scaffold(root.path(), "ren", "modifier");
    let lib = dir.join("src/lib.rs");
    let code = std::fs::read_to_string(&lib).unwrap();
    let renamed = code.replace("modifier \"ren\" =>", "modifier \"tenant\" =>");
    assert_ne!(renamed, code);
    std::fs::write(&lib, &renamed).unwrap();
    let r = run(gwplugin(&dir, &["build"]), root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "warning: `[package.metadata.gwplugin.config.ren]` names no plugin this library exports (`tenant`): it is not used\nhelp: name the table after the plugin"
        ),
        "{}",
        r.stderr
    );

    // `--color` holds for the lines of the cargo it runs too, over `CARGO_TERM_COLOR`.
    let mut never = gwplugin(&dir, &["build", "--color", "never"]);
    never.env("CARGO_TERM_COLOR", "always");
    let r = run(never, root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("Finished") && !r.stderr.contains('\x1b'),
        "{}",
        r.stderr
    );
    let r = run(gwplugin(&dir, &["build", "--color", "always"]), root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("\x1b[1m\x1b[92m    Finished"),
        "{:?}",
        r.stderr
    );
    // One passed on to cargo is cargo's to take (twice was a usage error).
    let r = run(
        gwplugin(
            &dir,
            &["build", "--color", "always", "--", "--color", "never"],
        ),
        root.path(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("    Finished `dev`") && !r.stderr.contains("\x1b[92m    Finished"),
        "{:?}",
        r.stderr
    );

    // Sources changed since (or a refused build left the old file): `test` runs the file
    // it finds, and says it is not a build of them.
    common::cargo(&common::repo(), &["build", "-p", "gwhost"]);
    let gwhost = common::target_dir().join("debug/gwhost");
    let gwhost = gwhost.to_str().unwrap();
    let r = run(gwplugin(&dir, &["test", "--gwhost", gwhost]), root.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("older than"), "{}", r.stderr);
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&lib, format!("{renamed}\n")).unwrap();
    let r = run(gwplugin(&dir, &["test", "--gwhost", gwhost]), root.path());
    assert!(
        r.stderr.contains("/ren.so` is older than the crate's sources: it is not a build of them as they are\nhelp: run `cargo gwplugin build` first\n"),
        "{}",
        r.stderr
    );
}

fn refused_by_this_machines_gwhost(root: &Path, target: &str, why: &str) {
    common::cargo(&common::repo(), &["build", "-p", "gwhost"]);
    let gwhost = common::target_dir().join("debug/gwhost");
    let so = common::target_dir()
        .join("gwplugin")
        .join(target)
        .join("tenant.so");
    let r = run(
        gwplugin(
            root,
            &[
                "test",
                "--gwhost",
                &gwhost.display().to_string(),
                &so.display().to_string(),
            ],
        ),
        root,
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(why), "{}", r.stdout);
}

#[test]
fn a_missing_linker_or_rust_target_is_one_clear_message() {
    let root = tempdir();
    let plugin = scaffold(root.path(), "lonely", "modifier");
    let out_dir = root.path().join("out");
    let rustc = String::from_utf8(
        Command::new("rustup")
            .args(["which", "rustc"])
            .current_dir(&plugin)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();

    // No musl-gcc on PATH.
    let mut cmd = gwplugin(
        &plugin,
        &[
            "build",
            "--no-check",
            "--target",
            MUSL,
            "--out-dir",
            &out_dir.display().to_string(),
        ],
    );
    cmd.env("PATH", root.path().join("empty-bin"))
        .env("RUSTC", rustc.trim());
    let r = run(cmd, root.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.ends_with(&format!(
            "error: linker `musl-gcc` for `{MUSL}` is not installed\nhelp: run `apt-get install -y musl-tools`\n"
        )),
        "{}",
        r.stderr
    );
    assert!(!out_dir.exists(), "nothing presented as done");

    // A toolchain without the target's standard library.
    let fake_sysroot = root.path().join("sysroot");
    std::fs::create_dir_all(&fake_sysroot).unwrap();
    let wrapper = root.path().join("rustc-without-targets");
    gwplugin_e2e::write_executable(
        &wrapper,
        &format!(
            "#!/bin/sh\nif [ \"$1\" = --print ] && [ \"$2\" = sysroot ]; then echo '{}'; else exec '{}' \"$@\"; fi\n",
            fake_sysroot.display(),
            rustc.trim()
        ),
    );
    let mut cmd = gwplugin(
        &plugin,
        &[
            "build",
            "--no-check",
            "--target",
            AARCH64,
            "--out-dir",
            &out_dir.display().to_string(),
        ],
    );
    cmd.env("RUSTC", &wrapper);
    let r = run(cmd, root.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.ends_with(&format!(
            "error: the Rust standard library for `{AARCH64}` is not installed in toolchain `sysroot`\nhelp: run `rustup target add {AARCH64} --toolchain sysroot`\n"
        )),
        "{}",
        r.stderr
    );

    let r = run(
        gwplugin(
            &plugin,
            &[
                "build",
                "--no-check",
                "--target",
                "riscv64gc-unknown-linux-gnu",
            ],
        ),
        root.path(),
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.ends_with(
            "error: target `riscv64gc-unknown-linux-gnu` is not supported\nhelp: pass one of: x86_64-unknown-linux-gnu, x86_64-unknown-linux-musl, aarch64-unknown-linux-gnu\n"
        ),
        "{}",
        r.stderr
    );
    assert!(!out_dir.exists());
}
