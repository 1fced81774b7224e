//! `cargo gwplugin new`: scaffold a plugin crate of one kind, aligned with its host.

use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};

use crate::error::{Error, io};
use crate::host::{DepSource, Host, HostCrate};
use crate::plugin::PluginManifest;
use crate::process::Cargo;
use crate::{Outcome, status};

static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../templates");

/// The plugin kinds (KrakenD's three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// `plugin/http-server`: wraps the whole router
    HttpServer,
    /// `plugin/http-client`: replaces the call to one backend
    HttpClient,
    /// `plugin/req-resp-modifier`: changes requests and responses
    Modifier,
}

impl Kind {
    pub fn dir(self) -> &'static str {
        match self {
            Kind::HttpServer => "http-server",
            Kind::HttpClient => "http-client",
            Kind::Modifier => "modifier",
        }
    }
}

/// Create a plugin crate of one kind, aligned with its host.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The package name
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The plugin kind
    #[arg(long, value_enum, value_name = "KIND")]
    pub kind: Kind,
    /// The host (required): a host binary, an ABI manifest JSON file, a host Cargo
    /// project (its directory or Cargo.toml) or a Cargo.lock. A host that takes gwplugin
    /// from a path (as gwhost from this repository does) must be given as its project
    #[arg(long, value_name = "HOST")]
    pub host: Option<PathBuf>,
    /// Directory to create the crate in [default: ./NAME]
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
}

const KEYWORDS: &[&str] = &[
    "Self", "abstract", "as", "async", "await", "become", "box", "break", "const", "continue",
    "crate", "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if",
    "impl", "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub",
    "ref", "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];
const RESERVED: &[&str] = &[
    "alloc",
    "core",
    "std",
    "test",
    "proc_macro",
    "proc-macro",
    "build",
    "deps",
    "examples",
    "incremental",
    "con",
    "prn",
    "aux",
    "nul",
    "com1",
    "com2",
    "com3",
    "com4",
    "com5",
    "com6",
    "com7",
    "com8",
    "com9",
    "lpt1",
    "lpt2",
    "lpt3",
    "lpt4",
    "lpt5",
    "lpt6",
    "lpt7",
    "lpt8",
    "lpt9",
    "gwplugin",
    "gwplugin-build",
    "gwplugin_build",
];

/// Cargo's rules for a package name that is also a valid library crate name.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let invalid = |reason: String| Error::InvalidName {
        name: name.to_owned(),
        reason,
    };
    let Some(first) = name.chars().next() else {
        return Err(invalid("the name is empty".into()));
    };
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(invalid(format!("invalid character `{c}`")));
    }
    if first.is_ascii_digit() {
        return Err(invalid("the name cannot start with a digit".into()));
    }
    if !first.is_ascii_alphabetic() {
        return Err(invalid(format!("the name cannot start with `{first}`")));
    }
    if name.len() > 64 {
        return Err(invalid("the name is longer than 64 characters".into()));
    }
    let crate_name = name.replace('-', "_");
    if KEYWORDS.contains(&name) || KEYWORDS.contains(&crate_name.as_str()) {
        return Err(invalid("it is a Rust keyword".into()));
    }
    if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(invalid("the name is reserved".into()));
    }
    Ok(())
}

/// A dependency line value (`"=0.1.0"`, `{ path = "…", version = "=0.1.0" }`, …).
fn dep_value(host: &Host, c: Option<&HostCrate>, name: &str) -> Result<String, Error> {
    let c = c.ok_or_else(|| Error::HostSourceUnknown {
        host: host.path.clone(),
        krate: name.to_owned(),
        what: "nowhere it says".into(),
        kind: host.kind.describe(),
    })?;
    let mut t = toml_edit::InlineTable::new();
    match &c.source {
        DepSource::Path(p) => {
            t.insert("path", p.display().to_string().into());
            t.insert("version", format!("={}", c.version).into());
        }
        DepSource::Registry(None) => return Ok(format!("\"={}\"", c.version)),
        DepSource::Registry(Some(index)) => {
            t.insert("version", format!("={}", c.version).into());
            t.insert("registry-index", index.as_str().into());
        }
        DepSource::Git { url, rev } => {
            t.insert("git", url.as_str().into());
            t.insert("rev", rev.as_str().into());
        }
        DepSource::UnknownPath => {
            return Err(Error::HostSourceUnknown {
                host: host.path.clone(),
                krate: name.to_owned(),
                what: "a path".into(),
                kind: host.kind.describe(),
            });
        }
    }
    t.fmt();
    Ok(t.to_string())
}

fn render(text: &str, vars: &[(&str, &str)]) -> String {
    let mut out = text.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

/// Runs `new`.
pub fn exec(args: &Args) -> Result<Outcome, Error> {
    let made = create(args)?;
    if made.outcome == Outcome::Ok && !crate::output().quiet {
        crate::print_stdout(&format!(
            "Next:\n    cd {}\n    cargo test\n    cargo gwplugin check\n    cargo gwplugin build --release\n",
            made.shown
        ));
    }
    Ok(made.outcome)
}

/// A plugin `new` made: how it went, and its folder as the user named it.
pub struct Made {
    pub outcome: Outcome,
    pub shown: String,
}

/// `new` without its "Next:" lines (`quickstart` runs the next steps itself).
pub fn create(args: &Args) -> Result<Made, Error> {
    validate_name(&args.name)?;
    let cwd = std::env::current_dir().map_err(io("."))?;
    let dir = cwd.join(
        args.path
            .clone()
            .unwrap_or_else(|| PathBuf::from(&args.name)),
    );
    let existed = dir.exists();
    if existed {
        let mut entries = std::fs::read_dir(&dir).map_err(io(&dir))?;
        if entries.next().is_some() {
            return Err(Error::NotEmpty(dir));
        }
    }
    let spec = args.host.as_ref().ok_or(Error::NoHostForNew)?;
    let cargo = Cargo::from_env();
    let host = Host::resolve(spec, &cwd, &cargo)?;
    let gwplugin = dep_value(&host, host.contract_crates.get("gwplugin"), "gwplugin")?;
    let gwplugin_build = dep_value(
        &host,
        host.contract_crates.get("gwplugin-build"),
        "gwplugin-build",
    )?;

    // The outermost directory this command creates (`--path a/b/name` may create `a`).
    let first_created = dir
        .ancestors()
        .take_while(|d| !d.exists())
        .last()
        .map(Path::to_owned);
    // `Ok(false)`: made, but something `sync` cannot change stands between it and its
    // host (the report is printed): the author's to fix, so the files stay.
    let result = scaffold(&cargo, &dir, args, &host, &gwplugin, &gwplugin_build);
    if result.is_err() {
        // Leave nothing behind.
        if existed {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    let p = e.path();
                    let _ = if p.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                }
            }
        } else {
            let _ = std::fs::remove_dir_all(first_created.as_deref().unwrap_or(&dir));
        }
    }
    let compatible = result?;
    if let Some((workspace, relative)) = enclosing_workspace(&dir)
        // Only when its `members` take the plugin in: cargo then finds two roots. One
        // whose members are elsewhere (this repository's, for a plugin made in it) is
        // fine, and the warning sent authors to edit it for nothing.
        && cargo
            .run(
                "metadata",
                &workspace,
                &["--no-deps", "--format-version", "1", "--offline"],
            )
            .is_err_and(|e| e.stderr.contains("multiple workspace roots"))
    {
        status(
            "Warning",
            &format!(
                "`{}` is a workspace above the plugin, which is a workspace of its own: \
                 cargo there stops with \"multiple workspace roots found\" until it lists \
                 `{relative}` in its `[workspace] exclude`",
                workspace.display()
            ),
        );
    }
    let shown = dir.strip_prefix(&cwd).unwrap_or(&dir).display().to_string();
    if !compatible {
        status(
            "Warning",
            &format!(
                "`{}` was made, but would not load in host {} yet: follow each `help:` \
                 line above in `{shown}`, then run `cargo gwplugin check` there",
                args.name,
                host.describe()
            ),
        );
        return Ok(Made {
            outcome: Outcome::Incompatible,
            shown,
        });
    }
    Ok(Made {
        outcome: Outcome::Ok,
        shown,
    })
}

/// The nearest workspace manifest above `dir` that does not exclude it, with `dir` relative
/// to it: the plugin's own `[workspace]` (a plugin is built on its own, with its own lock)
/// clashes with it.
fn enclosing_workspace(dir: &Path) -> Option<(PathBuf, String)> {
    for root in dir.ancestors().skip(1) {
        let manifest = root.join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
            continue;
        };
        let Some(workspace) = doc.get("workspace") else {
            continue;
        };
        let relative = dir.strip_prefix(root).ok()?;
        let excluded = workspace
            .get("exclude")
            .and_then(|e| e.as_array())
            .is_some_and(|list| {
                list.iter()
                    .filter_map(|v| v.as_str())
                    .any(|x| relative.starts_with(x))
            });
        return (!excluded).then(|| (manifest, relative.display().to_string()));
    }
    None
}

fn scaffold(
    cargo: &Cargo,
    dir: &Path,
    args: &Args,
    host: &Host,
    gwplugin: &str,
    gwplugin_build: &str,
) -> Result<bool, Error> {
    let template = TEMPLATES
        .get_dir(args.kind.dir())
        .expect("templates are embedded for every kind");
    let crate_name = args.name.replace('-', "_");
    let host_path = host.path.display().to_string();
    let vars = [
        ("name", args.name.as_str()),
        ("crate_name", crate_name.as_str()),
        ("gwplugin_dep", gwplugin),
        ("gwplugin_build_dep", gwplugin_build),
        ("host", host_path.as_str()),
        ("kind", args.kind.dir()),
    ];
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    write_dir(template, template.path(), dir, &vars)?;
    status(
        "Created",
        &format!(
            "{} plugin `{}` in `{}`",
            args.kind.dir(),
            args.name,
            dir.display()
        ),
    );
    let plugin = PluginManifest::read(dir.join("Cargo.toml"))?;
    crate::sync::sync_new_plugin(cargo, &plugin, host).map(|report| report.is_none())
}

fn write_dir(d: &Dir<'_>, root: &Path, out: &Path, vars: &[(&str, &str)]) -> Result<(), Error> {
    for f in d.files() {
        let rel = f.path().strip_prefix(root).unwrap_or(f.path());
        let mut dest = out.join(rel);
        if dest.extension().is_some_and(|e| e == "tmpl") {
            dest.set_extension("");
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let text = f.contents_utf8().unwrap_or_default();
        std::fs::write(&dest, render(text, vars)).map_err(io(&dest))?;
    }
    for sub in d.dirs() {
        write_dir(sub, root, out, vars)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_cargo_rules() {
        for ok in ["my-plugin", "a", "auth_v2", "X1"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "the name is empty"),
            ("my.plugin", "invalid character `.`"),
            ("1st", "the name cannot start with a digit"),
            ("-x", "the name cannot start with `-`"),
            ("fn", "it is a Rust keyword"),
            ("test", "the name is reserved"),
            ("gwplugin", "the name is reserved"),
        ] {
            match validate_name(bad) {
                Err(Error::InvalidName { reason, .. }) => assert_eq!(reason, why, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_kind_has_a_template() {
        for kind in [Kind::HttpServer, Kind::HttpClient, Kind::Modifier] {
            let d = TEMPLATES.get_dir(kind.dir()).unwrap();
            for f in ["Cargo.toml.tmpl", "build.rs", "src/lib.rs", "README.md"] {
                assert!(
                    d.get_file(format!("{}/{f}", kind.dir())).is_some(),
                    "{} lacks {f}",
                    kind.dir()
                );
            }
        }
    }
}
