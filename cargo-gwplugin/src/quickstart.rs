//! `cargo gwplugin quickstart`: the whole job in one command, for a first look —
//! scaffold a modifier plugin, sync it to gwhost, build gwhost and the plugin, register
//! the plugin in a config, run gwhost on loopback in front of a small built-in backend,
//! and show a request before and after the plugin. Everything it starts, it stops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, io};
use crate::plugin::PluginHostArgs;
use crate::{Outcome, build, host_build, new, status, sync};

/// Scaffold, build, register and run a plugin in gwhost, and show what it changes
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Where to put the plugin, gwhost's config and logs (must not exist, be empty, or be
    /// an earlier quickstart's, which is replaced)
    #[arg(long, value_name = "DIR", default_value = "gwplugin-quickstart")]
    pub dir: PathBuf,
    /// The host project [default: this repository's `gateway/Cargo.toml`]
    #[arg(long, value_name = "PATH")]
    pub host: Option<PathBuf>,
}

const STEPS: usize = 7;
/// Marks a folder as quickstart's own.
const MARKER: &str = ".gwplugin-quickstart";

fn step(n: usize, what: &str) {
    status(&format!("[{n}/{STEPS}]"), what);
}

/// Runs `quickstart`.
pub fn exec(args: &Args) -> Result<Outcome, Error> {
    let started = Instant::now();
    let cwd = std::env::current_dir().map_err(io("."))?;
    let dir = cwd.join(&args.dir);
    // The host first: a wrong `--host` leaves no folder behind. A project directory
    // means its Cargo.toml, as for every other command.
    let host_project = match &args.host {
        Some(h) if cwd.join(h).is_dir() => cwd.join(h).join("Cargo.toml"),
        Some(h) => cwd.join(h),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/Cargo.toml"),
    };
    if !host_project.is_file() {
        return Err(Error::HostMissing(host_project));
    }
    let host_project = host_project.canonicalize().map_err(io(&host_project))?;
    // A folder an earlier quickstart made is made anew; anything else is left alone.
    if dir.join(MARKER).is_file() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    if dir.exists() && std::fs::read_dir(&dir).map_err(io(&dir))?.next().is_some() {
        return Err(Error::NotEmpty(dir));
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    std::fs::write(
        dir.join(MARKER),
        "made by `cargo gwplugin quickstart`, which replaces this folder when run again\n",
    )
    .map_err(io(&dir))?;

    step(1, "scaffolding a modifier plugin with `cargo gwplugin new`");
    let plugin_dir = dir.join("hello-plugin");
    // Its "Next:" lines are the steps this command takes itself.
    new::create(&new::Args {
        name: "hello-plugin".into(),
        kind: new::Kind::Modifier,
        host: Some(host_project.clone()),
        path: Some(plugin_dir.clone()),
    })?;
    let manifest = plugin_dir.join("Cargo.toml");

    step(2, "syncing it to gwhost with `cargo gwplugin sync`");
    sync::exec(&sync::Args {
        plugin: PluginHostArgs {
            host: None,
            manifest_path: Some(manifest.clone()),
        },
        dry_run: false,
    })?;

    step(3, "building gwhost");
    let triple = crate::process::rustc_version(&crate::process::rustc_for(&plugin_dir))?.host;
    let gwhost = host_build::build_host(&host_build::Args {
        target: triple.clone(),
        manifest_path: host_project.clone(),
        release: false,
        offline: false,
        verbose: 0,
        quiet: false,
    })?;

    step(4, "starting a backend on loopback");
    let backend = Backend::start(&dir)?;
    let port = free_port(&dir)?;
    let config = dir.join("gateway.json");
    let text = serde_json::to_string_pretty(&serde_json::json!({
        "version": 3,
        "port": port,
        "endpoints": [{
            "endpoint": "/hello",
            "method": "GET",
            "backend": [{ "host": [format!("http://127.0.0.1:{}", backend.port)], "url_pattern": "/hello" }]
        }]
    }))
    .expect("JSON");
    crate::txn::write_atomic(&config, format!("{text}\n").as_bytes())?;

    step(
        5,
        "building the plugin and registering it with `cargo gwplugin build --register`",
    );
    let built = build::build(&build::Args {
        target: Some(triple),
        release: false,
        profile: None,
        plugin: PluginHostArgs {
            host: Some(gwhost.clone()),
            manifest_path: Some(manifest),
        },
        out_dir: Some(dir.join("plugins")),
        register: Some(config.clone()),
        endpoint: vec![],
        plugins: vec![],
        no_check: false,
        message_format: crate::check::MessageFormat::Human,
        features: Default::default(),
        locked: false,
        offline: false,
        verbose: 0,
        quiet: true,
        cargo_args: vec![],
    })?;

    step(6, &format!("starting gwhost on http://127.0.0.1:{port}"));
    let log_path = dir.join("gwhost.log");
    let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
    let mut cmd = Command::new(&gwhost);
    cmd.args(["run", "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log);
    let gateway = Gateway::start(cmd, port, &log_path)?;

    step(
        7,
        "sending GET /hello, first straight to the backend, then through gwhost",
    );
    let before = http_get(backend.port, "/hello").map_err(io("backend"))?;
    let after = http_get(port, "/hello").map_err(io("gwhost"))?;
    drop(gateway);
    drop(backend);

    crate::print_stdout(&format!(
        "\n--- before: the backend's answer, without gwhost ---\n{before}\n\
         \n--- after: through gwhost with the `hello-plugin` modifier ---\n{after}\n\
         \nThe plugin set `x-tenant: acme` on the request (see the headers the backend echoes)\n\
         and `x-modified-by: hello-plugin` on the response.\n\n\
         Files, in `{}`:\n  hello-plugin/        the plugin crate (edit src/lib.rs, then, in it,\n                       `cargo gwplugin build --register ../gateway.json`)\n  \
         plugins/{}  the built plugin, verified, and its registration snippet\n  \
         gateway.json         gwhost's config, with the plugin registered\n  \
         gwhost.log           what gwhost logged\n\nDone in {:.0?}.\n",
        dir.display(),
        built
            .plugin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        started.elapsed()
    ));
    Ok(Outcome::Ok)
}

fn free_port(dir: &Path) -> Result<u16, Error> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io(dir))?;
    Ok(l.local_addr().map_err(io(dir))?.port())
}

/// gwhost, stopped (SIGTERM, then kill) when dropped.
struct Gateway(Child);

impl Gateway {
    fn start(mut cmd: Command, port: u16, log: &Path) -> Result<Gateway, Error> {
        let child = cmd.spawn().map_err(io(cmd.get_program()))?;
        let mut gw = Gateway(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = gw.0.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let logged = std::fs::read_to_string(log).unwrap_or_default();
                return Err(Error::Io {
                    path: log.to_owned(),
                    message: format!("gwhost did not start:\n{logged}"),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(gw)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A one-thread HTTP/1.1 backend that answers every request with the request it saw,
/// as JSON. Stopped when dropped.
struct Backend {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    fn start(dir: &Path) -> Result<Backend, Error> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(io(dir))?;
        let port = listener.local_addr().map_err(io(dir))?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    let _ = echo(stream);
                }
            }
        });
        Ok(Backend {
            port,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn echo(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = serde_json::Map::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.insert(
                k.trim().to_lowercase(),
                serde_json::Value::String(v.trim().to_owned()),
            );
        }
    }
    let body = serde_json::to_string_pretty(&serde_json::json!({
        "backend saw": request_line.trim_end(),
        "request headers": headers,
    }))
    .expect("JSON");
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// GET over a plain socket; the response as text (status line, headers, body).
fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nuser-agent: gwplugin-quickstart\r\nconnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text.replace("\r\n", "\n").trim_end().to_owned())
}
