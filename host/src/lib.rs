//! # gwplugin-host — the loader
//!
//! Any Rust gateway becomes a gwplugin host by depending on this crate, calling
//! `gwplugin_build::host()` from its `build.rs`, and handing [`host_manifest!`] to a
//! [`Loader`]. For each candidate file the loader, in this order:
//!
//! 1. reads the file once into a sealed in-memory file (so the bytes it checks are the
//!    bytes it loads: nothing can swap the file in between);
//! 2. checks the configured sha256, if any;
//! 3. checks it is an ELF shared object for the host's machine and libc;
//! 4. reads the plugin's ABI manifest from its exported data symbol and compares it with
//!    the host's — refusing with a `have`/`want` diff on any difference;
//! 5. only then `dlopen`s it, installs the host's allocator in it, and calls its
//!    registration entry point (under the plugin's own panic guard).
//!
//! Plugins are never unloaded: plugin objects may outlive any registry, and dropping a
//! library before the objects it made is a crash.

mod error;
mod http1;
mod loader;
pub mod scope;
mod services;
pub mod tls;
pub mod upstream;

pub use error::{LoadError, LookupError, NotACandidate, layout_pair};
#[doc(hidden)]
pub use gwplugin::abi::str_eq as __str_eq;
pub use gwplugin_build::{AbiManifest, Difference};
pub use loader::{
    CreateError, FailurePolicy, FolderReport, Loader, LoaderConfig, PluginInfo, PluginRegistry,
    candidates, verify_against, verify_layout,
};
pub use services::{TokioHostServices, dropped_unfinished_tasks};

/// Embeds this host's ABI manifest record (written by `gwplugin_build::host()` in
/// `build.rs`) in the `.gwplugin_abi` link section and evaluates to its bytes.
///
/// The section lets `cargo gwplugin check --host BINARY` read the manifest from the
/// file, for any target, without running it.
#[macro_export]
macro_rules! host_manifest {
    () => {{
        // From `gwplugin_build::host()`'s build-script output, as `export!` takes a
        // plugin's: never a file an earlier build script left in `OUT_DIR`, nor a path
        // another crate's build handed down.
        const _: () = ::core::assert!(
            $crate::__str_eq(
                ::core::env!("GWPLUGIN_ABI_RECORD", "gwplugin: no ABI manifest for this build: the host's build.rs must call `gwplugin_build::host()`"),
                ::core::concat!(::core::env!("OUT_DIR", "gwplugin: no ABI manifest for this build: the host's build.rs must call `gwplugin_build::host()`"), "/gwplugin-abi.bin"),
            ),
            "gwplugin: the ABI manifest path was not set by this crate's build script: its build.rs must call `gwplugin_build::host()`"
        );
        #[used]
        #[unsafe(link_section = ".gwplugin_abi")]
        static GWPLUGIN_HOST_ABI_MANIFEST: [u8; include_bytes!(env!("GWPLUGIN_ABI_RECORD", "gwplugin: no ABI manifest for this build: the host's build.rs must call `gwplugin_build::host()`"))
            .len()] = *include_bytes!(env!("GWPLUGIN_ABI_RECORD", "gwplugin: no ABI manifest for this build: the host's build.rs must call `gwplugin_build::host()`"));
        &GWPLUGIN_HOST_ABI_MANIFEST[..]
    }};
}
