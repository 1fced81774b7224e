//! A compatibility report: the [`compare`](crate::compare) of a plugin with its host,
//! plus what front ends know besides (a missing `cdylib`, private crates at other
//! versions), rendered for people (in the spirit of `krakend check-plugin`) or as JSON.
//!
//! One manifest type, one diff, any number of front ends: `cargo gwplugin check` and a
//! host's `check-plugin` print the same report.

use std::fmt::Write as _;

use serde::Serialize;

use crate::manifest::{AbiManifest, PackageName, compare};

/// One finding: a field on which the plugin (`have`) and its host (`want`) differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `rustc`, `target`, `crate bytes`, `crate-type`, …
    pub field: String,
    pub have: String,
    pub want: String,
    /// What to do about it, or (for a note) why it does not matter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub plugin: PackageName,
    pub host: PackageName,
    pub compatible: bool,
    /// What stops the plugin from loading in the host.
    pub incompatibilities: Vec<Finding>,
    /// What differs but does not matter for loading.
    pub notes: Vec<Finding>,
}

impl Report {
    /// The report for `plugin` against `host`: every [`compare`] difference is an
    /// incompatibility.
    pub fn new(plugin: &AbiManifest, host: &AbiManifest) -> Report {
        let mut report = Report {
            plugin: plugin.package.clone(),
            host: host.package.clone(),
            compatible: true,
            incompatibilities: Vec::new(),
            notes: Vec::new(),
        };
        for d in compare(plugin, host) {
            report.incompatibility(Finding {
                field: d.field,
                have: d.have,
                want: d.want,
                help: None,
            });
        }
        report
    }

    /// Adds an incompatibility.
    pub fn incompatibility(&mut self, finding: Finding) {
        self.incompatibilities.push(finding);
        self.compatible = false;
    }

    /// Adds a note.
    pub fn note(&mut self, finding: Finding) {
        self.notes.push(finding);
    }

    /// The closing line: `N incompatibilities found` or `no incompatibilities found`.
    pub fn summary(&self) -> String {
        match self.incompatibilities.len() {
            0 => "no incompatibilities found".to_owned(),
            1 => "1 incompatibility found".to_owned(),
            n => format!("{n} incompatibilities found"),
        }
    }

    /// For people: each incompatibility as its name with `have` and `want`, then the
    /// notes, then the summary.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        for f in &self.incompatibilities {
            let _ = writeln!(
                out,
                "{}\n    have: {}\n    want: {}",
                f.field, f.have, f.want
            );
            if let Some(help) = &f.help {
                let _ = writeln!(out, "    help: {help}");
            }
        }
        for f in &self.notes {
            let _ = write!(out, "note: {}", f.field);
            if let Some(help) = &f.help {
                let _ = write!(out, " ({help})");
            }
            let _ = writeln!(out, "\n    have: {}\n    want: {}", f.have, f.want);
        }
        let _ = writeln!(out, "{}", self.summary());
        out
    }

    /// For CI: one JSON object on one line, as cargo's `--message-format json` messages.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("report serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ALLOCATOR_CONTRACT, CrateIdentity, FORMAT_VERSION, Role, RustcInfo};

    fn manifest(rustc: &str) -> AbiManifest {
        AbiManifest {
            format: FORMAT_VERSION,
            role: Role::Host,
            package: PackageName {
                name: "p".into(),
                version: "0.1.0".into(),
            },
            rustc: RustcInfo {
                release: rustc.into(),
                commit_hash: "59807616e1fa2540724bfbac14d7976d7e4a3860".into(),
            },
            target: "x86_64-unknown-linux-gnu".into(),
            panic: "unwind".into(),
            allocator: ALLOCATOR_CONTRACT.into(),
            gwplugin: CrateIdentity {
                name: "gwplugin".into(),
                version: "0.1.0".into(),
                source: "registry+https://github.com/rust-lang/crates.io-index".into(),
            },
            boundary: vec![],
        }
    }

    #[test]
    fn renders_incompatibilities_notes_and_summary() {
        let mut r = Report::new(&manifest("1.95.1"), &manifest("1.95.0"));
        r.note(Finding {
            field: "crate regex".into(),
            have: "1.9.0".into(),
            want: "1.10.0".into(),
            help: Some("private: need not match".into()),
        });
        assert!(!r.compatible);
        assert_eq!(
            r.render_human(),
            "rustc\n    have: 1.95.1 (59807616e)\n    want: 1.95.0 (59807616e)\n\
             note: crate regex (private: need not match)\n    have: 1.9.0\n    want: 1.10.0\n\
             1 incompatibility found\n"
        );
        let ok = Report::new(&manifest("1.95.0"), &manifest("1.95.0"));
        assert!(ok.compatible);
        assert_eq!(ok.render_human(), "no incompatibilities found\n");
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["incompatibilities"][0]["field"], "rustc");
        assert_eq!(json["compatible"], false);
    }
}
