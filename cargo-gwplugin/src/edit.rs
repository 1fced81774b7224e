//! Format-preserving edits of a plugin's `Cargo.toml` and `rust-toolchain.toml`.
//!
//! Only the values that must change are replaced; comments, order, spacing, inline
//! tables, `workspace = true` entries, renames and features stay as they were.

use std::path::Path;

use toml_edit::{DocumentMut, Item, Table, Value};

use crate::host::Want;

/// One rewritten dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepChange {
    /// `dependencies`, `dev-dependencies`, `target.'cfg(unix)'.build-dependencies`, …
    pub table: String,
    pub key: String,
    pub from: String,
    pub to: String,
}

const DEP_TABLES: [&str; 5] = [
    "dependencies",
    "dev-dependencies",
    "build-dependencies",
    "dev_dependencies",
    "build_dependencies",
];

/// Rewrites every dependency that `want` (given the package name and the current
/// version requirement) has an opinion on. `base` is the manifest's folder, which its
/// relative paths start from.
pub fn align_dependencies(
    doc: &mut DocumentMut,
    base: &Path,
    want: impl Fn(&str, Option<&str>) -> Option<Want>,
) -> Vec<DepChange> {
    let mut changes = Vec::new();
    for name in DEP_TABLES {
        if let Some(table) = doc.get_mut(name).and_then(Item::as_table_like_mut) {
            align_table(name, table, base, &want, &mut changes);
        }
    }
    if let Some(table) = doc
        .get_mut("workspace")
        .and_then(|w| w.get_mut("dependencies"))
        .and_then(Item::as_table_like_mut)
    {
        align_table("workspace.dependencies", table, base, &want, &mut changes);
    }
    if let Some(targets) = doc.get_mut("target").and_then(Item::as_table_like_mut) {
        for (cfg, target) in targets.iter_mut() {
            let Some(target) = target.as_table_like_mut() else {
                continue;
            };
            for name in DEP_TABLES {
                if let Some(table) = target.get_mut(name).and_then(Item::as_table_like_mut) {
                    let label = format!("target.'{}'.{name}", cfg.get());
                    align_table(&label, table, base, &want, &mut changes);
                }
            }
        }
    }
    changes
}

/// The dependency tables `names` (`dependencies`, …) of a manifest, each also under
/// every `[target.'…']`.
pub fn dependency_tables<'d>(
    doc: &'d DocumentMut,
    names: &[&str],
) -> Vec<&'d dyn toml_edit::TableLike> {
    let tables_of = |parent: &'d dyn toml_edit::TableLike| {
        names
            .iter()
            .filter_map(move |name| parent.get(name).and_then(Item::as_table_like))
    };
    let mut tables: Vec<&dyn toml_edit::TableLike> = tables_of(doc.as_table()).collect();
    if let Some(targets) = doc.get("target").and_then(Item::as_table_like) {
        for (_, target) in targets.iter() {
            if let Some(target) = target.as_table_like() {
                tables.extend(tables_of(target));
            }
        }
    }
    tables
}

/// The keys of the package's normal dependencies (target-specific ones too): what
/// `--features dep/feature` may name.
pub fn dependency_names(doc: &DocumentMut) -> Vec<String> {
    dependency_tables(doc, &["dependencies"])
        .into_iter()
        .flat_map(|t| t.iter().map(|(key, _)| key.to_owned()))
        .collect()
}

/// The keys of the dependencies a member inherits from its workspace (`bytes.workspace =
/// true`), in every dependency table.
pub fn inherited_dependencies(doc: &DocumentMut) -> Vec<String> {
    let inherits = |item: &Item| {
        item.as_table_like()
            .and_then(|t| t.get("workspace"))
            .and_then(Item::as_bool)
            == Some(true)
    };
    let mut keys: Vec<String> = dependency_tables(doc, &DEP_TABLES)
        .into_iter()
        .flat_map(|t| t.iter())
        .filter(|(_, item)| inherits(item))
        .map(|(key, _)| key.to_owned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Rewrites the entries of a workspace root's `[workspace.dependencies]` named in `keys`
/// (those a member inherits) that `want` has an opinion on.
pub fn align_workspace_dependencies(
    doc: &mut DocumentMut,
    base: &Path,
    keys: &[String],
    want: impl Fn(&str, Option<&str>) -> Option<Want>,
) -> Vec<DepChange> {
    let mut changes = Vec::new();
    if let Some(table) = doc
        .get_mut("workspace")
        .and_then(|w| w.get_mut("dependencies"))
        .and_then(Item::as_table_like_mut)
    {
        let only = |key: &str| keys.iter().any(|k| k == key);
        align_table_only(
            "workspace.dependencies",
            table,
            base,
            &want,
            &only,
            &mut changes,
        );
    }
    changes
}

fn align_table(
    label: &str,
    table: &mut dyn toml_edit::TableLike,
    base: &Path,
    want: &impl Fn(&str, Option<&str>) -> Option<Want>,
    changes: &mut Vec<DepChange>,
) {
    align_table_only(label, table, base, want, &|_| true, changes);
}

fn align_table_only(
    label: &str,
    table: &mut dyn toml_edit::TableLike,
    base: &Path,
    want: &impl Fn(&str, Option<&str>) -> Option<Want>,
    only: &dyn Fn(&str) -> bool,
    changes: &mut Vec<DepChange>,
) {
    for (key, item) in table.iter_mut() {
        let key = key.get().to_owned();
        if !only(&key) {
            continue;
        }
        let change = |from: String, to: String| DepChange {
            table: label.to_owned(),
            key: key.clone(),
            from,
            to,
        };
        match item {
            Item::Value(Value::String(s)) => {
                let current = s.value().clone();
                let Some(w) = want(&key, Some(&current)) else {
                    continue;
                };
                let target = requirement(&w, &current);
                if let Some(path) = &w.path {
                    // The host takes it from a path: so does the plugin.
                    let mut inline = toml_edit::InlineTable::new();
                    inline.insert("path", Value::from(path.display().to_string()));
                    inline.insert("version", Value::from(target.clone()));
                    let decor = s.decor().clone();
                    let mut value = Value::InlineTable(inline);
                    *value.decor_mut() = decor;
                    let to = value.to_string().trim().to_owned();
                    *item = Item::Value(value);
                    changes.push(change(format!("{current:?}"), to));
                } else if target != current {
                    set_str(item.as_value_mut().expect("a value"), &target);
                    changes.push(change(format!("{current:?}"), format!("{target:?}")));
                }
            }
            Item::Value(Value::InlineTable(t)) => {
                align_entry(&key, t, base, want, changes, label);
            }
            Item::Table(t) => {
                align_entry(&key, t, base, want, changes, label);
            }
            _ => {}
        }
    }
}

/// Whether two paths name one folder (resolved, where they exist; else as written).
fn same_folder(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn align_entry(
    key: &str,
    entry: &mut dyn toml_edit::TableLike,
    base: &Path,
    want: &impl Fn(&str, Option<&str>) -> Option<Want>,
    changes: &mut Vec<DepChange>,
    label: &str,
) {
    if entry.get("workspace").and_then(Item::as_bool) == Some(true) || entry.contains_key("git") {
        return;
    }
    let package = entry
        .get("package")
        .and_then(Item::as_str)
        .unwrap_or(key)
        .to_owned();
    let current = entry
        .get("version")
        .and_then(Item::as_str)
        .map(str::to_owned);
    let Some(w) = want(&package, current.as_deref()) else {
        return;
    };
    let had_path = entry.get("path").and_then(Item::as_str).map(str::to_owned);
    if had_path.is_some() && w.path.is_none() {
        // A path dependency of the plugin's own, where the host uses a registry crate:
        // the plugin's choice; `check` tells whether it matters.
        return;
    }
    let mut from = Vec::new();
    let mut to = Vec::new();
    if let Some(path) = &w.path {
        let path = path.display().to_string();
        // The same folder however written: a relative path, as committed, stays.
        let same = had_path
            .as_deref()
            .is_some_and(|p| same_folder(&base.join(p), Path::new(&path)));
        if !same {
            from.push(format!("path = {:?}", had_path.as_deref().unwrap_or("")));
            to.push(format!("path = {path:?}"));
            match entry.get_mut("path").and_then(Item::as_value_mut) {
                Some(v) => set_str(v, &path),
                None => {
                    entry.insert("path", toml_edit::value(path));
                }
            }
        }
    }
    let target = requirement(&w, current.as_deref().unwrap_or(""));
    // A path dependency without a version stays without one (the path fixes the code).
    if current.as_deref() != Some(target.as_str()) && (current.is_some() || w.path.is_none()) {
        from.push(format!("version = {:?}", current.as_deref().unwrap_or("")));
        to.push(format!("version = {target:?}"));
        match entry.get_mut("version").and_then(Item::as_value_mut) {
            Some(v) => set_str(v, &target),
            None => {
                entry.insert("version", toml_edit::value(target));
            }
        }
    }
    if !to.is_empty() {
        changes.push(DepChange {
            table: label.to_owned(),
            key: key.to_owned(),
            from: from.join(", "),
            to: to.join(", "),
        });
    }
}

/// Turns on `features` of the crate `package` at `version` (the host's) in the
/// manifest's `[dependencies]`: in its entry there (a plain version requirement becomes
/// an inline table; none when a target's table has it from a path or git, or when the
/// only entry is optional or another semver series under the crate's own name),
/// or in a new `[dependencies]` entry `package = { version = "=VERSION", features = [...] }`
/// when the plugin has none. An entry for another semver series of the crate
/// (`bytes05 = { package = "bytes", version = "0.5" }`) is another crate to cargo, left
/// alone. A feature already listed stays once. Returns the change, if any; `None` also
/// when the new entry's key is taken by another crate.
pub fn enable_features(
    doc: &mut DocumentMut,
    package: &str,
    features: &[String],
    version: &str,
) -> Option<DepChange> {
    let host_version = semver::Version::parse(version).ok();
    // This crate, at a version the host's meets (or inherited: the workspace says which).
    let is_this_crate = |key: &str, item: &Item| {
        if item.get("package").and_then(Item::as_str).unwrap_or(key) != package {
            return false;
        }
        // Optional, its features count only in builds that turn it on: not this build's.
        if item.get("optional").and_then(Item::as_bool) == Some(true) {
            return false;
        }
        if item.get("workspace").and_then(Item::as_bool) == Some(true) {
            return true;
        }
        let requirement = item
            .as_str()
            .or_else(|| item.get("version").and_then(Item::as_str));
        match (requirement.map(semver::VersionReq::parse), &host_version) {
            (Some(Ok(req)), Some(v)) => req.matches(v),
            // A path or git dependency without a version: the crate as the plugin has it.
            (None, _) => true,
            _ => false,
        }
    };
    let find = |table: &dyn toml_edit::TableLike| {
        table
            .iter()
            .find(|(key, item)| is_this_crate(key, item))
            .map(|(key, _)| key.to_owned())
    };
    // In `[dependencies]`, not a `[target.'…'.dependencies]`: its cfg may not hold for
    // the build.
    let found: Option<String> = doc
        .get("dependencies")
        .and_then(Item::as_table_like)
        .and_then(find);
    // A target's entry from a path or git: a second entry from the registry would clash
    // with it (cargo refuses two sources for one crate).
    let special_in_a_target =
        doc.get("target")
            .and_then(Item::as_table_like)
            .is_some_and(|targets| {
                targets.iter().any(|(_, target)| {
                    target
                        .get("dependencies")
                        .and_then(Item::as_table_like)
                        .is_some_and(|table| {
                            table.iter().any(|(key, item)| {
                                item.get("package").and_then(Item::as_str).unwrap_or(key) == package
                                    && (item.get("path").is_some() || item.get("git").is_some())
                            })
                        })
                })
            });
    let key = match found {
        Some(key) => key,
        None if special_in_a_target => return None,
        None => {
            let table = doc
                .entry("dependencies")
                .or_insert_with(toml_edit::table)
                .as_table_like_mut()?;
            if table.contains_key(package) {
                return None;
            }
            let mut entry = toml_edit::InlineTable::new();
            entry.insert("version", Value::from(format!("={version}")));
            table.insert(package, Item::Value(Value::InlineTable(entry)));
            package.to_owned()
        }
    };
    let table = doc.get_mut("dependencies")?.as_table_like_mut()?;
    let item = table.get_mut(&key)?;
    if let Some(requirement) = item.as_str().map(str::to_owned) {
        // `bytes = "1"` → `bytes = { version = "1" }`, keeping what follows it.
        let decor = item.as_value().map(|v| v.decor().clone());
        let mut entry = toml_edit::InlineTable::new();
        entry.insert("version", Value::from(requirement));
        let mut value = Value::InlineTable(entry);
        if let Some(decor) = decor {
            *value.decor_mut() = decor;
        }
        *item = Item::Value(value);
    }
    if let Some(inline) = item.as_inline_table_mut()
        && !inline.contains_key("features")
    {
        // The space before `}` follows the new last value, not the old one's comma.
        let suffix = inline.iter_mut().last().and_then(|(_, value)| {
            let suffix = value.decor().suffix().cloned();
            value.decor_mut().set_suffix("");
            suffix
        });
        let mut features = Value::Array(toml_edit::Array::new());
        if let Some(suffix) = suffix {
            features.decor_mut().set_suffix(suffix);
        }
        inline.insert("features", features);
    }
    let entry = item.as_table_like_mut()?;
    let listed = entry
        .entry("features")
        .or_insert(Item::Value(Value::Array(toml_edit::Array::new())))
        .as_array_mut()?;
    let from = listed
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect::<Vec<_>>();
    for feature in features {
        if !from.contains(feature) {
            listed.push(feature.as_str());
        }
    }
    let to = listed
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect::<Vec<_>>();
    (to != from).then(|| DepChange {
        table: "dependencies".to_owned(),
        key,
        from: format!("features = {from:?}"),
        to: format!("features = {to:?}"),
    })
}

/// The requirement for `want`: `=x.y.z` for a boundary crate; for another crate the
/// current requirement when the host's version meets it, else `x.y.z`.
fn requirement(want: &Want, current: &str) -> String {
    if want.exact {
        return format!("={}", want.version);
    }
    let fits = semver::VersionReq::parse(current)
        .ok()
        .zip(semver::Version::parse(&want.version).ok())
        .is_some_and(|(req, v)| req.matches(&v));
    if fits {
        current.to_owned()
    } else if current.trim_start().starts_with('=') {
        // An exact pin stays exact (the template pins `gwplugin-build` so).
        format!("={}", want.version)
    } else {
        want.version.clone()
    }
}

/// Replaces a string value, keeping the spacing and comments around it.
fn set_str(value: &mut Value, new: &str) {
    let decor = value.decor().clone();
    *value = Value::from(new);
    *value.decor_mut() = decor;
}

/// Makes sure `[lib] crate-type` has `cdylib`. Returns true if it changed anything.
pub fn ensure_cdylib(doc: &mut DocumentMut) -> bool {
    if !doc.contains_key("lib") {
        let mut lib = Table::new();
        lib.insert(
            "crate-type",
            toml_edit::value(Value::Array(["cdylib"].into_iter().collect())),
        );
        doc.insert("lib", Item::Table(lib));
        return true;
    }
    let Some(lib) = doc.get_mut("lib").and_then(Item::as_table_like_mut) else {
        return false;
    };
    let key = if lib.contains_key("crate_type") {
        "crate_type"
    } else {
        "crate-type"
    };
    match lib.get_mut(key).and_then(Item::as_array_mut) {
        Some(types) => {
            if types.iter().any(|t| t.as_str() == Some("cdylib")) {
                false
            } else {
                types.push("cdylib");
                true
            }
        }
        None => {
            lib.insert(
                "crate-type",
                toml_edit::value(Value::Array(["cdylib"].into_iter().collect())),
            );
            true
        }
    }
}

/// Whether a manifest's `[lib] crate-type` has `cdylib`.
pub fn has_cdylib(doc: &DocumentMut) -> bool {
    doc.get("lib")
        .and_then(|l| l.get("crate-type").or_else(|| l.get("crate_type")))
        .and_then(Item::as_array)
        .is_some_and(|a| a.iter().any(|t| t.as_str() == Some("cdylib")))
}

/// Where `profile` gets `panic = "abort"` from in a workspace root's `Cargo.toml`: the
/// profile itself, or one it `inherits` from (a custom profile's chain ends at `dev` or
/// `release`, which inherit nothing here). `None` when its panic strategy is unwind.
/// (cargo ignores `panic` in `test` and `bench`.)
pub fn panic_abort_source(root: &DocumentMut, profile: &str) -> Option<String> {
    let profiles = root.get("profile").and_then(Item::as_table_like);
    let mut name = profile.to_owned();
    for _ in 0..16 {
        if name == "test" || name == "bench" {
            return None;
        }
        let table = profiles.and_then(|p| p.get(&name));
        match table.and_then(|t| t.get("panic")).and_then(Item::as_str) {
            Some("abort") => return Some(name),
            Some(_) => return None,
            None => {}
        }
        name = match table.and_then(|t| t.get("inherits")).and_then(Item::as_str) {
            Some(parent) if name != "dev" && name != "release" => parent.to_owned(),
            _ => return None,
        };
    }
    None
}

/// `[lib] crate-type` as written, or what cargo assumes without it.
pub fn crate_types(doc: &DocumentMut) -> String {
    match doc
        .get("lib")
        .and_then(|l| l.get("crate-type").or_else(|| l.get("crate_type")))
        .and_then(Item::as_array)
    {
        Some(a) => a
            .iter()
            .filter_map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        None => "lib (no `crate-type`)".to_owned(),
    }
}

/// The `rust-toolchain.toml` text that pins `channel`, from the current text if any.
/// None when the current file already pins it.
pub fn toolchain_file(current: Option<&str>, channel: &str) -> Result<Option<String>, String> {
    let fresh = || {
        format!(
            "# The compiler of the host this plugin is built for (written by `cargo gwplugin sync`).\n\
             [toolchain]\nchannel = \"{channel}\"\n"
        )
    };
    let Some(current) = current else {
        return Ok(Some(fresh()));
    };
    // A legacy `rust-toolchain` file may hold just a toolchain name: rewritten in the TOML
    // form, which rustup reads from that file too.
    let words: Vec<&str> = current.split_whitespace().collect();
    if let [name] = words.as_slice()
        && !name.contains(['=', '['])
    {
        return Ok((*name != channel).then(fresh));
    }
    let mut doc: DocumentMut = current
        .parse()
        .map_err(|e: toml_edit::TomlError| e.to_string())?;
    if doc
        .get("toolchain")
        .and_then(|t| t.get("channel"))
        .and_then(Item::as_str)
        == Some(channel)
    {
        return Ok(None);
    }
    let toolchain = doc
        .entry("toolchain")
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_like_mut()
        .ok_or("`toolchain` is not a table")?;
    match toolchain.get_mut("channel").and_then(Item::as_value_mut) {
        Some(v) => set_str(v, channel),
        None => {
            toolchain.insert("channel", toml_edit::value(channel));
        }
    }
    Ok(Some(doc.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(name: &str, _current: Option<&str>) -> Option<Want> {
        match name {
            "bytes" => Some(Want {
                version: "1.12.2".into(),
                exact: true,
                path: None,
            }),
            "serde" => Some(Want {
                version: "1.0.228".into(),
                exact: false,
                path: None,
            }),
            _ => None,
        }
    }

    #[test]
    fn pins_boundary_and_keeps_fitting_requirements() {
        let mut doc: DocumentMut =
            "[dependencies]\nbytes = \"1\"  # boundary\nserde = \"1.0\"\nregex = \"1\"\n"
                .parse()
                .unwrap();
        let changes = align_dependencies(&mut doc, Path::new("."), want);
        assert_eq!(
            doc.to_string(),
            "[dependencies]\nbytes = \"=1.12.2\"  # boundary\nserde = \"1.0\"\nregex = \"1\"\n"
        );
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].from, "\"1\"");
        assert_eq!(changes[0].to, "\"=1.12.2\"");
    }

    #[test]
    fn toolchain_file_is_created_or_edited_in_place() {
        assert!(
            toolchain_file(None, "1.95.0")
                .unwrap()
                .unwrap()
                .contains("channel = \"1.95.0\"")
        );
        let cur = "[toolchain]\nchannel = \"1.94.0\" # old\ncomponents = [\"clippy\"]\n";
        assert_eq!(
            toolchain_file(Some(cur), "1.95.0").unwrap().unwrap(),
            "[toolchain]\nchannel = \"1.95.0\" # old\ncomponents = [\"clippy\"]\n"
        );
        assert_eq!(
            toolchain_file(Some("[toolchain]\nchannel = \"1.95.0\"\n"), "1.95.0").unwrap(),
            None
        );
        // A legacy file with just a name.
        assert!(
            toolchain_file(Some("nightly\n"), "1.95.0")
                .unwrap()
                .unwrap()
                .contains("[toolchain]\nchannel = \"1.95.0\"\n")
        );
        assert_eq!(toolchain_file(Some("1.95.0\n"), "1.95.0").unwrap(), None);
    }

    #[test]
    fn cdylib_is_added_once() {
        let mut doc: DocumentMut = "[lib]\ncrate-type = [\"rlib\"]\n".parse().unwrap();
        assert!(!has_cdylib(&doc));
        assert!(ensure_cdylib(&mut doc));
        assert!(!ensure_cdylib(&mut doc));
        assert_eq!(
            doc.to_string(),
            "[lib]\ncrate-type = [\"rlib\", \"cdylib\"]\n"
        );
    }

    /// `enable_features` of `raw_value` for `serde_json` 1.0.154 in `manifest`: the new
    /// text, or `None` when it changes nothing.
    fn with_raw_value(manifest: &str, package: &str, version: &str) -> Option<String> {
        let mut doc: DocumentMut = manifest.parse().unwrap();
        enable_features(&mut doc, package, &["raw_value".to_owned()], version)
            .map(|_| doc.to_string())
    }

    #[test]
    fn features_go_in_the_entry_of_the_hosts_series_wherever_it_is() {
        // A plain requirement becomes a table, what follows it kept.
        assert_eq!(
            with_raw_value(
                "[dependencies]\nserde_json = \"1\" # json\n",
                "serde_json",
                "1.0.154"
            )
            .unwrap(),
            "[dependencies]\nserde_json = { version = \"1\", features = [\"raw_value\"] } # json\n"
        );
        // Inherited from the workspace: its entry takes the features, in its own dotted form.
        assert_eq!(
            with_raw_value(
                "[dependencies]\nserde_json.workspace = true\n",
                "serde_json",
                "1.0.154"
            )
            .unwrap(),
            "[dependencies]\nserde_json.workspace = true\nserde_json.features = [\"raw_value\"]\n"
        );
        // Renamed.
        let renamed = "[dependencies]\njson = { package = \"serde_json\", version = \"1.0\" }\n";
        assert_eq!(
            with_raw_value(renamed, "serde_json", "1.0.154").unwrap(),
            "[dependencies]\njson = { package = \"serde_json\", version = \"1.0\", features = [\"raw_value\"] }\n"
        );
        // A target's table is not for every build (`cfg(windows)`): a `[dependencies]` entry.
        let target = "[target.'cfg(windows)'.dependencies]\nserde_json = \"1\"\n";
        assert_eq!(
            with_raw_value(target, "serde_json", "1.0.154").unwrap(),
            "[target.'cfg(windows)'.dependencies]\nserde_json = \"1\"\n\n[dependencies]\nserde_json = { version = \"=1.0.154\", features = [\"raw_value\"] }\n"
        );
        // Another series is another crate: a new entry for the host's.
        let other_series = "[dependencies]\nbytes05 = { package = \"bytes\", version = \"0.5\" }\n";
        assert_eq!(
            with_raw_value(other_series, "bytes", "1.12.2").unwrap(),
            "[dependencies]\nbytes05 = { package = \"bytes\", version = \"0.5\" }\nbytes = { version = \"=1.12.2\", features = [\"raw_value\"] }\n"
        );
        // Optional: not this build's features; its key taken, nothing to add.
        let optional = "[dependencies]\nserde_json = { version = \"1\", optional = true }\n";
        assert_eq!(with_raw_value(optional, "serde_json", "1.0.154"), None);
        // Without default features in a target's table: a `[dependencies]` entry beside it.
        let no_defaults = "[target.'cfg(unix)'.dependencies]\nserde_json = { version = \"1\", default-features = false }\n";
        assert!(
            with_raw_value(no_defaults, "serde_json", "1.0.154")
                .unwrap()
                .ends_with("[dependencies]\nserde_json = { version = \"=1.0.154\", features = [\"raw_value\"] }\n")
        );
        // A target's entry from a path: a registry entry beside it would clash.
        let path = "[target.'cfg(unix)'.dependencies]\nserde_json = { path = \"../sj\" }\n";
        assert_eq!(with_raw_value(path, "serde_json", "1.0.154"), None);
        // ... unless its key is taken by that other series.
        let taken = "[dependencies]\nbytes = \"0.5\"\n";
        assert_eq!(with_raw_value(taken, "bytes", "1.12.2"), None);
        // Already on: no change.
        let on = "[dependencies]\nserde_json = { version = \"1\", features = [\"raw_value\"] }\n";
        assert_eq!(with_raw_value(on, "serde_json", "1.0.154"), None);
    }
}
