//! Reading `Cargo.lock`: packages and their dependency edges.

/// One `[[package]]` of a lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockPackage {
    pub name: String,
    pub version: String,
    /// `registry+…`, `git+…#commit`, or None for a path package.
    pub source: Option<String>,
    /// `name`, `name version` or `name version (source)`, as the lock writes them.
    pub dependencies: Vec<String>,
}

/// A parsed `Cargo.lock`.
#[derive(Debug, Clone, Default)]
pub struct Lockfile {
    pub packages: Vec<LockPackage>,
}

impl Lockfile {
    /// Parses the text of a `Cargo.lock`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let doc = toml_edit::Document::parse(text).map_err(|e| e.to_string())?;
        let mut packages = Vec::new();
        let Some(list) = doc.get("package") else {
            return Ok(Lockfile { packages });
        };
        let list = list
            .as_array_of_tables()
            .ok_or("`package` is not an array of tables")?;
        for table in list {
            let field = |k: &str| table.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            let name = field("name").ok_or("a package has no `name`")?;
            let version = field("version").ok_or_else(|| format!("`{name}` has no `version`"))?;
            let dependencies = table
                .get("dependencies")
                .and_then(|d| d.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            packages.push(LockPackage {
                name,
                version,
                source: field("source"),
                dependencies,
            });
        }
        Ok(Lockfile { packages })
    }

    /// Packages called `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a LockPackage> + 'a {
        self.packages.iter().filter(move |p| p.name == name)
    }

    /// The package a dependency entry (`name`, `name version`, `name version (source)`)
    /// refers to.
    fn resolve(&self, entry: &str) -> Option<usize> {
        let mut parts = entry.splitn(3, ' ');
        let name = parts.next()?;
        let version = parts.next();
        let source = parts
            .next()
            .map(|s| s.trim_start_matches('(').trim_end_matches(')'));
        self.packages.iter().position(|p| {
            p.name == name
                && version.is_none_or(|v| p.version == v)
                && source.is_none_or(|s| p.source.as_deref() == Some(s))
        })
    }

    /// The direct dependencies of the packages called `name`.
    pub fn deps_of<'a>(&'a self, name: &'a str) -> Vec<&'a LockPackage> {
        let mut out: Vec<&LockPackage> = self
            .named(name)
            .flat_map(|p| p.dependencies.iter())
            .filter_map(|d| self.resolve(d))
            .map(|i| &self.packages[i])
            .collect();
        out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
version = 4

[[package]]
name = "bytes"
version = "1.12.2"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "bytes"
version = "0.5.6"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "gwplugin"
version = "0.1.0"
dependencies = ["bytes 1.12.2", "http"]

[[package]]
name = "http"
version = "1.5.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
dependencies = ["bytes 1.12.2 (registry+https://github.com/rust-lang/crates.io-index)"]

[[package]]
name = "plugin"
version = "0.1.0"
dependencies = ["gwplugin", "bytes 0.5.6"]
"#;

    #[test]
    fn direct_dependencies_follow_versioned_edges() {
        let lock = Lockfile::parse(LOCK).unwrap();
        let names: Vec<String> = lock
            .deps_of("gwplugin")
            .iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect();
        assert_eq!(names, ["bytes 1.12.2", "http 1.5.0"]);
        assert_eq!(lock.named("bytes").count(), 2);
        let direct: Vec<&str> = lock
            .deps_of("plugin")
            .iter()
            .map(|p| p.version.as_str())
            .collect();
        assert_eq!(direct, ["0.5.6", "0.1.0"]);
        assert!(lock.named("gwplugin").next().unwrap().source.is_none());
    }

    #[test]
    fn malformed_lock_is_an_error() {
        assert!(Lockfile::parse("[[package]]\nversion = \"1\"\n").is_err());
        assert!(Lockfile::parse("= oops").is_err());
    }
}
