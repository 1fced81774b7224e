//! Config errors as the user sees them (`gwhost check`), and the committed JSON Schema
//! against the example configs.

mod common;

use std::path::Path;

use common::*;
use serde_json::{Value, json};

/// Each `tests/fixtures/bad-config/<case>/gateway.json` fails `gwhost check` with exit 1
/// and every line of its `expected.txt` on stderr.
#[test]
fn bad_configs_fail_with_their_message() {
    let root = repo_path("tests/fixtures/bad-config");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 15, "{cases:?}");
    for case in cases {
        let config = case.join("gateway.json");
        let expected = std::fs::read_to_string(case.join("expected.txt")).unwrap();
        let out = run(&["check", "-c", config.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", case.display());
        for line in expected.lines() {
            assert!(
                stderr.contains(line),
                "{}: expected\n  {line}\nin\n{stderr}",
                case.display()
            );
        }
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(
            stderr.contains("\nhelp: "),
            "{}: no help line: {stderr}",
            case.display()
        );
    }
}

#[test]
fn a_path_error_points_at_the_file() {
    let config = repo_path("tests/fixtures/bad-config/client-name-is-a-list/gateway.json");
    let out = run(&["check", "-c", config.to_str().unwrap()]);
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: endpoints[2].backend[0].extra_config.\"plugin/http-client\".name: expected a string, found a list\n  --> {}\nhelp: a backend has one http-client plugin: write `\"name\": \"my-plugin\"`\n",
            config.display()
        )
    );
}

#[test]
fn run_refuses_a_bad_config_before_listening() {
    let config = repo_path("tests/fixtures/bad-config/duplicate-endpoint/gateway.json");
    let out = run(&["run", "-c", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("error: endpoints[1]: duplicate endpoint `GET /users/{name}`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_loads_plugins_and_creates_instances() {
    let site = Site::new(&["all-kinds", "order"]);
    let path = site.write_config(&config(
        Some(json!({"name": ["server-a", "stamp-server"]})),
        json!([{
            "endpoint": "/x",
            "extra_config": {"plugin/req-resp-modifier": {"name": ["mod-a"]}},
            "backend": [{"host": ["http://127.0.0.1:1"], "url_pattern": "/",
                "extra_config": {"plugin/http-client": {
                    "name": "services-client", "services-client": {"backend": "http://127.0.0.1:1"}}}}],
        }]),
    ));
    let out = run(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "`{}` is valid: 1 endpoint(s), 2 plugin file(s) loaded, 4 plugin instance(s) created\n",
            path.display()
        )
    );

    // A reader that goes away early (`| head -0`) ends the output, not the command.
    let mut closed = gwhost()
        .args(["check", "-c", path.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(closed.stdout.take());
    let out = closed.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );

    // The factories run: a config the plugin rejects fails the check.
    let path = site.write_config(&config(
        None,
        json!([{
            "endpoint": "/x",
            "backend": [{"host": ["http://127.0.0.1:1"], "url_pattern": "/",
                "extra_config": {"plugin/http-client": {"name": "services-client"}}}],
        }]),
    ));
    let out = run(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: endpoints[0].backend[0].extra_config.\"plugin/http-client\".name: plugin `services-client` rejected its config: services-client: config needs `backend` (a URL)\n  --> {}\nhelp: fix the plugin's config, the object under `services-client` in this block\n",
            path.display()
        )
    );

    // A plugin of the wrong kind for its namespace.
    let path = site.write_config(&config(Some(json!({"name": "mod-a"})), json!([])));
    let out = run(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .contains("is a modifier plugin, but `plugin/http-server` needs a http-server plugin")
            && stderr.contains("help: use it under `plugin/req-resp-modifier`"),
        "{stderr}"
    );

    // An unknown name where a `plugin` block loads files: the help is about the name.
    let path = site.write_config(&config(Some(json!({"name": "nope"})), json!([])));
    let out = run(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("unknown plugin `nope` for `plugin/http-server`: loaded ones are")
            && stderr.contains("help: check the name, or put the plugin's file in `plugin.folder`"),
        "{stderr}"
    );
}

// ---- the JSON Schema ----------------------------------------------------------------

/// A validator for the subset of JSON Schema 2020-12 that `config.schema.json` uses. It
/// refuses any keyword it does not implement, so the schema cannot silently rely on one.
/// (A full validator crate would enable serde_json features workspace-wide and change
/// the ABI manifest of every host and plugin here.)
struct Validator<'s> {
    root: &'s Value,
}

const ANNOTATIONS: [&str; 4] = ["$schema", "$id", "title", "description"];

impl<'s> Validator<'s> {
    fn validate(&self, schema: &'s Value, v: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = schema.as_object().expect("a schema is an object");
        for (key, rule) in schema {
            match key.as_str() {
                k if ANNOTATIONS.contains(&k) => {}
                "$defs" => {}
                "$ref" => {
                    let name = rule
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/$defs/"))
                        .expect("local $ref");
                    self.validate(&self.root["$defs"][name], v, at, errors);
                }
                "type" => {
                    let ok = match rule.as_str().expect("one type") {
                        "object" => v.is_object(),
                        "array" => v.is_array(),
                        "string" => v.is_string(),
                        // A number with no fraction, `3.0` too (JSON Schema 2020-12).
                        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
                        "number" => v.is_number(),
                        "boolean" => v.is_boolean(),
                        other => panic!("type {other}"),
                    };
                    if !ok {
                        errors.push(format!("{at}: not of type {rule}"));
                    }
                }
                "const" => {
                    // Numbers by value: `3.0` is `3`.
                    let equal = match (v.as_f64(), rule.as_f64()) {
                        (Some(a), Some(b)) => a == b,
                        _ => v == rule,
                    };
                    if !equal {
                        errors.push(format!("{at}: not {rule}"));
                    }
                }
                "enum" => {
                    if !rule.as_array().unwrap().contains(v) {
                        errors.push(format!("{at}: not one of {rule}"));
                    }
                }
                "minimum" | "maximum" => {
                    if let (Some(n), Some(limit)) = (v.as_f64(), rule.as_f64())
                        && ((key == "minimum" && n < limit) || (key == "maximum" && n > limit))
                    {
                        errors.push(format!("{at}: {key} {limit}"));
                    }
                }
                "minLength" | "maxLength" => {
                    if let (Some(s), Some(limit)) = (v.as_str(), rule.as_u64()) {
                        let n = s.chars().count() as u64;
                        if (key == "minLength" && n < limit) || (key == "maxLength" && n > limit) {
                            errors.push(format!("{at}: {key} {limit}"));
                        }
                    }
                }
                "minItems" | "maxItems" => {
                    if let (Some(a), Some(limit)) = (v.as_array(), rule.as_u64()) {
                        let n = a.len() as u64;
                        if (key == "minItems" && n < limit) || (key == "maxItems" && n > limit) {
                            errors.push(format!("{at}: {key} {limit}"));
                        }
                    }
                }
                "items" => {
                    for (i, item) in v.as_array().into_iter().flatten().enumerate() {
                        self.validate(rule, item, &format!("{at}[{i}]"), errors);
                    }
                }
                "required" => {
                    if let Some(o) = v.as_object() {
                        for k in rule.as_array().unwrap() {
                            if !o.contains_key(k.as_str().unwrap()) {
                                errors.push(format!("{at}: missing {k}"));
                            }
                        }
                    }
                }
                "properties" => {
                    if let Some(o) = v.as_object() {
                        for (k, sub) in rule.as_object().unwrap() {
                            if let Some(x) = o.get(k) {
                                self.validate(sub, x, &format!("{at}.{k}"), errors);
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    let known = schema.get("properties").and_then(Value::as_object);
                    for (k, x) in v.as_object().into_iter().flatten() {
                        if known.is_some_and(|p| p.contains_key(k)) {
                            continue;
                        }
                        match rule {
                            Value::Bool(false) => errors.push(format!("{at}: unknown key {k}")),
                            Value::Bool(true) => {}
                            sub => self.validate(sub, x, &format!("{at}.{k}"), errors),
                        }
                    }
                }
                "pattern" => {
                    if let Some(s) = v.as_str() {
                        let re = regex::Regex::new(rule.as_str().unwrap()).expect("a pattern");
                        if !re.is_match(s) {
                            errors.push(format!("{at}: does not match {rule}"));
                        }
                    }
                }
                "uniqueItems" => {
                    if let Some(a) = v.as_array()
                        && rule == &Value::Bool(true)
                        && a.iter().enumerate().any(|(i, x)| a[..i].contains(x))
                    {
                        errors.push(format!("{at}: items not unique"));
                    }
                }
                "anyOf" => {
                    let any = rule.as_array().unwrap().iter().any(|sub| {
                        let mut e = Vec::new();
                        self.validate(sub, v, at, &mut e);
                        e.is_empty()
                    });
                    if !any {
                        errors.push(format!("{at}: none of anyOf match"));
                    }
                }
                "oneOf" => {
                    let passing = rule
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|sub| {
                            let mut e = Vec::new();
                            self.validate(sub, v, at, &mut e);
                            e.is_empty()
                        })
                        .count();
                    if passing != 1 {
                        errors.push(format!("{at}: {passing} of oneOf match"));
                    }
                }
                "if" => {
                    let mut e = Vec::new();
                    self.validate(rule, v, at, &mut e);
                    let branch = if e.is_empty() { "then" } else { "else" };
                    if let Some(sub) = schema.get(branch) {
                        self.validate(sub, v, at, errors);
                    }
                }
                "then" | "else" => {}
                other => panic!("the schema uses `{other}`, which this test validator lacks"),
            }
        }
    }
}

fn schema_errors(config: &Value) -> Vec<String> {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_path("config.schema.json")).unwrap())
            .unwrap();
    let validator = Validator { root: &schema };
    let mut errors = Vec::new();
    validator.validate(&schema, config, "$", &mut errors);
    errors
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_examples_satisfy_the_schema_and_gwhost() {
    let mut examples: Vec<(String, String)> = std::fs::read_dir(repo_path("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    examples.sort();
    assert!(examples.len() >= 2, "{examples:?}");
    // And the operators' guide's configs: its ```json blocks that are whole configs.
    let guide = repo_path("../docs/gwhost.md");
    let text = std::fs::read_to_string(&guide).unwrap();
    let configs: Vec<(String, String)> = text
        .split("```json\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("\n```").map(|(block, _)| block))
        .filter(|block| block.contains("\"version\""))
        .map(|block| (guide.display().to_string(), block.to_owned()))
        .collect();
    assert_eq!(configs.len(), 1, "the guide's example config");
    for (name, text) in examples.iter().chain(&configs) {
        let config: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(schema_errors(&config), Vec::<String>::new(), "{name}");
        gwhost::config::parse(text, Path::new(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn the_schema_rejects_what_gwhost_rejects_by_shape() {
    let root = repo_path("tests/fixtures/bad-config");
    // Errors only gwhost can see: plugin names, duplicates (a JSON Schema sees a parsed
    // document, where a repeated key is already gone), URL shapes, parameters, duration
    // syntax, a missing folder on disk.
    let beyond_schema = [
        "bad-host-url",
        "timeout-too-long",
        "duplicate-endpoint",
        "duplicate-key",
        "duplicate-plugin-name",
        "host-url-with-path",
        "host-url-with-fragment",
        "host-port-out-of-range",
        "url-pattern-with-space",
        "url-pattern-with-fragment",
        "endpoint-not-encoded",
        "invalid-json",
        "missing-plugin-folder",
        "unknown-plugin",
        "url-pattern-unknown-param",
        "config-for-unlisted-plugin",
        "host-url-with-query",
        "host-port-with-a-sign",
        "host-bad-ipv6",
        "url-pattern-not-ascii",
        "endpoint-with-query",
        "byte-order-mark",
        "endpoint-with-a-quote",
        "nested-too-deep",
        "url-pattern-unclosed-param",
    ];
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let case = entry.unwrap().path();
        let name = case.file_name().unwrap().to_str().unwrap().to_owned();
        if beyond_schema.contains(&name.as_str()) {
            continue;
        }
        let errors = schema_errors(&read_json(&case.join("gateway.json")));
        assert!(!errors.is_empty(), "the schema accepts bad config `{name}`");
        checked += 1;
    }
    assert!(checked >= 7, "{checked}");
}

#[test]
fn the_schema_and_gwhost_agree_on_durations_addresses_and_name_lists() {
    // Each value in a config gwhost takes or refuses; the schema must say the same.
    // (A timeout over 24h is gwhost's alone to refuse: `timeout-too-long`; so is an
    // IPv6 address's full shape, as the schema says.)
    let base = |patch: &dyn Fn(&mut Value)| {
        let mut config = json!({"version": 3, "port": 0, "endpoints": [{"endpoint": "/a",
            "backend": [{"host": ["http://127.0.0.1:8000"], "url_pattern": "/"}]}]});
        patch(&mut config);
        config
    };
    let mut cases: Vec<(String, Value, bool)> = Vec::new();
    for (timeout, ok) in [
        ("500ms", true),
        ("2s", true),
        ("1m30s", true),
        ("1.5m", true),
        (".5s", true),
        ("2h45m0.5s", true),
        ("10µs", true),
        ("10us", true),
        ("0", true),
        ("0s", true),
        ("2", false),
        ("00", false),
        ("1d", false),
        ("1S", false),
        ("-1s", false),
        ("+1s", false),
        ("1e3ms", false),
        (" 1s", false),
        ("2 seconds", false),
        ("1.2.3s", false),
        ("s", false),
    ] {
        let config = base(&|c| c["endpoints"][0]["backend"][0]["timeout"] = json!(timeout));
        cases.push((format!("timeout {timeout:?}"), config, ok));
    }
    for (ip, ok) in [
        ("127.0.0.1", true),
        ("0.0.0.0", true),
        ("::1", true),
        ("::", true),
        ("::ffff:127.0.0.1", true),
        ("localhost", false),
        ("[::1]", false),
        ("1.2.3.4:80", false),
        ("999.1.1.1", false),
        ("01.2.3.4", false),
        ("255.255.255.255", true),
    ] {
        cases.push((
            format!("listen_ip {ip:?}"),
            base(&|c| c["listen_ip"] = json!(ip)),
            ok,
        ));
    }
    // JSON Schema's integers are numbers with no fraction: `8080.0` is one.
    for (port, ok) in [
        (json!(8080), true),
        (json!(8080.0), true),
        (json!(0), true),
        (json!(65535), true),
        (json!(8080.5), false),
        (json!(-1), false),
        (json!(65536), false),
        (json!("8080"), false),
    ] {
        cases.push((
            format!("port {port}"),
            base(&|c| c["port"] = port.clone()),
            ok,
        ));
    }
    for (version, ok) in [(json!(3.0), true), (json!(3.5), false), (json!(2), false)] {
        let config = base(&|c| c["version"] = version.clone());
        cases.push((format!("version {version}"), config, ok));
    }
    for (names, ok) in [(json!(["a"]), true), (json!(["a", "a"]), false)] {
        let config = base(&|c| {
            c["endpoints"][0]["extra_config"] =
                json!({"plugin/req-resp-modifier": {"name": names.clone()}})
        });
        cases.push((format!("modifier names {names}"), config, ok));
    }
    for (what, config, ok) in cases {
        let schema = schema_errors(&config);
        let text = config.to_string();
        let parsed = gwhost::config::parse(&text, Path::new("gateway.json"));
        // A plugin name gwhost cannot know without its plugin folder is no shape error.
        let parsed_ok = match &parsed {
            Ok(_) => true,
            Err(e) => e.to_string().contains("no plugin folder"),
        };
        assert_eq!(
            (schema.is_empty(), parsed_ok),
            (ok, ok),
            "{what}: schema says {schema:?}, gwhost says {:?}",
            parsed.err().map(|e| e.to_string())
        );
    }
}
