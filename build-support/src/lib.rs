//! # gwplugin-build
//!
//! Computes the **ABI manifest** of a gwplugin host or plugin — the compiler, target,
//! panic strategy, allocator contract, `gwplugin` version and every boundary crate it
//! is built with — and embeds it. Call it from `build.rs`:
//!
//! ```no_run
//! // build.rs of a plugin: `fn main() { gwplugin_build::plugin(); }`
//! gwplugin_build::plugin();
//! ```
//!
//! A host calls [`host()`] instead and embeds the record with
//! `gwplugin_host::host_manifest!()`. The same crate compares two manifests
//! ([`compare`]), so `gwhost`, the loader and `cargo gwplugin check` judge compatibility
//! with one implementation.

mod compute;
#[cfg(feature = "elf")]
pub mod elf;
mod manifest;
pub mod report;

pub use compute::{
    ComputeError, Computed, ManifestRequest, compute_for_manifest_path, enabled_features,
    feature_env_var, hash_path_source, rustc_info, rustc_vv_command, rustc_wrappers_from_env,
};
pub use manifest::{
    ALLOCATOR_CONTRACT, AbiManifest, BoundaryCrate, CrateIdentity, Difference, FORMAT_VERSION,
    MAGIC, PackageName, RecordError, Role, RustcInfo, compare, decode_record, encode_record,
};

use std::env;
use std::path::PathBuf;

/// The exported data symbol holding a plugin's manifest record.
pub const PLUGIN_SYMBOL: &str = "GWPLUGIN_ABI_MANIFEST";
/// The link section holding a host's manifest record.
pub const HOST_SECTION: &str = ".gwplugin_abi";

/// File names written to `OUT_DIR`.
pub const RECORD_FILE: &str = "gwplugin-abi.bin";
pub const JSON_FILE: &str = "gwplugin-abi.json";

/// For `build.rs` of a plugin crate: writes the manifest that `gwplugin::export!` embeds.
pub fn plugin() {
    emit(Role::Plugin);
}

/// For `build.rs` of a host binary: writes the manifest that
/// `gwplugin_host::host_manifest!()` embeds.
pub fn host() {
    emit(Role::Host);
}

fn emit(role: Role) {
    if let Err(e) = try_emit(role) {
        // A build script reports errors by failing; cargo prints this with the crate name.
        panic!("gwplugin-build: {e}");
    }
}

fn env_var(name: &str) -> Result<String, ComputeError> {
    env::var(name).map_err(|_| ComputeError::Env(name.to_owned()))
}

fn try_emit(role: Role) -> Result<(), ComputeError> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let manifest_path = manifest_dir.join("Cargo.toml");
    let cargo = env::var_os("CARGO").map(PathBuf::from);
    // As this build has them (`--features`, `--no-default-features`): they may turn on
    // features of a boundary crate, which the host must then have too.
    let features = compute::enabled_features(
        cargo.as_deref().unwrap_or(std::path::Path::new("cargo")),
        &manifest_path,
        |feature| env::var_os(feature_env_var(feature)).is_some(),
    )?;
    let request = ManifestRequest {
        manifest_path,
        role,
        target: env_var("TARGET")?,
        rustc: PathBuf::from(env_var("RUSTC")?),
        rustc_wrappers: rustc_wrappers_from_env(),
        panic: env::var("CARGO_CFG_PANIC").unwrap_or_else(|_| "unwind".to_owned()),
        cargo,
        features: Some(features),
    };
    let computed = compute_for_manifest_path(&request)?;
    for path in &computed.inputs {
        println!("cargo::rerun-if-changed={}", path.display());
    }
    // Not the wrappers: `cargo clippy` sets `RUSTC_WORKSPACE_WRAPPER`, and each switch
    // between it and `cargo build` would rerun this and rebuild the plugin; a wrapper that
    // runs another compiler changes what cargo's fingerprint hashes (`-vV` through the
    // wrappers), which reruns everything anyway.
    println!("cargo::rerun-if-env-changed=RUSTC");
    let record = encode_record(&computed.manifest);
    write(&out_dir.join(RECORD_FILE), &record)?;
    // What `export!` and `host_manifest!` embed: set only by this run, so that a crate
    // whose build script stopped calling this does not build with a stale file. (They
    // check that it is `OUT_DIR/gwplugin-abi.bin` of the crate's own `OUT_DIR`, written
    // as they write it: `cargo run` and `cargo test` hand a crate's `rustc-env` values to
    // the programs they run, and a build those start must not take another crate's. The
    // name stays a shell identifier: a `RUSTC_WRAPPER` script run by `sh` drops
    // variables whose names are not.)
    println!(
        "cargo::rustc-env=GWPLUGIN_ABI_RECORD={}/{RECORD_FILE}",
        env_var("OUT_DIR")?
    );
    write(
        &out_dir.join(JSON_FILE),
        computed.manifest.to_json_pretty().as_bytes(),
    )?;
    Ok(())
}

fn write(path: &std::path::Path, bytes: &[u8]) -> Result<(), ComputeError> {
    std::fs::write(path, bytes).map_err(|e| ComputeError::Io {
        path: path.to_owned(),
        source: e,
    })
}
