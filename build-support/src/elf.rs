//! Reading manifests and link facts out of ELF files, without loading them.

use object::elf;
use object::read::elf::{Dyn, ElfFile, FileHeader, ProgramHeader};
use object::{Object, ObjectSection, ObjectSymbol};

use crate::manifest::{AbiManifest, RecordError, decode_record};

/// Why a file can't be judged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    #[error("malformed or truncated ELF file: {0}")]
    Malformed(String),
    #[error("no gwplugin ABI manifest in the file (symbol `{0}` / section `{1}` missing)")]
    NoManifest(&'static str, &'static str),
    #[error("{0}")]
    Record(#[from] RecordError),
}

/// What the dynamic linker will see of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfFacts {
    /// `x86_64`, `aarch64`, …
    pub machine: String,
    /// True for a shared object (ET_DYN).
    pub shared_object: bool,
    /// PT_INTERP, if any.
    pub interpreter: Option<String>,
    /// DT_NEEDED entries.
    pub needed: Vec<String>,
    /// The compilers the `.comment` section names, as `rustc version` lines give them:
    /// `1.95.0 (59807616e 2026-04-14)`. Empty when the section is gone.
    pub rustc_versions: Vec<String>,
}

impl ElfFacts {
    /// `glibc`, `musl`, or None when the file names neither.
    pub fn libc(&self) -> Option<&'static str> {
        let interp = self.interpreter.as_deref().unwrap_or("");
        if interp.contains("ld-musl") {
            return Some("musl");
        }
        if self.needed.iter().any(|n| n == "libc.so.6") || interp.contains("ld-linux") {
            return Some("glibc");
        }
        if self
            .needed
            .iter()
            .any(|n| n == "libc.so" || n.starts_with("libc.musl"))
        {
            return Some("musl");
        }
        None
    }

    /// The Rust standard library it links dynamically (`-C prefer-dynamic`): a
    /// `libstd-HASH.so` no gateway has beside it, so `dlopen` fails.
    pub fn dynamic_std(&self) -> Option<&str> {
        self.needed
            .iter()
            .find(|n| n.starts_with("libstd-") && n.ends_with(".so"))
            .map(String::as_str)
    }

    /// The compiler the file says built it, when that is not `rustc` (release, and
    /// commit when both say it): the manifest does not describe this file. `None` when
    /// one of the file's `rustc version` lines is `rustc` (the standard library's is the
    /// compiler's own; another can come from a native library linked in, which does not
    /// meet the contract's types), or the file names none.
    pub fn other_compiler(&self, rustc: &crate::RustcInfo) -> Option<String> {
        let known_commit = rustc.commit_hash != "unknown" && !rustc.commit_hash.is_empty();
        let is_rustc = |built: &str| {
            let Some(rest) = built.strip_prefix(rustc.release.as_str()) else {
                return false;
            };
            // `1.95.0-dev` alone: a compiler built without its git hash.
            let Some(rest) = rest.strip_prefix(" (") else {
                return rest.is_empty() || rest.starts_with(' ');
            };
            // `(59807616e 2026-04-14)`
            let hash = rest.split([' ', ')']).next().unwrap_or("");
            let is_hash = hash.len() >= 7 && hash.bytes().all(|b| b.is_ascii_hexdigit());
            !(known_commit && is_hash) || rustc.commit_hash.starts_with(hash)
        };
        if self.rustc_versions.iter().any(|built| is_rustc(built)) {
            return None;
        }
        // All of them: the first may be a native library's own.
        (!self.rustc_versions.is_empty()).then(|| self.rustc_versions.join("; "))
    }
}

/// The libc a target triple implies.
pub fn target_libc(target: &str) -> Option<&'static str> {
    if target.contains("-musl") {
        Some("musl")
    } else if target.ends_with("-gnu") || target.contains("-gnu") {
        Some("glibc")
    } else {
        None
    }
}

/// The ELF machine name a target triple implies (`x86_64-…` → `x86_64`).
pub fn target_machine(target: &str) -> &str {
    target.split('-').next().unwrap_or(target)
}

fn is_elf(data: &[u8]) -> bool {
    data.starts_with(b"\x7fELF")
}

/// Reads machine, kind, interpreter and NEEDED.
pub fn facts(data: &[u8]) -> Result<ElfFacts, ElfError> {
    if !is_elf(data) {
        return Err(ElfError::NotElf);
    }
    match data.get(4) /* EI_CLASS */ {
        Some(&elf::ELFCLASS64) => facts_of::<elf::FileHeader64<object::Endianness>>(data),
        Some(&elf::ELFCLASS32) => facts_of::<elf::FileHeader32<object::Endianness>>(data),
        _ => Err(ElfError::Malformed("unknown ELF class".into())),
    }
}

fn facts_of<H: FileHeader<Endian = object::Endianness>>(data: &[u8]) -> Result<ElfFacts, ElfError> {
    let malformed = |e: object::Error| ElfError::Malformed(e.to_string());
    let file = ElfFile::<H>::parse(data).map_err(malformed)?;
    let endian = file.endian();
    let machine = match file.architecture() {
        object::Architecture::X86_64 => "x86_64".to_owned(),
        object::Architecture::Aarch64 => "aarch64".to_owned(),
        object::Architecture::I386 => "i686".to_owned(),
        object::Architecture::Arm => "arm".to_owned(),
        object::Architecture::Riscv64 => "riscv64".to_owned(),
        other => format!("{other:?}").to_lowercase(),
    };
    let shared_object = file.elf_header().e_type(endian) == elf::ET_DYN;
    let mut interpreter = None;
    for ph in file.elf_program_headers() {
        if ph.p_type(endian) == elf::PT_INTERP {
            let bytes = ph
                .data(endian, data)
                .map_err(|()| ElfError::Malformed("bad PT_INTERP".into()))?;
            interpreter = Some(
                String::from_utf8_lossy(bytes)
                    .trim_end_matches('\0')
                    .to_owned(),
            );
        }
    }
    let mut needed = Vec::new();
    let sections = file.elf_section_table();
    if let Some((dyns, link)) = sections.dynamic(endian, data).map_err(malformed)? {
        let strings = sections.strings(endian, data, link).map_err(malformed)?;
        for d in dyns {
            if d.tag32(endian) == Some(elf::DT_NEEDED) {
                let name = d.string(endian, strings).map_err(malformed)?;
                needed.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    let rustc_versions = file
        .section_by_name(".comment")
        .and_then(|s| s.data().ok())
        .map(|data| {
            data.split(|&b| b == 0)
                .filter_map(|entry| entry.strip_prefix(b"rustc version "))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect()
        })
        .unwrap_or_default();
    Ok(ElfFacts {
        machine,
        shared_object,
        interpreter,
        needed,
        rustc_versions,
    })
}

/// One plugin a library declares in `gwplugin::export!`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportedPlugin {
    /// `http-server`, `http-client` or `modifier`.
    pub kind: String,
    pub name: String,
}

/// Reads the plugins a library declares (symbol `GWPLUGIN_EXPORTS`), without loading it.
pub fn plugin_exports(data: &[u8]) -> Result<Vec<ExportedPlugin>, ElfError> {
    let bytes = symbol_bytes(data, "GWPLUGIN_EXPORTS")?;
    let text = String::from_utf8_lossy(bytes);
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(kind, name)| ExportedPlugin {
            kind: kind.replace('_', "-"),
            name: name.to_owned(),
        })
        .collect())
}

/// The bytes of a library's exported data symbol `symbol` (read from the file, not
/// loaded).
pub fn symbol_bytes<'a>(data: &'a [u8], symbol: &'static str) -> Result<&'a [u8], ElfError> {
    if !is_elf(data) {
        return Err(ElfError::NotElf);
    }
    let file = object::File::parse(data).map_err(|e| ElfError::Malformed(e.to_string()))?;
    let sym = file
        .dynamic_symbols()
        .find(|s| s.name() == Ok(symbol))
        .ok_or(ElfError::NoManifest(symbol, crate::HOST_SECTION))?;
    let section_index = sym
        .section_index()
        .ok_or(ElfError::NoManifest(symbol, crate::HOST_SECTION))?;
    let section = file
        .section_by_index(section_index)
        .map_err(|e| ElfError::Malformed(e.to_string()))?;
    let bytes = section
        .data()
        .map_err(|e| ElfError::Malformed(e.to_string()))?;
    let start = sym
        .address()
        .checked_sub(section.address())
        .ok_or_else(|| ElfError::Malformed("symbol outside its section".into()))?
        as usize;
    bytes
        .get(start..start + sym.size() as usize)
        .ok_or_else(|| {
            ElfError::Malformed(format!("symbol `{symbol}` past the end of its section"))
        })
}

/// Reads a plugin's manifest record from its exported data symbol.
pub fn plugin_manifest(data: &[u8], symbol: &'static str) -> Result<AbiManifest, ElfError> {
    Ok(decode_record(symbol_bytes(data, symbol)?)?)
}

/// Reads a host's manifest record from its link section.
pub fn host_manifest(data: &[u8], section: &'static str) -> Result<AbiManifest, ElfError> {
    if !is_elf(data) {
        return Err(ElfError::NotElf);
    }
    let file = object::File::parse(data).map_err(|e| ElfError::Malformed(e.to_string()))?;
    let section = file
        .section_by_name(section)
        .ok_or(ElfError::NoManifest("-", crate::HOST_SECTION))?;
    let bytes = section
        .data()
        .map_err(|e| ElfError::Malformed(e.to_string()))?;
    Ok(decode_record(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RustcInfo;

    fn built_by(versions: &[&str]) -> ElfFacts {
        ElfFacts {
            machine: "x86_64".into(),
            shared_object: true,
            interpreter: None,
            needed: Vec::new(),
            rustc_versions: versions.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    fn rustc(release: &str, commit_hash: &str) -> RustcInfo {
        RustcInfo {
            release: release.into(),
            commit_hash: commit_hash.into(),
        }
    }

    #[test]
    fn the_compiler_a_file_names_is_compared_in_each_form_rustc_writes() {
        let stable = rustc("1.95.0", "59807616e1fa2540724bfbac14d7976d7e4a3860");
        let nightly = rustc("1.97.0-nightly", "e50aa6fba0000000000000000000000000000000");
        // Agreeing: stable, nightly, a distro's suffix, a compiler without its git hash,
        // no `.comment` at all, and a native library's own line beside the compiler's.
        for (facts, manifest) in [
            (built_by(&["1.95.0 (59807616e 2026-04-14)"]), &stable),
            (
                built_by(&["1.97.0-nightly (e50aa6fba 2026-11-01)"]),
                &nightly,
            ),
            (
                built_by(&["1.95.0 (59807616e 2026-04-14) (built from a source tarball)"]),
                &stable,
            ),
            (built_by(&["1.95.0-dev"]), &rustc("1.95.0-dev", "unknown")),
            (built_by(&[]), &stable),
            (
                built_by(&[
                    "1.80.0 (051478957 2024-07-21)",
                    "1.95.0 (59807616e 2026-04-14)",
                ]),
                &stable,
            ),
        ] {
            assert_eq!(facts.other_compiler(manifest), None, "{facts:?}");
        }
        // Not: another release, or the same release of another commit.
        assert_eq!(
            built_by(&["1.97.0-nightly (e50aa6fba 2026-11-01)"]).other_compiler(&stable),
            Some("1.97.0-nightly (e50aa6fba 2026-11-01)".to_owned())
        );
        assert_eq!(
            built_by(&["1.95.0 (0123456789 2026-04-14)"]).other_compiler(&stable),
            Some("1.95.0 (0123456789 2026-04-14)".to_owned())
        );
        assert_eq!(
            built_by(&["1.95.0-dev"]).other_compiler(&stable),
            Some("1.95.0-dev".to_owned())
        );
    }
}
