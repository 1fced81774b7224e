//! The manifest type, its binary record, and the comparison.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The record format this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// First bytes of a record.
pub const MAGIC: [u8; 8] = *b"GWPLABI\0";
/// The allocator contract implemented by this release of `gwplugin` (see `gwplugin::alloc`).
pub const ALLOCATOR_CONTRACT: &str = "host-forwarding-v1";

// Record layout (C layout, little endian):
//   [u8; 8]  magic
//   u32      format version
//   u32      length of the JSON payload
//   [u8; 32] sha256 of the JSON payload: the manifest's fingerprint
//   [u8]     canonical JSON of the manifest
const HEADER_LEN: usize = 8 + 4 + 4 + 32;

/// Whether a manifest describes a host or a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Host,
    Plugin,
}

/// The package a manifest was computed for (informational: never compared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageName {
    pub name: String,
    pub version: String,
}

/// The compiler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RustcInfo {
    /// `release:` of `rustc -vV`, e.g. `1.95.0`.
    pub release: String,
    /// `commit-hash:` of `rustc -vV`.
    pub commit_hash: String,
}

impl fmt::Display for RustcInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short: String = self.commit_hash.chars().take(9).collect();
        write!(f, "{} ({short})", self.release)
    }
}

/// What determines a crate's code: its version and where it comes from (registry URL,
/// git URL and commit, or `path+sha256:` of its sources — never an absolute path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrateIdentity {
    pub name: String,
    pub version: String,
    pub source: String,
}

impl fmt::Display for CrateIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.version, short_source(&self.source))
    }
}

/// A crate whose types cross the boundary, with its enabled features.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundaryCrate {
    pub name: String,
    pub version: String,
    pub source: String,
    pub features: Vec<String>,
}

/// What a binary was built with. Its fingerprint is the sha256 of its canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbiManifest {
    pub format: u32,
    pub role: Role,
    pub package: PackageName,
    pub rustc: RustcInfo,
    pub target: String,
    pub panic: String,
    pub allocator: String,
    pub gwplugin: CrateIdentity,
    /// Sorted by name, then version.
    pub boundary: Vec<BoundaryCrate>,
}

impl AbiManifest {
    /// Canonical JSON: fixed field order, no whitespace.
    pub fn to_canonical_json(&self) -> String {
        serde_json::to_string(self).expect("manifest serialises")
    }

    /// Pretty JSON, for people.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serialises")
    }

    /// Parses the JSON form (a manifest file).
    pub fn from_json(text: &str) -> Result<Self, RecordError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| RecordError::Json(e.to_string()))?;
        check_format(value.get("format").and_then(|f| f.as_u64()).unwrap_or(0))?;
        serde_json::from_value(value).map_err(|e| RecordError::Json(e.to_string()))
    }

    /// The sha256 of the canonical JSON, hex.
    pub fn fingerprint(&self) -> String {
        hex(&Sha256::digest(self.to_canonical_json().as_bytes()))
    }
}

fn check_format(format: u64) -> Result<(), RecordError> {
    if format == 0 {
        return Err(RecordError::Json("missing `format`".to_owned()));
    }
    if format > u64::from(FORMAT_VERSION) {
        return Err(RecordError::NewerFormat {
            found: format as u32,
            supported: FORMAT_VERSION,
        });
    }
    Ok(())
}

/// Why a record can't be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("not a gwplugin ABI manifest record (bad magic)")]
    BadMagic,
    #[error("manifest record is truncated ({0} bytes)")]
    Truncated(usize),
    #[error(
        "manifest format {found} is newer than this tool understands (up to {supported}); upgrade gwplugin"
    )]
    NewerFormat { found: u32, supported: u32 },
    #[error("manifest record is corrupt: its fingerprint does not match its contents")]
    Corrupt,
    #[error("manifest is not valid: {0}")]
    Json(String),
}

/// The binary record embedded in binaries.
pub fn encode_record(manifest: &AbiManifest) -> Vec<u8> {
    let json = manifest.to_canonical_json();
    let mut out = Vec::with_capacity(HEADER_LEN + json.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(json.as_bytes()));
    out.extend_from_slice(json.as_bytes());
    out
}

/// Reads a record (trailing bytes after it are ignored).
pub fn decode_record(bytes: &[u8]) -> Result<AbiManifest, RecordError> {
    if bytes.len() < HEADER_LEN {
        return Err(if bytes.len() >= 8 && bytes[..8] != MAGIC {
            RecordError::BadMagic
        } else {
            RecordError::Truncated(bytes.len())
        });
    }
    if bytes[..8] != MAGIC {
        return Err(RecordError::BadMagic);
    }
    let format = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    check_format(u64::from(format))?;
    let len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let json = bytes
        .get(HEADER_LEN..HEADER_LEN + len)
        .ok_or(RecordError::Truncated(bytes.len()))?;
    if Sha256::digest(json)[..] != bytes[16..48] {
        return Err(RecordError::Corrupt);
    }
    let text = std::str::from_utf8(json).map_err(|e| RecordError::Json(e.to_string()))?;
    serde_json::from_str(text).map_err(|e| RecordError::Json(e.to_string()))
}

/// One field on which a plugin (`have`) differs from its host (`want`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// `rustc`, `target`, `panic`, `allocator`, `gwplugin`, or `crate NAME`.
    pub field: String,
    pub have: String,
    pub want: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}  have: {}  want: {}",
            self.field, self.have, self.want
        )
    }
}

/// Every field on which `plugin` differs from `host`. Empty means the plugin may be
/// loaded. Any difference means its Rust-ABI symbols must not be touched.
pub fn compare(plugin: &AbiManifest, host: &AbiManifest) -> Vec<Difference> {
    let mut diffs = Vec::new();
    let mut field = |name: &str, have: String, want: String| {
        if have != want {
            diffs.push(Difference {
                field: name.to_owned(),
                have,
                want,
            });
        }
    };
    field("rustc", plugin.rustc.to_string(), host.rustc.to_string());
    if plugin.rustc.release == host.rustc.release
        && plugin.rustc.commit_hash != host.rustc.commit_hash
    {
        field(
            "rustc commit",
            plugin.rustc.commit_hash.clone(),
            host.rustc.commit_hash.clone(),
        );
    }
    field("target", plugin.target.clone(), host.target.clone());
    field("panic", plugin.panic.clone(), host.panic.clone());
    field(
        "allocator",
        plugin.allocator.clone(),
        host.allocator.clone(),
    );
    // One line per difference: the source in full when only it differs.
    if plugin.gwplugin.version == host.gwplugin.version
        && plugin.gwplugin.source != host.gwplugin.source
    {
        field(
            "gwplugin source",
            plugin.gwplugin.source.clone(),
            host.gwplugin.source.clone(),
        );
    } else {
        field(
            "gwplugin",
            plugin.gwplugin.to_string(),
            host.gwplugin.to_string(),
        );
    }

    fn by_name(m: &AbiManifest) -> BTreeMap<String, Vec<&BoundaryCrate>> {
        let mut map: BTreeMap<String, Vec<&BoundaryCrate>> = BTreeMap::new();
        for c in &m.boundary {
            map.entry(c.name.clone()).or_default().push(c);
        }
        map
    }
    let (have, want) = (by_name(plugin), by_name(host));
    let names: std::collections::BTreeSet<&String> = have.keys().chain(want.keys()).collect();
    for name in names {
        let label = format!("crate {name}");
        match (have.get(name), want.get(name)) {
            (Some(h), Some(w)) => {
                let versions = |cs: &[&BoundaryCrate]| {
                    cs.iter()
                        .map(|c| c.version.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let sources = |cs: &[&BoundaryCrate]| {
                    cs.iter()
                        .map(|c| short_source(&c.source))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let features = |cs: &[&BoundaryCrate]| {
                    cs.iter()
                        .map(|c| format!("[{}]", c.features.join(", ")))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                if versions(h) != versions(w) {
                    field(&label, versions(h), versions(w));
                } else if h.iter().map(|c| &c.source).ne(w.iter().map(|c| &c.source)) {
                    field(&format!("{label} source"), sources(h), sources(w));
                } else if features(h) != features(w) {
                    field(&format!("{label} features"), features(h), features(w));
                }
            }
            (Some(h), None) => field(
                &label,
                h.iter()
                    .map(|c| c.version.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
                "(not used)".to_owned(),
            ),
            (None, Some(w)) => field(
                &label,
                "(not used)".to_owned(),
                w.iter()
                    .map(|c| c.version.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (None, None) => {}
        }
    }
    diffs
}

/// `registry+https://github.com/rust-lang/crates.io-index` → `crates.io`; others kept.
fn short_source(source: &str) -> String {
    match source {
        "registry+https://github.com/rust-lang/crates.io-index"
        | "sparse+https://index.crates.io/" => "crates.io".to_owned(),
        s if s.starts_with("path+sha256:") => {
            let hash = &s["path+sha256:".len()..];
            format!("path, sources {}", &hash[..hash.len().min(12)])
        }
        s => s.to_owned(),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AbiManifest {
        AbiManifest {
            format: FORMAT_VERSION,
            role: Role::Host,
            package: PackageName {
                name: "gwhost".into(),
                version: "0.1.0".into(),
            },
            rustc: RustcInfo {
                release: "1.95.0".into(),
                commit_hash: "59807616e1fa2540724bfbac14d7976d7e4a3860".into(),
            },
            target: "x86_64-unknown-linux-gnu".into(),
            panic: "unwind".into(),
            allocator: ALLOCATOR_CONTRACT.into(),
            gwplugin: CrateIdentity {
                name: "gwplugin".into(),
                version: "0.1.0".into(),
                source: "path+sha256:abcdef0123456789".into(),
            },
            boundary: vec![BoundaryCrate {
                name: "bytes".into(),
                version: "1.10.1".into(),
                source: "registry+https://github.com/rust-lang/crates.io-index".into(),
                features: vec!["default".into(), "std".into()],
            }],
        }
    }

    #[test]
    fn record_round_trips_and_detects_damage() {
        let m = sample();
        let rec = encode_record(&m);
        assert_eq!(decode_record(&rec).unwrap(), m);
        assert_eq!(decode_record(&rec[..20]), Err(RecordError::Truncated(20)));
        let mut bad = rec.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(decode_record(&bad), Err(RecordError::Corrupt));
        let mut newer = rec;
        newer[8] = 9;
        assert_eq!(
            decode_record(&newer),
            Err(RecordError::NewerFormat {
                found: 9,
                supported: 1
            })
        );
    }

    #[test]
    fn compare_names_each_differing_field() {
        let host = sample();
        let mut plugin = sample();
        assert!(compare(&plugin, &host).is_empty());
        plugin.rustc = RustcInfo {
            release: "1.97.0-nightly".into(),
            commit_hash: "e50aa6fba4e63ab34c72bf9acfd2c307c1155d1a".into(),
        };
        plugin.boundary[0].version = "1.5.0".into();
        let lines: Vec<String> = compare(&plugin, &host)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "rustc  have: 1.97.0-nightly (e50aa6fba)  want: 1.95.0 (59807616e)",
                "crate bytes  have: 1.5.0  want: 1.10.1",
            ]
        );
    }
}
