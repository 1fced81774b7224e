//! `cargo gwplugin new`: each kind's crate passes check, builds, passes its tests and
//! clippy as generated, and loads and runs in a host (the gwplugin-host loader, verifying
//! the plugin against the gateway project's ABI manifest first).

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use common::*;
use gwplugin::abi::ErasedHandler;
use gwplugin::{Body, BoxFuture, Error, Request, Response};
use gwplugin_host::{Loader, TokioHostServices};
use serde_json::json;

fn host_record() -> &'static [u8] {
    static RECORD: OnceLock<Vec<u8>> = OnceLock::new();
    RECORD.get_or_init(|| {
        let rustc = std::process::Command::new("rustup")
            .args(["which", "rustc"])
            .current_dir(repo().join("gateway"))
            .output()
            .unwrap();
        let rustc = PathBuf::from(String::from_utf8(rustc.stdout).unwrap().trim());
        let manifest =
            gwplugin_build::compute_for_manifest_path(&gwplugin_build::ManifestRequest {
                manifest_path: gateway(),
                role: gwplugin_build::Role::Host,
                target: "x86_64-unknown-linux-gnu".into(),
                rustc,
                rustc_wrappers: Vec::new(),
                panic: "unwind".into(),
                cargo: None,
                features: None,
            })
            .unwrap()
            .manifest;
        gwplugin_build::encode_record(&manifest)
    })
}

#[test]
fn new_quiet_prints_no_next_steps() {
    let root = tempdir();
    let host = common::gateway().display().to_string();
    let r = run(
        gwplugin(
            root.path(),
            &["new", "hush", "--kind", "modifier", "--host", &host, "-q"],
        ),
        root.path(),
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
}

/// Scaffolds NAME of KIND; checks, tests, lints and builds it; returns the `.so`.
fn generate_and_build(root: &Path, name: &str, kind: &str) -> PathBuf {
    let r = new_plugin(root, name, kind);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!(
            "Next:\n    cd {name}\n    cargo test\n    cargo gwplugin check\n    cargo gwplugin build --release\n"
        )
    );
    assert!(
        r.stderr.contains(&format!(
            "     Created {kind} plugin `{name}` in `[ROOT]/{name}`\n"
        )),
        "{}",
        r.stderr
    );
    let dir = root.join(name);
    for file in [
        ".gitignore",
        "Cargo.toml",
        "Cargo.lock",
        "README.md",
        "build.rs",
        "rust-toolchain.toml",
        "src/lib.rs",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("crate-type = [\"cdylib\"]"), "{manifest}");
    assert!(
        manifest.contains(&format!(
            "gwplugin = {{ path = \"{}\", version = \"=0.1.0\" }}",
            repo().join("api").display()
        )),
        "{manifest}"
    );
    assert!(
        manifest.contains(&format!("host = \"{}\"", gateway().display())),
        "{manifest}"
    );

    let r = run(gwplugin(&dir, &["check"]), root);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "no incompatibilities found\n"),
        "{}",
        r.stderr
    );

    let tests = cargo(&dir, &["test"]);
    assert!(!tests.contains("warning"), "{tests}");
    cargo(&dir, &["clippy", "--all-targets", "--", "-D", "warnings"]);
    cargo(&dir, &["build"]);
    let so = target_dir().join(format!("debug/lib{}.so", name.replace('-', "_")));
    assert!(so.is_file(), "{} missing", so.display());
    so
}

fn get(uri: &str) -> Request {
    gwplugin::http::Request::get(uri)
        .body(Body::empty())
        .unwrap()
}

struct Router;
impl ErasedHandler for Router {
    fn call(&self, _req: Request) -> BoxFuture<'_, Result<Response, Error>> {
        Box::pin(async { Ok(Response::new(Body::from("from the router"))) })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn modifier_builds_and_runs_in_a_host() {
    let root = tempdir();
    let so = generate_and_build(root.path(), "gen-modifier", "modifier");
    let mut loader = Loader::new(host_record(), TokioHostServices::current()).unwrap();
    loader.load_file(&so, None).expect("loads");
    let m = loader
        .registry()
        .create_modifier(
            "gen-modifier",
            &json!({"header": "x-tenant", "value": "acme"}),
        )
        .unwrap();
    let mut req = get("/x");
    m.modify_request(&mut req).unwrap();
    assert_eq!(req.headers()["x-tenant"], "acme");
    let mut resp = Response::new(Body::empty());
    m.modify_response(&mut resp).unwrap();
    assert_eq!(resp.headers()["x-modified-by"], "gen-modifier");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_server_builds_and_runs_in_a_host() {
    let root = tempdir();
    let so = generate_and_build(root.path(), "gen-server", "http-server");
    let mut loader = Loader::new(host_record(), TokioHostServices::current()).unwrap();
    loader.load_file(&so, None).expect("loads");
    let h = loader
        .registry()
        .create_server("gen-server", &json!({"keys": ["k1"]}), Arc::new(Router))
        .unwrap();
    let resp = h.call(get("/x")).await.unwrap();
    assert_eq!(resp.status(), 401);
    let mut req = get("/x");
    req.headers_mut().insert("x-api-key", "k1".parse().unwrap());
    let resp = h.call(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-gen-server"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_client_builds_and_runs_in_a_host() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let root = tempdir();
    let so = generate_and_build(root.path(), "gen-client", "http-client");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
        let token = if head.contains("x-token: t1") {
            "yes"
        } else {
            "no"
        };
        let body = format!("token {token}");
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(resp.as_bytes()).await.unwrap();
    });
    let mut loader = Loader::new(host_record(), TokioHostServices::current()).unwrap();
    loader.load_file(&so, None).expect("loads");
    let backend = format!("http://{addr}");
    let h = loader
        .registry()
        .create_client(
            "gen-client",
            &json!({"backend": backend, "headers": {"x-token": "t1"}}),
        )
        .unwrap();
    let resp = h.call(get("/items?page=2")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-gen-client"], backend.as_str());
    let body = resp.into_body().collect().await.unwrap();
    assert_eq!(&body[..], b"token yes");
}

#[test]
fn a_host_with_a_boundary_feature_of_its_own_gets_a_plugin_with_it_too() {
    // The host turns on `serde_json/raw_value`: `new` said "in sync" for a plugin that
    // would not load (its `serde_json` without it), and `sync` could not fix it.
    let root = tempdir();
    let host = root.path().join("tiny-host");
    std::fs::create_dir_all(host.join("src")).unwrap();
    let repo = repo();
    std::fs::write(
        host.join("Cargo.toml"),
        format!(
            "[package]\nname = \"tiny-host\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [dependencies]\ngwplugin-host = {{ path = \"{0}/host\" }}\n\
             gwplugin-build = {{ path = \"{0}/build-support\" }}\n\
             serde_json = {{ version = \"1\", features = [\"raw_value\"] }}\n\n[workspace]\n",
            repo.display()
        ),
    )
    .unwrap();
    std::fs::write(host.join("src/main.rs"), "fn main() {}\n").unwrap();
    for file in ["Cargo.lock", "rust-toolchain.toml"] {
        std::fs::copy(repo.join(file), host.join(file)).unwrap();
    }
    let r = run(
        gwplugin(
            root.path(),
            &[
                "new",
                "raw",
                "--kind",
                "modifier",
                "--host",
                host.to_str().unwrap(),
            ],
        ),
        root.path(),
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("Enabling features of `serde_json`")
            && r.stderr.contains("`raw` is in sync with host"),
        "{}",
        r.stderr
    );
    let dir = root.path().join("raw");
    let r = run(gwplugin(&dir, &["check"]), root.path());
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "no incompatibilities found\n"),
        "{}",
        r.stderr
    );
}
