//! # gwplugin — the plugin contract
//!
//! Both a gateway (the *host*) and its native plugins depend on this crate. It defines
//! KrakenD's three plugin kinds on top of the [`http`] crate's types:
//!
//! * [`HttpServer`] (`plugin/http-server`): wraps the whole router; gets the request and
//!   the [`Next`] handler.
//! * [`HttpClient`] (`plugin/http-client`): replaces the call to one backend.
//! * [`Modifier`] (`plugin/req-resp-modifier`): changes a request and/or a response.
//!
//! A plugin crate registers its plugins with one [`export!`] invocation and writes no
//! `unsafe` and no `#[no_mangle]` itself:
//!
//! ```ignore
//! struct AddHeader { value: String }
//!
//! impl gwplugin::Modifier for AddHeader {
//!     fn modify_request(&self, req: &mut gwplugin::Request) -> Result<(), gwplugin::Error> {
//!         req.headers_mut().insert("x-added", self.value.parse()?);
//!         Ok(())
//!     }
//! }
//!
//! fn add_header(config: &gwplugin::Config) -> Result<AddHeader, gwplugin::Error> {
//!     Ok(AddHeader { value: config["value"].as_str().unwrap_or("yes").to_owned() })
//! }
//!
//! gwplugin::export! { modifier "add-header" => add_header }
//! ```
//!
//! ## Why the contract looks like this
//!
//! A plugin is a `cdylib` with its own copy of std, tokio, log and of every other crate.
//! So (see `DESIGN.md`):
//! * every entry into plugin code goes through a `catch_unwind` *inside* the plugin
//!   ([`Error::is_panic`]): an unwind that crosses into the host aborts it;
//! * the plugin's global allocator forwards to the host's ([`alloc`]), so owned data can
//!   be freed on either side whatever the host's `#[global_allocator]` is;
//! * timers, tasks, backend calls and logging are host services ([`sleep`], [`spawn`],
//!   [`send`], the `log` crate), because the plugin's own tokio has no reactor.

// A plugin's panics are contained by unwinding to the `catch_unwind` at its entry; with
// `panic = "abort"` the first one ends the whole gateway. A profile's `panic` is not in
// what a build script sees (`CARGO_CFG_PANIC` is the target's), so the manifest cannot
// record it: the compiler refuses it here, for plugins and hosts alike.
#[cfg(not(panic = "unwind"))]
compile_error!(
    "gwplugin needs `panic = \"unwind\"`: with `panic = \"abort\"` a panic in a plugin ends \
     the whole gateway instead of failing one request. Remove `panic = \"abort\"` from the \
     profile that sets it (`[profile.*]` in the workspace's Cargo.toml or in \
     `.cargo/config.toml`, or `CARGO_PROFILE_<NAME>_PANIC`), and `-C panic=abort` from the \
     rustflags"
);

mod body;
mod error;
mod guard;
mod kinds;
mod services;

pub mod abi;
pub mod alloc;
#[doc(hidden)]
pub mod export;

pub use body::Body;
pub use error::{BoxError, Error};
pub use kinds::{HttpClient, HttpServer, Modifier, Next};
pub use services::{HostServices, send, sleep, spawn};

pub use bytes;
pub use http;
/// The `Body` trait that [`Body::from_stream`] takes: a plugin streams a body with the
/// host's copy of it.
pub use http_body;
pub use log;
pub use serde_json;

/// A request as plugins see it.
pub type Request = http::Request<Body>;
/// A response as plugins see it.
pub type Response = http::Response<Body>;
/// A plugin's configuration: the JSON object under its name in the namespace block.
pub type Config = serde_json::Value;
/// A boxed, sendable future.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The allocator contract this build of gwplugin implements (recorded in the ABI manifest).
pub const ALLOCATOR_CONTRACT: &str = "host-forwarding-v1";
