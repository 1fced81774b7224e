//! `--register`: merging a registration snippet into a gwhost config. One folder per
//! case under `tests/fixtures/register/`: `in.json` (the config), `exports` (`kind name`
//! lines, `--endpoint PATH` and `--plugin NAME` lines), and either `out.json` (the config afterwards) or
//! `error.txt` (the message and help; the config must then be unchanged), and maybe
//! `folder-files` (files already in the plugin folder, `NAME CONTENT` per line), and
//! `notes.txt` (the notes a successful register gives, one per line; none without it).
//! `[FOLDER]` stands for the folder the plugin was built into.
//! Set `GWPLUGIN_BLESS=1` to write the expected files from what the code does.

use std::path::Path;

use cargo_gwplugin::build::snippet;
use cargo_gwplugin::register::{Wiring, register};
use gwplugin_build::elf::ExportedPlugin;
use serde_json::json;

fn case(dir: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("plugins");
    std::fs::create_dir_all(&folder).unwrap();
    let folder = folder.canonicalize().unwrap();
    // Files already in the plugin folder: `folder-files`, one `NAME CONTENT` per line.
    if let Ok(files) = std::fs::read_to_string(dir.join("folder-files")) {
        for line in files.lines() {
            let (name, content) = line.split_once(' ').unwrap();
            std::fs::write(folder.join(name), content).unwrap();
        }
    }
    let subst = |s: &str| s.replace("[FOLDER]", &folder.display().to_string());
    let unsubst = |s: &str| s.replace(&folder.display().to_string(), "[FOLDER]");

    let config = tmp.path().join("gateway.json");
    let original = subst(&std::fs::read_to_string(dir.join("in.json")).unwrap());
    std::fs::write(&config, &original).unwrap();
    let mut exports = Vec::new();
    let mut endpoints = Vec::new();
    let mut plugins = Vec::new();
    for line in std::fs::read_to_string(dir.join("exports"))
        .unwrap()
        .lines()
    {
        match line.split_once(' ').unwrap() {
            ("--endpoint", path) => endpoints.push(path.to_owned()),
            ("--plugin", name) => plugins.push(name.to_owned()),
            (kind, name) => exports.push(ExportedPlugin {
                kind: kind.to_owned(),
                name: name.to_owned(),
            }),
        }
    }
    let defaults = json!({
        "tenant": {"header": "x-tenant", "value": "acme"},
        "mock": {"backend": "http://127.0.0.1:9"},
        "tenant-server": {"keys": ["k"]}
    });
    let snip = tenant_snippet(&folder, &exports, defaults.as_object().unwrap());
    let bless = std::env::var_os("GWPLUGIN_BLESS").is_some();
    let wiring = Wiring {
        exports: &exports,
        defaults: defaults.as_object().unwrap(),
        endpoints: &endpoints,
        plugins: &plugins,
    };
    match register(&config, &snip, "tenant", &wiring) {
        Ok(merged) => {
            let got = unsubst(&std::fs::read_to_string(&config).unwrap());
            if bless {
                std::fs::write(dir.join("out.json"), &got).unwrap();
            }
            let want = std::fs::read_to_string(dir.join("out.json"))
                .unwrap_or_else(|_| panic!("{}: no out.json", dir.display()));
            assert_eq!(got, want, "{}", dir.display());
            // The notes (plugins left unwired), one per line: `notes.txt`, or none.
            let notes: String = merged.notes.iter().map(|n| format!("{n}\n")).collect();
            if bless && !notes.is_empty() {
                std::fs::write(dir.join("notes.txt"), &notes).unwrap();
            }
            let want = std::fs::read_to_string(dir.join("notes.txt")).unwrap_or_default();
            assert_eq!(notes, want, "{}", dir.display());
        }
        Err(e) => {
            let got = format!(
                "{}\nhelp: {}\n",
                unsubst(&e.to_string()).replace(&tmp.path().display().to_string(), "[TMP]"),
                e.help().unwrap_or_default()
            );
            if bless {
                std::fs::write(dir.join("error.txt"), &got).unwrap();
            }
            let want = std::fs::read_to_string(dir.join("error.txt"))
                .unwrap_or_else(|_| panic!("{}: failed unexpectedly: {got}", dir.display()));
            assert_eq!(got, want, "{}", dir.display());
            assert_eq!(
                std::fs::read_to_string(&config).unwrap(),
                original,
                "a failed register changes nothing"
            );
        }
    }
}

#[test]
fn register_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/register");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 6);
    for dir in dirs {
        case(&dir);
    }
}

/// A config at `dir/gateway.json` loading plugins from `dir/plugins`, where `plugins` holds
/// a real plugin file (the `all-kinds` fixture: `stamp-server`, `services-client`,
/// `stamp-modifier`) named `placed_as`.
fn config_beside_a_real_plugin(
    dir: &Path,
    placed_as: &str,
    endpoint_modifiers: &[&str],
) -> std::path::PathBuf {
    let folder = dir.join("plugins");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(
        gwplugin_e2e::build_fixture("all-kinds"),
        folder.join(placed_as),
    )
    .unwrap();
    let config = dir.join("gateway.json");
    let text = serde_json::to_string_pretty(&json!({
        "version": 3,
        "plugin": {"folder": "plugins", "pattern": ".so"},
        "endpoints": [{
            "endpoint": "/a",
            "extra_config": {"plugin/req-resp-modifier": {"name": endpoint_modifiers}},
            "backend": [{"host": ["http://h"], "url_pattern": "/"}]
        }]
    }))
    .unwrap();
    std::fs::write(&config, text).unwrap();
    config
}

/// Every plugin of `exports`, no defaults, no choices.
fn wiring_of(exports: &[ExportedPlugin]) -> Wiring<'_> {
    static NO_DEFAULTS: std::sync::OnceLock<serde_json::Map<String, serde_json::Value>> =
        std::sync::OnceLock::new();
    Wiring {
        exports,
        defaults: NO_DEFAULTS.get_or_init(Default::default),
        endpoints: &[],
        plugins: &[],
    }
}

/// The snippet `build` writes for `tenant.so` in `folder`, exporting `exports`.
fn tenant_snippet(
    folder: &Path,
    exports: &[ExportedPlugin],
    defaults: &serde_json::Map<String, serde_json::Value>,
) -> cargo_gwplugin::register::Json {
    snippet(folder, "tenant.so", &"ab".repeat(32), exports, defaults)
}

/// Changes the JSON config at `config` in place.
fn edit_config(config: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut text: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    edit(&mut text);
    std::fs::write(config, text.to_string()).unwrap();
}

fn modifier(name: &str) -> Vec<ExportedPlugin> {
    vec![ExportedPlugin {
        kind: "modifier".to_owned(),
        name: name.to_owned(),
    }]
}

#[test]
fn a_name_another_file_in_the_folder_registers_is_refused_before_gwhost_would() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config_beside_a_real_plugin(tmp.path(), "all-kinds.so", &[]);
    let before = std::fs::read_to_string(&config).unwrap();
    let exports = modifier("stamp-modifier");
    let snip = tenant_snippet(&tmp.path().join("plugins"), &exports, &Default::default());
    let err = register(&config, &snip, "tenant", &wiring_of(&exports)).unwrap_err();
    assert_eq!(
        format!("{err}\nhelp: {}", err.help().unwrap_or_default()),
        format!(
            "cannot register `tenant` in `{}`: `all-kinds.so` in its plugin folder registers a plugin `stamp-modifier` too, and gwhost refuses a name registered twice\n\
             help: rename one of the two `stamp-modifier` (in `gwplugin::export!`), or remove `all-kinds.so` from the folder and from `plugin.sha256` if it is stale; \
             a plugin moved from `all-kinds.so` to this file: take `stamp-modifier` out of the config, register `all-kinds.so` without it, \
             then this file, then wire `stamp-modifier` again",
            config.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
}

#[test]
fn a_rebuild_that_renamed_a_plugin_the_config_uses_is_refused_with_the_new_names() {
    // The file in the folder registered `stamp-modifier`, which the config uses; the new
    // build registers `tenant` instead. Registered as a first time before, it wired
    // everything again and left the config naming a plugin gwhost no longer has.
    let tmp = tempfile::tempdir().unwrap();
    let config = config_beside_a_real_plugin(tmp.path(), "tenant.so", &["stamp-modifier"]);
    let before = std::fs::read_to_string(&config).unwrap();
    let exports = modifier("tenant");
    let snip = tenant_snippet(&tmp.path().join("plugins"), &exports, &Default::default());
    let err = register(&config, &snip, "tenant", &wiring_of(&exports)).unwrap_err();
    assert_eq!(
        format!("{err}\nhelp: {}", err.help().unwrap_or_default()),
        format!(
            "cannot register `tenant` in `{}`: the config uses `stamp-modifier`, which `tenant.so` registered and the new build does not\n\
             help: a plugin was renamed or removed: rename it in the config, in `name` and its config object, to what the file registers now \
             (`tenant`; a default config follows a name without one), or remove it and register again with `--plugin NAME` to wire a new one",
            config.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
}

#[test]
fn a_rebuild_notes_only_the_plugins_new_since_the_file_it_replaces() {
    // The file in the folder registered `stamp-server`, `services-client` and
    // `stamp-modifier`; the config uses only the modifier, by the author's choice. The
    // note was about the other two on every rebuild; it is about what is new.
    let tmp = tempfile::tempdir().unwrap();
    let config = config_beside_a_real_plugin(tmp.path(), "tenant.so", &["stamp-modifier"]);
    let mut exports = modifier("stamp-modifier");
    for (kind, name) in [
        ("http-server", "stamp-server"),
        ("http-client", "services-client"),
        ("modifier", "brand-new"),
    ] {
        exports.push(ExportedPlugin {
            kind: kind.to_owned(),
            name: name.to_owned(),
        });
    }
    let snip = tenant_snippet(&tmp.path().join("plugins"), &exports, &Default::default());
    let merged = register(&config, &snip, "tenant", &wiring_of(&exports)).unwrap();
    assert_eq!(
        merged.notes,
        [
            "`brand-new` not wired in: the config already uses `tenant.so`'s plugins, so its wiring was left \
          as it is; wire it with `--plugin NAME` (and `--endpoint PATH` for a modifier or an \
          http-client), or by hand"
        ]
    );
}

#[test]
fn a_file_an_earlier_registration_only_pinned_is_wired_the_first_time_it_is_registered() {
    // Registering another plugin pins every file in the folder; registering this one then
    // counted as a rebuild, and wired nothing.
    let tmp = tempfile::tempdir().unwrap();
    let config = config_beside_a_real_plugin(tmp.path(), "all-kinds.so", &[]);
    edit_config(&config, |text| {
        text["plugin"]["sha256"] =
            json!({"all-kinds.so": "cd".repeat(32), "other.so": "ef".repeat(32)});
    });
    let exports = vec![ExportedPlugin {
        kind: "http-server".to_owned(),
        name: "stamp-server".to_owned(),
    }];
    let snip = snippet(
        &tmp.path().join("plugins"),
        "all-kinds.so",
        &"ab".repeat(32),
        &exports,
        &Default::default(),
    );
    let merged = register(&config, &snip, "all-kinds", &wiring_of(&exports)).unwrap();
    assert!(
        merged
            .changes
            .iter()
            .any(|c| c == "added `stamp-server` to `extra_config.\"plugin/http-server\".name`"),
        "{:?}",
        merged.changes
    );
}

#[test]
fn a_stale_copy_gwhost_does_not_load_is_no_reason_to_refuse() {
    // The config pins `a.so`, which registers the `stamp-modifier` it uses; a stale
    // `tenant.so` (registering the same) sits unpinned beside it: gwhost skips it. The new
    // `tenant.so` was refused for dropping `stamp-modifier`.
    let tmp = tempfile::tempdir().unwrap();
    let config = config_beside_a_real_plugin(tmp.path(), "a.so", &["stamp-modifier"]);
    let folder = tmp.path().join("plugins");
    std::fs::copy(folder.join("a.so"), folder.join("tenant.so")).unwrap();
    edit_config(&config, |text| {
        text["plugin"]["sha256"] = json!({"a.so": "cd".repeat(32)});
    });
    let exports = modifier("tenant");
    let snip = tenant_snippet(&folder, &exports, &Default::default());
    let merged = register(&config, &snip, "tenant", &wiring_of(&exports)).unwrap();
    assert!(merged.notes.is_empty(), "{:?}", merged.notes);
}

#[test]
fn a_pinned_copy_that_cannot_be_read_as_a_plugin_still_makes_a_rebuild() {
    // Its names unknown, the registration counted as a first one: it wired the new build
    // beside what the config used (or, with two endpoints, asked which).
    let tmp = tempfile::tempdir().unwrap();
    let config = config_beside_a_real_plugin(tmp.path(), "tenant.so", &["stamp-modifier"]);
    let folder = tmp.path().join("plugins");
    std::fs::write(folder.join("tenant.so"), "not an ELF file").unwrap();
    edit_config(&config, |text| {
        text["plugin"]["sha256"] = json!({"tenant.so": "cd".repeat(32)});
    });
    let exports = modifier("tenant");
    let snip = tenant_snippet(&folder, &exports, &Default::default());
    let merged = register(&config, &snip, "tenant", &wiring_of(&exports)).unwrap();
    assert_eq!(merged.changes, ["set the sha256 of `tenant.so`"]);
    assert!(
        merged.notes[0].starts_with(
            "the copy of `tenant.so` in the plugin folder could not be read as a plugin"
        ),
        "{:?}",
        merged.notes
    );
}

#[test]
fn a_file_in_a_folder_the_config_did_not_name_yet_was_never_loaded() {
    // No `plugin` block: gwhost loaded nothing, whatever lies in `plugins/`. A leftover
    // copy there registering what the config wires by hand refused the registration.
    let tmp = tempfile::tempdir().unwrap();
    let config = config_beside_a_real_plugin(tmp.path(), "tenant.so", &["stamp-modifier"]);
    edit_config(&config, |text| {
        text.as_object_mut().unwrap().remove("plugin");
    });
    let exports = modifier("tenant");
    let snip = tenant_snippet(&tmp.path().join("plugins"), &exports, &Default::default());
    register(&config, &snip, "tenant", &wiring_of(&exports)).unwrap();
}

#[test]
fn a_name_listed_without_a_config_on_purpose_keeps_getting_none() {
    // The config lists `stamp-modifier`, which the loaded copy registered, with no config
    // object: `{}` by the operator's choice. A rebuild filled in the crate's default.
    let tmp = tempfile::tempdir().unwrap();
    let config = config_beside_a_real_plugin(tmp.path(), "tenant.so", &["stamp-modifier"]);
    let exports = modifier("stamp-modifier");
    let defaults = json!({"stamp-modifier": {"value": "from the crate"}});
    let wiring = Wiring {
        exports: &exports,
        defaults: defaults.as_object().unwrap(),
        endpoints: &[],
        plugins: &[],
    };
    let snip = tenant_snippet(
        &tmp.path().join("plugins"),
        &exports,
        defaults.as_object().unwrap(),
    );
    let merged = register(&config, &snip, "tenant", &wiring).unwrap();
    assert!(
        !merged.changes.iter().any(|c| c.contains("default config")),
        "{:?}",
        merged.changes
    );
    // Nor when `--plugin` names it (it is listed already: its `{}` stays).
    let chosen = ["stamp-modifier".to_owned()];
    let merged = register(
        &config,
        &snip,
        "tenant",
        &Wiring {
            plugins: &chosen,
            ..wiring
        },
    )
    .unwrap();
    assert!(
        !merged.changes.iter().any(|c| c.contains("default config")),
        "{:?}",
        merged.changes
    );
}
