//! `--register CONFIG`: merges a registration snippet into a gwhost config, keeping every
//! other key, and the order of keys, as they were. The config is read and its endpoints
//! chosen before the build ([`ConfigFile::read`]), merged in memory after it
//! ([`ConfigFile::merge`]), and written with the plugin, all or nothing: a conflict
//! changes no file.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use gwplugin_build::elf::ExportedPlugin;

use crate::error::Error;

/// JSON that keeps the order of object keys. (serde_json's `preserve_order` would do, but
/// serde_json is a boundary crate: its features must not change in this workspace.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(IndexMap<String, Json>),
}

impl From<&Value> for Json {
    fn from(v: &Value) -> Self {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(s.clone()),
            Value::Array(a) => Json::Array(a.iter().map(Json::from).collect()),
            Value::Object(o) => {
                Json::Object(o.iter().map(|(k, v)| (k.clone(), Json::from(v))).collect())
            }
        }
    }
}

impl Json {
    fn as_object_mut(&mut self) -> Option<&mut IndexMap<String, Json>> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }
    /// `self[key]` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(o) => o.get(key),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }
}

struct Merge<'a> {
    config: &'a Path,
    plugin: &'a str,
    changes: Vec<String>,
    /// What the author should know and no change says (plugins left unwired, names no
    /// file registers, a copy that could not be read, pins of missing files).
    notes: Vec<String>,
}

impl Merge<'_> {
    fn conflict(&self, message: impl Into<String>, help: impl Into<String>) -> Error {
        Error::RegisterConflict {
            plugin: self.plugin.to_owned(),
            config: self.config.to_owned(),
            message: message.into(),
            help: help.into(),
        }
    }

    /// `obj[key]` as an object, created (and noted) when missing.
    fn object<'o>(
        &mut self,
        obj: &'o mut IndexMap<String, Json>,
        key: &str,
        at: &str,
    ) -> Result<&'o mut IndexMap<String, Json>, Error> {
        if !obj.contains_key(key) {
            self.changes.push(format!("added `{at}`"));
            obj.insert(key.to_owned(), Json::Object(IndexMap::new()));
        }
        let conflict = self.conflict(
            format!("`{at}` is not an object"),
            format!("fix `{at}` in the config"),
        );
        obj.get_mut(key)
            .and_then(Json::as_object_mut)
            .ok_or(conflict)
    }

    /// Adds `names` to a namespace block (`name` a list) with their default configs (from
    /// the snippet's block).
    fn add_names(
        &mut self,
        block: &mut IndexMap<String, Json>,
        names: &[&str],
        snippet: &Json,
        at: &str,
    ) -> Result<(), Error> {
        let list = block
            .entry("name".to_owned())
            .or_insert_with(|| Json::Array(vec![]));
        if let Json::String(one) = list {
            *list = Json::Array(vec![Json::String(one.clone())]);
        }
        let Json::Array(list) = list else {
            return Err(self.conflict(
                format!("`{at}.name` is not a list"),
                format!("fix `{at}.name` in the config"),
            ));
        };
        // A name listed already keeps what it has: without an object, `{}` on purpose.
        let mut added = Vec::new();
        for name in names {
            if !list.iter().any(|n| n.as_str() == Some(name)) {
                list.push(Json::String((*name).to_owned()));
                self.changes.push(format!("added `{name}` to `{at}.name`"));
                added.push(*name);
            }
        }
        for name in added {
            if !block.contains_key(name) {
                block.insert(
                    (*name).to_owned(),
                    snippet.get(name).cloned().unwrap_or(Json::Null),
                );
                self.changes
                    .push(format!("added the default config of `{name}`"));
            }
        }
        Ok(())
    }
}

/// What a registration wires, besides the snippet: every plugin the file exports (the
/// snippet shows one http-client of several), their default configs, and the user's
/// choices (`--endpoint`, `--plugin`).
#[derive(Debug, Clone, Copy)]
pub struct Wiring<'a> {
    pub exports: &'a [ExportedPlugin],
    pub defaults: &'a serde_json::Map<String, Value>,
    /// The endpoints for modifiers and the http-client; none: the config's only one.
    pub endpoints: &'a [String],
    /// Only these plugins, also on a rebuild; none: every plugin on a first registration
    /// (one http-client), none on a rebuild (with `endpoints`, every modifier and the
    /// http-client).
    pub plugins: &'a [String],
}

/// A gwhost config to register a plugin in, read and checked before anything is built.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    root: Json,
}

/// The config with the plugin registered.
#[derive(Debug)]
pub struct Merged {
    /// The new text of the config; `None` when the plugin was registered already.
    pub text: Option<String>,
    /// What changed, one phrase each.
    pub changes: Vec<String>,
    /// What the author should know and no change says: plugins left unwired, names no
    /// file registers, a copy that could not be read, pins of missing files.
    pub notes: Vec<String>,
}

/// Where `build --register` puts a plugin when the config has no `plugin.folder`: a
/// folder beside the config, which then names it relatively (the config and its plugins
/// move together, and `cargo clean` leaves them alone).
pub const DEFAULT_PLUGIN_FOLDER: &str = "plugins";

/// The directory relative paths in the config at `path` are read from.
fn config_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

impl ConfigFile {
    /// Fails as registering would when the config loads its plugins from a folder other
    /// than `out_dir` (checked before a build: `--out-dir` is known then).
    pub fn check_out_dir(&self, plugin: &str, out_dir: &Path) -> Result<(), Error> {
        let m = Merge {
            config: &self.path,
            plugin,
            changes: Vec::new(),
            notes: Vec::new(),
        };
        match self
            .root
            .get("plugin")
            .and_then(|p| p.get("folder"))
            .and_then(Json::as_str)
        {
            Some(existing) if !existing.is_empty() => {
                folder_conflict(&m, config_dir(&self.path), existing, out_dir)
            }
            _ => Ok(()),
        }
    }

    /// The folder the config loads plugins from (its `plugin.folder`, read from the
    /// config's directory), or [`DEFAULT_PLUGIN_FOLDER`] beside it when it names none.
    pub fn plugin_folder(&self) -> PathBuf {
        let folder = self
            .root
            .get("plugin")
            .and_then(|p| p.get("folder"))
            .and_then(Json::as_str)
            .unwrap_or(DEFAULT_PLUGIN_FOLDER);
        config_dir(&self.path).join(folder)
    }

    /// Reads the config at `path` and checks that each of `endpoints` (`PATH` or
    /// `METHOD PATH`) names one of its endpoints.
    pub fn read(path: &Path, plugin: &str, endpoints: &[String]) -> Result<Self, Error> {
        let m = Merge {
            config: path,
            plugin,
            changes: Vec::new(),
            notes: Vec::new(),
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            m.conflict(
                e.to_string(),
                "pass an existing gwhost config to `--register` (`gwhost check -c FILE` \
                 validates one)",
            )
        })?;
        let root: Json = serde_json::from_str(&text).map_err(|e| {
            // Likely the wrong file (a `Cargo.toml`), not a config to fix.
            m.conflict(
                format!("the config is not JSON: {e}"),
                "pass the gwhost config (a JSON file; `gwhost check -c FILE` validates one)",
            )
        })?;
        if !matches!(root, Json::Object(_)) {
            return Err(m.conflict(
                "the config is not a JSON object",
                "pass a gwhost config file",
            ));
        }
        // Before the build, as gwhost would refuse it (joined, an empty folder would name
        // the config's own folder silently).
        if root
            .get("plugin")
            .and_then(|p| p.get("folder"))
            .and_then(Json::as_str)
            == Some("")
        {
            return Err(empty_folder(&m));
        }
        if !endpoints.is_empty() {
            let list = match root.get("endpoints") {
                Some(Json::Array(list)) => list.as_slice(),
                _ => &[],
            };
            select_endpoints(list, endpoints)
                .map_err(|(message, help)| m.conflict(message, help))?;
        }
        Ok(ConfigFile {
            path: path.to_owned(),
            root,
        })
    }

    /// The config with `snippet` (what `build` wrote) merged in; the file is not touched.
    pub fn merge(
        &self,
        snippet: &Json,
        plugin: &str,
        wiring: &Wiring<'_>,
    ) -> Result<Merged, Error> {
        let mut root = self.root.clone();
        let mut m = Merge {
            config: &self.path,
            plugin,
            changes: Vec::new(),
            notes: Vec::new(),
        };
        merge_into(&mut m, &mut root, snippet, wiring)?;
        let text = (!m.changes.is_empty())
            .then(|| serde_json::to_string_pretty(&root).expect("JSON") + "\n");
        Ok(Merged {
            text,
            changes: m.changes,
            notes: m.notes,
        })
    }
}

/// Merges `snippet` (what `build` wrote) into the gwhost config at `config`, replacing the
/// file atomically. Returns what changed, and what the author should know.
pub fn register(
    config: &Path,
    snippet: &Json,
    plugin: &str,
    wiring: &Wiring<'_>,
) -> Result<Merged, Error> {
    let merged =
        ConfigFile::read(config, plugin, wiring.endpoints)?.merge(snippet, plugin, wiring)?;
    if let Some(text) = &merged.text {
        crate::txn::write_atomic(config, text.as_bytes())?;
    }
    Ok(merged)
}

/// gwhost refuses an empty `plugin.folder` (joined, it would name the config's folder
/// silently).
fn empty_folder(m: &Merge<'_>) -> Error {
    m.conflict(
        "its `plugin.folder` is empty, which gwhost refuses",
        "write `.` for the config file's own folder, or the folder the plugin is built into",
    )
}

/// The plugin files gwhost would load from `folder` (names holding `pattern`, not hidden)
/// other than `except`, with their sha256s, by name.
fn files_in_folder(folder: &Path, pattern: &str, except: &str) -> Vec<(String, String)> {
    candidates(folder, pattern, except, |path| {
        Some(crate::build::sha256_hex(&std::fs::read(path).ok()?))
    })
}

/// The plugin files in `folder` whose names hold `pattern` (not hidden), other than
/// `except`, with the names each registers (read from its ELF; a file that is not a
/// plugin is left out).
fn plugins_in_folder(folder: &Path, pattern: &str, except: &str) -> Vec<(String, Vec<String>)> {
    candidates(folder, pattern, except, registered_names)
}

/// The files in `folder` gwhost would take for plugins (names holding `pattern`, not
/// hidden) other than `except`, by name, each with what `read` makes of it (left out when
/// `None`).
fn candidates<T: Ord>(
    folder: &Path,
    pattern: &str,
    except: &str,
    read: impl Fn(&Path) -> Option<T>,
) -> Vec<(String, T)> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut found: Vec<(String, T)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.contains(pattern) || name == except {
                return None;
            }
            Some((name, read(&e.path())?))
        })
        .collect();
    found.sort();
    found
}

/// The plugin names the file at `path` registers, if it is a plugin.
fn registered_names(path: &Path) -> Option<Vec<String>> {
    let bytes = std::fs::read(path).ok()?;
    let exports = gwplugin_build::elf::plugin_exports(&bytes).ok()?;
    Some(exports.into_iter().map(|e| e.name).collect())
}

/// The plugin names a namespace block's `name` gives: one string, or a list of them.
fn block_names(block: &Json) -> Vec<&str> {
    match block.get("name") {
        Some(Json::String(name)) => vec![name.as_str()],
        Some(Json::Array(names)) => names.iter().filter_map(Json::as_str).collect(),
        _ => vec![],
    }
}

/// Which of `plugins` (the names a library exports) the config already uses: in the
/// service's http-server list, as an endpoint's or a backend's modifier, or as a
/// backend's http-client. In the order of `plugins`.
fn wired_names<'p>(root: &IndexMap<String, Json>, plugins: &[&'p str]) -> Vec<&'p str> {
    let used = used_names(root);
    plugins
        .iter()
        .copied()
        .filter(|name| used.iter().any(|u| u == name))
        .collect()
}

/// Puts `default` under `name` in each namespace block of the config that lists `name`
/// and has no object for it.
fn add_missing_config(
    m: &mut Merge<'_>,
    root: &mut IndexMap<String, Json>,
    name: &str,
    default: &Json,
) {
    // `owner`'s `extra_config.NAMESPACE`; `at` is the owner's JSON path, with its dot.
    let mut fill = |owner: &mut IndexMap<String, Json>, namespace: &str, at: &str| {
        let Some(block) = owner
            .get_mut("extra_config")
            .and_then(Json::as_object_mut)
            .and_then(|extra| extra.get_mut(namespace))
        else {
            return;
        };
        let listed = block_names(block).contains(&name);
        if let Some(block) = block.as_object_mut()
            && listed
            && !block.contains_key(name)
        {
            block.insert(name.to_owned(), default.clone());
            m.changes.push(format!(
                "added the default config of `{name}` to `{at}extra_config.\"{namespace}\"`"
            ));
        }
    };
    fill(root, "plugin/http-server", "");
    let Some(Json::Array(endpoints)) = root.get_mut("endpoints") else {
        return;
    };
    for (i, endpoint) in endpoints.iter_mut().enumerate() {
        let Some(endpoint) = endpoint.as_object_mut() else {
            continue;
        };
        fill(
            endpoint,
            "plugin/req-resp-modifier",
            &format!("endpoints[{i}]."),
        );
        let Some(Json::Array(backends)) = endpoint.get_mut("backend") else {
            continue;
        };
        for (j, backend) in backends.iter_mut().enumerate() {
            if let Some(backend) = backend.as_object_mut() {
                let at = format!("endpoints[{i}].backend[{j}].");
                fill(backend, "plugin/req-resp-modifier", &at);
                fill(backend, "plugin/http-client", &at);
            }
        }
    }
}

/// Every plugin name the config uses, in its order (a name used twice, twice).
fn used_names(root: &IndexMap<String, Json>) -> Vec<String> {
    let names_in = |owner: Option<&Json>, namespace: &str| -> Vec<String> {
        owner
            .and_then(|o| o.get("extra_config"))
            .and_then(|e| e.get(namespace))
            .map(|block| block_names(block).into_iter().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let mut used: Vec<String> = Vec::new();
    if let Some(Json::Object(extra)) = root.get("extra_config")
        && let Some(block) = extra.get("plugin/http-server")
    {
        used.extend(block_names(block).into_iter().map(str::to_owned));
    }
    if let Some(Json::Array(endpoints)) = root.get("endpoints") {
        for endpoint in endpoints {
            used.extend(names_in(Some(endpoint), "plugin/req-resp-modifier"));
            if let Some(Json::Array(backends)) = endpoint.get("backend") {
                for backend in backends {
                    used.extend(names_in(Some(backend), "plugin/req-resp-modifier"));
                    used.extend(names_in(Some(backend), "plugin/http-client"));
                }
            }
        }
    }
    used
}

/// The endpoints `selectors` name, as indices into `list`: a selector is a path, or a
/// method and a path when several endpoints share the path. Without selectors, the
/// config's only endpoint. On failure, the message and the help.
fn select_endpoints(list: &[Json], selectors: &[String]) -> Result<Vec<usize>, (String, String)> {
    // (index, method, path) of each endpoint; gwhost's default method is GET.
    let endpoints: Vec<(usize, String, &str)> = list
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let path = e.get("endpoint")?.as_str()?;
            let method = e.get("method").and_then(Json::as_str).unwrap_or("GET");
            Some((i, method.to_ascii_uppercase(), path))
        })
        .collect();
    let shown = |method: &str, path: &str| {
        if endpoints.iter().filter(|e| e.2 == path).count() > 1 {
            format!("`{method} {path}`")
        } else {
            format!("`{path}`")
        }
    };
    let all = || {
        endpoints
            .iter()
            .map(|(_, method, path)| shown(method, path))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if selectors.is_empty() {
        return match endpoints.as_slice() {
            [(i, _, _)] => Ok(vec![*i]),
            [] => Err((
                "it has no endpoint for the plugin's modifiers or http-client".to_owned(),
                "add an endpoint for the plugin to the config first".to_owned(),
            )),
            _ => Err((
                format!(
                    "it has {} endpoints, and the plugin must go into some of them",
                    endpoints.len()
                ),
                format!("say which with `--endpoint PATH` (one of: {})", all()),
            )),
        };
    }
    let mut chosen = Vec::new();
    for selector in selectors {
        let (method, path) = match selector.trim().split_once(' ') {
            Some((method, path)) => (Some(method.to_ascii_uppercase()), path.trim()),
            None => (None, selector.trim()),
        };
        let matching: Vec<_> = endpoints
            .iter()
            .filter(|(_, m, p)| *p == path && method.as_ref().is_none_or(|want| want == m))
            .collect();
        match matching.as_slice() {
            [] => {
                return Err((
                    format!("it has no endpoint `{selector}`"),
                    format!("pass one of: {}", all()),
                ));
            }
            [(i, _, _)] => {
                if !chosen.contains(i) {
                    chosen.push(*i);
                }
            }
            several => {
                return Err((
                    format!(
                        "`{selector}` names {} endpoints: {}",
                        several.len(),
                        several
                            .iter()
                            .map(|(_, m, p)| format!("`{m} {p}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    format!("add the method: `--endpoint '{} {path}'`", several[0].1),
                ));
            }
        }
    }
    Ok(chosen)
}

/// The config's `plugin.folder` `existing` (relative to `base`) against the folder the
/// plugin is written to: `--out-dir` elsewhere would register a file gwhost never sees.
fn folder_conflict(m: &Merge<'_>, base: &Path, existing: &str, folder: &Path) -> Result<(), Error> {
    // Absolute: a config named relatively gives a relative `base`, and the folder is not.
    let resolved = std::path::absolute(base.join(existing)).unwrap_or_else(|_| base.join(existing));
    // A folder not made yet (checked before a build) is compared as written.
    let same = match (resolved.canonicalize(), folder.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => crate::plugin::normalize(&resolved) == crate::plugin::normalize(folder),
    };
    if same {
        return Ok(());
    }
    Err(m.conflict(
        format!(
            "its `plugin.folder` is `{existing}`, but the plugin goes into `{}`",
            folder.display()
        ),
        format!(
            "leave out `--out-dir` (the plugin is then copied into the config's folder `{}`), \
             or change `plugin.folder`",
            resolved.display()
        ),
    ))
}

fn merge_into(
    m: &mut Merge<'_>,
    root: &mut Json,
    snippet: &Json,
    wiring: &Wiring<'_>,
) -> Result<(), Error> {
    let (exports, endpoints, selected) = (wiring.exports, wiring.endpoints, wiring.plugins);
    // Whether gwhost loaded the file's copy in the folder until now: with a checksum list
    // (an empty one counts as none), only a file it names.
    let old_list: Option<Vec<String>> = match root.get("plugin").and_then(|p| p.get("sha256")) {
        Some(Json::Object(sums)) if !sums.is_empty() => Some(sums.keys().cloned().collect()),
        _ => None,
    };
    let Some(root_obj) = root.as_object_mut() else {
        return Err(m.conflict(
            "the config is not a JSON object",
            "pass a gwhost config file",
        ));
    };
    // The `plugin` block: the folder must be where the plugin is.
    let plugin_block = snippet.get("plugin");
    let folder = plugin_block
        .and_then(|p| p.get("folder"))
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let (file, hash) = match plugin_block.and_then(|p| p.get("sha256")) {
        Some(Json::Object(o)) => o
            .iter()
            .next()
            .map(|(f, h)| (f.clone(), h.as_str().unwrap_or_default().to_owned()))
            .unwrap_or_default(),
        _ => Default::default(),
    };
    let base = config_dir(m.config).to_owned();
    let block = m.object(root_obj, "plugin", "plugin")?;
    // A folder the config named loaded its plugin files until now; one it gets now did not.
    let folder_was_named = block.get("folder").is_some();
    match block.get("folder").and_then(Json::as_str) {
        None => {
            // Relative to the config when the plugin is beside it or below.
            let named = base
                .canonicalize()
                .ok()
                .and_then(|dir| Some(Path::new(&folder).strip_prefix(dir).ok()?.to_owned()))
                .map(|relative| match relative.as_os_str().is_empty() {
                    true => ".".to_owned(),
                    false => relative.display().to_string(),
                })
                .unwrap_or_else(|| folder.clone());
            block.insert("folder".into(), Json::String(named.clone()));
            m.changes.push(format!("set `plugin.folder` to `{named}`"));
            // A pattern already there is kept (and checked against the file below).
            if !block.contains_key("pattern") {
                block.insert("pattern".into(), Json::String(".so".into()));
            }
        }
        Some("") => return Err(empty_folder(m)),
        Some(existing) => folder_conflict(m, &base, existing, Path::new(&folder))?,
    }
    if let Some(pattern) = block.get("pattern").and_then(Json::as_str)
        && !file.contains(pattern)
    {
        return Err(m.conflict(
            format!("`{file}` does not match its `plugin.pattern` `{pattern}`"),
            "change `plugin.pattern` to a part of the plugin's file name, e.g. `.so`".to_owned(),
        ));
    }
    // gwhost loads only the files a checksum list names (an empty one names none, and
    // counts as none): one made now in a folder the config already loaded would leave
    // out every other plugin file there. They are listed too, as they are.
    let has_list = block
        .get("sha256")
        .is_some_and(|sums| !matches!(sums, Json::Object(o) if o.is_empty()));
    if folder_was_named && !has_list {
        let pattern = block
            .get("pattern")
            .and_then(Json::as_str)
            .unwrap_or(".so")
            .to_owned();
        let others = files_in_folder(Path::new(&folder), &pattern, &file);
        let sums = m.object(block, "sha256", "plugin.sha256")?;
        for (other, other_hash) in others {
            m.changes.push(format!(
                "listed `{other}`, already in the plugin folder, with its sha256 as it is"
            ));
            sums.insert(other, Json::String(other_hash));
        }
    }
    let sums = m.object(block, "sha256", "plugin.sha256")?;
    if sums.get(&file).and_then(Json::as_str) != Some(hash.as_str()) {
        sums.insert(file.clone(), Json::String(hash));
        m.changes.push(format!("set the sha256 of `{file}`"));
    }

    // A library the config already uses anywhere is being rebuilt: its file's checksum is
    // updated, and its wiring is the author's (a rebuild that wired in every plugin of
    // the library again put its http-client on each endpoint one of its modifiers was in).
    let server = snippet
        .get("extra_config")
        .and_then(|e| e.get("plugin/http-server"));
    let modifier = snippet
        .get("endpoint_extra_config")
        .and_then(|e| e.get("plugin/req-resp-modifier"));
    let client = snippet
        .get("backend_extra_config")
        .and_then(|e| e.get("plugin/http-client"));
    // Every name the file exports (the snippet shows one http-client of several).
    let exported: Vec<&str> = exports.iter().map(|e| e.name.as_str()).collect();
    let pattern = root_obj
        .get("plugin")
        .and_then(|p| p.get("pattern"))
        .and_then(Json::as_str)
        .unwrap_or(".so")
        .to_owned();
    let pinned: Option<Vec<String>> = match root_obj.get("plugin").and_then(|p| p.get("sha256")) {
        Some(Json::Object(sums)) => Some(sums.keys().cloned().collect()),
        _ => None,
    };
    // The names the other files gwhost will load register (with a list, the ones it
    // names; else every candidate).
    let others: Vec<(String, Vec<String>)> = plugins_in_folder(Path::new(&folder), &pattern, &file)
        .into_iter()
        .filter(|(other, _)| pinned.as_ref().is_none_or(|p| p.contains(other)))
        .collect();
    let registered_elsewhere = |name: &str| {
        others
            .iter()
            .any(|(_, names)| names.iter().any(|n| n == name))
    };
    let list = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // gwhost refuses to start when a pinned file is missing (a stale one removed by hand).
    if let Some(pins) = &pinned {
        for pin in pins.iter().filter(|p| **p != file) {
            if !Path::new(&folder).join(pin).exists() {
                m.notes.push(format!(
                    "`plugin.sha256` names `{pin}`, which is not in the plugin folder: gwhost \
                     refuses to start until it is there or its entry is removed"
                ));
            }
        }
    }
    // gwhost refuses a name two files register: said now, not at its start.
    for (other, names) in &others {
        if let Some(clash) = exported.iter().find(|n| names.iter().any(|x| x == *n)) {
            return Err(m.conflict(
                format!("`{other}` in its plugin folder registers a plugin `{clash}` too, and gwhost refuses a name registered twice"),
                format!(
                    "rename one of the two `{clash}` (in `gwplugin::export!`), or remove `{other}` \
                     from the folder and from `plugin.sha256` if it is stale; a plugin moved from \
                     `{other}` to this file: \
                     take `{clash}` out of the config, register `{other}` without it, then this \
                     file, then wire `{clash}` again"
                ),
            ));
        }
    }
    // Names the file's copy that gwhost loaded until now registered, which the config uses
    // and neither the new build nor another file registers: gwhost would refuse the
    // config (a plugin renamed or removed).
    // (No folder named before: gwhost loaded nothing, whatever lies in the folder now.)
    let old_copy_loaded = folder_was_named && old_list.as_ref().is_none_or(|l| l.contains(&file));
    let old_copy = old_copy_loaded.then(|| registered_names(&Path::new(&folder).join(&file)));
    // Loaded, there, but not readable as a plugin (an older build, unreadable): still a
    // rebuild. (A pin whose file is missing is no registration of it.)
    let old_copy_unread = matches!(old_copy, Some(None)) && Path::new(&folder).join(&file).exists();
    if old_copy_unread {
        m.notes.push(format!(
            "the copy of `{file}` in the plugin folder could not be read as a plugin: what \
             it registered is unknown, so nothing was checked against it"
        ));
    }
    let before: Vec<String> = old_copy.flatten().unwrap_or_default();
    let gone: Vec<&str> = before
        .iter()
        .map(String::as_str)
        .filter(|name| !exported.contains(name) && !registered_elsewhere(name))
        .collect();
    let stale = wired_names(root_obj, &gone);
    if !stale.is_empty() {
        return Err(m.conflict(
            format!(
                "the config uses {}, which `{file}` registered and the new build does not",
                list(&stale)
            ),
            format!(
                "a plugin was renamed or removed: rename {} in the config, in `name` and its \
                 config object, to what the file registers now ({}; a default config follows \
                 a name without one), or remove it and register again with `--plugin NAME` to \
                 wire a new one",
                if stale.len() == 1 { "it" } else { "them" },
                list(&exported)
            ),
        ));
    }
    // Names no file will register, this one included: said, not refused (another file
    // may be on its way), as gwhost would refuse the config.
    let mut unknown: Vec<String> = used_names(root_obj)
        .into_iter()
        .filter(|name| !exported.contains(&name.as_str()) && !registered_elsewhere(name))
        .collect();
    let mut seen = std::collections::HashSet::new();
    unknown.retain(|name| seen.insert(name.clone()));
    if !unknown.is_empty() {
        let unknown: Vec<&str> = unknown.iter().map(String::as_str).collect();
        m.notes.push(format!(
            "the config uses {}, which no plugin file gwhost will load from its folder \
             registers: `gwhost check` refuses it until one does",
            list(&unknown)
        ));
    }
    if let Some(unknown) = selected.iter().find(|s| !exported.contains(&s.as_str())) {
        return Err(m.conflict(
            format!("`--plugin {unknown}`: `{file}` registers no plugin of that name"),
            format!("pass one it registers: {}", list(&exported)),
        ));
    }
    let chosen = |name: &str| selected.is_empty() || selected.iter().any(|s| s == name);
    // A rebuild: the config uses one of the file's plugins, now or as its loaded copy
    // registered them (a pin alone says nothing: a registration pins every file there).
    let wired = wired_names(root_obj, &exported);
    // A name the config lists without its config object (wired by hand, or renamed in the
    // config after a rebuild refused the old name) gets the crate's default config, as
    // one `--register` wires: its factory would get `{}`.
    // Only names the old copy did not register: one it did, listed without an object, is
    // the operator's `{}` on purpose.
    for name in wired
        .iter()
        .filter(|n| !old_copy_unread && !before.iter().any(|b| b == *n))
    {
        if let Some(default) = wiring.defaults.get(*name) {
            add_missing_config(m, root_obj, name, &Json::from(default));
        }
    }
    let before_refs: Vec<&str> = before.iter().map(String::as_str).collect();
    let rebuild =
        old_copy_unread || !wired.is_empty() || !wired_names(root_obj, &before_refs).is_empty();
    if rebuild && endpoints.is_empty() && selected.is_empty() {
        // New since the file in the folder (all, without one): one the author left out
        // before is not told again on every rebuild.
        let unwired: Vec<&str> = exported
            .iter()
            .copied()
            .filter(|name| !wired.contains(name) && !before.iter().any(|b| b == name))
            .collect();
        if !unwired.is_empty() {
            // Not `--endpoint` alone: that wires every modifier and the http-client of the
            // file into the endpoint, which may be more than the author wants.
            m.notes.push(format!(
                "{} not wired in: the config already uses `{file}`'s plugins, so its wiring was \
                 left as it is; wire {} with `--plugin NAME` (and `--endpoint PATH` for a \
                 modifier or an http-client), or by hand",
                list(&unwired),
                if unwired.len() == 1 { "it" } else { "them" }
            ));
        }
        return Ok(());
    }

    // A rebuild adds no http-server plugin but those `--plugin` names.
    let server_names: Vec<&str> = server
        .map(block_names)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| chosen(n) && (!rebuild || !selected.is_empty()))
        .collect();
    if let Some(server) = server.filter(|_| !server_names.is_empty()) {
        let extra = m.object(root_obj, "extra_config", "extra_config")?;
        let ns = m.object(
            extra,
            "plugin/http-server",
            "extra_config.\"plugin/http-server\"",
        )?;
        m.add_names(
            ns,
            &server_names,
            server,
            "extra_config.\"plugin/http-server\"",
        )?;
    }

    let modifier_names: Vec<&str> = modifier
        .map(block_names)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| chosen(n))
        .collect();
    let modifier = modifier.filter(|_| !modifier_names.is_empty());
    // The http-client: the one `--plugin` names, else the first the file exports.
    let clients: Vec<&str> = exports
        .iter()
        .filter(|e| e.kind == "http-client" && chosen(&e.name))
        .map(|e| e.name.as_str())
        .collect();
    if !selected.is_empty() && clients.len() > 1 {
        return Err(m.conflict(
            format!(
                "`--plugin` names {} http-client plugins, and a backend has one",
                clients.len()
            ),
            "name one of them".to_owned(),
        ));
    }
    let client_name = clients.first().copied();
    if selected.is_empty() && clients.len() > 1 {
        m.notes.push(format!(
            "{} not wired in: a backend has one http-client plugin, and `{}` went in; wire \
             another with `--plugin NAME --endpoint PATH`",
            list(&clients[1..]),
            clients[0]
        ));
    }
    let client_config = client_name.map(|name| {
        wiring
            .defaults
            .get(name)
            .map(Json::from)
            .or_else(|| client.and_then(|c| c.get(name)).cloned())
            .unwrap_or_else(|| Json::Object(IndexMap::new()))
    });
    if modifier.is_none() && client_name.is_none() && !endpoints.is_empty() {
        if !selected.is_empty() {
            return Err(m.conflict(
                "`--endpoint` was given, but the plugins `--plugin` names include no modifier or http-client",
                "drop `--endpoint`, or name a modifier or an http-client with `--plugin`",
            ));
        }
        return Err(m.conflict(
            "`--endpoint` was given, but it has no modifier or http-client to put in an endpoint",
            "drop `--endpoint`: an http-server plugin goes in the service's `extra_config`",
        ));
    }
    if modifier.is_some() || client_name.is_some() {
        let list = match root_obj.get_mut("endpoints") {
            Some(Json::Array(list)) => list,
            _ => {
                return Err(m.conflict(
                    "it has no `endpoints` list",
                    "add an endpoint for the plugin to the config first",
                ));
            }
        };
        let chosen = select_endpoints(list, endpoints)
            .map_err(|(message, help)| m.conflict(message, help))?;
        for i in chosen {
            let at = format!("endpoints[{i}]");
            let endpoint = list[i]
                .as_object_mut()
                .ok_or_else(|| m.conflict(format!("`{at}` is not an object"), "fix the config"))?;
            if let Some(modifier) = modifier {
                let extra = m.object(endpoint, "extra_config", &format!("{at}.extra_config"))?;
                let ns_at = format!("{at}.extra_config.\"plugin/req-resp-modifier\"");
                let ns = m.object(extra, "plugin/req-resp-modifier", &ns_at)?;
                m.add_names(ns, &modifier_names, modifier, &ns_at)?;
            }
            if let Some(name) = client_name {
                let name = name.to_owned();
                let backend = match endpoint.get_mut("backend") {
                    Some(Json::Array(b)) if !b.is_empty() => &mut b[0],
                    _ => {
                        return Err(m.conflict(
                            format!("`{at}` has no backend"),
                            "add a backend to the endpoint first",
                        ));
                    }
                };
                let backend = backend.as_object_mut().ok_or_else(|| {
                    m.conflict(
                        format!("`{at}.backend[0]` is not an object"),
                        "fix the config",
                    )
                })?;
                let b_at = format!("{at}.backend[0]");
                let extra = m.object(backend, "extra_config", &format!("{b_at}.extra_config"))?;
                let ns_at = format!("{b_at}.extra_config.\"plugin/http-client\"");
                let ns = m.object(extra, "plugin/http-client", &ns_at)?;
                match ns.get("name").and_then(Json::as_str) {
                    Some(existing) if existing != name => {
                        return Err(m.conflict(
                            format!("`{ns_at}.name` is already `{existing}`: a backend has one http-client plugin"),
                            format!("remove `{existing}` from that backend first, or register into another endpoint with `--endpoint`"),
                        ));
                    }
                    // Set already: what it has stays (no object: `{}` on purpose).
                    Some(_) => continue,
                    None => {
                        ns.insert("name".into(), Json::String(name.clone()));
                        m.changes.push(format!("set `{ns_at}.name` to `{name}`"));
                    }
                }
                if !ns.contains_key(&name) {
                    ns.insert(name.clone(), client_config.clone().unwrap_or(Json::Null));
                    m.changes
                        .push(format!("added the default config of `{name}`"));
                }
            }
        }
    }

    Ok(())
}
