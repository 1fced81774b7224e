use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gwplugin::abi::{
    self, ClientFactory, Factory, Handler, HostContext, Kind, ModifierFactory, RegisterFn,
    ServerFactory,
};
use gwplugin::alloc::AllocVTable;
use gwplugin::{Config, HostServices};
use gwplugin_build::elf::{self, ElfError};
use gwplugin_build::{AbiManifest, compare, decode_record};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{LoadError, LookupError, NotACandidate};

/// What to do when a plugin file fails to load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Start-up fails (the default).
    #[default]
    Fail,
    /// The file is skipped with a WARN line naming it and the reason.
    Skip,
}

/// Which plugin files to load.
#[derive(Debug, Clone, Default)]
pub struct LoaderConfig {
    pub folder: PathBuf,
    /// A file in `folder` (not in subfolders) is a candidate when its name contains
    /// `pattern` — KrakenD's rule, e.g. `".so"`. Hidden files never are. Candidates load
    /// in byte order of their names.
    pub pattern: String,
    /// Optional sha256 (hex) per file name; a configured file must exist and match.
    pub sha256: BTreeMap<String, String>,
    pub on_failure: FailurePolicy,
}

/// The files a [`LoaderConfig`] selects, in load order.
pub fn candidates(config: &LoaderConfig) -> Result<Vec<PathBuf>, LoadError> {
    let folder_err = |source| LoadError::Folder {
        path: config.folder.clone(),
        source,
    };
    let mut names: Vec<String> = std::fs::read_dir(&config.folder)
        .map_err(folder_err)?
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_type()
                .map(|t| t.is_file() || t.is_symlink())
                .unwrap_or(false)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n.contains(&config.pattern))
        .collect();
    names.sort();
    Ok(names.into_iter().map(|n| config.folder.join(n)).collect())
}

/// What `load_folder` did.
#[derive(Debug, Default)]
pub struct FolderReport {
    pub loaded: Vec<PathBuf>,
    /// Files skipped under [`FailurePolicy::Skip`], with why.
    pub skipped: Vec<LoadError>,
    /// Files that match the pattern but that `sha256`, naming others, does not list.
    pub unlisted: Vec<PathBuf>,
}

/// One registered plugin name.
pub struct PluginInfo {
    pub name: String,
    pub kind: Kind,
    /// The file it came from.
    pub file: PathBuf,
    /// The plugin crate's package name.
    pub library: String,
    factory: Factory,
}

impl std::fmt::Debug for PluginInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, from {})",
            self.name,
            self.kind,
            self.file.display()
        )
    }
}

/// The plugins registered so far, by name.
#[derive(Debug, Default)]
pub struct PluginRegistry {
    plugins: BTreeMap<String, PluginInfo>,
}

impl PluginRegistry {
    pub fn get(&self, name: &str) -> Option<&PluginInfo> {
        self.plugins.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &PluginInfo> {
        self.plugins.values()
    }

    pub fn len(&self) -> usize {
        self.plugins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    fn lookup(&self, name: &str, wanted: Kind) -> Result<&PluginInfo, LookupError> {
        let info = self.plugins.get(name).ok_or_else(|| LookupError::Unknown {
            name: name.to_owned(),
            namespace: wanted.namespace(),
            available: self
                .plugins
                .values()
                .filter(|p| p.kind == wanted)
                .map(|p| p.name.clone())
                .collect(),
        })?;
        if info.kind != wanted {
            return Err(LookupError::WrongKind {
                name: name.to_owned(),
                file: info.file.clone(),
                found: info.kind,
                wanted,
                namespace: wanted.namespace(),
            });
        }
        Ok(info)
    }

    /// The factory of http-server plugin `name`.
    pub fn http_server(&self, name: &str) -> Result<&dyn ServerFactory, LookupError> {
        match &self.lookup(name, Kind::HttpServer)?.factory {
            Factory::HttpServer(f) => Ok(f.as_ref()),
            _ => unreachable!("kind checked"),
        }
    }

    /// The factory of http-client plugin `name`.
    pub fn http_client(&self, name: &str) -> Result<&dyn ClientFactory, LookupError> {
        match &self.lookup(name, Kind::HttpClient)?.factory {
            Factory::HttpClient(f) => Ok(f.as_ref()),
            _ => unreachable!("kind checked"),
        }
    }

    /// The factory of modifier plugin `name`.
    pub fn modifier(&self, name: &str) -> Result<&dyn ModifierFactory, LookupError> {
        match &self.lookup(name, Kind::Modifier)?.factory {
            Factory::Modifier(f) => Ok(f.as_ref()),
            _ => unreachable!("kind checked"),
        }
    }

    /// Creates an http-server instance wrapping `next`.
    pub fn create_server(
        &self,
        name: &str,
        config: &Config,
        next: Handler,
    ) -> Result<Handler, CreateError> {
        self.http_server(name)?
            .create(config, next)
            .map_err(|e| CreateError::Plugin(name.to_owned(), e))
    }

    /// Creates an http-client instance.
    pub fn create_client(&self, name: &str, config: &Config) -> Result<Handler, CreateError> {
        self.http_client(name)?
            .create(config)
            .map_err(|e| CreateError::Plugin(name.to_owned(), e))
    }

    /// Creates a modifier instance.
    pub fn create_modifier(
        &self,
        name: &str,
        config: &Config,
    ) -> Result<Arc<dyn abi::ErasedModifier>, CreateError> {
        self.modifier(name)?
            .create(config)
            .map_err(|e| CreateError::Plugin(name.to_owned(), e))
    }
}

/// Why a plugin instance could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error("plugin `{0}` rejected its config: {1}")]
    Plugin(String, gwplugin::Error),
}

/// Verifies, loads and registers plugin files for one host.
pub struct Loader {
    host: AbiManifest,
    services: Arc<dyn HostServices>,
    registry: PluginRegistry,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("host", &self.host.package)
            .field("registry", &self.registry)
            .finish()
    }
}

impl Loader {
    /// A loader for the host whose manifest record is `host_record` (from
    /// [`host_manifest!`](crate::host_manifest)).
    pub fn new(
        host_record: &[u8],
        services: Arc<dyn HostServices>,
    ) -> Result<Self, gwplugin_build::RecordError> {
        Ok(Loader {
            host: decode_record(host_record)?,
            services,
            registry: PluginRegistry::default(),
        })
    }

    /// The host's manifest.
    pub fn host_manifest(&self) -> &AbiManifest {
        &self.host
    }

    pub fn registry(&self) -> &PluginRegistry {
        &self.registry
    }

    pub fn into_registry(self) -> PluginRegistry {
        self.registry
    }

    /// Loads every candidate of `config`, applying its failure policy.
    pub fn load_folder(&mut self, config: &LoaderConfig) -> Result<FolderReport, LoadError> {
        let files = candidates(config)?;
        for name in config.sha256.keys() {
            if !files
                .iter()
                .any(|f| f.file_name().is_some_and(|n| n.to_string_lossy() == *name))
            {
                let why = if !config.folder.join(name).is_file() || name.contains('/') {
                    NotACandidate::Missing
                } else if name.starts_with('.') {
                    NotACandidate::Hidden
                } else {
                    NotACandidate::OutsidePattern(config.pattern.clone())
                };
                return Err(LoadError::ChecksumForMissingFile {
                    file: name.clone(),
                    folder: config.folder.clone(),
                    why,
                });
            }
        }
        let mut report = FolderReport::default();
        for file in files {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // Checksums list the plugins the operator approved: with any, a file without
            // one stays unloaded (a stale build in a shared artifact folder, say).
            if !config.sha256.is_empty() && !config.sha256.contains_key(&name) {
                tracing::warn!(
                    file = %file.display(),
                    "plugin file not loaded: `plugin.sha256` does not list it"
                );
                report.unlisted.push(file);
                continue;
            }
            match self.load_file(&file, config.sha256.get(&name).map(String::as_str)) {
                Ok(()) => report.loaded.push(file),
                Err(e) if config.on_failure == FailurePolicy::Skip => {
                    tracing::warn!(file = %file.display(), "plugin skipped: {e}");
                    report.skipped.push(e);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Verifies one file and, if it passes, loads and registers it.
    pub fn load_file(
        &mut self,
        path: &Path,
        expected_sha256: Option<&str>,
    ) -> Result<(), LoadError> {
        let sealed = SealedCopy::of(path)?;
        let bytes = sealed.bytes();
        if let Some(expected) = expected_sha256 {
            let actual = hex(&Sha256::digest(bytes));
            if !actual.eq_ignore_ascii_case(expected.trim()) {
                return Err(LoadError::Checksum {
                    path: path.to_owned(),
                    expected: expected.to_owned(),
                    actual,
                });
            }
        }
        self.verify_bytes(path, bytes)?;
        self.dlopen_and_register(path, sealed)
    }

    /// Every check that runs before `dlopen`, on the file's bytes. Returns the plugin's
    /// manifest.
    pub fn verify_bytes(&self, path: &Path, bytes: &[u8]) -> Result<AbiManifest, LoadError> {
        let manifest = verify_against(&self.host, path, bytes)?;
        verify_layout(path, bytes)?;
        Ok(manifest)
    }

    fn dlopen_and_register(&mut self, path: &Path, sealed: SealedCopy) -> Result<(), LoadError> {
        let dlopen_err = |message: String| LoadError::Dlopen {
            path: path.to_owned(),
            message,
        };
        // SAFETY: the manifest check passed: same compiler, target and contract, so the
        // library's initialisers and the symbols below have the types we expect.
        let library = unsafe {
            libloading::os::unix::Library::open(
                Some(sealed.proc_path()),
                libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
            )
        }
        .map_err(|e| dlopen_err(e.to_string()))?;
        // The memfd stays open for good: glibc recognises an already loaded library by
        // its path name, and a reused `/proc/self/fd/N` would hand back another plugin.
        sealed.keep_open();
        // Never unloaded: objects the plugin creates may live as long as the process.
        let library: &'static libloading::os::unix::Library = Box::leak(Box::new(library));

        // SAFETY: symbol types are fixed by the contract version checked above.
        unsafe {
            let install: libloading::os::unix::Symbol<
                unsafe extern "C" fn(*const AllocVTable) -> bool,
            > = library
                .get(abi::INSTALL_ALLOCATOR_SYMBOL.as_bytes())
                .map_err(|e| dlopen_err(e.to_string()))?;
            if !install(gwplugin::alloc::host_vtable()) {
                return Err(dlopen_err(
                    "the plugin already serves another allocator".into(),
                ));
            }
        }
        // SAFETY: as above.
        let register: RegisterFn = unsafe {
            *library
                .get::<RegisterFn>(abi::REGISTER_SYMBOL.as_bytes())
                .map_err(|e| dlopen_err(e.to_string()))?
        };
        let registration = register(&HostContext {
            services: self.services.clone(),
        })
        .map_err(|e| LoadError::Registration {
            path: path.to_owned(),
            message: e.to_string(),
        })?;

        for (i, entry) in registration.plugins.iter().enumerate() {
            // Twice in one library too (`export!` refuses that at compile time): the
            // second would replace the first unseen.
            let first = match self.registry.plugins.get(&entry.name) {
                Some(existing) => Some(existing.file.clone()),
                None => registration.plugins[..i]
                    .iter()
                    .any(|e| e.name == entry.name)
                    .then(|| path.to_owned()),
            };
            if let Some(first) = first {
                return Err(LoadError::DuplicateName {
                    name: entry.name.clone(),
                    first,
                    second: path.to_owned(),
                });
            }
        }
        let library_name = registration.library;
        for entry in registration.plugins {
            let kind = entry.factory.kind();
            tracing::info!(plugin = %entry.name, kind = %kind, file = %path.display(), "plugin registered");
            self.registry.plugins.insert(
                entry.name.clone(),
                PluginInfo {
                    name: entry.name,
                    kind,
                    file: path.to_owned(),
                    library: library_name.clone(),
                    factory: entry.factory,
                },
            );
        }
        Ok(())
    }
}

/// The pre-`dlopen` checks of `bytes` (a plugin file) against `host`.
pub fn verify_against(
    host: &AbiManifest,
    path: &Path,
    bytes: &[u8],
) -> Result<AbiManifest, LoadError> {
    let path_buf = || path.to_owned();
    let facts = elf::facts(bytes).map_err(|e| match e {
        ElfError::NotElf => LoadError::NotElf {
            path: path_buf(),
            detail: None,
        },
        other => LoadError::NotElf {
            path: path_buf(),
            detail: Some(other.to_string()),
        },
    })?;
    if !facts.shared_object {
        return Err(LoadError::NotElf {
            path: path_buf(),
            detail: Some("an executable, not a shared object".into()),
        });
    }
    let want_machine = elf::target_machine(&host.target);
    if facts.machine != want_machine {
        return Err(LoadError::WrongMachine {
            path: path_buf(),
            found: facts.machine,
            want: want_machine.to_owned(),
        });
    }
    if let (Some(found), Some(want)) = (facts.libc(), elf::target_libc(&host.target))
        && found != want
    {
        return Err(LoadError::WrongLibc {
            path: path_buf(),
            found: found.to_owned(),
            needed: facts
                .needed
                .iter()
                .find(|n| n.starts_with("libc"))
                .cloned()
                .unwrap_or_default(),
            want: want.to_owned(),
        });
    }
    if let Some(needed) = facts.dynamic_std() {
        return Err(LoadError::DynamicStd {
            path: path_buf(),
            needed: needed.to_owned(),
        });
    }
    let plugin =
        elf::plugin_manifest(bytes, gwplugin_build::PLUGIN_SYMBOL).map_err(|e| match e {
            ElfError::NoManifest(..) => LoadError::NoManifest {
                path: path_buf(),
                symbol: gwplugin_build::PLUGIN_SYMBOL,
            },
            other => LoadError::BadManifest {
                path: path_buf(),
                message: other.to_string(),
            },
        })?;
    let diffs = compare(&plugin, host);
    if !diffs.is_empty() {
        return Err(LoadError::Incompatible {
            path: path_buf(),
            diffs,
        });
    }
    // The manifest agreeing, the file must agree with it: a `RUSTC_WRAPPER` that ran
    // another compiler, or a manifest from another build, would pass the comparison and
    // then read the host's values with another layout.
    if let Some(built_by) = facts.other_compiler(&plugin.rustc) {
        return Err(LoadError::OtherCompiler {
            path: path_buf(),
            manifest: plugin.rustc.to_string(),
            built_by,
        });
    }
    Ok(plugin)
}

/// The check after [`verify_against`] that only this process can make: the plugin's
/// contract types laid out as this process's (its record against the one compiled in
/// here). The manifests agreeing, the record has this `gwplugin`'s shape.
pub fn verify_layout(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    let bad = |message: String| LoadError::BadManifest {
        path: path.to_owned(),
        message,
    };
    let record = elf::symbol_bytes(bytes, gwplugin::abi::LAYOUT_SYMBOL).map_err(|e| match e {
        ElfError::NoManifest(..) => bad(format!(
            "no layout record (symbol `{}`)",
            gwplugin::abi::LAYOUT_SYMBOL
        )),
        other => bad(other.to_string()),
    })?;
    let diffs = gwplugin::abi::layout_differences(record).map_err(bad)?;
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(LoadError::Layout {
            path: path.to_owned(),
            diffs,
        })
    }
}

/// A private, sealed in-memory copy of a file (a memfd): what is verified is exactly
/// what `dlopen` maps, whatever happens to the file on disk meanwhile.
struct SealedCopy {
    memfd: File,
    bytes: memmap2::Mmap,
    proc_path: PathBuf,
}

impl SealedCopy {
    fn of(path: &Path) -> Result<Self, LoadError> {
        let io_err = |source| LoadError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        // SAFETY: plain syscall with a NUL-terminated name.
        let fd = unsafe {
            libc::memfd_create(
                c"gwplugin".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if fd < 0 {
            return Err(io_err(std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        let mut memfd = unsafe { File::from_raw_fd(fd) };
        // File to file: std copies in the kernel (copy_file_range), no user-space buffer.
        std::io::copy(&mut file, &mut memfd).map_err(io_err)?;
        let seals =
            libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
        // SAFETY: fcntl on our own descriptor.
        if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
            return Err(io_err(std::io::Error::last_os_error()));
        }
        // SAFETY: the memfd is sealed against writes, growth and shrinking: the mapping
        // can't change under us.
        let bytes = unsafe { memmap2::Mmap::map(&memfd) }.map_err(io_err)?;
        let proc_path = PathBuf::from(format!("/proc/self/fd/{}", memfd.as_raw_fd()));
        Ok(SealedCopy {
            memfd,
            bytes,
            proc_path,
        })
    }

    /// Leaks the descriptor, so its `/proc/self/fd/N` name is never reused.
    fn keep_open(self) {
        std::mem::forget(self.memfd);
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The path `dlopen` opens: the memfd, alive as long as `self`.
    fn proc_path(&self) -> &Path {
        debug_assert!(self.memfd.as_raw_fd() >= 0);
        &self.proc_path
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
