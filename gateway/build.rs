use std::path::{Path, PathBuf};

fn main() {
    // gwhost is a gwplugin host: embed its ABI manifest.
    gwplugin_build::host();
    embed_lock();
}

/// Embeds the `Cargo.lock` gwhost is built from (empty when there is none), so that
/// `gwhost check-plugin` can tell which of a plugin's private crates differ from the
/// host's, as `cargo gwplugin check` does against the host project.
fn embed_lock() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let lock = dir
        .ancestors()
        .map(|d| d.join("Cargo.lock"))
        .find(|p| p.is_file());
    let text = match &lock {
        Some(path) => {
            println!("cargo::rerun-if-changed={}", path.display());
            std::fs::read_to_string(path).unwrap_or_default()
        }
        None => String::new(),
    };
    let out = Path::new(&std::env::var("OUT_DIR").expect("set by cargo")).join("host-Cargo.lock");
    std::fs::write(&out, text).expect("write OUT_DIR/host-Cargo.lock");
}
