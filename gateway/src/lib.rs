//! # gwhost — the reference gwplugin gateway
//!
//! A KrakenD-flavoured API gateway on hyper 1 and tokio that runs all three gwplugin
//! kinds. `main.rs` only parses the command line; everything else lives here so the
//! tests can drive it as a library too.
//!
//! * [`config`] reads and strictly validates the JSON config (every error names its JSON
//!   path and what was expected).
//! * [`gateway`] turns a validated config plus loaded plugins into the request pipeline:
//!   http-server plugins around the router, modifiers around each backend call.
//! * [`server`] accepts connections and shuts down gracefully; [`timer`] is the cheap
//!   per-thread timer behind its per-request timeouts.
//! * [`commands`] implements `run`, `check`, `plugin-abi` and `test-plugin`;
//!   [`check_plugin`] implements `check-plugin` with `cargo gwplugin check`'s code.
//! * [`error`] is the one place that turns failures into what the user reads.

pub mod alloc;
pub mod check_plugin;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod gateway;
pub mod route;
pub mod server;
pub mod timer;
pub mod tls;
mod watchdog;

pub use error::GwError;

/// This binary's ABI manifest record, embedded at build time by `build.rs`.
pub fn host_manifest_record() -> &'static [u8] {
    gwplugin_host::host_manifest!()
}

/// The `Cargo.lock` this binary was built from (empty when it had none), embedded by
/// `build.rs`: `check-plugin` notes a plugin's private crates at other versions with it.
pub fn host_lock() -> &'static str {
    include_str!(concat!(env!("OUT_DIR"), "/host-Cargo.lock"))
}
