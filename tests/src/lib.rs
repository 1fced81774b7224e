//! Support for the end-to-end suites: building plugin crates with real cargo into the
//! shared target directory, and a real HTTP backend on loopback.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// The one target directory every plugin build in the tests shares.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// How to build a plugin crate.
#[derive(Debug, Clone, Default)]
pub struct Build {
    /// Extra cargo arguments (`--target`, `+nightly` goes in `toolchain`).
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// A rustup toolchain (`nightly`) to build with.
    pub toolchain: Option<String>,
}

/// Builds the cdylib of the package at `manifest_path` and returns the `.so`.
pub fn build_plugin(manifest_path: &Path, build: &Build) -> Result<PathBuf, String> {
    let mut cmd = match &build.toolchain {
        Some(tc) => {
            let mut c = Command::new("rustup");
            c.args(["run", tc, "cargo"]);
            c
        }
        None => cargo(),
    };
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(manifest_path)
        .arg("--lib")
        .arg("--message-format=json-render-diagnostics");
    cmd.args(&build.args)
        .env("CARGO_TARGET_DIR", target_dir())
        .envs(&build.env);
    if build.toolchain.is_some() {
        // Don't let the pinned toolchain of this repo override the requested one.
        cmd.env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTC")
            .env_remove("CARGO");
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let line = format!("{cmd:?}");
    let mut child = cmd.spawn().map_err(|e| format!("{line}: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let mut artifact = None;
    // cargo's JSON messages, read with serde_json alone: the `cargo_metadata` crate would
    // turn on serde_json's `unbounded_depth` in this host, and serde_json is a boundary
    // crate whose features must match the plugins'.
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let is_cdylib = message["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
        if message["reason"] == "compiler-artifact" && is_cdylib {
            artifact = message["filenames"]
                .as_array()
                .and_then(|f| {
                    f.iter()
                        .filter_map(|f| f.as_str())
                        .find(|f| f.ends_with(".so"))
                })
                .map(PathBuf::from);
        }
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("{line}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{line} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    artifact.ok_or_else(|| format!("{line} produced no cdylib"))
}

/// Builds a fixture plugin of this repository (a workspace member) by package name.
pub fn build_fixture(dir_name: &str) -> PathBuf {
    let manifest = workspace_root()
        .join("fixtures/plugins")
        .join(dir_name)
        .join("Cargo.toml");
    build_plugin(&manifest, &Build::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// Copies fixture `dir_name` into a fresh directory as its own workspace named
/// `package`, depending on `gwplugin` at `api_path`, with the repository's lockfile,
/// so that it resolves to the same versions as the host unless told otherwise.
pub fn copy_fixture(dir_name: &str, package: &str, api_path: &Path) -> tempfile::TempDir {
    let src = workspace_root().join("fixtures/plugins").join(dir_name);
    let dir = tempfile::Builder::new()
        .prefix("gwplugin-variant-")
        .tempdir()
        .expect("tempdir");
    std::fs::create_dir_all(dir.path().join("src")).expect("mkdir");
    std::fs::copy(src.join("src/lib.rs"), dir.path().join("src/lib.rs")).expect("copy lib.rs");
    std::fs::copy(src.join("build.rs"), dir.path().join("build.rs")).expect("copy build.rs");
    std::fs::copy(
        workspace_root().join("Cargo.lock"),
        dir.path().join("Cargo.lock"),
    )
    .expect("copy lock");
    let api = api_path.display();
    let build_support = workspace_root().join("build-support");
    let manifest = format!(
        "[package]\nname = \"{package}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n\
         [dependencies]\ngwplugin = {{ path = \"{api}\" }}\n\n[build-dependencies]\ngwplugin-build = {{ path = \"{}\" }}\n\n[workspace]\n",
        build_support.display()
    );
    std::fs::write(dir.path().join("Cargo.toml"), manifest).expect("write manifest");
    dir
}

/// [`copy_fixture`] of `all-kinds` as `package`, in a workspace with a second member that
/// turns on `serde_json/preserve_order`: built alone (`cargo gwplugin build`'s way) the
/// plugin has the host's `serde_json`; built with `--workspace` it has an `IndexMap`
/// for a `serde_json::Map`, which its manifest does not record.
pub fn copy_fixture_beside_preserve_order(package: &str) -> tempfile::TempDir {
    let dir = copy_fixture("all-kinds", package, &workspace_root().join("api"));
    let other = dir.path().join("other");
    std::fs::create_dir_all(other.join("src")).expect("mkdir");
    std::fs::write(
        other.join("Cargo.toml"),
        "[package]\nname = \"other\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [dependencies]\nserde_json = { version = \"1\", features = [\"preserve_order\"] }\n",
    )
    .expect("write the other member");
    std::fs::write(other.join("src/lib.rs"), "").expect("write the other member");
    let manifest = dir.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("read manifest");
    std::fs::write(
        &manifest,
        text.replace("[workspace]\n", "[workspace]\nmembers = [\"other\"]\n"),
    )
    .expect("write manifest");
    dir
}

/// Runs cargo with `args` in `dir`, panicking with its stderr on failure.
pub fn cargo_in(dir: &Path, args: &[&str]) {
    let out = cargo()
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A loopback HTTP backend that echoes what it got as JSON and counts `/spawned` hits.
pub struct Backend {
    pub addr: SocketAddr,
    pub spawned_hits: Arc<AtomicUsize>,
}

impl Backend {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spawned_hits(&self) -> usize {
        self.spawned_hits.load(Ordering::SeqCst)
    }
}

/// Starts a [`Backend`] on the current tokio runtime.
pub async fn start_backend() -> Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let spawned_hits = Arc::new(AtomicUsize::new(0));
    let hits = spawned_hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let hits = hits.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let hits = hits.clone();
                    async move { Ok::<_, Infallible>(echo(req, &hits).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Backend { addr, spawned_hits }
}

async fn echo(req: hyper::Request<Incoming>, hits: &AtomicUsize) -> hyper::Response<Full<Bytes>> {
    if req.uri().path() == "/spawned" {
        hits.fetch_add(1, Ordering::SeqCst);
    }
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json = serde_json::json!({
        "method": method,
        "uri": uri,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    hyper::Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json.to_string())))
        .expect("valid response")
}

/// Writes an executable file (a test's stand-in for a compiler, a wrapper or cargo).
pub fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).expect("write the script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod +x");
}
