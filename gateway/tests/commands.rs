//! `gwhost plugin-abi` and `gwhost test-plugin`.

mod common;

use common::*;

#[test]
fn plugin_abi_prints_the_manifest_embedded_in_the_binary() {
    let out = run(&["plugin-abi"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed =
        gwplugin_build::AbiManifest::from_json(&text(&out.stdout)).expect("manifest JSON");
    // What the loader and `cargo gwplugin check --host` read: the binary's link section.
    let binary = std::fs::read(env!("CARGO_BIN_EXE_gwhost")).unwrap();
    let embedded =
        gwplugin_build::elf::host_manifest(&binary, gwplugin_build::HOST_SECTION).unwrap();
    assert_eq!(printed, embedded);
    assert_eq!(printed.package.name, "gwhost");
    assert!(printed.boundary.iter().any(|c| c.name == "http"));
}

#[test]
fn check_warns_when_the_plugin_folder_has_no_matching_file() {
    let site = Site::new(&[]);
    let cfg = config(None, serde_json::json!([]));
    let out = run(&["check", "-c", site.write_config(&cfg).to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no plugin loaded: no file in `")
            && text(&out.stderr).contains("` matches the pattern `.so`"),
        "{}",
        text(&out.stderr)
    );
    // An empty `RUST_LOG` is no setting (it turned every line off, ERROR too); one that
    // does not parse is said, not replaced silently.
    for (setting, said) in [
        ("", None),
        (
            "warn,bad[",
            Some("RUST_LOG=\"warn,bad[\" is not a log filter"),
        ),
    ] {
        let out = gwhost()
            .args(["check", "-c", site.write_config(&cfg).to_str().unwrap()])
            .env("RUST_LOG", setting)
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("no plugin loaded: no file in `"),
            "{setting:?}: {stderr}"
        );
        if let Some(said) = said {
            assert!(stderr.contains(said), "{stderr}");
        }
    }
}

#[test]
fn test_plugin_ok_lines_and_summary() {
    let so = fixture("all-kinds");
    let so_s = so.to_str().unwrap();
    let own_client = r#"services-client={"backend": "http://127.0.0.1:1"}"#;
    let cases: [(&[&str], &str); 4] = [
        (
            &[],
            "[OK] stamp-server (http-server) in {so}: registered\n\
             [OK] services-client (http-client) in {so}: registered\n\
             [OK] stamp-modifier (modifier) in {so}: registered\n\
             test-plugin: 3 passed, 0 failed\n",
        ),
        // Factories and a sample request through each selected kind.
        (
            &[
                "--server",
                "--modifier",
                "--config",
                r#"{"tag": "t", "value": "v"}"#,
                "--request",
                "POST /sample",
            ],
            "[OK] stamp-server (http-server) in {so}: registered, created, POST /sample -> 200 OK\n\
             [OK] stamp-modifier (modifier) in {so}: registered, created, POST /sample -> 200 OK\n\
             test-plugin: 2 passed, 0 failed\n",
        ),
        // A plugin's own config: the others get the common one, or none.
        (
            &["--config", own_client],
            "[OK] stamp-server (http-server) in {so}: registered\n\
             [OK] services-client (http-client) in {so}: registered, created\n\
             [OK] stamp-modifier (modifier) in {so}: registered\n\
             test-plugin: 3 passed, 0 failed\n",
        ),
        (
            &[
                "--client",
                "--modifier",
                "--config",
                "{}",
                "--config",
                own_client,
            ],
            "[OK] services-client (http-client) in {so}: registered, created\n\
             [OK] stamp-modifier (modifier) in {so}: registered, created\n\
             test-plugin: 2 passed, 0 failed\n",
        ),
    ];
    for (args, want) in cases {
        let out = run(&[&["test-plugin"][..], args, &[so_s]].concat());
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), want.replace("{so}", so_s), "{args:?}");
    }
    // The sample request's body: none, text, or a file's contents.
    let body_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(body_file.path(), "{\"id\": 1}").unwrap();
    let at_file = format!("@{}", body_file.path().display());
    let required = ["-m", "--request", "POST /x", "-H", "x-require-body: 411"];
    for (data, code, want) in [
        (
            &[][..],
            1,
            "[KO] {what}: POST /x -> 411 Length Required: stamp-modifier wants a body",
        ),
        (
            &["-d", "a=1"],
            0,
            "[OK] {what}: registered, created, POST /x -> 200 OK",
        ),
        (
            &["--data", at_file.as_str()],
            0,
            "[OK] {what}: registered, created, POST /x -> 200 OK",
        ),
        // Streamed, as gwhost hands a client's body to plugins: it was in memory here.
        (
            &["-d", "a=1", "-H", "x-want-streamed-body: 1"],
            0,
            "[OK] {what}: registered, created, POST /x -> 200 OK",
        ),
    ] {
        let out = run(&[&["test-plugin"][..], &required, data, &[so_s]].concat());
        let what = format!("stamp-modifier (modifier) in {so_s}");
        assert_eq!(
            out.status.code(),
            Some(code),
            "{data:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            text(&out.stdout).lines().next(),
            Some(want.replace("{what}", &what).as_str()),
            "{data:?}"
        );
    }
    // A body without a method is a POST, as with curl's `-d`.
    let out = run(&["test-plugin", "-m", "--request", "/x", "-d", "a=1", so_s]);
    assert_eq!(
        text(&out.stdout).lines().next(),
        Some(
            format!(
                "[OK] stamp-modifier (modifier) in {so_s}: registered, created, POST /x -> 200 OK"
            )
            .as_str()
        ),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        &["test-plugin"][..],
        &required,
        &["-d", "@/no/such/file"],
        &[so_s],
    ]
    .concat());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("error: bad `--data`: cannot read `/no/such/file`: "),
        "{}",
        text(&out.stderr)
    );

    // A config for a plugin that no file registers (a typo) is said, not silently unused;
    // unless a file did not load, which may be the one that has it.
    let out = run(&["test-plugin", "--config", "servces-client={}", so_s]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(
            "warning: no plugin `servces-client` in the files tested: its `--config` was not used"
        ),
        "{}",
        text(&out.stderr)
    );
    let plain = fixture("plain-cdylib");
    let out = run(&[
        "test-plugin",
        "--config",
        "servces-client={}",
        so_s,
        plain.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("was not used"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn test_plugin_ko_lines_and_exit_1() {
    let so = fixture("all-kinds");
    let so_s = so.to_str().unwrap();
    let plain = fixture("plain-cdylib");
    let plain_s = plain.to_str().unwrap();
    let order = fixture("order");
    let order_s = order.to_str().unwrap();
    // services-client rejects an empty config; a file that is no gwplugin plugin; a
    // plugin that panics on the sample request.
    let out = run(&[
        "test-plugin",
        "--client",
        "--modifier",
        "--config",
        "{}",
        "--request",
        "/x",
        so_s,
        plain_s,
        order_s,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "[KO] services-client (http-client) in {so_s}: plugin `services-client` rejected its config: services-client: config needs `backend` (a URL)"
        )
    );
    assert_eq!(
        lines[1],
        format!("[OK] stamp-modifier (modifier) in {so_s}: registered, created, GET /x -> 200 OK")
    );
    assert_eq!(
        lines[2],
        format!(
            "[KO] {plain_s}: plugin `{plain_s}`: no gwplugin ABI manifest (symbol `GWPLUGIN_ABI_MANIFEST` missing): not built with `gwplugin::export!` and `gwplugin_build::plugin()`"
        )
    );
    assert!(lines.contains(&format!("[OK] order-client (http-client) in {order_s}: registered, created, GET /x -> 202 Accepted").as_str()), "{stdout}");
    let panicked = lines
        .iter()
        .find(|l| l.starts_with("[KO] always-panics (modifier)"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        panicked.contains("plugin panicked at") && panicked.contains("always-panics panicked"),
        "{panicked}"
    );
    assert_eq!(*lines.last().unwrap(), "test-plugin: 5 passed, 3 failed");
    assert_eq!(
        text(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("error: ") || l.starts_with("help: "))
            .collect::<Vec<_>>(),
        [
            "error: 3 of 8 plugin checks failed",
            "help: see the `[KO]` lines above for each failure"
        ]
    );

    // Asking for a kind a file does not register is a failure, as in KrakenD.
    let dup = fixture("duplicate");
    let dup_s = dup.to_str().unwrap();
    let out = run(&["test-plugin", "--server", order_s, dup_s]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        format!(
            "[OK] server-a (http-server) in {order_s}: registered\n\
             [OK] server-b (http-server) in {order_s}: registered\n\
             [KO] {dup_s}: registers no http-server plugin\n\
             test-plugin: 2 passed, 1 failed\n"
        )
    );
}

#[test]
fn a_client_plugin_failing_a_sample_with_a_path_alone_is_told_what_gwhost_hands_it() {
    // `pass-client` sends the request it gets: with `/x` alone, "client requires
    // absolute-form URIs", and nothing said that gwhost never hands it one.
    let so = fixture("passthrough");
    let so_s = so.to_str().unwrap();
    let out = run(&["test-plugin", "--client", "--request", "/x", so_s]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(&format!("[KO] pass-client (http-client) in {so_s}: "))
            && stdout.contains(
                " (gwhost hands an http-client plugin the backend's absolute URL: give \
                 `--request` one, e.g. `GET http://127.0.0.1:8080/x`)\n"
            ),
        "{stdout}"
    );
}

#[test]
fn test_plugin_sends_the_sample_request_with_its_headers() {
    let so = fixture("all-kinds");
    let so_s = so.to_str().unwrap();
    // The fixture's modifier fails with the status `x-reject` names, its server plugin
    // panics on `x-panic: server`: both only if the headers reach them.
    let out = run(&[
        "test-plugin",
        "--server",
        "--modifier",
        "--request",
        "PUT /x",
        "-H",
        "x-reject: 418",
        "--header",
        "x-panic:server",
        so_s,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "[KO] stamp-server (http-server) in {so_s}: plugin panicked at "
        )) && lines[0].ends_with("server plugin panicked on demand"),
        "{stdout}"
    );
    assert_eq!(
        lines[1],
        format!(
            "[KO] stamp-modifier (modifier) in {so_s}: PUT /x -> 418 I'm a teapot: rejected by stamp-modifier"
        )
    );
    assert_eq!(lines[2], "test-plugin: 0 passed, 2 failed");
}

#[test]
fn test_plugin_refuses_a_bad_header_or_one_without_a_request() {
    let so = fixture("all-kinds");
    let so_s = so.to_str().unwrap();
    let out = run(&["test-plugin", "--request", "/x", "-H", "x-reject 418", so_s]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(
            "invalid value 'x-reject 418' for '--header <NAME: VALUE>': `x-reject 418` is not a header: write it as `name: value`"
        ),
        "{}",
        text(&out.stderr)
    );
    // A `--config` or `--request` that cannot be read is a usage error, as a bad flag is.
    for args in [
        &["--config", "[1]"][..],
        &["--config", "services-client=[1]"],
        &["--config", "{}", "--config", "{}"],
        &["--config", "a={}", "--config", "a={}"],
        &["--request", "GET /x extra"],
        // A method alone is no URL.
        &["--request", "GET"],
        &["--request", "/x", "--timeout", "0s"],
    ] {
        let out = run(&[&["test-plugin"][..], args, &[so_s]].concat());
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = run(&[
        "test-plugin",
        "--config",
        "a={}",
        "--config",
        "a={\"b\": 1}",
        so_s,
    ]);
    assert_eq!(
        text(&out.stderr),
        "error: bad `--config` `a={\"b\": 1}`: a second config for `a`\n\
         help: pass a JSON object for every plugin, e.g. `--config '{\"tag\": \"x\"}'`, or one plugin's own as `--config 'NAME={\"tag\": \"x\"}'`, at most once each\n"
    );
    let out = run(&["test-plugin", "-H", "x-reject: 418", so_s]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("the following required arguments were not provided:\n  --request"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn run_help_names_its_environment_and_exit_statuses() {
    let out = run(&["run", "--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    for needle in [
        "--drain-timeout",
        "GET /__health",
        "TOKIO_WORKER_THREADS",
        "RUST_LOG",
        "Exit status:",
    ] {
        assert!(help.contains(needle), "`{needle}` missing from:\n{help}");
    }
}

#[test]
fn test_plugin_log_lines_name_the_plugin_as_run_does() {
    let so = fixture("all-kinds");
    let out = gwhost()
        .env("RUST_LOG", "info")
        .args([
            "test-plugin",
            "--client",
            "--config",
            r#"services-client={"backend": "http://127.0.0.1:1"}"#,
            "--request",
            "/x",
            so.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("calling backend http://127.0.0.1:1"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        line.contains("plugin=\"services-client\" library=\"fixture-all-kinds\""),
        "{line}"
    );
}

#[test]
fn a_worker_count_of_0_or_not_a_number_means_the_default_as_run_help_says() {
    // tokio panics on these when it reads the variable itself (exit 101).
    let so = fixture("all-kinds");
    for value in ["0", "abc", ""] {
        let out = gwhost()
            .env("TOKIO_WORKER_THREADS", value)
            .args(["test-plugin", so.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "TOKIO_WORKER_THREADS={value:?}: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stdout).ends_with("test-plugin: 3 passed, 0 failed\n"));
        // Not silently: an operator who meant a number learns it was not taken.
        assert!(
            text(&out.stderr).contains(&format!(
                "WARN gwhost::commands: TOKIO_WORKER_THREADS={value:?} is not a positive number: one worker thread per core"
            )),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn test_plugin_takes_krakends_short_flags_each_file_on_its_own_and_a_time_limit() {
    let so = fixture("all-kinds");
    // Two copies of one plugin library: each file is tested on its own.
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = (dir.path().join("v1.so"), dir.path().join("v2.so"));
    std::fs::copy(&so, &v1).unwrap();
    std::fs::copy(&so, &v2).unwrap();
    let out = run(&[
        "test-plugin",
        "-m",
        v1.to_str().unwrap(),
        v2.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).ends_with("test-plugin: 2 passed, 0 failed\n"));

    // A backend that takes the connection and never answers: the sample request is given
    // up after `--timeout`, as a `[KO]` line.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // The http-client plugin sends `GET /x` to `silent`, given up after 300 ms.
    let test_client = |config: &str| {
        run(&[
            "test-plugin",
            "-c",
            "--config",
            config,
            "--request",
            "GET /x",
            "--timeout",
            "300ms",
            so.to_str().unwrap(),
        ])
    };
    let backend = silent.local_addr().unwrap();
    let started = std::time::Instant::now();
    let out = test_client(&format!(r#"{{"backend": "http://{backend}"}}"#));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("[KO] services-client (http-client) in ")
            && text(&out.stdout).contains(": no answer within 300ms\n"),
        "{}",
        text(&out.stdout)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // A plugin still in a timer's `await` when it is given up: the process ends with its
    // exit code, not aborted by a runtime shut down under the plugin (it was, most times).
    for _ in 0..3 {
        let out = test_client(&format!(
            r#"{{"backend": "http://{backend}", "sleep_ms": 3000}}"#
        ));
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(
            !text(&out.stderr).contains("panicked"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn test_plugin_fails_a_plugin_that_blocks_its_thread_or_whose_body_fails() {
    let so = fixture("all-kinds");
    let so = so.to_str().unwrap();
    // The modifier sleeps on its thread for 3 s: given up after the timeout all the same.
    let started = std::time::Instant::now();
    let request = ["--request", "GET http://x/", "-H", "x-block-ms: 3000"];
    let out = run(&[
        &["test-plugin", "-m", "--timeout", "500ms"][..],
        &request,
        &[so],
    ]
    .concat());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("[KO] stamp-modifier (modifier) in ")
            && stdout.contains(": no answer within 500ms\n"),
        "{stdout}"
    );
    assert!(started.elapsed() < std::time::Duration::from_millis(2500));

    // The server plugin answers 200, then its body panics: read to the end, it fails.
    let request = ["--request", "GET http://x/", "-H", "x-panic: body"];
    let out = run(&[&["test-plugin", "-s"][..], &request, &[so]].concat());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("[KO] stamp-server (http-server) in ")
            && stdout.contains(": GET http://x/ -> 200 OK, then its body failed: "),
        "{stdout}"
    );
}
