//! The loader against real plugins: each kind runs, host services work, panics are
//! contained, and every incompatible or broken file is refused before dlopen.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use gwplugin::abi::ErasedHandler;
use gwplugin::http::{Request, StatusCode};
use gwplugin::{Body, BoxFuture, Error, Response};
use gwplugin_e2e::{
    Build, build_fixture, build_plugin, cargo_in, copy_fixture, copy_fixture_beside_preserve_order,
    start_backend, workspace_root,
};
use gwplugin_host::{
    FailurePolicy, LoadError, Loader, LoaderConfig, LookupError, TokioHostServices,
};
use serde_json::json;
use sha2::{Digest, Sha256};

fn host_record() -> &'static [u8] {
    gwplugin_host::host_manifest!()
}

/// Log lines of this process, captured by the one global subscriber.
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || CaptureWriter(writer.clone()))
            .init();
        buf
    })
}

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for CaptureWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn loader() -> Loader {
    captured_logs();
    Loader::new(host_record(), TokioHostServices::current()).expect("host manifest decodes")
}

fn all_kinds() -> &'static PathBuf {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| build_fixture("all-kinds"))
}

struct HostRouter;
impl ErasedHandler for HostRouter {
    fn call(&self, req: gwplugin::Request) -> BoxFuture<'_, Result<Response, Error>> {
        let seen = req
            .headers()
            .get("x-modified")
            .map(|v| v.to_str().unwrap().to_owned());
        Box::pin(async move {
            Ok(gwplugin::http::Response::builder()
                .header("x-router-saw", seen.unwrap_or_default())
                .body(Body::from("from host"))
                .unwrap())
        })
    }
}

fn get(uri: &str) -> gwplugin::Request {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_kind_runs_from_a_loaded_library() {
    let mut loader = loader();
    loader.load_file(all_kinds(), None).expect("fixture loads");
    let registry = loader.registry();
    let names: Vec<String> = registry
        .iter()
        .map(|p| format!("{} {}", p.name, p.kind))
        .collect();
    assert_eq!(
        names,
        [
            "services-client http-client",
            "stamp-modifier modifier",
            "stamp-server http-server"
        ]
    );

    // modifier
    let modifier = registry
        .create_modifier("stamp-modifier", &json!({"value": "m1"}))
        .unwrap();
    let mut req = get("/x");
    modifier.modify_request(&mut req).unwrap();
    assert_eq!(req.headers()["x-modified"], "m1");
    let mut rejected = get("/x");
    rejected
        .headers_mut()
        .insert("x-reject", "429".parse().unwrap());
    assert_eq!(
        modifier.modify_request(&mut rejected).unwrap_err().status(),
        Some(StatusCode::TOO_MANY_REQUESTS)
    );
    // A response body allocated by the plugin, freed by the host.
    let mut resp = gwplugin::http::Response::builder()
        .header("x-replace-body", "1")
        .body(Body::from("original"))
        .unwrap();
    modifier.modify_response(&mut resp).unwrap();
    let body = resp.into_body().collect().await.unwrap();
    assert!(body.starts_with(b"replaced by plugin: xxx"));

    // http-server wrapping a host handler
    let server = registry
        .create_server("stamp-server", &json!({"tag": "t1"}), Arc::new(HostRouter))
        .unwrap();
    let resp = server.call(get("/")).await.unwrap();
    assert_eq!(resp.headers()["x-server-plugin"], "t1");
    assert_eq!(resp.into_body().collect().await.unwrap(), "from host");

    // config errors come back as errors
    let err = registry
        .create_client("services-client", &json!({}))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "plugin `services-client` rejected its config: services-client: config needs `backend` (a URL)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn host_services_sleep_spawn_call_backends_and_log() {
    let backend = start_backend().await;
    let mut loader = loader();
    loader.load_file(all_kinds(), None).unwrap();
    let client = loader
        .registry()
        .create_client(
            "services-client",
            &json!({"backend": backend.url(), "sleep_ms": 50}),
        )
        .unwrap();

    let started = Instant::now();
    let resp = client
        .call(get("/users/7?q=1"))
        .await
        .expect("client plugin answers");
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "slept on the host timer"
    );
    assert_eq!(resp.headers()["x-slept-ms"], "50");
    let echoed: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap()).unwrap();
    assert_eq!(echoed["uri"], "/users/7?q=1");

    let deadline = Instant::now() + Duration::from_secs(5);
    while backend.spawned_hits() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        backend.spawned_hits(),
        1,
        "the task the plugin spawned ran on the host runtime"
    );

    let logs = String::from_utf8(captured_logs().lock().unwrap().clone()).unwrap();
    let line = logs
        .lines()
        .find(|l| l.contains("calling backend"))
        .expect("plugin log line in the host log");
    assert!(
        line.contains("INFO") && line.contains("plugin=\"fixture-all-kinds\""),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn panics_in_every_entry_are_contained() {
    let backend = start_backend().await;
    let mut loader = loader();
    loader.load_file(all_kinds(), None).unwrap();
    let registry = loader.registry();
    let modifier = registry
        .create_modifier("stamp-modifier", &json!({}))
        .unwrap();
    let server = registry
        .create_server("stamp-server", &json!({}), Arc::new(HostRouter))
        .unwrap();
    let client = registry
        .create_client("services-client", &json!({"backend": backend.url()}))
        .unwrap();

    let panicking = |place: &str| {
        let mut req = get("/");
        req.headers_mut().insert("x-panic", place.parse().unwrap());
        req
    };
    for i in 0..1000 {
        let err = match i % 4 {
            0 => modifier
                .modify_request(&mut panicking("modifier"))
                .unwrap_err(),
            1 => {
                let mut resp = gwplugin::http::Response::builder()
                    .header("x-panic", "response")
                    .body(Body::empty())
                    .unwrap();
                modifier.modify_response(&mut resp).unwrap_err()
            }
            2 => server.call(panicking("server")).await.unwrap_err(),
            _ => client.call(panicking("client")).await.unwrap_err(),
        };
        assert!(err.is_panic(), "call {i}: {err}");
        assert_eq!(err.status(), None, "a panic is a 500");
    }
    let err = modifier
        .modify_request(&mut panicking("modifier"))
        .unwrap_err();
    assert!(err.message().starts_with("plugin panicked at "), "{err}");
    assert!(
        err.message()
            .ends_with("modifier plugin panicked on demand"),
        "{err}"
    );
    // A factory that panics is an error too.
    let err = registry
        .create_server(
            "stamp-server",
            &json!({"panic": true}),
            Arc::new(HostRouter),
        )
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("stamp-server factory panicked on demand"),
        "{err}"
    );
    // And the plugin still works afterwards.
    assert_eq!(
        server.call(get("/")).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kind_mismatch_and_unknown_names_are_clear() {
    let mut loader = loader();
    loader.load_file(all_kinds(), None).unwrap();
    let err = loader
        .registry()
        .http_client("stamp-modifier")
        .err()
        .unwrap();
    assert!(matches!(err, LookupError::WrongKind { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "plugin `stamp-modifier` (from `{}`) is a modifier plugin, but `plugin/http-client` needs a http-client plugin",
            all_kinds().display()
        )
    );
    let err = loader.registry().modifier("nope").err().unwrap();
    assert_eq!(
        err.to_string(),
        "unknown plugin `nope` for `plugin/req-resp-modifier`: loaded ones are `stamp-modifier`"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_registered_twice_names_both_files() {
    let dup = build_fixture("duplicate");
    let mut loader = loader();
    loader.load_file(all_kinds(), None).unwrap();
    let err = loader.load_file(&dup, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "plugin name `stamp-modifier` is registered twice: by `{}` and by `{}`",
            all_kinds().display(),
            dup.display()
        )
    );
}

fn refusal(path: &Path, sha: Option<&str>) -> LoadError {
    let mut loader = Loader::new(host_record(), TokioHostServices::current()).unwrap();
    let err = loader.load_file(path, sha).expect_err("must be refused");
    assert!(loader.registry().is_empty(), "nothing registered");
    err
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_files_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.so");
    std::fs::write(&text, "just text").unwrap();
    assert_eq!(
        refusal(&text, None).to_string(),
        format!("plugin `{}`: not an ELF shared object", text.display())
    );

    let bytes = std::fs::read(all_kinds()).unwrap();
    let truncated = dir.path().join("truncated.so");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let msg = refusal(&truncated, None).to_string();
    assert!(
        msg.starts_with(&format!("plugin `{}`: ", truncated.display()))
            && (msg.contains("truncated") || msg.contains("malformed")),
        "{msg}"
    );

    let mut aarch64 = bytes.clone();
    aarch64[18..20].copy_from_slice(&183u16.to_le_bytes()); // e_machine = EM_AARCH64
    let arm = dir.path().join("arm.so");
    std::fs::write(&arm, &aarch64).unwrap();
    assert_eq!(
        refusal(&arm, None).to_string(),
        format!(
            "plugin `{}`: built for aarch64, this host is x86_64",
            arm.display()
        )
    );

    // The same file, saying (in its NEEDED list) that it links libstd dynamically, as
    // `-C prefer-dynamic` makes it: `dlopen` failed with "cannot open shared object".
    let find = |hay: &[u8], needle: &[u8]| {
        hay.windows(needle.len())
            .position(|w| w == needle)
            .unwrap_or_else(|| panic!("{} not in the file", String::from_utf8_lossy(needle)))
    };
    let mut dynamic = bytes.clone();
    let at = find(&dynamic, b"libgcc_s.so.1\0");
    dynamic[at..at + 13].copy_from_slice(b"libstd-abc.so");
    let dynamic_std = dir.path().join("dynamic-std.so");
    std::fs::write(&dynamic_std, &dynamic).unwrap();
    assert_eq!(
        refusal(&dynamic_std, None).to_string(),
        format!(
            "plugin `{}`: links the Rust standard library dynamically (NEEDED libstd-abc.so, `-C prefer-dynamic`), which no gateway has beside it",
            dynamic_std.display()
        )
    );
    // And one whose `.comment` names another compiler than its manifest (a `RUSTC_WRAPPER`
    // that ran another, or a manifest another build left): it passed, then crashed.
    let mut other = bytes.clone();
    let at = find(&other, b"rustc version 1.") + b"rustc version 1.".len();
    other[at] = if other[at] == b'9' { b'8' } else { b'9' };
    let other_compiler = dir.path().join("other-compiler.so");
    std::fs::write(&other_compiler, &other).unwrap();
    let msg = refusal(&other_compiler, None).to_string();
    assert!(
        msg.contains(": its ABI manifest says rustc ")
            && msg.contains(
                "built it: the manifest does not describe this file, refused before loading"
            ),
        "{msg}"
    );

    let plain = build_fixture("plain-cdylib");
    assert_eq!(
        refusal(&plain, None).to_string(),
        format!(
            "plugin `{}`: no gwplugin ABI manifest (symbol `GWPLUGIN_ABI_MANIFEST` missing): not built with `gwplugin::export!` and `gwplugin_build::plugin()`",
            plain.display()
        )
    );

    let actual = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let wrong = "0".repeat(64);
    assert_eq!(
        refusal(all_kinds(), Some(&wrong)).to_string(),
        format!(
            "plugin `{}`: checksum mismatch: configured sha256 {wrong}, file has {actual}",
            all_kinds().display()
        )
    );
    let mut loader = loader();
    loader
        .load_file(all_kinds(), Some(&actual.to_uppercase()))
        .expect("the right checksum loads");
}

#[tokio::test(flavor = "multi_thread")]
async fn folder_scan_follows_pattern_order_and_failure_policy() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(all_kinds(), dir.path().join("b-good.so")).unwrap();
    std::fs::write(dir.path().join("a-broken.so"), "not a plugin").unwrap();
    std::fs::write(dir.path().join("readme.txt"), "ignored: no match").unwrap();
    std::fs::copy(all_kinds(), dir.path().join(".hidden.so")).unwrap();
    let mut config = LoaderConfig {
        folder: dir.path().to_owned(),
        pattern: ".so".into(),
        ..Default::default()
    };
    assert_eq!(
        gwplugin_host::candidates(&config).unwrap(),
        [dir.path().join("a-broken.so"), dir.path().join("b-good.so")]
    );

    let err = loader().load_folder(&config).unwrap_err();
    assert!(
        err.to_string()
            .contains("a-broken.so`: not an ELF shared object"),
        "{err}"
    );

    config.on_failure = FailurePolicy::Skip;
    let mut loader = loader();
    let report = loader.load_folder(&config).unwrap();
    assert_eq!(report.loaded, [dir.path().join("b-good.so")]);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(loader.registry().len(), 3);
    assert_logged(&["WARN", "plugin skipped", "a-broken.so"]);

    // Checksums list the approved plugins: the files they do not name stay unloaded.
    let good = format!("{:x}", Sha256::digest(std::fs::read(all_kinds()).unwrap()));
    std::fs::copy(all_kinds(), dir.path().join("c-unlisted.so")).unwrap();
    config.sha256.insert("b-good.so".into(), good);
    config.on_failure = FailurePolicy::Fail;
    let report = loader_for_err().load_folder(&config).unwrap();
    assert_eq!(report.loaded, [dir.path().join("b-good.so")]);
    assert_eq!(
        report.unlisted,
        [
            dir.path().join("a-broken.so"),
            dir.path().join("c-unlisted.so")
        ]
    );
    assert_logged(&["WARN", "`plugin.sha256` does not list it", "c-unlisted.so"]);

    config.sha256.insert("missing.so".into(), "00".into());
    let err = loader_for_err().load_folder(&config).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("`plugin.sha256` names `missing.so`, but there is no such file in"),
        "{err}"
    );
    // A file that is there but never a candidate is told apart from a missing one.
    for (name, why) in [
        (
            ".hidden.so",
            "a hidden file (its name starts with `.`) is never loaded from",
        ),
        (
            "notes.txt",
            "its name does not contain `plugin.pattern` (`.so`): it is not loaded from",
        ),
    ] {
        std::fs::write(dir.path().join(name), "x").unwrap();
        config.sha256 = [(name.to_owned(), "00".to_owned())].into();
        let err = loader_for_err().load_folder(&config).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "`plugin.sha256` names `{name}`, but {why} `{}`",
                dir.path().display()
            )
        );
    }
}

/// Asserts that one line of the host's captured log contains every one of `parts`.
fn assert_logged(parts: &[&str]) {
    let logs = String::from_utf8(captured_logs().lock().unwrap().clone()).unwrap();
    assert!(
        logs.lines().any(|l| parts.iter().all(|p| l.contains(p))),
        "no log line with all of {parts:?}:\n{logs}"
    );
}

fn loader_for_err() -> Loader {
    loader()
}

fn incompatible(path: &Path) -> Vec<String> {
    match refusal(path, None) {
        LoadError::Incompatible { diffs, .. } => diffs.iter().map(ToString::to_string).collect(),
        other => panic!("expected an ABI refusal, got: {other}"),
    }
}

/// A plain `cargo build` of a workspace whose other member turns on
/// `serde_json/preserve_order`: the plugin is compiled with it, its manifest (computed for
/// the plugin alone) does not say so, and the host would read its `serde_json::Map` (an
/// `IndexMap` there, a `BTreeMap` here) as its own. The layout record tells.
#[tokio::test(flavor = "multi_thread")]
async fn features_unified_in_from_another_member_are_refused_before_dlopen() {
    let dir = copy_fixture_beside_preserve_order("variant-unified");
    let manifest = dir.path().join("Cargo.toml");

    // The plugin alone, as `cargo gwplugin build` builds it: loads.
    let alone = build_plugin(&manifest, &Build::default()).unwrap();
    let mut loader = loader();
    loader
        .load_file(&alone, None)
        .expect("the plugin built alone loads");

    let build = Build {
        args: vec!["--workspace".into()],
        ..Default::default()
    };
    let unified = build_plugin(&manifest, &build).unwrap();
    let message = match refusal(&unified, None) {
        LoadError::Layout { diffs, .. } => {
            let types: Vec<_> = diffs.iter().map(|d| d.type_name).collect();
            assert!(types.contains(&"serde_json::Map"), "{types:?}");
            refusal(&unified, None).to_string()
        }
        other => panic!("expected a layout refusal, got: {other}"),
    };
    assert!(
        message.contains("laid out differently than in this host")
            && message.contains("serde_json::Map  have: "),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_compiler_is_refused_before_dlopen() {
    let dir = copy_fixture(
        "all-kinds",
        "variant-fake-rustc",
        &workspace_root().join("api"),
    );
    let real = String::from_utf8(
        std::process::Command::new("rustc")
            .args(["--print", "sysroot"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let wrapper = dir.path().join("fake-rustc");
    gwplugin_e2e::write_executable(
        &wrapper,
        &format!(
            "#!/bin/sh\nREAL='{}/bin/rustc'\nif [ \"$1\" = \"-vV\" ]; then \"$REAL\" -vV | sed -e 's/^release: .*/release: 1.95.1/'; else exec \"$REAL\" \"$@\"; fi\n",
            real.trim()
        ),
    );
    let build = Build {
        env: [("RUSTC".to_owned(), wrapper.display().to_string())].into(),
        ..Default::default()
    };
    let so = build_plugin(&dir.path().join("Cargo.toml"), &build).unwrap();
    let diffs = incompatible(&so);
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert!(
        diffs[0].starts_with("rustc  have: 1.95.1 (") && diffs[0].contains("want: 1.95.0 ("),
        "{diffs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_nightly_toolchain_is_refused() {
    let installed = std::process::Command::new("rustup")
        .args(["run", "nightly", "rustc", "-V"])
        .output();
    assert!(
        installed.is_ok_and(|o| o.status.success()),
        "no nightly toolchain: run `rustup toolchain install nightly --profile minimal` \
         (scripts/test.sh does)"
    );
    let dir = copy_fixture(
        "all-kinds",
        "variant-nightly",
        &workspace_root().join("api"),
    );
    let build = Build {
        toolchain: Some("nightly".into()),
        ..Default::default()
    };
    let so = build_plugin(&dir.path().join("Cargo.toml"), &build).unwrap();
    let diffs = incompatible(&so);
    assert!(
        diffs.iter().any(|d| d.starts_with("rustc  have: ")
            && d.contains("-nightly")
            && d.contains("want: 1.95.0")),
        "{diffs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_gwplugin_version_is_refused() {
    let api_copy = tempfile::tempdir().unwrap();
    let api = api_copy.path().join("api");
    std::fs::create_dir_all(api.join("src")).unwrap();
    for entry in std::fs::read_dir(workspace_root().join("api/src")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), api.join("src").join(entry.file_name())).unwrap();
    }
    std::fs::write(
        api.join("Cargo.toml"),
        "[package]\nname = \"gwplugin\"\nversion = \"0.1.1\"\nedition = \"2024\"\n\n[dependencies]\n\
         bytes = \"1\"\nhttp = \"1\"\nhttp-body = \"1\"\nlog = { version = \"0.4\", features = [\"std\"] }\nserde_json = \"1\"\n",
    )
    .unwrap();
    let dir = copy_fixture("all-kinds", "variant-gwplugin-011", &api);
    let so = build_plugin(
        &dir.path().join("Cargo.toml"),
        &Build {
            args: vec!["--offline".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let diffs = incompatible(&so);
    assert!(
        diffs
            .iter()
            .any(|d| d.starts_with("gwplugin  have: 0.1.1 (path, sources ")
                && d.contains("want: 0.1.0 (path, sources ")),
        "{diffs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_boundary_crate_version_is_refused() {
    let dir = copy_fixture(
        "all-kinds",
        "variant-old-bytes",
        &workspace_root().join("api"),
    );
    cargo_in(
        dir.path(),
        &["update", "-p", "bytes", "--precise", "1.10.0"],
    );
    let so = build_plugin(&dir.path().join("Cargo.toml"), &Build::default()).unwrap();
    let diffs = incompatible(&so);
    let host = gwplugin_build::decode_record(host_record()).unwrap();
    let host_bytes = host.boundary.iter().find(|c| c.name == "bytes").unwrap();
    assert_eq!(
        diffs,
        [format!(
            "crate bytes  have: 1.10.0  want: {}",
            host_bytes.version
        )]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_musl_plugin_is_refused_by_a_glibc_host() {
    // A genuine musl cdylib, built with the target setup `cargo gwplugin build` uses
    // (musl-gcc, -crt-static, the toolchain's libunwind as libgcc_s): see DESIGN.md.
    let dir = copy_fixture("all-kinds", "variant-musl", &workspace_root().join("api"));
    let musl = cargo_gwplugin::target::Target::X86_64Musl;
    let rustc = cargo_gwplugin::process::rustc_for(dir.path());
    let env =
        cargo_gwplugin::target::prepare(musl, &rustc, &gwplugin_e2e::target_dir().join("gwplugin"))
            .unwrap_or_else(|e| panic!("{e}\nhelp: {}", e.help().unwrap_or_default()));
    let build = Build {
        args: vec!["--target".into(), musl.triple().into()],
        env: env.vars.into_iter().collect(),
        toolchain: None,
    };
    let so = build_plugin(&dir.path().join("Cargo.toml"), &build).unwrap();
    let facts = gwplugin_build::elf::facts(&std::fs::read(&so).unwrap()).unwrap();
    assert_eq!(facts.needed, ["libc.so"], "a genuine musl artifact");
    let err = refusal(&so, None);
    assert_eq!(
        err.to_string(),
        format!(
            "plugin `{}`: links musl (NEEDED libc.so), this host uses glibc",
            so.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_built_outside_this_workspace_loads() {
    // Its own workspace and lockfile: what this workspace's other members enable must not
    // leak into the host's manifest.
    let dir = copy_fixture(
        "all-kinds",
        "variant-standalone",
        &workspace_root().join("api"),
    );
    let so = build_plugin(
        &dir.path().join("Cargo.toml"),
        &Build {
            args: vec!["--offline".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let mut loader = loader();
    loader
        .load_file(&so, None)
        .expect("a standalone plugin at the host's versions loads");
    assert_eq!(loader.registry().len(), 3);
}

#[test]
fn a_library_lists_its_plugins_without_being_loaded() {
    let exports =
        gwplugin_build::elf::plugin_exports(&std::fs::read(all_kinds()).unwrap()).unwrap();
    let lines: Vec<String> = exports
        .iter()
        .map(|e| format!("{} {}", e.kind, e.name))
        .collect();
    assert_eq!(
        lines,
        [
            "http-server stamp-server",
            "http-client services-client",
            "modifier stamp-modifier"
        ]
    );
}

#[test]
fn no_workspace_member_changes_a_boundary_crate_s_features() {
    // The manifest records the features cargo enables for the host package alone. A
    // `--workspace` build (as CI's) unifies in what every member enables: if a member
    // adds a feature to a boundary crate, the binaries built that way would differ from
    // what their manifests say. Keep the two equal.
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            "x86_64-unknown-linux-gnu",
        ])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let host = gwplugin_build::decode_record(host_record()).unwrap();
    for krate in &host.boundary {
        let id = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == krate.name.as_str() && p["version"] == krate.version.as_str())
            .map(|p| p["id"].clone())
            .unwrap();
        let node = metadata["resolve"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap();
        let mut unified: Vec<String> = node["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_owned())
            .collect();
        unified.sort();
        assert_eq!(
            unified, krate.features,
            "a workspace member enables extra features on boundary crate `{}` (see `cargo tree -e features -i {}`)",
            krate.name, krate.name
        );
    }
}
